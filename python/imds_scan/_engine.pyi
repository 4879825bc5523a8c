"""Type stubs for the Rust extension module (crates/imds-py)."""

from collections.abc import Callable, Sequence
from os import PathLike
from types import TracebackType
from typing import Any, Protocol, final

__all__ = [
    "STATS_FIELDS",
    "Buffer",
    "HitBatch",
    "MatchResult",
    "ResultChunk",
    "ScanIter",
    "Scanner",
    "SequenceMatcher",
    "StageRouter",
    "__version__",
    "analyze",
    "wildcard_on_text",
]

__version__: str
# The keys of a per-input statistics dict, defined once in Rust (FileStats::FIELDS): bytes,
# events, ..., error (text), error_kind, error_offset, error_line (None without an error), ...,
# lines (for a byte range: the lines it owns).
STATS_FIELDS: tuple[str, ...]

def analyze(analyzer: str, text: str) -> list[str]:
    """The tokens of ``text`` under a text analyzer (``standard``, ``powershell_script``;
    spec/kql.md, Analysis). ValueError for another analyzer."""

def wildcard_on_text(
    analyzer: str, pattern: str, analyze_wildcard: bool = False
) -> list[tuple[str, str]]:
    """What each token is tested against for a ``wildcard_query`` literal on a text field:
    ``(kind, text)`` pairs, kind ``term``, ``prefix``, ``wildcard`` or ``exists`` (spec/kql.md,
    Analysis). ValueError for another analyzer."""

_Witness = tuple[str, str, str, str]
_HitTuple = tuple[int, int, int, int, _Witness | None, str]

class _Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...

_Input = str | PathLike[str] | tuple[str | PathLike[str] | _Seekable, int, int] | _Readable
# names=(source names, one per input; per rule: (name, id, severity, branch names)).
_RecordNames = tuple[Sequence[str], Sequence[tuple[str, str, str, Sequence[str]]]]

class _Seekable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...
    def seek(self, offset: int, whence: int = ..., /) -> int: ...

@final
class Scanner:
    def __new__(cls, rules: list[str], threads: int = 0) -> Scanner:
        """Compile rules (IR JSON), on ``threads`` threads at most (0: one per core)."""
    def needles(self) -> list[str] | None: ...
    @staticmethod
    def needles_each(rules: list[str], threads: int = 0) -> list[list[str] | None]:
        """Each rule's needles as ``Scanner([rule]).needles()`` gives them, the rules compiled
        side by side on ``threads`` threads at most (0: one per core) with the GIL released;
        ValueError if one is invalid."""
    def open_lines(self, sample: bytes) -> list[int]:
        """Per rule, how many lines of ``sample`` a scan would evaluate it on: the candidate
        lines, narrowed by the rule gate when several rules run (blank lines: none)."""
    def scan(
        self,
        inputs: Sequence[_Input],
        threads: int = 0,
        buffer_size: int = 4194304,
        prefilter: bool = True,
        max_examples: int = 5,
        progress: Callable[[int], object] | None = None,
        max_line_bytes: int = 67108864,
    ) -> tuple[list[_HitTuple], list[dict[str, Any]], bool]: ...
    def scan_iter(
        self,
        inputs: Sequence[_Input],
        threads: int = 0,
        buffer_size: int = 4194304,
        prefilter: bool = True,
        max_examples: int = 5,
        progress: Callable[[int], object] | None = None,
        max_line_bytes: int = 67108864,
        batch: int = 4096,
        records: _RecordNames | bool | None = None,
        hits: bool = True,
        reorder_bytes: int = 0,
        rows: bool = False,
        names: _RecordNames | None = None,
        since: int | None = None,
        until: int | None = None,
        alerts: Sequence[tuple[int | None, str]] | None = None,
        router: StageRouter | None = None,
        ranks: Sequence[int] | None = None,
    ) -> ScanIter:
        """Scan like ``scan``, handing hits out while the scan runs, in ``scan``'s order
        (input order, then line, then rule), in memory that does not grow with the hits.

        Yields :class:`HitBatch` es of 1 to ``batch`` hits. ``names`` (source names, rule
        descriptions) names the inputs and rules in records and rows. ``records``: True (with
        ``names``), or the names themselves (the older spelling of ``names=..., records=True``)
        gives each batch's NDJSON ``records``; ``hits=False`` leaves ``HitBatch.hits`` None, so
        that no Python object is built per hit. ``rows=True`` (with ``names``) gives each
        batch's ``rows``. ``alerts`` (with ``names``): per rule, (its ``event.severity`` or
        None, its ``"rule": ...`` and ``"threat": ...`` members as ``json.dumps`` writes
        them) gives each batch's ``alerts``. Memory: about ``batch`` hits per batch, at most 2
        batches waiting, plus the scan's own reorder buffers. A partial batch is sent when a
        hit or an input's end comes 200 ms or more after the last batch, and at the end, so a
        slow trickle of hits is not held back until ``batch`` is reached. Per-input
        statistics arrive as inputs finish (``files``), not in the batches.

        ValueError, before anything is scanned, when the names do not fit the inputs and
        rules, or when a name is a str with no UTF-8 form (surrogates, e.g. ``os.fsdecode``
        of a file name that is not UTF-8: build such records in Python), or records or rows
        are asked for without names.

        Ctrl-C while waiting for a batch: the scan is cancelled and stopped, ``files`` gets
        every input's statistics (unfinished ones with an ``interrupted`` error),
        ``cancelled`` becomes True, and KeyboardInterrupt is raised from ``next()``; the
        batches already taken hold whole hits and records, and the hits the scan found
        before it stopped come from the following ``next()`` calls (then StopIteration).
        An exception from ``progress`` or a signal handler does the same and propagates.
        Leaving the loop early: call ``close()`` (or use ``with``); dropping the iterator
        also cancels the scan and joins its threads. ``reorder_bytes``: the hits a part of
        the scan ahead of the output order may keep before it waits (0 = 16 MiB; at most one
        such part per thread). ``since``/``until`` (microseconds since the epoch, either
        may be None): only the hits whose event's ``@timestamp`` (its first value, parsed as
        spec/semantics.md says) is in ``[since, until)`` are given out; the others are
        counted in ``HitBatch.outside`` and ``rule_counts``, and an event without a
        parsable ``@timestamp`` is outside.

        ``router`` (a :class:`StageRouter` without a time window; not with ``since`` or
        ``until``) with ``ranks`` (each input's rank): the stage hits of its
        ``SequenceMatcher`` s go into them inside the scan, in scan order, read in the threads
        that find them; they are never in a batch (``rule_counts`` counts them, the router's
        ``candidates()`` too). Its matchers are the scan's until it ends (done, ``close()``,
        Ctrl-C, dropped): then they are back, ``finish()`` works. A failure to spill or add
        a candidate cancels the scan and is raised (OSError) by a following ``next()``.
        """

@final
class HitBatch:
    """One batch of a streaming scan's hits, in order; nothing in it is a Python object per
    hit unless ``hits`` was asked for."""

    @property
    def count(self) -> int:
        """Hits in the batch (at least 1, unless all of them were outside the time window:
        then ``outside`` says how many)."""
    @property
    def hits(self) -> list[_HitTuple] | None:
        """The hit tuples as ``Scanner.scan`` gives them, or None with ``hits=False``."""
    @property
    def records(self) -> bytes | None:
        """The hits' NDJSON lines (each ending in ``\\n``), byte for byte what
        ``records.Hit.to_json`` writes encoded as UTF-8 (line numbers as the engine gives
        them: add no offset); no record holds a raw ``\\n``, so ``records.split(b"\\n")[k]``
        is the record of hit k. None without records."""
    @property
    def alerts(self) -> bytes | None:
        """The hits' ECS alert documents, one line each (ending in ``\\n``), byte for byte
        what ``report.alerts.alert_json`` writes for each hit, encoded as UTF-8; None
        without ``alerts``."""
    @property
    def rows(self) -> bytes | None:
        """The hits' rows as an Arrow IPC stream (one schema, one record batch), or None
        without ``rows``: ``polars.read_ipc_stream(rows)`` is the frame
        ``report.frame.hits_frame`` builds from the same hits (its SCHEMA: text columns as
        Arrow large_utf8, ``line`` int64, ``@timestamp`` timestamp[us, UTC] read as
        spec/semantics.md says), row k being hit k."""
    @property
    def records_buffer(self) -> Buffer | None:
        """``records`` as the engine's own buffer, not copied (``memoryview(buffer)``)."""
    @property
    def alerts_buffer(self) -> Buffer | None:
        """``alerts`` as the engine's own buffer, not copied."""
    @property
    def rows_buffer(self) -> Buffer | None:
        """``rows`` as the engine's own buffer, not copied."""
    @property
    def rule_counts(self) -> list[int]:
        """Hits per rule index in this batch, those outside the time window included."""
    @property
    def outside(self) -> int:
        """Hits of this batch's stretch of the scan left out as outside the time window."""
    def position(self, k: int) -> tuple[int, int]:
        """(input index, line) of hit k (0-based); IndexError out of range."""
    def __len__(self) -> int: ...

@final
class Buffer:
    """Bytes the engine made, lent read-only through the buffer protocol
    (``memoryview(buffer)``, a file's ``write``, pyarrow) without a copy."""

    def __len__(self) -> int: ...

@final
class ScanIter:
    """A running streaming scan (``Scanner.scan_iter``)."""

    def __iter__(self) -> ScanIter: ...
    def __next__(self) -> HitBatch: ...
    def close(self) -> None:
        """Cancel the scan if it runs and wait for its threads (hits not taken are dropped,
        statistics kept). Idempotent."""
    def __enter__(self) -> ScanIter: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> None: ...
    @property
    def files(self) -> list[dict[str, Any]]:
        """Per-input statistics (as ``scan`` gives them) of the inputs finished so far, in
        input order: all of them once the iterator is exhausted or closed."""
    @property
    def cancelled(self) -> bool:
        """The scan stopped early: Ctrl-C, ``close()`` before the end, or dropped."""
    @property
    def done(self) -> bool:
        """The scan has ended and its threads are joined."""
    @property
    def records(self) -> bool:
        """Batches carry NDJSON records."""
    @property
    def bytes_read(self) -> int:
        """Bytes read from the sources so far."""

@final
class SequenceMatcher:
    """The matcher of one sequence or sample rule (spec/sequences.md, "Matchers"), with the
    interface of ``imds_scan.reference.sequence.SequenceMatcher``."""

    def __new__(
        cls,
        rule_ir_json: str,
        memory_budget: int = 268435456,
        spill_dir: str | PathLike[str] | None = None,
    ) -> SequenceMatcher:
        """ValueError when the IR is invalid. About ``memory_budget`` bytes of candidate
        records stay in memory; past it, sorted runs go to files in ``spill_dir`` (default:
        the system's temporary directory), removed when matched."""
    def add(self, stage: int, rank: int, line: int, event: str, ref: int) -> None:
        """Add a candidate of ``stage`` (``len(stages)``: the until stage) at (input
        ``rank``, ``line``); ``ref`` comes back in the results. ValueError for a stage the
        rule does not have; OSError when spilling fails; RuntimeError after ``finish``."""
    def finish(self) -> MatchResult:
        """Match (the GIL released) and give the results; the matcher is then finished.
        Signal handlers run meanwhile: what one raises (KeyboardInterrupt) stops the
        matching and comes out of here."""

@final
class StageRouter:
    """A scan's stage hits into their rules' matchers (a ``SequenceMatcher`` with no Python
    call per candidate, any other object through its ``add``), and the spill file of the
    candidates' (input rank, line, text) that a ``ref`` (its offset) finds again."""

    def __new__(
        cls,
        routes: list[tuple[object, int | Sequence[int]] | None],
        spill_dir: str | PathLike[str],
        within: Callable[[str], bool] | None = None,
        compress_from: int = ...,
    ) -> StageRouter:
        """``routes[i]``: engine rule ``i``'s (matcher, stage), None for a single-event rule;
        the stage may be several stages (each hit is a candidate of each, in order);
        ``within(event_text)``: whether a candidate is inside the time window (None: no
        window). The spill file goes to ``spill_dir``; OSError when it cannot be made. The
        candidates past its first ``compress_from`` bytes (default 1 GiB) are written in
        zstd blocks."""
    def add_batch(self, tuples: list[_HitTuple], ranks: list[int]) -> tuple[list[int], list[int]]:
        """The stage hits of a batch's hit tuples into their matchers, each with its spill
        offset as ``ref``; ``ranks[i]``: input ``i``'s rank. Gives the indexes of the other
        hits and the stage hits per input index."""
    def put(self, rank: int, line: int, text: str) -> int:
        """Spill a candidate; the last line spilled is not written again. Its offset."""
    def get(self, offset: int) -> tuple[int, int, str]:
        """The candidate at ``offset``: (input rank, line, text)."""
    def read_results(self, results: Sequence[Sequence[int | None]]) -> ResultChunk:
        """The events of results (``results[k]``: result ``k``'s refs, None for a
        missing-event stage) read back in one call, each ref once."""
    def read_matches(self, found: MatchResult, start: int, stop: int) -> ResultChunk:
        """``read_results`` of results ``start:stop`` of ``found``, with their join keys."""
    def candidates(self) -> dict[int, int]:
        """Stage hits per input rank that scans took themselves (``scan_iter(router=...)``)."""
    def spill_sizes(self) -> tuple[int, int]:
        """The spilled candidates' bytes, and the spill file's size (what is written so far)."""
    def close(self) -> None:
        """Close and remove the spill file."""

@final
class ResultChunk:
    """The events of a chunk of results, read back from the spill file and kept in Rust."""

    def __len__(self) -> int: ...
    def events(self) -> dict[int, tuple[int, int, str]]:
        """Each event read: ref -> (input rank, line, text)."""
    def firsts(self) -> list[tuple[int, int] | None]:
        """Per result: its first event's (input rank, line); None when it has none."""
    def matches(self) -> list[tuple[list[int | None], list[object]]]:
        """Per result: (its refs, its join key values), as ``MatchResult.matches``."""
    def records(self, labels: bytes, names: list[bytes]) -> bytes:
        """The results' NDJSON records (``records.record_parts``): ``labels``, the rule's
        part after the line number; ``names[rank]``, an input's name as JSON. Only for
        results read with their keys (``StageRouter.read_matches``); ValueError else."""

@final
class MatchResult:
    """What ``SequenceMatcher.finish`` gives."""

    @property
    def matches(self) -> list[tuple[list[int | None], list[object]]]:
        """Per result, in output order: each stage's ref (None: a missing-event stage) and
        the join key values (str, int, float, bool or None); made anew on each read."""
    def __len__(self) -> int: ...
    @property
    def no_time(self) -> int:
        """Candidates without a parsable time."""
    @property
    def no_time_refs(self) -> list[int]:
        """The refs of the first 5 of them."""
