"""Aggregates of the hits computed while they stream past (``--summary``, ``--report``): the
columns they read are gathered from the batches' frames, grouped every AGGREGATE_ROWS rows,
and the groups added to the running ones, so memory follows the number of distinct keys
(hosts, processes, days...), not the number of hits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import polars as pl

from .frame import hits_frame

if TYPE_CHECKING:
    from ..records import Hit

TS = "@timestamp"
# Grouped like the summary's sections: name -> grouping columns.
COUNTED: dict[str, tuple[str, ...]] = {
    "by_rule_branch": ("rule", "branch"),
    "by_host": ("host.name",),
    "by_process": ("process.name",),
    "by_user": ("user.name",),
}
# What the groups read (not the event text): what is kept until the next grouping.
_COLUMNS = (
    TS,
    "rule_id",
    "rule",
    "severity",
    "branch",
    "host.name",
    "process.name",
    "user.name",
    "process.command_line",
    "warmup",
)
# Rows gathered before they are grouped: grouping has a fixed cost per call, and few rows
# of the columns above are small.
AGGREGATE_ROWS = 65536
_SEEN = (
    pl.col("hits").sum().cast(pl.Int64),
    pl.col("first_seen").min(),
    pl.col("last_seen").max(),
)


def _partial(frame: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """One batch's groups (every count a column ``hits``)."""
    hits = pl.len().cast(pl.Int64).alias("hits")
    seen = (hits, pl.col(TS).min().alias("first_seen"), pl.col(TS).max().alias("last_seen"))
    parts = {name: frame.group_by(list(keys)).agg(*seen) for name, keys in COUNTED.items()}
    parts["by_day"] = frame.group_by(pl.col(TS).dt.date().alias("day")).agg(hits)
    parts["command_lines"] = (
        frame.filter(pl.col("process.command_line").is_not_null())
        .group_by("process.command_line")
        .agg(hits)
    )
    parts["by_severity"] = frame.group_by(["severity", "rule_id"]).agg(hits)
    # Hours are exact bins of days, weeks and years: the timeline rebins them.
    parts["by_hour"] = (
        frame.filter(pl.col(TS).is_not_null())
        .group_by(pl.col(TS).dt.truncate("1h").alias("bin"))
        .agg(hits)
    )
    parts["seen"] = frame.select(*seen)
    # new_terms alerts of warm-up runs (spec/kql.md).
    parts["warmup"] = frame.select(pl.col("warmup").fill_null(False).sum().cast(pl.Int64))
    return parts


def _combine(name: str, frame: pl.DataFrame) -> pl.DataFrame:
    if name == "seen":
        return frame.select(*_SEEN)
    if name == "warmup":
        return frame.select(pl.col("warmup").sum().cast(pl.Int64))
    keys = [c for c in frame.columns if c not in ("hits", "first_seen", "last_seen")]
    if "first_seen" in frame.columns:
        return frame.group_by(keys).agg(*_SEEN)
    return frame.group_by(keys).agg(pl.col("hits").sum().cast(pl.Int64))


class Aggregates:
    """Running aggregates of a hit stream, and its first ``keep`` hits as a frame (the HTML
    report's hit list)."""

    def __init__(self, keep: int = 0) -> None:
        self.keep = keep
        self.count = 0
        self.head = hits_frame([])
        self._parts = _partial(self.head)
        self._pending: list[pl.DataFrame] = []
        self._rows = 0

    @classmethod
    def of(cls, frame: pl.DataFrame, keep: int = 0) -> Aggregates:
        agg = cls(keep)
        agg.add_frame(frame)
        return agg

    def add(self, hits: Sequence[Hit]) -> pl.DataFrame:
        """Count a batch of hits; their frame (for a writer that needs it too)."""
        frame = hits_frame(hits)
        self.add_frame(frame)
        return frame

    def add_frame(self, frame: pl.DataFrame) -> None:
        if frame.is_empty():
            return
        self.count += len(frame)
        if len(self.head) < self.keep:
            self.head = pl.concat([self.head, frame.head(self.keep - len(self.head))])
        self._pending.append(frame.select(_COLUMNS))
        self._rows += len(frame)
        if self._rows >= AGGREGATE_ROWS:
            self._group()

    def _group(self) -> None:
        if not self._pending:
            return
        pending = pl.concat(self._pending)
        self._pending, self._rows = [], 0
        for name, part in _partial(pending).items():
            self._parts[name] = _combine(name, pl.concat([self._parts[name], part]))

    @property
    def parts(self) -> dict[str, pl.DataFrame]:
        """The groups of every hit added so far, by name (see :func:`_partial`)."""
        self._group()
        return self._parts

    def summaries(self, top: int = 10) -> dict[str, pl.DataFrame]:
        """The tables of :func:`imds_scan.report.summary.summaries`."""
        parts = self.parts
        out = {
            name: parts[name].sort(
                ["hits", *keys], descending=[True, *[False] * len(keys)], nulls_last=True
            )
            for name, keys in COUNTED.items()
        }
        out["by_day"] = parts["by_day"].sort("day", nulls_last=True)
        out["top_command_lines"] = (
            parts["command_lines"]
            .sort(["hits", "process.command_line"], descending=[True, False])
            .head(top)
        )
        out["seen"] = parts["seen"]
        out["warmup"] = parts["warmup"]
        return out
