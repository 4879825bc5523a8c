"""Writing hits in each output format (``--format``, ``--output``).

Polars is imported only for csv and parquet: ndjson, json, alerts and the table need none.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, TextIO

from ..output import MAX_TABLE_ROWS, write_table
from ..results import ScanResult
from .alerts import alert_json

if TYPE_CHECKING:
    import polars as pl

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


def write_text(
    fmt: str, result: ScanResult, out: TextIO, *, max_table_rows: int = MAX_TABLE_ROWS
) -> None:
    """Write a text format to a text stream."""
    if fmt == "table":
        write_table(result.hits, out, max_table_rows)
    elif fmt == "ndjson":
        for hit in result.hits:
            out.write(hit.to_json())
            out.write("\n")
    elif fmt == "json":
        # The ndjson records, as one array (for tools that want a single document).
        records = ",\n".join(hit.to_json() for hit in result.hits)
        out.write(f"[\n{records}\n]\n" if records else "[]\n")
    elif fmt == "alerts":
        for hit in result.hits:
            out.write(alert_json(hit))
            out.write("\n")
    elif fmt == "csv":
        out.write(defuse_formulas(result.frame).write_csv(datetime_format="%Y-%m-%dT%H:%M:%S%.6fZ"))
    else:
        raise ValueError(f"{fmt!r} is not a text format")


def write_file(
    fmt: str, result: ScanResult, path: str, *, max_table_rows: int = MAX_TABLE_ROWS
) -> None:
    """Write any format to a file (replaced if it exists)."""
    if fmt == "parquet":
        result.frame.write_parquet(path)
        return
    with open(path, "w", encoding="utf-8", newline="") as out:
        write_text(fmt, result, out, max_table_rows=max_table_rows)
