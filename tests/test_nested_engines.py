"""Nested scopes (spec/ir.md, "Nested scopes"): the Rust engine (prefilter and projected parsing
on and off, one rule and many) against the reference engine on seeded random trees and events:
dotted keys that name or run past a path, arrays, nulls, `not` inside and outside, scopes in
scopes, keyword, typed and exists predicates. Same hits, branches and witnesses."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from imds_scan import Rule, run_scan

KEYS = ["a", "b", "x", "n", "a.b", "a.x", "b.x", "a.b.x", "x.a", "a.n"]


def _value(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth > 2 or roll < 0.4:
        return rng.choice(["1", "2", 1, 3, None, ["1", 2], [], True])
    if roll < 0.75:
        return [_object(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return _object(rng, depth + 1)


def _object(rng: random.Random, depth: int) -> dict[str, Any]:
    return {k: _value(rng, depth) for k in rng.sample(KEYS, rng.randint(1, 4))}


def _under(scope: str, rest: str) -> str:
    return f"{scope}.{rest}" if scope else rest


def _pred(rng: random.Random, scope: str) -> dict[str, Any]:
    field = _under(scope, rng.choice(["x", "n", "b", "a.x", "b.x"]))
    roll = rng.random()
    if roll < 0.6:
        values = rng.sample(["1", "2", "3", "true"], rng.randint(1, 2))
        return {
            "node": "pred",
            "field": field,
            "field_type": "keyword",
            "op": "eq",
            "values": values,
        }
    if roll < 0.8:
        op, literal = rng.choice([("gte", "2"), ("lt", "2"), ("eq", "3")])
        return {"node": "pred", "field": field, "field_type": "long", "op": op, "values": [literal]}
    return {"node": "pred", "field": field, "field_type": "keyword", "op": "exists", "values": []}


def _tree(rng: random.Random, scope: str, depth: int) -> dict[str, Any]:
    roll = rng.random()
    if depth > 3 or roll < 0.35:
        return _pred(rng, scope)
    if roll < 0.6:
        path = _under(scope, rng.choice(["a", "b", "a.b"]))
        return {"node": "nested", "path": path, "arg": _tree(rng, path, depth + 1)}
    if roll < 0.7:
        return {"node": "not", "arg": _tree(rng, scope, depth + 1)}
    kind = rng.choice(["and", "or"])
    return {"node": kind, "args": [_tree(rng, scope, depth + 1) for _ in range(rng.randint(2, 3))]}


def _rule(index: int, tree: dict[str, Any]) -> Rule:
    # A top-level nested node, so every rule exercises a scope.
    if tree["node"] != "nested":
        tree = {"node": "nested", "path": "a", "arg": _tree(random.Random(index), "a", 1)}
    ir = {
        "ir_version": 1,
        "id": f"r{index}",
        "name": f"r{index}",
        "severity": "low",
        "branches": [{"name": "b", "expr": tree}],
    }
    return Rule(f"r{index}", f"r{index}", "low", "", ir)


def _hits(path: Path, rules: list[Rule], engine: str, prefilter: bool) -> list[Any]:
    result = run_scan([str(path)], rules, engine=engine, prefilter=prefilter)  # type: ignore[arg-type]
    return sorted(
        (hit.line, hit.rule.id, hit.branch, json.dumps(hit.matched)) for hit in result.hits
    )


@pytest.mark.parametrize("seed", range(4))
def test_both_engines_agree_on_random_nested_rules(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    rules = [_rule(i, _tree(rng, "", 0)) for i in range(30)]
    events = [_object(rng, 0) for _ in range(150)]
    path = tmp_path / "events.ndjson"
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    expected = _hits(path, rules, "python", True)
    assert len(expected) > 20  # the trees and events meet often enough to test something
    for prefilter in (True, False):
        assert _hits(path, rules, "rust", prefilter) == expected, prefilter
    # One rule at a time: the single-rule prefilter and projection.
    for rule in rules[:8]:
        alone = [h for h in expected if h[1] == rule.id]
        for prefilter in (True, False):
            assert _hits(path, [rule], "rust", prefilter) == alone, (rule.ir, prefilter)
