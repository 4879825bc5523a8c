"""Expressions: the VALUE tree of an ``expr`` node evaluated as Elasticsearch's EQL evaluates
its scripts (spec/ir.md, Expressions), plainly, one combination of field values at a time.

Run-time values: None (null), bool, int (long), float (double), str, :class:`.typed.Date`,
:class:`.typed.Ip`. Strings are measured and cut in UTF-16 code units, as Java's
``String.length``/``substring``/``indexOf`` do (a surrogate pair counts 2); a cut through a
pair leaves U+FFFD in place of the lone half (one unit, so lengths agree).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from itertools import islice, product
from typing import Any

from .event import flat_text, raw_values
from .ip import in_cidr, parse_cidr, parse_ip
from .lucene_regex import LuceneRegex
from .typed import _EPOCH, Date, Ip, _java_double, date_micros, read_value
from .typed import compare as _typed_compare
from .wildcard import Wildcard, ascii_fold

# Combinations of field values tried per node and event (spec/ir.md).
MAX_COMBINATIONS = 2**20
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1

Value = Any  # None | bool | int | float | str | Date | Ip


def _is_long(value: Value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Value) -> bool:
    return _is_long(value) or isinstance(value, float)


def _long(value: int) -> int | None:
    """A long result: None (null) when it overflows 64 bits."""
    return value if LONG_MIN <= value <= LONG_MAX else None


def _double(value: float) -> float | None:
    return value  # NaN and the infinities are values (Java's doubles)


def compare(left: object, right: object) -> int | None:
    """How two values compare in a script (Elasticsearch's ``Comparisons``): with a double on
    either side both are widened to doubles and ordered as Java's ``Double.compare`` (-0.0
    below 0.0, NaN equal to itself and above everything); otherwise as ``typed.compare``."""
    numbers = (isinstance(left, float) and _is_number(right)) or (
        isinstance(right, float) and _is_number(left)
    )
    if not numbers:
        return _typed_compare(left, right)
    x, y = float(left), float(right)  # type: ignore[arg-type]
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) - math.isnan(y)
    if x == y:  # only zeros of opposite signs differ
        return (math.copysign(1, x) > 0) - (math.copysign(1, y) > 0)
    return -1 if x < y else 1


def _is_long_range(*values: int) -> bool:
    return all(LONG_MIN <= v <= LONG_MAX for v in values)


def _java_int(value: int) -> int:
    """Java's ``Number.intValue()`` of a long: its low 32 bits, signed."""
    value &= 0xFFFFFFFF
    return value - 2**32 if value >= 2**31 else value


# ---------------------------------------------------------------- strings as Java sees them


def _units(text: str) -> bytes:
    return text.encode("utf-16-le", "surrogatepass")


def _from_units(units: bytes) -> str:
    return units.decode("utf-16-le", "replace")  # a lone surrogate half becomes U+FFFD


def _length(text: str) -> int:
    return len(_units(text)) // 2


def _index_of(text: str, sub: str, start: int) -> int:
    """Java's ``text.indexOf(sub, start)`` in UTF-16 units (-1: not found)."""
    units, wanted = _units(text), _units(sub)
    size = len(units) // 2
    start = max(start, 0)
    if start >= size:
        return size if not wanted else -1
    at = units.find(wanted, 2 * start)
    while at != -1 and at % 2:
        at = units.find(wanted, at + 1)
    return -1 if at == -1 else at // 2


def _substring(text: str, start: int, end: int) -> str:
    """Elasticsearch's ``substringSlice``: Python slice bounds over UTF-16 units."""
    if not text:
        return text
    units = _units(text)
    size = len(units) // 2
    if start < 0:
        start = max(start + size, 0)
    if end < 0:
        end = max(end + size, 0)
    end = min(end, size)
    if start >= end:
        return ""
    return _from_units(units[2 * start : 2 * end])


def _between(text: str, left: str, right: str, greedy: bool, fold: bool) -> str:
    if not text or not left or not right:  # as Elasticsearch's: the source unchanged
        return text
    match = ascii_fold(text) if fold else text
    if fold:
        left, right = ascii_fold(left), ascii_fold(right)
    found = match.find(left)
    if found == -1:
        return ""
    start = found + len(left)
    end = match.rfind(right) if greedy else match.find(right, start)
    if end == -1 or end < start:
        return ""
    return text[start:end]


def java_double_text(value: float) -> str:
    """Java's ``Double.toString``: the shortest digits that read back as ``value`` (at least
    two: then the closest two), plain for 10^-3 <= |value| < 10^7, else as ``d.dddE<n>``;
    always a digit after the point."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0.0" if math.copysign(1, value) < 0 else "0.0"
    sign = "-" if value < 0 else ""
    _, digit_tuple, exponent = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + int(exponent)  # value = 0.digits * 10^point
    if len(digits) == 1:
        # Java never stops at one digit: the closest of two (4.9E-324, not 5.0E-324).
        exact = Decimal(abs(value))
        two = exact.scaleb(-exact.adjusted()).quantize(Decimal("0.1"), ROUND_HALF_EVEN)
        point = exact.adjusted() + 1
        if two >= 10:
            two, point = two / 10, point + 1
        digits = str(two).replace(".", "").rstrip("0") or "0"
    if 1e-3 <= abs(value) < 1e7:
        if point <= 0:
            return f"{sign}0.{'0' * -point}{digits}"
        if point >= len(digits):
            return f"{sign}{digits}{'0' * (point - len(digits))}.0"
        return f"{sign}{digits[:point]}.{digits[point:]}"
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{point - 1}"


def _ip_text(address: bytes) -> str:
    """An address as Elasticsearch shows it: dotted IPv4 when IPv4-mapped, else RFC 5952."""
    if address[:12] == bytes(10) + b"\xff\xff":
        return ".".join(str(b) for b in address[12:])
    groups = [int.from_bytes(address[i : i + 2], "big") for i in range(0, 16, 2)]
    best_start, best_len, run_start = -1, 0, -1
    for i, group in enumerate([*groups, 1]):
        if group == 0 and run_start < 0:
            run_start = i
        elif group != 0 and run_start >= 0:
            if i - run_start > best_len:
                best_start, best_len = run_start, i - run_start
            run_start = -1
    if best_len < 2:
        return ":".join(f"{g:x}" for g in groups)
    head = ":".join(f"{g:x}" for g in groups[:best_start])
    tail = ":".join(f"{g:x}" for g in groups[best_start + best_len :])
    return f"{head}::{tail}"


def _date_text(date: Date) -> str:
    moment = _EPOCH + timedelta(microseconds=date.micros)
    millis = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"
    if moment.microsecond % 1000:
        millis += f"{moment.microsecond % 1000:03d}"
    return millis + "Z"


def to_string(value: Value) -> str | None:
    """EQL ``string()``: Java's ``toString`` of the value."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if _is_long(value):
        return str(value)
    if isinstance(value, float):
        return java_double_text(value)
    if isinstance(value, Date):
        return _date_text(value)
    if isinstance(value, Ip):
        return _ip_text(value.address)
    assert isinstance(value, str)
    return value


# ---------------------------------------------------------------- number()

_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_LONG_TEXT = re.compile(r"[+-]?[0-9]+")  # Long.valueOf (ASCII digits)


def _number(text: str, base: Value) -> Value:
    """Elasticsearch's ToNumberFunctionProcessor: a leading 0x means base 16 when no base is
    given and is cut off in base 16; base 10 is Long.valueOf, else Double.valueOf; other
    bases Long.parseLong. What Java refuses is null (Elasticsearch fails the query)."""
    hex_prefix = text.startswith("0x")
    if base is None:
        base = 16 if hex_prefix else 10
    if not _is_long(base) or not 2 <= base <= 36:
        return None
    if hex_prefix and base == 16:
        text = text[2:]
    if base == 10:
        return _decimal_number(text)
    body = text[1:] if text[:1] in ("+", "-") else text
    if not body or any(not c.isascii() or c.lower() not in _DIGITS[:base] for c in body):
        return None
    if len(body.lstrip("0")) > 64:  # past 64 bits in any base (and int()'s digit limit)
        return None
    return _long(int(text, base))


def _decimal_number(text: str) -> Value:
    """Base 10: a long when the text is [+-]digits within a long, else Java's double."""
    if _LONG_TEXT.fullmatch(text) and len(text.lstrip("+-0")) <= 19:
        value = _long(int(text))
        if value is not None:
            return value
    return _java_double(text)


# ---------------------------------------------------------------- arithmetic


def _arith(name: str, a: Value, b: Value) -> Value:
    if a is None or b is None or not _is_number(a) or not _is_number(b):
        return None
    if _is_long(a) and _is_long(b):
        if name == "add":
            return _long(a + b)
        if name == "subtract":
            return _long(a - b)
        if name == "multiply":
            return _long(a * b)
        if b == 0:
            return None
        quotient = abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)  # toward zero
        if name == "divide":
            if quotient == 2**63 and _is_long_range(a, b):
                return LONG_MIN  # Java's long division wraps here (no exception in Elasticsearch)
            return _long(quotient)
        return _long(a - b * quotient)  # the remainder has the dividend's sign
    x, y = float(a), float(b)
    if name == "add":
        return _double(x + y)
    if name == "subtract":
        return _double(x - y)
    if name == "multiply":
        return _double(x * y)
    # By 0.0: Java's +-Infinity or NaN (only a long zero fails in Elasticsearch).
    if name == "divide":
        if y == 0:
            if x == 0 or math.isnan(x):
                return math.nan
            return math.copysign(math.inf, x) * math.copysign(1, y)
        return _double(x / y)
    if y == 0 or math.isinf(x):
        return math.nan
    return _double(math.fmod(x, y))


# ---------------------------------------------------------------- the tree


class _Node:
    def eval(self, row: tuple[Value, ...]) -> Value:
        raise NotImplementedError


class _Lit(_Node):
    def __init__(self, value: Value) -> None:
        self.value = value

    def eval(self, row: tuple[Value, ...]) -> Value:
        return self.value


class _Field(_Node):
    def __init__(self, index: int) -> None:
        self.index = index

    def eval(self, row: tuple[Value, ...]) -> Value:
        return row[self.index]


class _Call(_Node):
    def __init__(self, name: str, args: list[_Node], run: Callable[..., Value]) -> None:
        self.name, self.args, self.run = name, args, run

    def eval(self, row: tuple[Value, ...]) -> Value:
        return self.run(*(arg.eval(row) for arg in self.args))


def _strings(*values: Value) -> bool:
    return all(isinstance(v, str) for v in values)


def _comparison(wanted: Callable[[int], bool]) -> Callable[[Value, Value], Value]:
    def run(a: Value, b: Value) -> Value:
        if a is None or b is None:
            return None
        order = compare(a, b)
        return None if order is None else wanted(order)

    return run


def _membership(fold: bool) -> Callable[..., Value]:
    def run(value: Value, *choices: Value) -> Value:
        if value is None:
            return None
        unknown = False  # a null choice, or one of another kind (Elasticsearch fails there)
        for choice in choices:
            if fold and _strings(value, choice):
                if ascii_fold(value) == ascii_fold(choice):
                    return True
            elif (order := compare(value, choice)) == 0:
                return True
            elif choice is None or order is None:
                unknown = True
        return None if unknown else False

    return run


def _affix(test: Callable[[str, str], bool], fold: bool) -> Callable[[Value, Value], Value]:
    def run(text: Value, sub: Value) -> Value:
        if text is None or sub is None or not _strings(text, sub):
            return None
        if fold:
            text, sub = ascii_fold(text), ascii_fold(sub)
        return test(text, sub)

    return run


def _contains(text: str, sub: str) -> bool:
    """Elasticsearch's script ``stringContains``: false when either side is empty (unlike
    the ``contains`` predicate, which Elasticsearch runs as a wildcard query)."""
    return bool(text) and bool(sub) and sub in text


def _and(*args: Value) -> Value:
    if any(a is False for a in args):
        return False
    return True if all(a is True for a in args) else None


def _or(*args: Value) -> Value:
    if any(a is True for a in args):
        return True
    return False if all(a is False for a in args) else None


def _not(a: Value) -> Value:
    return (not a) if isinstance(a, bool) else None


def _negate(a: Value) -> Value:
    if _is_long(a):
        return _long(-a)
    return -a if isinstance(a, float) else None


def _is_null(value: Value) -> Value:
    return value is None  # never null itself


def _len(text: Value) -> Value:
    return _length(text) if isinstance(text, str) else None


def _string(value: Value) -> Value:
    return to_string(value)


def _number_fn(text: Value, base: Value = None) -> Value:
    return _number(text, base) if isinstance(text, str) else None


_ABSENT = object()


def _substring_fn(text: Value, start: Value, end: Value = _ABSENT) -> Value:
    if not isinstance(text, str):
        return None
    if start is None:
        return text  # as Elasticsearch's processor does
    if not _is_long(start) or (end is not _ABSENT and end is not None and not _is_long(end)):
        return None
    stop = _length(text) if end is _ABSENT or end is None else _java_int(end)
    return _substring(text, _java_int(start), stop)


def _index_of_fn(fold: bool) -> Callable[..., Value]:
    def run(text: Value, sub: Value, start: Value = 0) -> Value:
        if not _strings(text, sub) or not _is_long(start):
            return None  # a null argument (or one of another type) is null
        if fold:
            text, sub = ascii_fold(text), ascii_fold(sub)
        found = _index_of(text, sub, _java_int(start))
        return None if found < 0 else found

    return run


def _concat(*args: Value) -> Value:
    texts = [to_string(a) for a in args]
    return None if any(t is None for t in texts) else "".join(texts)  # type: ignore[arg-type]


def _between_fn(fold: bool) -> Callable[..., Value]:
    def run(text: Value, left: Value, right: Value, greedy: Value = False) -> Value:
        if not _strings(text, left, right) or not isinstance(greedy, bool):
            return None
        return _between(text, left, right, greedy, fold)

    return run


def _arith_fn(name: str) -> Callable[[Value, Value], Value]:
    return lambda a, b: _arith(name, a, b)


_SIMPLE: dict[str, tuple[Callable[..., Value], int, int | None]] = {
    # name: (function, fewest arguments, most arguments or None)
    "eq": (_comparison(lambda o: o == 0), 2, 2),
    "neq": (_comparison(lambda o: o != 0), 2, 2),
    "lt": (_comparison(lambda o: o < 0), 2, 2),
    "lte": (_comparison(lambda o: o <= 0), 2, 2),
    "gt": (_comparison(lambda o: o > 0), 2, 2),
    "gte": (_comparison(lambda o: o >= 0), 2, 2),
    "in": (_membership(False), 2, None),
    "in_ci": (_membership(True), 2, None),
    "starts_with": (_affix(str.startswith, False), 2, 2),
    "starts_with_ci": (_affix(str.startswith, True), 2, 2),
    "ends_with": (_affix(str.endswith, False), 2, 2),
    "ends_with_ci": (_affix(str.endswith, True), 2, 2),
    "contains": (_affix(_contains, False), 2, 2),
    "contains_ci": (_affix(_contains, True), 2, 2),
    "and": (_and, 1, None),
    "or": (_or, 1, None),
    "not": (_not, 1, 1),
    "add": (_arith_fn("add"), 2, 2),
    "subtract": (_arith_fn("subtract"), 2, 2),
    "multiply": (_arith_fn("multiply"), 2, 2),
    "divide": (_arith_fn("divide"), 2, 2),
    "modulo": (_arith_fn("modulo"), 2, 2),
    "negate": (_negate, 1, 1),
    "is_null": (_is_null, 1, 1),
    "length": (_len, 1, 1),
    "string": (_string, 1, 1),
    "number": (_number_fn, 1, 2),
    "substring": (_substring_fn, 2, 3),
    "index_of": (_index_of_fn(False), 2, 3),
    "index_of_ci": (_index_of_fn(True), 2, 3),
    "concat": (_concat, 1, None),
    "between": (_between_fn(False), 3, 4),
    "between_ci": (_between_fn(True), 3, 4),
}

# Functions whose second and later arguments are patterns or blocks, read once (string
# literals, as Elasticsearch's verifier requires).
_PATTERNED = frozenset({"like", "like_ci", "wildcard", "regex", "regex_ci", "cidr_match"})


def _patterned(name: str, patterns: list[str]) -> Callable[[Value], Value]:
    tests: list[Callable[[str], bool]]
    if name in ("like", "like_ci", "wildcard"):
        fold = name != "like"
        compiled = [Wildcard(p, fold=fold) for p in patterns]

        def folded(pattern: Wildcard) -> Callable[[str], bool]:
            return lambda value: pattern.fullmatch(ascii_fold(value))

        tests = [folded(w) if fold else w.fullmatch for w in compiled]
    elif name in ("regex", "regex_ci"):
        tests = [LuceneRegex(p, name == "regex_ci").is_match for p in patterns]
    else:
        blocks = []
        for text in patterns:
            block = parse_cidr(text)
            if block is None:
                raise ValueError(f"{text!r} is not a CIDR block")
            blocks.append(block)

        def inside(value: str | Ip) -> bool:
            address = value.address if isinstance(value, Ip) else parse_ip(value)
            return address is not None and any(in_cidr(address, b) for b in blocks)

        def run_cidr(value: Value) -> Value:
            if value is None or not isinstance(value, str | Ip):
                return None
            return inside(value)

        return run_cidr

    def run(value: Value) -> Value:
        if not isinstance(value, str):
            return None
        return any(test(value) for test in tests)

    return run


def _literal(node: dict[str, Any]) -> Value:
    value, kind = node["lit"], node.get("type")
    if kind is not None:
        if not isinstance(value, str):
            raise ValueError(f"a {kind} literal must be a string, not {value!r}")
        if kind == "date":
            micros = date_micros(value)
            if micros is None:
                raise ValueError(f"{value!r} is not a date")
            return Date(micros)
        address = parse_ip(value)
        if address is None:
            raise ValueError(f"{value!r} is not an IP address")
        return Ip(address)
    if _is_long(value) and _long(value) is None:
        raise ValueError(f"number literal {value} is out of range for a long")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"number literal {value} is not finite")
    return value


class CompiledValue:
    """A VALUE tree compiled: its fields (in order of first appearance) and its root."""

    def __init__(self, node: dict[str, Any]) -> None:
        self.fields: list[tuple[str, list[str], str]] = []
        self.root = self._compile(node)

    def _compile(self, node: dict[str, Any]) -> _Node:
        if "lit" in node:
            return _Lit(_literal(node))
        if "field" in node:
            key = (node["field"], node["field"].split("."), node["field_type"])
            if key not in self.fields:
                self.fields.append(key)
            return _Field(self.fields.index(key))
        name, args = node["fn"], node["args"]
        if name in _PATTERNED:
            patterns = [a.get("lit") for a in args[1:]]
            if not args[1:] or any(
                not isinstance(p, str) or "type" in a
                for p, a in zip(patterns, args[1:], strict=True)
            ):
                raise ValueError(f"{name} takes a value and one or more string literals")
            return _Call(name, [self._compile(args[0])], _patterned(name, patterns))
        run, fewest, most = _SIMPLE[name]
        if len(args) < fewest or (most is not None and len(args) > most):
            wanted = str(fewest) if fewest == most else f"{fewest} to {most or 'any number of'}"
            raise ValueError(f"{name} takes {wanted} arguments, not {len(args)}")
        return _Call(name, [self._compile(a) for a in args], run)

    def _columns(self, doc: dict[str, Any]) -> list[list[tuple[Value, str]]]:
        columns = []
        for _, parts, field_type in self.fields:
            column: list[tuple[Value, str]] = []
            for item in raw_values(doc, parts):
                value = read_value(field_type, item)
                if value is not None:
                    column.append((value, flat_text(item)))
            columns.append(column or [(None, "")])
        return columns

    def combinations(self, doc: dict[str, Any]) -> Iterator[tuple[tuple[Value, str], ...]]:
        """The combinations tried, in order: the last field varies fastest; at most
        MAX_COMBINATIONS."""
        return islice(product(*self._columns(doc)), MAX_COMBINATIONS)

    def value(self, row: tuple[Value, ...]) -> Value:
        return self.root.eval(row)

    def holds(self, doc: dict[str, Any]) -> tuple[str, str] | None:
        """(first field named or "", its value's text in the first true combination or "")
        when some combination gives true; else None."""
        for combination in self.combinations(doc):
            if self.root.eval(tuple(v for v, _ in combination)) is True:
                if not self.fields:
                    return "", ""
                return self.fields[0][0], combination[0][1]
        return None


def compile_value(node: dict[str, Any]) -> CompiledValue:
    return CompiledValue(node)
