"""The ``imds_endpoint`` decoder (spec/ir.md, "Metadata endpoints"), mirrored by
crates/imds-core/src/endpoint.rs: which metadata endpoints a string value names, in any
spelling a resolver or an HTTP client accepts, and the text that named each one.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from importlib import resources
from typing import Any

from .ip import parse_ip

# The endpoint table (spec/endpoints.toml, which the Rust engine reads at build time), shipped
# in the package as imds_scan/spec/endpoints.toml.
_TABLE: dict[str, Any] = tomllib.loads(
    resources.files("imds_scan").joinpath("spec", "endpoints.toml").read_text("utf-8")
)


def _pairs(key: str) -> tuple[tuple[str, str], ...]:
    return tuple((a, b) for a, b in _TABLE[key])


# Endpoint classes of addresses (IPv4 ones stored IPv4-mapped, as parse_ip gives them).
ADDRESSES = _pairs("addresses")
_ADDRESS_CLASS: dict[bytes, str] = {}
for _text, _cls in ADDRESSES:
    _address = parse_ip(_text)
    assert _address is not None
    _ADDRESS_CLASS[_address] = _cls

# Classes of an address with other uses, counted only on the ports the vendor documents for
# the endpoint (spec/ir.md, "Ports").
PORT_SCOPED: dict[str, tuple[int, ...]] = {c: tuple(p) for c, p in _TABLE["port_scoped"].items()}
_NO_PORT = 2**64 - 1  # a port of more than 10 digits: no port anyone lists


def port_number(digits: str) -> int | None:
    """A port written as ASCII digits (None otherwise)."""
    if not digits or not all(c in "0123456789" for c in digits):
        return None
    trimmed = digits.lstrip("0")
    return _NO_PORT if len(trimmed) > 10 else int(trimmed or "0")


def _digits_prefix(text: str) -> str:
    end = 0
    while end < len(text) and text[end] in "0123456789":
        end += 1
    return text[:end]


# Host names (ASCII-folded, a trailing dot dropped).
HOSTS = _pairs("hosts")
# The bare host `metadata` counts only when the value also holds this (ASCII-folded).
BARE_METADATA_HOST: str = _TABLE["bare_metadata_host"][0]
BARE_METADATA_CLASS: str = _TABLE["bare_metadata_host"][1]
GOOGLE_HEADER: str = _TABLE["bare_metadata_header"]
# Wildcard-DNS suffixes that resolve a name to the address spelled in it.
WILDCARD_DNS: tuple[str, ...] = tuple(_TABLE["wildcard_dns"])
WILDCARD_DNS_CLASS: str = _TABLE["wildcard_dns_class"]

# Substrings of the (decoded, ASCII-folded) value, in this order.
MARKERS = _pairs("markers")

CLASSES: frozenset[str] = frozenset(_TABLE["classes"])

_DOTS = {"\u3002": ".", "\uff61": ".", "\uff0e": "."}
_HEXDIGITS = "0123456789abcdefABCDEF"
_TOKEN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:[]")


def _normalise(value: str) -> tuple[str, list[int], list[int]]:
    """Percent-escapes of printable ASCII decoded once, fullwidth and ideographic dots made
    ``.``; with each output character's start and end in ``value``."""
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    i, n = 0, len(value)
    while i < n:
        ch = value[i]
        if ch == "%" and i + 2 < n and value[i + 1] in _HEXDIGITS and value[i + 2] in _HEXDIGITS:
            code = int(value[i + 1 : i + 3], 16)
            if 0x21 <= code <= 0x7E:
                out.append(chr(code))
                starts.append(i)
                ends.append(i + 3)
                i += 3
                continue
        out.append(_DOTS.get(ch, ch))
        starts.append(i)
        ends.append(i + 1)
        i += 1
    return "".join(out), starts, ends


def _number(part: str) -> int | None:
    """One inet_aton part: 0x hex, 0 octal, else decimal; None if not a number."""
    if part[:2] in ("0x", "0X"):
        digits, base = part[2:], 16
        ok = digits != "" and all(c in _HEXDIGITS for c in digits)
    elif part[:1] == "0":
        digits, base = part, 8
        ok = all(c in "01234567" for c in digits)
    else:
        digits, base = part, 10
        ok = digits != "" and all(c in "0123456789" for c in digits)
    if not ok:
        return None
    digits = digits.lstrip("0") or "0"
    if len(digits) > 12:  # far beyond 2**32 in every base
        return None
    return int(digits, base)


def inet_aton(text: str, parts_wanted: int = 0) -> bytes | None:
    """glibc inet_aton: 1-4 parts (the last one fills the remaining bytes), each decimal,
    octal (leading 0) or hex (0x); 16 bytes IPv4-mapped. ``parts_wanted``: exactly that many."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or (parts_wanted and len(parts) != parts_wanted):
        return None
    numbers = []
    for part in parts:
        number = _number(part)
        if number is None:
            return None
        numbers.append(number)
    *head, last = numbers
    if any(v > 255 for v in head) or last >= 1 << (8 * (4 - len(head))):
        return None
    value = last
    for i, v in enumerate(head):
        value |= v << (8 * (3 - i))
    return b"\x00" * 10 + b"\xff\xff" + value.to_bytes(4, "big")


def _host_class(host: str, folded_value: str) -> str | None:
    address = inet_aton(host)
    if address is not None:
        return _ADDRESS_CLASS.get(address)
    folded = host.lower() if host.isascii() else host
    for name, cls in HOSTS:
        if folded == name:
            return cls
    if folded == BARE_METADATA_HOST and GOOGLE_HEADER in folded_value:
        return BARE_METADATA_CLASS
    for suffix in WILDCARD_DNS:
        if folded.endswith(suffix):
            prefix = folded[: -len(suffix)]
            labels = prefix.split(".")
            candidates = []
            if len(labels) >= 4:
                candidates.append(".".join(labels[-4:]))
            dashed = labels[-1].split("-")
            if len(dashed) >= 4:
                candidates.append(".".join(dashed[-4:]))
            for candidate in candidates:
                address = inet_aton(candidate, 4)
                if address is not None and address in _ADDRESS_CLASS:
                    return WILDCARD_DNS_CLASS
            return None
    return None


def _token_findings(token: str, folded_value: str) -> list[tuple[int, int, str, int | None]]:
    """(start, end, class, port) inside the token; the port is the one written right after
    the address (``host:port``, ``[address]:port``, ``address:port``)."""
    if "[" in token:
        open_at = token.index("[")
        close_at = token.find("]", open_at)
        if close_at < 0:
            return []
        rest = token[close_at + 1 :]
        port = port_number(_digits_prefix(rest[1:])) if rest.startswith(":") else None
        address = parse_ip(token[open_at + 1 : close_at])
        if address is not None and address in _ADDRESS_CLASS:
            return [(open_at, close_at + 1, _ADDRESS_CLASS[address], port)]
        return []
    if token.count(":") >= 2:
        candidates: list[tuple[str, int | None]] = [(token, None)]
        head, _, digits = token.rpartition(":")
        if digits.isascii() and digits.isdigit():
            candidates.append((head, port_number(digits)))
        for candidate, port in candidates:
            address = parse_ip(candidate)
            if address is not None:
                cls = _ADDRESS_CLASS.get(address)
                return [] if cls is None else [(0, len(candidate), cls, port)]
        return []
    found = []
    start = 0
    parts = token.split(":")
    for k, part in enumerate(parts):
        host = part.rstrip(".")
        if host:
            cls = _host_class(host, folded_value)
            if cls is not None:
                port = port_number(parts[k + 1]) if k + 1 < len(parts) else None
                found.append((start, start + len(host), cls, port))
        start += len(part) + 1
    return found


def findings(value: str) -> list[tuple[str, str]]:
    """(class, the text of ``value`` that named it), in order of position."""
    return [(cls, text) for cls, text, _ in _findings(value)]


def _findings(value: str) -> list[tuple[str, str, int | None]]:
    """``findings`` with the port written after each address."""
    text, starts, ends = _normalise(value)
    folded = text.lower() if text.isascii() else _ascii_lower(text)
    found: list[tuple[int, int, str, int | None]] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] not in _TOKEN:
            i += 1
            continue
        j = i
        while j < n and text[j] in _TOKEN:
            j += 1
        for s, e, cls, port in _token_findings(text[i:j], folded):
            found.append((i + s, i + e, cls, port))
        i = j
    for marker, cls in MARKERS:
        at = folded.find(marker)
        if at >= 0:
            found.append((at, at + len(marker), cls, None))
    found.sort(key=lambda f: (f[0], f[1]))
    return [(cls, value[starts[s] : ends[e - 1]], port) for s, e, cls, port in found]


def _ascii_lower(text: str) -> str:
    return "".join(c.lower() if c.isascii() else c for c in text)


def first_match(
    value: str, classes: list[str], event_ports: Callable[[], list[int]] = list
) -> tuple[int, str] | None:
    """(index of the first of ``classes`` the value names, the text that named it first).
    ``event_ports()`` gives the event's ``destination.port`` numbers; it is asked only for a
    port-scoped class whose finding has no port of its own."""
    seen = _findings(value)
    ports: list[int] | None = None
    for index, cls in enumerate(classes):
        wanted = PORT_SCOPED.get(cls)
        for found_cls, token, port in seen:
            if found_cls != cls:
                continue
            if wanted is not None:
                if port is None:  # no port in the value: the event's, if it has any
                    if ports is None:
                        ports = event_ports()
                    if ports and not any(p in wanted for p in ports):
                        continue
                elif port not in wanted:
                    continue
            return index, token
    return None
