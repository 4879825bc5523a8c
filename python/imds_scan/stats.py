"""Per-input scan statistics, shared by both engines' results."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(kw_only=True)
class FileStats:
    bytes: int = 0
    events: int = 0
    candidates: int = 0
    hits: int = 0
    malformed: int = 0
    invalid_utf8: int = 0
    # Lines longer than max-line-bytes: not evaluated (also counted in ``malformed``).
    long_lines: int = 0
    malformed_examples: list[tuple[int, str]] = field(default_factory=list)
    # Why the input could not be read, or only in part (with where); None when it was.
    error: str | None = None
    # "gzip" or "zstd" (then ``bytes`` counts decompressed bytes), None for plain input.
    compression: str | None = None
    # Bytes read from the source (compressed bytes for compressed input).
    source_bytes: int = 0
    # (rule index, allowlist entry index) -> events a branch of the rule matched that this
    # entry (the first matching one) dropped.
    allowlisted: dict[tuple[int, int], int] = field(default_factory=dict)
