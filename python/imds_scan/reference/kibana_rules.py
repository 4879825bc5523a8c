"""new_terms and threshold rules, plainly (spec/kql.md, "Rule types"): the oracle that the
product matcher (``imds_scan.kibana_rules``) is tested against.

Every candidate stays in memory and the runs ``T = k·interval`` are enumerated one by one,
each doing what Kibana's executor does in one run (its range queries answered from the
events sorted by time, so an empty run costs a lookup): it is meant for modest inputs.
``memory_budget`` and ``spill_dir`` are accepted for the shared interface and not used.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..kibana_rules import (
    NO_TIME_EXAMPLES,
    TOTAL_HITS_LIMIT,
    Alert,
    Combination,
    Term,
    ThresholdResult,
    combinations,
    event_time,
    read_rule,
    term_json,
    terms_of,
)
from .event import event_document
from .sequence import compare_keys

Position = tuple[int, int]


@dataclass(frozen=True)
class _Timed:
    time: int
    position: Position
    ref: int
    combos: tuple[Combination, ...]
    cards: frozenset[Term]


class KibanaRuleMatcher:
    def __init__(
        self,
        rule_ir: str | Mapping[str, Any],
        memory_budget: int = 256 << 20,
        spill_dir: str | None = None,
    ) -> None:
        del memory_budget, spill_dir  # the oracle keeps everything in memory
        self.spec = read_rule(rule_ir)
        self._added: dict[Position, _Timed] = {}
        self._no_time: dict[Position, int] = {}  # events without a time: their refs

    def add(self, rank: int, line: int, event: str, ref: int) -> None:
        """The event's time, combinations and cardinality terms, kept by position."""
        position = (rank, line)
        known = self._added.get(position)
        known_ref = known.ref if known is not None else self._no_time.get(position)
        if known_ref is not None and known_ref <= ref:  # the same event again: one ref
            return
        spec = self.spec
        doc = event_document(event)
        time = event_time(doc, spec)
        if time is None:
            self._no_time[position] = ref
            return
        cards: frozenset[Term] = frozenset()
        if spec.cardinality is not None:
            cards = frozenset(terms_of(doc, spec.cardinality))
        combos = tuple(combinations(doc, spec.fields))
        self._added[position] = _Timed(time, position, ref, combos, cards)

    @property
    def no_time(self) -> int:
        return len(self._no_time)

    @property
    def no_time_refs(self) -> list[int]:
        return [self._no_time[p] for p in sorted(self._no_time)[:NO_TIME_EXAMPLES]]

    def _timed(self) -> list[_Timed]:
        return [e for _, e in sorted(self._added.items())]

    def _runs(self, events: list[_Timed]) -> range:
        """Every run whose window [T - from, T] can hold an event, one by one."""
        interval, start = self.spec.interval_ms, self.spec.from_ms
        low = min(e.time for e in events)
        high = max(e.time for e in events)
        first = -(-low // interval)
        last = (high + start) // interval
        return range(first * interval, last * interval + 1, interval)

    @staticmethod
    def _between(events: list[_Timed], low: int, high: int) -> list[_Timed]:
        """The events (sorted by time) with a time in [low, high]: a range query."""
        start = bisect.bisect_left(events, low, key=lambda e: e.time)
        return events[start : bisect.bisect_right(events, high, lo=start, key=lambda e: e.time)]

    def finish(self) -> Iterator[Alert]:
        events = sorted(self._timed(), key=lambda e: (e.time, e.position))
        if not events:
            return iter(())
        alerts = (
            self._new_terms(events) if self.spec.kind == "new_terms" else self._threshold(events)
        )

        def order(a: tuple[Combination, Alert], b: tuple[Combination, Alert]) -> int:
            if a[1].position != b[1].position:
                return -1 if a[1].position < b[1].position else 1
            return compare_keys(a[0], b[0]) or (a[1].run_ms > b[1].run_ms) - (
                a[1].run_ms < b[1].run_ms
            )

        alerts.sort(key=functools.cmp_to_key(order))
        return iter([alert for _, alert in alerts])

    # ------------------------------------------------------------ new_terms

    def _new_terms(self, events: list[_Timed]) -> list[tuple[Combination, Alert]]:
        spec = self.spec
        start, history = spec.from_ms, spec.history_window_ms
        first_time = min(e.time for e in events)
        single = len(spec.fields) == 1
        done: dict[tuple[Position, Combination], Alert] = {}
        with_combo: dict[Combination, list[_Timed]] = {}  # each combination's events, by time
        for e in events:
            for combo in e.combos:
                with_combo.setdefault(combo, []).append(e)
        for run in self._runs(events):
            # Phase 1: the combinations of the run's window [T - from, T].
            window = self._between(events, run - start, run)
            recent = {c for e in window for c in e.combos}
            for combo in recent:
                # Phase 2: first seen over [T - history, T]; new when after T - from.
                seen = self._between(with_combo[combo], run - history, run)
                first_seen = min(e.time for e in seen)
                if not first_seen > run - start:
                    continue
                # Phase 3: the earliest event with it (ties: position).
                event = min(
                    (e for e in window if combo in e.combos), key=lambda e: (e.time, e.position)
                )
                key = (event.position, combo)
                if key in done:
                    continue  # the same alert again (Kibana's alert id: event and terms)
                done[key] = Alert(
                    event.ref,
                    *event.position,
                    run,
                    warmup=run - history < first_time,
                    new_terms=tuple(term_json(t, single) for t in combo),
                )
        return [(combo, alert) for (_, combo), alert in done.items()]

    # ------------------------------------------------------------ threshold

    def _threshold(self, events: list[_Timed]) -> list[tuple[Combination, Alert]]:
        spec = self.spec
        start = spec.from_ms
        signal_history: dict[Combination, int] = {}  # terms -> last signalled event time
        out: list[tuple[Combination, Alert]] = []
        for run in self._runs(events):
            # Entries whose last time is not after T - from are dropped (getSignalHistory).
            signal_history = {c: last for c, last in signal_history.items() if last > run - start}
            # The run's query: the window, less every event an entry covers (its terms, time
            # up to its last), whatever bucket it would fall in.
            counted = [
                e
                for e in self._between(events, run - start, run)
                if not any(
                    combo in e.combos and e.time <= last for combo, last in signal_history.items()
                )
            ]
            buckets: dict[Combination, list[_Timed]] = {}
            for e in counted:
                for combo in e.combos:
                    buckets.setdefault(combo, []).append(e)
            created: dict[Combination, int] = {}
            for combo, members in buckets.items():
                count = len(members)
                if not spec.fields:
                    count = min(count, TOTAL_HITS_LIMIT)  # hits.total
                distinct = len({t for e in members for t in e.cards})
                if count < spec.value:
                    continue
                if spec.cardinality is not None and distinct < spec.cardinality_value:
                    continue
                last = max(members, key=lambda e: (e.time, e.position))
                result = ThresholdResult(
                    tuple((f.field, term_json(t)) for f, t in zip(spec.fields, combo, strict=True)),
                    count,
                    () if spec.cardinality is None else ((spec.cardinality.field, distinct),),
                    min(e.time for e in members),
                    last.time,
                )
                out.append((combo, Alert(last.ref, *last.position, run, threshold_result=result)))
                created[combo] = last.time
            signal_history.update(created)
        return out


__all__ = ["KibanaRuleMatcher"]
