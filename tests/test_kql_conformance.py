"""Query-level KQL conformance: spec/vectors/kql.jsonl (spec/vectors/README.md, "kql.jsonl").

Each vector is a KQL query, optional mapping overrides (as ``--mapping FILE.json`` takes them),
events and the indexes of the events Elasticsearch would return for the Query DSL Kibana builds
from it, or the refusal (key words of the reason) when Kibana or Elasticsearch would reject the
query. The vectors are our own, written from Kibana's kuery grammar and functions and
Elasticsearch's query and mapping docs; each says why in its ``why``. The query is compiled by
``imds_scan.kql`` with the mapping profile (plus the overrides) and run on both engines, the
Rust prefilter on and off: each must report exactly the listed events, and the two engines the
same hits and witnesses.

Until the KQL compiler is in the tree the replay tests skip, saying so; the vector checks run
regardless."""

from __future__ import annotations

import importlib
import inspect
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import hit_keys
from imds_scan import Rule, ScanResult, run_scan

VECTORS = Path(__file__).resolve().parent.parent / "spec" / "vectors" / "kql.jsonl"
CASES: list[dict[str, Any]] = [
    json.loads(line) for line in VECTORS.read_text("utf-8").splitlines() if line.strip()
]
IDS = [case["name"] for case in CASES]
ACCEPTED = [i for i, case in enumerate(CASES) if "matches" in case]
REFUSED = [i for i, case in enumerate(CASES) if "refused" in case]
KEYS = {"name", "query", "mapping", "events", "matches", "refused", "why"}
MAPPING_KEYS = {"type", "analyzer", "normalizer", "ignore_above", "multi_field_of"}


def test_the_vectors_are_well_formed() -> None:
    assert len(CASES) >= 150
    assert len(set(IDS)) == len(IDS), "vector names are unique"
    for case in CASES:
        name = case["name"]
        assert set(case) <= KEYS, (name, set(case) - KEYS)
        assert isinstance(case["query"], str) and case["query"].strip(), name
        assert isinstance(case.get("why"), str) and len(case["why"]) > 10, name
        assert ("matches" in case) != ("refused" in case), name
        if "matches" in case:
            assert case["events"], name
            assert case["matches"] == sorted(set(case["matches"])), name
            assert all(0 <= i < len(case["events"]) for i in case["matches"]), name
            for event in case["events"]:  # a raw line must still be one JSON object
                assert isinstance(json.loads(event) if isinstance(event, str) else event, dict)
        else:
            assert "events" not in case, name
            assert isinstance(case["refused"], list), name
            assert all(isinstance(w, str) and w for w in case["refused"]), name
        for spec in case.get("mapping", {}).values():
            assert isinstance(spec, str) or set(spec) <= MAPPING_KEYS, name


# What the vectors must exercise (issue 19): each grammar form, each field type of the mapping
# table of spec/kql.md, and each kind of refusal.
FORMS = {
    "or": r"\bor\b",
    "and": r"\band\b",
    "not": r"\bnot\b",
    "upper-case keyword": r"\b(OR|AND|NOT)\b",
    "value list": r":\s*\(",
    "quoted value": r':\s*"',
    "wildcard value": r":\s*[^\s\"(]*\*",
    "exists": r":\s*\*\s*($|\))",
    "range <": r" < ",
    "range <=": r" <= ",
    "range >": r" > ",
    "range >=": r" >= ",
    "escape": r"\\",
    "field-name wildcard": r"[\w.]\*[\w.]*\s*:",
    "nested": r":\s*\{",
}
TYPES = [
    "keyword",
    "text",
    "match_only_text",
    "wildcard",
    "constant_keyword",
    "ip",
    "long",
    "double",
    "date",
    "boolean",
]
REFUSALS = ["free text", "wildcard", "range", "nested"]


def test_the_vectors_cover_the_language() -> None:
    queries = "\n".join(case["query"] for case in CASES)
    missing = [f for f, pattern in FORMS.items() if not re.search(pattern, queries, re.M)]
    assert missing == [], missing
    types = set()
    for case in CASES:
        for spec in case.get("mapping", {}).values():
            types.add(spec if isinstance(spec, str) else spec["type"])
    assert set(TYPES) <= types, set(TYPES) - types
    reasons = " ".join(" ".join(case["refused"]) for case in CASES if "refused" in case)
    assert [r for r in REFUSALS if r not in reasons] == []


# ----------------------------------------------------------------------------- the compiler

_COMPILER: list[Callable[[str, Any], dict[str, Any]] | str] = []


def compiler() -> Callable[[str, Any], dict[str, Any]]:
    """``compile(query, mapping) -> IR`` from imds_scan.kql (spec/kql.md); a skip saying why
    while the compiler is not in this tree."""
    if not _COMPILER:
        try:
            kql = importlib.import_module("imds_scan.kql")
        except ImportError as exc:
            _COMPILER.append(f"imds_scan.kql is not in this tree yet (issue 19): {exc}")
        else:
            _COMPILER.append(_adapter(kql))
    found = _COMPILER[0]
    if isinstance(found, str):
        pytest.skip(found)
    return found


def _adapter(kql: Any) -> Callable[[str, Any], dict[str, Any]]:
    """The compiler's entry point as ``compile(query, mapping) -> rule IR``: ``compile_rule``
    (a whole rule) when the module has one, else ``compile_query`` (a condition: the rule is
    then the one branch ``query`` spec/kql.md gives a KQL query rule)."""
    whole = getattr(kql, "compile_rule", None)
    if whole is not None:
        params = inspect.signature(whole).parameters

        def compile_rule(query: str, mapping: Any) -> dict[str, Any]:
            options: dict[str, Any] = {"name": "vector", "rule_id": "vector"}
            if "severity" in params:
                options["severity"] = "low"
            return whole(query, mapping=mapping, **options)  # type: ignore[no-any-return]

        return compile_rule

    def compile_condition(query: str, mapping: Any) -> dict[str, Any]:
        expr = kql.compile_query(query, mapping=mapping)
        return {
            "ir_version": 1,
            "id": "vector",
            "name": "vector",
            "severity": "low",
            "branches": [{"name": "query", "expr": expr}],
        }

    return compile_condition


def mapping_of(case: dict[str, Any], tmp_path: Path) -> Any:
    """The mapping profile with the vector's overrides, read as ``--mapping FILE`` is."""
    from imds_scan.mapping import load_mapping  # type: ignore[import-not-found,unused-ignore]

    if "mapping" not in case:
        return load_mapping(None)
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps(case["mapping"]), encoding="utf-8")
    return load_mapping(str(path))


def rule_of(case: dict[str, Any], tmp_path: Path) -> Rule:
    """The vector's query compiled as a rule (a compile error fails the vector, naming it)."""
    compile_query = compiler()
    mapping = mapping_of(case, tmp_path)
    try:
        ir = compile_query(case["query"], mapping)
    except ValueError as exc:  # a refusal of an accepted query is the failure
        pytest.fail(f"{case['name']}: {case['query']!r} refused: {exc}")
    return Rule("vector", "vector", "low", case["query"], ir)


def scan(
    tmp_path: Path, case: dict[str, Any], rule: Rule, engine: str, prefilter: bool
) -> ScanResult:
    path = tmp_path / f"{engine}-{prefilter}.ndjson"
    lines = [e if isinstance(e, str) else json.dumps(e, ensure_ascii=False) for e in case["events"]]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return run_scan([str(path)], [rule], engine=engine, prefilter=prefilter)  # type: ignore[arg-type]


@pytest.mark.parametrize("engine", ["python", "rust"])
@pytest.mark.parametrize("prefilter", [True, False])
@pytest.mark.parametrize("index", ACCEPTED, ids=[IDS[i] for i in ACCEPTED])
def test_kql_vector(tmp_path: Path, index: int, engine: str, prefilter: bool) -> None:
    case = CASES[index]
    result = scan(tmp_path, case, rule_of(case, tmp_path), engine, prefilter)
    assert result.stats.total("malformed") == 0, case["name"]
    got = sorted({hit.line - 1 for hit in result.hits})
    assert got == case["matches"], f"{case['name']}: {case['query']} ({case['why']})"


@pytest.mark.parametrize("index", ACCEPTED, ids=[IDS[i] for i in ACCEPTED])
def test_kql_vector_engines_agree_on_witnesses(tmp_path: Path, index: int) -> None:
    case = CASES[index]
    rule = rule_of(case, tmp_path)
    python = scan(tmp_path, case, rule, "python", False)
    rust = scan(tmp_path, case, rule, "rust", True)
    # Each scan reads its own copy of the events: compare all but the input's name.
    assert [k[1:] for k in hit_keys(rust.hits)] == [k[1:] for k in hit_keys(python.hits)], case[
        "name"
    ]


@pytest.mark.parametrize("index", REFUSED, ids=[IDS[i] for i in REFUSED])
def test_kql_vector_refused(tmp_path: Path, index: int) -> None:
    case = CASES[index]
    compile_query = compiler()
    mapping = mapping_of(case, tmp_path)  # outside the raises: a bad mapping is no refusal
    with pytest.raises(ValueError) as info:
        compile_query(case["query"], mapping)
    message = str(info.value).lower()
    missing = [word for word in case["refused"] if word.lower() not in message]
    assert missing == [], f"{case['name']}: {case['query']!r}: {info.value} (lacks {missing})"
