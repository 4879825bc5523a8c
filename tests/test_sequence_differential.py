"""Differential test of the two sequence matchers (spec/sequences.md, "Matchers"): the Rust one
(``imds_scan._engine.SequenceMatcher``) and the reference (``imds_scan.reference.sequence.
SequenceMatcher``) get the same generated candidate streams and must give the same results.

The streams are built to meet the hard cases: few distinct times (ties decided by tiebreaker,
then by input rank and line), events without a usable time, keys that are missing, null, arrays
or spelled two ways, events that are candidates of several stages and of ``until``, missing-event
stages, ``runs``-like repeated stages, ``maxspan`` at its boundary, pipes; samples with several
samples per key. The rule IR is written by hand from the spec's "IR" section (the matchers do
not evaluate the stage conditions: the caller says which stage an event is a candidate of).
The reference alone is also held to that order independence on its own streams.
Candidates are added in a shuffled order: the result must not depend on it."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imds_scan._engine import SequenceMatcher as RustMatcher
from imds_scan.reference.sequence import SequenceMatcher as ReferenceMatcher


def matchers() -> tuple[Any, Any]:
    """The Rust and the reference SequenceMatcher classes."""
    return RustMatcher, ReferenceMatcher


def reference_matcher() -> Any:
    return ReferenceMatcher


KEY_FIELDS = [
    ("host.id", "keyword", ["h1", "h2", "H1"]),
    ("process.pid", "long", [1, 2, "2", 70000]),
    ("source.ip", "ip", ["10.0.0.1", "::ffff:10.0.0.1", "10.0.0.2", "2001:db8::1"]),
    ("event.created", "date", ["2024-05-01T10:00:00Z", 1714557600000, "2024-05-01", "x"]),
]
TIEBREAKERS = [("event.sequence", "long"), ("event.id", "keyword")]


def stage_expr(n: int) -> dict[str, Any]:
    return {
        "node": "pred",
        "field": "event.action",
        "field_type": "keyword",
        "op": "eq",
        "values": [f"s{n}"],
    }


def fieldref(field: str, ftype: str, optional: bool = False) -> dict[str, Any]:
    ref: dict[str, Any] = {"field": field, "field_type": ftype}
    if optional:
        ref["optional"] = True  # `?field`: may be null
    return ref


@st.composite
def key_values(draw: st.DrawFn, pool: list[Any]) -> Any:
    """A key field's value: from the pool (ties on purpose), missing, null, [] or an array."""
    return draw(
        st.one_of(
            st.sampled_from(pool),
            st.sampled_from(pool),
            st.just("<absent>"),
            st.none(),
            st.just([]),
            st.lists(st.sampled_from(pool), min_size=1, max_size=2),
        )
    )


@st.composite
def times(draw: st.DrawFn) -> Any:
    """A timestamp from a few instants (many ties), spelled several ways, or no usable time."""
    ms = draw(st.integers(0, 6)) * 500 + draw(st.sampled_from([0, 0, 0, 1]))
    epoch = 1714557600000 + ms
    return draw(
        st.sampled_from(
            [
                epoch,
                str(epoch),
                f"2024-05-01T10:00:{ms // 1000:02d}.{ms % 1000:03d}Z",
                f"2024-05-01T12:00:{ms // 1000:02d}.{ms % 1000:03d}+02:00",
                "<absent>",
                None,
                "not a date",
            ]
        )
    )


@st.composite
def streams(
    draw: st.DrawFn, sample: bool
) -> tuple[dict[str, Any], list[tuple[int, int, int, str]]]:
    """A rule IR and its candidates: (stage, rank, line, event text)."""
    n_stages = draw(st.integers(2, 3 if sample else 4))
    keys = draw(st.lists(st.sampled_from(KEY_FIELDS), max_size=2, unique_by=lambda k: k[0]))
    refs = [fieldref(f, t, draw(st.booleans())) for f, t, _ in keys]
    tiebreaker = draw(st.sampled_from([None, *TIEBREAKERS]))
    tiebreaker_ref = None if tiebreaker is None else fieldref(*tiebreaker)
    pipes = draw(
        st.lists(
            st.builds(
                lambda p, n: {"pipe": p, "n": n},
                st.sampled_from(["head", "tail"]),
                st.integers(0, 4),
            ),
            max_size=2,
        )
    )
    size = draw(st.sampled_from([None, None, 1, 3]))
    if sample:
        body: dict[str, Any] = {
            "timestamp_field": "@timestamp",
            "tiebreaker_field": tiebreaker_ref,
            "stages": [{"expr": stage_expr(n), "keys": refs} for n in range(n_stages)],
            "max_samples_per_key": draw(st.sampled_from([None, 1, 2, 3])),
            "pipes": pipes,
            "size": size,
        }
        until = False
    else:
        missing = [draw(st.booleans()) and draw(st.booleans()) for _ in range(n_stages)]
        if all(missing):
            missing[draw(st.integers(0, n_stages - 1))] = False
        maxspan = draw(st.sampled_from([None, 500, 1000, 2500]))
        if any(missing) and maxspan is None:
            maxspan = 1000  # missing-event stages need a maxspan
        until = draw(st.booleans())
        body = {
            "timestamp_field": "@timestamp",
            "tiebreaker_field": tiebreaker_ref,
            "maxspan_ms": maxspan,
            "stages": [
                {"expr": stage_expr(n), "keys": refs, "missing": m} for n, m in enumerate(missing)
            ],
            "until": {"expr": stage_expr(n_stages), "keys": refs} if until else None,
            "pipes": pipes,
            "size": size,
        }
    ir = {
        "ir_version": 1,
        "id": "diff",
        "name": "diff",
        "severity": "low",
        "sample" if sample else "sequence": body,
    }
    n_events = draw(st.integers(0, 8 if sample else 16))
    stage_ids = list(range(n_stages + (1 if until else 0)))
    candidates = []
    lines = {0: 0, 1: 0}
    for _ in range(n_events):
        event: dict[str, Any] = {}
        time = draw(times())
        if time != "<absent>":
            event["@timestamp"] = time
        for field, _, pool in keys:
            value = draw(key_values(pool))
            if value != "<absent>":
                event[field] = value  # dotted keys: every reader takes them as nested
        if tiebreaker and draw(st.integers(0, 3)):
            value = draw(st.one_of(st.integers(0, 3), st.lists(st.integers(0, 3), max_size=2)))
            event[tiebreaker[0]] = str(value) if tiebreaker[1] == "keyword" else value
        rank = draw(st.integers(0, 1))
        lines[rank] += 1
        text = json.dumps(event)
        for stage in draw(
            st.lists(st.sampled_from(stage_ids), min_size=1, max_size=2, unique=True)
        ):
            candidates.append((stage, rank, lines[rank], text))
    return ir, candidates


def run(
    cls: Any, ir: dict[str, Any], candidates: list[tuple[int, int, int, str]], order: list[int]
) -> Any:
    matcher = cls(json.dumps(ir))
    for i in order:
        stage, rank, line, text = candidates[i]
        # The ref is the caller's handle: (rank, line) in one number, as the scan layer's.
        matcher.add(stage, rank, line, text, rank * 1000 + line)
    result = matcher.finish()
    return [(list(refs), list(keys)) for refs, keys in result.matches], result.no_time


def orders(candidates: list[tuple[int, int, int, str]], seed: int) -> tuple[list[int], list[int]]:
    """A shuffled order of the candidates, and the reverse of input order."""
    order = list(range(len(candidates)))
    random.Random(seed).shuffle(order)
    other = sorted(order, key=lambda i: (candidates[i][1], candidates[i][2]), reverse=True)
    return order, other


def check(ir: dict[str, Any], candidates: list[tuple[int, int, int, str]], seed: int) -> None:
    rust, reference = matchers()
    order, other = orders(candidates, seed)
    expected = run(reference, ir, candidates, order)
    assert run(rust, ir, candidates, order) == expected, json.dumps(ir)
    # Neither depends on the order candidates are added in.
    assert run(rust, ir, candidates, other) == expected
    assert run(reference, ir, candidates, other) == expected


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(streams(sample=False), st.integers(0, 2**32))
def test_sequence_matchers_agree(stream: Any, seed: int) -> None:
    check(*stream, seed)


@SETTINGS
@given(streams(sample=True), st.integers(0, 2**32))
def test_sample_matchers_agree(stream: Any, seed: int) -> None:
    check(*stream, seed)


@SETTINGS
@given(st.booleans(), st.data(), st.integers(0, 2**32))
def test_reference_matcher_does_not_depend_on_add_order(sample: bool, data: Any, seed: int) -> None:
    ir, candidates = data.draw(streams(sample=sample))
    order, other = orders(candidates, seed)
    reference = reference_matcher()
    assert run(reference, ir, candidates, order) == run(reference, ir, candidates, other)


def test_no_time_refs_agree() -> None:
    """Candidates without a usable time: counted, the first five refs kept, alike."""
    rust, reference = matchers()
    body = {
        "timestamp_field": "@timestamp",
        "tiebreaker_field": None,
        "maxspan_ms": None,
        "stages": [{"expr": stage_expr(n), "keys": [], "missing": False} for n in range(2)],
        "until": None,
        "pipes": [],
        "size": None,
    }
    ir = {"ir_version": 1, "id": "t", "name": "t", "severity": "low", "sequence": body}
    texts = ['{"@timestamp": "never"}', "{}", '{"@timestamp": null}', '{"@timestamp": []}']
    results = []
    for cls in (rust, reference):
        matcher = cls(json.dumps(ir))
        for line in range(1, 9):
            matcher.add(line % 2, 0, line, texts[line % 4], line)
        result = matcher.finish()
        assert result.matches == []
        results.append((result.no_time, list(result.no_time_refs)))
    assert results[0] == results[1]
    assert results[0][0] == 8 and len(results[0][1]) == 5


@pytest.mark.parametrize("kind", ["sequence", "sample"])
def test_reference_tail_longer_than_the_results_keeps_them_all(kind: str) -> None:
    """`tail N` with N above the number of results, but below twice it (a negative slice start
    once kept only the last result)."""
    body: dict[str, Any] = {
        "timestamp_field": "@timestamp",
        "tiebreaker_field": None,
        "stages": [{"expr": stage_expr(n), "keys": []} for n in range(2)],
        "pipes": [{"pipe": "tail", "n": 3}],
        "size": None,
    }
    if kind == "sequence":
        body.update(maxspan_ms=None, until=None)
        for stage in body["stages"]:
            stage["missing"] = False
    else:
        body["max_samples_per_key"] = None
    ir = {"ir_version": 1, "id": "t", "name": "t", "severity": "low", kind: body}
    matcher = reference_matcher()(json.dumps(ir))
    stages = [0, 1, 0, 1] if kind == "sequence" else [0, 1, 1]  # two results either way
    for line, stage in enumerate(stages, 1):
        matcher.add(stage, 0, line, json.dumps({"@timestamp": 1714557600000 + line}), line)
    assert len(matcher.finish().matches) == 2
