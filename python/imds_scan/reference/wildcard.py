"""EQL wildcard patterns and ASCII case folding (spec/ir.md), mirrored by
crates/imds-core/src/wildcard.rs."""

from __future__ import annotations

import re

_ASCII_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


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
            pos = _shift_and(masks, any_one, len(piece), value, pos, end)
            if pos < 0:
                return False
        return True


def _shift_and(
    masks: dict[str, int], any_one: int, size: int, value: str, pos: int, end: int
) -> int:
    """Where the leftmost match of a ``size``-long piece (bit i of ``masks[c]``: position i
    takes ``c``; ``any_one``: the positions that take any code point) in ``value[pos:end]``
    ends, or -1."""
    goal, state = 1 << (size - 1), 0
    for i in range(pos, end):
        state = ((state << 1) | 1) & masks.get(value[i], any_one)
        if state & goal:
            return i + 1
    return -1


def _piece_at(piece: str, value: str, at: int) -> bool:
    """``piece`` (``?`` = any code point) matches ``value`` at ``at``."""
    if len(value) - at < len(piece):
        return False
    if "?" not in piece:
        return value.startswith(piece, at)
    return all(p in ("?", v) for p, v in zip(piece, value[at : at + len(piece)], strict=True))


# A token of an Elasticsearch wildcard pattern: the code points it accepts, or None for `?`.
_Token = str | None


class EsWildcard:
    """An Elasticsearch ``wildcard`` query pattern (Lucene's ``WildcardQuery`` syntax): ``*``
    any run of code points, ``?`` one, ``\\x`` the code point ``x`` itself, a final lone ``\\``
    itself. With ``case_insensitive`` (``case_insensitive: true``) ASCII letters match either
    case, except escaped ones (Elasticsearch's ``AutomatonQueries`` builds those exactly).
    Matched as :class:`Wildcard` is (crates/imds-core/src/wildcard.rs
    ``Pattern::elasticsearch``): pieces between ``*``, the first at the start, the last at the
    end, each one between leftmost by a Shift-And pass."""

    def __init__(self, pattern: str, case_insensitive: bool = False) -> None:
        pieces: list[list[_Token]] = [[]]
        chars = iter(pattern)
        for c in chars:
            if c == "*":
                pieces.append([])
            elif c == "?":
                pieces[-1].append(None)
            elif c == "\\":
                pieces[-1].append(next(chars, "\\"))
            elif case_insensitive and c.isascii() and c.isalpha():
                pieces[-1].append(c.lower() + c.upper())
            else:
                pieces[-1].append(c)
        self.pieces = pieces

    def fullmatch(self, value: str) -> bool:
        pieces = self.pieces
        if len(pieces) == 1:
            return len(value) == len(pieces[0]) and _tokens_at(pieces[0], value, 0)
        first, last = pieces[0], pieces[-1]
        end = len(value) - len(last)
        if end < len(first) or not _tokens_at(first, value, 0) or not _tokens_at(last, value, end):
            return False
        pos = len(first)
        for piece in pieces[1:-1]:
            if not piece:
                continue
            any_one = sum(1 << i for i, t in enumerate(piece) if t is None)
            masks: dict[str, int] = {}
            for i, token in enumerate(piece):
                for ch in token or "":
                    masks[ch] = masks.get(ch, any_one) | 1 << i
            pos = _shift_and(masks, any_one, len(piece), value, pos, end)
            if pos < 0:
                return False
        return True


def _tokens_at(piece: list[_Token], value: str, at: int) -> bool:
    """``piece`` matches ``value`` at ``at``."""
    if len(value) - at < len(piece):
        return False
    return all(
        t is None or v in t for t, v in zip(piece, value[at : at + len(piece)], strict=False)
    )
