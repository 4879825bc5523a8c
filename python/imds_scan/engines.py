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

from .batch import ALERTS, FRAME, HITS, RECORDS, HitBatch, Needs, RawHits
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
# A cluster's byte range (and share) size: large enough that a task's overhead (~1 ms) and an
# S3 request's latency are noise, small enough to spread one big object over many workers.
# Here, not in the cluster module, which a local scan does not import; ScanConfig and the CLI
# take their default from it.
DEFAULT_RANGE_SIZE = 256 << 20


def thread_count(threads: int) -> int:
    """``threads`` as the engines take it: 0 (one per core) up to MAX_THREADS, more taken as
    MAX_THREADS; ValueError for a negative or non-integer count (every API path checks here)."""
    if isinstance(threads, bool) or not isinstance(threads, int):
        raise ValueError(f"threads must be an integer, not {threads!r}")
    if threads < 0:
        raise ValueError(f"threads must be 0 (one per core) or more, not {threads}")
    return min(threads, MAX_THREADS)


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


def hit_maker(
    raw: Sequence[EngineHit], inputs: Sequence[str], rules: Sequence[Rule], line_offset: int = 0
) -> Callable[[], list[Hit]]:
    """What builds the Hit objects of an engine's hit tuples when they are first needed
    (``inputs``: the names of the engine's inputs, by index)."""
    return lambda: [to_hit(h, inputs[h[0]], rules, line_offset) for h in raw]


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
# Batches of the fast path (records and rows built in Rust): larger, as nothing per hit is
# made in Python and each batch costs a fixed overhead; not more, as a batch's records or rows
# are about 1.5 KB per hit on the benchmark corpus (8192: ~50 MB more peak memory, no faster).
FAST_BATCH_HITS = 2048
# Hits a part of the scan ahead of the output order keeps before it waits (the binding's
# default is 16 MiB per thread): measured on 2 cores, 4 MiB takes ~18 MB less peak memory
# with many hits, no longer.
REORDER_BYTES = 4 << 20
# The same when the engine routes sequence stage hits to their matchers itself: a part ahead
# holds them too (about three per line with Elastic's rule set), and with 4 MiB the threads
# waited for the head (1,011 rules over 1 GB: 10.3-10.6 s; 9.6-9.9 s with 16 MiB).
ROUTED_REORDER_BYTES = 16 << 20


@dataclass
class EngineRun:
    """What an engine's stream leaves when its batches are consumed (or the stream closed):
    per-input statistics (None if the engine never finished) and whether Ctrl-C stopped it."""

    stats: Sequence[Mapping[str, Any]] | None = None
    interrupted: bool = False


@dataclass(frozen=True)
class RawBatch:
    """One batch as an engine gives it: hit tuples (None when not asked for), NDJSON records
    and Arrow rows (None when not asked for, or the engine cannot), hits per rule index, and
    ``position(k)`` (the input index and line of hit ``k``) when the engine has it."""

    count: int
    hits: list[EngineHit] | None
    records: bytes | memoryview | None = None
    rows: bytes | memoryview | None = None
    rule_counts: Sequence[int] | None = None
    position: Callable[[int], tuple[int, int]] | None = None
    # Hits left out as outside the time window the engine applied (counted in rule_counts).
    outside: int = 0
    # ECS alert documents (one line per hit), when asked for.
    alerts: bytes | memoryview | None = None


def _raw_batch(item: Any) -> RawBatch:
    """The binding's ``HitBatch`` as a RawBatch (the shape every engine gives): its records,
    rows and alerts as views of the engine's buffers, not copied."""
    return RawBatch(
        item.count,
        item.hits,
        _view(item.records_buffer),
        _view(item.rows_buffer),
        item.rule_counts,
        item.position,
        item.outside,
        _view(item.alerts_buffer),
    )


def _view(buffer: Any) -> memoryview | None:
    return None if buffer is None else memoryview(buffer)


def rust_batches(
    scanner: Any, inputs: list[Any], run: EngineRun, **options: Any
) -> Generator[RawBatch]:
    """The Rust engine's hits in ordered batches as it finds them (``Scanner.scan_iter``: a
    bounded reorder in the engine, so memory does not grow with the hits), its statistics into
    ``run`` at the end. The one place that calls the binding for a local scan.

    Ctrl-C in the engine ends the batches (``run.interrupted``) after the hits found until
    then; closing this generator early (--max-hits, or Ctrl-C in the consumer) cancels the
    engine, whose unfinished inputs then say ``interrupted``."""
    options.setdefault("batch", BATCH_HITS)
    options.setdefault("reorder_bytes", REORDER_BYTES)
    scan = scanner.scan_iter(inputs, **options)
    try:
        try:
            for item in scan:
                yield _raw_batch(item)
        except KeyboardInterrupt:
            run.interrupted = True
            for item in scan:  # the hits found before Ctrl-C
                yield _raw_batch(item)
    finally:
        scan.close()
        run.stats = scan.files


def python_batches(
    openers: list[Any], rules: Sequence[Rule], run: EngineRun, **options: Any
) -> Generator[RawBatch]:
    """The reference engine's hits in ordered batches as it finds them, its statistics into
    ``run`` (as they stand when the batches end or the stream is closed)."""
    from .reference.scan.engine import ReferenceScan

    scan = ReferenceScan([r.ir for r in rules])
    batches = scan.batches(openers, batch=BATCH_HITS, **options)
    try:
        for hits in batches:
            counts = [0] * len(rules)
            for hit in hits:
                counts[hit[2]] += 1
            yield RawBatch(len(hits), hits, rule_counts=counts)
    finally:
        batches.close()  # stopped early: the unfinished inputs say so
        run.stats = [vars(stats) for stats in scan.stats]
        run.interrupted = scan.interrupted


class HitStream:
    """A scan's hits in ordered batches (:class:`~imds_scan.batch.HitBatch`: input, then
    line, then rule), then its statistics: ``stats`` is set once the batches are consumed, or
    the stream closed early (``close``, e.g. --max-hits), and says whether Ctrl-C stopped the
    engine. Nothing here holds more than one batch."""

    def __init__(self, batches: Iterator[HitBatch], finish: Callable[[], ScanStats]) -> None:
        self._batches = batches
        self._finish = finish
        self.stats: ScanStats | None = None

    def __iter__(self) -> Iterator[HitBatch]:
        try:
            yield from self._batches
        finally:
            self.close()

    def collect(self) -> ScanResult:
        """Every hit, in memory, and the statistics; ScanInterrupted (with them) on Ctrl-C."""
        hits = [hit for batch in self for hit in batch.hits]
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


def record_names(names: Sequence[str], rules: Sequence[Rule]) -> Any:
    """The binding's ``records=`` argument, or None when a name has no UTF-8 form (a file
    name that is not UTF-8): such records are built in Python."""
    try:
        for name in names:
            name.encode("utf-8")
    except UnicodeEncodeError:
        return None
    described = [(r.name, r.id, r.severity, list(r.branch_names)) for r in rules]
    return (list(names), described)


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
    needs: Needs = frozenset({HITS}),
    window: tuple[int | None, int | None] | None = None,
    scanner: Callable[[], Any] | None = None,
    router: tuple[Any, Mapping[str, int]] | None = None,
) -> HitStream:
    """Like :func:`run_scan`, as a :class:`HitStream` of hit batches. On Ctrl-C in the engine
    the batches found so far still come, and ``stats.interrupted`` is set. ``needs``: what the
    consumer reads from the batches (``hits``, ``records``, ``frame``, ``alerts``): the Rust
    engine builds records, rows and alert documents itself when asked, and Hit objects only
    when they are needed.
    ``window``: (since, until) in microseconds since the epoch, applied by the Rust engine as
    it finds the hits (``filters.TimeWindow``'s meaning); the batches' ``outside`` count the
    hits left out. The reference engine takes none (the caller filters its hits).
    ``scanner()``: the Rust engine's Scanner of ``rules``, when the caller has one: asked for
    when the first batch is (it may still be in the making).
    ``router``: (a ``StageRouter``, each input name's rank): the Rust engine takes the stage
    hits of its Rust matchers out itself (``SequenceRun.engine_router``)."""
    if router is not None and engine != "rust":
        raise ValueError("only the rust engine routes stage hits itself")
    if window is not None and engine != "rust":
        raise ValueError("only the rust engine applies a time window")
    threads = thread_count(threads)
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
    raw: Generator[RawBatch]
    if engine == "rust":
        from ._engine import Scanner

        forms = [json.dumps(rule.ir) for rule in rules] if scanner is None else None
        built = None if forms is None else Scanner(forms, threads)
        fast: dict[str, Any] = {}
        named = record_names([names[i] for i in readable], rules)
        if RECORDS in needs and named is not None:
            fast["records"] = True
        if FRAME in needs and named is not None:
            fast["rows"] = True
        if ALERTS in needs and named is not None:
            from .report.alerts import alert_rule

            fast["alerts"] = [alert_rule(rule) for rule in rules]
        if fast:
            fast["names"] = named
        # Hit objects are built from the engine's tuples: asked for when a form the consumer
        # reads cannot come from the engine.
        want_hits = (
            HITS in needs
            or (RECORDS in needs and "records" not in fast)
            or (FRAME in needs and "rows" not in fast)
            or (ALERTS in needs and "alerts" not in fast)
        )
        options = dict(
            threads=threads,
            prefilter=prefilter,
            max_examples=max_examples,
            progress=None if progress is None else (lambda read: progress(read, total)),
            max_line_bytes=min(max_line_bytes, 1 << 62),  # no limit is beyond a usize
            batch=BATCH_HITS if want_hits else FAST_BATCH_HITS,
            hits=want_hits,
            since=None if window is None else window[0],
            until=None if window is None else window[1],
            **fast,
        )
        engine_inputs = [sources[i].engine_input() for i in readable]
        if router is not None:
            options["router"] = router[0]
            options["ranks"] = [router[1][names[i]] for i in readable]
            options["reorder_bytes"] = ROUTED_REORDER_BYTES

        def scanned() -> Generator[RawBatch]:
            made = built if scanner is None else scanner()
            yield from rust_batches(made, engine_inputs, run, **options)

        raw = scanned()
    elif engine == "python":
        from .reference.scan.source import Opener

        openers: list[str | Opener] = [
            sources[i].open if sources[i].kind == "s3" else sources[i].local_path()
            for i in readable
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

    inputs = [names[i] for i in readable]

    def position(where: Callable[[int], tuple[int, int]]) -> Callable[[int], tuple[str, int]]:
        def at(k: int) -> tuple[str, int]:
            source, line = where(k)
            return names[readable[source]], line

        return at

    def make(tuples: Sequence[EngineHit]) -> list[Hit]:
        return hit_maker(tuples, inputs, rules)()

    def batches() -> Iterator[HitBatch]:
        try:
            for batch in raw:
                tuples = batch.hits
                yield HitBatch(
                    batch.count,
                    hits=None if tuples is None else hit_maker(tuples, inputs, rules),
                    raw=None if tuples is None else RawHits(tuples, inputs, make),
                    records=batch.records,
                    rows=batch.rows,
                    rule_counts=batch.rule_counts,
                    position=None if batch.position is None else position(batch.position),
                    outside=batch.outside,
                    alerts=batch.alerts,
                )
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
    Ctrl-C. ``threads``: 0 for all cores, at most MAX_THREADS (more are taken as that; a
    negative count is a ValueError).
    Sequence and sample rules need the scan layer: they are refused here (ValueError);
    :func:`imds_scan.scan` runs them."""
    from .ir_schema import rule_kind

    for rule in rules:
        if rule_kind(rule.ir) != "event":
            raise ValueError(
                f"rule {rule.id!r} is a {rule_kind(rule.ir)}: run_scan scans single-event "
                "rules; imds_scan.scan() runs sequences, samples, new_terms and threshold rules"
            )
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
