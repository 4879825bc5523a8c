"""The Rust engine's scan takes the stage hits of the binding's matchers itself
(``Scanner.scan_iter(router=…)``): read where they are found, spilled and added in scan
order, never handed to Python; the matchers come back however the scan ends."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_sequence_router import inputs, outcome, rules  # noqa: F401  (a fixture)
from test_sequences_scan import ev, write

from imds_scan import ScanConfig, sequences
from imds_scan._engine import Scanner, SequenceMatcher, StageRouter
from imds_scan.plan import plan_rules, rule_kind


def _paths(monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    """Send the stage hits down one path: ``engine`` (the scan routes them), ``batch`` (the
    router's add_batch on the batches' tuples) or ``loop`` (the Python loop)."""
    if path != "engine":
        monkeypatch.setattr(sequences.SequenceRun, "engine_router", lambda self: None)
    if path == "loop":
        monkeypatch.setattr(sequences, "_router", lambda *a: None)


@pytest.mark.parametrize("budget", ["memory", "spilled"])
def test_the_engine_routed_stage_hits_give_the_other_paths_results(
    inputs: list[str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    budget: str,
) -> None:
    if budget == "spilled":  # every matcher spills sorted runs of a few records
        monkeypatch.setattr(sequences, "MEMORY_BUDGET", 1)
        monkeypatch.setattr(sequences, "MIN_RULE_BUDGET", 256)
    seen: list[int] = []  # the engine rules of the hit tuples that reach Python
    stage_rules: set[int] = set()
    strip = sequences.SequenceRun.strip

    def watching(self: sequences.SequenceRun, batch: Any) -> Any:
        stage_rules.update(self.stage_rules)
        if batch.raw is not None:
            seen.extend(t[2] for t in batch.raw.tuples)
        return strip(self, batch)

    monkeypatch.setattr(sequences.SequenceRun, "strip", watching)
    got = {}
    for path in ["engine", "batch", "loop"]:
        with monkeypatch.context() as patch:
            _paths(patch, path)
            seen.clear()
            got[path] = outcome(inputs, ScanConfig(threads=2))
            if path == "engine":
                assert seen and stage_rules and not stage_rules & set(seen)
            else:
                assert stage_rules & set(seen)
    assert got["engine"] == got["batch"] == got["loop"]
    hits = got["engine"][0]
    assert {h[3] for h in hits} >= {"sequence", "sample"}
    assert got["engine"][1] > 0  # candidates without a time
    assert got["engine"] == outcome(inputs, ScanConfig(), engine="python")


def test_a_routed_scan_keeps_more_hits_ahead_of_the_output(
    inputs: list[str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Routed stage hits wait in the engine's reorder like any hit: a scan that routes them has
    # a larger window (with 4 MiB the threads waited for the head); one that does not keeps
    # the window that bounds many hits' memory.
    from imds_scan import engines

    windows: list[int | None] = []
    real = engines.rust_batches

    def recording(scanner: Any, inputs: list[Any], run: Any, **options: Any) -> Any:
        windows.append(options.get("reorder_bytes"))
        return real(scanner, inputs, run, **options)

    monkeypatch.setattr(engines, "rust_batches", recording)
    routed = outcome(inputs, ScanConfig(threads=2))
    with monkeypatch.context() as patch:
        _paths(patch, "batch")
        batched = outcome(inputs, ScanConfig(threads=2))
    assert routed == batched
    assert windows == [engines.ROUTED_REORDER_BYTES, None]  # None: REORDER_BYTES
    assert engines.ROUTED_REORDER_BYTES > engines.REORDER_BYTES


def _setup(tmp_path: Path, budget: int = 1 << 20) -> tuple[Any, ...]:
    """A Scanner of rules()' engine rules, their matchers and a router of them."""
    plan = plan_rules(rules(), [], [])
    scanner = Scanner(plan.engine_json)
    matchers = {
        i: SequenceMatcher(json.dumps(rule.ir), budget)
        for i, rule in enumerate(plan.rules)
        if rule_kind(rule) != "event"
    }
    routes = [
        None if stage is None else (matchers[plan.owner[i]], stage)
        for i, stage in enumerate(plan.stage)
    ]
    return plan, scanner, matchers, StageRouter(routes, tmp_path)


def _results(matchers: dict[int, Any]) -> list[Any]:
    return [(r.matches, r.no_time) for r in (m.finish() for m in matchers.values())]


def test_a_batch_holds_no_stage_hit_and_the_matchers_get_them(
    inputs: list[str],  # noqa: F811
    tmp_path: Path,
) -> None:
    plan, scanner, matchers, router = _setup(tmp_path)
    ranks = [2, 0, 1]  # c, a, b by name
    rules_of = []
    with scanner.scan_iter(inputs, threads=2, batch=7, router=router, ranks=ranks) as scan:
        for batch in scan:
            rules_of += [t[2] for t in batch.hits]
            assert batch.count == len(batch.hits)
    assert rules_of and all(plan.stage[r] is None for r in rules_of)
    routed = _results(matchers)
    # The same candidates added one by one (the Python loop) give the same results.
    plan, scanner, matchers, other = _setup(tmp_path)
    hits, _, _ = scanner.scan(inputs)
    candidates: dict[int, int] = {}
    for source, line, rule, _, _, text in hits:
        if plan.stage[rule] is not None:
            rank = ranks[source]
            candidates[rank] = candidates.get(rank, 0) + 1
            ref = other.put(rank, line, text)
            matchers[plan.owner[rule]].add(plan.stage[rule], rank, line, text, ref)
    assert router.candidates() == candidates
    assert routed == _results(matchers)
    assert any(matches for matches, _ in routed)
    (ref,) = [r for r in routed[0][0][0][0] if r is not None][:1]
    assert router.get(ref)[0] in (0, 1, 2)


class _Slow:
    """A binary stream that takes a while: 4 KiB per read, 5 ms each."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def read(self, n: int) -> bytes:
        time.sleep(0.005)
        chunk = self.data[self.at : self.at + min(n, 4096)]
        self.at += len(chunk)
        return chunk


def _slow_input(tmp_path: Path) -> _Slow:
    path = Path(write(tmp_path / "slow.ndjson", *[ev(i % 60, "ab"[i % 2]) for i in range(8000)]))
    return _Slow(path.read_bytes())


def test_the_matchers_are_back_after_close_mid_scan(tmp_path: Path) -> None:
    _, scanner, matchers, router = _setup(tmp_path)
    scan = scanner.scan_iter(
        [_slow_input(tmp_path)], batch=1, router=router, ranks=[0], buffer_size=4096
    )
    with pytest.raises(RuntimeError, match="in use by a scan"):
        next(iter(matchers.values())).add(0, 0, 1, "{}", 0)
    with pytest.raises(RuntimeError, match="in use by a scan"):
        scanner.scan_iter([], router=router, ranks=[])
    time.sleep(0.3)
    scan.close()
    assert scan.cancelled
    results = _results(matchers)  # finish() works
    assert 0 < sum(router.candidates().values()) < 32_000  # of 5 + 3 per two lines
    assert any(matches for matches, _ in results)


def test_the_matchers_are_back_after_ctrl_c(tmp_path: Path) -> None:
    _, scanner, matchers, router = _setup(tmp_path)

    def interrupt(_: int) -> None:
        raise KeyboardInterrupt

    scan = scanner.scan_iter(
        [_slow_input(tmp_path)],
        batch=1,
        router=router,
        ranks=[0],
        buffer_size=4096,
        progress=interrupt,
    )
    with pytest.raises(KeyboardInterrupt):
        for _ in scan:
            pass
    list(scan)  # the hits found before
    assert scan.cancelled and scan.done
    _results(matchers)
    assert 0 < sum(router.candidates().values()) < 32_000  # of 5 + 3 per two lines


def test_the_matchers_are_back_when_the_iterator_is_dropped(tmp_path: Path) -> None:
    _, scanner, matchers, router = _setup(tmp_path)
    scan = scanner.scan_iter([_slow_input(tmp_path)], router=router, ranks=[0], buffer_size=4096)
    del scan
    _results(matchers)


def test_a_spill_failure_in_the_scan_is_raised(tmp_path: Path) -> None:
    """The spill file closed under the scan: it stops, and next() raises the OSError."""
    _, scanner, matchers, router = _setup(tmp_path)
    scan = scanner.scan_iter(
        [_slow_input(tmp_path)], batch=1, router=router, ranks=[0], buffer_size=4096
    )
    router.close()
    with pytest.raises(OSError, match="spill file is closed"):
        for _ in scan:
            pass
    assert scan.done
    _results(matchers)


def test_a_router_is_refused_with_a_time_window(tmp_path: Path) -> None:
    _, scanner, matchers, router = _setup(tmp_path)
    with pytest.raises(ValueError, match="since/until"):
        scanner.scan_iter([], router=router, ranks=[], since=0)
    with pytest.raises(ValueError, match="ranks"):
        scanner.scan_iter([], router=router, ranks=[1])
    windowed = StageRouter([None, *[(m, 0) for m in matchers.values()]], tmp_path, bool)
    with pytest.raises(ValueError, match="time window"):
        scanner.scan_iter([], router=windowed, ranks=[])
    _results(matchers)  # not lent


def test_a_spill_file_that_cannot_grow_is_one_clear_error(tmp_path: Path) -> None:
    """The engine's routed stage hits fill the spill file past what the process may write
    (EFBIG, as a full disk): one line naming the file's directory, exit 2."""
    import resource
    import signal
    import tempfile

    from test_sequences_scan import SEQUENCE_RULE

    rule = tmp_path / "seq.toml"
    rule.write_text(SEQUENCE_RULE)
    curl = {"event": {"category": "process"}, "process": {"name": "curl"}, "pad": "x" * 500}
    path = write(tmp_path / "big.ndjson", *[{**curl, "n": i} for i in range(6000)])

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    done = subprocess.run(
        [sys.executable, "-m", "imds_scan", path, "--rule", str(rule), "--no-rule-cache", "-q"],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=small_files,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.startswith(
        "imds-scan: error: cannot write the sequence candidates' spill file in "
        f"{tempfile.gettempdir()} (TMPDIR): File too large"
    ), done.stderr
    assert len(done.stderr.splitlines()) == 1 and not done.stdout
