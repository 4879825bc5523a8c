"""Elasticsearch's regular expressions (EQL ``regex``/``regex~``, the ``regexp`` query):
Lucene's ``RegExp`` syntax with Elasticsearch's default flags, matched against the whole value,
over code points (spec/ir.md, "Regular expressions").

The pattern is parsed by the same grammar, step for step, as the Rust engine's
``lucene_regex.rs``, and refused with the same reasons. Matching is a Thompson (Pike)
simulation over the expression's automaton: linear in the value's length for every pattern
(Python's :mod:`re` backtracks, so it is not used).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

MAX_CP = 0x10FFFF
# At most this many positions (code point tests) once counted repetitions and intervals are
# written out: keeps both engines' automata small and their refusals the same.
MAX_POSITIONS = 10_000
# At most this many nested groups, and this deep an expression tree.
MAX_DEPTH = 100

Ranges = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class CharSet:
    """One code point out of sorted, disjoint ranges (empty: none)."""

    ranges: Ranges


@dataclass(frozen=True)
class Seq:
    """Concatenation; empty: the empty string."""

    items: tuple[Node, ...]


@dataclass(frozen=True)
class Alt:
    """Union; empty: the empty language (``#``)."""

    items: tuple[Node, ...]


@dataclass(frozen=True)
class Repeat:
    """``lo`` to ``hi`` (unbounded: None) repetitions."""

    inner: Node
    lo: int
    hi: int | None


Node = CharSet | Seq | Alt | Repeat


class _Refused(Exception):
    """A refusal reason, before the pattern is put in front of it."""


def _invalid(why: str) -> _Refused:
    return _Refused(f"not a valid Lucene regular expression: {why}")


def _render(pattern: str) -> str:
    """The pattern as shown in a refusal: ``\\`` and ``"`` escaped, control and invisible
    formatting characters (and lone surrogates) as ``\\uXXXX``."""
    out = []
    for c in pattern:
        cp = ord(c)
        if c == "\\":
            out.append("\\\\")
        elif c == '"':
            out.append('\\"')
        elif _unsafe_char(cp) or 0xD800 <= cp <= 0xDFFF:
            out.append(f"\\u{cp:04x}")
        else:
            out.append(c)
    return "".join(out)


def _unsafe_char(cp: int) -> bool:
    return (
        cp < 0x20
        or 0x7F <= cp <= 0x9F
        or 0x200B <= cp <= 0x200F
        or 0x2028 <= cp <= 0x202E
        or 0x2066 <= cp <= 0x2069
        or cp == 0xFEFF
    )


def _normalize(ranges: list[tuple[int, int]]) -> Ranges:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return tuple(out)


def _complement(ranges: Ranges) -> Ranges:
    out = []
    nxt = 0
    for lo, hi in ranges:
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= MAX_CP:
        out.append((nxt, MAX_CP))
    return tuple(out)


def _char_ranges(cp: int, fold: bool) -> list[tuple[int, int]]:
    """A code point and, when folding, its other ASCII case (Lucene folds ASCII only)."""
    if fold and 0x61 <= cp <= 0x7A:
        return [(cp - 32, cp - 32), (cp, cp)]
    if fold and 0x41 <= cp <= 0x5A:
        return [(cp, cp), (cp + 32, cp + 32)]
    return [(cp, cp)]


_DIGIT: Ranges = ((0x30, 0x39),)
_SPACE: Ranges = ((0x09, 0x0A), (0x0D, 0x0D), (0x20, 0x20))
_WORD: Ranges = ((0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A))
_PREDEFINED: dict[str, Ranges] = {
    "d": _DIGIT,
    "D": _complement(_DIGIT),
    "s": _SPACE,
    "S": _complement(_SPACE),
    "w": _WORD,
    "W": _complement(_WORD),
}
_ANY = CharSet(((0, MAX_CP),))


def _is_ascii_letter(c: str) -> bool:
    return ("a" <= c <= "z") or ("A" <= c <= "Z")


def _depth(node: Node) -> int:
    if isinstance(node, CharSet):
        return 1
    if isinstance(node, Repeat):
        return 1 + _depth(node.inner)
    return 1 + max((_depth(item) for item in node.items), default=0)


def _positions(node: Node) -> int:
    """Code point tests once repetitions are written out (unbounded: minimum plus one)."""
    if isinstance(node, CharSet):
        return 1
    if isinstance(node, Repeat):
        copies = node.hi if node.hi is not None else node.lo + 1
        return _positions(node.inner) * copies
    return sum(_positions(item) for item in node.items)


def _checked(node: Node) -> Node:
    if _depth(node) > MAX_DEPTH:
        raise _Refused(f"nesting deeper than {MAX_DEPTH} levels is not supported")
    return node


class _Parser:
    """Lucene's ``RegExp`` grammar (flags ALL), as ``lucene_regex.rs`` follows it."""

    def __init__(self, pattern: str, fold: bool) -> None:
        self.chars = pattern
        self.pos = 0
        self.fold = fold
        self.open = 0

    def more(self) -> bool:
        return self.pos < len(self.chars)

    def peek(self, chars: str) -> bool:
        return self.more() and self.chars[self.pos] in chars

    def eat(self, c: str) -> bool:
        if self.more() and self.chars[self.pos] == c:
            self.pos += 1
            return True
        return False

    def next(self) -> str:
        if not self.more():
            raise _invalid("unexpected end of pattern")
        c = self.chars[self.pos]
        self.pos += 1
        return c

    def parse(self) -> Node:
        if not self.chars:
            return Seq(())
        node = self.union()
        if self.more():
            # Only a ``)`` without its ``(`` stops the top level early.
            raise _invalid("unexpected ')'")
        return node

    def union(self) -> Node:
        alts = [self.intersection()]
        while self.eat("|"):
            alts.append(self.intersection())
        if len(alts) == 1:
            return alts[0]
        return _checked(Alt(tuple(alts)))

    def intersection(self) -> Node:
        node = self.concat()
        if self.peek("&"):
            raise _Refused("intersection (&) is not supported")
        return node

    def concat(self) -> Node:
        # The first item is taken whatever it is: ``|``, ``)``, ``&``, ``*``, … there are literals.
        items = [self.repeat()]
        while self.more() and not self.peek(")|&"):
            items.append(self.repeat())
        if len(items) == 1:
            return items[0]
        return _checked(Seq(tuple(items)))

    def repeat(self) -> Node:
        node = self.atom()
        while self.peek("?*+{"):
            op = self.next()
            lo: int
            hi: int | None
            if op == "?":
                lo, hi = 0, 1
            elif op == "*":
                lo, hi = 0, None
            elif op == "+":
                lo, hi = 1, None
            else:
                first = self.count()
                if first is None:
                    raise _invalid("a number expected after '{'")
                lo = first
                hi = self.count() if self.eat(",") else lo
                if not self.eat("}"):
                    raise _invalid("missing '}'")
                if hi is not None and hi < lo:
                    raise _invalid("a repetition {n,m} with n > m")
            node = _checked(Repeat(node, lo, hi))
        return node

    def count(self) -> int | None:
        """ASCII digits (Java's ``Integer.parseInt`` range), or None when there are none."""
        start = self.pos
        while self.peek("0123456789"):
            self.pos += 1
        if self.pos == start:
            return None
        value = int(self.chars[start : self.pos])
        if value > 2147483647:
            raise _invalid("a repetition count above 2147483647")
        return value

    def atom(self) -> Node:
        if self.peek("~"):
            raise _Refused("complement (~) is not supported")
        if self.eat("["):
            negate = self.eat("^")
            ranges = self.class_items()
            if not self.eat("]"):
                raise _invalid("missing ']'")
            normal = _normalize(ranges)
            return CharSet(_complement(normal) if negate else normal)
        if self.eat("."):
            return _ANY
        if self.eat("#"):
            return Alt(())
        if self.eat("@"):
            return Repeat(_ANY, 0, None)
        if self.eat('"'):
            start = self.pos
            while self.more() and not self.peek('"'):
                self.pos += 1
            if not self.eat('"'):
                raise _invalid("missing '\"'")
            text = self.chars[start : self.pos - 1]
            return _checked(Seq(tuple(self.char(c) for c in text)))
        if self.eat("("):
            if self.eat(")"):
                return Seq(())
            self.open += 1
            if self.open > MAX_DEPTH:
                raise _Refused(f"nesting deeper than {MAX_DEPTH} levels is not supported")
            node = self.union()
            if not self.eat(")"):
                raise _invalid("missing ')'")
            self.open -= 1
            return node
        if self.eat("<"):
            return self.interval()
        if self.eat("\\") and self.more():
            c = self.chars[self.pos]
            if c == "\\" or _is_ascii_letter(c):
                self.pos += 1
                if c == "\\":
                    return CharSet(((0x5C, 0x5C),))
                if c not in _PREDEFINED:
                    raise _invalid(f"the escape \\{c}")
                return CharSet(_PREDEFINED[c])
        return self.char(self.next())

    def char(self, c: str) -> CharSet:
        return CharSet(_normalize(_char_ranges(ord(c), self.fold)))

    def class_items(self) -> list[tuple[int, int]]:
        """The items of ``[...]`` up to (not including) the closing ``]``."""
        ranges: list[tuple[int, int]] = []
        while True:
            if self.eat("\\"):
                c = self.next()
                if c == "\\":
                    ranges.append((0x5C, 0x5C))
                elif _is_ascii_letter(c):
                    if c not in _PREDEFINED:
                        raise _invalid(f"the escape \\{c}")
                    ranges.extend(_PREDEFINED[c])
                elif self.peek("-"):
                    # Lucene 9 reads ``[\.-z]`` as a range, Lucene 10 as three characters.
                    raise _Refused("an escaped character before '-' in a class is not supported")
                else:
                    ranges.append((ord(c), ord(c)))
            else:
                c = self.next()
                if self.eat("-"):
                    self.eat("\\")
                    end = self.next()
                    if end < c:
                        raise _invalid("a character range out of order")
                    # Ranges are not case-folded (Lucene folds single characters only).
                    ranges.append((ord(c), ord(end)))
                else:
                    ranges.extend(_char_ranges(ord(c), self.fold))
            if not self.more() or self.peek("]"):
                return ranges

    def interval(self) -> Node:
        """``<n-m>`` after the ``<``: the decimal numbers from n to m."""
        start = self.pos
        while self.more() and not self.peek(">"):
            self.pos += 1
        if not self.eat(">"):
            raise _invalid("missing '>'")
        body = self.chars[start : self.pos - 1]
        if "-" not in body:
            raise _invalid("a named automaton <...> (Elasticsearch has none)")
        dash = body.index("-")
        if dash == 0 or dash == len(body) - 1 or body.count("-") > 1:
            raise _invalid("an interval <n-m> that is not two numbers")
        low, high = body[:dash], body[dash + 1 :]

        def digits_only(part: str) -> bool:
            return all("0" <= c <= "9" for c in part)

        if not digits_only(low) or not digits_only(high):
            if all(c.isascii() and c != "+" for c in low + high):
                raise _invalid("an interval <n-m> that is not two numbers")
            # Java's parseInt takes a ``+`` and non-ASCII digits: refused rather than guessed.
            raise _Refused("an interval <n-m> with a sign or non-ASCII digits is not supported")
        lo, hi = int(low), int(high)
        if lo > 2147483647 or hi > 2147483647:
            raise _invalid("an interval bound above 2147483647")
        lo, hi = min(lo, hi), max(lo, hi)
        # Equal lengths fix the width (zero-padded); else any number of leading zeros.
        width = len(low) if len(low) == len(high) else 0
        return _checked(_interval_node(lo, hi, width))


def _digit_set(lo: int, hi: int) -> CharSet:
    return CharSet(((0x30 + lo, 0x30 + hi),))


def _fixed_range(lo: list[int], hi: list[int]) -> list[list[Node]]:
    """The strings of ``len(lo)`` digits from ``lo`` to ``hi``, as digit-class sequences."""
    if not lo:
        return [[]]
    rest = len(lo) - 1
    if lo[0] == hi[0]:
        return [[_digit_set(lo[0], lo[0]), *tail] for tail in _fixed_range(lo[1:], hi[1:])]
    out: list[list[Node]] = [
        [_digit_set(lo[0], lo[0]), *tail] for tail in _fixed_range(lo[1:], [9] * rest)
    ]
    if hi[0] > lo[0] + 1:
        middle: list[Node] = [_digit_set(lo[0] + 1, hi[0] - 1)]
        out.append(middle + [_digit_set(0, 9) for _ in range(rest)])
    out.extend([_digit_set(hi[0], hi[0]), *tail] for tail in _fixed_range([0] * rest, hi[1:]))
    return out


def _digits_of(n: int, width: int) -> list[int]:
    return [int(d) for d in str(n).zfill(width)]


def _interval_node(lo: int, hi: int, width: int) -> Node:
    """Lucene's ``makeDecimalInterval``: with a width, exactly that many digits; without, any
    number of leading zeros before the number."""
    if width > 0:
        seqs = _fixed_range(_digits_of(lo, width), _digits_of(hi, width))
        return Alt(tuple(Seq(tuple(seq)) for seq in seqs))
    alts: list[Node] = []
    for length in range(len(str(lo)), len(str(hi)) + 1):
        floor = 0 if length == 1 else 10 ** (length - 1)
        a, b = max(lo, floor), min(hi, 10**length - 1)
        for seq in _fixed_range(_digits_of(a, length), _digits_of(b, length)):
            alts.append(Seq(tuple(seq)))
    return Seq((Repeat(_digit_set(0, 0), 0, None), Alt(tuple(alts))))


# State numbers the reference engine's step cache may hold before it is dropped.
_CACHE_LIMIT = 200_000

# The automaton: instruction kinds.
_SET, _SPLIT, _MATCH = 0, 1, 2


class _Program:
    """A Thompson automaton: ``kind[pc]``; a ``_SET`` tests ``sets[pc]`` and goes on to
    ``out[pc][0]``; a ``_SPLIT`` goes on to every ``out[pc]`` without reading."""

    def __init__(self) -> None:
        self.kind: list[int] = []
        self.sets: list[Ranges] = []
        self.starts: list[list[int]] = []
        self.out: list[list[int]] = []

    def add(self, kind: int, ranges: Ranges, out: list[int]) -> int:
        self.kind.append(kind)
        self.sets.append(ranges)
        self.starts.append([lo for lo, _ in ranges])
        self.out.append(out)
        return len(self.kind) - 1

    def compile(self, node: Node, nxt: int) -> int:
        """The start of ``node`` followed by ``nxt`` (built back to front)."""
        if isinstance(node, CharSet):
            return self.add(_SET, node.ranges, [nxt])
        if isinstance(node, Seq):
            for item in reversed(node.items):
                nxt = self.compile(item, nxt)
            return nxt
        if isinstance(node, Alt):
            if not node.items:
                return self.add(_SET, (), [nxt])
            return self.add(_SPLIT, (), [self.compile(item, nxt) for item in node.items])
        cur = nxt
        if node.hi is None:
            loop = self.add(_SPLIT, (), [])
            self.out[loop].extend([self.compile(node.inner, loop), nxt])
            cur = loop
        else:
            for _ in range(node.hi - node.lo):
                cur = self.add(_SPLIT, (), [self.compile(node.inner, cur), nxt])
        for _ in range(node.lo):
            cur = self.compile(node.inner, cur)
        return cur


class LuceneRegex:
    """A compiled Lucene regular expression (whole-value match); ``case_insensitive``: ASCII
    letters match either case, as ``regex~`` does. Raises ``ValueError(reason)`` when the
    pattern is refused, ``regex "<pattern>": <why>``."""

    def __init__(self, pattern: str, case_insensitive: bool) -> None:
        try:
            if any(0xD800 <= ord(c) <= 0xDFFF for c in pattern):
                # Never in a rule the Rust engine reads (JSON text is valid UTF-8 there).
                raise _Refused("a lone surrogate is not supported")
            node = _Parser(pattern, case_insensitive).parse()
            if _positions(node) > MAX_POSITIONS:
                raise _Refused(
                    f"more than {MAX_POSITIONS} positions after expanding repetitions "
                    "is not supported"
                )
        except _Refused as refused:
            raise ValueError(f'regex "{_render(pattern)}": {refused}') from None
        self._program = _Program()
        self._match = self._program.add(_MATCH, (), [])
        start = self._program.compile(node, self._match)
        self._seen = [-1] * len(self._program.kind)
        self._mark = 0
        initial: list[int] = []
        self._add(initial, start)
        self._initial = tuple(initial)
        # Steps already taken, by state set and code point (a lazily built DFA, as RE2 keeps):
        # dropped when it grows past _CACHE_LIMIT state numbers, so memory stays bounded and
        # each code point still costs at most one step over the automaton.
        self._cache: dict[tuple[int, ...], dict[int, tuple[int, ...]]] = {}
        self._cached = 0

    def _add(self, states: list[int], pc: int) -> None:
        """``pc`` and what it reaches without reading, into ``states`` (once per step)."""
        kind, out, seen, mark = self._program.kind, self._program.out, self._seen, self._mark
        stack = [pc]
        while stack:
            pc = stack.pop()
            if seen[pc] == mark:
                continue
            seen[pc] = mark
            if kind[pc] == _SPLIT:
                stack.extend(reversed(out[pc]))
            else:
                states.append(pc)

    def _step(self, states: tuple[int, ...], cp: int) -> tuple[int, ...]:
        """The states after reading ``cp`` in ``states``."""
        prog = self._program
        kind, sets, starts, out = prog.kind, prog.sets, prog.starts, prog.out
        self._mark += 1
        following: list[int] = []
        for pc in states:
            if kind[pc] != _SET:
                continue
            i = bisect_right(starts[pc], cp) - 1
            if i >= 0 and cp <= sets[pc][i][1]:
                self._add(following, out[pc][0])
        return tuple(following)

    def is_match(self, value: str) -> bool:
        """The whole of ``value`` matches: one pass, at most one step per code point."""
        cache = self._cache
        states = self._initial
        for char in value:
            cp = ord(char)
            row = cache.get(states)
            if row is None:
                if self._cached > _CACHE_LIMIT:
                    cache.clear()
                    self._cached = 0
                row = cache[states] = {}
            following = row.get(cp)
            if following is None:
                following = row[cp] = self._step(states, cp)
                self._cached += len(following) + 1
            if not following:
                return False
            states = following
        return self._match in states
