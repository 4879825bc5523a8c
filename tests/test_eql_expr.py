"""EQL → `expr` nodes (issue 16): everything that is not a field against literals compiles to
an expression with the IR function names of spec/ir.md, the condition's source text, and the
type checks of Elasticsearch's EQL verifier; refusals name file:line:col."""

from __future__ import annotations

from typing import Any

import pytest

from imds_scan.eql import MAX_DEPTH, EqlError, compile_rule, parse_condition

TYPES = {"pid": "long", "ppid": "long", "ratio": "double", "flag": "boolean", "ts": "date"}


def f(name: str, ftype: str = "keyword") -> dict[str, Any]:
    return {"field": name, "field_type": ftype}


def lit(value: Any, ltype: str | None = None) -> dict[str, Any]:
    return {"lit": value} if ltype is None else {"lit": value, "type": ltype}


def fn(name: str, *args: dict[str, Any]) -> dict[str, Any]:
    return {"fn": name, "args": list(args)}


def expr(text: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"node": "expr", "text": text, "expr": value}


PID, PPID, A, B = f("pid", "long"), f("ppid", "long"), f("a"), f("b")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        # Field against field.
        ("pid == ppid", fn("eq", PID, PPID)),
        ("pid != ppid", fn("neq", PID, PPID)),
        ("pid < ppid", fn("lt", PID, PPID)),
        ("a >= b", fn("gte", A, B)),
        ("source.ip == destination.ip", fn("eq", f("source.ip", "ip"), f("destination.ip", "ip"))),
        # Arithmetic: * / % before + -, left to right; unary minus binds tightest.
        ("pid + 1 * 2 > 3", fn("gt", fn("add", PID, fn("multiply", lit(1), lit(2))), lit(3))),
        ("pid - 1 - 2 == 0", fn("eq", fn("subtract", fn("subtract", PID, lit(1)), lit(2)), lit(0))),
        (
            "(pid - 1) * 2 == 0",
            fn("eq", fn("multiply", fn("subtract", PID, lit(1)), lit(2)), lit(0)),
        ),
        ("pid / 2 % 3 == 1", fn("eq", fn("modulo", fn("divide", PID, lit(2)), lit(3)), lit(1))),
        ("-pid < 0", fn("lt", fn("negate", PID), lit(0))),
        ("-(5) == pid", fn("eq", fn("negate", lit(5)), PID)),
        ("pid - -1.5 > ratio", fn("gt", fn("subtract", PID, lit(-1.5)), f("ratio", "double"))),
        ("+pid > 1", fn("gt", PID, lit(1))),
        (
            "add(pid, 1) == multiply(2, ppid)",
            fn("eq", fn("add", PID, lit(1)), fn("multiply", lit(2), PPID)),
        ),
        (
            "subtract(pid, 1) > divide(pid, modulo(ppid, 7))",
            fn("gt", fn("subtract", PID, lit(1)), fn("divide", PID, fn("modulo", PPID, lit(7)))),
        ),
        # String functions, nested, as values on either side.
        ("length(a) > 3", fn("gt", fn("length", A), lit(3))),
        ("3 < length(a)", fn("lt", lit(3), fn("length", A))),
        ('substring(a, 1) == "x"', fn("eq", fn("substring", A, lit(1)), lit("x"))),
        ("a == substring(b, 0, -1)", fn("eq", A, fn("substring", B, lit(0), lit(-1)))),
        (
            'concat(a, ".", b, 1, true, null) == "x"',
            fn("eq", fn("concat", A, lit("."), B, lit(1), lit(True), lit(None)), lit("x")),
        ),
        ('indexOf(a, "x") >= 0', fn("gte", fn("index_of", A, lit("x")), lit(0))),
        ('indexOf~(a, "x", 2) == 4', fn("eq", fn("index_of_ci", A, lit("x"), lit(2)), lit(4))),
        ('between(a, "<", ">") == "x"', fn("eq", fn("between", A, lit("<"), lit(">")), lit("x"))),
        (
            'between~(a, "<", ">", true) == b',
            fn("eq", fn("between_ci", A, lit("<"), lit(">"), lit(True)), B),
        ),
        ("number(a) == 5", fn("eq", fn("number", A), lit(5))),
        ("number(a, 16) > pid", fn("gt", fn("number", A, lit(16)), PID)),
        ('string(pid) == "5"', fn("eq", fn("string", PID), lit("5"))),
        (
            "length(string(length(a))) == 1",
            fn("eq", fn("length", fn("string", fn("length", A))), lit(1)),
        ),
        # Text functions with a non-literal argument, or used as values.
        ("startsWith(a, b)", fn("starts_with", A, B)),
        ('startsWith~("abc", a)', fn("starts_with_ci", lit("abc"), A)),
        ('endsWith(string(pid), "7")', fn("ends_with", fn("string", PID), lit("7"))),
        ("stringContains~(a, substring(b, 1))", fn("contains_ci", A, fn("substring", B, lit(1)))),
        (
            'startsWith(a, "x") == (pid > 1)',
            fn("eq", fn("starts_with", A, lit("x")), fn("gt", PID, lit(1))),
        ),
        (
            'cidrMatch(string(a), "10.0.0.0/8")',
            fn("cidr_match", fn("string", A), lit("10.0.0.0/8")),
        ),
        # Membership and patterns with expressions.
        ('a in ("x", b)', fn("in", A, lit("x"), B)),
        ('a in~ ("x", b)', fn("in_ci", A, lit("x"), B)),
        ("length(a) in (1, 2, pid)", fn("in", fn("length", A), lit(1), lit(2), PID)),
        ('string(pid) : "1*"', fn("wildcard", fn("string", PID), lit("1*"))),
        ('string(pid) like ("1*", "2?")', fn("like", fn("string", PID), lit("1*"), lit("2?"))),
        ('string(pid) like~ "a*"', fn("like_ci", fn("string", PID), lit("a*"))),
        ('string(pid) regex "1"', fn("regex", fn("string", PID), lit("1"))),
        ('string(pid) regex~ "a"', fn("regex_ci", fn("string", PID), lit("a"))),
        # `not in` over an expression folds into it.
        # Booleans: bare boolean fields and literals, comparisons of boolean results.
        ("flag", f("flag", "boolean")),
        ("true", lit(True)),
        ("false", lit(False)),
        ("null", lit(None)),
        ("flag == startsWith(a, b)", fn("eq", f("flag", "boolean"), fn("starts_with", A, B))),
        (
            '(a == "x" or b == "y") == flag',
            fn("eq", fn("or", fn("eq", A, lit("x")), fn("eq", B, lit("y"))), f("flag", "boolean")),
        ),
        (
            '((a == "x" and not b == "y") != false) == flag',
            fn(
                "eq",
                fn(
                    "neq",
                    fn("and", fn("eq", A, lit("x")), fn("not", fn("eq", B, lit("y")))),
                    lit(False),
                ),
                f("flag", "boolean"),
            ),
        ),
        # Dates and addresses: a string literal against them is a typed literal.
        (
            "ts < ts",
            fn("lt", f("ts", "date"), f("ts", "date")),
        ),
        ("add(1, 2) == 3", fn("eq", fn("add", lit(1), lit(2)), lit(3))),
        # `x == null` on an expression is Elasticsearch's IsNull, never null itself.
        ("length(a) == null", fn("is_null", fn("length", A))),
        ("pid < null", fn("lt", PID, lit(None))),
    ],
)
def test_expressions(text: str, value: dict[str, Any]) -> None:
    assert parse_condition(text, field_types=TYPES) == expr(text, value)


def test_typed_literals_in_expressions() -> None:
    ts = f("ts", "date")
    assert parse_condition('ts < ts or "2017-08-30" == ts', field_types=TYPES) == {
        "node": "or",
        "args": [
            expr("ts < ts", fn("lt", ts, ts)),
            {
                "node": "pred",
                "field": "ts",
                "field_type": "date",
                "op": "eq",
                "values": ["2017-08-30"],
            },
        ],
    }
    text = 'add(pid, 1) > 2 and destination.ip in ("10.0.0.1", source.ip)'
    assert parse_condition(text, field_types=TYPES)["args"][1] == expr(
        'destination.ip in ("10.0.0.1", source.ip)',
        fn("in", f("destination.ip", "ip"), lit("10.0.0.1", "ip"), f("source.ip", "ip")),
    )
    text = 'cidrMatch(source.ip, "10.0.0.0/8") == (source.ip == "::1")'
    assert parse_condition(text)["expr"] == fn(
        "eq",
        fn("cidr_match", f("source.ip", "ip"), lit("10.0.0.0/8")),
        fn("eq", f("source.ip", "ip"), lit("::1", "ip")),
    )


def not_(arg: dict[str, Any]) -> dict[str, Any]:
    return {"node": "not", "arg": arg}


def test_not_over_an_expression_stays_outside_it() -> None:
    """Elasticsearch's script loops over the values and negates the loop's answer
    (Scripts.docValuesRewrite): the `not` is a node over the `expr`, not folded into it."""
    gt = fn("gt", fn("length", A), lit(3))
    assert parse_condition("not length(a) > 3") == not_(expr("length(a) > 3", gt))
    assert parse_condition("not (length(a) > 3)") == not_(expr("length(a) > 3", gt))
    assert parse_condition("not not length(a) > 3") == expr("length(a) > 3", gt)
    assert parse_condition("not (not length(a) > 3)") == expr("length(a) > 3", gt)
    assert parse_condition("not flag", field_types=TYPES) == not_(
        expr("flag", f("flag", "boolean"))
    )
    assert parse_condition('a not in ("x", b)') == not_(
        expr('a in ("x", b)', fn("in", A, lit("x"), B))
    )
    # `x != null` is `not` over `x == null`, whichever side the null is on.
    is_null = fn("is_null", fn("length", A))
    for text in ("null != length(a)", "length(a) != null"):
        assert parse_condition(text) == not_(expr("length(a) == null", is_null)), text
    assert parse_condition("length(a) == null") == expr("length(a) == null", is_null)
    # Over and/or the `not` stays a node.
    assert parse_condition('not (length(a) > 3 and b == "x")') == {
        "node": "not",
        "arg": {
            "node": "and",
            "args": [
                expr("length(a) > 3", gt),
                {
                    "node": "pred",
                    "field": "b",
                    "field_type": "keyword",
                    "op": "eq",
                    "values": ["x"],
                },
            ],
        },
    }


def test_text_is_the_conditions_source_with_comments_and_lines() -> None:
    ir = compile_rule(
        "process where length(a) /* c */ >\n  3 and pid == ppid // x\n",
        name="t",
        field_types=TYPES,
    )
    _category, first, second = ir["branches"][0]["expr"]["args"]
    assert first == expr("length(a) /* c */ >\n  3", fn("gt", fn("length", A), lit(3)))
    assert second == expr("pid == ppid", fn("eq", PID, PPID))
    # Parentheses around the whole condition are not part of it.
    assert parse_condition("((pid == ppid))", field_types=TYPES)["text"] == "pid == ppid"


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        (
            "length(pid) > 1",
            8,
            "argument of [length(pid)] must be [string], found value [pid] type [long]",
        ),
        (
            "length(5) > 1",
            8,
            "argument of [length(5)] must be [string], found value [5] type [integer]",
        ),
        (
            "pid + a > 1",
            7,
            "second argument of [pid + a] must be [numeric], found value [a] type [keyword]",
        ),
        ("-a == 1", 2, "argument of [-a] must be [numeric], found value [a] type [keyword]"),
        (
            'add("1", 2) == 3',
            5,
            'first argument of [add("1", 2)] must be [numeric], found value ["1"] type [keyword]',
        ),
        (
            "substring(a, 1.5) == a",
            14,
            "second argument of [substring(a, 1.5)] must be [integer], found value [1.5] type "
            "[double]",
        ),
        (
            "indexOf(a, 1) == 0",
            12,
            "second argument of [indexOf(a, 1)] must be [string], found value [1] type [integer]",
        ),
        (
            'number(a, "16") == 1',
            11,
            'second argument of [number(a, "16")] must be [integer], found value ["16"] type '
            "[keyword]",
        ),
        (
            'between(a, "x", "y", flag) == a',
            22,
            'fourth argument of [between(a, "x", "y", flag)] must be a constant, received [flag]',
        ),
        (
            'between(a, "x", "y", 1) == a',
            22,
            'fourth argument of [between(a, "x", "y", 1)] must be [boolean], found value [1] type '
            "[integer]",
        ),
        (
            "cidrMatch(source.ip, a)",
            22,
            "second argument of [cidrMatch(source.ip, a)] must be a constant, received [a]",
        ),
        (
            'cidrMatch(pid, "10.0.0.0/8") == true',
            11,
            'first argument of [cidrMatch(pid, "10.0.0.0/8")] must be [ip], found value [pid] '
            "type [long]",
        ),
        ('cidrMatch(string(a), "10/8")', 22, "'10/8' is not a CIDR block (like 10.0.0.0/8)"),
        (
            "string(pid) : 5",
            15,
            "[string(pid) : 5]: [string(pid)] of type [keyword] cannot be compared with [5] of "
            "type [integer]",
        ),
        ("a : null", 5, "expected a string literal, found 'null'"),
        ('a : ("x*", 1)', 3, "':' with both string and non-string constants is not supported"),
        (
            'length(a) : "1"',
            1,
            'argument of [length(a) : "1"] must be [string], found value [length(a)] type '
            "[integer]",
        ),
        (
            "pid == a",
            8,
            "[pid == a]: [pid] of type [long] cannot be compared with [a] of type [keyword]",
        ),
        (
            'length(a) == "3"',
            14,
            '[length(a) == "3"]: [length(a)] of type [integer] cannot be compared with ["3"] of '
            "type [keyword]",
        ),
        (
            'ts == concat("x")',
            7,
            '[ts == concat("x")]: [ts] of type [date] cannot be compared with [concat("x")] of '
            "type [keyword]",
        ),
        ('ts > ts or ts < "yesterday"', 17, '"yesterday" is not a valid date for ts'),
        (
            'source.ip == destination.ip or source.ip in (destination.ip, "x")',
            62,
            '"x" is not a valid IP address in [source.ip in (destination.ip, "x")]',
        ),
        (
            "a",
            1,
            "a field alone (a) is a condition only when it is boolean; a is keyword: expected an "
            "operator",
        ),
        ("length(a)", 1, "condition expression needs to be boolean, found [integer] ([length(a)])"),
        ("pid + 1", 1, "condition expression needs to be boolean, found [long] ([pid + 1])"),
        ('"x"', 1, 'condition expression needs to be boolean, found [keyword] (["x"])'),
        ("5", 1, "condition expression needs to be boolean, found [integer] ([5])"),
        (
            "flag and pid",
            10,
            "a field alone (pid) is a condition only when it is boolean; pid is long: expected an "
            "operator",
        ),
        (
            'imdsEndpoint(a, "aws-metadata") == true',
            1,
            "imdsEndpoint() as a value is not supported",
        ),
        (
            "imdsEndpoint(a, b)",
            1,
            "imdsEndpoint takes a field and endpoint classes (string literals)",
        ),
        ("lengthOf(a) > 1", 1, "function lengthOf() is not supported"),
        ("length~(a) > 1", 1, "length has no case-insensitive (~) form"),
        ("length(a, b) > 1", 1, "error building [length]: expects exactly one argument, found 2"),
        (
            "substring(a) == a",
            1,
            "error building [substring]: expects two or three arguments, found 1",
        ),
        ("concat() == a", 1, "error building [concat]: expects at least one argument, found 0"),
        ("pid == ppid == true", 13, "chained comparisons are not supported: join them with 'and'"),
        (
            "pid == ",
            8,
            "expected a literal, a field name, a function or '(', found end of query",
        ),
    ],
)
def test_refusals_give_the_verifiers_reason_and_position(
    text: str, column: int, message: str
) -> None:
    with pytest.raises(EqlError) as err:
        parse_condition(text, "rules/x.toml", field_types=TYPES)
    assert err.value.message == message
    assert (err.value.line, err.value.column) == (1, column), str(err.value)


def test_nested_calls_and_regex_no_longer_give_parser_errors() -> None:
    # Were "expected ',', found '('" and "expected an operator ..., found 'regex'".
    ir = compile_rule(
        'any where startsWith~(host.name, substring(user.name, 0, -1)) and a regex~ "x"',
        name="t",
    )
    starts, regex = ir["branches"][0]["expr"]["args"]
    assert starts["expr"] == fn(
        "starts_with_ci", f("host.name"), fn("substring", f("user.name"), lit(0), lit(-1))
    )
    assert regex["op"] == "regex_ci"


def test_expression_depth_counts_its_operators() -> None:
    # A pred or an expr node is one level; each function or operator adds one.
    ok = "pid" + " + 1" * (MAX_DEPTH - 2) + " > 0"  # gt + 98 adds: 99 levels, +1 node
    assert parse_condition(ok, field_types=TYPES)["node"] == "expr"
    with pytest.raises(EqlError) as err:
        parse_condition("pid" + " + 1" * (MAX_DEPTH - 1) + " > 0", "q", field_types=TYPES)
    assert str(err.value) == (
        "q:1:1: the condition nests more than 100 levels deep "
        "(and/or/not; at most 100 are supported)"
    )
    # Inside and/or/not the levels add up.
    with pytest.raises(EqlError, match="nests more than 100 levels"):
        parse_condition('a == "x" and not (' + ok + ")", field_types=TYPES)
    # Long chains are refused without recursion.
    with pytest.raises(EqlError, match=r"^q:1:\d+: the expression nests more than 100 levels"):
        parse_condition("pid" + " + 1" * 20000 + " > 0", "q", field_types=TYPES)
    with pytest.raises(EqlError, match="nests more than 100 levels"):
        parse_condition("-" * 5000 + "pid > 0", field_types=TYPES)
    # Calls count against the parentheses limit.
    with pytest.raises(EqlError, match="parentheses nest more than 100 levels"):
        parse_condition("length(" * 101 + "a" + ")" * 101 + " > 0")
