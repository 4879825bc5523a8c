"""new_terms and threshold alerts in every output format (spec/kql.md "Output",
docs/output.md): Hit objects built directly, so no engine, compiler or matcher is needed
(the Parquet case mixes in the Rust engine's own rows)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import polars as pl

from imds_scan.batch import FRAME, HitBatch
from imds_scan.engines import stream_scan
from imds_scan.output import format_summary, no_time_warnings, write_table
from imds_scan.records import FileResult, Hit, ScanStats
from imds_scan.report.aggregate import Aggregates
from imds_scan.report.alerts import alert_documents, alert_json
from imds_scan.report.columns import ALERT_COLUMNS, COLUMNS
from imds_scan.report.formats import ParquetWriter, stream_writer
from imds_scan.report.frame import SCHEMA, hits_frame
from imds_scan.report.html import render_aggregates
from imds_scan.report.summary import format_summaries, summaries
from imds_scan.rules import Rule, default_rules

ESC = "\x1b[31m"  # what an attacker writes to drive a terminal
NT_RULE = Rule("nt-1", "New host", "high", "event.action: get", {}, references=("https://x/nt",))
TH_RULE = Rule("th-1", "Many gets", "medium", "event.action: get", {})
EVENT_RULE = Rule("q-1", "Query", "low", "event.action: put", {})

E1 = json.dumps(
    {
        "@timestamp": "2024-05-01T10:00:00Z",
        "host": {"id": "h-1", "name": "web-1"},
        "process": {"executable": "/usr/bin/curl", "name": "curl"},
        "user": {"name": "alice"},
        "rule": {"name": "a firewall's own rule"},
    }
)
# A new value with a control character (an attacker's host name), numbers as written.
E2 = (
    '{"@timestamp": "2024-05-01T11:03:30Z", "host": {"id": "h\\u001b[31m", "name": "db-1"}, '
    '"bytes": 1.50, "user": {"name": "bob"}}'
)
SINGLE = json.dumps({"@timestamp": "2024-05-01T09:00:00Z", "host": {"name": "web-1"}})


def nt_hit(warmup: bool = True) -> Hit:
    return Hit(
        "a.ndjson",
        1,
        NT_RULE,
        "new_terms",
        None,
        E1,
        run="2024-05-01T10:00:00.000Z",
        new_terms=("h-1", "/usr/bin/curl"),
        warmup=warmup,
    )


THRESHOLD_RESULT = {
    "terms": {"host.id": f"h{ESC}", "user.name": "bob"},
    "count": 3,
    "cardinality": [{"field": "source.ip", "value": 2}],
    "from": "2024-05-01T11:01:00.000Z",
    "last": "2024-05-01T11:03:30.000Z",
}


def th_hit() -> Hit:
    return Hit(
        "b.ndjson",
        4,
        TH_RULE,
        "threshold",
        None,
        E2,
        run="2024-05-01T11:05:00.000Z",
        threshold_result=THRESHOLD_RESULT,
    )


def single_hit() -> Hit:
    matched = {"field": "event.action", "op": "eq", "pattern": "put", "value": "put"}
    return Hit("c.ndjson", 2, EVENT_RULE, "query", matched, SINGLE)


def all_hits() -> list[Hit]:
    return [single_hit(), nt_hit(), nt_hit(warmup=False), th_hit()]


def written(fmt: str, hits: list[Hit]) -> str:
    data = io.BytesIO()
    writer = stream_writer(fmt, data, width=200)
    writer.write(HitBatch.of(hits))
    writer.close()
    return data.getvalue().decode("utf-8")


def test_ndjson_records_as_the_contract_says() -> None:
    lines = [json.loads(line) for line in written("ndjson", all_hits()).splitlines()]
    head = ["source", "line", "rule", "rule_id", "severity", "branch", "matched"]
    single, nt, _, th = lines
    assert list(single) == [*head, "event"] and single["branch"] == "query"
    assert list(nt) == [*head, "new_terms", "run", "warmup", "event"]
    assert nt["new_terms"] == ["h-1", "/usr/bin/curl"] and nt["warmup"] is True
    assert nt["run"] == "2024-05-01T10:00:00.000Z" and nt["matched"] is None
    assert nt["event"] == json.loads(E1)
    assert list(th) == [*head, "run", "threshold_result", "event"]
    assert th["threshold_result"] == THRESHOLD_RESULT
    assert list(th["threshold_result"]) == ["terms", "count", "cardinality", "from", "last"]
    # The event embedded as written (1.50 stays 1.50), control characters escaped.
    text = written("ndjson", [th_hit()])
    assert '"bytes": 1.50' in text and "\x1b" not in text
    # --format json: the same records as one array.
    assert json.loads(written("json", all_hits())) == lines


def test_frame_alert_columns() -> None:
    frame = hits_frame(all_hits())
    assert frame.schema == SCHEMA
    names = [name for name, _ in COLUMNS]
    assert names[-4:] == list(ALERT_COLUMNS)  # added last: the other columns keep their places
    single, nt, nt2, th = frame.to_dicts()
    assert all(single[name] is None for name in ALERT_COLUMNS)
    assert json.loads(nt["new_terms"]) == ["h-1", "/usr/bin/curl"]
    assert nt["run"].isoformat() == "2024-05-01T10:00:00+00:00"
    assert (nt["warmup"], nt2["warmup"], th["warmup"]) == (True, False, None)
    assert nt["threshold_result"] is None and th["new_terms"] is None
    assert json.loads(th["threshold_result"]) == THRESHOLD_RESULT
    assert (th["source"], th["line"], th["host.name"]) == ("b.ndjson", 4, "db-1")  # last event


def test_csv_round_trip() -> None:
    text = written("csv", all_hits())
    back = pl.read_csv(io.StringIO(text), schema=SCHEMA)
    assert back.equals(hits_frame(all_hits()))
    assert written("csv", []).strip() == ",".join(name for name, _ in COLUMNS)


def test_parquet_engine_rows_and_alerts_one_schema(tmp_path: Path) -> None:
    """The Rust engine's rows (which have no alert columns) and alerts in one file of the
    fixed schema; the engine's hits have null alert columns."""
    events = tmp_path / "in.ndjson"
    events.write_text(
        json.dumps(
            {
                "@timestamp": "2024-05-01T09:00:00Z",
                "event": {"category": "network"},
                "destination": {"ip": "169.254.169.254"},
                "process": {"name": "curl"},
            }
        )
        + "\n",
        encoding="utf-8",
    )
    stream = stream_scan([str(events)], default_rules(), needs=frozenset({FRAME}))
    batches = [b for b in stream if b.count]
    stream.close()
    assert batches and batches[0].ipc_rows is not None  # the engine's own rows
    path = tmp_path / "h.parquet"
    writer = ParquetWriter(str(path))
    for batch in batches:
        writer.write(batch)
    writer.write(HitBatch.of(all_hits()[1:]))
    writer.close()
    back = pl.read_parquet(path)
    assert back.schema == SCHEMA
    assert back.get_column("branch").to_list() == ["network", "new_terms", "new_terms", "threshold"]
    assert back.get_column("warmup").to_list() == [None, True, False, None]
    assert back.slice(1).equals(hits_frame(all_hits()[1:]))
    # The engine's frame (CSV, summaries) has the columns too.
    assert batches[0].frame.schema == SCHEMA


def test_table_shows_terms_and_runs_escaped() -> None:
    out = io.StringIO()
    write_table(all_hits(), out, width=220)
    text = out.getvalue()
    # Terms as JSON: a control character is its JSON escape.
    assert "\x1b" not in text and '"h\\u001b[31m"' in text
    lines = text.splitlines()
    assert lines[0] == "4 hit(s)"
    nt, nt2, th = lines[4], lines[5], lines[6]
    assert 'new ["h-1", "/usr/bin/curl"] (run 2024-05-01T10:00:00.000Z, warm-up)' in nt
    assert "warm-up" not in nt2 and "new_terms" in nt2
    assert "count 3 by {" in th and "2 distinct source.ip" in th and "threshold" in th
    assert "2024-05-01T11:03:30Z" in th  # the last event's time
    assert "\x1b" not in written("table", all_hits())


def test_summaries_count_alerts_and_warmups() -> None:
    frame = hits_frame(all_hits())
    tables = summaries(frame)
    counted = {(r["rule"], r["branch"]): r["hits"] for r in tables["by_rule_branch"].to_dicts()}
    assert counted == {
        ("Query", "query"): 1,
        ("New host", "new_terms"): 2,
        ("Many gets", "threshold"): 1,
    }
    assert tables["warmup"].item() == 1
    text = format_summaries(frame)
    assert "New host / new_terms" in text and "new_terms alerts of warm-up runs: 1" in text
    # Streamed aggregates add up alike.
    agg = Aggregates()
    for hit in all_hits():
        agg.add([hit])
    assert agg.summaries()["warmup"].item() == 1
    assert "warm-up" not in format_summaries(hits_frame([nt_hit(warmup=False)]))


def test_scan_line_and_warnings() -> None:
    stats = ScanStats(files=[FileResult("a.ndjson", events=4)], elapsed=1.0, engine="rust")
    stats.alerts = {"nt-1": 2, "th-1": 1}
    stats.warmup_alerts = 1
    stats.kql_no_time = 2
    stats.kql_no_time_examples = [(f"a{ESC}.ndjson", 4)]
    text = format_summary(stats, 3)
    assert "new_terms/threshold alerts: nt-1 2, th-1 1" in text
    assert "new_terms alerts of warm-up runs" in text and ": 1" in text
    (warning,) = no_time_warnings(stats)
    assert warning.startswith("2 matching event(s) of new_terms/threshold rules (counted per rule)")
    assert "a\\x1b[31m.ndjson:4" in warning and "\x1b" not in warning


def test_html_shows_alerts_escaped() -> None:
    stats = ScanStats(files=[], elapsed=0.5, engine="rust")
    html = render_aggregates(Aggregates.of(hits_frame(all_hits()), keep=10), stats)
    assert "\x1b" not in html
    assert "new [&quot;h-1&quot;, &quot;/usr/bin/curl&quot;]" in html
    assert "(run 2024-05-01T10:00:00.000Z, warm-up)" in html
    assert "count 3 by {&quot;host.id&quot;: &quot;h\\u001b[31m&quot;" in html
    assert "new_terms alerts of warm-up runs" in html  # a fact at the top
    plain = render_aggregates(Aggregates.of(hits_frame([single_hit()]), keep=10), stats)
    assert "warm-up" not in plain


def docs(hit: Hit) -> list[dict[str, Any]]:
    return [json.loads(line) for line in alert_json(hit).split("\n")]


def test_new_terms_alert_document() -> None:
    (doc,) = docs(nt_hit())
    assert doc["kibana.alert.new_terms"] == ["h-1", "/usr/bin/curl"]
    assert doc["event"]["kind"] == "alert" and doc["rule"]["id"] == "nt-1"
    assert doc["imds_scan"]["run"] == "2024-05-01T10:00:00.000Z"
    assert doc["imds_scan"]["warmup"] is True and doc["imds_scan"]["line"] == 1
    assert doc["imds_scan"]["new_terms"] == ["h-1", "/usr/bin/curl"]
    # The event's own fields stay; its own rule.* moves out of the way.
    assert doc["process"]["executable"] == "/usr/bin/curl"
    assert doc["imds_scan"]["original"]["rule"] == {"name": "a firewall's own rule"}


def test_threshold_alert_document_is_the_bucket() -> None:
    """As Kibana's threshold rule type: the bucket's terms as fields, @timestamp its last
    event's time, kibana.alert.threshold_result with terms and cardinality as lists."""
    (doc,) = alert_documents(th_hit())
    assert doc["@timestamp"] == "2024-05-01T11:03:30.000Z"
    assert doc["host"] == {"id": f"h{ESC}"} and doc["user"] == {"name": "bob"}
    assert "bytes" not in doc  # not the event: the bucket
    assert doc["kibana.alert.threshold_result"] == {
        "terms": [{"field": "host.id", "value": f"h{ESC}"}, {"field": "user.name", "value": "bob"}],
        "count": 3,
        "from": "2024-05-01T11:01:00.000Z",
        "cardinality": [{"field": "source.ip", "value": 2}],
    }
    scan = doc["imds_scan"]
    assert (scan["source"], scan["line"], scan["branch"]) == ("b.ndjson", 4, "threshold")
    assert (
        scan["threshold_result"] == THRESHOLD_RESULT and scan["run"] == "2024-05-01T11:05:00.000Z"
    )
    assert doc["event"] == {"kind": "alert", "severity": 47, "risk_score": 47.0}
    # Through the stream writer: one document a line, no raw control character.
    text = written("alerts", all_hits())
    assert len(text.splitlines()) == 4 and "\x1b" not in text
