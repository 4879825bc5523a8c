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


# The field names, in order: exactly the keys of the binding's per-input dict.
STATS_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(FileStats))


def stats_values(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The FileStats fields of an engine's per-input dict (KeyError names a missing one)."""
    return {name: raw[name] for name in STATS_FIELDS}


def add_stats(total: FileStats, part: Mapping[str, Any]) -> None:
    """Add the statistics of one piece of an input (a byte range) to ``total``, field by field
    by type: counts are summed, per-key counts too, the first error or compression is kept.
    Malformed examples are left to the caller: their line numbers need the piece's offset."""
    for f in fields(FileStats):
        value, current = part[f.name], getattr(total, f.name)
        if f.type == "int":
            setattr(total, f.name, current + value)
        elif f.type == "str | None":
            if current is None:
                setattr(total, f.name, value)
        elif f.type.startswith("dict["):
            for key, count in value.items():
                current[key] = current.get(key, 0) + count
        elif f.name != "malformed_examples":
            raise TypeError(f"add_stats: no rule to add up FileStats.{f.name} ({f.type})")
