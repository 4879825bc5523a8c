"""The KQL compiler (python/imds_scan/kql.py) and KQL rule files (spec/kql.md): Kibana's kuery
grammar (precedence, escapes, value lists, wildcards, refusals with line:column), the IR each
field mapping gives, and rule loading for query, new_terms and threshold rules with filters.
The cases are written from Kibana's grammar and `is`/`range` functions and Elasticsearch's
query docs, in our own words."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import ENGINES
from imds_scan import scan
from imds_scan.errors import EqlError
from imds_scan.kql import compile_query, lowercase
from imds_scan.mapping import FieldMapping
from imds_scan.rules import RuleFileError, parse_rule_text


class FakeMapping:
    """A data view: named fields with their mappings; any other field is a keyword."""

    def __init__(self, *fields: FieldMapping) -> None:
        self.fields = {f.name: f for f in fields}

    def resolve(self, field: str) -> FieldMapping:
        if field.startswith("flat."):  # a key below the flattened field: a keyword leaf
            return FieldMapping(field, "flattened", "keyword")
        return self.fields.get(field) or FieldMapping(field, "keyword", "keyword")

    def expand(self, pattern: str) -> list[str]:
        from fnmatch import fnmatchcase

        return sorted(n for n in self.fields if fnmatchcase(n, pattern))


MAPPING = FakeMapping(
    FieldMapping("kw", "keyword", "keyword", ignore_above=1024),
    FieldMapping("kw.caseless", "keyword", "keyword", normalizer="lowercase", multi_field_of="kw"),
    FieldMapping("kw.text", "text", "text", analyzer="standard", multi_field_of="kw"),
    FieldMapping("msg", "match_only_text", "text", analyzer="standard"),
    FieldMapping("script", "text", "text", analyzer="powershell_script"),
    FieldMapping("wc", "wildcard", "wildcard"),
    FieldMapping("ck", "constant_keyword", "keyword"),
    FieldMapping("ip", "ip", "ip"),
    FieldMapping("port", "long", "long"),
    FieldMapping("ratio", "float", "float"),
    FieldMapping("ts", "date", "date"),
    FieldMapping("flag", "boolean", "boolean"),
    FieldMapping("obj", "object", "object"),
    FieldMapping("flat", "flattened", "keyword"),
    FieldMapping("geo", "geo_point", "keyword"),
    FieldMapping("group", "nested", "nested"),
)


def ir(query: str) -> Any:
    return compile_query(query, mapping=MAPPING)  # type: ignore[arg-type]


def kw(field: str, op: str, *values: str) -> dict[str, Any]:
    return {
        "node": "pred",
        "field": field,
        "field_type": "keyword",
        "op": op,
        "values": list(values),
    }


def ecs(field: str, op: str, *values: str) -> dict[str, Any]:
    """A pred on an ECS keyword field of the profile (ignore_above 1024)."""
    return {**kw(field, op, *values), "ignore_above": 1024}


def refusal(query: str) -> tuple[int, int, str]:
    with pytest.raises(EqlError) as err:
        ir(query)
    return err.value.line, err.value.column, err.value.message


# ---------------------------------------------------------------- grammar


def test_precedence_not_then_and_then_or() -> None:
    a, b, c, d = (kw(x, "eq", "1") for x in "abcd")
    assert ir("a:1 or b:1 and c:1") == {"node": "or", "args": [a, {"node": "and", "args": [b, c]}]}
    assert ir("a:1 and b:1 or c:1 and d:1") == {
        "node": "or",
        "args": [{"node": "and", "args": [a, b]}, {"node": "and", "args": [c, d]}],
    }
    assert ir("not a:1 and b:1") == {"node": "and", "args": [{"node": "not", "arg": a}, b]}
    assert ir("(a:1 or b:1) and c:1") == {
        "node": "and",
        "args": [{"node": "or", "args": [a, b]}, c],
    }
    assert ir("not (not a:1)") == a  # double negation dropped


def test_keywords_are_case_insensitive_and_need_spaces() -> None:
    assert ir("a:1 OR b:1 AnD not c:1") == ir("a:1 or b:1 and NOT c:1")
    # `not` needs a space after it: `not(a:1)` is not KQL
    assert refusal("not(a:1)")[:2] == (1, 4)
    # A keyword needs spaces on both sides: `a:1or` is the value "1or"
    assert ir("a:1or") == kw("a", "eq", "1or")


def test_value_lists() -> None:
    assert ir("f: (a or b or c)") == kw("f", "eq", "a", "b", "c")
    assert ir("f: (a or b and not c)") == {
        "node": "or",
        "args": [
            kw("f", "eq", "a"),
            {
                "node": "and",
                "args": [kw("f", "eq", "b"), {"node": "not", "arg": kw("f", "eq", "c")}],
            },
        ],
    }
    assert ir('f: ("x y" or ((z)))') == kw("f", "eq", "x y", "z")
    assert ir("not f: (a or b)") == {"node": "not", "arg": kw("f", "eq", "a", "b")}


@pytest.mark.parametrize(
    ("query", "value"),
    [
        ("f: foo bar", "foo bar"),  # spaces inside an unquoted value are kept
        ("f:   foo   bar   ", "foo   bar"),  # and trimmed at its ends
        ("f: a or", "a or"),  # `or` with no space after it is part of the value
        (r"f: a\tb\rc\nd", "a\tb\rc\nd"),
        (r"f: \(\)\:\<\>\"\{\}\\", '()<>:"{}\\'.replace("<>:", ":<>")),
        (r"f: \u0041\u00e9", "Aé"),
        (r"f: \uD83D\uDE00", "\U0001f600"),  # a UTF-16 pair is one code point
        (r"f: x \or y \AND z", "x or y AND z"),  # escaped keywords keep their case
        (r"f: \tx\t", "x"),  # Kibana trims after decoding: an escaped tab at an end goes
        ('f: "a \\"b\\" \\\\ c"', 'a "b" \\ c'),
        ('f: "C:\\Windows\\*"', "C:\\Windows\\*"),  # other backslashes stay in quotes
        ('f: "a or b and not c"', "a or b and not c"),
        ('f: "*"', "*"),  # a quoted star is a star
        (r"f: \*", "*"),
        ("f: true", "true"),
        ('"my field": x', None),
    ],
)
def test_literals(query: str, value: str | None) -> None:
    node = ir(query)
    if value is None:
        assert node == kw("my field", "eq", "x")
    else:
        assert node == kw("f", "eq", value), query


def test_field_names() -> None:
    assert ir("process.name : x") == kw("process.name", "eq", "x")
    assert ir("not: x") == kw("not", "eq", "x")  # `not` without a space is a name
    assert ir("a b: x") == kw("a b", "eq", "x")


@pytest.mark.parametrize(
    ("query", "where", "message"),
    [
        ("f: (a", (1, 6), 'expected ")", AND or OR but end of input found'),
        ("f: cannot x", (1, 7), 'but "n" found'),  # `not ` ends an unquoted value
        (r"f: a\b", (1, 5), 'but "\\\\" found'),  # no such escape outside quotes
        ("f >", (1, 4), "expected literal but end of input found"),
        ("a:1\n and (b:1", (2, 10), 'expected ")"'),
        ('f: "abc', (1, 8), 'expected "\\"" but end of input found'),
        ("f: a )", (1, 6), 'but ")" found'),
        ("(f: a) x: y", (1, 8), 'expected end of input but "x" found'),
    ],
)
def test_syntax_errors(query: str, where: tuple[int, int], message: str) -> None:
    line, column, text = refusal(query)
    assert text.startswith("KQL syntax error: ")
    assert (line, column) == where and message in text, text


def test_nesting_is_bounded() -> None:
    deep = "(" * 101 + "a:1" + ")" * 101
    line, column, message = refusal(deep)
    assert (line, column) == (1, 101) and "parentheses nest more than 100 levels" in message
    assert ir("(" * 100 + "a:1" + ")" * 100) == kw("a", "eq", "1")
    values = "f: " + "(" * 101 + "a" + ")" * 101
    assert "parentheses nest more than 100" in refusal(values)[2]
    # 60 parentheses, but 120 and/not levels of IR
    query = "a:1"
    for i in range(60):
        query = f"b{i}:1 and not ({query})"
    line, column, message = refusal(query)
    assert (line, column) == (1, 1) and "the condition nests more than 100 levels deep" in message


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("query", "where", "message"),
    [
        ("foo", (1, 1), "free text (a value without a field) is not supported"),
        ('a:1 and\n  "foo bar"', (2, 3), "free text"),
        ("null: x", (1, 1), "free text"),
        ("ip: 10.*", (1, 5), "ip: a wildcard on an ip field (Elasticsearch refuses it)"),
        ("ip: **", (1, 5), "ip: a wildcard on an ip field"),
        ("port: 8*", (1, 7), "a wildcard on a long field"),
        ("ts: 2024*", (1, 5), "a wildcard on a date field"),
        ("ip: 10.0.0.300", (1, 5), "'10.0.0.300' is not an IP address"),
        ("ip: 10.0.0.0/33", (1, 5), "'10.0.0.0/33' is not a CIDR block"),
        ("port: abc", (1, 7), "'abc' is not a long value"),
        ("port > 1.5.6", (1, 8), "'1.5.6' is not a long value"),
        ("flag: yes", (1, 7), "'yes' is not a boolean value"),
        ("ts: yesterday", (1, 5), "'yesterday' is not a date"),
        ("ts > now-1d", (1, 6), "date math"),
        ("msg > a", (1, 7), "msg: a range on a text field is not supported"),
        ("ip < 10.0.0.0/8", (1, 6), "is not an IP address"),
        ("f: null", (1, 4), "null is not a value"),
        ("f > null", (1, 5), "a range to null"),
        ("obj: x", (1, 1), "obj is mapped as object"),
        ("flat: x", (1, 1), "flat is a flattened field: a query on its root matches any"),
        ("geo: x", (1, 1), "geo is a geo_point field: geo queries are not supported"),
        (
            "x: { y: 1 }",
            (1, 1),
            "nested query on x, which the mapping profile does not map as nested",
        ),
        ("msg: *a \\OR b*", (1, 6), "an operator of the query_string"),
    ],
)
def test_refusals(query: str, where: tuple[int, int], message: str) -> None:
    line, column, text = refusal(query)
    assert (line, column) == where and message in text, text


# ---------------------------------------------------------------- IR per mapping


def pred(field: str, ftype: str, op: str, values: list[str], **keys: Any) -> dict[str, Any]:
    return {"node": "pred", "field": field, "field_type": ftype, "op": op, "values": values, **keys}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # keyword: term, whether quoted or not; wildcard query for an unquoted `*`
        ("kw: a", pred("kw", "keyword", "eq", ["a"], ignore_above=1024)),
        ('kw: "a"', pred("kw", "keyword", "eq", ["a"], ignore_above=1024)),
        ("kw: *", pred("kw", "keyword", "exists", [], ignore_above=1024)),
        # `**` is no lone wildcard (Kibana removes one): a wildcard query, not exists
        ("kw: **", pred("kw", "keyword", "wildcard_query", ["**"], ignore_above=1024)),
        (
            "msg: ** x",
            {
                "node": "or",
                "args": [
                    pred("msg", "text", "wildcard_query", ["**"], analyzer="standard"),
                    pred("msg", "text", "match", ["x"], analyzer="standard"),
                ],
            },
        ),
        ("kw: a*b?c", pred("kw", "keyword", "wildcard_query", ["a*b\\?c"], ignore_above=1024)),
        (
            r"kw: C\:\\x\*y*",
            pred("kw", "keyword", "wildcard_query", ["C:\\\\x\\*y*"], ignore_above=1024),
        ),
        ("kw: a b*", pred("kw", "keyword", "wildcard_query", ["a b*"], ignore_above=1024)),
        ("kw < m", pred("kw", "keyword", "lt", ["m"], ignore_above=1024)),
        # a lowercase-normalized multi-field: the parent's values, literals normalized
        (
            "kw.caseless: *ÀB\u0130*",
            pred("kw", "keyword", "wildcard_query", ["*àbi*"], normalizer="lowercase"),
        ),
        ("kw.caseless: ABC", pred("kw", "keyword", "eq", ["abc"], normalizer="lowercase")),
        ("kw.caseless: *", pred("kw", "keyword", "exists", [], normalizer="lowercase")),
        # text: match / match_phrase; a wildcard value is a query_string split on spaces
        ("kw.text: foo bar", pred("kw", "text", "match", ["foo bar"], analyzer="standard")),
        (
            'kw.text: "foo bar"',
            pred("kw", "text", "match_phrase", ["foo bar"], analyzer="standard"),
        ),
        ("msg: *foo*", pred("msg", "text", "wildcard_query", ["*foo*"], analyzer="standard")),
        (
            "msg: *foo bar*",
            pred("msg", "text", "wildcard_query", ["*foo", "bar*"], analyzer="standard"),
        ),
        (
            "msg: *foo bar",
            {
                "node": "or",
                "args": [
                    pred("msg", "text", "wildcard_query", ["*foo"], analyzer="standard"),
                    pred("msg", "text", "match", ["bar"], analyzer="standard"),
                ],
            },
        ),
        ("script: a", pred("script", "text", "match", ["a"], analyzer="powershell_script")),
        # wildcard and constant_keyword: not "keyword" to Kibana: match (a term query) and
        # query_string
        ("wc: a", pred("wc", "wildcard", "eq", ["a"])),
        ("wc: *a b*", pred("wc", "wildcard", "wildcard_query", ["*a", "b*"])),
        # plain terms between wildcard terms are one field query, joined by one space
        (
            "wc: a  b\\tc *d e",
            {
                "node": "or",
                "args": [
                    pred("wc", "wildcard", "eq", ["a b c", "e"]),
                    pred("wc", "wildcard", "wildcard_query", ["*d"]),
                ],
            },
        ),
        (
            "msg: x * y*",
            {
                "node": "or",
                "args": [
                    pred("msg", "text", "match", ["x"], analyzer="standard"),
                    pred("msg", "text", "exists", [], analyzer="standard"),
                    pred("msg", "text", "wildcard_query", ["y*"], analyzer="standard"),
                ],
            },
        ),
        ("ck: *a?", pred("ck", "keyword", "wildcard_query", ["*a\\?"])),
        ("ck: a", pred("ck", "keyword", "eq", ["a"])),
        # ip: term (an address or a CIDR block), range
        ("ip: 10.0.0.1", pred("ip", "ip", "eq", ["10.0.0.1"])),
        ("ip: 10.0.0.0/8", pred("ip", "ip", "cidr", ["10.0.0.0/8"])),
        ('ip: "::1"', pred("ip", "ip", "eq", ["::1"])),
        ("ip >= 10.0.0.1", pred("ip", "ip", "gte", ["10.0.0.1"])),
        # numbers, dates, booleans
        ("port: 80", pred("port", "long", "eq", ["80"])),
        ("port <= 1024", pred("port", "long", "lte", ["1024"])),
        ("ratio > 0.5", pred("ratio", "float", "gt", ["0.5"])),
        ("ts: 2024-01-02", pred("ts", "date", "eq", ["2024-01-02"])),
        ('ts < "2024-01-02T03:04:05Z"', pred("ts", "date", "lt", ["2024-01-02T03:04:05Z"])),
        ("flag: true", pred("flag", "boolean", "eq", ["true"])),
        ("ts: *", pred("ts", "date", "exists", [])),
        # a key below a flattened field: not a plain keyword to Kibana (match, query_string)
        ("flat.a.b: x y", pred("flat.a.b", "keyword", "eq", ["x y"])),
        ("flat.a: *x y*", pred("flat.a", "keyword", "wildcard_query", ["*x", "y*"])),
    ],
)
def test_ir_per_mapping(query: str, expected: dict[str, Any]) -> None:
    assert ir(query) == expected


@pytest.mark.parametrize("query", ["", "  ", "*: *", " * : * "])
def test_match_all(query: str) -> None:
    # Kibana's match_all: a tautology in the IR (the field exists or does not)
    stamp = pred("@timestamp", "keyword", "exists", [])
    assert ir(query) == {"node": "or", "args": [stamp, {"node": "not", "arg": stamp}]}


def test_field_name_wildcards_expand_over_the_mapping() -> None:
    assert ir("kw*: a") == {
        "node": "or",
        "args": [
            pred("kw", "keyword", "eq", ["a"], ignore_above=1024),
            pred("kw", "keyword", "eq", ["a"], normalizer="lowercase"),
            pred("kw", "text", "match", ["a"], analyzer="standard"),
        ],
    }
    assert ir("kw*: *") == {
        "node": "or",
        "args": [
            pred("kw", "keyword", "exists", [], ignore_above=1024),
            pred("kw", "keyword", "exists", [], normalizer="lowercase"),
            pred("kw", "text", "exists", [], analyzer="standard"),
        ],
    }
    # No field matches: the name is sent as it is (a keyword nobody has)
    assert ir("nomatch*: a") == kw("nomatch*", "eq", "a")
    # Every field the name matches must accept the value (Elasticsearch fails the query)
    assert "'x' is not a long value" in refusal("p*: x")[2]


def test_lowercase_is_javas_simple_mapping() -> None:
    # no final sigma, U+0130 → i
    assert lowercase("\u00c0\u03a3\u0391\u03a3\u0130K") == "\u00e0\u03c3\u03b1\u03c3ik"


def test_the_profile_reads_multi_fields() -> None:
    node = compile_query('process.command_line.text: "a b" and process.name.caseless: CURL')
    assert node == {
        "node": "and",
        "args": [
            pred("process.command_line", "text", "match_phrase", ["a b"], analyzer="standard"),
            pred(
                "process.name", "keyword", "eq", ["curl"], normalizer="lowercase", ignore_above=1024
            ),
        ],
    }
    assert compile_query("destination.port: 443") == pred("destination.port", "long", "eq", ["443"])
    # process.command_line is a wildcard field: a query_string, split at whitespace
    assert compile_query("process.command_line: *a b*") == pred(
        "process.command_line", "wildcard", "wildcard_query", ["*a", "b*"]
    )


# ---------------------------------------------------------------- rule files

HEAD = """[rule]
name = "A KQL rule"
rule_id = "kql-1"
severity = "low"
language = "kuery"
"""


def load(body: str) -> Any:
    return parse_rule_text(HEAD + body, "r.toml")


def refused(body: str) -> str:
    with pytest.raises(RuleFileError) as err:
        load(body)
    return str(err.value)


def test_query_rule() -> None:
    rule = load('type = "query"\nquery = "process.name: curl"\n')
    assert rule.kind == "event" and rule.branch_names == ["query"]
    assert rule.ir == {
        "ir_version": 1,
        "id": "kql-1",
        "name": "A KQL rule",
        "severity": "low",
        "branches": [{"name": "query", "expr": ecs("process.name", "eq", "curl")}],
    }


def test_query_errors_name_the_file_line_and_column() -> None:
    text = "type = \"query\"\nquery = '''\nevent.category: process and\n  foo\n'''\n"
    assert refused(text) == "r.toml:9:3: free text (a value without a field) is not " + (
        "supported: it searches the index's default fields, which imds-scan does not know; "
        "name the field (field: value)"
    )
    assert refused('type = "query"\nquery = "a: (b"\n').startswith("r.toml:7:15: KQL syntax error")


NEW_TERMS = """type = "new_terms"
from = "now-9m"
timestamp_override = "event.ingested"
query = "event.category: network"

[rule.new_terms]
field = "new_terms_fields"
value = ["host.id", "process.executable"]

[[rule.new_terms.history_window_start]]
field = "history_window_start"
value = "now-7d"
"""


def test_new_terms_rule() -> None:
    rule = load(NEW_TERMS)
    assert rule.kind == "new_terms" and rule.branch_names == ["new_terms"]
    assert rule.ir["new_terms"] == {
        "expr": ecs("event.category", "eq", "network"),
        "timestamp_field": "event.ingested",
        "fallback_timestamp_field": "@timestamp",
        "interval_ms": 300_000,
        "from_ms": 540_000,
        "history_window_ms": 7 * 86_400_000,
        "fields": [
            {"field": "host.id", "field_type": "keyword", "ignore_above": 1024},
            {"field": "process.executable", "field_type": "keyword", "ignore_above": 1024},
        ],
    }
    assert "must reach further back than rule.from" in refused(
        NEW_TERMS.replace("now-7d", "now-5m")
    )
    assert "rule.new_terms.value: expected one to three field names" in refused(
        NEW_TERMS.replace('["host.id", "process.executable"]', "[]")
    )
    assert "rule.new_terms.value: source.geo.location is a geo_point field" in refused(
        NEW_TERMS.replace('"host.id"', '"source.geo.location"')
    )
    assert "message is a match_only_text field: Elasticsearch cannot aggregate" in refused(
        NEW_TERMS.replace('"host.id"', '"message"')
    )


THRESHOLD = """type = "threshold"
interval = "10m"
query = "event.action: login"

[rule.threshold]
field = ["user.name", "source.ip"]
value = 25

[[rule.threshold.cardinality]]
field = "destination.port"
value = 3
"""


def test_threshold_rule() -> None:
    rule = load(THRESHOLD)
    assert rule.kind == "threshold"
    assert rule.ir["threshold"] == {
        "expr": ecs("event.action", "eq", "login"),
        "timestamp_field": "@timestamp",
        "fallback_timestamp_field": None,
        "interval_ms": 600_000,
        "from_ms": 360_000,
        "fields": [
            {"field": "user.name", "field_type": "keyword", "ignore_above": 1024},
            {"field": "source.ip", "field_type": "ip"},
        ],
        "value": 25,
        "cardinality": [{"field": "destination.port", "field_type": "long", "value": 3}],
    }
    no_fields = THRESHOLD.replace('["user.name", "source.ip"]', "[]")
    assert load(no_fields).ir["threshold"]["fields"] == []
    assert "rule.threshold.value" in refused(THRESHOLD.replace("value = 25", "value = 0"))
    # Kibana reads the first cardinality entry only; its value may be 0
    two = THRESHOLD.replace("value = 3", "value = 0") + (
        '\n[[rule.threshold.cardinality]]\nfield = "user.id"\nvalue = 9\n'
    )
    assert load(two).ir["threshold"]["cardinality"] == [
        {"field": "destination.port", "field_type": "long", "value": 0}
    ]
    assert "rule.interval: '1w'" in refused(THRESHOLD.replace('"10m"', '"1w"'))
    assert "rule.to: 'now-1m': only now is supported" in refused('to = "now-1m"\n' + THRESHOLD)
    assert "rule.interval: '10x'" in refused(THRESHOLD.replace('"10m"', '"10x"'))
    assert "rule.from: 'now-0m'" in refused('from = "now-0m"\n' + THRESHOLD)


FILTERS = """type = "query"
query = "event.code: 4656"

[[rule.filters]]
[rule.filters.meta]
negate = true
[rule.filters.query.wildcard."process.executable"]
case_insensitive = true
value = "C:\\\\\\\\Program Files\\\\\\\\*.exe"

[[rule.filters]]
[rule.filters.meta]
negate = false
[rule.filters.query.exists]
field = "user.name"

[[rule.filters]]
[rule.filters.meta]
disabled = true
[rule.filters.query.exists]
field = "nobody"

[[rule.filters]]
[rule.filters.meta]
[rule.filters.query.bool]
should = [{match_phrase = {"process.name" = "a b"}}, {term = {"destination.port" = 80}}]
must_not = [{range = {"source.port" = {gte = 1, lt = 1024}}}]
"""


def test_filters_are_anded_in() -> None:
    rule = load(FILTERS)
    assert rule.ir["branches"][0]["expr"] == {
        "node": "and",
        "args": [
            ecs("event.code", "eq", "4656"),
            {
                "node": "not",
                "arg": ecs(
                    "process.executable", "wildcard_query_ci", "C:\\\\Program Files\\\\*.exe"
                ),
            },
            ecs("user.name", "exists"),
            {
                "node": "or",
                "args": [
                    ecs("process.name", "eq", "a b"),
                    pred("destination.port", "long", "eq", ["80"]),
                ],
            },
            {
                "node": "not",
                "arg": {
                    "node": "and",
                    "args": [
                        pred("source.port", "long", "gte", ["1"]),
                        pred("source.port", "long", "lt", ["1024"]),
                    ],
                },
            },
        ],
    }


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        (
            '[[rule.filters]]\nquery = {query_string = {query = "a"}}\n',
            "a query_string query is not supported",
        ),
        (
            '[[rule.filters]]\nquery = {wildcard = {"source.ip" = "10.*"}}\n',
            "source.ip is an ip field",
        ),
        (
            '[[rule.filters]]\nquery = {term = {"destination.port" = "x"}}\n',
            "'x' is not a long value",
        ),
        (
            "[[rule.filters]]\nquery = {bool = {must = [], minimum_should_match = 2}}\n",
            "minimum_should_match",
        ),
        ("filters = 3\n", "rule.filters: expected an array of tables"),
    ],
)
def test_unreadable_filters_are_refused(filters: str, message: str) -> None:
    text = refused('type = "query"\nquery = "a: b"\n' + filters)
    assert message in text and "r.toml: rule.filters" in text, text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            'type = "threat_match"\nquery = "a: b"\n',
            "rule type 'threat_match' is not supported (it matches events against "
            "threat-intelligence indices",
        ),
        ('type = "eql"\nquery = "a: b"\n', "rule type 'eql' is not supported"),
    ],
)
def test_refused_rule_types(body: str, message: str) -> None:
    assert message in refused(body)


def test_other_languages_are_refused_with_the_reason() -> None:
    text = HEAD.replace('"kuery"', '"lucene"') + 'type = "query"\nquery = "a:b"\n'
    with pytest.raises(RuleFileError) as err:
        parse_rule_text(text, "r.toml")
    assert str(err.value) == (
        "r.toml: language 'lucene' is not supported (Lucene query syntax is not supported)"
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_plain_kql_rules_scan_end_to_end(tmp_path: Path, engine: str) -> None:
    # Fields the profile does not map (plain keywords) and --field-type ones: ops both
    # engines run already.
    query = (
        "c.name: (curl or wget) and not c.user: root and c.port >= 80 and c.ip: 10.0.0.0/8 "
        "and not c.host: web-9"
    )
    text = HEAD + f'type = "query"\nquery = "{query}"\n'
    rule = parse_rule_text(text, "r.toml", {"c.ip": "ip", "c.port": "long"})
    events = [
        {"name": "curl", "user": "bob", "port": 80, "ip": "10.1.2.3", "host": "web-1"},
        {"name": "curl", "user": "root", "port": 80, "ip": "10.1.2.3", "host": "web-1"},
        {"name": "wget", "port": "8080", "ip": "10.9.9.9", "host": "web-2"},
        {"name": "wget", "port": 8080, "ip": "11.0.0.1", "host": "web-2"},
        {"name": "Curl", "port": 443, "ip": "10.0.0.1", "host": "web-3"},
        {"name": "wget", "port": 79, "ip": "10.0.0.1", "host": "web-3"},
        {"name": "wget", "port": 81, "ip": "10.0.0.1", "host": "web-9"},
    ]
    path = tmp_path / "e.ndjson"
    path.write_text("".join(json.dumps({"c": e}) + "\n" for e in events))
    result = scan([str(path)], rules=[rule], engine=engine)  # type: ignore[arg-type]
    assert [(h.line, h.branch) for h in result.hits] == [(1, "query"), (3, "query")]


def test_show_rule_prints_the_kql_ops_as_calls() -> None:
    from imds_scan.eql import format_rule

    query = 'process.name: curl* and not process.command_line.text: \\"a b\\"'
    rule = load(f'type = "query"\nquery = "{query}"\n')
    assert format_rule(rule.ir).splitlines()[-1] == (
        '  wildcardQuery(process.name, "curl*") and not matchPhrase(process.command_line, "a b")'
    )


def test_rules_compile_by_the_mapping_they_are_given() -> None:
    text = HEAD + "type = \"query\"\nquery = 'ip: 10.0.0.0/8 and kw.caseless: X'\n"
    given = parse_rule_text(text, "r.toml", mapping=MAPPING)  # type: ignore[arg-type]
    assert given.ir["branches"][0]["expr"] == {
        "node": "and",
        "args": [
            pred("ip", "ip", "cidr", ["10.0.0.0/8"]),
            pred("kw", "keyword", "eq", ["x"], normalizer="lowercase"),
        ],
    }
    # Without one: the profile, where no field "ip" is mapped: a keyword
    assert parse_rule_text(text, "r.toml").ir["branches"][0]["expr"]["args"][0]["field_type"] == (
        "keyword"
    )


def test_load_rules_takes_new_terms_and_threshold_rules(tmp_path: Path) -> None:
    from imds_scan.rules import load_rules

    (tmp_path / "nt.toml").write_text(HEAD + NEW_TERMS)
    (tmp_path / "th.toml").write_text(HEAD.replace("kql-1", "kql-2") + THRESHOLD)
    rules, warnings = load_rules([str(tmp_path)], cache=False)
    assert [(r.id, r.kind) for r in rules] == [("kql-1", "new_terms"), ("kql-2", "threshold")]
    assert warnings == []


@pytest.mark.parametrize("engine", ENGINES)
def test_match_all_matches_every_event(tmp_path: Path, engine: str) -> None:
    rule = load('type = "query"\nquery = "*: *"\n')
    path = tmp_path / "e.ndjson"
    path.write_text('{"@timestamp": "2024-01-01T00:00:00Z"}\n{"a": 1}\n{"@timestamp": "x"}\n')
    result = scan([str(path)], rules=[rule], engine=engine)  # type: ignore[arg-type]
    assert [h.line for h in result.hits] == [1, 2, 3]


@pytest.mark.parametrize("engine", ENGINES)
def test_profile_fields_scan_end_to_end(tmp_path: Path, engine: str) -> None:
    # ECS keyword fields (ignore_above 1024), a .caseless multi-field, a wildcard field's
    # query_string and an ip: as Elasticsearch would answer
    query = (
        "process.name: curl* and process.name.caseless: CURL.EXE and source.ip: 10.0.0.0/8 "
        "and not process.command_line: *secret*"
    )
    rule = load(f'type = "query"\nquery = "{query}"\n')
    events = [
        {"process": {"name": "curl.exe", "command_line": "curl x"}, "source": {"ip": "10.0.0.1"}},
        {"process": {"name": "curl.EXE"}, "source": {"ip": "10.0.0.1"}},
        {"process": {"name": "Curl.exe"}, "source": {"ip": "10.0.0.1"}},
        {"process": {"name": "curl.exe", "command_line": "a secret"}, "source": {"ip": "10.1.1.1"}},
        {"process": {"name": "curl.exe"}, "source": {"ip": "11.0.0.1"}},
        {"process": {"name": "curl.exe" + "x" * 1030}, "source": {"ip": "10.0.0.1"}},
    ]
    path = tmp_path / "e.ndjson"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    result = scan([str(path)], rules=[rule], engine=engine)  # type: ignore[arg-type]
    assert [h.line for h in result.hits] == [1, 2]
