"""The rust engine's stage hits go to the matchers inside the binding (``StageRouter``): the
same adds, refs, spill file and results as the scan layer's per-candidate Python loop."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from test_sequences_scan import ev, keyed, sample_rule, sequence_rule, write

from imds_scan import ScanConfig, scan, sequences
from imds_scan import plan as rule_plan
from imds_scan.rules import Rule, default_rules


def rules() -> list[Rule]:
    gap = sequence_rule(("a", "m", "b"), maxspan_ms=60_000, rule_id="gap")
    gap.ir["sequence"]["stages"][1]["missing"] = True
    # `[a] with runs=3` then [b]: one stage rule for three stages, the third joined by
    # another field (its candidates read for it, not copied).
    runs = sequence_rule(("a", "a", "a", "b"), maxspan_ms=30_000, rule_id="runs")
    runs.ir["sequence"]["stages"][2]["keys"] = [{"field": "host.name", "field_type": "keyword"}]
    twice = sample_rule("twice")  # a sample of two stages of one condition
    stages = twice.ir["sample"]["stages"]
    stages[1] = {**stages[1], "expr": stages[0]["expr"]}
    return [
        default_rules()[0],
        sequence_rule(until="z"),
        sequence_rule(("a", "a"), rule_id="aa"),  # two stages' hits on one line
        sample_rule(),
        gap,
        runs,
        twice,
    ]


@pytest.fixture
def inputs(tmp_path: Path) -> list[str]:
    imds = {"event": {"category": "network"}, "destination": {"ip": "169.254.169.254"}}
    actions = "aabmzx"
    many = [ev(i % 60, actions[i % 6], f"h{i % 7}") for i in range(3000)]
    many[10] = {**many[10], "@timestamp": "yesterday"}
    # More key tuples than the engine keeps read for a candidate: read again when added.
    many[20] = {**many[20], "host": {"id": [f"h{i}" for i in range(70)]}}
    return [
        write(tmp_path / "c.ndjson", *many),
        write(tmp_path / "a.ndjson", ev(1, "a"), imds, ev(3, "b"), ev(None, "a", "h2")),
        write(tmp_path / "b.ndjson", imds, ev(2, "b"), ev(8, "z", "h2")),
    ]


def outcome(inputs: list[str], config: ScanConfig, engine: str = "rust") -> tuple[Any, ...]:
    result = scan(inputs, rules=rules(), config=config, engine=engine)  # type: ignore[arg-type]
    stats = result.stats
    files = [(f.path, f.hits, f.lines) for f in stats.files]
    return keyed(result.hits), stats.no_time, stats.no_time_examples, files


@pytest.mark.parametrize(
    "config",
    [ScanConfig(), ScanConfig(threads=2), ScanConfig(since=datetime(2024, 5, 1, 0, 0, 20))],
    ids=["one-thread", "two-threads", "since"],
)
def test_batched_path_gives_the_per_candidate_results(
    inputs: list[str], config: ScanConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[int] = []
    real = sequences._router

    class Counting:
        def __init__(self, router: Any) -> None:
            self.router = router

        def add_batch(self, tuples: list[Any], ranks: list[int]) -> Any:
            batches.append(len(tuples))
            return self.router.add_batch(tuples, ranks)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.router, name)

    monkeypatch.setattr(sequences, "_router", lambda *a: Counting(real(*a)))
    # The batches' tuples through add_batch (not the engine routing them itself).
    monkeypatch.setattr(sequences.SequenceRun, "engine_router", lambda self: None)
    batched = outcome(inputs, config)
    assert batches, "the router took no batch"
    monkeypatch.setattr(sequences, "_router", lambda *a: None)  # the Python loop
    assert batched == outcome(inputs, config)
    assert any(h[3] == "sequence" for h in batched[0]) and any(h[3] == "sample" for h in batched[0])
    assert batched == outcome(inputs, ScanConfig(since=config.since), engine="python")


def test_batched_adds_are_the_per_candidate_adds(
    inputs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same candidates, order and refs (spill offsets) into every matcher, a matcher that is
    not the binding's included (it is called through its ``add``)."""
    adds: list[tuple[Any, ...]] = []
    real = sequences.make_matcher

    class Recording:
        def __init__(self, inner: Any, name: int) -> None:
            self.inner, self.name = inner, name

        def add(self, stage: int, rank: int, line: int, event: str, ref: int) -> None:
            adds.append((self.name, stage, rank, line, event, ref))
            self.inner.add(stage, rank, line, event, ref)

        def finish(self) -> Any:
            return self.inner.finish()

    made: list[int] = []

    def recording(engine: Any, ir_json: str, budget: int) -> Any:
        made.append(1)
        return Recording(real(engine, ir_json, budget), len(made))

    monkeypatch.setattr(sequences, "make_matcher", recording)

    def run() -> list[tuple[Any, ...]]:
        adds.clear()
        made.clear()
        hits = keyed(scan(inputs, rules=rules()).hits)
        return [*adds, *hits]

    batched = run()
    assert len(batched) > 3000
    monkeypatch.setattr(sequences, "_router", lambda *a: None)
    assert batched == run()


def test_router_spill_is_the_python_spill() -> None:
    """Same offsets (a line's hits share one copy), same candidates back, reads between
    writes."""
    router = sequences._router([None], None)
    assert router is not None
    rust, python = sequences._RouterSpill(router), sequences._Spill()
    texts = [f'{{"n": {i}, "pad": "{"é" * (i % 300)}"}}' for i in range(5000)]
    # Two stages' hits per line; ranks are the inputs' (one name, one rank).
    puts = [(f"f{i % 3}", i % 3, i // 6, texts[i // 2]) for i in range(len(texts))]
    offsets = [rust.put(*put) for put in puts]
    assert offsets == [python.put(*put) for put in puts]
    assert [rust.get(o) for o in offsets[::7]] == [python.get(o) for o in offsets[::7]]
    assert rust.get_many(offsets[::-5]) == python.get_many(offsets[::-5])
    assert rust.put("g", 1, 1, "{}") == python.put("g", 1, 1, "{}")
    assert rust.get(offsets[-1]) == (puts[-1][1], puts[-1][2], puts[-1][3])
    rust.close()
    python.close()
    with pytest.raises(RuntimeError, match="closed"):
        rust.get(0)


def test_router_spill_gives_back_texts_of_any_length() -> None:
    """Texts about the size the spill reads at once (4 KiB with the 20-byte header), far
    larger, tiny, and the file's last one, in any order."""
    router = sequences._router([None], None)
    assert router is not None
    rust = sequences._RouterSpill(router)
    sizes = [4096 - 20 - 1, 4096 - 20, 4096 - 20 + 1, 0, 9000, 100_000, 3, 8192 - 20]
    texts = [("é" * n)[: n // 2] + "x" * (n - 2 * (n // 2)) for n in sizes]
    puts = [("f", i % 2, i, text) for i, text in enumerate(texts)]
    offsets = [rust.put(*put) for put in puts]
    order = [7, 0, 5, 2, 1, 4, 3, 6, 7]
    for i in order:
        assert rust.get(offsets[i]) == puts[i][1:], sizes[i]
    assert rust.get_many([offsets[i] for i in order]) == [puts[i][1:] for i in order]
    rust.close()


def compressing_router(routes: Any, within: Any) -> Any:
    """The binding's router with every candidate past the first 1,000 bytes compressed."""
    import tempfile

    from imds_scan import _engine

    return _engine.StageRouter(list(routes), tempfile.gettempdir(), within, compress_from=1000)


def test_compressed_spill_gives_back_what_the_plain_one_does() -> None:
    """Past ``compress_from`` the candidates go to zstd blocks: the same offsets and texts
    back (read one by one and in chunks, while more come), in a fraction of the bytes."""
    plain = sequences._RouterSpill(sequences._router([None], None))
    packed = sequences._RouterSpill(compressing_router([None], None))
    texts = [
        f'{{"n": {i}, "pad": "{"é" * (i % 300)}", "x": "{"y" * (i % 7000)}"}}' for i in range(3000)
    ]
    puts = [(f"f{i % 3}", i % 3, i // 2, texts[i]) for i in range(len(texts))]
    offsets = []
    for k, put in enumerate(puts):
        offsets.append(packed.put(*put))
        assert offsets[-1] == plain.put(*put)
        if k % 400 == 399:  # reads between writes: some candidates still wait in memory
            assert packed.get(offsets[k // 2]) == plain.get(offsets[k // 2])
    assert [packed.get(o) for o in offsets[::-3]] == [plain.get(o) for o in offsets[::-3]]
    assert packed.get_many(offsets[::5]) == plain.get_many(offsets[::5])
    spilled, on_disk = packed.router.spill_sizes()
    assert spilled == plain.router.spill_sizes()[0] > 5_000_000
    assert on_disk < spilled / 5, (on_disk, spilled)
    plain.close()
    packed.close()
    with pytest.raises(RuntimeError, match="closed"):
        packed.get(offsets[0])


def test_a_scan_with_a_compressed_spill_gives_the_same_results(
    inputs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The engine routes the stage hits itself (scan threads writing the spill), then the
    # results read their events back from the blocks.
    expected = outcome(inputs, ScanConfig(threads=2))
    made: list[Any] = []

    def router(routes: Any, within: Any) -> Any:
        made.append(compressing_router(routes, within))
        return made[-1]

    monkeypatch.setattr(sequences, "_router", router)
    assert outcome(inputs, ScanConfig(threads=2)) == expected
    assert made and any(h[3] == "sequence" for h in expected[0])
    spilled, on_disk = made[-1].spill_sizes()
    assert 0 < on_disk < spilled / 2, (on_disk, spilled)


def test_a_run_of_one_condition_is_one_stage_rule_with_the_results_of_several(
    inputs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = rule_plan.plan_rules(rules(), (), ())
    runs = [i for i, r in enumerate(plan.engine_rules) if r.id.startswith("runs/")]
    assert [plan.engine_rules[i].id for i in runs] == ["runs/stage1", "runs/stage4"]
    assert [(plan.stage[i], plan.also[i]) for i in runs] == [(0, (1, 2)), (3, ())]
    for rule_id in ("aa", "twice"):
        (one,) = [i for i, r in enumerate(plan.engine_rules) if r.id.startswith(f"{rule_id}/")]
        assert (plan.stage[one], plan.also[one]) == (0, (1,))
    # Until and differing stages stay apart.
    seq = [plan.also[i] for i, r in enumerate(plan.engine_rules) if r.id.startswith("seq/")]
    assert seq == [(), (), ()]
    # The engine's routing, the router's batches (--since) and the Python loop.
    since = datetime(2024, 5, 1, 0, 0, 20)
    ways = {
        "routed": (ScanConfig(threads=2), "rust"),
        "batched": (ScanConfig(threads=2, since=since), "rust"),
        "loop": (ScanConfig(since=since), "python"),
    }
    grouped = {way: outcome(inputs, config, engine) for way, (config, engine) in ways.items()}
    # Each stage a stage rule of its own: the same results, statistics and candidates.
    monkeypatch.setattr(
        rule_plan, "_runs", lambda rule, stages: ((i, i + 1) for i in range(len(stages)))
    )
    assert rule_plan.plan_rules(rules(), (), ()).also == [()] * (
        len(plan.also) + sum(map(len, plan.also))
    )
    for way, (config, engine) in ways.items():
        assert outcome(inputs, config, engine) == grouped[way], way
    assert {"runs", "twice"} <= {h[2] for h in grouped["routed"][0]}
