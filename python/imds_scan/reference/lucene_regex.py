"""THROWAWAY STUB (ref helper's tree only): the `regex` helper owns this module and its file
replaces this one at merge. Patterns of literals, `.`, `* + ?`, `|`, `( )` and `[...]` only,
through :mod:`re`; everything else is refused."""

from __future__ import annotations

import re

_REFUSED = frozenset('\\"@&~<>#{}^$')


class LuceneRegex:
    def __init__(self, pattern: str, case_insensitive: bool) -> None:
        bad = next((ch for ch in pattern if ch in _REFUSED), None)
        if bad is not None:
            raise ValueError(f'regex "{pattern}": {bad} is not supported (stub)')
        flags = re.DOTALL | (re.IGNORECASE | re.ASCII if case_insensitive else 0)
        try:
            self._re = re.compile(pattern, flags)
        except re.error as exc:
            raise ValueError(f'regex "{pattern}": {exc}') from None

    def is_match(self, value: str) -> bool:
        return self._re.fullmatch(value) is not None
