"""Field types: a field's JSON values read as Elasticsearch indexes them, and a predicate's
literals read for comparison with them (spec/ir.md, "Typed fields"). Exact arithmetic only
(:class:`fractions.Fraction`): no float rounding decides a comparison.

Values by type: ``keyword`` str; ``ip`` :class:`Ip`; integer types int; ``double``, ``float``,
``half_float``, ``scaled_float`` float (holding the binary32/binary16 value exactly);
``date`` :class:`Date`; ``boolean`` bool.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction

from ..timestamp import parse_event_time, round_up_micros
from .analysis import lowercase
from .event import JsonNumber, flat_text
from .ip import parse_ip

INTEGER_RANGES = {
    "byte": (-(2**7), 2**7 - 1),
    "short": (-(2**15), 2**15 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "long": (-(2**63), 2**63 - 1),
    "unsigned_long": (0, 2**64 - 1),
}
FLOAT_TYPES = frozenset({"double", "float", "half_float", "scaled_float"})
NUMERIC_TYPES = frozenset(INTEGER_RANGES) | FLOAT_TYPES
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, order=True)
class Date:
    """An instant, in microseconds since 1970-01-01T00:00:00Z."""

    micros: int


@dataclass(frozen=True, order=True)
class Ip:
    """An address as 16 bytes (IPv4 mapped), ordered as bytes."""

    address: bytes


Typed = str | bool | int | float | Date | Ip


# ---------------------------------------------------------------- numbers, exactly

# Java's BigDecimal(String) (after Long.parseLong, which it includes): no spaces, no 0x.
_BIG_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# Java's Double.parseDouble, after String.trim(); NaN and Infinity left out (never finite).
_JAVA_DOUBLE = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
    r"|0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?[0-9]+)[fFdD]?"
)
# Beyond these decimal exponents every type overflows (or rounds to zero): a bound that keeps
# Fraction small on hostile input such as "1e999999999".
_HUGE = 400
_TINY = -400


class _Far:
    """A number too large (or too small) in magnitude to matter: its sign and size only."""

    def __init__(self, negative: bool, huge: bool) -> None:
        self.negative, self.huge = negative, huge


# Significant digits kept of a longer number, with a final 1 standing for any nonzero digit
# cut off: the value stays strictly between the same neighbours, so it rounds (to binary64 and
# narrower, whose halfway points need at most 767 digits) and truncates as the full one would.
_KEPT_DIGITS = 800
_DECIMAL_PARTS = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?)([0-9]+))?")


def _exponent(sign: str, digits: str) -> int | None:
    """An exponent's value; None when it has more than 15 digits (past every bound here)."""
    digits = digits.lstrip("0") or "0"
    if len(digits) > 15:
        return None
    return -int(digits) if sign == "-" else int(digits)


def decimal_scale(text: str) -> int | None:
    """Java's ``BigDecimal(text).scale()`` (fraction digits less the exponent) of a
    BigDecimal-syntax text; None when the exponent is past 15 digits."""
    match = _DECIMAL_PARTS.fullmatch(text)
    assert match is not None
    _, _, fraction, exp_sign, exp_digits = match.groups()
    exponent = _exponent(exp_sign, exp_digits or "0")
    return None if exponent is None else len(fraction or "") - exponent


def decimal_value(text: str) -> Fraction | _Far:
    """The exact value of a decimal number text (BigDecimal syntax, checked by the caller),
    or how far it is when its decimal exponent is beyond +-400."""
    match = _DECIMAL_PARTS.fullmatch(text)
    assert match is not None
    sign, whole, fraction, exp_sign, exp_digits = match.groups()
    negative = sign == "-"
    digits = (whole + (fraction or "")).lstrip("0")
    if not digits:
        return Fraction(0)
    written = _exponent(exp_sign, exp_digits or "0")
    if written is None:
        return _Far(negative, exp_sign != "-")
    exponent = written - len(fraction or "")  # the value is int(digits) * 10**exponent
    adjusted = exponent + len(digits) - 1
    if adjusted > _HUGE or adjusted < _TINY:
        return _Far(negative, adjusted > _HUGE)
    if len(digits) > _KEPT_DIGITS:
        cut = digits[_KEPT_DIGITS:]
        exponent += len(cut)
        digits = digits[:_KEPT_DIGITS]
        if cut.strip("0"):
            digits, exponent = digits + "1", exponent - 1
    value = Fraction(int(digits)) * Fraction(10) ** exponent
    return -value if negative else value


def _hex_value(text: str) -> Fraction | _Far:
    """The exact value of a Java hexadecimal floating-point text (``[+-]0x<hex>p<exp>``),
    long mantissas cut as decimal ones are."""
    negative = text.startswith("-")
    body = text.lstrip("+-")[2:]
    mantissa_text, exponent_text = re.split("[pP]", body)
    whole, _, fraction = mantissa_text.partition(".")
    hex_digits = (whole + fraction).lstrip("0")
    if not hex_digits:
        return Fraction(0)
    exp_sign = exponent_text[0] if exponent_text[0] in "+-" else ""
    written = _exponent(exp_sign, exponent_text.lstrip("+-"))
    if written is None:
        return _Far(negative, not exponent_text.startswith("-"))
    exponent = written - 4 * len(fraction)
    if len(hex_digits) > _KEPT_DIGITS:
        cut = hex_digits[_KEPT_DIGITS:]
        exponent += 4 * len(cut)
        hex_digits = hex_digits[:_KEPT_DIGITS]
        if cut.strip("0"):
            hex_digits, exponent = hex_digits + "1", exponent - 4
    mantissa = int(hex_digits, 16)
    magnitude = mantissa.bit_length() + exponent  # of 2: the value is below 2**magnitude
    if magnitude > 4 * _HUGE or magnitude < 4 * _TINY:
        return _Far(negative, magnitude > 0)
    value = Fraction(mantissa) * Fraction(2) ** exponent
    return -value if negative else value


_JAVA_SPACE = "".join(chr(c) for c in range(0x21))  # what Java's String.trim() removes


def _java_double_value(text: str) -> Fraction | _Far | None:
    """The exact value Java's Double.parseDouble / Float.parseFloat round; None when the text
    is not such a number (or is NaN/Infinity)."""
    trimmed = text.strip(_JAVA_SPACE)
    if _JAVA_DOUBLE.fullmatch(trimmed) is None:
        return None
    if trimmed[-1] in "fFdD":
        trimmed = trimmed[:-1]
    if "x" in trimmed or "X" in trimmed:
        return _hex_value(trimmed)
    return decimal_value(trimmed)


def _round_binary(value: Fraction | _Far, precision: int, emin: int, emax: int) -> float | None:
    """``value`` rounded to the nearest binary floating-point number with ``precision``
    significand bits and exponents ``emin``..``emax`` (ties to even; subnormals kept); None
    when it overflows."""
    if isinstance(value, _Far):
        if value.huge:
            return None
        return -0.0 if value.negative else 0.0
    if value == 0:
        return 0.0
    magnitude = abs(value)
    exponent = magnitude.numerator.bit_length() - magnitude.denominator.bit_length()
    if magnitude < Fraction(2) ** exponent:
        exponent -= 1
    exponent = max(exponent, emin)
    scale = precision - 1 - exponent
    scaled = magnitude * Fraction(2) ** scale
    units = round(scaled)  # Fraction rounds half to even
    rounded = Fraction(units) / Fraction(2) ** scale
    largest = (2 - Fraction(2) ** (1 - precision)) * Fraction(2) ** emax
    if rounded > largest:
        return None
    result = float(rounded)  # exact: representable as a double
    return -result if value < 0 else result


def to_double(value: Fraction | _Far) -> float | None:
    return _round_binary(value, 53, -1022, 1023)


def to_float32(value: Fraction | _Far) -> float | None:
    return _round_binary(value, 24, -126, 127)


def to_half(value: Fraction | _Far) -> float | None:
    """Elasticsearch reads a half_float as a float first, then rounds that to binary16."""
    single = to_float32(value)
    return None if single is None else _round_binary(Fraction(single), 11, -14, 15)


_FLOAT_ROUNDING = {
    "double": to_double,
    "scaled_float": to_double,
    "float": to_float32,
    "half_float": to_half,
}


_PLAIN_INTEGER = re.compile(r"[+-]?[0-9]+")  # Long.parseLong
_PLAIN_UNSIGNED = re.compile(r"\+?[0-9]+")  # Long.parseUnsignedLong
_JAVA_SPECIAL = re.compile(r"[+-]?(?:NaN|Infinity)")  # no suffix after these
_INT_RANGE = INTEGER_RANGES["integer"]


def _in_range(value: int, field_type: str) -> int | None:
    low, high = INTEGER_RANGES[field_type]
    return value if low <= value <= high else None


def _exact_integer(text: str) -> int | None:
    """A decimal text's exact value when it is whole (None otherwise, or past 10^400)."""
    value = decimal_value(text)
    if isinstance(value, _Far) or value.denominator != 1:
        return None
    return int(value)


def _json_double(text: str) -> float | None:
    """A JSON number with a fraction or exponent as Jackson reads it: the nearest double
    (None past the double range)."""
    return to_double(decimal_value(text))


def _java_double(text: str) -> float | None:
    """Java's Double.parseDouble of a string, NaN and infinities included; None if it throws."""
    if _JAVA_SPECIAL.fullmatch(text.strip(_JAVA_SPACE)):
        return float(text.strip(_JAVA_SPACE).replace("Infinity", "inf"))
    value = _java_double_value(text)
    if value is None:
        return None
    rounded = to_double(value)
    if rounded is None:  # past the double range: an infinity
        negative = value.negative if isinstance(value, _Far) else value < 0
        return float("-inf") if negative else float("inf")
    if rounded == 0 and text.strip(_JAVA_SPACE).startswith("-"):
        return -0.0  # the exact value 0 lost the sign
    return rounded


def _java_int(value: float) -> int:
    """Java's ``(int)`` cast of a double: toward zero, saturating, NaN as 0."""
    if math.isnan(value):
        return 0
    low, high = _INT_RANGE
    if math.isinf(value):
        return high if value > 0 else low
    return max(low, min(high, math.trunc(value)))


def read_integer(item: str, field_type: str) -> int | None:
    """A JSON number (:class:`JsonNumber`) or a string as an integer type reads it, the way
    Elasticsearch's mappers do (spec/semantics.md, Reading values by type)."""
    json_number = isinstance(item, JsonNumber)
    fraction = json_number and re.search("[.eE]", item) is not None
    if json_number and not fraction:  # a JSON integer, exactly
        whole = _exact_integer(item)
        if whole is None:
            return None
        if field_type in ("integer", "short", "byte") and _in_range(whole, "integer") is None:
            return None
        return _in_range(whole, field_type)
    if fraction:  # through a double (Jackson)
        double = _json_double(item)
        if double is None:
            return None
        if field_type == "unsigned_long":  # whole only; Double.longValue saturates at 2^63-1
            if double != math.trunc(double):
                return None
            return _in_range(min(math.trunc(double), 2**63 - 1), field_type)
        whole = math.trunc(double)
        if field_type in ("integer", "short", "byte") and _in_range(whole, "integer") is None:
            return None
        return _in_range(whole, field_type)
    if field_type == "long":
        if _PLAIN_INTEGER.fullmatch(item):
            return None if (whole := _exact_integer(item)) is None else _in_range(whole, "long")
        if _BIG_DECIMAL.fullmatch(item) is None:
            return None
        scale = decimal_scale(item)
        if scale is None or not -(2**31) <= scale < 2**31:  # BigDecimal refuses it
            return None
        if scale > 19:  # Elasticsearch's shortcut: a fraction past 19 digits reads as 0
            return 0
        if scale < -19:
            return None
        value = decimal_value(item)
        if isinstance(value, _Far):
            return None if value.huge else 0
        return _in_range(int(value), "long")  # int() of a Fraction truncates toward zero
    if field_type == "unsigned_long":
        if _PLAIN_UNSIGNED.fullmatch(item) or _BIG_DECIMAL.fullmatch(item):
            whole = _exact_integer(item)
            return None if whole is None else _in_range(whole, field_type)
        return None
    double = _java_double(item)  # integer, short, byte: Double.parseDouble
    if double is None:
        return None
    if field_type == "byte":
        return _in_range(_java_int(double), "byte")
    if math.isnan(double):
        return 0
    low, high = INTEGER_RANGES[field_type]
    if not low <= double <= high:  # checked before truncation
        return None
    return math.trunc(double)


def read_float(text: str, field_type: str) -> float | None:
    """A number text as a floating-point type reads it; None if not finite."""
    value = _java_double_value(text)
    if value is None:
        return None
    return _FLOAT_ROUNDING[field_type](value)


def date_micros(text: str) -> int | None:
    """A date's instant in microseconds, kept to the millisecond (a ``date`` field stores
    milliseconds; later digits are dropped, toward the past)."""
    moment = parse_event_time(text)
    if moment is None:
        return None
    micros = (moment - _EPOCH) // timedelta(microseconds=1)
    return micros - micros % 1000


# ---------------------------------------------------------------- reading values


def java_lowercase(text: str) -> str:
    """``text`` lowercased code point by code point as Java's ``Character.toLowerCase(int)``
    does (the simple Unicode mapping, one table with the analyzers: ``analysis.lowercase``):
    the ``lowercase`` normalizer (spec/ir.md, KQL additions)."""
    return lowercase(text)


def utf16_len(text: str) -> int:
    """Java's ``String.length()``: UTF-16 code units."""
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


def read_value(field_type: str, item: str | bool) -> Typed | None:
    """One JSON scalar of a field (``str``, :class:`JsonNumber` or ``bool``, as
    :func:`.event.raw_values` gives it) read as ``field_type``; None when Elasticsearch would
    not index it as that type."""
    if field_type in ("keyword", "text", "wildcard"):  # text, wildcard: in expressions, keys
        return flat_text(item)
    if field_type == "ip":
        address = parse_ip(flat_text(item))
        return None if address is None else Ip(address)
    if field_type == "boolean":
        if isinstance(item, bool):
            return item
        if isinstance(item, JsonNumber):
            return None
        return {"true": True, "false": False, "": False}.get(item)
    if isinstance(item, bool):  # a boolean is no number and no date
        return None
    if field_type in INTEGER_RANGES:
        return read_integer(item, field_type)
    if field_type in FLOAT_TYPES:
        return read_float(item, field_type)
    if field_type == "date":
        if isinstance(item, JsonNumber) and re.search("[.eE]", item):
            return None  # a fraction or an exponent: no epoch millis
        micros = date_micros(item)
        return None if micros is None else Date(micros)
    raise ValueError(f"unknown field type {field_type!r}")


# ---------------------------------------------------------------- reading literals


def read_literal_span(field_type: str, text: str) -> tuple[Typed | Fraction, Typed | Fraction]:
    """A predicate's literal as the first and last value it stands for: one value, except
    that a date literal reaches to its round-up (Elasticsearch's range and term queries on a
    date field parse the upper end with missing components at their largest)."""
    low = read_literal(field_type, text)
    if isinstance(low, Date):
        return low, Date(low.micros + round_up_micros(text))
    return low, low


def read_literal(field_type: str, text: str) -> Typed | Fraction:
    """A predicate's literal (as the IR writes it) read for comparison with values of
    ``field_type``; raises ValueError for one Elasticsearch's query would refuse. An integer
    type keeps the literal's exact value (``80.5`` is no integer, ``> 80.5`` is ``>= 81``);
    a floating-point type rounds it as its values are rounded."""
    shown = f"{text!r} is not a valid {field_type} literal"
    if field_type == "keyword":
        return text
    if field_type == "ip":
        address = parse_ip(text)
        if address is None:
            raise ValueError(shown)
        return Ip(address)
    if field_type == "boolean":
        if text not in ("true", "false", ""):
            raise ValueError(shown)
        return text == "true"
    if field_type in INTEGER_RANGES:
        if _BIG_DECIMAL.fullmatch(text) is None:
            raise ValueError(shown)
        value = decimal_value(text)
        if isinstance(value, _Far):
            raise ValueError(f"{text!r} is out of range for a {field_type} literal")
        return value
    if field_type in FLOAT_TYPES:
        number = read_float(text, field_type)
        if number is None:
            raise ValueError(shown)
        return number
    if field_type == "date":
        micros = date_micros(text)
        if micros is None:
            raise ValueError(shown)
        return Date(micros)
    raise ValueError(f"unknown field type {field_type!r}")


def compare(left: object, right: object) -> int | None:
    """-1, 0 or 1 as ``left`` is below, equal to or above ``right``; None when they are of
    different kinds (or a NaN is involved). Numbers exactly by value, strings by code point,
    ``False < True``, dates as instants, addresses as 16 bytes."""
    if isinstance(left, bool) or isinstance(right, bool):
        if not (isinstance(left, bool) and isinstance(right, bool)):
            return None
        return (left > right) - (left < right)
    if type(left) is type(right) and type(left) in (int, float, str):
        if left != left or right != right:  # NaN
            return None
        order: int = (left > right) - (left < right)  # type: ignore[operator]
        return order
    if isinstance(left, int | float | Fraction) and isinstance(right, int | float | Fraction):
        if left != left or right != right:  # NaN
            return None
        if isinstance(left, float) and left in (float("inf"), float("-inf")):
            if isinstance(right, float) and right == left:
                return 0
            return 1 if left > 0 else -1
        if isinstance(right, float) and right in (float("inf"), float("-inf")):
            return -1 if right > 0 else 1
        exact_left, exact_right = Fraction(left), Fraction(right)
        return (exact_left > exact_right) - (exact_left < exact_right)
    for kind in (str, Date, Ip):
        if isinstance(left, kind) and isinstance(right, kind):
            return (left > right) - (left < right)  # type: ignore[operator]
    return None
