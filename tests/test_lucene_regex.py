"""Lucene regular expressions in the reference engine (python/imds_scan/reference/
lucene_regex.py): the shared vectors of spec/vectors/regex.jsonl (crates/imds-core/tests/
lucene_regex.rs replays the same file against the Rust engine), linear time on pathological
patterns, and random expressions checked against Python's re on short values."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imds_scan.reference.lucene_regex import LuceneRegex

VECTORS = Path(__file__).resolve().parent.parent / "spec" / "vectors" / "regex.jsonl"
CASES: list[dict[str, Any]] = [
    json.loads(line) for line in VECTORS.read_text("utf-8").splitlines() if line.strip()
]


def test_vector_names_are_unique_and_both_kinds_are_there() -> None:
    names = [case["name"] for case in CASES]
    assert len(names) == len(set(names))
    assert any("refused" in case for case in CASES)
    assert any(case.get("match") is True for case in CASES)
    assert any(case.get("match") is False for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_vector(case: dict[str, Any]) -> None:
    if "refused" in case:
        with pytest.raises(ValueError) as refused:
            LuceneRegex(case["pattern"], case["case_insensitive"])
        assert str(refused.value) == case["refused"]
    else:
        regex = LuceneRegex(case["pattern"], case["case_insensitive"])
        assert regex.is_match(case["value"]) is case["match"]


def test_a_lone_surrogate_is_refused() -> None:
    # Only the reference engine can be handed one (the Rust engine reads UTF-8 only).
    with pytest.raises(ValueError, match=r'^regex "a\\ud800": a lone surrogate is not supported$'):
        LuceneRegex("a\ud800", False)


PATHOLOGICAL = """
from imds_scan.reference.lucene_regex import LuceneRegex
run = "a" * 100_000
assert not LuceneRegex("(a*)*b", False).is_match(run)
assert LuceneRegex("(a*)*b", False).is_match(run + "b")
assert not LuceneRegex("(a|aa)*c", False).is_match(run)
assert not LuceneRegex("(.*a){30}b", True).is_match(run)
assert not LuceneRegex("@a@a@a@a@a@a@a@b", False).is_match(run)
print("done")
"""


def test_pathological_patterns_finish() -> None:
    # A hang guard, not a timing test: each is one pass over 10^5 characters (a backtracking
    # engine would not finish); the timeout is far above the few seconds it takes.
    done = subprocess.run(
        [sys.executable, "-c", PATHOLOGICAL],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert done.stdout.strip() == "done"


# Random expressions, written out twice from one tree: in Lucene syntax for the engine under
# test and in Python's re syntax as the oracle (short values keep backtracking cheap).
LETTERS = "abAB.-"


def lucene_char(c: str) -> str:
    return "\\" + c if c in ".-" else c


def re_char(c: str, fold: bool) -> str:
    if fold and c.isalpha():
        return f"[{c.lower()}{c.upper()}]"
    return re.escape(c)


@st.composite
def expressions(draw: st.DrawFn, depth: int = 0) -> tuple[str, str, str]:
    """(Lucene text, re text case-sensitive, re text ASCII case-insensitive)."""
    leaves = ["char", "any", "class", "quoted", "interval", "predefined"]
    kinds = leaves + (["concat", "union", "repeat", "group"] if depth < 3 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "char":
        c = draw(st.sampled_from(LETTERS))
        return lucene_char(c), re_char(c, False), re_char(c, True)
    if kind == "any":
        return ".", "(?s:.)", "(?s:.)"
    if kind == "class":
        negate = draw(st.booleans())
        items = draw(st.lists(st.sampled_from(["a", "b", "A", "a-b", "A-B", "\\d"]), min_size=1))
        luc = "[" + ("^" if negate else "") + "".join(items) + "]"
        plain, folded = [], []
        for item in items:
            if item == "\\d":
                plain.append("0-9")
                folded.append("0-9")
            elif "-" in item:
                plain.append(item)
                folded.append(item)  # Lucene does not fold ranges
            else:
                plain.append(item)
                folded.append(item.lower() + item.upper())
        hat = "^" if negate else ""
        return luc, f"[{hat}{''.join(plain)}]", f"[{hat}{''.join(folded)}]"
    if kind == "quoted":
        text = draw(st.text(alphabet="ab.*|", max_size=3))
        plain = "".join(re_char(c, False) for c in text)
        folded = "".join(re_char(c, True) for c in text)
        return f'"{text}"', f"(?:{plain})", f"(?:{folded})"
    if kind == "interval":
        low = draw(st.integers(0, 30))
        high = draw(st.integers(0, 30))
        pad = draw(st.booleans())
        lo, hi = min(low, high), max(low, high)
        if pad:
            width = len(str(hi)) + 1
            text = f"<{lo:0{width}d}-{hi:0{width}d}>"
            alts = "|".join(f"{n:0{width}d}" for n in range(lo, hi + 1))
        else:
            text = f"<{low}-{high}>"
            if len(str(low)) == len(str(high)):
                alts = "|".join(f"{n:0{len(str(low))}d}" for n in range(lo, hi + 1))
            else:
                alts = "0*(?:" + "|".join(str(n) for n in range(lo, hi + 1)) + ")"
        return text, f"(?:{alts})", f"(?:{alts})"
    if kind == "predefined":
        name = draw(st.sampled_from("dDsSwW"))
        body = {"d": "0-9", "s": " \\t\\n\\r", "w": "a-zA-Z_0-9"}[name.lower()]
        cls = f"[{body}]" if name.islower() else f"[^{body}]"
        return "\\" + name, cls, cls
    if kind == "concat":
        parts = draw(st.lists(expressions(depth + 1), min_size=2, max_size=3))
        luc = "".join(f"({p[0]})" for p in parts)
        return luc, "".join(f"(?:{p[1]})" for p in parts), "".join(f"(?:{p[2]})" for p in parts)
    if kind == "union":
        parts = draw(st.lists(expressions(depth + 1), min_size=2, max_size=3))
        return (
            "|".join(f"({p[0]})" for p in parts),
            "|".join(f"(?:{p[1]})" for p in parts),
            "|".join(f"(?:{p[2]})" for p in parts),
        )
    if kind == "group":
        inner = draw(expressions(depth + 1))
        return f"({inner[0]})", f"(?:{inner[1]})", f"(?:{inner[2]})"
    inner = draw(expressions(depth + 1))
    op = draw(st.sampled_from(["?", "*", "+", "{2}", "{0,2}", "{1,}"]))
    return f"({inner[0]}){op}", f"(?:{inner[1]}){op}", f"(?:{inner[2]}){op}"


@settings(max_examples=400, deadline=None)
@given(
    expressions(),
    st.lists(st.text(alphabet="abAB.-0123 \n\u212a", max_size=6), min_size=1, max_size=8),
    st.booleans(),
)
def test_random_expressions_agree_with_re(
    expression: tuple[str, str, str], values: list[str], fold: bool
) -> None:
    lucene, plain, folded = expression
    regex = LuceneRegex(lucene, fold)
    oracle = re.compile(folded if fold else plain)
    for value in values:
        assert regex.is_match(value) == (oracle.fullmatch(value) is not None), (lucene, value)
