"""IP address parsing as spec/ir.md specifies, mirrored by crates/imds-core/src/ip.rs.

Written by hand rather than with :mod:`ipaddress` so both engines accept exactly the same
spellings (no leading-zero octets, ``%scope`` ignored, IPv4 stored IPv4-mapped).
"""

from __future__ import annotations

_HEX = frozenset("0123456789abcdefABCDEF")


def _parse_ipv4(text: str) -> bytes | None:
    parts = text.split(".")
    if len(parts) != 4:
        return None
    out = bytearray()
    for part in parts:
        if not 1 <= len(part) <= 3 or not part.isascii() or not part.isdigit():
            return None
        if len(part) > 1 and part[0] == "0":
            return None
        value = int(part)
        if value > 255:
            return None
        out.append(value)
    return bytes(out)


def _parse_groups(text: str) -> list[int] | None:
    """Colon-separated groups (possibly ending in a dotted IPv4); [] for the empty string."""
    if text == "":
        return []
    groups: list[int] = []
    parts = text.split(":")
    for i, part in enumerate(parts):
        if i == len(parts) - 1 and "." in part:
            v4 = _parse_ipv4(part)
            if v4 is None:
                return None
            groups.append(v4[0] << 8 | v4[1])
            groups.append(v4[2] << 8 | v4[3])
        elif 1 <= len(part) <= 4 and all(ch in _HEX for ch in part):
            groups.append(int(part, 16))
        else:
            return None
    return groups


def parse_ip(text: str) -> bytes | None:
    """16 bytes for a valid IPv4 or IPv6 address (IPv4 as ``::ffff:a.b.c.d``), else None."""
    v4 = _parse_ipv4(text)
    if v4 is not None:
        return b"\x00" * 10 + b"\xff\xff" + v4
    if ":" not in text:
        return None
    text = text.split("%", 1)[0]
    if text.count("::") > 1:
        return None
    if "::" in text:
        head_text, tail_text = text.split("::")
        head = _parse_groups(head_text)
        tail = _parse_groups(tail_text)
        if head is None or tail is None or "." in head_text:
            return None
        missing = 8 - len(head) - len(tail)
        if missing < 1:
            return None
        groups = head + [0] * missing + tail
    else:
        parsed = _parse_groups(text)
        if parsed is None or len(parsed) != 8:
            return None
        groups = parsed
    return b"".join(g.to_bytes(2, "big") for g in groups)


def parse_cidr(text: str) -> tuple[bytes, int] | None:
    """A CIDR block as spec/ir.md specifies: (network's 16 bytes with host bits cleared, prefix
    length over 128 bits; an IPv4 ``/n`` is ``96 + n``), or None if invalid.

    An address (IPv4, or IPv6 without a ``%scope``), optionally ``/`` and a prefix length of 1-3
    ASCII digits without a leading zero, at most 32 (IPv4) or 128 (IPv6); no length means the
    whole address.
    """
    addr_text, slash, len_text = text.partition("/")
    v4 = _parse_ipv4(addr_text)
    if v4 is not None:
        network, width = b"\x00" * 10 + b"\xff\xff" + v4, 32
    elif ":" in addr_text and "%" not in addr_text:
        parsed = parse_ip(addr_text)
        if parsed is None:
            return None
        network, width = parsed, 128
    else:
        return None
    if not slash:
        length = width
    else:
        if not 1 <= len(len_text) <= 3 or not len_text.isascii() or not len_text.isdigit():
            return None
        if len(len_text) > 1 and len_text[0] == "0":
            return None
        length = int(len_text)
        if length > width:
            return None
    length += 128 - width
    mask = ((1 << 128) - 1) ^ ((1 << (128 - length)) - 1)
    masked = int.from_bytes(network, "big") & mask
    return masked.to_bytes(16, "big"), length


def in_cidr(address: bytes, block: tuple[bytes, int]) -> bool:
    """Whether a 16-byte address is inside a block from :func:`parse_cidr`."""
    network, length = block
    shift = 128 - length
    return int.from_bytes(address, "big") >> shift == int.from_bytes(network, "big") >> shift
