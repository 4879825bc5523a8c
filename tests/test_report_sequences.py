"""Sequence and sample results in every output format (spec/sequences.md, Output): Hit objects
with ``events`` and ``join_keys`` built directly, so no engine or compiler is needed."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from imds_scan.batch import HitBatch
from imds_scan.output import write_table
from imds_scan.records import Hit, ScanStats, SeqEvent
from imds_scan.reference.event import MAX_NESTING, deep_json
from imds_scan.report.aggregate import Aggregates
from imds_scan.report.alerts import alert_json
from imds_scan.report.columns import COLUMNS
from imds_scan.report.formats import ParquetWriter, stream_writer
from imds_scan.report.frame import SCHEMA, hits_frame
from imds_scan.report.html import render_aggregates, result_events
from imds_scan.report.summary import format_summaries, summaries
from imds_scan.rules import Rule

ESC = "\x1b[31m"  # what an attacker writes to drive a terminal
SEQ_RULE = Rule(
    "seq-1",
    "Recon then exfil",
    "high",
    "sequence by host.id [process where true] [network where true]",
    {"ir_version": 1, "id": "seq-1", "name": "Recon then exfil", "severity": "high"},
    references=("https://example.com/seq",),
)
SAMPLE_RULE = Rule("smp-1", "Co-occurring", "low", "sample by host.id [any where true]", {})
EVENT_RULE = Rule("evt-1", "Single", "medium", "process where true", {})


def event(**fields: Any) -> str:
    return json.dumps(fields)


E1 = event(
    **{"@timestamp": "2024-05-01T10:00:00Z"},
    host={"id": "h-1", "name": "web-1"},
    user={"name": "alice"},
    process={"name": "curl", "command_line": "curl http://169.254.169.254/"},
    rule={"name": "a firewall's own rule"},
)
# Numbers as written (1.50) must come back as written; an attacker's kibana.* fields.
E2 = (
    '{"@timestamp": "2024-05-01T10:00:30Z", "host": {"id": "h-1", "name": "web-1"}, '
    '"process": {"name": "nc' + "\\u001b[31m" + '"}, "bytes": 1.50, '
    '"kibana.alert.group.id": "forged"}'
)
# A control character in a value (JSON-escaped in the text; never shown raw).
E3 = '{"@timestamp": "2024-05-01T11:00:00Z", "host.id": "h-2", "host.name": "db\\u001b[31m"}'
SINGLE = event(**{"@timestamp": "2024-05-01T09:00:00Z"}, host={"name": "web-1"})


def seq_hit() -> Hit:
    events = (SeqEvent("a.ndjson", 3, E1), SeqEvent("b.ndjson", 7, E2))
    return Hit("a.ndjson", 3, SEQ_RULE, "sequence", None, E1, events=events, join_keys=("h-1",))


def missing_hit() -> Hit:
    """A sequence whose first stage is a missing-event stage: its first event is the second."""
    events = (SeqEvent(None, None, None), SeqEvent("b.ndjson", 9, E3))
    return Hit("b.ndjson", 9, SEQ_RULE, "sequence", None, E3, events=events, join_keys=(ESC,))


def sample_hit() -> Hit:
    events = (SeqEvent("b.ndjson", 7, E2), SeqEvent("a.ndjson", 3, E1))
    return Hit("b.ndjson", 7, SAMPLE_RULE, "sample", None, E2, events=events, join_keys=("h-1", 2))


def single_hit() -> Hit:
    matched = {"field": "host.name", "op": "==", "pattern": "web-1", "value": "web-1"}
    return Hit("c.ndjson", 1, EVENT_RULE, "process", matched, SINGLE)


def all_hits() -> list[Hit]:
    return [single_hit(), seq_hit(), missing_hit(), sample_hit()]


def written(fmt: str, hits: list[Hit]) -> str:
    data = io.BytesIO()
    writer = stream_writer(fmt, data, width=200)
    writer.write(HitBatch.of(hits))
    writer.close()
    return data.getvalue().decode("utf-8")


def test_ndjson_record_of_a_result() -> None:
    lines = written("ndjson", all_hits()).splitlines()
    assert len(lines) == 4
    single, seq, missing, sample = (json.loads(line) for line in lines)
    assert "events" not in single and "join_keys" not in single
    assert seq["branch"] == "sequence" and seq["matched"] is None
    assert (seq["rule"], seq["rule_id"], seq["severity"]) == ("Recon then exfil", "seq-1", "high")
    assert seq["join_keys"] == ["h-1"]
    assert [(e["source"], e["line"]) for e in seq["events"]] == [("a.ndjson", 3), ("b.ndjson", 7)]
    assert seq["events"][0]["event"] == json.loads(E1)
    assert (seq["source"], seq["line"], seq["event"]) == ("a.ndjson", 3, json.loads(E1))
    # The event is embedded as written: 1.50 stays 1.50.
    assert '"bytes": 1.50' in lines[1]
    assert missing["events"][0] == {"missing": True, "source": None, "line": None, "event": None}
    assert (missing["source"], missing["line"]) == ("b.ndjson", 9)
    assert missing["join_keys"] == [ESC]
    assert sample["branch"] == "sample" and sample["join_keys"] == ["h-1", 2]
    # --format json: the same records as one array.
    assert json.loads(written("json", all_hits())) == [json.loads(line) for line in lines]


def test_frame_columns_of_results_and_hits() -> None:
    frame = hits_frame(all_hits())
    assert frame.schema == SCHEMA
    # The new columns come last: a single-event hit's columns keep their places.
    names = [name for name, _ in COLUMNS]
    assert names[-8:-4] == ["event", "join_keys", "event_count", "events"]  # then KQL alerts
    rows = frame.to_dicts()
    assert rows[0]["join_keys"] is None and rows[0]["event_count"] is None
    assert rows[0]["events"] is None and rows[0]["matched.field"] == "host.name"
    seq = rows[1]
    assert (seq["branch"], seq["source"], seq["line"]) == ("sequence", "a.ndjson", 3)
    assert seq["host.name"] == "web-1" and seq["process.name"] == "curl"  # the first event's
    assert seq["@timestamp"] == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert json.loads(seq["join_keys"]) == ["h-1"] and seq["event_count"] == 2
    assert json.loads(seq["events"]) == json.loads(seq_hit().to_json())["events"]
    assert rows[2]["event_count"] == 1  # a missing-event stage is no event
    assert json.loads(rows[2]["join_keys"]) == [ESC]
    assert rows[3]["branch"] == "sample" and json.loads(rows[3]["join_keys"]) == ["h-1", 2]


def test_events_column_gives_the_texts_back_as_written() -> None:
    frame = hits_frame([seq_hit(), missing_hit()])
    first, second = frame.get_column("events").to_list()
    assert result_events(first) == [("a.ndjson", 3, E1), ("b.ndjson", 7, E2)]
    assert result_events(second) == [None, ("b.ndjson", 9, E3)]


def test_csv_one_row_per_result() -> None:
    text = written("csv", all_hits())
    back = pl.read_csv(io.StringIO(text), schema=SCHEMA)
    # (A leading "=" gets a "'" in CSV: the single hit's matched.op "==".)
    assert back.drop("matched.op").equals(hits_frame(all_hits()).drop("matched.op"))
    assert back.get_column("event_count").to_list() == [None, 2, 1, 2]
    # No hits: the header alone, with the new columns.
    assert written("csv", []).strip() == ",".join(name for name, _ in COLUMNS)


def test_parquet_hits_and_results_one_schema(tmp_path: Path) -> None:
    """Results (Hit objects) and hits share one file and its fixed schema (the Rust engine's
    rows have the same columns: tests/test_stream_engine.py compares them with SCHEMA)."""
    path = tmp_path / "h.parquet"
    writer = ParquetWriter(str(path))
    writer.write(HitBatch.of([single_hit()]))
    writer.write(HitBatch.of(all_hits()[1:]))
    writer.close()
    back = pl.read_parquet(path)
    assert back.schema == SCHEMA
    assert back.equals(hits_frame(all_hits()))
    assert back.get_column("branch").to_list() == ["process", "sequence", "sequence", "sample"]


def test_table_shows_results_without_raw_control_characters() -> None:
    out = io.StringIO()
    write_table(all_hits(), out, width=200)
    text = out.getvalue()
    assert "\x1b" not in text and "\\x1b[31m" in text
    lines = text.splitlines()
    assert lines[0] == "4 hit(s)"
    seq, missing, sample = lines[4], lines[5], lines[6]
    assert "sequence" in seq and '2 events by ["h-1"]' in seq and "web-1" in seq
    assert "1 event (1 missing) by [" in missing
    assert "sample" in sample and '2 events by ["h-1", 2]' in sample
    assert "2024-05-01T10:00:00Z" in seq  # the first event's time
    # The terminal format: the same through the stream writer.
    assert "\x1b" not in written("table", all_hits())


def test_summaries_count_results_by_rule_and_branch() -> None:
    frame = hits_frame(all_hits())
    tables = summaries(frame)
    counted = {(r["rule"], r["branch"]): r["hits"] for r in tables["by_rule_branch"].to_dicts()}
    assert counted == {
        ("Single", "process"): 1,
        ("Recon then exfil", "sequence"): 2,
        ("Co-occurring", "sample"): 1,
    }
    # Hosts from the first event of each result.
    hosts = {r["host.name"]: r["hits"] for r in tables["by_host"].to_dicts()}
    assert hosts == {"web-1": 3, f"db{ESC}": 1}
    text = format_summaries(frame)
    assert "\x1b" not in text and "Recon then exfil / sequence" in text


def stats() -> ScanStats:
    return ScanStats(files=[], elapsed=0.5, engine="rust")


def test_html_lists_each_results_events_escaped() -> None:
    hits = [*all_hits(), seq_hit()]
    html = render_aggregates(Aggregates.of(hits_frame(hits), keep=3), stats(), max_rows=3)
    assert "\x1b" not in html
    # The first result: both events, source:line and the event text (escaped, cut as any value).
    assert "<code>a.ndjson:3</code>" in html and "<code>b.ndjson:7</code>" in html
    assert "&quot;bytes&quot;: 1.50" in html and "&quot;forged&quot;" in html
    assert "2 events by [&quot;h-1&quot;]" in html
    # A missing-event stage, then its one event, with the control character made visible.
    assert "missing (no such event, as the query requires)" in html
    assert "<code>b.ndjson:9</code>" in html and "db\\x1b[31m" in html
    assert "1 event (1 missing) by [&quot;\\u001b[31m&quot;]" in html
    # The hit list's cap counts results: 3 of 5 shown, the sample (the 4th) is not.
    assert "The first 3 of 5 hits" in html
    assert html.count('<tr class="ev">') == 2
    assert "Co-occurring" in html  # in the per-rule table, not in the list


def alerts(hit: Hit) -> list[dict[str, Any]]:
    text = alert_json(hit)
    with deep_json(text):
        return [json.loads(line) for line in text.split("\n")]


def test_alerts_shell_and_building_blocks_linked() -> None:
    shell, first, second = alerts(seq_hit())
    assert "kibana.alert.building_block_type" not in shell
    for k, block in enumerate((first, second)):
        assert block["kibana.alert.building_block_type"] == "default"
        assert block["kibana.alert.group.id"] == shell["kibana.alert.uuid"]
        assert block["kibana.alert.group.index"] == k
        assert block["kibana.alert.depth"] == 1
        assert block["event"]["kind"] == "alert" and block["rule"]["id"] == "seq-1"
        assert block["imds_scan"]["stage"] == k + 1
    assert shell["kibana.alert.group.id"] == shell["kibana.alert.uuid"]
    assert shell["kibana.alert.depth"] == 2
    assert first["kibana.alert.ancestors"] == [
        {"id": "3", "index": "a.ndjson", "type": "event", "depth": 0}
    ]
    ids = [a["id"] for a in shell["kibana.alert.ancestors"]]
    assert ids == ["3", first["kibana.alert.uuid"], "7", second["kibana.alert.uuid"]]
    # Building blocks are their events; the event's own rule and kibana fields move aside.
    assert first["process"]["command_line"] == "curl http://169.254.169.254/"
    assert first["imds_scan"]["original"] == {"rule": {"name": "a firewall's own rule"}}
    assert second["kibana.alert.group.id"] != "forged"
    assert second["imds_scan"]["original"] == {"kibana.alert.group.id": "forged"}
    assert second["bytes"] == 1.5
    # The shell: what the events share (host), not what differs (process, time).
    assert shell["host"] == {"id": "h-1", "name": "web-1"}
    assert "process" not in shell and "user" not in shell
    assert shell["@timestamp"] == "2024-05-01T10:00:00Z"  # the first event's
    assert shell["event"]["kind"] == "alert" and shell["event"]["severity"] == 73
    assert shell["rule"] == {
        "id": "seq-1",
        "name": "Recon then exfil",
        "ruleset": "imds-scan",
        "reference": "https://example.com/seq",
    }
    assert shell["imds_scan"]["join_keys"] == ["h-1"]
    assert shell["imds_scan"]["events"] == [
        {"source": "a.ndjson", "line": 3},
        {"source": "b.ndjson", "line": 7},
    ]
    # Stable ids: the same result gives the same documents.
    assert alerts(seq_hit()) == [shell, first, second]
    assert len({shell["kibana.alert.uuid"], first["kibana.alert.uuid"]}) == 2


def test_alerts_missing_stage_has_no_building_block() -> None:
    shell, block = alerts(missing_hit())
    assert block["kibana.alert.group.index"] == 0 and block["imds_scan"]["stage"] == 2
    assert shell["imds_scan"]["events"][0] == {"missing": True}
    assert shell["host"] == {"id": "h-2", "name": f"db{ESC}"}  # JSON-escaped in the text


def test_alerts_sample_as_a_sequence_and_stream_writer() -> None:
    shell, *blocks = alerts(sample_hit())
    assert shell["imds_scan"]["branch"] == "sample" and len(blocks) == 2
    assert {b["kibana.alert.group.id"] for b in blocks} == {shell["kibana.alert.uuid"]}
    text = written("alerts", all_hits())
    docs = [json.loads(line) for line in text.splitlines()]
    # 1 + (1 + 2) + (1 + 1) + (1 + 2) documents; a single hit's alert has no kibana fields.
    assert len(docs) == 9
    assert not any(key.startswith("kibana") for key in docs[0])
    assert "\x1b" not in text


def test_deeply_nested_events_in_every_format() -> None:
    """Events nested as deep as the engines accept (MAX_NESTING) in a result."""
    deep = '{"host": {"id": "h-1"}, "x": ' + "[" * (MAX_NESTING - 2) + "]" * (MAX_NESTING - 2) + "}"
    events = (SeqEvent("a.ndjson", 1, deep), SeqEvent("a.ndjson", 2, deep))
    hit = Hit("a.ndjson", 1, SEQ_RULE, "sequence", None, deep, events=events, join_keys=("h-1",))
    shell, *blocks = alerts(hit)
    assert shell["host"] == {"id": "h-1"} and len(blocks) == 2
    for fmt in ("ndjson", "csv", "table"):
        assert written(fmt, [hit])
    frame = hits_frame([hit])
    assert result_events(frame.get_column("events")[0]) == [
        ("a.ndjson", 1, deep),
        ("a.ndjson", 2, deep),
    ]
    assert "a.ndjson:2" in render_aggregates(Aggregates.of(frame, keep=5), stats())


def test_summary_of_a_rule_without_description_gives_no_reason() -> None:
    """A rule file without a description (as a hand-written sequence rule often is): its
    severity line has no reason, not ": ."."""
    from imds_scan.cli import _first_sentence

    assert _first_sentence("") == "" and _first_sentence("  ") == ""
    assert _first_sentence("Curl. Then more.") == "Curl."
    why = {SEQ_RULE.id: _first_sentence(SEQ_RULE.description)}
    text = format_summaries(hits_frame([seq_hit()]), why=why)
    assert "high      seq-1\n" in text + "\n"


def _dumped(hit: Hit) -> str:
    """``hit``'s record as ``json.dumps`` of its fields writes it, each event's text put in
    raw where a placeholder was."""
    from imds_scan.records import alert_fields

    texts: list[str] = []

    def raw(text: str) -> str:
        texts.append(text.strip())
        return f"\x00{len(texts) - 1}\x00"

    fields: dict[str, Any] = {
        "source": hit.source,
        "line": hit.line,
        "rule": hit.rule.name,
        "rule_id": hit.rule.id,
        "severity": hit.rule.severity,
        "branch": hit.branch,
        "matched": hit.matched,
    }
    if hit.events is not None:
        fields["join_keys"] = list(hit.join_keys or ())
        fields["events"] = [
            {"missing": True, "source": None, "line": None, "event": None}
            if e.event_text is None
            else {"source": e.source, "line": e.line, "event": raw(e.event_text)}
            for e in hit.events
        ]
    fields.update(alert_fields(hit))
    fields["event"] = raw(hit.event_text)
    out = json.dumps(fields, ensure_ascii=False)
    for i, text in enumerate(texts):
        out = out.replace(json.dumps(f"\x00{i}\x00"), text, 1)
    return out


def test_records_are_what_json_dumps_of_their_fields_writes() -> None:
    # Written from parts (names remembered across records): byte for byte json.dumps's.
    odd = Rule('r"1\\', 'Quote " back\\slash é \x1b', "h\u2028igh", "process where true", {})
    name = 'dir/\udcff é "q" \\ \x07.ndjson'  # a name that is not UTF-8 (surrogateescape)
    matched = {"field": "user.name", "op": "==", "pattern": "é\x1b", "value": 'a"b'}
    hits = [
        seq_hit(),
        missing_hit(),
        sample_hit(),
        single_hit(),
        Hit(name, 2**70, odd, "process", matched, "  " + E2 + " \n"),
        Hit(name, 5, odd, "sequence", None, E1, events=(SeqEvent(name, 0, E3),), join_keys=()),
        # Equal to Python, not in JSON: no remembered text may stand for another's.
        *(
            Hit("k", 1, odd, "sample", None, E1, events=(SeqEvent("k", 1, E1),), join_keys=keys)
            for keys in [("1",), (1,), (True,), (1.0,), ("true",), (None, "x"), ("x", "é")]
        ),
        Hit(
            "k.ndjson",
            4,
            odd,
            "new_terms",
            None,
            E1,
            run="2024-05-01T10:00:00.000Z",
            new_terms=("é", 3, None),
            warmup=True,
        ),
    ]
    for hit in hits * 2:  # the second time from the remembered names
        assert hit.to_json() == _dumped(hit)
        json.loads(hit.to_json().encode("utf-8", "surrogatepass"))
