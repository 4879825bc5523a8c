"""The EQL compiler: query text → rule IR (plain data, see spec/ir.md), and back.

Elasticsearch's single-event EQL: ``any where`` / ``<category> where`` (``event.category`` has
the category); ``and``, ``or``, ``not``, parentheses; ``==``, ``!=``, ``<``, ``<=``, ``>``,
``>=``, ``in``, ``in~``, ``not in``, ``:``, ``like``, ``like~``, ``regex``, ``regex~`` (one
pattern or a list); ``+ - * / %`` and unary minus; the functions ``add``, ``subtract``,
``multiply``, ``divide``, ``modulo``, ``length``, ``string``, ``number``, ``substring``,
``indexOf``, ``concat``, ``between``, ``startsWith``, ``endsWith``, ``stringContains``,
``cidrMatch`` (the ``~`` forms where Elasticsearch has them) and imds-scan's ``imdsEndpoint``;
literals on either side, function calls nested as values, bare boolean conditions,
``?field``, ``field == null``. A field against literals compiles to a ``pred`` node typed by
the field's Elasticsearch type (``fields.field_type``, with the caller's field_types); anything
else to an ``expr`` node. Types are checked as Elasticsearch's verifier checks them; what
Elasticsearch refuses, and the rest of EQL (sequences, pipes), is refused with line:column and
the reason. ``and``/``or`` chains compile to flat nodes and ``not not x`` to ``x``; a condition
nested deeper than MAX_DEPTH levels (or parentheses) is refused, never a RecursionError.
"""

from __future__ import annotations

import copy
import decimal
import json
import math
import re
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

from .errors import EqlError as EqlError  # re-exported: the public name
from .fields import field_type
from .ir_schema import TEXT_OPS, rule_kind

IR_VERSION = 1
# How deep a condition (a rule's branch, an allowlist condition, --allow) may nest, counting
# `and`/`or`/`not` levels after flattening (a predicate is 1 level), and how deep parentheses
# may nest: deeper is refused at compile time, so every rule both engines receive runs in both.
MAX_DEPTH = 100
# What the engines accept in an IR document (a branch's depth): above MAX_DEPTH so that host
# filters and allowlists may wrap a branch of MAX_DEPTH levels.
MAX_IR_DEPTH = 128
# `with runs=N` repeats a stage 1 to MAX_RUNS times (Elasticsearch's bounds).
MAX_RUNS = 100
_DURATION_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}

Node = dict[str, Any]


class Token:
    """One token and where it starts (a plain class: the lexer makes many of them)."""

    __slots__ = ("column", "kind", "line", "start", "text", "value")

    def __init__(
        self, kind: str, text: str, value: str, line: int, column: int, start: int = 0
    ) -> None:
        self.kind = kind  # ident, string, number, op, lparen, rparen, comma, eof
        self.text = text
        self.value = value
        self.line = line
        self.column = column
        self.start = start  # offset in the query text (its end: start + len(text))

    @property
    def end(self) -> int:
        return self.start + len(self.text)

    def __repr__(self) -> str:
        return f"Token({self.kind!r}, {self.text!r}, {self.value!r}, {self.line}, {self.column})"

    def describe(self) -> str:
        if self.kind == "eof":
            return "end of query"
        if self.kind == "string":
            return f"string {json.dumps(self.value)}"
        if self.kind == "number":
            return f"number {self.text}"
        return repr(self.text)


_OPERATORS = (
    "==",
    "!=",
    ":",
    "<=",
    ">=",
    "<",
    ">",
    "~",
    "|",
    "[",
    "]",
    "+",
    "-",
    "*",
    "/",
    "%",
    "=",
)
_SIMPLE_ESCAPES = {
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "b": "\b",
    "f": "\f",
    '"': '"',
    "\\": "\\",
    "'": "'",
}


class _Lexer:
    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source
        self.pos = 0
        # Line and column are worked out from the position when asked (1-based, a column
        # counts characters): position `_counted` is on line `_line`, which starts at `_start`.
        self._counted = 0
        self._line = 1
        self._start = 0
        self._space, self._number_tail = _re(_SPACE), _re(_NUMBER_TAIL)
        self._word, self._plain_chars = _re(_WORD), _re(_PLAIN_CHARS)
        # `![` (a missing-event stage) is a token only in sequences: elsewhere `!` stays an
        # unexpected character, as before.
        self.missing_stages = False

    def where(self) -> tuple[int, int]:
        """(line, column) of the current position."""
        pos, text = min(self.pos, len(self.text)), self.text
        if pos >= self._counted:
            newline = text.rfind("\n", self._counted, pos)
            if newline >= 0:
                self._line += text.count("\n", self._counted, pos)
                self._start = newline + 1
        else:
            self._line = 1 + text.count("\n", 0, pos)
            self._start = text.rfind("\n", 0, pos) + 1
        self._counted = pos
        return self._line, pos - self._start + 1

    def error(self, message: str, line: int | None = None, col: int | None = None) -> EqlError:
        here_line, here_col = self.where()
        return EqlError(message, line or here_line, col or here_col, self.source)

    def _advance(self, n: int = 1) -> None:
        self.pos += n

    def _skip_space(self) -> None:
        text = self.text
        while self.pos < len(text):
            ch = text[self.pos]
            if ch in " \t\r\n":
                self.pos = self._space.match(text, self.pos).end()  # type: ignore[union-attr]
            elif text.startswith("//", self.pos):
                end = text.find("\n", self.pos)
                self._advance((len(text) if end < 0 else end) - self.pos)
            elif text.startswith("/*", self.pos):
                line, col = self.where()
                end = text.find("*/", self.pos + 2)
                if end < 0:
                    raise self.error("unterminated comment", line, col)
                self._advance(end + 2 - self.pos)
            else:
                return

    def tokens(self) -> Iterator[Token]:
        """Tokens as the parser asks for them: an error past a refusal (a `sequence` header)
        is not reached."""
        while True:
            self._skip_space()
            line, col = self.where()
            if self.pos >= len(self.text):
                yield Token("eof", "", "", line, col, self.pos)
                return
            ch = self.text[self.pos]
            start = self.pos
            if ch == '"':
                value = self._string()
                yield Token("string", self.text[start : self.pos], value, line, col, start)
            elif ch.isdigit() or (ch == "." and self.text[self.pos + 1 : self.pos + 2].isdigit()):
                # A number, and any letters or digits glued to it (`1x` is refused whole).
                end = _re(_NUMBER_TOKEN).match(self.text, self.pos).end()  # type: ignore[union-attr]
                self._advance(end - self.pos)
                self._advance(self._number_tail.match(self.text, self.pos).end() - self.pos)  # type: ignore[union-attr]
                text = self.text[start : self.pos]
                yield Token("number", text, text, line, col, start)
            elif ch.isalpha() or ch in "_@`?":
                value = self._identifier()
                yield Token("ident", self.text[start : self.pos], value, line, col, start)
            elif ch in "(),":
                self._advance()
                kind = {"(": "lparen", ")": "rparen", ",": "comma"}[ch]
                yield Token(kind, ch, ch, line, col, start)
            elif self.missing_stages and self.text.startswith("![", self.pos):
                self._advance(2)
                yield Token("op", "![", "![", line, col, start)
            else:
                for op in _OPERATORS:
                    if self.text.startswith(op, self.pos):
                        self._advance(len(op))
                        yield Token("op", op, op, line, col, start)
                        break
                else:
                    if ch == "'":
                        raise self.error('single-quoted strings are not supported: use "..."')
                    raise self.error(f"unexpected character {ch!r}")

    def _identifier(self) -> str:
        # Field paths like process.parent.name or @timestamp; `backticked` parts allow any text.
        text = self.text
        start = self.pos
        parts = []
        buf = []
        while self.pos < len(text):
            ch = text[self.pos]
            if ch == "`":
                line, col = self.where()
                end = text.find("`", self.pos + 1)
                if end < 0:
                    raise self.error("unterminated `field name`", line, col)
                buf.append(text[self.pos + 1 : end])
                self._advance(end + 1 - self.pos)
            elif ch == "?" and self.pos == start:
                buf.append(ch)
                self._advance()
            elif word := self._word.match(text, self.pos):
                buf.append(word.group())
                self._advance(word.end() - self.pos)
            elif ch == "." and buf:
                parts.append("".join(buf))
                buf = []
                self._advance()
            else:
                break
        parts.append("".join(buf))
        return ".".join(parts)

    def _string(self) -> str:
        line, col = self.where()
        text = self.text
        if text.startswith('"""', self.pos):
            end = text.find('"""', self.pos + 3)
            if end < 0:
                raise self.error("unterminated string", line, col)
            value = text[self.pos + 3 : end]
            self._advance(end + 3 - self.pos)
            return value
        self._advance()
        out: list[str] = []
        while True:
            if self.pos >= len(text) or text[self.pos] == "\n":
                raise self.error("unterminated string", line, col)
            ch = text[self.pos]
            if ch == '"':
                self._advance()
                return "".join(out)
            if ch == "\\":
                nxt = text[self.pos + 1 : self.pos + 2]
                if nxt in _SIMPLE_ESCAPES:
                    out.append(_SIMPLE_ESCAPES[nxt])
                    self._advance(2)
                elif nxt == "u" and text.startswith("{", self.pos + 2):
                    end = text.find("}", self.pos + 3)
                    digits = text[self.pos + 3 : end] if end > 0 else ""
                    try:
                        code = int(digits, 16)
                        if not 0 < len(digits) <= 8 or 0xD800 <= code <= 0xDFFF:
                            raise ValueError
                        out.append(chr(code))
                    except (ValueError, OverflowError):
                        raise self.error(r"invalid \u{...} escape") from None
                    self._advance(end + 1 - self.pos)
                else:
                    raise self.error(f"unsupported escape sequence \\{nxt}")
            else:
                plain = self._plain_chars.match(text, self.pos)
                assert plain is not None  # ch itself is one
                out.append(plain.group())
                self._advance(plain.end() - self.pos)


@cache
def _re(pattern: str) -> re.Pattern[str]:
    """A regular expression compiled when first used: most runs compile no EQL at all (the
    rule cache), and start-up is shorter without them."""
    return re.compile(pattern)


# Runs the lexer takes whole (a line break is never inside one of them): white space; the
# rest of a number (alphanumerics and .+-); a field name's letters, digits, _ and @ (`\w` is
# exactly str.isalnum() or _); a string's characters up to a quote, backslash or line break.
_SPACE = r"[ \t\r\n]+"
_NUMBER_TAIL = r"[\w.]*"
_NUMBER_TOKEN = r"[0-9]*(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?"
_WORD = r"[\w@]+"
_PLAIN_CHARS = r'[^"\\\n]+'


_NUMBER = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
_KEYWORDS = frozenset({"and", "or", "not", "where", "in", "like", "regex", "true", "false", "null"})

# Binary operators and their precedence (Elasticsearch's grammar: `* / %` bind tighter than
# `+ -`, which bind tighter than the comparisons; comparisons do not chain).
_BINARY = {
    "*": 3,
    "/": 3,
    "%": 3,
    "+": 2,
    "-": 2,
    "==": 1,
    "!=": 1,
    "<": 1,
    "<=": 1,
    ">": 1,
    ">=": 1,
}
_ARITHMETIC = {"+": "add", "-": "subtract", "*": "multiply", "/": "divide", "%": "modulo"}
_COMPARISON = {"==": "eq", "!=": "neq", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}
_RANGE_OPS = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}
# `5 < a` is `a > 5`.
_MIRRORED = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
# Pattern operators: (pred op, expr fn); `:` and `like~` are one pred op (ASCII-folding
# wildcards), kept apart in expressions so that the text prints back as written.
_PATTERN_OPS = {
    ":": ("wildcard", "wildcard"),
    "like": ("like", "like"),
    "like~": ("wildcard", "like_ci"),
    "regex": ("regex", "regex"),
    "regex~": ("regex_ci", "regex_ci"),
}
# Ops of a pred that read a value as text: only on keyword fields.
_KEYWORD_OPS = TEXT_OPS | {"regex", "regex_ci"}

_INTEGER_TYPES = {
    "byte": (-(2**7), 2**7 - 1),
    "short": (-(2**15), 2**15 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "long": (-(2**63), 2**63 - 1),
    "unsigned_long": (0, 2**64 - 1),
}
_FLOAT_TYPES = frozenset({"double", "float", "half_float", "scaled_float"})
_FLOAT_OVERFLOW = {
    "float": decimal.Decimal((2 - 2**-24) * 2.0**127),
    "half_float": decimal.Decimal(65520),
}
_NUMERIC_TYPES = frozenset({*_INTEGER_TYPES, *_FLOAT_TYPES, "number"})
_DECIMAL = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"


def _category(vtype: str) -> str:
    """What the verifier checks a value's type against: string, number, integer is a number
    too (see _is_integer), boolean, date, ip, null."""
    if vtype in _NUMERIC_TYPES:
        return "number"
    if vtype in ("keyword", "text", "wildcard", "constant_keyword", "match_only_text"):
        return "string"
    return vtype


def _is_integer(vtype: str) -> bool:
    return vtype in _INTEGER_TYPES or vtype == "null"


# EQL functions (lower-cased name) → (canonical name, IR fn, IR fn of the `~` form or None,
# fewest and most arguments (None: any number), what each argument must be (the last one
# repeats), the result's type). Argument kinds: string, number, integer, boolean constant
# (bool_const), CIDR block constant (cidr), ip (an address or a string), any.
_FUNCTIONS: dict[str, tuple[str, str, str | None, int, int | None, tuple[str, ...], str]] = {
    "startswith": ("startsWith", "starts_with", "starts_with_ci", 2, 2, ("string",), "boolean"),
    "endswith": ("endsWith", "ends_with", "ends_with_ci", 2, 2, ("string",), "boolean"),
    "stringcontains": ("stringContains", "contains", "contains_ci", 2, 2, ("string",), "boolean"),
    "cidrmatch": ("cidrMatch", "cidr_match", None, 2, None, ("ip", "cidr"), "boolean"),
    "imdsendpoint": ("imdsEndpoint", "", None, 2, None, ("any",), "boolean"),
    "length": ("length", "length", None, 1, 1, ("string",), "integer"),
    "string": ("string", "string", None, 1, 1, ("any",), "keyword"),
    "number": ("number", "number", None, 1, 2, ("string", "integer"), "number"),
    "substring": ("substring", "substring", None, 2, 3, ("string", "integer"), "keyword"),
    "indexof": (
        "indexOf",
        "index_of",
        "index_of_ci",
        2,
        3,
        ("string", "string", "integer"),
        "integer",
    ),
    "concat": ("concat", "concat", None, 1, None, ("any",), "keyword"),
    "between": (
        "between",
        "between",
        "between_ci",
        3,
        4,
        ("string", "string", "string", "bool_const"),
        "keyword",
    ),
    "add": ("add", "add", None, 2, 2, ("number",), "number"),
    "subtract": ("subtract", "subtract", None, 2, 2, ("number",), "number"),
    "multiply": ("multiply", "multiply", None, 2, 2, ("number",), "number"),
    "divide": ("divide", "divide", None, 2, 2, ("number",), "number"),
    "modulo": ("modulo", "modulo", None, 2, 2, ("number",), "number"),
}
# Functions that are a `pred` when called on a field with string literals as a condition.
_PRED_FUNCTIONS = {"startswith", "endswith", "stringcontains", "cidrmatch", "imdsendpoint"}
_PRED_OPS = {
    "starts_with": "starts_with",
    "starts_with_ci": "starts_with_ci",
    "ends_with": "ends_with",
    "ends_with_ci": "ends_with_ci",
    "contains": "contains",
    "contains_ci": "contains_ci",
    "cidr_match": "cidr",
}
# On a field, with a literal: Elasticsearch's wildcard query, `*` before the literal (as
# written) and what after it.
_AS_WILDCARD_QUERY = {"stringcontains": "*", "endswith": ""}
_ORDINALS = ("first", "second", "third", "fourth", "fifth")
_ARITY_WORDS = {1: "one", 2: "two", 3: "three", 4: "four"}


class _Ast:
    """A parsed expression before it is compiled: kind, its first token (for positions), its
    source span, and what it holds. `depth` bounds the recursion of compiling it."""

    __slots__ = ("args", "depth", "end", "first", "kind", "start", "tok", "value")

    def __init__(
        self, kind: str, tok: Token, start: int, end: int, value: Any = None, args: Any = ()
    ) -> None:
        self.kind = kind  # lit, field, call, bin, neg, in, pat, and, or, not, paren
        self.tok = tok
        self.start = start
        self.end = end
        self.value = value
        self.args: list[_Ast] = list(args)
        self.depth: int = 1 + max((a.depth for a in self.args), default=0)
        # The span's first token (`tok` is the operator's, for an infix operator).
        self.first: Token = self.args[0].first if kind in ("bin", "in", "pat") else tok

    def inner(self) -> _Ast:
        node = self
        while node.kind == "paren":
            node = node.args[0]
        return node


class _Parser:
    def __init__(
        self,
        text: str,
        source: str,
        field_types: Mapping[str, str] | None = None,
        category_field: str = "event.category",
    ) -> None:
        self._lexer = _Lexer(text, source)
        self._lexed = self._lexer.tokens()
        self.category_field = category_field
        self.in_stage = False  # inside a sequence or sample stage's brackets
        self.text = text
        self.tokens: list[Token] = []
        self.i = 0
        self.source = source
        self.field_types = field_types
        self.parens = 0  # parentheses open around the current position
        # Where each node's text starts (id → (node, token)), to point at a too-deep one.
        self.starts: dict[int, tuple[Node, Token]] = {}

    def at(self, node: Node, tok: Token) -> Node:
        self.starts.setdefault(id(node), (node, tok))
        return node

    def check_depth(self, root: Node) -> None:
        """Refuse a tree deeper than MAX_DEPTH, at the first node below that depth (an `expr`
        node counts its value's nesting too: a function or operator is one more level)."""
        stack = [(root, 1)]
        while stack:
            node, depth = stack.pop()
            if node["node"] == "expr":
                depth += _value_depth(node["expr"])
            if depth > MAX_DEPTH:
                tok = self.starts.get(id(node), (node, self.tok))[1]
                raise self.refuse(
                    f"the condition nests more than {MAX_DEPTH} levels deep "
                    f"(and/or/not; at most {MAX_DEPTH} are supported)",
                    tok,
                )
            stack.extend((child, depth + 1) for child in reversed(_children(node)))

    @property
    def tok(self) -> Token:
        return self.peek(0)

    def peek(self, ahead: int = 1) -> Token:
        if self.i + ahead < len(self.tokens):
            return self.tokens[self.i + ahead]
        while len(self.tokens) <= self.i + ahead and not (
            self.tokens and self.tokens[-1].kind == "eof"
        ):
            self.tokens.append(next(self._lexed))
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def error(self, expected: str, tok: Token | None = None) -> EqlError:
        tok = tok or self.tok
        return EqlError(
            f"expected {expected}, found {tok.describe()}", tok.line, tok.column, self.source
        )

    def refuse(self, message: str, tok: Token) -> EqlError:
        return EqlError(message, tok.line, tok.column, self.source)

    def next(self) -> Token:
        tok = self.tok
        self.i += 1
        return tok

    def is_keyword(self, word: str, tok: Token | None = None) -> bool:
        tok = tok or self.tok
        return tok.kind == "ident" and tok.text.lower() == word

    def is_op(self, op: str, tok: Token | None = None) -> bool:
        tok = tok or self.tok
        return tok.kind == "op" and tok.value == op

    def expect(self, kind: str, expected: str) -> Token:
        if self.tok.kind != kind:
            raise self.error(expected)
        return self.next()

    def _tilde_follows(self, tok: Token) -> bool:
        """A `~` right after `tok`, with no space (``in~``, ``like~``, ``startsWith~``)."""
        return self.is_op("~") and self.tok.start == tok.end

    def src(self, ast: _Ast) -> str:
        return self.text[ast.start : ast.end]

    # ------------------------------------------------------------ syntax

    def query(self) -> Node:
        tok = self.tok
        if tok.kind != "ident" or tok.text.startswith(("?", "`")):
            raise self.error("'any where' or '<category> where'")
        if tok.text.lower() in ("sequence", "sample", "join"):
            raise self.refuse(
                f"{tok.text.lower()} queries are not supported (single-event queries only)",
                tok,
            )
        self.next()
        if not self.is_keyword("where"):
            raise self.error("'where'")
        self.next()
        ast = self.bool_expr()
        if self.is_op("|"):
            raise self.refuse("pipes are not supported", self.tok)
        if self.tok.kind != "eof":
            raise self.error("'and', 'or' or end of query")
        node = self.condition(ast)
        if tok.text.lower() != "any":
            category = self.at(_pred(self.category_field, "keyword", "eq", [tok.value]), tok)
            rest = node["args"] if node["node"] == "and" else [node]
            node = self.at({"node": "and", "args": [category, *rest]}, tok)
        for branch in _flatten_or(node):  # the limit is per branch (spec/ir.md)
            self.check_depth(branch)
        return node

    def expression(self) -> Node:
        ast = self.bool_expr()
        if self.is_op("|"):
            raise self.refuse("pipes are not supported", self.tok)
        if self.tok.kind != "eof":
            raise self.error("'and', 'or' or end of condition")
        node = self.condition(ast)
        self.check_depth(node)
        return node

    # ------------------------------------------------------------ sequences and samples

    def statement(self) -> tuple[str, Any]:
        """A whole query: ("event", NODE) for a single-event query, else ("sequence", parts)
        or ("sample", parts) (spec/sequences.md)."""
        tok = self.tok
        word = tok.text.lower() if tok.kind == "ident" else ""
        if word not in ("sequence", "sample"):
            return "event", self.query()
        self._lexer.missing_stages = True  # nothing past this token is lexed yet
        self.next()
        return word, self.sequence(tok) if word == "sequence" else self.sample(tok)

    def sequence(self, head: Token) -> dict[str, Any]:
        keys = self.join_keys() if self.is_keyword("by") else []
        maxspan: int | None = None
        if self.is_keyword("with"):
            self.next()
            if not self.is_keyword("maxspan"):
                raise self.error("'maxspan'")
            self.next()
            if not self.is_op("=") and not self.is_op("=="):
                raise self.error("'='")
            self.next()
            maxspan = self.maxspan()
            if self.is_keyword("by"):
                raise self.refuse("Please specify sequence [by] before [with] not after", head)
        counts: list[int] = []
        stages: list[dict[str, Any]] = []
        first_missing: Token | None = None
        while self.is_op("[") or self.is_op("!["):
            missing = self.tok if self.is_op("![") else None
            first_missing = first_missing or missing
            expr, own = self.stage(keys, counts)
            runs = self.runs() if self.is_keyword("with") else 1
            stage = {"expr": expr, "keys": own, "missing": missing is not None}
            stages.extend(copy.deepcopy(stage) for _ in range(runs))
        if not stages:
            raise self.error("'[' (a stage)")
        until = None
        if self.is_keyword("until"):
            self.next()
            if self.is_op("!["):
                # Elasticsearch ignores the `!` there (its issue 132787): refused, not guessed.
                raise self.refuse("missing events ('![') are not supported in [until]", self.tok)
            if not self.is_op("["):
                raise self.error("'['")
            expr, own = self.stage(keys, counts)
            until = {"expr": expr, "keys": own}
        if len(stages) < 2:
            raise self.refuse(
                f"A sequence requires a minimum of 2 queries, found [{len(stages)}]", head
            )
        if first_missing is not None:
            if maxspan is None:
                raise self.refuse(
                    "[with maxspan] is required for a sequence with missing events ('![')",
                    first_missing,
                )
            if all(stage["missing"] for stage in stages):
                raise self.refuse(
                    "A sequence requires at least one positive event query (not '![')", head
                )
        pipes = self.pipes()
        return {"maxspan_ms": maxspan, "stages": stages, "until": until, "pipes": pipes}

    def sample(self, head: Token) -> dict[str, Any]:
        keys = self.join_keys() if self.is_keyword("by") else []
        if self.is_keyword("with"):
            raise self.refuse("[with maxspan] is not supported in samples", self.tok)
        counts: list[int] = []
        stages: list[dict[str, Any]] = []
        while self.is_op("[") or self.is_op("!["):
            if self.is_op("!["):
                raise self.refuse("missing events ('![') are not supported in samples", self.tok)
            expr, own = self.stage(keys, counts)
            if self.is_keyword("with"):
                raise self.refuse("[with runs] is not supported in samples", self.tok)
            stages.append({"expr": expr, "keys": own})
        if not stages:
            raise self.error("'[' (a stage)")
        if self.is_keyword("until"):
            raise self.refuse("[until] is not supported in samples", self.tok)
        if len(stages) < 2:
            raise self.refuse(
                f"A sample requires a minimum of 2 queries, found [{len(stages)}]", head
            )
        return {"stages": stages, "pipes": self.pipes()}

    def stage(
        self, parent: list[dict[str, Any]], counts: list[int]
    ) -> tuple[Node, list[dict[str, Any]]]:
        """`[CATEGORY where COND] [by KEYS]`: the stage's condition and its full join keys
        (FIELDREFs, `"optional": true` for a key written `?field`)."""
        opening = self.next()  # `[` or `![`
        tok = self.tok
        if tok.kind != "ident" or tok.text.startswith(("?", "`")):
            raise self.error("'any where' or '<category> where'")
        self.next()
        if not self.is_keyword("where"):
            raise self.error("'where'")
        self.next()
        self.in_stage = True
        ast = self.bool_expr()
        self.in_stage = False
        if not self.is_op("]"):
            raise self.error("'and', 'or' or ']'")
        self.next()
        node = self.condition(ast)
        if tok.text.lower() != "any":
            category = self.at(_pred(self.category_field, "keyword", "eq", [tok.value]), tok)
            rest = node["args"] if node["node"] == "and" else [node]
            node = self.at({"node": "and", "args": [category, *rest]}, tok)
        keys_tok = self.tok if self.is_keyword("by") else opening
        own = self.join_keys() if self.is_keyword("by") else []
        if counts and len(own) + len(parent) != counts[0]:
            raise self.refuse(
                "Inconsistent number of join keys specified; "
                f"expected [{counts[0] - len(parent)}] but found [{len(own)}]",
                keys_tok,
            )
        counts.append(len(own) + len(parent))
        self.check_depth(node)
        return node, [dict(k) for k in [*parent, *own]]

    def join_keys(self) -> list[dict[str, Any]]:
        """`by KEY, ...`: fields (`?field`: optional, its value may be null)."""
        self.next()  # by
        keys = []
        while True:
            tok = self.tok
            if tok.kind != "ident" or tok.text.lower() in _KEYWORDS:
                raise self.error("a field name")
            ast = self.primary()
            if ast.kind != "field":
                raise self.refuse(f"join keys must be field names, found [{self.src(ast)}]", tok)
            field = ast.value
            key = {"field": field, "field_type": self.field_type(field)}
            if tok.value.startswith("?"):
                key["optional"] = True  # absent means false (spec/sequences.md, IR)
            keys.append(key)
            if self.tok.kind != "comma":
                return keys
            self.next()

    def maxspan(self) -> int:
        """`N(ms|s|m|h|d)` as milliseconds (Elasticsearch's checks and words)."""
        tok = self.tok
        if tok.kind != "number":
            raise self.error("a time span (such as 5m)")
        self.next()
        match = _re(r"([0-9]*\.?[0-9]*(?:[eE][+-]?[0-9]+)?)(.*)").fullmatch(tok.text)
        assert match is not None  # every text matches
        number, unit = match.groups()
        if not _re(r"[0-9]+").fullmatch(number):
            raise self.refuse(
                f"Decimal time interval [{number}] not supported; please use an positive integer",
                tok,
            )
        if not unit and self.tok.kind == "ident" and not self.is_keyword("by"):
            unit = self.next().text  # `5 m`: Elasticsearch's grammar allows the space
        value = int(number)
        if value <= 0:
            raise self.refuse(f"A positive maxspan value is required; found [{value}]", tok)
        if not unit:
            raise self.refuse(f"No time unit specified, did you mean [s] as in [{number}s]?", tok)
        if unit not in _DURATION_MS:
            raise self.refuse(
                f"Unrecognized time unit [{unit}] in [{number}{unit}], please specify one of "
                "[ms, s, m, h, d]",
                tok,
            )
        millis = value * _DURATION_MS[unit]
        if millis > 2**63 - 1:
            raise self.refuse(f"maxspan {number}{unit} is too large", tok)
        return millis

    def runs(self) -> int:
        """`with runs=N` after a stage: 1 to MAX_RUNS."""
        self.next()  # with
        if not self.is_keyword("runs"):
            raise self.error("'runs'")
        self.next()
        if not self.is_op("=") and not self.is_op("=="):
            raise self.error("'='")
        self.next()
        tok = self.tok
        if tok.kind != "number":
            raise self.error("a number")
        self.next()
        if not _re(r"[0-9]+").fullmatch(tok.text) or not 1 <= int(tok.text) <= MAX_RUNS:
            raise self.refuse(
                f"A runs value between 1 and {MAX_RUNS} is required; found [{tok.text}]", tok
            )
        return int(tok.text)

    def pipes(self) -> list[dict[str, Any]]:
        """`| head N`, `| tail N` (Elasticsearch's other pipes are refused in its words)."""
        pipes = []
        while self.is_op("|"):
            bar = self.next()
            tok = self.tok
            if tok.kind != "ident":
                raise self.error("a pipe name")
            self.next()
            name = tok.text
            if name not in ("head", "tail"):
                if name in ("count", "filter", "sort", "unique", "unique_count"):
                    raise self.refuse(f"Pipe [{name}] is not supported", bar)
                raise self.refuse(f"Unrecognized pipe [{name}]", tok)
            args: list[_Ast] = []
            if not (self.is_op("|") or self.tok.kind == "eof"):
                args.append(self.bool_expr())
                while self.tok.kind == "comma":
                    self.next()
                    args.append(self.bool_expr())
            if len(args) != 1:
                raise self.refuse(
                    f"Pipe [{name}] expects exactly one argument but found [{len(args)}]", bar
                )
            arg = args[0].inner()
            value = arg.value[0] if arg.kind == "lit" else None
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 2**31 - 1:
                raise self.refuse(
                    f"Pipe [{name}] expects a positive integer but found [{self.src(args[0])}]",
                    args[0].first,
                )
            pipes.append({"pipe": name, "n": value})
        if self.tok.kind != "eof":
            raise self.error("'|' or end of query")
        return pipes

    def bool_expr(self) -> _Ast:
        """`or` of `and`s of operands, each chain one n-ary node (a loop, not recursion)."""
        ors: list[_Ast] = []
        ands = [self.not_operand()]
        while True:
            if self.is_keyword("and"):
                self.next()
                ands.append(self.not_operand())
            elif self.is_keyword("or"):
                self.next()
                ors.append(self._join("and", ands))
                ands = [self.not_operand()]
            else:
                break
        ors.append(self._join("and", ands))
        return self._join("or", ors)

    def _join(self, kind: str, args: list[_Ast]) -> _Ast:
        if len(args) == 1:
            return args[0]
        return _Ast(kind, args[0].first, args[0].start, args[-1].end, args=args)

    def not_operand(self) -> _Ast:
        nots = []  # a loop, not recursion: `not not … x` may be long
        while self.is_keyword("not"):
            nots.append(self.next())
        operand = self.value_expr()
        if operand.kind == "field" and not (
            self.tok.kind in ("eof", "rparen", "comma")
            or self.is_keyword("and")
            or self.is_keyword("or")
            or self.is_op("|")
            or (self.in_stage and self.is_op("]"))
        ):
            raise self.error(
                "an operator ('==', '!=', '<', '<=', '>', '>=', ':', 'in', 'in~', 'like', "
                "'like~', 'regex' or 'regex~')"
            )
        if len(nots) % 2 == 0:
            return operand  # `not not x` is `x`
        return _Ast("not", nots[0], nots[0].start, operand.end, args=[operand])

    def value_expr(self) -> _Ast:
        """Operands joined by arithmetic and comparison operators, by precedence."""
        operands = [self.unary()]
        ops: list[Token] = []
        compared = False

        def reduce() -> None:
            op = ops.pop()
            right = operands.pop()
            left = operands.pop()
            operands.append(self._node("bin", op, left.start, right.end, op.value, [left, right]))

        while (self.tok.kind == "op" and self.tok.value in _BINARY) or self.is_op("="):
            tok = self.tok
            if tok.value == "=":
                raise self.refuse("'=' is not supported: use '=='", tok)
            prec = _BINARY[tok.value]
            if prec == 1:
                if compared:
                    raise self.refuse(
                        "chained comparisons are not supported: join them with 'and'", tok
                    )
                compared = True
            while ops and _BINARY[ops[-1].value] >= prec:
                reduce()
            ops.append(self.next())
            operands.append(self.unary())
        while ops:
            reduce()
        return operands[0]

    def _node(
        self, kind: str, tok: Token, start: int, end: int, value: Any, args: list[_Ast]
    ) -> _Ast:
        node = _Ast(kind, tok, start, end, value, args)
        if node.depth > MAX_DEPTH + 1:  # a bound on what is compiled recursively
            raise self.refuse(
                f"the expression nests more than {MAX_DEPTH} levels deep "
                f"(at most {MAX_DEPTH} are supported)",
                tok,
            )
        return node

    def unary(self) -> _Ast:
        signs = []
        while self.is_op("-") or self.is_op("+"):
            signs.append(self.next())
        node = self.predicated()
        for sign in reversed(signs):
            if sign.value == "+":
                node = self._node("neg", sign, sign.start, node.end, "+", [node])
            elif (
                node.kind == "lit"
                and isinstance(node.value[0], (int, float))
                and not (isinstance(node.value[0], bool))
            ):
                # `-5` is the literal -5 (Elasticsearch folds a minus on a number).
                value, text = node.value
                text = text[1:] if text.startswith("-") else "-" + text
                node = _Ast("lit", sign, sign.start, node.end, (-value, text))
            else:
                node = self._node("neg", sign, sign.start, node.end, "-", [node])
        return node

    def predicated(self) -> _Ast:
        """A primary and its optional `in`, `:`, `like`, `regex` (and `not in`...)."""
        node = self.primary()
        negate: Token | None = None
        if self.is_keyword("not") and any(
            self.is_keyword(w, self.peek()) for w in ("in", "like", "regex")
        ):
            negate = self.next()
        tok = self.tok
        if self.is_keyword("in"):
            self.next()
            word = "in~" if self._tilde_follows(tok) else "in"
            if word == "in~":
                self.next()
            items, end = self.value_list()
            node = self._node("in", tok, node.start, end, word, [node, *items])
        elif self.is_op(":") and not self.seq_patterns():
            # `x : 1`, `x : true`: with a number or boolean, Elasticsearch's `:` is an
            # equality (its wildcard form only applies to strings).
            self.next()
            items, end = self.seq_constants()
            if len(items) == 1:
                node = self._node("bin", tok, node.start, end, "==", [node, items[0]])
            else:
                node = self._node("in", tok, node.start, end, "in", [node, *items])
        elif self.is_op(":") or self.is_keyword("like") or self.is_keyword("regex"):
            self.next()
            word = tok.text.lower()
            if word != ":" and self._tilde_follows(tok):
                self.next()
                word += "~"
            patterns, end = self.patterns()
            node = self._node("pat", tok, node.start, end, word, [node, *patterns])
        elif negate is not None:
            raise self.error("'in', 'like' or 'regex'")
        if negate is not None:
            node = _Ast("not", node.first, node.start, node.end, args=[node])
        return node

    def open_paren(self) -> Token:
        if self.parens >= MAX_DEPTH:
            raise self.refuse(
                f"parentheses nest more than {MAX_DEPTH} levels deep "
                f"(at most {MAX_DEPTH} are supported)",
                self.tok,
            )
        self.parens += 1
        return self.expect("lparen", "'('")

    def close_paren(self, expected: str) -> Token:
        tok = self.expect("rparen", expected)
        self.parens -= 1
        return tok

    def value_list(self) -> tuple[list[_Ast], int]:
        """`(expression, ...)` of `in`."""
        if self.tok.kind != "lparen":
            raise self.error("'('")
        self.open_paren()
        if self.tok.kind == "rparen":
            raise self.error("a literal")
        items = [self.bool_expr()]
        while self.tok.kind == "comma":
            self.next()
            items.append(self.bool_expr())
        return items, self.close_paren("',' or ')'").end

    def patterns(self) -> tuple[list[_Ast], int]:
        if self.tok.kind != "lparen":
            lit = self.pattern()
            return [lit], lit.end
        self.open_paren()
        items = [self.pattern()]
        while self.tok.kind == "comma":
            self.next()
            items.append(self.pattern())
        return items, self.close_paren("',' or ')'").end

    def seq_patterns(self) -> bool:
        """Whether the `:` at the current token is followed by string patterns (else by
        number or boolean constants); a list mixing both is refused."""
        ahead = 1
        if self.peek(ahead).kind != "lparen":
            return not self.is_constant(ahead)
        kinds = set()
        ahead += 1
        while True:
            kinds.add(self.is_constant(ahead))
            ahead += 2 if self.is_op("-", self.peek(ahead)) else 1
            if self.peek(ahead).kind != "comma":
                break
            ahead += 1
        if len(kinds) > 1:
            raise self.refuse(
                "':' with both string and non-string constants is not supported", self.tok
            )
        return not kinds.pop()

    def is_constant(self, ahead: int) -> bool:
        """A number (optionally negative) or a boolean at `ahead` tokens from here."""
        tok = self.peek(ahead)
        if self.is_op("-", tok):
            tok = self.peek(ahead + 1)
        return tok.kind == "number" or (
            tok.kind == "ident" and tok.text.lower() in ("true", "false")
        )

    def seq_constants(self) -> tuple[list[_Ast], int]:
        if self.tok.kind != "lparen":
            lit = self.seq_constant()
            return [lit], lit.end
        self.open_paren()
        items = [self.seq_constant()]
        while self.tok.kind == "comma":
            self.next()
            items.append(self.seq_constant())
        return items, self.close_paren("',' or ')'").end

    def seq_constant(self) -> _Ast:
        """A number (`-` allowed) or a boolean after `:`."""
        sign = self.next() if self.is_op("-") else None
        if (sign and self.tok.kind != "number") or not self.is_constant(0):
            raise self.error("a number" if sign else "a literal")
        lit = self.primary()
        if sign is None:
            return lit
        value, text = lit.value
        return _Ast("lit", sign, sign.start, lit.end, (-value, "-" + text), [])

    def pattern(self) -> _Ast:
        tok = self.tok
        if tok.kind != "string":
            raise self.error("a string literal")
        self.next()
        return _Ast("lit", tok, tok.start, tok.end, (tok.value, tok.text))

    def primary(self) -> _Ast:
        tok = self.tok
        if tok.kind == "lparen":
            self.open_paren()
            inner = self.bool_expr()
            end = self.close_paren("')'").end
            return _Ast("paren", tok, tok.start, end, args=[inner])
        if tok.kind == "string":
            self.next()
            return _Ast("lit", tok, tok.start, tok.end, (tok.value, tok.text))
        if tok.kind == "number":
            self.next()
            return _Ast("lit", tok, tok.start, tok.end, (self.number(tok), tok.text))
        if tok.kind == "ident" and tok.text.lower() in ("true", "false", "null"):
            self.next()
            word = tok.text.lower()
            value = None if word == "null" else word == "true"
            return _Ast("lit", tok, tok.start, tok.end, (value, word))
        if tok.kind != "ident" or tok.text.lower() in _KEYWORDS:
            after = self.tokens[self.i - 1] if self.i else tok
            if after.kind == "op" or after.kind == "comma" or self.is_keyword("in", after):
                raise self.error("a literal, a field name, a function or '('")
            raise self.error("a field name, a function, 'not' or '('")
        nxt = self.peek()
        if nxt.kind == "lparen" or (self.is_op("~", nxt) and self.peek(2).kind == "lparen"):
            return self.call()
        self.next()
        field = tok.value[1:] if tok.value.startswith("?") else tok.value  # ?optional
        if not field:
            raise self.refuse("expected a field name after '?'", tok)
        return _Ast("field", tok, tok.start, tok.end, field)

    def number(self, tok: Token) -> int | float:
        if not _re(_NUMBER).fullmatch(tok.text):
            raise self.refuse(f"invalid number {tok.text!r}", tok)
        if _re(r"[0-9]+").fullmatch(tok.text):
            value = int(tok.text)
            if value > 2**63 - 1:
                raise self.refuse(f"number {tok.text} is too large", tok)
            return value
        number = float(tok.text)
        if number in (float("inf"), float("-inf")):
            raise self.refuse(f"number {tok.text} is too large", tok)
        return number

    def call(self) -> _Ast:
        name_tok = self.next()
        name = name_tok.value
        if self._tilde_follows(name_tok):
            self.next()
            name += "~"
        self.open_paren()
        args: list[_Ast] = []
        if self.tok.kind != "rparen":
            args.append(self.bool_expr())
            while self.tok.kind == "comma":
                self.next()
                args.append(self.bool_expr())
        end = self.close_paren("',' or ')'").end
        return self._node("call", name_tok, name_tok.start, end, name, args)

    # ------------------------------------------------------------ compiling

    def condition(self, ast: _Ast) -> Node:
        """A boolean AST as an IR node: and/or/not nodes over preds and exprs."""
        ast = ast.inner()
        kind = ast.kind
        if kind in ("and", "or"):
            args: list[Node] = []
            for child in ast.args:
                node = self.condition(child)
                args.extend(node["args"] if node["node"] == kind else [node])
            return self.at({"node": kind, "args": args}, ast.first)
        simplified = self.boolean_equals(ast)
        if simplified is not None:
            return self.condition(simplified)
        if kind == "not":
            node = self.condition(ast.args[0])
            if node["node"] == "not":
                inner: Node = node["arg"]  # `not (a != 1)` is `a == 1`
                return inner
            # Over an expression too: Elasticsearch's script loops over the fields' values
            # and negates the loop's answer (Scripts.docValuesRewrite puts `not` outside), so
            # `not length(a) > 3` holds when `a` is missing or no value is longer than 3.
            if node["node"] == "expr" and node["text"] == self.src(ast):
                # `a not in (...)`: the source text is the negation's, not the expression's.
                node = {**node, "text": _render(node["expr"], 0)}
            return self.at({"node": "not", "arg": node}, ast.tok)
        return self.at(self.leaf(ast), ast.first)

    def boolean_equals(self, ast: _Ast) -> _Ast | None:
        """`x == true` is `x`, `x == false` is `not x` (and `!=` the reverse) when x is a
        boolean function or operator, not a field: Elasticsearch's optimizer rewrites them so
        (BooleanFunctionEqualsElimination), so `not x` then is a query's must_not."""
        if ast.kind != "bin" or ast.value not in ("==", "!="):
            return None
        left, right = ast.args
        if left.inner().kind == "lit":
            left, right = right, left
        lit = right.inner()
        if lit.kind != "lit" or not isinstance(lit.value[0], bool):
            return None
        if not _is_boolean_function(left.inner()):
            return None
        # Elasticsearch's verifier checks the comparison before its optimizer rewrites it.
        if self.value(left)[1] != "boolean":
            return None
        if lit.value[0] == (ast.value == "=="):
            return left
        return _Ast("not", ast.tok, ast.start, ast.end, args=[left])

    def leaf(self, ast: _Ast) -> Node:
        """A condition that is not and/or/not: a `pred` when it is a field against literals
        (spec/ir.md), else an `expr` node."""
        kind = ast.kind
        if kind == "bin" and ast.value in _COMPARISON:
            pred = self.comparison_pred(ast)
            if pred is not None:
                return pred
        elif kind == "in":
            pred = self.in_pred(ast)
            if pred is not None:
                return pred
        elif kind == "pat" and ast.args[0].inner().kind == "field":
            field_ast = ast.args[0].inner()
            field, ftype = field_ast.value, self.field_type(field_ast.value)
            op, _ = _PATTERN_OPS[ast.value]
            values = [p.value[0] for p in ast.args[1:]]
            node = self.pred(field, ftype, op, values, ast.tok, f"'{ast.value}'")
            for pattern in ast.args[1:]:
                self.regex_checked(pattern, ast.value)
            return node
        elif kind == "call":
            pred = self.call_pred(ast)
            if pred is not None:
                return pred
        elif kind == "field":
            ftype = self.field_type(ast.value)
            if ftype != "boolean":
                raise self.refuse(
                    f"a field alone ({ast.value}) is a condition only when it is boolean; "
                    f"{ast.value} is {ftype}: expected an operator",
                    ast.tok,
                )
        value, vtype = self.value(ast)
        if vtype not in ("boolean", "null"):
            raise self.refuse(
                f"condition expression needs to be boolean, found [{vtype}] ([{self.src(ast)}])",
                ast.first,
            )
        if kind == "bin" and ast.value == "!=" and value.get("fn") == "not":
            # `x != null` is `not (x == null)`, the `not` outside the values' loop as above:
            # no value of x gives null.
            other = next(a for a in ast.args if not _is_null_literal(a))
            inner = {"node": "expr", "text": f"{self.src(other)} == null", "expr": value["args"][0]}
            return {"node": "not", "arg": inner}
        return {"node": "expr", "text": self.src(ast), "expr": value}

    def field_type(self, field: str) -> str:
        return field_type(field, self.field_types)

    def comparison_pred(self, ast: _Ast) -> Node | None:
        left, right = (a.inner() for a in ast.args)
        op = ast.value
        if left.kind == "lit" and right.kind == "field":
            left, right, op = right, left, _MIRRORED[op]
        if left.kind != "field" or right.kind != "lit":
            return None
        field, ftype = left.value, self.field_type(left.value)
        if right.value[0] is None:
            if op not in ("==", "!="):
                return None  # `a < null`: never true, as an expression
            node = self.pred(field, ftype, "exists", [], ast.tok, "")
            return node if op == "!=" else {"node": "not", "arg": node}
        value = self.literal_text(right, field, ftype)
        if op in _RANGE_OPS:
            return self.pred(field, ftype, _RANGE_OPS[op], [value], ast.tok, f"'{op}'")
        node = self.pred(field, ftype, "eq", [value], ast.tok, "")
        return {"node": "not", "arg": node} if op == "!=" else node

    def in_pred(self, ast: _Ast) -> Node | None:
        subject, *items = (a.inner() for a in ast.args)
        # A null in the list matches nothing (Elasticsearch's terms query leaves it out).
        items = [item for item in items if not (item.kind == "lit" and item.value[0] is None)]
        if subject.kind != "field" or not items or any(item.kind != "lit" for item in items):
            return None
        field, ftype = subject.value, self.field_type(subject.value)
        values = [self.literal_text(item, field, ftype) for item in items]
        op = "eq_ci" if ast.value == "in~" else "eq"
        return self.pred(field, ftype, op, values, ast.tok, f"'{ast.value}'")

    def call_pred(self, ast: _Ast) -> Node | None:
        name = ast.value.rstrip("~").lower()
        insensitive = ast.value.endswith("~")
        if name not in _PRED_FUNCTIONS:
            return None
        canonical, fn, fn_ci, *_ = _FUNCTIONS[name]
        self.check_call(ast)
        args = [a.inner() for a in ast.args]
        first, rest = args[0], args[1:]
        literal = all(a.kind == "lit" and isinstance(a.value[0], str) for a in rest)
        if name == "imdsendpoint" and not (first.kind == "field" and literal):
            raise self.refuse(
                f"{canonical} takes a field and endpoint classes (string literals)", ast.tok
            )
        if first.kind != "field" or not literal:
            return None
        op = _PRED_OPS.get(fn_ci if insensitive and fn_ci else fn, "imds_endpoint")
        values = [a.value[0] for a in rest]
        field = first.value
        ftype = self.field_type(field)
        if name in _AS_WILDCARD_QUERY and _has_wildcard_chars(values[0]):
            # Elasticsearch sends `*lit*` / `*lit` as a wildcard query, unescaped: there
            # `*`, `?` and `\` in the literal are the query's own (QueryTranslator).
            self.pred(field, ftype, op, values, ast.tok, canonical + "~" * insensitive)
            op = "wildcard_query_ci" if insensitive else "wildcard_query"
            return _pred(field, ftype, op, ["*" + values[0] + _AS_WILDCARD_QUERY[name]])
        if name == "cidrmatch" and _category(ftype) not in ("ip", "string"):
            # Elasticsearch's verifier: cidrMatch reads an address or a string.
            n = len(ast.args)
            raise self.refuse(self.type_error(ast, ast.args[0], 0, n, "ip", ftype), first.tok)
        return self.pred(field, ftype, op, values, ast.tok, canonical + "~" * insensitive)

    def check_call(self, ast: _Ast) -> tuple[str, str, str, tuple[str, ...]]:
        """Name, arity and `~` of a call: (canonical name, IR fn, result type, arg kinds)."""
        name = ast.value.rstrip("~")
        insensitive = ast.value.endswith("~")
        spec = _FUNCTIONS.get(name.lower())
        if spec is None:
            raise self.refuse(f"function {name}() is not supported", ast.tok)
        canonical, fn, fn_ci, low, high, kinds, result = spec
        if insensitive:
            if fn_ci is None:
                raise self.refuse(f"{canonical} has no case-insensitive (~) form", ast.tok)
            fn = fn_ci
        n = len(ast.args)
        if n < low or (high is not None and n > high):
            if high is None:
                wanted = f"at least {_ARITY_WORDS[low]}"
            elif low == high:
                wanted = f"exactly {_ARITY_WORDS[low]}"
            else:
                wanted = f"{_ARITY_WORDS[low]} or {_ARITY_WORDS[high]}"
            plural = "argument" if wanted.endswith("one") else "arguments"
            raise self.refuse(
                f"error building [{canonical}]: expects {wanted} {plural}, found {n}", ast.tok
            )
        return canonical, fn, result, kinds

    def pred(
        self, field: str, ftype: str, op: str, values: list[str], tok: Token, shown: str
    ) -> Node:
        if (op in _KEYWORD_OPS and ftype != "keyword") or (
            op == "eq_ci" and ftype not in ("keyword", "ip")
        ):
            raise self.refuse(f"{shown} is not supported on {ftype}-typed field {field}", tok)
        if op == "imds_endpoint":
            from .reference.endpoint import CLASSES

            for value in values:
                if value not in CLASSES:
                    raise self.refuse(
                        f"{value!r} is not an endpoint class ({', '.join(sorted(CLASSES))})", tok
                    )
        elif op == "cidr":
            from .reference.ip import parse_cidr

            for value in values:
                if parse_cidr(value) is None:
                    raise self.refuse(f"{value!r} is not a CIDR block (like 10.0.0.0/8)", tok)
        return _pred(field, ftype, op, values)

    def literal_text(self, lit: _Ast, field: str, ftype: str) -> str:
        """A literal as a pred holds it (its text as written), refused when the field's type
        cannot read it (Elasticsearch's query would fail on it)."""
        value, text = lit.value
        shown = quote(value) if isinstance(value, str) else text
        out = value if isinstance(value, str) else text
        reason = _unreadable(ftype, value, out)
        if reason is not None:
            raise self.refuse(f"{shown} is not a valid {reason} for {field}", lit.tok)
        return out

    def regex_checked(self, lit: _Ast, word: str) -> str:
        pattern: str = lit.value[0]
        if word.startswith("regex"):
            from .reference.lucene_regex import LuceneRegex

            try:
                LuceneRegex(pattern, word.endswith("~"))
            except ValueError as exc:
                raise self.refuse(str(exc), lit.tok) from None
        return pattern

    # ------------------------------------------------------------ values

    def value(self, ast: _Ast) -> tuple[dict[str, Any], str]:
        """An AST as an expression VALUE (spec/ir.md) and its type, checked as
        Elasticsearch's verifier checks it."""
        ast = ast.inner()
        kind = ast.kind
        if kind == "lit":
            value = ast.value[0]
            return {"lit": value}, _literal_type(value)
        if kind == "field":
            ftype = self.field_type(ast.value)
            return {"field": ast.value, "field_type": ftype}, ftype
        if kind in ("and", "or", "not"):
            args = [
                self.checked(a, "boolean", ast, i, len(ast.args)) for i, a in enumerate(ast.args)
            ]
            return {"fn": kind, "args": args}, "boolean"
        if kind == "neg":
            (arg,) = ast.args
            value, vtype = self.checked_typed(arg, "number", ast, 0, 1)
            if ast.value == "+":
                return value, vtype
            return {"fn": "negate", "args": [value]}, vtype
        if kind == "bin" and ast.value in _ARITHMETIC:
            (left, ltype), (right, rtype) = (
                self.checked_typed(a, "number", ast, i, 2) for i, a in enumerate(ast.args)
            )
            return {"fn": _ARITHMETIC[ast.value], "args": [left, right]}, _arith_type(ltype, rtype)
        if kind == "bin":
            nulls = [_is_null_literal(a) for a in ast.args]
            if ast.value in ("==", "!=") and any(nulls):
                # Elasticsearch reads `x == null` as "x is null" (true or false, never null).
                other = ast.args[1] if nulls[0] else ast.args[0]
                value = {"fn": "is_null", "args": [self.value(other)[0]]}
                return (value if ast.value == "==" else {"fn": "not", "args": [value]}), "boolean"
            return {"fn": _COMPARISON[ast.value], "args": self.compared(ast, ast.args)}, "boolean"
        if kind == "in":
            fn = "in_ci" if ast.value == "in~" else "in"
            if fn == "in_ci":
                args = [
                    self.checked(a, "string", ast, i, len(ast.args)) for i, a in enumerate(ast.args)
                ]
            else:
                args = self.compared(ast, ast.args)
            return {"fn": fn, "args": args}, "boolean"
        if kind == "pat":
            subject = self.checked(ast.args[0], "string", ast, 0, 1)
            patterns = [{"lit": self.regex_checked(p, ast.value)} for p in ast.args[1:]]
            return {"fn": _PATTERN_OPS[ast.value][1], "args": [subject, *patterns]}, "boolean"
        assert kind == "call", kind
        return self.call_value(ast)

    def call_value(self, ast: _Ast) -> tuple[dict[str, Any], str]:
        canonical, fn, result, kinds = self.check_call(ast)
        if not fn:
            raise self.refuse(f"{canonical}() as a value is not supported", ast.tok)
        args = []
        n = len(ast.args)
        for i, arg in enumerate(ast.args):
            want = kinds[min(i, len(kinds) - 1)]
            inner = arg.inner()
            if want in ("bool_const", "cidr"):
                literal = inner.kind == "lit"
                if not literal:
                    raise self.refuse(
                        f"{_ordinal(i, n)}argument of [{self.src(ast)}] must be a constant, "
                        f"received [{self.src(arg)}]",
                        arg.tok,
                    )
                want = "boolean" if want == "bool_const" else "string"
                if want == "string" and isinstance(inner.value[0], str):
                    from .reference.ip import parse_cidr

                    if parse_cidr(inner.value[0]) is None:
                        raise self.refuse(
                            f"{inner.value[0]!r} is not a CIDR block (like 10.0.0.0/8)", arg.tok
                        )
            if want == "ip":
                value, vtype = self.value(arg)
                if _category(vtype) not in ("ip", "string", "null"):
                    raise self.refuse(self.type_error(ast, arg, i, n, "ip", vtype), arg.tok)
                args.append(value)
            elif want == "any":
                args.append(self.value(arg)[0])
            else:
                args.append(self.checked(arg, want, ast, i, n))
        return {"fn": fn, "args": args}, result

    def checked(self, arg: _Ast, want: str, parent: _Ast, i: int, n: int) -> dict[str, Any]:
        return self.checked_typed(arg, want, parent, i, n)[0]

    def checked_typed(
        self, arg: _Ast, want: str, parent: _Ast, i: int, n: int
    ) -> tuple[dict[str, Any], str]:
        """The argument's value and type, refused unless the type is `want` (or null)."""
        value, vtype = self.value(arg)
        if vtype == "null":
            return value, vtype
        ok = _is_integer(vtype) if want == "integer" else _category(vtype) == want
        if not ok:
            raise self.refuse(self.type_error(parent, arg, i, n, want, vtype), arg.tok)
        return value, vtype

    def type_error(self, parent: _Ast, arg: _Ast, i: int, n: int, want: str, vtype: str) -> str:
        want = "numeric" if want == "number" else want
        return (
            f"{_ordinal(i, n)}argument of [{self.src(parent)}] must be [{want}], "
            f"found value [{self.src(arg)}] type [{vtype}]"
        )

    def compared(self, ast: _Ast, operands: list[_Ast]) -> list[dict[str, Any]]:
        """Operands of a comparison or `in`, which must have compatible types; a string
        literal against a date or an address is read as one (a typed literal)."""
        values = [self.value(a) for a in operands]
        typed = next((_category(t) for _, t in values if _category(t) in ("date", "ip")), None)
        out = []
        base = next((t for _, t in values if t != "null"), "null")
        for arg, (value, vtype) in zip(operands, values, strict=True):
            inner = arg.inner()
            if typed and inner.kind == "lit" and isinstance(inner.value[0], str):
                reason = _unreadable(typed, inner.value[0], inner.value[0])
                if reason is not None:
                    raise self.refuse(
                        f"{quote(inner.value[0])} is not a valid {reason} in [{self.src(ast)}]",
                        inner.tok,
                    )
                out.append({"lit": inner.value[0], "type": typed})
                continue
            if typed == "date" and inner.kind == "lit" and _category(vtype) == "number":
                # Epoch milliseconds, as a pred on a date field reads a number.
                text = inner.value[1]
                reason = _unreadable("date", inner.value[0], text)
                if reason is not None:
                    raise self.refuse(
                        f"{text} is not a valid {reason} in [{self.src(ast)}]", inner.tok
                    )
                out.append({"lit": text, "type": "date"})
                continue
            if vtype != "null" and _category(vtype) != _category(base):
                raise self.refuse(
                    f"[{self.src(ast)}]: [{self.src(operands[0])}] of type [{base}] cannot be "
                    f"compared with [{self.src(arg)}] of type [{vtype}]",
                    arg.tok,
                )
            out.append(value)
        return out


def _is_null_literal(ast: _Ast) -> bool:
    inner = ast.inner()
    return inner.kind == "lit" and inner.value[0] is None


def _is_boolean_function(ast: _Ast) -> bool:
    """An operator or function call of boolean type (not a field nor a literal)."""
    kind = ast.kind
    if kind in ("and", "or", "not", "in", "pat"):
        return True
    if kind == "bin":
        return ast.value in _COMPARISON
    if kind == "call":
        spec = _FUNCTIONS.get(ast.value.rstrip("~").lower())
        return spec is not None and spec[6] == "boolean"
    return False


def _ordinal(i: int, n: int) -> str:
    return "" if n == 1 else f"{_ORDINALS[min(i, len(_ORDINALS) - 1)]} "


def _literal_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer" if -(2**31) <= value < 2**31 else "long"
    if isinstance(value, float):
        return "double"
    return "keyword"


def _arith_type(left: str, right: str) -> str:
    if left in _INTEGER_TYPES and right in _INTEGER_TYPES:
        return "long"
    if "null" in (left, right):
        return "null" if left == right else (left if right == "null" else right)
    return "double" if "number" not in (left, right) else "number"


def _value_depth(value: dict[str, Any]) -> int:
    """Levels of an expression VALUE: a field or literal is 0, each function one more."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if "fn" in node:
            depth += 1
            stack.extend((arg, depth) for arg in node["args"])
        deepest = max(deepest, depth)
    return deepest


def _unreadable(ftype: str, value: Any, text: str) -> str | None:
    """None when a field of `ftype` can read the literal (spec/ir.md, Field types), else
    what it is not ("long value", "IP address", ...)."""
    if ftype == "keyword" or ftype == "null":
        return None
    if ftype == "ip":
        from .reference.ip import parse_ip

        return None if isinstance(value, str) and parse_ip(value) is not None else "IP address"
    if isinstance(value, bool):
        return None if ftype == "boolean" else f"{ftype} value"
    if ftype == "boolean":
        return None if value in ("true", "false", "") else "boolean value"
    if ftype == "date":
        from .timestamp import parse_event_time

        if isinstance(value, float):
            return "date"
        return None if parse_event_time(str(text)) is not None else "date"
    if not _re(_DECIMAL).fullmatch(text):
        return f"{ftype} value"
    number = decimal.Decimal(text)
    if ftype in _INTEGER_TYPES:
        low, high = _INTEGER_TYPES[ftype]
        return None if low - 1 < number < high + 1 else f"{ftype} value (out of range)"
    # The smallest magnitude that rounds to infinity in the type (round to nearest even).
    limit = _FLOAT_OVERFLOW.get(ftype)
    if not math.isfinite(float(number)) or (limit is not None and abs(number) >= limit):
        return f"{ftype} value (out of range)"
    return None


def _children(node: Node) -> list[Node]:
    if node["node"] in ("not", "nested"):  # a nested scope is one level (spec/ir.md)
        return [node["arg"]]
    return list(node.get("args", ()))


def ir_depth(node: Node) -> int:
    """Levels of an IR tree (a predicate is 1), counted without recursion."""
    deepest, stack = 0, [(node, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in _children(node))
    return deepest


def _pred(field: str, ftype: str, op: str, values: list[str]) -> Node:
    return {"node": "pred", "field": field, "field_type": ftype, "op": op, "values": values}


def parse_query(
    text: str, source: str = "<query>", field_types: Mapping[str, str] | None = None
) -> Node:
    """Parse an EQL query into an IR expression node (`field_types`: field → type, on top of
    the ECS table; spec/ir.md, Field types)."""
    return _Parser(text, source, field_types).query()


def parse_condition(
    text: str, source: str = "<condition>", field_types: Mapping[str, str] | None = None
) -> Node:
    """Parse a boolean EQL condition (no ``any where``), e.g. an allowlist entry."""
    return _Parser(text, source, field_types).expression()


def _branch_name(expr: Node, index: int) -> str:
    conjuncts = expr["args"] if expr["node"] == "and" else [expr]
    for node in conjuncts:
        if (
            node["node"] == "pred"
            and node["field"] == "event.category"
            and node["op"] == "eq"
            and len(node["values"]) == 1
        ):
            return str(node["values"][0])
    return f"branch{index + 1}"


def _flatten_or(node: Node) -> list[Node]:
    if node["node"] != "or":
        return [node]
    return [leaf for arg in node["args"] for leaf in _flatten_or(arg)]


def compile_rule(
    query: str,
    *,
    name: str,
    rule_id: str = "",
    severity: str = "",
    source: str = "<query>",
    field_types: Mapping[str, str] | None = None,
    category_field: str = "event.category",
    timestamp_field: str = "@timestamp",
    tiebreaker_field: str | None = None,
    size: int | None = None,
    max_samples_per_key: int | None = None,
) -> dict[str, Any]:
    """Compile a query into the rule IR (a JSON-serialisable dict); `field_types` maps fields
    to types on top of the ECS table (spec/ir.md, Field types). `category_field` is the field
    of `CATEGORY where`; a sequence or sample (spec/sequences.md) also takes the timestamp and
    tiebreaker fields, `size` and (samples) `max_samples_per_key`."""
    kind, parsed = _Parser(query, source, field_types, category_field).statement()
    head = {"ir_version": IR_VERSION, "id": rule_id, "name": name, "severity": severity}
    tiebreaker = None
    if tiebreaker_field is not None:
        tiebreaker = {
            "field": tiebreaker_field,
            "field_type": field_type(tiebreaker_field, field_types),
        }
    if kind == "sequence":
        body = {
            "timestamp_field": timestamp_field,
            "tiebreaker_field": tiebreaker,
            **{k: parsed[k] for k in ("maxspan_ms", "stages", "until", "pipes")},
            "size": size,
        }
        return {**head, "sequence": body}
    if kind == "sample":
        body = {
            "timestamp_field": timestamp_field,
            "tiebreaker_field": tiebreaker,
            "stages": parsed["stages"],
            "max_samples_per_key": max_samples_per_key,
            "pipes": parsed["pipes"],
            "size": size,
        }
        return {**head, "sample": body}
    exprs = _flatten_or(parsed)
    branches = []
    seen: dict[str, int] = {}
    for i, branch in enumerate(exprs):
        label = _branch_name(branch, i)
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            label = f"{label}#{seen[label]}"
        branches.append({"name": label, "expr": branch})
    return {
        "ir_version": IR_VERSION,
        "id": rule_id,
        "name": name,
        "severity": severity,
        "branches": branches,
    }


# ---------------------------------------------------------------- IR → EQL

_PLAIN_PART = r"[A-Za-z_@][A-Za-z0-9_@]*"
_FUNCTION_OF_OP = {
    "starts_with": "startsWith",
    "starts_with_ci": "startsWith~",
    "ends_with": "endsWith",
    "ends_with_ci": "endsWith~",
    "contains": "stringContains",
    "contains_ci": "stringContains~",
    "cidr": "cidrMatch",
    "imds_endpoint": "imdsEndpoint",
}
_WIDTH = 96


def quote(value: str) -> str:
    """An EQL string literal that the lexer above reads back as ``value``."""
    out = ['"']
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0:
            out.append(f"\\u{{{ord(ch):X}}}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def format_field(field: str) -> str:
    """A field path as EQL writes it; parts that are not plain names are backticked."""
    return ".".join(
        part if _re(_PLAIN_PART).fullmatch(part) and part.lower() not in _KEYWORDS else f"`{part}`"
        for part in field.split(".")
    )


def _literal_texts(node: Node) -> list[str]:
    """The predicate's literals as EQL: numbers and booleans bare where EQL allows them."""
    if node["op"] in ("eq", "eq_ci", "lt", "lte", "gt", "gte"):
        return [
            v if _re(_NUMBER).fullmatch(v) or v in ("true", "false") else quote(v)
            for v in node["values"]
        ]
    return [quote(v) for v in node["values"]]


def _format_pred(node: Node, negated: bool = False) -> str:
    field = format_field(node["field"])
    op, values = node["op"], node["values"]
    if op == "exists":
        return f"{field} {'==' if negated else '!='} null"
    if op in _AFFIX_AS_WILDCARD:
        # EQL reads `*`, `?` and `\` in their literal as wildcard syntax: escaped here.
        values = [_escape_wildcard(v) for v in values]
        node = {**node, "values": values}
    elif op in ("wildcard_query", "wildcard_query_ci") and node["field_type"] == "keyword":
        call = _affix_call(values)
        if call is not None:  # what the compiler made of endsWith/stringContains
            text = f"{call[0]}{'~' * op.endswith('_ci')}({field}, {quote(call[1])})"
            return f"not {text}" if negated else text
    listed = ", ".join(_literal_texts(node))
    if op in _FUNCTION_OF_OP:
        calls = [f"{_FUNCTION_OF_OP[op]}({field}, {quote(v)})" for v in values]
        if op in ("cidr", "imds_endpoint") or len(values) == 1:
            text = f"{_FUNCTION_OF_OP[op]}({field}, {listed})"
        else:  # several literals: any of them (the IR allows it, EQL's function does not)
            text = "(" + " or ".join(calls) + ")"
        return f"not {text}" if negated else text
    if op in _RANGE_WORDS:
        text = f"{field} {_RANGE_WORDS[op]} {listed}"
        return f"not {text}" if negated else text
    if op in _KQL_CALLS:  # KQL's ops (spec/kql.md) have no EQL form: shown as calls
        text = f"{_KQL_CALLS[op]}({field}, {listed})"
        return f"not {text}" if negated else text
    word = {
        "eq": "in",
        "eq_ci": "in~",
        "wildcard": ":",
        "like": "like",
        "regex": "regex",
        "regex_ci": "regex~",
    }[op]
    if op == "eq" and len(values) == 1:
        return f"{field} {'!=' if negated else '=='} {listed}"
    if op in ("wildcard", "like", "regex", "regex_ci") and len(values) == 1:
        text = f"{field} {word} {listed}"
    else:
        text = f"{field} {word} ({listed})"
    return f"not {text}" if negated else text


_AFFIX_AS_WILDCARD = ("ends_with", "ends_with_ci", "contains", "contains_ci")


# What Elasticsearch's wildcard query reads as its own syntax.
_WILDCARD_CHARS = "*?\\"


def _has_wildcard_chars(text: str) -> bool:
    return any(c in _WILDCARD_CHARS for c in text)


def _escape_wildcard(text: str) -> str:
    return "".join("\\" + c if c in _WILDCARD_CHARS else c for c in text)


def _affix_call(values: list[str]) -> tuple[str, str] | None:
    r"""The `stringContains`/`endsWith` call (name, literal) that compiles to this one
    `wildcard_query` pattern (`*lit*`, `*lit`, the literal holding `*`, `?` or `\`), if any."""
    if len(values) != 1 or not values[0].startswith("*"):
        return None
    inner = values[0][1:]
    slashes = len(inner[:-1]) - len(inner[:-1].rstrip("\\"))
    if inner.endswith("*") and slashes % 2 == 0 and _has_wildcard_chars(inner[:-1]):
        return "stringContains", inner[:-1]
    if _has_wildcard_chars(inner):
        return "endsWith", inner
    return None


_RANGE_WORDS = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
_KQL_CALLS = {
    "match": "match",
    "match_phrase": "matchPhrase",
    "wildcard_query": "wildcardQuery",
    "wildcard_query_ci": "wildcardQuery~",
}
# Expression functions printed as operators: fn → (operator, precedence).
_OPERATOR_OF_FN = {
    **{fn: (op, _BINARY[op]) for op, fn in _ARITHMETIC.items()},
    **{fn: (op, 1) for op, fn in _COMPARISON.items()},
}
_PATTERN_WORDS = {"wildcard": ":", "like": "like", "like_ci": "like~", "regex": "regex"}
_PATTERN_WORDS["regex_ci"] = "regex~"
_CALL_OF_FN = {
    fn: name + "~" * ci
    for name, fn_plain, fn_ci, *_ in _FUNCTIONS.values()
    for fn, ci in ((fn_plain, False), (fn_ci, True))
    if fn and fn not in _OPERATOR_OF_FN
}


def _value_fields(value: dict[str, Any], out: dict[str, str]) -> dict[str, str]:
    """Field → field_type of every field an expression VALUE names."""
    stack = [value]
    while stack:
        node = stack.pop()
        if "field" in node:
            out[node["field"]] = node["field_type"]
        stack.extend(node.get("args", ()))
    return out


def _format_expr(node: Node) -> str:
    """An `expr` node as EQL: its text when that compiles back to the same node (it does for
    what the compiler wrote), else the expression printed from its tree."""
    text = str(node.get("text", ""))
    try:
        again = parse_condition(text, field_types=_value_fields(node["expr"], {}))
    except EqlError:
        again = None
    if again == node:
        return text
    return _render(node["expr"], 0)


def _render(value: dict[str, Any], context: int) -> str:
    """An expression VALUE as EQL; parenthesised when it binds looser than `context` (0:
    anything, 1: a comparison operand, 2/3: arithmetic, 4: a primary)."""
    if "lit" in value:
        lit = value["lit"]
        if isinstance(lit, str):
            return quote(lit)
        text = json.dumps(lit)
        if isinstance(lit, float):
            text = repr(lit)
        return f"({text})" if text.startswith("-") and context >= 4 else text
    if "field" in value:
        return format_field(str(value["field"]))
    fn, args = value["fn"], value["args"]
    if fn in _OPERATOR_OF_FN:
        op, prec = _OPERATOR_OF_FN[fn]
        # Left-associative: the right operand of `a - (b - c)` keeps its parentheses.
        text = f"{_render(args[0], prec)} {op} {_render(args[1], prec + 1)}"
        return f"({text})" if context > prec or (prec == 1 and context == 1) else text
    if fn == "is_null":
        text = f"{_render(args[0], 2)} == null"
        return f"({text})" if context >= 1 else text
    if fn == "negate":
        # `-(5)`, not `-5`: a minus on a number literal is the negative literal.
        operand = _render(args[0], 4)
        text = f"-({operand})" if "lit" in args[0] and operand[0] != "(" else f"-{operand}"
        return f"({text})" if context >= 4 else text
    if fn in ("in", "in_ci"):
        items = ", ".join(_render(a, 0) for a in args[1:])
        text = f"{_render(args[0], 4)} {'in~' if fn == 'in_ci' else 'in'} ({items})"
    elif fn in _PATTERN_WORDS:
        patterns = ", ".join(_render(a, 0) for a in args[1:])
        text = f"{_render(args[0], 4)} {_PATTERN_WORDS[fn]} ({patterns})"
    elif fn in ("and", "or"):
        return "(" + f" {fn} ".join(_render(a, 1) for a in args) + ")"
    elif fn == "not":
        text = f"not {_render(args[0], 4)}"
        return f"({text})" if context else text
    else:
        return f"{_CALL_OF_FN[fn]}({', '.join(_render(a, 0) for a in args)})"
    return f"({text})" if context >= 4 else text


def _inline(node: Node, parent: str = "") -> str:
    kind = node["node"]
    if kind == "pred":
        return _format_pred(node)
    if kind == "expr":
        return _format_expr(node)
    if kind == "nested":  # display only: EQL has no nested scopes (spec/ir.md)
        return f"nested({format_field(node['path'])}, {_inline(node['arg'])})"
    if kind == "not":
        arg = node["arg"]
        if arg["node"] == "pred":
            return _format_pred(arg, negated=True)
        return f"not {_inline(arg, 'not')}"
    if not node["args"]:
        raise ValueError(f"an empty {kind!r} node has no EQL form")
    text = f" {kind} ".join(_inline(arg, kind) for arg in node["args"])
    # Parentheses keep the tree's shape: an `and` inside an `and` stays one child.
    return f"({text})" if parent in ("not", kind) or (parent == "and" and kind == "or") else text


def _lines(node: Node, indent: int, parent: str = "") -> list[str]:
    """The node at `indent`, broken over lines when it does not fit."""
    pad = " " * indent
    text = _inline(node, parent)
    kind = node["node"]
    if len(pad) + len(text) > _WIDTH and text.endswith(")") and " (" in text:
        pred = node if kind == "pred" else node.get("arg", {})
        if pred.get("node") == "pred" and pred["op"] in ("eq", "eq_ci", "wildcard", "like"):
            head = text[: text.index(" (") + 2]
            rows: list[str] = []
            for value in _literal_texts(pred):
                if rows and len(pad) + 2 + len(rows[-1]) + len(value) + 2 <= _WIDTH:
                    rows[-1] += f" {value},"
                else:
                    rows.append(f"{value},")
            rows[-1] = rows[-1][:-1]
            return [pad + head, *(f"{pad}  {row}" for row in rows), pad + ")"]
    if kind == "nested" and len(pad) + len(text) > _WIDTH:
        inner = _lines(node["arg"], indent + 2)
        return [f"{pad}nested({format_field(node['path'])},", *inner, pad + ")"]
    if len(pad) + len(text) <= _WIDTH or kind not in ("and", "or"):
        if kind == "not" and node["arg"]["node"] in ("and", "or"):
            inner = _lines(node["arg"], indent, "not")
            if len(inner) > 1:
                return [pad + "not " + inner[0].lstrip(), *inner[1:]]
        return [pad + text]
    wrapped = parent in ("not", kind) or (parent == "and" and kind == "or")
    inner_indent = indent + 2 if wrapped else indent
    out = [pad + "("] if wrapped else []
    args = node["args"]
    for i, arg in enumerate(args):
        lines = _lines(arg, inner_indent, kind)
        if i < len(args) - 1:
            lines[-1] += f" {kind}"
        out.extend(lines)
    if wrapped:
        out.append(pad + ")")
    return out


def format_condition(node: Node) -> str:
    """An IR expression as EQL text (parse_condition reads it back to the same tree)."""
    return "\n".join(line.rstrip() for line in _lines(node, 0))


def inline_allowlist(ir: dict[str, Any]) -> dict[str, Any]:
    """The rule without an ``allowlist`` key, its entries appended to every branch as one
    last ``and not (<entry> or ...)`` conjunct: the same hits, the same ``matched``
    (spec/ir.md, Allowlists)."""
    entries = ir.get("allowlist") or []
    out = {k: v for k, v in ir.items() if k != "allowlist"}
    if not entries:
        return out
    arg = entries[0] if len(entries) == 1 else {"node": "or", "args": list(entries)}
    exclusion = {"node": "not", "arg": arg}
    out["branches"] = []
    for branch in ir["branches"]:
        expr = branch["expr"]
        args = expr["args"] if expr["node"] == "and" else [expr]
        out["branches"].append({**branch, "expr": {"node": "and", "args": [*args, exclusion]}})
    return out


def rule_options(ir: Mapping[str, Any]) -> dict[str, Any]:
    """The compile_rule options a sequence's or sample's IR holds besides its query (so
    ``compile_rule(format_rule(ir), **rule_options(ir), ...) == ir``)."""
    kind = rule_kind(ir)
    if kind == "event":
        return {}
    body = ir[kind]
    keys = ["timestamp_field", "size"]
    keys += ["max_samples_per_key"] if kind == "sample" else []
    tiebreaker = body["tiebreaker_field"]
    if isinstance(tiebreaker, dict):
        tiebreaker = tiebreaker["field"]
    return {**{k: body[k] for k in keys}, "tiebreaker_field": tiebreaker}


def options_text(ir: Mapping[str, Any]) -> str:
    """A sequence's or sample's search options, as --show-rule states them: what orders its
    events and bounds its results (the rule file's keys; spec/sequences.md)."""
    options = rule_options(ir)

    def limit(value: int | None) -> str:
        return "no limit" if value is None else str(value)

    parts = [
        f"time field {options['timestamp_field']}",
        f"tiebreaker {options['tiebreaker_field'] or 'none'}",
        f"size {limit(options['size'])}",
    ]
    if "max_samples_per_key" in options:
        parts.append(f"max_samples_per_key {limit(options['max_samples_per_key'])}")
    return ", ".join(parts)


def _span_text(millis: int) -> str:
    for unit, size in sorted(_DURATION_MS.items(), key=lambda item: -item[1]):
        if millis % size == 0:
            return f"{millis // size}{unit}"
    return f"{millis}ms"  # not reached: every span is whole milliseconds


def _stage_text(stage: Mapping[str, Any], indent: int, opening: str = "[") -> list[str]:
    """A stage as EQL: `[any where COND] by KEY, ?OPTIONAL_KEY, ...`."""
    condition = stage["expr"]
    pad = " " * indent
    body = _lines(condition, indent + 2)
    text = [f"{pad}{opening}any where", *body, f"{pad}]"]
    if len(pad) + len(opening) + 10 + len(body[0].strip()) + 1 <= _WIDTH and len(body) == 1:
        text = [f"{pad}{opening}any where {body[0].strip()}]"]
    if stage["keys"]:
        keys = [
            ("?" if k.get("optional") else "") + format_field(k["field"]) for k in stage["keys"]
        ]
        text[-1] += " by " + ", ".join(keys)
    return text


def _format_joined(ir: dict[str, Any]) -> str:
    kind = rule_kind(ir)
    body = ir[kind]
    head = kind
    if kind == "sequence" and body["maxspan_ms"] is not None:
        head += f" with maxspan={_span_text(body['maxspan_ms'])}"
    lines = [head]
    for stage in body["stages"]:
        lines += _stage_text(stage, 2, "![" if stage.get("missing") else "[")
    if body.get("until"):
        until = _stage_text(body["until"], 2)
        lines += [f"until {until[0].strip()}", *until[1:]]
    for pipe in body["pipes"]:
        lines.append(f"| {pipe['pipe']} {pipe['n']}")
    return "\n".join(line.rstrip() for line in lines)


def format_rule(ir: dict[str, Any]) -> str:
    """A rule's IR as one ``any where`` query, a branch per top-level ``or`` operand, each
    preceded by a ``// branch`` comment; allowlist entries as a last ``and not (...)`` of
    every branch. Compiling it gives the branches and trees of ``inline_allowlist(ir)``.
    A sequence or sample prints as one, every stage with all its join keys;
    ``compile_rule(format_rule(ir), **rule_options(ir), ...)`` gives it back."""
    if rule_kind(ir) != "event":
        return _format_joined(ir)
    parts = []
    branches = inline_allowlist(ir)["branches"]
    several = len(branches) > 1
    for i, branch in enumerate(branches):
        name = "".join(ch if ch.isprintable() else " " for ch in str(branch["name"]))
        parts.append(f"  // branch {name}")
        expr = branch["expr"]
        body = _lines(expr, 4 if several else 2, "or" if several else "")
        if several and expr["node"] != "or":  # an `or` is already parenthesised
            body = [f"  ({body[0].strip()})"] if len(body) == 1 else ["  (", *body, "  )"]
        if i < len(branches) - 1:
            body[-1] += " or"
        parts.extend(body)
    return "any where\n" + "\n".join(parts)
