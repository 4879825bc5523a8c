"""Shared helpers: write events to a temporary NDJSON file and scan it with either engine."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from imds_scan import Hit, Rule, ScanResult, default_rules, run_scan

ENGINES = ["python", "rust"]


@pytest.fixture(autouse=True)
def no_user_config(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI reads the user's config file: tests (and their subprocesses) see none, and
    keep their compiled-rule cache apart from the user's."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg")))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
    monkeypatch.delenv("IMDS_SCAN_CONFIG", raising=False)


def to_line(event: dict[str, Any] | str) -> str:
    return event if isinstance(event, str) else json.dumps(event)


@pytest.fixture
def scan_events(tmp_path: Path):
    """scan_events(events, engine, rules=None) -> ScanResult, over one temporary file."""
    counter = iter(range(10**9))

    def run(
        events: list[dict[str, Any] | str],
        engine: str,
        rules: list[Rule] | None = None,
        **options: Any,
    ) -> ScanResult:
        path = tmp_path / f"events-{next(counter)}.ndjson"
        path.write_text("".join(to_line(e) + "\n" for e in events), encoding="utf-8")
        return run_scan([str(path)], rules or default_rules(), engine=engine, **options)  # type: ignore[arg-type]

    return run


def hit_keys(hits: list[Hit]) -> list[tuple[Any, ...]]:
    """What two engines must agree on, hit by hit."""
    return [(h.source, h.line, h.rule.id, h.branch, h.matched, h.event_text) for h in hits]


def require_tool(name: str, why: str) -> str:
    """The path of an external program a test drives; a skip without it, but a failure in CI
    (.ci/run installs it), so a check never goes quietly missing there."""
    import os
    import shutil

    found = shutil.which(name)
    if found is None:
        message = f"{name} is not installed ({why}; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def wait_until_read(pipe: int, timeout: float = 60.0) -> None:
    """Wait until the reader of a pipe has taken every byte written to it (Linux: FIONREAD
    on the write end counts the unread bytes), then a moment for it to wait for more."""
    import fcntl
    import struct
    import termios

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        unread = struct.unpack("i", fcntl.ioctl(pipe, termios.FIONREAD, b"\0" * 4))[0]
        if unread == 0:
            time.sleep(0.2)
            return
        time.sleep(0.05)
    raise AssertionError(f"the scan did not read its input in {timeout} s")


def peak_rss_kb(*args: str) -> tuple[int, int]:
    """(exit code, peak RSS in KiB) of one CLI run in a fresh process (RUSAGE_CHILDREN is a
    maximum over all children: a wrapper per run keeps it to this one)."""
    wrapper = (
        "import resource, subprocess, sys\n"
        "rc = subprocess.run([sys.executable, '-m', 'imds_scan', *sys.argv[1:]],"
        " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode\n"
        "print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", wrapper, *args], capture_output=True, text=True, timeout=600
    )
    code, rss = proc.stdout.split()
    return int(code), int(rss)
