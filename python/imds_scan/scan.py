"""One scan, either engine: inputs → hits + statistics (shared by the CLI and the Python API)."""

from __future__ import annotations

import glob
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .rules import Rule

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
    hits: list[Hit]
    stats: ScanStats


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
