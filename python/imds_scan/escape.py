"""Log content made safe to show on a terminal (it is attacker-written)."""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, and Unicode bidi/format characters that can reorder or hide text;
# U+2028/U+2029 break lines for some readers (Python's splitlines too).
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)


def safe(text: str) -> str:
    """Escape control and text-direction characters so log content cannot drive a terminal."""
    return _UNSAFE.sub(
        lambda m: (
            f"\\u{ord(m.group()):04x}" if ord(m.group()) > 0xFF else f"\\x{ord(m.group()):02x}"
        ),
        text,
    )
