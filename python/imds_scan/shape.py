"""Telling input that is not ECS: a scan of it finds nothing because the rules' fields are not
there, not because nothing happened (Log Analytics exports of Windows Security events, raw
auditd text). Looked at after the scan, in Python, on the first events of each local regular file
that gave no hits: nothing of this runs on the scan's hot path."""

from __future__ import annotations

import os
import stat
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from .escape import safe
from .fields import node_fields
from .reference.event import Malformed, field_values, parse_line
from .reference.scan.lines import ReadFailed, read_lines
from .reference.scan.source import decoded
from .rules import Rule
from .sources import Source

# Events looked at per input, and top-level fields named in the message.
SAMPLE = 500
NAMED = 6


@dataclass(frozen=True)
class NotEcs:
    """An input none of whose first events carries a field any loaded rule reads."""

    path: str
    events: int  # JSON-object events examined
    lines: int  # non-blank lines examined
    seen: tuple[str, ...]  # the most common top-level fields of those events
    fields: tuple[str, ...]  # what the rules read

    @property
    def message(self) -> str:
        fields = self.fields
        wanted = ", ".join(sorted(fields)[:NAMED]) + (", …" if len(fields) > NAMED else "")
        if not self.events:
            return (
                f"{safe(self.path)}: does not look like ECS NDJSON: none of the first "
                f"{self.lines:,} lines is a JSON object, so no rule saw an event"
            )
        seen = ", ".join(safe(name)[:40] for name in self.seen) or "none"
        return (
            f"{safe(self.path)}: does not look like ECS: none of the first {self.events:,} "
            f"events has a field the rules read ({wanted}); fields seen: {seen}"
        )


def rule_fields(rules: Sequence[Rule]) -> list[str]:
    """Every field the rules' branches (a sequence's or sample's stages) read (allowlists and
    host filters aside)."""
    from .ir_schema import conditions

    found: set[str] = set()
    for rule in rules:
        for _name, expr in conditions(rule.ir):
            found |= node_fields(expr)
        if rule.kind in ("sequence", "sample"):  # and a sequence's or sample's join keys
            body = rule.ir[rule.kind]
            stages = [*body["stages"], *([body["until"]] if body.get("until") else [])]
            found |= {k["field"] for stage in stages for k in stage["keys"]}
    found.discard("host.name")  # the host filter's field, on every branch when set
    return sorted(found)


def _lines(source: Source, limit: int) -> Iterator[bytes]:
    # Regular files only: a FIFO named as an input was read by the scan, and opened again it
    # would wait for a writer that is gone (O_NONBLOCK: it is not waited for).
    fd = os.open(source.name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with open(fd, "rb") as raw:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return
        stream, _, _ = decoded(raw)
        for count, line in enumerate(read_lines(stream, ReadFailed())):
            if count >= limit * 4:  # blank lines count too, up to a point
                return
            if isinstance(line, bytes):  # a LongLine was read past, never held: nothing to see
                yield line


def look(source: Source, fields: Sequence[str], limit: int = SAMPLE) -> NotEcs | None:
    """None when some of the input's first ``limit`` events has one of ``fields`` (or it
    cannot be read again); else what was seen."""
    paths = [f.split(".") for f in fields]
    events = lines = 0
    names: Counter[str] = Counter()
    try:
        for raw in _lines(source, limit):
            try:
                parsed = parse_line(raw.rstrip(b"\r\n"))
            except Malformed:
                lines += 1
            else:
                if parsed is None:
                    continue
                lines += 1
                events += 1
                doc = parsed[0]
                if any(next(iter(field_values(doc, p)), None) is not None for p in paths):
                    return None
                names.update(doc.keys())
            if lines >= limit:
                break
    except (OSError, EOFError, ValueError):
        return None  # the scan already reported it
    if not lines:
        return None
    seen = tuple(n for n, _ in names.most_common(NAMED))
    return NotEcs(source.name, events, lines, seen, tuple(fields))


def not_ecs_inputs(
    sources: Sequence[Source], hits_by_input: Sequence[int], rules: Sequence[Rule]
) -> list[NotEcs]:
    """The local inputs without hits that do not look like ECS (stdin and S3 are not read
    twice)."""
    fields = rule_fields(rules)
    out = []
    for source, hits in zip(sources, hits_by_input, strict=True):
        if hits or source.kind != "file" or source.error is not None or source.name == "-":
            continue
        found = look(source, fields)
        if found is not None:
            out.append(found)
    return out
