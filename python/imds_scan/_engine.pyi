"""Type stubs for the Rust extension module (crates/imds-py)."""

from os import PathLike
from typing import Any, final

__all__ = ["Scanner", "__version__"]
__version__: str

_Witness = tuple[str, str, str, str]
_HitTuple = tuple[int, int, int, int, _Witness | None, str]

@final
class Scanner:
    def __new__(cls, rules: list[str]) -> Scanner: ...
    def needles(self) -> list[str] | None: ...
    def scan_paths(
        self,
        paths: list[str] | list[PathLike[str]],
        threads: int = 0,
        buffer_size: int = ...,
        prefilter: bool = True,
        max_examples: int = 5,
    ) -> tuple[list[_HitTuple], list[dict[str, Any]]]: ...
