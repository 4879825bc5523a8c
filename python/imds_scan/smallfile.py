"""Small files read whole (rule files, the config, mappings), with a bound: a path may name
anything, such as a data file given to ``--rule`` by mistake, ``/dev/zero``, or a FIFO left
in a rules directory, and none of these may hang the tool or fill its memory."""

from __future__ import annotations

import os
import stat

# What a small file may hold: Elastic's largest rule file is about 54 KB, the shipped mapping
# profile under 200 KB.
MAX_SMALL_FILE_BYTES = 8 << 20


class SmallFileError(ValueError):
    """Why a file is refused; the message does not name the file (the caller does)."""


class TooLarge(SmallFileError):
    """The file holds more than the limit: not the kind of file asked for."""


def read_small_file(
    path: str | os.PathLike[str], *, regular: bool, limit: int = MAX_SMALL_FILE_BYTES
) -> bytes:
    """The bytes of ``path``, at most ``limit``. ``regular``: only a regular file; anything
    else is refused without waiting for it (a FIFO's writer). Otherwise a pipe such as a
    shell's ``<(...)`` is read too. OSError when it cannot be opened or read;
    SmallFileError when it is refused (TooLarge past the limit)."""
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
    if regular:
        flags |= getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, flags)
    try:
        if regular and not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SmallFileError("not a regular file")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(limit + 1 - size, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > limit:
        raise TooLarge(f"larger than {_size(limit)}")
    return b"".join(chunks)


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 and n % (1 << 20) == 0 else f"{n:,} bytes"
