"""One scan as the CLI and the Python API run it: inputs expanded, the host filter put into the
rules, an engine (or a cluster) run, hits kept inside the time window."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from .cluster import DEFAULT_RANGE_SIZE
from .engines import Engine, Progress, run_scan
from .records import AllowlistDrops
from .reference.scan.lines import MAX_LINE_BYTES
from .results import ScanInterrupted, ScanResult
from .rules import Rule
from .sources import InputError, Source, expand


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
    range_size: int = DEFAULT_RANGE_SIZE
    # Longer lines (bytes, without the newline) are read past, not evaluated (docs/inputs.md).
    max_line_bytes: int = MAX_LINE_BYTES


def expand_inputs(args: Sequence[str], *, endpoint_url: str | None = None) -> list[str]:
    """Files as given; directories walked recursively; globs (also quoted ones, ``**`` too);
    ``-``; ``s3://`` objects, prefixes and globs. The names of the inputs, in order."""
    return [source.name for source in expand(args, endpoint_url=endpoint_url).sources]


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

    from .filters import TimeWindow, as_utc, event_time, with_host_filter
    from .reference.event import load_event
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
