"""Writing hits in each output format (``--format``, ``--output``), as they stream past:
a :class:`HitWriter` takes batches of hits and writes them at once (the table keeps its first
rows only); ``close`` ends the document (JSON's ``]``, Parquet's footer).

Polars is imported only for csv and parquet: ndjson, json, alerts and the table need none.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from ..output import MAX_TABLE_ROWS, write_table
from ..records import Hit
from ..results import ScanResult
from .alerts import alert_json

if TYPE_CHECKING:
    import polars as pl

# Rows per Parquet row group: what the writer holds (and spills) at most.
PARQUET_ROW_GROUP = 16384
CSV_DATETIME = "%Y-%m-%dT%H:%M:%S%.6fZ"

TEXT_FORMATS = ("table", "ndjson", "json", "csv", "alerts")
BINARY_FORMATS = ("parquet",)
FORMATS = TEXT_FORMATS + BINARY_FORMATS
# --output's extension -> format, longest suffix first.
EXTENSIONS = (
    (".alerts.ndjson", "alerts"),
    (".alerts.jsonl", "alerts"),
    (".ndjson", "ndjson"),
    (".jsonl", "ndjson"),
    (".json", "json"),
    (".csv", "csv"),
    (".parquet", "parquet"),
    (".pq", "parquet"),
    (".txt", "table"),
)
# A cell starting with one of these is a formula to a spreadsheet (CSV injection); an
# attacker controls command lines, so such cells get a leading apostrophe in CSV output.
FORMULA_START = "=+-@\t\r"


def format_for_path(path: str) -> str | None:
    name = os.path.basename(path).lower()
    for suffix, fmt in EXTENSIONS:
        if name.endswith(suffix):
            return fmt
    return None


def defuse_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    """Prefix ``'`` to string cells a spreadsheet would evaluate as a formula."""
    import polars as pl

    pattern = "^[" + "".join(f"\\x{ord(c):02x}" for c in FORMULA_START) + "]"
    return frame.with_columns(
        pl.when(pl.col(name).str.contains(pattern))
        .then(pl.lit("'") + pl.col(name))
        .otherwise(pl.col(name))
        .alias(name)
        for name, dtype in frame.schema.items()
        if dtype == pl.String
    )


class HitWriter:
    """Writes one format as batches of hits arrive. ``write`` puts each batch out in one
    piece (whole records); ``close`` ends the document, also after an interruption (what
    was written is then a complete, shorter document)."""

    def __init__(self) -> None:
        self.records = 0

    def write(self, hits: Sequence[Hit], frame: pl.DataFrame | None = None) -> None:
        """``frame``: the batch's hits frame when the caller has it already."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class _Lines(HitWriter):
    def __init__(self, out: TextIO, fmt: str) -> None:
        super().__init__()
        self.out = out
        self.render = alert_json if fmt == "alerts" else Hit.to_json

    def write(self, hits: Sequence[Hit], frame: pl.DataFrame | None = None) -> None:
        for hit in hits:
            self.out.write(f"{self.render(hit)}\n")
        self.records += len(hits)


class _JsonArray(HitWriter):
    # The ndjson records, as one array (for tools that want a single document).
    def __init__(self, out: TextIO) -> None:
        super().__init__()
        self.out = out

    def write(self, hits: Sequence[Hit], frame: pl.DataFrame | None = None) -> None:
        for hit in hits:
            self.out.write(f"{',' if self.records else '['}\n{hit.to_json()}")
            self.records += 1

    def close(self) -> None:
        self.out.write("\n]\n" if self.records else "[]\n")


class _Csv(HitWriter):
    def __init__(self, out: TextIO) -> None:
        super().__init__()
        self.out = out

    def write(self, hits: Sequence[Hit], frame: pl.DataFrame | None = None) -> None:
        if not hits:
            return
        from .frame import hits_frame

        frame = hits_frame(hits) if frame is None else frame
        text = defuse_formulas(frame).write_csv(
            include_header=not self.records, datetime_format=CSV_DATETIME
        )
        self.out.write(text)
        self.records += len(hits)

    def close(self) -> None:
        if not self.records:  # the header alone
            from .frame import hits_frame

            self.out.write(hits_frame([]).write_csv(datetime_format=CSV_DATETIME))


class _Table(HitWriter):
    """Keeps the first ``max_rows`` hits (0: all) and counts the rest; written at close,
    when the columns can be fitted to what is shown."""

    def __init__(self, out: TextIO, max_rows: int) -> None:
        super().__init__()
        self.out = out
        self.max_rows = max_rows
        self.shown: list[Hit] = []
        self.rules: set[str] = set()

    def write(self, hits: Sequence[Hit], frame: pl.DataFrame | None = None) -> None:
        room = len(hits) if self.max_rows <= 0 else max(0, self.max_rows - len(self.shown))
        self.shown.extend(hits[:room])
        self.rules.update(hit.rule.id for hit in hits)
        self.records += len(hits)

    def close(self) -> None:
        write_table(
            self.shown, self.out, self.max_rows, total=self.records, by_rule=len(self.rules) > 1
        )


class ParquetWriter(HitWriter):
    """Row groups of PARQUET_ROW_GROUP hits are spilled (Arrow IPC, next to the output) as
    they fill; ``close`` streams them into the Parquet file (Polars' streaming sink), so
    memory stays at a row group or two. After an interruption the file holds the row groups
    spilled so far and the rows pending: a valid, shorter file."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.pending: list[pl.DataFrame] = []
        self.rows = 0
        self.spilled: list[str] = []
        self.spill_dir: str | None = None

    def write(self, hits: Sequence[Hit], frame: pl.DataFrame | None = None) -> None:
        if not hits:
            return
        from .frame import hits_frame

        self.pending.append(hits_frame(hits) if frame is None else frame)
        self.rows += len(hits)
        self.records += len(hits)
        if self.rows >= PARQUET_ROW_GROUP:
            self._spill()

    def _spill(self) -> None:
        import polars as pl

        if not self.pending:
            return
        if self.spill_dir is None:
            directory = os.path.dirname(os.path.abspath(self.path))
            try:
                self.spill_dir = tempfile.mkdtemp(prefix=".imds-scan-spill.", dir=directory)
            except OSError:  # a device such as /dev/stdout: the system's temporary directory
                self.spill_dir = tempfile.mkdtemp(prefix="imds-scan-spill.")
        name = os.path.join(self.spill_dir, f"{len(self.spilled):08d}.arrow")
        pl.concat(self.pending).write_ipc(name, compression="lz4")
        self.spilled.append(name)
        self.pending, self.rows = [], 0

    def close(self) -> None:
        import polars as pl

        from .frame import hits_frame

        try:
            if not self.spilled:
                frame = pl.concat(self.pending) if self.pending else hits_frame([])
                frame.write_parquet(self.path)
                return
            self._spill()
            pl.scan_ipc(self.spilled).sink_parquet(
                self.path, row_group_size=PARQUET_ROW_GROUP, maintain_order=True
            )
        finally:
            self.discard()

    def discard(self) -> None:
        if self.spill_dir is not None:
            shutil.rmtree(self.spill_dir, ignore_errors=True)
            self.spill_dir = None


def text_writer(fmt: str, out: TextIO, *, max_table_rows: int = MAX_TABLE_ROWS) -> HitWriter:
    """A writer of a text format to a text stream."""
    if fmt == "table":
        return _Table(out, max_table_rows)
    if fmt in ("ndjson", "alerts"):
        return _Lines(out, fmt)
    if fmt == "json":
        return _JsonArray(out)
    if fmt == "csv":
        return _Csv(out)
    raise ValueError(f"{fmt!r} is not a text format")


def write_text(
    fmt: str, result: ScanResult, out: TextIO, *, max_table_rows: int = MAX_TABLE_ROWS
) -> None:
    """Write a text format to a text stream."""
    writer = text_writer(fmt, out, max_table_rows=max_table_rows)
    writer.write(result.hits)
    writer.close()


def write_file(
    fmt: str, result: ScanResult, path: str, *, max_table_rows: int = MAX_TABLE_ROWS
) -> None:
    """Write any format to a file (replaced if it exists)."""
    if fmt == "parquet":
        writer = ParquetWriter(path)
        writer.write(result.hits, result.frame)
        writer.close()
        return
    with open(path, "w", encoding="utf-8", newline="") as out:
        write_text(fmt, result, out, max_table_rows=max_table_rows)
