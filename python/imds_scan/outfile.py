"""Output files (``--output``, ``--report``): checked before the scan, written whole.

Each output gets a temporary file next to it before anything is scanned (so a directory
that does not exist or cannot be written fails in a second, not after an hour's scan); the
results are written there and renamed over the target at the end, so a failed write never
leaves half a file where the old one was. An output that is one of the inputs (same device
and inode) is refused: ``-o in.ndjson`` would replace the evidence with the hits; so is one
inside an input directory or glob, even before it exists (its temporary file is never scanned).
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Sequence
from typing import BinaryIO

from .sources import Source

# Formats made of one record per line: a write cut short keeps its whole records.
LINE_FORMATS = frozenset({"ndjson", "alerts"})


class OutputError(ValueError):
    """An output that cannot or must not be written; the message names it."""


def _identity(st: os.stat_result) -> tuple[int, int]:
    return (st.st_dev, st.st_ino)


class PendingOutput:
    """An output being prepared: ``path`` (as given) is written through ``write_path``."""

    def __init__(self, path: str, flag: str) -> None:
        self.path = path
        self.flag = flag
        try:
            st: os.stat_result | None = os.stat(path)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise self._error(exc) from None
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise OutputError(f"{flag} {path}: is a directory")
        self.identity = None if st is None else _identity(st)
        # Written in place: a device or a FIFO (/dev/null, /dev/stdout, a named pipe).
        self.in_place = st is not None and not stat.S_ISREG(st.st_mode)
        self.mode = None if st is None or self.in_place else st.st_mode & 0o7777
        self.tmp: str | None = None
        # /dev/stdout resolves to no real path: a device or pipe is opened as named.
        self.target = path if self.in_place else os.path.realpath(path)
        if self.in_place:
            # Not opened now: opening a FIFO would block, and closing it ends its reader.
            if not os.access(path, os.W_OK):
                raise OutputError(f"cannot write {path}: permission denied")
            return
        target = self.target
        directory, name = os.path.split(target)
        import tempfile  # here: a scan to standard output does not pay for its imports

        try:
            fd, self.tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
        except OSError as exc:
            raise self._error(exc) from None
        os.close(fd)

    def _error(self, exc: OSError) -> OutputError:
        from .escape import safe

        return OutputError(f"cannot write {safe(self.path)}: {exc.strerror or exc}")

    @property
    def write_path(self) -> str:
        return self.target if self.tmp is None else self.tmp

    def open_binary(self) -> BinaryIO:
        """``write_path`` opened for writing bytes. The temporary file, made empty here, is
        opened without truncating it: a file truncated to zero when opened is written back to
        disk when it is closed (ext4's ``auto_da_alloc``), on the closing thread, 0.1 s at the
        end of a scan writing 400 MB of NDJSON. (Parquet, ten times smaller, is left to
        pyarrow's writer, whose files always truncate.)"""
        if self.tmp is None:
            return open(self.target, "wb")
        return os.fdopen(os.open(self.tmp, os.O_WRONLY), "wb")

    def commit(self) -> None:
        """Move the written file over the target."""
        if self.tmp is None:
            return
        if self.mode is None:  # as open() would have made it
            mask = os.umask(0)
            os.umask(mask)
            mode = 0o666 & ~mask
        else:
            mode = self.mode
        try:
            os.chmod(self.tmp, mode)
            os.replace(self.tmp, self.target)
        except OSError as exc:
            self.discard()
            raise self._error(exc) from None
        self.tmp = None

    def keep_whole_lines(self) -> int:
        """After a failed write: cut the file after its last newline and commit it; the
        number of lines kept."""
        if self.tmp is None:
            return 0
        with open(self.tmp, "rb+") as f:
            end = f.seek(0, os.SEEK_END)
            keep = 0
            while end > 0:
                start = max(0, end - (1 << 16))
                f.seek(start)
                block = f.read(end - start)
                newline = block.rfind(b"\n")
                if newline >= 0:
                    keep = start + newline + 1
                    break
                end = start
            f.truncate(keep)
            f.seek(0)
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
        self.commit()
        return lines

    def discard(self) -> None:
        """Remove the temporary file (the target is left as it was)."""
        if self.tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.tmp)
            self.tmp = None


def refuse_inputs(
    outputs: Sequence[PendingOutput], sources: Sequence[Source], args: Sequence[str] = ()
) -> None:
    """Refuse an output that is one of the (expanded) inputs, by device and inode, or that
    lies inside an input directory or glob (``args``: the inputs as given) even before it
    exists: its temporary file would be scanned, and so would it on the next scan."""
    from .escape import safe
    from .sources import glob_matches, is_glob

    taken = {o.identity: o for o in outputs if o.identity is not None}
    temporary = {}
    for o in outputs:
        if o.tmp is not None:
            with contextlib.suppress(OSError):
                temporary[_identity(os.stat(o.tmp))] = o
    if not taken and not temporary:  # no file output: no input to stat
        return
    for o in outputs:  # (one that exists is found among the sources below)
        if o.identity is not None or o.tmp is None:
            continue
        for arg in args:
            if is_glob(arg) and (glob_matches(arg, o.path) or glob_matches(arg, o.target)):
                raise OutputError(_inside(o, arg))
    for source in sources:
        try:
            if source.kind == "file":
                st = os.stat(source.name)
            elif source.kind == "stdin":
                st = os.fstat(sys.stdin.fileno())
            else:
                continue  # S3 cannot be a local output
        except (OSError, ValueError, AttributeError):
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        clash = taken.get(_identity(st))
        if clash is not None:
            raise OutputError(
                f"{clash.flag} {safe(clash.path)} is also an input ({safe(source.name)}): "
                "it would be overwritten; write the results elsewhere"
            )
        inside = temporary.get(_identity(st))
        if inside is not None:  # its directory is walked (a glob skips hidden names)
            raise OutputError(_inside(inside, None))


def _inside(output: PendingOutput, arg: str | None) -> str:
    from .escape import safe

    where = "an input directory" if arg is None else f"the input glob {safe(arg)!r}"
    return (
        f"{output.flag} {safe(output.path)} is inside {where}: it would be scanned as an "
        "input; write the results elsewhere"
    )
