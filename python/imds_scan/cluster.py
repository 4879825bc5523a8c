"""Distribute a scan over a Dask distributed cluster (``--cluster tcp://host:8786`` or
``--cluster local:N``; the optional ``cluster`` extra).

The client expands the inputs (files, ``s3://`` objects with their sizes), cuts every large
*plain* object into byte ranges of about ``range_size`` bytes (compressed objects, told by their
magic bytes, go whole), packs them into shares of about ``range_size`` bytes and submits one
Dask task per share. A worker runs the Rust engine on its share, reading each piece directly
from the source: a path (the workers must see the same file system) or an S3 object (the
workers' own AWS credential chain, and the scan's ``endpoint_url``). Only hits and statistics
travel back.

Byte ranges and line numbers: a range ``[start, end)`` owns the lines that *start* inside it;
the line straddling ``end`` is read to its end by the range that owns it, and the partial line
at ``start`` belongs to the previous range. The engine reads a range itself (its byte-range
input: a path, or a seekable S3 file object): hit, malformed-line and error line numbers count
from the range's first line, and ``lines`` is the number of lines it owns; the client makes
them global by adding the line counts of the object's preceding ranges, in order (no separate
counting pass: a range is read once). The client takes the shares' results in share order (a
finished share waits on its worker for the ones before it), so the hits stream out as a local
scan gives them, (input, line, rule), one share's hits at a time.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from .batch import ALERTS, FRAME, HITS, RECORDS, HitBatch, Needs
from .engines import (
    BATCH_HITS,
    DEFAULT_RANGE_SIZE,
    FAST_BATCH_HITS,
    EngineRun,
    HitStream,
    Progress,
    flag_unscanned,
    hit_maker,
    record_names,
    rust_batches,
)
from .records import FileResult, ScanStats
from .reference.scan.lines import MAX_LINE_BYTES
from .results import ScanResult
from .rules import Rule
from .sources import S3_BLOCK_SIZE, InputError, LazyStream, Source, s3_filesystem
from .stats import add_stats

# How often a share is resubmitted after its task raised (a lost worker is rescheduled by Dask
# itself; see docs/cluster.md).
DEFAULT_RETRIES = 3
# Bytes read to tell an input's compression (never split) from plain text.
_HEAD = 8


@dataclass(frozen=True)
class Piece:
    """What a worker reads: a whole input, or the lines starting in ``[start, end)``."""

    index: int  # the input's index in the scan
    location: str  # absolute path, or s3:// URL
    kind: str  # "file" or "s3"
    start: int = 0
    end: int | None = None  # None: the whole input (any compression)

    @property
    def whole(self) -> bool:
        return self.end is None


# ---------------------------------------------------------------- client side


def parse_cluster(spec: str) -> tuple[str, int]:
    """``local:N`` → ("local", N); ``tcp://host:port`` (any Dask address) → ("address", 0)."""
    if spec.startswith("local:"):
        count = spec[len("local:") :]
        if not count.isdigit() or int(count) < 1:
            raise InputError(f"--cluster {spec!r}: expected local:N with N ≥ 1 workers")
        return "local", int(count)
    if "://" not in spec:
        raise InputError(f"--cluster {spec!r}: expected tcp://host:port or local:N")
    return "address", 0


def _is_compressed(head: bytes) -> bool:
    """Whether the engine would take input starting with ``head`` for a compressed one, or
    refuse it whole (another compression, a UTF-16/32 byte-order mark)."""
    from .reference.scan.source import detect_compression  # the worker does not need it

    try:
        return detect_compression(head) is not None
    except ValueError:
        return True


def _head(source: Source) -> bytes | None:
    """The first bytes of an input, or None when they cannot be read (it is then sent whole,
    and the worker reports the error as a local scan would)."""
    try:
        if source.kind == "s3":
            data: bytes = source.fs.cat_file(source.name, start=0, end=_HEAD)
            return data
        with open(source.name, "rb") as file:
            return file.read(_HEAD)
    except Exception:
        return None


def plan(sources: Sequence[Source], range_size: int) -> list[list[Piece]]:
    """Pieces of the readable inputs, packed in input order into shares of ~range_size bytes."""
    if range_size < 1:
        raise ValueError("range_size must be positive")
    if any(s.kind == "stdin" for s in sources):
        raise InputError("'-' (standard input) cannot be scanned on a cluster")
    # The first bytes of every input big enough to split (S3: one small GET each, in parallel).
    large = [i for i, s in enumerate(sources) if s.error is None and (s.size or 0) > range_size]
    from concurrent.futures import ThreadPoolExecutor  # kept off the CLI's start-up

    with ThreadPoolExecutor(max_workers=16) as pool:
        heads = dict(zip(large, pool.map(lambda i: _head(sources[i]), large), strict=True))
    pieces: list[tuple[Piece, int]] = []
    for index, source in enumerate(sources):
        if source.error is not None:
            continue
        location = source.name if source.kind == "s3" else os.path.abspath(source.name)
        size = source.size
        head = heads.get(index)
        if size is None or head is None or _is_compressed(head):
            pieces.append((Piece(index, location, source.kind), size or range_size))
            continue
        for start in range(0, size, range_size):
            end = min(start + range_size, size)
            pieces.append((Piece(index, location, source.kind, start, end), end - start))
    shares: list[list[Piece]] = []
    filled = range_size
    for piece, size in pieces:
        if filled + size > range_size:
            shares.append([])
            filled = 0
        shares[-1].append(piece)
        filled += size
    return shares


# Most seconds to reach a scheduler (Dask's default is 30; a lower Dask setting wins): a
# scheduler that answers at all does so fast.
CONNECT_TIMEOUT = 10


def _dask_connect_timeout() -> float:
    """Dask's own connect timeout (distributed.comm.timeouts.connect), in seconds."""
    try:
        dask: Any = importlib.import_module("dask")
        value = dask.config.get("distributed.comm.timeouts.connect", CONNECT_TIMEOUT)
        seconds: float = dask.utils.parse_timedelta(value)
    except (ImportError, ValueError, TypeError, KeyError):
        return CONNECT_TIMEOUT
    return seconds


@contextlib.contextmanager
def connect(spec: str) -> Iterator[Any]:
    """A Dask client: to the scheduler at ``spec``, or to a LocalCluster of N worker processes
    on 127.0.0.1 (``local:N``), closed (and stopped) on exit."""
    kind, workers = parse_cluster(spec)
    try:
        # Any-typed: distributed is optional, and untyped.
        distributed: Any = importlib.import_module("distributed")
    except ImportError:
        raise InputError(
            "--cluster needs dask.distributed: pip install 'imds-scan[cluster]'"
        ) from None
    if kind == "local":
        with (
            distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                # no dashboard; the scheduler's HTTP routes on any free port, not 8787
                scheduler_kwargs={"dashboard_address": ":0"},
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            yield client
    else:
        try:
            timeout = min(CONNECT_TIMEOUT, _dask_connect_timeout())
            client = distributed.Client(spec, timeout=timeout)
        except (OSError, TimeoutError) as exc:  # unreachable, refused, unknown host
            raise InputError(f"--cluster {spec}: cannot reach the Dask scheduler: {exc}") from None
        with client:
            yield client


def run_cluster(
    sources: Sequence[Source],
    rules: Sequence[Rule],
    cluster: str | Any,
    *,
    threads: int = 0,
    prefilter: bool = True,
    max_examples: int = 5,
    endpoint_url: str | None = None,
    range_size: int = DEFAULT_RANGE_SIZE,
    retries: int = DEFAULT_RETRIES,
    progress: Progress | None = None,
    task: Callable[..., dict[str, Any]] | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> ScanResult:
    """Scan already-expanded inputs on a Dask cluster (an address, ``local:N``, or a
    ``distributed.Client``): the same hits (in the same order), statistics and errors as
    ``run_scan`` with the rust engine. ``task`` replaces the worker function (for tests).
    Raises ScanInterrupted with what the finished shares found on Ctrl-C."""
    stream = stream_cluster(
        sources,
        rules,
        cluster,
        threads=threads,
        prefilter=prefilter,
        max_examples=max_examples,
        endpoint_url=endpoint_url,
        range_size=range_size,
        retries=retries,
        progress=progress,
        task=task,
        max_line_bytes=max_line_bytes,
    )
    return stream.collect()


def stream_cluster(
    sources: Sequence[Source],
    rules: Sequence[Rule],
    cluster: str | Any,
    *,
    threads: int = 0,
    prefilter: bool = True,
    max_examples: int = 5,
    endpoint_url: str | None = None,
    range_size: int = DEFAULT_RANGE_SIZE,
    retries: int = DEFAULT_RETRIES,
    progress: Progress | None = None,
    task: Callable[..., dict[str, Any]] | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
    needs: Needs = frozenset({HITS}),
) -> HitStream:
    """:func:`run_cluster` as a :class:`~imds_scan.engines.HitStream`: each share's hits
    come as one batch, in share order. A share's result stays on its worker until every share
    before it has been taken: the client holds one share's hits at a time (the reorder is by
    share index, the shares finish in any order). On Ctrl-C the shares already finished are
    still taken (in order) and ``stats.interrupted`` is set. ``needs``: what the consumer
    reads from the batches; the workers build records and rows themselves (see
    :func:`share_forms`)."""
    started = time.perf_counter()
    merger = ShareMerger(sources, rules, max_examples)
    interrupted = False

    def batches() -> Iterator[HitBatch]:
        nonlocal interrupted
        with contextlib.ExitStack() as stack:
            client: Any = cluster
            if isinstance(cluster, str):
                client = stack.enter_context(connect(cluster))
            as_completed: Any = importlib.import_module("distributed").as_completed
            shares = plan(sources, range_size)
            sizes = [s.size for s in sources if s.error is None]
            total = None if None in sizes else sum(s or 0 for s in sizes)
            rules_json = tuple(json.dumps(rule.ir) for rule in rules)
            rows = FRAME in needs
            futures: list[Any] = [
                client.submit(
                    task or scan_share,
                    share,
                    rules_json,
                    threads,
                    prefilter,
                    max_examples,
                    endpoint_url,
                    max_line_bytes,
                    share_forms(share, merger.names, rules, needs, rows),
                    retries=retries,
                    pure=False,
                )
                for share in shares
            ]
            number = {future.key: n for n, future in enumerate(futures)}
            finished: set[int] = set()
            taken = 0  # shares before this one are merged
            done = 0

            def take(n: int) -> list[HitBatch]:
                try:
                    out = futures[n].result()
                except Exception as exc:  # after the retries, or a worker lost too often
                    merger.fail(shares[n], f"cluster task failed: {type(exc).__name__}: {exc}")
                    return []
                finally:
                    futures[n] = None  # the cluster may drop the result now
                return merger.add(shares[n], out)

            try:
                for future in as_completed(futures):
                    finished.add(number[future.key])
                    while taken in finished:
                        found = take(taken)
                        taken += 1
                        if progress is not None:
                            done += merger.read_bytes(shares[taken - 1])
                            progress(done, total)
                        yield from found
            except KeyboardInterrupt:
                interrupted = True
                ready = [n for n in range(taken, len(futures)) if futures[n].status != "pending"]
                client.cancel([futures[n] for n in range(taken, len(futures)) if n not in ready])
                for n in ready:  # a missing share before them costs their line numbers
                    yield from take(n)

    def finish() -> ScanStats:
        stats = merger.finish(interrupted)
        flag_unscanned(stats.files, max_line_bytes)
        stats.elapsed = time.perf_counter() - started
        return stats

    return HitStream(batches(), finish)


class ShareMerger:
    """The shares' outputs, taken in share order, as a local scan of ``sources`` gives them.

    Line numbers of a byte range are made global by adding the lines owned by the object's
    preceding ranges; when one of those is missing (Ctrl-C) or was not read to its end (a
    read error), the range's hits are dropped rather than given wrong line numbers."""

    def __init__(self, sources: Sequence[Source], rules: Sequence[Rule], max_examples: int):
        self.names = [s.name for s in sources]
        self.rules = list(rules)
        self.max_examples = max_examples
        self.files = [
            FileResult(name, error=s.error) for name, s in zip(self.names, sources, strict=True)
        ]
        # Per input: the lines before its next range (None: unknown), and where it starts.
        self.offsets: dict[int, int | None] = {}
        self.expected: dict[int, int] = {}
        self.failed: dict[int, str] = {}
        self.bytes: dict[int, int] = {}

    def add(self, share: Sequence[Piece], out: dict[str, Any]) -> list[HitBatch]:
        """Merge one share's statistics; its hits, global, in (input, line, rule) order: a
        batch per piece with hits (the engine gives a share's hits piece by piece, in the
        pieces' order, which is the inputs' order)."""
        whole = _share_batch(out)
        found: list[HitBatch] = []
        if whole.hits is None and out.get("rule_counts") is not None:
            # The share's hits per rule, once (its pieces' batches carry none).
            found.append(HitBatch(0, rule_counts=out["rule_counts"]))
        first = 0  # the piece's first hit in the share's
        read = 0
        for piece, stats in zip(share, out["files"], strict=True):
            read += stats["source_bytes"]
            index = piece.index
            offset = self.offsets.get(index, 0)
            if piece.end is not None and piece.start != self.expected.get(index, 0):
                offset = None  # a range before this one is missing
            result = self.files[index]
            add_stats(result, stats, offset)
            del result.malformed_examples[self.max_examples :]
            del result.invalid_utf8_lines[self.max_examples :]
            count = stats["hits"]
            if offset is not None:
                if count:
                    part = whole.part(first, first + count)
                    found.append(self._global(part, share, self.names[index], offset))
                # A range that failed owns more lines than it read: the next ones' are unknown.
                offset = None if stats["error"] is not None else offset + stats["lines"]
            first += count
            self.offsets[index] = offset
            self.expected[index] = piece.end or 0
        self.bytes[id(share)] = read
        return found

    def _global(self, part: _Part, share: Sequence[Piece], name: str, offset: int) -> HitBatch:
        """A piece's hits with the input's name and line numbers: the frame's lines moved
        by ``offset``; records of a range after the input's first are made from the hits
        (the worker sent those instead, see :func:`share_forms`)."""
        rules = self.rules
        tuples = part.hits
        frame = part.frame
        if offset and frame is not None:
            import polars as pl

            frame = frame.with_columns(pl.col("line") + offset)
        records = part.records if not offset else None
        return HitBatch(
            part.count,
            hits=None if tuples is None else hit_maker(tuples, [name] * len(share), rules, offset),
            records=records,
            frame=frame,
            rule_counts=part.rule_counts(len(rules)),
        )

    def read_bytes(self, share: Sequence[Piece]) -> int:
        return self.bytes.pop(id(share), 0)

    def fail(self, share: Sequence[Piece], reason: str) -> None:
        for piece in share:
            self.failed.setdefault(piece.index, reason)

    def finish(self, interrupted: bool) -> ScanStats:
        for index, reason in self.failed.items():
            if self.files[index].error is None:
                self.files[index].error = reason
        return ScanStats(self.files, 0.0, "rust", interrupted=interrupted)


def merge_shares(
    sources: Sequence[Source],
    rules: Sequence[Rule],
    shares: Sequence[Sequence[Piece]],
    outputs: dict[int, dict[str, Any]],
    failures: dict[int, str],
    max_examples: int,
    interrupted: bool = False,
) -> ScanResult:
    """The shares' outputs as one ScanResult, as a local scan of ``sources`` gives it (a
    share in neither ``outputs`` nor ``failures`` is missing: Ctrl-C)."""
    merger = ShareMerger(sources, rules, max_examples)
    hits = []
    for number, share in enumerate(shares):
        if number in failures:
            merger.fail(share, failures[number])
        elif number in outputs:
            hits += [hit for batch in merger.add(share, outputs[number]) for hit in batch.hits]
    return ScanResult(hits, merger.finish(interrupted))


# ---------------------------------------------------------------- worker side


@functools.lru_cache(maxsize=8)
def _scanner(rules_json: tuple[str, ...]) -> Any:
    from ._engine import Scanner

    return Scanner(list(rules_json))


@functools.lru_cache(maxsize=4)
def _filesystem(endpoint_url: str | None) -> Any:
    return s3_filesystem(endpoint_url)


def _engine_input(piece: Piece, endpoint_url: str | None) -> str | LazyStream | tuple[Any, ...]:
    """What the engine reads for a piece: a path or S3 object whole, or a byte range of one
    (``(path or stream, start, end)``); an S3 object is opened at its first read."""
    if piece.kind == "s3":
        fs = _filesystem(endpoint_url)

        def opener() -> BinaryIO:
            stream: BinaryIO = fs.open(
                piece.location, "rb", block_size=S3_BLOCK_SIZE, cache_type="readahead"
            )
            return stream

        stream = LazyStream(opener)
        return stream if piece.whole else (stream, piece.start, piece.end)
    return piece.location if piece.whole else (piece.location, piece.start, piece.end)


def share_forms(
    share: Sequence[Piece], names: Sequence[str], rules: Sequence[Rule], needs: Needs, rows: bool
) -> dict[str, Any]:
    """What a share's worker sends back, as ``scan_iter`` options: hit tuples, NDJSON records
    (``records=``, with the inputs' names), Arrow rows. The worker does not know how many
    lines come before a byte range (the client adds them once the ranges before are in), so a
    share holding a range after an input's first gets hit tuples instead of records, and the
    client builds those records from Hit objects; rows are moved by the client (their line
    column), whatever the range."""
    ranged = any(piece.start > 0 for piece in share)
    named = record_names([names[p.index] for p in share], rules)
    forms: dict[str, Any] = {}
    if RECORDS in needs and not ranged and named is not None:
        forms["records"] = True
    if FRAME in needs and rows and named is not None:
        forms["rows"] = True
    if forms:
        forms["names"] = named
    forms["hits"] = (
        HITS in needs
        or ALERTS in needs  # a cluster's alerts are built from Hit objects
        or (RECORDS in needs and "records" not in forms)
        or (FRAME in needs and "rows" not in forms)
    )
    return forms


@dataclass
class _Part:
    """A share's hits (or a piece's, cut from them) as the worker sent them."""

    count: int
    hits: list[Any] | None
    records: bytes | None
    frame: Any  # pl.DataFrame | None

    def part(self, start: int, stop: int) -> _Part:
        from .batch import cut_records

        if (start, stop) == (0, self.count):
            return self
        return _Part(
            stop - start,
            None if self.hits is None else self.hits[start:stop],
            None if self.records is None else cut_records(self.records, start, stop),
            None if self.frame is None else self.frame.slice(start, stop - start),
        )

    def rule_counts(self, rules: int) -> list[int] | None:
        if self.hits is None:
            return None
        counts = [0] * rules
        for hit in self.hits:
            counts[hit[2]] += 1
        return counts


def _share_batch(out: dict[str, Any]) -> _Part:
    """A worker's output as one part (a worker of an older form sent ``hits`` alone)."""
    hits = out.get("hits")
    rows = out.get("rows")
    frame = None
    if rows:
        import polars as pl

        from .report.frame import with_alert_columns  # the engine's rows have none

        frame = with_alert_columns(pl.concat([pl.read_ipc_stream(part) for part in rows]))
    count = out["count"] if "count" in out else len(hits or ())
    return _Part(count, hits, out.get("records"), frame)


def scan_share(
    share: Sequence[Piece],
    rules_json: tuple[str, ...],
    threads: int,
    prefilter: bool,
    max_examples: int,
    endpoint_url: str | None,
    max_line_bytes: int = MAX_LINE_BYTES,
    forms: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run on a worker: scan a share's pieces, reading them from their source. Returns the
    share's hit count and, as ``forms`` asks (:func:`share_forms`; default: hit tuples), the
    engine's raw hits (source = the piece's position in the share; for a byte range, line
    numbers count from its first line), NDJSON ``records`` (one ``bytes``) and Arrow ``rows``
    (a list of IPC streams), and its per-piece statistics (for a byte range, ``lines`` is the
    number of lines it owns)."""
    forms = {"hits": True} if forms is None else forms
    inputs = [_engine_input(piece, endpoint_url) for piece in share]
    run = EngineRun()
    count = 0
    hits: list[Any] | None = [] if forms.get("hits", True) else None
    records: list[bytes] | None = [] if forms.get("records") else None
    rows: list[bytes] | None = [] if forms.get("rows") else None
    rule_counts: list[int] | None = None
    try:
        for batch in rust_batches(
            _scanner(rules_json),
            inputs,
            run,
            threads=threads,
            prefilter=prefilter,
            max_examples=max_examples,
            max_line_bytes=min(max_line_bytes, 1 << 62),
            batch=BATCH_HITS if hits is not None else FAST_BATCH_HITS,
            **forms,
        ):
            count += batch.count
            if batch.rule_counts is not None:
                if rule_counts is None:
                    rule_counts = [0] * len(batch.rule_counts)
                for rule, n in enumerate(batch.rule_counts):
                    rule_counts[rule] += n
            if hits is not None and batch.hits is not None:
                hits += batch.hits
            if records is not None and batch.records is not None:  # bytes: sent back
                records.append(bytes(batch.records))
            if rows is not None and batch.rows is not None:
                rows.append(bytes(batch.rows))
    finally:  # the engine does not close the streams it is given, nor read a range to the end
        for item in inputs:
            stream = item[0] if isinstance(item, tuple) else item
            if isinstance(stream, LazyStream):
                stream.close()
    if run.interrupted:
        raise KeyboardInterrupt("scan interrupted on the worker")
    return {
        "count": count,
        "hits": hits,
        "records": None if records is None else b"".join(records),
        "rows": rows,
        "rule_counts": rule_counts,
        "files": list(run.stats or []),
    }
