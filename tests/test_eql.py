"""The EQL-subset compiler: the seed compiles to the golden IR; everything else is refused
with line:column and what was expected."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import imds_scan.rules
from imds_scan.eql import (
    MAX_DEPTH,
    EqlError,
    compile_rule,
    ir_depth,
    parse_condition,
    parse_query,
)
from imds_scan.rules import default_query, default_rules

GOLDEN = Path(__file__).parents[1] / "crates" / "imds-core" / "tests" / "data" / "seed_ir.json"
# The seed detection card, kept verbatim in the package.
SEED_CARD = Path(imds_scan.rules.__file__).with_name("detection-card.txt")


def test_seed_compiles_to_golden_ir() -> None:
    assert default_rules()[0].ir == json.loads(GOLDEN.read_text())


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


def _p(field: str, op: str, values: list[str], ftype: str = "keyword") -> dict[str, object]:
    return {"node": "pred", "field": field, "field_type": ftype, "op": op, "values": values}


CATEGORY_PROCESS = _p("event.category", "eq", ["process"])


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # <category> where: event.category has the category, as a first conjunct.
        (
            'process where a == "x"',
            {"node": "and", "args": [CATEGORY_PROCESS, _p("a", "eq", ["x"])]},
        ),
        (
            'process where a == "x" and b == "y"',
            {"node": "and", "args": [CATEGORY_PROCESS, _p("a", "eq", ["x"]), _p("b", "eq", ["y"])]},
        ),
        (
            'process where a == "x" or b == "y"',
            {
                "node": "and",
                "args": [
                    CATEGORY_PROCESS,
                    {"node": "or", "args": [_p("a", "eq", ["x"]), _p("b", "eq", ["y"])]},
                ],
            },
        ),
        ('any where a not in ("x", "y")', {"node": "not", "arg": _p("a", "eq", ["x", "y"])}),
        ('any where a not in~ ("X")', {"node": "not", "arg": _p("a", "eq_ci", ["X"])}),
        ('any where a like "*X?*"', _p("a", "like", ["*X?*"])),
        ('any where a like ("x*", "Y")', _p("a", "like", ["x*", "Y"])),
        ('any where a like~ "*X*"', _p("a", "wildcard", ["*X*"])),
        (
            'any where a not like~ ("x", "y")',
            {"node": "not", "arg": _p("a", "wildcard", ["x", "y"])},
        ),
        # Numbers and booleans compare with the field's JSON text.
        ("any where destination.port == 80", _p("destination.port", "eq", ["80"], "long")),
        ("any where n in (1, -2.5, 1e3, true)", _p("n", "eq", ["1", "-2.5", "1e3", "true"])),
        (
            "any where process.pe.signed != false",
            {"node": "not", "arg": _p("process.pe.signed", "eq", ["false"])},
        ),
        # Optional fields are plain fields (a missing field is no value anyway).
        ('any where ?process.parent.name == "x"', _p("process.parent.name", "eq", ["x"])),
        ('any where ?`odd f`.x : "y"', _p("odd f.x", "wildcard", ["y"])),
        # null: whether the field has a value.
        ("any where a != null", _p("a", "exists", [])),
        ("any where ?a == null", {"node": "not", "arg": _p("a", "exists", [])}),
        (
            "any where source.ip == null",
            {"node": "not", "arg": _p("source.ip", "exists", [], "ip")},
        ),
        # Functions.
        ('any where startsWith(a, "Cu")', _p("a", "starts_with", ["Cu"])),
        ('any where startsWith~(a, "Cu")', _p("a", "starts_with_ci", ["Cu"])),
        ('any where endsWith(a, ".exe")', _p("a", "ends_with", [".exe"])),
        ('any where endsWith~(a, ".EXE")', _p("a", "ends_with_ci", [".EXE"])),
        ('any where stringContains(a, "x")', _p("a", "contains", ["x"])),
        ('any where stringContains~(?a, "X")', _p("a", "contains_ci", ["X"])),
        ('any where STARTSWITH(a, "x")', _p("a", "starts_with", ["x"])),
        (
            'any where cidrMatch(destination.ip, "10.0.0.0/8", "fd00:ec2::/32", "1.2.3.4")',
            _p("destination.ip", "cidr", ["10.0.0.0/8", "fd00:ec2::/32", "1.2.3.4"], "ip"),
        ),
        ('any where cidrMatch(x.addr, "10.0.0.0/8")', _p("x.addr", "cidr", ["10.0.0.0/8"])),
        (
            'any where not cidrMatch(source.ip, "10.0.0.0/8")',
            {"node": "not", "arg": _p("source.ip", "cidr", ["10.0.0.0/8"], "ip")},
        ),
    ],
)
def test_accepted_extended(query: str, expected: dict[str, object]) -> None:
    assert parse_query(query) == expected


def test_category_branch_names() -> None:
    ir = compile_rule('process where a == "1"', name="t")
    assert [b["name"] for b in ir["branches"]] == ["process"]
    ir = compile_rule('network where a == "1" or b == "2"', name="t")
    assert [b["name"] for b in ir["branches"]] == ["network"]


@pytest.mark.parametrize(
    ("query", "position", "message"),
    [
        ('sequence [any where a == "x"]', (1, 1), "sequence queries are not supported"),
        ('sample by host.id [any where a == "x"]', (1, 1), "sample queries are not supported"),
        ('join [any where a == "x"]', (1, 1), "join queries are not supported"),
        ('any a == "x"', (1, 5), "expected 'where', found 'a'"),
        (
            'any where a == "x" and',
            (1, 23),
            "expected a field name, a function, 'not' or '(', found end of query",
        ),
        ('any where a ~ "x"', (1, 13), "expected an operator"),
        ('any where a == "x', (1, 16), "unterminated string"),
        ("any where a == 'x'", (1, 16), "single-quoted strings are not supported"),
        ('any where (a == "x"', (1, 20), "expected ')', found end of query"),
        ('any where a in ("x" "y")', (1, 21), "expected ',' or ')', found string \"y\""),
        ("any where a in ()", (1, 17), "expected a literal, found ')'"),
        (
            'any where startsWith(a, "x", "y")',
            (1, 11),
            "error building [startsWith]: expects exactly two arguments, found 3",
        ),
        ("any where startsWith(a)", (1, 11), "expects exactly two arguments, found 1"),
        (
            "any where startsWith(a, 1)",
            (1, 25),
            "second argument of [startsWith(a, 1)] must be [string], found value [1] type "
            "[integer]",
        ),
        ('any where cidrMatch~(a, "10.0.0.0/8")', (1, 11), "cidrMatch has no case-insensitive"),
        ('any where cidrMatch(a, "10.0.0.0/33")', (1, 11), "is not a CIDR block"),
        ('any where cidrMatch(a, "10.0.0.1%eth0")', (1, 11), "is not a CIDR block"),
        ('any where startsWith(source.ip, "10.")', (1, 11), "startsWith is not supported on ip"),
        ('any where stringContains~(host.ip, "10.")', (1, 11), "stringContains~ is not supported"),
        ('any where a == "x" | head 1', (1, 20), "pipes are not supported"),
        (
            'any where source.ip : "10.*"',
            (1, 21),
            "':' is not supported on ip-typed field source.ip",
        ),
        ('any where source.ip like "10.*"', (1, 21), "'like' is not supported on ip-typed"),
        ('any where source.ip like~ "10.*"', (1, 21), "'like~' is not supported on ip-typed"),
        ('any where source.ip == "10.0.0.01"', (1, 24), "is not a valid IP address"),
        ("any where source.ip == 10", (1, 24), "is not a valid IP address"),
        ('any where a == "\\q"', (1, 17), "unsupported escape sequence \\q"),
        (
            'sequence by host.id with maxspan=1s [process where a == "x"]',
            (1, 1),
            "sequence queries are not supported",
        ),
        ("any where a == 08", (1, 16), "invalid number '08'"),
        ("any where a : null", (1, 15), "expected a string literal, found 'null'"),
        ('any where ? == "x"', (1, 11), "expected a field name after '?'"),
        ('any where a == "x" $', (1, 20), "unexpected character '$'"),
        ('any where a == "x" b', (1, 20), "expected 'and', 'or' or end of query"),
        ('any where a == "x" and not', (1, 27), "found end of query"),
    ],
)
def test_refused(query: str, position: tuple[int, int], message: str) -> None:
    with pytest.raises(EqlError) as err:
        parse_query(query)
    assert (err.value.line, err.value.column) == position, str(err.value)
    assert message in err.value.message, err.value.message


def test_conditions() -> None:
    assert parse_condition('a == "x" or b : "y"') == {
        "node": "or",
        "args": [_p("a", "eq", ["x"]), _p("b", "wildcard", ["y"])],
    }
    with pytest.raises(EqlError, match="end of condition"):
        parse_condition('a == "x" b')
    with pytest.raises(EqlError, match=r"allowlist:1:5: expected an operator"):
        parse_condition('any where a == "x"', "allowlist")


# ---------------------------------------------------------------- nesting


def _alternating(levels: int) -> str:
    """A condition `levels` deep once compiled: `and`/`or` alternating around a predicate."""
    text = 'f0 == "x"'
    for i in range(1, levels):
        text = f'f{i} == "x" {"and" if i % 2 else "or"} ({text})'
    return text


def test_chains_are_flattened_and_double_not_collapsed() -> None:
    a, b, c, d = (_p(f, "eq", ["1"]) for f in "abcd")
    assert parse_condition("a == 1 and (b == 1 and (c == 1 and d == 1))") == {
        "node": "and",
        "args": [a, b, c, d],
    }
    assert parse_condition("(a == 1 or b == 1) or (c == 1 or (d == 1))") == {
        "node": "or",
        "args": [a, b, c, d],
    }
    # Only chains of one operator: an `or` inside an `and` stays a child.
    assert parse_condition("a == 1 and (b == 1 or c == 1)") == {
        "node": "and",
        "args": [a, {"node": "or", "args": [b, c]}],
    }
    assert parse_condition("not not a == 1") == a
    assert parse_condition("not (not (a == 1))") == a
    assert parse_condition("not (a != 1)") == a
    assert parse_condition("not not not a == 1") == {"node": "not", "arg": a}
    # 5,000 `not`s: no recursion, one node.
    assert parse_condition("not " * 5000 + "a == 1") == a
    assert parse_condition("not " * 5001 + "a == 1") == {"node": "not", "arg": a}


def test_deep_parentheses_are_refused_with_their_position() -> None:
    # Was a RecursionError (a 1,100-line traceback) at 250 levels.
    deep = "(" * 250 + 'a == "x"' + ")" * 250
    with pytest.raises(EqlError) as err:
        parse_condition(deep, "--allow")
    assert str(err.value) == (
        "--allow:1:101: parentheses nest more than 100 levels deep (at most 100 are supported)"
    )
    with pytest.raises(EqlError, match=r"^q:2:101: parentheses nest more than 100"):
        parse_query("any where\n" + deep, "q")
    assert parse_condition("(" * 100 + 'a == "x"' + ")" * 100) == _p("a", "eq", ["x"])


def test_nesting_limit_is_checked_after_flattening() -> None:
    assert ir_depth(parse_condition(_alternating(MAX_DEPTH))) == MAX_DEPTH == 100
    ir = compile_rule(f"any where {_alternating(MAX_DEPTH)}", name="t")
    assert ir_depth(ir["branches"][0]["expr"]) == MAX_DEPTH
    with pytest.raises(EqlError) as err:
        parse_condition(_alternating(MAX_DEPTH + 1))
    assert err.value.message == (
        "the condition nests more than 100 levels deep (and/or/not; at most 100 are supported)"
    )
    # It points at the first node below the limit: `f1 == "x"` of the innermost `and`.
    text = _alternating(MAX_DEPTH + 1)
    assert (err.value.line, err.value.column) == (1, text.index('f1 == "x"') + 1)
    # The limit is per branch: a top-level `or` is not a level.
    branches = f"any where ({_alternating(MAX_DEPTH)}) or ({_alternating(MAX_DEPTH)})"
    assert len(compile_rule(branches, name="t")["branches"]) == 2
    # A `<category> where` puts its conjunct and the whole condition in one branch.
    condition = f'g == "y" or ({_alternating(MAX_DEPTH)})'
    assert len(compile_rule(f"any where {condition}", name="t")["branches"]) == 2
    with pytest.raises(EqlError, match="nests more than 100 levels"):
        parse_query(f"process where {condition}")
    # 300 levels of one operator are one level.
    chain = " and ".join(f'(f{i} == "x"' for i in range(300)) + ")" * 300
    assert ir_depth(parse_condition(chain.replace("(", "", 200).replace(")", "", 200))) == 2


def test_cli_refuses_a_deep_allow_in_one_line(tmp_path: Path) -> None:
    events = tmp_path / "e.ndjson"
    events.write_text("{}\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "imds_scan",
            str(events),
            "--allow",
            "(" * 250 + 'a == "x"' + ")" * 250,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr == (
        "imds-scan: error: --allow:1:101: parentheses nest more than 100 levels deep "
        "(at most 100 are supported)\n"
    )
