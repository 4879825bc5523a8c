"""One scan, either engine: inputs → hits + statistics (shared by the CLI and the Python API)."""

from __future__ import annotations

import glob
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from .rules import Rule

if TYPE_CHECKING:
    import polars as pl

Engine = Literal["rust", "python"]
_GLOB_CHARS = frozenset("*?[")


class InputError(ValueError):
    """An input argument that names nothing to scan (e.g. a glob that matches no file)."""


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
        doc: dict[str, Any] = json.loads(self.event_text)
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
class FileResult:
    path: str
    bytes: int = 0
    events: int = 0
    candidates: int = 0
    hits: int = 0
    malformed: int = 0
    invalid_utf8: int = 0
    malformed_examples: list[tuple[int, str]] = field(default_factory=list)
    error: str | None = None


@dataclass
class ScanStats:
    files: list[FileResult]
    elapsed: float
    engine: str
    # Hits the engine found that --since/--until then dropped (not in ``FileResult.hits``).
    outside_time_window: int = 0

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


def expand_inputs(args: Sequence[str]) -> list[str]:
    """Files as given; directories walked recursively; globs (also quoted ones, ``**`` too)."""
    paths: list[str] = []
    for arg in args:
        if os.path.isdir(arg):
            found: list[str] = []
            for root, dirs, files in os.walk(arg):
                dirs.sort()
                found.extend(os.path.join(root, name) for name in sorted(files))
            paths.extend(found)
        elif not os.path.exists(arg) and _GLOB_CHARS & set(arg):
            matches = sorted(p for p in glob.glob(arg, recursive=True) if not os.path.isdir(p))
            if not matches:
                raise InputError(f"no file matches {arg!r}")
            paths.extend(matches)
        else:
            paths.append(arg)  # a missing file is reported by the scan, with the rest scanned
    return paths


def run_scan(
    paths: Sequence[str],
    rules: Sequence[Rule],
    *,
    engine: Engine = "rust",
    threads: int = 0,
    prefilter: bool = True,
    max_examples: int = 5,
) -> ScanResult:
    """Scan already-expanded paths with the chosen engine."""
    paths = list(paths)
    rules = list(rules)
    started = time.perf_counter()
    if engine == "rust":
        from ._engine import Scanner

        scanner = Scanner([json.dumps(rule.ir) for rule in rules])
        raw_hits, raw_files = scanner.scan_paths(
            paths, threads=threads, prefilter=prefilter, max_examples=max_examples
        )
        files = [FileResult(path, **stats) for path, stats in zip(paths, raw_files, strict=True)]
        hits = [
            Hit(
                paths[source],
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

        ref_hits, ref_files = reference.scan_paths(paths, [r.ir for r in rules], max_examples)
        files = [
            FileResult(path, **vars(stats)) for path, stats in zip(paths, ref_files, strict=True)
        ]
        hits = [
            Hit(
                paths[h.source],
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
    return ScanResult(hits, ScanStats(files, elapsed, engine))


def scan(
    paths: Sequence[str],
    *,
    rules: Sequence[Rule] | None = None,
    config: ScanConfig | None = None,
    engine: Engine | None = None,
    threads: int | None = None,
) -> ScanResult:
    """Scan files, directories or globs: expand them, apply the host filter to the rules,
    run the engine, keep the hits inside the time window. The CLI runs exactly this.

    ``rules`` defaults to the bundled rule; ``engine``/``threads`` override ``config``'s.
    """
    import dataclasses

    from .filters import TimeWindow, as_utc, event_time, load_event, with_host_filter
    from .rules import default_rules

    config = config or ScanConfig()
    if engine is not None:
        config = dataclasses.replace(config, engine=engine)
    if threads is not None:
        config = dataclasses.replace(config, threads=threads)
    chosen = with_host_filter(
        default_rules() if rules is None else rules, config.hosts, config.exclude_hosts
    )
    result = run_scan(
        expand_inputs(paths),
        chosen,
        engine=config.engine,
        threads=config.threads,
        prefilter=config.prefilter,
        max_examples=config.max_examples,
    )
    window = TimeWindow(  # a naive bound is UTC, as in the CLI
        None if config.since is None else as_utc(config.since),
        None if config.until is None else as_utc(config.until),
    )
    if window.active:
        kept = [h for h in result.hits if window.contains(event_time(load_event(h.event_text)))]
        result.stats.outside_time_window = len(result.hits) - len(kept)
        result.hits = kept
    return result
