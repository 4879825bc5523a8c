"""--cluster: a scan distributed over a Dask LocalCluster (2 worker processes on 127.0.0.1)
gives exactly the hits, statistics and exit code of the local scan, on local files (one split
into many byte ranges) and on S3 objects served by moto; a worker killed mid-scan loses
nothing (its share is rescheduled)."""

from __future__ import annotations

import functools
import gzip
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imds_scan import ScanConfig, ScanResult, default_rules, scan
from imds_scan.cluster import Piece, merge_shares, plan, run_cluster, scan_share
from imds_scan.sources import expand

distributed = pytest.importorskip("distributed", reason="dask[distributed] is not installed")

try:  # the moto server and bucket fixtures (skipped without moto/s3fs/boto3)
    from test_s3 import bucket, endpoint  # noqa: F401

    HAVE_S3 = True
except pytest.skip.Exception:
    HAVE_S3 = False

HIT = {"event": {"category": "network"}, "destination": {"ip": "169.254.169.254"}}
PROC = {
    "event": {"category": "process", "type": "start"},
    "process": {"name": "curl", "command_line": "curl http://169.254.169.254/latest/meta-data/"},
}
BENIGN = {"event": {"category": "network"}, "destination": {"ip": "10.0.0.1"}, "pad": "x" * 40}
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
RANGE = 40_000  # bytes: the big file below is cut into ~40 ranges


def key(result: ScanResult) -> tuple[list[Any], list[Any]]:
    """Everything a local and a cluster scan must agree on (not the elapsed time)."""
    hits = [(h.source, h.line, h.rule.id, h.branch, h.matched, h.event_text) for h in result.hits]
    files = [vars(f) for f in result.stats.files]
    return hits, files


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """2 worker processes on loopback, with (fake) AWS credentials in their environment."""
    saved = {name: os.environ.get(name) for name in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    try:
        with (
            distributed.LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                # no dashboard; the scheduler's HTTP routes on any free port, not 8787
                scheduler_kwargs={"dashboard_address": ":0"},
            ) as cluster,
            distributed.Client(cluster) as connected,
        ):
            yield connected
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def logs(tmp_path: Path) -> list[str]:
    """A big plain file (hits, malformed and blank lines, invalid UTF-8, no final newline),
    a small one, a gzip one, an empty one and a missing one."""
    rng = random.Random(7)
    rows: list[bytes] = []
    for i in range(20000):
        draw = rng.random()
        if draw < 0.01:
            rows.append(json.dumps(HIT if i % 2 else PROC).encode())
        elif draw < 0.012:
            rows.append(b"not json at all")
        elif draw < 0.014:
            rows.append(b"")
        elif draw < 0.015:
            rows.append(b'{"destination": {"ip": "169.254.169.254"}, "x": "\xff"}')
        else:
            rows.append(json.dumps(BENIGN).encode())
    rows.append(b"x" * (3 * RANGE))  # a line longer than a range
    rows.append(json.dumps(HIT).encode())
    big = tmp_path / "big.ndjson"
    big.write_bytes(b"\n".join(rows))
    (tmp_path / "small.ndjson").write_text(json.dumps(HIT) + "\n")
    (tmp_path / "c.ndjson.gz").write_bytes(gzip.compress(b"\n".join(rows[:3000]) + b"\n"))
    (tmp_path / "empty.ndjson").write_bytes(b"")
    return [str(tmp_path / n) for n in ("big.ndjson", "small.ndjson", "c.ndjson.gz")] + [
        str(tmp_path / "empty.ndjson"),
        str(tmp_path / "missing.ndjson"),
    ]


@pytest.mark.parametrize("seed", range(20))
def test_byte_ranges_own_each_line_once(tmp_path: Path, seed: int) -> None:
    """A worker's pieces of a file, read by the engine's byte-range input: every byte and
    line is owned by exactly one range."""
    rng = random.Random(seed)
    lines = [b"x" * rng.choice([0, 1, 5, 30, 200]) for _ in range(rng.randint(0, 60))]
    data = b"\n".join(lines) + rng.choice([b"", b"\n"])
    path = tmp_path / "f"
    path.write_bytes(data)
    size = rng.choice([1, 2, 7, 50, 1000])
    share = [
        Piece(0, str(path), "file", start, min(start + size, len(data)))
        for start in range(0, len(data), size)
    ]
    rules_json = tuple(json.dumps(r.ir) for r in default_rules())
    files = scan_share(share, rules_json, 1, True, 5, None)["files"]
    assert sum(f["bytes"] for f in files) == len(data)
    owned = data.count(b"\n") + (not data.endswith(b"\n") and len(data) > 0)
    assert sum(f["lines"] for f in files) == owned
    assert sum(f["events"] for f in files) == sum(1 for line in data.split(b"\n") if line)


def test_s3_pieces_are_read_by_range_from_a_stream_closed_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An S3 piece is a byte range of the object's file, opened at its first read (an object
    that cannot be opened is that piece's read error, not the share's failure) and closed once
    the share is scanned; merged, the ranges give the local scan's result."""
    import io

    from imds_scan import cluster

    data = b"".join(json.dumps(x).encode() + b"\n" for x in (HIT, BENIGN, PROC, BENIGN) * 5)
    data += b"not json\n" + json.dumps(HIT).encode()
    path = tmp_path / "f.ndjson"
    path.write_bytes(data)
    opened: list[io.BytesIO] = []

    class Objects:
        def open(self, location: str, mode: str, **options: Any) -> io.BytesIO:
            if location == "s3://bucket/gone":
                raise FileNotFoundError("gone")
            opened.append(io.BytesIO(data))
            return opened[-1]

    monkeypatch.setattr(cluster, "_filesystem", lambda endpoint_url: Objects())
    sources = expand([str(path)]).sources
    size = 37
    share = [
        Piece(0, "s3://bucket/key", "s3", start, min(start + size, len(data)))
        for start in range(0, len(data), size)
    ]
    rules = default_rules()
    rules_json = tuple(json.dumps(r.ir) for r in rules)
    out = scan_share(share, rules_json, 1, True, 5, None)
    assert len(opened) == len(share) and all(f.closed for f in opened)
    merged = merge_shares(sources, rules, [share], {0: out}, {}, 5)
    assert key(merged) == key(scan([str(path)]))
    lost = [Piece(0, "s3://bucket/gone", "s3", 10, 20)]
    (gone,) = scan_share(lost, rules_json, 1, True, 5, None)["files"]
    assert (gone["error_kind"], gone["error_offset"]) == ("read", 10)


def test_plan_splits_plain_inputs_only(logs: list[str]) -> None:
    sources = expand(logs).sources
    shares = plan(sources, RANGE)
    pieces = [p for share in shares for p in share]
    big = [p for p in pieces if p.index == 0]
    assert len(big) > 30 and all(p.end is not None for p in big)
    assert [p.end is None for p in pieces if p.index in (1, 2, 3, 4)] == [True] * 4
    assert big[0].start == 0 and big[-1].end == sources[0].size


@pytest.mark.parametrize("garbage", [b"BZh91AY&SY not an event", b"\x1f\x8b\x08 binary"])
def test_range_starting_with_magic_bytes_is_plain(tmp_path: Path, garbage: bytes) -> None:
    """A range whose first line looks like a compressed stream's start is still scanned as
    text, with the right line numbers and counts (no cluster: the worker function, merged)."""
    first = json.dumps(HIT).encode() + b"\n"
    path = tmp_path / "f.ndjson"
    path.write_bytes(first + garbage + b"\n" + json.dumps(PROC).encode() + b"\n" + first)
    sources = expand([str(path)]).sources
    shares = plan(sources, len(first))
    assert shares[1][0].start == len(first)  # the second range starts at the garbage
    rules = default_rules()
    rules_json = tuple(json.dumps(r.ir) for r in rules)
    outputs = {n: scan_share(share, rules_json, 1, True, 5, None) for n, share in enumerate(shares)}
    merged = merge_shares(sources, rules, shares, outputs, {}, 5)
    local = scan([str(path)])
    assert key(merged) == key(local)
    assert [h.line for h in local.hits] == [1, 3, 4] and local.stats.files[0].malformed == 1


def test_local_files_same_as_local_scan(client: Any, logs: list[str]) -> None:
    local = scan(logs)
    seen: list[tuple[int, int | None]] = []
    config = ScanConfig(cluster=client.scheduler.address, range_size=RANGE, max_examples=50)
    distributed_ = scan(
        logs, config=config, progress=lambda read, total: seen.append((read, total))
    )
    assert key(distributed_) == key(scan(logs, config=ScanConfig(max_examples=50)))
    local_hits, local_files = key(local)
    assert len(local_hits) > 150
    assert local_files[-1]["error"] is not None  # the missing file, reported as locally
    assert seen and seen[-1][0] == sum(f.source_bytes for f in local.stats.files)
    assert [r for r, _ in seen] == sorted(r for r, _ in seen)


def test_allowlist_counts_same_as_local_scan(client: Any, logs: list[str]) -> None:
    from imds_scan.config import condition_allowlist
    from imds_scan.rules import default_rules

    rules = condition_allowlist(['process.name == "curl"']).apply(default_rules())
    config = ScanConfig(cluster=client.scheduler.address, range_size=RANGE)
    distributed_ = scan(logs, rules=rules, config=config)
    local = scan(logs, rules=rules)
    assert key(distributed_) == key(local)
    assert distributed_.stats.allowlist == local.stats.allowlist
    (drops,) = local.stats.allowlist
    assert drops.dropped > 50 and drops.hits > 50  # PROC lines dropped, HIT lines kept


def test_cli_local_cluster_same_output_and_exit_code(logs: list[str]) -> None:
    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "imds_scan", *logs, "-f", "ndjson", *extra],
            capture_output=True,
            text=True,
            timeout=120,
        )

    local = run()
    clustered = run("--cluster", "local:2", "--range-size", "40K")
    assert local.returncode == clustered.returncode == 2  # hits, and a missing file
    assert clustered.stdout == local.stdout and local.stdout.count("\n") > 150
    # The summary (malformed lines with file:line, the missing file) matches; the scan line's
    # timing differs.
    assert "missing.ndjson: No such file" in clustered.stderr
    assert clustered.stderr.splitlines()[1:] == local.stderr.splitlines()[1:]


@pytest.mark.skipif(not HAVE_S3, reason="moto[server], s3fs or boto3 is not installed")
def test_s3_objects_same_as_local_scan(
    client: Any,
    bucket: dict[str, bytes],
    endpoint: str,
) -> None:
    root = sorted(bucket)[0].split("/logs/")[0]
    paths = [f"{root}/**", f"{root}/nothing/here.ndjson"]
    local = scan(paths, config=ScanConfig(endpoint_url=endpoint))
    config = ScanConfig(endpoint_url=endpoint, cluster=client.scheduler.address, range_size=300_000)
    shares = plan(expand(paths, endpoint_url=endpoint).sources, config.range_size)
    assert sum(p.end is not None for share in shares for p in share) >= 10
    assert key(scan(paths, config=config)) == key(local)
    assert len(local.hits) == 5 and "no such object" in (local.stats.files[-1].error or "")


def _kill_first_range(marker: str, share: list[Piece], *args: Any) -> dict[str, Any]:
    """The worker function, except that the first share holding a byte range past the start
    of its input kills its worker process (once: the marker file says it happened)."""
    if any(p.start > 0 for p in share):
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            pass
        else:
            os._exit(1)
    return scan_share(share, *args)


def test_killed_worker_loses_no_hits(client: Any, logs: list[str], tmp_path: Path) -> None:
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        marker = tmp_path / "killed"
        sources = expand(logs).sources
        result = run_cluster(
            sources,
            default_rules(),
            client,
            range_size=RANGE,
            max_examples=50,
            task=functools.partial(_kill_first_range, str(marker)),
        )
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert marker.exists()
    local = scan(logs, config=ScanConfig(max_examples=50))
    assert key(result) == key(local)


def test_merge_drops_ranges_after_a_missing_one_and_reports_failed_shares(
    tmp_path: Path,
) -> None:
    """Ctrl-C (a range not finished): the ranges after it in the same object lose their hits
    (their line numbers are unknown), the ones before keep them; a share that failed for good
    names its inputs as errors."""
    line = json.dumps(HIT).encode() + b"\n"
    path = tmp_path / "f.ndjson"
    path.write_bytes(line * 4)
    other = tmp_path / "g.ndjson"
    other.write_bytes(line)
    sources = expand([str(path), str(other)]).sources
    shares = plan(sources, len(line))
    assert [len(share) for share in shares] == [1, 1, 1, 1, 1]
    rules = default_rules()
    rules_json = tuple(json.dumps(r.ir) for r in rules)
    outputs = {n: scan_share(shares[n], rules_json, 1, True, 5, None) for n in (0, 2, 3)}
    merged = merge_shares(
        sources, rules, shares, outputs, {4: "cluster task failed: boom"}, 5, True
    )
    assert [(h.source, h.line) for h in merged.hits] == [(str(path), 1)]
    assert merged.stats.interrupted and merged.stats.files[0].hits == 3
    assert merged.stats.files[1].error == "cluster task failed: boom"
    # A range that stopped at a read error: the ranges after it lose their hits too.
    outputs[1] = scan_share(shares[1], rules_json, 1, True, 5, None)
    outputs[0]["files"][0].update(
        error="read error at byte 0 (line 0): OSError: gone",
        error_kind="read",
        error_offset=0,
        error_line=0,
        lines=0,
    )
    merged = merge_shares(sources, rules, shares, outputs, {}, 5)
    assert [(h.source, h.line) for h in merged.hits] == [(str(path), 1)]
    assert merged.stats.files[0].error_kind == "read"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cluster", "nowhere"], "expected tcp://host:port or local:N"),
        (["--cluster", "local:0"], "expected local:N"),
        (["--cluster", "local:1", "--engine", "python"], "rust engine only"),
        (["--cluster", "local:1", "--range-size", "12X"], "is not a size"),
    ],
)
def test_cli_cluster_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    path = tmp_path / "f.ndjson"
    path.write_text(json.dumps(HIT) + "\n")
    proc = subprocess.run(
        [sys.executable, "-m", "imds_scan", str(path), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and message in proc.stderr


@pytest.mark.parametrize("fmt", ["ndjson", "json", "csv", "parquet", "alerts"])
def test_fast_path_output_same_as_local_scan(
    client: Any, logs: list[str], tmp_path: Path, fmt: str
) -> None:
    """Records and rows built on the workers, line numbers of later ranges made global on the
    client: byte for byte (Parquet: frame for frame) what a local scan writes, fast or not."""
    import io

    import polars as pl

    from imds_scan.batch import HITS
    from imds_scan.report import formats
    from imds_scan.run import open_scan

    def write(config: ScanConfig, needs: frozenset[str]) -> Any:
        stream = open_scan(logs, config=config, needs=needs)
        path = tmp_path / "out.parquet"
        out = io.BytesIO()
        if fmt == "parquet":
            writer: formats.HitWriter = formats.ParquetWriter(str(path))
        else:
            writer = formats.stream_writer(fmt, out, max_table_rows=10, width=120)
        for batch in stream:
            writer.write(batch)
        writer.close()
        return pl.read_parquet(path) if fmt == "parquet" else out.getvalue()

    cluster = ScanConfig(cluster=client.scheduler.address, range_size=RANGE)
    local = write(ScanConfig(), frozenset({HITS}))
    for config, needs in ((ScanConfig(), formats.NEEDS[fmt]), (cluster, formats.NEEDS[fmt])):
        got = write(config, needs)
        if fmt == "parquet":
            assert got.equals(local) and len(got) > 150
        else:
            assert got == local and len(got) > 10_000
