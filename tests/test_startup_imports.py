"""Start-up: a plain scan (NDJSON out, no summary, no config) imports only what it uses. Polars,
Rich, the config machinery, the TOML parser (once the rule cache holds the bundled rule) and
the EQL compiler's parser tables stay unloaded; `import imds_scan` loads a module of the API
only when one of its names is used."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

EVENT = {
    "@timestamp": "2024-05-06T00:59:04.180Z",
    "event": {"category": ["network"], "type": ["start"]},
    "host": {"name": "web-1"},
    "process": {"name": "curl", "executable": "/usr/bin/curl"},
    "destination": {"ip": "169.254.169.254", "port": 80},
    "url": {"full": "http://169.254.169.254/latest/meta-data/"},
}
# Never needed by a plain scan.
HEAVY = ("polars", "rich", "imds_scan.report.aggregate", "imds_scan.report.html")
# Not needed once the rule cache holds the bundled rule (whose entry is found without a
# cryptographic hash), nor without a config or allowlist; the EQL compiler (its module alone
# costs ~25 ms) is only needed to compile a rule the cache does not hold.
LAZY = ("tomllib", "imds_scan.config", "hashlib", "imds_scan.eql")


def imported(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run the CLI with -X importtime; the modules it imported."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "imds_scan", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )
    names = set(re.findall(r"^import time:.*\|\s*(\S+)\s*$", done.stderr, re.MULTILINE))
    assert "imds_scan.cli" in names, done.stderr[-2000:]
    return done, names


@pytest.mark.parametrize("to_file", [True, False])
def test_a_plain_scan_imports_neither_polars_nor_rich(tmp_path: Path, to_file: bool) -> None:
    events = tmp_path / "events.ndjson"
    events.write_text(json.dumps(EVENT) + "\n", encoding="utf-8")
    out = ["--output", str(tmp_path / "hits.ndjson")] if to_file else ["-f", "ndjson"]
    first, _ = imported(str(events), "-q", *out, cwd=tmp_path)
    assert first.returncode == 1, first.stderr[-2000:]
    done, names = imported(str(events), "-q", *out, cwd=tmp_path)  # the rule cache is warm
    assert done.returncode == 1, done.stderr[-2000:]
    hits = (tmp_path / "hits.ndjson").read_text("utf-8") if to_file else done.stdout
    assert hits.count("\n") == 1
    for module in HEAVY + LAZY:
        assert module not in names, f"{module} imported by a plain scan"


def test_the_summary_still_gets_polars(tmp_path: Path) -> None:
    """The converse, so that the check above cannot pass by not seeing imports at all."""
    events = tmp_path / "events.ndjson"
    events.write_text(json.dumps(EVENT) + "\n", encoding="utf-8")
    done, names = imported(str(events), "-q", "-f", "ndjson", "--summary", cwd=tmp_path)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "polars" in names


def test_a_config_file_still_loads_the_config_machinery(tmp_path: Path) -> None:
    events = tmp_path / "events.ndjson"
    events.write_text(json.dumps(EVENT) + "\n", encoding="utf-8")
    config = tmp_path / "c.toml"
    config.write_text('[allowlist]\n"process.name" = ["curl"]\n', encoding="utf-8")
    done, names = imported(str(events), "-q", "-f", "ndjson", "--config", str(config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]  # the allowlist dropped the hit
    assert {"tomllib", "imds_scan.config"} <= names


def test_the_package_loads_api_modules_when_used() -> None:
    code = (
        "import sys, imds_scan\n"
        "before = {m for m in sys.modules if m.startswith('imds_scan.')}\n"
        "from imds_scan import scan, iter_scan, ScanConfig, Rule, EqlError, default_rules\n"
        "from imds_scan import Engine, FileResult, FilterError, Hit, HitIterator, InputError\n"
        "from imds_scan import ScanInterrupted, ScanResult, ScanStats, compile_rule\n"
        "from imds_scan import expand_inputs, run_scan\n"
        "import imds_scan.run, imds_scan.records\n"
        "assert scan is imds_scan.run.scan and Hit is imds_scan.records.Hit\n"
        "assert set(imds_scan.__all__) <= set(dir(imds_scan))\n"
        "try:\n"
        "    imds_scan.nothing\n"
        "except AttributeError as exc:\n"
        "    assert 'nothing' in str(exc)\n"
        "else:\n"
        "    raise SystemExit('no AttributeError')\n"
        "print(sorted(before))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"  # `import imds_scan` alone loads none of its modules
