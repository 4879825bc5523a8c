"""Type stubs for the Rust extension module (crates/imds-py)."""

from os import PathLike
from typing import Any

__version__: str

_Witness = tuple[str, str, str, str]
_HitTuple = tuple[int, int, int, int, _Witness | None, str]

class Scanner:
    def __init__(self, rules: list[str]) -> None: ...
    def needles(self) -> list[str] | None: ...
    def scan_paths(
        self,
        paths: list[str] | list[PathLike[str]],
        threads: int = 0,
        buffer_size: int = 4194304,
        prefilter: bool = True,
        max_examples: int = 5,
    ) -> tuple[list[_HitTuple], list[dict[str, Any]]]: ...
