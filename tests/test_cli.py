"""The command-line contract: output formats, summary on stderr, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ENGINES

HIT = {
    "event": {"category": "network"},
    "destination": {"ip": "169.254.169.254"},
    "host": {"name": "web-1"},
}
PROC = {
    "event": {"category": "process", "type": "start"},
    "process": {"name": "curl", "command_line": "curl http://169.254.169.254/latest/meta-data/"},
}
BENIGN = {"event": {"category": "network"}, "destination": {"ip": "10.0.0.1"}}


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imds_scan", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def write(path: Path, *lines: object) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


@pytest.mark.parametrize("engine", ENGINES)
def test_ndjson_contract_and_exit_1(tmp_path: Path, engine: str) -> None:
    f = write(tmp_path / "a.ndjson", BENIGN, HIT, BENIGN, PROC)
    proc = run(f, "--format", "ndjson", "--engine", engine)
    assert proc.returncode == 1, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(r["source"], r["line"], r["branch"]) for r in records] == [
        (str(f), 2, "network"),
        (str(f), 4, "process"),
    ]
    for r in records:
        assert r["rule"] == "Detect Cloud Instance Metadata API"
        assert set(r["matched"]) == {"field", "op", "pattern", "value"}
    assert records[0]["event"] == HIT
    assert records[1]["matched"]["field"] == "process.command_line"
    assert "2 hit(s)" in proc.stderr and "4 events" in proc.stderr


@pytest.mark.parametrize("engine", ENGINES)
def test_no_hits_exit_0(tmp_path: Path, engine: str) -> None:
    proc = run(write(tmp_path / "a.ndjson", BENIGN), "-f", "ndjson", "--engine", engine)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize("engine", ENGINES)
def test_malformed_line_is_counted_and_scan_goes_on(tmp_path: Path, engine: str) -> None:
    f = write(tmp_path / "a.ndjson", HIT, '{"event": {"category": "netw', PROC)
    proc = run(f, "-f", "ndjson", "--engine", engine)
    assert proc.returncode == 1, proc.stderr
    assert [json.loads(x)["line"] for x in proc.stdout.splitlines()] == [1, 3]
    assert "malformed lines: 1" in proc.stderr
    assert f"{f}:2:" in proc.stderr


@pytest.mark.parametrize("engine", ENGINES)
def test_missing_file_is_exit_2_but_others_scanned(tmp_path: Path, engine: str) -> None:
    f = write(tmp_path / "a.ndjson", HIT)
    proc = run(tmp_path / "missing.ndjson", f, "-f", "ndjson", "--engine", engine)
    assert proc.returncode == 2
    assert len(proc.stdout.splitlines()) == 1
    assert "missing.ndjson" in proc.stderr and "error" in proc.stderr


def test_glob_expanded_by_the_tool(tmp_path: Path) -> None:
    (tmp_path / "d" / "e").mkdir(parents=True)
    write(tmp_path / "d" / "x.ndjson", HIT)
    write(tmp_path / "d" / "e" / "y.ndjson", HIT)
    proc = run(str(tmp_path / "d" / "**" / "*.ndjson"), "-f", "ndjson")
    assert proc.returncode == 1, proc.stderr
    assert len(proc.stdout.splitlines()) == 2
    assert run(str(tmp_path / "nothing*.ndjson")).returncode == 2


def test_usage_error_is_exit_2() -> None:
    assert run("--no-such-flag").returncode == 2
    assert run().returncode == 2


def test_table_escapes_control_characters(tmp_path: Path) -> None:
    hostile = {**PROC, "process": {**PROC["process"], "name": "\x1b[31mevil\x1b]0;x\x07"}}
    proc = run(write(tmp_path / "a.ndjson", hostile), "-f", "table")
    assert proc.returncode == 1
    assert "\x1b" not in proc.stdout and "\x07" not in proc.stdout
    assert "\\x1b[31mevil" in proc.stdout
