"""The Rust SequenceMatcher binding (imds_scan._engine): its Python interface, the types of
the join keys it returns, its errors, and spilling to a given directory giving the results of
the reference matcher."""

from __future__ import annotations

import json
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
