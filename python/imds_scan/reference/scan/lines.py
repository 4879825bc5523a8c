"""Line framing: a decoded stream cut into lines on ``\\n``, a line longer than the limit read
past without being held (crates/imds-core/src/scan/lines.rs)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO, NamedTuple


class ReadFailed:
    """Where a stream's read error is kept while its last (partial) line is still scanned."""

    error: BaseException | None = None


BLOCK = 1 << 20


class Waits:
    """Given by :func:`read_lines` (with ``waits``) after the lines of a read that got less
    than it asked for: the next read may wait for data (a live stream, such as ``tail -f``
    into standard input), so what was found so far should be handed on first (as the Rust
    engine's idle reads: crates/imds-core/src/scan/source.rs)."""


WAITS = Waits()


class LongLine(NamedTuple):
    """A line read past: its length without the newline, and its bytes read (with it)."""

    length: int
    size: int


# The default longest line evaluated (bytes, without its newline); longer ones are read past.
MAX_LINE_BYTES = 64 << 20


def read_lines(
    stream: BinaryIO, failed: ReadFailed, max_line: int = MAX_LINE_BYTES, waits: bool = False
) -> Iterator[bytes | LongLine | Waits]:
    """The stream's lines, split on ``\\n`` only (each with its ``\\n``, the last one maybe
    without); a line longer than ``max_line`` bytes is read past, never held whole, and given
    as a LongLine. A read error ends the lines: what was read before it is still
    yielded, and the error is left in ``failed``. ``waits``: :data:`WAITS` after the lines
    of a short read."""
    pending: list[bytes] = []
    held = 0  # bytes in pending
    skipped: int | None = None  # the length so far of a long line being read past
    # read1: one read of the source at most, so data decoded before an error is returned
    # (a read(n) that fails midway drops what it had gathered).
    read = getattr(stream, "read1", stream.read)
    while True:
        try:
            block = read(BLOCK)
        except Exception as exc:  # decoding and I/O errors alike
            failed.error = exc
            block = b""
        if not block:
            if skipped is not None:
                yield LongLine(skipped, skipped)
            elif pending:
                yield b"".join(pending)
            return
        start = 0
        while True:
            end = block.find(b"\n", start)
            if skipped is not None:
                if end < 0:
                    skipped += len(block) - start
                    break
                yield LongLine(skipped + end - start, skipped + end - start + 1)
                skipped = None
                start = end + 1
                continue
            if end < 0:
                if start < len(block):
                    pending.append(block[start:])
                    held += len(block) - start
                    if held > max_line:
                        skipped, pending, held = held, [], 0
                break
            if held + end - start > max_line:
                yield LongLine(held + end - start, held + end - start + 1)
                pending, held = [], 0
                start = end + 1
                continue
            if pending:
                pending.append(block[start : end + 1])
                yield b"".join(pending)
                pending, held = [], 0
            else:
                yield block[start : end + 1]
            start = end + 1
        if waits and len(block) < BLOCK:
            yield WAITS
