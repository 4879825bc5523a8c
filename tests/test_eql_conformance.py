"""Query-level conformance: spec/vectors/eql.jsonl (spec/vectors/README.md, "eql.jsonl").

Each vector is an EQL query, optional field types beyond ECS, events and the indexes of the
events it matches, as Elasticsearch decides them (its EQL syntax and function reference and its
EQL QA specs are the reference; the vectors are our own). The query is compiled with
``imds_scan.eql.compile_rule`` (``field_types`` for the vector's field types) and run on both
engines, with the Rust prefilter on and off: each must report exactly the listed events, and
the two engines the same hits and witnesses."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from conftest import hit_keys
from imds_scan import Rule, ScanResult, fields, run_scan
from imds_scan.eql import compile_rule

VECTORS = Path(__file__).resolve().parent.parent / "spec" / "vectors" / "eql.jsonl"
CASES: list[dict[str, Any]] = [
    json.loads(line) for line in VECTORS.read_text("utf-8").splitlines() if line.strip()
]
IDS = [case["name"] for case in CASES]


@cache
def rule_of(index: int) -> Rule:
    """The vector's query compiled as a rule (compile errors fail the vector)."""
    case = CASES[index]
    options: dict[str, Any] = {}
    if "field_types" in case:
        options["field_types"] = case["field_types"]
    ir = compile_rule(case["query"], name="vector", rule_id="vector", severity="low", **options)
    return Rule("vector", "vector", "low", case["query"], ir)


def scan(
    tmp_path: Path, case: dict[str, Any], rule: Rule, engine: str, prefilter: bool
) -> ScanResult:
    path = tmp_path / f"{engine}-{prefilter}.ndjson"
    lines = [e if isinstance(e, str) else json.dumps(e, ensure_ascii=False) for e in case["events"]]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return run_scan([str(path)], [rule], engine=engine, prefilter=prefilter)  # type: ignore[arg-type]


def test_the_vectors_are_well_formed() -> None:
    assert len(CASES) >= 150
    assert len(set(IDS)) == len(IDS), "vector names are unique"
    for case in CASES:
        assert set(case) <= {"name", "query", "field_types", "events", "matches"}, case["name"]
        assert case["matches"] == sorted(set(case["matches"])), case["name"]
        assert all(0 <= i < len(case["events"]) for i in case["matches"]), case["name"]
        for event in case["events"]:  # a raw line must still be one JSON object
            assert isinstance(json.loads(event) if isinstance(event, str) else event, dict)


# What the vectors must exercise: each function and `~` form of the contract (spec/ir.md,
# Expressions), each comparison operator, each field type.
FUNCTIONS = [
    "length(",
    "string(",
    "number(",
    "substring(",
    "indexOf(",
    "indexOf~(",
    "concat(",
    "between(",
    "between~(",
    "startsWith(",
    "startsWith~(",
    "endsWith(",
    "endsWith~(",
    "stringContains(",
    "stringContains~(",
    "cidrMatch(",
    "add(",
    "subtract(",
    "multiply(",
    "divide(",
    "modulo(",
    " regex ",
    " regex~ ",
    " like ",
    " like~ ",
    " in~ ",
    " not in~ ",
]
# Every IR field type but scaled_float (read as double, so its vectors would repeat them).
TYPES = [t for t in fields.FIELD_TYPES if t != "scaled_float"]
# Fields of the vectors whose type comes from ECS, not from the vector.
ECS = {
    "destination.port": "long",
    "source.port": "long",
    "process.pid": "long",
    "process.exit_code": "long",
    "@timestamp": "date",
    "source.ip": "ip",
    "process.name": "keyword",
}


def test_the_vectors_cover_the_language() -> None:
    queries = " ".join(case["query"] for case in CASES)
    missing = [f for f in FUNCTIONS if f not in queries]
    assert missing == [], missing
    for op in ("==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%"):
        assert f" {op} " in queries, op
    types = set(ECS.values())
    for case in CASES:
        types |= set(case.get("field_types", {}).values())
    assert set(TYPES) <= types, set(TYPES) - types
    for field, ftype in ECS.items():  # each ECS-typed field is compared with a range somewhere
        if ftype != "keyword":
            pattern = rf"{re.escape(field)} (<|<=|>|>=) |(<|<=|>|>=) {re.escape(field)}\b"
            assert re.search(pattern, queries), field


@pytest.mark.parametrize("engine", ["python", "rust"])
@pytest.mark.parametrize("prefilter", [True, False])
@pytest.mark.parametrize("index", range(len(CASES)), ids=IDS)
def test_eql_vector(tmp_path: Path, index: int, engine: str, prefilter: bool) -> None:
    case = CASES[index]
    result = scan(tmp_path, case, rule_of(index), engine, prefilter)
    assert result.stats.total("malformed") == 0, case["name"]
    got = sorted({hit.line - 1 for hit in result.hits})
    assert got == case["matches"], f"{case['name']}: {case['query']}"


@pytest.mark.parametrize("index", range(len(CASES)), ids=IDS)
def test_eql_vector_engines_agree_on_witnesses(tmp_path: Path, index: int) -> None:
    case = CASES[index]
    rule = rule_of(index)
    python = scan(tmp_path, case, rule, "python", False)
    rust = scan(tmp_path, case, rule, "rust", True)
    # Each scan reads its own copy of the events: compare all but the input's name.
    assert [k[1:] for k in hit_keys(rust.hits)] == [k[1:] for k in hit_keys(python.hits)], case[
        "name"
    ]
