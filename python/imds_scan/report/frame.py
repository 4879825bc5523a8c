"""Hits as a Polars DataFrame with a stable schema (documented in docs/output.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import polars as pl

from ..filters import event_time
from ..reference.event import field_values, load_event

if TYPE_CHECKING:
    from ..records import Hit

# ECS fields copied from the event into their own columns, in column order.
ECS_COLUMNS = (
    "host.name",
    "user.name",
    "process.name",
    "process.executable",
    "process.command_line",
    "process.parent.name",
    "destination.ip",
    "destination.address",
    "url.domain",
)
MATCHED_COLUMNS = ("matched.field", "matched.op", "matched.pattern", "matched.value")
# A field with several values (an array, or nested and dotted spellings) is joined with this,
# in document order; the exact values stay in `event`.
MULTI_VALUE_SEPARATOR = ", "

_STRING: pl.DataType = pl.String()
SCHEMA: pl.Schema = pl.Schema(
    [
        ("source", _STRING),
        ("line", pl.Int64()),
        ("@timestamp", pl.Datetime("us", "UTC")),
        ("rule_id", _STRING),
        ("rule", _STRING),
        ("severity", _STRING),
        ("branch", _STRING),
        *((name, _STRING) for name in MATCHED_COLUMNS),
        *((name, _STRING) for name in ECS_COLUMNS),
        ("event", _STRING),
    ]
)


def _joined(doc: dict[str, Any], path: str) -> str | None:
    values = list(field_values(doc, path.split(".")))
    return MULTI_VALUE_SEPARATOR.join(values) if values else None


def utf8_name(name: str) -> str:
    """A file name as UTF-8 text: a name that is not UTF-8 (os.fsdecode's surrogates) shows
    its other bytes as ``\\xff`` (a frame holds UTF-8 only; NDJSON keeps the exact name)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return name


def hits_frame(hits: Sequence[Hit]) -> pl.DataFrame:
    """One row per hit, in hit order. Missing fields are null; ``event`` is the JSON text."""
    columns: dict[str, list[object]] = {name: [] for name in SCHEMA}
    for hit in hits:
        doc = load_event(hit.event_text)
        columns["source"].append(utf8_name(hit.source))
        columns["line"].append(hit.line)
        columns["@timestamp"].append(event_time(doc))
        columns["rule_id"].append(hit.rule.id)
        columns["rule"].append(hit.rule.name)
        columns["severity"].append(hit.rule.severity)
        columns["branch"].append(hit.branch)
        for name in MATCHED_COLUMNS:
            key = name.removeprefix("matched.")
            columns[name].append(None if hit.matched is None else hit.matched[key])
        for name in ECS_COLUMNS:
            columns[name].append(_joined(doc, name))
        columns["event"].append(hit.event_text.strip())
    return pl.DataFrame(columns, schema=SCHEMA)
