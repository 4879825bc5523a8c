"""Hits as a Polars DataFrame with a stable schema (documented in docs/output.md)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import polars as pl

from ..filters import event_time
from ..reference.event import field_values, load_event
from .columns import COLUMNS, ECS_COLUMNS, MATCHED_COLUMNS

if TYPE_CHECKING:
    from ..records import Hit

# A field with several values (an array, or nested and dotted spellings) is joined with this,
# in document order; the exact values stay in `event`.
MULTI_VALUE_SEPARATOR = ", "

_TYPES: dict[str, pl.DataType] = {
    "string": pl.String(),
    "int64": pl.Int64(),
    "timestamp": pl.Datetime("us", "UTC"),
}
SCHEMA: pl.Schema = pl.Schema([(name, _TYPES[kind]) for name, kind in COLUMNS])


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
        if hit.events is None:
            columns["join_keys"].append(None)
            columns["event_count"].append(None)
            columns["events"].append(None)
        else:
            keys = list(hit.join_keys or ())
            columns["join_keys"].append(json.dumps(keys, ensure_ascii=False))
            present = [e for e in hit.events if e.event_text is not None]
            columns["event_count"].append(len(present))
            columns["events"].append(events_json(hit))
    return pl.DataFrame(columns, schema=SCHEMA)


def events_json(hit: Hit) -> str:
    """A result's ``events`` as its NDJSON record has them (each event's JSON text embedded),
    with names that are not UTF-8 shown as in the ``source`` column."""
    from ..records import SeqEvent, event_json

    parts = []
    for event in hit.events or ():
        if event.source is not None:
            event = SeqEvent(utf8_name(event.source), event.line, event.event_text)
        parts.append(event_json(event))
    return f"[{', '.join(parts)}]"
