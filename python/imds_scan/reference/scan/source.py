"""Reading inputs: opening, compression told by magic bytes (gzip and zstd decoded, others
refused), bytes counted for progress; crates/imds-core/src/scan/source.rs."""

from __future__ import annotations

import errno
import gzip
import io
import os
import sys
from collections.abc import Callable
from typing import Any, BinaryIO, cast

from .lines import BLOCK

# A function that opens an input as a binary stream (an S3 object, for instance).
Opener = Callable[[], BinaryIO]


class Counted(io.RawIOBase):
    """A raw source: counts the bytes read from it, and reports them to ``progress``; the
    first bytes, read to tell the compression, are put back in front."""

    def __init__(self, raw: BinaryIO, head: bytes, progress: Callable[[int], None] | None) -> None:
        super().__init__()
        self._read = getattr(raw, "read1", raw.read)
        self._head = head
        self.count = len(head)
        self._progress = progress
        if progress:
            progress(len(head))

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        # read1: whatever is there (a pipe's reader must not wait for a full buffer).
        data = self._read(len(view))
        n = len(data)
        view[:n] = data
        self.count += n
        if self._progress and n:
            self._progress(n)
        return n


MAGIC_LEN = 6


class Unscannable(ValueError):
    """An input not scanned at all: ``kind`` is its error kind, as the Rust engine's
    ``InputErrorKind::as_str`` names it (``unsupported``, ``nested_compression``,
    ``decoder``)."""

    def __init__(self, message: str, kind: str = "unsupported") -> None:
        super().__init__(message)
        self.kind = kind


# Recognised and refused: other compressions, and text that is not UTF-8 (UTF-32LE before
# UTF-16LE, whose mark starts it).
_REFUSED = (
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"),
    (b"PK\x03\x04", "zip"),
    (b"\x04\x22\x4d\x18", "lz4"),
    (b"\xff\xfe\x00\x00", "UTF-32LE"),
    (b"\x00\x00\xfe\xff", "UTF-32BE"),
    (b"\xff\xfe", "UTF-16LE"),
    (b"\xfe\xff", "UTF-16BE"),
)


def refusal(kind: str) -> str:
    """Why an input of this kind is not scanned (the Rust engine's ``source::refusal``)."""
    if kind.startswith("UTF-"):
        return (
            f"{kind} text (byte-order mark) is not supported: not scanned (convert it to "
            f"UTF-8, e.g. iconv -f {kind} -t UTF-8)"
        )
    return f"{kind}-compressed input is not supported (gzip and zstd are): not scanned"


def detect_compression(head: bytes) -> str | None:
    """``gzip``, ``zstd`` or None (plain) from an input's first bytes; Unscannable (a
    ValueError) for a recognised but unsupported compression or a UTF-16/32 byte-order mark
    (the Rust engine's ``Compression::detect``)."""
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"\x28\xb5\x2f\xfd") or (
        len(head) >= 4 and head[0] & 0xF0 == 0x50 and head[1:4] == b"\x2a\x4d\x18"
    ):
        return "zstd"
    for magic, kind in _REFUSED:
        if head.startswith(magic):
            raise Unscannable(refusal(kind))
    return None


def open_input(path: str | Opener) -> BinaryIO:
    """A binary stream of an input: a path (``-`` is stdin) or what an opener returns."""
    if callable(path):
        return path()
    if path == "-":
        return sys.stdin.buffer
    if os.path.isdir(path):
        raise OSError(errno.EISDIR, "Is a directory")
    return open(path, "rb")


def decoded(
    raw: BinaryIO, progress: Callable[[int], None] | None = None
) -> tuple[BinaryIO, Counted, str | None]:
    """An input's data decoded, the counter of the bytes read from it, and its compression;
    Unscannable when it is refused (:func:`detect_compression`) or cannot be decoded here;
    OSError when its first bytes cannot be read."""
    head = _read_head(raw)
    compression = detect_compression(head)
    counted = Counted(raw, head, progress)
    return _decode(counted, compression), counted, compression


def _read_head(raw: BinaryIO) -> bytes:
    head = b""
    while len(head) < MAGIC_LEN:
        data = raw.read(MAGIC_LEN - len(head))
        if not data:
            break
        head += data
    return head


def _decode(counted: Counted, compression: str | None) -> BinaryIO:
    buffered = io.BufferedReader(counted, 256 << 10)
    if compression == "gzip":
        return cast(BinaryIO, gzip.GzipFile(fileobj=buffered, mode="rb"))  # multi-member too
    if compression == "zstd":
        try:
            import zstandard
        except ImportError:
            raise Unscannable(
                "zstd input needs the zstandard package with --engine python "
                "(pip install zstandard)",
                "decoder",
            ) from None
        return cast(BinaryIO, io.BufferedReader(_ZstdFrames(buffered, zstandard), BLOCK))
    return buffered


class _ZstdFrames(io.RawIOBase):
    """Every zstd frame of a stream (skippable ones skipped); a stream that ends inside a frame
    is an error, as in the Rust engine (zstandard's stream_reader takes it for the end)."""

    # Compressed bytes per decompress call: bounds the output of one call (zstd can expand
    # a few bytes into 128 KiB).
    _STEP = 1024

    def __init__(self, raw: BinaryIO, zstandard: Any) -> None:
        super().__init__()
        self._raw = raw
        self._new = zstandard.ZstdDecompressor().decompressobj
        self._frame = self._new()
        self._input = b""
        self._output = b""
        self._started = False  # bytes of the current frame were given to the decoder

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._output:
            if not self._input:
                self._input = self._raw.read(64 << 10)
                if not self._input:
                    if self._started:
                        raise OSError("zstd data ends inside a frame (truncated)")
                    return 0
            step, self._input = self._input[: self._STEP], self._input[self._STEP :]
            self._started = True
            self._output = self._frame.decompress(step)
            if self._frame.eof:
                self._input = self._frame.unused_data + self._input
                self._frame, self._started = self._new(), False
        n = min(len(view), len(self._output))
        view[:n] = self._output[:n]
        self._output = self._output[n:]
        return n


def refuse_nested(stream: BinaryIO, outer: str) -> Exception | None:
    """Unscannable when decompressed data is compressed again (``.gz.gz``) or UTF-16/32 text,
    as the Rust engine refuses it. Returns the damage the first read met: a second read may
    not meet it again (a gzip header cut short is consumed, then reads as a clean end)."""
    try:
        head = cast(Any, stream).peek(MAGIC_LEN)[:MAGIC_LEN]
    except Exception as exc:
        return exc
    try:
        inner = detect_compression(head)
    except Unscannable as exc:
        raise Unscannable(f"decompressed {outer} data: {exc}") from None
    if inner:
        raise Unscannable(
            f"{outer} data that holds {inner}-compressed data (compressed twice?) is not "
            "supported: not scanned",
            "nested_compression",
        )
    return None
