"""The hits frame's columns (docs/output.md), without Polars: ``frame.SCHEMA`` and the
Parquet writer's Arrow schema are both made from this list, so writing Parquet from the
engine's Arrow rows imports no Polars."""

from __future__ import annotations

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

# (name, type) in column order; the types: "string", "int64", "timestamp" (microseconds, UTC),
# "bool".
COLUMNS: tuple[tuple[str, str], ...] = (
    ("source", "string"),
    ("line", "int64"),
    ("@timestamp", "timestamp"),
    ("rule_id", "string"),
    ("rule", "string"),
    ("severity", "string"),
    ("branch", "string"),
    *((name, "string") for name in MATCHED_COLUMNS),
    *((name, "string") for name in ECS_COLUMNS),
    ("event", "string"),
    # A sequence or sample result's (null for a single-event hit): its join key values and
    # its events (the NDJSON record's, as JSON text) and how many of them are present.
    ("join_keys", "string"),
    ("event_count", "int64"),
    ("events", "string"),
    # A new_terms or threshold alert's (null for any other hit): its new_terms values (JSON
    # array), its run, whether that run is a warm-up (new_terms), its threshold_result (JSON).
    ("new_terms", "string"),
    ("run", "timestamp"),
    ("warmup", "bool"),
    ("threshold_result", "string"),
)
# The columns only Python fills (alerts of new_terms and threshold rules, which never come
# from the engine's rows): null in the engine's rows, added when they lack them.
ALERT_COLUMNS = ("new_terms", "run", "warmup", "threshold_result")
