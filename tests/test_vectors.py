"""The shared vectors of spec/vectors/ (spec/vectors/README.md), replayed against the Python
reference engine and the Rust engine through the binding; crates/imds-core/tests/vectors.rs
replays the same files in `cargo test`. And the IR's JSON Schema (spec/ir.schema.json): both
engines and the schema itself refuse the same documents and accept every bundled rule."""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from imds_scan import Rule, ir_schema, run_scan
from imds_scan._engine import Scanner
from imds_scan.config import parse_allowlist
from imds_scan.filters import parse_event_time
from imds_scan.reference.eval import CompiledRule
from imds_scan.rules import PACKS, PRESETS, default_rules, load_rules, pack_path, preset_text

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "spec"
VECTORS = SPEC / "vectors"


def read_jsonl(name: str) -> list[dict[str, Any]]:
    """The objects of a .jsonl file of spec/vectors/, one a line (blank lines skipped)."""
    path = VECTORS / name
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def schema_validator() -> Any:
    jsonschema = pytest.importorskip("jsonschema")  # a test extra: checks the schema itself
    schema = json.loads((SPEC / "ir.schema.json").read_text("utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_package_ships_the_spec_files() -> None:
    # imds_scan/spec/ links to spec/: one source, read through importlib.resources.
    assert ir_schema.schema() == json.loads((SPEC / "ir.schema.json").read_text("utf-8"))


INVALID = read_jsonl("invalid_ir.jsonl")


@pytest.mark.parametrize("case", INVALID, ids=[c["name"] for c in INVALID])
def test_invalid_ir_is_refused_by_both_engines_and_the_schema(case: dict[str, Any]) -> None:
    ir = case["ir"]
    # Stages with unequal key counts, and nested scopes (spec/ir.md, Nested scopes), are
    # refused by the checkers alone (no schema says it).
    checkers_only = "join keys as" in case["error"] or ": nested node: " in case["error"]
    assert schema_validator().is_valid(ir) == checkers_only
    if "shape" in case:
        # A sequence's or sample's document (spec/sequences.md): the reference engine's
        # checker; the Rust engine's replays these in crates/imds-core/tests/vectors.rs once it
        # checks those shapes (the seqrust helper's part). new_terms and threshold documents
        # (spec/kql.md): Python only (tests/test_kibana_rules.py replays them on the matchers).
        assert case["shape"] in ("sequence", "sample", "new_terms", "threshold")
        with pytest.raises(ValueError) as shape_error:
            ir_schema.check(ir)
        assert str(shape_error.value) == case["error"]
        return
    with pytest.raises(ValueError) as python_error:
        CompiledRule(ir)
    assert str(python_error.value) == case["error"]
    with pytest.raises(ValueError) as rust_error:
        Scanner([json.dumps(ir)])
    assert str(rust_error.value) == f"rule error: {case['error']}"


# Sequence/sample documents the Rust matcher does not refuse yet: it does not check the node
# shapes inside stages (the scan's stage rules are checked when the Scanner loads them).
RUST_MATCHER_ACCEPTS = {"sequence: a bad node inside a stage"}


def test_invalid_sequence_and_sample_irs_are_refused_by_the_rust_matcher() -> None:
    from imds_scan._engine import SequenceMatcher

    accepted = set()
    for case in (c for c in INVALID if c.get("shape") in ("sequence", "sample")):
        try:
            SequenceMatcher(json.dumps(case["ir"]))
        except ValueError as exc:
            assert str(exc) == f"rule error: {case['error']}", case["name"]
        else:
            accepted.add(case["name"])
    assert accepted == RUST_MATCHER_ACCEPTS


def test_sequence_and_sample_irs_are_accepted_by_the_schema_and_its_checker() -> None:
    from imds_scan.eql import compile_rule

    validator = schema_validator()
    for query in (
        'sequence by host.id with maxspan=1m [process where a == "x"] ![file where b == 1] '
        'until [any where c == "y"] | head 3 | tail 1',
        'sample by host.id [process where a == "x"] by ?c [network where ?b == 1] by ?c',
        'sequence [any where a == "x"] by a [any where b == "y"] by b | tail 0',
    ):
        ir = compile_rule(query, name="n", rule_id="r", severity="low", size=5)
        assert list(validator.iter_errors(ir)) == [], query
        ir_schema.check(ir)


def bundled_irs() -> list[tuple[str, dict[str, Any]]]:
    """Every bundled rule and pack rule, alone and with each bundled preset applied."""
    rules = list(default_rules())
    for pack in PACKS:
        rules += load_rules([pack_path(pack)])[0]
    out = [(rule.id, rule.ir) for rule in rules]
    for preset in PRESETS:
        allowlist = parse_allowlist(tomllib.loads(preset_text(preset))["allowlist"], preset)
        out += [(f"{rule.id}+{preset}", rule.ir) for rule in allowlist.apply(rules)]
    return out


def test_every_bundled_ir_is_accepted_by_both_engines_and_the_schema() -> None:
    validator = schema_validator()
    irs = bundled_irs()
    assert len(irs) == 2 * (1 + 3)
    for name, ir in irs:
        assert list(validator.iter_errors(ir)) == [], name
        ir_schema.check(ir)
        CompiledRule(ir)
    Scanner([json.dumps(ir) for _, ir in irs])
    assert any("allowlist" in ir for _, ir in irs)


def test_the_rust_tests_ir_files_are_the_bundled_rules_compiled() -> None:
    # crates/imds-core/tests/data/: the Rust tests' copies of the bundled rule and pack.
    data = ROOT / "crates/imds-core/tests/data"
    seed = json.loads((data / "seed_ir.json").read_text("utf-8"))
    assert seed == default_rules()[0].ir
    hardened = json.loads((data / "hardened_ir.json").read_text("utf-8"))
    assert hardened == [rule.ir for rule in load_rules([pack_path("hardened")])[0]]


def test_the_endpoint_table_is_read_from_the_spec() -> None:
    from imds_scan.reference import endpoint

    table = tomllib.loads((SPEC / "endpoints.toml").read_text("utf-8"))
    assert tuple(tuple(pair) for pair in table["markers"]) == endpoint.MARKERS
    assert tuple(tuple(pair) for pair in table["addresses"]) == endpoint.ADDRESSES
    # Every class listed is found by some table, and the reverse (build.rs checks the same).
    found = {c for _, c in (*endpoint.ADDRESSES, *endpoint.HOSTS, *endpoint.MARKERS)}
    found |= {endpoint.BARE_METADATA_CLASS, endpoint.WILDCARD_DNS_CLASS, *endpoint.PORT_SCOPED}
    assert found == endpoint.CLASSES


# ---------------------------------------------------------------- conformance vectors


def hit_vector_files() -> list[str]:
    """Every file of spec/vectors/ in the hit format (README: `event` and `hits`), so a new
    file is replayed without being listed here."""
    return sorted(
        path.name
        for path in VECTORS.glob("*.jsonl")
        if all("event" in v and "hits" in v for v in read_jsonl(path.name))
    )


FILES = hit_vector_files()


def test_the_hit_vector_files_are_found() -> None:
    expected = {"default_rule.jsonl", "operators.jsonl", "endpoint.jsonl", "expr_ref.jsonl"}
    assert expected <= set(FILES)
    assert not {"invalid_ir.jsonl", "timestamps.jsonl"} & set(FILES)


def rules_of(vector: dict[str, Any]) -> list[Rule]:
    """The rules a vector runs (spec/vectors/README.md)."""
    if vector.get("rule") == "default":
        return default_rules()
    if vector.get("rule") == "hardened":
        return load_rules([pack_path("hardened")])[0]
    node = vector["node"] if "node" in vector else {"node": "pred", **vector["pred"]}
    ir = {
        "ir_version": 1,
        "id": "vector",
        "name": "vector",
        "severity": "low",
        "branches": [{"name": "b", "expr": node}],
    }
    return [Rule("vector", "vector", "low", "", ir)]


def groups() -> list[tuple[str, list[dict[str, Any]]]]:
    """Vectors with the same rule, per file: each group is one input, a vector a line."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name in FILES:
        for vector in read_jsonl(name):
            rule = [vector.get(k) for k in ("rule", "pred", "node")]
            key = f"{name} {json.dumps(rule, ensure_ascii=False)}"
            out.setdefault(key, []).append(vector)
    return list(out.items())


GROUPS = groups()


@pytest.mark.parametrize("engine", ["python", "rust"])
@pytest.mark.parametrize("prefilter", [True, False])
@pytest.mark.parametrize("group", [g for _, g in GROUPS], ids=[k for k, _ in GROUPS])
def test_conformance_vectors(
    tmp_path: Path, engine: str, prefilter: bool, group: list[dict[str, Any]]
) -> None:
    path = tmp_path / "events.ndjson"
    lines = [v["event"] if isinstance(v["event"], str) else json.dumps(v["event"]) for v in group]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    result = run_scan([str(path)], rules_of(group[0]), engine=engine, prefilter=prefilter)  # type: ignore[arg-type]
    got: list[list[dict[str, Any]]] = [[] for _ in group]
    for hit in result.hits:
        got[hit.line - 1].append(
            {"rule": hit.rule.id, "branch": hit.branch, "witness": hit.matched}
        )
    for vector, hits in zip(group, got, strict=True):
        assert hits == vector["hits"], vector["name"]


def test_every_operator_of_the_schema_has_a_vector() -> None:
    decided = {
        hit["witness"]["op"]
        for name in FILES
        for vector in read_jsonl(name)
        for hit in vector["hits"]
        if hit["witness"] is not None
    }
    assert set(ir_schema.ops()) <= decided, set(ir_schema.ops()) - decided


def _functions(value: dict[str, Any]) -> set[str]:
    if "fn" not in value:
        return set()
    return {value["fn"]}.union(*(_functions(arg) for arg in value["args"]))


def test_every_function_of_the_schema_has_a_vector() -> None:
    # A vector names a function when its expression calls it and the verdict is a hit.
    schema_functions = ir_schema.schema()["$defs"]["value"]["oneOf"][2]["properties"]["fn"]
    called = {
        name
        for file in FILES
        for vector in read_jsonl(file)
        if "node" in vector and vector["node"]["node"] == "expr" and vector["hits"]
        for name in _functions(vector["node"]["expr"])
    }
    assert set(schema_functions["enum"]) <= called, set(schema_functions["enum"]) - called


# ---------------------------------------------------------------- @timestamp vectors

TIMESTAMPS = read_jsonl("timestamps.jsonl")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def test_timestamp_vectors_are_many_and_consistent() -> None:
    assert len(TIMESTAMPS) >= 40
    assert len({case["name"] for case in TIMESTAMPS}) == len(TIMESTAMPS)
    for case in TIMESTAMPS:
        if case["micros"] is None:
            assert case["utc"] is None, case["name"]
        else:  # `utc` is `micros` for the reader
            moment = EPOCH + timedelta(microseconds=case["micros"])
            assert moment.isoformat(timespec="microseconds") == case["utc"].replace("Z", "+00:00")


@pytest.mark.parametrize("case", TIMESTAMPS, ids=[c["name"] for c in TIMESTAMPS])
def test_timestamp_vectors_python(case: dict[str, Any]) -> None:
    got = parse_event_time(case["value"])
    if case["micros"] is None:
        assert got is None
    else:
        assert got is not None and got.tzinfo is UTC
        assert (got - EPOCH) // timedelta(microseconds=1) == case["micros"]
