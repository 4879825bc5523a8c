"""A small EQL-subset compiler: query text → rule IR (plain data, see spec/ir.md), and back.

Supported: single-event queries ``any where`` / ``<category> where`` (``event.category`` has
the category); ``==``, ``!=``, ``in``, ``not in``, ``in~``, ``not in~``, ``:`` and ``like~``
(ASCII case-insensitive patterns), ``like`` (case-sensitive), one pattern or a list; ``not``,
``and``, ``or``, parentheses; string, number and boolean literals (a number or boolean
compares with a field's JSON text: ``destination.port == 80`` matches ``80`` and ``"80"``);
optional fields ``?field``; ``field != null`` (the field has a value) and ``field == null``;
the functions ``cidrMatch``, ``imdsEndpoint`` (spec/ir.md), ``startsWith``, ``endsWith``,
``stringContains`` (and the ``~`` forms of the last three); double- and triple-quoted strings,
``//`` and ``/* */`` comments. Anything else is refused with line:column and the reason.
``and``/``or`` chains compile to flat nodes and ``not not x`` to ``x``; a condition nested
deeper than MAX_DEPTH levels (or parentheses) is refused, never a RecursionError.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

from .fields import field_type
from .ir_schema import TEXT_OPS

IR_VERSION = 1
# How deep a condition (a rule's branch, an allowlist condition, --allow) may nest, counting
# `and`/`or`/`not` levels after flattening (a predicate is 1 level), and how deep parentheses
# may nest: deeper is refused at compile time, so every rule both engines receive runs in both.
MAX_DEPTH = 100
# What the engines accept in an IR document (a branch's depth): above MAX_DEPTH so that host
# filters and allowlists may wrap a branch of MAX_DEPTH levels.
MAX_IR_DEPTH = 128

Node = dict[str, Any]


class EqlError(ValueError):
    """A query outside the supported subset, with its position (1-based line and column)."""

    def __init__(self, message: str, line: int, column: int, source: str = "<query>") -> None:
        self.message = message
        self.line = line
        self.column = column
        self.source = source
        super().__init__(f"{source}:{line}:{column}: {message}")


class Token:
    """One token and where it starts (a plain class: the lexer makes many of them)."""

    __slots__ = ("column", "kind", "line", "text", "value")

    def __init__(self, kind: str, text: str, value: str, line: int, column: int) -> None:
        self.kind = kind  # ident, string, number, op, lparen, rparen, comma, eof
        self.text = text
        self.value = value
        self.line = line
        self.column = column

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


_OPERATORS = ("==", "!=", ":", "<=", ">=", "<", ">", "~", "|", "[", "]")
_SIMPLE_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\", "'": "'"}


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
                yield Token("eof", "", "", line, col)
                return
            ch = self.text[self.pos]
            start = self.pos
            if ch == '"':
                value = self._string()
                yield Token("string", self.text[start : self.pos], value, line, col)
            elif ch.isdigit() or (ch == "-" and self.text[self.pos + 1 : self.pos + 2].isdigit()):
                self._advance()
                self._advance(self._number_tail.match(self.text, self.pos).end() - self.pos)  # type: ignore[union-attr]
                text = self.text[start : self.pos]
                yield Token("number", text, text, line, col)
            elif ch.isalpha() or ch in "_@`?":
                value = self._identifier()
                yield Token("ident", self.text[start : self.pos], value, line, col)
            elif ch in "(),":
                self._advance()
                kind = {"(": "lparen", ")": "rparen", ",": "comma"}[ch]
                yield Token(kind, ch, ch, line, col)
            else:
                for op in _OPERATORS:
                    if self.text.startswith(op, self.pos):
                        self._advance(len(op))
                        yield Token("op", op, op, line, col)
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
_NUMBER_TAIL = r"(?:[^\W_]|[.+-])*"
_WORD = r"[\w@]+"
_PLAIN_CHARS = r'[^"\\\n]+'


_NUMBER = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
_KEYWORDS = frozenset({"and", "or", "not", "where", "in", "like", "true", "false", "null"})

# EQL function (lower-cased name) → (IR op, IR op of the `~` form or None, canonical name).
_FUNCTIONS: dict[str, tuple[str, str | None, str]] = {
    "startswith": ("starts_with", "starts_with_ci", "startsWith"),
    "endswith": ("ends_with", "ends_with_ci", "endsWith"),
    "stringcontains": ("contains", "contains_ci", "stringContains"),
    "cidrmatch": ("cidr", None, "cidrMatch"),
    "imdsendpoint": ("imds_endpoint", None, "imdsEndpoint"),
}


class _Parser:
    def __init__(
        self, text: str, source: str, field_types: Mapping[str, str] | None = None
    ) -> None:
        self.field_types = field_types  # the user's overrides of fields.field_type
        self._lexed = _Lexer(text, source).tokens()
        self.tokens: list[Token] = []
        self.i = 0
        self.source = source
        self.parens = 0  # parentheses open around the current position
        # Where each node's text starts (id → (node, token)), to point at a too-deep one.
        self.starts: dict[int, tuple[Node, Token]] = {}

    def at(self, node: Node, tok: Token) -> Node:
        self.starts.setdefault(id(node), (node, tok))
        return node

    def check_depth(self, root: Node) -> None:
        """Refuse a tree deeper than MAX_DEPTH, at the first node below that depth."""
        stack = [(root, 1)]
        while stack:
            node, depth = stack.pop()
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
        return (
            self.is_op("~")
            and self.tok.line == tok.line
            and self.tok.column == tok.column + len(tok.text)
        )

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
        node = self.or_expr()
        if self.is_op("|"):
            raise self.refuse("pipes are not supported", self.tok)
        if self.tok.kind != "eof":
            raise self.error("'and', 'or' or end of query")
        if tok.text.lower() != "any":
            category = self.at(_pred("event.category", "keyword", "eq", [tok.value]), tok)
            rest = node["args"] if node["node"] == "and" else [node]
            node = self.at({"node": "and", "args": [category, *rest]}, tok)
        for branch in _flatten_or(node):  # the limit is per branch (spec/ir.md)
            self.check_depth(branch)
        return node

    def expression(self) -> Node:
        node = self.or_expr()
        if self.is_op("|"):
            raise self.refuse("pipes are not supported", self.tok)
        if self.tok.kind != "eof":
            raise self.error("'and', 'or' or end of condition")
        self.check_depth(node)
        return node

    def or_expr(self) -> Node:
        return self._chain("or", self.and_expr)

    def and_expr(self) -> Node:
        return self._chain("and", self.not_expr)

    def _chain(self, kind: str, operand: Any) -> Node:
        """Operands joined by `kind`, as one n-ary node: a parenthesised operand of the same
        kind is spliced in (`a and (b and c)` is `and[a, b, c]`; same truth, same witness)."""
        start = self.tok
        args: list[Node] = []
        while True:
            node = operand()
            args.extend(node["args"] if node["node"] == kind else [node])
            if not self.is_keyword(kind):
                break
            self.next()
        if len(args) == 1:
            return args[0]
        return self.at({"node": kind, "args": args}, start)

    def not_expr(self) -> Node:
        nots = []  # a loop, not recursion: `not not … x` may be long
        while self.is_keyword("not"):
            nots.append(self.next())
        start = self.tok
        node = self.at(self.primary(), start)
        if len(nots) % 2 == 0:
            return node  # `not not x` is `x`
        if node["node"] == "not":
            inner: Node = node["arg"]  # `not (a != 1)` is `a == 1`
            return inner
        return self.at({"node": "not", "arg": node}, nots[0])

    def primary(self) -> Node:
        if self.tok.kind == "lparen":
            if self.parens >= MAX_DEPTH:
                raise self.refuse(
                    f"parentheses nest more than {MAX_DEPTH} levels deep "
                    f"(at most {MAX_DEPTH} are supported)",
                    self.tok,
                )
            self.parens += 1
            self.next()
            node = self.or_expr()
            self.expect("rparen", "')'")
            self.parens -= 1
            return node
        tok = self.tok
        if tok.kind == "ident" and tok.text.lower() in ("true", "false", "null"):
            raise self.refuse(f"a bare {tok.text.lower()} condition is not supported", tok)
        if tok.kind != "ident" or tok.text.lower() in _KEYWORDS:
            raise self.error("a field name, a function, 'not' or '('")
        nxt = self.peek()
        if nxt.kind == "lparen" or (self.is_op("~", nxt) and self.peek(2).kind == "lparen"):
            return self.function()
        field, ftype = self.field()
        op_tok = self.tok
        negate = False
        if self.is_keyword("not") and (
            self.is_keyword("in", self.peek()) or self.is_keyword("like", self.peek())
        ):
            negate = True
            self.next()
            op_tok = self.tok
        if self.is_keyword("in") or self.is_keyword("like"):
            word = self.next().text.lower()
            insensitive = self._tilde_follows(op_tok)
            if insensitive:
                self.next()
            if word == "in":
                values = self.literal_list(scalars=True)
                op = "eq_ci" if insensitive else "eq"
            else:
                values = self.patterns()
                op = "wildcard" if insensitive else "like"
            shown = word + "~" * insensitive
            node = self.pred(field, ftype, op, values, op_tok, f"'{shown}'")
            return {"node": "not", "arg": node} if negate else node
        if op_tok.kind == "op" and op_tok.value in ("<", "<=", ">", ">="):
            raise self.refuse(f"operator '{op_tok.value}' is not supported", op_tok)
        if op_tok.kind != "op" or op_tok.value not in ("==", "!=", ":"):
            raise self.error("an operator ('==', '!=', ':', 'in', 'in~', 'like' or 'like~')")
        self.next()
        if op_tok.value == ":":
            return self.pred(field, ftype, "wildcard", self.patterns(), op_tok, "':'")
        if op_tok.value in ("==", "!=") and self.is_keyword("null"):
            self.next()  # `f != null`: the field has a value; `f == null`: it has none
            node = self.pred(field, ftype, "exists", [], op_tok, "")
            return node if op_tok.value == "!=" else {"node": "not", "arg": node}
        node = self.pred(field, ftype, "eq", [self.literal(scalars=True)], op_tok, "")
        return {"node": "not", "arg": node} if op_tok.value == "!=" else node

    def field(self) -> tuple[str, str]:
        tok = self.tok
        if tok.kind != "ident" or tok.text.lower() in _KEYWORDS:
            raise self.error("a field name")
        self.next()
        field = tok.value[1:] if tok.value.startswith("?") else tok.value  # ?optional
        if not field:
            raise self.refuse("expected a field name after '?'", tok)
        return field, field_type(field, self.field_types)

    def function(self) -> Node:
        name_tok = self.next()
        insensitive = self._tilde_follows(name_tok)
        if insensitive:
            self.next()
        spec = _FUNCTIONS.get(name_tok.value.lower())
        if spec is None:
            raise self.refuse(f"function {name_tok.value}() is not supported", name_tok)
        op, op_ci, canonical = spec
        if insensitive:
            if op_ci is None:
                raise self.refuse(f"{canonical} has no case-insensitive (~) form", name_tok)
            op = op_ci
        self.expect("lparen", "'('")
        if self.tok.kind != "ident" or self.tok.text.lower() in _KEYWORDS:
            raise self.error(f"a field name as the first argument of {canonical}")
        field, ftype = self.field()
        values = []
        while self.tok.kind == "comma":
            self.next()
            values.append(self.literal(scalars=False))
        if not values:
            raise self.error("','")
        if self.tok.kind != "rparen":
            raise self.error("',' or ')'")
        self.next()
        if op not in ("cidr", "imds_endpoint") and len(values) != 1:
            raise self.refuse(
                f"{canonical} takes a field and one string, found {len(values)} strings",
                name_tok,
            )
        return self.pred(field, ftype, op, values, name_tok, canonical + "~" * insensitive)

    def pred(
        self, field: str, ftype: str, op: str, values: list[str], tok: Token, shown: str
    ) -> Node:
        if ftype == "ip" and op in TEXT_OPS:
            raise self.refuse(f"{shown} is not supported on ip-typed field {field}", tok)
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
        elif ftype == "ip":
            from .reference.ip import parse_ip

            for value in values:
                if parse_ip(value) is None:
                    raise self.refuse(f"{value!r} is not a valid IP address for {field}", tok)
        return _pred(field, ftype, op, values)

    def literal(self, *, scalars: bool) -> str:
        """A string; with ``scalars``, also a number or boolean (as its JSON text)."""
        tok = self.tok
        if tok.kind == "ident" and tok.text.lower() == "null":
            raise self.refuse("null is only supported as 'field == null' or 'field != null'", tok)
        if tok.kind == "ident" and tok.text.lower() in ("true", "false"):
            if not scalars:
                raise self.error("a string literal")
            self.next()
            return tok.text.lower()
        if tok.kind == "number":
            if not scalars:
                raise self.error("a string literal")
            if not _re(_NUMBER).fullmatch(tok.text):
                raise self.refuse(f"invalid number {tok.text!r}", tok)
            self.next()
            return tok.text
        if tok.kind == "ident" and self.peek().kind == "lparen":
            raise self.refuse(f"function calls as values ({tok.value}()) are not supported", tok)
        if tok.kind == "ident" and tok.text.lower() not in _KEYWORDS:
            raise self.refuse(
                f"comparing with a field ({tok.value}) is not supported: expected a literal",
                tok,
            )
        if tok.kind != "string":
            raise self.error("a literal" if scalars else "a string literal")
        self.next()
        return tok.value

    def literal_list(self, *, scalars: bool) -> list[str]:
        self.expect("lparen", "'('")
        values = [self.literal(scalars=scalars)]
        while self.tok.kind == "comma":
            self.next()
            values.append(self.literal(scalars=scalars))
        self.expect("rparen", "',' or ')'")
        return values

    def patterns(self) -> list[str]:
        if self.tok.kind == "lparen":
            return self.literal_list(scalars=False)
        return [self.literal(scalars=False)]


def _children(node: Node) -> list[Node]:
    if node["node"] == "not":
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
    """Parse an EQL query into an IR expression node."""
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
) -> dict[str, Any]:
    """Compile a query into the rule IR (a JSON-serialisable dict); ``field_types``: the
    user's field type overrides (fields.field_type)."""
    exprs = _flatten_or(parse_query(query, source, field_types))
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
    if node["op"] in ("eq", "eq_ci"):
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
    listed = ", ".join(_literal_texts(node))
    if op in _FUNCTION_OF_OP:
        calls = [f"{_FUNCTION_OF_OP[op]}({field}, {quote(v)})" for v in values]
        if op in ("cidr", "imds_endpoint") or len(values) == 1:
            text = f"{_FUNCTION_OF_OP[op]}({field}, {listed})"
        else:  # several literals: any of them (the IR allows it, EQL's function does not)
            text = "(" + " or ".join(calls) + ")"
        return f"not {text}" if negated else text
    word = {"eq": "in", "eq_ci": "in~", "wildcard": ":", "like": "like"}[op]
    if op == "eq" and len(values) == 1:
        return f"{field} {'!=' if negated else '=='} {listed}"
    if op in ("wildcard", "like") and len(values) == 1:
        text = f"{field} {word} {listed}"
    else:
        text = f"{field} {word} ({listed})"
    return f"not {text}" if negated else text


def _inline(node: Node, parent: str = "") -> str:
    kind = node["node"]
    if kind == "pred":
        return _format_pred(node)
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


def format_rule(ir: dict[str, Any]) -> str:
    """A rule's IR as one ``any where`` query, a branch per top-level ``or`` operand, each
    preceded by a ``// branch`` comment; allowlist entries as a last ``and not (...)`` of
    every branch. Compiling it gives the branches and trees of ``inline_allowlist(ir)``."""
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
