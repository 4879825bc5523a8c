"""One scan as the CLI and the Python API run it: inputs expanded, the host filter put into the
rules, an engine (or a cluster) run, hits kept inside the time window."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from .batch import HITS, HitBatch, Needs
from .engines import DEFAULT_RANGE_SIZE, Engine, HitStream, Progress, stream_scan, thread_count
from .records import AllowlistDrops, Hit, ScanStats
from .reference.scan.lines import MAX_LINE_BYTES
from .results import ScanInterrupted, ScanResult
from .rules import Rule
from .sources import InputError, Source, expand

if TYPE_CHECKING:
    from .plan import RulePlan


@dataclass(frozen=True)
class ScanConfig:
    """How to scan: engine options and hit filters (shared by the CLI and the Python API).

    ``hosts``/``exclude_hosts``: ``host.name`` globs (``*``, ``?``; ASCII case-insensitive, as
    EQL's ``:``), evaluated inside the engine. ``since``/``until``: a half-open window on
    @timestamp (a naive datetime is UTC); when either is set, a hit without a parsable
    @timestamp is dropped. ``threads``: 0 for one per core; more than MAX_THREADS (256) are
    taken as that; a negative count is a ValueError.
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
    range_size: int = DEFAULT_RANGE_SIZE
    # Longer lines (bytes, without the newline) are read past, not evaluated (docs/inputs.md).
    max_line_bytes: int = MAX_LINE_BYTES
    # Stop the scan after this many hits (after --since/--until); None: no limit.
    max_hits: int | None = None

    def __post_init__(self) -> None:
        # Checked here, so every way into a scan holds to the same bound (the CLI warns first).
        object.__setattr__(self, "threads", thread_count(self.threads))
        for name in ("hosts", "exclude_hosts"):
            globs = getattr(self, name)
            # A bare string would be taken a character at a time ("web-*" → "w", "e", ...).
            if isinstance(globs, str) or not all(isinstance(g, str) for g in globs):
                raise TypeError(f"{name} must be a tuple of glob strings, not {globs!r}")
            object.__setattr__(self, name, tuple(globs))
        for name in ("since", "until"):
            moment = getattr(self, name)
            if moment is not None and not isinstance(moment, datetime):
                raise TypeError(
                    f"{name} must be a datetime or None, not {moment!r} "
                    "(e.g. datetime.fromisoformat('2024-05-01'))"
                )
        if self.max_hits is not None and (
            isinstance(self.max_hits, bool) or not isinstance(self.max_hits, int)
        ):
            raise TypeError(f"max_hits must be an integer or None, not {self.max_hits!r}")
        if self.max_hits is not None and self.max_hits < 1:
            raise ValueError(f"max_hits must be 1 or more (None: no limit), not {self.max_hits}")


def expand_inputs(args: Sequence[str], *, endpoint_url: str | None = None) -> list[str]:
    """Files as given; directories walked recursively; globs (also quoted ones, ``**`` too);
    ``-``; ``s3://`` objects, prefixes and globs. The names of the inputs, in order."""
    return [source.name for source in expand(args, endpoint_url=endpoint_url).sources]


def allowlist_drops(rules: Sequence[Rule], result: ScanResult) -> list[AllowlistDrops]:
    """Sum the engines' per-input (rule, entry) counts for every rule with an allowlist."""
    hits: dict[str, int] = {}
    for hit in result.hits:
        hits[hit.rule.id] = hits.get(hit.rule.id, 0) + 1
    return _allowlist_drops(rules, result.stats, hits)


def _allowlist_drops(
    rules: Sequence[Rule], stats: ScanStats, hits: dict[str, int]
) -> list[AllowlistDrops]:
    counts: dict[tuple[int, int], int] = {}
    for file in stats.files:
        for key, count in file.allowlisted.items():
            counts[key] = counts.get(key, 0) + count
    return [
        AllowlistDrops(
            rule.id,
            [(label, counts.get((i, e), 0)) for e, label in enumerate(rule.allowlist_labels)],
            hits.get(rule.id, 0),
        )
        for i, rule in enumerate(rules)
        if rule.allowlist_labels
    ]


def _apply_config(
    config: ScanConfig | None, engine: Engine | None, threads: int | None, cluster: str | None
) -> ScanConfig:
    import dataclasses

    config = config or ScanConfig()
    if engine is not None:
        config = dataclasses.replace(config, engine=engine)
    if threads is not None:
        config = dataclasses.replace(config, threads=threads)
    if cluster is not None:
        config = dataclasses.replace(config, cluster=cluster)
    return config


def open_scan(
    paths: Sequence[str],
    *,
    rules: Sequence[Rule] | None = None,
    config: ScanConfig | None = None,
    engine: Engine | None = None,
    threads: int | None = None,
    progress: Progress | None = None,
    cluster: str | None = None,
    check_inputs: Callable[[Sequence[Source]], None] | None = None,
    needs: Needs = frozenset({HITS}),
    plan: RulePlan | None = None,
) -> HitStream:
    """The scan of :func:`scan` as a :class:`~imds_scan.engines.HitStream`: hit batches in
    order, inside the time window and --max-hits, then the statistics (``stream.stats``,
    complete once the batches are consumed or the stream closed). Inputs are expanded and
    ``check_inputs`` run now; the engine runs while the batches are consumed. ``needs``: what
    the consumer reads from the batches (``hits``, ``records``, ``frame``; see
    :class:`~imds_scan.batch.HitBatch`); --since/--until read the Hit objects, unless the Rust
    engine applies them (a local scan without sequences). Sequence and sample rules run as
    their stage rules; their results come after the single-event hits
    (:mod:`imds_scan.sequences`). ``plan``: ``plan_rules(rules, config.hosts,
    config.exclude_hosts)`` when the caller made it already (the CLI's prefilter warnings)."""
    from .filters import TimeWindow, as_utc, event_time
    from .plan import plan_rules
    from .reference.event import load_event
    from .rules import default_rules

    config = _apply_config(config, engine, threads, cluster)
    window = TimeWindow(  # a naive bound is UTC, as in the CLI
        None if config.since is None else as_utc(config.since),
        None if config.until is None else as_utc(config.until),
    )
    # Sequence and sample rules run as stage rules; ``chosen`` are the rules as loaded (host
    # filters in), what the batches' counts and the statistics are about.
    if plan is None:
        plan = plan_rules(
            default_rules() if rules is None else rules,
            config.hosts,
            config.exclude_hosts,
            config.threads,
        )
    if config.engine == "rust" and config.cluster is None:
        plan.start_scanner()  # compiled while the inputs are listed and the matchers made
    chosen = plan.rules
    if plan.has_sequences:
        # Stage hits are told apart by their Hit's rule, and are most of the hits: records
        # and rows the engine made for them would be thrown away.
        needs = frozenset({HITS})
    # The Rust engine applies the window itself, as it finds the hits (no Hit object made);
    # the reference engine's and a cluster's hits are filtered here, and so are all hits when
    # sequences run (the matcher reads every stage hit and applies the window itself).
    in_engine = (
        window.active
        and config.engine == "rust"
        and config.cluster is None
        and not plan.has_sequences
    )
    if window.active and not in_engine:
        needs = needs | {HITS}
    expanded = expand(paths, endpoint_url=config.endpoint_url)
    if check_inputs is not None:
        check_inputs(expanded.sources)
    if config.cluster is not None and config.engine != "rust":
        raise InputError("--cluster runs the rust engine only")
    names = [source.name for source in expanded.sources]
    run = None
    router = None  # the stage hits the Rust engine routes to the matchers itself
    if plan.has_sequences:
        from .sequences import SequenceRun

        def within(text: str) -> bool:
            return window.contains(event_time(load_event(text)))

        run = SequenceRun(
            plan,
            "rust" if config.cluster is not None else config.engine,
            names,
            within if window.active else None,
        )
        if config.engine == "rust" and config.cluster is None:
            made = run.engine_router()
            router = None if made is None else (made, run.ranks)
    if config.cluster is not None:
        from .cluster import stream_cluster

        base = stream_cluster(
            expanded.sources,
            plan.engine_rules,
            config.cluster,
            threads=config.threads,
            prefilter=config.prefilter,
            max_examples=config.max_examples,
            endpoint_url=config.endpoint_url,
            range_size=config.range_size,
            progress=progress,
            max_line_bytes=config.max_line_bytes,
            needs=needs,
        )
    else:
        base = stream_scan(
            expanded.sources,
            plan.engine_rules,
            engine=config.engine,
            threads=config.threads,
            prefilter=config.prefilter,
            max_examples=config.max_examples,
            progress=progress,
            max_line_bytes=config.max_line_bytes,
            needs=needs,
            window=window.micros() if in_engine else None,
            scanner=(lambda: plan.scanner) if config.engine == "rust" else None,
            router=router,
        )
    if run is not None:
        from .sequences import with_sequences

        base = with_sequences(base, plan, run.engine, names, run.within, run=run)
    by_rule: dict[str, int] = {}  # hits before the time window (the allowlist's count)
    outside = 0
    kept = 0
    last: tuple[str, int] | None = None  # where the limit was reached
    stopped_at: tuple[str, int] | None = None

    def count_rules(batch: HitBatch) -> None:
        if batch.rule_counts is not None:
            for rule, count in zip(chosen, batch.rule_counts, strict=True):
                if count:
                    by_rule[rule.id] = by_rule.get(rule.id, 0) + count
        elif batch.has_hits:  # else another batch counted them (a cluster's share)
            for hit in batch.hits:
                by_rule[hit.rule.id] = by_rule.get(hit.rule.id, 0) + 1

    def batches() -> Iterator[HitBatch]:
        nonlocal outside, kept, stopped_at, last
        for batch in base:
            count_rules(batch)
            outside += batch.outside
            if window.active and not in_engine:
                hits = batch.hits
                inside = [
                    i
                    for i, h in enumerate(hits)
                    if window.contains(event_time(load_event(h.event_text)))
                ]
                outside += batch.count - len(inside)
                batch = batch.take(inside)
            if not batch.count:
                continue
            limit = config.max_hits
            if limit is not None and kept + batch.count > limit:
                # Only when a hit beyond the limit exists: the scan really stopped early.
                if kept < limit:
                    batch = batch.head(limit - kept)
                    kept += batch.count
                    stopped_at = batch.position(batch.count - 1)
                    yield batch
                else:  # limit ≥ 1 hits came before, the last of them in ``last``
                    stopped_at = last
                break
            kept += batch.count
            if limit is not None and kept == limit:
                last = batch.position(batch.count - 1)
            yield batch

    def finish() -> ScanStats:
        stats = base.close()
        if stopped_at is not None and not stats.interrupted:
            # --max-hits cancelled the engine: the inputs it had not finished are not errors.
            for f in stats.files:
                if f.error_kind == "interrupted":
                    f.error = f.error_kind = f.error_offset = f.error_line = None
        stats.skipped = expanded.skipped
        stats.allowlist = _allowlist_drops(chosen, stats, by_rule)
        stats.outside_time_window = outside
        stats.stopped_at = stopped_at
        hits = [f.hits if f.error is None else 1 for f in stats.files]
        if not stats.interrupted and stopped_at is None and not all(hits):
            from .shape import not_ecs_inputs  # (only for inputs without hits)

            stats.not_ecs = not_ecs_inputs(expanded.sources, hits, plan.engine_rules)
        return stats

    return HitStream(batches(), finish)


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
    inside the time window. All hits are kept in memory: for large results, see
    :func:`iter_scan`.

    ``rules`` defaults to the bundled rule; ``engine``/``threads``/``cluster`` override
    ``config``'s (``cluster``: a Dask scheduler address or ``local:N``, see cluster.py).
    ``progress(read, total)`` is called as bytes are read from the sources. On Ctrl-C,
    raises ScanInterrupted (a KeyboardInterrupt) whose ``result`` holds the hits so far.
    ``check_inputs(sources)`` sees the expanded inputs before anything is read (it may raise).
    """
    stream = open_scan(
        paths,
        rules=rules,
        config=config,
        engine=engine,
        threads=threads,
        progress=progress,
        cluster=cluster,
        check_inputs=check_inputs,
    )
    hits: list[Hit] = []
    try:
        for batch in stream:
            hits.extend(batch.hits)
    except KeyboardInterrupt:  # between two batches: what came is the result
        stats = stream.close()
        stats.interrupted = True
        raise ScanInterrupted(ScanResult(hits, stats)) from None
    result = ScanResult(hits, stream.close())
    if result.stats.interrupted:
        raise ScanInterrupted(result)
    return result


class HitIterator:
    """The hits of :func:`iter_scan`, one by one as the engine finds them; ``stats`` (a
    :class:`~imds_scan.records.ScanStats`) once they are all consumed, or after ``close()``."""

    def __init__(self, stream: HitStream) -> None:
        self._stream = stream
        self._hits = self._iterate()

    @property
    def stats(self) -> ScanStats | None:
        return self._stream.stats

    def _iterate(self) -> Generator[Hit]:
        try:
            for batch in self._stream:
                yield from batch.hits
        except KeyboardInterrupt:
            stats = self._stream.close()
            stats.interrupted = True
            raise ScanInterrupted(ScanResult([], stats)) from None
        stats = self._stream.close()
        if stats.interrupted:
            raise ScanInterrupted(ScanResult([], stats))

    def __iter__(self) -> Iterator[Hit]:
        return self._hits

    def __next__(self) -> Hit:
        return next(self._hits)

    def close(self) -> ScanStats:
        """Stop the scan here; the statistics of what was read."""
        self._hits.close()
        return self._stream.close()


def iter_scan(
    paths: Sequence[str],
    *,
    rules: Sequence[Rule] | None = None,
    config: ScanConfig | None = None,
    engine: Engine | None = None,
    threads: int | None = None,
    progress: Progress | None = None,
    cluster: str | None = None,
) -> HitIterator:
    """Like :func:`scan`, but the hits come one by one as they are found, in the same order,
    and are not kept: memory does not grow with the number of hits. The statistics are the
    iterator's ``stats`` after the last hit. On Ctrl-C the iteration raises ScanInterrupted
    whose ``result`` has no hits (they were given already) and the statistics so far.
    Stopping early (``close()``, or leaving a ``for`` loop and dropping the iterator) stops
    the scan."""
    return HitIterator(
        open_scan(
            paths,
            rules=rules,
            config=config,
            engine=engine,
            threads=threads,
            progress=progress,
            cluster=cluster,
        )
    )
