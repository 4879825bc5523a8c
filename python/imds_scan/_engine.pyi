"""Type stubs for the Rust extension module (crates/imds-py)."""

from collections.abc import Callable, Sequence
from os import PathLike
from typing import Any, Protocol, final

__all__ = ["STATS_FIELDS", "Scanner", "__version__"]

__version__: str
# The keys of a per-input statistics dict, defined once in Rust (FileStats::FIELDS): bytes,
# events, ..., error (text), error_kind, error_offset, error_line (None without an error), ...,
# lines (for a byte range: the lines it owns).
STATS_FIELDS: tuple[str, ...]

_Witness = tuple[str, str, str, str]
_HitTuple = tuple[int, int, int, int, _Witness | None, str]

class _Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...

class _Seekable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...
    def seek(self, offset: int, whence: int = ..., /) -> int: ...

@final
class Scanner:
    def __new__(cls, rules: list[str]) -> Scanner: ...
    def needles(self) -> list[str] | None: ...
    def scan(
        self,
        inputs: Sequence[
            str | PathLike[str] | tuple[str | PathLike[str] | _Seekable, int, int] | _Readable
        ],
        threads: int = 0,
        buffer_size: int = 4194304,
        prefilter: bool = True,
        max_examples: int = 5,
        progress: Callable[[int], object] | None = None,
        max_line_bytes: int = 67108864,
    ) -> tuple[list[_HitTuple], list[dict[str, Any]], bool]: ...
