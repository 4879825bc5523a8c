"""format_rule / format_condition print the new nodes (ranges, regex, typed literals, `expr`
nodes) back as EQL that compiles to the same IR (issue 16)."""

from __future__ import annotations

from typing import Any

import pytest

import imds_scan.reference.lucene_regex as lucene_regex
from imds_scan.eql import compile_rule, format_condition, format_rule, parse_condition

TYPES = {"pid": "long", "ppid": "long", "ratio": "double", "flag": "boolean", "ts": "date"}

QUERIES = [
    "any where pid > 5 and 5 >= ppid and ratio < -1.5e3",
    'any where pid == "80" or pid in (1, "2", 3.5) or not pid <= -7',
    'any where ts >= "2017-08-30T20:47:33Z" and ts < 1504126053000',
    'any where a regex~ ("a.*", "b") and not b regex "[0-9]+"',
    "any where pid == ppid and length(a) > 3 and not length(b) > 3",
    "any where pid + 1 * 2 - -3 > ppid % 4 and -(5) < pid / 2",
    "any where startsWith~(host.name, substring(user.name, 0, -1)) and "
    "indexOf(string(host.ip), string(source.ip)) == null",
    'process where a in ("x", b) and a not in ("y", b) or string(pid) : ("1*", "2*")',
    'any where flag and true or (a == "x" or b == "y") == false',
    'any where cidrMatch(source.ip, "10.0.0.0/8") == false and source.ip == destination.ip',
    'any where between~(a, "<", ">", true) == concat(b, ".", 1) /* a comment */',
    'any where length(a) // a comment that ends the line\n  > 3 and b like~ "x*"',
    'any where source.ip in ("10.0.0.1", destination.ip) and ts > ts',
    "any where null != length(a) and not flag and not not length(b) > 1",
    'any where "abc" : "a*" and 1 == 1',
    'any where pid : (1, -2) and flag : true and cidrMatch(a, "10.0.0.0/8") : false',
    "any where (pid > 5) != true or (ts == 1504126053000) == (pid == 1)",
    # Wildcard queries made of endsWith/stringContains print back as those calls.
    'any where stringContains(a, "p=\\\\*") and endsWith~(b, "?.EXE")'
    ' or stringContains(a, "x\\\\")',
    'any where not stringContains~(a, "a*b") and endsWith(b, "x*")',
]


def test_affix_literals_that_eql_reads_as_wildcards_print_escaped() -> None:
    # A hand-written `contains` of a literal `*`: printed so that it compiles to the same test.
    node = {"node": "pred", "field": "a", "field_type": "keyword", "op": "contains"}
    text = format_condition({**node, "values": ["x*?\\"]})
    assert text == 'stringContains(a, "x\\\\*\\\\?\\\\\\\\")'
    again = parse_condition(text)
    assert again == {**node, "op": "wildcard_query", "values": ["*x\\*\\?\\\\*"]}


class _AnyRegex:
    """Accepts every pattern: these tests are about printing, not about regex support."""

    def __init__(self, pattern: str, case_insensitive: bool) -> None:
        pass


@pytest.mark.parametrize("query", QUERIES)
def test_format_rule_round_trips(query: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lucene_regex, "LuceneRegex", _AnyRegex)
    ir = compile_rule(query, name="t", field_types=TYPES)
    again = compile_rule(format_rule(ir), name="t", field_types=TYPES)
    assert again["branches"] == ir["branches"]


def test_expr_text_is_printed_verbatim() -> None:
    ir = compile_rule("any where length(a) /* c */ > 3", name="t")
    assert "length(a) /* c */ > 3" in format_rule(ir)


def _fields(value: dict[str, Any], out: dict[str, str]) -> dict[str, str]:
    if "field" in value:
        out[value["field"]] = value["field_type"]
    for arg in value.get("args", ()):
        _fields(arg, out)
    return out


@pytest.mark.parametrize(
    "value",
    [
        {
            "fn": "gt",
            "args": [
                {"fn": "length", "args": [{"field": "a", "field_type": "keyword"}]},
                {"lit": 3},
            ],
        },
        {"fn": "eq", "args": [{"fn": "negate", "args": [{"lit": 5}]}, {"lit": -5}]},
        {
            "fn": "lt",
            "args": [
                {
                    "fn": "subtract",
                    "args": [
                        {"lit": 1},
                        {
                            "fn": "subtract",
                            "args": [{"field": "pid", "field_type": "long"}, {"lit": 2.5}],
                        },
                    ],
                },
                {
                    "fn": "multiply",
                    "args": [{"fn": "add", "args": [{"lit": 1}, {"lit": 2}]}, {"lit": 3}],
                },
            ],
        },
        {
            # A `not` at the top of an expression has no EQL form (EQL's `not` over an
            # expression is a `not` node, outside the values' loop): here it is below `==`.
            "fn": "eq",
            "args": [
                {
                    "fn": "not",
                    "args": [
                        {
                            "fn": "in_ci",
                            "args": [
                                {"fn": "string", "args": [{"field": "pid", "field_type": "long"}]},
                                {"lit": "x"},
                                {"field": "b", "field_type": "keyword"},
                            ],
                        }
                    ],
                },
                {"field": "flag", "field_type": "boolean"},
            ],
        },
        {
            # `x == false` of a boolean x is `not x` when it is the condition (Elasticsearch's
            # rewrite), so this form is only written below another operator.
            "fn": "eq",
            "args": [
                {
                    "fn": "eq",
                    "args": [
                        {
                            "fn": "or",
                            "args": [
                                {
                                    "fn": "like_ci",
                                    "args": [
                                        {"field": "a", "field_type": "keyword"},
                                        {"lit": "x*"},
                                    ],
                                },
                                {
                                    "fn": "regex",
                                    "args": [{"field": "a", "field_type": "keyword"}, {"lit": "y"}],
                                },
                            ],
                        },
                        {"lit": False},
                    ],
                },
                {"field": "flag", "field_type": "boolean"},
            ],
        },
        {
            "fn": "is_null",
            "args": [
                {
                    "fn": "index_of_ci",
                    "args": [{"field": "a", "field_type": "keyword"}, {"lit": '"q"\n'}],
                }
            ],
        },
        {
            "fn": "in",
            "args": [
                {"field": "destination.ip", "field_type": "ip"},
                {"lit": "10.0.0.1", "type": "ip"},
                {"field": "source.ip", "field_type": "ip"},
            ],
        },
        {
            "fn": "cidr_match",
            "args": [
                {"fn": "string", "args": [{"field": "a", "field_type": "keyword"}]},
                {"lit": "10.0.0.0/8"},
            ],
        },
        {"fn": "starts_with_ci", "args": [{"lit": "abc"}, {"field": "a", "field_type": "keyword"}]},
    ],
)
def test_an_expr_whose_text_does_not_compile_back_is_printed_from_its_tree(
    value: dict[str, Any],
) -> None:
    node = {"node": "expr", "text": "written by hand", "expr": value}
    again = parse_condition(format_condition(node), field_types=_fields(value, {}))
    assert again["node"] == "expr"
    assert again["expr"] == value
