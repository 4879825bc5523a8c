"""A scan's result: its hits and statistics, as the Python API returns them (with the hits as
a Polars DataFrame and their summaries, from :mod:`imds_scan.report`)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from .records import Hit, ScanStats

if TYPE_CHECKING:
    import polars as pl


@dataclass
class ScanResult:
    """Hits in input order (file, then line) and the scan's statistics."""

    hits: list[Hit]
    stats: ScanStats

    @cached_property
    def frame(self) -> pl.DataFrame:
        """The hits as a Polars DataFrame (schema: ``imds_scan.report.frame.SCHEMA``, in
        docs/output.md)."""
        from .report.frame import hits_frame

        return hits_frame(self.hits)

    def to_polars(self) -> pl.DataFrame:
        return self.frame

    def summaries(self, top: int = 10) -> dict[str, pl.DataFrame]:
        """The aggregations of ``--summary``: by rule and branch, host, process, user, day..."""
        from .report.summary import summaries

        return summaries(self.frame, top=top)


class ScanInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the scan; ``result`` holds what was found until then."""

    def __init__(self, result: ScanResult) -> None:
        super().__init__("scan interrupted")
        self.result = result
