"""The command-line contract: output formats, summary on stderr, exit codes."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ENGINES, require_tool

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


def test_the_scan_line_groups_thousands_in_every_count(tmp_path: Path) -> None:
    f = write(tmp_path / "a.ndjson", *[HIT] * 1200)
    proc = run(f, "--format", "ndjson", "-o", str(tmp_path / "out.ndjson"))
    assert proc.returncode == 1, proc.stderr
    assert "1 file(s), 1,200 events," in proc.stderr and ", 1,200 hit(s) in " in proc.stderr


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


def tmux_screen(tmp_path: Path, columns: int, *args: str | Path) -> list[str]:
    """Run imds-scan in a detached tmux window ``columns`` wide; the lines on its screen."""
    tmux = require_tool("tmux", "the table is checked in a real terminal")
    done = tmp_path / f"done-{columns}"
    command = [sys.executable, "-m", "imds_scan", *map(str, args)]
    # env -u COLUMNS: the width must come from the terminal itself.
    script = (
        f"env -u COLUMNS PYTHONPATH={shlex.quote(os.environ.get('PYTHONPATH', ''))} "
        f"{shlex.join(command)}; touch {shlex.quote(str(done))}; sleep 300"
    )
    base = [tmux, "-S", str(tmp_path / f"tmux-{columns}.sock"), "-f", "/dev/null"]
    subprocess.run(
        [*base, "new-session", "-d", "-x", str(columns), "-y", "50", script],
        check=True,
        timeout=30,
    )
    try:
        for _ in range(1200):  # until the scan has finished (at most 2 minutes)
            if done.exists():
                break
            time.sleep(0.1)
        assert done.exists(), "imds-scan did not finish in tmux"
        screen = subprocess.run(
            [*base, "capture-pane", "-p"], capture_output=True, text=True, check=True
        ).stdout
    finally:
        subprocess.run([*base, "kill-server"], capture_output=True, timeout=30)
    return [line for line in screen.splitlines() if line.strip()]


@pytest.mark.parametrize("columns", [80, 200])
def test_table_in_a_real_terminal(tmp_path: Path, columns: int) -> None:
    from rich.cells import cell_len

    long_host = {"name": "SQL-PROD-KEF1PF6-with-a-very-long-fleet-suffix"}
    events = [
        {**HIT, "@timestamp": "2024-05-01T10:15:00.123Z", "host": long_host},
        {
            **PROC,
            "@timestamp": "2024-05-01T11:00:00Z",
            "user": {"name": "zoë.martin"},
            "process": {**PROC["process"], "command_line": PROC["process"]["command_line"] * 9},
        },
    ]
    f = write(tmp_path / "a.ndjson", *events)
    lines = tmux_screen(tmp_path, columns, f, "-q")  # on a terminal: a table by default
    assert lines[0] == "2 hit(s)", lines
    assert lines[1].split()[:4] == ["@timestamp", "host", "user", "process"]
    # One line per hit (a wrapped row would add lines), none wider than the terminal.
    assert len(lines) == 3 + 2, lines
    assert all(cell_len(line) <= columns for line in lines), lines
    assert lines[3].startswith("2024-05-01T10:15:00Z ") and "SQL-PROD-KE" in lines[3]
    assert lines[4].startswith("2024-05-01T11:00:00Z ") and lines[4].endswith("…")
    assert "zoë.mar" in lines[4] and "curl http://169.254." in lines[4]
    if columns == 200:  # a host column of 32 cells at most
        assert "SQL-PROD-KEF1PF6-with-a-very-lo…" in lines[3]
        assert "curl http://169.254.169.254/latest/meta-data/curl" in lines[4]
        assert "process.command_line" in lines[4] and "destination.ip" in lines[3]


def test_version_and_short_help() -> None:
    from imds_scan._engine import __version__

    proc = run("--version")
    assert proc.returncode == 0 and proc.stdout == f"imds-scan {__version__}\n", proc.stderr
    proc = run("-h")
    assert proc.returncode == 0 and "--no-config" in proc.stdout and "--version" in proc.stdout


def test_threads_are_bounded(tmp_path: Path) -> None:
    f = write(tmp_path / "a.ndjson", HIT)
    for threads in ("100000", str(10**20)):
        proc = run(f, "-f", "ndjson", "--threads", threads)
        assert proc.returncode == 1, proc.stderr
        assert len(proc.stdout.splitlines()) == 1
        assert "imds-scan: warning: --threads " in proc.stderr
        assert "is more than 256: using 256" in proc.stderr and "Traceback" not in proc.stderr
    config = tmp_path / "c.toml"
    config.write_text(f"threads = {10**18}\n")
    proc = run(f, "-f", "ndjson", "--config", config)
    assert proc.returncode == 1, proc.stderr
    assert "imds-scan: warning: config: threads = " in proc.stderr


def _deep(depth: int) -> str:
    return "(" * depth + 'user.name == "x"' + ")" * depth


def test_unexpected_errors_are_one_line_exit_2(tmp_path: Path) -> None:
    f = write(tmp_path / "a.ndjson", HIT)
    # Nested far beyond any real rule: whatever the parser does, no traceback escapes.
    proc = run(f, "--allow", _deep(5000))
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("imds-scan: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    # A failure nobody foresaw (here: planted in the scan): one line, or the traceback on ask.
    broken = (
        "import sys, imds_scan.cli as cli\n"
        "def boom(*args, **kwargs):\n"
        "    raise RuntimeError('planted \\x1b[2J')\n"
        "cli.scan = boom\n"
        f"sys.argv = ['imds-scan', {str(f)!r}]\n"
        "cli.main()\n"
    )
    for debug, expected in (("", "one line"), ("1", "traceback")):
        proc = subprocess.run(
            [sys.executable, "-c", broken],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "IMDS_SCAN_DEBUG": debug},
        )
        assert proc.returncode == 2, proc.stderr
        if expected == "one line":
            assert proc.stderr == (
                "imds-scan: error: RuntimeError: planted \\x1b[2J (IMDS_SCAN_DEBUG=1 shows where)\n"
            )
        else:
            assert "Traceback" in proc.stderr and "RuntimeError: planted" in proc.stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_full_stdout_is_exit_2_with_one_line(tmp_path: Path) -> None:
    f = write(tmp_path / "a.ndjson", HIT, PROC)
    for args in ((f, "-f", "ndjson"), ("--show-rule",), ("--version",)):
        with open("/dev/full", "w") as full:
            proc = subprocess.run(
                [sys.executable, "-m", "imds_scan", *map(str, args), "-q"]
                if args[0] != "--version"
                else [sys.executable, "-m", "imds_scan", "--version"],
                stdout=full,
                stderr=subprocess.PIPE,
                text=True,
                timeout=120,
            )
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr == (
            "imds-scan: error: cannot write to standard output: No space left on device\n"
        ), args


def test_no_stdout_at_all_is_exit_2_unless_the_results_go_to_a_file(tmp_path: Path) -> None:
    """Started with standard output closed (``>&-``), the results cannot be written: exit 2
    with one line (it was a traceback); with --output they go to the file as usual."""
    f = write(tmp_path / "a.ndjson", HIT, PROC)
    out = tmp_path / "out.ndjson"
    for args, code in (((f, "-f", "ndjson"), 2), ((f, "-o", out), 1)):
        proc = subprocess.run(
            [sys.executable, "-m", "imds_scan", *map(str, args), "-q"],
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            preexec_fn=lambda: os.close(1),
        )
        assert proc.returncode == code, (args, proc.stderr)
        if code == 2:
            assert proc.stderr == (
                "imds-scan: error: cannot write to standard output: standard output is closed\n"
            )
        else:
            assert proc.stderr == "" and json.loads(out.read_text().splitlines()[0])["line"] == 1


def test_closed_stdout_is_quiet(tmp_path: Path) -> None:
    f = write(tmp_path / "a.ndjson", *([HIT] * 20000))
    for args, code in (((f, "-f", "ndjson", "-q"), 1), (("--show-rule",), 0)):
        proc = subprocess.Popen(
            [sys.executable, "-m", "imds_scan", *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # the reader is gone before anything is written (`| head -0`)
        err = proc.stderr.read()
        assert proc.wait(timeout=120) == code, err
        assert err == b"", err


def test_unreachable_cluster_is_exit_2_with_one_line(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    f = write(tmp_path / "a.ndjson", HIT)
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.run(
        [sys.executable, "-m", "imds_scan", str(f), "-q", "--cluster", f"tcp://127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "1s"},
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith(
        f"imds-scan: error: --cluster tcp://127.0.0.1:{port}: cannot reach the Dask scheduler: "
    ), proc.stderr
    assert len(proc.stderr.splitlines()) == 1, proc.stderr


def test_a_terminal_without_a_size_is_a_terminal_of_unknown_width(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A pty whose size was never set (`script -qc ...`) reports 0 columns: $COLUMNS, then
    # the default, rather than a table squeezed to nothing.
    import fcntl
    import pty
    import struct
    import termios

    from imds_scan.output import FILE_WIDTH, table_width

    leader, follower = pty.openpty()
    try:
        with open(follower, "w", closefd=False) as out:
            assert os.get_terminal_size(follower).columns == 0
            monkeypatch.setenv("COLUMNS", "100")
            assert table_width(out) == 100
            monkeypatch.delenv("COLUMNS")
            assert table_width(out) == FILE_WIDTH
            # Once it has a size, that is the width.
            fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
            assert table_width(out) == 120
    finally:
        os.close(leader)
        os.close(follower)
