"""new_terms and threshold matchers (spec/kql.md, "Rule types"): scenario timelines, each
asserted on both the plain reference and the product matcher; a differential test between
them; the product matcher's memory bound."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from imds_scan.kibana_rules import Alert, KibanaRuleIRError, ThresholdResult, make_matcher
from imds_scan.reference.kibana_rules import KibanaRuleMatcher as Oracle

BASE = datetime(2024, 1, 1, tzinfo=UTC)  # on every run grid used here
BASE_MS = int(BASE.timestamp() * 1000)
MIN = 60_000


def at(minutes: float) -> str:
    """An ISO timestamp ``minutes`` after BASE (milliseconds kept)."""
    moment = BASE + timedelta(milliseconds=round(minutes * MIN))
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ms(minutes: float) -> int:
    return BASE_MS + round(minutes * MIN)


def field(name: str, field_type: str = "keyword", **extra: Any) -> dict[str, Any]:
    return {"field": name, "field_type": field_type, **extra}


EXPR = {"node": "pred", "field": "a", "field_type": "keyword", "op": "exists", "values": []}


def new_terms(
    *fields: dict[str, Any],
    every: float = 5,
    start: float = 9,
    history: float = 60,
    timestamp: str = "@timestamp",
    fallback: str | None = None,
) -> dict[str, Any]:
    return {
        "ir_version": 1,
        "id": "r",
        "name": "n",
        "severity": "low",
        "new_terms": {
            "expr": EXPR,
            "timestamp_field": timestamp,
            "fallback_timestamp_field": fallback,
            "interval_ms": round(every * MIN),
            "from_ms": round(start * MIN),
            "history_window_ms": round(history * MIN),
            "fields": list(fields),
        },
    }


def threshold(
    *fields: dict[str, Any],
    value: int = 2,
    cardinality: tuple[str, int] | None = None,
    every: float = 5,
    start: float = 9,
) -> dict[str, Any]:
    cards = [] if cardinality is None else [{**field(cardinality[0]), "value": cardinality[1]}]
    return {
        "ir_version": 1,
        "id": "r",
        "name": "n",
        "severity": "low",
        "threshold": {
            "expr": EXPR,
            "timestamp_field": "@timestamp",
            "fallback_timestamp_field": None,
            "interval_ms": round(every * MIN),
            "from_ms": round(start * MIN),
            "fields": list(fields),
            "value": value,
            "cardinality": cards,
        },
    }


Event = tuple[int, int, dict[str, Any]]  # (rank, line, document)


def events(*docs: dict[str, Any]) -> list[Event]:
    """Documents at rank 0, lines 1, 2, …"""
    return [(0, i, doc) for i, doc in enumerate(docs, 1)]


def ev(minutes: float | None, **fields: Any) -> dict[str, Any]:
    doc = dict(fields)
    if minutes is not None:
        doc["@timestamp"] = at(minutes)
    return doc


def match(
    ir: dict[str, Any], given: list[Event], budget: int = 256 << 20
) -> tuple[list[Alert], int, list[int]]:
    """Both matchers over ``given`` (ref: rank * 1000 + line); they must agree."""
    found = []
    for reference in (True, False):
        make: Any = Oracle if reference else make_matcher
        matcher = make(json.dumps(ir), budget)
        for rank, line, doc in given:
            matcher.add(rank, line, json.dumps(doc), rank * 1000 + line)
        alerts = list(matcher.finish())
        found.append((alerts, matcher.no_time, matcher.no_time_refs))
    assert found[1] == found[0], "product and reference differ"
    return found[0]


def alerts_of(ir: dict[str, Any], *docs: dict[str, Any]) -> list[Alert]:
    return match(ir, events(*docs))[0]


def brief(alerts: list[Alert]) -> list[tuple[Any, ...]]:
    """(line, run minutes, warmup, values) of each alert."""
    out: list[tuple[Any, ...]] = []
    for a in alerts:
        values: object = a.new_terms
        if a.threshold_result is not None:
            values = a.threshold_result.terms
        out.append((a.line, (a.run_ms - BASE_MS) / MIN, a.warmup, values))
    return out


# ---------------------------------------------------------------- new_terms


def test_new_terms_alerts_once_per_event_and_combination_across_overlapping_runs() -> None:
    # from 9m, every 5m: the event at 00:01 is in runs 00:05 and 00:10; one alert, run 00:05.
    found = alerts_of(new_terms(field("h")), ev(1, h="a"), ev(2, h="a"), ev(3, h="b"))
    assert brief(found) == [(1, 5, True, ("a",)), (3, 5, True, ("b",))]


def test_the_alert_goes_to_the_earliest_event_in_the_window_ties_by_position() -> None:
    ir = new_terms(field("h"))
    found = match(
        ir,
        [
            (1, 1, ev(3, h="a")),  # same time, later input
            (0, 7, ev(3, h="a")),  # same time, earlier input: the alert's event
            (0, 2, ev(4, h="a")),
        ],
    )[0]
    assert [(a.rank, a.line, a.ref) for a in found] == [(0, 7, 7)]


def test_an_event_exactly_at_t_minus_from_is_history_not_new() -> None:
    # from 4m, every 5m: an event at 00:06 is only in run 00:10's window [00:06, 00:10], at its
    # very start: its first-seen time is not after T - from, so Kibana never finds it new.
    ir = new_terms(field("h"), every=5, start=4, history=30)
    assert alerts_of(ir, ev(6, h="a")) == []
    late = alerts_of(ir, ev(6 + 1 / MIN, h="a"))  # one millisecond later
    assert brief(late) == [(1, 10, True, ("a",))]


def test_a_run_window_ends_inclusively_at_t() -> None:
    ir = new_terms(field("h"))
    assert [a.run_ms for a in alerts_of(ir, ev(5, h="a"))] == [ms(5)]
    assert [a.run_ms for a in alerts_of(ir, ev(5 + 1 / MIN, h="a"))] == [ms(10)]


def test_a_threshold_window_starts_inclusively_at_t_minus_from() -> None:
    # from 9m: run 00:10 counts 00:01 and 00:10 together; 00:00:59.999 is only in run 00:05.
    ir = threshold(field("h"), value=2)
    (alert,) = alerts_of(ir, ev(1, h="a"), ev(10, h="a"))
    assert (alert.run_ms, result(alert).from_ms) == (ms(10), ms(1))
    assert alerts_of(ir, ev(1 - 1 / MIN, h="a"), ev(10, h="a")) == []


def test_the_history_window_start_is_inclusive() -> None:
    # history 20m, from 9m: p at 00:00, t at 00:19. Run 00:20 looks back to exactly 00:00 and
    # finds p: not new; run 00:25 does not: the alert is run 00:25's. With p one millisecond
    # earlier, run 00:20 already finds t new.
    ir = new_terms(field("h"), history=20)
    found = alerts_of(ir, ev(0, h="a"), ev(19, h="a"))
    assert brief(found) == [(1, 0, True, ("a",)), (2, 25, False, ("a",))]
    found = alerts_of(ir, ev(-1 / MIN, h="a"), ev(19, h="a"))
    assert brief(found) == [(1, 0, True, ("a",)), (2, 20, False, ("a",))]


def test_a_combination_is_new_again_after_the_history_window() -> None:
    ir = new_terms(field("h"), history=30)
    found = alerts_of(ir, ev(0, h="a"), ev(20, h="a"), ev(45, h="a"), ev(200, h="a"))
    # 00:20 is within 30m of 00:00, 00:45 within 30m of 00:20; 03:20 is new again.
    assert brief(found) == [(1, 0, True, ("a",)), (4, 200, False, ("a",))]


def test_warmup_is_the_history_window_reaching_before_the_first_candidate() -> None:
    ir = new_terms(field("h"), history=60)
    found = alerts_of(ir, ev(0, h="a"), ev(54, h="b"), ev(56, h="c"))
    # Runs 00:00 and 00:55 look back to before 00:00; run 01:00 looks back to exactly 00:00.
    assert [(a.new_terms, a.warmup) for a in found] == [
        (("a",), True),
        (("b",), True),
        (("c",), False),
    ]


def test_arrays_give_the_cartesian_product_and_a_missing_field_gives_none() -> None:
    ir = new_terms(field("h"), field("u"))
    found = alerts_of(
        ir,
        ev(1, h="a", u=["y", "x", "y"]),
        ev(2, h=["a", "b"], u="x"),
        ev(3, h="c"),  # no u
        ev(3, h="d", u=[]),
        ev(3, h="e", u=None),
    )
    assert [(a.line, a.new_terms) for a in found] == [
        (1, ("a", "x")),
        (1, ("a", "y")),
        (2, ("b", "x")),
    ]


def test_terms_are_indexed_values_an_address_is_one_term_whatever_its_spelling() -> None:
    ir = new_terms(field("ip", "ip"), field("port", "long"))
    found = alerts_of(
        ir,
        ev(1, ip="::ffff:10.0.0.1", port="80"),
        ev(2, ip="10.0.0.1", port=80),  # the same combination
        ev(3, ip="2001:DB8:0:0:0:0:0:1", port=80.0),
        ev(4, ip="not an address", port=1),  # no term: no combination
    )
    assert [(a.line, a.new_terms) for a in found] == [
        (1, ("10.0.0.1", 80)),
        (3, ("2001:db8::1", 80)),
    ]


def test_keyword_terms_follow_ignore_above_and_the_lowercase_normalizer() -> None:
    ir = new_terms(field("u", ignore_above=3), field("p", normalizer="lowercase"))
    found = alerts_of(
        ir, ev(1, u=["abcd", "ab"], p="CMD.EXE"), ev(2, u="ab", p="cmd.exe"), ev(3, u="abcd", p="x")
    )
    assert [(a.line, a.new_terms) for a in found] == [(1, ("ab", "cmd.exe"))]


def test_one_boolean_field_is_keyed_as_the_terms_aggregation_keys_it() -> None:
    assert [a.new_terms for a in alerts_of(new_terms(field("b", "boolean")), ev(1, b=True))] == [
        (1,)
    ]
    two = new_terms(field("b", "boolean"), field("h"))
    assert [a.new_terms for a in alerts_of(two, ev(1, b="false", h="x"))] == [(False, "x")]


def test_timestamp_override_falls_back_to_timestamp_only_when_it_has_no_date() -> None:
    ir = new_terms(field("h"), timestamp="event.ingested", fallback="@timestamp")
    docs = [
        {"event": {"ingested": at(1)}, "@timestamp": at(500), "h": "a"},  # override: 00:01
        {"event.ingested": "not a date", "@timestamp": at(2), "h": "b"},  # falls back
        {"@timestamp": at(3), "h": "c"},  # no override: falls back
        {"event": {"ingested": [at(4), at(5)]}, "h": "d"},  # two dates: no time
        {"h": "e"},  # neither: no time
    ]
    found, no_time, refs = match(ir, events(*docs))
    assert [(a.line, a.run_ms) for a in found] == [(1, ms(5)), (2, ms(5)), (3, ms(5))]
    assert (no_time, refs) == (2, [4, 5])
    # Without fallback, only the override counts.
    ir["new_terms"]["fallback_timestamp_field"] = None
    found, no_time, refs = match(ir, events(*docs))
    assert [a.line for a in found] == [1]
    assert (no_time, refs) == (4, [2, 3, 4, 5])


def test_events_without_time_are_counted_by_position_and_the_first_five_named() -> None:
    ir = new_terms(field("h"))
    given = [(1, line, {"h": "a"}) for line in range(1, 5)] + [
        (0, line, {"h": "a", "@timestamp": "yesterday"}) for line in (9, 3, 5)
    ]
    given.append((0, 3, {"h": "a"}))  # the same position again: one event
    found, no_time, refs = match(ir, given)
    assert found == []
    assert (no_time, refs) == (7, [3, 5, 9, 1001, 1002])


def test_interval_wider_than_from_leaves_gaps_nobody_sees() -> None:
    # every 10m, from 3m: windows [00:07, 00:10], [00:17, 00:20], …
    ir = new_terms(field("h"), every=10, start=3, history=30)
    found = alerts_of(ir, ev(5, h="a"), ev(8, h="b"), ev(16.9, h="c"), ev(17.5, h="c"))
    # 00:05 is in no window; 00:16.9 neither, but it is history for run 00:20: c is not new.
    assert [(a.line, a.new_terms, (a.run_ms - BASE_MS) // MIN) for a in found] == [(2, ("b",), 10)]
    found = alerts_of(ir, ev(16.9, h="c"), ev(17.5, h="d"))
    assert [(a.line, a.new_terms) for a in found] == [(2, ("d",))]


# ---------------------------------------------------------------- threshold


def result(alert: Alert) -> ThresholdResult:
    assert alert.threshold_result is not None
    return alert.threshold_result


def test_threshold_count_boundary() -> None:
    ir = threshold(field("h"), value=3)
    assert alerts_of(ir, ev(1, h="a"), ev(2, h="a"), ev(2, h="b")) == []
    (alert,) = alerts_of(ir, ev(1, h="a"), ev(2, h="a"), ev(2, h="b"), ev(3, h="a"))
    assert result(alert) == ThresholdResult((("h", "a"),), 3, (), ms(1), ms(3))
    assert (alert.line, alert.run_ms, alert.warmup) == (4, ms(5), False)


def test_threshold_cardinality_boundary_and_events_without_the_field_still_count() -> None:
    ir = threshold(field("h"), value=3, cardinality=("u", 2))
    assert alerts_of(ir, ev(1, h="a", u="x"), ev(2, h="a", u="x"), ev(3, h="a")) == []
    (alert,) = alerts_of(ir, ev(1, h="a", u="x"), ev(2, h="a", u="y"), ev(3, h="a"))
    assert result(alert).count == 3
    assert result(alert).cardinality == (("u", 2),)


def test_the_alert_event_is_the_buckets_last_latest_position_on_a_tie() -> None:
    ir = threshold(field("h"), value=2)
    (alert,) = match(ir, [(0, 5, ev(2, h="a")), (1, 1, ev(2, h="a")), (0, 9, ev(1, h="a"))])[0]
    assert (alert.rank, alert.line) == (1, 1)
    assert (result(alert).from_ms, result(alert).last_ms) == (ms(1), ms(2))


def test_signal_history_keeps_counted_events_out_of_later_runs() -> None:
    # value 2: 00:01 and 00:02 alert in run 00:05; run 00:10 sees them again but they are
    # excluded (up to last = 00:02), so 00:06 alone does not alert; with 00:07 it does.
    ir = threshold(field("h"), value=2)
    found = alerts_of(ir, ev(1, h="a"), ev(2, h="a"), ev(6, h="a"))
    assert brief(found) == [(2, 5, False, (("h", "a"),))]
    found = alerts_of(ir, ev(1, h="a"), ev(2, h="a"), ev(6, h="a"), ev(7, h="a"))
    assert brief(found) == [(2, 5, False, (("h", "a"),)), (4, 10, False, (("h", "a"),))]
    assert result(found[1]) == ThresholdResult((("h", "a"),), 2, (), ms(6), ms(7))


def test_signal_history_excludes_the_event_from_every_bucket() -> None:
    # The event with u [a, b] is counted in a's alert (run 00:05); in run 00:10 it is left
    # out of the query, so b's bucket holds only 00:06 and 00:07.
    ir = threshold(field("u"), value=3)
    found = alerts_of(
        ir, ev(1, u="a"), ev(2, u="a"), ev(3, u=["a", "b"]), ev(6, u="b"), ev(7, u="b")
    )
    assert brief(found) == [(3, 5, False, (("u", "a"),))]
    found = alerts_of(
        ir, ev(1, u="a"), ev(2, u="a"), ev(3, u=["a", "b"]), ev(4, u="b"), ev(7, u="b")
    )
    # Here b's bucket reaches 3 in run 00:05 already (00:03, 00:04), alongside a's.
    assert brief(found) == [(3, 5, False, (("u", "a"),))]
    found = alerts_of(
        ir,
        ev(1, u="a"),
        ev(2, u="a"),
        ev(3, u=["a", "b"]),
        ev(4, u="b"),
        ev(4.5, u="b"),
    )
    assert brief(found) == [(3, 5, False, (("u", "a"),)), (5, 5, False, (("u", "b"),))]


def test_an_entry_dropped_at_the_window_edge_lets_its_events_count_again() -> None:
    # Kibana drops an entry whose last time is <= T - from: at run 00:10 the entry of the
    # 00:01 alert goes while 00:01 is the window's first instant, so it alerts again.
    ir = threshold(field("h"), value=1)
    found = alerts_of(ir, ev(1, h="a"))
    assert brief(found) == [(1, 5, False, (("h", "a"),)), (1, 10, False, (("h", "a"),))]
    found = alerts_of(ir, ev(1.5, h="a"))
    assert brief(found) == [(1, 5, False, (("h", "a"),))]


def test_threshold_without_fields_is_one_bucket() -> None:
    ir = threshold(value=2, cardinality=("h", 2))
    found = alerts_of(ir, ev(1, h="a"), ev(2), ev(3, h="b"))
    assert [(a.line, result(a)) for a in found] == [
        (3, ThresholdResult((), 3, (("h", 2),), ms(1), ms(3)))
    ]
    # Kibana's history entry has no terms: every event up to last is excluded later.
    found = alerts_of(threshold(value=2), ev(1), ev(2), ev(6), ev(7), ev(8))
    assert [(a.line, result(a).count, a.run_ms) for a in found] == [(2, 2, ms(5)), (5, 3, ms(10))]


def test_threshold_without_fields_counts_hits_up_to_ten_thousand() -> None:
    ir = threshold(value=10_000)
    docs = [ev(1 + i / 20_000) for i in range(10_001)]
    found = alerts_of(ir, *docs)
    assert [result(a).count for a in found] == [10_000]
    ir = threshold(value=10_001)
    assert alerts_of(ir, *docs) == []


def test_threshold_arrays_and_missing_fields() -> None:
    ir = threshold(field("h"), field("u"), value=2)
    found = alerts_of(ir, ev(1, h="a", u=["x", "y"]), ev(2, h="a", u="y"), ev(3, h="a"))
    assert [result(a).terms for a in found] == [(("h", "a"), ("u", "y"))]


def test_the_matchers_refuse_what_they_cannot_run() -> None:
    bad = new_terms(field("h"), start=10, history=10)
    with pytest.raises(KibanaRuleIRError, match="history_window_ms must be greater"):
        make_matcher(json.dumps(bad))
    with pytest.raises(KibanaRuleIRError, match=r'field_type: "text" is not one of'):
        make_matcher(json.dumps(new_terms(field("m", "text"))))
    with pytest.raises(KibanaRuleIRError, match="fields: must hold at least 1 items"):
        make_matcher(json.dumps(new_terms()))


INVALID = [
    json.loads(line)
    for line in (Path(__file__).parents[1] / "spec" / "vectors" / "invalid_ir.jsonl")
    .read_text("utf-8")
    .splitlines()
    if '"shape": "new_terms"' in line or '"shape": "threshold"' in line
]


@pytest.mark.parametrize("case", INVALID, ids=[c["name"] for c in INVALID])
def test_invalid_irs_are_refused_by_both_matchers_in_the_checkers_words(
    case: dict[str, Any],
) -> None:
    for reference in (True, False):
        with pytest.raises(KibanaRuleIRError) as refused:
            (Oracle if reference else make_matcher)(json.dumps(case["ir"]))
        assert str(refused.value) == case["error"]


def test_enough_invalid_ir_vectors() -> None:
    assert len(INVALID) >= 20


# ---------------------------------------------------------------- differential


def timeline(seed: int) -> tuple[dict[str, Any], list[Event], int]:
    """A random small rule and timeline: dense enough that windows, history, arrays and the
    signal history all come into play."""
    rng = random.Random(seed)
    kind = rng.choice(["new_terms", "threshold"])
    every, start = rng.randint(1, 8), rng.randint(1, 15)
    names = ["h", "u"][: rng.randint(0 if kind == "threshold" else 1, 2)]
    # Typed terms now and then: equal values of other spellings are one term.
    typed = rng.choice(["keyword", "keyword", "long", "ip"])
    body: dict[str, Any] = {
        "expr": EXPR,
        "timestamp_field": "t",
        "fallback_timestamp_field": None,
        "interval_ms": every,
        "from_ms": start,
        "fields": [field(n, typed if n == "u" else "keyword") for n in names],
    }
    if kind == "new_terms":
        body["history_window_ms"] = rng.randint(start + 1, start + 40)
    else:
        body["value"] = rng.randint(1, 4)
        cards = rng.choice([0, 0, 1, 2])
        body["cardinality"] = [{**field("c"), "value": cards}] if cards else []
    span = rng.randint(5, 120)
    spellings = {
        "keyword": ["a", "b", "c"],
        "long": [1, "1", 2, "2.0", "x"],
        "ip": ["10.0.0.1", "::ffff:10.0.0.1", "10.0.0.2", "nope"],
    }
    letters = spellings["keyword"][: rng.randint(1, 3)]

    def value(name: str) -> Any:
        terms = spellings[typed] if name == "u" else letters
        roll = rng.random()
        if roll < 0.7:
            return rng.choice(terms)
        if roll < 0.9:
            return [rng.choice(terms) for _ in range(rng.randint(0, 3))]
        return None

    given: list[Event] = []
    for line in range(1, rng.randint(1, 40) + 1):
        doc = {"t": rng.randint(0, span) if rng.random() > 0.05 else "x"}
        for name in ("h", "u", "c"):
            if rng.random() > 0.1:
                doc[name] = value(name)
        given.append((rng.randint(0, 1), line, doc))
        if rng.random() < 0.05:
            given.append(given[-1])  # the same event added twice
    rng.shuffle(given)  # the order of add calls does not matter
    budget = rng.choice([300, 2000, 256 << 20])  # tiny budgets spill sorted runs
    return {"ir_version": 1, "id": "r", "name": "n", "severity": "x", kind: body}, given, budget


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32))
def test_the_product_matcher_agrees_with_the_reference(seed: int) -> None:
    ir, given, budget = timeline(seed)
    match(ir, given, budget)


# ---------------------------------------------------------------- memory


_MEMORY_CHILD = """
import json, sys
sys.path.insert(0, sys.argv[1])
from imds_scan.kibana_rules import make_matcher
count, budget = int(sys.argv[2]), int(sys.argv[3])
ir = {"ir_version": 1, "id": "r", "name": "n", "severity": "x", "new_terms": {
    "expr": {"node": "pred", "field": "a", "field_type": "keyword", "op": "exists", "values": []},
    "timestamp_field": "@timestamp", "fallback_timestamp_field": None,
    "interval_ms": 300000, "from_ms": 540000, "history_window_ms": 604800000,
    "fields": [{"field": "host.id", "field_type": "keyword"},
               {"field": "process.executable", "field_type": "keyword"}]}}
m = make_matcher(json.dumps(ir), budget)
for i in range(count):
    event = json.dumps({"@timestamp": 1700000000000 + i * 997,
                        "host": {"id": f"host-{i % 5000:08d}"},
                        "process": {"executable": f"/usr/bin/p{i % 7919}"}})
    m.add(0, i + 1, event, i)
alerts = sum(1 for _ in m.finish())
print(alerts)
"""
# Peak RSS of a child from a small wrapper: a process started from a big one (pytest) reports
# its parent's peak as its own.
_WRAPPER = """
import resource, subprocess, sys
done = subprocess.run([sys.executable, "-c", *sys.argv[1:]], capture_output=True, text=True)
sys.stderr.write(done.stderr)
print(done.returncode, done.stdout.strip(), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def test_candidates_spill_past_the_budget_and_memory_stays_bounded(tmp_path: Path) -> None:
    """60,000 candidates (each a new combination: as many alerts) with a 1 MiB budget: the
    peak grows by the merge's buffers (about 2 MB over 2,000 candidates), not by the records
    (with a budget that keeps them in memory: 24 MB more)."""
    python = str(Path(__file__).parents[1] / "python")

    def peak_kb(count: int) -> tuple[int, int]:
        done = subprocess.run(
            [sys.executable, "-c", _WRAPPER, _MEMORY_CHILD, python, str(count), str(1 << 20)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        code, alerts, peak = map(int, done.stdout.split())
        assert code == 0, done.stderr[-2000:]
        return alerts, peak

    small_alerts, small = peak_kb(2_000)
    large_alerts, large = peak_kb(60_000)
    assert small_alerts == 2_000
    assert large_alerts == 60_000  # every combination is new once
    assert large - small < 14 * 1024, (small, large)


def test_the_sorter_merges_runs_level_by_level() -> None:
    from imds_scan.kibana_rules import _Sorter

    rng = random.Random(7)
    data = [(rng.randrange(100), i) for i in range(5_000)]
    sorter = _Sorter(10, None)  # every record its own run: three levels of merges
    for item in data:
        sorter.add(item, 100)
    assert len(sorter.levels) == 4
    assert sum(len(level) for level in sorter.levels) < 4 * 16
    assert list(sorter.sorted()) == sorted(data)


def test_the_ir_helpers_know_the_new_shapes() -> None:
    from imds_scan.ir_schema import conditions, map_conditions, rule_kind

    for ir, kind in ((new_terms(field("h")), "new_terms"), (threshold(), "threshold")):
        assert rule_kind(ir) == kind
        assert conditions(ir) == [("query", EXPR)]
        wrapped = map_conditions(ir, lambda e: {"node": "not", "arg": e})
        assert conditions(wrapped) == [("query", {"node": "not", "arg": EXPR})]
        assert wrapped[kind]["fields"] == ir[kind]["fields"]


def test_terms_show_as_bucket_keys_dates_in_epoch_ms_floats_as_doubles() -> None:
    ir = threshold(field("d", "date"), field("f", "float"), field("b", "boolean"), value=1)
    (alert,) = alerts_of(ir, ev(2, d="2024-01-01T00:00:01.5Z", f="0.1", b="true"))
    assert result(alert).terms == (
        ("d", BASE_MS + 1500),
        ("f", 0.10000000149011612),
        ("b", True),
    )


def test_a_spill_directory_that_cannot_be_written_is_one_clear_error(tmp_path: Path) -> None:
    from imds_scan.sources import InputError

    missing = tmp_path / "gone"
    matcher = make_matcher(json.dumps(new_terms(field("h"))), 1, str(missing))
    with pytest.raises(InputError) as refused:
        matcher.add(0, 1, json.dumps(ev(1, h="a")), 1)
    assert str(refused.value) == (
        f"cannot write the new_terms/threshold candidates' spill file in {missing} (TMPDIR): "
        "No such file or directory"
    )


_KEYS = st.sampled_from(["a", "b", "a.b", "a.b.c", "b.c", "", "a.", ".b"])
_JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), st.sampled_from(["x", "1"])),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_KEYS, inner, max_size=4)),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@example({"a.b": "1", "a": {"b": ["x", None, True]}}, "a.b")  # document order across keys
@example({"a": [{"b": "x"}, {"b.c": "y"}], "a.b": {"c": "z"}}, "a.b.c")
@given(
    st.dictionaries(_KEYS, _JSONISH, max_size=5),
    st.sampled_from(["a", "a.b", "a.b.c", "b.c", "a..b", ".b"]),
)
def test_the_product_reads_a_field_as_the_reference_reader(doc: dict[str, Any], name: str) -> None:
    from imds_scan.kibana_rules import scalars
    from imds_scan.reference.event import raw_values

    assert scalars(doc, name) == list(raw_values(doc, name.split(".")))


def test_the_lowercase_normalizer_is_javas_simple_mapping_and_ignore_above_counts_utf16() -> None:
    # U+0130 lowercases to "i" alone (Java's simple mapping); an astral character is two
    # UTF-16 code units, so "a😀" is 3 long and dropped by ignore_above 2.
    ir = new_terms(field("p", normalizer="lowercase"), field("u", ignore_above=2))
    found = alerts_of(ir, ev(1, p="\u0130X", u=["a\U0001f600", "ab"]))
    assert [a.new_terms for a in found] == [("ix", "ab")]
