"""Output files: each written through a temporary file of its own, renamed over the target."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from imds_scan.outfile import PendingOutput

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "bench" / "sample" / "ecs-sample.ndjson"


def test_the_temporary_file_is_opened_without_truncating_it(tmp_path: Path) -> None:
    # ext4 writes a file truncated to zero back to disk when it is closed, on the closing
    # thread (0.1 s at the end of a scan with 400 MB of hits): the temporary file, made empty
    # by the output itself, is opened as it is. Bytes already there show whether it was.
    target = tmp_path / "hits.ndjson"
    out = PendingOutput(str(target), "--output")
    assert out.tmp is not None and os.path.getsize(out.tmp) == 0
    Path(out.tmp).write_bytes(b"12345")
    with out.open_binary() as handle:
        handle.write(b"ab")
    assert Path(out.tmp).read_bytes() == b"ab345"
    out.commit()
    assert target.read_bytes() == b"ab345"


def test_a_device_is_opened_as_named(tmp_path: Path) -> None:
    out = PendingOutput(os.devnull, "--output")
    assert out.tmp is None
    with out.open_binary() as handle:
        handle.write(b"x")


def test_an_existing_output_is_replaced_whole(tmp_path: Path) -> None:
    # The old file was longer than the new hits: nothing of it is left.
    target = tmp_path / "hits.ndjson"
    target.write_bytes(b"old\n" * 100_000)
    run = subprocess.run(
        [sys.executable, "-m", "imds_scan", "-q", str(SAMPLE), "-o", str(target)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1, run.stderr
    lines = target.read_text().splitlines()
    assert lines and all(line.startswith("{") for line in lines)
    assert len(lines) == 38
