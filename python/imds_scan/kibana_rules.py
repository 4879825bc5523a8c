"""Kibana's new_terms and threshold rule types over an archive (spec/kql.md, "Rule types"):
the product matcher, and what both matchers share (the rule's IR read, an event's time and
term values, :class:`Alert`).

The scan layer feeds a matcher each event that holds the rule's query (``add``) and takes the
alerts when the scan ends (``finish``). Runs ``T = k·interval`` are emulated on the archive's
own clock without looping over empty runs: candidates are reduced to small records, sorted
(with sorted runs spilled to disk past the memory budget and merged), and each rule type is
decided in one pass over them. ``reference/kibana_rules.py`` is the plain oracle.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import json
import pickle
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any, Protocol

from .reference.event import _items, _objects, event_document, flat_text
from .reference.sequence import compare_keys, key_json
from .reference.typed import (
    FLOAT_TYPES,
    INTEGER_RANGES,
    Date,
    Ip,
    Typed,
    java_lowercase,
    read_value,
    utf16_len,
)

KINDS = ("new_terms", "threshold")
# Elasticsearch counts a search's hits exactly up to this many (track_total_hits' default):
# the count of a threshold rule without fields is its hits.total, so never more.
TOTAL_HITS_LIMIT = 10_000
NO_TIME_EXAMPLES = 5
_TERM_TYPES = frozenset(
    {"keyword", "wildcard", "ip", "date", "boolean", *INTEGER_RANGES, *FLOAT_TYPES}
)

# A term: (field type, typed value). A combination: one term per field, in field order.
Term = tuple[str, Typed]
Combination = tuple[Term, ...]


# ---------------------------------------------------------------- alerts


@dataclass(frozen=True)
class ThresholdResult:
    """Kibana's ``threshold_result`` of one alerting bucket in one run."""

    terms: tuple[
        tuple[str, object], ...
    ]  # (field, value as Elasticsearch's bucket key), field order
    count: int  # the bucket's events in the run (not counted before)
    cardinality: tuple[tuple[str, int], ...]  # ((field, distinct values),) when the rule sets it
    from_ms: int  # the bucket's first event time
    last_ms: int  # its last event time (Kibana's alert @timestamp / original_time)


@dataclass(frozen=True)
class Alert:
    """One alert, as the matchers yield it (spec/kql.md, "Rule types", Alert).

    ``ref``/``rank``/``line``: the alert's event (new_terms: the event that brought the new
    combination; threshold: the bucket's last event, latest time then latest position) as the
    caller gave it to ``add``. ``run_ms``: the run T (epoch milliseconds) that created the
    alert (the first, when overlapping runs would create it again). ``warmup``: new_terms
    only, the run's history window starts before the rule's first candidate time.
    ``new_terms``: the combination's values in field order (new_terms), else None;
    ``threshold_result``: threshold only."""

    ref: int
    rank: int
    line: int
    run_ms: int
    warmup: bool = False
    new_terms: tuple[object, ...] | None = None
    threshold_result: ThresholdResult | None = None

    @property
    def position(self) -> tuple[int, int]:
        return (self.rank, self.line)


class RuleMatcher(Protocol):
    """Both matchers' interface. ``no_time``/``no_time_refs``: events without a usable time
    (distinct positions; the refs of the first 5 by position), final once every event is
    added."""

    @property
    def no_time(self) -> int: ...

    @property
    def no_time_refs(self) -> list[int]: ...

    def add(self, rank: int, line: int, event: str, ref: int) -> None: ...

    def finish(self) -> Iterator[Alert]: ...


# ---------------------------------------------------------------- the rule's IR


class KibanaRuleIRError(ValueError):
    """A new_terms or threshold IR document the matcher cannot run."""


def _bad(what: str) -> KibanaRuleIRError:
    return KibanaRuleIRError(f"bad new_terms/threshold IR: {what}")


@dataclass(frozen=True)
class TermField:
    """A field whose values are terms (an aggregation's source), read as Elasticsearch indexed
    them: ``ignore_above`` and ``normalizer`` apply to keyword fields."""

    field: str
    field_type: str
    ignore_above: int | None = None
    normalizer: str | None = None

    @property
    def parts(self) -> list[str]:
        return self.field.split(".")


@dataclass(frozen=True)
class RuleSpec:
    kind: str  # "new_terms" or "threshold"
    timestamp_field: str
    fallback_timestamp_field: str | None
    interval_ms: int
    from_ms: int
    fields: tuple[TermField, ...]
    history_window_ms: int = 0  # new_terms
    value: int = 1  # threshold: the count an alert needs
    cardinality: TermField | None = None  # threshold: Kibana uses the first entry only
    cardinality_value: int = 0


def _positive(body: Mapping[str, Any], name: str, minimum: int = 1) -> int:
    got = body.get(name)
    if type(got) is not int or got < minimum:
        raise _bad(f"{name} must be an integer >= {minimum}")
    return got


def _term_field(value: Any, where: str) -> TermField:
    if not isinstance(value, dict) or not isinstance(value.get("field"), str):
        raise _bad(f"{where}: expected {{field, field_type}}")
    field_type = value.get("field_type")
    if field_type not in _TERM_TYPES:
        # text: Elasticsearch refuses to aggregate it (no doc values, fielddata off).
        raise _bad(f"{where}: field type {field_type!r} has no terms to aggregate")
    ignore_above = value.get("ignore_above")
    if ignore_above is not None and (type(ignore_above) is not int or ignore_above < 0):
        raise _bad(f"{where}.ignore_above must be an integer >= 0")
    normalizer = value.get("normalizer")
    if normalizer not in (None, "lowercase"):
        raise _bad(f"{where}.normalizer: unknown normalizer {normalizer!r}")
    return TermField(value["field"], field_type, ignore_above, normalizer)


def read_rule(rule_ir: str | Mapping[str, Any]) -> RuleSpec:
    """The rule's IR (JSON text or parsed) as the matchers use it."""
    if isinstance(rule_ir, str):
        try:
            rule_ir = json.loads(rule_ir)
        except ValueError as exc:
            raise _bad(f"not JSON: {exc}") from None
    if not isinstance(rule_ir, Mapping):
        raise _bad("not an object")
    from .ir_schema import check

    try:
        check(rule_ir)  # the shape, in the schema checker's words
    except ValueError as exc:
        raise KibanaRuleIRError(str(exc)) from None
    kinds = [k for k in KINDS if k in rule_ir]
    if len(kinds) != 1:
        raise _bad("expected exactly one of new_terms, threshold")
    kind = kinds[0]
    body = rule_ir[kind]
    if not isinstance(body, Mapping):
        raise _bad(f"{kind} must be an object")
    timestamp = body.get("timestamp_field", "@timestamp")
    fallback = body.get("fallback_timestamp_field")
    if not isinstance(timestamp, str) or not (fallback is None or isinstance(fallback, str)):
        raise _bad("timestamp_field must be a string, fallback_timestamp_field a string or null")
    fields = body.get("fields")
    if not isinstance(fields, list):
        raise _bad("fields must be a list")
    term_fields = tuple(_term_field(f, f"fields[{i}]") for i, f in enumerate(fields))
    interval, start = _positive(body, "interval_ms"), _positive(body, "from_ms")
    if kind == "new_terms":
        if not term_fields:
            raise _bad("new_terms needs at least one field")
        history = _positive(body, "history_window_ms")
        if history <= start:
            # Kibana: "'historyWindowStart' must be earlier than 'from'".
            raise _bad("history_window_ms must be greater than from_ms")
        return RuleSpec(kind, timestamp, fallback, interval, start, term_fields, history)
    value = _positive(body, "value")
    cardinality = body.get("cardinality") or []
    if not isinstance(cardinality, list):
        raise _bad("cardinality must be a list")
    card_field, card_value = None, 0
    if cardinality:
        first = cardinality[0]
        card_field = _term_field(first, "cardinality[0]")
        card_value = _positive(first, "value", 0)
    return RuleSpec(
        kind,
        timestamp,
        fallback,
        interval,
        start,
        term_fields,
        value=value,
        cardinality=card_field,
        cardinality_value=card_value,
    )


# ---------------------------------------------------------------- reading events


@functools.cache
def _prefixes(name: str) -> tuple[tuple[str, str | None], ...]:
    """Each key that can hold part of the field ``name`` (its dotted prefixes), with the rest
    of the name below it (None: the key is the whole name)."""
    parts = name.split(".")
    return tuple(
        (".".join(parts[:k]), ".".join(parts[k:]) if k < len(parts) else None)
        for k in range(1, len(parts) + 1)
    )


def scalars(doc: dict[str, Any], name: str) -> list[str | bool]:
    """``reference.event.raw_values(doc, name.split("."))`` as a list, looking up the keys
    that can hold the field instead of splitting every key of the document: a key holds part
    of the path exactly when it is one of its dotted prefixes (split and join are inverse)."""
    found = [(key, rest) for key, rest in _prefixes(name) if key in doc]
    if len(found) > 1:  # in document order, as raw_values gives them
        order = {key: i for i, key in enumerate(doc)}
        found.sort(key=lambda hit: order[hit[0]])
    out: list[str | bool] = []
    for key, rest in found:
        if rest is None:
            out += (item for item in _items(doc[key]) if isinstance(item, bool | str))
        else:
            for obj in _objects(doc[key]):
                out += scalars(obj, rest)
    return out


def _dates(doc: dict[str, Any], name: str) -> list[int]:
    out = []
    for item in scalars(doc, name):
        value = read_value("date", item)
        if isinstance(value, Date):
            out.append(value.micros // 1000)
    return out


def event_time(doc: dict[str, Any], spec: RuleSpec) -> int | None:
    """The event's time in ms: the timestamp field when it has a date, else the fallback
    field (Kibana's range filter: the override in range, or no override and @timestamp in
    range). The chosen field must hold exactly one date (as spec/sequences.md)."""
    dates = _dates(doc, spec.timestamp_field)
    if not dates and spec.fallback_timestamp_field is not None:
        dates = _dates(doc, spec.fallback_timestamp_field)
    return dates[0] if len(dates) == 1 else None


def terms_of(doc: dict[str, Any], ref: TermField) -> list[Term]:
    """The field's distinct terms as Elasticsearch indexed them, in document order."""
    out: list[Term] = []
    keyword = ref.field_type in ("keyword", "wildcard")
    for item in scalars(doc, ref.field):
        value: Typed | None
        if keyword:
            text = flat_text(item)
            if ref.ignore_above is not None and utf16_len(text) > ref.ignore_above:
                continue  # too long: not indexed
            value = java_lowercase(text) if ref.normalizer == "lowercase" else text
        else:
            value = read_value(ref.field_type, item)
            if value is None:
                continue
            if isinstance(value, float) and value == 0:
                value = 0.0  # one term for -0.0 and 0.0, as Python's equality has it
        term = ("keyword" if keyword else ref.field_type, value)
        if term not in out:
            out.append(term)
    return out


def combinations(doc: dict[str, Any], fields: Iterable[TermField]) -> list[Combination]:
    """The Cartesian product of the fields' distinct terms (a composite aggregation's buckets
    of one document); none when a field has no term. No fields: the one empty combination."""
    found: list[Combination] = [()]
    for ref in fields:
        terms = terms_of(doc, ref)
        if not terms:
            return []
        found = [(*combo, term) for combo in found for term in terms]
    return found


def term_json(term: Term, single_terms_agg: bool = False) -> object:
    """A term as Elasticsearch's bucket key shows it: a composite aggregation's key (keyword
    and ip text, numbers, dates as epoch ms, booleans); a terms aggregation (new_terms with one
    field) keys a boolean as 1 or 0."""
    if single_terms_agg and term[0] == "boolean":
        return 1 if term[1] else 0
    return key_json(term, sample=True)


def encode_combination(combo: Combination) -> bytes:
    """A combination as bytes: equal combinations, equal bytes (records are grouped by it)."""
    parts: list[Any] = []
    for field_type, value in combo:
        if isinstance(value, Ip):
            parts.append([field_type, value.address.hex()])
        elif isinstance(value, Date):
            parts.append([field_type, value.micros])
        else:
            parts.append([field_type, value])
    return json.dumps(parts, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", "surrogatepass"
    )


def decode_combination(data: bytes) -> Combination:
    out: list[Term] = []
    for field_type, value in json.loads(data.decode("utf-8", "surrogatepass")):
        if field_type == "ip":
            out.append((field_type, Ip(bytes.fromhex(value))))
        elif field_type == "date":
            out.append((field_type, Date(value)))
        elif field_type in FLOAT_TYPES:
            out.append((field_type, float(value)))
        else:
            out.append((field_type, value))
    return tuple(out)


def first_run(time: int, interval: int) -> int:
    """The first run T = k·interval at or after ``time``."""
    return -(-time // interval) * interval


# ---------------------------------------------------------------- external sort


_FAN_IN = 16  # sorted runs of one size merged into one of the next size
_CHUNK = 256  # records per pickled chunk of a run (what a merge holds per run)


class _Sorter:
    """Tuples sorted with bounded memory: past ``budget`` (estimated bytes) the buffer is
    sorted and written as a run to a temporary file; every ``_FAN_IN`` runs of one level are
    merged into one run of the next, so a record is rewritten once per level and at most
    ``_FAN_IN`` runs per level wait for :meth:`sorted`, which merges them all."""

    def __init__(self, budget: int, spill_dir: str | None) -> None:
        self.budget = max(budget, 1)
        self.spill_dir = spill_dir
        self.items: list[tuple[Any, ...]] = []
        self.size = 0
        self.levels: list[list[IO[bytes]]] = []  # runs by level (level n: about 16^n buffers)

    def add(self, item: tuple[Any, ...], size: int) -> None:
        self.items.append(item)
        self.size += size
        if self.size > self.budget:
            self.items.sort()
            run = self._write(self.items)
            self.items, self.size = [], 0
            level = 0
            while True:
                if len(self.levels) == level:
                    self.levels.append([])
                self.levels[level].append(run)
                if len(self.levels[level]) < _FAN_IN:
                    break
                runs, self.levels[level] = self.levels[level], []
                run = self._write(heapq.merge(*(self._read(r) for r in runs)))
                for old in runs:
                    old.close()
                level += 1

    def _write(self, items: Iterable[tuple[Any, ...]]) -> IO[bytes]:
        try:
            # Closed by sorted() (or when merged into another run).
            file = tempfile.TemporaryFile(prefix="imds-scan-kibana-", dir=self.spill_dir)  # noqa: SIM115
            iterator = iter(items)
            while chunk := list(itertools.islice(iterator, _CHUNK)):
                pickle.dump(chunk, file, protocol=pickle.HIGHEST_PROTOCOL)
            file.seek(0)
        except OSError as exc:  # no such directory, a full disk
            from .sources import InputError

            where = self.spill_dir or tempfile.gettempdir()
            raise InputError(
                f"cannot write the new_terms/threshold candidates' spill file in {where} "
                f"(TMPDIR): {exc.strerror or exc}"
            ) from None
        return file

    @staticmethod
    def _read(file: IO[bytes]) -> Iterator[tuple[Any, ...]]:
        while True:
            try:
                chunk = pickle.load(file)
            except EOFError:
                return
            yield from chunk

    def sorted(self) -> Iterator[tuple[Any, ...]]:
        self.items.sort()
        items, self.items, self.size = self.items, [], 0
        runs = [run for level in self.levels for run in level]
        self.levels = []
        try:
            yield from heapq.merge(items, *(self._read(r) for r in runs))
        finally:
            for run in runs:
                run.close()


# Estimated bytes of a record in memory (a tuple of ints and bytes): measured with
# tracemalloc, rounded up (tests/test_kibana_rules.py checks the bound in a subprocess).
_RECORD_BYTES = 240
_NEVER = -(2**63)  # no signal-history entry


# ---------------------------------------------------------------- the matcher


@dataclass
class _Event:
    time: int
    rank: int
    line: int
    ref: int
    combos: tuple[bytes, ...]
    cards: frozenset[bytes]


class KibanaRuleMatcher:
    """The product matcher of one new_terms or threshold rule (spec/kql.md, "Rule types")."""

    def __init__(
        self,
        rule_ir: str | Mapping[str, Any],
        memory_budget: int = 256 << 20,
        spill_dir: str | None = None,
    ) -> None:
        self.spec = read_rule(rule_ir)
        # Half the budget for the candidates, the rest for the alerts and timeless events.
        self._records = _Sorter(memory_budget // 2, spill_dir)
        self._alerts = _Sorter(memory_budget // 4, spill_dir)
        self._timeless = _Sorter(memory_budget // 4, spill_dir)
        self._timeless_added = 0
        self.no_time = 0
        self.no_time_refs: list[int] = []
        self._first_time: int | None = None
        self._finished = False

    def add(self, rank: int, line: int, event: str, ref: int) -> None:
        """One event that holds the rule's query, at (input rank, line)."""
        if self._finished:
            raise RuntimeError("add after finish")
        spec = self.spec
        doc = event_document(event)
        time = event_time(doc, spec)
        if time is None:
            self._timeless.add((rank, line, ref), _RECORD_BYTES)
            self._timeless_added += 1
            self._update_no_time()
            return
        if self._first_time is None or time < self._first_time:
            self._first_time = time
        combos = [encode_combination(c) for c in combinations(doc, spec.fields)]
        if spec.kind == "new_terms":
            for key in combos:
                self._records.add((key, time, rank, line, ref), _RECORD_BYTES + len(key))
            return
        if not combos:
            return  # in no bucket
        cards: list[bytes] = []
        if spec.cardinality is not None:
            cards = [encode_combination((t,)) for t in terms_of(doc, spec.cardinality)]
        size = _RECORD_BYTES + sum(len(k) + 40 for k in combos) + sum(len(c) + 40 for c in cards)
        self._records.add((time, rank, line, ref, tuple(combos), tuple(cards)), size)

    def _update_no_time(self) -> None:
        # Counted exactly (distinct positions) from the sorted timeless events at finish; until
        # then, how many were added.
        self.no_time = self._timeless_added

    def _count_timeless(self) -> None:
        count = 0
        refs: list[int] = []
        last: tuple[int, int] | None = None
        for rank, line, ref in self._timeless.sorted():
            if (rank, line) == last:
                continue
            last = (rank, line)
            count += 1
            if len(refs) < NO_TIME_EXAMPLES:
                refs.append(ref)
        self.no_time, self.no_time_refs = count, refs

    def finish(self) -> Iterator[Alert]:
        """The alerts in output order: the alert event's position, then the combination (in
        its types' order), then the run."""
        if self._finished:
            raise RuntimeError("finish called twice")
        self._finished = True
        self._count_timeless()
        if self.spec.kind == "new_terms":
            self._new_terms()
        else:
            self._threshold()
        return self._ordered()

    # ------------------------------------------------------------ new_terms

    def _new_terms(self) -> None:
        """Per combination, its events by time: an event first at its time alerts when some
        run T has it in (T - from, T] and no earlier event of the combination in
        [T - history, T - from]; the first such T is the alert's run."""
        spec = self.spec
        interval, start, history = spec.interval_ms, spec.from_ms, spec.history_window_ms
        first_time = self._first_time if self._first_time is not None else 0
        key: bytes | None = None
        previous: int | None = None  # the combination's latest time before this one
        for combo, time, rank, line, ref in self._records.sorted():
            if combo != key:
                key, previous = combo, None
            elif time == previous:
                continue  # a later event at the same time (or the same one again): never first
            low = time if previous is None else max(time, previous + history + 1)
            run = first_run(low, interval)
            previous = time
            if run <= time + start - 1:
                warmup = run - history < first_time
                self._alerts.add((rank, line, combo, run, ref, warmup), _RECORD_BYTES + len(combo))

    # ------------------------------------------------------------ threshold

    def _threshold(self) -> None:
        """A sweep in time order over the runs that can alert: those where an event enters the
        window (the first run at or after its time), and those where a signal-history entry
        with last time L is dropped exactly as its events sit on the window's edge
        (T = L + from). Between them a bucket's counted events only shrink."""
        spec = self.spec
        interval, start = spec.interval_ms, spec.from_ms
        records = self._records.sorted()
        window: deque[_Event] = deque()  # events in the current window, by (time, position)
        buckets: dict[bytes, deque[_Event]] = {}  # the same, per combination
        history: dict[bytes, int] = {}  # combination -> last time of its latest alert
        expiry: list[tuple[int, bytes]] = []  # history entries by last time (heap)
        edge_runs: list[int] = []  # runs T = last + from (heap)
        pending = self._next_event(records, None)
        while pending is not None or edge_runs:
            run = first_run(pending.time, interval) if pending is not None else edge_runs[0]
            if edge_runs:
                run = min(run, edge_runs[0])
            low = run - start
            touched: set[bytes] = set()
            while window and window[0].time < low:
                gone = window.popleft()
                for key in gone.combos:
                    events = buckets[key]
                    events.popleft()  # the oldest of the window is the oldest of its buckets
                    if not events:
                        del buckets[key]
            while pending is not None and pending.time <= run:
                if pending.time >= low:  # else in no run's window (interval > from)
                    window.append(pending)
                    for key in pending.combos:
                        buckets.setdefault(key, deque()).append(pending)
                    touched.update(pending.combos)
                pending = self._next_event(records, pending)
            while expiry and expiry[0][0] <= low:
                last, key = heapq.heappop(expiry)
                if history.get(key) == last:
                    del history[key]  # Kibana drops entries whose last time is <= T - from
            while edge_runs and edge_runs[0] <= run:
                heapq.heappop(edge_runs)
                # Events at T - from that a dropped entry left out count again.
                for event in window:
                    if event.time != low:
                        break
                    touched.update(event.combos)
            alerts = []
            for key in sorted(touched):
                members = buckets.get(key)
                if members is not None:
                    alert = self._bucket_alert(key, members, history, run)
                    if alert is not None:
                        alerts.append(alert)
            for key, last in alerts:  # the history the next runs exclude by
                history[key] = last
                heapq.heappush(expiry, (last, key))
                if (last + start) % interval == 0 and last + start > run:
                    heapq.heappush(edge_runs, last + start)

    @staticmethod
    def _next_event(records: Iterator[tuple[Any, ...]], last: _Event | None) -> _Event | None:
        for time, rank, line, ref, combos, cards in records:
            if last is not None and (last.rank, last.line) == (rank, line):
                continue  # the same event added again
            return _Event(time, rank, line, ref, combos, frozenset(cards))
        return None

    def _bucket_alert(
        self, key: bytes, events: deque[_Event], history: dict[bytes, int], run: int
    ) -> tuple[bytes, int] | None:
        """The bucket's alert in this run, if any (recorded), as (key, last time)."""
        spec = self.spec
        count = 0
        cards: set[bytes] = set()
        first: _Event | None = None
        last: _Event | None = None
        for event in events:
            if any(event.time <= history.get(k, _NEVER) for k in event.combos):
                # Kibana's signal history: an event up to the last one of an earlier alert of
                # one of its combinations is left out of the run's query, every bucket.
                continue
            count += 1
            cards.update(event.cards)
            if first is None:
                first = event
            last = event  # events are in (time, position) order
        if not spec.fields:
            count = min(count, TOTAL_HITS_LIMIT)
        if first is None or last is None or count < spec.value:
            return None
        if spec.cardinality is not None and len(cards) < spec.cardinality_value:
            return None
        self._alerts.add(
            (last.rank, last.line, key, run, last.ref, count, first.time, last.time, len(cards)),
            _RECORD_BYTES + len(key),
        )
        return key, last.time

    # ------------------------------------------------------------ output

    def _ordered(self) -> Iterator[Alert]:
        """The recorded alerts by position, then combination order, then run."""
        group: list[tuple[Any, ...]] = []
        for record in self._alerts.sorted():
            if group and group[0][:2] != record[:2]:
                yield from self._group(group)
                group = []
            group.append(record)
        yield from self._group(group)

    def _group(self, records: list[tuple[Any, ...]]) -> Iterator[Alert]:
        decoded = [(decode_combination(r[2]), r) for r in records]
        if len(decoded) > 1:

            def order(a: tuple[Combination, Any], b: tuple[Combination, Any]) -> int:
                by_key = compare_keys(a[0], b[0])
                return by_key or (a[1][3] > b[1][3]) - (a[1][3] < b[1][3])

            decoded.sort(key=functools.cmp_to_key(order))
        for combo, record in decoded:
            yield self._alert(combo, record)

    def _alert(self, combo: Combination, record: tuple[Any, ...]) -> Alert:
        spec = self.spec
        rank, line, _, run, ref = record[:5]
        if spec.kind == "new_terms":
            single = len(spec.fields) == 1
            values = tuple(term_json(t, single) for t in combo)
            return Alert(ref, rank, line, run, record[5], new_terms=values)
        count, from_ms, last_ms, distinct = record[5:]
        terms = tuple((f.field, term_json(t)) for f, t in zip(spec.fields, combo, strict=True))
        cardinality = () if spec.cardinality is None else ((spec.cardinality.field, distinct),)
        result = ThresholdResult(terms, count, cardinality, from_ms, last_ms)
        return Alert(ref, rank, line, run, threshold_result=result)


def make_matcher(
    rule_ir: str | Mapping[str, Any],
    memory_budget: int = 256 << 20,
    spill_dir: str | None = None,
) -> RuleMatcher:
    """The rule's product matcher (the oracle, ``reference.kibana_rules``, imports this
    module, so it is not reached from here)."""
    return KibanaRuleMatcher(rule_ir, memory_budget, spill_dir)


__all__ = [
    "Alert",
    "KibanaRuleIRError",
    "KibanaRuleMatcher",
    "RuleMatcher",
    "RuleSpec",
    "TermField",
    "ThresholdResult",
    "make_matcher",
    "read_rule",
]
