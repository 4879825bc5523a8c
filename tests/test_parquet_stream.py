"""Parquet written in row groups as the hits arrive (issue 14): bounded memory with many hits,
the rows as found, one fixed schema (zero hits and all-null columns too), and a readable
file of whole row groups after Ctrl-C or an input that fails."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import pytest

from conftest import ENGINES, peak_rss_kb, wait_until_read
from imds_scan.report.formats import PARQUET_ROW_GROUP
from imds_scan.report.frame import SCHEMA

ROOT = Path(__file__).resolve().parent.parent
BROAD_RULE = ROOT / "tests" / "data" / "broad" / "process_start.toml"
START = datetime(2024, 5, 1, tzinfo=UTC)
MANY = 200_000
# About the size of the benchmark corpus's events (~1 KB): what the rows weigh.
PADDING = "y" * 700


def event(n: int, padding: str = PADDING) -> dict[str, Any]:
    moment = START + timedelta(seconds=n)
    return {
        "@timestamp": moment.isoformat().replace("+00:00", "Z"),
        "event": {"category": ["process"], "type": ["start"]},
        "host": {"name": f"web-{n % 13}"},
        "user": {"name": f"u{n % 5}"},
        "process": {"name": f"p{n % 7}", "command_line": f"run --n {n}"},
        "message": padding,
    }


def lines(count: int, padding: str = PADDING) -> str:
    return "".join(json.dumps(event(n, padding)) + "\n" for n in range(count))


@pytest.fixture(scope="module")
def many_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("many") / "many.ndjson"
    with path.open("w") as out:
        for start in range(0, MANY, 10_000):
            out.write("".join(json.dumps(event(n)) + "\n" for n in range(start, start + 10_000)))
    return path


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imds_scan", *args], capture_output=True, text=True, timeout=600
    )


def check_rows(frame: pl.DataFrame, count: int, source: str) -> None:
    """The rows of events 0..count-1 (lines 1..count) of ``source``, in order."""
    assert frame.height == count
    assert frame["source"].unique().to_list() == [source]
    assert frame["line"].to_list() == list(range(1, count + 1))
    assert frame["@timestamp"].gather_every(1000).to_list() == [
        START + timedelta(seconds=k) for k in range(0, count, 1000)
    ]
    assert frame["host.name"].to_list() == [f"web-{k % 13}" for k in range(count)]
    assert frame["process.command_line"].to_list() == [f"run --n {k}" for k in range(count)]
    assert frame["rule_id"].unique().to_list() == ["0b5e7c1d-broad-start"]
    events = frame["event"].to_list()
    assert events[0] == json.dumps(event(0)) and events[-1] == json.dumps(event(count - 1))


def check_row_groups(path: Path, count: int) -> None:
    """Whole row groups of PARQUET_ROW_GROUP rows, the last one the rest."""
    meta = pq.ParquetFile(path).metadata
    assert meta.num_row_groups == math.ceil(count / PARQUET_ROW_GROUP)
    sizes = [meta.row_group(k).num_rows for k in range(meta.num_row_groups)]
    assert sizes[:-1] == [PARQUET_ROW_GROUP] * (len(sizes) - 1)


def test_many_hits_to_parquet_in_bounded_memory(tmp_path: Path, many_log: Path) -> None:
    # 200,000 hits of ~1 KB events (~200 MB of rows), against the same file scanned by the
    # bundled rule (no hit, the same bytes read and parsed). Row groups are written as the
    # hits come: nothing holds more than one, and no sink reads them all back at the end.
    flags = ("-q", "--no-summary")
    code, baseline = peak_rss_kb(str(many_log), *flags, "-o", str(tmp_path / "none.parquet"))
    assert code == 0
    out = tmp_path / "out.parquet"
    code, full = peak_rss_kb(str(many_log), "--rule", str(BROAD_RULE), *flags, "-o", str(out))
    assert code == 1
    check_rows(pl.read_parquet(out), MANY, str(many_log))
    check_row_groups(out, MANY)
    # Measured on 2 cores, peak (difference from the no-hit run): 157 MB (+62) written as
    # row groups of 8,192 rows (16,384: 173 MB); with the row groups spilled and Polars' sink
    # at the end (before) 224 MB (+150).
    assert full - baseline < 120 * 1024, (baseline, full)
    assert full < 200 * 1024, full


def test_event_texts_are_stored_plain_and_the_other_columns_filterable(tmp_path: Path) -> None:
    # The events (each one of a kind) get no dictionary and no minimum/maximum statistics
    # (JSON texts filter nothing; both cost time with many hits); the other columns keep
    # both, so readers can still skip row groups by host or time.
    log = tmp_path / "a.ndjson"
    log.write_text(lines(50, padding="z"))
    out = tmp_path / "out.parquet"
    proc = cli(str(log), "--rule", str(BROAD_RULE), "-q", "-o", str(out))
    assert proc.returncode == 1, proc.stderr
    group = pq.ParquetFile(out).metadata.row_group(0)
    chunks = {group.column(k).path_in_schema: group.column(k) for k in range(group.num_columns)}
    assert chunks["event"].statistics is None
    assert not chunks["event"].has_dictionary_page
    host = chunks["host.name"]
    assert host.has_dictionary_page
    assert host.statistics is not None and host.statistics.has_min_max
    assert (host.statistics.min, host.statistics.max) == ("web-0", "web-9")
    assert chunks["@timestamp"].statistics.has_min_max


@pytest.mark.parametrize("engine", ENGINES)
def test_parquet_holds_the_rows_found_by_either_engine(tmp_path: Path, engine: str) -> None:
    log = tmp_path / "a.ndjson"
    log.write_text(lines(3000, padding="z"))
    out = tmp_path / "out.parquet"
    proc = cli(str(log), "--rule", str(BROAD_RULE), "--engine", engine, "-q", "-o", str(out))
    assert proc.returncode == 1, proc.stderr
    frame = pl.read_parquet(out)
    assert frame.schema == SCHEMA
    assert frame["line"].to_list() == list(range(1, 3001))
    assert frame["process.command_line"][2999] == "run --n 2999"


def test_schema_is_fixed_with_zero_hits_and_null_columns(tmp_path: Path) -> None:
    # No hit: the file holds the schema alone. Hits whose ECS columns are all null: still
    # the strings (not a type guessed from the values), as the frame says.
    log = tmp_path / "a.ndjson"
    bare = {"event": {"category": "process", "type": "start"}}
    log.write_text(json.dumps(bare) + "\n")
    empty, nulls = tmp_path / "empty.parquet", tmp_path / "nulls.parquet"
    assert cli(str(log), "-q", "-o", str(empty)).returncode == 0
    assert cli(str(log), "-q", "--rule", str(BROAD_RULE), "-o", str(nulls)).returncode == 1
    assert pl.read_parquet(empty).schema == SCHEMA
    assert pl.read_parquet(empty).height == 0
    frame = pl.read_parquet(nulls)
    assert frame.schema == SCHEMA
    assert frame["host.name"].to_list() == [None] and frame["@timestamp"].to_list() == [None]
    # The same Parquet schema (types and logical types), with or without hits.
    assert pq.read_schema(empty).equals(pq.read_schema(nulls))
    assert pq.ParquetFile(empty).schema.equals(pq.ParquetFile(nulls).schema)


def test_ctrl_c_leaves_whole_row_groups(tmp_path: Path) -> None:
    # More hits than two row groups, then Ctrl-C while the scan waits for more input: the
    # file holds every hit found, in whole row groups, and its footer.
    count = 2 * PARQUET_ROW_GROUP + 500
    out = tmp_path / "out.parquet"
    proc = subprocess.Popen(
        [sys.executable, "-m", "imds_scan", "-", "-o", str(out), "--rule", str(BROAD_RULE)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    proc.stdin.write(lines(count, padding="p").encode())
    proc.stdin.flush()  # and keep stdin open: the scan waits for more
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(f".{out.name}.*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.1)  # the output's temporary file: the CLI is past its start-up
    wait_until_read(proc.stdin.fileno())
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    proc.stdin.close()
    assert proc.returncode == 130, err
    assert b"the output is partial" in err
    frame = pl.read_parquet(out)
    assert frame["line"].to_list() == list(range(1, count + 1))
    check_row_groups(out, count)
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


def test_an_input_that_fails_leaves_the_other_hits(tmp_path: Path) -> None:
    log = tmp_path / "a.ndjson"
    log.write_text(lines(40, padding=""))
    missing = tmp_path / "missing.ndjson"
    out = tmp_path / "out.parquet"
    proc = cli(str(log), str(missing), "--rule", str(BROAD_RULE), "-o", str(out))
    assert proc.returncode == 2, proc.stderr
    assert "missing.ndjson" in proc.stderr
    assert pl.read_parquet(out)["line"].to_list() == list(range(1, 41))


@pytest.mark.parametrize(("fmt", "module"), [("parquet", "pyarrow"), ("csv", "polars")])
def test_writers_import_their_library_while_the_scan_starts(
    tmp_path: Path, fmt: str, module: str
) -> None:
    # The Parquet writer imports pyarrow (~0.13 s of CPU), the CSV writer Polars (~0.25 s)
    # on a thread of its own and returns: the scan starts meanwhile, and the first batches
    # wait, whole, until a row group is due (or Polars is there). A fresh interpreter
    # records the thread that imports the library; the file is the one the Hit path writes.
    log = tmp_path / "a.ndjson"
    log.write_text(lines(30, padding=""))
    out = tmp_path / f"out.{fmt}"
    script = f"""
import sys, threading
from imds_scan.report.formats import ParquetWriter, stream_writer, NEEDS
from imds_scan.rules import load_rules
from imds_scan.run import open_scan

class Spy:
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            print("main thread:", threading.current_thread() is threading.main_thread())
        return None

sys.meta_path.insert(0, Spy())
assert {module!r} not in sys.modules
handle = open({str(out)!r}, "wb")
writer = ParquetWriter({str(out)!r}) if {fmt!r} == "parquet" else stream_writer("csv", handle)
rules, _ = load_rules([{str(BROAD_RULE)!r}])
for batch in open_scan([{str(log)!r}], rules=rules, needs=NEEDS[{fmt!r}]):
    writer.write(batch)
writer.close()
handle.close()
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "main thread: False\n"
    expected = tmp_path / f"expected.{fmt}"
    hits = cli(str(log), "--rule", str(BROAD_RULE), "-q", "--engine", "python", "-o", str(expected))
    assert hits.returncode == 1, hits.stderr
    if fmt == "csv":
        assert out.read_bytes() == expected.read_bytes()
    else:
        assert pq.read_table(out).equals(pq.read_table(expected))


def _batches(tmp_path: Path, count: int) -> list[Any]:
    """The Rust engine's batches (Arrow rows) of ``count`` broad-rule hits."""
    from imds_scan.report.formats import NEEDS
    from imds_scan.rules import load_rules
    from imds_scan.run import open_scan

    log = tmp_path / "a.ndjson"
    log.write_text(lines(count, padding=""))
    rules, _ = load_rules([str(BROAD_RULE)])
    return list(open_scan([str(log)], rules=rules, needs=NEEDS["parquet"]))


def test_row_groups_are_encoded_while_the_batches_keep_coming(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Encoded in write(), a row group held the scan still (few batches are in flight): the
    # writer hands it to a thread of its own and takes the next batches meanwhile.
    import threading

    import pyarrow.parquet as pq_module

    from imds_scan.report.formats import ParquetWriter

    # Two row groups: one being encoded, one waiting (a third would wait for room: bounded).
    batches = _batches(tmp_path, 2 * PARQUET_ROW_GROUP)
    release, threads = threading.Event(), []
    real = pq_module.ParquetWriter.write_table

    def slow(self: Any, table: Any, row_group_size: int | None = None) -> None:
        threads.append(threading.current_thread())
        assert release.wait(10)
        real(self, table, row_group_size=row_group_size)

    monkeypatch.setattr(pq_module.ParquetWriter, "write_table", slow)
    out = tmp_path / "out.parquet"
    writer = ParquetWriter(str(out))
    for batch in batches:  # the first row group's encoding does not hold these up
        writer.write(batch)
    assert threads and threading.main_thread() not in threads
    release.set()
    writer.close()
    written = pq.ParquetFile(out)
    assert written.metadata.num_rows == 2 * PARQUET_ROW_GROUP
    assert written.metadata.num_row_groups == 2


def test_a_row_group_that_fails_on_the_thread_is_raised_by_the_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow.parquet as pq_module

    from imds_scan.report.formats import ParquetWriter

    batches = _batches(tmp_path, 2 * PARQUET_ROW_GROUP)

    def full(self: Any, table: Any, row_group_size: int | None = None) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq_module.ParquetWriter, "write_table", full)
    writer = ParquetWriter(str(tmp_path / "out.parquet"))
    with pytest.raises(OSError, match="No space left"):
        for batch in batches:
            writer.write(batch)
        writer.close()
    assert writer.closed and writer.writer is None  # closed as it is, no second footer try
    writer.close()  # nothing more
