"""Errors the CLI catches on every run, kept apart from the modules that raise them so that a
plain scan (rules from the compiled-rule cache) does not import the EQL compiler."""

from __future__ import annotations


class EqlError(ValueError):
    """A query outside the supported subset, with its position (1-based line and column)."""

    def __init__(self, message: str, line: int, column: int, source: str = "<query>") -> None:
        self.message = message
        self.line = line
        self.column = column
        self.source = source
        super().__init__(f"{source}:{line}:{column}: {message}")
