"""THROWAWAY STUB (parse helper's tree only): the `regex` helper owns this module and its
file replaces this one at merge. Accepts patterns without regex operators, nothing else."""

from __future__ import annotations

_OPERATORS = frozenset('.?+*{}|()[]\\"@&~<>#')


class LuceneRegex:
    def __init__(self, pattern: str, case_insensitive: bool) -> None:
        bad = next((ch for ch in pattern if ch in _OPERATORS), None)
        if bad is not None:
            raise ValueError(f"regex {pattern!r}: {bad!r} is not supported (stub)")
        self._pattern = pattern.lower() if case_insensitive else pattern
        self._ci = case_insensitive

    def is_match(self, value: str) -> bool:
        if self._ci:
            value = value.translate({c: c + 32 for c in range(65, 91)})
            return value == self._pattern.translate({c: c + 32 for c in range(65, 91)})
        return value == self._pattern
