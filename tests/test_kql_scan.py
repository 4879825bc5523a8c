"""The scan layer of new_terms and threshold rules (python/imds_scan/kibana_scan.py and the
stage-rule machinery of sequences.py; spec/kql.md "Rule types" and "Output"): the rule's
condition runs as the stage rule ``RULEID/query`` beside the other rules, its hits go to the
rule's matcher and never to the writers, its alerts become records after the single-event
hits, whatever the input order, threads, engine or cluster; --since/--until select
candidates, --max-hits counts alerts, host filters and allowlists apply to the condition.

The rules are hand-written IR (the shapes of spec/kql.md), then rule files through the CLI;
the matcher is kibana_rules' (its own tests pin its semantics; the timelines here are small
and away from the window edges, so what they pin is the scan layer's)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import ENGINES
from imds_scan import ScanConfig, scan
from imds_scan.config import condition_allowlist
from imds_scan.plan import plan_rules
from imds_scan.records import Hit
from imds_scan.rules import Rule

# ---------------------------------------------------------------- rules and events

MINUTE = 60_000
HOST_ID = {"field": "host.id", "field_type": "keyword"}
USER = {"field": "user.name", "field_type": "keyword"}


def pred(field: str, value: str) -> dict[str, Any]:
    return {"node": "pred", "field": field, "field_type": "keyword", "op": "eq", "values": [value]}


def timing(**over: Any) -> dict[str, Any]:
    body = {
        "timestamp_field": "@timestamp",
        "fallback_timestamp_field": None,
        "interval_ms": 5 * MINUTE,
        "from_ms": 6 * MINUTE,
    }
    return {**body, **over}


def new_terms_rule(rule_id: str = "nt", action: str = "get", **over: Any) -> Rule:
    body = {
        "expr": pred("event.action", action),
        **timing(),
        "history_window_ms": 60 * MINUTE,
        "fields": [HOST_ID],
        **over,
    }
    ir = {"ir_version": 1, "id": rule_id, "name": f"Rule {rule_id}", "severity": "high"}
    ir["new_terms"] = body
    return Rule(rule_id, f"Rule {rule_id}", "high", "event.action: get", ir, source="<test>")


def threshold_rule(rule_id: str = "th", value: int = 3, **over: Any) -> Rule:
    body = {
        "expr": pred("event.action", "get"),
        **timing(),
        "fields": [HOST_ID],
        "value": value,
        "cardinality": [],
        **over,
    }
    ir = {"ir_version": 1, "id": rule_id, "name": f"Rule {rule_id}", "severity": "medium"}
    ir["threshold"] = body
    return Rule(rule_id, f"Rule {rule_id}", "medium", "event.action: get", ir, source="<test>")


def query_rule(rule_id: str = "q", action: str = "put") -> Rule:
    """A KQL query rule as the compiler gives it: one branch named ``query``."""
    ir = {
        "ir_version": 1,
        "id": rule_id,
        "name": f"Rule {rule_id}",
        "severity": "low",
        "branches": [{"name": "query", "expr": pred("event.action", action)}],
    }
    return Rule(rule_id, f"Rule {rule_id}", "low", f"event.action: {action}", ir, source="<test>")


def event(minute: float | None, host: str, action: str = "get", **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"event": {"action": action}, "host": {"id": host, "name": host}}
    if minute is not None:
        moment = datetime(2024, 5, 1, 10, tzinfo=UTC).timestamp() + minute * 60
        doc["@timestamp"] = datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {**doc, **extra}


def write(path: Path, events: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return str(path)


def records(hits: list[Hit]) -> list[dict[str, Any]]:
    out = [json.loads(hit.to_json()) for hit in hits]
    for record in out:
        record["source"] = Path(record["source"]).name
    return out


def keyed(hits: list[Hit]) -> list[tuple[Any, ...]]:
    return [
        (Path(h.source).name, h.line, h.rule.id, h.branch, h.new_terms, h.run, h.warmup)
        for h in hits
    ]


@pytest.fixture
def timeline(tmp_path: Path) -> list[str]:
    """Two inputs: h1 active from 10:00 (warm-up runs), h2 first seen at 11:00, h1 again
    at 11:00 (seen within the hour before: not new), h3 three times within 6 minutes
    (threshold 3), a non-matching event and one without a time."""
    a = write(
        tmp_path / "a.ndjson",
        [
            event(0, "h1"),
            event(1, "h1", action="put"),
            event(60, "h2"),
            event(None, "h9"),
        ],
    )
    b = write(
        tmp_path / "b.ndjson",
        [
            event(50, "h1"),
            event(61, "h3"),
            event(62, "h3"),
            event(63.5, "h3"),
        ],
    )
    return [a, b]


# ---------------------------------------------------------------- the plan


def test_plan_runs_the_condition_as_one_stage_rule() -> None:
    rule = new_terms_rule()
    rule = type(rule)(**{**vars(rule), "ir": {**rule.ir, "allowlist": [pred("user.name", "x")]}})
    plan = plan_rules([rule, query_rule()], ("web-*",), ())
    assert [r.id for r in plan.engine_rules] == ["nt/query", "q"]
    stage = plan.engine_rules[0]
    assert stage.ir["branches"][0]["name"] == "query"
    assert stage.ir["allowlist"] == [pred("user.name", "x")]
    # The host filter is the condition's first conjunct.
    expr = stage.ir["branches"][0]["expr"]
    assert expr["node"] == "and" and expr["args"][1] == pred("event.action", "get")
    assert expr["args"][0]["field"] == "host.name"
    assert plan.owner == [0, 1] and plan.stage == [0, None]
    assert plan.rules[0] is rule and plan.has_sequences
    assert rule.kind == "new_terms" and threshold_rule().kind == "threshold"


def test_rule_fields_of_kql_rules() -> None:
    # The fields a rule's condition reads (the not-ECS input check); no join keys to read.
    from imds_scan.shape import rule_fields

    assert rule_fields([new_terms_rule(), threshold_rule(), query_rule()]) == ["event.action"]


# ---------------------------------------------------------------- records


@pytest.mark.parametrize("engine", ENGINES)
def test_alert_records(timeline: list[str], engine: str) -> None:
    rules = [query_rule(), new_terms_rule(), threshold_rule()]
    result = scan(timeline, rules=rules, config=ScanConfig(engine=engine))  # type: ignore[arg-type]
    got = records(result.hits)
    # The query rule's hit first (single-event hits stream out), then each rule's alerts.
    assert [(r["rule_id"], r["branch"]) for r in got] == [
        ("q", "query"),
        ("nt", "new_terms"),
        ("nt", "new_terms"),
        ("nt", "new_terms"),
        ("th", "threshold"),
    ]
    assert got[0]["matched"] == {
        "field": "event.action",
        "op": "eq",
        "pattern": "put",
        "value": "put",
    }
    first = got[1]
    assert list(first) == [
        "source",
        "line",
        "rule",
        "rule_id",
        "severity",
        "branch",
        "matched",
        "new_terms",
        "run",
        "warmup",
        "event",
    ]
    assert (first["source"], first["line"], first["new_terms"]) == ("a.ndjson", 1, ["h1"])
    assert first["run"] == "2024-05-01T10:00:00.000Z" and first["warmup"] is True
    assert first["event"] == event(0, "h1") and first["matched"] is None
    # h2 is new at 11:00 (first run covering it), h3 at 11:05; h1 at 10:50 is not new
    # (seen at 10:00, within the hour before).
    assert [(r["source"], r["line"], r["new_terms"], r["run"], r["warmup"]) for r in got[2:4]] == [
        ("a.ndjson", 3, ["h2"], "2024-05-01T11:00:00.000Z", False),
        ("b.ndjson", 2, ["h3"], "2024-05-01T11:05:00.000Z", False),
    ]
    threshold = got[4]
    assert list(threshold) == [
        "source",
        "line",
        "rule",
        "rule_id",
        "severity",
        "branch",
        "matched",
        "run",
        "threshold_result",
        "event",
    ]
    # The bucket's last event (11:03:30), its run 11:05, the window's three events.
    assert (threshold["source"], threshold["line"]) == ("b.ndjson", 4)
    assert threshold["run"] == "2024-05-01T11:05:00.000Z"
    assert threshold["threshold_result"] == {
        "terms": {"host.id": "h3"},
        "count": 3,
        "from": "2024-05-01T11:01:00.000Z",
        "last": "2024-05-01T11:03:30.000Z",
    }
    stats = result.stats
    assert stats.alerts == {"nt": 3, "th": 1} and stats.warmup_alerts == 1
    # The event without a time, counted once per rule it matches, named once by file:line.
    assert stats.kql_no_time == 2
    assert [(Path(p).name, line) for p, line in stats.kql_no_time_examples] == [("a.ndjson", 4)]
    # An input's hits: its single-event hits and the alerts at its events (stage hits out).
    assert [f.hits for f in stats.files] == [3, 2]


def test_threshold_cardinality_and_no_fields(timeline: list[str]) -> None:
    by_user = threshold_rule("card", value=2, cardinality=[{**USER, "value": 2}], fields=[])
    tmp = Path(timeline[0]).parent
    path = write(
        tmp / "c.ndjson",
        [event(0, "h1", user={"name": "u1"}), event(1, "h2", user={"name": "u2"})],
    )
    (hit,) = scan([path], rules=[by_user]).hits
    assert hit.threshold_result == {
        "terms": {},
        "count": 2,
        "cardinality": [{"field": "user.name", "value": 2}],
        "from": "2024-05-01T10:00:00.000Z",
        "last": "2024-05-01T10:01:00.000Z",
    }
    assert (hit.line, hit.branch, hit.run) == (2, "threshold", "2024-05-01T10:05:00.000Z")


def test_timestamp_override_reads_the_rule_time(tmp_path: Path) -> None:
    """``timestamp_field`` (the rule's timestamp_override) first, @timestamp as fallback."""
    rule = new_terms_rule(timestamp_field="event.ingested", fallback_timestamp_field="@timestamp")
    late = event(0, "h1", event={"action": "get", "ingested": "2024-05-01T12:00:00Z"})
    path = write(tmp_path / "a.ndjson", [late, event(30, "h2")])
    hits = scan([path], rules=[rule]).hits
    # Line 1 is new at 12:00 (its ingest time), line 2 at 10:30 (its @timestamp): alerts in
    # the order of their events.
    assert [(h.line, h.run) for h in hits] == [
        (1, "2024-05-01T12:00:00.000Z"),
        (2, "2024-05-01T10:30:00.000Z"),
    ]


# ---------------------------------------------------------------- order independence


def test_same_alerts_whatever_the_order_threads_and_engine(timeline: list[str]) -> None:
    rules = [new_terms_rule(), threshold_rule(), query_rule()]
    base = scan(timeline, rules=rules, config=ScanConfig(engine="rust", threads=1))
    expected = keyed(base.hits)
    assert len(expected) == 5
    for engine, threads, paths in [
        ("rust", 4, timeline[::-1]),
        ("python", 1, timeline[::-1]),
        ("python", 1, timeline),
    ]:
        config = ScanConfig(engine=engine, threads=threads)  # type: ignore[arg-type]
        other = scan(paths, rules=rules, config=config)
        alerts = [k for k in keyed(other.hits) if k[3] != "query"]
        assert alerts == [k for k in expected if k[3] != "query"], (engine, threads)
        assert [h.threshold_result for h in other.hits] == [h.threshold_result for h in base.hits]


def test_cluster_same_alerts_as_a_local_scan(timeline: list[str]) -> None:
    rules = [new_terms_rule(), threshold_rule()]
    local = scan(timeline, rules=rules)
    clustered = scan(timeline[::-1], rules=rules, config=ScanConfig(cluster="local:1"))
    assert keyed(clustered.hits) == keyed(local.hits)
    assert clustered.stats.alerts == local.stats.alerts


# ---------------------------------------------------------------- filters and limits


@pytest.mark.parametrize("engine", ENGINES)
def test_since_until_select_candidates(timeline: list[str], engine: str) -> None:
    """Outside the window an event is no candidate, as if the index held only the window:
    without h1's 10:00 event, its 10:50 event is new, and the first candidate is then at
    10:50, so every run whose hour of history starts before it is a warm-up."""
    config = ScanConfig(engine=engine, since=datetime(2024, 5, 1, 10, 30))  # type: ignore[arg-type]
    hits = scan(timeline, rules=[new_terms_rule()], config=config).hits
    assert [(Path(h.source).name, h.line, h.new_terms, h.warmup) for h in hits] == [
        ("a.ndjson", 3, ("h2",), True),
        ("b.ndjson", 1, ("h1",), True),
        ("b.ndjson", 2, ("h3",), True),
    ]
    # Before 11:03 (half-open): two of h3's three events.
    config = ScanConfig(engine=engine, until=datetime(2024, 5, 1, 11, 3))  # type: ignore[arg-type]
    hits = scan(timeline, rules=[threshold_rule(value=2)], config=config).hits
    assert [(h.line, h.threshold_result and h.threshold_result["count"]) for h in hits] == [(3, 2)]


@pytest.mark.parametrize("engine", ENGINES)
def test_max_hits_counts_alerts(timeline: list[str], engine: str) -> None:
    config = ScanConfig(engine=engine, max_hits=2)  # type: ignore[arg-type]
    result = scan(timeline, rules=[query_rule(), new_terms_rule()], config=config)
    assert [(h.branch, h.line) for h in result.hits] == [("query", 2), ("new_terms", 1)]
    assert result.stats.stopped_at is not None
    assert (Path(result.stats.stopped_at[0]).name, result.stats.stopped_at[1]) == ("a.ndjson", 1)


@pytest.mark.parametrize("engine", ENGINES)
def test_host_filter_and_allowlist_apply_to_the_condition(timeline: list[str], engine: str) -> None:
    rules = [new_terms_rule(), threshold_rule()]
    config = ScanConfig(engine=engine, exclude_hosts=("h2",))  # type: ignore[arg-type]
    hits = scan(timeline, rules=rules, config=config).hits
    assert [h.new_terms for h in hits if h.branch == "new_terms"] == [("h1",), ("h3",)]
    # An allowlist entry of the new_terms rule: h3's events take no part (counted per entry).
    allow = condition_allowlist(['host.id == "h3"'])
    allowed = allow.apply(rules)
    assert allowed[0].allowlist_labels and "allowlist" in allowed[0].ir
    result = scan(timeline, rules=allowed, config=ScanConfig(engine=engine))  # type: ignore[arg-type]
    assert [h.new_terms for h in result.hits if h.branch == "new_terms"] == [("h1",), ("h2",)]
    assert [h for h in result.hits if h.branch == "threshold"] == []
    drops = {d.rule_id: d.entries for d in result.stats.allowlist}
    assert [count for _, count in drops["nt"]] == [3]
    assert [count for _, count in drops["th"]] == [3]


def test_stage_hits_never_reach_the_writers(timeline: list[str]) -> None:
    from imds_scan.batch import FRAME, RECORDS
    from imds_scan.run import open_scan

    stream = open_scan(timeline, rules=[new_terms_rule()], needs=frozenset({RECORDS, FRAME}))
    batches = list(stream)
    stats = stream.close()
    lines = [json.loads(line) for b in batches for line in b.records.splitlines()]
    assert [r["branch"] for r in lines] == ["new_terms"] * 3
    frame_rows = [row for b in batches for row in b.frame.iter_rows(named=True)]
    assert [r["new_terms"] for r in frame_rows] == ['["h1"]', '["h2"]', '["h3"]']
    assert [r["warmup"] for r in frame_rows] == [True, False, False]
    assert sum(f.hits for f in stats.files) == 3


# ---------------------------------------------------------------- the CLI, from rule files

HEAD = """[rule]
name = "{name}"
rule_id = "{rule_id}"
severity = "{severity}"
language = "kuery"
"""
# Fields outside the mapping profile (keyword, as the contract says of unknown fields).
NEW_TERMS_FILE = """type = "new_terms"
from = "now-6m"
interval = "5m"
query = "act.name: fetch-token"

[rule.new_terms]
field = "new_terms_fields"
value = ["hid"]

[[rule.new_terms.history_window_start]]
field = "history_window_start"
value = "now-1h"
"""
THRESHOLD_FILE = """type = "threshold"
query = "act.name: fetch-token"

[rule.threshold]
field = ["hid"]
value = {value}
"""
QUERY_FILE = """type = "query"
query = "act.name: put-token and not hid: h9"
"""


def cli_event(minute: float | None, host: str, action: str = "fetch-token") -> dict[str, Any]:
    doc = event(minute, host)
    doc["act"] = {"name": action}
    doc["hid"] = host
    del doc["event"]
    return doc


@pytest.fixture
def rule_files(tmp_path: Path) -> dict[str, str]:
    files = {
        "nt": (("New host", "nt-1", "high"), NEW_TERMS_FILE),
        "th": (("Many fetches", "th-1", "medium"), THRESHOLD_FILE.format(value=3)),
        "quiet": (("Never", "th-2", "low"), THRESHOLD_FILE.format(value=100)),
        "q": (("Puts", "q-1", "low"), QUERY_FILE),
    }
    out = {}
    for key, ((name, rule_id, severity), body) in files.items():
        path = tmp_path / f"{key}.toml"
        head = HEAD.format(name=name, rule_id=rule_id, severity=severity)
        path.write_text(head + body, encoding="utf-8")
        out[key] = str(path)
    return out


@pytest.fixture
def cli_timeline(tmp_path: Path) -> list[str]:
    """The timeline of :func:`timeline`, in the rule files' fields."""
    a = write(
        tmp_path / "a.ndjson",
        [
            cli_event(0, "h1"),
            cli_event(1, "h1", action="put-token"),
            cli_event(60, "h2"),
            cli_event(None, "h9"),
        ],
    )
    b = write(
        tmp_path / "b.ndjson",
        [cli_event(50, "h1"), cli_event(61, "h3"), cli_event(62, "h3"), cli_event(63.5, "h3")],
    )
    return [a, b]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    chosen = "-f" in args or "-o" in args
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "imds_scan",
            "--no-rule-cache",
            *([] if chosen else ["-f", "ndjson"]),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "220"},  # the table's width
    )


def cli_records(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    out = [json.loads(line) for line in done.stdout.splitlines()]
    for record in out:
        record["source"] = Path(record["source"]).name
    return out


def rules_args(files: dict[str, str], *keys: str) -> list[str]:
    return [arg for key in keys for arg in ("--rule", files[key])]


def test_cli_records_and_exit_codes(rule_files: dict[str, str], cli_timeline: list[str]) -> None:
    done = run_cli(*rules_args(rule_files, "q", "nt", "th", "quiet"), *cli_timeline)
    assert done.returncode == 1, done.stderr
    got = cli_records(done)
    assert [(r["rule_id"], r["branch"], r["source"], r["line"]) for r in got] == [
        ("q-1", "query", "a.ndjson", 2),
        ("nt-1", "new_terms", "a.ndjson", 1),
        ("nt-1", "new_terms", "a.ndjson", 3),
        ("nt-1", "new_terms", "b.ndjson", 2),
        ("th-1", "threshold", "b.ndjson", 4),
    ]
    assert [(r["new_terms"], r["run"], r["warmup"]) for r in got[1:4]] == [
        (["h1"], "2024-05-01T10:00:00.000Z", True),
        (["h2"], "2024-05-01T11:00:00.000Z", False),
        (["h3"], "2024-05-01T11:05:00.000Z", False),
    ]
    assert got[4]["threshold_result"] == {
        "terms": {"hid": "h3"},
        "count": 3,
        "from": "2024-05-01T11:01:00.000Z",
        "last": "2024-05-01T11:03:30.000Z",
    }
    assert got[4]["event"] == cli_event(63.5, "h3")
    assert "5 hit(s)" in done.stderr
    assert "new_terms/threshold alerts: nt-1 3, th-1 1" in done.stderr
    assert "new_terms alerts of warm-up runs (history window before the first event): 1" in (
        done.stderr
    )
    assert "3 matching event(s) of new_terms/threshold rules (counted per rule)" in done.stderr
    assert "a.ndjson:4)" in done.stderr
    # No alert: exit 0 (the condition's hits are no hits of the rule).
    quiet = run_cli(*rules_args(rule_files, "quiet"), *cli_timeline)
    assert (quiet.returncode, quiet.stdout) == (0, ""), quiet.stderr


@pytest.mark.parametrize(
    "options",
    [["--engine", "python"], ["--threads", "1"], ["--threads", "3"], ["--cluster", "local:1"]],
)
def test_cli_same_output_whatever_the_engine_order_and_threads(
    rule_files: dict[str, str], cli_timeline: list[str], options: list[str]
) -> None:
    args = rules_args(rule_files, "q", "nt", "th")
    base = run_cli(*args, *cli_timeline)
    other = run_cli(*args, *options, *cli_timeline[::-1])
    assert other.returncode == base.returncode == 1, other.stderr
    assert other.stdout == base.stdout


def test_cli_since_until_max_hits_and_allow(
    rule_files: dict[str, str], cli_timeline: list[str]
) -> None:
    args = rules_args(rule_files, "nt")
    since = run_cli(*args, "--since", "2024-05-01T10:30:00Z", *cli_timeline)
    assert [(r["line"], r["new_terms"], r["warmup"]) for r in cli_records(since)] == [
        (3, ["h2"], True),
        (1, ["h1"], True),
        (2, ["h3"], True),
    ]
    until = run_cli(*rules_args(rule_files, "th"), "--until", "2024-05-01T11:03:00Z", *cli_timeline)
    assert until.returncode == 0 and until.stdout == ""  # two of h3's three events
    limited = run_cli(*args, "--max-hits", "1", *cli_timeline)
    assert limited.returncode == 1 and len(cli_records(limited)) == 1
    assert "stopped early by --max-hits after 1 hit(s), at " in limited.stderr
    assert "a.ndjson:1: the output is partial" in limited.stderr
    allowed = run_cli(*args, "--allow", 'hid == "h1"', *cli_timeline)
    assert [r["new_terms"] for r in cli_records(allowed)] == [["h2"], ["h3"]]
    excluded = run_cli(*args, "--exclude-host", "h3", *cli_timeline)
    assert [r["new_terms"] for r in cli_records(excluded)] == [["h1"], ["h2"]]


def test_cli_formats_of_alerts(
    rule_files: dict[str, str], cli_timeline: list[str], tmp_path: Path
) -> None:
    import polars as pl

    args = [*rules_args(rule_files, "nt", "th"), *cli_timeline]
    parquet = tmp_path / "out.parquet"
    report = tmp_path / "r.html"
    done = run_cli(*args, "-o", str(parquet), "--report", str(report), "--summary")
    assert done.returncode == 1, done.stderr
    frame = pl.read_parquet(parquet)
    assert frame.get_column("branch").to_list() == ["new_terms"] * 3 + ["threshold"]
    assert frame.get_column("warmup").to_list() == [True, False, False, None]
    assert "new_terms alerts of warm-up runs: 1" in done.stderr  # the summary
    assert "new [&quot;h2&quot;] (run 2024-05-01T11:00:00.000Z)" in report.read_text("utf-8")
    alerts = run_cli(*args, "-f", "alerts")
    docs = [json.loads(line) for line in alerts.stdout.splitlines()]
    assert [d.get("kibana.alert.new_terms") for d in docs[:3]] == [["h1"], ["h2"], ["h3"]]
    assert docs[3]["kibana.alert.threshold_result"]["terms"] == [{"field": "hid", "value": "h3"}]
    table = run_cli(*args, "-f", "table")
    assert 'count 3 by {"hid": "h3"}' in table.stdout
    show = run_cli(*rules_args(rule_files, "th"), "--show-rule")
    assert show.returncode == 0 and "// threshold: 3 or more events by hid" in show.stdout


def test_cli_cluster_parquet_has_the_alert_columns(
    rule_files: dict[str, str], cli_timeline: list[str], tmp_path: Path
) -> None:
    """A cluster's shares come back as the engine's rows, which have no alert columns (a scan
    without new_terms/threshold rules asks for rows): the file still has the fixed schema."""
    import polars as pl

    from imds_scan.report.frame import SCHEMA

    parquet = tmp_path / "c.parquet"
    args = [*rules_args(rule_files, "q"), "--cluster", "local:1", "-o", str(parquet)]
    done = run_cli(*args, *cli_timeline)
    assert done.returncode == 1, done.stderr
    frame = pl.read_parquet(parquet)
    assert frame.schema == SCHEMA
    assert frame.get_column("branch").to_list() == ["query"]
    assert frame.get_column("warmup").to_list() == [None]


# ---------------------------------------------------------------- Elastic's own IMDS rule

IMDS_RULE = "cross-platform/credential_access_suspicious_instance_metadata_service_api_request.toml"


def imds_event(when: str, ingested: str, host: str, exe: str) -> dict[str, Any]:
    return {
        "@timestamp": when,
        "event": {"category": "network", "ingested": ingested},
        "destination": {"ip": "169.254.169.254", "port": 80},
        "host": {"id": host, "os": {"type": "linux"}},
        "process": {"executable": exe, "name": Path(exe).name},
    }


@pytest.mark.parametrize("engine", ENGINES)
def test_elastic_imds_new_terms_rule(tmp_path: Path, engine: str) -> None:
    """*Suspicious Instance Metadata Service (IMDS) API Request*: new host.id +
    process.executable against 7 days of history, times from event.ingested."""
    from test_elastic_rules_accepted import rules_dir

    path = rules_dir() / IMDS_RULE
    events = [
        imds_event("2024-05-01T10:00:00Z", "2024-05-01T10:00:05Z", "h1", "/usr/bin/curl"),
        imds_event("2024-05-03T10:00:00Z", "2024-05-03T10:00:05Z", "h1", "/usr/bin/curl"),
        imds_event("2024-05-09T10:00:00Z", "2024-05-09T10:00:05Z", "h1", "/tmp/x"),
        # Seen 8 days before: new again (history 7 days).
        imds_event("2024-05-11T10:00:00Z", "2024-05-11T10:00:05Z", "h1", "/usr/bin/curl"),
        # Not the condition: the rule's exception for VS Code's server.
        imds_event(
            "2024-05-09T10:00:00Z",
            "2024-05-09T10:00:05Z",
            "h1",
            "/vscode/vscode-server/bin/linux-x64/abc/node",
        ),
    ]
    log = write(tmp_path / "imds.ndjson", events)
    done = run_cli("--rule", str(path), "--engine", engine, log)
    assert done.returncode == 1, done.stderr
    got = [(r["line"], r["new_terms"], r["run"], r["warmup"]) for r in cli_records(done)]
    assert got == [
        (1, ["h1", "/usr/bin/curl"], "2024-05-01T10:05:00.000Z", True),
        (3, ["h1", "/tmp/x"], "2024-05-09T10:05:00.000Z", False),
        (4, ["h1", "/usr/bin/curl"], "2024-05-11T10:05:00.000Z", False),
    ]
