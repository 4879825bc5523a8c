"""Events: a line's JSON parsed as both engines read it, and a field's values looked up in it
(spec/semantics.md), mirrored by crates/imds-core/src/event.rs.

Standard library only, and no part of the engine: reporting, filters and the input-shape
check read events through this module too, so they see fields as the rules do.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Iterator
from typing import Any

_JSON_SPACE = b" \t\r\n"


# ---------------------------------------------------------------- reading fields


def _items(value: Any) -> Iterator[Any]:
    """The items of a value, arrays flattened (iteratively: arrays may nest up to
    MAX_NESTING deep, beyond Python's recursion limit)."""
    stack = [iter((value,))]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            yield item
        else:
            stack.pop()


class JsonNumber(str):
    """A JSON number as its text, as written: a string to keyword fields (which compare that
    text), and known for a number by the typed readings (reference/typed.py)."""

    __slots__ = ()


def flat_text(item: str | bool) -> str:
    """A scalar's text as a keyword field holds it (spec/ir.md, Field values)."""
    if isinstance(item, bool):
        return "true" if item else "false"
    return item


def raw_values(doc: dict[str, Any], parts: list[str]) -> Iterator[str | bool]:
    """The scalars of a field path in document order, with their JSON kind: ``str``,
    :class:`JsonNumber` (from :func:`parse_line`) or ``bool``; no ``null``, no objects."""
    for key, value in doc.items():
        key_parts = key.split(".")
        if key_parts != parts[: len(key_parts)]:
            continue
        rest = parts[len(key_parts) :]
        if not rest:
            for item in _items(value):
                if isinstance(item, bool | str):
                    yield item
        else:
            for obj in _objects(value):
                yield from raw_values(obj, rest)


def field_values(doc: dict[str, Any], parts: list[str]) -> Iterator[str]:
    """Values of a field path in document order: nested, dotted and mixed keys, arrays;
    numbers as their JSON text, booleans as ``"true"``/``"false"``."""
    return (flat_text(item) for item in raw_values(doc, parts))


def nested_docs(doc: dict[str, Any], parts: list[str]) -> Iterator[dict[str, Any]]:
    """The nested documents at a path in document order (spec/ir.md, Nested scopes): the
    objects at the path, arrays flattened (scalars and ``null`` give none); a key that runs
    past the path gives one document of its own, the rest of the key holding the value
    (Elasticsearch expands each dotted name on its own)."""
    for key, value in doc.items():
        key_parts = key.split(".")
        if len(key_parts) > len(parts):
            if key_parts[: len(parts)] == parts:
                yield {".".join(key_parts[len(parts) :]): value}
            continue
        if key_parts != parts[: len(key_parts)]:
            continue
        rest = parts[len(key_parts) :]
        for obj in _objects(value):
            if rest:
                yield from nested_docs(obj, rest)
            else:
                yield obj


def _objects(value: Any) -> Iterator[dict[str, Any]]:
    return (item for item in _items(value) if isinstance(item, dict))


# ---------------------------------------------------------------- parsing lines


class Malformed(ValueError):
    """A line that is not a JSON object."""


def _no_constants(name: str) -> Any:
    raise ValueError(f"invalid JSON literal {name}")


def _has_lone_surrogate(doc: Any) -> bool:
    try:
        json.dumps(doc, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


_SURROGATE = re.compile("[\ud800-\udfff]")


def _no_surrogates(value: Any) -> Any:
    """``value`` with each lone surrogate (json.loads pairs the others) as U+FFFD, as
    Elasticsearch indexes it (spec/ir.md, Lines)."""
    if isinstance(value, JsonNumber):
        return value
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_no_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_no_surrogates(k): _no_surrogates(v) for k, v in value.items()}
    return value


# Containers (objects and arrays) nested deeper than this make a line malformed: the limit of
# Elasticsearch's JSON parser (Jackson's StreamReadConstraints), and the Rust engine's.
MAX_NESTING = 1000
_TOO_DEEP = f"nested deeper than {MAX_NESTING} levels (Elasticsearch's limit)"


class _DeepRecursion:
    """Room for json's (recursive) decoder and encoder to handle MAX_NESTING levels."""

    def __enter__(self) -> None:
        self._limit = sys.getrecursionlimit()
        sys.setrecursionlimit(self._limit + 2 * MAX_NESTING)

    def __exit__(self, *_: object) -> None:
        sys.setrecursionlimit(self._limit)


# Python refuses to convert an integer of more digits than this (a guard against quadratic
# conversions); an event may hold one, and its alert must still be written.
_LONG_DIGITS = re.compile(f"[0-9]{{{sys.int_info.default_max_str_digits + 1}}}")


@contextlib.contextmanager
def _any_digits() -> Iterator[None]:
    """json.loads/dumps of integers of any length (the line's length bounds the cost)."""
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        yield
    finally:
        sys.set_int_max_str_digits(limit)


@contextlib.contextmanager
def deep_json(text: str) -> Iterator[None]:
    """Room for json.loads/dumps of ``text`` when it may nest up to MAX_NESTING levels or
    hold an integer longer than Python converts by default."""
    with contextlib.ExitStack() as room:
        if text.count("{") + text.count("[") > MAX_NESTING // 2:
            room.enter_context(_DeepRecursion())
        if _LONG_DIGITS.search(text) is not None:
            room.enter_context(_any_digits())
        yield


def load_event(text: str, numbers_as_text: bool = True) -> Any:
    """An event's JSON text (one the engines accepted) as Python objects, as the engines read
    it: up to MAX_NESTING levels deep, lone surrogates as U+FFFD; numbers as their JSON text
    unless ``numbers_as_text`` is false."""
    with deep_json(text):
        if numbers_as_text:
            doc = json.loads(text, parse_int=str, parse_float=str)
        else:
            doc = json.loads(text)
        if "\\u" in text and _has_lone_surrogate(doc):
            doc = _no_surrogates(doc)
    return doc


_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _depth(text: str) -> int:
    """The deepest nesting of objects and arrays in a valid JSON text. Of the text, not of the
    document: a repeated key's value that the last one replaces counts too (Elasticsearch's
    parser, and the Rust engine's, meet it)."""
    depth = deepest = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif token in "]}":
            depth -= 1
    return deepest


def parse_line(raw: bytes, unwrap: bool = True) -> tuple[dict[str, Any], str, bool] | None:
    """(document, text, had invalid UTF-8) for a line, None if blank; raises Malformed.
    ``unwrap``: an exporter's wrapper is its ``_source`` (a line), or a document like any
    other (an event's text, which is the event)."""
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    if not raw.strip(_JSON_SPACE):
        return None
    invalid_utf8 = False
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", "replace")
        invalid_utf8 = True
    deep = text.count("{") + text.count("[") > MAX_NESTING // 2
    try:
        with _DeepRecursion() if deep else contextlib.nullcontext():
            # Numbers keep their JSON text: a string field compares them as written.
            doc = json.loads(
                text, parse_int=JsonNumber, parse_float=JsonNumber, parse_constant=_no_constants
            )
            if "\\u" in text and _has_lone_surrogate(doc):
                doc = _no_surrogates(doc)
    except RecursionError:
        raise Malformed(_TOO_DEEP) from None
    except ValueError as exc:
        raise Malformed(f"invalid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise Malformed("not a JSON object")
    if deep and _depth(text) > MAX_NESTING:
        raise Malformed(_TOO_DEEP)
    inner = doc.get("_source")
    if unwrap and "_index" in doc and isinstance(inner, dict):
        # An exporter's wrapper (elasticdump, search hits): the event is its _source.
        with _DeepRecursion() if deep else contextlib.nullcontext():
            start, end = _source_span(text)
        return inner, text[start:end], invalid_utf8
    return doc, text, invalid_utf8


def event_document(text: str) -> dict[str, Any]:
    """An event's text as a hit holds it (a line's, or an exporter's wrapper's ``_source``)
    read as the engines read it, numbers as their JSON text ({} if it is no object): the text
    is the event, so an ``_index`` and an object ``_source`` in it are fields like any other,
    as the rows read them."""
    try:
        parsed = parse_line(text.encode("utf-8", "surrogatepass"), unwrap=False)
    except Malformed:
        return {}
    return parsed[0] if parsed is not None else {}


_DECODER = json.JSONDecoder(parse_int=str, parse_float=str)  # values are skipped, not kept


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _source_span(text: str) -> tuple[int, int]:
    """Where the value of the last top-level ``_source`` member is in ``text`` (a valid JSON
    object): the same substring the Rust engine takes."""
    span = (0, len(text))
    pos = _skip_space(text, 0) + 1  # after the `{`
    while True:
        pos = _skip_space(text, pos)
        if text[pos] == "}":
            return span
        key, pos = json.decoder.scanstring(text, pos + 1)  # type: ignore[attr-defined]
        pos = _skip_space(text, pos) + 1  # after the `:`
        start = _skip_space(text, pos)
        _, pos = _DECODER.raw_decode(text, start)
        if key == "_source":
            span = (start, pos)
        pos = _skip_space(text, pos)
        if text[pos] == ",":
            pos += 1
