"""Sequence and sample matching, plainly (spec/sequences.md): the oracle that the Rust matcher
(``imds_core::sequence``) is tested against.

Everything stays in memory and every step is spelled out as the spec words it; it is meant for
small inputs. ``memory_budget`` and ``spill_dir`` are accepted for the shared interface and
not used.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

from .event import event_document, raw_values
from .typed import (
    FLOAT_TYPES,
    INTEGER_RANGES,
    Date,
    Ip,
    Typed,
    compare,
    read_value,
    to_float32,
)

_TYPES = frozenset(
    {"keyword", "text", "wildcard", "ip", "date", "boolean", *INTEGER_RANGES, *FLOAT_TYPES}
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# A key value: (field type, typed value), or None for the null of an optional key. Values of
# different types are never equal (spec/sequences.md, Join key values).
KeyValue = tuple[str, Typed] | None
Key = tuple[KeyValue, ...]
Position = tuple[int, int]  # (input rank, line)


class SequenceIRError(ValueError):
    """A sequence or sample IR document the matcher cannot run."""


@dataclass(frozen=True)
class FieldRef:
    field: str
    field_type: str
    optional: bool = False

    @property
    def parts(self) -> list[str]:
        return self.field.split(".")


@dataclass
class MatchResult:
    """``matches``: per result in output order, the ref of each stage's event (None for a
    missing-event stage) and the join key values; ``no_time``: events without a time;
    ``no_time_refs``: the refs of the first 5 of them by position."""

    matches: list[tuple[list[int | None], list[object]]]
    no_time: int = 0
    no_time_refs: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class _Stage:
    keys: tuple[FieldRef, ...]
    missing: bool = False


# ---------------------------------------------------------------- reading the IR


def _bad(what: str) -> SequenceIRError:
    return SequenceIRError(f"bad sequence IR: {what}")


def _int_or_none(obj: dict[str, Any], name: str, minimum: int) -> int | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _bad(f"{name} must be null or an integer >= {minimum}")
    return value


def _fieldref(value: Any, where: str) -> FieldRef:
    if isinstance(value, str):  # the first draft's bare tiebreaker name: a keyword field
        return FieldRef(value, "keyword")
    if not isinstance(value, dict) or not isinstance(value.get("field"), str):
        raise _bad(f"{where}: expected {{field, field_type}}")
    field_type = value.get("field_type")
    if field_type not in _TYPES:
        raise _bad(f"{where}: unknown field_type {field_type!r}")
    optional = value.get("optional", False)
    if not isinstance(optional, bool):
        raise _bad(f"{where}: optional must be a boolean")
    return FieldRef(value["field"], field_type, optional)


def _stage(value: Any, where: str) -> _Stage:
    if not isinstance(value, dict) or not isinstance(value.get("keys"), list):
        raise _bad(f"{where}: expected a stage with keys")
    keys = tuple(_fieldref(k, f"{where}.keys[{i}]") for i, k in enumerate(value["keys"]))
    missing = value.get("missing", False)
    if not isinstance(missing, bool):
        raise _bad(f"{where}.missing must be a boolean")
    return _Stage(keys, missing)


def _pipes(value: Any) -> list[tuple[str, int]]:
    if not isinstance(value, list):
        raise _bad("pipes must be a list")
    pipes = []
    for pipe in value:
        if (
            not isinstance(pipe, dict)
            or pipe.get("pipe") not in ("head", "tail")
            or isinstance(pipe.get("n"), bool)
            or not isinstance(pipe.get("n"), int)
            or pipe["n"] < 0
        ):
            raise _bad(f"pipe {pipe!r}: expected {{pipe: head|tail, n >= 0}}")
        pipes.append((pipe["pipe"], pipe["n"]))
    return pipes


# ---------------------------------------------------------------- reading events


def _values(doc: dict[str, Any], ref: FieldRef) -> list[Typed]:
    """The field's values read by its type, in document order (values that do not read are
    no values)."""
    out = []
    for item in raw_values(doc, ref.parts):
        value = read_value(ref.field_type, item)
        if value is not None:
            out.append(value)
    return out


def _time_ms(doc: dict[str, Any], timestamp_field: str) -> int | None:
    """The event's time in milliseconds: its timestamp field must hold exactly one date."""
    values = _values(doc, FieldRef(timestamp_field, "date"))
    if len(values) != 1:
        return None
    date = values[0]
    assert isinstance(date, Date)
    return date.micros // 1000


def _tiebreaker(doc: dict[str, Any], ref: FieldRef | None) -> Typed | None:
    """The tiebreaker when exactly one value reads; else None (missing, sorts last)."""
    if ref is None:
        return None
    values = _values(doc, ref)
    return values[0] if len(values) == 1 else None


def _key_tuples(doc: dict[str, Any], keys: Sequence[FieldRef]) -> set[Key]:
    """The event's key tuples for one stage: the cartesian product of each key's distinct
    values; a non-optional key without a value gives none, an optional one gives null."""
    choices: list[list[KeyValue]] = []
    for ref in keys:
        distinct: list[KeyValue] = []
        for value in _values(doc, ref):
            if (ref.field_type, value) not in distinct:
                distinct.append((ref.field_type, value))
        if not distinct:
            if not ref.optional:
                return set()
            distinct = [None]
        choices.append(distinct)
    tuples: list[Key] = [()]
    for distinct in choices:
        tuples = [(*t, v) for t in tuples for v in distinct]
    return set(tuples)


# ---------------------------------------------------------------- ordering


def _compare_values(left: KeyValue, right: KeyValue) -> int:
    if left is None or right is None:
        return (left is not None) - (right is not None)  # null first
    if left[0] != right[0]:
        return (left[0] > right[0]) - (left[0] < right[0])
    order = compare(left[1], right[1])
    return 0 if order is None else order


def compare_keys(left: Key, right: Key) -> int:
    """Key tuples position by position, each in its type's order, null first."""
    for a, b in zip(left, right, strict=False):
        order = _compare_values(a, b)
        if order:
            return order
    return (len(left) > len(right)) - (len(left) < len(right))


@dataclass(frozen=True)
class _Ordinal:
    """(time, tiebreaker, position); a missing tiebreaker sorts after every present one."""

    time: int
    tiebreaker: Typed | None
    position: Position

    def cmp(self, other: _Ordinal) -> int:
        if self.time != other.time:
            return -1 if self.time < other.time else 1
        if self.tiebreaker is not None or other.tiebreaker is not None:
            if self.tiebreaker is None:
                return 1
            if other.tiebreaker is None:
                return -1
            order = compare(self.tiebreaker, other.tiebreaker)
            if order:
                return order
        return (self.position > other.position) - (self.position < other.position)


# ---------------------------------------------------------------- join keys in output


def _shortest(value: float, rounding: Any, digits: int) -> float:
    """The shortest decimal that reads back to ``value`` at the field's precision."""
    for precision in range(1, digits + 1):
        text = f"{value:.{precision}g}"
        if rounding(Fraction(text)) == value:
            return float(text)
    return value


def _ip_text(address: bytes) -> str:
    """Canonical text: IPv4-mapped as dotted IPv4, else RFC 5952 (longest run of two or more
    zero groups as ``::``, the first on a tie; lowercase hex without leading zeros)."""
    if address[:12] == b"\x00" * 10 + b"\xff\xff":
        return ".".join(str(b) for b in address[12:])
    groups = [address[i] << 8 | address[i + 1] for i in range(0, 16, 2)]
    best_start, best_len = -1, 0
    start = None
    for i, group in enumerate([*groups, 1]):
        if group == 0 and start is None:
            start = i
        elif group != 0 and start is not None:
            if i - start > best_len:
                best_start, best_len = start, i - start
            start = None
    words = [f"{g:x}" for g in groups]
    if best_len < 2:
        return ":".join(words)
    return ":".join(words[:best_start]) + "::" + ":".join(words[best_start + best_len :])


def key_json(value: KeyValue, sample: bool) -> object:
    """A join key value as Elasticsearch returns it (spec/sequences.md, Join key values)."""
    if value is None:
        return None
    field_type, typed = value
    if isinstance(typed, Ip):
        return _ip_text(typed.address)
    if isinstance(typed, Date):
        millis = typed.micros // 1000
        if sample:
            return millis
        m = _EPOCH + timedelta(milliseconds=millis)  # strftime's %Y does not pad year 1
        return (
            f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:"
            f"{m.second:02d}.{m.microsecond // 1000:03d}Z"
        )
    if field_type in ("float", "half_float") and isinstance(typed, float) and not sample:
        # the fields API returns a Java Float (a half_float too): its shortest decimal
        return _shortest(typed, lambda f: to_float32(f), 9)
    return typed


# ---------------------------------------------------------------- the matcher


@dataclass
class _Added:
    stage: int
    position: Position
    ref: int
    doc: dict[str, Any]


class SequenceMatcher:
    """Collects stage candidates with :meth:`add`, then matches them in :meth:`finish`."""

    def __init__(
        self, rule_ir_json: str, memory_budget: int = 256 << 20, spill_dir: str | None = None
    ) -> None:
        del memory_budget, spill_dir  # the oracle keeps everything in memory
        try:
            rule = json.loads(rule_ir_json)
        except ValueError as exc:
            raise _bad(f"not JSON: {exc}") from None
        if not isinstance(rule, dict):
            raise _bad("not an object")
        body = rule.get("sequence", rule.get("sample"))
        if not isinstance(body, dict) or ("sequence" in rule) == ("sample" in rule):
            raise _bad("expected exactly one of sequence, sample")
        self.kind = "sequence" if "sequence" in rule else "sample"
        timestamp = body.get("timestamp_field", "@timestamp")
        if not isinstance(timestamp, str):
            raise _bad("timestamp_field must be a string")
        self.timestamp_field = timestamp
        tiebreaker = body.get("tiebreaker_field")
        self.tiebreaker = None if tiebreaker is None else _fieldref(tiebreaker, "tiebreaker")
        stages = body.get("stages")
        if not isinstance(stages, list) or not stages:
            raise _bad("stages must be a non-empty list")
        self.stages = [_stage(s, f"stages[{i}]") for i, s in enumerate(stages)]
        until = body.get("until")
        self.until = None if until is None else _stage(until, "until")
        if self.kind == "sample" and (
            self.until is not None or any(s.missing for s in self.stages)
        ):
            raise _bad("a sample has no until and no missing stages")
        widths = {len(s.keys) for s in self.stages} | (
            {len(self.until.keys)} if self.until else set()
        )
        if len(widths) > 1:
            raise _bad("every stage must have the same number of keys")
        self.maxspan_ms = _int_or_none(body, "maxspan_ms", 0)
        self.max_samples_per_key = _int_or_none(body, "max_samples_per_key", 1)
        self.size = _int_or_none(body, "size", 0)
        self.pipes = _pipes(body.get("pipes", []))
        self.positive = [i for i, s in enumerate(self.stages) if not s.missing]
        self._added: dict[tuple[int, Position], _Added] = {}

    def add(self, stage: int, rank: int, line: int, event: str, ref: int) -> None:
        """A candidate of ``stage`` (``len(stages)``: the until stage) at (rank, line)."""
        limit = len(self.stages) + (1 if self.until is not None else 0)
        if not 0 <= stage < limit:
            raise ValueError(f"stage {stage} out of range (0..{limit - 1})")
        slot = (stage, (rank, line))
        known = self._added.get(slot)
        if known is not None and known.ref <= ref:  # the same candidate again: one ref
            return
        self._added[slot] = _Added(stage, (rank, line), ref, event_document(event))

    def _stage_keys(self, stage: int) -> tuple[FieldRef, ...]:
        if stage == len(self.stages):
            assert self.until is not None
            return self.until.keys
        return self.stages[stage].keys

    def finish(self) -> MatchResult:
        if self.kind == "sample":
            results = self._samples()
            return MatchResult(self._limit(results))
        return self._sequences()

    def _limit(self, results: list[tuple[list[int | None], list[object]]]) -> list[Any]:
        for pipe, n in self.pipes:
            tail = results[max(len(results) - n, 0) :] if n else []  # n may exceed the count
            results = results[:n] if pipe == "head" else tail
        if self.size is not None:
            results = results[: self.size]
        return results

    # ------------------------------------------------------------ sequences

    def _sequences(self) -> MatchResult:
        until_stage = len(self.stages)
        # Per event (position): its ordinal, and per stage its ref and key tuples.
        ordinals: dict[Position, _Ordinal] = {}
        stages_of: dict[Position, dict[int, tuple[int, set[Key]]]] = {}
        no_time: dict[Position, int] = {}
        for (stage, position), added in sorted(self._added.items()):
            time = _time_ms(added.doc, self.timestamp_field)
            if time is None:
                no_time.setdefault(position, added.ref)  # lowest stage first (sorted)
                continue
            ordinals[position] = _Ordinal(time, _tiebreaker(added.doc, self.tiebreaker), position)
            tuples = _key_tuples(added.doc, self._stage_keys(stage))
            stages_of.setdefault(position, {})[stage] = (added.ref, tuples)

        # Missing-stage candidates: their times per (stage, key), sorted.
        missing_times: dict[tuple[int, Key], list[int]] = {}
        for position, per_stage in stages_of.items():
            for stage, (_, tuples) in per_stage.items():
                if stage < until_stage and self.stages[stage].missing:
                    for key in tuples:
                        missing_times.setdefault((stage, key), []).append(ordinals[position].time)
        for times in missing_times.values():
            times.sort()

        order = sorted(ordinals.values(), key=functools.cmp_to_key(_Ordinal.cmp))
        found = self._run_state_machine(order, stages_of)
        accepted = [
            (last, key, events)
            for last, key, events in found
            if self._passes_missing(key, events, ordinals, missing_times)
        ]

        def result_order(a: tuple[_Ordinal, Key, Any], b: tuple[_Ordinal, Key, Any]) -> int:
            return a[0].cmp(b[0]) or compare_keys(a[1], b[1])

        accepted.sort(key=functools.cmp_to_key(result_order))
        results: list[tuple[list[int | None], list[object]]] = []
        for _, key, events in accepted:
            refs = [
                None if s.missing else stages_of[events[i]][i][0] for i, s in enumerate(self.stages)
            ]
            results.append((refs, [key_json(v, sample=False) for v in key]))
        first_five = sorted(no_time)[:5]
        return MatchResult(self._limit(results), len(no_time), [no_time[p] for p in first_five])

    def _run_state_machine(
        self, order: list[_Ordinal], stages_of: dict[Position, dict[int, tuple[int, set[Key]]]]
    ) -> list[tuple[_Ordinal, Key, dict[int, Position]]]:
        """Steps 1-3 of spec/sequences.md "Sequence matching": the completed sequences (last
        ordinal, key, positive stage -> event position), unordered."""
        if not self.positive:
            return []
        first, last = self.positive[0], self.positive[-1]
        previous = {s: p for p, s in zip(self.positive, self.positive[1:], strict=False)}
        pending: dict[tuple[Key, int], dict[int, Position]] = {}
        done: list[tuple[_Ordinal, Key, dict[int, Position]]] = []
        times = {o.position: o.time for o in order}
        for ordinal in order:
            position = ordinal.position
            per_stage = stages_of[position]
            for stage in reversed(self.positive):  # last stage first
                if stage not in per_stage:
                    continue
                for key in per_stage[stage][1]:
                    if stage == first:
                        started = {stage: position}
                        if stage == last:
                            done.append((ordinal, key, started))
                        else:
                            pending[(key, stage)] = started
                        continue
                    sequence = pending.pop((key, previous[stage]), None)
                    if sequence is None:
                        continue
                    span = times[position] - times[sequence[first]]
                    if self.maxspan_ms is not None and span > self.maxspan_ms:
                        continue
                    extended = {**sequence, stage: position}
                    if stage == last:
                        done.append((ordinal, key, extended))
                    else:
                        pending[(key, stage)] = extended
            until = per_stage.get(len(self.stages))
            if until is not None:  # after the stage transitions of the same event
                for key in until[1]:
                    for stage in self.positive:
                        pending.pop((key, stage), None)
        return done

    def _passes_missing(
        self,
        key: Key,
        events: dict[int, Position],
        ordinals: dict[Position, _Ordinal],
        missing_times: dict[tuple[int, Key], list[int]],
    ) -> bool:
        """spec/sequences.md "Missing events": whether a completed sequence is a result."""
        first, last = self.positive[0], self.positive[-1]
        t_first, t_last = ordinals[events[first]].time, ordinals[events[last]].time
        leading_latest: int | None = None
        trailing_earliest: int | None = None
        for stage, spec in enumerate(self.stages):
            if not spec.missing:
                continue
            times = missing_times.get((stage, key), [])
            if stage < first:
                before = [t for t in times if t < t_first]
                if before and (leading_latest is None or max(before) > leading_latest):
                    leading_latest = max(before)
            elif stage > last:
                after = [t for t in times if t > t_last]
                if after and (trailing_earliest is None or min(after) < trailing_earliest):
                    trailing_earliest = min(after)
            else:
                low = ordinals[events[max(p for p in self.positive if p < stage)]].time
                high = ordinals[events[min(p for p in self.positive if p > stage)]].time
                if any(low < t < high for t in times):
                    return False
        has_leading = self.stages[0].missing
        has_trailing = self.stages[-1].missing
        if has_leading and leading_latest is None:
            return True
        if has_trailing and trailing_earliest is None:
            return True
        if has_leading and has_trailing:
            assert leading_latest is not None and trailing_earliest is not None
            return self._exceeds(trailing_earliest - leading_latest)
        if has_leading:
            assert leading_latest is not None
            return self._exceeds(t_last - leading_latest)
        if has_trailing:
            assert trailing_earliest is not None
            return self._exceeds(trailing_earliest - t_first)
        return True

    def _exceeds(self, span: int) -> bool:
        return self.maxspan_ms is not None and span > self.maxspan_ms

    # ------------------------------------------------------------ samples

    def _samples(self) -> list[tuple[list[int | None], list[object]]]:
        """spec/sequences.md "Sample matching"."""
        count = len(self.stages)
        lists: list[dict[Key, list[tuple[Position, int]]]] = [{} for _ in self.stages]
        for (stage, position), added in sorted(self._added.items()):
            for key in _key_tuples(added.doc, self.stages[stage].keys):
                lists[stage].setdefault(key, []).append((position, added.ref))
        keys = set(lists[0])
        for per_key in lists[1:]:
            keys &= set(per_key)
        results: list[tuple[list[int | None], list[object]]] = []
        n = self.max_samples_per_key
        for key in sorted(keys, key=functools.cmp_to_key(compare_keys)):
            columns = [sorted(per_key[key]) for per_key in lists]
            if n is not None:
                columns = [column[: count + n - 1] for column in columns]
            for number, sample in enumerate(_distinct_tuples(columns)):
                if n is not None and number == n:
                    break
                refs: list[int | None] = [ref for _, ref in sample]
                results.append((refs, [key_json(v, sample=True) for v in key]))
        return results


def _distinct_tuples(
    columns: list[list[tuple[Position, int]]],
) -> Iterator[tuple[tuple[Position, int], ...]]:
    """One entry per column, no event (position) twice, in lexicographic order of the
    indexes (column 0's choice first): the backtracking of Elasticsearch's SampleIterator."""
    if not columns:
        yield ()
        return

    def walk(depth: int, chosen: list[tuple[Position, int]]) -> Iterator[Any]:
        if depth == len(columns):
            yield tuple(chosen)
            return
        used = {position for position, _ in chosen}
        for entry in columns[depth]:
            if entry[0] not in used:
                yield from walk(depth + 1, [*chosen, entry])

    yield from walk(0, [])


__all__ = ["MatchResult", "SequenceIRError", "SequenceMatcher", "compare_keys", "key_json"]
