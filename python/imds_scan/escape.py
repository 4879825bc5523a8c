"""Log content made safe to show on a terminal (it is attacker-written)."""

from __future__ import annotations

# C0 and C1 controls, DEL, and Unicode bidi/format characters that can reorder or hide text;
# U+2028/U+2029 break lines for some readers (Python's splitlines too).
_UNSAFE = (
    *range(0x00, 0x20),
    *range(0x7F, 0xA0),
    0x061C,
    *range(0x200B, 0x2010),
    *range(0x2028, 0x202F),
    *range(0x2060, 0x2065),
    *range(0x2066, 0x206A),
    0xFEFF,
)
# A translation table, not a regular expression: compiling that character class cost every
# start-up several milliseconds.
_ESCAPES = {c: f"\\u{c:04x}" if c > 0xFF else f"\\x{c:02x}" for c in _UNSAFE}


def safe(text: str) -> str:
    """Escape control and text-direction characters so log content cannot drive a terminal."""
    return text.translate(_ESCAPES)
