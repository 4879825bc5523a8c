"""The reference sequence and sample matcher (python/imds_scan/reference/sequence.py) against
spec/sequences.md, with hand-made events and hand-written answers: each case decides one
rule of the spec and would fail were the rule different (the case's comment says how).

The cases are also the IR-level vectors spec/vectors/sequence_matcher.jsonl that both
matchers replay (spec/vectors/README.md); this file holds the file equal to them. After
changing a case: ``PYTHONPATH=python python tests/test_reference_sequence.py --write``.
"""

from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from imds_scan.reference.sequence import SequenceIRError, SequenceMatcher, key_json

VECTORS = Path(__file__).resolve().parent.parent / "spec" / "vectors" / "sequence_matcher.jsonl"

ANY = {"node": "any"}  # stage conditions are decided before the matcher: any node will do


def ref(name: str, field_type: str = "keyword", optional: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"field": name, "field_type": field_type}
    if optional:
        out["optional"] = True
    return out


def seq(
    stages: int,
    *,
    keys: list[dict[str, Any]] | None = None,
    stage_keys: dict[int, list[dict[str, Any]]] | None = None,
    missing: tuple[int, ...] = (),
    maxspan: int | None = None,
    until: list[dict[str, Any]] | None = None,
    pipes: tuple[tuple[str, int], ...] = (),
    size: int | None = None,
    tiebreaker: dict[str, Any] | None = None,
    timestamp: str = "@timestamp",
) -> dict[str, Any]:
    """A sequence rule's IR: ``stages`` stages with ``keys`` (default: by ``k``)."""
    default = [ref("k")] if keys is None else keys
    body = {
        "timestamp_field": timestamp,
        "tiebreaker_field": tiebreaker,
        "maxspan_ms": maxspan,
        "stages": [
            {"expr": ANY, "keys": (stage_keys or {}).get(i, default), "missing": i in missing}
            for i in range(stages)
        ],
        "until": None if until is None else {"expr": ANY, "keys": until},
        "pipes": [{"pipe": p, "n": n} for p, n in pipes],
        "size": size,
    }
    return {"ir_version": 1, "id": "t", "name": "t", "severity": "low", "sequence": body}


def sample(
    stages: int,
    *,
    keys: list[dict[str, Any]] | None = None,
    per_key: int | None = None,
    pipes: tuple[tuple[str, int], ...] = (),
    size: int | None = None,
) -> dict[str, Any]:
    default = [ref("k")] if keys is None else keys
    body = {
        "timestamp_field": "@timestamp",
        "tiebreaker_field": None,
        "stages": [{"expr": ANY, "keys": default} for _ in range(stages)],
        "max_samples_per_key": per_key,
        "pipes": [{"pipe": p, "n": n} for p, n in pipes],
        "size": size,
    }
    return {"ir_version": 1, "id": "t", "name": "t", "severity": "low", "sample": body}


@dataclass
class Case:
    """Events are named by their line (and rank, default 0); ``expect`` lists the results in
    order as (event lines per stage, None for a missing stage; join keys as output)."""

    name: str
    ir: dict[str, Any]
    events: list[tuple[int, tuple[int, ...], Any]] | list[tuple[int, tuple[int, ...], Any, int]]
    expect: list[tuple[list[int | None], list[object]]]
    no_time: int = 0
    no_time_lines: list[int] = field(default_factory=list)

    def candidates(self) -> list[dict[str, Any]]:
        out = []
        for entry in self.events:
            line, stages, event = entry[0], entry[1], entry[2]
            rank = entry[3] if len(entry) > 3 else 0  # type: ignore[misc]
            for stage in stages:
                out.append({"stage": stage, "rank": rank, "line": line, "event": event})
        return out

    def vector(self) -> dict[str, Any]:
        candidates = self.candidates()

        def index(stage: int, line: int) -> int:
            found = [
                i for i, c in enumerate(candidates) if c["stage"] == stage and c["line"] == line
            ]
            assert len(found) == 1, (self.name, stage, line)
            return found[0]

        matches = [
            [[None if line is None else index(s, line) for s, line in enumerate(lines)], keys]
            for lines, keys in self.expect
        ]
        no_time_refs = [
            min(i for i, c in enumerate(candidates) if c["line"] == line)
            for line in self.no_time_lines
        ]
        return {
            "name": self.name,
            "ir": self.ir,
            "candidates": candidates,
            "matches": matches,
            "no_time": self.no_time,
            "no_time_refs": no_time_refs,
        }


def e(ts: object, **fields: object) -> dict[str, Any]:
    """An event at ``ts`` (None: no timestamp) with ``fields`` (``a__b`` is ``a.b``)."""
    out: dict[str, Any] = {} if ts is None else {"@timestamp": ts}
    for name, value in fields.items():
        out[name.replace("__", ".")] = value
    return out


# ---------------------------------------------------------------- the cases

DOCS_USERS = [
    (1, "root", 0),
    (2, "root", 0),
    (3, "elkbee", 1),
    (4, "root", 1),
    (5, "root", 1),
    (6, "elkbee", 0),
    (7, "root", 0),
    (8, "elkbee", 1),
    (9, "root", 2),
    (10, "elkbee", 2),
    (11, "root", 2),
]

CASES: list[Case] = [
    # -------- the state machine
    Case(
        # Elasticsearch's own example: 2 replaces 1 at state A (else [1, 4, 9]); one machine
        # per user; 5 and 11 find nothing. Results by last event: root's 9 before elkbee's 10.
        "docs state machine: newer pending sequence replaces older, one machine per key",
        seq(3, keys=[ref("user.name")]),
        [(n, (st,), e(n, user__name=u)) for n, u, st in DOCS_USERS],
        [([2, 4, 9], ["root"]), ([6, 8, 10], ["elkbee"])],
    ),
    Case(
        # Every event is a candidate of both stages: processed last stage first, so an event
        # never fills two stages (else [1, 1] ...), and ends one sequence while starting the next.
        "an event of both stages ends one sequence and starts the next",
        seq(2, keys=[]),
        [(n, (0, 1), e(n)) for n in (1, 2, 3, 4)],
        [([1, 2], []), ([2, 3], []), ([3, 4], [])],
    ),
    Case(
        # Elasticsearch's QA shape: [first three][any][any] over six events.
        "three stages with a condition on the first",
        seq(3, keys=[]),
        [(n, (0, 1, 2) if n <= 3 else (1, 2), e(n)) for n in (1, 2, 3, 4, 5, 6)],
        [([1, 2, 3], []), ([2, 3, 4], []), ([3, 4, 5], [])],
    ),
    Case(
        # A single event cannot be a whole two-stage sequence.
        "one event alone is no sequence",
        seq(2, keys=[]),
        [(1, (0, 1), e(1))],
        [],
    ),
    # -------- maxspan
    Case(
        # The span from the first event may equal maxspan (10 ms) but not pass it.
        "maxspan: equal is inside, one more is out",
        seq(2, keys=[], maxspan=10),
        [(1, (0,), e(0)), (2, (1,), e(10)), (3, (0,), e(20)), (4, (1,), e(31))],
        [([1, 2], [])],
    ),
    Case(
        # Measured from the first event, not the previous one: gaps of 6 ms, total 12 ms.
        "maxspan: from the first event, not between neighbours",
        seq(3, keys=[], maxspan=10),
        [(1, (0,), e(0)), (2, (1,), e(6)), (3, (2,), e(12))],
        [],
    ),
    Case(
        # The newer first event replaced the older one, so the span is 7 ms, not 15.
        "maxspan: the replacing first event makes the span",
        seq(2, keys=[], maxspan=10),
        [(1, (0,), e(0)), (2, (0,), e(8)), (3, (1,), e(15))],
        [([2, 3], [])],
    ),
    # -------- until
    Case(
        # The documentation's example: A,B and A,B,C match; A,C,B does not.
        "until between two events ends the sequence, after them it does not",
        seq(2, until=[ref("k")]),
        [
            (1, (0,), e(1, k="x")),
            (2, (1,), e(2, k="x")),
            (3, (0,), e(3, k="y")),
            (4, (1,), e(4, k="y")),
            (5, (2,), e(5, k="y")),
            (6, (0,), e(6, k="z")),
            (7, (2,), e(7, k="z")),
            (8, (1,), e(8, k="z")),
        ],
        [([1, 2], ["x"]), ([3, 4], ["y"])],
    ),
    Case(
        # An until of another key changes nothing.
        "until only ends sequences of its own key",
        seq(2, until=[ref("k")]),
        [(1, (0,), e(1, k="x")), (2, (2,), e(2, k="other")), (3, (1,), e(3, k="x"))],
        [([1, 3], ["x"])],
    ),
    Case(
        # Elasticsearch rejects an extension only for an until strictly before the new event:
        # an event that is the last stage and the until completes the sequence (until-first
        # would give nothing).
        "an event both last stage and until still completes the sequence",
        seq(2, until=[ref("k")]),
        [(1, (0,), e(1, k="x")), (2, (1, 2), e(2, k="x"))],
        [([1, 2], ["x"])],
    ),
    Case(
        # ... and a sequence that event starts is ended at once (until-first would give [1, 2]).
        "an event both first stage and until starts nothing that lasts",
        seq(2, until=[ref("k")]),
        [(1, (0, 2), e(1, k="x")), (2, (1,), e(2, k="x"))],
        [],
    ),
    Case(
        # ... and a sequence it extends to a middle stage is ended too.
        "an event both middle stage and until ends what it extended",
        seq(3, until=[ref("k")]),
        [(1, (0,), e(1, k="x")), (2, (1, 3), e(2, k="x")), (3, (2,), e(3, k="x"))],
        [],
    ),
    Case(
        # The until ends pending sequences at every state of the key, not only the first.
        "until ends the pending sequences of every state",
        seq(3, until=[ref("k")]),
        [
            (1, (0,), e(1, k="x")),
            (2, (1,), e(2, k="x")),
            (3, (0,), e(3, k="x")),
            (4, (3,), e(4, k="x")),
            (5, (2,), e(5, k="x")),
            (6, (1,), e(6, k="x")),
        ],
        [],
    ),
    # -------- order of events: time, tiebreaker, position
    Case(
        # Same time: the tiebreaker (a long) orders them, numerically: 9 before 10 (as text
        # "10" < "9" would put them the other way and give no match).
        "a numeric tiebreaker orders events of the same time as numbers",
        seq(2, keys=[], tiebreaker=ref("seq", "long")),
        [(1, (1,), e(5, seq=10)), (2, (0,), e(5, seq=9))],
        [([2, 1], [])],
    ),
    Case(
        # A missing tiebreaker sorts after every present one, whatever the position.
        "a missing tiebreaker sorts after present ones",
        seq(2, keys=[], tiebreaker=ref("seq", "long")),
        [(1, (1,), e(5)), (2, (0,), e(5, seq=1))],
        [([2, 1], [])],
    ),
    Case(
        # A tiebreaker with two values is missing (Elasticsearch refuses it).
        "a multi-valued tiebreaker counts as missing",
        seq(2, keys=[], tiebreaker=ref("seq", "long")),
        [(1, (1,), e(5, seq=[1, 2])), (2, (0,), e(5, seq=7))],
        [([2, 1], [])],
    ),
    Case(
        # Without a tiebreaker, position orders events of the same time: input rank before
        # line (rank 0 line 9 comes before rank 1 line 1).
        "same time: input rank, then line",
        seq(2, keys=[]),
        [(1, (1,), e(5), 1), (9, (0,), e(5), 0)],
        [([9, 1], [])],
    ),
    Case(
        # Time wins over position: the later line with the earlier time comes first.
        "time orders events across inputs and lines",
        seq(2, keys=[]),
        [(1, (1,), e("2024-01-01T00:00:01Z")), (2, (0,), e("2024-01-01T00:00:00.500Z"))],
        [([2, 1], [])],
    ),
    Case(
        # Every spelling of a time: epoch millis, a digit string, ISO with an offset (these
        # three are the same instant, ordered then by line), a fraction dropped past the ms.
        "time spellings are read as dates (epoch millis, digits, offsets)",
        seq(4, keys=[]),
        [
            (1, (0,), e(1504126053000)),
            (2, (1,), e("1504126053000")),
            (3, (2,), e("2017-08-30T22:47:33+02:00")),
            (4, (3,), e("2017-08-30T20:47:33.0009Z")),
        ],
        [([1, 2, 3, 4], [])],
    ),
    Case(
        # No time, an unreadable time and two times: none takes part; counted once per
        # event (line 3 is a candidate of both stages), refs of the first by position.
        "candidates without exactly one time are counted, not matched",
        seq(2, keys=[]),
        [
            (1, (0,), e(None)),
            (2, (0,), e("yesterday")),
            (3, (0, 1), e([1, 2])),
            (4, (1,), e(3)),
        ],
        [],
        no_time=3,
        no_time_lines=[1, 2, 3],
    ),
    # -------- join keys
    Case(
        # Each value of a multi-valued key is a key of its own: event 1 (tags a, b) joins
        # event 2 (a) and event 3 (b); one completing event with two keys: key order.
        "multi-valued keys: every value joins, results by last event then key",
        seq(2, keys=[ref("tags")]),
        [
            (1, (0,), e(1, tags=["b", "a"])),
            (2, (1,), e(2, tags=["b", "c", "a"])),
        ],
        [([1, 2], ["a"]), ([1, 2], ["b"])],
    ),
    Case(
        # Two multi-valued keys: the cartesian product, ordered by key (first key first).
        "two multi-valued keys: cartesian product",
        seq(2, keys=[ref("t"), ref("i")]),
        [
            (1, (0,), e(1, t=["t4", "t3"], i=["i2", "i1", "i9"])),
            (2, (1,), e(2, t=["t3", "t4", "t5"], i=["i0", "i1", "i2"])),
        ],
        [
            ([1, 2], ["t3", "i1"]),
            ([1, 2], ["t3", "i2"]),
            ([1, 2], ["t4", "i1"]),
            ([1, 2], ["t4", "i2"]),
        ],
    ),
    Case(
        # A repeated value is one key: one result, not two.
        "a repeated key value counts once",
        seq(2, keys=[ref("tags")]),
        [(1, (0,), e(1, tags=["a", "a"])), (2, (1,), e(2, tags=["a", "a"]))],
        [([1, 2], ["a"])],
    ),
    Case(
        # A non-optional key without a value: not a candidate (no null join of 1 and 2);
        # nulls in arrays are no values.
        "a non-optional key must have a value",
        seq(2, keys=[ref("k")]),
        [
            (1, (0,), e(1)),
            (2, (1,), e(2, k=None)),
            (3, (0,), e(3, k=[None, "x"])),
            (4, (1,), e(4, k=[])),
            (5, (1,), e(5, k="x")),
        ],
        [([3, 5], ["x"])],
    ),
    Case(
        # An optional key (?k) without a value is null, and null joins null.
        "an optional key may be null",
        seq(2, keys=[ref("k", optional=True)]),
        [(1, (0,), e(1)), (2, (1,), e(2, k=None)), (3, (1,), e(3, k="x"))],
        [([1, 2], [None])],
    ),
    Case(
        # Keys compare as typed values: on a long key 80, "80", 80.0 and "8e1" are one key
        # (the output is the number); on a keyword key 80 and "80" agree but 80.0 does not.
        "keys compare by type: long values by number, keyword by text",
        seq(2, keys=[ref("n", "long")]),
        [
            (1, (0,), e(1, n="80")),
            (2, (1,), e(2, n=80.0)),
            (3, (0,), e(3, n="8e1")),
            (4, (1,), e(4, n=80)),
        ],
        [([1, 2], [80]), ([3, 4], [80])],
    ),
    Case(
        "keyword keys compare the JSON text",
        seq(2, keys=[ref("n")]),
        [(1, (0,), e(1, n=80)), (2, (1,), e(2, n=80.0)), (3, (1,), e(3, n="80"))],
        [([1, 3], ["80"])],
    ),
    Case(
        # Per-stage keys of different fields join by value (file.path = process.path).
        "per-stage keys: different fields, same value",
        seq(
            2,
            stage_keys={0: [ref("user"), ref("file.path")], 1: [ref("user"), ref("p.path")]},
        ),
        [
            (1, (0,), e(1, user="u", file={"path": "/x"})),
            (2, (1,), e(2, user="u", p={"path": "/y"})),
            (3, (1,), e(3, user="u", **{"p.path": "/x"})),
        ],
        [([1, 3], ["u", "/x"])],
    ),
    Case(
        # Results are ordered by their last event: key b's sequence (2, 5) ends before key
        # a's (1, 10), so it comes first although it starts later.
        "results come in the order of their last event",
        seq(2),
        [
            (1, (0,), e(1, k="a")),
            (2, (0,), e(2, k="b")),
            (5, (1,), e(5, k="b")),
            (10, (1,), e(10, k="a")),
        ],
        [([2, 5], ["b"]), ([1, 10], ["a"])],
    ),
    Case(
        # Output of key values as Elasticsearch returns them: a date as ISO text with
        # milliseconds, an address in canonical text, a boolean, a float's shortest decimal.
        "key values in output: date text, canonical ip, boolean, float",
        seq(
            2,
            keys=[ref("d", "date"), ref("ip", "ip"), ref("b", "boolean"), ref("f", "float")],
        ),
        [
            (1, (0,), e(1, d=1504126053000, ip="::FFFF:10.0.0.1", b="true", f=0.1)),
            (2, (1,), e(2, d="2017-08-30T20:47:33Z", ip="10.0.0.1", b=True, f="0.1")),
        ],
        [([1, 2], ["2017-08-30T20:47:33.000Z", "10.0.0.1", True, 0.1])],
    ),
    Case(
        # An until with two key values ends the pending sequences of both keys.
        "a multi-valued until ends every key it has",
        seq(2, until=[ref("k")]),
        [
            (1, (0,), e(1, k=["a", "b", "c"])),
            (2, (2,), e(2, k=["a", "b"])),
            (3, (1,), e(3, k=["a", "b", "c"])),
        ],
        [([1, 3], ["c"])],
    ),
    Case(
        # Keys of different types never join, even with equal text (80 long, "80" keyword).
        "keys of different types never join",
        seq(2, stage_keys={0: [ref("n", "long")], 1: [ref("n")]}),
        [(1, (0,), e(1, n=80)), (2, (1,), e(2, n="80"))],
        [],
    ),
    Case(
        # A keyword tiebreaker orders by UTF-8 bytes: U+FFFF before U+1F600 (UTF-16 order
        # would put the emoji, a surrogate pair, first).
        "a keyword tiebreaker orders by UTF-8 bytes",
        seq(2, keys=[], tiebreaker=ref("tb")),
        [(1, (1,), e(5, tb="\U0001f600")), (2, (0,), e(5, tb="\uffff"))],
        [([2, 1], [])],
    ),
    # -------- pipes and size
    Case(
        "head keeps the first results",
        seq(2, keys=[], pipes=(("head", 2),)),
        [(n, (0, 1), e(n)) for n in (1, 2, 3, 4, 5)],
        [([1, 2], []), ([2, 3], [])],
    ),
    Case(
        "tail keeps the last results, in order",
        seq(2, keys=[], pipes=(("tail", 2),)),
        [(n, (0, 1), e(n)) for n in (1, 2, 3, 4, 5)],
        [([3, 4], []), ([4, 5], [])],
    ),
    Case(
        # Pipes apply in order (head 3 then tail 2 is not tail 2 then head 3), then size.
        "pipes apply in order, then size",
        seq(2, keys=[], pipes=(("head", 3), ("tail", 2)), size=1),
        [(n, (0, 1), e(n)) for n in (1, 2, 3, 4, 5)],
        [([2, 3], [])],
    ),
    Case(
        "tail 0 gives nothing",
        seq(2, keys=[], pipes=(("tail", 0),)),
        [(n, (0, 1), e(n)) for n in (1, 2, 3)],
        [],
    ),
    # -------- missing events
    Case(
        # [n] ![m] [n] within 1 s: the m at 3 rejects (2, 4) but not (1, 2).
        "missing in the middle rejects the sequence around it",
        seq(3, keys=[], missing=(1,), maxspan=1000),
        [(1, (0, 2), e(1)), (2, (0, 2), e(2)), (3, (1,), e(3)), (4, (0, 2), e(4))],
        [([1, None, 2], [])],
    ),
    Case(
        # Strictly between by time: a missing event of the same millisecond as the event
        # after it does not count (the check is a timestamp range, no tiebreaker).
        "missing in the middle: strictly between the two times",
        seq(3, keys=[], missing=(1,)),
        [(1, (0,), e(1)), (2, (1,), e(5)), (3, (2,), e(5))],
        [([1, None, 3], [])],
    ),
    Case(
        # The missing check filters results and leaves the state machine alone: (1, 2, 4)
        # is rejected (m at 3) but had consumed (1, 2); (2, 4, 5) comes from 2 and 4.
        "a rejected result still consumed its pending sequence",
        seq(4, keys=[], missing=(2,), maxspan=1000),
        [
            (1, (0, 1, 3), e(0)),
            (2, (0, 1, 3), e(1)),
            (3, (2,), e(2)),
            (4, (0, 1, 3), e(3)),
            (5, (0, 1, 3), e(4)),
        ],
        [([2, 4, None, 5], [])],
    ),
    Case(
        # Trailing: a result unless a missing event follows within maxspan of the first.
        "trailing missing within maxspan rejects",
        seq(2, keys=[], missing=(1,), maxspan=1000),
        [(1, (0,), e(1)), (2, (0,), e(2)), (3, (1,), e(3)), (4, (0,), e(5000))],
        [([4, None], [])],
    ),
    Case(
        # Leading: the latest missing event before the sequence, within maxspan of its last
        # event, rejects: 3 min span; missing at 12:00 and 12:20.
        "leading missing within maxspan rejects",
        seq(2, keys=[], missing=(0,), maxspan=180000),
        [
            (1, (0,), e("2022-05-04T12:00:00.000Z")),
            (2, (1,), e("2022-05-04T12:10:00.001Z")),
            (3, (0,), e("2022-05-04T12:20:00.001Z")),
            (4, (1,), e("2022-05-04T12:21:00.001Z")),
            (5, (1,), e("2022-05-04T12:29:00.001Z")),
        ],
        [([None, 2], []), ([None, 5], [])],
    ),
    Case(
        # Leading and trailing: rejected only when both are found and fit in maxspan
        # together (21 min: 2 rejected; 4 has a leading event but no trailing one).
        "leading and trailing: both must be found within maxspan",
        seq(3, keys=[], missing=(0, 2), maxspan=21 * 60000),
        [
            (1, (0, 2), e("2022-05-04T12:00:00.000Z")),
            (2, (1,), e("2022-05-04T12:10:00.001Z")),
            (3, (0, 2), e("2022-05-04T12:20:00.001Z")),
            (4, (1,), e("2022-05-04T12:21:00.001Z")),
        ],
        [([None, 4, None], [])],
    ),
    Case(
        "leading and trailing further apart than maxspan do not reject",
        seq(3, keys=[], missing=(0, 2), maxspan=19 * 60000),
        [
            (1, (0, 2), e("2022-05-04T12:00:00.000Z")),
            (2, (1,), e("2022-05-04T12:10:00.001Z")),
            (3, (0, 2), e("2022-05-04T12:20:00.001Z")),
            (4, (1,), e("2022-05-04T12:21:00.001Z")),
        ],
        [([None, 2, None], []), ([None, 4, None], [])],
    ),
    Case(
        # Missing candidates count only under the sequence's key.
        "missing events of another key do not reject",
        seq(3, missing=(1,)),
        [(1, (0,), e(1, k="x")), (2, (1,), e(2, k="y")), (3, (2,), e(3, k="x"))],
        [([1, None, 3], ["x"])],
    ),
    Case(
        # Without maxspan, any trailing missing event found rejects.
        "trailing missing without maxspan: any later one rejects",
        seq(2, keys=[], missing=(1,)),
        [(1, (0,), e(1)), (2, (1,), e(999999)), (3, (0,), e(1000000))],
        [([3, None], [])],
    ),
    Case(
        # A missing candidate with two key values rejects the sequences of both keys.
        "a multi-valued missing event rejects every key it has",
        seq(3, missing=(1,)),
        [
            (1, (0,), e(1, k=["a", "b", "c"])),
            (2, (1,), e(2, k=["a", "b"])),
            (3, (2,), e(3, k=["a", "b", "c"])),
        ],
        [([1, None, 3], ["c"])],
    ),
    Case(
        # Two missing stages side by side: each is looked for between the same two events.
        "two adjacent missing stages are each checked",
        seq(4, keys=[], missing=(1, 2)),
        [(1, (0, 3), e(1)), (2, (2,), e(2)), (3, (0, 3), e(3)), (4, (0, 3), e(4))],
        [([3, None, None, 4], [])],
    ),
    Case(
        # Without maxspan, any leading missing event found before the sequence rejects.
        "leading missing without maxspan: any earlier one rejects",
        seq(2, keys=[], missing=(0,)),
        [(1, (1,), e(1)), (2, (0,), e(2)), (3, (1,), e(3))],
        [([None, 1], [])],
    ),
    # -------- samples
    Case(
        # Keys present in every stage, in key order (null first, then by UTF-8 bytes: "GTA"
        # before "doom"); time plays no part (no timestamps, stage 2 before stage 1).
        "samples: keys in every stage, in key order, time ignored",
        sample(2, keys=[ref("host"), ref("os", optional=True)]),
        [
            (1, (1,), e(None, host="doom", os="win10")),
            (2, (0,), e(None, host="doom", os="win10")),
            (3, (0,), e(5, host="doom")),
            (4, (1,), e(1, host="doom")),
            (5, (0,), e(9, host="GTA")),
            (6, (1,), e(2, host="GTA")),
            (7, (0,), e(3, host="solo")),
        ],
        [([5, 6], ["GTA", None]), ([3, 4], ["doom", None]), ([2, 1], ["doom", "win10"])],
    ),
    Case(
        # Two samples per key: the first two in backtracking order over position-ordered
        # lists: (1, 3), (2, 3); redhat's key comes first.
        "samples: max_samples_per_key takes the first tuples in order",
        sample(2, keys=[ref("os")], per_key=2),
        [
            (1, (0,), e(None, os="win10")),
            (2, (0,), e(None, os="win10")),
            (3, (1,), e(None, os="win10")),
            (4, (0,), e(None, os="win10")),
            (6, (1,), e(None, os="redhat")),
            (7, (0,), e(None, os="redhat")),
        ],
        [([7, 6], ["redhat"]), ([1, 3], ["win10"]), ([2, 3], ["win10"])],
    ),
    Case(
        # With no limit, every tuple of distinct events; an event of both stages is used
        # once per sample (no (1, 1)).
        "samples: no limit gives every tuple of distinct events",
        sample(2, keys=[]),
        [(1, (0, 1), e(None)), (2, (0, 1), e(None)), (3, (1,), e(None))],
        [([1, 2], []), ([1, 3], []), ([2, 1], []), ([2, 3], [])],
    ),
    Case(
        # One event for every stage cannot make a sample of two distinct events.
        "samples: one event cannot fill two stages",
        sample(2, keys=[]),
        [(1, (0, 1), e(None))],
        [],
    ),
    Case(
        # Sample keys: a date as epoch milliseconds (a composite aggregation's key), and a
        # non-optional key without a value excludes the event.
        "samples: date keys as epoch millis; a non-optional key must exist",
        sample(2, keys=[ref("d", "date")]),
        [
            (1, (0,), e(None, d="1970-01-02T00:00:00Z")),
            (2, (1,), e(None, d=86400000)),
            (3, (0,), e(None)),
            (4, (1,), e(None)),
        ],
        [([1, 2], [86400000])],
    ),
    Case(
        # Multi-valued sample keys: event 1 is in stage 0 under a and under b.
        "samples: a multi-valued key puts an event under each value",
        sample(2, keys=[ref("tags")]),
        [
            (1, (0,), e(None, tags=["b", "a"])),
            (2, (1,), e(None, tags="a")),
            (3, (1,), e(None, tags=["b", "z"])),
        ],
        [([1, 2], ["a"]), ([1, 3], ["b"])],
    ),
    Case(
        "samples: size keeps the first results",
        sample(2, keys=[ref("k")], size=1),
        [
            (1, (0,), e(None, k="b")),
            (2, (1,), e(None, k="b")),
            (3, (0,), e(None, k="a")),
            (4, (1,), e(None, k="a")),
        ],
        [([3, 4], ["a"])],
    ),
]


# ---------------------------------------------------------------- running them


def run(vector: dict[str, Any], order: list[int] | None = None) -> dict[str, Any]:
    matcher = SequenceMatcher(json.dumps(vector["ir"]))
    candidates = vector["candidates"]
    for i in order if order is not None else range(len(candidates)):
        c = candidates[i]
        event = c["event"] if isinstance(c["event"], str) else json.dumps(c["event"])
        matcher.add(c["stage"], c["rank"], c["line"], event, i)
    result = matcher.finish()
    return {
        "matches": [[refs, keys] for refs, keys in result.matches],
        "no_time": result.no_time,
        "no_time_refs": result.no_time_refs,
    }


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case: Case) -> None:
    vector = case.vector()
    assert run(vector) == {k: vector[k] for k in ("matches", "no_time", "no_time_refs")}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_order_of_add_does_not_matter(case: Case) -> None:
    vector = case.vector()
    order = list(range(len(vector["candidates"])))
    random.Random(case.name).shuffle(order)
    assert run(vector, order) == run(vector)


def test_vector_file_holds_the_cases() -> None:
    """spec/vectors/sequence_matcher.jsonl is these cases (regenerate with --write)."""
    lines = VECTORS.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines if line.strip()] == [c.vector() for c in CASES]


def test_case_names_are_unique() -> None:
    assert len({c.name for c in CASES}) == len(CASES)


# ---------------------------------------------------------------- the interface


def test_duplicate_add_keeps_one_candidate() -> None:
    matcher = SequenceMatcher(json.dumps(seq(2, keys=[])))
    for _ in range(2):
        matcher.add(0, 0, 1, json.dumps(e(1)), 7)
    matcher.add(1, 0, 2, json.dumps(e(2)), 8)
    assert matcher.finish().matches == [([7, 8], [])]


def test_no_time_refs_are_the_first_five_by_position() -> None:
    matcher = SequenceMatcher(json.dumps(seq(2, keys=[])))
    for line in range(10, 0, -1):
        matcher.add(0, 0, line, json.dumps(e(None)), 100 + line)
    result = matcher.finish()
    assert (result.no_time, result.no_time_refs) == (10, [101, 102, 103, 104, 105])


def test_samples_count_no_time_as_zero() -> None:
    matcher = SequenceMatcher(json.dumps(sample(2, keys=[])))
    matcher.add(0, 0, 1, "{}", 1)
    matcher.add(1, 0, 2, "{}", 2)
    result = matcher.finish()
    assert (result.matches, result.no_time) == ([([1, 2], [])], 0)


def test_stage_out_of_range_is_refused() -> None:
    matcher = SequenceMatcher(json.dumps(seq(2, keys=[])))
    with pytest.raises(ValueError, match="stage 2 out of range"):
        matcher.add(2, 0, 1, "{}", 1)  # no until stage in this rule
    with_until = SequenceMatcher(json.dumps(seq(2, keys=[], until=[])))
    with_until.add(2, 0, 1, "{}", 1)


@pytest.mark.parametrize(
    ("ir", "message"),
    [
        ({"ir_version": 1}, "exactly one of sequence, sample"),
        (seq(2, stage_keys={1: []}), "same number of keys"),
        (seq(2, keys=[{"field": "k", "field_type": "string"}]), "unknown field_type"),
        (seq(2, pipes=(("head", -1),)), "pipe"),
    ],
)
def test_bad_ir_is_refused(ir: dict[str, Any], message: str) -> None:
    with pytest.raises(SequenceIRError, match=message):
        SequenceMatcher(json.dumps(ir))


def test_bare_tiebreaker_name_is_a_keyword_field() -> None:
    """The first draft's tiebreaker_field was a bare name: read as keyword ("10" < "9")."""
    ir = seq(2, keys=[])
    ir["sequence"]["tiebreaker_field"] = "seq"
    matcher = SequenceMatcher(json.dumps(ir))
    matcher.add(0, 0, 1, json.dumps(e(5, seq=10)), 1)
    matcher.add(1, 0, 2, json.dumps(e(5, seq=9)), 2)
    assert matcher.finish().matches == [([1, 2], [])]


@pytest.mark.parametrize(
    ("value", "sample_", "out"),
    [
        (("ip", "::1"), False, "::1"),
        (("ip", "2001:db8:0:0:1:0:0:1"), False, "2001:db8::1:0:0:1"),
        (("ip", "2001:db8:0:1:1:1:1:1"), False, "2001:db8:0:1:1:1:1:1"),
        (("ip", "::ffff:1.2.3.4"), False, "1.2.3.4"),
        (("half_float", "0.1"), False, 0.099975586),
        (("float", "0.1"), False, 0.1),
        (("float", "0.1"), True, 0.10000000149011612),
        (("float", "16777217"), False, 16777216.0),
        (("date", "0001-01-01T00:00:00Z"), False, "0001-01-01T00:00:00.000Z"),
        (("date", "1969-12-31T23:59:59.999Z"), True, -1),
        (("long", "-5"), False, -5),
        (("double", "0.1"), False, 0.1),
    ],
)
def test_key_json(value: tuple[str, str], sample_: bool, out: object) -> None:
    from imds_scan.reference.typed import read_value

    typed = read_value(value[0], value[1])
    assert typed is not None
    assert key_json((value[0], typed), sample=sample_) == out


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    VECTORS.write_text(
        "".join(json.dumps(c.vector(), ensure_ascii=False) + "\n" for c in CASES),
        encoding="utf-8",
    )


# ---------------------------------------------------------------- against Elasticsearch's shape


def _window_model(
    stages: int,
    hits: list[tuple[int, str, tuple[int, int], int]],
    untils: list[tuple[str, tuple[int, int]]],
    maxspan: int | None,
) -> list[tuple[list[int], list[object]]]:
    """Steps 2-3 as Elasticsearch's SequenceMatcher runs them inside one window, written
    independently of the event-by-event wording of the spec: stage after stage, each stage's
    hits in order; per key and stage a list of sequences ordered by their last ordinal; a hit
    takes the latest sequence of the previous stage strictly before it and drops it and all
    older ones; an until rejects when last(sequence) <= until < hit. hits: (stage, key,
    ordinal = (time, line), line)."""
    groups: list[dict[str, list[list[tuple[tuple[int, int], int]]]]] = [{} for _ in range(stages)]
    done: list[tuple[tuple[int, int], str, list[int]]] = []
    for stage in range(stages):
        for _, key, ordinal, line in sorted(h for h in hits if h[0] == stage):
            if stage == 0:
                groups[0].setdefault(key, []).append([(ordinal, line)])
                continue
            group = groups[stage - 1].get(key, [])
            before = [i for i, s in enumerate(group) if s[-1][0] < ordinal]
            if not before:
                continue
            sequence = group[before[-1]]
            del group[: before[-1] + 1]
            if maxspan is not None and ordinal[0] - sequence[0][0][0] > maxspan:
                continue
            nearest = [u for k, u in untils if k == key and u < ordinal]
            if nearest and max(nearest) >= sequence[-1][0]:
                continue
            extended = [*sequence, (ordinal, line)]
            if stage == stages - 1:
                done.append((ordinal, key, [line for _, line in extended]))
            else:
                groups[stage].setdefault(key, []).append(extended)
    done.sort()
    return [(lines, [key]) for _, key, lines in done]


@pytest.mark.parametrize("seed", range(300))
def test_event_by_event_steps_equal_elasticsearchs_window(seed: int) -> None:
    """The spec's event-by-event state machine (replacement, last stage first, until after
    the stage transitions of its event) gives what Elasticsearch's stage-by-stage matcher
    gives, on random streams with ties, several stages per event, untils and maxspan."""
    rng = random.Random(seed)
    stages = rng.choice([2, 3])
    maxspan = rng.choice([None, 2, 4])
    with_until = rng.random() < 0.6
    events = []
    for line in range(1, rng.randint(2, 12) + 1):
        choices = list(range(stages + (1 if with_until else 0)))
        own = sorted(rng.sample(choices, rng.randint(1, min(2, len(choices)))))
        events.append((line, tuple(own), rng.randint(0, 6), rng.choice("ab")))
    ir = seq(stages, maxspan=maxspan, until=[ref("k")] if with_until else None)
    matcher = SequenceMatcher(json.dumps(ir))
    for line, own, time, key in events:
        for stage in own:
            matcher.add(stage, 0, line, json.dumps(e(time, k=key)), line * 10 + stage)
    got = [
        ([r // 10 for r in refs if r is not None], keys) for refs, keys in matcher.finish().matches
    ]
    hits = [(s, k, (t, line), line) for line, own, t, k in events for s in own if s < stages]
    untils = [(k, (t, line)) for line, own, t, k in events if stages in own]
    assert got == _window_model(stages, hits, untils, maxspan), events
