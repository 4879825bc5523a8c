"""Sequence and sample rules in a scan (spec/sequences.md, "Scan layer").

A sequence or sample rule runs as one single-event *stage rule* per stage (and one for its
``until``), scanned by the chosen engine beside the single-event rules, so the stage filters
run prefiltered at scan speed. The stage hits (candidates) are taken out of the engine's
batches before anything else sees them: each candidate's text goes to a spill file in the
system's temporary directory, and (stage, input rank, line, text, spill offset) to the rule's
matcher (the Rust one for the rust engine and the cluster, the reference one for the python
engine; a local rust scan takes the stage hits of the binding's matchers out itself, see
:meth:`SequenceRun.engine_router`). When the engine's stream ends, each rule's results become
Hits (``branch`` "sequence" or "sample", with ``events`` and ``join_keys``), yielded as
further batches, rule by rule in load order. A KQL new_terms or threshold rule runs the same
way with one stage rule, its condition, and its own matcher (:mod:`imds_scan.kibana_scan`).

Memory: the scan layer keeps nothing per candidate (the matcher's ``ref`` of a candidate is
its offset in the spill file, where its input rank, line and text are); the matcher keeps its
own compact record per candidate (see its engine), and the results it returns.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import IO, Any, Protocol

from . import kibana_scan
from .batch import HitBatch, RawHits
from .engines import BATCH_HITS, Engine, HitStream
from .plan import RulePlan, rule_kind
from .records import (
    Hit,
    RawEvent,
    ScanStats,
    SeqEvent,
    name_json,
    record_labels,
    record_parts,
)
from .rules import Rule
from .sources import InputError

# How many candidates without a parsable time are named (file:line) in the statistics.
NO_TIME_EXAMPLES = 5
# Candidates' bytes gathered before they are written to the spill file.
_WRITE_SIZE = 1 << 20
# A spilled candidate: its input rank, line and the byte length of its UTF-8 text, then the text.
_HEADER = struct.Struct("<IQQ")


class MatchResult(Protocol):
    # A list in the contract; any iterable is taken (an engine may make them as they go).
    matches: Iterable[tuple[Sequence[int | None], Sequence[object]]]
    no_time: int
    no_time_refs: list[int]


class Matcher(Protocol):
    """The interface of both engines' ``SequenceMatcher`` (spec/sequences.md, Matchers)."""

    def add(self, stage: int, rank: int, line: int, event: str, ref: int) -> None: ...

    def finish(self) -> MatchResult: ...


class _Condition:
    """A new_terms or threshold rule's matcher, fed as a stage matcher (its one stage)."""

    def __init__(self, matcher: kibana_scan.RuleMatcher) -> None:
        self.matcher = matcher
        self.add_event = matcher.add

    def add(self, stage: int, rank: int, line: int, event: str, ref: int) -> None:
        self.add_event(rank, line, event, ref)


# Memory for candidate records before the matchers spill sorted runs to disk: one budget for
# the whole scan, shared by its sequence, sample, new_terms and threshold rules (Elastic's set
# has 216 sequences and samples, 269 new_terms and threshold rules).
MEMORY_BUDGET = 256 << 20
MIN_RULE_BUDGET = 1 << 20


def rule_budget(matchers: int) -> int:
    """Each of ``matchers`` matchers' part of :data:`MEMORY_BUDGET`."""
    return max(MEMORY_BUDGET // max(matchers, 1), MIN_RULE_BUDGET)


def make_matcher(engine: Engine, rule_ir_json: str, memory_budget: int) -> Matcher:
    """The chosen engine's matcher of one rule: the Rust one for ``rust`` (and the cluster),
    the reference one for ``python``."""
    import importlib

    # Imported by name: the binding's stub and the reference module are typed on their own.
    name = "imds_scan.reference.sequence" if engine == "python" else "imds_scan._engine"
    module: Any = importlib.import_module(name)
    matcher: Matcher = module.SequenceMatcher(rule_ir_json, memory_budget)
    return matcher


def effective_rules(
    rules: Sequence[Rule], include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> list[Rule]:
    """The rules as ``--show-rule`` prints them: host filters in (the first conjunct of every
    branch, stage and ``until``); a sequence's or sample's allowlist entries as a last
    ``and not (…)`` conjunct of every stage and ``until`` (its stage rules run them as an
    allowlist, which the printed EQL of a sequence has no place for)."""
    from .filters import with_host_filter

    out = []
    for rule in rules:
        entries = rule.ir.get("allowlist") or []
        if rule_kind(rule) != "event" and entries:
            arg = entries[0] if len(entries) == 1 else {"node": "or", "args": list(entries)}
            exclusion = {"node": "not", "arg": arg}

            def excluded(expr: dict[str, Any], exclusion: Any = exclusion) -> dict[str, Any]:
                args = expr["args"] if expr["node"] == "and" else [expr]
                return {"node": "and", "args": [*args, exclusion]}

            ir = {k: v for k, v in rule.map_conditions(excluded).items() if k != "allowlist"}
            rule = dataclasses.replace(rule, ir=ir)
        out += with_host_filter([rule], include, exclude)
    return out


MatcherFactory = Callable[[Engine, str, int], Matcher]
AlertMatcherFactory = Callable[[Engine, str, int], kibana_scan.RuleMatcher]


def input_ranks(names: Sequence[str]) -> dict[str, int]:
    """Each input's rank: its place among the inputs' names sorted by code points (so that a
    result does not depend on the order in which the inputs are given)."""
    return {name: rank for rank, name in enumerate(sorted(set(names)))}


def _spill_error(exc: OSError) -> InputError:
    import tempfile

    return InputError(
        f"cannot write the sequence candidates' spill file in {tempfile.gettempdir()} "
        f"(TMPDIR): {exc.strerror or exc}"
    )


class _Spill:
    """Candidates' input rank, line and text, appended to a temporary file (deleted when
    closed); a candidate is found again by its offset."""

    def __init__(self) -> None:
        import tempfile

        try:
            # Closed by close(), at the end of the scan.
            self.file: IO[bytes] = tempfile.TemporaryFile(prefix="imds-scan-candidates-")  # noqa: SIM115
        except OSError as exc:
            raise _spill_error(exc) from None
        self.end = 0
        self.last: tuple[str, int, int] | None = None  # (source, line, offset) just written
        self.written = 0  # what is in the file; the rest is pending
        self.pending = bytearray()

    def put(self, source: str, rank: int, line: int, text: str) -> int:
        # The rules' hits on one line come together: its text is written once.
        if self.last is not None and self.last[:2] == (source, line):
            return self.last[2]
        data = text.encode("utf-8", "surrogatepass")
        offset = self.end
        self.pending += _HEADER.pack(rank, line, len(data))
        self.pending += data
        self.end += _HEADER.size + len(data)
        self.last = (source, line, offset)
        if len(self.pending) >= _WRITE_SIZE:
            self._flush()
        return offset

    def _flush(self) -> None:
        try:
            self.file.seek(self.written)
            self.file.write(self.pending)
        except OSError as exc:  # a full disk
            raise _spill_error(exc) from None
        self.written = self.end
        self.pending.clear()

    def get(self, offset: int) -> tuple[int, int, str]:
        if self.pending:
            self._flush()
        self.file.seek(offset)
        rank, line, size = _HEADER.unpack(self.file.read(_HEADER.size))
        return rank, line, self.file.read(size).decode("utf-8", "surrogatepass")

    def get_many(self, offsets: list[int]) -> list[tuple[int, int, str]]:
        return [self.get(offset) for offset in offsets]

    def close(self) -> None:
        self.file.close()


class _RouterSpill:
    """The binding's spill file (``StageRouter``) with :class:`_Spill`'s interface."""

    def __init__(self, router: Any) -> None:
        self.router = router

    def put(self, source: str, rank: int, line: int, text: str) -> int:
        try:
            offset: int = self.router.put(rank, line, text)
        except OSError as exc:
            raise _spill_error(exc) from None
        return offset

    def get(self, offset: int) -> tuple[int, int, str]:
        try:
            found: tuple[int, int, str] = self.router.get(offset)
        except OSError as exc:
            raise _spill_error(exc) from None
        return found

    def get_many(self, offsets: list[int]) -> list[tuple[int, int, str]]:
        try:
            events = self.router.read_results([offsets]).events()
        except OSError as exc:
            raise _spill_error(exc) from None
        return [events[offset] for offset in offsets]

    def read_matches(self, found: Any, start: int, stop: int) -> Any:
        """Results ``start:stop`` of the binding's ``MatchResult``, their events read back,
        in a ``ResultChunk``."""
        try:
            return self.router.read_matches(found, start, stop)
        except OSError as exc:
            raise _spill_error(exc) from None

    def close(self) -> None:
        self.router.close()


def _router(
    routes: Sequence[tuple[Matcher | _Condition, tuple[int, ...]] | None],
    within: Callable[[str], bool] | None,
) -> Any:
    """The binding's ``StageRouter`` of the engine rules' routes, its spill file in the
    system's temporary directory (None: stage hits go through the Python loop)."""
    import importlib
    import tempfile

    # Imported by name: the binding's stub is typed on its own.
    module: Any = importlib.import_module("imds_scan._engine")
    try:
        return module.StageRouter(list(routes), tempfile.gettempdir(), within)
    except OSError as exc:
        raise _spill_error(exc) from None


class SequenceRun:
    """Stage hits out of the batches and into the matchers, results out as batches."""

    def __init__(
        self,
        plan: RulePlan,
        engine: Engine,
        names: Sequence[str],
        within: Callable[[str], bool] | None = None,
        matcher: MatcherFactory | None = None,
        alert_matcher: AlertMatcherFactory | None = None,
    ) -> None:
        self.plan = plan
        self.engine = engine
        self.within = within
        self.ranks = input_ranks(names)
        self.names = sorted(self.ranks, key=self.ranks.__getitem__)
        make = matcher or make_matcher
        make_alerts = alert_matcher or kibana_scan.make_matcher
        # Made before the scan: a rule a matcher refuses stops the scan before it starts.
        # The allowlist is the stage rules' (the engine applies it): not the matcher's.
        owners = [i for i, rule in enumerate(plan.rules) if rule_kind(rule) != "event"]
        budget = rule_budget(len(owners))
        self.matchers: dict[int, Matcher | _Condition] = {}
        for index in owners:
            rule = plan.rules[index]
            ir = json.dumps({k: v for k, v in rule.ir.items() if k != "allowlist"})
            if rule_kind(rule) in kibana_scan.KINDS:
                self.matchers[index] = _Condition(make_alerts(engine, ir, budget))
            else:
                self.matchers[index] = make(engine, ir, budget)
        # Per engine rule (by its object, which its Hits carry): its matcher and stages (its
        # hits are candidates of each, in order), or None.
        self.stage_of: dict[int, tuple[Matcher | _Condition, tuple[int, ...]] | None] = {
            id(rule): None
            if stage is None
            else (self.matchers[plan.owner[i]], (stage, *plan.also[i]))
            for i, (rule, stage) in enumerate(zip(plan.engine_rules, plan.stage, strict=True))
        }
        # The same by engine rule index (the engine's hit tuples name rules by index).
        self.stage_by_index = [self.stage_of[id(rule)] for rule in plan.engine_rules]
        self.stage_rules = {i for i, s in enumerate(plan.stage) if s is not None}
        # The stage rules whose hits come in the batches (not taken by the engine itself).
        self.looped = self.stage_rules
        self.routing = False  # the engine takes some stage hits itself (engine_router)
        # The rust engine's stage hits go to the matchers inside the binding (no Python call
        # per candidate for a Rust matcher); the reference path keeps its Python loop.
        self.router: Any = None if engine == "python" else _router(self.stage_by_index, within)
        self.spill = _Spill() if self.router is None else _RouterSpill(self.router)
        self._input_ranks: tuple[Sequence[str], list[int]] | None = None
        self._names_json: list[bytes] | None = None  # each input's name in a record
        self.candidates: dict[str, int] = {}  # stage hits per input (the engine counted them)
        self.results: dict[str, int] = {}  # results per input of their first event
        self.no_time = 0
        self.no_time_examples: list[tuple[str, int]] = []
        # new_terms and threshold rules: alerts per rule id, those of warm-up runs, and
        # matching events without a time.
        self.alerts: dict[str, int] = {}
        self.warmup = 0
        self.kql_no_time = 0
        self.kql_no_time_examples: list[tuple[str, int]] = []

    def engine_router(self) -> Any:
        """The router for the Rust engine's scan to take the stage hits of the binding's
        matchers itself, read where they are found, with no Python object per hit
        (``Scanner.scan_iter(router=…)``); None when nothing can go so (the reference
        engine, --since/--until, which the router applies to the text). Called once, for
        the scan that feeds this run; the other stage rules' hits still come in batches."""
        if self.router is None or self.within is not None:
            return None
        from ._engine import SequenceMatcher

        routed = {
            i
            for i, where in enumerate(self.stage_by_index)
            if where is not None and isinstance(where[0], SequenceMatcher)
        }
        if not routed:
            return None
        self.looped = self.stage_rules - routed
        self.routing = True
        return self.router

    def counts(self, engine_counts: Sequence[int]) -> list[int]:
        """Hits per rule of the engine's counts per engine rule (stage hits left out)."""
        counts = [0] * len(self.plan.rules)
        for i, count in enumerate(engine_counts):
            if count and i not in self.stage_rules:
                counts[self.plan.owner[i]] += count
        return counts

    def strip(self, batch: HitBatch) -> HitBatch:
        """The batch without its stage hits, which go to the matchers."""
        engine_counts = batch.rule_counts
        if engine_counts is not None and not any(engine_counts[i] for i in self.looped):
            batch.rule_counts = self.counts(engine_counts)
            return batch
        if not batch.count:  # hits counted, none given (another batch has them)
            batch.rule_counts = None if engine_counts is None else self.counts(engine_counts)
            return batch
        if self.router is not None and batch.raw is not None:
            return self._route(batch, batch.raw, engine_counts)
        keep = []
        ranks, within, spill, candidates = self.ranks, self.within, self.spill, self.candidates
        # The engine's tuples when it gave them (no Hit object for a stage hit), else Hits.
        if batch.raw is not None:
            inputs, by_index = batch.raw.inputs, self.stage_by_index
            found = ((by_index[t[2]], inputs[t[0]], t[1], t[5]) for t in batch.raw.tuples)
        else:
            stage_of = self.stage_of
            found = ((stage_of[id(h.rule)], h.source, h.line, h.event_text) for h in batch.hits)
        for k, (where, source, line, text) in enumerate(found):
            if where is None:
                keep.append(k)
                continue
            matcher, stages = where
            candidates[source] = candidates.get(source, 0) + 1
            if within is not None and not within(text):
                continue  # --since/--until: not a candidate
            rank = ranks[source]
            ref = spill.put(source, rank, line, text)
            for stage in stages:
                matcher.add(stage, rank, line, text, ref)
        kept = batch.take(keep)
        kept.rule_counts = None if engine_counts is None else self.counts(engine_counts)
        return kept

    def _route(
        self, batch: HitBatch, raw: RawHits, engine_counts: Sequence[int] | None
    ) -> HitBatch:
        """:meth:`strip` in the binding: the stage hits of the engine's tuples into the
        matchers (and the spill file) in scan order, as the Python loop adds them."""
        inputs = raw.inputs
        if self._input_ranks is None or self._input_ranks[0] is not inputs:
            self._input_ranks = (inputs, [self.ranks[name] for name in inputs])
        tuples = raw.tuples if isinstance(raw.tuples, list) else list(raw.tuples)
        try:
            keep, counts = self.router.add_batch(tuples, self._input_ranks[1])
        except OSError as exc:
            raise _spill_error(exc) from None
        for index, count in enumerate(counts):
            if count:
                source = inputs[index]
                self.candidates[source] = self.candidates.get(source, 0) + count
        kept = batch.take(keep)
        kept.rule_counts = None if engine_counts is None else self.counts(engine_counts)
        return kept

    def result_batches(self) -> Iterator[HitBatch]:
        """Each sequence, sample, new_terms or threshold rule's results, in load order, as
        batches of Hits."""
        for index, matcher in self.matchers.items():
            rule = self.plan.rules[index]
            if isinstance(matcher, _Condition):
                yield from self._alert_batches(index, matcher.matcher)
                continue
            found = matcher.finish()
            self.no_time += found.no_time
            for ref in found.no_time_refs:
                if len(self.no_time_examples) < NO_TIME_EXAMPLES:
                    rank, line, _ = self.spill.get(ref)
                    self.no_time_examples.append((self.names[rank], line))
            if isinstance(self.spill, _RouterSpill) and _in_rust(found):
                yield from self._router_batches(index, rule, found)
                continue
            matches = iter(found.matches)
            while chunk := list(itertools.islice(matches, BATCH_HITS)):
                counts = [0] * len(self.plan.rules)
                counts[index] = len(chunk)
                # The chunk's events read back in one call.
                wanted = [ref for refs, _ in chunk for ref in refs if ref is not None]
                events = dict(zip(wanted, self.spill.get_many(wanted), strict=True))
                results = [self._result(refs, keys, events) for refs, keys in chunk]
                for where, _, _ in results:
                    self.results[where[0]] = self.results.get(where[0], 0) + 1
                # Records and Hits each made only if a writer asks (NDJSON needs no Hit).
                yield HitBatch(
                    len(results),
                    hits=functools.partial(_result_hits, rule, results),
                    records=functools.partial(_result_records, rule, results),
                    rule_counts=counts,
                    position=functools.partial(_result_position, results),
                )

    def _router_batches(self, index: int, rule: Rule, found: Any) -> Iterator[HitBatch]:
        """The binding's matcher's results (kept in Rust) in batches whose events the binding
        reads back and keeps: their records are written there, keys included, with no Python
        object per result; Hits are made only if a writer asks."""
        assert isinstance(self.spill, _RouterSpill)
        names = self.names
        if self._names_json is None:
            self._names_json = [_utf8(name_json(name)) for name in names]
        names_json, labels = self._names_json, _utf8(record_labels(rule, rule_kind(rule)))
        for start in range(0, len(found), BATCH_HITS):
            read = self.spill.read_matches(found, start, min(start + BATCH_HITS, len(found)))
            firsts = read.firsts()
            for first in firsts:  # counted under their first event's input
                source = "" if first is None else names[first[0]]
                self.results[source] = self.results.get(source, 0) + 1
            counts = [0] * len(self.plan.rules)
            counts[index] = len(firsts)
            yield HitBatch(
                len(firsts),
                hits=functools.partial(self._chunk_hits, rule, read),
                records=functools.partial(read.records, labels, names_json),
                rule_counts=counts,
                position=functools.partial(_first_position, names, firsts),
            )

    def _chunk_hits(self, rule: Rule, read: Any) -> list[Hit]:
        """The Hits of a chunk of results the binding read back."""
        events = read.events()
        return _result_hits(rule, [self._result(r, k, events) for r, k in read.matches()])

    def _alert_batches(self, index: int, matcher: kibana_scan.RuleMatcher) -> Iterator[HitBatch]:
        """A new_terms or threshold rule's alerts as batches of Hits, in the matcher's order;
        then its events without a time into the statistics."""
        rule = self.plan.rules[index]
        kind = rule_kind(rule)
        alerts = matcher.finish()
        while chunk := list(itertools.islice(alerts, BATCH_HITS)):
            hits = []
            for alert in chunk:
                rank, line, text = self.spill.get(alert.ref)
                source = self.names[rank]
                self.results[source] = self.results.get(source, 0) + 1
                hits.append(kibana_scan.alert_hit(rule, kind, alert, (source, line, text)))
                self.warmup += bool(hits[-1].warmup)
            self.alerts[rule.id] = self.alerts.get(rule.id, 0) + len(hits)
            counts = [0] * len(self.plan.rules)
            counts[index] = len(hits)
            yield HitBatch.of(hits, rule_counts=counts)
        # Read once the alerts are out (final after the last add).
        self.kql_no_time += matcher.no_time
        for ref in matcher.no_time_refs:
            rank, line, _ = self.spill.get(ref)
            where = (self.names[rank], line)
            # One event matching several rules is named once.
            examples = self.kql_no_time_examples
            if len(examples) < NO_TIME_EXAMPLES and where not in examples:
                examples.append(where)

    def _result(
        self,
        refs: Sequence[int | None],
        keys: Sequence[object],
        spilled: Mapping[int, tuple[int, int, str]],
    ) -> _Result:
        """The result made of the events at ``refs`` (``spilled``: read back)."""
        events: list[RawEvent] = []
        for ref in refs:
            if ref is None:
                events.append((None, None, None))
                continue
            rank, line, text = spilled[ref]
            events.append((self.names[rank], line, text))
        first = next((e for e in events if e[2] is not None), ("", 0, ""))
        where = (first[0] or "", first[1] or 0, first[2] or "")
        return where, events, tuple(keys)

    def finish(self, stats: ScanStats) -> ScanStats:
        """The engine's statistics about the rules as loaded: stage hits out of the inputs'
        hit counts and results in (under their first event's input), allowlist counts under
        the sequence or sample rule, candidates without a time."""
        if self.router is not None:  # the stage hits the engine routed itself
            for rank, count in self.router.candidates().items():
                source = self.names[rank]
                self.candidates[source] = self.candidates.get(source, 0) + count
        self.spill.close()
        candidates, results = dict(self.candidates), dict(self.results)
        for f in stats.files:
            taken = min(candidates.get(f.path, 0), f.hits)
            if taken:
                candidates[f.path] -= taken
            f.hits += results.pop(f.path, 0) - taken
            allowlisted: dict[tuple[int, int], int] = {}
            for (rule, entry), count in f.allowlisted.items():
                key = (self.plan.owner[rule], entry)
                allowlisted[key] = allowlisted.get(key, 0) + count
            f.allowlisted = allowlisted
        stats.no_time += self.no_time
        stats.no_time_examples += self.no_time_examples
        for rule_id, count in self.alerts.items():
            stats.alerts[rule_id] = stats.alerts.get(rule_id, 0) + count
        stats.warmup_alerts += self.warmup
        stats.kql_no_time += self.kql_no_time
        stats.kql_no_time_examples += self.kql_no_time_examples
        return stats


# A result: its first event's (input, line, text), its events, its join key values.
_Result = tuple[tuple[str, int, str], list[RawEvent], tuple[object, ...]]


def _in_rust(found: MatchResult) -> bool:
    """Whether a matcher's results are the binding's, kept in Rust."""
    from ._engine import MatchResult as RustResult

    return isinstance(found, RustResult)


def _first_position(
    names: Sequence[str], firsts: Sequence[tuple[int, int] | None], k: int
) -> tuple[str, int]:
    """The input and line of result ``k`` (its first event's) of a chunk's ``firsts``."""
    first = firsts[k]
    return ("", 0) if first is None else (names[first[0]], first[1])


def _utf8(text: str) -> bytes:
    """Text as a record's bytes (a lone surrogate, from a name that is not UTF-8, as its
    escape: ``hit_records``' encoding)."""
    return text.encode("utf-8", "backslashreplace")


def _result_hits(rule: Rule, results: Sequence[_Result]) -> list[Hit]:
    """The results as Hits."""
    kind = rule_kind(rule)
    return [
        Hit(
            *where[:2],
            rule,
            kind,
            None,
            where[2],
            events=tuple(SeqEvent(*event) for event in events),
            join_keys=keys,
        )
        for where, events, keys in results
    ]


def _result_position(results: Sequence[_Result], k: int) -> tuple[str, int]:
    """The input and line of result ``k`` (its first event's)."""
    source, line, _ = results[k][0]
    return source, line


def _result_records(rule: Rule, results: Sequence[_Result]) -> bytes:
    """The results' NDJSON records (``Hit.to_json``'s), with no Hit made."""
    kind, parts = rule_kind(rule), list[str]()
    for where, events, keys in results:
        record_parts(parts, where, (rule, kind, None), events, keys)
        parts.append("\n")
    return "".join(parts).encode("utf-8", "backslashreplace")


def with_sequences(
    base: HitStream,
    plan: RulePlan,
    engine: Engine,
    names: Sequence[str],
    within: Callable[[str], bool] | None = None,
    matcher: MatcherFactory | None = None,
    alert_matcher: AlertMatcherFactory | None = None,
    run: SequenceRun | None = None,
) -> HitStream:
    """``base`` (the engine's stream of ``plan.engine_rules``) as a stream of ``plan.rules``:
    stage hits matched, results after the single-event hits. ``within(event_text)``: whether
    a candidate is inside --since/--until (None: no window). ``names``: every input's name
    (their ranks). ``run``: the SequenceRun made for ``base`` already (its
    :meth:`SequenceRun.engine_router` given to the engine), else one is made here."""
    if run is None:
        run = SequenceRun(plan, engine, names, within, matcher, alert_matcher)

    def batches() -> Iterator[HitBatch]:
        try:
            for batch in base:
                yield run.strip(batch)
        except OSError as exc:  # the engine could not spill the stage hits it routed
            if not run.routing:
                raise
            raise _spill_error(exc) from None
        yield from run.result_batches()

    def finish() -> ScanStats:
        return run.finish(base.close())

    return HitStream(batches(), finish)
