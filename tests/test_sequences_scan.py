"""The scan layer of sequence and sample rules (python/imds_scan/sequences.py,
spec/sequences.md "Scan layer"): stage rules, stage hits kept from the output and fed to the
matcher, results as Hits after the single-event hits, independent of the order the inputs are
given in, of threads and of --cluster.

The rules are hand-written IR (no compiler needed); the matchers are the engines' own."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import ENGINES
from imds_scan import ScanConfig, scan, sequences
from imds_scan.batch import FRAME, HITS, RECORDS, hit_records
from imds_scan.plan import RulePlan, plan_rules, stage_rules
from imds_scan.records import Hit
from imds_scan.rules import Rule, default_rules
from imds_scan.run import open_scan

# ---------------------------------------------------------------- rules and events


def pred(field: str, value: str) -> dict[str, Any]:
    return {"node": "pred", "field": field, "field_type": "keyword", "op": "eq", "values": [value]}


HOST_ID = {"field": "host.id", "field_type": "keyword"}


def sequence_rule(
    actions: tuple[str, ...] = ("a", "b"),
    until: str | None = None,
    maxspan_ms: int | None = None,
    rule_id: str = "seq",
) -> Rule:
    """``sequence by host.id [event.action == A] [event.action == B] … [until …]``."""
    body: dict[str, Any] = {
        "timestamp_field": "@timestamp",
        "tiebreaker_field": None,
        "maxspan_ms": maxspan_ms,
        "stages": [
            {"expr": pred("event.action", a), "keys": [HOST_ID], "missing": False} for a in actions
        ],
        "until": None
        if until is None
        else {"expr": pred("event.action", until), "keys": [HOST_ID]},
        "pipes": [],
        "size": None,
    }
    if until is not None:
        body["until"] = {"expr": pred("event.action", until), "keys": [HOST_ID]}
    ir = {"ir_version": 1, "id": rule_id, "name": f"Rule {rule_id}", "severity": "medium"}
    ir["sequence"] = body
    return Rule(rule_id, f"Rule {rule_id}", "medium", "sequence …", ir, source="<test>")


def sample_rule(rule_id: str = "smp") -> Rule:
    """``sample by host.id`` over :func:`sequence_rule`'s stages."""
    rule = sequence_rule(rule_id=rule_id)
    body = rule.ir.pop("sequence")
    rule.ir["sample"] = {
        "timestamp_field": "@timestamp",
        "tiebreaker_field": None,
        "stages": [{"expr": s["expr"], "keys": s["keys"]} for s in body["stages"]],
        "max_samples_per_key": None,
        "pipes": [],
        "size": None,
    }
    return rule


def ev(second: int | None, action: str, host: str = "h1", **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"event": {"action": action}, "host": {"id": host, "name": host}}
    if second is not None:
        doc["@timestamp"] = f"2024-05-01T00:00:{second:02d}Z"
    return {**doc, **extra}


IMDS = {"event": {"category": "network"}, "destination": {"ip": "169.254.169.254"}}


def write(path: Path, *events: dict[str, Any] | str) -> str:
    path.write_text("".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in events))
    return str(path)


def keyed(hits: list[Hit]) -> list[tuple[Any, ...]]:
    """What two scans must agree on, hit by hit (sequence results with their events)."""
    return [
        (
            h.source,
            h.line,
            h.rule.id,
            h.branch,
            h.event_text,
            h.join_keys,
            None if h.events is None else [(e.source, e.line, e.event_text) for e in h.events],
        )
        for h in hits
    ]


@pytest.fixture
def spread(tmp_path: Path) -> list[str]:
    """Sequences whose events span files, with ties broken by the inputs' names: c.ndjson's
    stage-1 event at second 1 comes after a.ndjson's (same time, later rank) and so is the one
    the h1 sequence keeps; an IMDS hit in b.ndjson; h2's sequence inside b.ndjson."""
    return [
        write(tmp_path / "c.ndjson", ev(1, "a", pad=1), ev(5, "x"), ev(9, "b", "h2")),
        write(tmp_path / "a.ndjson", ev(1, "a"), ev(3, "b"), ev(7, "a", "h2")),
        write(tmp_path / "b.ndjson", IMDS, ev(2, "b"), ev(8, "z", "h2")),
    ]


# ---------------------------------------------------------------- stage rules


def test_stage_rules_one_branch_per_stage_and_until_with_the_allowlist() -> None:
    from imds_scan.config import condition_allowlist

    (rule,) = condition_allowlist(['process.name == "ok"']).apply(
        [sequence_rule(("a", "b", "c"), until="stop")]
    )
    stages = stage_rules(rule)
    assert [s.id for s in stages] == ["seq/stage1", "seq/stage2", "seq/stage3", "seq/until"]
    assert [s.branch_names for s in stages] == [["stage1"], ["stage2"], ["stage3"], ["until"]]
    exclusion = {"node": "not", "arg": pred("process.name", "ok")}
    assert stages[1].ir["branches"][0]["expr"]["args"] == [pred("event.action", "b"), exclusion]
    assert stages[3].ir["branches"][0]["expr"]["args"] == [pred("event.action", "stop"), exclusion]
    for s in stages:
        assert (s.name, s.severity) == (rule.name, rule.severity)
        assert "sequence" not in s.ir and "allowlist" not in s.ir
    # A hand-made IR's allowlist key goes to every stage rule.
    hand = sequence_rule()
    hand.ir["allowlist"] = [pred("process.name", "ok")]
    assert [s.ir["allowlist"] for s in stage_rules(hand)] == [hand.ir["allowlist"]] * 2


def test_plan_puts_host_filters_in_stage_rules_and_maps_them_to_their_rule() -> None:
    rules = [default_rules()[0], sequence_rule(until="stop")]
    plan: RulePlan = plan_rules(rules, ["web-*"], [])
    assert [r.id for r in plan.rules] == ["imds-default", "seq"]
    assert [r.id for r in plan.engine_rules] == [
        "imds-default",
        "seq/stage1",
        "seq/stage2",
        "seq/until",
    ]
    assert plan.owner == [0, 1, 1, 1] and plan.stage == [None, 0, 1, 2]
    for r in plan.engine_rules:
        first = r.ir["branches"][0]["expr"]["args"][0]
        assert first["field"] == "host.name" and first["values"] == ["web-*"]
    assert plan.rules[1] is rules[1]  # the rule as loaded: its IR is the matcher's


# ---------------------------------------------------------------- the scan


@pytest.mark.parametrize("engine", ENGINES)
def test_results_after_single_event_hits_stage_hits_never_out(
    spread: list[str], engine: str
) -> None:
    rules = [default_rules()[0], sequence_rule()]
    result = scan(spread, rules=rules, engine=engine)  # type: ignore[arg-type]
    a, b, c = sorted(spread)
    kinds = [(h.rule.id, h.branch) for h in result.hits]
    assert kinds == [("imds-default", "network"), ("seq", "sequence"), ("seq", "sequence")]
    first, h1, h2 = result.hits
    assert (first.source, first.line, first.events) == (b, 1, None)
    # h1: c's stage-1 event (same second as a's, later rank) then b's stage 2 at second 2.
    assert h1.events is not None and h1.join_keys == ("h1",)
    assert [(e.source, e.line) for e in h1.events] == [(c, 1), (b, 2)]
    assert (h1.source, h1.line, h1.event_text) == (c, 1, h1.events[0].event_text)
    assert json.loads(h1.event_text) == ev(1, "a", pad=1)
    assert h2.join_keys == ("h2",) and h2.events is not None
    assert [(e.source, e.line) for e in h2.events] == [(a, 3), (c, 3)]
    # Counts: 1 IMDS hit in b and the results under their first event's input.
    hits = {Path(f.path).name: f.hits for f in result.stats.files}
    assert hits == {"a.ndjson": 1, "b.ndjson": 1, "c.ndjson": 1}


def test_ndjson_record_of_a_result(spread: list[str]) -> None:
    result = scan(spread, rules=[sequence_rule()])
    record = json.loads(result.hits[0].to_json())
    first = result.hits[0]
    assert list(record) == [
        "source",
        "line",
        "rule",
        "rule_id",
        "severity",
        "branch",
        "matched",
        "join_keys",
        "events",
        "event",
    ]
    assert record["branch"] == "sequence" and record["matched"] is None
    assert record["join_keys"] == ["h1"] and record["rule_id"] == "seq"
    assert [(e["source"], e["line"]) for e in record["events"]] == [
        (e.source, e.line) for e in first.events or ()
    ]
    assert record["events"][0]["event"] == record["event"] == ev(1, "a", pad=1)
    assert (record["source"], record["line"]) == (first.source, first.line)


def test_missing_event_record() -> None:
    from imds_scan.records import SeqEvent

    hit = Hit(
        "f",
        2,
        sequence_rule(),
        "sequence",
        None,
        '{"a": 1}',
        events=(SeqEvent("f", 2, '{"a": 1}'), SeqEvent(None, None, None)),
        join_keys=(None, 3),
    )
    record = json.loads(hit.to_json())
    assert record["events"] == [
        {"source": "f", "line": 2, "event": {"a": 1}},
        {"missing": True, "source": None, "line": None, "event": None},
    ]
    assert record["join_keys"] == [None, 3]


def test_result_independent_of_given_order_threads_and_engine(spread: list[str]) -> None:
    rules = [default_rules()[0], sequence_rule(until="z"), sequence_rule(("a", "a"), rule_id="aa")]
    want = keyed(scan(spread, rules=rules, engine="python").hits)
    assert [h[3] for h in want].count("sequence") >= 2
    for order in (spread, spread[::-1], [spread[1], spread[2], spread[0]]):
        for threads in (1, 2, 4):
            got = scan(order, rules=rules, config=ScanConfig(threads=threads))
            assert keyed(got.hits) == want, (order, threads)


def test_one_memory_budget_shared_by_the_scans_matchers(
    spread: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Elastic's set holds 216 sequence and sample rules: a budget each would be 54 GiB."""
    budgets: list[int] = []
    real = sequences.make_matcher

    def recording(engine: Any, ir_json: str, memory_budget: int) -> Any:
        budgets.append(memory_budget)
        return real(engine, ir_json, memory_budget)

    monkeypatch.setattr(sequences, "make_matcher", recording)
    rules = [sequence_rule(until="z"), sequence_rule(("a", "a"), rule_id="aa")]
    want = keyed(scan(spread, rules=rules, engine="python").hits)
    budgets.clear()
    assert keyed(scan(spread, rules=rules).hits) == want
    assert budgets == [sequences.MEMORY_BUDGET // 2] * 2
    assert sequences.rule_budget(100_000) == sequences.MIN_RULE_BUDGET


def test_stage_hits_reach_the_matcher_without_hit_objects(
    spread: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stage hits are most hits with a broad stage: the matcher reads the engine's tuples."""
    import imds_scan.engines

    made: list[int] = []
    real = imds_scan.engines.to_hit

    def counting(*args: Any, **kwargs: Any) -> Hit:
        made.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(imds_scan.engines, "to_hit", counting)
    for engine in ENGINES:
        made.clear()
        got = scan(spread, rules=[sequence_rule(until="z")], engine=engine).hits
        assert got and all(h.branch == "sequence" for h in got)
        assert not made, engine
        made.clear()
        both = scan(spread, rules=[default_rules()[0], sequence_rule(until="z")], engine=engine)
        single = [h for h in both.hits if h.branch != "sequence"]
        assert len(made) == len(single) > 0, engine  # only the single-event rule's hits


def test_run_scan_refuses_sequence_rules_clearly(spread: list[str]) -> None:
    from imds_scan import run_scan

    with pytest.raises(ValueError, match=r"'seq' is a sequence: run_scan scans single-event"):
        run_scan(spread, [default_rules()[0], sequence_rule()])


def test_until_and_maxspan_reach_the_matcher(tmp_path: Path) -> None:
    f = write(
        tmp_path / "x.ndjson",
        ev(1, "a"),
        ev(2, "stop"),
        ev(3, "b"),  # the until dropped the pending sequence
        ev(10, "a"),
        ev(40, "b"),  # 30 s after its first event: beyond a 20 s maxspan
        ev(41, "a"),
        ev(50, "b"),
    )
    rules = [sequence_rule(until="stop", maxspan_ms=20_000)]
    (only,) = scan([f], rules=rules).hits
    assert [e.line for e in only.events or ()] == [6, 7]


def test_since_until_select_candidates(tmp_path: Path) -> None:
    from datetime import datetime

    f = write(tmp_path / "x.ndjson", ev(1, "a"), ev(5, "a"), ev(9, "b"))
    config = ScanConfig(until=datetime(2024, 5, 1, 0, 0, 3))  # only second 1 is a candidate
    assert scan([f], rules=[sequence_rule()], config=config).hits == []
    config = ScanConfig(since=datetime(2024, 5, 1, 0, 0, 3))  # second 5's a, then second 9's b
    (only,) = scan([f], rules=[sequence_rule()], config=config).hits
    assert [e.line for e in only.events or ()] == [2, 3]


def test_max_hits_counts_results(spread: list[str]) -> None:
    rules = [default_rules()[0], sequence_rule()]
    result = scan(spread, rules=rules, config=ScanConfig(max_hits=2))
    assert [h.branch for h in result.hits] == ["network", "sequence"]
    assert result.stats.stopped_at == (result.hits[1].source, result.hits[1].line)


@pytest.mark.parametrize("engine", ENGINES)
def test_candidates_without_time_are_counted_with_examples(tmp_path: Path, engine: str) -> None:
    f = write(
        tmp_path / "x.ndjson",
        ev(None, "a"),
        ev(1, "a"),
        {**ev(None, "b"), "@timestamp": "yesterday"},
        ev(2, "b"),
    )
    result = scan([f], rules=[sequence_rule()], engine=engine)  # type: ignore[arg-type]
    (only,) = result.hits
    assert [e.line for e in only.events or ()] == [2, 4]
    assert result.stats.no_time == 2
    assert result.stats.no_time_examples == [(f, 1), (f, 3)]


@pytest.mark.parametrize(
    "needs", [{HITS}, {RECORDS}, {FRAME}, {RECORDS, FRAME}], ids=lambda n: "+".join(sorted(n))
)
def test_every_batch_form_of_results_and_counts(spread: list[str], needs: set[str]) -> None:
    """Whatever the writers ask for (the engine's records and rows fast paths included), the
    batches hold no stage hit and their rule counts are per loaded rule."""
    rules = [default_rules()[0], sequence_rule()]
    stream = open_scan(spread, rules=rules, needs=frozenset(needs))
    records: list[dict[str, Any]] = []
    rows = 0
    counts = [0, 0]
    for batch in stream:
        if batch.rule_counts is not None:
            assert len(batch.rule_counts) == 2
            counts = [x + y for x, y in zip(counts, batch.rule_counts, strict=True)]
        if RECORDS in needs:
            records += [json.loads(line) for line in batch.records.splitlines()]
        if FRAME in needs:
            assert set(batch.frame["branch"]) <= {"network", "sequence"}
            rows += batch.frame.height
    stream.close()
    assert counts == [1, 2]
    if RECORDS in needs:
        assert [r["branch"] for r in records] == ["network", "sequence", "sequence"]
        assert records[1]["join_keys"] == ["h1"] and len(records[1]["events"]) == 2
    if FRAME in needs:
        assert rows == 3


def test_allowlisted_events_are_no_candidates(tmp_path: Path) -> None:
    from imds_scan.config import condition_allowlist

    f = write(
        tmp_path / "x.ndjson",
        ev(1, "a", process={"name": "ok"}),
        ev(2, "b", process={"name": "ok"}),
        ev(3, "a"),
        ev(4, "b"),
    )
    rules = condition_allowlist(['process.name == "ok"']).apply([sequence_rule()])
    result = scan([f], rules=rules)
    (only,) = result.hits
    assert [e.line for e in only.events or ()] == [3, 4]
    assert result.stats.allowlist == []  # a sequence's entries are not counted one by one


def test_damaged_input_keeps_the_sequences_read(tmp_path: Path) -> None:
    lines = [ev(1, "a"), ev(2, "b")] + [ev(3, "x", pad="y" * 200) for _ in range(2000)]
    data = gzip.compress("".join(json.dumps(e) + "\n" for e in lines).encode())
    broken = tmp_path / "x.ndjson.gz"
    broken.write_bytes(data[: len(data) // 2])
    result = scan([str(broken)], rules=[sequence_rule()])
    (only,) = result.hits
    assert [e.line for e in only.events or ()] == [1, 2]
    assert result.stats.errors and result.stats.files[0].hits == 1


# ---------------------------------------------------------------- the CLI, in process


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Run the CLI in this process with ``rules`` as the loaded rules (no compiler needed)."""
    from typer.testing import CliRunner

    from imds_scan import cli as cli_mod

    def run(rules: list[Rule], *args: str) -> Any:
        monkeypatch.setattr(cli_mod, "_load_rules", lambda *a, **k: rules)
        return CliRunner().invoke(cli_mod.app, [*args, "--no-config"])

    yield run


@pytest.mark.parametrize("fmt", ["ndjson", "json", "csv", "table", "alerts", "parquet"])
def test_cli_every_format_takes_results(
    cli: Any, spread: list[str], tmp_path: Path, fmt: str
) -> None:
    out = tmp_path / f"out.{fmt}"
    rules = [default_rules()[0], sequence_rule()]
    done = cli(rules, *spread, "-f", fmt, "-o", str(out), "--report", str(tmp_path / "r.html"))
    assert done.exit_code == 1, done.output
    assert out.stat().st_size > 0
    assert "3 hit(s)" in done.stderr
    if fmt == "ndjson":
        records = [json.loads(line) for line in out.read_text().splitlines()]
        assert [r["branch"] for r in records] == ["network", "sequence", "sequence"]


def test_cli_reports_candidates_without_time(cli: Any, tmp_path: Path) -> None:
    f = write(tmp_path / "x.ndjson", *[ev(None, "a") for _ in range(7)], ev(1, "a"), ev(2, "b"))
    done = cli([sequence_rule()], f, "-f", "ndjson", "-q")
    assert done.exit_code == 1, done.output
    assert "7 sequence/sample candidate(s) without a parsable timestamp" in done.stderr
    assert f"{f}:5)" in done.stderr and f"{f}:6" not in done.stderr
    assert len(done.stdout.splitlines()) == 1


def test_cli_damaged_input_exit_2_with_results(cli: Any, tmp_path: Path) -> None:
    lines = [ev(1, "a"), ev(2, "b")] + [ev(3, "x", pad="y" * 200) for _ in range(2000)]
    data = gzip.compress("".join(json.dumps(e) + "\n" for e in lines).encode())
    broken = tmp_path / "x.ndjson.gz"
    broken.write_bytes(data[: len(data) // 2])
    done = cli([sequence_rule()], str(broken), "-f", "ndjson")
    assert done.exit_code == 2, done.output
    (record,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert record["branch"] == "sequence"


def test_cluster_same_results_as_local_scan(tmp_path: Path) -> None:
    """Workers return stage hits as any hits (byte ranges of a file too); the client
    matches them: the same results as a local scan."""
    pytest.importorskip("distributed", reason="dask[distributed] is not installed")
    big = [ev(i % 60, "ab"[i % 2], f"h{i % 7}", pad="p" * 300) for i in range(600)]
    files = [
        write(tmp_path / "z.ndjson", *big, IMDS),
        write(tmp_path / "m.ndjson", ev(30, "a", "h3"), IMDS, ev(31, "b", "h3")),
    ]
    rules = [
        default_rules()[0],
        sequence_rule(until="stop"),
        sequence_rule(rule_id="again"),
        sequence_rule(("a", "a", "b"), rule_id="runs"),  # one stage rule for two stages
    ]
    local = scan(files, rules=rules)
    assert sum(h.branch == "sequence" for h in local.hits) > 20
    assert any(h.rule.id == "runs" for h in local.hits)
    config = ScanConfig(cluster="local:2", range_size=20_000)  # z.ndjson: ~10 ranges
    clustered = scan(files[::-1], rules=rules, config=config)  # given in the other order
    # Single-event hits come in the order the inputs are given; the results do not.
    assert sorted(keyed(clustered.hits)[:2]) == sorted(keyed(local.hits)[:2])
    assert keyed(clustered.hits)[2:] == keyed(local.hits)[2:]
    assert [vars(f) for f in clustered.stats.files[::-1]] == [vars(f) for f in local.stats.files]


# ---------------------------------------------------------------- end to end (the compiler too)

SEQUENCE_RULE = """[metadata]
creation_date = "2026/12/05"

[rule]
name = "curl, then the metadata address, on one host"
rule_id = "seq-e2e"
severity = "high"
type = "eql"
language = "eql"
query = '''
sequence by host.id with maxspan=1m
  [process where process.name == "curl"]
  [network where destination.ip == "169.254.169.254"]
'''
"""


def _e2e_events(tmp_path: Path) -> list[str]:
    def proc(second: int, host: str) -> dict[str, Any]:
        return {
            "@timestamp": f"2024-05-01T00:00:{second:02d}Z",
            "event": {"category": "process", "type": "start"},
            "host": {"id": host},
            "process": {"name": "curl"},
        }

    def net(second: int, host: str) -> dict[str, Any]:
        return {
            "@timestamp": f"2024-05-01T00:00:{second:02d}Z",
            "event": {"category": "network"},
            "host": {"id": host},
            "destination": {"ip": "169.254.169.254"},
        }

    return [
        write(tmp_path / "2.ndjson", net(5, "h1"), proc(20, "h2"), "not json"),
        write(tmp_path / "1.ndjson", proc(1, "h1"), net(21, "h2"), net(30, "h3")),
    ]


@pytest.mark.parametrize("engine", ENGINES)
def test_cli_end_to_end_sequence_rule_file(tmp_path: Path, engine: str) -> None:
    """A sequence rule file through the compiler, the engine, the matcher and the NDJSON
    writer (a subprocess: the engines' own matchers). Skipped while the compiler refuses
    sequences or the engine's matcher is missing."""
    import subprocess
    import sys

    from imds_scan.rules import RuleFileError, parse_rule_text

    try:
        parse_rule_text(SEQUENCE_RULE, "seq.toml")
    except RuleFileError as exc:
        pytest.skip(f"the compiler does not take sequences yet: {exc}")
    module = "imds_scan.reference.sequence" if engine == "python" else "imds_scan._engine"
    import importlib

    try:
        importlib.import_module(module).SequenceMatcher  # noqa: B018 (is it there?)
    except (ImportError, AttributeError):
        pytest.skip(f"{module}.SequenceMatcher is not there yet")
    rule = tmp_path / "seq.toml"
    rule.write_text(SEQUENCE_RULE)
    files = _e2e_events(tmp_path)
    options = ["--rule", str(rule), "--rule", "default", "-f", "ndjson", "--engine", engine]
    done = subprocess.run(
        [sys.executable, "-m", "imds_scan", *files, *options, "--no-rule-cache"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    one, two = sorted(files)
    singles = [(r["source"], r["line"]) for r in records if r["rule_id"] == "imds-default"]
    assert singles == [(files[0], 1), (files[1], 2), (files[1], 3)]  # in the order given
    results = [r for r in records if r["rule_id"] == "seq-e2e"]
    assert records[-len(results) :] == results  # after the single-event hits
    assert [(r["join_keys"], [(e["source"], e["line"]) for e in r["events"]]) for r in results] == [
        (["h1"], [(one, 1), (two, 1)]),
        (["h2"], [(two, 2), (one, 2)]),
    ]
    for r in results:
        assert r["branch"] == "sequence" and r["matched"] is None
        assert (r["source"], r["line"]) == (r["events"][0]["source"], r["events"][0]["line"])
        assert r["event"] == r["events"][0]["event"]


def test_host_filters_in_every_stage_for_show_rule() -> None:
    from imds_scan.filters import host_filter_node
    from imds_scan.sequences import effective_rules

    rules = [default_rules()[0], sequence_rule(until="stop")]
    event, seq = effective_rules(rules, ["web-*"], ["web-9"])
    node = host_filter_node(["web-*"], ["web-9"])
    assert event.ir["branches"][0]["expr"]["args"][0] == node
    body = seq.ir["sequence"]
    for part in [*body["stages"], body["until"]]:
        assert part["expr"]["args"][0] == node
    engine_rules = plan_rules(rules, ["web-*"], ["web-9"]).engine_rules
    parts = [*body["stages"], body["until"]]
    assert [r.ir["branches"][0]["expr"] for r in engine_rules[1:]] == [p["expr"] for p in parts]
    assert effective_rules(rules) == rules


def test_show_rule_prints_a_sequences_allowlist_in_every_stage(cli: Any) -> None:
    from imds_scan.config import condition_allowlist

    rules = condition_allowlist(['process.name == "ok"']).apply([sequence_rule(until="stop")])
    done = cli(rules, "--show-rule", "--host", "web-*")
    assert done.exit_code == 0, done.output
    stages = [line for line in done.stdout.splitlines() if "any where" in line]
    assert len(stages) == 3, done.stdout
    for line in stages:
        assert 'host.name : "web-*"' in line and 'process.name != "ok"' in line, line


def test_spill_gives_back_each_candidate_and_writes_a_line_once() -> None:
    from imds_scan.sequences import _Spill

    spill = _Spill()
    texts = [f'{{"n": {i}, "pad": "{"é" * (i % 300)}"}}' for i in range(5000)]
    offsets = [spill.put("f", i % 3, i, text) for i, text in enumerate(texts)]
    assert spill.put("f", 2, 4999, texts[-1]) == offsets[-1]  # a second stage's hit, same line
    assert [spill.get(o) for o in offsets[::-7]] == [
        (i % 3, i, texts[i]) for i in range(len(texts))
    ][::-7]
    later = spill.put("g", 1, 1, "{}")  # after reads
    assert spill.get(later) == (1, 1, "{}") and spill.get(offsets[0]) == (0, 0, texts[0])
    spill.close()


def test_sample_results_and_missing_stages_in_results(tmp_path: Path) -> None:
    f = write(
        tmp_path / "x.ndjson",
        ev(9, "b", "h2"),
        ev(1, "a", "h2"),
        ev(2, "a", "h1"),
        ev(3, "m", "h1"),  # between h1's a and b: no h1 sequence with ![m]
        ev(4, "b", "h1"),
        ev(None, "b", "h3"),  # a sample needs no time
        ev(None, "a", "h3"),
    )
    sample = sample_rule()
    gap = sequence_rule(("a", "m", "b"), maxspan_ms=60_000, rule_id="gap")
    gap.ir["sequence"]["stages"][1]["missing"] = True
    result = scan([f], rules=[sample, gap])
    hits = result.hits
    got = [(h.rule.id, h.branch, h.join_keys, [e.line for e in h.events or ()]) for h in hits]
    assert got == [
        ("smp", "sample", ("h1",), [3, 5]),
        ("smp", "sample", ("h2",), [2, 1]),
        ("smp", "sample", ("h3",), [7, 6]),
        ("gap", "sequence", ("h2",), [2, None, 1]),
    ]
    last = json.loads(result.hits[-1].to_json())
    assert last["events"][1] == {"missing": True, "source": None, "line": None, "event": None}
    assert (last["source"], last["line"]) == (f, 2)
    assert result.stats.no_time == 2  # the gap rule's h3 events (a sample needs no time)


_MEMORY_CHILD = """
import sys
sys.path.insert(0, sys.argv[2])
import imds_scan.sequences as sq
from imds_scan.reference.sequence import MatchResult
from imds_scan.run import open_scan
from test_sequences_scan import sequence_rule

class Discard:  # a matcher that keeps one ref: what else stays is the scan layer's
    def add(self, stage, rank, line, event, ref):
        self.last = ref
    def finish(self):
        return MatchResult([([0, self.last], ["h"])], 0, [])

sq.make_matcher = lambda engine, ir, budget: Discard()
from imds_scan.run import ScanConfig
for batch in open_scan([sys.argv[1]], rules=[sequence_rule()], config=ScanConfig(threads=1)):
    (result,) = batch.hits
print(result.events[1].line)
"""
# Peak RSS of a child from a small wrapper: a process started from a big one (pytest) reports
# its parent's peak as its own.
_WRAPPER = """
import resource, subprocess, sys
done = subprocess.run([sys.executable, "-c", *sys.argv[1:]], capture_output=True, text=True)
sys.stderr.write(done.stderr)
print(done.returncode, done.stdout.strip(), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def test_candidate_texts_stay_out_of_memory(tmp_path: Path) -> None:
    """48 MB of candidate text through the scan layer: its peak memory grows by the engine's
    buffers and a few batches, not by the texts (they are in the spill file, read back for
    the results)."""
    import subprocess
    import sys

    def peak_kb(lines: int) -> int:
        path = tmp_path / f"{lines}.ndjson"
        write(path, *[ev(i % 60, "ab"[i % 2], pad="x" * 1200) for i in range(lines)])
        here = str(Path(__file__).parent)
        done = subprocess.run(
            [sys.executable, "-c", _WRAPPER, _MEMORY_CHILD, str(path), here],
            capture_output=True,
            text=True,
            timeout=300,
        )
        code, line, peak = map(int, done.stdout.split())
        assert code == 0, done.stderr[-2000:]
        assert line == lines  # the last candidate, read back from the spill file
        return peak

    # The engine's buffers and a batch of Hits grow the peak (about 20 MB); kept texts, 65 MB.
    small, large = peak_kb(1000), peak_kb(40_000)
    assert large - small < 36 * 1024, (small, large)


def test_the_matcher_gets_the_rule_without_its_allowlist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An IR made by hand with an ``allowlist`` beside its ``sequence``: the stage rules run
    it, the matchers (which refuse the key) get the IR without it."""
    from imds_scan.reference.sequence import SequenceMatcher

    given: list[dict[str, Any]] = []

    def make(engine: str, ir: str, budget: int) -> SequenceMatcher:
        given.append(json.loads(ir))
        return SequenceMatcher(ir, budget)

    monkeypatch.setattr("imds_scan.sequences.make_matcher", make)
    rule = sequence_rule()
    rule.ir["allowlist"] = [pred("process.name", "ok")]
    f = write(tmp_path / "x.ndjson", ev(1, "a", process={"name": "ok"}), ev(2, "a"), ev(3, "b"))
    (only,) = scan([f], rules=[rule]).hits
    assert [e.line for e in only.events or ()] == [2, 3]
    assert given == [{k: v for k, v in rule.ir.items() if k != "allowlist"}]


@pytest.mark.parametrize("engine", ["rust", "python"])
def test_a_stage_reads_its_keys_from_the_event_it_matched(tmp_path: Path, engine: str) -> None:
    # An exporter's wrapper is its `_source`: the stage rule matches that object, and the
    # join keys and time are read from it too, though it holds a `_source` of its own
    # (a field like any other: a hostile line must not join its event to another host).
    def wrapped(event: dict[str, Any], inner: dict[str, Any] | None = None) -> dict[str, Any]:
        source = event if inner is None else {**event, "_index": "x", "_source": inner}
        return {"_index": "logs", "_id": "1", "_source": source}

    path = write(
        tmp_path / "dump.ndjson",
        wrapped(ev(1, "a", "h1"), inner=ev(1, "a", "h2")),
        wrapped(ev(2, "b", "h2")),
        wrapped(ev(3, "b", "h1"), inner=ev(9, "b", "h2")),
    )
    hits = scan([path], rules=[sequence_rule()], engine=engine).hits  # type: ignore[arg-type]
    assert [(h.join_keys, [e.line for e in h.events or ()]) for h in hits] == [(("h1",), [1, 3])]


def test_result_records_are_their_hits_records(tmp_path: Path) -> None:
    # Results' records are made without Hits when no writer wants Hits: the same bytes as
    # the Hits' records, missing-event stages, odd names and keys included.
    gap = sequence_rule(("a", "m", "b"), rule_id="gap")
    gap.ir["sequence"]["stages"][1]["missing"] = True
    name = tmp_path / 'o"dd é\\.ndjson'
    inputs = [
        write(name, ev(1, "a", 'h"é'), ev(2, "b", 'h"é'), ev(3, "a", "h2"), ev(4, "b", "h2")),
        write(tmp_path / "b.ndjson", ev(5, "a", "h3"), ev(6, "m", "h3"), ev(7, "b", "h3")),
        # A name that is not UTF-8: its lone surrogate goes out as an escape.
        write(tmp_path / os.fsdecode(b"c\xff.ndjson"), ev(8, "a", "h4"), ev(9, "b", "h4")),
    ]
    # Keys of every JSON kind the binding writes itself, doubles as Python's repr writes them.
    typed = sequence_rule(rule_id="typed")
    for stage in typed.ir["sequence"]["stages"]:
        stage["keys"] = [
            HOST_ID,
            {"field": "m.x", "field_type": "double"},
            {"field": "m.n", "field_type": "long"},
            {"field": "m.b", "field_type": "boolean"},
        ]
    values = [1e-05, 1e16, 0.1, 123.456, 12345678901234567.0, -0.0, 1e-4, 5e-324, 100.0]
    inputs.append(
        write(
            tmp_path / "typed.ndjson",
            *(
                ev(second + step, action, f"t{second}", m={"x": x, "n": -(2**63), "b": True})
                for second, x in enumerate(values)
                for step, action in ((0, "a"), (1, "b"))
            ),
        )
    )
    rules = [sequence_rule(), sample_rule(), gap, typed]
    for needs in ({RECORDS}, {RECORDS, HITS}):
        stream = open_scan(inputs, rules=rules, needs=frozenset(needs))
        made: set[str] = set()
        for batch in stream:
            if batch.count:
                assert batch.records == hit_records(batch.hits)
                assert [batch.position(k) for k in range(batch.count)] == [
                    (h.source, h.line) for h in batch.hits
                ]
                made |= {h.rule.id for h in batch.hits}
        stream.close()
        assert made == {"seq", "smp", "gap", "typed"}
