"""The corpus's JSON text: the literal guard and the rewrites of a serialized line (Go's
escapes, hidden literals), plus small string helpers shared by the event builders."""

from __future__ import annotations

import json
import random
from typing import Any

from .seed_rule import engine_rule

# The needles of the seed rule's prefilter, ASCII lower case, from the engine (the IMDS
# addresses' spellings are among them). No benign line contains any of them, in any case:
# checked on every line, so the planted lines are exactly the hits.
GUARD_LITERALS = engine_rule().needles

_ASCII_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ASCII_LOWER_TABLE = str.maketrans(_ASCII_UPPER, _ASCII_UPPER.lower())

to_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode


def has_guard_literal(text: str) -> bool:
    low = text.lower()  # Unicode lower only ever adds false alarms here: safe side
    return any(lit in low for lit in GUARD_LITERALS)


def go_escape(raw: str) -> str:
    """Beats' Go encoder writes <, > and & as \\u003c, \\u003e and \\u0026."""
    if "<" in raw or ">" in raw or "&" in raw:
        raw = raw.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return raw


def _escaped_positions(raw: str) -> bytearray:
    """1 at every index of raw that belongs to a JSON escape sequence (\\x or \\uXXXX)."""
    mask = bytearray(len(raw))
    i = raw.find("\\")
    while i >= 0:
        n = 6 if raw[i + 1] == "u" else 2
        mask[i : i + n] = b"\x01" * n
        i = raw.find("\\", i + n)
    return mask


def _literal_overlapping(low: str, start: int, end: int) -> bool:
    for lit in GUARD_LITERALS:
        if low.find(lit, max(0, start - len(lit) + 1), end + len(lit) - 1) >= 0:
            return True
    return False


def hide_literals(raw: str, rng: random.Random) -> str:
    """Rewrite a JSON line so that no guard literal appears in its bytes, in any case,
    without changing what it decodes to: one plain character of each occurrence becomes a
    \\uXXXX escape (`\\u0069am/security-credentials`), chosen so that the escape's own hex
    digits do not form a new occurrence. Only used on planted lines, whose literals sit in
    string values."""
    while True:
        low = raw.translate(_ASCII_LOWER_TABLE)
        hit = -1
        size = 0
        for lit in GUARD_LITERALS:
            i = low.find(lit)
            if i >= 0 and (hit < 0 or i < hit):
                hit, size = i, len(lit)
        if hit < 0:
            return raw
        mask = _escaped_positions(raw)
        for j in range(hit, hit + size):
            ch = raw[j]
            if mask[j] or not ch.isalnum():
                continue
            esc = ("\\u%04x" if rng.random() < 0.5 else "\\u%04X") % ord(ch)
            cand = raw[:j] + esc + raw[j + 1 :]
            if _literal_overlapping(cand.translate(_ASCII_LOWER_TABLE), j, j + len(esc)):
                continue
            raw = cand
            break
        else:  # pragma: no cover - planted literals always contain a usable character
            raise AssertionError(f"cannot hide literal in {raw[hit : hit + size]!r}")


def random_case(rng: random.Random, s: str) -> str:
    style = rng.randrange(4)
    if style == 0:
        return s
    if style == 1:
        return s.upper()
    if style == 2:
        return s.lower()
    return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in s)


def win_split(cmd: str) -> list[str]:
    """Split a Windows command line roughly the way CommandLineToArgvW does."""
    args: list[str] = []
    cur: list[str] = []
    quoted = False
    started = False
    for ch in cmd:
        if ch == '"':
            quoted = not quoted
            started = True
        elif ch == " " and not quoted:
            if started:
                args.append("".join(cur))
                cur = []
                started = False
        else:
            cur.append(ch)
            started = True
    if started:
        args.append("".join(cur))
    return args


def flatten_into(out: dict[str, Any], prefix: str, obj: dict[str, Any]) -> None:
    for k, v in obj.items():
        if type(v) is dict and v:
            flatten_into(out, prefix + "." + k, v)
        else:
            out[prefix + "." + k] = v
