"""Sequence and sample conformance: spec/vectors/sequences.jsonl (spec/vectors/README.md).

Each vector is a `sequence` or `sample` query, optional rule-file keys, the events (one input or
several) and the results Elasticsearch gives, in its output order (its EQL documentation, QA
specs and matcher are the reference; the vectors are our own). Every vector runs through the
public API (``imds_scan.scan``) on both engines, the Rust one with its prefilter on and off, with
one and two threads, the inputs given in order and reversed: each run must give exactly the
expected results.

A vector marked ``pending`` (none is, today) would follow Elasticsearch where spec/sequences.md
has not settled the semantics yet: while it disagrees with the engines it is an expected
failure that names the reason, and it must pass once the spec and the engines agree."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from imds_scan import Rule, ScanConfig, scan
from imds_scan.rules import load_rule_file

VECTORS = Path(__file__).resolve().parent.parent / "spec" / "vectors" / "sequences.jsonl"
CASES: list[dict[str, Any]] = [
    json.loads(line) for line in VECTORS.read_text("utf-8").splitlines() if line.strip()
]
IDS = [case["name"] for case in CASES]
KEYS = {"name", "source", "query", "rule", "field_types", "events", "inputs", "expected", "pending"}
RULE_KEYS = {
    "timestamp_field",
    "timestamp_override",
    "tiebreaker_field",
    "size",
    "max_samples_per_key",
}


def inputs_of(case: dict[str, Any]) -> list[list[Any]]:
    return case["inputs"] if "inputs" in case else [case["events"]]


def flat_events(case: dict[str, Any]) -> list[Any]:
    return [event for events in inputs_of(case) for event in events]


def stage_count(case: dict[str, Any]) -> int:
    return max((len(r["events"]) for r in case["expected"]), default=0)


def test_the_vectors_are_well_formed() -> None:
    assert len(CASES) >= 80
    assert len(set(IDS)) == len(IDS), "vector names are unique"
    for case in CASES:
        name = case["name"]
        assert set(case) <= KEYS, name
        assert ("events" in case) != ("inputs" in case), name
        assert case["source"], name
        assert case["query"].split()[0] in ("sequence", "sample"), name
        assert set(case.get("rule", {})) <= RULE_KEYS, name
        events = flat_events(case)
        for event in events:  # a raw line must still be one JSON object
            assert isinstance(json.loads(event) if isinstance(event, str) else event, dict)
        widths = {len(r["events"]) for r in case["expected"]}
        assert len(widths) <= 1, f"{name}: every result has one entry per stage"
        for result in case["expected"]:
            assert set(result) == {"events", "join_keys"}, name
            present = [i for i in result["events"] if i is not None]
            assert present, f"{name}: a result has at least one event"
            assert all(0 <= i < len(events) for i in present), name
            if case["query"].startswith("sample"):
                assert len(set(present)) == len(present), f"{name}: a sample's events differ"
        if "pending" in case:
            assert case["pending"].strip(), name


def test_the_vectors_cover_the_contract() -> None:
    """What issue 17 asks the vectors to pin, each at least once, settled where the spec is."""
    queries = [case["query"] for case in CASES]
    text = " ".join(queries)
    for needle in ("sequence by", "with maxspan=", " until ", "with runs=", "![", "sample by",
                   "| head", "| tail", "by ?"):  # fmt: skip
        assert needle in text, needle
    for unit in ("ms", "s", "m", "h", "d"):
        assert any(f"maxspan={n}{unit} " in text for n in range(1, 1000)), unit
    rule_keys = {key for case in CASES for key in case.get("rule", {})}
    assert rule_keys == RULE_KEYS
    assert sum("inputs" in case for case in CASES) >= 3
    settled = [case for case in CASES if "pending" not in case]
    assert len(settled) >= 60
    names = " ".join(case["name"] for case in settled)
    for topic in ("competing", "maxspan", "until", "runs", "equal timestamps", "tiebreaker",
                  "without a timestamp", "head", "tail", "by:", "inputs:"):  # fmt: skip
        assert topic in names, topic
    # missing stages leading, in the middle and trailing; samples with several per key
    missing = [r["events"] for case in CASES for r in case["expected"] if "![" in case["query"]]
    assert any(e[0] is None for e in missing) and any(e[-1] is None for e in missing)
    assert any(None in e[1:-1] for e in missing)
    assert any(
        len({tuple(r["join_keys"]) for r in case["expected"]}) < len(case["expected"])
        for case in CASES
        if case["query"].startswith("sample")
    )


# ---------------------------------------------------------------------------- the replay


def rule_toml(case: dict[str, Any]) -> str:
    """The vector as an Elastic-style rule file: its query and rule-file keys under [rule]."""
    lines = [
        "[rule]",
        'name = "vector"',
        'rule_id = "vector"',
        'severity = "low"',
        'type = "eql"',
        'language = "eql"',
        f"query = {json.dumps(case['query'])}",
    ]
    lines += [f"{key} = {json.dumps(value)}" for key, value in case.get("rule", {}).items()]
    return "\n".join(lines) + "\n"


@cache
def rule_of(index: int, folder: Path) -> Rule:
    """The vector's rule, loaded from its rule file (rule-file keys and all)."""
    case = CASES[index]
    path = folder / f"vector-{index}.toml"
    path.write_text(rule_toml(case), encoding="utf-8")
    return load_rule_file(path, field_types=case.get("field_types"))


def write_inputs(
    folder: Path, case: dict[str, Any]
) -> tuple[list[str], dict[tuple[str, int], int]]:
    """The vector's inputs as files whose names sort in the vector's order; the flat index of
    each (file name, line)."""
    paths, where = [], {}
    flat = 0
    for n, events in enumerate(inputs_of(case)):
        path = folder / f"in-{n:02d}.ndjson"
        lines = [e if isinstance(e, str) else json.dumps(e, ensure_ascii=False) for e in events]
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        paths.append(str(path))
        for line in range(1, len(lines) + 1):
            where[(path.name, line)] = flat
            flat += 1
    return paths, where


def results_of(hits: list[Any], where: dict[tuple[str, int], int], lines: list[Any]) -> list[Any]:
    """The scan's sequence and sample results in the vectors' terms; checks each event's text
    and the first event at the top level on the way."""
    out = []
    for hit in hits:
        assert hit.branch in ("sequence", "sample"), hit.branch
        indexes: list[int | None] = []
        for event in hit.events:
            if event.source is None:
                assert event.line is None and event.event_text is None
                indexes.append(None)
                continue
            index = where[(Path(event.source).name, event.line)]
            expected = lines[index]
            expected = json.loads(expected) if isinstance(expected, str) else expected
            if "_index" in expected and isinstance(expected.get("_source"), dict):
                expected = expected["_source"]  # an exporter's wrapper: its event
            assert json.loads(event.event_text) == expected
            indexes.append(index)
        first = next(e for e in hit.events if e.source is not None)
        assert (hit.source, hit.line) == (first.source, first.line)
        out.append({"events": indexes, "join_keys": list(hit.join_keys)})
    return out


VARIANTS = {
    "rust": [(p, t, r) for p in (True, False) for t in (1, 2) for r in (False, True)],
    "python": [(False, t, r) for t in (1, 2) for r in (False, True)],
}


@pytest.mark.parametrize("engine", ["rust", "python"])
@pytest.mark.parametrize("index", range(len(CASES)), ids=IDS)
def test_sequence_vector(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, index: int, engine: str
) -> None:
    case = CASES[index]
    paths, where = write_inputs(tmp_path, case)
    rule = rule_of(index, tmp_path_factory.getbasetemp())
    lines = flat_events(case)
    failures, outcomes = [], set()
    for prefilter, threads, reverse in VARIANTS[engine]:
        config = ScanConfig(engine=engine, prefilter=prefilter, threads=threads)  # type: ignore[arg-type]
        result = scan(paths[::-1] if reverse else paths, rules=[rule], config=config)
        got = results_of(result.hits, where, lines)
        outcomes.add(json.dumps(got))
        if got != case["expected"]:
            variant = f"prefilter={prefilter} threads={threads} reversed={reverse}"
            failures.append(f"{variant}: got {got}")
    # The result never depends on the prefilter, threads or input order, pending or not.
    assert len(outcomes) == 1, f"{case['name']}: the variants disagree\n" + "\n".join(failures)
    if failures and "pending" in case:
        pytest.xfail(f"pending: {case['pending']}")
    assert not failures, f"{case['name']}: {case['query']}\nwant {case['expected']}\n" + "\n".join(
        failures
    )


def test_the_replay_reads_results_as_the_vectors_write_them(tmp_path: Path) -> None:
    """The replay's own bookkeeping (file names, lines, missing stages), on results made from
    the expectations of every vector with several inputs or a missing stage."""
    from types import SimpleNamespace

    cases = [c for c in CASES if "inputs" in c or "![" in c["query"]]
    for n, case in enumerate(cases):
        folder = tmp_path / str(n)
        folder.mkdir()
        paths, where = write_inputs(folder, case)
        place = {
            index: (paths[int(Path(name).stem[3:])], line) for (name, line), index in where.items()
        }
        lines = flat_events(case)
        hits = []
        for result in case["expected"]:
            events = [
                SimpleNamespace(source=None, line=None, event_text=None)
                if i is None
                else SimpleNamespace(
                    source=place[i][0],
                    line=place[i][1],
                    event_text=lines[i] if isinstance(lines[i], str) else json.dumps(lines[i]),
                )
                for i in result["events"]
            ]
            first = next(e for e in events if e.source is not None)
            hits.append(
                SimpleNamespace(
                    branch=case["query"].split()[0],
                    events=events,
                    join_keys=tuple(result["join_keys"]),
                    source=first.source,
                    line=first.line,
                )
            )
        assert results_of(hits, where, lines) == case["expected"], case["name"]
