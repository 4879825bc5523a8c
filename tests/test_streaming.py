"""Hits streamed from the engines to the writers (issue 14): bounded memory after the engine,
the same order for both engines and a cluster, whole records after Ctrl-C or --max-hits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from conftest import ENGINES, hit_keys, peak_rss_kb, wait_until_read
from imds_scan import ScanConfig, ScanInterrupted, iter_scan, scan
from imds_scan.batch import HitBatch
from imds_scan.rules import load_rules

ROOT = Path(__file__).resolve().parent.parent
BROAD_RULE = ROOT / "tests" / "data" / "broad" / "process_start.toml"
START = datetime(2024, 5, 1, tzinfo=UTC)


def start_event(n: int, host: str = "web-1") -> dict[str, Any]:
    moment = START + timedelta(minutes=7 * n)
    return {
        "@timestamp": moment.isoformat().replace("+00:00", "Z"),
        "event": {"category": ["process"], "type": ["start"]},
        "host": {"name": f"{host}-{n % 13}"},
        "user": {"name": f"u{n % 5}"},
        "process": {"name": f"p{n % 7}", "command_line": f"run --n {n % 11}"},
    }


OTHER = {"event": {"category": ["process"], "type": ["end"]}, "process": {"name": "x"}}


def write_events(path: Path, count: int, every_other: bool = False) -> Path:
    with path.open("w") as out:
        for n in range(count):
            out.write(json.dumps(start_event(n)) + "\n")
            if every_other:
                out.write(json.dumps(OTHER) + "\n")
    return path


def broad_rules() -> list[Any]:
    rules, _ = load_rules([str(BROAD_RULE)])
    return rules


def cli(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imds_scan", *args],
        capture_output=True,
        text=True,
        timeout=600,
        **kw,
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_a_live_stdin_gives_its_hits_before_it_ends(engine: str) -> None:
    """`tail -f log | imds-scan -`: the hits of the lines sent so far come out while standard
    input is still open, not once a buffer's worth has come or the input ends."""
    import select

    hit = json.dumps({"event": {"category": "network"}, "destination": {"ip": "169.254.169.254"}})
    proc = subprocess.Popen(
        [sys.executable, "-m", "imds_scan", "-", "-f", "ndjson", "--engine", engine],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    out = b""
    try:
        proc.stdin.write(((hit + "\n") * 3).encode())
        proc.stdin.flush()  # and keep it open
        deadline = time.monotonic() + 60  # start-up on a loaded machine, not the scan
        while out.count(b"\n") < 3 and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 1 << 16)
                if not chunk:
                    break
                out += chunk
        assert proc.poll() is None  # still waiting for more input
        assert [json.loads(r)["line"] for r in out.splitlines()] == [1, 2, 3]
    finally:
        proc.stdin.close()
        out += proc.stdout.read()
        err = proc.stderr.read().decode()
        proc.wait(timeout=60)
    assert proc.returncode == 1, err
    assert out.count(b"\n") == 3


# ---------------------------------------------------------------- memory


@pytest.mark.parametrize("fmt", ["ndjson", "parquet", "parquet+summary", "alerts.ndjson", "csv"])
def test_many_hits_take_bounded_memory(tmp_path: Path, fmt: str) -> None:
    # 200,000 hits, against the same file scanned by the bundled rule (no hit, the same bytes
    # read and parsed): the engine streams its hits (Scanner.scan_iter, a bounded reorder)
    # and nothing after it holds them, so the difference does not grow with the hits. The
    # engine builds the records (ndjson), alert documents and rows (parquet, the summary's
    # aggregates).
    log = write_events(tmp_path / "many.ndjson", 200_000)
    suffix, _, summary = fmt.partition("+")
    out = tmp_path / f"out.{suffix}"
    flags = ("-q", "--summary" if summary else "--no-summary", "-o", str(out))
    code, baseline = peak_rss_kb(str(log), *flags)
    assert code == 0
    code, full = peak_rss_kb(str(log), "--rule", str(BROAD_RULE), *flags)
    assert code == 1
    if suffix == "parquet":
        assert pl.read_parquet(out).height == 200_000
    else:
        header = suffix == "csv"
        assert len(out.read_bytes().splitlines()) == 200_000 + header
    # CSV: 127 MB (+54; it holds at most 8,192 hits while Polars is imported).
    # Measured on 2 cores, peak (difference): ndjson 71 MB (+40), parquet 168 MB (+92), with
    # the summary 201 MB (+116; Polars' own memory); with the hits built in Python (no rows)
    # parquet took 171 MB and 61 s, with the engine's whole hit list (Scanner.scan) +244 MB.
    # Since Parquet is written by pyarrow row group by row group, a run with the summary
    # loads both pyarrow and Polars: 256 MB in CI, a fixed cost (the baseline pays it too).
    bound = {"ndjson": 96, "alerts.ndjson": 96, "parquet": 160, "parquet+summary": 160, "csv": 160}[
        fmt
    ]
    assert full - baseline < bound * 1024, (baseline, full)
    assert full < (290 if summary else 200) * 1024, full


def test_reference_engine_streams_many_hits_in_bounded_memory(tmp_path: Path) -> None:
    # The reference engine gives its hits as it finds them (it returned one list): 25,000
    # hits of 3 KB events would be 75 MB held, against the same scan with no hit.
    padding = "x" * 3000
    log = tmp_path / "padded.ndjson"
    with log.open("w") as out:
        for n in range(25_000):
            out.write(json.dumps({**start_event(n), "padding": padding}) + "\n")
    out = tmp_path / "out.ndjson"
    common = ("--engine", "python", "-q", "--no-summary", "-o", str(out))
    code, baseline = peak_rss_kb(str(log), *common)
    assert code == 0
    code, full = peak_rss_kb(str(log), "--rule", str(BROAD_RULE), *common)
    assert code == 1
    assert len(out.read_bytes().splitlines()) == 25_000
    # Measured on 2 cores: +14 MB; with the whole list of hits (the old engine) +85 MB.
    assert full - baseline < 40 * 1024, (baseline, full)


# ---------------------------------------------------------------- order


def test_order_is_the_same_for_both_engines_and_the_cluster(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    inputs = [
        write_events(tmp_path / f"{i}.ndjson", 300 + 50 * i, every_other=True) for i in range(3)
    ]
    outputs = {}
    for name, extra in (
        ("rust", ["--engine", "rust"]),
        ("python", ["--engine", "python"]),
        ("cluster", ["--cluster", "local:2", "--range-size", "16K"]),
    ):
        proc = cli(*map(str, inputs), "--rule", str(BROAD_RULE), "-f", "ndjson", "-q", *extra)
        assert proc.returncode == 1, proc.stderr
        outputs[name] = proc.stdout
    lines = [json.loads(x) for x in outputs["rust"].splitlines()]
    assert len(lines) == 300 + 350 + 400
    assert [(r["source"], r["line"]) for r in lines] == sorted(
        ((r["source"], r["line"]) for r in lines), key=lambda k: (str(inputs).find(k[0]), k[1])
    )
    assert outputs["python"] == outputs["rust"]
    assert outputs["cluster"] == outputs["rust"]


# ---------------------------------------------------------------- partial output


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("fmt", ["json", "parquet", "csv"])
def test_ctrl_c_leaves_a_whole_document(tmp_path: Path, engine: str, fmt: str) -> None:
    out = tmp_path / f"out.{fmt}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "imds_scan",
            "-",
            "-o",
            str(out),
            "--engine",
            engine,
            "--rule",
            str(BROAD_RULE),
            "--no-summary",
        ],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    proc.stdin.write("".join(json.dumps(start_event(n)) + "\n" for n in range(3)).encode())
    proc.stdin.flush()  # and keep stdin open: the scan waits for more
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(f".{out.name}.*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.1)  # the output's temporary file: the CLI is past its start-up
    wait_until_read(proc.stdin.fileno())  # the scan has what was sent (hits come on Ctrl-C)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    proc.stdin.close()
    assert proc.returncode == 130, err
    assert b"the output is partial" in err
    if fmt == "json":
        assert [r["line"] for r in json.loads(out.read_text())] == [1, 2, 3]
    elif fmt == "csv":
        assert pl.read_csv(out)["line"].to_list() == [1, 2, 3]
    else:
        assert pl.read_parquet(out)["line"].to_list() == [1, 2, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


@pytest.mark.parametrize("engine", ENGINES)
def test_max_hits_stops_after_n_hits(tmp_path: Path, engine: str) -> None:
    log = write_events(tmp_path / "a.ndjson", 50, every_other=True)
    out = tmp_path / "out.ndjson"
    proc = cli(str(log), "--rule", str(BROAD_RULE), "--engine", engine, "--max-hits", "7")
    assert proc.returncode == 1, proc.stderr
    assert [json.loads(x)["line"] for x in proc.stdout.splitlines()] == list(range(1, 14, 2))
    assert f"stopped early by --max-hits after 7 hit(s), at {log}:13" in proc.stderr
    assert "the output is partial" in proc.stderr
    # From the config file too, and to a file and a report.
    config = tmp_path / "c.toml"
    config.write_text("max-hits = 3\n")
    report = tmp_path / "r.html"
    proc = cli(
        str(log),
        "--rule",
        str(BROAD_RULE),
        "--engine",
        engine,
        "--config",
        str(config),
        "-o",
        str(out),
        "--report",
        str(report),
    )
    assert proc.returncode == 1, proc.stderr
    assert [json.loads(x)["line"] for x in out.read_text().splitlines()] == [1, 3, 5]
    assert f"at {log}:5" in proc.stderr
    assert "Stopped early by --max-hits" in report.read_text()
    # Not more hits than the limit: not stopped early.
    proc = cli(str(log), "--rule", str(BROAD_RULE), "--engine", engine, "--max-hits", "50")
    assert proc.returncode == 1 and "stopped early" not in proc.stderr
    assert len(proc.stdout.splitlines()) == 50
    # After the time window: the hits kept count.
    since = (START + timedelta(minutes=7 * 40)).isoformat()
    proc = cli(
        str(log), "--rule", str(BROAD_RULE), "--engine", engine, "--max-hits", "2", "--since", since
    )
    assert [json.loads(x)["line"] for x in proc.stdout.splitlines()] == [81, 83]


# ---------------------------------------------------------------- the time window


def test_time_window_is_applied_in_the_rust_engine(tmp_path: Path) -> None:
    # --since/--until on the Rust engine's fast path: the engine drops the hits outside as it
    # finds them (from the parsed event's @timestamp), so no Hit object is made; the records
    # kept, and the counts of those dropped, are the reference engine's (which filters Hit
    # objects in Python).
    from imds_scan.batch import RECORDS
    from imds_scan.run import open_scan

    stamps: list[Any] = [
        "2024-05-01T10:00:00Z",
        "2024-05-02T00:00:00.000000999+02:00",  # 2024-05-01T22:00Z, digits past µs dropped
        "2024-05-02",
        1714608000000,  # epoch milliseconds as a JSON number: 2024-05-02T00:00Z
        "1714607999999",  # a millisecond before, as text
        ["2024-05-03T00:00:00Z", "2024-05-01T00:00:00Z"],  # the first value counts
        "2024-05-02T00:00:00-00:00",
        "2024-13-01",  # not a date: out
        None,  # no @timestamp: out
        "9999-12-31T23:59:59.999999Z",
        "2024-05-01T23:59:59.9999999Z",
    ]
    log = tmp_path / "stamps.ndjson"
    with log.open("w") as out:
        for n in range(300):
            event = start_event(n)
            stamp = stamps[n % len(stamps)]
            if stamp is None:
                del event["@timestamp"]
            else:
                event["@timestamp"] = stamp
            out.write(json.dumps(event) + "\n")
    since, until = datetime(2024, 5, 1, 22, tzinfo=UTC), datetime(2024, 5, 2, 0, 0, 0, 1, UTC)
    runs = {}
    for engine in ENGINES:
        config = ScanConfig(engine=engine, since=since, until=until)  # type: ignore[arg-type]
        stream = open_scan([str(log)], rules=broad_rules(), config=config, needs={RECORDS})
        batches = list(stream)
        records = b"".join(batch.records for batch in batches)
        made_hits = any(batch.has_hits for batch in batches)
        runs[engine] = (records, stream.close(), made_hits)
    (fast, stats, made), (slow, slow_stats, _) = runs["rust"], runs["python"]
    assert not made  # the fast path: the records came from the engine, with no Hit objects
    assert fast == slow
    lines = [json.loads(x)["line"] for x in fast.splitlines()]
    assert len(lines) == 164 and lines[:6] == [2, 3, 4, 5, 7, 11]  # 6 of each 11 inside
    assert stats.outside_time_window == slow_stats.outside_time_window == 300 - len(lines)
    assert [a.hits for a in stats.allowlist] == [a.hits for a in slow_stats.allowlist]
    # The CLI says the same, both engines.
    for engine in ENGINES:
        proc = cli(
            str(log), "--rule", str(BROAD_RULE), "--engine", engine, "-f", "ndjson",
            "--since", since.isoformat(), "--until", until.isoformat(), "--summary",
        )  # fmt: skip
        assert proc.stdout.encode() == fast
        assert f"hits outside --since/--until: {300 - len(lines)}" in proc.stderr


# ---------------------------------------------------------------- Python API


@pytest.mark.parametrize("engine", ENGINES)
def test_iter_scan_yields_the_hits_of_scan(tmp_path: Path, engine: str) -> None:
    log = write_events(tmp_path / "a.ndjson", 10_000, every_other=True)
    config = ScanConfig(engine=engine)  # type: ignore[arg-type]
    whole = scan([str(log)], rules=broad_rules(), config=config)
    hits = iter_scan([str(log)], rules=broad_rules(), config=config)
    assert hits.stats is None
    assert hit_keys(list(hits)) == hit_keys(whole.hits)
    assert hits.stats is not None and hits.stats.total("hits") == 10_000
    # Stopping early gives the statistics, no more hits.
    hits = iter_scan([str(log)], rules=broad_rules(), config=config)
    first = next(hits)
    assert first.line == 1
    # The engine stops there (the reference engine too: it streams): what was read.
    stopped = hits.close()
    assert 0 < stopped.total("events") <= 20_000
    if stopped.total("events") < 20_000:
        assert stopped.files[0].error_kind == "interrupted"
    limited = scan([str(log)], rules=broad_rules(), config=ScanConfig(engine=engine, max_hits=5))  # type: ignore[arg-type]
    assert [h.line for h in limited.hits] == [1, 3, 5, 7, 9]
    assert limited.stats.stopped_at == (str(log), 9)


def test_reference_engine_stops_when_the_stream_is_closed(tmp_path: Path) -> None:
    # It streams: closing the stream stops it where it is, the inputs it had not finished
    # say so (as the Rust engine's do), and --max-hits's stop is no error.
    logs = [str(write_events(tmp_path / f"{i}.ndjson", 3000, every_other=True)) for i in range(3)]
    hits = iter_scan(logs, rules=broad_rules(), engine="python")
    assert next(hits).line == 1
    stats = hits.close()
    assert [f.error_kind for f in stats.files] == ["interrupted"] * 3
    assert 0 < stats.files[0].events < 6000 and stats.files[1].events == 0
    assert "not read" in (stats.files[2].error or "")
    limited = scan(logs, rules=broad_rules(), config=ScanConfig(engine="python", max_hits=3500))
    assert limited.stats.stopped_at == (logs[1], 999)
    assert not limited.stats.errors and limited.stats.files[2].events == 0


def test_iter_scan_ctrl_c_is_scan_interrupted(tmp_path: Path) -> None:
    log = write_events(tmp_path / "a.ndjson", 20_000)
    size = log.stat().st_size

    def ctrl_c_halfway(read: int, total: int | None) -> None:
        if read > size // 2:
            raise KeyboardInterrupt  # as Ctrl-C inside the engine's read loop

    hits = iter_scan([str(log)], rules=broad_rules(), engine="python", progress=ctrl_c_halfway)
    lines = []
    with pytest.raises(ScanInterrupted) as stopped:
        for hit in hits:
            lines.append(hit.line)
    assert 0 < len(lines) < 20_000
    assert lines == list(range(1, len(lines) + 1))  # what was found before, in order
    assert stopped.value.result.hits == []
    assert stopped.value.result.stats.interrupted
    assert hits.stats is not None and hits.stats.interrupted


# ---------------------------------------------------------------- writers and aggregates


def test_writers_fed_in_batches_write_what_whole_results_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from imds_scan.report import aggregate, formats
    from imds_scan.report.aggregate import Aggregates
    from imds_scan.report.html import render_aggregates, render_report
    from imds_scan.report.summary import format_summaries

    log = write_events(tmp_path / "a.ndjson", 3000, every_other=True)
    result = scan([str(log)], rules=broad_rules())
    batches = [HitBatch.of(result.hits[i : i + 700]) for i in range(0, len(result.hits), 700)]
    for fmt in ("ndjson", "json", "csv", "alerts", "table"):
        whole, streamed = io.StringIO(), io.BytesIO()
        formats.write_text(fmt, result, whole, max_table_rows=100)
        writer = formats.stream_writer(fmt, streamed, max_table_rows=100)
        for batch in batches:
            writer.write(batch)
        writer.close()
        assert streamed.getvalue().decode() == whole.getvalue(), fmt
    # The table holds its first rows only.
    table = formats.stream_writer("table", io.BytesIO(), max_table_rows=100)
    for batch in batches:
        table.write(batch)
    assert len(table.shown) == 100 and table.records == 3000  # type: ignore[attr-defined]
    # Parquet in several row groups: the same rows.
    monkeypatch.setattr(formats, "PARQUET_ROW_GROUP", 1000)
    parquet = formats.ParquetWriter(str(tmp_path / "out.parquet"))
    for batch in batches:
        parquet.write(batch)
    parquet.close()
    assert pl.read_parquet(tmp_path / "out.parquet").equals(result.frame)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ndjson", "out.parquet"]
    # Summaries and the report from running aggregates: the same text.
    agg = Aggregates(keep=2000)
    monkeypatch.setattr(aggregate, "AGGREGATE_ROWS", 1000)  # grouped more than once
    for batch in batches:
        agg.add_frame(batch.frame)
    assert format_summaries(agg) == format_summaries(result.frame)
    when = datetime(2024, 6, 1, tzinfo=UTC)
    page = render_aggregates(agg, result.stats, generated=when)
    assert page == render_report(result, generated=when)
    assert "The first 2,000 of 3,000 hits" in page
