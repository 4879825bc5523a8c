"""Telling the user when a rule cannot use the Rust engine's prefilter (it would parse every
line, or nearly), instead of being silently slow.

What a rule costs is the share of lines the engine evaluates it on: those holding one of its
literals, or, beside other rules, those the rule gate opens it on (a literal of each clause
of one of its branches; the scan's Scanner counts them). It is measured on a sample: the
first 256 KiB of the local input files, decompressed (gzip, and zstd when the ``zstandard``
module is there). Without a sample (stdin, S3), a table of how often common words occur in
ECS logs (measured on the benchmark corpus) stands in.
"""

from __future__ import annotations

import bisect
import functools
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, BinaryIO

from . import Rule

# Needles found in nearly every ECS line: field names and event.category / event.type values.
_WORDS = """
    authentication configuration database driver email file host iam intrusion_detection
    malware network package process registry session threat vulnerability web access admin
    allowed change connection creation deletion denied end error group info installation
    indicator protocol start user event category type action outcome kind dataset module agent
    source destination message labels tags observer related name args command_line executable
    parent pid path domain address port url http true false null
"""
COMMON_WORDS = frozenset(_WORDS.split())
# A needle shorter than this occurs in most lines of a large log.
SHORT = 4
# Share of lines holding the word (ASCII case-insensitive), on the first 32 MiB of the
# benchmark corpus (bench/gen_corpus.py --size 1G --seed 7): the fallback without a sample.
TYPICAL_SHARE = {
    "event": 1.0, "host": 1.0, "category": 1.0, "type": 1.0, "kind": 1.0, "module": 1.0,
    "agent": 1.0, "name": 1.0, "dataset": 0.95, "user": 0.84, "action": 0.84, "pid": 0.77,
    "process": 0.77, "executable": 0.71, "start": 0.57, "file": 0.56, "message": 0.53,
    "args": 0.5, "end": 0.47, "source": 0.45, "port": 0.41, "parent": 0.4, "group": 0.39,
    "address": 0.38, "path": 0.35, "network": 0.35, "domain": 0.33, "connection": 0.32,
    "destination": 0.32, "command_line": 0.28, "related": 0.21, "true": 0.21, "outcome": 0.18,
    "session": 0.18, "info": 0.18, "protocol": 0.14, "web": 0.13, "false": 0.11,
}  # fmt: skip
# A rule whose literals are in at least this share of the sampled lines is worth a warning.
WARN_SHARE = 0.10
# Fewer sampled lines than this say little (a test file of three hits): the table decides.
MIN_SAMPLE_LINES = 20
SAMPLE_BYTES = 256 << 10
_SCREEN_BYTES = 64 << 10
_SAMPLE_FILES = 8
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def weak_needles(needles: Sequence[str]) -> list[str]:
    """The needles that select too little to keep the scan fast (the guess without a sample)."""
    return [n for n in needles if len(n) < SHORT or n.lower() in COMMON_WORDS]


class Sample:
    """The first lines of the input, ASCII lower case (the prefilter folds ASCII only)."""

    def __init__(self, data: bytes, where: str) -> None:
        self.raw = data
        data = data.lower()
        self.data = data
        self.where = where
        self.starts = [0]  # where each line starts
        i = data.find(b"\n")
        while i >= 0:
            self.starts.append(i + 1)
            i = data.find(b"\n", i + 1)
        if self.starts[-1] == len(data):
            self.starts.pop()
        self.lines = len(self.starts)
        # Thousands of rules bring thousands of literals: one absent from the first lines is
        # taken as rare (at a 10% share, 50 lines all miss it 0.5% of the time).
        self._head = data[:_SCREEN_BYTES]
        self._cache: dict[str, frozenset[int]] = {}

    def lines_with(self, needle: str) -> frozenset[int]:
        """Indices of the lines that hold the needle (none when the first lines do not)."""
        found = self._cache.get(needle)
        if found is None:
            pat = needle.lower().encode()
            hits = set()
            if pat in self._head:
                i = self.data.find(pat)
                while i >= 0:
                    line = bisect.bisect_right(self.starts, i) - 1
                    hits.add(line)
                    # On to the next line: a line counts once.
                    nxt = self.starts[line + 1] if line + 1 < self.lines else len(self.data)
                    i = self.data.find(pat, max(nxt, i + 1))
            found = self._cache[needle] = frozenset(hits)
        return found


def _open_decompressed(path: str) -> BinaryIO | None:
    f: BinaryIO = open(path, "rb")  # noqa: SIM115 (returned open)
    magic = f.read(4)
    f.seek(0)
    if magic.startswith(_GZIP_MAGIC):
        import gzip

        return gzip.GzipFile(fileobj=f)  # type: ignore[return-value]
    if magic == _ZSTD_MAGIC:
        try:
            import zstandard
        except ImportError:
            f.close()
            return None
        return zstandard.ZstdDecompressor().stream_reader(f, closefd=True)
    return f


def _local_files(paths: Sequence[str]) -> list[str]:
    """The first few regular files the arguments name (a directory: its first files)."""
    out: list[str] = []
    for arg in paths:
        if arg == "-":  # stdin, even beside a file of that name: not ours to read
            continue
        if os.path.isfile(arg):
            out.append(arg)
        elif os.path.isdir(arg):
            for root, dirs, files in os.walk(arg):
                dirs.sort()
                out.extend(os.path.join(root, f) for f in sorted(files))
                if len(out) >= _SAMPLE_FILES:
                    break
        if len(out) >= _SAMPLE_FILES:
            break
    return [p for p in out[:_SAMPLE_FILES] if os.path.isfile(p)]


def read_sample(paths: Sequence[str], limit: int = SAMPLE_BYTES) -> Sample | None:
    """Whole lines from the start of the local input files, up to ``limit`` bytes."""
    chunks: list[bytes] = []
    used: list[str] = []
    total = 0
    for path in _local_files(paths):
        try:
            f = _open_decompressed(path)
            if f is None:
                continue
            with f:
                data = f.read(limit - total)
                if len(data) == limit - total and f.read(1):
                    data = data[: data.rfind(b"\n") + 1]  # no partial last line
        except Exception:  # unreadable or corrupt: the scan itself reports it
            continue
        if data and not data.endswith(b"\n"):
            data += b"\n"
        if data:
            chunks.append(data)
            used.append(os.path.basename(path))
            total += len(data)
        if total >= limit:
            break
    if not chunks:
        return None
    size = f"{total / (1 << 20):.1f} MiB" if total >= 1 << 19 else f"{total // 1024 + 1} KiB"
    where = f"the first {size} of {used[0]}" + (
        f" and {len(used) - 1} more file(s)" if len(used) > 1 else ""
    )
    sample = Sample(b"".join(chunks), where)
    return sample if sample.lines >= MIN_SAMPLE_LINES else None


def _pct(share: float) -> str:
    return f"{share:.0%}" if share >= 0.01 else f"{share:.1%}"


def _parsed_lines(needles: Sequence[str], sample: Sample) -> set[int]:
    parsed: set[int] = set()
    for n in needles:
        parsed |= sample.lines_with(n)
    return parsed


def event_form(ir: dict[str, Any]) -> dict[str, Any]:
    """A single-event IR that reads the lines a rule reads: the rule itself, or a sequence's or
    sample's stages and ``until`` as branches (its needles are theirs: the lines the scan
    parses for it)."""
    from ..ir_schema import conditions, rule_kind

    if rule_kind(ir) == "event":
        return ir
    head: dict[str, Any] = {k: ir[k] for k in ("ir_version", "id", "name", "severity") if k in ir}
    return {**head, "branches": [{"name": n, "expr": e} for n, e in conditions(ir)]}


def _hit_lines(
    rules: Sequence[Rule], sample: Sample, scanner: Callable[[], Any] | None = None
) -> list[int]:
    """Per rule, the sampled lines it matches (one scan of the sample with all of them).
    ``scanner()``: a Scanner of these rules made already (a rule's hits do not depend on the
    other rules beside it)."""
    import io

    from .._engine import Scanner

    try:
        made = scanner() if scanner is not None else None
        if made is None:
            made = Scanner([json.dumps(event_form(r.ir)) for r in rules])
        hits, _stats, _cancelled = made.scan([io.BytesIO(sample.raw)], threads=1)
    except Exception:  # a warning is never worth failing the scan: count no hits
        return [0] * len(rules)
    lines: list[set[int]] = [set() for _ in rules]
    for hit in hits:  # (input, line, rule, branch, witness, text)
        lines[hit[2]].add(hit[1])
    return [len(x) for x in lines]


def _open_lines(
    rules: Sequence[Rule],
    flagged: Sequence[int],
    sample: Sample,
    scanner: Callable[[], Any] | None,
) -> list[int] | None:
    """Of the rules ``flagged`` (indices), the sampled lines the engine evaluates each on: a
    rule alone, the lines its literals find where its clauses (a literal of each clause of
    one of its branches) hold; beside other rules, those the rule gate opens it on. Either is
    often far fewer lines than hold one of its literals. Whether the gate opens a rule
    depends on that rule alone: without the scan's Scanner, one of the flagged rules (twice
    if alone: the gate needs two) counts the same. None: no count."""
    from .._engine import Scanner

    try:
        if scanner is not None:
            counts = scanner().open_lines(sample.raw)
            return [int(counts[i]) for i in flagged] if len(counts) == len(rules) else None
        forms = [json.dumps(event_form(rules[i].ir)) for i in flagged]
        several = len(rules) > 1 and len(forms) == 1
        counts = Scanner(forms * 2 if several else forms).open_lines(sample.raw)
        return [int(c) for c in counts[: len(flagged)]]
    except Exception:  # a warning is never worth failing the scan: the literals' lines
        return None


def _measured(
    label: str, needles: Sequence[str], parsed: int, sample: Sample, gated: bool = False
) -> str:
    worst = max(needles, key=lambda n: (len(sample.lines_with(n)), n))
    # Beside other rules a line is parsed once for all of them: what this rule adds is the
    # lines it is evaluated on (where the rule gate opens it).
    cost = "evaluates this rule on" if gated else "parses"
    tail = "" if gated else " for this rule"
    return (
        f"{label}: its literal {json.dumps(worst)} is in "
        f"{_pct(len(sample.lines_with(worst)) / sample.lines)} of the lines sampled "
        f"({sample.where}): the scan {cost} about {_pct(parsed / sample.lines)} of the lines"
        f"{tail} (slow)"
    )


def _guessed(label: str, needles: Sequence[str]) -> str | None:
    """The warning without a sample: from the table of common words, else the heuristics."""
    weak = weak_needles(needles)
    if not weak:
        return None
    worst = max(weak, key=lambda n: (TYPICAL_SHARE.get(n.lower(), 0.0), -len(n), n))
    typical = TYPICAL_SHARE.get(worst.lower())
    if typical is not None:
        cost = (
            f"is in about {_pct(typical)} of the lines of typical ECS logs: the scan will "
            "parse at least that share of the lines for this rule (slow)"
        )
    else:
        cost = "is so short or common that most lines hold it: the scan will parse most lines "
        cost += "for this rule (slow)"
    return f"{label}: its literal {json.dumps(worst)} {cost}"


# From this many rules on, their literals are kept in the user's rule cache: each rule is
# compiled alone to find them (Elastic's 1,011 rules: a few tenths of a second).
CACHE_NEEDLES_FROM = 32


def _forms(rules: Sequence[Rule], known: Sequence[str] | None) -> list[str]:
    """The rules' event forms as JSON; ``known``: the rules' IR as JSON (the engine's), which
    is the event form of a single-event rule."""
    from ..ir_schema import rule_kind

    if known is None:
        return [json.dumps(event_form(rule.ir)) for rule in rules]
    return [
        text if rule_kind(rule.ir) == "event" else json.dumps(event_form(rule.ir))
        for rule, text in zip(rules, known, strict=True)
    ]


def rule_needles(
    rules: Sequence[Rule],
    cache: bool = True,
    ir_json: Sequence[str] | None = None,
    threads: int = 0,
) -> list[list[str] | None]:
    """Each rule's prefilter literals as the engine finds them (None: it has none).
    ``ir_json``: the rules' IR as ``json.dumps`` writes it, when the caller has it;
    ``threads``: at most so many threads work them out (0: one per core)."""
    from .._engine import Scanner

    forms = _forms(rules, ir_json)
    store = None
    if cache and len(forms) >= CACHE_NEEDLES_FROM:
        from .cache import RuleCache, needles_key

        store, name = RuleCache(), needles_key(forms)
        entry = store.get(name)
        found = None if entry is None else entry.get("needles")
        if (
            isinstance(found, list)
            and len(found) == len(forms)
            and all(
                n is None or (isinstance(n, list) and all(isinstance(x, str) for x in n))
                for n in found
            )
        ):
            return found
    needles = Scanner.needles_each(forms, threads)
    if store is not None:
        store.put(name, {"needles": needles})
    return needles


def prefilter_warnings(
    rules: Sequence[Rule],
    paths: Sequence[str] = (),
    *,
    cache: bool = True,
    ir_json: Sequence[str] | None = None,
    scanner: Callable[[], Any] | None = None,
    owners: Sequence[Rule] | None = None,
    threads: int = 0,
) -> list[str]:
    """One message per rule whose prefilter literals are missing or unselective, naming the
    literal and the share of lines it makes the scan parse (on a sample of ``paths``).
    ``cache``: the literals of many rules may come from the user's rule cache. The scan's own
    set-up, when the caller has it: ``ir_json``, the rules' IR as JSON; ``scanner()``, the
    engine's Scanner of the rules (it then scans the sample). ``owners[i]``: the rule that
    ``rules[i]`` is a stage of (a sequence's stages are rules of the engine), itself for a
    single-event rule: a rule is named once, with its costliest stage. ``threads``: the
    scan's thread count (0: one per core), which the set-up keeps to."""
    sample: Sample | None = None
    sampled = False
    warnings: dict[int, str] = {}
    # (index, rule, needles, lines parsed) of the rules whose sampled share is high.
    flagged: list[tuple[int, Rule, list[str], int]] = []
    shares: dict[int, int] = {}  # sampled lines evaluated, of the rules named after sampling
    gated = False  # beside other rules, by the rule gate's count
    found = rule_needles(rules, cache, ir_json, threads)
    for i, (rule, needles) in enumerate(zip(rules, found, strict=True)):
        label = f"rule {rule.name!r} ({rule.id})"
        if needles is None:
            warnings[i] = (
                f"{label} has no literal that every match contains: the scan will parse every "
                "line (slow). A condition with a selective string in every branch (for "
                'example process.name in~ ("curl")) lets it skip lines.'
            )
            shares[i] = sys.maxsize  # the costliest there is
            continue
        if not sampled:  # read once, and only when a rule has literals to measure
            sample, sampled = read_sample(paths), True
        if sample is None:
            message = _guessed(label, needles)
            if message is not None:
                warnings[i] = message
            continue
        parsed = len(_parsed_lines(needles, sample))
        if parsed >= WARN_SHARE * sample.lines:
            flagged.append((i, rule, needles, parsed))
    if sample is not None and flagged:
        if scanner is not None:  # asked for once
            scanner = functools.cache(scanner)
        # Beside other rules, the lines the rule gate opens a flagged rule on are its cost.
        opened = _open_lines(rules, [f[0] for f in flagged], sample, scanner)
        gated = opened is not None and len(rules) > 1
        if opened is not None:
            flagged = [
                (i, rule, needles, n)
                for (i, rule, needles, _), n in zip(flagged, opened, strict=True)
                if n >= WARN_SHARE * sample.lines
            ]
    if sample is not None and flagged:
        # Lines that are hits are not the literal's fault (a file of hits, already filtered):
        # a rule is named when the lines parsed in vain reach the share.
        if scanner is None or len(rules) == len(flagged):
            hit_counts = _hit_lines([f[1] for f in flagged], sample, scanner)
        else:  # the scan's Scanner finds every rule's hits: those of the flagged rules are kept
            every = _hit_lines(rules, sample, scanner)
            hit_counts = [every[f[0]] for f in flagged]
        for (i, rule, needles, parsed), hit in zip(flagged, hit_counts, strict=True):
            if parsed - hit >= WARN_SHARE * sample.lines:
                label = f"rule {rule.name!r} ({rule.id})"
                warnings[i] = _measured(label, needles, parsed, sample, gated)
                shares[i] = parsed
    if owners is None:
        return [warnings[i] for i in sorted(warnings)]
    return _per_owner(warnings, shares, rules, owners)


def _per_owner(
    warnings: dict[int, str], shares: dict[int, int], rules: Sequence[Rule], owners: Sequence[Rule]
) -> list[str]:
    """One warning per owning rule, in load order: a sequence's costliest stage (the most
    lines evaluated; the first of equals) stands for it, named as the rule's stage."""
    chosen: dict[int, int] = {}  # owner's first engine rule -> the stage rule warned about
    first: dict[int, int] = {}
    for i in sorted(warnings):
        key = first.setdefault(id(owners[i]), i)
        best = chosen.get(key)
        if best is None or shares.get(i, -1) > shares.get(best, -1):
            chosen[key] = i
    out = []
    for _key, i in sorted(chosen.items()):
        owner, rule = owners[i], rules[i]
        message = warnings[i]
        if owner is not rule:
            stage = rule.id.removeprefix(f"{owner.id}/")
            old = f"rule {rule.name!r} ({rule.id})"
            message = f"rule {owner.name!r} ({owner.id}), {stage}" + message.removeprefix(old)
            message = message.replace(" this rule", " this stage")
            others = sum(1 for j in warnings if owners[j] is owner) - 1
            if others:
                message += f"; {others} more of its stages likewise"
        out.append(message)
    return out
