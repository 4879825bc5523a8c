"""The EQL-subset compiler: the seed compiles to the golden IR; everything else is refused
with line:column and what was expected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imds_scan.eql import EqlError, compile_rule, parse_query
from imds_scan.rules import default_query, default_rules

GOLDEN = Path(__file__).parents[1] / "crates" / "imds-core" / "tests" / "data" / "seed_ir.json"
SEED_CARD = Path(__file__).parents[2] / "shared" / "seed" / "detection-card.txt"


def test_seed_compiles_to_golden_ir() -> None:
    assert default_rules()[0].ir == json.loads(GOLDEN.read_text())


@pytest.mark.skipif(not SEED_CARD.exists(), reason="shared/ seed not beside the checkout")
def test_bundled_query_is_the_seed_verbatim() -> None:
    assert default_query().strip() in SEED_CARD.read_text()


def test_branch_names() -> None:
    assert default_rules()[0].branch_names == ["network", "process"]
    ir = compile_rule('any where a == "1" or (b == "2" or c == "3")', name="t")
    assert [b["name"] for b in ir["branches"]] == ["branch1", "branch2", "branch3"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (
            'any where a == "x"',
            {"node": "pred", "field": "a", "field_type": "keyword", "op": "eq", "values": ["x"]},
        ),
        (
            'any where a != "x"',
            {
                "node": "not",
                "arg": {
                    "node": "pred",
                    "field": "a",
                    "field_type": "keyword",
                    "op": "eq",
                    "values": ["x"],
                },
            },
        ),
        (
            'any where a in ("x", "y")',
            {
                "node": "pred",
                "field": "a",
                "field_type": "keyword",
                "op": "eq",
                "values": ["x", "y"],
            },
        ),
        (
            'any where a in~ ("X")',
            {"node": "pred", "field": "a", "field_type": "keyword", "op": "eq_ci", "values": ["X"]},
        ),
        (
            'any where a : ("*x*", "y?")',
            {
                "node": "pred",
                "field": "a",
                "field_type": "keyword",
                "op": "wildcard",
                "values": ["*x*", "y?"],
            },
        ),
        (
            'any where source.ip == "::1"',
            {
                "node": "pred",
                "field": "source.ip",
                "field_type": "ip",
                "op": "eq",
                "values": ["::1"],
            },
        ),
        (
            'ANY WHERE NOT a == "x"',
            {
                "node": "not",
                "arg": {
                    "node": "pred",
                    "field": "a",
                    "field_type": "keyword",
                    "op": "eq",
                    "values": ["x"],
                },
            },
        ),
        (
            'any where a == "q\\"\\\\\\n"',
            {
                "node": "pred",
                "field": "a",
                "field_type": "keyword",
                "op": "eq",
                "values": ['q"\\\n'],
            },
        ),
        (
            'any where a == """raw \\ "x" """',
            {
                "node": "pred",
                "field": "a",
                "field_type": "keyword",
                "op": "eq",
                "values": ['raw \\ "x" '],
            },
        ),
        (
            'any where /* c */ a == "x" // end',
            {"node": "pred", "field": "a", "field_type": "keyword", "op": "eq", "values": ["x"]},
        ),
        (
            'any where `odd field`.b == "x"',
            {
                "node": "pred",
                "field": "odd field.b",
                "field_type": "keyword",
                "op": "eq",
                "values": ["x"],
            },
        ),
    ],
)
def test_accepted(query: str, expected: dict[str, object]) -> None:
    assert parse_query(query) == expected


@pytest.mark.parametrize(
    ("query", "position", "message"),
    [
        ('process where a == "x"', (1, 1), "'process where' is not supported yet"),
        ('sequence [any where a == "x"]', (1, 1), "sequence queries are not supported"),
        ('any a == "x"', (1, 5), "expected 'where', found 'a'"),
        (
            'any where a == "x" and',
            (1, 23),
            "expected a field name, 'not' or '(', found end of query",
        ),
        ('any where\n  a >= "x"', (2, 5), "expected an operator"),
        ("any where a == x", (1, 16), "expected a string literal, found 'x'"),
        ('any where a == "x', (1, 16), "unterminated string"),
        ('any where (a == "x"', (1, 20), "expected ')', found end of query"),
        ('any where a in ("x" "y")', (1, 21), "expected ',' or ')', found string \"y\""),
        ('any where startsWith(a, "x")', (1, 11), "function startsWith() is not supported"),
        ('any where a == "x" | head 1', (1, 20), "pipes are not supported"),
        (
            'any where source.ip : "10.*"',
            (1, 21),
            "':' is not supported on ip-typed field source.ip",
        ),
        ('any where source.ip == "10.0.0.01"', (1, 21), "is not a valid IP address"),
        ('any where a == "\\q"', (1, 17), "unsupported escape sequence \\q"),
        ("any where a == 1", (1, 16), "expected a string literal"),
        ('any where a == "x" $', (1, 20), "unexpected character '$'"),
        ('any where a == "x" b', (1, 20), "expected 'and', 'or' or end of query"),
    ],
)
def test_refused(query: str, position: tuple[int, int], message: str) -> None:
    with pytest.raises(EqlError) as err:
        parse_query(query)
    assert (err.value.line, err.value.column) == position, str(err.value)
    assert message in err.value.message
