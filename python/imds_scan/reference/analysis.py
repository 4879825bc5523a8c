"""Text analysis (spec/kql.md, Analysis), mirrored by crates/imds-core/src/analysis.rs.

STAND-IN (kqlops): the smallest analysis with the agreed signature, until kqlan's
implementation lands on main: tokens are the maximal runs of word characters (ASCII letters
and digits, every non-ASCII code point; ``powershell_script`` also ``_`` and ``-``),
lowercased as the ``lowercase`` normalizer does.
"""

from __future__ import annotations

import re

from .typed import java_lowercase

_WORDS = {
    "standard": re.compile(r"[0-9A-Za-z\u0080-\U0010ffff]+"),
    "powershell_script": re.compile(r"[0-9A-Za-z_\-\u0080-\U0010ffff]+"),
}


def analyze(analyzer: str, text: str) -> list[str]:
    """The tokens of ``text`` under ``analyzer``, in order."""
    return [java_lowercase(m) for m in _WORDS[analyzer].findall(text)]
