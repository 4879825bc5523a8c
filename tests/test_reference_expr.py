"""The reference engine's typed readings and expressions on their own (spec/ir.md, "Typed
fields, ranges, regular expressions and expressions"); spec/vectors/expr_ref.jsonl holds
both engines to the same verdicts."""

from __future__ import annotations

import math
import random
import struct
import time
from fractions import Fraction
from typing import Any

import pytest

from imds_scan.reference import expr
from imds_scan.reference.eval import CompiledRule
from imds_scan.reference.event import JsonNumber, field_values, parse_line, raw_values
from imds_scan.reference.expr import (
    MAX_COMBINATIONS,
    CompiledValue,
    _index_of,
    _number,
    _substring,
    java_double_text,
    to_string,
)
from imds_scan.reference.typed import (
    Date,
    Ip,
    compare,
    read_float,
    read_integer,
    read_literal,
    read_value,
    to_float32,
    to_half,
)


def doc_of(line: str) -> dict[str, Any]:
    parsed = parse_line(line.encode())
    assert parsed is not None
    return parsed[0]


def rule(node: dict[str, Any]) -> dict[str, Any]:
    return {"ir_version": 1, "name": "r", "branches": [{"name": "b", "expr": node}]}


# ---------------------------------------------------------------- JSON kinds


def test_numbers_keep_their_text_and_their_kind() -> None:
    doc = doc_of('{"a": [80, "80", true, 1.50, null, {"x": 1}], "b": "\\ud800"}')
    assert list(field_values(doc, ["a"])) == ["80", "80", "true", "1.50"]
    kinds = [type(v) for v in raw_values(doc, ["a"])]
    assert kinds == [JsonNumber, str, bool, JsonNumber]
    assert list(field_values(doc, ["b"])) == ["\ufffd"]


def test_a_lone_surrogate_line_keeps_its_numbers_numbers() -> None:
    doc = doc_of('{"a": 7, "b": "\\udc00"}')
    assert [type(v) for v in raw_values(doc, ["a"])] == [JsonNumber]


# ---------------------------------------------------------------- typed readings


@pytest.mark.parametrize(
    ("text", "field_type", "expected"),
    [
        ("80", "long", 80),
        ("8e1", "long", 80),
        ("+80", "long", 80),
        ("80.", "long", 80),
        (".5", "long", 0),
        ("-0.9", "long", 0),
        ("-9.9", "byte", -9),
        ("9223372036854775807", "long", 2**63 - 1),
        ("9223372036854775808", "long", None),
        ("-9223372036854775808", "long", -(2**63)),
        ("18446744073709551615", "unsigned_long", 2**64 - 1),
        ("-1", "unsigned_long", None),
        ("1e400", "long", None),
        ("1e-400", "long", 0),
        (" 80", "long", None),
        ("0x50", "long", None),
        ("NaN", "long", None),
        ("\u0661", "long", None),  # an Arabic-Indic digit: not an ASCII digit
        ("1_000", "long", None),
    ],
)
def test_integer_reading(text: str, field_type: str, expected: int | None) -> None:
    assert read_integer(text, field_type) == expected


@pytest.mark.parametrize(
    ("item", "field_type", "expected"),
    [
        # JSON numbers with a fraction go through a double (Jackson), strings are read exactly
        (JsonNumber("9007199254740993.5"), "long", 9007199254740994),
        ("9007199254740993.5", "long", 9007199254740993),
        ("80.00000000000000000001", "long", 0),  # Elasticsearch's 19-digit shortcut
        ("1e20", "long", None),
        # integer, short, byte: strings by Double.parseDouble
        (" 5\t", "integer", 5),
        ("0x1.4p2", "integer", 5),
        ("5d", "short", 5),
        ("NaN", "integer", 0),
        ("2147483647.5", "integer", None),
        ("32767.5", "short", None),
        ("127.9", "byte", 127),
        ("128.5", "byte", None),
        (JsonNumber("2147483648"), "short", None),
        # unsigned_long: no fraction, a JSON double saturates at 2^63 - 1
        ("5.5", "unsigned_long", None),
        ("5e0", "unsigned_long", 5),
        ("-0", "unsigned_long", 0),
        ("+05", "unsigned_long", 5),
        (JsonNumber("5.5"), "unsigned_long", None),
        (JsonNumber("1e19"), "unsigned_long", 2**63 - 1),
        (JsonNumber("-1"), "unsigned_long", None),
        ("", "long", None),
        ("", "integer", None),
    ],
)
def test_integer_reading_as_elasticsearch_maps(
    item: str, field_type: str, expected: int | None
) -> None:
    assert read_integer(item, field_type) == expected


def test_hostile_exponents_are_read_at_once() -> None:
    start = time.process_time()
    assert read_integer("1e999999999999", "long") is None
    assert read_integer("1e-999999999999", "long") is None  # BigDecimal's scale overflows
    assert read_integer("1e-400", "long") == 0
    assert read_integer(JsonNumber("0." + "1" * 1_000_000), "long") == 0
    assert read_float("0." + "1" * 1_000_000, "double") == 0.1111111111111111
    assert read_float("1" * 1_000_000 + "e-999999", "float") == 1.1111111640930176
    assert read_float("0x" + "f" * 1_000_000 + "p-3999999", "double") == 2.0
    assert read_float("1e999999999999", "double") is None
    assert read_float("-1e-999999999999", "float") == 0.0
    assert read_float("0x1p999999999999", "double") is None
    assert time.process_time() - start < 1


def test_floating_point_rounding_agrees_with_struct() -> None:
    rng = random.Random(16)
    for _ in range(5000):
        (value,) = struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))
        if value != value or value in (float("inf"), float("-inf")):
            continue
        try:
            (single,) = struct.unpack("f", struct.pack("f", value))
        except OverflowError:
            single = float("inf")
        got = to_float32(Fraction(value))
        assert got == (None if single in (float("inf"), float("-inf")) else single)
        if got is not None:
            try:
                (half,) = struct.unpack("e", struct.pack("e", got))
            except OverflowError:
                half = float("inf")
            assert to_half(Fraction(value)) == (None if abs(half) == float("inf") else half)


def test_float_rounds_the_text_once() -> None:
    # Halfway between 1 and the next binary32, plus a little: up, not to the tie's even side
    # as it would through a double.
    text = "1.000000059604644775390625001"
    assert read_float(text, "float") == 1 + 2**-23
    (through_double,) = struct.unpack("f", struct.pack("f", float(text)))
    assert through_double == 1.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        *[(" 8 ", 8.0), ("0x1p3", 8.0), ("0X.8P1d", 1.0), ("1.5f", 1.5), ("1.", 1.0), (".5", 0.5)],
        *[("Infinity", None), ("NaN", None), ("1e", None), ("", None), ("0x1", None)],
    ],
)
def test_double_reading_is_javas(text: str, expected: float | None) -> None:
    assert read_float(text, "double") == expected


def test_values_of_each_type() -> None:
    assert read_value("boolean", "") is False
    assert read_value("boolean", JsonNumber("1")) is None
    assert read_value("boolean", True) is True
    assert read_value("date", JsonNumber("1504126053000")) == Date(1504126053000000)
    assert read_value("date", "2017-08-30T20:47:33.0009Z") == Date(1504126053000000)
    assert read_value("date", JsonNumber("1.5e12")) is None
    assert read_value("date", True) is None
    assert read_value("ip", "::ffff:a9fe:a9fe") == read_value("ip", "169.254.169.254")
    assert read_value("keyword", JsonNumber("1.50")) == "1.50"
    assert read_value("keyword", False) == "false"
    assert read_value("long", True) is None


def test_literals() -> None:
    assert read_literal("long", "80.5") == Fraction(161, 2)
    assert read_literal("float", "0.1") == struct.unpack("f", struct.pack("f", 0.1))[0]
    assert read_literal("date", "1970-01-01T00:00:01Z") == Date(1_000_000)
    for field_type, text in [
        ("long", "abc"),
        ("long", "1e999999"),
        ("double", "1e400"),
        ("date", "yesterday"),
        ("boolean", "yes"),
        ("ip", "1.2.3"),
    ]:
        with pytest.raises(ValueError):
            read_literal(field_type, text)


def test_compare_is_exact_and_typed() -> None:
    assert compare(2**53 + 1, float(2**53)) == 1
    assert compare(80, Fraction(161, 2)) == -1
    assert compare(0.0, -0.0) == 0
    assert compare(float("inf"), 2**1000) == 1
    assert compare(float("nan"), 1) is None
    assert compare(True, 1) is None
    assert compare("a", 1) is None
    assert compare("Z", "a") == -1
    assert compare("\uffff", "\U0001f600") == -1  # code points, not UTF-16 units
    assert compare(Ip(bytes(16)), Ip(bytes(15) + b"\x01")) == -1


# ---------------------------------------------------------------- predicates


@pytest.mark.parametrize(
    ("pred", "message"),
    [
        ({"field_type": "long", "op": "wildcard", "values": ["8*"]}, "wildcard is not allowed"),
        ({"field_type": "date", "op": "eq_ci", "values": ["x"]}, "eq_ci is not allowed"),
        ({"field_type": "ip", "op": "regex", "values": ["1.*"]}, "regex is not allowed"),
        ({"field_type": "long", "op": "gt", "values": ["1", "2"]}, "exactly one value"),
        ({"field_type": "long", "op": "eq", "values": ["eighty"]}, "not a valid long"),
        ({"field_type": "keyword", "op": "regex", "values": ["a&b"]}, 'regex "a&b"'),
    ],
)
def test_predicates_refused_when_compiled(pred: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CompiledRule(rule({"node": "pred", "field": "f", **pred}))


# ---------------------------------------------------------------- expressions


def F(name: str, field_type: str = "keyword") -> dict[str, Any]:
    return {"field": name, "field_type": field_type}


def L(value: Any) -> dict[str, Any]:
    return {"lit": value}


def C(name: str, *args: dict[str, Any]) -> dict[str, Any]:
    return {"fn": name, "args": list(args)}


def test_combinations_stop_after_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    assert MAX_COMBINATIONS == 2**20  # spec/ir.md
    # 5 x 5 combinations with the limit at 11; the last field varies fastest, so (a=2, b=0)
    # is the 11th (0-based 2 x 5 + 0) and the last one tried, (a=2, b=1) the first not.
    monkeypatch.setattr(expr, "MAX_COMBINATIONS", 11)
    values = [JsonNumber(str(v)) for v in range(5)]
    doc = {"a": values, "b": values}

    def both(a: int, b: int) -> CompiledValue:
        return CompiledValue(C("and", C("eq", F("a", "long"), L(a)), C("eq", F("b", "long"), L(b))))

    assert both(2, 0).holds(doc) == ("a", "2")
    assert both(2, 1).holds(doc) is None
    assert both(0, 4).holds(doc) == ("a", "0")


def test_a_field_named_twice_is_one_column() -> None:
    # Not the cross product of a with itself: a == a holds for every value.
    compiled = CompiledValue(C("eq", F("a"), F("a")))
    assert len(compiled.fields) == 1
    assert compiled.holds({"a": ["x", "y"]}) == ("a", "x")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1.0"),
        (-0.0, "-0.0"),
        (42.5, "42.5"),
        (0.001, "0.001"),
        (0.0001, "1.0E-4"),
        (9999999.0, "9999999.0"),
        (1e7, "1.0E7"),
        (1.5e300, "1.5E300"),
        (1 / 3, "0.3333333333333333"),
        (100.0, "100.0"),
        (float("inf"), "Infinity"),
    ],
)
def test_double_to_string_is_javas(value: float, text: str) -> None:
    assert java_double_text(value) == text


def test_string_of_each_type() -> None:
    assert to_string(True) == "true"
    assert to_string(-5) == "-5"
    assert to_string(Date(1504126053000000)) == "2017-08-30T20:47:33.000Z"
    assert to_string(Date(1504126053000123)) == "2017-08-30T20:47:33.000123Z"
    assert to_string(read_value("ip", "fd00:ec2:0:0:0:0:0:254")) == "fd00:ec2::254"
    assert to_string(read_value("ip", "1:0:0:2:0:0:0:3")) == "1:0:0:2::3"
    assert to_string(read_value("ip", "1:0:2:3:4:5:6:7")) == "1:0:2:3:4:5:6:7"
    assert to_string(None) is None


@pytest.mark.parametrize(
    ("text", "base", "expected"),
    [
        ("1337", None, 1337),
        ("42.5", None, 42.5),
        # Current Elasticsearch: Long.valueOf, else Double.valueOf.
        ("1.0", None, 1.0),
        ("1E3", None, 1000.0),
        ("1.337e3", None, 1337.0),
        ("-0", None, 0),
        (" 12 ", None, 12.0),
        ("1.5d", None, 1.5),
        ("0x1p3", 10, 8.0),
        (" 0x10", None, None),
        ("NaNd", None, None),
        ("1e99999999999999999999", None, math.inf),
        ("\u212a", 36, None),  # the Kelvin sign lowercases to k: not a digit for Java
        ("99999999999999999999", None, 1e20),
        ("deadbeef", 16, 3735928559),
        ("0xdeadbeef", None, 3735928559),
        ("0xff", 10, None),
        ("-ff", 16, -255),
        ("7fffffffffffffff", 16, 2**63 - 1),
        ("8000000000000000", 16, None),
        ("12", 1, None),
        ("z", 36, 35),
        ("", None, None),
        ("1,000", None, None),
        ("1e3", None, 1000.0),
    ],
)
def test_number(text: str, base: int | None, expected: float | None) -> None:
    got = _number(text, base)
    assert got == expected and type(got) is type(expected)


def test_number_keeps_nan_and_negative_zero() -> None:
    nan = _number("NaN", None)
    assert isinstance(nan, float) and math.isnan(nan)
    assert math.copysign(1.0, _number("-0.0", None)) == -1.0  # type: ignore[arg-type]
    assert math.copysign(1.0, _number("-1e-400", None)) == -1.0  # type: ignore[arg-type]


def test_utf16_positions() -> None:
    assert _index_of("\U0001f600x", "x", 0) == 2
    assert _index_of("\U0001f600x", "", 1) == 1
    assert _index_of("abc", "", 7) == 3
    assert _index_of("abc", "c", 7) == -1
    assert _substring("\U0001f600x", 0, 1) == "\ufffd"
    assert _substring("", -5, 2) == ""


def test_expressions_refused_when_compiled() -> None:
    for value, message in [
        (C("length", F("a"), F("b")), "length takes 1 arguments"),
        (C("like", F("a"), F("b")), "string literals"),
        (C("cidr_match", F("a", "ip"), L("10.0.0.0/33")), "not a CIDR block"),
        (C("eq", F("a", "long"), L(2**63)), "out of range"),
        (C("eq", F("a", "date"), {"lit": "soon", "type": "date"}), "not a date"),
    ]:
        with pytest.raises(ValueError, match=message):
            CompiledRule(rule({"node": "expr", "text": "t", "expr": value}))
