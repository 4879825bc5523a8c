"""What a scan found, whichever engine or cluster found it: hits, per-input statistics, the
scan's statistics (shared by the engines' adapter, the cluster, reporting and the Python API)."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .reference.event import load_event
from .rules import Rule
from .stats import FileStats

if TYPE_CHECKING:
    from .shape import NotEcs


@dataclass(frozen=True)
class SeqEvent:
    """One stage's event of a sequence or sample result; all None for a missing-event stage
    (spec/sequences.md, Output)."""

    source: str | None
    line: int | None
    event_text: str | None


@dataclass(frozen=True)
class Hit:
    source: str
    line: int
    rule: Rule
    branch: str
    matched: dict[str, str] | None
    event_text: str
    # A sequence or sample result (branch "sequence"/"sample"): its events in stage order and
    # its join key values; None for a single-event hit. source/line/event_text: the first
    # event that is not missing.
    events: tuple[SeqEvent, ...] | None = None
    join_keys: tuple[object, ...] | None = None
    # A new_terms or threshold alert (branch "new_terms"/"threshold", spec/kql.md Output):
    # its run (ISO 8601 UTC, milliseconds); a new_terms alert's values (in field order) and
    # whether its run is a warm-up; a threshold alert's result. None for any other hit.
    # source/line/event_text: the alert's event (a threshold bucket's last event).
    run: str | None = None
    new_terms: tuple[object, ...] | None = None
    warmup: bool | None = None
    threshold_result: dict[str, Any] | None = field(default=None, hash=False)

    @property
    def event(self) -> dict[str, Any]:
        doc: dict[str, Any] = load_event(self.event_text, numbers_as_text=False)
        return doc

    def to_json(self) -> str:
        """One NDJSON record; the event is embedded as the original JSON text. A result also
        has ``join_keys`` and ``events`` (each event embedded likewise). The text is what
        ``json.dumps`` of the record's fields writes (``ensure_ascii=False``)."""
        parts: list[str] = []
        self.record_parts(parts)
        return "".join(parts)

    def record_parts(self, out: list[str]) -> None:
        """Append the pieces of :meth:`to_json`'s text to ``out`` (a batch's records are
        joined once)."""
        events = None
        if self.events is not None:
            events = [(e.source, e.line, e.event_text) for e in self.events]
        alert = None if self.run is None else alert_json_fields(self)[1:-1]
        record_parts(
            out,
            (self.source, self.line, self.event_text),
            (self.rule, self.branch, self.matched),
            events,
            self.join_keys,
            alert,
        )


# A result's event: (input, line, event text); all None for a missing-event stage.
RawEvent = tuple[str | None, int | None, str | None]


def record_parts(
    out: list[str],
    where: tuple[str, int, str],
    what: tuple[Rule, str, dict[str, str] | None],
    events: Sequence[RawEvent] | None = None,
    join_keys: tuple[object, ...] | None = None,
    alert: str | None = None,
) -> None:
    """Append the pieces of a record (:meth:`Hit.to_json`) to ``out``: ``where`` the hit's
    (input, line, event text), ``what`` its (rule, branch, matched); a result's ``events``
    and ``join_keys``; an alert's own fields (``alert``: a JSON object's text, unbraced). The
    names repeat on every record: their JSON is remembered."""
    (source, line, event_text), (rule, branch, matched) = where, what
    matched_json = "null" if matched is None else json.dumps(matched, ensure_ascii=False)
    out += (
        f'{{"source": {name_json(source)}, "line": {int.__repr__(line)}',
        record_labels(rule, branch, matched_json),
    )
    if events is not None:
        out.append(f', "join_keys": {_keys_json(join_keys or ())}, "events": [')
        for k, event in enumerate(events):
            if k:
                out.append(", ")
            _event_parts(out, event)
        out.append("]")
    if alert is not None:
        out.append(f", {alert}")
    out += (', "event": ', event_text.strip(), "}")


def record_labels(rule: Rule, branch: str, matched_json: str = "null") -> str:
    """A record's part after its line number: ``, "rule": …, "matched": …``."""
    return (
        f', "rule": {name_json(rule.name)}, "rule_id": {name_json(rule.id)}, '
        f'"severity": {name_json(rule.severity)}, "branch": {name_json(branch)}, '
        f'"matched": {matched_json}'
    )


def _keys_json(keys: tuple[object, ...]) -> str:
    """Join key values as ``json.dumps`` of their list writes them; strings remembered (a
    host's or a user's keys repeat on its results)."""
    if all(type(key) is str for key in keys):
        return _strings_json(keys)
    return json.dumps(list(keys), ensure_ascii=False)


@functools.lru_cache(maxsize=4096)
def _strings_json(keys: tuple[str, ...]) -> str:
    return json.dumps(list(keys), ensure_ascii=False)


@functools.lru_cache(maxsize=4096)
def name_json(value: str | None) -> str:
    """A value as ``json.dumps`` writes it (not ASCII-escaped), remembered: inputs' and rules'
    names are written on every record."""
    return json.dumps(value, ensure_ascii=False)


def alert_fields(hit: Hit) -> dict[str, Any]:
    """A new_terms or threshold alert's own fields, in the NDJSON record's order (empty for
    any other hit): ``new_terms``, ``run``, ``warmup``; or ``run``, ``threshold_result``."""
    if hit.run is None:
        return {}
    if hit.branch == "threshold":
        return {"run": hit.run, "threshold_result": hit.threshold_result}
    return {"new_terms": list(hit.new_terms or ()), "run": hit.run, "warmup": bool(hit.warmup)}


def alert_json_fields(hit: Hit) -> str:
    """:func:`alert_fields` as a JSON object's text."""
    return json.dumps(alert_fields(hit), ensure_ascii=False)


def iso_ms(epoch_ms: int) -> str:
    """Epoch milliseconds as ISO 8601 UTC with milliseconds (``2024-05-01T10:15:00.000Z``);
    four-digit years, as Elasticsearch writes a date. Outside years 1-9999: the number."""
    try:
        moment = _EPOCH + timedelta(milliseconds=epoch_ms)
    except OverflowError:
        return str(epoch_ms)
    return f"{moment.year:04d}{moment.strftime('-%m-%dT%H:%M:%S')}.{epoch_ms % 1000:03d}Z"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def event_json(event: SeqEvent) -> str:
    """A result's event as its NDJSON record writes it (the event's JSON text embedded)."""
    parts: list[str] = []
    _event_parts(parts, (event.source, event.line, event.event_text))
    return "".join(parts)


def _event_parts(out: list[str], event: RawEvent) -> None:
    source, line, text = event
    if text is None:
        out.append('{"missing": true, "source": null, "line": null, "event": null}')
        return
    line_json = "null" if line is None else int.__repr__(line)
    out += (f'{{"source": {name_json(source)}, "line": {line_json}, "event": ', text.strip(), "}")


@dataclass
class FileResult(FileStats):
    """One input's statistics, under the name it was given."""

    path: str


@dataclass(frozen=True)
class AllowlistDrops:
    """What one rule's allowlist dropped: (entry label, events) for every entry, in the
    attribution order, and the hits the rule still made (before --since/--until)."""

    rule_id: str
    entries: list[tuple[str, int]]
    hits: int

    @property
    def dropped(self) -> int:
        return sum(count for _, count in self.entries)


@dataclass
class ScanStats:
    files: list[FileResult]
    elapsed: float
    engine: str
    # Hits the engine found that --since/--until then dropped (not in ``FileResult.hits``).
    outside_time_window: int = 0
    # (path, reason) of what input expansion left out, e.g. a directory symlink loop.
    skipped: list[tuple[str, str]] = field(default_factory=list)
    # True when Ctrl-C stopped the scan: the results cover what was read until then.
    interrupted: bool = False
    # Per rule with an allowlist: what each entry dropped (set by ``scan``).
    allowlist: list[AllowlistDrops] = field(default_factory=list)
    # Local inputs without hits whose first events carry no field the rules read (``scan``).
    not_ecs: list[NotEcs] = field(default_factory=list)
    # --max-hits stopped the scan at this hit (its input and line).
    stopped_at: tuple[str, int] | None = None
    # Sequence and sample stage candidates left out for want of a parsable time (counted per
    # rule they are a candidate of), and the first few of them (input, line).
    no_time: int = 0
    no_time_examples: list[tuple[str, int]] = field(default_factory=list)
    # new_terms and threshold rules (spec/kql.md): alerts per rule id (in load order), those
    # of warm-up runs, and matching events left out for want of a time (counted per rule)
    # with the first few of them (input, line).
    alerts: dict[str, int] = field(default_factory=dict)
    warmup_alerts: int = 0
    kql_no_time: int = 0
    kql_no_time_examples: list[tuple[str, int]] = field(default_factory=list)

    def total(self, name: str) -> int:
        return sum(getattr(f, name) for f in self.files)

    @property
    def errors(self) -> list[FileResult]:
        return [f for f in self.files if f.error is not None]

    @property
    def mb_per_s(self) -> float:
        return self.total("bytes") / 1e6 / self.elapsed if self.elapsed > 0 else 0.0
