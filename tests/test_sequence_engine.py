"""The Rust SequenceMatcher binding (imds_scan._engine): its Python interface, the types of
the join keys it returns, its errors, and spilling to a given directory giving the results of
the reference matcher."""

from __future__ import annotations

import json
import random
import signal
from pathlib import Path
from typing import Any

import pytest

from imds_scan import _engine
from imds_scan.reference import sequence as reference

ANY = {"node": "pred", "field": "x", "field_type": "keyword", "op": "exists", "values": []}


def sequence_ir(keys: list[dict[str, Any]], **extra: Any) -> str:
    body = {
        "timestamp_field": "@timestamp",
        "tiebreaker_field": None,
        "maxspan_ms": None,
        "stages": [{"expr": ANY, "keys": keys, "missing": False} for _ in range(2)],
        "until": None,
        "pipes": [],
        "size": None,
        **extra,
    }
    return json.dumps(
        {"ir_version": 1, "id": "r", "name": "r", "severity": "low", "sequence": body}
    )


def test_keys_come_back_as_python_values() -> None:
    types = ["keyword", "ip", "long", "double", "float", "date", "boolean"]
    keys = [{"field": t, "field_type": t} for t in types]
    event = {
        "@timestamp": 1,
        "keyword": "a",
        "ip": "::ffff:10.0.0.1",
        "long": 9223372036854775807,
        "double": 0.5,
        "float": 0.1,
        "date": "2017-08-30T20:47:33.123Z",
        "boolean": "true",
    }
    ir = sequence_ir(keys)
    results = []
    for matcher in (_engine.SequenceMatcher(ir), reference.SequenceMatcher(ir)):
        matcher.add(0, 0, 1, json.dumps(event), 10)
        matcher.add(1, 0, 2, json.dumps({**event, "@timestamp": 2}), 11)
        results.append(matcher.finish())
    rust, ref = results
    assert rust.matches == ref.matches
    refs, values = rust.matches[0]
    assert refs == [10, 11]
    assert values == ["a", "10.0.0.1", 2**63 - 1, 0.5, 0.1, "2017-08-30T20:47:33.123Z", True]
    assert [type(v) for v in values] == [str, str, int, float, float, str, bool]
    assert (rust.no_time, rust.no_time_refs) == (0, [])


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"bad IR: \$: missing key \"sequence\" or \"sample\""):
        _engine.SequenceMatcher(json.dumps({"ir_version": 1, "name": "r"}))
    with pytest.raises(ValueError, match=r"bad IR: \$: a rule with branches is not a sequence"):
        _engine.SequenceMatcher(json.dumps({"ir_version": 1, "name": "r", "branches": []}))
    matcher = _engine.SequenceMatcher(sequence_ir([]))
    with pytest.raises(ValueError, match="no stage 2"):
        matcher.add(2, 0, 1, "{}", 0)
    with pytest.raises(OverflowError):
        matcher.add(0, 0, -1, "{}", 0)
    matcher.add(0, 0, 1, '{"@timestamp": "soon"}', 7)
    result = matcher.finish()
    assert (result.matches, result.no_time, result.no_time_refs) == ([], 1, [7])
    with pytest.raises(RuntimeError, match="finished"):
        matcher.finish()
    with pytest.raises(RuntimeError, match="finished"):
        matcher.add(0, 0, 1, "{}", 0)


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="no interval timer")
def test_ctrl_c_stops_a_finish_under_way(tmp_path: Path) -> None:
    """Matching a terabyte's candidates takes minutes: a signal's handler runs while it
    goes on, and what it raises stops it and comes out of ``finish`` (its runs removed)."""
    ir = sequence_ir([{"field": "k", "field_type": "keyword"}])
    rust = _engine.SequenceMatcher(ir, memory_budget=1 << 20, spill_dir=str(tmp_path))
    # Enough that matching them lasts many of the binding's 10 ms looks at the signals.
    for i in range(1_000_000):
        rust.add(i % 2, 0, i + 1, f'{{"@timestamp": {i}, "k": "k{i % 997}"}}', i)
    assert any(tmp_path.iterdir())

    # Whether the runs were still there when the handler ran: during the matching, they are
    # (a handler run once it is over finds them removed).
    during: list[bool] = []

    def interrupt(signum: int, frame: object) -> None:
        during.append(any(tmp_path.iterdir()))
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        with pytest.raises(KeyboardInterrupt):
            signal.setitimer(signal.ITIMER_REAL, 0.001)
            rust.finish()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert during == [True]
    assert not any(tmp_path.iterdir())
    with pytest.raises(RuntimeError):
        rust.finish()


def test_spilling_to_the_given_directory_gives_the_references_results(tmp_path: Path) -> None:
    ir = sequence_ir(
        [{"field": "k", "field_type": "keyword"}],
        maxspan_ms=40,
        pipes=[{"pipe": "tail", "n": 50}],
    )
    rust = _engine.SequenceMatcher(ir, memory_budget=1000, spill_dir=str(tmp_path))
    oracle = reference.SequenceMatcher(ir)
    for i in range(3000):
        event = json.dumps({"@timestamp": (i * 7919) % 997, "k": f"k{i % 13}"})
        for matcher in (rust, oracle):
            matcher.add(i % 2, i % 3, i, event, i)
    assert any(tmp_path.iterdir())  # runs were written
    got = rust.finish()
    assert not any(tmp_path.iterdir())  # and removed
    assert got.matches == oracle.finish().matches
    assert len(got.matches) == 50


def random_rule(rng: random.Random) -> str:
    keys = [{"field": "k", "field_type": rng.choice(["keyword", "long", "ip"])}]
    if rng.random() < 0.3:
        keys[0]["optional"] = True
    stages = rng.randint(2, 4)
    common = {
        "timestamp_field": "@timestamp",
        "tiebreaker_field": rng.choice([None, {"field": "seq", "field_type": "long"}]),
        "pipes": rng.choice([[], [{"pipe": "head", "n": 3}], [{"pipe": "tail", "n": 4}]]),
        "size": rng.choice([None, 5]),
    }
    if rng.random() < 0.3:
        body = {
            **common,
            "stages": [{"expr": ANY, "keys": keys} for _ in range(stages)],
            "max_samples_per_key": rng.choice([None, 1, 2]),
        }
        return json.dumps({"ir_version": 1, "name": "s", "sample": body})
    missing = [rng.random() < 0.3 for _ in range(stages)]
    if all(missing):
        missing[0] = False
    body = {
        **common,
        "maxspan_ms": rng.choice([None, 20, 50]) if not any(missing) else rng.choice([20, 50]),
        "stages": [{"expr": ANY, "keys": keys, "missing": m} for m in missing],
        "until": rng.choice([None, {"expr": ANY, "keys": keys}]),
    }
    return json.dumps({"ir_version": 1, "name": "q", "sequence": body})


def random_event(rng: random.Random) -> str:
    event: dict[str, Any] = {"@timestamp": rng.choice([rng.randint(0, 100), "bad", [1, 2]])}
    value = rng.choice(["1", "2", "3", "10.0.0.1", None, ["1", "2"], []])
    if rng.random() < 0.9:
        event["k"] = value
    if rng.random() < 0.7:
        event["seq"] = rng.randint(0, 5)
    return json.dumps(event)


@pytest.mark.parametrize("seed", range(40))
def test_random_streams_spilled_equal_the_reference(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    ir = random_rule(rng)
    stages = len(json.loads(ir).get("sequence", json.loads(ir).get("sample"))["stages"])
    until = '"until": {' in ir
    rust = _engine.SequenceMatcher(ir, memory_budget=200, spill_dir=str(tmp_path))
    oracle = reference.SequenceMatcher(ir)
    ref = 0
    for line in range(150):
        event = random_event(rng)
        rank = rng.randint(0, 2)
        for stage in range(stages + (1 if until else 0)):
            if rng.random() < 0.4:
                for matcher in (rust, oracle):
                    matcher.add(stage, rank, line, event, ref)
                ref += 1
    got, want = rust.finish(), oracle.finish()
    assert (got.matches, got.no_time, got.no_time_refs) == (
        want.matches,
        want.no_time,
        want.no_time_refs,
    ), ir
