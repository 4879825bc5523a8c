"""What every engine gives back, defined once: per-input statistics (:class:`FileStats`, whose
fields are the keys of the Rust binding's per-input dict) and hits as plain tuples
(:data:`EngineHit`). The Rust engine, the reference engine and the cluster's workers all give
these, and :mod:`imds_scan.engines` turns them into results."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

# A hit's witness (spec/ir.md, Witness): the values of these, in this order; a Hit's ``matched``.
WITNESS_FIELDS = ("field", "op", "pattern", "value")
EngineWitness = tuple[str, str, str, str]
# A hit: (input index, line, rule index, branch index, witness or None, event's JSON text).
EngineHit = tuple[int, int, int, int, EngineWitness | None, str]


@dataclass(kw_only=True)
class FileStats:
    bytes: int = 0
    events: int = 0
    candidates: int = 0
    hits: int = 0
    malformed: int = 0
    invalid_utf8: int = 0
    # Lines longer than max-line-bytes: not evaluated (also counted in ``malformed``).
    long_lines: int = 0
    malformed_examples: list[tuple[int, str]] = field(default_factory=list)
    # The lines of the first few counted in ``invalid_utf8``.
    invalid_utf8_lines: list[int] = field(default_factory=list)
    # Why the input could not be read, or only in part (with where); None when it was.
    error: str | None = None
    # The same as fields: what kind of error, and the byte offset (from the start of the
    # input) and the 1-based line where it happened, None when unknown or not applicable.
    error_kind: str | None = None
    error_offset: int | None = None
    error_line: int | None = None
    # "gzip" or "zstd" (then ``bytes`` counts decompressed bytes), None for plain input.
    compression: str | None = None
    # Bytes read from the source (compressed bytes for compressed input).
    source_bytes: int = 0
    # (rule index, allowlist entry index) -> events a branch of the rule matched that this
    # entry (the first matching one) dropped.
    allowlisted: dict[tuple[int, int], int] = field(default_factory=dict)
    # Lines read (for a byte range: the lines that start in it).
    lines: int = 0
    # Some line is a valid event (the Rust engine also parses lines its prefilter skips until
    # one is): False for an input of lines that only look like objects, such as ``{'a': 1}``.
    valid_event: bool = False


# The field names, in order: exactly the keys of the binding's per-input dict.
STATS_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(FileStats))


def stats_values(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The FileStats fields of an engine's per-input dict (KeyError names a missing one)."""
    return {name: raw[name] for name in STATS_FIELDS}


# The error's text and fields: taken together, from the first piece of an input that has one.
ERROR_FIELDS = ("error", "error_kind", "error_offset", "error_line")


def add_stats(total: FileStats, part: Mapping[str, Any], line_offset: int | None = 0) -> None:
    """Add the statistics of one piece of an input (a byte range) to ``total``, field by field
    by type: counts are summed, per-key counts too, flags or'ed, the first compression is kept,
    and so is the first error (its fields together). ``line_offset``, the lines of the input
    before the piece, makes the piece's line numbers (examples, the error's line) the
    input's; None when unknown (a piece before it is missing): its examples are then dropped
    and its error has no line. Examples are appended uncapped (the caller keeps the first few)."""
    for f in fields(FileStats):
        value, current = part[f.name], getattr(total, f.name)
        if f.name in ERROR_FIELDS:
            continue
        if f.type == "int":
            setattr(total, f.name, current + value)
        elif f.type == "str | None":
            if current is None:
                setattr(total, f.name, value)
        elif f.type.startswith("dict["):
            for key, count in value.items():
                current[key] = current.get(key, 0) + count
        elif f.type == "bool":
            setattr(total, f.name, current or value)
        elif f.name == "malformed_examples":
            if line_offset is not None:
                current += [(line + line_offset, why) for line, why in value]
        elif f.name == "invalid_utf8_lines":
            if line_offset is not None:
                current += [line + line_offset for line in value]
        else:
            raise TypeError(f"add_stats: no rule to add up FileStats.{f.name} ({f.type})")
    if total.error is None and part["error"] is not None:
        line = part["error_line"]
        moved = None if line is None or line_offset is None else line + line_offset
        total.error = _relined(part["error"], part["error_offset"], line, moved)
        total.error_kind = part["error_kind"]
        total.error_offset = part["error_offset"]
        total.error_line = moved


def _relined(text: str, offset: int | None, line: int | None, moved: int | None) -> str:
    """An engine's error text with its line number (rendered "byte N (line L)", as read
    errors and interruptions give it) replaced by ``moved``, or left out when that is None."""
    if line is None or offset is None or moved == line:
        return text
    where = f"byte {offset}"
    now = where if moved is None else f"{where} (line {moved})"
    return text.replace(f"{where} (line {line})", now, 1)
