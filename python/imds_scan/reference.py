"""The pure-Python reference engine: the rule IR evaluated plainly, line by line.

It parses every line with the standard library's :mod:`json` and has no fast path, so it is
the oracle the Rust engine is tested against and the baseline the benchmark compares with.
Semantics: ``rule-semantics.md`` (shared design notes) and ``docs/ir.md``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from .ipaddr import parse_ip

_ASCII_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_JSON_SPACE = b" \t\r\n"


def ascii_fold(text: str) -> str:
    """Lowercase A-Z only: EQL's case-insensitivity never folds non-ASCII letters."""
    return text.translate(_ASCII_FOLD)


def wildcard_regex(pattern: str) -> re.Pattern[str]:
    """``*`` = any run of code points, ``?`` = one code point; everything else literal."""
    parts = []
    for ch in ascii_fold(pattern):
        if ch == "*":
            parts.append(".*")
        elif ch == "?":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts), re.DOTALL)


# ---------------------------------------------------------------- reading fields


def _flatten(value: Any) -> Iterator[str]:
    if isinstance(value, list):
        for item in value:
            yield from _flatten(item)
    elif isinstance(value, bool):
        yield "true" if value else "false"
    elif isinstance(value, str):
        yield value  # numbers arrive here too, as their JSON text (see parse_line)


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
    if isinstance(value, dict):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _objects(item)


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


# Containers nested deeper than this make a line malformed (the Rust parser's limit, too).
MAX_NESTING = 127


def _depth(value: Any) -> int:
    depth, level = 0, [value]
    while level:
        depth += 1
        level = [
            child
            for item in level
            for child in (item.values() if isinstance(item, dict) else item)
            if isinstance(child, (dict, list))
        ]
    return depth


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
    try:
        # Numbers keep their JSON text: a string field compares them as written.
        doc = json.loads(text, parse_int=str, parse_float=str, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        raise Malformed(f"invalid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise Malformed("not a JSON object")
    if text.count("{") + text.count("[") > MAX_NESTING and _depth(doc) > MAX_NESTING:
        raise Malformed("invalid JSON: recursion limit exceeded")
    if "\\u" in text and _has_lone_surrogate(doc):
        raise Malformed("invalid JSON: lone surrogate in \\u escape")
    return doc, text, invalid_utf8


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


class _Pred:
    def __init__(self, node: dict[str, Any]) -> None:
        self.field = node["field"]
        self.parts = self.field.split(".")
        self.op = node["op"]
        self.is_ip = node["field_type"] == "ip"
        self.values: list[str] = node["values"]
        if self.is_ip:
            self.addresses = [parse_ip(v) for v in self.values]
        elif self.op == "eq_ci":
            self.folded = [ascii_fold(v) for v in self.values]
        elif self.op == "wildcard":
            self.regexes = [wildcard_regex(v) for v in self.values]

    def _literal_for(self, value: str) -> str | None:
        """The first of this predicate's literals that `value` satisfies."""
        if self.is_ip:
            address = parse_ip(value)
            if address is None:
                return None
            for literal, wanted_address in zip(self.values, self.addresses, strict=True):
                if address == wanted_address:
                    return literal
        elif self.op == "eq":
            for literal in self.values:
                if value == literal:
                    return literal
        elif self.op == "eq_ci":
            folded = ascii_fold(value)
            for literal, wanted in zip(self.values, self.folded, strict=True):
                if folded == wanted:
                    return literal
        else:
            folded = ascii_fold(value)
            for literal, regex in zip(self.values, self.regexes, strict=True):
                if regex.fullmatch(folded):
                    return literal
        return None

    def witness(self, doc: dict[str, Any]) -> Witness | None:
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
    """None when false; when true, the witnesses as docs/ir.md defines them."""
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

    def __post_init__(self) -> None:
        self.branches = [(b["name"], _compile(b["expr"])) for b in self.ir["branches"]]

    def evaluate(self, doc: dict[str, Any]) -> tuple[int, Witness | None] | None:
        """(index of the first matching branch, deciding witness), or None."""
        for index, (_, expr) in enumerate(self.branches):
            found = _evaluate(expr, doc)
            if found is not None:
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


@dataclass
class FileStats:
    bytes: int = 0
    events: int = 0
    candidates: int = 0
    hits: int = 0
    malformed: int = 0
    invalid_utf8: int = 0
    malformed_examples: list[tuple[int, str]] = field(default_factory=list)
    error: str | None = None


def scan_stream(
    stream: BinaryIO,
    rules: list[Rule],
    source: int,
    stats: FileStats,
    hits: list[Hit],
    max_examples: int = 5,
) -> None:
    """Scan one stream of NDJSON lines (split on ``\\n`` only), appending hits."""
    for number, raw in enumerate(stream, start=1):
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
            verdict = rule.evaluate(doc)
            if verdict is not None:
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


def scan_paths(
    paths: Iterable[str], rules: list[dict[str, Any]], max_examples: int = 5
) -> tuple[list[Hit], list[FileStats]]:
    """Scan files one after another; a file that cannot be read is recorded, not raised."""
    compiled = [Rule(ir) for ir in rules]
    hits: list[Hit] = []
    all_stats = []
    for source, path in enumerate(paths):
        stats = FileStats()
        all_stats.append(stats)
        try:
            with open(path, "rb") as stream:
                scan_stream(stream, compiled, source, stats, hits, max_examples)
        except OSError as exc:
            stats.error = exc.strerror or str(exc)
    return hits, all_stats
