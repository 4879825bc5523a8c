"""Small files (rule files, the config, mappings) are read with a bound: a data file given
to --rule by mistake, /dev/zero or a FIFO in a rules directory is refused, named, at once."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import typer.main

from imds_scan.cli import app
from imds_scan.config import ConfigError, load_config
from imds_scan.rules import RuleFileError, load_rule_file, load_rules
from imds_scan.smallfile import (
    MAX_SMALL_FILE_BYTES,
    SmallFileError,
    TooLarge,
    read_small_file,
)

RULE = Path(__file__).parent / "data" / "rules" / "imds_process_by_unusual_tool.toml"
HAS_FIFO = hasattr(os, "mkfifo")


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imds_scan", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_reads_up_to_the_limit_and_refuses_past_it(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    assert read_small_file(path, regular=True, limit=100) == b"x" * 100
    assert read_small_file(path, regular=False, limit=100) == b"x" * 100
    with pytest.raises(TooLarge, match=r"^larger than 99 bytes$"):
        read_small_file(path, regular=True, limit=99)
    path.write_bytes(b"")
    assert read_small_file(path, regular=True) == b""
    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.truncate(MAX_SMALL_FILE_BYTES + 1)
    with pytest.raises(TooLarge, match=r"^larger than 8 MiB$"):
        read_small_file(big, regular=True)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_an_endless_device_is_read_up_to_the_limit_only() -> None:
    with pytest.raises(TooLarge):
        read_small_file("/dev/zero", regular=False, limit=1 << 20)
    with pytest.raises(SmallFileError, match=r"^not a regular file$"):
        read_small_file("/dev/zero", regular=True)


@pytest.mark.skipif(not HAS_FIFO, reason="no FIFOs")
def test_a_fifo_is_refused_unread_when_regular_files_only(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    # No writer: opening it to read would wait forever.
    with pytest.raises(SmallFileError, match=r"^not a regular file$"):
        read_small_file(fifo, regular=True)


@pytest.mark.skipif(not HAS_FIFO, reason="no FIFOs")
def test_a_named_pipe_is_read_when_named_itself(tmp_path: Path) -> None:
    """`--rule <(curl ...)`: what the shell gives is a pipe, read to its end."""
    fifo = tmp_path / "rule.toml"
    os.mkfifo(fifo)
    text = RULE.read_bytes()

    def write() -> None:
        with open(fifo, "wb") as f:
            f.write(text)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        rule = load_rule_file(fifo)
    finally:
        writer.join(timeout=10)
    assert rule.source == str(fifo)
    assert rule.id == load_rule_file(RULE).id


def test_a_data_file_given_as_a_rule_is_refused_by_its_size(tmp_path: Path) -> None:
    data = tmp_path / "events.ndjson"
    with open(data, "wb") as f:
        f.truncate(MAX_SMALL_FILE_BYTES + 1)
    with pytest.raises(RuleFileError) as info:
        load_rule_file(data)
    assert str(info.value) == f"{data}: larger than 8 MiB: not a rule file"
    proc = run("--rule", data, RULE)
    assert proc.returncode == 2, proc.stderr
    assert f"{data}: larger than 8 MiB: not a rule file" in proc.stderr


@pytest.mark.skipif(not HAS_FIFO, reason="no FIFOs")
def test_a_fifo_in_a_rules_directory_is_reported_not_waited_on(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    shutil.copy(RULE, rules / "a.toml")
    os.mkfifo(rules / "b.toml")
    # First in a process of its own: waiting on the FIFO would time out, not hang the tests.
    proc = run("--rule", rules, RULE)
    assert proc.returncode == 2
    assert f"{rules / 'b.toml'}: not a regular file" in proc.stderr
    with pytest.raises(RuleFileError) as info:
        load_rules([str(rules)], cache=False)
    assert str(info.value) == f"{rules / 'b.toml'}: not a regular file"
    loaded, warnings = load_rules([str(rules)], cache=False, skip_unsupported=True)
    assert [r.source for r in loaded] == [str(rules / "a.toml")]
    assert warnings == [f"skipped {rules / 'b.toml'}: not a regular file"]


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_an_endless_config_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        load_config("/dev/zero", typer.main.get_command(app))
    assert str(info.value) == "/dev/zero: larger than 8 MiB: not a config file"
    proc = run("--config", "/dev/zero", RULE)
    assert proc.returncode == 2
    assert "/dev/zero: larger than 8 MiB: not a config file" in proc.stderr
