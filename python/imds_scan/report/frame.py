"""Hits as a Polars DataFrame with a stable schema (documented in docs/output.md)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import polars as pl

from ..filters import event_time
from ..records import alert_fields
from ..reference.event import field_values, load_event
from .columns import ALERT_COLUMNS, COLUMNS, ECS_COLUMNS, MATCHED_COLUMNS

if TYPE_CHECKING:
    from ..records import Hit

# A field with several values (an array, or nested and dotted spellings) is joined with this,
# in document order; the exact values stay in `event`.
MULTI_VALUE_SEPARATOR = ", "

_TYPES: dict[str, pl.DataType] = {
    "string": pl.String(),
    "int64": pl.Int64(),
    "timestamp": pl.Datetime("us", "UTC"),
    "bool": pl.Boolean(),
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
        if hit.run is None:
            for name in ALERT_COLUMNS:
                columns[name].append(None)
        else:
            kibana = alert_fields(hit)
            terms = kibana.get("new_terms")
            columns["new_terms"].append(None if terms is None else _json(terms))
            columns["run"].append(datetime.fromisoformat(hit.run) if hit.run[0].isdigit() else None)
            columns["warmup"].append(kibana.get("warmup"))
            result = kibana.get("threshold_result")
            columns["threshold_result"].append(None if result is None else _json(result))
    return pl.DataFrame(columns, schema=SCHEMA)


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def with_alert_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """A frame of the engine's rows with the alert columns it lacks (null), in SCHEMA's
    order: no engine row is an alert."""
    missing = [name for name in ALERT_COLUMNS if name not in frame.columns]
    if not missing:
        return frame
    nulls = [pl.lit(None, dtype=SCHEMA[name]).alias(name) for name in missing]
    return frame.with_columns(nulls).select(list(SCHEMA))


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
