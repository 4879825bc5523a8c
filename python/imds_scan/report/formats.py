"""Writing hits in each output format (``--format``, ``--output``), as they stream past:
a :class:`HitWriter` takes batches of hits (:class:`~imds_scan.batch.HitBatch`) and writes
each at once to a binary stream (the table keeps its first rows only); ``close`` ends the
document (JSON's ``]``, Parquet's footer). NDJSON and JSON write the batches' records as
they are, alerts the engine's alert documents, CSV its frames and Parquet the engine's Arrow
rows (or the frames): no work per hit in Python when the engine built them.

Polars is imported only for csv (and parquet without the engine's rows), pyarrow only for
parquet: ndjson, json, alerts and the table need neither.
"""

from __future__ import annotations

import codecs
import contextlib
import importlib
import io
import os
import queue
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, BinaryIO, TextIO, cast

from ..batch import ALERTS, FRAME, HITS, RECORDS, HitBatch, Needs
from ..output import MAX_TABLE_ROWS, table_width, write_table
from ..records import Hit
from ..results import ScanResult
from .alerts import alert_json
from .columns import ALERT_COLUMNS

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa
    import pyarrow.parquet as pq

# Rows per Parquet row group: what the writer holds at most before it writes them (~5 MB
# on the benchmark corpus). 8,192 peaked at 175-197 MiB writing the many-hits case against
# 156-166 MiB (the target is 200), for 3% less time and a 1% smaller file.
PARQUET_ROW_GROUP = 4096
CSV_DATETIME = "%Y-%m-%dT%H:%M:%S%.6fZ"
# Hits the CSV writer keeps, whole, while Polars is imported.
CSV_WAITING_ROWS = 8192

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
    strings = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    if not strings:
        return frame
    # Only the columns that hold such a cell are rebuilt (not the events, each batch).
    found = frame.select(pl.col(name).str.contains(pattern).any() for name in strings)
    return frame.with_columns(
        pl.when(pl.col(name).str.contains(pattern))
        .then(pl.lit("'") + pl.col(name))
        .otherwise(pl.col(name))
        .alias(name)
        for name, hit in zip(strings, found.row(0), strict=True)
        if hit
    )


class Output:
    """A binary stream that text is written to in ``encoding`` (stdout's, or UTF-8 for a
    file): NDJSON records, already UTF-8, go through as they are when it is UTF-8."""

    def __init__(self, out: BinaryIO, encoding: str = "utf-8", errors: str = "strict") -> None:
        self.out = out
        self.encoding = encoding
        self.errors = errors
        self.utf8 = codecs.lookup(encoding).name == "utf-8"

    def text(self, text: str) -> None:
        self.out.write(text.encode(self.encoding, self.errors))

    def records(self, data: bytes | memoryview) -> None:
        if self.utf8:
            self.out.write(data)
        else:  # as the text would have been written
            self.text(str(data, "utf-8"))


class HitWriter:
    """Writes one format as batches of hits arrive. ``write`` puts each batch out in one
    piece (whole records); ``close`` ends the document, also after an interruption (what
    was written is then a complete, shorter document). ``needs``: what it reads from a
    batch (the stream asks the engine for that only)."""

    needs: Needs = frozenset()

    def __init__(self) -> None:
        self.records = 0

    def write(self, batch: HitBatch) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class _StreamWriter(HitWriter):
    """A writer of a stream format: what it writes goes to ``out`` as it comes."""

    def __init__(self, out: Output) -> None:
        super().__init__()
        self.out = out


class _Records(_StreamWriter):
    # NDJSON: the records as the engine built them, with no work per hit here.
    needs = frozenset({RECORDS})

    def write(self, batch: HitBatch) -> None:
        if batch.count:
            self.out.records(batch.records_data)
            self.records += batch.count


class _Alerts(_StreamWriter):
    # The engine's alert documents when it made them (single-event hits), else each hit's
    # built here (sequence and KQL alerts, the reference engine, a cluster).
    needs = frozenset({ALERTS})

    def write(self, batch: HitBatch) -> None:
        if not batch.count:
            return
        alerts = batch.alerts_data
        if alerts is not None:
            self.out.records(alerts)
        else:
            self.out.text("".join([f"{alert_json(hit)}\n" for hit in batch.hits]))
        self.records += batch.count


class _JsonArray(_StreamWriter):
    # The ndjson records, as one array (for tools that want a single document).
    needs = frozenset({RECORDS})

    def write(self, batch: HitBatch) -> None:
        if not batch.count:
            return
        body = batch.records[:-1].replace(b"\n", b",\n")  # no record holds a raw newline
        self.out.records(b"%s\n%s" % (b"," if self.records else b"[", body))
        self.records += batch.count

    def close(self) -> None:
        self.out.text("\n]\n" if self.records else "[]\n")


class _Csv(_StreamWriter):
    # Polars (~0.25 s of CPU to import) is imported on a thread of its own: the first
    # batches wait, whole, until it is there (at most CSV_WAITING_ROWS hits).
    needs = frozenset({FRAME})

    def __init__(self, out: Output) -> None:
        super().__init__(out)
        self.polars = _Import("polars", f"{__package__}.frame")
        self.waiting: list[HitBatch] = []
        self.rows = 0

    def write(self, batch: HitBatch) -> None:
        if not batch.count:
            return
        if not self.polars.done and self.rows + batch.count <= CSV_WAITING_ROWS:
            self.waiting.append(batch)
            self.rows += batch.count
            return
        self._drain()
        self._write(batch)

    def _drain(self) -> None:
        self.polars.wait()
        waiting, self.waiting, self.rows = self.waiting, [], 0
        for batch in waiting:
            self._write(batch)

    def _write(self, batch: HitBatch) -> None:
        # As bytes (UTF-8), not a str encoded again: half the time.
        data = io.BytesIO()
        defuse_formulas(batch.frame).write_csv(
            data, include_header=not self.records, datetime_format=CSV_DATETIME
        )
        with data.getbuffer() as view:
            self.out.records(view)
        self.records += batch.count

    def close(self) -> None:
        self._drain()
        if not self.records:  # the header alone
            from .frame import hits_frame

            self.out.text(hits_frame([]).write_csv(datetime_format=CSV_DATETIME))


class _Table(HitWriter):
    """Keeps the first ``max_rows`` hits (0: all) and counts the rest; written at close,
    when the columns can be fitted to what is shown."""

    needs = frozenset({HITS})

    def __init__(self, out: Output, max_rows: int, width: int | None = None) -> None:
        super().__init__()
        self.out = out
        self.max_rows = max_rows
        # The terminal's width when the stream is one (else $COLUMNS, or a default).
        self.width = table_width(cast(TextIO, out.out)) if width is None else width
        self.shown: list[Hit] = []
        self.rules: set[str] = set()

    def write(self, batch: HitBatch) -> None:
        if not batch.count:
            return
        hits = batch.hits
        room = len(hits) if self.max_rows <= 0 else max(0, self.max_rows - len(self.shown))
        self.shown.extend(hits[:room])
        self.rules.update(hit.rule.id for hit in hits)
        self.records += len(hits)

    def close(self) -> None:
        text = io.StringIO()
        write_table(
            self.shown,
            text,
            self.max_rows,
            self.width,
            total=self.records,
            by_rule=len(self.rules) > 1,
        )
        self.out.text(text.getvalue())


class ParquetWriter(HitWriter):
    """Parquet written in row groups of about PARQUET_ROW_GROUP hits as they arrive
    (pyarrow's writer, fed the engine's Arrow rows as they are when it gave them, encoding on
    a thread of its own), so memory holds three row groups at most (one encoding, one
    waiting, one filling); ``close`` writes the footer. The schema is the hits frame's
    (``frame.SCHEMA``), whatever the batches hold (none, or all-null columns). After an
    interruption the file holds the row groups written so far and the rows pending: a valid,
    shorter file. pyarrow is imported here only (no other format pays its start-up), on a
    thread of its own while the scan starts: the engine's rows wait as they came (Arrow IPC
    bytes) until a row group is due."""

    needs = frozenset({FRAME})

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        # Each batch's rows: the engine's IPC stream(s), or a table.
        self.pending: list[bytes | memoryview | Sequence[bytes] | pa.Table] = []
        self.rows = 0
        # Opened at the first row group (or at close): an OSError then is the write's.
        self.writer: pq.ParquetWriter | None = None
        self.file: pa.NativeFile | None = None
        self.closed = False
        self._imported = _import_pyarrow()
        # Row groups are encoded on a thread of their own (pyarrow releases the GIL), one at a
        # time with one more waiting, while the batches keep coming: encoded here, the scan
        # stood still for each row group (the batches in flight are few).
        self._queue: queue.Queue[pa.Table | None] | None = None
        self._thread: threading.Thread | None = None
        self._failed: BaseException | None = None

    def write(self, batch: HitBatch) -> None:
        if not batch.count:
            return
        ipc = batch.ipc_rows
        if ipc is not None:
            self.pending.append(ipc)
        else:  # a frame (made from Hit objects): converted now
            self._imported()
            self.pending.append(batch.frame.to_arrow())
        self.rows += batch.count
        self.records += batch.count
        while self.rows >= PARQUET_ROW_GROUP:  # a large batch (a cluster's) makes several
            self._flush(PARQUET_ROW_GROUP)

    def _open(self) -> pq.ParquetWriter:
        if self.writer is None:
            self._imported()
            import pyarrow as pa
            import pyarrow.parquet as pq

            # A file of its own (a path is no URI here; any bytes of a name); zstd level 1:
            # 28% less CPU than level 3 (Polars' level) writing many hits, 8% larger. No
            # dictionary for the events, each one of a kind: 10% less time writing many hits;
            # nor statistics (a minimum and maximum of JSON texts filter nothing): 7% less.
            self.file = pa.OSFile(os.fsencode(self.path), "wb")  # type: ignore[arg-type]
            schema = _arrow_schema()
            others = [n for n in schema.names if n != "event"]
            self.writer = pq.ParquetWriter(
                self.file,
                schema,
                compression="zstd",
                compression_level=1,
                use_dictionary=others,  # type: ignore[arg-type]
                write_statistics=others,
            )
        return self.writer

    def _flush(self, rows: int | None = None) -> None:
        """The first ``rows`` pending rows (default: all) as one row group."""
        if not self.pending:
            return
        self._imported()
        import pyarrow as pa

        table = pa.concat_tables([_arrow_rows(part) for part in self.pending])
        rows = table.num_rows if rows is None else rows
        rest = table.slice(rows)
        self.pending, self.rows = ([rest] if rest.num_rows else []), rest.num_rows
        self._raise_failed()
        try:
            self._open()
        except OSError:
            self._abandon()
            raise
        if self._queue is None:
            self._queue = queue.Queue(maxsize=1)
            self._thread = threading.Thread(target=self._encode, name="imds-parquet", daemon=True)
            self._thread.start()
        self._queue.put(table.slice(0, rows))

    def _encode(self) -> None:
        """The encoding thread: each row group queued, until None; after a failure, the rest
        is dropped (the main thread raises it at its next write or at close)."""
        assert self._queue is not None
        while (table := self._queue.get()) is not None:
            if self._failed is None and self.writer is not None:
                try:
                    self.writer.write_table(table, row_group_size=max(table.num_rows, 1))
                except BaseException as exc:  # raised again in the main thread
                    self._failed = exc

    def _join(self) -> None:
        """Wait for the row groups queued to be written, and the thread to end."""
        if self._queue is not None and self._thread is not None:
            self._queue.put(None)
            self._thread.join()
        self._queue = self._thread = None

    def _raise_failed(self) -> None:
        """A row group's write failed on the thread: raise it here (the file is closed as it
        is, as a failed write always left it)."""
        if self._failed is None:
            return
        self._join()
        failed, self._failed = self._failed, None
        if isinstance(failed, OSError):
            self._abandon()
        raise failed

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._flush()
            self._join()
            self._raise_failed()
            writer = self._open()  # no hit: a file of the schema alone
            writer.close()
            if self.file is not None:
                self.file.close()
        except OSError:
            self._abandon()
            raise
        self.closed = True
        self.writer = self.file = None

    def discard(self) -> None:
        """Stopped by an error elsewhere: end the file after the row groups written so far
        (its footer; the rows pending are dropped). Nothing after close."""
        if self.closed:
            return
        self.pending, self.rows = [], 0
        self._join()  # the row groups queued are written
        self._failed = None  # stopped by another error: that one is reported
        if self.writer is None:
            self.closed = True
            return
        try:
            self.writer.close()
            if self.file is not None:
                self.file.close()
        except OSError:
            self._abandon()
        self.closed = True
        self.writer = self.file = None

    def _abandon(self) -> None:
        """A write failed: close the file as it is, with no second try at its footer."""
        self._join()
        self.closed = True
        self.pending, self.rows = [], 0
        if self.writer is not None:
            self.writer.is_open = False  # else pyarrow tries the footer again when collected
        if self.file is not None:
            with contextlib.suppress(OSError):
                self.file.close()
        self.writer = self.file = None


def _arrow_schema() -> pa.Schema:
    """The hits frame's columns in Arrow, strings as large_string (as the engine's rows and
    Polars' ``to_arrow`` give them): no Polars imported."""
    import pyarrow as pa

    from .columns import COLUMNS

    types: dict[str, pa.DataType] = {
        "string": pa.large_string(),
        "int64": pa.int64(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "bool": pa.bool_(),
    }
    return pa.schema([(name, types[kind]) for name, kind in COLUMNS])


def _arrow_rows(part: bytes | memoryview | Sequence[bytes] | pa.Table) -> pa.Table:
    """A batch's rows in the file's schema: the engine's IPC stream(s) read as they are (no
    Polars frame made), or a table converted from a frame."""
    import pyarrow as pa
    import pyarrow.ipc

    schema = _arrow_schema()
    if isinstance(part, pa.Table):
        table = part
    else:
        parts = [part] if isinstance(part, bytes | memoryview) else part
        table = pa.concat_tables(
            [pyarrow.ipc.open_stream(pa.py_buffer(p)).read_all() for p in parts]
        )
        for name in ALERT_COLUMNS:  # no engine row is an alert: its columns are null
            if name not in table.column_names:
                table = table.append_column(
                    schema.field(name), pa.nulls(len(table), schema.field(name).type)
                )
    if table.schema != schema:  # e.g. a frame's String as large_string
        table = table.cast(schema)
    return table


class _Import:
    """Modules imported on a thread of its own, so that a writer's first batches need not
    wait for them: the scan starts meanwhile. ``wait`` joins it (raising what the import
    raised); ``done`` says whether it ended."""

    def __init__(self, *modules: str) -> None:
        self.failed: BaseException | None = None
        self.thread: threading.Thread | None = None
        if all(name in sys.modules for name in modules):
            return
        # Not a daemon: at exit the interpreter waits for it rather than stop it mid-import.
        self.thread = threading.Thread(target=self._load, args=modules, name="imds-scan-import")
        self.thread.start()

    def _load(self, *modules: str) -> None:
        try:
            for name in modules:
                importlib.import_module(name)
        except BaseException as exc:  # raised where it is waited for
            self.failed = exc

    @property
    def done(self) -> bool:
        return self.thread is None or not self.thread.is_alive()

    def wait(self) -> None:
        if self.thread is not None:
            self.thread.join()
        if self.failed is not None:
            raise self.failed


def _import_pyarrow() -> Callable[[], None]:
    """Start importing pyarrow (its writer and IPC reader, ~0.13 s of CPU) on a thread of
    its own; gives what waits for it. pyarrow's memory pool is malloc, unless the
    environment chose one: its default (mimalloc, set up at import) took ~17 MB more peak
    memory (200,000 hits)."""
    if "pyarrow" not in sys.modules:
        os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    return _Import("pyarrow.ipc", "pyarrow.parquet").wait


# What each format reads from the batches.
NEEDS: dict[str, Needs] = {
    "table": _Table.needs,
    "ndjson": _Records.needs,
    "json": _JsonArray.needs,
    "alerts": _Alerts.needs,
    "csv": _Csv.needs,
    "parquet": ParquetWriter.needs,
}


def stream_writer(
    fmt: str,
    out: BinaryIO,
    *,
    max_table_rows: int = MAX_TABLE_ROWS,
    encoding: str = "utf-8",
    errors: str = "strict",
    width: int | None = None,
) -> HitWriter:
    """A writer of a text format to a binary stream; text is encoded in ``encoding``
    (records, UTF-8 already, are written as they are when that is UTF-8). ``width``: the
    table's (default: the stream's terminal width, else $COLUMNS or 160)."""
    output = Output(out, encoding, errors)
    if fmt == "table":
        return _Table(output, max_table_rows, width)
    if fmt == "ndjson":
        return _Records(output)
    if fmt == "alerts":
        return _Alerts(output)
    if fmt == "json":
        return _JsonArray(output)
    if fmt == "csv":
        return _Csv(output)
    raise ValueError(f"{fmt!r} is not a text format")


def write_text(
    fmt: str, result: ScanResult, out: TextIO, *, max_table_rows: int = MAX_TABLE_ROWS
) -> None:
    """Write a text format to a text stream."""
    data = io.BytesIO()
    width = table_width(out) if fmt == "table" else None
    writer = stream_writer(fmt, data, max_table_rows=max_table_rows, width=width)
    writer.write(_whole(result))
    writer.close()
    out.write(data.getvalue().decode("utf-8"))


def _whole(result: ScanResult) -> HitBatch:
    frame = result.__dict__.get("frame")  # the frame, when it was made already
    return HitBatch(len(result.hits), hits=result.hits, frame=frame)


def write_file(
    fmt: str, result: ScanResult, path: str, *, max_table_rows: int = MAX_TABLE_ROWS
) -> None:
    """Write any format to a file (replaced if it exists)."""
    if fmt == "parquet":
        writer: HitWriter = ParquetWriter(path)
        writer.write(HitBatch(len(result.hits), hits=result.hits, frame=result.frame))
        writer.close()
        return
    with open(path, "wb") as out:
        writer = stream_writer(fmt, out, max_table_rows=max_table_rows)
        writer.write(_whole(result))
        writer.close()
