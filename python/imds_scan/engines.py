"""The engines behind one interface: the Rust engine (the ``_engine`` binding) and the
pure-Python reference engine give hits as :data:`~imds_scan.stats.EngineHit` tuples and
per-input statistics with the fields of :class:`~imds_scan.stats.FileStats`; :func:`to_hit`
and :func:`file_result` turn them into results, here and in the cluster's merge."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .records import FileResult, Hit, ScanStats
from .reference.scan.lines import MAX_LINE_BYTES
from .results import ScanInterrupted, ScanResult
from .rules import Rule
from .sources import Source, as_source
from .stats import WITNESS_FIELDS, EngineHit, stats_values

Engine = Literal["rust", "python"]
# progress(bytes read from the sources so far, total bytes or None when unknown)
Progress = Callable[[int, int | None], None]
# More threads than this only cost memory (two 4 MiB buffers each) and start-up time.
MAX_THREADS = 256


def to_hit(raw: EngineHit, source: str, rules: Sequence[Rule], line_offset: int = 0) -> Hit:
    """An engine's hit tuple as a Hit of input ``source`` (``line_offset``: the lines before
    the byte range a cluster worker scanned)."""
    _, line, rule, branch, witness, event = raw
    matched = None
    if witness is not None:
        matched = dict(zip(WITNESS_FIELDS, witness, strict=True))
    return Hit(
        source, line + line_offset, rules[rule], rules[rule].branch_names[branch], matched, event
    )


def file_result(name: str, stats: Mapping[str, Any]) -> FileResult:
    """An engine's statistics of one input (the binding's dict, or a FileStats's ``vars``)."""
    return FileResult(name, **stats_values(stats))


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
            f.error_kind = "long_lines"
        elif f.events and not f.valid_event:
            f.error = f"no valid event: all {f.events:,} lines are malformed (not NDJSON?)"
            f.error_kind = "no_events"


# Hits per batch as they travel from the engine to the writers: memory after the engine is
# a few batches, whatever the number of hits.
BATCH_HITS = 1024


@dataclass
class EngineRun:
    """What an engine's stream leaves when its batches are consumed (or the stream closed):
    per-input statistics (None if the engine never finished) and whether Ctrl-C stopped it."""

    stats: Sequence[Mapping[str, Any]] | None = None
    interrupted: bool = False


def _chunks(items: list[EngineHit]) -> Iterator[list[EngineHit]]:
    """``items`` in batches, each let go of as it is given: once written, its events can be
    freed while the rest wait."""
    items.reverse()
    while items:
        batch = items[-BATCH_HITS:]
        del items[-BATCH_HITS:]
        batch.reverse()
        yield batch


def rust_batches(
    scanner: Any, inputs: list[Any], run: EngineRun, **options: Any
) -> Generator[list[EngineHit]]:
    """The Rust engine's hits in ordered batches as it finds them (``Scanner.scan_iter``: a
    bounded reorder in the engine, so memory does not grow with the hits), its statistics into
    ``run`` at the end. The one place that calls the binding for a local scan.

    Ctrl-C in the engine ends the batches (``run.interrupted``) after the hits found until
    then; closing this generator early (--max-hits, or Ctrl-C in the consumer) cancels the
    engine, whose unfinished inputs then say ``interrupted``."""
    scan = scanner.scan_iter(inputs, batch=BATCH_HITS, **options)
    try:
        try:
            for batch in scan:
                yield batch.hits
        except KeyboardInterrupt:
            run.interrupted = True
            for batch in scan:  # the hits found before Ctrl-C
                yield batch.hits
    finally:
        scan.close()
        run.stats = scan.files


def python_batches(
    openers: list[Any], rules: Sequence[Rule], run: EngineRun, **options: Any
) -> Generator[list[EngineHit]]:
    """The reference engine's hits in ordered batches, its statistics into ``run``."""
    from .reference.scan.engine import scan_inputs

    raw_hits, ref_stats, interrupted = scan_inputs(openers, [r.ir for r in rules], **options)
    run.stats, run.interrupted = [vars(stats) for stats in ref_stats], interrupted
    yield from _chunks(raw_hits)


class HitStream:
    """A scan's hits in ordered batches (input, then line, then rule), then its statistics:
    ``stats`` is set once the batches are consumed, or the stream closed early (``close``,
    e.g. --max-hits), and says whether Ctrl-C stopped the engine. Nothing here holds more
    than one batch."""

    def __init__(self, batches: Iterator[list[Hit]], finish: Callable[[], ScanStats]) -> None:
        self._batches = batches
        self._finish = finish
        self.stats: ScanStats | None = None

    def __iter__(self) -> Iterator[list[Hit]]:
        try:
            yield from self._batches
        finally:
            self.close()

    def collect(self) -> ScanResult:
        """Every hit, in memory, and the statistics; ScanInterrupted (with them) on Ctrl-C."""
        hits = [hit for batch in self for hit in batch]
        result = ScanResult(hits, self.close())
        if result.stats.interrupted:
            raise ScanInterrupted(result)
        return result

    def close(self) -> ScanStats:
        """Stop the engine (if it is still running) and give the statistics."""
        if self.stats is None:
            close = getattr(self._batches, "close", None)
            if close is not None:
                close()
            self.stats = self._finish()
        return self.stats


def stream_scan(
    paths: Sequence[str | Source],
    rules: Sequence[Rule],
    *,
    engine: Engine = "rust",
    threads: int = 0,
    prefilter: bool = True,
    max_examples: int = 5,
    progress: Progress | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> HitStream:
    """Like :func:`run_scan`, as a :class:`HitStream` of hit batches. On Ctrl-C in the engine
    the batches found so far still come, and ``stats.interrupted`` is set."""
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
    run = EngineRun()
    raw: Generator[list[EngineHit]]
    if engine == "rust":
        from ._engine import Scanner

        scanner = Scanner([json.dumps(rule.ir) for rule in rules])
        raw = rust_batches(
            scanner,
            [sources[i].engine_input() for i in readable],
            run,
            threads=threads,
            prefilter=prefilter,
            max_examples=max_examples,
            progress=None if progress is None else (lambda read: progress(read, total)),
            max_line_bytes=min(max_line_bytes, 1 << 62),  # no limit is beyond a usize
        )
    elif engine == "python":
        from .reference.scan.source import Opener

        openers: list[str | Opener] = [
            sources[i].open if sources[i].kind == "s3" else names[i] for i in readable
        ]
        raw = python_batches(
            openers,
            rules,
            run,
            max_examples=max_examples,
            progress=advance,
            max_line_bytes=max_line_bytes,
        )
    else:
        raise ValueError(f"unknown engine {engine!r} (expected 'rust' or 'python')")

    def batches() -> Iterator[list[Hit]]:
        try:
            for batch in raw:
                yield [to_hit(h, names[readable[h[0]]], rules) for h in batch]
        finally:
            raw.close()

    def finish() -> ScanStats:
        files = [FileResult(name, error=s.error) for name, s in zip(names, sources, strict=True)]
        for i, stats in zip(readable, run.stats or [], strict=run.stats is not None):
            files[i] = file_result(names[i], stats)
        flag_unscanned(files, max_line_bytes)
        elapsed = time.perf_counter() - started
        return ScanStats(files, elapsed, engine, interrupted=run.interrupted)

    return HitStream(batches(), finish)


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
    stream = stream_scan(
        paths,
        rules,
        engine=engine,
        threads=threads,
        prefilter=prefilter,
        max_examples=max_examples,
        progress=progress,
        max_line_bytes=max_line_bytes,
    )
    return stream.collect()
