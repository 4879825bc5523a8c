"""EQL → IR for a field against literals (issue 16): comparisons and ranges in the field's
type, literals on either side, typed literals read (or refused) when the rule is compiled,
regex predicates, and the `overrides` mapping of field types."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import imds_scan.reference.lucene_regex as lucene_regex
from imds_scan.eql import EqlError, compile_rule, parse_condition, parse_query
from imds_scan.rules import RuleFileError, load_rules

TYPES = {
    "pid": "long",
    "port": "integer",
    "small": "byte",
    "big": "unsigned_long",
    "ratio": "double",
    "f32": "float",
    "f16": "half_float",
    "@timestamp": "date",
    "flag": "boolean",
}


def pred(field: str, op: str, values: list[str], ftype: str = "keyword") -> dict[str, Any]:
    return {"node": "pred", "field": field, "field_type": ftype, "op": op, "values": values}


def typed(text: str) -> dict[str, Any]:
    return parse_condition(text, field_types=TYPES)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pid > 5", pred("pid", "gt", ["5"], "long")),
        ("pid >= 5", pred("pid", "gte", ["5"], "long")),
        ("pid < 5", pred("pid", "lt", ["5"], "long")),
        ("pid <= 5", pred("pid", "lte", ["5"], "long")),
        # A literal on the left is mirrored: `5 < pid` is `pid > 5`.
        ("5 < pid", pred("pid", "gt", ["5"], "long")),
        ("5 <= pid", pred("pid", "gte", ["5"], "long")),
        ("5 > pid", pred("pid", "lt", ["5"], "long")),
        ("5 >= pid", pred("pid", "lte", ["5"], "long")),
        ('"x" == a', pred("a", "eq", ["x"])),
        ('"x" != a', {"node": "not", "arg": pred("a", "eq", ["x"])}),
        ("null == a", {"node": "not", "arg": pred("a", "exists", [])}),
        # A minus on a number is the negative literal, as written.
        ("pid >= -5", pred("pid", "gte", ["-5"], "long")),
        ("pid > - 5", pred("pid", "gt", ["-5"], "long")),
        ("pid == - -5", pred("pid", "eq", ["5"], "long")),
        # Literals of a typed pred are kept as written; the engines read them in the type.
        ('pid == "80"', pred("pid", "eq", ["80"], "long")),
        ("pid == 80.0", pred("pid", "eq", ["80.0"], "long")),
        ('pid in (1, "2", 3.5, 4e2)', pred("pid", "eq", ["1", "2", "3.5", "4e2"], "long")),
        ("ratio < 1.5e3", pred("ratio", "lt", ["1.5e3"], "double")),
        (
            '@timestamp == "2017-08-30T20:47:33Z"',
            pred("@timestamp", "eq", ["2017-08-30T20:47:33Z"], "date"),
        ),
        ("@timestamp >= 1504126053000", pred("@timestamp", "gte", ["1504126053000"], "date")),
        ('@timestamp < "2017-08-30"', pred("@timestamp", "lt", ["2017-08-30"], "date")),
        ("flag == true", pred("flag", "eq", ["true"], "boolean")),
        ('flag != "false"', {"node": "not", "arg": pred("flag", "eq", ["false"], "boolean")}),
        # Keyword ranges compare as text; a number is its text.
        ('a < "m"', pred("a", "lt", ["m"])),
        ("a >= 10", pred("a", "gte", ["10"])),
        ('source.ip >= "10.0.0.0"', pred("source.ip", "gte", ["10.0.0.0"], "ip")),
        # A null in an `in` list matches nothing: Elasticsearch's terms query leaves it out.
        ('a in ("x", null)', pred("a", "eq", ["x"])),
        ('a not in (null, "x")', {"node": "not", "arg": pred("a", "eq", ["x"])}),
        # Regular expressions (checked with LuceneRegex when compiled).
        ('a regex "abc"', pred("a", "regex", ["abc"])),
        ('a regex~ "abc"', pred("a", "regex_ci", ["abc"])),
        ('a regex ("abc", "def")', pred("a", "regex", ["abc", "def"])),
        ('a not regex~ "abc"', {"node": "not", "arg": pred("a", "regex_ci", ["abc"])}),
        ('?a == "x"', pred("a", "eq", ["x"])),
    ],
)
def test_field_against_literals_is_a_pred(text: str, expected: dict[str, Any]) -> None:
    assert typed(text) == expected


def test_overrides_reach_the_ir_through_compile_rule() -> None:
    ir = compile_rule("any where pid > 5", name="t", field_types={"pid": "long"})
    assert ir["branches"][0]["expr"] == pred("pid", "gt", ["5"], "long")
    assert parse_query("any where pid > 5", field_types={"pid": "short"}) == pred(
        "pid", "gt", ["5"], "short"
    )
    # Without overrides the field is a keyword (until the ECS table says otherwise).
    assert parse_condition("zz.unlisted > 5") == pred("zz.unlisted", "gt", ["5"])


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        ('pid == "abc"', 8, '"abc" is not a valid long value for pid'),
        ("pid == true", 8, "true is not a valid long value for pid"),
        ('pid > "1x"', 7, '"1x" is not a valid long value for pid'),
        ("small == 128", 10, "128 is not a valid byte value (out of range) for small"),
        ("small == -129", 10, "-129 is not a valid byte value (out of range) for small"),
        ("big < -1", 7, "-1 is not a valid unsigned_long value (out of range) for big"),
        ("pid == 9223372036854775808", 8, "number 9223372036854775808 is too large"),
        ('ratio == "NaN"', 10, '"NaN" is not a valid double value for ratio'),
        ("f32 == 1e39", 8, "1e39 is not a valid float value (out of range) for f32"),
        ("f16 == 65520", 8, "65520 is not a valid half_float value (out of range) for f16"),
        ('@timestamp == "2017-13-01"', 15, '"2017-13-01" is not a valid date for @timestamp'),
        ("@timestamp == 1.5", 15, "1.5 is not a valid date for @timestamp"),
        ('flag == "yes"', 9, '"yes" is not a valid boolean value for flag'),
        ("flag == 1", 9, "1 is not a valid boolean value for flag"),
        ("source.ip < 5", 13, "5 is not a valid IP address for source.ip"),
        ('pid : "1*"', 5, "':' is not supported on long-typed field pid"),
        ('pid regex "1.*"', 5, "'regex' is not supported on long-typed field pid"),
        ('source.ip regex~ "1"', 11, "'regex~' is not supported on ip-typed field source.ip"),
        ("pid in~ (1)", 5, "'in~' is not supported on long-typed field pid"),
        ('startsWith(pid, "1")', 1, "startsWith is not supported on long-typed field pid"),
        ("a == 1 < 2", 8, "chained comparisons are not supported: join them with 'and'"),
        ("a = 1", 3, "'=' is not supported: use '=='"),
        ("a regex 5", 9, "expected a string literal, found number 5"),
    ],
)
def test_literals_the_type_cannot_read_are_refused(text: str, column: int, message: str) -> None:
    with pytest.raises(EqlError) as err:
        parse_condition("\n" + text, "r.toml", field_types=TYPES)
    assert (err.value.line, err.value.column) == (2, column), str(err.value)
    assert err.value.message == message
    assert str(err.value).startswith(f"r.toml:2:{column}: ")


def test_regex_literals_are_checked_with_lucene_regex(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, bool]] = []

    class Checked:
        def __init__(self, pattern: str, case_insensitive: bool) -> None:
            seen.append((pattern, case_insensitive))
            if "&" in pattern:
                raise ValueError(f'regex "{pattern}": & (intersection) is not supported')

    monkeypatch.setattr(lucene_regex, "LuceneRegex", Checked)
    assert typed('a regex~ ("x.*", "[0-9]+")') == pred("a", "regex_ci", ["x.*", "[0-9]+"])
    assert seen == [("x.*", True), ("[0-9]+", True)]
    with pytest.raises(EqlError) as err:
        parse_condition('a == "b" and\n  c regex ("ok", "a&b")', "q")
    assert str(err.value) == 'q:2:18: regex "a&b": & (intersection) is not supported'
    # In an expression too.
    with pytest.raises(EqlError, match=r"^q:1:18: regex \"a&b\""):
        parse_condition('string(a) regex~ "a&b"', "q")


def test_rule_files_compile_with_the_overrides_and_cache_per_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    rule = tmp_path / "r.toml"
    rule.write_text(
        '[metadata]\ncreation_date = "2026/12/05"\n\n[rule]\nname = "t"\nrule_id = "t-1"\n'
        "severity = \"low\"\nlanguage = \"eql\"\nquery = '''\nany where pid > 5\n'''\n"
    )
    for _ in range(2):  # the second round reads the cache
        for overrides, ftype in (({"pid": "long"}, "long"), (None, "keyword")):
            (loaded,), _ = load_rules([str(rule)], field_types=overrides)
            assert loaded.ir["branches"][0]["expr"] == pred("pid", "gt", ["5"], ftype)
    with pytest.raises(RuleFileError, match=r'r\.toml:10:17: "x" is not a valid long value'):
        rule.write_text(rule.read_text().replace("pid > 5", 'pid > "x"'))
        load_rules([str(rule)], field_types={"pid": "long"})
