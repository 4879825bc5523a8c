"""KQL's IR additions (spec/ir.md, KQL additions): field types `text` and `wildcard`, the pred
keys `ignore_above`, `normalizer`, `analyzer`, and the ops `match`, `match_phrase`,
`wildcard_query`, `wildcard_query_ci`. The worked cases are shared vectors
(spec/vectors/kql_ops.jsonl, replayed by tests/test_vectors.py and the Rust suite); here: the
three checkers (the schema, ir_schema.py, ir.rs) agree on which combinations are valid, the
wildcard-query syntax against its definition, the lowercase normalizer, and a differential of
both engines (with and without the prefilter) on random KQL predicates and tricky events."""

from __future__ import annotations

import itertools
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_differential import encode

from conftest import hit_keys
from imds_scan import Rule, ir_schema, run_scan
from imds_scan._engine import Scanner
from imds_scan.reference.eval import CompiledRule
from imds_scan.reference.typed import java_lowercase, utf16_len
from imds_scan.reference.wildcard import EsWildcard

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "spec" / "vectors" / "kql_ops.jsonl"


def _doc(pred: dict[str, Any]) -> dict[str, Any]:
    return {
        "ir_version": 1,
        "id": "kql",
        "name": "kql",
        "severity": "low",
        "branches": [{"name": "b", "expr": {"node": "pred", "field": "a", **pred}}],
    }


def _vectors() -> list[dict[str, Any]]:
    return [json.loads(line) for line in VECTORS.read_text("utf-8").splitlines() if line]


def test_the_vectors_decide_every_kql_op_on_every_field_type_that_takes_it() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(
        json.loads((ROOT / "spec" / "ir.schema.json").read_text("utf-8"))
    )
    decided = set()
    for vector in (v for v in _vectors() if "pred" in v):
        validator.validate(_doc({k: v for k, v in vector["pred"].items() if k != "field"}))
        if vector["hits"]:
            decided.add((vector["pred"]["field_type"], vector["pred"]["op"]))
    assert set(ir_schema.KQL_OPS) <= {op for _, op in decided}
    assert {
        ("text", "match"),
        ("text", "match_phrase"),
        ("text", "wildcard_query"),
        ("text", "exists"),
        ("keyword", "wildcard_query"),
        ("keyword", "wildcard_query_ci"),
        ("wildcard", "wildcard_query"),
        ("wildcard", "wildcard_query_ci"),
        ("wildcard", "eq"),
    } <= decided
    misses = [v["name"] for v in _vectors() if "pred" in v and not v["hits"]]
    assert len(misses) >= 25  # the near misses matter as much as the hits


# ---------------------------------------------------------------- the three checkers agree

FIELD_TYPES = ["keyword", "wildcard", "text", "ip", "long"]
OPS = ["eq", "like", "exists", "gt", *sorted(ir_schema.KQL_OPS)]
OPTIONS: list[dict[str, Any]] = [
    {},
    {"ignore_above": 3},
    {"normalizer": "lowercase"},
    {"analyzer": "standard"},
    {"analyzer": "powershell_script"},
    {"ignore_above": 3, "normalizer": "lowercase"},
]


def test_the_schema_and_both_checkers_agree_on_every_combination() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(
        json.loads((ROOT / "spec" / "ir.schema.json").read_text("utf-8"))
    )
    accepted = 0
    for field_type, op, options in itertools.product(FIELD_TYPES, OPS, OPTIONS):
        values = [] if op == "exists" else ["5" if field_type in ("ip", "long") else "x"]
        if field_type == "ip" and values:
            values = ["10.0.0.1"]
        doc = _doc({"field_type": field_type, "op": op, "values": values, **options})
        valid = validator.is_valid(doc)
        try:
            ir_schema.check(doc)
        except ValueError as exc:
            assert not valid, (field_type, op, options, exc)
            with pytest.raises(ValueError) as rust:
                Scanner([json.dumps(doc)])
            assert str(rust.value) == f"rule error: {exc}"
            continue
        assert valid, (field_type, op, options)
        if (field_type, op) in (("ip", "like"), ("long", "like")):
            continue  # refused when the rule is compiled (spec/ir.md), by both engines
        accepted += 1
        CompiledRule(doc)
        Scanner([json.dumps(doc)])
    # keyword: 4 ops + 2 wildcard queries, each with 4 key sets; wildcard: 6 ops; text: 4 ops
    # with 2 analyzers; ip and long: eq, exists, gt.
    assert accepted == 6 * 4 + 6 + 4 * 2 + 3 + 3


def test_text_fields_refuse_the_keyword_ops_naming_the_op() -> None:
    doc = _doc({"field_type": "text", "analyzer": "standard", "op": "eq", "values": ["x"]})
    with pytest.raises(ValueError, match=r'op: "eq" is not allowed with field_type "text"'):
        CompiledRule(doc)


# ---------------------------------------------------------------- wildcard-query syntax


def _es_regex(pattern: str, case_insensitive: bool) -> re.Pattern[str]:
    """The definition: Lucene's WildcardQuery syntax (escapes, a trailing lone backslash) as
    a regular expression; case-insensitively, unescaped ASCII letters are a two-letter class."""
    out = []
    chars = iter(pattern)
    for c in chars:
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "\\":
            out.append(re.escape(next(chars, "\\")))
        elif case_insensitive and c.isascii() and c.isalpha():
            out.append(f"[{c.lower()}{c.upper()}]")
        else:
            out.append(re.escape(c))
    return re.compile("".join(out), re.DOTALL)


ES_ALPHABET = "aAbB*?\\\u212ak\u00e9\u00c9."


@settings(max_examples=1500, deadline=None)
@given(
    pattern=st.text(ES_ALPHABET, max_size=8),
    value=st.text("aAbB*?\\\u212ak\u00e9\u00c9.", max_size=8),
    case_insensitive=st.booleans(),
)
def test_wildcard_query_agrees_with_its_definition(
    pattern: str, value: str, case_insensitive: bool
) -> None:
    expected = _es_regex(pattern, case_insensitive).fullmatch(value) is not None
    assert EsWildcard(pattern, case_insensitive).fullmatch(value) == expected


def test_wildcard_query_syntax_by_example() -> None:
    assert EsWildcard("a\\*").fullmatch("a*")
    assert not EsWildcard("a\\*").fullmatch("ab")
    assert EsWildcard("a\\").fullmatch("a\\")  # a trailing lone backslash is itself
    assert EsWildcard("\\\\").fullmatch("\\")
    assert EsWildcard("CMD*", True).fullmatch("cmd.exe")
    assert not EsWildcard("\\CMD*", True).fullmatch("cmd.exe")  # escaped: exact
    assert not EsWildcard("K", True).fullmatch("\u212a")  # ASCII letters only


# ---------------------------------------------------------------- the lowercase normalizer


def test_java_lowercase_is_the_simple_mapping_code_point_by_code_point() -> None:
    assert java_lowercase("CMD.EXE") == "cmd.exe"
    assert java_lowercase("\u0130") == "i"  # Java: 'i', not 'i' + U+0307
    assert java_lowercase("\u212a") == "k"
    assert java_lowercase("\u039f\u0394\u039f\u03a3") == "\u03bf\u03b4\u03bf\u03c3"  # no final form
    assert java_lowercase("\U00010400") == "\U00010428"  # beyond the BMP too
    assert java_lowercase("\u00df\u1e9e") == "\u00df\u00df"
    for cp in range(0x3000):
        c = chr(cp)
        assert len(java_lowercase(c)) == 1
    assert utf16_len("a\U0001f600") == 3


# ---------------------------------------------------------------- differential

WORDS = ["kubectl", "PowerShell", "invoke-expression", "cmd.exe", "C:\\Windows", "a*b", "x?y"]
SPELLINGS = {
    "k": ["k", "K", "\u212a"],
    "i": ["i", "I", "\u0130"],
    "e": ["e", "E", "\u00e9"],
    "s": ["s", "S", "\u017f"],
}


def _respell(rnd: random.Random, text: str) -> str:
    """Case and case-mapping variants of ``text`` (the Kelvin sign, dotted I, long s)."""
    return "".join(
        rnd.choice(SPELLINGS.get(c.lower(), [c.lower(), c.upper()])) if rnd.random() < 0.4 else c
        for c in text
    )


def _literal(rnd: random.Random, op: str) -> str:
    word = rnd.choice(WORDS)
    if op.startswith("wildcard_query"):
        chars = list(word)
        for _ in range(rnd.randint(0, 3)):
            chars.insert(rnd.randint(0, len(chars)), rnd.choice(["*", "?", "\\", "\\*"]))
        word = "".join(chars)
    if op in ("match", "match_phrase") and rnd.random() < 0.5:
        word = f"{word} {rnd.choice(WORDS)}"
    return word if rnd.random() < 0.5 else _respell(rnd, word)


def _random_kql_pred(rnd: random.Random) -> dict[str, Any]:
    field_type = rnd.choice(["keyword", "wildcard", "text"])
    if field_type == "text":
        op = rnd.choice(["match", "match_phrase", "wildcard_query", "exists"])
        pred: dict[str, Any] = {"analyzer": rnd.choice(["standard", "powershell_script"])}
    else:
        op = rnd.choice(["wildcard_query", "wildcard_query_ci", "eq", "contains_ci", "exists"])
        pred = {}
        if field_type == "keyword" and rnd.random() < 0.5:
            pred["normalizer"] = "lowercase"
        if field_type == "keyword" and rnd.random() < 0.3:
            pred["ignore_above"] = rnd.randint(0, 20)
    values = [] if op == "exists" else [_literal(rnd, op) for _ in range(rnd.randint(1, 2))]
    if pred.get("normalizer"):
        values = [java_lowercase(v) for v in values]  # the compiler writes them normalized
    return {
        "node": "pred",
        "field": "a",
        "field_type": field_type,
        "op": op,
        "values": values,
        **pred,
    }


def _event_value(rnd: random.Random, literals: list[str]) -> Any:
    roll = rnd.random()
    if roll < 0.1:
        return rnd.choice([8080, True, None, ""])
    base = rnd.choice(literals or WORDS).replace("\\*", "*")
    base = base.replace("*", rnd.choice(["", "zz", "*"])).replace("?", rnd.choice(["q", "?"]))
    text = (
        rnd.choice(["", "x ", "C:\\", "run "]) + _respell(rnd, base) + rnd.choice(["", " y", "-z"])
    )
    return text if rnd.random() < 0.8 else [text, _respell(rnd, rnd.choice(WORDS))]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32))
def test_engines_agree_on_kql_ops(tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    preds = [_random_kql_pred(rnd) for _ in range(rnd.randint(1, 3))]
    ir = {
        "ir_version": 1,
        "id": "kql",
        "name": "kql",
        "severity": "low",
        "branches": [{"name": f"b{i}", "expr": p} for i, p in enumerate(preds)],
    }
    rules = [Rule("kql", "kql", "low", "", ir)]
    literals = [v for p in preds for v in p["values"]]
    lines = [
        encode(rnd, {"a": _event_value(rnd, literals)}, rnd.choice([0.0, 0.0, 0.2, 0.6]))
        for _ in range(rnd.randint(5, 20))
    ]
    path = tmp_path / "kql.ndjson"
    path.write_bytes("".join(line + "\n" for line in lines).encode("utf-8", "surrogatepass"))
    py = run_scan([str(path)], rules, engine="python")
    rs = run_scan([str(path)], rules, engine="rust")
    rs_full = run_scan([str(path)], rules, engine="rust", prefilter=False)
    assert hit_keys(rs_full.hits) == hit_keys(py.hits), preds
    assert hit_keys(rs.hits) == hit_keys(py.hits), preds
    # Beside another rule, the rule gate keeps the same hits.
    other = {"node": "pred", "field": "zz", "field_type": "keyword", "op": "eq", "values": ["q"]}
    other_ir = {**ir, "id": "other", "name": "other", "branches": [{"name": "o", "expr": other}]}
    both = [*rules, Rule("other", "other", "low", "", other_ir)]
    rs_both = run_scan([str(path)], both, engine="rust")
    assert hit_keys(rs_both.hits) == hit_keys(py.hits), preds


# ---------------------------------------------------------------- Elastic's rules


def _events_of(node: dict[str, Any], doc: dict[str, Any]) -> None:
    """Put each predicate's first literal (wildcards filled) at its field: an event that
    comes close to the rule."""
    if node["node"] == "pred":
        if node["values"]:
            value = re.sub(r"\\(.)", r"\1", re.sub(r"(?<!\\)[*?]", "x", node["values"][0]))
            doc.setdefault(node["field"], value)
        return
    for child in node.get("args") or [node.get("arg")]:
        if isinstance(child, dict):
            _events_of(child, doc)


def test_elastic_query_rules_load_and_agree_in_both_engines(tmp_path: Path) -> None:
    """Every active KQL `query` rule of Elastic's detection-rules that the compiler accepts
    (IMDS_SCAN_ELASTIC_RULES: the pinned checkout) loads in both engines, and both give the
    same hits, with and without the prefilter, on events built from the rules' literals."""
    import os
    import tomllib

    from imds_scan.rules import RuleFileError, load_rule_file

    where = os.environ.get("IMDS_SCAN_ELASTIC_RULES")
    if not where:
        pytest.skip("IMDS_SCAN_ELASTIC_RULES is not set")
    rules: list[Rule] = []
    for path in sorted(Path(where).rglob("*.toml")):
        if "_deprecated" in path.parts:
            continue
        meta = tomllib.loads(path.read_text("utf-8")).get("rule", {})
        if meta.get("language") != "kuery" or meta.get("type") != "query":
            continue
        try:
            rules.append(load_rule_file(path))
        except RuleFileError:
            continue  # refusals: tests/test_elastic_kql_rules.py
    assert len(rules) >= 380
    lines = []
    for rule in rules:
        for branch in rule.ir["branches"]:
            doc: dict[str, Any] = {}
            _events_of(branch["expr"], doc)
            lines.append(json.dumps(doc))
            lines.append(json.dumps({k: v.upper() for k, v in doc.items()}))
    path = tmp_path / "elastic.ndjson"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    py = run_scan([str(path)], rules, engine="python")
    rs = run_scan([str(path)], rules, engine="rust")
    rs_full = run_scan([str(path)], rules, engine="rust", prefilter=False)
    assert hit_keys(rs_full.hits) == hit_keys(py.hits)
    assert hit_keys(rs.hits) == hit_keys(py.hits)
    assert len(py.hits) >= 100, len(py.hits)  # the events come close enough to matter
