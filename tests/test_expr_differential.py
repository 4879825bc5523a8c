"""Differential tests of the typed single-event language (spec/ir.md, "Typed fields, ranges,
regular expressions and expressions"): random well-typed EQL conditions over every comparison,
arithmetic operator, function and field type, compiled once, run by the reference engine and
by the Rust engine (prefilter on and off) on random events, with multi-valued, missing, null,
empty and wrongly typed values, numbers past the long range, and non-ASCII text. Both engines
must report the same hits with the same witnesses, or both refuse the rule the same way."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from conftest import hit_keys
from imds_scan import Rule, run_scan
from imds_scan.eql import EqlError, compile_rule, quote

# The fields of the generated queries, by type (passed to the compiler as field_types, so the
# test does not depend on the ECS table).
FIELDS = {
    "keyword": ["k.a", "k.b"],
    "long": ["n.a", "n.b"],
    "double": ["d.a"],
    "float": ["f.a"],
    "unsigned_long": ["u.a"],
    "date": ["t.a"],
    "ip": ["i.a"],
    "boolean": ["b.a"],
}
OVERRIDES = {f: t for t, fs in FIELDS.items() for f in fs if t != "keyword"}
NUMERIC = ["long", "double", "float", "unsigned_long"]

TEXTS = ["", "a", "A", "ab", "aB.c", "K", "\u212a", "\u00e9t\u00e9", "stra\u00dfe", "\U0001f600x"]
TEXTS += ["cmd.exe", "CMD.EXE", "/usr/bin/x", "10", "-7", "0x1f", "1e3", " 5 ", "a*b?", "x\\y"]
NUMBERS: list[Any] = [0, 1, -1, 2, 7, -7, 80, 2**31, 2**53 + 1, 2**63 - 1, -(2**63)]
NUMBERS += [2**63, 2**64 - 1, 2**64, -(2**63) - 1, 0.5, -0.0, 1.5, 1e300, 3.0]
DATES: list[Any] = ["2017-08-30T20:47:33Z", "2017-08-30T20:47:33.500Z", "2017-08-30", 1504126053000]
DATES += ["2017-08-30T22:47:33+02:00", "bad", 0, "1504126053000"]
IPS = ["10.0.0.1", "::ffff:a9fe:a9fe", "169.254.169.254", "fd00:ec2::254", "::1", "bad", "10.1"]
SCALARS: list[Any] = [*TEXTS, *NUMBERS, *DATES, *IPS, True, False, "true", "false", None]

text_lits = st.sampled_from(TEXTS)
small_ints = st.integers(-12, 12)


def lit_text(value: str) -> str:
    return quote(value)


def number_lit(draw: st.DrawFn, whole: bool = False) -> str:
    value = draw(st.sampled_from([0, 1, 2, 3, 7, -1, -7, 80, 2**31, 2**53 + 1, 2**63 - 1]))
    if not whole and draw(st.booleans()):
        return draw(st.sampled_from(["0.5", "1.5", "2.0", "-0.25", "80.0", "1e3"]))
    return str(value)


@st.composite
def string_expr(draw: st.DrawFn, depth: int = 2) -> str:
    """A string-valued expression."""
    choices = ["field", "lit"]
    if depth > 0:
        choices += ["substring", "concat", "between", "string"]
    kind = draw(st.sampled_from(choices))
    if kind == "field":
        return draw(st.sampled_from(FIELDS["keyword"]))
    if kind == "lit":
        return lit_text(draw(text_lits))
    inner = draw(string_expr(depth - 1))
    if kind == "substring":
        args = [inner, str(draw(small_ints))]
        if draw(st.booleans()):
            args.append(str(draw(small_ints)))
        return f"substring({', '.join(args)})"
    if kind == "concat":
        parts = [inner]
        for _ in range(draw(st.integers(0, 2))):
            parts.append(
                draw(
                    st.one_of(
                        string_expr(depth - 1),
                        number_expr(depth - 1),
                        st.sampled_from(["true", "null"]),
                    )
                )
            )
        return f"concat({', '.join(parts)})"
    if kind == "between":
        tilde = draw(st.sampled_from(["", "~"]))
        args = [inner, lit_text(draw(text_lits)), lit_text(draw(text_lits))]
        if draw(st.booleans()):
            args.append(draw(st.sampled_from(["true", "false"])))
        return f"between{tilde}({', '.join(args)})"
    return f"string({draw(st.one_of(number_expr(depth - 1), string_expr(depth - 1)))})"


@st.composite
def number_expr(draw: st.DrawFn, depth: int = 2) -> str:
    """A numeric expression."""
    choices = ["field", "lit"]
    if depth > 0:
        choices += ["arith", "fn", "length", "indexOf", "number", "negate"]
    kind = draw(st.sampled_from(choices))
    if kind == "field":
        return draw(st.sampled_from([f for t in NUMERIC for f in FIELDS[t]]))
    if kind == "lit":
        return number_lit(draw)
    if kind == "arith":
        left, right = draw(number_expr(depth - 1)), draw(number_expr(depth - 1))
        return f"({left} {draw(st.sampled_from(['+', '-', '*', '/', '%']))} {right})"
    if kind == "fn":
        name = draw(st.sampled_from(["add", "subtract", "multiply", "divide", "modulo"]))
        return f"{name}({draw(number_expr(depth - 1))}, {draw(number_expr(depth - 1))})"
    if kind == "length":
        return f"length({draw(string_expr(depth - 1))})"
    if kind == "indexOf":
        tilde = draw(st.sampled_from(["", "~"]))
        args = [draw(string_expr(depth - 1)), draw(string_expr(depth - 1))]
        if draw(st.booleans()):
            args.append(str(draw(small_ints)))
        return f"indexOf{tilde}({', '.join(args)})"
    if kind == "number":
        source = draw(st.sampled_from([*FIELDS["keyword"], *map(lit_text, TEXTS)]))
        base = draw(st.sampled_from(["", ", 10", ", 16", ", 2", ", null"]))
        return f"number({source}{base})"
    return f"-{draw(st.sampled_from([f for t in NUMERIC for f in FIELDS[t]]))}"


CMP = ["==", "!=", "<", "<=", ">", ">="]
REGEXES = ["a.*", ".*", "[a-c]+", "(cmd|x)\\.exe", "[^/]*", ".{0,3}", "\\d", ".*\u00e9.*"]
CIDRS = ["10.0.0.0/8", "169.254.0.0/16", "::/0", "fd00:ec2::/32", "0.0.0.0/0"]


@st.composite
def pred_condition(draw: st.DrawFn) -> str:
    """A field against literals: what Elasticsearch runs as Query DSL."""
    ftype = draw(st.sampled_from(list(FIELDS)))
    field = draw(st.sampled_from(FIELDS[ftype]))
    op = draw(st.sampled_from(CMP))
    if ftype == "keyword":
        kind = draw(st.sampled_from(["cmp", "in", ":", "like", "regex", "fn", "null"]))
        if kind == "cmp":
            return f"{field} {op} {lit_text(draw(text_lits))}"
        if kind == "in":
            items = ", ".join(
                lit_text(t) for t in draw(st.lists(text_lits, min_size=1, max_size=3))
            )
            return f"{field} {draw(st.sampled_from(['in', 'in~', 'not in', 'not in~']))} ({items})"
        if kind == ":":
            word = draw(st.sampled_from([":", "like", "like~"]))
            pattern = draw(st.sampled_from(["a*", "*.EXE", "?", "*\u00e9*"]))
            return f"{field} {word} {lit_text(pattern)}"
        if kind == "regex":
            word = draw(st.sampled_from(["regex", "regex~"]))
            return f"{field} {word} {lit_text(draw(st.sampled_from(REGEXES)))}"
        if kind == "fn":
            name = draw(st.sampled_from(["startsWith", "endsWith", "stringContains"]))
            tilde = draw(st.sampled_from(["", "~"]))
            return f"{name}{tilde}({field}, {lit_text(draw(text_lits))})"
        return f"{field} {draw(st.sampled_from(['==', '!=']))} null"
    if ftype in NUMERIC:
        literal = number_lit(draw)
        if ftype == "unsigned_long":
            literal = literal.lstrip("-")
        return f"{field} {op} {literal}"
    if ftype == "date":
        value = draw(st.sampled_from(['"2017-08-30T20:47:33Z"', '"2017-08-30"', "1504126053000"]))
        return f"{field} {op} {value}"
    if ftype == "ip":
        if draw(st.booleans()):
            blocks = draw(st.lists(st.sampled_from(CIDRS), min_size=1, max_size=2))
            return f"cidrMatch({field}, {', '.join(map(quote, blocks))})"
        return f"{field} {op} {quote(draw(st.sampled_from(IPS[:5])))}"
    return draw(
        st.sampled_from([field, f"{field} == true", f"{field} != false", f"{field} < true"])
    )


@st.composite
def expr_condition(draw: st.DrawFn) -> str:
    """A condition Elasticsearch runs as a script: functions, arithmetic, two fields."""
    kind = draw(st.sampled_from(["num", "str", "fn", "cidr", "null", "bool", "fields", "in"]))
    if kind == "in":
        if draw(st.booleans()):
            items = ", ".join(number_lit(draw) for _ in range(draw(st.integers(1, 3))))
            # `in` binds to a primary expression (`-a in (1)` is `-(a in (1))`): parenthesise.
            return f"({draw(number_expr())}) {draw(st.sampled_from(['in', 'not in']))} ({items})"
        items = ", ".join(lit_text(t) for t in draw(st.lists(text_lits, min_size=1, max_size=3)))
        return f"{draw(string_expr())} {draw(st.sampled_from(['in', 'not in']))} ({items})"
    if kind == "num":
        return f"{draw(number_expr())} {draw(st.sampled_from(CMP))} {draw(number_expr())}"
    if kind == "str":
        op = draw(st.sampled_from([*CMP, ":"]))
        right = lit_text(draw(text_lits)) if op == ":" else draw(string_expr())
        return f"{draw(string_expr())} {op} {right}"
    if kind == "fn":
        name = draw(st.sampled_from(["startsWith", "endsWith", "stringContains"]))
        tilde = draw(st.sampled_from(["", "~"]))
        return f"{name}{tilde}({draw(string_expr())}, {draw(string_expr())})"
    if kind == "cidr":
        field = FIELDS["ip"][0]
        block, truth = draw(st.sampled_from(CIDRS)), draw(st.sampled_from(["true", "false"]))
        return f"cidrMatch({field}, {quote(block)}) == {truth}"
    if kind == "null":
        inner = draw(st.one_of(number_expr(), string_expr()))
        return f"{inner} {draw(st.sampled_from(['==', '!=']))} null"
    if kind == "bool":
        inner = draw(st.one_of(pred_condition(), expr_condition()))
        return f"({inner}) == {draw(st.sampled_from(['true', 'false']))}"
    ftype = draw(st.sampled_from(["keyword", "long", "double"]))
    pool = FIELDS[ftype] if ftype == "keyword" else FIELDS["long"] + FIELDS["double"]
    left, right = draw(st.sampled_from(pool)), draw(st.sampled_from(pool))
    return f"{left} {draw(st.sampled_from(CMP))} {right}"


@st.composite
def condition(draw: st.DrawFn, depth: int = 2) -> str:
    if depth == 0 or draw(st.integers(0, 2)) == 0:
        return draw(st.one_of(pred_condition(), expr_condition()))
    kind = draw(st.sampled_from(["and", "or", "not"]))
    if kind == "not":
        return f"not ({draw(condition(depth - 1))})"
    return f"({draw(condition(depth - 1))}) {kind} ({draw(condition(depth - 1))})"


VALUES: dict[str, list[Any]] = {
    "keyword": [*TEXTS, 10, 1.5, True],
    "long": [*NUMBERS, "80", "8e1", "080", " 8", "x", True],
    "double": [*NUMBERS, "1.5", "NaN", "1e400", "x", False],
    "float": [*NUMBERS, "0.1", 0.1, 0.1000000001, 3.4e39],
    "unsigned_long": [*NUMBERS, "18446744073709551615", -1],
    "date": DATES,
    "ip": [*IPS, 5],
    "boolean": [True, False, "true", "false", "", "TRUE", 1],
}


@st.composite
def field_value(draw: st.DrawFn, ftype: str) -> Any:
    pool = st.sampled_from(VALUES[ftype] + SCALARS[::7])
    shape = draw(st.sampled_from(["missing", "one", "one", "one", "list", "null", "empty"]))
    if shape == "one":
        return draw(pool)
    if shape == "list":
        return draw(st.lists(st.one_of(pool, st.none()), min_size=1, max_size=3))
    return {"null": None, "empty": [], "missing": ...}[shape]


@st.composite
def event(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for ftype, fields in FIELDS.items():
        for field in fields:
            value = draw(field_value(ftype))
            if value is ...:
                continue
            head, tail = field.split(".")
            doc.setdefault(head, {})[tail] = value
    return doc


def run(
    tmp_path: Path, rule: Rule, events: list[dict[str, Any]], engine: str, prefilter: bool
) -> Any:
    path = tmp_path / "events.ndjson"
    path.write_text(
        "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events), encoding="utf-8"
    )
    return run_scan([str(path)], [rule], engine=engine, prefilter=prefilter)  # type: ignore[arg-type]


def compiled(cond: str) -> Rule:
    query = f"any where {cond}"
    try:
        ir = compile_rule(query, name="d", rule_id="d", severity="low", field_types=OVERRIDES)
    except EqlError as exc:
        # Refused by design: a regular expression the engines cannot translate exactly, a
        # literal Elasticsearch's query would fail on (out of the field type's range).
        if "regex" in exc.message and "is not supported" in exc.message:
            reject()
        if "is not a valid" in exc.message:
            reject()
        raise
    return Rule("d", "d", "low", query, ir)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(cond=condition(), events=st.lists(event(), min_size=1, max_size=6))
def test_engines_agree_on_typed_conditions(
    tmp_path: Path, cond: str, events: list[dict[str, Any]]
) -> None:
    rule = compiled(cond)
    outcomes = []
    for engine, prefilter in (("python", False), ("rust", True), ("rust", False)):
        try:
            result = run(tmp_path, rule, events, engine, prefilter)
        except ValueError as exc:  # a rule an engine refuses: both must refuse it alike
            outcomes.append(("refused", str(exc).removeprefix("rule error: ")))
            continue
        outcomes.append(("hits", hit_keys(result.hits)))
    assert outcomes[1] == outcomes[0], cond
    assert outcomes[2] == outcomes[0], cond


def grid() -> list[dict[str, Any]]:
    """Events where field i of type T takes the (row + i)-th value of T's pool (every 5th
    row leaves the field out): each value kind meets each other kind somewhere."""
    fields = [(t, f) for t, fs in FIELDS.items() for f in fs]
    rows = max(len(v) for v in VALUES.values())
    out = []
    for row in range(rows):
        doc: dict[str, Any] = {}
        for i, (ftype, field) in enumerate(fields):
            if (row + i) % 5 == 4:
                continue
            head, tail = field.split(".")
            doc.setdefault(head, {})[tail] = VALUES[ftype][(row + i) % len(VALUES[ftype])]
        out.append(doc)
    return out


GRID = grid()


@pytest.mark.parametrize(
    "cond",
    [
        "n.a + 1 > n.b",
        'length(k.a) == indexOf(k.b, "a")',
        'concat(k.a, n.a, d.a) : "*1*"',
        "number(k.a, 16) % 3 == -1",
        'substring(k.a, -2) < between~(k.b, "A", ".", true)',
        't.a >= "2017-08-30" and not (i.a < "10.0.0.0")',
        "u.a > 9223372036854775807 or f.a == 0.1",
        'b.a and k.a regex~ "[a-c]+"',
    ],
)
def test_engines_agree_on_hand_picked_conditions(tmp_path: Path, cond: str) -> None:
    # Deterministic companions of the random test: each operator family on every value kind.
    rule = compiled(cond)
    python = run(tmp_path, rule, GRID, "python", False)
    for prefilter in (True, False):
        rust = run(tmp_path, rule, GRID, "rust", prefilter)
        assert hit_keys(rust.hits) == hit_keys(python.hits), cond
