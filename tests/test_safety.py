"""Hostile log content is inert: escaped in the terminal table and summary, and in the HTML
report (checked by parsing it, and by rendering it in headless Chromium when installed)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

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


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_report_renders_in_chromium(hostile: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    assert cli(hostile, "--engine", "python", "-q", "--report", out).returncode == 1
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    shot = tmp_path / "r.png"
    subprocess.run(
        ["chromium", *flags, "--window-size=1280,900", f"--screenshot={shot}", out.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dom = subprocess.run(
        ["chromium", *flags, "--dump-dom", out.as_uri()],
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
