"""Elasticsearch's EQL forms the compiler follows beyond the plain operators: `:` with a number
or boolean is an equality (ExpressionBuilder: `:` is InsensitiveWildcardEquals, a wildcard only
for a string), `x == true` / `x == false` of a boolean function or operator is `x` / `not x`
(its optimizer's BooleanFunctionEqualsElimination; not for a plain field), and a number against
a date is epoch milliseconds in an expression as in a predicate."""

from __future__ import annotations

from typing import Any

import pytest

from imds_scan.eql import EqlError, parse_condition, parse_query

TYPES = {"pid": "long", "flag": "boolean", "ts": "date"}


def pred(field: str, ftype: str, op: str, *values: str) -> dict[str, Any]:
    return {"node": "pred", "field": field, "field_type": ftype, "op": op, "values": list(values)}


def not_(node: dict[str, Any]) -> dict[str, Any]:
    return {"node": "not", "arg": node}


PID_GT_5 = pred("pid", "long", "gt", "5")


@pytest.mark.parametrize(
    ("text", "ir"),
    [
        # `:` with a number or a boolean compares as `==` (a pred on a typed field).
        ("pid : 1", pred("pid", "long", "eq", "1")),
        ("pid : -1", pred("pid", "long", "eq", "-1")),
        ("pid : (1, 2)", pred("pid", "long", "eq", "1", "2")),
        ("flag : true", pred("flag", "boolean", "eq", "true")),
        ("ts : 1504126053000", pred("ts", "date", "eq", "1504126053000")),
        ('a : "x*"', pred("a", "keyword", "wildcard", "x*")),
        (
            'cidrMatch(source.ip, "192.168.0.0/16", "10.0.0.0/8") : true',
            pred("source.ip", "ip", "cidr", "192.168.0.0/16", "10.0.0.0/8"),
        ),
        # A boolean function or operator == true / false is itself / its negation.
        ("(pid > 5) == true", PID_GT_5),
        ("(pid > 5) != false", PID_GT_5),
        ("true == (pid > 5)", PID_GT_5),
        ("(pid > 5) == false", not_(PID_GT_5)),
        ("(pid > 5) != true", not_(PID_GT_5)),
        ("false == (pid > 5)", not_(PID_GT_5)),
        ("(pid > 5) : false", not_(PID_GT_5)),
        ("not ((pid > 5) == false)", PID_GT_5),
        ("((pid > 5) == false) == false", PID_GT_5),
        ('startsWith(a, "x") == false', not_(pred("a", "keyword", "starts_with", "x"))),
        ('endsWith~(a, "x") != true', not_(pred("a", "keyword", "ends_with_ci", "x"))),
        (
            '(a == "x" or b == "y") == true',
            {
                "node": "or",
                "args": [pred("a", "keyword", "eq", "x"), pred("b", "keyword", "eq", "y")],
            },
        ),
        (
            # `not` over the expression, outside the loop over a's values.
            "(length(a) > 1) == false",
            not_(
                {
                    "node": "expr",
                    "text": "length(a) > 1",
                    "expr": {
                        "fn": "gt",
                        "args": [
                            {"fn": "length", "args": [{"field": "a", "field_type": "keyword"}]},
                            {"lit": 1},
                        ],
                    },
                }
            ),
        ),
        # A plain boolean field is not rewritten: it stays a pred over the field.
        ("flag == false", pred("flag", "boolean", "eq", "false")),
        ("flag != true", not_(pred("flag", "boolean", "eq", "true"))),
        # Before the rewrite a date compared with a number was refused in an expression.
        ("(ts == 1504126053000) == true", pred("ts", "date", "eq", "1504126053000")),
        (
            "(ts == 1504126053000) == (pid == 1)",
            {
                "node": "expr",
                "text": "(ts == 1504126053000) == (pid == 1)",
                "expr": {
                    "fn": "eq",
                    "args": [
                        {
                            "fn": "eq",
                            "args": [
                                {"field": "ts", "field_type": "date"},
                                {"lit": "1504126053000", "type": "date"},
                            ],
                        },
                        {"fn": "eq", "args": [{"field": "pid", "field_type": "long"}, {"lit": 1}]},
                    ],
                },
            },
        ),
    ],
)
def test_compiles_as_elasticsearch_rewrites_it(text: str, ir: dict[str, Any]) -> None:
    assert parse_condition(text, field_types=TYPES) == ir


def test_a_missing_field_matches_a_comparison_compared_with_false() -> None:
    # `not` over a pred is a must_not: an event without `pid` matches (ES's query does too).
    assert parse_query("any where (pid == 1) == false", field_types=TYPES) == not_(
        pred("pid", "long", "eq", "1")
    )


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        # The verifier runs before the rewrite: a wrongly typed call is still refused.
        (
            'cidrMatch(pid, "10.0.0.0/8") == true',
            11,
            'first argument of [cidrMatch(pid, "10.0.0.0/8")] must be [ip], found value [pid] '
            "type [long]",
        ),
        (
            'cidrMatch(pid, "10.0.0.0/8")',
            11,
            'first argument of [cidrMatch(pid, "10.0.0.0/8")] must be [ip], found value [pid] '
            "type [long]",
        ),
        (
            "(pid + 1) == true",
            14,
            "[(pid + 1) == true]: [(pid + 1)] of type [long] cannot be compared with [true] of "
            "type [boolean]",
        ),
        ("(ts > 1.5) == (pid == 1)", 7, "1.5 is not a valid date in [ts > 1.5]"),
        ("pid : null", 7, "expected a string literal, found 'null'"),
        ("pid : 1 : 2", 9, "expected 'and', 'or' or end of condition"),
        ("pid : (1, -true)", 12, "expected a number, found 'true'"),
    ],
)
def test_refusals(text: str, column: int, message: str) -> None:
    with pytest.raises(EqlError) as err:
        parse_condition(text, field_types=TYPES)
    assert err.value.column == column, str(err.value)
    assert message in err.value.message, err.value.message
