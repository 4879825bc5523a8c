"""Aggregations over the hits frame (``--summary`` on stderr, and the HTML report's tables)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime

import polars as pl

from ..output import DISPLAY_LIMIT, clip, iso_second
from .aggregate import Aggregates

TS = "@timestamp"
# The summary's sections, in print order: name -> (title, grouping columns).
GROUPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "by_rule_branch": ("hits by rule and branch", ("rule", "branch")),
    "by_host": ("hits by host", ("host.name",)),
    "by_process": ("hits by process.name", ("process.name",)),
    "by_user": ("hits by user", ("user.name",)),
}


def summaries(frame: pl.DataFrame | Aggregates, top: int = 10) -> dict[str, pl.DataFrame]:
    """Every aggregation, keyed by name: ``by_rule_branch``, ``by_host``, ``by_process``,
    ``by_user`` (hits, first_seen, last_seen; most hits first, a null key is its own group),
    ``by_day`` (day, hits; a null day gathers hits without a parsable @timestamp),
    ``top_command_lines`` (the ``top`` most frequent process.command_line values; ties by
    text) and ``seen`` (one row: hits, first_seen, last_seen). Days are UTC. ``frame``: the
    hits frame, or the aggregates of a stream of hits."""
    agg = frame if isinstance(frame, Aggregates) else Aggregates.of(frame)
    return agg.summaries(top)


def cell(value: object, width: int = DISPLAY_LIMIT) -> str:
    """A value for display: null as ``-``, times in ISO 8601 UTC to the second (years of 4
    digits), control characters escaped, cut to ``width`` characters with a marker counting
    the rest (``…[+N chars]``; 0 = whole)."""
    if value is None:
        return "-"
    if isinstance(value, datetime):
        value = iso_second(value)
    elif isinstance(value, date):
        value = value.isoformat()
    return clip(str(value), width)


_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}


def severity_rows(
    frame: pl.DataFrame | Aggregates, why: Mapping[str, str], width: int = 0
) -> list[tuple[int, str]]:
    """(hits, "severity  rule_id: why") per rule, most severe first: which class each
    finding is in, and the rule's own description of what puts it there."""
    agg = frame if isinstance(frame, Aggregates) else Aggregates.of(frame)
    counted = agg.parts["by_severity"]
    rows = sorted(
        counted.iter_rows(named=True),
        key=lambda r: (_RANK.get(r["severity"] or "", 9), r["rule_id"] or ""),
    )
    out = []
    for r in rows:
        reason = why.get(r["rule_id"] or "", "")
        label = f"{r['severity'] or 'unset':<8}  {r['rule_id']}" + (f": {reason}" if reason else "")
        out.append((r["hits"], cell(label, width)))
    return out


def format_summaries(
    frame: pl.DataFrame | Aggregates,
    top: int = 10,
    width: int = 100,
    why: Mapping[str, str] | None = None,
) -> str:
    """The summary as plain text for stderr (log content escaped, long values cut).
    ``why``: rule_id -> what the rule's hits mean (the first sentence of its description).
    ``frame``: the hits frame, or the aggregates of a stream of hits."""
    agg = frame if isinstance(frame, Aggregates) else Aggregates.of(frame)
    if not agg.count:
        return "summary: no hits"
    tables = summaries(agg, top=top)
    lines: list[str] = []

    def section(title: str, rows: list[tuple[int, str]]) -> None:
        lines.append(f"{title}:")
        lines.extend(f"  {hits:>7,}  {label}" for hits, label in rows)

    section("hits by severity (why)", severity_rows(agg, why or {}, width + 100))

    for name, (title, keys) in GROUPS.items():
        rows = tables[name].head(top).iter_rows(named=True)
        section(
            title if len(tables[name]) <= top else f"{title} (top {top} of {len(tables[name])})",
            [(r["hits"], " / ".join(cell(r[k], width) for k in keys)) for r in rows],
        )
    section(
        "hits by day (UTC)",
        [
            (r["hits"], "no @timestamp" if r["day"] is None else cell(r["day"]))
            for r in tables["by_day"].iter_rows(named=True)
        ],
    )
    if not tables["top_command_lines"].is_empty():  # no heading over nothing
        section(
            "top command lines",
            [
                (r["hits"], cell(r["process.command_line"], width))
                for r in tables["top_command_lines"].iter_rows(named=True)
            ],
        )
    seen = tables["seen"].row(0, named=True)
    lines.append(f"first seen: {cell(seen['first_seen'])}  last seen: {cell(seen['last_seen'])}")
    warmup = tables["warmup"].item()
    if warmup:
        lines.append(f"new_terms alerts of warm-up runs: {warmup:,}")
    return "\n".join(lines)
