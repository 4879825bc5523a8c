"""Byte-range inputs of the Rust engine, through the binding: ``(path, start, end)`` scans the
lines that start in ``[start, end)``, numbered from the range's first line, and reports in
``stats["lines"]`` how many it owns; consecutive ranges, their line numbers shifted by the lines
of the ranges before them, give exactly the whole file's results."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from imds_scan import default_rules
from imds_scan._engine import STATS_FIELDS, Scanner

NET_HIT = '{"event":{"category":["network"]},"destination":{"ip":"169.254.169.254"}}'
PROC_HIT = (
    '{"event":{"category":"process","type":"start"},"process":{"name":"curl",'
    '"command_line":"curl http://169.254.169.254/latest/meta-data/"}}'
)
QUIET = '{"event":{"category":["network"]},"destination":{"ip":"10.0.0.1"}}'
SUMMED = ("bytes", "source_bytes", "events", "candidates", "hits", "malformed", "invalid_utf8")


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner([json.dumps(rule.ir) for rule in default_rules()])


def content() -> bytes:
    """A BOM, blank and CRLF lines, malformed lines, a line starting with gzip magic bytes and
    no final newline."""
    lines = [NET_HIT, "", QUIET, "oops", PROC_HIT, "  ", QUIET, NET_HIT]
    body = b"\xef\xbb\xbf" + b"".join(line.encode() + b"\r\n" for line in lines)
    return body + b"\x1f\x8b\x08 not json\n" + PROC_HIT.encode()


def merged(hits: list[Any], files: list[dict[str, Any]]) -> tuple[list[Any], dict[str, Any]]:
    """The ranges' results as one: line numbers shifted, counts summed."""
    shift = 0
    out: list[Any] = []
    total: dict[str, Any] = {name: 0 for name in SUMMED}
    total["malformed_examples"] = []
    for index, stats in enumerate(files):
        assert set(stats) == set(STATS_FIELDS)
        assert stats["error"] is None, stats["error"]
        out += [(line + shift, *rest) for source, line, *rest in hits if source == index]
        for name in SUMMED:
            total[name] += stats[name]
        total["malformed_examples"] += [(n + shift, why) for n, why in stats["malformed_examples"]]
        shift += stats["lines"]
    total["lines"] = shift
    return out, total


def test_two_ranges_at_every_split_point_equal_the_whole_file(
    scanner: Scanner, tmp_path: Path
) -> None:
    data = content()
    path = tmp_path / "events.ndjson"
    path.write_bytes(data)
    hits, files, _ = scanner.scan([str(path)], threads=1, buffer_size=64, max_examples=100)
    want = merged(hits, files)
    assert len(want[0]) == 4 and want[1]["lines"] == 10
    for split in range(len(data) + 1):
        ranges = [(str(path), 0, split), (path, split, len(data))]
        hits, files, _ = scanner.scan(ranges, threads=2, buffer_size=64, max_examples=100)
        assert merged(hits, files) == want, split


def test_ranges_of_a_seekable_stream_equal_the_whole_file(scanner: Scanner, tmp_path: Path) -> None:
    data = content()
    path = tmp_path / "events.ndjson"
    path.write_bytes(data)
    hits, files, _ = scanner.scan([str(path)], max_examples=100)
    want = merged(hits, files)
    for split in range(0, len(data) + 1, 7):
        ranges = [(io.BytesIO(data), 0, split), (io.BytesIO(data), split, len(data))]
        hits, files, _ = scanner.scan(ranges, buffer_size=64, max_examples=100)
        assert merged(hits, files) == want, split


def test_range_errors_are_typed(scanner: Scanner, tmp_path: Path) -> None:
    missing = tmp_path / "missing.ndjson"
    _, files, _ = scanner.scan([(str(missing), 0, 10)])
    assert files[0]["error_kind"] == "not_found"
    assert (files[0]["error_offset"], files[0]["error_line"]) == (None, None)
    gz = tmp_path / "events.gz"
    gz.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00")
    _, files, _ = scanner.scan([(str(gz), 0, 8)])
    assert files[0]["error_kind"] == "compressed_range"
    assert "cannot be scanned by byte range" in files[0]["error"]
    with pytest.raises(ValueError, match="start is past end"):
        scanner.scan([(str(gz), 5, 1)])
    with pytest.raises(TypeError, match="byte range"):
        scanner.scan([(str(gz), -1, 1)])
    with pytest.raises(TypeError, match="seekable binary stream"):
        scanner.scan([(3, 0, 1)])


def test_read_errors_carry_offset_and_line(scanner: Scanner, tmp_path: Path) -> None:
    class Failing:
        def __init__(self) -> None:
            self.data = (QUIET + "\n" + NET_HIT + "\n").encode()

        def read(self, size: int = -1) -> bytes:
            if not self.data:
                raise OSError("device gone")
            taken, self.data = self.data[:size], self.data[size:]
            return taken

    hits, files, _ = scanner.scan([Failing()])
    stats = files[0]
    size = len(QUIET) + len(NET_HIT) + 2
    assert stats["error"] == f"read error at byte {size} (line 2): OSError: device gone"
    assert (stats["error_kind"], stats["error_offset"], stats["error_line"]) == ("read", size, 2)
    assert [h[1] for h in hits] == [2]
