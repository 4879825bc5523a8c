"""A stand-in for the new_terms/threshold matchers (spec/kql.md "Rule types", interface
``RuleMatcher``, ``Alert``, ``ThresholdResult`` of ``imds_scan.kibana_rules``) while that
module is not in main: the scan layer's tests
(tests/test_kql_scan.py, tests/test_report_kql.py) feed it through ``SequenceRun``'s
``alert_matcher`` hook. It follows the contract plainly (everything in memory, runs one by
one) for the small timelines of those tests, whose expected alerts any matcher of the contract
gives."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from imds_scan.reference.event import field_values, load_event
from imds_scan.timestamp import parse_event_time


@dataclass(frozen=True)
class StandInResult:
    terms: tuple[tuple[str, object], ...]
    count: int
    cardinality: tuple[tuple[str, int], ...]
    from_ms: int
    last_ms: int


@dataclass(frozen=True)
class StandInAlert:
    ref: int
    rank: int
    line: int
    run_ms: int
    warmup: bool = False
    new_terms: tuple[object, ...] | None = None
    threshold_result: StandInResult | None = None


@dataclass
class _Event:
    time: int
    rank: int
    line: int
    ref: int
    terms: list[tuple[str, ...]] = field(default_factory=list)
    card: set[str] = field(default_factory=set)


def _ms(value: str) -> int | None:
    if value.lstrip("-").isdigit():
        return int(value)
    moment = parse_event_time(value)
    return None if moment is None else int(moment.timestamp() * 1000)


class StandInMatcher:
    """No time: distinct positions, as the contract counts them."""

    def __init__(self, rule_ir_json: str, memory_budget: int = 0) -> None:
        ir = json.loads(rule_ir_json)
        self.kind = "new_terms" if "new_terms" in ir else "threshold"
        self.body = ir[self.kind]
        self.events: list[_Event] = []
        self.no_time = 0
        self.no_time_refs: list[int] = []
        self._no_time_at: list[tuple[int, int, int]] = []

    def _time(self, doc: dict[str, Any]) -> int | None:
        for name in (self.body["timestamp_field"], self.body.get("fallback_timestamp_field")):
            if name is None:
                continue
            values = [_ms(v) for v in field_values(doc, name.split("."))]
            if len(values) == 1 and values[0] is not None:
                return values[0]
        return None

    def add(self, rank: int, line: int, event: str, ref: int) -> None:
        doc = load_event(event)
        time = self._time(doc)
        if time is None:
            if all((r, n) != (rank, line) for r, n, _ in self._no_time_at):
                self.no_time += 1
                self._no_time_at.append((rank, line, ref))
            return
        per_field = [
            sorted(set(field_values(doc, f["field"].split(".")))) for f in self.body["fields"]
        ]
        terms = [tuple(c) for c in itertools.product(*per_field)]
        card: set[str] = set()
        for c in self.body.get("cardinality") or []:
            card |= set(field_values(doc, c["field"].split(".")))
        self.events.append(_Event(time, rank, line, ref, terms, card))

    def _runs(self) -> list[int]:
        interval, span = self.body["interval_ms"], self.body["from_ms"]
        runs: set[int] = set()
        for e in self.events:
            first = -(-e.time // interval) * interval
            runs.update(range(first, e.time + span + 1, interval))
        return sorted(runs)

    def finish(self) -> Iterator[StandInAlert]:
        self._no_time_at.sort()
        self.no_time_refs = [ref for _, _, ref in self._no_time_at[:5]]
        alerts = self._new_terms() if self.kind == "new_terms" else self._threshold()
        return iter([alert for _, alert in sorted(alerts, key=lambda a: a[0])])

    def _new_terms(self) -> list[tuple[Any, StandInAlert]]:
        span, history = self.body["from_ms"], self.body["history_window_ms"]
        first = min((e.time for e in self.events), default=0)
        seen: set[tuple[int, tuple[str, ...]]] = set()
        out = []
        for run in self._runs():
            window = sorted(
                (e for e in self.events if run - span < e.time <= run),
                key=lambda e: (e.time, e.rank, e.line),
            )
            for term in sorted({t for e in window for t in e.terms}):
                if any(
                    run - history <= e.time <= run - span and term in e.terms for e in self.events
                ):
                    continue  # seen in the history (its end included: strictly new)
                hit = next(e for e in window if term in e.terms)
                if (hit.ref, term) in seen:
                    continue
                seen.add((hit.ref, term))
                warmup = run - history < first
                alert = StandInAlert(hit.ref, hit.rank, hit.line, run, warmup, term)
                out.append(((hit.rank, hit.line, term), alert))
        return out

    def _threshold(self) -> list[tuple[Any, StandInAlert]]:
        span, value = self.body["from_ms"], self.body["value"]
        names = [f["field"] for f in self.body["fields"]]
        done: dict[tuple[str, ...], int] = {}
        out = []
        for run in self._runs():
            buckets: dict[tuple[str, ...], list[_Event]] = {}
            for e in self.events:
                if not run - span <= e.time <= run:
                    continue
                for term in e.terms:
                    if e.time > done.get(term, -(1 << 62)):
                        buckets.setdefault(term, []).append(e)
            for term, events in sorted(buckets.items()):
                if len(events) < value:
                    continue
                cards = self.body.get("cardinality") or []
                cardinality: tuple[tuple[str, int], ...] = ()
                if cards:
                    distinct = len(set().union(*(e.card for e in events)))
                    if distinct < cards[0]["value"]:
                        continue
                    cardinality = ((cards[0]["field"], distinct),)
                last = max(events, key=lambda e: (e.time, e.rank, e.line))
                terms = tuple(zip(names, term, strict=True))
                first = min(e.time for e in events)
                result = StandInResult(terms, len(events), cardinality, first, last.time)
                done[term] = last.time
                out.append(
                    (
                        (last.rank, last.line, term),
                        StandInAlert(last.ref, last.rank, last.line, run, False, None, result),
                    )
                )
        return out
