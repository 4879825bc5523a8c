"""The pure-Python reference engine: the rule IR evaluated plainly, line by line.

It parses every line with the standard library's :mod:`json` and has no fast path, so it is
the oracle the Rust engine is tested against and the baseline the benchmark compares with.
Semantics: ``spec/semantics.md`` and ``spec/ir.md``.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import io
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, NamedTuple, cast

from .eql import MAX_IR_DEPTH, ir_depth
from .ipaddr import in_cidr, parse_cidr, parse_ip
from .ir_schema import check as check_ir_schema
from .stats import FileStats

_ASCII_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_JSON_SPACE = b" \t\r\n"


def ascii_fold(text: str) -> str:
    """Lowercase A-Z only: EQL's case-insensitivity never folds non-ASCII letters."""
    return text.translate(_ASCII_FOLD)


def wildcard_regex(pattern: str, fold: bool = True) -> re.Pattern[str]:
    """``*`` = any run of code points, ``?`` = one code point; everything else literal.
    With ``fold`` (``:``, ``like~``) the pattern is ASCII-folded and must be matched against an
    ASCII-folded value; without it (``like``) it is case-sensitive. The plain definition, for
    tests: the engine uses :class:`Wildcard` (``re`` backtracks without bound on ``*a*a*b``)."""
    parts = []
    for ch in ascii_fold(pattern) if fold else pattern:
        if ch == "*":
            parts.append(".*")
        elif ch == "?":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts), re.DOTALL)


class Wildcard:
    """An EQL pattern, matched as the Rust engine does (crates/imds-core/src/wildcard.rs).

    The pieces between ``*``s have fixed lengths (``?`` is one code point), so the leftmost
    match of each, in order, is as good as any: the first piece must match at the start, the
    last at the end, and each one between is searched for from where the one before ended
    (``str.find``, or a Shift-And pass when it holds a ``?``). Linear in the value for a
    given pattern, never a rescan per position. ``fold`` as for :func:`wildcard_regex`."""

    def __init__(self, pattern: str, fold: bool = True) -> None:
        self.pieces = (ascii_fold(pattern) if fold else pattern).split("*")
        # Shift-And tables of the searched pieces that hold a `?`: bit i of a code point's
        # mask says piece[i] accepts it; code points the piece does not name get `any`.
        self.tables: list[tuple[dict[str, int], int] | None] = []
        for piece in self.pieces:
            if "?" not in piece:
                self.tables.append(None)
                continue
            any_one = sum(1 << i for i, ch in enumerate(piece) if ch == "?")
            masks: dict[str, int] = {}
            for i, ch in enumerate(piece):
                if ch != "?":
                    masks[ch] = masks.get(ch, any_one) | 1 << i
            self.tables.append((masks, any_one))

    def fullmatch(self, value: str) -> bool:
        """Whether all of ``value`` (ASCII-folded first, if the pattern folds) matches."""
        pieces = self.pieces
        if len(pieces) == 1:
            return len(value) == len(pieces[0]) and _piece_at(pieces[0], value, 0)
        first, last = pieces[0], pieces[-1]
        end = len(value) - len(last)
        if end < len(first) or not _piece_at(first, value, 0) or not _piece_at(last, value, end):
            return False
        pos = len(first)
        for piece, table in zip(pieces[1:-1], self.tables[1:-1], strict=True):
            if table is None:
                at = value.find(piece, pos, end)
                if at < 0:
                    return False
                pos = at + len(piece)
                continue
            masks, any_one = table
            goal, state = 1 << (len(piece) - 1), 0
            for i in range(pos, end):
                state = ((state << 1) | 1) & masks.get(value[i], any_one)
                if state & goal:
                    pos = i + 1
                    break
            else:
                return False
        return True


def _piece_at(piece: str, value: str, at: int) -> bool:
    """``piece`` (``?`` = any code point) matches ``value`` at ``at``."""
    if len(value) - at < len(piece):
        return False
    if "?" not in piece:
        return value.startswith(piece, at)
    return all(p in ("?", v) for p, v in zip(piece, value[at : at + len(piece)], strict=True))


# ---------------------------------------------------------------- reading fields


def _flatten(value: Any) -> Iterator[str]:
    # Iterative: arrays may nest up to MAX_NESTING deep, beyond Python's recursion limit.
    stack = [iter((value,))]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            if isinstance(item, bool):
                yield "true" if item else "false"
            elif isinstance(item, str):
                yield item  # numbers arrive here too, as their JSON text (see parse_line)
        else:
            stack.pop()


def field_values(doc: dict[str, Any], parts: list[str]) -> Iterator[str]:
    """Values of a field path in document order: nested, dotted and mixed keys, arrays."""
    for key, value in doc.items():
        key_parts = key.split(".")
        if key_parts != parts[: len(key_parts)]:
            continue
        rest = parts[len(key_parts) :]
        if not rest:
            yield from _flatten(value)
        else:
            for obj in _objects(value):
                yield from field_values(obj, rest)


def _objects(value: Any) -> Iterator[dict[str, Any]]:
    stack = [iter((value,))]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            if isinstance(item, dict):
                yield item
        else:
            stack.pop()


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


def deep_json(text: str) -> contextlib.AbstractContextManager[None]:
    """Room for json.loads/dumps of ``text`` when it may nest up to MAX_NESTING levels."""
    deep = text.count("{") + text.count("[") > MAX_NESTING // 2
    return _DeepRecursion() if deep else contextlib.nullcontext()


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


def parse_line(raw: bytes) -> tuple[dict[str, Any], str, bool] | None:
    """(document, text, had invalid UTF-8) for a line, None if blank; raises Malformed."""
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
            doc = json.loads(text, parse_int=str, parse_float=str, parse_constant=_no_constants)
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
    if "_index" in doc and isinstance(inner, dict):
        # An exporter's wrapper (elasticdump, search hits): the event is its _source.
        with _DeepRecursion() if deep else contextlib.nullcontext():
            start, end = _source_span(text)
        return inner, text[start:end], invalid_utf8
    return doc, text, invalid_utf8


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


# ---------------------------------------------------------------- evaluating


@dataclass
class Witness:
    field: str
    op: str
    pattern: str
    value: str
    under_or: bool = False

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "op": self.op, "pattern": self.pattern, "value": self.value}


_AFFIX_OPS = {
    "starts_with": str.startswith,
    "starts_with_ci": str.startswith,
    "ends_with": str.endswith,
    "ends_with_ci": str.endswith,
    "contains": str.__contains__,
    "contains_ci": str.__contains__,
}
_TEXT_OPS = frozenset({"wildcard", "like", *_AFFIX_OPS})


class _Pred:
    def __init__(self, node: dict[str, Any]) -> None:
        self.field = node["field"]
        self.parts = self.field.split(".")
        self.op: str = node["op"]
        self.is_ip = node["field_type"] == "ip"
        self.values: list[str] = node["values"]
        if self.is_ip and self.op in _TEXT_OPS:
            raise ValueError(f"{self.op} is not allowed on ip field {self.field}")
        if self.op == "imds_endpoint":
            from .endpoint import CLASSES

            for value in self.values:
                if value not in CLASSES:
                    raise ValueError(f"{value!r} is not an endpoint class")
        elif self.op == "exists":
            if self.values:
                raise ValueError("exists takes no values")
        elif self.op == "cidr":
            blocks = [parse_cidr(v) for v in self.values]
            for value, block in zip(self.values, blocks, strict=True):
                if block is None:
                    raise ValueError(f"{value!r} is not a CIDR block")
            self.blocks = [b for b in blocks if b is not None]
        elif self.is_ip:
            self.addresses = [parse_ip(v) for v in self.values]
        elif self.op in ("eq_ci", "starts_with_ci", "ends_with_ci", "contains_ci"):
            self.folded = [ascii_fold(v) for v in self.values]
        elif self.op in ("wildcard", "like"):
            self.patterns = [Wildcard(v, fold=self.op == "wildcard") for v in self.values]
        elif self.op not in ("eq", "exists", *_AFFIX_OPS):
            raise ValueError(f"unknown op {self.op!r}")

    def _literal_for(self, value: str) -> str | None:
        """The first of this predicate's literals that `value` satisfies."""
        op = self.op
        if op == "exists":  # any value (on an ip field, any address); no literal to report
            return "" if not self.is_ip or parse_ip(value) is not None else None
        if op == "cidr":
            address = parse_ip(value)
            if address is None:
                return None
            for literal, block in zip(self.values, self.blocks, strict=True):
                if in_cidr(address, block):
                    return literal
        elif self.is_ip:
            address = parse_ip(value)
            if address is None:
                return None
            for literal, wanted_address in zip(self.values, self.addresses, strict=True):
                if address == wanted_address:
                    return literal
        elif op == "eq":
            for literal in self.values:
                if value == literal:
                    return literal
        elif op == "eq_ci":
            folded = ascii_fold(value)
            for literal, wanted in zip(self.values, self.folded, strict=True):
                if folded == wanted:
                    return literal
        elif op in ("wildcard", "like"):
            subject = ascii_fold(value) if op == "wildcard" else value
            for literal, pattern in zip(self.values, self.patterns, strict=True):
                if pattern.fullmatch(subject):
                    return literal
        else:
            test = _AFFIX_OPS[op]
            if op.endswith("_ci"):
                folded = ascii_fold(value)
                for literal, wanted in zip(self.values, self.folded, strict=True):
                    if test(folded, wanted):
                        return literal
            else:
                for literal in self.values:
                    if test(value, literal):
                        return literal
        return None

    def witness(self, doc: dict[str, Any]) -> Witness | None:
        if self.op == "imds_endpoint":  # the witness value is the text that named the endpoint
            from .endpoint import first_match, port_number

            def event_ports() -> list[int]:
                ports = (port_number(v) for v in field_values(doc, ["destination", "port"]))
                return [p for p in ports if p is not None]

            for value in field_values(doc, self.parts):
                found = first_match(value, self.values, event_ports)
                if found is not None:
                    return Witness(self.field, self.op, self.values[found[0]], found[1])
            return None
        for value in field_values(doc, self.parts):
            literal = self._literal_for(value)
            if literal is not None:
                return Witness(self.field, self.op, literal, value)
        return None


def _compile(node: dict[str, Any]) -> Any:
    kind = node["node"]
    if kind == "pred":
        return _Pred(node)
    if kind == "not":
        return ("not", _compile(node["arg"]))
    return (kind, [_compile(arg) for arg in node["args"]])


def _evaluate(node: Any, doc: dict[str, Any]) -> list[Witness] | None:
    """None when false; when true, the witnesses as spec/ir.md defines them."""
    if isinstance(node, _Pred):
        witness = node.witness(doc)
        return None if witness is None else [witness]
    kind, arg = node
    if kind == "not":
        return [] if _evaluate(arg, doc) is None else None
    if kind == "and":
        collected: list[Witness] = []
        for child in arg:
            found = _evaluate(child, doc)
            if found is None:
                return None
            collected.extend(found)
        return collected
    for child in arg:  # or
        found = _evaluate(child, doc)
        if found is not None:
            for witness in found:
                witness.under_or = True
            return found
    return None


@dataclass
class Rule:
    ir: dict[str, Any]
    branches: list[tuple[str, Any]] = field(init=False)

    allowlist: list[Any] = field(init=False)

    def __post_init__(self) -> None:
        check_ir_schema(self.ir)
        for branch in self.ir["branches"]:  # the Rust engine's limit, and its words
            depth = ir_depth(branch["expr"])
            if depth > MAX_IR_DEPTH:
                raise ValueError(
                    f"branch {json.dumps(branch['name'])} nests {depth} levels deep "
                    f"(at most {MAX_IR_DEPTH} are supported)"
                )
        self.branches = [(b["name"], _compile(b["expr"])) for b in self.ir["branches"]]
        self.allowlist = [_compile(node) for node in self.ir.get("allowlist", ())]

    def evaluate(self, doc: dict[str, Any]) -> tuple[int, Witness | None] | None:
        """(index of the first matching branch, deciding witness), or None."""
        verdict = self.judge(doc)
        return verdict if isinstance(verdict, tuple) else None

    def judge(self, doc: dict[str, Any]) -> tuple[int, Witness | None] | int | None:
        """A hit (branch, witness); else the index of the first allowlist entry that drops
        an event a branch matched (spec/ir.md, Allowlists); else None."""
        for index, (_, expr) in enumerate(self.branches):
            found = _evaluate(expr, doc)
            if found is not None:
                for entry, node in enumerate(self.allowlist):
                    if _evaluate(node, doc) is not None:
                        return entry
                deciding = next((w for w in found if w.under_or), found[-1] if found else None)
                return index, deciding
        return None


# ---------------------------------------------------------------- scanning


@dataclass
class Hit:
    source: int
    line: int
    rule: int
    branch: int
    witness: dict[str, str] | None
    event: str


class _ReadFailed:
    """Where a stream's read error is kept while its last (partial) line is still scanned."""

    error: BaseException | None = None


_BLOCK = 1 << 20


class _LongLine(NamedTuple):
    """A line read past: its length without the newline, and its bytes read (with it)."""

    length: int
    size: int


# The default longest line evaluated (bytes, without its newline); longer ones are read past.
MAX_LINE_BYTES = 64 << 20


def _read_lines(
    stream: BinaryIO, failed: _ReadFailed, max_line: int = MAX_LINE_BYTES
) -> Iterator[bytes | _LongLine]:
    """The stream's lines, split on ``\\n`` only (each with its ``\\n``, the last one maybe
    without); a line longer than ``max_line`` bytes is read past, never held whole, and given
    as a _LongLine. A read error ends the lines: what was read before it is still
    yielded, and the error is left in ``failed``."""
    pending: list[bytes] = []
    held = 0  # bytes in pending
    skipped: int | None = None  # the length so far of a long line being read past
    # read1: one read of the source at most, so data decoded before an error is returned
    # (a read(n) that fails midway drops what it had gathered).
    read = getattr(stream, "read1", stream.read)
    while True:
        try:
            block = read(_BLOCK)
        except Exception as exc:  # decoding and I/O errors alike
            failed.error = exc
            block = b""
        if not block:
            if skipped is not None:
                yield _LongLine(skipped, skipped)
            elif pending:
                yield b"".join(pending)
            return
        start = 0
        while True:
            end = block.find(b"\n", start)
            if skipped is not None:
                if end < 0:
                    skipped += len(block) - start
                    break
                yield _LongLine(skipped + end - start, skipped + end - start + 1)
                skipped = None
                start = end + 1
                continue
            if end < 0:
                if start < len(block):
                    pending.append(block[start:])
                    held += len(block) - start
                    if held > max_line:
                        skipped, pending, held = held, [], 0
                break
            if held + end - start > max_line:
                yield _LongLine(held + end - start, held + end - start + 1)
                pending, held = [], 0
                start = end + 1
                continue
            if pending:
                pending.append(block[start : end + 1])
                yield b"".join(pending)
                pending, held = [], 0
            else:
                yield block[start : end + 1]
            start = end + 1


def scan_stream(
    stream: BinaryIO,
    rules: list[Rule],
    source: int,
    stats: FileStats,
    hits: list[Hit],
    max_examples: int = 5,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> BaseException | None:
    """Scan one stream of NDJSON lines (split on ``\\n`` only), appending hits; returns the
    read error that ended it early, if any. A line longer than ``max_line_bytes`` is counted
    (in ``long_lines`` and ``malformed``), not evaluated."""
    failed = _ReadFailed()
    for number, raw in enumerate(_read_lines(stream, failed, max_line_bytes), start=1):
        if isinstance(raw, _LongLine):
            length = raw.length
            stats.bytes += raw.size
            stats.events += 1
            stats.long_lines += 1
            stats.malformed += 1
            if len(stats.malformed_examples) < max_examples:
                stats.malformed_examples.append(
                    (
                        number,
                        f"line of {length} bytes is longer than max-line-bytes "
                        f"({max_line_bytes}): not evaluated",
                    )
                )
            continue
        stats.bytes += len(raw)
        if raw.endswith(b"\n"):
            raw = raw[:-1]
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            parsed = parse_line(raw)
        except Malformed as exc:
            stats.events += 1
            stats.malformed += 1
            if len(stats.malformed_examples) < max_examples:
                stats.malformed_examples.append((number, str(exc)))
            continue
        if parsed is None:
            continue
        doc, text, invalid_utf8 = parsed
        stats.events += 1
        stats.candidates += 1
        stats.invalid_utf8 += invalid_utf8
        for rule_index, rule in enumerate(rules):
            verdict = rule.judge(doc)
            if isinstance(verdict, int):
                key = (rule_index, verdict)
                stats.allowlisted[key] = stats.allowlisted.get(key, 0) + 1
            elif verdict is not None:
                branch, witness = verdict
                stats.hits += 1
                hits.append(
                    Hit(
                        source,
                        number,
                        rule_index,
                        branch,
                        witness.as_dict() if witness else None,
                        text,
                    )
                )
    return failed.error


class _Counted(io.RawIOBase):
    """A raw source: counts the bytes read from it, and reports them to ``progress``; the
    first bytes, read to tell the compression, are put back in front."""

    def __init__(self, raw: BinaryIO, head: bytes, progress: Callable[[int], None] | None) -> None:
        super().__init__()
        self._read = getattr(raw, "read1", raw.read)
        self._head = head
        self.count = len(head)
        self._progress = progress
        if progress:
            progress(len(head))

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        # read1: whatever is there (a pipe's reader must not wait for a full buffer).
        data = self._read(len(view))
        n = len(data)
        view[:n] = data
        self.count += n
        if self._progress and n:
            self._progress(n)
        return n


MAGIC_LEN = 6


# Recognised and refused: other compressions, and text that is not UTF-8 (UTF-32LE before
# UTF-16LE, whose mark starts it).
_REFUSED = (
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"),
    (b"PK\x03\x04", "zip"),
    (b"\x04\x22\x4d\x18", "lz4"),
    (b"\xff\xfe\x00\x00", "UTF-32LE"),
    (b"\x00\x00\xfe\xff", "UTF-32BE"),
    (b"\xff\xfe", "UTF-16LE"),
    (b"\xfe\xff", "UTF-16BE"),
)


def refusal(kind: str) -> str:
    """Why an input of this kind is not scanned (the Rust engine's ``source::refusal``)."""
    if kind.startswith("UTF-"):
        return (
            f"{kind} text (byte-order mark) is not supported: not scanned (convert it to "
            f"UTF-8, e.g. iconv -f {kind} -t UTF-8)"
        )
    return f"{kind}-compressed input is not supported (gzip and zstd are): not scanned"


def detect_compression(head: bytes) -> str | None:
    """``gzip``, ``zstd`` or None (plain) from an input's first bytes; ValueError for a
    recognised but unsupported compression or a UTF-16/32 byte-order mark (the Rust engine's
    ``Compression::detect``)."""
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"\x28\xb5\x2f\xfd") or (
        len(head) >= 4 and head[0] & 0xF0 == 0x50 and head[1:4] == b"\x2a\x4d\x18"
    ):
        return "zstd"
    for magic, kind in _REFUSED:
        if head.startswith(magic):
            raise ValueError(refusal(kind))
    return None


def _read_head(raw: BinaryIO) -> bytes:
    head = b""
    while len(head) < MAGIC_LEN:
        data = raw.read(MAGIC_LEN - len(head))
        if not data:
            break
        head += data
    return head


def _decoded(counted: _Counted, compression: str | None) -> BinaryIO:
    buffered = io.BufferedReader(counted, 256 << 10)
    if compression == "gzip":
        return cast(BinaryIO, gzip.GzipFile(fileobj=buffered, mode="rb"))  # multi-member too
    if compression == "zstd":
        try:
            import zstandard
        except ImportError:
            raise OSError(
                "zstd input needs the zstandard package with --engine python "
                "(pip install zstandard)"
            ) from None
        return cast(BinaryIO, io.BufferedReader(_ZstdFrames(buffered, zstandard), _BLOCK))
    return buffered


class _ZstdFrames(io.RawIOBase):
    """Every zstd frame of a stream (skippable ones skipped); a stream that ends inside a frame
    is an error, as in the Rust engine (zstandard's stream_reader takes it for the end)."""

    # Compressed bytes per decompress call: bounds the output of one call (zstd can expand
    # a few bytes into 128 KiB).
    _STEP = 1024

    def __init__(self, raw: BinaryIO, zstandard: Any) -> None:
        super().__init__()
        self._raw = raw
        self._new = zstandard.ZstdDecompressor().decompressobj
        self._frame = self._new()
        self._input = b""
        self._output = b""
        self._started = False  # bytes of the current frame were given to the decoder

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._output:
            if not self._input:
                self._input = self._raw.read(64 << 10)
                if not self._input:
                    if self._started:
                        raise OSError("zstd data ends inside a frame (truncated)")
                    return 0
            step, self._input = self._input[: self._STEP], self._input[self._STEP :]
            self._started = True
            self._output = self._frame.decompress(step)
            if self._frame.eof:
                self._input = self._frame.unused_data + self._input
                self._frame, self._started = self._new(), False
        n = min(len(view), len(self._output))
        view[:n] = self._output[:n]
        self._output = self._output[n:]
        return n


Opener = Callable[[], BinaryIO]


def scan_paths(
    paths: Iterable[str | Opener],
    rules: list[dict[str, Any]],
    max_examples: int = 5,
    progress: Callable[[int], None] | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> tuple[list[Hit], list[FileStats], bool]:
    """Scan inputs one after another: paths (``-`` is stdin) or functions that open a binary
    stream; gzip and zstd are decoded. An input that cannot be read, or only in part, is
    recorded in its stats (what was read is scanned), not raised. ``progress(n)`` is called
    with each count of bytes read from the sources. Returns (hits, stats, interrupted): on
    KeyboardInterrupt the scan stops and returns what it found."""
    compiled = [Rule(ir) for ir in rules]
    hits: list[Hit] = []
    all_stats: list[FileStats] = []
    interrupted = False
    for source, path in enumerate(paths):
        stats = FileStats()
        all_stats.append(stats)
        if interrupted:
            stats.error = "not read: the scan was interrupted"
            continue
        try:
            interrupted = _scan_one(
                path, compiled, source, stats, hits, max_examples, progress, max_line_bytes
            )
        except OSError as exc:
            stats.error = exc.strerror or str(exc)
        except ValueError as exc:
            stats.error = str(exc)
    return hits, all_stats, interrupted


def _refuse_nested(stream: BinaryIO, outer: str) -> Exception | None:
    """ValueError when decompressed data is compressed again (``.gz.gz``) or UTF-16/32 text,
    as the Rust engine refuses it. Returns the damage the first read met: a second read may
    not meet it again (a gzip header cut short is consumed, then reads as a clean end)."""
    try:
        head = cast(Any, stream).peek(MAGIC_LEN)[:MAGIC_LEN]
    except Exception as exc:
        return exc
    try:
        inner = detect_compression(head)
    except ValueError as exc:
        raise ValueError(f"decompressed {outer} data: {exc}") from None
    if inner:
        raise ValueError(
            f"{outer} data that holds {inner}-compressed data (compressed twice?) is not "
            "supported: not scanned"
        )
    return None


def _scan_one(
    path: str | Opener,
    rules: list[Rule],
    source: int,
    stats: FileStats,
    hits: list[Hit],
    max_examples: int,
    progress: Callable[[int], None] | None,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> bool:
    """Scan one input into ``stats`` and ``hits``; True if interrupted."""
    if callable(path):
        raw = path()
    elif path == "-":
        raw = sys.stdin.buffer
    else:
        if os.path.isdir(path):
            raise OSError(errno.EISDIR, "Is a directory")
        raw = open(path, "rb")  # noqa: SIM115 (closed below)
    try:
        head = _read_head(raw)
        compression = detect_compression(head)
        counted = _Counted(raw, head, progress)
        stream = _decoded(counted, compression)
        damage = _refuse_nested(stream, compression) if compression else None
        stats.compression = compression
        try:
            error = damage or scan_stream(
                stream, rules, source, stats, hits, max_examples, max_line_bytes
            )
        except KeyboardInterrupt:
            stats.source_bytes = counted.count
            stats.error = f"interrupted: scanned up to byte {stats.bytes}"
            return True
        stats.source_bytes = counted.count
        if error is not None:
            reason = (error.strerror or str(error)) if isinstance(error, OSError) else str(error)
            reason = f"{type(error).__name__}: {reason}" if reason else type(error).__name__
            if compression:
                stats.error = (
                    f"{compression} data damaged or cut short near compressed byte "
                    f"{counted.count} ({reason}); the {stats.bytes} bytes decompressed "
                    "before it were scanned"
                )
            else:
                stats.error = f"read error at byte {stats.bytes}: {reason}"
    finally:
        if raw is not sys.stdin.buffer:
            raw.close()
    return False
