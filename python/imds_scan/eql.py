"""A small EQL-subset compiler: query text → rule IR (plain data, see docs/ir.md).

Supported: ``any where``, ``==``, ``!=``, ``in``, ``in~``, ``:`` (one pattern or a list), ``not``,
``and``, ``or``, parentheses, double-quoted and triple-quoted strings, ``//`` and ``/* */``
comments. Anything else is refused with line:column and what was expected.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .fields import field_type

IR_VERSION = 1

Node = dict[str, Any]


class EqlError(ValueError):
    """A query outside the supported subset, with its position (1-based line and column)."""

    def __init__(self, message: str, line: int, column: int, source: str = "<query>") -> None:
        self.message = message
        self.line = line
        self.column = column
        self.source = source
        super().__init__(f"{source}:{line}:{column}: {message}")


@dataclass(frozen=True)
class Token:
    kind: str  # ident, string, op, lparen, rparen, comma, eof
    text: str
    value: str
    line: int
    column: int

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
        self.line = 1
        self.col = 1

    def error(self, message: str, line: int | None = None, col: int | None = None) -> EqlError:
        return EqlError(message, line or self.line, col or self.col, self.source)

    def _advance(self, n: int = 1) -> None:
        for ch in self.text[self.pos : self.pos + n]:
            if ch == "\n":
                self.line += 1
                self.col = 1
            else:
                self.col += 1
        self.pos += n

    def _skip_space(self) -> None:
        text = self.text
        while self.pos < len(text):
            ch = text[self.pos]
            if ch in " \t\r\n":
                self._advance()
            elif text.startswith("//", self.pos):
                end = text.find("\n", self.pos)
                self._advance((len(text) if end < 0 else end) - self.pos)
            elif text.startswith("/*", self.pos):
                line, col = self.line, self.col
                end = text.find("*/", self.pos + 2)
                if end < 0:
                    raise self.error("unterminated comment", line, col)
                self._advance(end + 2 - self.pos)
            else:
                return

    def tokens(self) -> list[Token]:
        out = []
        while True:
            self._skip_space()
            line, col = self.line, self.col
            if self.pos >= len(self.text):
                out.append(Token("eof", "", "", line, col))
                return out
            ch = self.text[self.pos]
            start = self.pos
            if ch == '"':
                value = self._string()
                out.append(Token("string", self.text[start : self.pos], value, line, col))
            elif ch.isdigit() or (ch == "-" and self.text[self.pos + 1 : self.pos + 2].isdigit()):
                self._advance()
                while self.pos < len(self.text) and (
                    self.text[self.pos].isalnum() or self.text[self.pos] in ".+-"
                ):
                    self._advance()
                text = self.text[start : self.pos]
                out.append(Token("number", text, text, line, col))
            elif ch.isalpha() or ch in "_@`?":
                value = self._identifier()
                out.append(Token("ident", self.text[start : self.pos], value, line, col))
            elif ch in "(),":
                self._advance()
                kind = {"(": "lparen", ")": "rparen", ",": "comma"}[ch]
                out.append(Token(kind, ch, ch, line, col))
            else:
                for op in _OPERATORS:
                    if self.text.startswith(op, self.pos):
                        self._advance(len(op))
                        out.append(Token("op", op, op, line, col))
                        break
                else:
                    raise self.error(f"unexpected character {ch!r}")

    def _identifier(self) -> str:
        # Field paths like process.parent.name or @timestamp; `backticked` parts allow any text.
        text = self.text
        parts = []
        buf = []
        while self.pos < len(text):
            ch = text[self.pos]
            if ch == "`":
                line, col = self.line, self.col
                end = text.find("`", self.pos + 1)
                if end < 0:
                    raise self.error("unterminated `field name`", line, col)
                buf.append(text[self.pos + 1 : end])
                self._advance(end + 1 - self.pos)
            elif ch.isalnum() or ch in "_@?":
                buf.append(ch)
                self._advance()
            elif ch == "." and buf:
                parts.append("".join(buf))
                buf = []
                self._advance()
            else:
                break
        parts.append("".join(buf))
        return ".".join(parts)

    def _string(self) -> str:
        line, col = self.line, self.col
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
                out.append(ch)
                self._advance()


class _Parser:
    def __init__(self, text: str, source: str) -> None:
        self.tokens = _Lexer(text, source).tokens()
        self.i = 0
        self.source = source

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

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

    def is_keyword(self, word: str) -> bool:
        return self.tok.kind == "ident" and self.tok.value.lower() == word

    def expect(self, kind: str, expected: str) -> Token:
        if self.tok.kind != kind:
            raise self.error(expected)
        return self.next()

    def query(self) -> Node:
        tok = self.tok
        if tok.kind != "ident":
            raise self.error("'any where'")
        if tok.value.lower() in ("sequence", "sample"):
            raise self.refuse(
                f"{tok.value} queries are not supported (single-event queries only)", tok
            )
        if tok.value.lower() != "any":
            raise self.refuse(
                f"'{tok.value} where' is not supported yet: use 'any where' with an "
                'event.category == "..." condition',
                tok,
            )
        self.next()
        if not self.is_keyword("where"):
            raise self.error("'where'")
        self.next()
        node = self.or_expr()
        if self.tok.kind == "op" and self.tok.value == "|":
            raise self.refuse("pipes are not supported", self.tok)
        if self.tok.kind != "eof":
            raise self.error("'and', 'or' or end of query")
        return node

    def or_expr(self) -> Node:
        args = [self.and_expr()]
        while self.is_keyword("or"):
            self.next()
            args.append(self.and_expr())
        return args[0] if len(args) == 1 else {"node": "or", "args": args}

    def and_expr(self) -> Node:
        args = [self.not_expr()]
        while self.is_keyword("and"):
            self.next()
            args.append(self.not_expr())
        return args[0] if len(args) == 1 else {"node": "and", "args": args}

    def not_expr(self) -> Node:
        if self.is_keyword("not"):
            self.next()
            return {"node": "not", "arg": self.not_expr()}
        return self.primary()

    def primary(self) -> Node:
        if self.tok.kind == "lparen":
            self.next()
            node = self.or_expr()
            self.expect("rparen", "')'")
            return node
        if self.tok.kind != "ident" or self.tok.value.lower() in ("and", "or", "not", "where"):
            raise self.error("a field name, 'not' or '('")
        field_tok = self.next()
        if self.tok.kind == "lparen":
            raise self.refuse(f"function {field_tok.value}() is not supported", field_tok)
        field = field_tok.value
        if field.startswith("?"):
            raise self.refuse("optional fields (?field) are not supported yet", field_tok)
        ftype = field_type(field)
        op_tok = self.tok
        if self.is_keyword("in"):
            self.next()
            if self.tok.kind == "op" and self.tok.value == "~" and self._adjacent(op_tok, 2):
                self.next()
                return self.pred(field, ftype, "eq_ci", self.string_list(), op_tok)
            return self.pred(field, ftype, "eq", self.string_list(), op_tok)
        if self.is_keyword("like"):
            raise self.refuse("operator 'like' is not supported yet", op_tok)
        if op_tok.kind != "op" or op_tok.value not in ("==", "!=", ":"):
            raise self.error("an operator ('==', '!=', 'in', 'in~' or ':')")
        self.next()
        if op_tok.value == ":":
            values = self.string_list() if self.tok.kind == "lparen" else [self.string()]
            if ftype == "ip":
                raise self.refuse(f"':' is not supported on ip-typed field {field}", op_tok)
            return self.pred(field, ftype, "wildcard", values, op_tok)
        node = self.pred(field, ftype, "eq", [self.string()], op_tok)
        return {"node": "not", "arg": node} if op_tok.value == "!=" else node

    def _adjacent(self, tok: Token, width: int) -> bool:
        return self.tok.line == tok.line and self.tok.column == tok.column + width

    def pred(self, field: str, ftype: str, op: str, values: list[str], tok: Token) -> Node:
        if ftype == "ip":
            from .ipaddr import parse_ip

            for value in values:
                if parse_ip(value) is None:
                    raise self.refuse(f"{value!r} is not a valid IP address for {field}", tok)
        return {"node": "pred", "field": field, "field_type": ftype, "op": op, "values": values}

    def string(self) -> str:
        tok = self.tok
        if tok.kind in ("ident",) and tok.value.lower() in ("true", "false", "null"):
            raise self.refuse(f"{tok.value} literals are not supported yet", tok)
        if tok.kind != "string":
            raise self.error("a string literal")
        self.next()
        return tok.value

    def string_list(self) -> list[str]:
        self.expect("lparen", "'('")
        values = [self.string()]
        while self.tok.kind == "comma":
            self.next()
            values.append(self.string())
        self.expect("rparen", "',' or ')'")
        return values


def parse_query(text: str, source: str = "<query>") -> Node:
    """Parse an EQL query into an IR expression node."""
    return _Parser(text, source).query()


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
) -> dict[str, Any]:
    """Compile a query into the rule IR (a JSON-serialisable dict)."""
    exprs = _flatten_or(parse_query(query, source))
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
