"""Hostile log content is inert: escaped in the terminal table and summary, and in the HTML
report (checked by parsing it, and by rendering it in headless Chromium when installed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import require_tool
from imds_scan import ScanConfig, scan
from imds_scan.report.html import render_report

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(2)>'
ANSI = "\x1b[31mred\x1b]0;title\x07\x1b[2J"
BIDI = "admin\u202etxt.exe"
MARKUP = "[bold red]rich[/] [link=http://x]y[/link]"
HOSTILE = {
    "@timestamp": "2024-05-01T10:00:00Z",
    "event": {"category": "process", "type": "start"},
    "host": {"name": f"h{ANSI}<b>host</b>"},
    "user": {"name": f"{BIDI}\x9b31m"},
    "process": {
        "name": f"{MARKUP}{ANSI}",
        "command_line": f"curl http://169.254.169.254/ {SCRIPT} {IMG} {ANSI} {BIDI}",
    },
}
# Raw bytes that must never reach a terminal: ESC, BEL, C1 CSI, the bidi override.
RAW_CONTROLS = ("\x1b", "\x07", "\x9b", "\u202e")


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    # The file name is hostile too: it is shown as source:line.
    path = tmp_path / "logs\x1b[2Jx.ndjson"
    path.write_text(json.dumps(HOSTILE) + "\n", encoding="utf-8")
    return path


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imds_scan", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "400"},  # wide: no folding inside an escape
    )


def test_table_and_summary_are_inert(hostile: Path) -> None:
    proc = cli(hostile, "--engine", "python", "-f", "table", "--summary")
    assert proc.returncode == 1, proc.stderr
    for stream in (proc.stdout, proc.stderr):
        for raw in RAW_CONTROLS:
            assert raw not in stream, repr(raw)
    # Shown escaped, not dropped: an analyst must see what the attacker wrote.
    assert "\\x1b[31mred\\x1b]0;title\\x07" in proc.stdout
    assert "admin\\u202etxt.exe" in proc.stdout
    # Rich markup is printed as text, not interpreted (the process column cuts the rest).
    assert "[bold red]rich[/] [link" in proc.stdout
    assert "\\x1b[31mred" in proc.stderr and "\\x9b31m" in proc.stderr


class Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> Collector:
    collector = Collector()
    collector.feed(page)
    collector.close()
    return collector


def test_html_report_is_self_contained_and_inert(hostile: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    proc = cli(hostile, "--engine", "python", "-f", "ndjson", "--report", out)
    assert proc.returncode == 1, proc.stderr
    page = out.read_text(encoding="utf-8")
    doc = parse(page)
    names = [tag for tag, _ in doc.tags]
    assert "script" not in names and "img" not in names and "iframe" not in names
    assert "link" not in names  # no stylesheet fetched: the CSS is inline
    for tag, attrs in doc.tags:
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        for name in ("src", "href", "action", "data"):
            assert name not in attrs or not attrs[name], (tag, attrs)
    csp = [
        a for t, a in doc.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"
    ]
    assert csp and "default-src 'none'" in str(csp[0]["content"])
    assert "svg" in names and "style" in names  # the chart and the CSS are inline
    text = "".join(doc.text)
    # The hostile strings are there as text, control characters made visible.
    assert SCRIPT in text and IMG in text and "<b>host</b>" in text
    assert "\\x1b[31mred" in text and "\\u202e" in text
    for raw in RAW_CONTROLS:
        assert raw not in page


def test_html_timeline_bins(tmp_path: Path) -> None:
    events = [
        {**HOSTILE, "@timestamp": f"2024-05-01T{h:02d}:30:00Z", "host": {"name": "a"}}
        for h in (1, 1, 4)
    ]
    path = tmp_path / "t.ndjson"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    doc = parse(render_report(scan([str(path)], config=ScanConfig(engine="python"))))
    rects = [a for t, a in doc.tags if t == "rect"]
    assert len(rects) == 2  # hours 01 (2 hits) and 04 (1 hit); empty bins have no bar
    heights = sorted(float(str(a["height"])) for a in rects)
    assert heights[1] == pytest.approx(2 * heights[0])
    assert "2024-05-01 01:00: 2 hit(s)" in "".join(doc.text)


def test_forged_timestamps_keep_the_chart_small(tmp_path: Path) -> None:
    events = [{**HOSTILE, "@timestamp": t} for t in ("0001-01-01T00:00:00Z", "9999-12-31")]
    path = tmp_path / "f.ndjson"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    page = render_report(scan([str(path)], config=ScanConfig(engine="python")))
    assert "Hits per year (UTC)." in page
    assert len([t for t, _ in parse(page).tags if t == "rect"]) == 2


def test_report_without_hits(tmp_path: Path) -> None:
    path = tmp_path / "none.ndjson"
    path.write_text('{"event": {"category": "network"}}\n')
    out = tmp_path / "r.html"
    assert cli(path, "--engine", "python", "--report", out, "-q").returncode == 0
    assert "no timeline" in out.read_text()


def test_report_renders_in_chromium(hostile: Path, tmp_path: Path) -> None:
    chromium = require_tool("chromium", "the report is checked in a real browser")
    out = tmp_path / "r.html"
    assert cli(hostile, "--engine", "python", "-q", "--report", out).returncode == 1
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    shot = tmp_path / "r.png"
    subprocess.run(
        [chromium, *flags, "--window-size=1280,900", f"--screenshot={shot}", out.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dom = subprocess.run(
        [chromium, *flags, "--dump-dom", out.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    # After the browser parsed it, the hostile markup is still text, not elements.
    doc = parse(dom)
    names = [tag for tag, _ in doc.tags]
    assert "script" not in names and "img" not in names
    text = "".join(doc.text)
    assert SCRIPT in text and IMG in text and "<b>host</b>" in text


# ---------------------------------------------------------------- output files

HIT_LINE = json.dumps({"event": {"category": "network"}, "destination": {"ip": "169.254.169.254"}})


def _log(path: Path, copies: int = 1) -> Path:
    path.write_text((HIT_LINE + "\n") * copies)
    return path


def test_output_that_is_an_input_is_refused(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    (logs / "sub").mkdir(parents=True)
    log = _log(logs / "sub" / "in.ndjson")
    before = log.read_bytes()
    (tmp_path / "link.ndjson").symlink_to(log)
    os.link(log, tmp_path / "hard.ndjson")
    cases = [
        ([log, "-o", log], "--output"),
        ([logs, "-o", log], "--output"),  # through a directory
        ([str(logs / "**" / "*.ndjson"), "-o", log], "--output"),  # through a glob
        ([log, "-o", tmp_path / "link.ndjson"], "--output"),  # a symlink to it
        ([log, "-o", tmp_path / "hard.ndjson"], "--output"),  # a hard link
        ([log, "-f", "ndjson", "-o", tmp_path / "x.html", "--report", tmp_path / "x.html"], ""),
    ]
    for args, flag in cases:
        proc = cli(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.startswith(f"imds-scan: error: {flag}"), proc.stderr
        assert len(proc.stderr.splitlines()) == 1, proc.stderr
        assert log.read_bytes() == before
    # Standard input redirected from the file.
    with open(log, "rb") as stdin:
        proc = subprocess.run(
            [sys.executable, "-m", "imds_scan", "-", "-o", str(log)],
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 2 and "is also an input (-)" in proc.stderr
    assert log.read_bytes() == before
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(
        ["logs", "sub", "in.ndjson", "link.ndjson", "hard.ndjson"]
    )  # no temporary file left behind


def test_output_not_yet_written_inside_an_input_is_refused(tmp_path: Path) -> None:
    # The target does not exist yet: its temporary file, beside it, would be scanned (a
    # directory walk reads hidden files), and the next scan would read the hits.
    logs = tmp_path / "logs"
    (logs / "sub").mkdir(parents=True)
    _log(logs / "in.ndjson")
    cases = [
        ([logs, "-f", "ndjson", "-o", logs / "out.ndjson"], "--output", "an input directory"),
        ([logs, "-f", "ndjson", "-o", logs / "sub" / "o.ndjson"], "--output", "an input dir"),
        ([logs, "-f", "ndjson", "--report", logs / "r.html"], "--report", "an input directory"),
        ([str(logs / "*.ndjson"), "-o", logs / "out.ndjson"], "--output", "the input glob"),
        ([str(logs / "**"), "-o", logs / "sub" / "o.csv"], "--output", "the input glob"),
    ]
    for args, flag, where in cases:
        proc = cli(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.startswith(f"imds-scan: error: {flag} "), proc.stderr
        assert f"is inside {where}" in proc.stderr and len(proc.stderr.splitlines()) == 1
        assert sorted(p.name for p in logs.rglob("*")) == ["in.ndjson", "sub"]
    # Beside the inputs, not inside them: written.
    proc = cli(str(logs / "*.ndjson"), "-o", logs / "out.csv", "-q")
    assert proc.returncode == 1 and (logs / "out.csv").exists(), proc.stderr


def test_report_must_be_html(tmp_path: Path) -> None:
    log = _log(tmp_path / "a.ndjson")
    other = _log(tmp_path / "b.ndjson")
    before = other.read_bytes()
    proc = cli(log, "--report", other)
    assert proc.returncode == 2
    assert "Invalid value for '--report'" in proc.stderr and "does not end in .html" in proc.stderr
    assert other.read_bytes() == before
    assert cli(log, "-q", "--report", tmp_path / "R.HTML").returncode == 1


def test_unwritable_output_fails_before_the_scan(tmp_path: Path) -> None:
    log = _log(tmp_path / "a.ndjson")
    (tmp_path / "d.ndjson").mkdir()
    for args in (
        ["-o", tmp_path / "missing" / "x.ndjson"],
        ["--report", tmp_path / "missing" / "r.html"],
        ["-o", tmp_path / "d.ndjson"],  # a directory
    ):
        proc = cli(log, *args)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith("imds-scan: error: "), proc.stderr
        assert "1 file(s)" not in proc.stderr  # refused before anything was scanned
        assert len(proc.stderr.splitlines()) == 1, proc.stderr


def test_output_is_replaced_whole_and_keeps_devices_working(tmp_path: Path) -> None:
    log = _log(tmp_path / "a.ndjson", 3)
    out = tmp_path / "out.ndjson"
    out.write_text("old\n")
    os.chmod(out, 0o640)
    assert cli(log, "-q", "-o", out).returncode == 1
    assert [json.loads(x)["line"] for x in out.read_text().splitlines()] == [1, 2, 3]
    assert os.stat(out).st_mode & 0o777 == 0o640  # the old file's mode is kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ndjson", "out.ndjson"]
    (tmp_path / "link.ndjson").symlink_to(out)
    assert cli(log, "-q", "-o", tmp_path / "link.ndjson", "-f", "ndjson").returncode == 1
    assert (tmp_path / "link.ndjson").is_symlink()  # the link is kept, its target replaced
    assert len(out.read_text().splitlines()) == 3
    assert cli(log, "-q", "-o", "/dev/null", "-f", "ndjson").returncode == 1
    proc = cli(log, "-q", "-o", "/dev/stdout", "-f", "ndjson")  # resolves to no real path
    assert proc.returncode == 1 and len(proc.stdout.splitlines()) == 3, proc.stderr
    # A named pipe is opened once, when the results are written: its reader gets them all.
    fifo = tmp_path / "fifo.ndjson"
    os.mkfifo(fifo)
    scan = subprocess.Popen([sys.executable, "-m", "imds_scan", str(log), "-q", "-o", str(fifo)])
    # Opened without blocking, so a scan that never writes fails the test instead of hanging.
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    assert scan.wait(timeout=120) == 1
    got = os.read(reader, 1 << 16).decode()
    os.close(reader)
    assert [json.loads(x)["line"] for x in got.splitlines()] == [1, 2, 3]


def test_a_write_cut_short_keeps_whole_records(tmp_path: Path) -> None:
    import resource

    log = _log(tmp_path / "a.ndjson", 200)
    out = tmp_path / "out.ndjson"
    limit = 20_000  # bytes: a file may not grow beyond this (EFBIG, as a full disk)

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    def scan_to(target: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "imds_scan", str(log), "-q", "-o", str(target)],
            capture_output=True,
            text=True,
            timeout=120,
            preexec_fn=small_files,
        )

    proc = scan_to(out)
    assert proc.returncode == 2, proc.stderr
    records = [json.loads(x) for x in out.read_text().splitlines()]
    assert out.read_text().endswith("\n") and 0 < len(records) < 200
    assert [r["line"] for r in records] == list(range(1, len(records) + 1))
    assert proc.stderr == (
        f"imds-scan: error: cannot write {out} in full: File too large; it holds the first "
        f"{len(records)} record(s)\n"
    )
    # A format that is not line by line is not left half-written: the old file stays.
    out_json = tmp_path / "out.json"
    out_json.write_text("[]\n")
    proc = scan_to(out_json)
    assert proc.returncode == 2 and "File too large" in proc.stderr
    assert out_json.read_text() == "[]\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ndjson", "out.json", "out.ndjson"]


@pytest.mark.parametrize("engine", ["python", "rust"])
def test_ctrl_c_writes_the_hits_to_the_output_file(tmp_path: Path, engine: str) -> None:
    out = tmp_path / "out.ndjson"
    proc = subprocess.Popen(
        [sys.executable, "-m", "imds_scan", "-", "-o", str(out), "--engine", engine],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    proc.stdin.write(((HIT_LINE + "\n") * 3).encode())
    proc.stdin.flush()  # and keep stdin open: the scan waits for more
    # The output's temporary file is made once the rules are ready, just before the scan: a
    # slow start-up (a loaded machine) is waited for, not interrupted.
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".out.ndjson.*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1)  # the scan of what was sent
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    proc.stdin.close()
    assert proc.returncode == 130, err
    assert [json.loads(x)["line"] for x in out.read_text().splitlines()] == [1, 2, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.ndjson"]


# ---------------------------------------------------------------- the Python API's options


def test_api_threads_are_bounded_as_the_cli_bounds_them(tmp_path: Path) -> None:
    from imds_scan import default_rules, run_scan
    from imds_scan.engines import MAX_THREADS
    from imds_scan.plan import plan_rules

    log = _log(tmp_path / "a.ndjson")
    # A million threads would each get two 4 MiB buffers: taken as MAX_THREADS.
    assert ScanConfig(threads=10**6).threads == MAX_THREADS
    assert plan_rules(default_rules(), (), (), 10**6).threads == MAX_THREADS
    assert len(scan([str(log)], config=ScanConfig(threads=10**6)).hits) == 1
    assert len(scan([str(log)], threads=10**6).hits) == 1
    # A negative count (or not an integer) is an error, not an OverflowError from the engine.
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="threads must be"):
            ScanConfig(threads=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threads must be"):
        scan([str(log)], threads=-1)
    with pytest.raises(ValueError, match="threads must be"):
        run_scan([str(log)], default_rules(), threads=-1)


def test_api_options_of_the_wrong_kind_are_refused_when_made(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    # A bare string would be read a character at a time: "web-*" as "w", "e", "b", "-", "*".
    for name in ("hosts", "exclude_hosts"):
        with pytest.raises(TypeError, match=f"{name} must be a tuple of glob strings"):
            ScanConfig(**{name: "web-*"})
        with pytest.raises(TypeError, match=name):
            ScanConfig(**{name: ("web-*", 3)})
    assert ScanConfig(hosts=["web-*"]).hosts == ("web-*",)  # type: ignore[arg-type]
    # A date as text was an AttributeError deep in the scan.
    for name in ("since", "until"):
        with pytest.raises(TypeError, match=f"{name} must be a datetime or None"):
            ScanConfig(**{name: "2024-05-01"})
    assert ScanConfig(since=datetime(2024, 5, 1, tzinfo=UTC)).since is not None
    # max_hits=0 stopped before the first hit: 0 hits, exit as if the logs were clean.
    for bad in (0, -1):
        with pytest.raises(ValueError, match="max_hits must be 1 or more"):
            ScanConfig(max_hits=bad)
    with pytest.raises(TypeError, match="max_hits must be an integer"):
        ScanConfig(max_hits=2.5)  # type: ignore[arg-type]
    log = _log(tmp_path / "a.ndjson", copies=3)
    assert len(scan([str(log)], config=ScanConfig(max_hits=1)).hits) == 1
