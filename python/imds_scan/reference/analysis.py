"""Text analysis of ``text`` fields (spec/kql.md, Analysis), mirrored by
crates/imds-core/src/analysis.rs: Elasticsearch's ``standard`` analyzer (Lucene's
StandardTokenizer grammar, then lowercase) and Elastic's ``powershell_script`` pattern
analyzer, Java's ``Character.toLowerCase``, and what a ``query_string`` wildcard with
``analyze_wildcard`` tests each token against.

The tokenizer is the grammar of spec/kql.md written as a regular expression over character
classes (:data:`GRAMMAR`), run as an NFA whose state sets are cached (a lazily built DFA).
The character classes and the lowercase table are generated from the Unicode data files by
spec/analysis/generate_tables.py, which also turns this NFA into the Rust engine's DFA.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from . import _analysis_data as _data

ANALYZERS: tuple[str, ...] = ("standard", "powershell_script")

# Lucene's scanner buffer (StandardTokenizer's default max token length), in UTF-16 units.
MAX_TOKEN_UNITS = 255

_BIT = {name: 1 << i for i, name in enumerate(_data.FLAGS)}


def _numbers(text: str, base: int) -> list[int]:
    return [int(word, base) for word in text.split()]


_CLASS_FLAGS = _numbers(_data.CLASS_FLAGS, 16)
_RANGE_STARTS = _numbers(_data.RANGE_STARTS, 16)
_RANGE_CLASSES = _numbers(_data.RANGE_CLASSES, 10)
_RUNS = _numbers(_data.LOWER_RUNS, 10)
_LOWER: dict[int, int] = {
    first + k * stride: first + k * stride + delta
    for first, count, stride, delta in zip(
        _RUNS[::4], _RUNS[1::4], _RUNS[2::4], _RUNS[3::4], strict=True
    )
    for k in range(count)
}


def char_class(cp: int) -> int:
    """The tokenizer class of a code point (an index into the class flags)."""
    return _RANGE_CLASSES[bisect.bisect_right(_RANGE_STARTS, cp) - 1]


def lowercase(text: str) -> str:
    """Java's ``Character.toLowerCase`` per code point: the simple mapping only (no locale,
    no special casing, no final sigma), so the length in code points never changes."""
    return text.translate(_LOWER)


# The grammar, as a regular expression over character classes. A node is one of
# ("char", any_of, none_of): one character whose flags meet any_of and none of none_of;
# ("seq", nodes), ("alt", nodes), ("star", node), ("plus", node), ("opt", node).
Node = tuple[object, ...]


def _char(*flags: str, none: tuple[str, ...] = ()) -> Node:
    return ("char", sum(_BIT[f] for f in flags), sum(_BIT[f] for f in none))


def _seq(*nodes: Node) -> Node:
    return ("seq", nodes)


def _alt(*nodes: Node) -> Node:
    return ("alt", nodes)


def _star(node: Node) -> Node:
    return ("star", node)


def _plus(node: Node) -> Node:
    return ("plus", node)


def _opt(node: Node) -> Node:
    return ("opt", node)


def _grammar() -> Node:
    extend = _star(_char("EXTEND"))  # WB4: Extend, Format, ZWJ stick to the character before

    def ex(flag: str) -> Node:
        return _seq(_char(flag), extend)

    # In emoji the presentation selectors are not absorbed that way.
    extend_sans = _star(_char("EXTEND", none=("VS15", "VS16")))

    def ex_sans(flag: str) -> Node:
        return _seq(_char(flag), extend_sans)

    zwj = _char("ZWJ")
    element = _alt(
        _seq(_star(zwj), ex_sans("EMOJI_CHAR"), _opt(_char("VS16"))),
        _seq(_opt(_seq(_star(zwj), ex_sans("EMOJI_MODIFIER_BASE"))), ex_sans("EMOJI_MODIFIER")),
    )
    emoji = _alt(
        _seq(
            element,
            _alt(_star(_seq(zwj, element)), _seq(_plus(_char("TAG_SPEC")), _char("TAG_TERM"))),
        ),
        _seq(ex_sans("KEYCAP_BASE"), _opt(_char("VS16")), ex_sans("KEYCAP")),
        _seq(ex("RI"), ex("RI")),
    )
    enl, num, kata = ex("EXTENDNUMLET"), ex("NUMERIC"), ex("KATAKANA")
    heb, ahl = ex("HEBREW"), ex("AHLETTER")
    numbers = _seq(num, _star(_seq(_alt(_star(enl), ex("MIDNUM")), num)))
    number = _seq(_star(enl), numbers, _star(enl))
    unit = _alt(
        _seq(kata, _star(_seq(_star(enl), kata))),
        _plus(
            _alt(
                _seq(heb, _alt(ex("SINGLE_QUOTE"), _seq(ex("DOUBLE_QUOTE"), heb))),
                numbers,
                _seq(ahl, _star(_seq(_alt(_star(enl), ex("MIDLETTER")), ahl))),
            )
        ),
    )
    word = _seq(_star(enl), unit, _star(_seq(_plus(enl), unit)), _star(enl))
    return _alt(
        emoji,
        number,
        _plus(ex("HANGUL")),
        _plus(kata),
        word,
        _plus(ex("SEA")),
        ex("HAN"),
        ex("HIRAGANA"),
    )


GRAMMAR = _grammar()


class _Nfa:
    """Thompson's construction of :data:`GRAMMAR`: ``eps[s]`` the empty moves of state s,
    ``edges[s]`` its (any_of, none_of, target) character moves; one final state."""

    def __init__(self, node: Node) -> None:
        self.eps: list[list[int]] = []
        self.edges: list[list[tuple[int, int, int]]] = []
        self.start, self.final = self._build(node)

    def _new(self) -> int:
        self.eps.append([])
        self.edges.append([])
        return len(self.eps) - 1

    def _build(self, node: Node) -> tuple[int, int]:
        kind = node[0]
        start, end = self._new(), self._new()
        if kind == "char":
            any_of, none_of = node[1], node[2]
            assert isinstance(any_of, int) and isinstance(none_of, int)
            self.edges[start].append((any_of, none_of, end))
        elif kind in ("seq", "alt"):
            parts = node[1]
            assert isinstance(parts, tuple)
            at = start
            for part in parts:
                first, last = self._build(part)
                if kind == "seq":
                    self.eps[at].append(first)
                    at = last
                else:
                    self.eps[start].append(first)
                    self.eps[last].append(end)
            if kind == "seq":
                self.eps[at].append(end)
        else:
            inner = node[1]
            assert isinstance(inner, tuple)
            first, last = self._build(inner)
            self.eps[start].append(first)
            self.eps[last].append(end)
            if kind in ("star", "opt"):
                self.eps[start].append(end)
            if kind in ("star", "plus"):
                self.eps[last].append(first)
        return start, end

    def closure(self, states: set[int]) -> frozenset[int]:
        todo, seen = list(states), set(states)
        while todo:
            for nxt in self.eps[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return frozenset(seen)

    def step(self, states: frozenset[int], flags: int) -> frozenset[int]:
        moved = {
            target
            for state in states
            for any_of, none_of, target in self.edges[state]
            if flags & any_of and not flags & none_of
        }
        return self.closure(moved)


_NFA = _Nfa(GRAMMAR)


class _Dfa:
    """The NFA's state sets, numbered as they are reached: 0 is the empty set (dead), 1 the
    start. ``next[s][c]`` is filled on demand (-1: not computed yet)."""

    def __init__(self, classes: int) -> None:
        self.classes = classes
        self.sets: list[frozenset[int]] = []
        self.ids: dict[frozenset[int], int] = {}
        self.next: list[list[int]] = []
        self.accepting: list[bool] = []
        self._add(frozenset())
        self._add(_NFA.closure({_NFA.start}))

    def _add(self, states: frozenset[int]) -> int:
        found = self.ids.get(states)
        if found is not None:
            return found
        self.ids[states] = len(self.sets)
        self.sets.append(states)
        self.next.append([-1] * self.classes)
        self.accepting.append(_NFA.final in states)
        return len(self.sets) - 1

    def step(self, state: int, cls: int) -> int:
        nxt = self.next[state][cls]
        if nxt < 0:
            nxt = self._add(_NFA.step(self.sets[state], _CLASS_FLAGS[cls]))
            self.next[state][cls] = nxt
        return nxt


def build_dfa(classes: int) -> _Dfa:
    """Every state reachable from the start, every transition computed (the generator writes
    this table into the Rust engine)."""
    dfa = _Dfa(classes)
    state = 0
    while state < len(dfa.sets):
        for cls in range(classes):
            dfa.step(state, cls)
        state += 1
    return dfa


_DFA = _Dfa(len(_CLASS_FLAGS))


def _units(cp: int) -> int:
    return 2 if cp > 0xFFFF else 1


def standard_tokens(text: str) -> list[str]:
    """Lucene's StandardTokenizer, before lowercasing: at each point the longest match of
    the grammar within the scanner's window of 255 UTF-16 units, else one code point skipped."""
    cps = [ord(ch) for ch in text]
    classes = [char_class(cp) for cp in cps]
    tokens = []
    start, n = 0, len(cps)
    while start < n:
        state, units, end, pos = 1, 0, start, start
        while pos < n:
            width = _units(cps[pos])
            # a high surrogate in the window's last unit is held back while input follows
            if 0xD800 <= cps[pos] <= 0xDBFF and pos + 1 < n:
                width = 2
            if units + width > MAX_TOKEN_UNITS:
                break
            units += width
            state = _DFA.step(state, classes[pos])
            if state == 0:
                break
            pos += 1
            if _DFA.accepting[state]:
                end = pos
        if end > start:
            tokens.append(text[start:end])
            start = end
        else:
            start += 1
    return tokens


def _is_pattern_char(ch: str) -> bool:
    # Java's [\W&&[^-]]: everything but ASCII letters, digits, '_' and '-'
    return not (ch.isascii() and (ch.isalnum() or ch in "_-"))


def powershell_tokens(text: str) -> list[str]:
    """The pattern tokenizer of ``[\\W&&[^-]]+``: the non-empty pieces between its matches."""
    tokens: list[str] = []
    current: list[str] = []
    for ch in text:
        if _is_pattern_char(ch):
            if current:
                tokens.append("".join(current))
                current = []
        else:
            current.append(ch)
    if current:
        tokens.append("".join(current))
    return tokens


def analyze(analyzer: str, text: str) -> list[str]:
    """The tokens of ``text`` in position order (token i at position i)."""
    if analyzer == "standard":
        return [lowercase(token) for token in standard_tokens(text)]
    if analyzer == "powershell_script":
        return [lowercase(token) for token in powershell_tokens(text)]
    raise ValueError(f"unknown analyzer '{analyzer}' (expected standard or powershell_script)")


@dataclass(frozen=True)
class TokenQuery:
    """What one token is tested against: ``term`` (equal), ``prefix`` (starts with),
    ``wildcard`` (matches ``text`` whole, IR wildcard syntax) or ``exists`` (the field has a
    value)."""

    kind: str
    text: str = ""


# Lucene's query parser separates terms at these (Kibana escapes none of them).
_WHITESPACE = frozenset(" \t\n\r\u3000")
_SPECIAL = frozenset("*?\\")


def _pieces(pattern: str) -> list[list[tuple[str, str]]]:
    """The literal cut at unescaped whitespace; items ("lit", ch), ("esc", ch), ("*", "*"),
    ("?", "?")."""
    pieces: list[list[tuple[str, str]]] = [[]]
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            pieces[-1].append(("esc", pattern[i + 1]))
            i += 2
            continue
        if ch in _WHITESPACE:
            pieces.append([])
        elif ch in "*?":
            pieces[-1].append((ch, ch))
        else:
            pieces[-1].append(("lit", ch))
        i += 1
    return [piece for piece in pieces if piece]


def _normalized_wildcard(items: list[tuple[str, str]]) -> str:
    # Literal runs are lowercased; escaped characters and wildcards are kept as they are.
    out: list[str] = []
    run: list[str] = []
    for kind, ch in [*items, ("end", "")]:
        if kind == "lit":
            run.append(ch)
            continue
        if run:
            out.extend("\\" + c if c in _SPECIAL else c for c in lowercase("".join(run)))
            run = []
        if kind == "esc":
            out.append("\\" + ch)
        elif kind in "*?":
            out.append(ch)
    return "".join(out)


def _query_string(analyzer: str, pattern: str, analyze_wildcard: bool) -> list[TokenQuery]:
    if analyzer not in ANALYZERS:
        raise ValueError(f"unknown analyzer '{analyzer}' (expected standard or powershell_script)")
    out: list[TokenQuery] = []
    for items in _pieces(pattern):
        wild = [i for i, (kind, _) in enumerate(items) if kind in "*?"]
        text = "".join(ch for kind, ch in items if kind in ("lit", "esc"))
        if not wild:
            out.extend(TokenQuery("term", token) for token in analyze(analyzer, text))
        elif len(items) == 1 and items[0][0] == "*":
            out.append(TokenQuery("exists"))
        elif wild == [len(items) - 1] and items[-1][0] == "*":
            if not analyze_wildcard:
                out.append(TokenQuery("prefix", lowercase(text)))
                continue
            tokens = analyze(analyzer, text)
            out.extend(TokenQuery("term", token) for token in tokens[:-1])
            out.extend(TokenQuery("prefix", token) for token in tokens[-1:])
        else:
            out.append(TokenQuery("wildcard", _normalized_wildcard(items)))
    return out


def wildcard_on_text(analyzer: str, pattern: str) -> list[TokenQuery]:
    """A ``wildcard_query`` literal on a text field, as Elasticsearch's query_string parser
    reads the query Kibana sends for it (no ``analyze_wildcard``: spec/kql.md): the pred holds
    when some entry holds for some token of the field's values; no entries: nothing matches."""
    return _query_string(analyzer, pattern, analyze_wildcard=False)


def wildcard_on_text_analyzed(analyzer: str, pattern: str) -> list[TokenQuery]:
    """The same with ``analyze_wildcard: true`` (a prefix term's text is tokenized)."""
    return _query_string(analyzer, pattern, analyze_wildcard=True)
