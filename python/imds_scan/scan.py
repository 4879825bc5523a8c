"""One scan, either engine: inputs → hits + statistics (shared by the CLI and the Python API)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from .rules import Rule
from .sources import InputError as InputError  # re-exported: the CLI and API raise it
from .sources import Source, as_source, expand
from .stats import FileStats

# The default longest line evaluated: 64 MiB (both engines).
MAX_LINE_BYTES = 64 << 20

if TYPE_CHECKING:
    import polars as pl

    from .shape import NotEcs

Engine = Literal["rust", "python"]
# progress(bytes read from the sources so far, total bytes or None when unknown)
Progress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class Hit:
    source: str
    line: int
    rule: Rule
    branch: str
    matched: dict[str, str] | None
    event_text: str

    @property
    def event(self) -> dict[str, Any]:
        from .reference import load_event

        doc: dict[str, Any] = load_event(self.event_text, numbers_as_text=False)
        return doc

    def to_json(self) -> str:
        """One NDJSON record; the event is embedded as the original JSON text."""
        head = json.dumps(
            {
                "source": self.source,
                "line": self.line,
                "rule": self.rule.name,
                "rule_id": self.rule.id,
                "severity": self.rule.severity,
                "branch": self.branch,
                "matched": self.matched,
            },
            ensure_ascii=False,
        )
        return f'{head[:-1]}, "event": {self.event_text.strip()}}}'


@dataclass
class FileResult(FileStats):
    """One input's statistics, under the name it was given."""

    path: str


@dataclass(frozen=True)
class AllowlistDrops:
    """What one rule's allowlist dropped: (entry label, events) for every entry, in the
    attribution order, and the hits the rule still made (before --since/--until)."""

    rule_id: str
    entries: list[tuple[str, int]]
    hits: int

    @property
    def dropped(self) -> int:
        return sum(count for _, count in self.entries)


@dataclass
class ScanStats:
    files: list[FileResult]
    elapsed: float
    engine: str
    # Hits the engine found that --since/--until then dropped (not in ``FileResult.hits``).
    outside_time_window: int = 0
    # (path, reason) of what input expansion left out, e.g. a directory symlink loop.
    skipped: list[tuple[str, str]] = field(default_factory=list)
    # True when Ctrl-C stopped the scan: the results cover what was read until then.
    interrupted: bool = False
    # Per rule with an allowlist: what each entry dropped (set by ``scan``).
    allowlist: list[AllowlistDrops] = field(default_factory=list)
    # Local inputs without hits whose first events carry no field the rules read (``scan``).
    not_ecs: list[NotEcs] = field(default_factory=list)

    def total(self, name: str) -> int:
        return sum(getattr(f, name) for f in self.files)

    @property
    def errors(self) -> list[FileResult]:
        return [f for f in self.files if f.error is not None]

    @property
    def mb_per_s(self) -> float:
        return self.total("bytes") / 1e6 / self.elapsed if self.elapsed > 0 else 0.0


@dataclass
class ScanResult:
    """Hits in input order (file, then line) and the scan's statistics."""

    hits: list[Hit]
    stats: ScanStats

    @cached_property
    def frame(self) -> pl.DataFrame:
        """The hits as a Polars DataFrame (schema: ``imds_scan.report.frame.SCHEMA``, README)."""
        from .report.frame import hits_frame

        return hits_frame(self.hits)

    def to_polars(self) -> pl.DataFrame:
        return self.frame

    def summaries(self, top: int = 10) -> dict[str, pl.DataFrame]:
        """The aggregations of ``--summary``: by rule and branch, host, process, user, day..."""
        from .report.summary import summaries

        return summaries(self.frame, top=top)


def flag_unscanned(files: Sequence[FileResult], max_line_bytes: int) -> None:
    """Give an input read in full an error (so exit 2) when part of its data was not scanned:
    lines longer than ``max_line_bytes``, or no valid event at all (a UTF-16 file without a
    byte-order mark, a binary file: a script must not read that as "clean")."""
    for f in files:
        if f.error is not None:
            continue
        if f.long_lines:
            f.error = (
                f"{f.long_lines:,} line(s) longer than max-line-bytes ({max_line_bytes:,} "
                "bytes) not evaluated (see the malformed lines)"
            )
        elif f.events and f.malformed == f.events:
            f.error = f"no valid event: all {f.events:,} lines are malformed (not NDJSON?)"


class ScanInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the scan; ``result`` holds what was found until then."""

    def __init__(self, result: ScanResult) -> None:
        super().__init__("scan interrupted")
        self.result = result


@dataclass(frozen=True)
class ScanConfig:
    """How to scan: engine options and hit filters (shared by the CLI and the Python API).

    ``hosts``/``exclude_hosts``: ``host.name`` globs (``*``, ``?``; ASCII case-insensitive, as
    EQL's ``:``), evaluated inside the engine. ``since``/``until``: a half-open window on
    @timestamp (a naive datetime is UTC); when either is set, a hit without a parsable
    @timestamp is dropped.
    """

    engine: Engine = "rust"
    threads: int = 0
    prefilter: bool = True
    max_examples: int = 5
    hosts: tuple[str, ...] = ()
    exclude_hosts: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    # S3-compatible endpoint for s3:// inputs (default: AWS, or AWS_ENDPOINT_URL).
    endpoint_url: str | None = None
    # Run on a Dask cluster: a scheduler address (tcp://host:8786) or local:N (a LocalCluster
    # of N worker processes on 127.0.0.1); None scans here. Rust engine only (cluster.py).
    cluster: str | None = None
    # On a cluster, plain inputs larger than this are cut into line-aligned byte ranges of
    # this size, and small inputs are packed into shares of about this size.
    range_size: int = 256 << 20
    # Longer lines (bytes, without the newline) are read past, not evaluated (README, Inputs).
    max_line_bytes: int = MAX_LINE_BYTES


def expand_inputs(args: Sequence[str], *, endpoint_url: str | None = None) -> list[str]:
    """Files as given; directories walked recursively; globs (also quoted ones, ``**`` too);
    ``-``; ``s3://`` objects, prefixes and globs. The names of the inputs, in order."""
    return [source.name for source in expand(args, endpoint_url=endpoint_url).sources]


# More threads than this only cost memory (two 4 MiB buffers each) and start-up time.
MAX_THREADS = 256


def run_scan(
    paths: Sequence[str | Source],
    rules: Sequence[Rule],
    *,
    engine: Engine = "rust",
    threads: int = 0,
    prefilter: bool = True,
    max_examples: int = 5,
    progress: Progress | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> ScanResult:
    """Scan already-expanded inputs (paths, ``-``, ``s3://`` objects or Sources) with the
    chosen engine. Raises ScanInterrupted (a KeyboardInterrupt) with the partial result on
    Ctrl-C. ``threads``: 0 for all cores, at most MAX_THREADS (more are taken as that)."""
    threads = min(max(threads, 0), MAX_THREADS)
    sources = [as_source(p) for p in paths]
    names = [s.name for s in sources]
    rules = list(rules)
    sizes = [s.size for s in sources if s.error is None]
    total = None if None in sizes else sum(s or 0 for s in sizes)
    # Inputs found unreadable while listing them are not given to the engine.
    readable = [i for i, s in enumerate(sources) if s.error is None]
    done = 0

    def advance(count: int) -> None:  # the python engine reports increments
        nonlocal done
        done += count
        if progress is not None:
            progress(done, total)

    started = time.perf_counter()
    interrupted = False
    if engine == "rust":
        from ._engine import Scanner

        scanner = Scanner([json.dumps(rule.ir) for rule in rules])
        raw_hits, raw_readable, interrupted = scanner.scan(
            [sources[i].engine_input() for i in readable],
            threads=threads,
            prefilter=prefilter,
            max_examples=max_examples,
            progress=None if progress is None else (lambda read: progress(read, total)),
            max_line_bytes=min(max_line_bytes, 1 << 62),  # no limit is beyond a usize
        )
        raw_files: list[dict[str, Any]] = [{"error": s.error} for s in sources]
        for i, stats in zip(readable, raw_readable, strict=True):
            raw_files[i] = stats
        # The engine's dicts also carry error_kind/error_offset/error_line and lines
        # (STATS_FIELDS), which FileResult does not hold (yet).
        known = {f.name for f in fields(FileResult)}
        files = [
            FileResult(name, **{k: v for k, v in stats.items() if k in known})
            for name, stats in zip(names, raw_files, strict=True)
        ]
        hits = [
            Hit(
                names[readable[source]],
                line,
                rules[rule],
                rules[rule].branch_names[branch],
                None if w is None else {"field": w[0], "op": w[1], "pattern": w[2], "value": w[3]},
                event,
            )
            for source, line, rule, branch, w, event in raw_hits
        ]
    elif engine == "python":
        from . import reference

        openers: list[str | reference.Opener] = [
            sources[i].open if sources[i].kind == "s3" else names[i] for i in readable
        ]
        ref_hits, ref_readable, interrupted = reference.scan_paths(
            openers,
            [r.ir for r in rules],
            max_examples,
            progress=advance,
            max_line_bytes=max_line_bytes,
        )
        ref_files = [FileStats(error=s.error) for s in sources]
        for i, ref_stats in zip(readable, ref_readable, strict=True):
            ref_files[i] = ref_stats
        files = [
            FileResult(name, **vars(stats)) for name, stats in zip(names, ref_files, strict=True)
        ]
        hits = [
            Hit(
                names[readable[h.source]],
                h.line,
                rules[h.rule],
                rules[h.rule].branch_names[h.branch],
                h.witness,
                h.event,
            )
            for h in ref_hits
        ]
    else:
        raise ValueError(f"unknown engine {engine!r} (expected 'rust' or 'python')")
    elapsed = time.perf_counter() - started
    flag_unscanned(files, max_line_bytes)
    result = ScanResult(hits, ScanStats(files, elapsed, engine, interrupted=interrupted))
    if interrupted:
        raise ScanInterrupted(result)
    return result


def allowlist_drops(rules: Sequence[Rule], result: ScanResult) -> list[AllowlistDrops]:
    """Sum the engines' per-input (rule, entry) counts for every rule with an allowlist."""
    counts: dict[tuple[int, int], int] = {}
    for stats in result.stats.files:
        for key, count in stats.allowlisted.items():
            counts[key] = counts.get(key, 0) + count
    hits: dict[str, int] = {}
    for hit in result.hits:
        hits[hit.rule.id] = hits.get(hit.rule.id, 0) + 1
    return [
        AllowlistDrops(
            rule.id,
            [(label, counts.get((i, e), 0)) for e, label in enumerate(rule.allowlist_labels)],
            hits.get(rule.id, 0),
        )
        for i, rule in enumerate(rules)
        if rule.allowlist_labels
    ]


def scan(
    paths: Sequence[str],
    *,
    rules: Sequence[Rule] | None = None,
    config: ScanConfig | None = None,
    engine: Engine | None = None,
    threads: int | None = None,
    progress: Progress | None = None,
    cluster: str | None = None,
    check_inputs: Callable[[Sequence[Source]], None] | None = None,
) -> ScanResult:
    """Scan files, directories, globs, ``-`` (stdin) or ``s3://`` objects, prefixes and
    globs: expand them, apply the host filter to the rules, run the engine, keep the hits
    inside the time window. The CLI runs exactly this.

    ``rules`` defaults to the bundled rule; ``engine``/``threads``/``cluster`` override
    ``config``'s (``cluster``: a Dask scheduler address or ``local:N``, see cluster.py).
    ``progress(read, total)`` is called as bytes are read from the sources. On Ctrl-C,
    raises ScanInterrupted (a KeyboardInterrupt) whose ``result`` holds the hits so far.
    ``check_inputs(sources)`` sees the expanded inputs before anything is read (it may raise).
    """
    import dataclasses

    from .filters import TimeWindow, as_utc, event_time, load_event, with_host_filter
    from .rules import default_rules

    config = config or ScanConfig()
    if engine is not None:
        config = dataclasses.replace(config, engine=engine)
    if threads is not None:
        config = dataclasses.replace(config, threads=threads)
    if cluster is not None:
        config = dataclasses.replace(config, cluster=cluster)
    chosen = with_host_filter(
        default_rules() if rules is None else rules, config.hosts, config.exclude_hosts
    )
    expanded = expand(paths, endpoint_url=config.endpoint_url)
    if check_inputs is not None:
        check_inputs(expanded.sources)
    interrupted = False
    if config.cluster is not None and config.engine != "rust":
        raise InputError("--cluster runs the rust engine only")
    try:
        if config.cluster is not None:
            from .cluster import run_cluster

            result = run_cluster(
                expanded.sources,
                chosen,
                config.cluster,
                threads=config.threads,
                prefilter=config.prefilter,
                max_examples=config.max_examples,
                endpoint_url=config.endpoint_url,
                range_size=config.range_size,
                progress=progress,
                max_line_bytes=config.max_line_bytes,
            )
        else:
            result = run_scan(
                expanded.sources,
                chosen,
                engine=config.engine,
                threads=config.threads,
                prefilter=config.prefilter,
                max_examples=config.max_examples,
                progress=progress,
                max_line_bytes=config.max_line_bytes,
            )
    except ScanInterrupted as exc:
        result, interrupted = exc.result, True
    result.stats.skipped = expanded.skipped
    result.stats.allowlist = allowlist_drops(chosen, result)
    if not interrupted:
        from .shape import not_ecs_inputs

        hits = [f.hits if f.error is None else 1 for f in result.stats.files]
        result.stats.not_ecs = not_ecs_inputs(expanded.sources, hits, chosen)
    window = TimeWindow(  # a naive bound is UTC, as in the CLI
        None if config.since is None else as_utc(config.since),
        None if config.until is None else as_utc(config.until),
    )
    if window.active:
        kept = [h for h in result.hits if window.contains(event_time(load_event(h.event_text)))]
        result.stats.outside_time_window = len(result.hits) - len(kept)
        result.hits = kept
    if interrupted:
        raise ScanInterrupted(result)
    return result
