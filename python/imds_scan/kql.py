"""The KQL ("kuery") compiler: query text → a rule IR condition (spec/kql.md).

The grammar is Kibana's (``@kbn/es-query``, kuery): ``field: value``, quoted and unquoted values,
``*`` wildcards in values and field names, value lists ``f: (a or b and not c)``, ``and`` /
``or`` / ``not`` (any case; ``not`` binds tightest, then ``and``, then ``or``), ranges
``< <= > >=``, ``f: *`` (exists), ``f: { … }`` (nested) and the escapes Kibana reads. Each
``field: value`` compiles the way Kibana turns it into Query DSL for the field's mapping
(``mapping.Mapping``, standing for the rule's data view), so that the IR means what
Elasticsearch would have answered. What Kibana or Elasticsearch would refuse, and free text,
is refused with line:column (``errors.EqlError``). Parsing is a recursive descent that tries
the grammar's alternatives in its order; a syntax error is reported at the farthest position
any alternative reached, with what was expected there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .eql import MAX_DEPTH, _unreadable, ir_depth
from .errors import EqlError

if TYPE_CHECKING:
    from collections.abc import Callable

    from .mapping import FieldMapping, Mapping

Node = dict[str, Any]

# Kibana's Space: what separates tokens (also inside unquoted values, where it is kept).
_SPACE = " \t\r\n\u00a0"
# Characters an unquoted literal may hold only escaped.
_SPECIAL = '\\():<>"*{}'
# What JavaScript's String.prototype.trim removes from the ends of an unquoted literal.
_JS_TRIM = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_HEX = frozenset("0123456789abcdefABCDEF")
# Lucene's classic query parser splits a query_string on these (Kibana does not escape them).
_QS_SPACE = " \t\n\r\u3000"
_RANGE_OPS = (("<=", "lte"), (">=", "gte"), ("<", "lt"), (">", "gt"))
_NUMERIC = frozenset(
    {
        "long",
        "integer",
        "short",
        "byte",
        "unsigned_long",
        "double",
        "float",
        "half_float",
        "scaled_float",
    }
)
# Ops whose preds in one `or` may share a pred (some value satisfies one of the literals).
_MERGEABLE = frozenset(
    {"eq", "cidr", "wildcard_query", "wildcard_query_ci", "match", "match_phrase"}
)
# Mapping types whose queries the IR cannot express.
_UNMODELLED = {
    "flattened": "a query on its root matches any of its leaf values, which imds-scan does "
    "not model (name a key under it)",
    "geo_point": "geo queries are not supported",
    "geo_shape": "geo queries are not supported",
    "histogram": "it has no values to compare",
}
_WILDCARD = object()  # an unescaped `*` among a literal's characters


@dataclass
class Lit:
    """A literal: ``chars`` (strings, and _WILDCARD for each unescaped ``*``), or ``value``
    None/True/False for unquoted ``null``/``true``/``false``; where it starts."""

    pos: int
    chars: list[Any]
    quoted: bool
    special: Any = "text"  # "text", or None / True / False

    @property
    def wildcard(self) -> bool:
        return any(c is _WILDCARD for c in self.chars)

    @property
    def text(self) -> str:
        """The characters, ``*`` for a wildcard (what Kibana sends when it is a plain value)."""
        if self.special != "text":
            return "null" if self.special is None else "true" if self.special else "false"
        return "".join("*" if c is _WILDCARD else c for c in self.chars)

    @property
    def lone_wildcard(self) -> bool:
        # Kibana's isLoneWildcard removes one wildcard (a string replace): `**` is not lone
        return len(self.chars) == 1 and self.chars[0] is _WILDCARD


@dataclass
class Ast:
    """A parsed node: kind or/and/not/is/range/nested/text (free text) and, for value lists,
    vor/vand/vnot/value (applied to a field when compiled)."""

    kind: str
    pos: int
    args: list[Ast] = field(default_factory=list)
    field: Lit | None = None
    value: Lit | None = None
    op: str = ""


class _Parser:
    def __init__(self, text: str, source: str) -> None:
        self.s = text
        self.n = len(text)
        self.source = source
        self.far = 0
        self.expected: list[str] = []
        self.depth = 0

    # -- errors and positions
    def where(self, pos: int) -> tuple[int, int]:
        line = 1 + self.s.count("\n", 0, pos)
        return line, pos - (self.s.rfind("\n", 0, pos) + 1) + 1

    def error(self, message: str, pos: int) -> EqlError:
        line, column = self.where(pos)
        return EqlError(message, line, column, self.source)

    def fail(self, pos: int, what: str) -> None:
        if pos > self.far:
            self.far, self.expected = pos, [what]
        elif pos == self.far and what not in self.expected:
            self.expected.append(what)

    def syntax_error(self) -> EqlError:
        pos = self.far
        found = "end of input" if pos >= self.n else _describe(self.s[pos])
        expected = sorted(self.expected)
        wanted = (
            expected[0] if len(expected) == 1 else ", ".join(expected[:-1]) + " or " + expected[-1]
        )
        return self.error(f"KQL syntax error: expected {wanted} but {found} found", pos)

    def enter(self, pos: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(
                f"parentheses nest more than {MAX_DEPTH} levels deep "
                f"(at most {MAX_DEPTH} are supported)",
                pos,
            )

    # -- tokens
    def spaces(self, pos: int) -> int:
        while pos < self.n and self.s[pos] in _SPACE:
            pos += 1
        return pos

    def keyword(self, pos: int, word: str, label: str, before: bool) -> int | None:
        """``Space+ word Space+`` (``before``) or ``word Space+``, case-insensitive."""
        p = pos
        if before:
            while p < self.n and self.s[p] in _SPACE:
                p += 1
            if p == pos:
                self.fail(pos, label)
                return None
        if self.s[p : p + len(word)].lower() != word:
            self.fail(pos, label)
            return None
        p += len(word)
        q = p
        while q < self.n and self.s[q] in _SPACE:
            q += 1
        if q == p:
            self.fail(pos, label)
            return None
        return q

    def keyword_at(self, i: int) -> bool:
        """Kibana's Keyword lookahead: `` or ``, `` and `` or ``not `` starts at i."""
        s = self.s
        if s[i] in _SPACE:
            for word in ("or", "and"):
                end = i + 1 + len(word)
                if s[i + 1 : end].lower() == word and end < self.n and s[end] in _SPACE:
                    return True
        return s[i : i + 3].lower() == "not" and i + 3 < self.n and s[i + 3] in _SPACE

    def literal(self, pos: int, label: str) -> tuple[Lit, int] | None:
        if pos < self.n and self.s[pos] == '"':
            return self.quoted(pos, label)
        return self.unquoted(pos, label)

    def unicode_escape(self, i: int) -> str | None:
        """The character of ``\\uXXXX`` at i (the backslash), or None."""
        hexa = self.s[i + 2 : i + 6]
        if self.s[i + 1 : i + 2] == "u" and len(hexa) == 4 and all(c in _HEX for c in hexa):
            return chr(int(hexa, 16))
        return None

    def quoted(self, pos: int, label: str) -> tuple[Lit, int] | None:
        s, i, chars = self.s, pos + 1, []
        while True:
            if i >= self.n:
                self.fail(i, '"\\""')
                self.fail(pos, label)
                return None
            c = s[i]
            if c == '"':
                break
            if c == "\\":
                nxt = s[i + 1 : i + 2]
                if nxt in ("t", "r", "n"):
                    chars.append({"t": "\t", "r": "\r", "n": "\n"}[nxt])
                    i += 2
                    continue
                code = self.unicode_escape(i)
                if code is not None:
                    chars.append(code)
                    i += 6
                    continue
                if nxt in ("\\", '"'):
                    chars.append(nxt)
                    i += 2
                    continue
            chars.append(c)
            i += 1
        return Lit(pos, _join_surrogates(chars), True), i + 1

    def unquoted(self, pos: int, label: str) -> tuple[Lit, int] | None:
        s, i = self.s, pos
        chars: list[Any] = []
        while i < self.n:
            c = s[i]
            if c == "\\":
                nxt = s[i + 1 : i + 2]
                if nxt in ("t", "r", "n"):
                    chars.append({"t": "\t", "r": "\r", "n": "\n"}[nxt])
                    i += 2
                    continue
                if nxt and nxt in _SPECIAL:
                    chars.append(nxt)
                    i += 2
                    continue
                code = self.unicode_escape(i)
                if code is not None:
                    chars.append(code)
                    i += 6
                    continue
                word = next(
                    (
                        s[i + 1 : i + 1 + len(w)]
                        for w in ("or", "and", "not")
                        if s[i + 1 : i + 1 + len(w)].lower() == w
                    ),
                    None,
                )
                if word is not None:
                    chars.append(word)
                    i += 1 + len(word)
                    continue
                break
            if c == "*":
                chars.append(_WILDCARD)
                i += 1
                continue
            if c in _SPECIAL or self.keyword_at(i):
                break
            chars.append(c)
            i += 1
        if i == pos:
            self.fail(pos, label)
            return None
        if i < self.n:
            self.fail(i, "literal")
        chars = _join_surrogates(chars)
        while chars and isinstance(chars[0], str) and chars[0] in _JS_TRIM:
            chars.pop(0)
        while chars and isinstance(chars[-1], str) and chars[-1] in _JS_TRIM:
            chars.pop()
        lit = Lit(pos, chars, False)
        if not lit.wildcard:
            text = "".join(chars)
            if text in ("null", "true", "false"):
                lit.special = None if text == "null" else text == "true"
        return lit, i

    # -- the grammar
    def start(self) -> Ast | None:
        p = self.spaces(0)
        node = None
        found = self.or_query(p)
        if found is not None:
            node, p = found
            p = self.spaces(p)
        if p < self.n:
            self.fail(p, "end of input")
            raise self.syntax_error()
        return node

    def or_query(self, pos: int) -> tuple[Ast, int] | None:
        return self.chain(pos, self.and_query, "or", "OR", "or")

    def and_query(self, pos: int) -> tuple[Ast, int] | None:
        return self.chain(pos, self.not_query, "and", "AND", "and")

    def chain(
        self, pos: int, part: Any, word: str, label: str, kind: str
    ) -> tuple[Ast, int] | None:
        first = part(pos)
        if first is None:
            return None
        nodes, p = [first[0]], first[1]
        while True:
            q = self.keyword(p, word, label, before=True)
            if q is None:
                break
            nxt = part(q)
            if nxt is None:
                break
            nodes.append(nxt[0])
            p = nxt[1]
        return (nodes[0] if len(nodes) == 1 else Ast(kind, nodes[0].pos, nodes)), p

    def not_query(self, pos: int) -> tuple[Ast, int] | None:
        q = self.keyword(pos, "not", "NOT", before=False)
        if q is not None:
            found = self.sub_query(q)
            if found is not None:
                return Ast("not", pos, [found[0]]), found[1]
        return self.sub_query(pos)

    def bracketed(
        self, pos: int, close: str, inner: Callable[[int], tuple[Ast, int] | None]
    ) -> tuple[Ast, int] | None:
        """``inner`` between the opening bracket at ``pos`` and ``close``, or None (the
        failure noted) so that the caller tries its next alternative."""
        self.enter(pos)
        found = inner(self.spaces(pos + 1))
        self.depth -= 1
        if found is not None:
            q = self.spaces(found[1])
            if q < self.n and self.s[q] == close:
                return found[0], q + 1
            self.fail(q, f'"{close}"')
        return None

    def sub_query(self, pos: int) -> tuple[Ast, int] | None:
        if pos < self.n and self.s[pos] == "(":
            found = self.bracketed(pos, ")", self.or_query)
            if found is not None:
                return found
        else:
            self.fail(pos, '"("')
        return self.expression(pos)

    def expression(self, pos: int) -> tuple[Ast, int] | None:
        found = self.literal(pos, "field name")
        if found is None:
            self.fail(pos, "value")
            return None
        name, end = found
        p = self.spaces(end)
        if p < self.n and self.s[p] == ":":
            q = self.spaces(p + 1)
            if q < self.n and self.s[q] == "{":  # NestedQuery
                inner = self.bracketed(q, "}", self.or_query)
                if inner is not None:
                    return Ast("nested", pos, [inner[0]], field=name), inner[1]
            values = self.list_of_values(q)
            if values is not None:
                return Ast("is", pos, [values[0]], field=name), values[1]
        else:
            self.fail(p, '":"')
            for text, op in _RANGE_OPS:
                if self.s.startswith(text, p):
                    value = self.literal(self.spaces(p + len(text)), "literal")
                    if value is not None:
                        return Ast("range", pos, field=name, value=value[0], op=op), value[1]
                    break
            else:
                self.fail(p, "range operator")
        return Ast("text", pos, value=name), end  # free text (Kibana's ValueExpression)

    def list_of_values(self, pos: int) -> tuple[Ast, int] | None:
        if pos < self.n and self.s[pos] == "(":
            found = self.bracketed(pos, ")", lambda p: self.value_chain(p, "or"))
            if found is not None:
                return found
        else:
            self.fail(pos, '"("')
        found_value = self.literal(pos, "value")
        if found_value is None:
            return None
        return Ast("value", pos, value=found_value[0]), found_value[1]

    def value_chain(self, pos: int, kind: str) -> tuple[Ast, int] | None:
        if kind == "or":
            return self.chain(pos, lambda p: self.value_chain(p, "and"), "or", "OR", "vor")
        return self.chain(pos, self.not_values, "and", "AND", "vand")

    def not_values(self, pos: int) -> tuple[Ast, int] | None:
        q = self.keyword(pos, "not", "NOT", before=False)
        if q is not None:
            found = self.list_of_values(q)
            if found is not None:
                return Ast("vnot", pos, [found[0]]), found[1]
        return self.list_of_values(pos)


def _describe(char: str) -> str:
    if char in _SPACE or not char.isprintable():
        return f"U+{ord(char):04X}"
    return '"' + char.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _join_surrogates(chars: list[Any]) -> list[Any]:
    """``\\uD83D\\uDE00`` escapes as the one code point they encode (JavaScript strings are
    UTF-16)."""
    if not any(isinstance(c, str) and "\ud800" <= c <= "\udfff" for c in chars):
        return chars
    out: list[Any] = []
    for c in chars:
        if (
            isinstance(c, str)
            and "\udc00" <= c <= "\udfff"
            and out
            and isinstance(out[-1], str)
            and "\ud800" <= out[-1] <= "\udbff"
        ):
            out[-1] = chr(0x10000 + ((ord(out[-1]) - 0xD800) << 10) + (ord(c) - 0xDC00))
        else:
            out.append(c)
    return out


def parse(text: str, source: str = "<query>") -> Ast | None:
    """The AST of a KQL query (None: an empty query), or EqlError with line:column."""
    return _Parser(text, source).start()


# ---------------------------------------------------------------- compiling


def wildcard_pattern(chars: list[Any]) -> str:
    """A literal's characters in Elasticsearch wildcard-query syntax: each wildcard ``*``,
    every other character literal (``*``, ``?`` and ``\\`` escaped)."""
    out = []
    for c in chars:
        if c is _WILDCARD:
            out.append("*")
        elif c in "*?\\":
            out.append("\\" + c)
        else:
            out.append(c)
    return "".join(out)


def lowercase(text: str) -> str:
    """Java's ``Character.toLowerCase`` per code point (the simple mapping: no final sigma,
    U+0130 → ``i``), as Elastic Defend's lowercase normalizer."""
    out = []
    for c in text:
        low = c.lower()
        out.append(low if len(low) == 1 else "i" if c == "\u0130" else c)
    return "".join(out)


def _text_of(chars: list[Any]) -> str:
    return "".join(c for c in chars if c is not _WILDCARD)


class _Compiler:
    def __init__(self, parser: _Parser, mapping: Mapping) -> None:
        self.parser = parser
        self.mapping = mapping

    def refuse(self, message: str, pos: int) -> EqlError:
        return self.parser.error(message, pos)

    def compile(self, ast: Ast, nested: str | None) -> Node:
        kind = ast.kind
        if kind in ("or", "and"):
            return _combine(kind, [self.compile(a, nested) for a in ast.args])
        if kind == "not":
            return _negate(self.compile(ast.args[0], nested))
        if kind == "text":
            raise self.refuse(
                "free text (a value without a field) is not supported: it searches the "
                "index's default fields, which imds-scan does not know; name the field "
                "(field: value)",
                ast.pos,
            )
        assert ast.field is not None
        if kind == "nested":
            return self.nested(ast, nested)
        if kind == "range":
            assert ast.value is not None
            return self.range(ast.field, ast.op, ast.value, nested)
        return self.values(ast.field, ast.args[0], nested)

    def field_name(self, lit: Lit, nested: str | None) -> str:
        if lit.special is None:
            raise self.refuse(
                "free text (the field name null is a value without a field) is not supported",
                lit.pos,
            )
        if lit.wildcard and "*" in lit.chars:
            raise self.refuse(
                "a field name with both a wildcard and an escaped * is not supported", lit.pos
            )
        return f"{nested}.{lit.text}" if nested else lit.text

    def fields(self, lit: Lit, nested: str | None) -> list[tuple[FieldMapping, str | None]]:
        """The fields a name stands for, each with the nested path its query must be wrapped
        in (a wildcard name outside a nested group: Kibana wraps each nested field's query
        in a nested query on its path), or None."""
        name = self.field_name(lit, nested)
        if lit.wildcard:
            names = self.mapping.expand(name)
            if names:
                every = [self.mapping.resolve(n) for n in names]
                return [(fm, self.scope(fm.name, True, nested, lit)) for fm in every]
        found = self.mapping.resolve(name)
        if found.type in ("object", "nested"):
            raise self.refuse(
                f"{name} is mapped as {found.type}: it has no values to compare", lit.pos
            )
        reason = unmodelled(self.mapping, name, found)
        if reason is not None:
            raise self.refuse(reason, lit.pos)
        known = self.mapping.expand(name) == [name]
        return [(found, self.scope(name, known, nested, lit))]

    def nested_parent(self, name: str) -> str | None:
        """The innermost field above ``name`` mapped ``nested`` (Kibana's data view records
        it as the field's nested path), or None."""
        at = name.rfind(".")
        while at > 0:
            if self.mapping.resolve(name[:at]).type == "nested":
                return name[:at]
            at = name.rfind(".", 0, at)
        return None

    def scope(self, name: str, known: bool, group: str | None, lit: Lit) -> str | None:
        """Check a field against the nested group it is named in (Kibana's
        getFullFieldNameNode, for the fields its data view knows; Elasticsearch's nested
        documents for the others); the path to wrap a wildcard-named field in, or None."""
        parent = self.nested_parent(name)
        if parent == group:
            return None
        if lit.wildcard and group is None:
            return parent  # Kibana wraps it in a nested query on its own path
        if not known:  # Kibana sends it as it is; Elasticsearch looks in the wrong documents
            where = "outside a nested query" if group is None else f"in a nested query on {group}"
            raise self.refuse(
                f"{name} lies under the nested field {parent}: Elasticsearch finds nothing "
                f"there {where}",
                lit.pos,
            )
        # (A field named in a group is under its path, so it always has a nested parent.)
        assert parent is not None
        if group is None:
            raise self.refuse(
                f"{name} is a field of the nested field {parent}, but the query names it "
                f"outside a nested group (Kibana refuses it; write {parent}: {{ … }})",
                lit.pos,
            )
        raise self.refuse(
            f"{name} is a field of the nested field {parent}, but the query names it in the "
            f"nested group {group} (Kibana refuses it: the path must be {parent})",
            lit.pos,
        )

    def nested(self, ast: Ast, nested: str | None) -> Node:
        """Kibana's nested function: the group's path is the field name after the enclosing
        group's path, and the fields inside are named after it (nested.ts)."""
        assert ast.field is not None
        path = self.field_name(ast.field, nested)
        mapped = self.mapping.resolve(path)
        if mapped.type != "nested":
            raise self.refuse(
                f"nested query on {path}, which the mapping profile does not map as nested "
                "(Elasticsearch refuses a nested query on a path that is not of nested type)",
                ast.pos,
            )
        return {"node": "nested", "path": path, "arg": self.compile(ast.args[0], path)}

    def values(self, lit: Lit, values: Ast, nested: str | None) -> Node:
        kind = values.kind
        if kind in ("vor", "vand"):
            return _combine(kind[1:], [self.values(lit, v, nested) for v in values.args])
        if kind == "vnot":
            return _negate(self.values(lit, values.args[0], nested))
        assert values.value is not None
        value = values.value
        if lit.lone_wildcard and value.lone_wildcard:
            return match_all(self.mapping, nested)  # Kibana's match_all
        preds = [_wrapped(self.is_(fm, value), path) for fm, path in self.fields(lit, nested)]
        return _combine("or", preds)

    def is_(self, fm: FieldMapping, value: Lit) -> Node:
        """Kibana's ``is`` on one field (spec/kql.md, How Kibana runs a KQL query)."""
        where = value.pos
        if value.lone_wildcard:
            return _pred(fm, "exists", [])
        if value.special is None:
            raise self.refuse(
                f"{fm.name}: null is not a value (Elasticsearch refuses a query for null)", where
            )
        ir = fm.ir_type
        if value.wildcard:
            if fm.type == "keyword":
                return _pred(fm, "wildcard_query", [_normalized(fm, wildcard_pattern(value.chars))])
            if ir in ("text", "keyword", "wildcard"):
                return self.query_string(fm, value)
            raise self.refuse(
                f"{fm.name}: a wildcard on {_a(fm.type)} field (Elasticsearch refuses it)", where
            )
        text = value.text
        if ir == "date":
            self.check(fm, text, where)
            return _pred(fm, "eq", [text])
        if fm.type == "keyword":
            return _pred(fm, "eq", [_normalized(fm, text)])
        if ir == "text":
            return _pred(fm, "match_phrase" if value.quoted else "match", [text])
        return self.term(fm, text, where)

    def term(self, fm: FieldMapping, text: str, where: int) -> Node:
        """A match or term query on a field that is not text: the type's term query."""
        if fm.ir_type == "ip" and "/" in text:
            from .reference.ip import parse_cidr

            if parse_cidr(text) is None:
                raise self.refuse(f"{fm.name}: {text!r} is not a CIDR block", where)
            return _pred(fm, "cidr", [text])
        self.check(fm, text, where)
        return _pred(fm, "eq", [_normalized(fm, text)])

    def check(self, fm: FieldMapping, text: str, where: int) -> None:
        if fm.ir_type in ("keyword", "wildcard", "text"):
            return
        if fm.ir_type == "date" and re.match(r"now\b|.*\|\|", text):
            raise self.refuse(f"{fm.name}: date math ({text!r}) is not supported", where)
        problem = _unreadable(fm.ir_type, text, text)
        if problem is not None:
            raise self.refuse(
                f"{fm.name}: {text!r} is not {_a(problem)} (Elasticsearch refuses the query)",
                where,
            )

    def query_string(self, fm: FieldMapping, value: Lit) -> Node:
        """Kibana's ``query_string`` for a wildcard value on a field that is not a plain
        keyword. Whitespace is no operator there, but the query parser's terms end at it: each
        term with a ``*`` is a wildcard query of its own, and a run of plain terms between
        them is one field query (its terms joined by one space); the clauses are OR-ed (the
        default operator). A lone ``*`` term is an exists query."""
        terms: list[list[Any]] = [[]]
        for c in value.chars:
            if isinstance(c, str) and c in _QS_SPACE:
                if terms[-1]:
                    terms.append([])
            else:
                terms[-1].append(c)
        preds: list[Node] = []
        plain: list[str] = []

        def flush() -> None:
            if plain:
                text = " ".join(plain)
                op = "match" if fm.ir_type == "text" else "eq"
                preds.append(_pred(fm, op, [_normalized(fm, text)]))
                plain.clear()

        for term in (t for t in terms if t):
            if not any(c is _WILDCARD for c in term):
                text = "".join(term)
                if text in ("AND", "OR", "NOT"):
                    raise self.refuse(
                        f"{fm.name}: the value holds {text}, an operator of the query_string "
                        "Kibana sends for it: not supported",
                        value.pos,
                    )
                plain.append(text)
                continue
            flush()
            if term == [_WILDCARD]:  # Elasticsearch's query_string: `field:*` is exists
                preds.append(_pred(fm, "exists", []))
            else:
                preds.append(_pred(fm, "wildcard_query", [wildcard_pattern(term)]))
        flush()
        return _combine("or", preds)

    def range(self, lit: Lit, op: str, value: Lit, nested: str | None) -> Node:
        if value.special is None:
            raise self.refuse(
                "a range to null is not supported (Elasticsearch reads it as no bound)", value.pos
            )
        text = value.text
        preds = []
        for fm, path in self.fields(lit, nested):
            if fm.ir_type == "text":
                raise self.refuse(f"{fm.name}: a range on a text field is not supported", value.pos)
            if fm.ir_type == "ip" and "/" in text:
                raise self.refuse(f"{fm.name}: {text!r} is not an IP address", value.pos)
            self.check(fm, text, value.pos)
            preds.append(_wrapped(_pred(fm, op, [_normalized(fm, text)]), path))
        return _combine("or", preds)


def _a(noun: str) -> str:
    return ("an " if noun[0] in "aeiouAEIOU" or noun.startswith("ip") else "a ") + noun


def unmodelled(mapping: Mapping, name: str, found: FieldMapping) -> str | None:
    """Why a field of a type the IR cannot express cannot be used, or None. A key below a
    flattened field is a keyword leaf; the flattened field's own name is not."""
    if found.type not in _UNMODELLED:
        return None
    parts = name.split(".")
    if found.type == "flattened" and any(
        mapping.resolve(".".join(parts[:i])).type == "flattened" for i in range(1, len(parts))
    ):
        return None
    return f"{name} is a {found.type} field: {_UNMODELLED[found.type]}"


def match_all(mapping: Mapping, scope: str | None = None) -> Node:
    """A condition every event holds (Elasticsearch's match_all): the IR has no constant, so
    a field exists or does not. In a nested group, every nested document holds it: a field
    under the group's path (the first the mapping names, else ``PATH._``)."""
    name = "@timestamp"
    if scope is not None:
        under = mapping.expand(scope + ".*")
        name = under[0] if under else scope + "._"
    exists = _pred(mapping.resolve(name), "exists", [])
    return {"node": "or", "args": [exists, {"node": "not", "arg": exists}]}


def _wrapped(node: Node, path: str | None) -> Node:
    return node if path is None else {"node": "nested", "path": path, "arg": node}


def _normalized(fm: FieldMapping, text: str) -> str:
    return lowercase(text) if fm.normalizer == "lowercase" else text


def _pred(fm: FieldMapping, op: str, values: list[str]) -> Node:
    node: Node = {
        "node": "pred",
        "field": fm.multi_field_of or fm.name,
        "field_type": fm.ir_type,
        "op": op,
        "values": values,
    }
    if fm.ir_type == "keyword":
        if fm.ignore_above is not None:
            node["ignore_above"] = fm.ignore_above
        if fm.normalizer is not None:
            node["normalizer"] = fm.normalizer
    if fm.ir_type == "text":
        node["analyzer"] = fm.analyzer or "standard"
    return node


def _negate(node: Node) -> Node:
    return node["arg"] if node["node"] == "not" else {"node": "not", "arg": node}


def _combine(kind: str, parts: list[Node]) -> Node:
    """A flat and/or of the parts (same-kind children spliced in); in an ``or``, preds that
    differ only in their literals share one pred."""
    args: list[Node] = []
    for part in parts:
        args.extend(part["args"] if part["node"] == kind else [part])
    if kind == "or":
        merged: list[Node] = []
        index: dict[str, int] = {}
        for arg in args:
            if arg["node"] == "pred" and arg["op"] in _MERGEABLE:
                key = repr(sorted((k, v) for k, v in arg.items() if k != "values"))
                if key in index:
                    values = merged[index[key]]["values"]
                    values.extend(v for v in arg["values"] if v not in values)
                    continue
                index[key] = len(merged)
                arg = {**arg, "values": list(arg["values"])}
            merged.append(arg)
        args = merged
    return args[0] if len(args) == 1 else {"node": kind, "args": args}


def compile_query(
    text: str,
    *,
    source: str = "<query>",
    mapping: Mapping | None = None,
    field_types: Any = None,
) -> Node:
    """A KQL query as an IR condition (spec/kql.md); EqlError with line:column when Kibana
    or Elasticsearch would refuse it, or imds-scan cannot run it."""
    if mapping is None:
        from .mapping import load_mapping

        mapping = load_mapping(None, field_types)
    parser = _Parser(text, source)
    ast = parser.start()
    if ast is None:  # Kibana reads an empty query as `*: *`
        return match_all(mapping)
    node = _Compiler(parser, mapping).compile(ast, None)
    if ir_depth(node) > MAX_DEPTH:
        raise parser.error(
            f"the condition nests more than {MAX_DEPTH} levels deep "
            f"(and/or/not; at most {MAX_DEPTH} are supported)",
            ast.pos,
        )
    return node
