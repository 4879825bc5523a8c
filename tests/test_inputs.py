"""Inputs at archive scale: compression by magic bytes, stdin, directories and globs,
exporter wrappers, progress, Ctrl-C, and bad input of every kind. Each bad input is reported
with its file and line (or byte offset), counted in the summary, and the rest is scanned."""

from __future__ import annotations

import gzip
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
import traceback
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zstandard

from conftest import ENGINES, wait_until_read
from imds_scan import ScanResult, default_rules, run_scan, scan

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
GENERATOR = Path(__file__).parents[1] / "bench" / "gen_corpus.py"


def lines(*items: object) -> bytes:
    return "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in items).encode()


def cli(*args: str | Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imds_scan", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,
    )


def hits_of(result: ScanResult) -> list[tuple[int, str, str]]:
    """Hits without their source name: (line, branch, event)."""
    return [(h.line, h.branch, h.event_text) for h in result.hits]


def scan_file(path: Path | str, engine: str, **options: Any) -> ScanResult:
    return run_scan([str(path)], default_rules(), engine=engine, **options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A generated 3 MB corpus with planted hits, and its expected counts."""
    path = tmp_path_factory.mktemp("corpus") / "corpus.ndjson"
    subprocess.run(
        [
            sys.executable,
            str(GENERATOR),
            "--size",
            "3M",
            "--seed",
            "11",
            "--tp-rate",
            "0.01",
            "--out",
            str(path),
            "--quiet",
        ],
        check=True,
    )
    return path, json.loads(Path(f"{path}.expected.json").read_text())


# ---------------------------------------------------------------- compression


@pytest.mark.parametrize("engine", ENGINES)
def test_gzip_and_zstd_found_by_magic_bytes(
    tmp_path: Path, engine: str, corpus: tuple[Path, dict[str, Any]]
) -> None:
    path, expected = corpus
    data = path.read_bytes()
    plain = scan_file(path, engine)
    assert len(plain.hits) == expected["hits"] > 0
    half = data.index(b"\n", len(data) // 2) + 1
    encoded = {
        "gz-one-member.log": gzip.compress(data),
        "gz-two-members.ndjson": gzip.compress(data[:half]) + gzip.compress(data[half:]),
        # Zero padding between and after members is skipped (as gzip -d does).
        "gz-zero-padded.ndjson": gzip.compress(data[:half])
        + bytes(100)
        + gzip.compress(data[half:])
        + bytes(1000),
        "zst-two-frames.gz": zstandard.ZstdCompressor().compress(data[:half])
        + zstandard.ZstdCompressor(write_checksum=True).compress(data[half:]),
        "plain.zst": data,  # the extension says nothing
    }
    for name, content in encoded.items():
        (tmp_path / name).write_bytes(content)
        result = scan_file(tmp_path / name, engine)
        assert hits_of(result) == hits_of(plain), name
        stats = result.stats.files[0]
        assert stats.error is None, name
        assert stats.bytes == len(data)
        assert stats.source_bytes == len(content)
        assert stats.compression == {"gz": "gzip", "zs": "zstd", "pl": None}[name[:2]]


@pytest.mark.parametrize("engine", ENGINES)
def test_stdin_plain_and_compressed(tmp_path: Path, engine: str) -> None:
    data = lines(BENIGN, HIT, BENIGN, PROC)
    for content in (data, gzip.compress(data), zstandard.ZstdCompressor().compress(data)):
        proc = subprocess.run(
            [sys.executable, "-m", "imds_scan", "-", "-f", "ndjson", "--engine", engine],
            input=content,
            capture_output=True,
            timeout=120,
        )
        assert proc.returncode == 1, proc.stderr
        records = [json.loads(x) for x in proc.stdout.splitlines()]
        assert [(r["source"], r["line"]) for r in records] == [("-", 2), ("-", 4)]


# ---------------------------------------------------------------- exporter wrappers


@pytest.mark.parametrize("engine", ENGINES)
def test_a_file_named_dash_is_the_file_not_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    # The reference engine was given the name, "-", and read standard input.
    from imds_scan.sources import Source

    monkeypatch.chdir(tmp_path)
    (tmp_path / "-").write_bytes(lines(BENIGN, HIT))
    result = run_scan([Source("-", "file", None)], default_rules(), engine=engine)  # type: ignore[arg-type]
    assert result.stats.files[0].error is None
    assert [(h.line, h.branch) for h in result.hits] == [(2, "network")]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_file_named_dash_found_by_a_glob_is_named_apart_from_stdin(
    tmp_path: Path, engine: str
) -> None:
    (tmp_path / "-").write_bytes(lines(BENIGN, HIT))
    for pattern in ("*", "**", "[-]"):
        proc = cli(
            pattern, "-f", "ndjson", "--engine", engine, cwd=tmp_path, input=lines(PROC).decode()
        )
        assert proc.returncode == 1, proc.stderr
        hits = [json.loads(x) for x in proc.stdout.splitlines()]
        assert [(h["source"], h["line"], h["branch"]) for h in hits] == [("./-", 2, "network")]


@pytest.mark.parametrize("engine", ENGINES)
def test_exporter_wrappers_are_evaluated_on_their_source(tmp_path: Path, engine: str) -> None:
    elasticdump = {"_index": "logs-2024.05.01", "_type": "_doc", "_id": "a", "_source": HIT}
    search_hit = {"_index": "logs", "_id": "b", "_score": 1.5, "_source": PROC, "sort": [1]}
    not_wrapped = {"_source": HIT}  # no _index: an event with a field named _source
    path = tmp_path / "export.ndjson"
    path.write_bytes(
        lines(elasticdump, {"_index": "logs", "_source": BENIGN}, search_hit, not_wrapped)
    )
    result = scan_file(path, engine)
    assert [(h.line, h.branch) for h in result.hits] == [(1, "network"), (3, "process")]
    assert result.hits[0].event == HIT
    assert result.hits[1].event_text == json.dumps(PROC)
    assert result.frame["host.name"].to_list() == ["web-1", None]


def test_engines_agree_on_wrapped_adversarial_events(tmp_path: Path) -> None:
    from test_differential import make_line

    rnd = random.Random(5)
    out = []
    for _ in range(1500):
        line = make_line(rnd)
        if rnd.random() < 0.7:
            sep = rnd.choice(["", " ", "\t"])
            extra = rnd.choice(['"_id":"x",', "", '"_score":null,', '"_source":{},'])
            line = f'{{"_index":"i",{extra}"_source"{sep}:{sep}{line}{sep}}}'
        out.append(line)
    path = tmp_path / "wrapped.ndjson"
    path.write_bytes("\n".join(out).encode("utf-8", "surrogatepass"))
    results = [
        scan_file(path, "python"),
        scan_file(path, "rust"),
        scan_file(path, "rust", prefilter=False),
    ]
    keys = [[(h.line, h.branch, h.matched, h.event_text) for h in r.hits] for r in results]
    assert keys[0] == keys[1] == keys[2]
    assert len(keys[0]) > 5
    assert results[0].stats.total("malformed") == results[2].stats.total("malformed")


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("engine", ENGINES)
def test_malformed_and_non_object_lines(tmp_path: Path, engine: str) -> None:
    path = tmp_path / "bad.ndjson"
    path.write_bytes(
        lines(HIT, '{"event": {"category": "netw', "[1, 2]", '"text"', "42", "null", PROC)
    )
    proc = cli(path, "-f", "ndjson", "--engine", engine)
    assert proc.returncode == 1, proc.stderr
    assert [json.loads(x)["line"] for x in proc.stdout.splitlines()] == [1, 7]
    assert "malformed lines: 5" in proc.stderr
    for line in range(2, 7):
        assert f"{path}:{line}:" in proc.stderr


@pytest.mark.parametrize("engine", ENGINES)
def test_invalid_utf8(tmp_path: Path, engine: str) -> None:
    path = tmp_path / "latin1.ndjson"
    raw = json.dumps({**PROC, "user": {"name": "X"}}).encode().replace(b'"X"', b'"\xe9t\xe9"')
    path.write_bytes(lines(BENIGN) + raw + b"\n" + lines(HIT))
    result = scan_file(path, engine)
    assert [h.line for h in result.hits] == [2, 3]
    assert result.hits[0].event["user"]["name"] == "\ufffdt\ufffd"
    assert result.stats.total("invalid_utf8") == 1
    assert result.stats.files[0].invalid_utf8_lines == [2]
    proc = cli(path, "-f", "ndjson", "--engine", engine)
    assert "lines with invalid UTF-8 (decoded with U+FFFD): 1" in proc.stderr
    assert f"    {path}:2\n" in proc.stderr  # where, as for malformed lines


@pytest.mark.parametrize("engine", ENGINES)
def test_a_100_mb_line(tmp_path: Path, engine: str) -> None:
    path = tmp_path / "long.ndjson"
    long_line = json.dumps({**PROC, "message": "x" * (100 << 20)})
    with path.open("w") as out:
        out.write(f"{json.dumps(HIT)}\n{long_line}\n{json.dumps(BENIGN)}\n{json.dumps(HIT)}\n")
    del long_line
    # Evaluated when the cap allows it...
    result = scan_file(path, engine, threads=2, max_line_bytes=128 << 20)
    assert [h.line for h in result.hits] == [1, 2, 4]
    assert len(result.hits[1].event_text) > 100 << 20
    assert result.stats.total("events") == 4
    assert result.stats.errors == []
    # ...else read past, reported with its line and length, and the input is an error.
    result = scan_file(path, engine, threads=2)
    assert [h.line for h in result.hits] == [1, 4]
    length = path.stat().st_size - len(lines(HIT, BENIGN, HIT)) - 1
    (f,) = result.stats.files
    assert (f.events, f.long_lines, f.malformed) == (4, 1, 1)
    assert f.malformed_examples == [
        (2, f"line of {length} bytes is longer than max-line-bytes (67108864): not evaluated")
    ]
    assert f.bytes == path.stat().st_size
    assert f.error == (
        "1 line(s) longer than max-line-bytes (67,108,864 bytes) not evaluated "
        "(see the malformed lines)"
    )
    assert (f.error_kind, f.error_offset, f.error_line) == ("long_lines", None, None)


@pytest.mark.parametrize("engine", ENGINES)
def test_an_input_without_events_is_an_error_of_its_own_kind(tmp_path: Path, engine: str) -> None:
    path = tmp_path / "binary.bin"
    path.write_bytes(bytes(range(256)) * 64)
    (f,) = scan_file(path, engine).stats.files
    assert (f.error_kind, f.events, f.malformed) == ("no_events", 65, 65)


@pytest.mark.parametrize("engine", ENGINES)
def test_lines_that_only_look_like_objects_are_no_valid_event(tmp_path: Path, engine: str) -> None:
    # No needle in them: the prefilter passes over them, yet they are no event (hypothesis
    # found the Rust engine calling such an input clean).
    path = tmp_path / "nan.ndjson"
    path.write_bytes(b'{"a":NaN}\n{"b":[1,]}\n')
    for threads in (1, 2):
        (f,) = scan_file(path, engine, threads=threads).stats.files
        assert (f.error_kind, f.events, f.valid_event) == ("no_events", 2, False)
        assert f.error == "no valid event: all 2 lines are malformed (not NDJSON?)"
        # One valid event, anywhere, and the input is no error.
        for data in (b'{"a":1}\n{"a":NaN}\n', b"{'a': 1}\n" * 3 + b'{"a":1}\n'):
            path.write_bytes(data)
            (f,) = scan_file(path, engine, threads=threads).stats.files
            assert f.error is None and f.valid_event, data
        path.write_bytes(b'{"a":NaN}\n{"b":[1,]}\n')


@pytest.mark.parametrize("engine", ENGINES)
def test_empty_file(tmp_path: Path, engine: str) -> None:
    empty = tmp_path / "empty.ndjson.gz"
    empty.write_bytes(b"")
    result = scan_file(empty, engine)
    assert result.stats.total("events") == 0 and result.stats.errors == []
    proc = cli(empty, "--engine", engine)
    assert proc.returncode == 0, proc.stderr
    assert f"empty inputs: 1 ({empty})" in proc.stderr


@pytest.mark.parametrize("engine", ENGINES)
def test_binary_garbage(tmp_path: Path, engine: str) -> None:
    garbage = random.Random(3).randbytes(1 << 20).replace(b"\x1f\x8b", b"..")
    path = tmp_path / "garbage.bin"
    path.write_bytes(lines(HIT) + garbage + b"\n" + lines(PROC))
    result = scan_file(path, engine)
    assert [h.branch for h in result.hits] == ["network", "process"]
    assert result.stats.total("malformed") > 1000
    assert result.stats.errors == []
    proc = cli(path, "-f", "ndjson", "--engine", engine)
    assert proc.returncode == 1
    assert f"{path}:2:" in proc.stderr


def _damaged_gzip(corpus: Path, tmp_path: Path) -> tuple[Path, int]:
    """A gzip copy of the corpus cut at 60%; the number of lines readable in full."""
    packed = gzip.compress(corpus.read_bytes())
    cut = packed[: len(packed) * 6 // 10]
    path = tmp_path / "damaged.ndjson.gz"
    path.write_bytes(cut)
    readable = zlib.decompressobj(wbits=31).decompress(cut)
    return path, readable.count(b"\n")


@pytest.mark.parametrize("engine", ENGINES)
def test_truncated_gzip_keeps_every_readable_hit(
    tmp_path: Path, engine: str, corpus: tuple[Path, dict[str, Any]]
) -> None:
    path, complete = _damaged_gzip(corpus[0], tmp_path)
    full = [h for h in hits_of(scan_file(corpus[0], engine)) if h[0] <= complete]
    result = scan_file(path, engine, threads=2)
    assert [h for h in hits_of(result) if h[0] <= complete] == full
    assert len(full) >= 5
    f = result.stats.files[0]
    assert (f.error_kind, f.compression) == ("damaged", "gzip"), f.error
    assert f.error_offset == path.stat().st_size and f.error_line == f.lines >= complete
    # Exit 2 even with hits; the summary names the input and the byte offset.
    proc = cli(path, corpus[0], "-f", "ndjson", "--engine", engine)
    assert proc.returncode == 2
    assert f"error: {path}: gzip data damaged" in proc.stderr
    assert f"compressed byte {path.stat().st_size}" in proc.stderr
    assert "inputs not fully read: 1" in proc.stderr
    assert len(proc.stdout.splitlines()) == len(result.hits) + corpus[1]["hits"]


@pytest.mark.parametrize("engine", ENGINES)
def test_corrupt_zstd_frame(
    tmp_path: Path, engine: str, corpus: tuple[Path, dict[str, Any]]
) -> None:
    data = corpus[0].read_bytes()
    cuts = [0] + [data.index(b"\n", len(data) * k // 4) + 1 for k in (1, 2, 3)] + [len(data)]
    frames = [
        zstandard.ZstdCompressor(write_checksum=True).compress(data[a:b])
        for a, b in itertools.pairwise(cuts)
    ]
    frames[2] = b"\x28\xb5\x2f\xfd" + bytes(b ^ 0x5A for b in frames[2][4:])
    path = tmp_path / "damaged.zst"
    path.write_bytes(b"".join(frames))
    result = scan_file(path, engine)
    complete = data[: cuts[2]].count(b"\n")
    plain = hits_of(scan_file(corpus[0], engine))
    assert [h for h in hits_of(result) if h[0] <= complete] == [
        h for h in plain if h[0] <= complete
    ]
    f = result.stats.files[0]
    assert (f.error_kind, f.compression) == ("damaged", "zstd"), f.error
    assert f.error_offset is not None and len(frames[0]) + len(frames[1]) < f.error_offset
    assert f.error_line == f.lines >= complete and f.bytes >= cuts[2]


@pytest.mark.parametrize("engine", ENGINES)
def test_missing_and_directory_inputs(tmp_path: Path, engine: str) -> None:
    good = tmp_path / "good.ndjson"
    good.write_bytes(lines(HIT))
    result = run_scan(
        [str(tmp_path / "missing.ndjson"), str(tmp_path), str(good)],
        default_rules(),
        engine=engine,  # type: ignore[arg-type]
    )
    missing, directory, ok = result.stats.files
    assert (missing.error_kind, directory.error_kind) == ("not_found", "is_directory")
    assert "directory" in (directory.error or "").lower()  # the text, once
    assert ok.error is None and len(result.hits) == 1


def _as_nobody(work: Callable[[], Any]) -> Any:
    """``work()`` in a forked child that has dropped root, so permissions apply; its result
    goes back as JSON. Skips when this root cannot drop privileges."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (child)
        try:
            try:
                os.setgid(65534)
                os.setuid(65534)
            except PermissionError as exc:
                message = json.dumps({"skip": str(exc)})
            else:
                message = json.dumps({"result": work()})
        except BaseException:  # report it: the parent fails with the child's traceback
            message = json.dumps({"failed": traceback.format_exc()})
        finally:
            os.write(write_fd, message.encode())
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        answer = json.loads(pipe.read())
    os.waitpid(pid, 0)
    if "skip" in answer:
        pytest.skip(f"this root cannot drop privileges: {answer['skip']}")
    assert "failed" not in answer, answer.get("failed")
    return answer["result"]


def _scan_as_nobody(path: Path, engine: str) -> tuple[str | None, str | None, int]:
    """Scan as nobody: (the input's error, its kind, the number of hits)."""
    # Warm up as root first: the installed package may sit under a 0700 home (e.g. /root),
    # where the child, once it is nobody, could no longer import what a scan loads lazily.
    rules = default_rules()
    warm = path.with_name("warm.ndjson")
    warm.write_bytes(lines(HIT))
    try:
        run_scan([str(warm)], rules, engine=engine)  # type: ignore[arg-type]
    finally:
        warm.unlink()

    def scan() -> list[Any]:
        result = run_scan([str(path)], rules, engine=engine)  # type: ignore[arg-type]
        f = result.stats.files[0]
        return [f.error, f.error_kind, len(result.hits)]

    error, kind, hits = _as_nobody(scan)
    return error, kind, hits


@pytest.mark.parametrize("engine", ENGINES)
def test_unreadable_file(tmp_path: Path, engine: str) -> None:
    # Root reads any file whatever its mode, so as root the scan runs in a child that has
    # dropped to nobody: a real permission error, not a simulated one.
    base = Path(f"/tmp/imds-unreadable-{os.getpid()}") if os.geteuid() == 0 else tmp_path
    base.mkdir(exist_ok=True)
    base.chmod(0o755)
    path = base / "secret.ndjson"
    path.write_bytes(lines(HIT))
    path.chmod(0o000)
    try:
        if os.geteuid() == 0:
            error, kind, hits = _scan_as_nobody(path, engine)
        else:
            result = scan_file(path, engine)
            f = result.stats.files[0]
            error, kind, hits = f.error, f.error_kind, len(result.hits)
    finally:
        path.chmod(0o644)
        if base != tmp_path:
            path.unlink()
            base.rmdir()
    assert kind == "permission_denied", error
    assert "Permission denied" in (error or ""), error  # the text, once
    assert hits == 0


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("engine", ENGINES)
def test_read_error_after_open(engine: str) -> None:
    # Reading /proc/self/mem at offset 0 fails with EIO: an input that opens, then fails.
    result = scan_file("/proc/self/mem", engine)
    f = result.stats.files[0]
    assert (f.error_kind, f.error_offset, f.error_line) == ("read", 0, None), f.error
    assert "Input/output error" in (f.error or ""), f.error  # the cause's text, once


def test_directory_symlink_loop(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    (root / "2024" / "05").mkdir(parents=True)
    (root / "a.ndjson").write_bytes(lines(HIT))
    (root / "2024" / "05" / "b.ndjson").write_bytes(lines(PROC))
    (root / "2024" / "05" / "loop").symlink_to("../..")  # back to logs/
    (root / "2024" / "self").symlink_to(".")
    for arg in (str(root), str(root / "**" / "*.ndjson")):
        started = time.monotonic()
        result = scan([arg])
        assert time.monotonic() - started < 10
        assert sorted(f.path for f in result.stats.files) == [
            str(root / "2024" / "05" / "b.ndjson"),
            str(root / "a.ndjson"),
        ], arg
        assert len(result.hits) == 2
        assert {p for p, _ in result.stats.skipped} == {
            str(root / "2024" / "05" / "loop"),
            str(root / "2024" / "self"),
        }
    proc = cli(root, "-f", "ndjson")
    assert proc.returncode == 1, proc.stderr
    assert f"skipped: {root / '2024' / '05' / 'loop'}: directory symlink" in proc.stderr


def test_symlinked_directories_are_followed(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.ndjson").write_bytes(lines(HIT))
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "current").symlink_to(tmp_path / "real")
    assert [f.path for f in scan([str(tmp_path / "logs")]).stats.files] == [
        str(tmp_path / "logs" / "current" / "a.ndjson")
    ]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs")
@pytest.mark.parametrize("engine", ENGINES)
def test_fifos_and_devices_found_by_a_walk_or_a_glob_are_skipped(
    tmp_path: Path, engine: str
) -> None:
    # They hung the scan: a FIFO's open waits for a writer, /dev/zero is read forever.
    from imds_scan.sources import expand

    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.ndjson").write_bytes(lines(HIT))
    os.mkfifo(logs / "b.ndjson")
    (logs / "zero.ndjson").symlink_to("/dev/zero")  # a device, behind a symlink
    fifo = (str(logs / "b.ndjson"), "a FIFO (named pipe), not a regular file")
    zero = (str(logs / "zero.ndjson"), "a character device, not a regular file")
    for args in ([logs], [logs / "*.ndjson"], [logs / "**"], [logs / "*", logs]):
        expanded = expand([str(x) for x in args])
        assert [s.name for s in expanded.sources] == [str(logs / "a.ndjson")], args
        skipped = [(path, why.split(":")[0]) for path, why in expanded.skipped]
        assert [x for x in skipped if "regular" in x[1]] == [fifo, zero]  # each once
        proc = cli(*args, "-f", "ndjson", "--engine", engine)
        assert proc.returncode == 1, proc.stderr  # skipped, named, not an error
        assert [json.loads(x)["source"] for x in proc.stdout.splitlines()] == [
            str(logs / "a.ndjson")
        ]
        assert f"skipped: {fifo[0]}: {fifo[1]}: not read" in proc.stderr
        assert f"skipped: {zero[0]}: {zero[1]}: not read" in proc.stderr
    # -q keeps them: an input left unread is never hidden.
    quiet = cli(logs, "-q", "-f", "ndjson", "--engine", engine)
    assert quiet.returncode == 1, quiet.stderr
    assert [line.partition(": not read")[0] for line in quiet.stderr.splitlines()] == [
        f"imds-scan: warning: skipped: {fifo[0]}: {fifo[1]}",
        f"imds-scan: warning: skipped: {zero[0]}: {zero[1]}",
    ]
    # A glob that finds only such files matches nothing to scan.
    assert [(s.name, s.error) for s in expand([str(logs / "b.*")]).sources] == [
        (str(logs / "b.*"), "no file matches this glob")
    ]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs")
@pytest.mark.parametrize("engine", ENGINES)
def test_a_fifo_or_pipe_named_as_an_input_is_read(tmp_path: Path, engine: str) -> None:
    fifo = tmp_path / "live.ndjson"
    os.mkfifo(fifo)

    def scan_fifo(data: bytes) -> tuple[int, bytes, bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "imds_scan", str(fifo), "-f", "ndjson", "--engine", engine],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            with open(fifo, "wb") as writer:  # waits for the scan to open it
                writer.write(data)
            out, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
        return proc.returncode, out, err

    code, out, err = scan_fifo(lines(HIT, BENIGN))
    assert code == 1, err
    assert [json.loads(x)["source"] for x in out.splitlines()] == [str(fifo)]
    # No hit, not ECS: the FIFO is not opened again to look at its events (the writer is gone:
    # that open waited forever).
    code, out, err = scan_fifo(lines({"Application": "x"}))
    assert (code, out) == (0, b""), err
    assert b"do not look like ECS" not in err
    # A shell's <(...) is a pipe named /dev/fd/N.
    read, write = os.pipe()
    os.write(write, lines(BENIGN, PROC))
    os.close(write)
    try:
        piped = cli(f"/dev/fd/{read}", "-f", "ndjson", "--engine", engine, pass_fds=(read,))
    finally:
        os.close(read)
    assert piped.returncode == 1, piped.stderr
    assert [json.loads(x)["line"] for x in piped.stdout.splitlines()] == [2]


@pytest.mark.skipif(not Path("/proc/self/wchan").exists(), reason="needs Linux /proc")
def test_ctrl_c_while_waiting_for_a_fifo_writer(tmp_path: Path) -> None:
    # The reference engine opens its inputs in Python: Ctrl-C ends the wait for a writer,
    # and the input says so (it was listed as an empty input). The Rust engine's open is in
    # Rust, where Ctrl-C is not seen until it returns.
    fifo, after = tmp_path / "fifo.ndjson", tmp_path / "after.ndjson"
    os.mkfifo(fifo)
    after.write_bytes(lines(HIT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "imds_scan", fifo, after, "-f", "ndjson", "--engine", "python"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while Path(f"/proc/{proc.pid}/wchan").read_text() != "wait_for_partner":
            assert time.monotonic() < deadline, "the scan did not open the FIFO"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert (proc.returncode, out) == (130, b""), err
    assert f"error: {fifo}: interrupted: scanned up to byte 0".encode() in err
    assert f"error: {after}: not read: the scan was interrupted".encode() in err


@pytest.mark.parametrize("engine", ENGINES)
def test_glob_that_matches_nothing_is_reported_and_the_rest_scanned(
    tmp_path: Path, engine: str
) -> None:
    # It used to abort the whole scan (exit 2, the other inputs' hits lost).
    good = tmp_path / "good.ndjson"
    good.write_bytes(lines(HIT))
    empty_glob = str(tmp_path / "nothing*.ndjson")
    proc = cli(empty_glob, good, "-f", "ndjson", "--engine", engine)
    assert proc.returncode == 2, proc.stderr
    assert [json.loads(line)["source"] for line in proc.stdout.splitlines()] == [str(good)]
    assert f"error: {empty_glob}: no file matches this glob" in proc.stderr
    result = scan([empty_glob, str(good)], engine=engine)  # type: ignore[arg-type]
    assert [(f.path, f.error) for f in result.stats.files] == [
        (empty_glob, "no file matches this glob"),
        (str(good), None),
    ]


@pytest.mark.parametrize("engine", ENGINES)
def test_an_input_named_twice_is_scanned_once(tmp_path: Path, engine: str) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    a, b = logs / "a.ndjson", logs / "b.ndjson"
    a.write_bytes(lines(HIT))
    b.write_bytes(lines(PROC))
    (tmp_path / "link.ndjson").symlink_to(a)
    (tmp_path / "hard.ndjson").hardlink_to(b)
    args = [b, a, b, logs, tmp_path / "link.ndjson", tmp_path / "logs" / "." / "a.ndjson"]
    args += [tmp_path / "hard.ndjson", tmp_path / "nothing*", tmp_path / "nothing*"]
    result = scan([str(x) for x in args], engine=engine)  # type: ignore[arg-type]
    # Each file once, where it was first named; the repeats are named with the first.
    assert [f.path for f in result.stats.files] == [str(b), str(a), str(tmp_path / "nothing*")]
    assert sorted(h.source for h in result.hits) == [str(a), str(b)]
    assert result.stats.skipped == [
        (str(b), f"the same input as {b}: scanned once"),
        (str(a), f"the same input as {a}: scanned once"),  # from the walk of logs/
        (str(b), f"the same input as {b}: scanned once"),
        (str(tmp_path / "link.ndjson"), f"the same input as {a}: scanned once"),
        (str(logs / "." / "a.ndjson"), f"the same input as {a}: scanned once"),
        (str(tmp_path / "hard.ndjson"), f"the same input as {b}: scanned once"),
        (str(tmp_path / "nothing*"), f"the same input as {tmp_path / 'nothing*'}: scanned once"),
    ]
    proc = cli(a, a, "-f", "ndjson", "--engine", engine)
    assert proc.returncode == 1, proc.stderr
    assert len(proc.stdout.splitlines()) == 1
    assert f"skipped: {a}: the same input as {a}: scanned once" in proc.stderr


def _expand_as_nobody(args: list[str]) -> list[list[str | None]]:
    """expand() as nobody, so directory permissions apply: [name, error] per source."""
    from imds_scan.sources import expand

    listed: list[list[str | None]] = _as_nobody(
        lambda: [[s.name, s.error] for s in expand(args).sources]
    )
    return listed


def test_unlistable_subdirectory_is_reported_once(tmp_path: Path) -> None:
    # Root lists any directory, so as root the listing runs in a child that is nobody.
    base = Path(f"/tmp/imds-unlistable-{os.getpid()}") if os.geteuid() == 0 else tmp_path
    (base / "logs" / "sub").mkdir(parents=True, exist_ok=True)
    base.chmod(0o755)
    (base / "logs").chmod(0o755)
    (base / "logs" / "a.ndjson").write_bytes(lines(HIT))
    (base / "logs" / "sub").chmod(0o300)  # can be entered, not listed
    logs, sub = str(base / "logs"), str(base / "logs" / "sub")
    try:
        for args in (
            [logs],
            [logs + "/**/*.ndjson"],
            [logs + "/**"],
            [logs, logs + "/**/*.ndjson"],
        ):
            if os.geteuid() == 0:
                sources = _expand_as_nobody(args)
            else:
                from imds_scan.sources import expand

                sources = [[s.name, s.error] for s in expand(args).sources]
            errors = [(name, error) for name, error in sources if error]
            assert [(os.path.normpath(n), e) for n, e in errors] == [
                (sub, "cannot list directory: Permission denied")
            ], (args, sources)
            assert [os.path.normpath(str(n)) for n, e in sources if not e] == [
                str(base / "logs" / "a.ndjson")
            ]
    finally:
        (base / "logs" / "sub").chmod(0o755)
        if base != tmp_path:
            import shutil

            shutil.rmtree(base)


def test_globs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from imds_scan import expand_inputs

    for name in ("a.ndjson", "b.ndjson.gz", ".hidden.ndjson", "d/c.ndjson", "d/e/f.ndjson"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    assert expand_inputs(["*.ndjson"]) == ["a.ndjson"]
    assert expand_inputs(["**/*.ndjson"]) == ["a.ndjson", "d/c.ndjson", "d/e/f.ndjson"]
    assert expand_inputs(["d/**"]) == ["d/c.ndjson", "d/e/f.ndjson"]
    assert expand_inputs(["[ab].*"]) == ["a.ndjson", "b.ndjson.gz"]
    assert expand_inputs([str(tmp_path / "d" / "*" / "?.ndjson")]) == [
        str(tmp_path / "d" / "e" / "f.ndjson")
    ]
    assert expand_inputs(["d"]) == ["d/c.ndjson", "d/e/f.ndjson"]


def test_damaged_copy_of_a_corpus_loses_no_readable_hit(
    tmp_path: Path, corpus: tuple[Path, dict[str, Any]]
) -> None:
    """Garbage, truncated lines, invalid UTF-8, non-objects and a 5 MB line spliced between
    the lines of a generated corpus: every planted hit is still found, by both engines."""
    path, expected = corpus
    rnd = random.Random(9)
    damage = [
        rnd.randbytes(3000).replace(b"\n", b" "),
        b'{"event":{"category":"process"},"process":{"name":"cu',
        b"\xff\xfe\x00garbage\x00",
        b"[1,2,3]",
        b"{" + b"x" * (5 << 20),
    ]
    out = []
    for number, line in enumerate(path.read_bytes().splitlines(keepends=True)):
        out.append(line)
        if number % 50 == 0:
            out.append(rnd.choice(damage) + b"\n")
    damaged = tmp_path / "damaged.ndjson"
    damaged.write_bytes(b"".join(out))
    for engine in ENGINES:
        plain = scan_file(path, engine)
        result = scan_file(damaged, engine, threads=2)
        assert [h.event_text for h in result.hits] == [h.event_text for h in plain.hits]
        assert len(result.hits) == expected["hits"]
        assert result.stats.total("malformed") >= len(out) - expected["lines"] - 1


# ---------------------------------------------------------------- progress and Ctrl-C


@pytest.mark.parametrize("engine", ENGINES)
def test_progress_counts_source_bytes(
    tmp_path: Path, engine: str, corpus: tuple[Path, dict[str, Any]]
) -> None:
    packed = tmp_path / "c.ndjson.gz"
    packed.write_bytes(gzip.compress(corpus[0].read_bytes()))
    calls: list[tuple[int, int | None]] = []
    run_scan(
        [str(corpus[0]), str(packed)],
        default_rules(),
        engine=engine,  # type: ignore[arg-type]
        progress=lambda done, total: calls.append((done, total)),
    )
    total = corpus[0].stat().st_size + packed.stat().st_size
    assert calls and calls[-1] == (total, total)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_progress_bar_only_on_a_terminal(tmp_path: Path) -> None:
    import pty

    path = tmp_path / "a.ndjson"
    path.write_bytes(lines(HIT) * 1000)
    for quiet in (False, True):
        leader, follower = pty.openpty()
        proc = subprocess.run(
            [sys.executable, "-m", "imds_scan", str(path), "-f", "ndjson"]
            + (["--quiet"] if quiet else []),
            stdout=subprocess.PIPE,
            stderr=follower,
            timeout=120,
            env={**os.environ, "COLUMNS": "120", "TERM": "xterm"},
        )
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
        os.close(leader)
        assert proc.returncode == 1
        assert (b"scanning" in shown) is not quiet, shown
    # Not a terminal: no bar, only the scan line.
    proc = cli(path, "-f", "ndjson")
    assert "scanning" not in proc.stderr and "\x1b" not in proc.stderr


@pytest.mark.parametrize("engine", ENGINES)
def test_ctrl_c_flushes_hits_and_exits_130(engine: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "imds_scan", "-", "-f", "ndjson", "--engine", engine],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    proc.stdin.write(lines(HIT, BENIGN, PROC) * 3)
    proc.stdin.flush()  # and keep stdin open: the scan waits for more
    wait_until_read(proc.stdin.fileno())  # start-up is over: the scan reads its input
    proc.send_signal(signal.SIGINT)
    # Still waiting for more input, the scan stops (a hang fails here).
    out, err = proc.communicate(timeout=60)
    proc.stdin.close()
    assert proc.returncode == 130, err
    assert [json.loads(x)["line"] for x in out.splitlines()] == [1, 3, 4, 6, 7, 9]
    assert b"interrupted" in err


def _padded(item: dict[str, Any], length: int) -> str:
    """``item`` as a JSON line of exactly ``length`` bytes."""
    text = json.dumps({**item, "pad": ""})
    return text.replace('"pad": ""', '"pad": "' + "x" * (length - len(text)) + '"')


@pytest.mark.parametrize("engine", ENGINES)
def test_lines_longer_than_max_line_bytes(tmp_path: Path, engine: str) -> None:
    # Around a small cap (lines inside one read buffer), and past the 4 MiB buffer with a 1 MiB
    # cap (the line is streamed past); the last line has no newline.
    for cap, long in ((1000, 5000), (1 << 20, 9 << 20)):
        path = tmp_path / f"long-{cap}.ndjson"
        body = [_padded(PROC, cap), _padded(PROC, cap + 1), HIT, _padded(PROC, long)]
        path.write_bytes(lines(HIT, *body, BENIGN) + _padded(PROC, long + 3).encode())
        result = scan_file(path, engine, max_line_bytes=cap)
        assert [h.line for h in result.hits] == [1, 2, 4], cap
        (f,) = result.stats.files
        assert (f.events, f.long_lines, f.malformed) == (7, 3, 3)
        assert f.bytes == path.stat().st_size
        assert [(line, why.split(" bytes")[0]) for line, why in f.malformed_examples] == [
            (3, f"line of {cap + 1}"),
            (5, f"line of {long}"),
            (7, f"line of {long + 3}"),
        ]
    # The CLI: --max-line-bytes or the config key; the summary counts them; exit 2.
    config = tmp_path / "imds-scan.toml"
    config.write_text('max-line-bytes = "1000"\n')
    for args in (["--max-line-bytes", "1000"], ["--config", str(config)]):
        proc = cli(tmp_path / "long-1000.ndjson", "-f", "ndjson", "--engine", engine, *args)
        assert proc.returncode == 2, proc.stderr
        assert [json.loads(x)["line"] for x in proc.stdout.splitlines()] == [1, 2, 4]
        assert "lines longer than max-line-bytes (not evaluated): 3" in proc.stderr
        assert f"{tmp_path / 'long-1000.ndjson'}:3: line of " in proc.stderr
    proc = cli(tmp_path / "long-1000.ndjson", "--max-line-bytes", "lots")
    assert proc.returncode == 2 and "--max-line-bytes" in proc.stderr


def _peak_rss_mb(*args: str | Path) -> tuple[int, int, str]:
    """Run the CLI in a fresh process; (exit code, its peak RSS in MB, stderr)."""
    probe = (
        "import resource, subprocess, sys\n"
        "proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024\n"
        "print(proc.returncode, peak)\n"
        "sys.stderr.write(proc.stderr)\n"
    )
    command = [sys.executable, "-m", "imds_scan", *map(str, args)]
    done = subprocess.run(
        [sys.executable, "-c", probe, *command], capture_output=True, text=True, timeout=600
    )
    code, peak = map(int, done.stdout.split())
    return code, peak, done.stderr


@pytest.fixture(scope="module")
def gzip_of_zeros(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1 GiB of zeros (one line without a newline), gzipped (about 1 MB): 64 gzip members of
    16 MiB each, which decode as one stream."""
    path = tmp_path_factory.mktemp("zeros") / "zeros.gz"
    path.write_bytes(gzip.compress(bytes(16 << 20)) * 64)
    return path


@pytest.mark.parametrize("engine", ENGINES)
def test_a_gigabyte_line_in_a_small_gzip_stays_in_bounded_memory(
    gzip_of_zeros: Path, engine: str
) -> None:
    code, peak, err = _peak_rss_mb(gzip_of_zeros, "--engine", engine, "-f", "ndjson")
    assert peak < 300, f"peak RSS {peak} MB"
    assert code == 2, err
    assert f"{gzip_of_zeros}:1: line of {1 << 30} bytes is longer than max-line-bytes" in err


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
@pytest.mark.parametrize("engine", ENGINES)
def test_ctrl_c_stops_an_endless_line(engine: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "imds_scan", "/dev/zero", "--engine", engine],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    time.sleep(3)  # start-up, then well into the line
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()  # when SIGINT was ignored (the line would grow without bound)
    assert proc.returncode == 130, err
    assert b"interrupted" in err


@pytest.mark.parametrize("engine", ENGINES)
def test_inputs_without_a_valid_event_are_errors(tmp_path: Path, engine: str) -> None:
    line = json.dumps(HIT) + "\n"
    zst = zstandard.ZstdCompressor().compress(line.encode() * 50)
    cases = {
        "utf16.ndjson": (
            line.encode("utf-16"),
            "UTF-16LE text (byte-order mark) is not supported: not scanned",
        ),
        "utf16be.ndjson": (
            b"\xfe\xff" + line.encode("utf-16-be"),
            "UTF-16BE text (byte-order mark) is not supported",
        ),
        "utf32.ndjson": (
            line.encode("utf-32"),
            "UTF-32LE text (byte-order mark) is not supported",
        ),
        "no-bom-utf16.ndjson": (
            line.encode("utf-16-le") * 3,
            "no valid event: all 4 lines are malformed (not NDJSON?)",
        ),
        "twice.ndjson.gz.gz": (
            gzip.compress(gzip.compress(line.encode())),
            "gzip data that holds gzip-compressed data (compressed twice?) is not supported",
        ),
        "zstd-in-gzip.gz": (gzip.compress(zst), "gzip data that holds zstd-compressed data"),
        "utf16.gz": (
            gzip.compress(line.encode("utf-16")),
            "decompressed gzip data: UTF-16LE text (byte-order mark) is not supported",
        ),
        "cut.zst": (zst[: len(zst) // 2], "zstd data damaged or cut short"),
        "magic.zst": (zst[:4], "zstd data damaged or cut short near compressed byte 4"),
        # A gzip header cut short: the reference engine took it for an empty input (its
        # first read's error was dropped, and the retry found nothing left).
        "magic.gz": (
            gzip.compress(line.encode())[:2],
            "gzip data damaged or cut short near compressed byte 2",
        ),
        "header.gz": (
            gzip.compress(line.encode())[:7],
            "gzip data damaged or cut short near compressed byte 7",
        ),
        "binary.bin": (bytes(range(256)) * 64, "no valid event: all 65 lines are malformed"),
    }
    for name, (data, _) in cases.items():
        (tmp_path / name).write_bytes(data)
    for name, (_, error) in cases.items():
        proc = cli(tmp_path / name, "--engine", engine, "-f", "ndjson")
        assert proc.returncode == 2, (name, proc.stderr)
        assert f"error: {tmp_path / name}: {error}" in proc.stderr, proc.stderr
    # A UTF-8 byte-order mark is skipped.
    bom = tmp_path / "bom.ndjson.gz"
    bom.write_bytes(gzip.compress(b"\xef\xbb\xbf" + line.encode()))
    proc = cli(bom, "--engine", engine, "-f", "ndjson")
    assert proc.returncode == 1, proc.stderr
    assert "malformed" not in proc.stderr
    # So is one at the start of a later line: parts with a BOM each, joined by `cat`.
    joined = tmp_path / "joined.ndjson"
    part = b"\xef\xbb\xbf" + line.encode()  # it ends with its newline
    joined.write_bytes(part * 3)
    proc = cli(joined, "--engine", engine, "-f", "ndjson")
    assert proc.returncode == 1, proc.stderr
    assert [json.loads(r)["line"] for r in proc.stdout.splitlines()] == [1, 2, 3]
    assert "malformed" not in proc.stderr


@pytest.mark.parametrize("engine", ENGINES)
def test_lone_surrogate_escapes_keep_the_event(tmp_path: Path, engine: str) -> None:
    # Elasticsearch indexes these (a lone surrogate becomes U+FFFD): the rule fires there.
    path = tmp_path / "surrogate.ndjson"
    text = json.dumps(PROC).replace("meta-data/", "meta-data/\\ud800")
    path.write_text(text + "\n" + json.dumps({**HIT, "\ud800x": "\udc00"}) + "\n")
    proc = cli(path, "--engine", engine, "-f", "ndjson")
    assert proc.returncode == 1, proc.stderr
    records = [json.loads(x) for x in proc.stdout.splitlines()]
    assert [r["line"] for r in records] == [1, 2]
    assert records[0]["matched"]["value"].endswith("meta-data/\ufffd")
    assert "malformed" not in proc.stderr
    # Outputs that rebuild the event write U+FFFD, never a lone surrogate (not UTF-8).
    proc = cli(path, "--engine", engine, "-f", "alerts")
    assert proc.returncode == 1, proc.stderr
    alerts = [json.loads(x) for x in proc.stdout.splitlines()]
    assert alerts[0]["process"]["command_line"].endswith("meta-data/\ufffd")
    assert alerts[1]["\ufffdx"] == "\ufffd"
    for fmt in ("table", "csv"):
        assert cli(path, "--engine", engine, "-f", fmt, "--summary").returncode == 1


@pytest.mark.parametrize("engine", ENGINES)
def test_nesting_up_to_elasticsearchs_limit(tmp_path: Path, engine: str) -> None:
    def nested(levels: int) -> str:  # the event object plus levels - 1 arrays
        event = {**HIT, "@timestamp": "2024-05-01T00:00:00Z"}
        return json.dumps(event)[:-1] + ', "a": ' + "[" * (levels - 1) + "]" * (levels - 1) + "}"

    path = tmp_path / "deep.ndjson"
    path.write_text("".join(nested(n) + "\n" for n in (127, 1000, 1001, 5000)))
    proc = cli(path, "--engine", engine, "-f", "ndjson")
    assert proc.returncode == 1, proc.stderr
    assert [x.split(", ")[1] for x in proc.stdout.splitlines()] == ['"line": 1', '"line": 2']
    assert f"{path}:3: nested deeper than 1000 levels (Elasticsearch's limit)" in proc.stderr
    assert f"{path}:4: nested deeper than 1000 levels" in proc.stderr
    # Every output that reads the event back copes with the depth.
    for fmt in ("table", "csv", "alerts"):
        proc = cli(path, "--engine", engine, "-f", fmt, "--summary", "--since", "2000-01-01")
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr
    report = path.with_suffix(".html")
    proc = cli(path, "--engine", engine, "-o", path.with_suffix(".parquet"), "--report", report)
    assert proc.returncode == 1 and report.exists(), proc.stderr


@pytest.mark.parametrize("engine", ENGINES)
def test_nesting_counts_a_repeated_keys_replaced_value(tmp_path: Path, engine: str) -> None:
    # Found by tests/test_fuzz.py: the reference engine measured the depth of the parsed
    # document, where a repeated key keeps only its last value, so 1001 levels under the
    # first `a` passed (and the line was a hit) while the Rust engine found it malformed.
    deep = "[" * 1000 + "]" * 1000
    path = tmp_path / "dup.ndjson"
    path.write_text(json.dumps(HIT)[:-1] + f', "a": {deep}, "a": 1}}\n{{"x": 1}}\n')
    proc = cli(path, "--engine", engine, "-f", "ndjson")
    assert proc.returncode == 0, proc.stderr
    assert f"{path}:1: nested deeper than 1000 levels" in proc.stderr


@pytest.mark.parametrize("engine", ENGINES)
def test_quiet_still_names_the_inputs_that_failed(tmp_path: Path, engine: str) -> None:
    good = tmp_path / "good.ndjson"
    good.write_bytes(lines(HIT))
    missing = tmp_path / "missing.ndjson"
    proc = cli(missing, good, "-q", "-f", "ndjson", "--engine", engine)
    assert proc.returncode == 2 and len(proc.stdout.splitlines()) == 1
    (line,) = proc.stderr.splitlines()  # no scan line, but the reason for exit 2
    assert line.startswith(f"imds-scan: error: {missing}: ") and "No such file" in line


@pytest.mark.parametrize("engine", ENGINES)
def test_api_threads_are_bounded(tmp_path: Path, engine: str) -> None:
    # The CLI caps --threads with a warning; the API takes any larger count the same way, and
    # a negative one is a ValueError: never an OverflowError from the engine's unsigned count.
    path = tmp_path / "a.ndjson"
    path.write_bytes(lines(HIT, BENIGN))
    result = run_scan([str(path)], default_rules(), engine=engine, threads=10**20)  # type: ignore[arg-type]
    assert [h.line for h in result.hits] == [1]
    with pytest.raises(ValueError, match="threads must be 0"):
        run_scan([str(path)], default_rules(), engine=engine, threads=-1)
