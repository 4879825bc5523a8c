"""The compiled-rule cache: what a rule file compiles to (or why it is refused), keyed by a hash
of the file's bytes and of imds-scan itself, so that loading a rule set again skips the TOML
parse and the EQL compilation.

It lives only under the user's cache directory, ``$XDG_CACHE_HOME/imds-scan/rules`` (a relative
XDG_CACHE_HOME is ignored, as the XDG rule says) or ``~/.cache/imds-scan/rules``: never beside
the rule files, which may sit in an evidence bundle. An entry is found by the hash of the file's
content (SHA-256), so it can only stand for that content; it holds a checksum of itself, and an
entry that is unreadable, corrupted or of another shape is ignored (the file is compiled again
and the entry rewritten). Writing is best effort: a cache that cannot be written is not an error.
Turned off by ``--no-rule-cache`` or the config key ``rule-cache = false``.
"""

from __future__ import annotations

import contextlib
import json
import os
import zlib
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from ..userdirs import user_cache_dir

# The modules whose code decides what a rule file compiles to: their text is part of every key,
# so a changed compiler never reads an older one's entries (the version alone does not change
# between commits).
_COMPILER_FILES = (
    "rules/__init__.py",
    "rules/cache.py",
    "eql.py",
    "kql.py",
    "rules/kuery.py",
    "fields.py",
    "data/ecs_types.json",  # the field types the compiler writes into the IR
    "mapping.py",  # what KQL rules compile against
    "data/mapping_profile.json",
    "ir_schema.py",
    "reference/ip.py",
    "reference/endpoint.py",
    "reference/lucene_regex.py",  # which regex literals compile
    "timestamp.py",  # which date literals compile
    "spec/endpoints.toml",  # the endpoint classes imdsEndpoint() accepts
)
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Entry layout version (bump when the payload changes shape).
_LAYOUT = b"imds-scan rule cache 1"


def cache_dir() -> str | None:
    """``$XDG_CACHE_HOME/imds-scan/rules``, else ``~/.cache/imds-scan/rules``; None when
    there is no home directory to put it in."""
    base = user_cache_dir()
    return None if base is None else os.path.join(base, "rules")


@cache
def _compiler() -> bytes:
    """imds-scan's version and the compiler's own code."""
    from .._engine import __version__

    parts = [_LAYOUT, __version__.encode()]
    for name in _COMPILER_FILES:
        try:
            with open(os.path.join(_PACKAGE, name), "rb") as f:
                parts.append(f.read())
        except OSError:
            parts.append(b"missing " + name.encode())
    return b"\0".join(parts)


@cache
def _compiler_stamp() -> bytes:
    """imds-scan's version and the size and modification time of each compiler file (what
    Python's own bytecode cache trusts): the bundled rule's key, so that a plain scan's
    start-up does not read the compiler's half a megabyte."""
    from .._engine import __version__

    parts = [_LAYOUT, b"stamp", __version__.encode()]
    for name in _COMPILER_FILES:
        try:
            info = os.stat(os.path.join(_PACKAGE, name))
            parts.append(f"{name} {info.st_size} {info.st_mtime_ns}".encode())
        except OSError:
            parts.append(b"missing " + name.encode())
    return b"\0".join(parts)


@cache
def _fingerprint() -> bytes:
    import hashlib

    return hashlib.sha256(_compiler()).digest()


def overrides_bytes(field_types: Mapping[str, str] | None) -> bytes:
    """The user's field type overrides as key material (empty when there are none, so the
    keys without overrides are those of before)."""
    if not field_types:
        return b""
    return b"\0field-types " + json.dumps(sorted(field_types.items())).encode()


def key(data: bytes, extra: bytes = b"") -> str:
    """The entry name of a rule file with these bytes (and ``extra``: the overrides): a SHA-256,
    as the file may be anyone's."""
    import hashlib  # here: loading OpenSSL costs a plain scan's start-up 3 ms

    # With overrides, another 32-byte prefix (a hash of the compiler and them), so no file's
    # bytes can stand for another file under other overrides.
    prefix = hashlib.sha256(_compiler() + extra).digest() if extra else _fingerprint()
    return hashlib.sha256(prefix + data).hexdigest()


def bundled_key(data: bytes, extra: bytes = b"") -> str:
    """The entry name of the bundled rule file (``data``, imds-scan's own): 64 bits of CRC-32
    and Adler-32 tell its versions apart without a cryptographic hash, and the name cannot be
    one that key() gives."""
    blob = _compiler_stamp() + extra + b"\0" + data
    return f"bundled-{zlib.crc32(blob):08x}{zlib.adler32(blob):08x}"


def needles_key(forms: Sequence[str]) -> str:
    """The entry name of the prefilter literals of these rules (their IR as JSON), for this
    build of the engine (its version, and its file's size and modification time: a rebuilt
    engine may find other literals)."""
    import hashlib
    import sys

    from .._engine import __version__

    engine = sys.modules[__name__.rsplit(".", 2)[0] + "._engine"]
    try:
        info = os.stat(engine.__file__ or "")
        build = f"{__version__} {info.st_size} {info.st_mtime_ns}"
    except (AttributeError, OSError):
        build = f"{__version__} unknown"
    digest = hashlib.sha256(_LAYOUT + b"\0needles\0" + build.encode())
    for form in forms:
        digest.update(b"\0" + form.encode())
    return "needles-" + digest.hexdigest()


def _checksum(payload: bytes) -> bytes:
    """What an entry's first line holds: CRC-32 (damage, not attack: the directory is the
    user's own) and the length of the rest."""
    return f"crc32 {zlib.crc32(payload):08x} {len(payload)}".encode()


class RuleCache:
    """Entries in one directory (``cache_dir()`` unless told)."""

    def __init__(self, directory: str | None = None) -> None:
        self.directory = directory if directory is not None else cache_dir()

    def _path(self, name: str) -> str | None:
        return None if self.directory is None else os.path.join(self.directory, name + ".json")

    def get(self, name: str) -> dict[str, Any] | None:
        """The payload stored under ``name``, or None (absent, unreadable or corrupted)."""
        path = self._path(name)
        if path is None:
            return None
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return None
        checksum, _, payload = data.partition(b"\n")
        if _checksum(payload) != checksum:
            return None
        try:
            loaded = json.loads(payload)
        except ValueError:
            return None
        if not isinstance(loaded, dict) or loaded.get("key") != name:
            return None
        return loaded

    def put(self, name: str, payload: dict[str, Any]) -> None:
        """Store ``payload`` under ``name`` (best effort: a failure leaves no entry)."""
        path = self._path(name)
        if path is None or self.directory is None:
            return
        try:
            text = json.dumps({**payload, "key": name}, ensure_ascii=False).encode("utf-8")
        except (TypeError, ValueError):
            return  # a value JSON cannot hold: not cached
        data = _checksum(text) + b"\n" + text
        # Here, not at the top: tempfile costs 3 ms of every start-up, and a warm cache
        # never writes.
        import tempfile

        tmp = None
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)  # readers see the old entry or the whole new one
            tmp = None
        except OSError:
            pass
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
