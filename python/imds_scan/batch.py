"""A batch of hits as it travels from an engine to the writers: built from what the engine
was asked for (Hit objects, NDJSON records, Arrow rows, ECS alert documents), each other form
made only when asked (from the Hit objects), so the common path builds no Python object per
hit."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

    from .records import Hit
    from .stats import EngineHit

# What a consumer reads from the batches; the stream asks the engine for these only.
HITS, RECORDS, FRAME, ALERTS = "hits", "records", "frame", "alerts"
Needs = frozenset[str]


def hit_records(hits: Sequence[Hit]) -> bytes:
    """The NDJSON lines of ``hits`` (each ending in ``\\n``), as ``Hit.to_json`` writes them,
    in UTF-8; a lone surrogate (a file name that is not UTF-8) becomes its JSON escape."""
    parts: list[str] = []
    for hit in hits:
        hit.record_parts(parts)
        parts.append("\n")
    return "".join(parts).encode("utf-8", "backslashreplace")


def cut_records(records: bytes, start: int, stop: int) -> bytes:
    """Records ``start`` to ``stop`` of an NDJSON block (no record holds a raw newline)."""
    if start == 0:
        parts = records.split(b"\n", stop)
        return b"".join(part + b"\n" for part in parts[:stop]) if stop else b""
    lines = records.split(b"\n")[start:stop]
    return b"".join(line + b"\n" for line in lines)


@dataclass(frozen=True)
class RawHits:
    """The engine's hit tuples behind a batch (input index into ``inputs``, line, engine rule
    index, branch, witness, event text) and ``make``, which turns some of them into Hits: a
    consumer that wants only some hits (the sequence matchers' stage hits are most of them)
    reads the tuples and builds no Hit for the others."""

    tuples: Sequence[EngineHit]
    inputs: Sequence[str]
    make: Callable[[Sequence[EngineHit]], list[Hit]]

    def take(self, keep: Sequence[int]) -> RawHits:
        return RawHits([self.tuples[i] for i in keep], self.inputs, self.make)


class HitBatch:
    """Hits in scan order (input, then line, then rule). ``count``, ``rule_counts`` (hits per
    rule index, as the engine gave them; None for a batch cut from another, or whose hits
    another batch counted) and
    ``position(k)`` (input, line of hit ``k``) are always there; ``hits`` (Hit objects),
    ``records`` (NDJSON bytes, byte for byte ``Hit.to_json`` lines in UTF-8) and ``frame``
    (``report.frame.hits_frame``'s DataFrame) are built on first use: from the engine's own
    form when it gave one, else from the Hit objects; ``alerts`` are the engine's ECS alert
    documents (UTF-8, one line per hit) when it gave them, else None (the writer builds
    them from the Hit objects). A batch without Hit objects (the engine
    was not asked for them) raises LookupError for what it cannot build. ``outside``: the hits
    the engine left out of this stretch of the scan as outside the time window (counted in
    ``rule_counts``; a batch may have only those). The engine's records, alerts and rows
    may come as memoryviews of its own buffers: writers take them as they are
    (``records_data``, ``alerts_data``, ``ipc_rows``), ``records`` and ``alerts`` copy them
    into bytes once, for the slicing and splitting done on a few paths."""

    def __init__(
        self,
        count: int,
        *,
        hits: Sequence[Hit] | Callable[[], Sequence[Hit]] | None = None,
        records: bytes | memoryview | Callable[[], bytes] | None = None,
        rows: bytes | memoryview | Sequence[bytes] | None = None,
        frame: pl.DataFrame | None = None,
        rule_counts: Sequence[int] | None = None,
        position: Callable[[int], tuple[str, int]] | None = None,
        outside: int = 0,
        raw: RawHits | None = None,
        alerts: bytes | memoryview | None = None,
    ) -> None:
        self.count = count
        self._alerts = alerts
        self.raw = raw
        self.outside = outside
        self._hits = hits
        self._records = records
        self._rows = rows
        self._frame = frame
        self.rule_counts = rule_counts
        self._position = position

    @classmethod
    def of(cls, hits: Sequence[Hit], rule_counts: Sequence[int] | None = None) -> HitBatch:
        """A batch of Hit objects (the reference engine, a fallback)."""
        return cls(len(hits), hits=hits, rule_counts=rule_counts)

    def __len__(self) -> int:
        return self.count

    @property
    def has_hits(self) -> bool:
        return self._hits is not None

    @property
    def hits(self) -> Sequence[Hit]:
        if callable(self._hits):
            self._hits = self._hits()
        if self._hits is None:
            if not self.count:
                return []
            raise LookupError("this batch carries no Hit objects (the engine was not asked)")
        return self._hits

    @property
    def records(self) -> bytes:
        if callable(self._records):
            self._records = self._records()
        if self._records is None:
            self._records = hit_records(self.hits)
        elif isinstance(self._records, memoryview):
            self._records = self._records.tobytes()
        return self._records

    @property
    def records_data(self) -> bytes | memoryview:
        """``records`` as the engine gave them (its buffer, uncopied), or built."""
        if self._records is None or callable(self._records):
            return self.records
        return self._records

    @property
    def alerts(self) -> bytes | None:
        if isinstance(self._alerts, memoryview):
            self._alerts = self._alerts.tobytes()
        return self._alerts

    @property
    def alerts_data(self) -> bytes | memoryview | None:
        """``alerts`` as the engine gave them (its buffer, uncopied)."""
        return self._alerts

    @property
    def frame(self) -> pl.DataFrame:
        if self._frame is None:
            if self._rows is not None:
                self._frame = _read_rows(self._rows)
            else:
                from .report.frame import hits_frame

                self._frame = hits_frame(self.hits)
        return self._frame

    @property
    def ipc_rows(self) -> bytes | memoryview | Sequence[bytes] | None:
        """The engine's rows as Arrow IPC stream(s), None when it gave none: a writer of
        Arrow reads them directly, with no Polars frame."""
        return self._rows

    def position(self, k: int) -> tuple[str, int]:
        """The input and line of hit ``k``."""
        if self._position is not None:
            return self._position(k)
        if self._hits is not None:
            hit = self.hits[k]
            return hit.source, hit.line
        if self._frame is not None or self._rows is not None:
            row = self.frame.row(k, named=True)
            return row["source"], row["line"]
        line = cut_records(self.records, k, k + 1)
        head = json.loads(line)
        return head["source"], head["line"]

    def head(self, k: int) -> HitBatch:
        """The first ``k`` hits, in whatever forms this batch has (nothing is built)."""
        return self if k >= self.count else self._part(0, k)

    def take(self, keep: Sequence[int]) -> HitBatch:
        """The hits at the indexes ``keep`` (ascending), in the forms this batch has."""
        if len(keep) == self.count:
            return self
        raw = None
        if callable(self._hits) and self.raw is not None:  # Hits of the kept tuples only
            raw = self.raw.take(keep)
            chosen: Sequence[Hit] | Callable[[], Sequence[Hit]] = partial(raw.make, raw.tuples)
        else:
            hits = self.hits
            chosen = [hits[i] for i in keep]
        records = frame = alerts = None
        if self._records is not None:
            lines = self.records.split(b"\n")
            records = b"".join(lines[i] + b"\n" for i in keep)
        if self.alerts is not None:
            lines = self.alerts.split(b"\n")
            alerts = b"".join(lines[i] + b"\n" for i in keep)
        if self._frame is not None or self._rows is not None:
            frame = self.frame[list(keep)]
        return HitBatch(
            len(keep), hits=chosen, records=records, frame=frame, raw=raw, alerts=alerts
        )

    def _part(self, start: int, stop: int) -> HitBatch:
        hits: Sequence[Hit] | Callable[[], Sequence[Hit]] | None = None
        if self._hits is not None:
            whole = self.hits
            hits = whole[start:stop]
        records = None if self._records is None else cut_records(self.records, start, stop)
        alerts = None if self.alerts is None else cut_records(self.alerts, start, stop)
        frame = None
        if self._frame is not None or self._rows is not None:
            frame = self.frame.slice(start, stop - start)
        position = None
        if self._position is not None:
            parent = self._position
            position = lambda k: parent(start + k)  # noqa: E731
        return HitBatch(
            stop - start,
            hits=hits,
            records=records,
            frame=frame,
            position=position,
            alerts=alerts,
        )

    def slice(self, start: int, stop: int) -> HitBatch:
        """Hits ``start`` to ``stop``, in the forms this batch has."""
        stop = min(stop, self.count)
        return self if (start, stop) == (0, self.count) else self._part(start, stop)


def _read_rows(rows: bytes | memoryview | Sequence[bytes]) -> pl.DataFrame:
    """Arrow IPC stream(s) from the engine as one hits frame."""
    import polars as pl

    from .report.frame import with_alert_columns

    if isinstance(rows, memoryview):  # read from a BytesIO: faster than from bytes
        return with_alert_columns(pl.read_ipc_stream(io.BytesIO(rows)))
    if isinstance(rows, bytes):
        return with_alert_columns(pl.read_ipc_stream(rows))
    return with_alert_columns(pl.concat([pl.read_ipc_stream(part) for part in rows]))
