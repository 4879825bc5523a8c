"""s3:// inputs against a real S3 API server (moto's server mode on 127.0.0.1, started
here), read through fsspec/s3fs and streamed through the engines without temporary files."""

from __future__ import annotations

import gzip
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zstandard

from conftest import ENGINES
from imds_scan import ScanConfig, default_rules, run_scan, scan
from imds_scan.sources import Source, s3_filesystem

moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed")
pytest.importorskip("s3fs", reason="s3fs is not installed")
boto3 = pytest.importorskip("boto3")

HIT = {"event": {"category": "network"}, "destination": {"ip": "169.254.169.254"}}
PROC = {
    "event": {"category": "process", "type": "start"},
    "process": {"name": "curl", "command_line": "curl http://169.254.169.254/latest/meta-data/"},
}
BENIGN = {"event": {"category": "network"}, "destination": {"ip": "10.0.0.1"}}
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def lines(*items: object) -> bytes:
    return "".join(json.dumps(x) + "\n" for x in items).encode()


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def bucket(endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, bytes]:
    """A bucket of logs in dated folders, gzip, zstd and plain; the objects by key."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    # Every client of the test process talks to the local server, even one given no endpoint.
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    import s3fs  # type: ignore[import-untyped]

    s3fs.S3FileSystem.clear_instance_cache()
    client = boto3.client("s3", endpoint_url=endpoint)
    name = f"archive-{tmp_path.name.lower().replace('_', '-')[-30:]}"
    client.create_bucket(Bucket=name)
    big = lines(*([BENIGN] * 20000 + [HIT] + [BENIGN] * 20000 + [PROC]))  # ~3 MB
    objects = {
        "logs/2024/05/01/a.ndjson.gz": gzip.compress(lines(BENIGN, HIT)),
        "logs/2024/05/02/b.ndjson.zst": zstandard.ZstdCompressor().compress(lines(PROC)),
        "logs/2024/05/02/c.ndjson": big,
        "other/d.ndjson": lines(HIT),
    }
    for key, body in objects.items():
        client.put_object(Bucket=name, Key=key, Body=body)
    return {f"s3://{name}/{key}": body for key, body in objects.items()}


def _names(bucket: dict[str, bytes]) -> list[str]:
    return sorted(bucket)


@pytest.mark.parametrize("engine", ENGINES)
def test_prefix_glob_and_object(bucket: dict[str, bytes], endpoint: str, engine: str) -> None:
    a, b, c, d = _names(bucket)
    root = a.split("/logs/")[0]
    config = ScanConfig(engine=engine, endpoint_url=endpoint, threads=2)  # type: ignore[arg-type]
    prefix = scan([f"{root}/logs/"], config=config)
    assert [f.path for f in prefix.stats.files] == [a, b, c]
    assert [(h.source, h.line) for h in prefix.hits] == [(a, 2), (b, 1), (c, 20001), (c, 40002)]
    assert [f.compression for f in prefix.stats.files] == ["gzip", "zstd", None]
    assert [f.source_bytes for f in prefix.stats.files] == [len(bucket[n]) for n in (a, b, c)]
    assert prefix.stats.errors == []
    globbed = scan([f"{root}/**/*.ndjson*"], config=config)
    assert [f.path for f in globbed.stats.files] == [a, b, c, d]
    assert len(globbed.hits) == 5
    one = scan([f"{root}/logs/2024/05/0?/*.gz"], config=config)
    assert [(h.source, h.line) for h in one.hits] == [(a, 2)]
    assert [(h.source, h.line) for h in scan([d], config=config).hits] == [(d, 1)]


@pytest.mark.parametrize("engine", ENGINES)
def test_missing_object_is_reported_and_the_rest_scanned(
    bucket: dict[str, bytes], endpoint: str, engine: str
) -> None:
    a, *_, d = _names(bucket)
    root = a.split("/logs/")[0]
    config = ScanConfig(engine=engine, endpoint_url=endpoint)  # type: ignore[arg-type]
    result = scan([f"{root}/nothing/here.ndjson", d], config=config)
    assert "no such object" in (result.stats.files[0].error or "")
    assert len(result.hits) == 1
    # A glob that matches nothing is reported the same way; an object named twice (by a
    # prefix and by its URL) is read once.
    result = scan([f"{root}/nothing/*.ndjson", d, f"{root}/other/", d], config=config)
    assert [(f.path, f.error) for f in result.stats.files] == [
        (f"{root}/nothing/*.ndjson", "no object matches this glob"),
        (d, None),
    ]
    assert len(result.hits) == 1
    assert result.stats.skipped == [(d, f"the same object as {d}: scanned once")] * 2
    # An object deleted between listing and reading fails when read, not before.
    fs = s3_filesystem(endpoint)
    gone = [Source(f"{root}/gone.ndjson", "s3", 10, fs=fs), Source(d, "s3", None, fs=fs)]
    result = run_scan(gone, default_rules(), engine=engine)  # type: ignore[arg-type]
    assert result.stats.files[0].error is not None
    assert len(result.hits) == 1


def test_cli_with_endpoint_url(bucket: dict[str, bytes], endpoint: str) -> None:
    a, *_ = _names(bucket)
    root = a.split("/logs/")[0]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "imds_scan",
            f"{root}/logs/",
            "--endpoint-url",
            endpoint,
            "-f",
            "ndjson",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    records = [json.loads(x) for x in proc.stdout.splitlines()]
    assert [r["source"] for r in records] == [a, *sorted(bucket)[1:2], *[sorted(bucket)[2]] * 2]
    assert "3 file(s)" in proc.stderr


def test_missing_s3fs_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from imds_scan.sources import InputError, s3_filesystem

    real_import = builtins.__import__

    def no_s3fs(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "s3fs":
            raise ImportError("no s3fs")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_s3fs)
    with pytest.raises(InputError, match=r"imds-scan\[s3\]"):
        s3_filesystem(None)
