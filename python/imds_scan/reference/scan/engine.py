"""The reference engine's scan (crates/imds-core/src/scan/engine.rs): inputs read one after
another, line by line, every event parsed with the standard library's :mod:`json` and every
rule evaluated, with no fast path. Hits and per-input statistics have the shapes the Rust
engine's binding gives (:mod:`imds_scan.stats`)."""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable, Generator, Iterable
from typing import Any, BinaryIO

from ...stats import EngineHit, FileStats
from ..eval import CompiledRule
from ..event import Malformed, parse_line
from .lines import MAX_LINE_BYTES, LongLine, ReadFailed, Waits, read_lines
from .source import Opener, Unscannable, decoded, open_input, refuse_nested


def scan_stream(
    stream: BinaryIO,
    rules: list[CompiledRule],
    source: int,
    stats: FileStats,
    hits: list[EngineHit],
    max_examples: int = 5,
    max_line_bytes: int = MAX_LINE_BYTES,
    batch: int = 0,
    waits: bool = False,
) -> Generator[None, None, BaseException | None]:
    """Scan one stream of NDJSON lines (split on ``\\n`` only), appending hits and counting
    ``stats.lines`` as it goes; returns the read error that ended it early, if any. A line
    longer than ``max_line_bytes`` is counted (in ``long_lines`` and ``malformed``), not
    evaluated. Yields (nothing) whenever ``hits`` holds ``batch`` hits or more (0: never),
    or (``waits``: a live stream) some before a read that may wait for data, for the caller
    to take them."""
    failed = ReadFailed()
    number = 0
    for raw in read_lines(stream, failed, max_line_bytes, waits=waits and batch > 0):
        if isinstance(raw, Waits):
            if hits:
                yield
            continue
        number += 1
        stats.lines = number
        if isinstance(raw, LongLine):
            length = raw.length
            stats.bytes += raw.size
            stats.events += 1
            stats.long_lines += 1
            stats.malformed += 1
            if len(stats.malformed_examples) < max_examples:
                stats.malformed_examples.append(
                    (
                        number,
                        f"line of {length} bytes is longer than max-line-bytes "
                        f"({max_line_bytes}): not evaluated",
                    )
                )
            continue
        stats.bytes += len(raw)
        if raw.endswith(b"\n"):
            raw = raw[:-1]
        if raw.startswith(b"\xef\xbb\xbf"):  # a BOM: the file's, or a part's after `cat`
            raw = raw[3:]
        try:
            parsed = parse_line(raw)
        except Malformed as exc:
            stats.events += 1
            stats.malformed += 1
            if len(stats.malformed_examples) < max_examples:
                stats.malformed_examples.append((number, str(exc)))
            continue
        if parsed is None:
            continue
        doc, text, invalid_utf8 = parsed
        stats.events += 1
        stats.candidates += 1
        stats.valid_event = True
        stats.invalid_utf8 += invalid_utf8
        if invalid_utf8 and len(stats.invalid_utf8_lines) < max_examples:
            stats.invalid_utf8_lines.append(number)
        for rule_index, rule in enumerate(rules):
            verdict = rule.judge(doc)
            if isinstance(verdict, int):
                key = (rule_index, verdict)
                stats.allowlisted[key] = stats.allowlisted.get(key, 0) + 1
            elif verdict is not None:
                branch, witness = verdict
                stats.hits += 1
                hits.append(
                    (
                        source,
                        number,
                        rule_index,
                        branch,
                        witness.as_tuple() if witness else None,
                        text,
                    )
                )
        if batch and len(hits) >= batch:
            yield
    return failed.error


class ReferenceScan:
    """A scan of inputs one after another, its hits given in batches as they are found
    (:meth:`batches`), its per-input statistics in ``stats`` (the inputs read so far) and
    ``interrupted`` set when Ctrl-C stopped it."""

    def __init__(self, rules: list[dict[str, Any]]) -> None:
        self.rules = [CompiledRule(ir) for ir in rules]
        self.stats: list[FileStats] = []
        self.interrupted = False

    def batches(
        self,
        paths: Iterable[str | Opener],
        batch: int = 1024,
        max_examples: int = 5,
        progress: Callable[[int], None] | None = None,
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> Generator[list[EngineHit]]:
        """Scan ``paths`` (as :func:`scan_inputs`), yielding the hits in batches of about
        ``batch`` as they are found (in input, then line, then rule order). On
        KeyboardInterrupt in the scan, the batches end with the hits found before it. Closed
        early (the consumer stopped, or Ctrl-C there), the input being read and those after
        it say ``interrupted``, as the Rust engine's unfinished inputs do."""
        hits: list[EngineHit] = []
        paths = list(paths)
        scanned: Generator[None, None, bool] | None = None
        try:
            for source, path in enumerate(paths):
                stats = FileStats()
                self.stats.append(stats)
                if self.interrupted:
                    _fail(stats, "interrupted", "not read: the scan was interrupted")
                    continue
                try:
                    scanned = _scan_one(
                        path,
                        self.rules,
                        source,
                        stats,
                        hits,
                        max_examples,
                        progress,
                        max_line_bytes,
                        batch,
                    )
                    while True:
                        try:
                            next(scanned)
                        except StopIteration as end:
                            self.interrupted = end.value
                            scanned = None
                            break
                        taken = hits[:]
                        hits.clear()
                        yield taken
                except ValueError as exc:  # a path that cannot be opened (a NUL byte in it)
                    _fail(stats, "open", str(exc))
            if hits:
                yield hits
        except GeneratorExit:
            if scanned is not None:
                scanned.close()  # the input being read says where it stopped
            for _ in paths[len(self.stats) :]:
                self.stats.append(FileStats())
                _fail(self.stats[-1], "interrupted", "not read: the scan was interrupted")
            raise


def scan_inputs(
    paths: Iterable[str | Opener],
    rules: list[dict[str, Any]],
    max_examples: int = 5,
    progress: Callable[[int], None] | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> tuple[list[EngineHit], list[FileStats], bool]:
    """Scan inputs one after another: paths (``-`` is stdin) or functions that open a binary
    stream; gzip and zstd are decoded. An input that cannot be read, or only in part, is
    recorded in its stats (what was read is scanned), not raised: the error's text, and its
    kind, byte offset and line as the Rust engine gives them. ``progress(n)`` is called
    with each count of bytes read from the sources. Returns (hits, stats, interrupted): on
    KeyboardInterrupt the scan stops and returns what it found. Every hit in memory: see
    :class:`ReferenceScan` for them in batches."""
    scan = ReferenceScan(rules)
    hits = [
        hit
        for batch in scan.batches(paths, 0, max_examples, progress, max_line_bytes)
        for hit in batch
    ]
    return hits, scan.stats, scan.interrupted


# Errors of opening a file, by errno, as the Rust engine kinds them (else "open").
_OPEN_KINDS = {
    errno.ENOENT: "not_found",
    errno.EACCES: "permission_denied",
    errno.EPERM: "permission_denied",
    errno.EISDIR: "is_directory",
}


def _fail(
    stats: FileStats, kind: str, text: str, offset: int | None = None, line: int | None = None
) -> None:
    stats.error, stats.error_kind = text, kind
    stats.error_offset, stats.error_line = offset, line


def _reason(error: BaseException) -> str:
    """An exception as the Rust engine words an error of a Python stream: its type and text."""
    reason = (error.strerror or str(error)) if isinstance(error, OSError) else str(error)
    return f"{type(error).__name__}: {reason}" if reason else type(error).__name__


def _scan_one(
    path: str | Opener,
    rules: list[CompiledRule],
    source: int,
    stats: FileStats,
    hits: list[EngineHit],
    max_examples: int,
    progress: Callable[[int], None] | None,
    max_line_bytes: int = MAX_LINE_BYTES,
    batch: int = 0,
) -> Generator[None, None, bool]:
    """Scan one input into ``stats`` and ``hits`` (yielding as :func:`scan_stream` does);
    returns True if interrupted."""
    try:
        raw = open_input(path)
    except KeyboardInterrupt:  # while the open waited (a FIFO without a writer)
        _fail(stats, "interrupted", "interrupted: scanned up to byte 0 (line 0)", 0, 0)
        return True
    except OSError as exc:
        if callable(path):  # the Rust engine opens such a stream at its first read
            _fail(stats, "read", f"read error at byte 0: {_reason(exc)}", 0)
        else:
            _fail(stats, _OPEN_KINDS.get(exc.errno or 0, "open"), exc.strerror or str(exc))
        return False
    try:
        try:
            stream, counted, compression = decoded(raw, progress)
            damage = refuse_nested(stream, compression) if compression else None
        except Unscannable as exc:
            _fail(stats, exc.kind, str(exc))
            return False
        except OSError as exc:  # the first bytes could not be read
            _fail(stats, "read", f"read error at byte 0: {_reason(exc)}", 0)
            return False
        stats.compression = compression
        # Plain standard input may be live (`tail -f`): its hits are handed on before a read
        # waits (a decoder's input waits whole, as in the Rust engine).
        waits = path == "-" and compression is None
        try:
            error = damage or (
                yield from scan_stream(
                    stream, rules, source, stats, hits, max_examples, max_line_bytes, batch, waits
                )
            )
        except (KeyboardInterrupt, GeneratorExit) as stop:
            stats.source_bytes = counted.count
            where = f"byte {stats.bytes} (line {stats.lines})"
            _fail(stats, "interrupted", f"interrupted: scanned up to {where}", stats.bytes)
            stats.error_line = stats.lines
            if isinstance(stop, GeneratorExit):
                raise
            return True
        stats.source_bytes = counted.count
        if error is None:
            pass
        elif compression:
            _fail(
                stats,
                "damaged",
                f"{compression} data damaged or cut short near compressed byte "
                f"{counted.count} ({_reason(error)}); the {stats.bytes} bytes "
                f"({stats.lines} lines) decompressed before it were scanned",
                counted.count,
                stats.lines,
            )
        else:
            where = f"byte {stats.bytes} (line {stats.lines})"
            _fail(
                stats, "read", f"read error at {where}: {_reason(error)}", stats.bytes, stats.lines
            )
    finally:
        if raw is not sys.stdin.buffer:
            raw.close()
    return False
