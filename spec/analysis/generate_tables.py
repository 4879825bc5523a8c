#!/usr/bin/env python3
"""Write the character tables of the text analysis (spec/kql.md, Analysis) for both engines:

- python/imds_scan/reference/_analysis_data.py: each code point's tokenizer class (a set of
  flags from Unicode 12.1, the version of Lucene's StandardTokenizer grammar) as a range
  table, and the simple lowercase mapping (Unicode 16.0, Java's Character.toLowerCase);
- crates/imds-core/src/analysis_tables.rs: the same tables, plus the tokenizer's grammar as a
  DFA over those classes, built from the reference engine's NFA (reference/analysis.py).

    python3 spec/analysis/generate_tables.py UCD_DIR

UCD_DIR holds the Unicode data files named in spec/analysis/README.md (their checksums are
checked). Run at development time only; the engines read the generated files. When UCD_DIR
also holds WordBreakTest.txt (12.1.0) and emoji-test.txt (emoji 12.1), the generated
tokenizer is checked against them the way Lucene's own tests read them (check_lucene_tests).
"""

from __future__ import annotations

import hashlib
import importlib
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PY_OUT = ROOT / "python" / "imds_scan" / "reference" / "_analysis_data.py"
RS_OUT = ROOT / "crates" / "imds-core" / "src" / "analysis_tables.rs"

# file name in UCD_DIR -> sha256 (spec/analysis/README.md says where each comes from)
SOURCES = {
    "WordBreakProperty.txt": "f221f89fe3bb3becc00de726d5694c4b7f464c316baff6d339b2ff3900bcb96c",
    "Scripts.txt": "e6313a8edfd24f36c7a006fbcf1d1b7245b5dd009c6dde80441f0da08b822c43",
    "LineBreak.txt": "961f842fc70b5afd1d82c6645e68c10d1f701382aed38ae38cb2ff27f671903c",
    "emoji-data.txt": "fbdd941538ba21d9b1aa9e6d37efd77296a825422e520174a9694dd3023c4e0f",
    "UnicodeData-16.0.0.txt": "ff58e5823bd095166564a006e47d111130813dcf8bf234ef79fa51a870edb48f",
    # optional, for check_lucene_tests only
    "WordBreakTest.txt": "",
    "emoji-test.txt": "",
}

# Flag names, in bit order; reference/analysis.py and analysis.rs read them by these names.
FLAGS = (
    "AHLETTER",  # WB ALetter or Hebrew_Letter
    "HEBREW",  # WB Hebrew_Letter
    "HANGUL",  # AHLETTER of script Hangul
    "NUMERIC",  # WB Numeric
    "KATAKANA",  # WB Katakana
    "EXTENDNUMLET",  # WB ExtendNumLet
    "MIDLETTER",  # WB MidLetter, MidNumLet or Single_Quote
    "MIDNUM",  # WB MidNum, MidNumLet or Single_Quote
    "SINGLE_QUOTE",  # WB Single_Quote
    "DOUBLE_QUOTE",  # WB Double_Quote
    "RI",  # WB Regional_Indicator
    "EXTEND",  # WB Extend, Format or ZWJ (absorbed by the character before: WB4)
    "ZWJ",  # WB ZWJ
    "HAN",  # script Han
    "HIRAGANA",  # script Hiragana
    "SEA",  # Line_Break Complex_Context
    # Extended_Pictographic, or Emoji but not RI, [0-9#*], (c) (r) tm U+3030 U+303D, modifiers
    "EMOJI_CHAR",
    "EMOJI_MODIFIER_BASE",
    "EMOJI_MODIFIER",
    "KEYCAP_BASE",  # [0-9#*]
    "KEYCAP",  # U+20E3
    "VS15",  # U+FE0E
    "VS16",  # U+FE0F
    "TAG_SPEC",  # U+E0020..U+E007E
    "TAG_TERM",  # U+E007F
)
BIT = {name: 1 << i for i, name in enumerate(FLAGS)}
MAX = 0x110000


def read(ucd: Path, name: str) -> str:
    data = (ucd / name).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if SOURCES[name] and digest != SOURCES[name]:
        sys.exit(f"{ucd / name}: sha256 {digest}, expected {SOURCES[name]}")
    return data.decode("utf-8")


def ranges(text: str) -> list[tuple[int, int, str]]:
    """`XXXX..YYYY ; Value # comment` lines as (first, last, value)."""
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        cps, value = (part.strip() for part in line.split(";")[:2])
        first, _, last = cps.partition("..")
        out.append((int(first, 16), int(last or first, 16), value))
    return out


def property_sets(text: str) -> dict[str, set[int]]:
    sets: dict[str, set[int]] = {}
    for first, last, value in ranges(text):
        sets.setdefault(value, set()).update(range(first, last + 1))
    return sets


def classes(ucd: Path) -> list[int]:
    wb = property_sets(read(ucd, "WordBreakProperty.txt"))
    sc = property_sets(read(ucd, "Scripts.txt"))
    lb = property_sets(read(ucd, "LineBreak.txt"))
    em = property_sets(read(ucd, "emoji-data.txt"))
    flags = [0] * MAX

    def mark(cps: set[int] | range, flag: str) -> None:
        for cp in cps:
            flags[cp] |= BIT[flag]

    ahletter = wb["ALetter"] | wb["Hebrew_Letter"]
    mark(ahletter, "AHLETTER")
    mark(wb["Hebrew_Letter"], "HEBREW")
    mark(ahletter & sc["Hangul"], "HANGUL")
    mark(wb["Numeric"], "NUMERIC")
    mark(wb["Katakana"], "KATAKANA")
    mark(wb["ExtendNumLet"], "EXTENDNUMLET")
    mark(wb["MidLetter"] | wb["MidNumLet"] | wb["Single_Quote"], "MIDLETTER")
    mark(wb["MidNum"] | wb["MidNumLet"] | wb["Single_Quote"], "MIDNUM")
    mark(wb["Single_Quote"], "SINGLE_QUOTE")
    mark(wb["Double_Quote"], "DOUBLE_QUOTE")
    mark(wb["Regional_Indicator"], "RI")
    mark(wb["Extend"] | wb["Format"] | wb["ZWJ"], "EXTEND")
    mark(wb["ZWJ"], "ZWJ")
    mark(sc["Han"], "HAN")
    mark(sc["Hiragana"], "HIRAGANA")
    mark(lb["SA"], "SEA")
    keycap_base = {ord(c) for c in "0123456789#*"}
    accidental = {0xA9, 0xAE, 0x2122, 0x3030, 0x303D}
    rkam = wb["Regional_Indicator"] | keycap_base | accidental | em["Emoji_Modifier"]
    mark(em["Extended_Pictographic"] | (em["Emoji"] - rkam), "EMOJI_CHAR")
    mark(em["Emoji_Modifier_Base"], "EMOJI_MODIFIER_BASE")
    mark(em["Emoji_Modifier"], "EMOJI_MODIFIER")
    mark(keycap_base, "KEYCAP_BASE")
    mark({0x20E3}, "KEYCAP")
    mark({0xFE0E}, "VS15")
    mark({0xFE0F}, "VS16")
    mark(range(0xE0020, 0xE007F), "TAG_SPEC")
    mark({0xE007F}, "TAG_TERM")
    return flags


def lowercase_runs(ucd: Path) -> list[tuple[int, int, int, int]]:
    """Simple lowercase mappings as runs (first, count, stride, delta): code points first,
    first+stride, … (count of them) map to themselves plus delta."""
    pairs = []
    for line in read(ucd, "UnicodeData-16.0.0.txt").splitlines():
        fields = line.split(";")
        if fields[13]:
            pairs.append((int(fields[0], 16), int(fields[13], 16) - int(fields[0], 16)))
    runs: list[list[int]] = []
    for cp, delta in pairs:
        if runs:
            first, count, stride, d = runs[-1]
            last = first + (count - 1) * stride
            if d == delta and count == 1 and cp - first in (1, 2):
                runs[-1] = [first, 2, cp - first, d]
                continue
            if d == delta and count > 1 and cp - last == stride:
                runs[-1][1] += 1
                continue
        runs.append([cp, 1, 1, delta])
    return [(a, b, c, d) for a, b, c, d in runs]


def check_lucene_tests(ucd: Path, standard_tokens: Any) -> None:
    """Lucene's tests derive their expected tokens from WordBreakTest.txt (the word-break
    segments holding a Han, Hiragana, Complex_Context, ALetter, Hebrew_Letter, Katakana,
    Numeric or Extended_Pictographic character, or two regional indicators; two sequences
    skipped for TR #51) and expect every emoji-test.txt sequence to be one token."""
    wanted: set[int] = set()
    for name, values in (
        ("LineBreak.txt", {"SA"}),
        ("Scripts.txt", {"Han", "Hiragana"}),
        ("WordBreakProperty.txt", {"ALetter", "Hebrew_Letter", "Katakana", "Numeric"}),
        ("emoji-data.txt", {"Extended_Pictographic"}),
    ):
        sets = property_sets(read(ucd, name))
        for value in values:
            wanted |= sets[value]
    ri = property_sets(read(ucd, "WordBreakProperty.txt"))["Regional_Indicator"]
    brk, nobrk = "\u00f7", "\u00d7"
    skipped = {f"0061 {nobrk} 200D {nobrk} 1F6D1", f"0061 {nobrk} 200D {nobrk} 2701"}
    failed = cases = 0
    for line in read(ucd, "WordBreakTest.txt").splitlines():
        sequence = line.split("#", 1)[0].strip().strip(brk).strip()
        if not sequence or sequence in skipped:
            continue
        expected = []
        for segment in sequence.split(brk):
            cps = [int(h, 16) for h in segment.replace(nobrk, " ").split()]
            if any(cp in wanted for cp in cps) or sum(cp in ri for cp in cps) >= 2:
                expected.append("".join(map(chr, cps)))
        words = sequence.replace(brk, " ").replace(nobrk, " ").split()
        text = "".join(chr(int(h, 16)) for h in words)
        cases += 1
        if standard_tokens(text) != expected:
            failed += 1
            print(f"WordBreakTest: {sequence}: {standard_tokens(text)!r} != {expected!r}")
    for line in read(ucd, "emoji-test.txt").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        text = "".join(chr(int(h, 16)) for h in line.split(";")[0].split())
        cases += 1
        if standard_tokens(text) != [text]:
            failed += 1
            print(f"emoji-test: {line}: {standard_tokens(text)!r}")
    print(f"Lucene's test sequences: {cases} checked, {failed} differ")
    if failed:
        sys.exit(1)


def wrap(items: list[str], indent: str, width: int = 96) -> str:
    lines, line = [], indent
    for item in items:
        if len(line) + len(item) + 1 > width and line.strip():
            lines.append(line.rstrip())
            line = indent
        line += item + " "
    if line.strip():
        lines.append(line.rstrip())
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    ucd = Path(sys.argv[1])
    flags = classes(ucd)
    class_flags: list[int] = []
    class_of: dict[int, int] = {}
    for f in [0, *flags]:  # class 0: no flag (most code points)
        if f not in class_of:
            class_of[f] = len(class_flags)
            class_flags.append(f)
    starts, ids = [], []
    for cp, f in enumerate(flags):
        cls = class_of[f]
        if not ids or ids[-1] != cls:
            starts.append(cp)
            ids.append(cls)
    lower = lowercase_runs(ucd)
    header = (
        "generated by spec/analysis/generate_tables.py\n"
        "from Unicode 12.1.0 (classes) and 16.0.0 (lowercase); do not edit"
    )

    def numbers(values: list[int], fmt: str = "x") -> str:
        # one string of space-separated numbers (hex or decimal), cut into lines
        text = " ".join(format(v, fmt) for v in values)
        lines, line = [], ""
        for word in text.split(" "):
            if line and len(line) + len(word) > 86:
                lines.append(line)
                line = ""
            line += word + " "
        lines.append(line.rstrip())
        return "\n".join(f'    "{line}"' for line in lines)

    lower_flat = [v for run in lower for v in run]
    PY_OUT.write_text(
        f'"""Character tables of the text analysis ({header}).\n\n'
        "Numbers are space-separated, hexadecimal unless said otherwise; analysis.py reads them.\n"
        '"""\n\n'
        'UNICODE_VERSION = "12.1.0"\nLOWERCASE_UNICODE_VERSION = "16.0.0"\n\n'
        "FLAGS = (\n" + "".join(f'    "{n}",\n' for n in FLAGS) + ")\n"
        "# the flags of each class (bit i: FLAGS[i])\n"
        f"CLASS_FLAGS = (\n{numbers(class_flags)}\n)\n"
        "# code points RANGE_STARTS[i] up to RANGE_STARTS[i + 1] are of class\n"
        "# RANGE_CLASSES[i] (decimal)\n"
        f"RANGE_STARTS = (\n{numbers(starts)}\n)\n"
        f"RANGE_CLASSES = (\n{numbers(ids, 'd')}\n)\n"
        "# runs of (first, count, stride, delta), decimal: first + k * stride (k < count)\n"
        "# lowercases to itself + delta\n"
        f"LOWER_RUNS = (\n{numbers(lower_flat, 'd')}\n)\n",
        "utf-8",
    )
    sys.path.insert(0, str(ROOT / "python"))
    analysis = importlib.import_module("imds_scan.reference.analysis")
    dfa = analysis.build_dfa(len(class_flags))
    n_states = len(dfa.accepting)
    rows = [f"{s}," for row in dfa.next for s in row]
    RS_OUT.write_text(
        "// Character tables and the tokenizer DFA of the text analysis\n// ("
        + header.replace("\n", "\n// ")
        + ").\n\n"
        "/// Unicode version of the tokenizer's character classes (Lucene's grammar).\n"
        'pub const UNICODE_VERSION: &str = "12.1.0";\n'
        "/// Unicode version of the lowercase mapping.\n"
        'pub const LOWERCASE_UNICODE_VERSION: &str = "16.0.0";\n\n'
        "/// `RANGE_STARTS[i]..RANGE_STARTS[i + 1]` are of class `RANGE_CLASSES[i]`.\n"
        f"pub const RANGE_STARTS: [u32; {len(starts)}] = [\n"
        f"{wrap([f'{s:#x},' for s in starts], '    ')}\n];\n"
        f"pub const RANGE_CLASSES: [u8; {len(ids)}] = [\n"
        f"{wrap([f'{c},' for c in ids], '    ')}\n];\n"
        "/// (first, count, stride, delta): `first + k * stride` (k < count) lowercases to\n"
        "/// itself + delta.\n"
        f"pub const LOWER_RUNS: [(u32, u32, u32, i32); {len(lower)}] = [\n"
        f"{wrap([f'({a:#x}, {b}, {c}, {d}),' for a, b, c, d in lower], '    ')}\n];\n\n"
        f"/// Number of character classes.\npub const CLASSES: usize = {len(class_flags)};\n"
        "/// The DFA's start state; state 0 is dead (no token can continue).\n"
        "pub const START: u16 = 1;\n"
        "/// `NEXT[state * CLASSES + class]`: the state after a character of that class.\n"
        f"pub const NEXT: [u16; {len(rows)}] = [\n{wrap(rows, '    ')}\n];\n"
        "/// Whether the text read so far is a whole token.\n"
        f"pub const ACCEPTING: [bool; {n_states}] = [\n"
        f"{wrap([('true,' if a else 'false,') for a in dfa.accepting], '    ')}\n];\n",
        "utf-8",
    )
    subprocess.run(["rustfmt", "--edition", "2021", str(RS_OUT)], check=True)
    if (ucd / "WordBreakTest.txt").exists() and (ucd / "emoji-test.txt").exists():
        check_lucene_tests(ucd, analysis.standard_tokens)
    print(
        f"{len(class_flags)} classes, {len(starts)} ranges, {len(lower)} lowercase runs, "
        f"{n_states} DFA states"
    )


if __name__ == "__main__":
    main()
