"""Text analysis (spec/kql.md, Analysis): the shared vectors of spec/vectors/analysis.jsonl
replayed on the reference engine (python/imds_scan/reference/analysis.py) and on the Rust
engine through the binding (crates/imds-core/tests/analysis_vectors.rs replays them in Rust
too), the two engines held to the same tokens on random text, and the generated Rust DFA
held equal to the reference engine's grammar."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imds_scan import _engine
from imds_scan.reference import _analysis_data
from imds_scan.reference.analysis import (
    ANALYZERS,
    MAX_TOKEN_UNITS,
    TokenQuery,
    analyze,
    build_dfa,
    lowercase,
    wildcard_on_text,
    wildcard_on_text_analyzed,
)

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "spec" / "vectors" / "analysis.jsonl"
CASES: list[dict[str, Any]] = [
    json.loads(line) for line in VECTORS.read_text("utf-8").splitlines() if line.strip()
]
TOKEN_CASES = [case for case in CASES if "tokens" in case]
QUERY_CASES = [case for case in CASES if "queries" in case]
LOWER_CASES = [case for case in CASES if "lowercase" in case]


def test_vector_names_are_unique_and_every_kind_is_there() -> None:
    names = [case["name"] + "/" + case.get("analyzer", "") for case in CASES]
    assert len(names) == len(set(names))
    assert len(TOKEN_CASES) + len(QUERY_CASES) + len(LOWER_CASES) == len(CASES)
    for analyzer in ANALYZERS:
        assert any(case["analyzer"] == analyzer for case in TOKEN_CASES)
        assert any(case["analyzer"] == analyzer for case in QUERY_CASES)
    for analyzed in (False, True):
        kinds = {
            query[0]
            for case in QUERY_CASES
            if case["analyze_wildcard"] is analyzed
            for query in case["queries"]
        }
        assert kinds == {"term", "prefix", "wildcard", "exists"}


@pytest.mark.parametrize("case", TOKEN_CASES, ids=[c["name"] for c in TOKEN_CASES])
def test_tokens_reference(case: dict[str, Any]) -> None:
    assert analyze(case["analyzer"], case["text"]) == case["tokens"]


@pytest.mark.parametrize("case", TOKEN_CASES, ids=[c["name"] for c in TOKEN_CASES])
def test_tokens_rust(case: dict[str, Any]) -> None:
    assert _engine.analyze(case["analyzer"], case["text"]) == case["tokens"]


@pytest.mark.parametrize("case", QUERY_CASES, ids=[c["name"] for c in QUERY_CASES])
def test_wildcard_on_text(case: dict[str, Any]) -> None:
    on_text = wildcard_on_text_analyzed if case["analyze_wildcard"] else wildcard_on_text
    got = on_text(case["analyzer"], case["pattern"])
    assert got == [TokenQuery(kind, text) for kind, text in case["queries"]]


@pytest.mark.parametrize("case", QUERY_CASES, ids=[c["name"] for c in QUERY_CASES])
def test_wildcard_on_text_rust(case: dict[str, Any]) -> None:
    got = _engine.wildcard_on_text(case["analyzer"], case["pattern"], case["analyze_wildcard"])
    assert got == [(kind, text) for kind, text in case["queries"]]


@pytest.mark.parametrize("case", LOWER_CASES, ids=[c["name"] for c in LOWER_CASES])
def test_lowercase(case: dict[str, Any]) -> None:
    assert lowercase(case["lowercase"]) == case["expected"]


def test_unknown_analyzer_is_refused_alike() -> None:
    message = "unknown analyzer 'english' (expected standard or powershell_script)"
    with pytest.raises(ValueError, match=re.escape(message)):
        analyze("english", "x")
    with pytest.raises(ValueError, match=re.escape(message)):
        _engine.analyze("english", "x")
    with pytest.raises(ValueError, match=re.escape(message)):
        wildcard_on_text("english", "x*")
    with pytest.raises(ValueError, match=re.escape(message)):
        wildcard_on_text_analyzed("english", "x*")


def _rust_tables() -> dict[str, list[str]]:
    """The arrays of the generated crates/imds-core/src/analysis_tables.rs, as their items."""
    text = (ROOT / "crates" / "imds-core" / "src" / "analysis_tables.rs").read_text("utf-8")
    text = re.sub(r"//[^\n]*", "", text)
    arrays = re.findall(r"pub const (\w+): \[[^\]]+\] = \[(.*?)\];", text, re.DOTALL)
    return {name: [x.strip() for x in body.split(",") if x.strip()] for name, body in arrays}


def test_generated_rust_tables_match_the_reference() -> None:
    """The Rust DFA is the reference grammar's (regenerate with spec/analysis/
    generate_tables.py after changing the grammar) and both read the same class table."""
    rust = _rust_tables()
    classes = len(_analysis_data.CLASS_FLAGS.split())
    dfa = build_dfa(classes)
    assert [int(x) for x in rust["NEXT"]] == [s for row in dfa.next for s in row]
    assert rust["ACCEPTING"] == ["true" if a else "false" for a in dfa.accepting]
    assert [int(x, 16) for x in rust["RANGE_STARTS"]] == [
        int(x, 16) for x in _analysis_data.RANGE_STARTS.split()
    ]
    assert [int(x) for x in rust["RANGE_CLASSES"]] == [
        int(x) for x in _analysis_data.RANGE_CLASSES.split()
    ]
    runs = [int(x) for x in _analysis_data.LOWER_RUNS.split()]
    rust_runs = [int(x.strip("() "), 0) for x in rust["LOWER_RUNS"]]
    assert rust_runs == runs


# Characters of every class the grammar names, and the separators around them.
ALPHABET = (
    "aZé09_-.,:;'\"@/\\ \t\r\n!?*"
    "\u2019\u00ad\u200b\u200d\u0301\ufe0e\ufe0f\u20e3#"
    "東京ひらタワーーสวัสดีລາ한국İΣσßẞ\u212aצה\U0001d400"
    "😀👍🏽🇺🇸❤©\U000e0067\U000e007f\U0001f3f4\uff11\u0661"
)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=40), st.sampled_from(ANALYZERS))
def test_rust_and_reference_agree_on_class_heavy_text(text: str, analyzer: str) -> None:
    assert _engine.analyze(analyzer, text) == analyze(analyzer, text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60), st.sampled_from(ANALYZERS))
def test_rust_and_reference_agree_on_any_text(text: str, analyzer: str) -> None:
    assert _engine.analyze(analyzer, text) == analyze(analyzer, text)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "1", "'", ".", "_", "\U0001d400", "😀", " ", "\u0301"])),
    st.integers(min_value=240, max_value=270),
)
def test_long_tokens_agree_and_fit_the_window(pieces: list[str], repeat: int) -> None:
    text = "x" * repeat + "".join(pieces) + "y" * repeat
    tokens = analyze("standard", text)
    assert _engine.analyze("standard", text) == tokens
    assert all(len(token.encode("utf-16-le")) // 2 <= MAX_TOKEN_UNITS for token in tokens)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_powershell_tokens_are_the_pieces_between_separators(text: str) -> None:
    expected = [p.lower() for p in re.split(r"[^A-Za-z0-9_-]+", text, flags=re.ASCII) if p]
    assert analyze("powershell_script", text) == expected


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_lowercase_keeps_length_and_is_idempotent(text: str) -> None:
    lower = lowercase(text)
    assert len(lower) == len(text)
    assert lowercase(lower) == lower


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet="aB1_-. \t*?\\İ東😀\u3000:", max_size=20),
    st.sampled_from(ANALYZERS),
    st.booleans(),
)
def test_rust_and_reference_agree_on_wildcards(pattern: str, analyzer: str, analyzed: bool) -> None:
    on_text = wildcard_on_text_analyzed if analyzed else wildcard_on_text
    expected = [(q.kind, q.text) for q in on_text(analyzer, pattern)]
    assert _engine.wildcard_on_text(analyzer, pattern, analyzed) == expected
