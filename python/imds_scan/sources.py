"""What to scan: files, directories (recursive), globs (``**`` recursive, expanded here so a
quoted glob works too), ``-`` for standard input, and ``s3://bucket/prefix`` objects and globs
through fsspec/s3fs (the optional ``s3`` extra; the standard AWS credential chain).

Directory symlinks are followed, each directory once: a symlink loop is skipped and reported,
never walked forever. A walk or a glob finds regular files only (symlinks followed): a FIFO,
socket or device found there is skipped and reported, not waited on or read forever (named as
an input, such a file is read: ``<(zcat x.gz)``). An input named twice (``a a``, ``dir dir/x``,
a hard or symbolic link to a file already named) is scanned once and the repeat reported; a
glob that matches nothing is an input error like a missing file, and the other inputs are
scanned. Compression (gzip, zstd) is not decided here: the engines read the first bytes of
each input.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Literal

GLOB_CHARS = frozenset("*?[")
S3_PREFIX = "s3://"
# A read of an S3 object fetches at least this much at a time (s3fs's read-ahead block):
# memory per object being read, and the size of each ranged GET.
S3_BLOCK_SIZE = 8 << 20


class InputError(ValueError):
    """An input argument that names nothing to scan (e.g. a glob that matches no file)."""


@dataclass(frozen=True)
class Source:
    """One input: ``name`` is how results and diagnostics name it."""

    name: str
    kind: Literal["file", "stdin", "s3"] = "file"
    # Bytes, when known before reading (for the progress bar).
    size: int | None = None
    # Why this input cannot be read at all (found while listing it), or None.
    error: str | None = None
    fs: Any = field(default=None, compare=False, repr=False)

    def engine_input(self) -> str | LazyStream:
        """What the Rust engine reads: a path, ``-`` (stdin), or a stream object."""
        if self.kind == "s3":
            return LazyStream(self.open)
        return self.local_path()

    def local_path(self) -> str:
        """A local input as an engine opens it: ``-`` is stdin, so a file named ``-`` is
        ``./-``."""
        if self.kind == "stdin":
            return "-"
        return self.name if self.name != "-" else "./-"

    def open(self) -> BinaryIO:
        """The raw bytes (still compressed, if they are)."""
        if self.kind == "stdin":
            return sys.stdin.buffer
        if self.kind == "s3":
            stream: BinaryIO = self.fs.open(
                self.name, "rb", block_size=S3_BLOCK_SIZE, cache_type="readahead"
            )
            return stream
        return open(self.name, "rb")


class LazyStream:
    """A stream opened at its first read (or seek) and closed at its end, so that only the
    inputs being read hold a connection and a read-ahead buffer. Seekable, for the engine's
    byte ranges (which stop before the end: the caller closes it)."""

    def __init__(self, opener: Callable[[], BinaryIO]) -> None:
        self._opener = opener
        self._file: BinaryIO | None = None
        self._done = False

    def _opened(self) -> BinaryIO:
        if self._file is None:
            if self._done:
                raise ValueError("seek of a closed stream")
            self._file = self._opener()
        return self._file

    def read(self, size: int = -1) -> bytes:
        if self._done:
            return b""
        try:
            data = self._opened().read(size)
        except BaseException:
            self.close()
            raise
        if not data:
            self.close()
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        try:
            return self._opened().seek(offset, whence)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self._done = True
        if self._file is not None:
            file, self._file = self._file, None
            file.close()


@dataclass
class Expanded:
    sources: list[Source]
    # (path, reason) of what was left out while walking, e.g. a directory symlink loop.
    skipped: list[tuple[str, str]] = field(default_factory=list)
    # Directories already reported as unlistable (a glob or a walk may meet one twice).
    unlistable: set[str] = field(default_factory=set, repr=False)
    # Files already skipped as not regular (two globs may find one).
    not_regular: set[str] = field(default_factory=set, repr=False)


def is_s3(arg: str) -> bool:
    return arg.startswith(S3_PREFIX)


def expand(args: Sequence[str], *, endpoint_url: str | None = None) -> Expanded:
    """Every input the arguments name, in order, each file once. A missing file or a glob
    that matches nothing is kept as an input with an error: the scan reports it, and scans
    the rest."""
    out = Expanded([])
    fs = None
    for arg in args:
        if arg == "-":
            out.sources.append(Source("-", "stdin", _stdin_size()))
        elif is_s3(arg):
            if fs is None:
                fs = s3_filesystem(endpoint_url)
            out.sources.extend(_expand_s3(fs, arg))
        elif os.path.isdir(arg):
            _walk(arg, out)
        elif is_glob(arg):
            if not _glob(arg, out):
                out.sources.append(Source(arg, "file", None, "no file matches this glob"))
        else:
            out.sources.append(Source(arg, "file", _size(arg)))
    _drop_repeats(out)
    return out


def is_glob(arg: str) -> bool:
    """Whether :func:`expand` takes ``arg`` (not ``-``, S3 or a directory) for a glob."""
    return not os.path.lexists(arg) and bool(GLOB_CHARS & set(arg))


def _identity(source: Source) -> tuple[object, ...]:
    """What makes two inputs the same: the file itself (device and inode, so links and
    other spellings of a path count), else the name (an S3 URL, ``-``, a missing path)."""
    if source.kind == "file":
        try:
            st = os.stat(source.name)
        except OSError:
            return ("name", source.name)
        return ("file", st.st_dev, st.st_ino)
    return (source.kind, source.name)


def _drop_repeats(out: Expanded) -> None:
    """Keep each input's first occurrence; name the others in ``out.skipped``."""
    first: dict[tuple[object, ...], str] = {}
    kept = []
    for source in out.sources:
        key = _identity(source)
        if key in first:
            what = "object" if source.kind == "s3" else "input"
            out.skipped.append((source.name, f"the same {what} as {first[key]}: scanned once"))
        else:
            first[key] = source.name
            kept.append(source)
    out.sources = kept


def as_source(item: str | Source) -> Source:
    """An already expanded input: a Source, ``-``, ``s3://bucket/key`` or a file path."""
    if isinstance(item, Source):
        return item
    if item == "-":
        return Source("-", "stdin", _stdin_size())
    if is_s3(item):
        return Source(item, "s3", None, fs=s3_filesystem(None))
    return Source(item, "file", _size(item))


def _size(path: str) -> int | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def _stdin_size() -> int | None:
    try:
        st = os.fstat(sys.stdin.fileno())
    except (OSError, ValueError, AttributeError):
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


# ---------------------------------------------------------------- local files


def _dir_key(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _entries(path: str, out: Expanded) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError as exc:
        if os.path.normpath(path) not in out.unlistable:  # report it once
            out.unlistable.add(os.path.normpath(path))
            out.sources.append(Source(path, "file", None, f"cannot list directory: {exc.strerror}"))
        return []


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()  # follows symlinks
    except OSError:
        return False


_NOT_REGULAR = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _found(path: str, out: Expanded) -> None:
    """A file found by a walk or a glob, as an input if it is a regular file (or cannot be
    looked at: its open reports why). Anything else is skipped and named: a FIFO's open
    would wait for a writer, a device's read may never end, and the user did not name it."""
    if path == "-":  # `*` in a directory holding a file named -: named apart from stdin
        path = os.path.join(os.curdir, path)
    try:
        st = os.stat(path)
    except OSError:
        out.sources.append(Source(path, "file", None))
        return
    if stat.S_ISREG(st.st_mode):
        out.sources.append(Source(path, "file", st.st_size))
        return
    if os.path.normpath(path) in out.not_regular:
        return
    out.not_regular.add(os.path.normpath(path))
    what = next((name for test, name in _NOT_REGULAR if test(st.st_mode)), "a special file")
    out.skipped.append(
        (path, f"{what}, not a regular file: not read (name it as an input to read it)")
    )


def _walk(top: str, out: Expanded) -> None:
    """Every file under ``top`` (hidden ones too), sorted, following directory symlinks but
    entering each directory once."""
    seen: set[tuple[int, int]] = set()
    for _path, entries in _walk_dirs(top, seen, out, hidden=True):
        for entry in entries:
            if not _is_dir(entry):
                _found(entry.path, out)


def _walk_dirs(
    top: str, seen: set[tuple[int, int]], out: Expanded, *, hidden: bool
) -> Iterator[tuple[str, list[os.DirEntry[str]]]]:
    """``top`` and the directories below it with their entries (each listed once), depth
    first in name order, each real directory once; a symlink back into one already walked
    is recorded in ``out.skipped``."""
    key = _dir_key(top)
    if key is None or key in seen:
        return
    seen.add(key)
    stack = [top]
    while stack:
        path = stack.pop()
        entries = _entries(path, out)
        yield path, entries
        subdirs = []
        for entry in entries:
            if not _is_dir(entry) or (not hidden and entry.name.startswith(".")):
                continue
            key = _dir_key(entry.path)
            if key is None:
                continue
            if key in seen:
                if entry.is_symlink():
                    out.skipped.append(
                        (entry.path, "directory symlink to a directory already walked (a loop?)")
                    )
                continue
            seen.add(key)
            subdirs.append(entry.path)
        stack.extend(reversed(subdirs))


def _component_regex(part: str) -> re.Pattern[str]:
    """One path component of a glob: ``*``, ``?`` and ``[...]`` as the shell has them."""
    out, i = [], 0
    while i < len(part):
        ch = part[i]
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "[":
            end = part.find("]", i + 2 if part[i + 1 : i + 2] in ("!", "]") else i + 1)
            if end < 0:
                out.append(re.escape(ch))
            else:
                body = part[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _glob(pattern: str, out: Expanded) -> int:
    """Expand a glob as a shell with ``globstar`` does: ``**`` is any number of directories;
    wildcards do not match a leading dot; directories are not results. Returns the number
    of files found (regular ones: others are skipped)."""
    parts = pattern.split(os.sep)
    # The leading components without wildcards are the base directory.
    fixed = 0
    while fixed < len(parts) - 1 and not GLOB_CHARS & set(parts[fixed]):
        fixed += 1
    base = os.sep.join(parts[:fixed]) or ("" if not pattern.startswith(os.sep) else os.sep)
    found: list[str] = []
    seen: set[tuple[int, int]] = set()
    _glob_in(base, parts[fixed:], found, seen, out)
    before = len(out.sources)
    for path in dict.fromkeys(found):  # `**/**` may find a file twice
        _found(path, out)
    return len(out.sources) - before


def glob_matches(pattern: str, path: str) -> bool:
    """Whether the local glob ``pattern`` names the file ``path`` (existing or not), as
    :func:`_glob` would find it; the two are compared as absolute, normalised paths."""
    pats = os.path.abspath(pattern).split(os.sep)
    parts = os.path.abspath(path).split(os.sep)

    def match(i: int, j: int) -> bool:
        if i == len(pats):
            return j == len(parts)
        head = pats[i]
        if head == "**":  # any number of directories (a trailing one: any file below)
            if i + 1 == len(pats):
                return j < len(parts) and not any(p.startswith(".") for p in parts[j:])
            for k in range(j, len(parts)):
                if match(i + 1, k):
                    return True
                if parts[k].startswith("."):
                    return False
            return False
        if j == len(parts):
            return False
        name = parts[j]
        if GLOB_CHARS & set(head):
            if name.startswith(".") and not head.startswith("."):
                return False
            if not _component_regex(head).fullmatch(name):
                return False
        elif head != name:
            return False
        return match(i + 1, j + 1)

    return match(0, 0)


def _glob_in(
    base: str,
    parts: list[str],
    found: list[str],
    seen: set[tuple[int, int]],
    out: Expanded,
) -> None:
    head, rest = parts[0], parts[1:]
    here = base or os.curdir
    if head == "**":
        for path, entries in _walk_dirs(here, seen, out, hidden=False):
            relative = "" if path == here else os.path.relpath(path, here)
            prefix = os.path.join(base, relative) if relative else base
            if rest:
                _glob_in(prefix, rest, found, set(), out)
            else:  # a trailing `**` names every file below
                for entry in entries:
                    if not _is_dir(entry) and not entry.name.startswith("."):
                        found.append(os.path.join(prefix, entry.name))
        return
    if not GLOB_CHARS & set(head):
        path = os.path.join(base, head)
        if rest:
            if os.path.isdir(path):
                _glob_in(path, rest, found, seen, out)
        elif os.path.lexists(path) and not os.path.isdir(path):
            found.append(path)
        return
    regex = _component_regex(head)
    for entry in _entries(here, out):
        if entry.name.startswith(".") and not head.startswith("."):
            continue
        if not regex.fullmatch(entry.name):
            continue
        path = os.path.join(base, entry.name) if base else entry.name
        if rest:
            if _is_dir(entry):
                _glob_in(path, rest, found, seen, out)
        elif not _is_dir(entry):
            found.append(path)


# ---------------------------------------------------------------- S3


def s3_filesystem(endpoint_url: str | None) -> Any:
    """An s3fs filesystem with the standard AWS credential chain (environment, shared
    config and credentials files, SSO, instance or container roles)."""
    try:
        import s3fs  # type: ignore[import-untyped]
    except ImportError:
        raise InputError(
            "s3:// inputs need s3fs: pip install 'imds-scan[s3]' (fsspec + s3fs)"
        ) from None
    options: dict[str, Any] = {}
    if endpoint_url:
        options["endpoint_url"] = endpoint_url
    return s3fs.S3FileSystem(**options)


def _expand_s3(fs: Any, arg: str) -> list[Source]:
    """The objects an ``s3://`` argument names: one object, every object under a prefix
    (recursively), or a glob's matches (fsspec's globbing; ``**`` recurses)."""
    path = arg[len(S3_PREFIX) :]
    try:
        if GLOB_CHARS & set(path):
            listed = fs.glob(path, detail=True)
            if not listed:  # reported like a missing object; the other inputs are scanned
                return [Source(arg, "s3", None, "no object matches this glob", fs=fs)]
        else:
            try:
                info = fs.info(path)
            except FileNotFoundError:
                return [Source(arg, "s3", None, "no such object or prefix", fs=fs)]
            if info.get("type") != "directory":
                return [Source(arg, "s3", info.get("size"), fs=fs)]
            listed = fs.find(path, detail=True)
    except Exception as exc:  # credentials, network, permissions: report, scan the rest
        return [Source(arg, "s3", None, f"cannot list: {type(exc).__name__}: {exc}", fs=fs)]
    return [
        Source(S3_PREFIX + name, "s3", info.get("size"), fs=fs)
        for name, info in sorted(listed.items())
        if info.get("type") != "directory"
    ]
