"""Reporting: the hits frame, every output format read back, summaries, alerts, filters, API."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from conftest import ENGINES
from imds_scan import ScanConfig, scan
from imds_scan.filters import FilterError, parse_event_time, parse_time_bound
from imds_scan.report.alerts import alert_document
from imds_scan.report.frame import SCHEMA, hits_frame

CMD_A = "curl -s http://169.254.169.254/latest/meta-data/iam/security-credentials/"
CMD_B = "wget -qO- http://169.254.169.254/latest/dynamic/instance-identity/document"
CMD_C = "bash -c 'curl http://metadata.google.internal/computeMetadata/v1/'"


def net(**extra: Any) -> dict[str, Any]:
    return {"event": {"category": "network"}, **extra}


def proc(cmd: str, **extra: Any) -> dict[str, Any]:
    return {
        "event": {"category": "process", "type": "start"},
        **extra,
        "process": {**extra.get("process", {}), "command_line": cmd},
    }


# A known corpus: line number -> event. Hits are lines 1, 2, 4, 5, 6, 8, 9.
CORPUS: list[dict[str, Any]] = [
    net(  # 1: network hit
        **{"@timestamp": "2024-05-01T10:15:00Z"},
        destination={"ip": "169.254.169.254"},
        host={"name": "web-1"},
        user={"name": "alice"},
        process={"name": "python3", "executable": "/usr/bin/python3"},
    ),
    proc(  # 2: process hit; host name in upper case
        CMD_A,
        **{"@timestamp": "2024-05-01T11:00:00.5Z"},
        host={"name": "WEB-2"},
        user={"name": "root"},
        process={"name": "curl", "parent": {"name": "bash"}},
    ),
    net(destination={"ip": "10.0.0.1"}, host={"name": "web-1"}),  # 3: benign
    proc(  # 4: same command line as 2, dotted keys
        CMD_A,
        **{"@timestamp": "2024-05-02T09:00:00Z", "host.name": "web-1", "user.name": "root"},
        process={"name": "curl"},
    ),
    net(  # 5: destination.address; @timestamp as epoch milliseconds
        **{"@timestamp": 1714730400000},
        destination={"address": "169.254.169.254"},
        host={"name": "db-1"},
    ),
    net(url={"domain": "metadata.google.internal"}, host={"name": "db-1"}),  # 6: no @timestamp
    proc(CMD_A, host={"name": "web-1"}, process={"name": "cloud-init"}),  # 7: excluded agent
    proc(  # 8: a time zone offset
        CMD_B,
        **{"@timestamp": "2024-05-03T23:59:59+02:00"},
        host={"name": "api-1"},
        user={"name": "alice"},
        process={"name": "wget"},
    ),
    proc(  # 9: no host.name
        CMD_C,
        **{"@timestamp": "2024-05-04T00:00:00Z"},
        user={"name": "bob"},
        process={"name": "bash"},
    ),
]
HIT_LINES = [1, 2, 4, 5, 6, 8, 9]


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.ndjson"
    path.write_text("".join(json.dumps(e) + "\n" for e in CORPUS), encoding="utf-8")
    return path


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imds_scan", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


# ---------------------------------------------------------------- the frame


@pytest.mark.parametrize("engine", ENGINES)
def test_frame_schema_and_values(corpus: Path, engine: str) -> None:
    result = scan([str(corpus)], config=ScanConfig(engine=engine))
    frame = result.frame
    assert frame.schema == SCHEMA
    assert result.to_polars() is frame
    assert frame["line"].to_list() == HIT_LINES
    assert frame["branch"].to_list() == [
        "network",
        "process",
        "process",
        "network",
        "network",
        "process",
        "process",
    ]
    assert frame["@timestamp"].to_list() == [
        ts("2024-05-01T10:15:00Z"),
        ts("2024-05-01T11:00:00.5Z"),
        ts("2024-05-02T09:00:00Z"),
        ts("2024-05-03T10:00:00Z"),
        None,
        ts("2024-05-03T21:59:59Z"),
        ts("2024-05-04T00:00:00Z"),
    ]
    first = frame.row(0, named=True)
    assert first["host.name"] == "web-1"
    assert first["process.executable"] == "/usr/bin/python3"
    assert first["destination.ip"] == "169.254.169.254"
    assert first["url.domain"] is None  # missing fields are null
    assert first["matched.field"] == "destination.ip"
    assert first["rule_id"] == "imds-default" and first["severity"] == "high"
    second = frame.row(1, named=True)
    assert second["process.parent.name"] == "bash"
    assert second["matched.pattern"] == "*169.254.169.254*"
    assert frame.row(2, named=True)["host.name"] == "web-1"  # a dotted key
    assert [json.loads(e) for e in frame["event"]] == [
        json.loads(json.dumps(CORPUS[n - 1])) for n in HIT_LINES
    ]


def test_multi_valued_fields_are_joined(tmp_path: Path) -> None:
    event = net(destination={"ip": ["10.0.0.1", "169.254.169.254"]}, host={"name": ["a", "b"]})
    path = tmp_path / "m.ndjson"
    path.write_text(json.dumps(event) + "\n")
    row = scan([str(path)], config=ScanConfig(engine="python")).frame.row(0, named=True)
    assert row["destination.ip"] == "10.0.0.1, 169.254.169.254"
    assert row["host.name"] == "a, b"


def test_empty_frame_has_the_schema(tmp_path: Path) -> None:
    frame = hits_frame([])
    assert frame.schema == SCHEMA and frame.is_empty()
    path = tmp_path / "benign.ndjson"
    path.write_text(json.dumps(CORPUS[2]) + "\n")
    assert cli(path, "--engine", "python", "-f", "json").stdout == "[]\n"
    assert cli(path, "--engine", "python", "-o", tmp_path / "e.parquet").returncode == 0
    assert pl.read_parquet(tmp_path / "e.parquet").schema == SCHEMA


# ---------------------------------------------------------------- formats read back


def expected_records(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select("source", "line", "rule", "rule_id", "severity", "branch")


def records_frame(records: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {k: r[k] for k in ("source", "line", "rule", "rule_id", "severity", "branch")}
            for r in records
        ]
    )


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("fmt", ["ndjson", "json"])
def test_ndjson_and_json_round_trip(tmp_path: Path, corpus: Path, engine: str, fmt: str) -> None:
    frame = scan([str(corpus)], config=ScanConfig(engine=engine)).frame
    out = tmp_path / f"hits.{fmt}"
    proc = cli(corpus, "--engine", engine, "--output", out)  # format from the extension
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    back = pl.read_ndjson(out) if fmt == "ndjson" else pl.read_json(out)
    assert back.select(expected_records(frame).columns).equals(expected_records(frame))
    matched = back["matched"].struct.unnest().rename(lambda c: f"matched.{c}")
    assert matched.equals(frame.select(matched.columns))
    text = out.read_text()
    records = [json.loads(x) for x in text.splitlines()] if fmt == "ndjson" else json.loads(text)
    assert [r["event"] for r in records] == [json.loads(e) for e in frame["event"]]
    if fmt == "ndjson":  # the first slice's contract, byte for byte
        stdout = cli(corpus, "--engine", engine, "-f", "ndjson").stdout
        assert stdout == text


@pytest.mark.parametrize("engine", ENGINES)
def test_csv_and_parquet_round_trip(tmp_path: Path, corpus: Path, engine: str) -> None:
    frame = scan([str(corpus)], config=ScanConfig(engine=engine)).frame
    assert cli(corpus, "--engine", engine, "-o", tmp_path / "h.csv").returncode == 1
    assert cli(corpus, "--engine", engine, "-o", tmp_path / "h.parquet").returncode == 1
    assert pl.read_parquet(tmp_path / "h.parquet").equals(frame)
    assert pl.read_csv(tmp_path / "h.csv", schema=SCHEMA).equals(frame)
    # --format wins over the extension.
    assert cli(corpus, "--engine", engine, "-f", "csv", "-o", tmp_path / "h.txt").returncode == 1
    assert pl.read_csv(tmp_path / "h.txt", schema=SCHEMA).equals(frame)


def test_csv_defuses_spreadsheet_formulas(tmp_path: Path) -> None:
    path = tmp_path / "f.ndjson"
    path.write_text(json.dumps(proc('=HYPERLINK("http://x") 169.254.169.254')) + "\n")
    out = tmp_path / "f.csv"
    assert cli(path, "--engine", "python", "-o", out).returncode == 1
    back = pl.read_csv(out, schema=SCHEMA)
    assert back["process.command_line"][0] == '\'=HYPERLINK("http://x") 169.254.169.254'
    assert json.loads(back["event"][0]) == json.loads(path.read_text())  # JSON is untouched


def test_parquet_to_stdout_is_a_usage_error(corpus: Path) -> None:
    proc = cli(corpus, "-f", "parquet")
    assert proc.returncode == 2 and proc.stdout == ""
    assert "--output" in proc.stderr


def test_unknown_output_extension_is_a_usage_error(corpus: Path, tmp_path: Path) -> None:
    proc = cli(corpus, "-o", tmp_path / "hits.xlsx")
    assert proc.returncode == 2 and "--format" in proc.stderr
    assert not (tmp_path / "hits.xlsx").exists()


def test_unwritable_output_is_exit_2(corpus: Path, tmp_path: Path) -> None:
    proc = cli(corpus, "--engine", "python", "-o", tmp_path / "no" / "such" / "dir.ndjson")
    assert proc.returncode == 2 and "cannot write" in proc.stderr


# ---------------------------------------------------------------- alerts

# The ECS 8.x field names the alert documents add (outside the imds_scan namespace).
ECS_ALERT_FIELDS = {
    "event.kind",
    "event.severity",
    "event.risk_score",
    "rule.id",
    "rule.name",
    "rule.ruleset",
    "rule.reference",
    "threat.framework",
    "threat.tactic.id",
    "threat.tactic.name",
    "threat.tactic.reference",
    "threat.technique.id",
    "threat.technique.name",
    "threat.technique.reference",
    "threat.technique.subtechnique.id",
    "threat.technique.subtechnique.name",
    "threat.technique.subtechnique.reference",
}


def leaves(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(leaves(value, f"{path}."))
        else:
            out[path] = value
    return out


@pytest.mark.parametrize("engine", ENGINES)
def test_alert_documents(tmp_path: Path, corpus: Path, engine: str) -> None:
    out = tmp_path / "alerts.ndjson"
    proc = cli(corpus, "--engine", engine, "-f", "alerts", "-o", out)
    assert proc.returncode == 1, proc.stderr
    docs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(docs) == len(HIT_LINES)
    for doc, line in zip(docs, HIT_LINES, strict=True):
        source = CORPUS[line - 1]
        flat, original = leaves(doc), leaves(source)
        added = {k for k in flat if k not in original or flat[k] != original[k]}
        assert {k for k in added if not k.startswith("imds_scan.")} <= ECS_ALERT_FIELDS
        assert flat["event.kind"] == "alert"
        assert flat["rule.name"] == "Detect Cloud Instance Metadata API"
        assert flat["threat.framework"] == "MITRE ATT&CK"
        assert flat["threat.tactic.id"] == "TA0006"
        assert flat["threat.tactic.name"] == "Credential Access"
        assert flat["threat.technique.id"] == "T1552"
        assert flat["threat.technique.subtechnique.id"] == "T1552.005"
        assert flat["imds_scan.source"] == str(corpus) and flat["imds_scan.line"] == line
        # Every field of the source event is kept (event.kind aside), @timestamp as written.
        for key, value in original.items():
            assert flat[key] == value, key
    back = pl.read_ndjson(out)  # Polars reads them as one table
    assert back["imds_scan"].struct.field("line").to_list() == HIT_LINES


def test_alert_replaces_spoofed_namespaces(tmp_path: Path) -> None:
    event = {
        **net(destination={"ip": "169.254.169.254"}),
        "event.kind": "event",
        "rule": {"name": "allow-egress"},  # a firewall rule of the source event
        "imds_scan.line": 999,
        "threat.framework": "spoofed",
    }
    path = tmp_path / "s.ndjson"
    path.write_text(json.dumps(event) + "\n")
    result = scan([str(path)], config=ScanConfig(engine="python"))
    doc = alert_document(result.hits[0])
    assert "event.kind" not in doc and doc["event"]["kind"] == "alert"
    assert doc["rule"]["name"] == "Detect Cloud Instance Metadata API"
    assert doc["threat"]["framework"] == "MITRE ATT&CK" and "threat.framework" not in doc
    assert doc["imds_scan"]["line"] == 1 and "imds_scan.line" not in doc
    assert doc["imds_scan"]["original"] == {
        "rule": {"name": "allow-egress"},
        "threat.framework": "spoofed",
    }


# ---------------------------------------------------------------- summaries


def rows(frame: pl.DataFrame, *cols: str) -> list[tuple[Any, ...]]:
    return frame.select(cols).rows()


@pytest.mark.parametrize("engine", ENGINES)
def test_summaries_equal_hand_counts(corpus: Path, engine: str) -> None:
    result = scan([str(corpus)], config=ScanConfig(engine=engine))
    tables = result.summaries()
    assert rows(tables["by_rule_branch"], "branch", "hits") == [("process", 4), ("network", 3)]
    assert rows(tables["by_host"], "host.name", "hits") == [
        ("db-1", 2),
        ("web-1", 2),
        ("WEB-2", 1),
        ("api-1", 1),
        (None, 1),
    ]
    assert rows(tables["by_process"], "process.name", "hits") == [
        ("curl", 2),
        (None, 2),
        ("bash", 1),
        ("python3", 1),
        ("wget", 1),
    ]
    assert rows(tables["by_user"], "user.name", "hits") == [
        ("alice", 2),
        ("root", 2),
        (None, 2),
        ("bob", 1),
    ]
    assert rows(tables["by_day"], "day", "hits") == [
        (date(2024, 5, 1), 2),
        (date(2024, 5, 2), 1),
        (date(2024, 5, 3), 2),
        (date(2024, 5, 4), 1),
        (None, 1),
    ]
    assert rows(tables["top_command_lines"], "process.command_line", "hits") == [
        (CMD_A, 2),
        (CMD_C, 1),
        (CMD_B, 1),
    ]
    web1 = tables["by_host"].row(1, named=True)
    assert (web1["first_seen"], web1["last_seen"]) == (
        ts("2024-05-01T10:15:00Z"),
        ts("2024-05-02T09:00:00Z"),
    )
    assert tables["seen"].row(0) == (7, ts("2024-05-01T10:15:00Z"), ts("2024-05-04T00:00:00Z"))


def test_summary_on_stderr(corpus: Path) -> None:
    piped = cli(corpus, "--engine", "python", "-f", "ndjson")
    assert "hits by host" not in piped.stderr  # off by default when stdout is not a terminal
    proc = cli(corpus, "--engine", "python", "-f", "ndjson", "--summary")
    assert proc.returncode == 1
    assert proc.stdout == piped.stdout  # results alone on stdout
    lines = proc.stderr.splitlines()
    for expected in [
        "hits by rule and branch:",
        "        4  Detect Cloud Instance Metadata API / process",
        "        3  Detect Cloud Instance Metadata API / network",
        "        2  db-1",
        "        1  -",
        "        1  no @timestamp",
        "        2  2024-05-03",
        f"        2  {CMD_A}",
        "first seen: 2024-05-01T10:15:00Z  last seen: 2024-05-04T00:00:00Z",
    ]:
        assert expected in lines, expected
    quiet = cli(corpus, "--engine", "python", "-f", "ndjson", "--no-summary", "-q")
    assert quiet.stderr == ""


# ---------------------------------------------------------------- filters (both engines)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    ("args", "lines"),
    [
        (["--host", "web-*"], [1, 2, 4]),  # ASCII case-insensitive: WEB-2 too; no host: out
        (["--host", "db-?", "--host", "API*"], [5, 6, 8]),
        (["--exclude-host", "web-*"], [5, 6, 8, 9]),  # no host.name: kept
        (["--host", "*", "--exclude-host", "db-1"], [1, 2, 4, 8]),
        (["--since", "2024-05-02"], [4, 5, 8, 9]),  # no @timestamp: out
        (["--until", "2024-05-02"], [1, 2]),
        (["--since", "2024-05-03T10:00:00Z", "--until", "2024-05-04T00:00:00Z"], [5, 8]),
        (["--since", "2024-05-03T12:00:00+02:00"], [5, 8, 9]),
        (["--since", "100000d"], [1, 2, 4, 5, 8, 9]),
        (["--until", "1h"], [1, 2, 4, 5, 8, 9]),
        (["--host", "web-*", "--since", "2024-05-01T11:00:00Z"], [2, 4]),
        (["--host", "nothing"], []),
    ],
)
def test_filters_select_exactly(
    corpus: Path, engine: str, args: list[str], lines: list[int]
) -> None:
    proc = cli(corpus, "--engine", engine, "-f", "ndjson", *args)
    assert proc.returncode == (1 if lines else 0), proc.stderr
    assert [json.loads(x)["line"] for x in proc.stdout.splitlines()] == lines


@pytest.mark.parametrize("engine", ENGINES)
def test_host_filter_keeps_the_witness(corpus: Path, engine: str) -> None:
    plain = scan([str(corpus)], config=ScanConfig(engine=engine))
    filtered = scan(
        [str(corpus)],
        config=ScanConfig(engine=engine, exclude_hosts=("nothing",)),
    )
    assert [(h.line, h.branch, h.matched) for h in filtered.hits] == [
        (h.line, h.branch, h.matched) for h in plain.hits
    ]


def test_api_takes_naive_bounds_as_utc(corpus: Path) -> None:
    naive = ScanConfig(engine="python", since=datetime(2024, 5, 3, 10), until=datetime(2024, 5, 4))
    assert [h.line for h in scan([str(corpus)], config=naive).hits] == [5, 8]


@pytest.mark.parametrize("engine", ENGINES)
def test_time_filter_counts_what_it_dropped(corpus: Path, engine: Any) -> None:
    result = scan([str(corpus)], config=ScanConfig(engine=engine, until=ts("2024-05-02T00:00Z")))
    assert [h.line for h in result.hits] == [1, 2]
    assert result.stats.outside_time_window == 5
    proc = cli(corpus, "--engine", engine, "-f", "ndjson", "--until", "2024-05-02")
    assert "2 hit(s)" in proc.stderr and "hits outside --since/--until: 5" in proc.stderr


def test_time_bounds() -> None:
    now = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)
    assert parse_time_bound("7d", now) == datetime(2024, 5, 3, 12, 0, tzinfo=UTC)
    assert parse_time_bound("12h", now) == datetime(2024, 5, 10, 0, 0, tzinfo=UTC)
    assert parse_time_bound("30M", now) == datetime(2024, 5, 10, 11, 30, tzinfo=UTC)
    assert parse_time_bound("2w", now) == datetime(2024, 4, 26, 12, 0, tzinfo=UTC)
    assert parse_time_bound("2024-05-01") == datetime(2024, 5, 1, tzinfo=UTC)
    assert parse_time_bound("2024-05-01T02:00+02:00") == datetime(2024, 5, 1, tzinfo=UTC)
    for bad in ["yesterday", "7 days", "", "-3d"]:
        with pytest.raises(FilterError):
            parse_time_bound(bad, now)
    # Out of datetime's range: a FilterError too, not an OverflowError.
    for bad in ["1000000d", "99999999999999999999s", "0001-01-01T00:00+01:00"]:
        with pytest.raises(FilterError):
            parse_time_bound(bad, now)
    assert parse_event_time("2024-05-01T00:00:00.123456789Z") == datetime(
        2024, 5, 1, 0, 0, 0, 123456, tzinfo=UTC
    )
    assert parse_event_time("1714521600000") == datetime(2024, 5, 1, tzinfo=UTC)
    assert parse_event_time("not a date") is None


def test_bad_filters_are_usage_errors(corpus: Path) -> None:
    for args in (
        ["--since", "yesterday"],
        ["--until", "soon"],
        ["--host", ""],
        ["--since", "1000000d"],
        ["--until", "9999-12-31T23:59-01:00"],
    ):
        proc = cli(corpus, "--engine", "python", *args)
        assert proc.returncode == 2, args
        assert proc.stdout == ""
        assert f"Invalid value for '{args[0]}'" in proc.stderr, proc.stderr


# ---------------------------------------------------------------- API and start-up


def test_api_defaults_and_overrides(corpus: Path) -> None:
    result = scan([str(corpus)], engine="python", config=ScanConfig(hosts=("db-*",)))
    assert result.stats.engine == "python"
    assert result.frame["line"].to_list() == [5, 6]
    assert result.stats.total("events") == len(CORPUS)


def test_cli_start_up_does_not_import_polars() -> None:
    code = "import sys, imds_scan, imds_scan.cli; print('polars' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_ndjson_output_does_not_import_polars(corpus: Path) -> None:
    code = (
        "import sys; from imds_scan.cli import main; sys.argv = ['imds-scan', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('polars' in sys.modules, file=sys.stderr)"
    )
    for fmt in ("ndjson", "json", "alerts", "table"):
        proc = subprocess.run(
            [sys.executable, "-c", code, str(corpus), "--engine", "python", "-q", "-f", fmt],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.stderr.strip().endswith("False"), (fmt, proc.stderr)


SAMPLE = Path(__file__).resolve().parent.parent / "bench" / "sample" / "ecs-sample.ndjson"


@pytest.mark.skipif(not SAMPLE.exists(), reason="the bundled sample is not there")
@pytest.mark.parametrize("globs", [("ip-*",), ("*PROD*", "jump-?"), ("gke-*-cbd8",)])
def test_host_filters_on_the_sample_agree_with_the_oracle(globs: tuple[str, ...]) -> None:
    from imds_scan.reference.event import field_values, load_event
    from imds_scan.reference.wildcard import ascii_fold, wildcard_regex

    patterns = [wildcard_regex(g) for g in globs]

    def selected(text: str) -> bool:
        hosts = field_values(load_event(text), ["host", "name"])
        return any(p.fullmatch(ascii_fold(h)) for h in hosts for p in patterns)

    plain = scan([str(SAMPLE)], config=ScanConfig(engine="python"))
    included = [h.line for h in plain.hits if selected(h.event_text)]
    excluded = [h.line for h in plain.hits if not selected(h.event_text)]
    assert included and excluded  # the globs split the sample's hits
    for engine in ENGINES:
        only = scan([str(SAMPLE)], config=ScanConfig(engine=engine, hosts=globs))
        skip = scan([str(SAMPLE)], config=ScanConfig(engine=engine, exclude_hosts=globs))
        assert [h.line for h in only.hits] == included, engine
        assert [h.line for h in skip.hits] == excluded, engine


RULE_TOML = """
[rule]
name = "Suspicious shell"
rule_id = "test-shell"
severity = "low"
type = "eql"
language = "eql"
query = '''process where process.name == "sh"'''
references = ["https://example.test/shell"]
{threat}
"""

THREAT_TOML = """
[[rule.threat]]
framework = "MITRE ATT&CK"
[rule.threat.tactic]
id = "TA0002"
name = "Execution"
[[rule.threat.technique]]
id = "T1059"
name = "Command and Scripting Interpreter"
[[rule.threat.technique]]
id = "T1202"
name = "Indirect Command Execution"
"""


@pytest.mark.parametrize("threat", [THREAT_TOML, ""])
def test_alert_threat_is_the_rules_own(tmp_path: Path, threat: str) -> None:
    from imds_scan import run_scan
    from imds_scan.rules import parse_rule_text

    rule = parse_rule_text(RULE_TOML.format(threat=threat), "test.toml")
    path = tmp_path / "e.ndjson"
    event = {"event": {"category": "process"}, "process": {"name": "sh"}}
    path.write_text(json.dumps(event) + "\n")
    (hit,) = run_scan([str(path)], [rule]).hits
    doc = alert_document(hit)
    assert doc["rule"]["reference"] == "https://example.test/shell"
    if not threat:
        assert "threat" not in doc  # no mapping: none is made up
        return
    assert doc["threat"] == {
        "framework": "MITRE ATT&CK",
        "tactic": {"id": "TA0002", "name": "Execution"},
        "technique": {
            "id": ["T1059", "T1202"],
            "name": ["Command and Scripting Interpreter", "Indirect Command Execution"],
        },
    }


# ---------------------------------------------------------------- attacker-sized values

BIG = 5 * 1024 * 1024  # a 5 MB command line


def test_huge_value_is_cut_for_people_and_whole_for_programs(tmp_path: Path) -> None:
    cmd = "curl http://169.254.169.254/latest/meta-data/ " + "A" * BIG
    path = tmp_path / "big.ndjson"
    path.write_text(json.dumps(proc(cmd, host={"name": "web-1"})) + "\n")
    table, page = tmp_path / "hits.txt", tmp_path / "r.html"
    shown = cli(path, "-o", table, "--report", page, "--summary")
    assert shown.returncode == 1, shown.stderr[-2000:]
    # Bounded by the number of hits shown, not by the value (was 27 MB and 15 MB).
    assert table.stat().st_size < 200_000 and page.stat().st_size < 200_000
    assert len(shown.stderr) < 200_000
    marker = f"…[+{len(cmd) - 100} chars]"  # the summary cuts labels at 100 characters
    assert f"        1  {cmd[:100]}{marker}" in shown.stderr.splitlines()
    assert f"{cmd[:300]}…[+{len(cmd) - 300} chars]" in page.read_text()
    assert "curl http://169.254.169.254/latest/meta-d" in table.read_text()
    # NDJSON, CSV, Parquet and alerts keep it whole.
    ndjson = cli(path, "-f", "ndjson").stdout
    (record,) = [json.loads(line) for line in ndjson.splitlines()]
    assert record["matched"]["value"] == cmd and record["event"]["process"]["command_line"] == cmd
    assert cli(path, "-o", tmp_path / "h.csv").returncode == 1
    assert pl.read_csv(tmp_path / "h.csv", schema=SCHEMA)["process.command_line"][0] == cmd
    assert cli(path, "-o", tmp_path / "h.parquet").returncode == 1
    assert pl.read_parquet(tmp_path / "h.parquet")["process.command_line"][0] == cmd
    alert = json.loads(cli(path, "-f", "alerts").stdout)
    assert alert["process"]["command_line"] == cmd


def test_clip_escapes_then_cuts_with_a_counting_marker() -> None:
    from imds_scan.output import clip

    assert clip("abc", 3) == "abc"
    assert clip("abcdef", 3) == "abc…[+3 chars]"
    assert clip("abcdef", 0) == "abcdef"
    # An escape is never split, and the marker counts the characters of the value.
    assert clip("ab\x1bcd", 4) == "ab…[+3 chars]"
    assert clip("\x1b" * 10, 9) == "\\x1b\\x1b…[+8 chars]"
    assert clip("a\u2028b\u202ec") == "a\\u2028b\\u202ec"


def test_report_tables_are_capped(tmp_path: Path) -> None:
    from imds_scan.report.html import render_report

    path = tmp_path / "hosts.ndjson"
    events = [net(destination={"ip": "169.254.169.254"}, host={"name": f"h{i}"}) for i in range(5)]
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    page = render_report(scan([str(path)], config=ScanConfig(engine="python")), max_group_rows=3)
    assert page.count("<code>h") == 3 + 5  # by-host rows, then every hit
    assert "The top 3 of 5." in page
    assert "No hit has a process.command_line." in page


# ---------------------------------------------------------------- summary details


def test_years_before_1000_print_with_four_digits(tmp_path: Path) -> None:
    path = tmp_path / "old.ndjson"
    path.write_text(json.dumps(net(**{"@timestamp": "0999-05-01T10:15:00Z"}, **HIT_NET)) + "\n")
    page = tmp_path / "r.html"
    proc_ = cli(path, "--engine", "python", "-f", "ndjson", "--summary", "--report", page)
    assert proc_.returncode == 1, proc_.stderr
    assert "first seen: 0999-05-01T10:15:00Z  last seen: 0999-05-01T10:15:00Z" in proc_.stderr
    assert "        1  0999-05-01" in proc_.stderr.splitlines()
    text = page.read_text()
    assert "<b>0999-05-01T10:15:00Z</b>" in text and "0999-05-01 10:00" in text
    table = cli(path, "--engine", "python", "-f", "table").stdout
    assert "0999-05-01T10:15:00Z" in table


HIT_NET: dict[str, Any] = {"destination": {"ip": "169.254.169.254"}, "host": {"name": "web-1"}}


def test_no_empty_top_command_lines_heading(tmp_path: Path) -> None:
    path = tmp_path / "net.ndjson"
    path.write_text(json.dumps(net(**HIT_NET)) + "\n")
    proc_ = cli(path, "--engine", "python", "-f", "ndjson", "--summary")
    assert proc_.returncode == 1 and "hits by host:" in proc_.stderr
    assert "top command lines" not in proc_.stderr


def test_events_count_excludes_malformed_lines(tmp_path: Path) -> None:
    path = tmp_path / "m.ndjson"
    path.write_text(
        json.dumps(net(**HIT_NET)) + "\nnot json\n{broken\n\n" + json.dumps(net()) + "\n"
    )
    page = tmp_path / "r.html"
    for engine in ENGINES:
        proc_ = cli(path, "--engine", engine, "-f", "ndjson", "--report", page)
        assert "1 file(s), 2 events," in proc_.stderr, (engine, proc_.stderr)
        assert "malformed lines: 2" in proc_.stderr
        assert "<b>2</b><span>events scanned</span>" in page.read_text()


# ---------------------------------------------------------------- the table


def table_text(hits_events: list[dict[str, Any]], tmp_path: Path, **kw: Any) -> str:
    import io

    from imds_scan.output import write_table

    path = tmp_path / "t.ndjson"
    path.write_text("".join(json.dumps(e) + "\n" for e in hits_events))
    out = io.StringIO()
    write_table(scan([str(path)], config=ScanConfig(engine="python")).hits, out, **kw)
    return out.getvalue()


TABLE_EVENTS = [
    proc(
        "curl -s http://169.254.169.254/latest/meta-data/iam/security-credentials/ " + "x" * 500,
        **{"@timestamp": "2024-05-01T10:15:00.123Z"},
        host={"name": "SQL-PROD-KEF1PF6"},
        user={"name": "zoë.martin"},
        process={"name": "powershell.exe"},
    ),
    net(
        **{"@timestamp": 1714730400000},
        destination={"ip": "169.254.169.254"},
        host={"name": "gke-prod-default-pool-685164eb-0dcc-and-more"},
        user={"name": "日本語のユーザー"},
    ),
    net(destination={"ip": "169.254.169.254"}, process={"name": "\x1b[31mevil\ttab"}),
]


@pytest.mark.parametrize("width", [80, 200])
def test_table_rows_are_one_line_fitted_to_the_width(tmp_path: Path, width: int) -> None:
    from rich.cells import cell_len

    lines = table_text(TABLE_EVENTS, tmp_path, width=width).splitlines()
    assert lines[0] == "3 hit(s)"
    assert lines[1].split() == [
        "@timestamp",
        "host",
        "user",
        "process",
        "branch",
        *(["field"] if width == 200 else []),  # at 80 the value keeps the room
        "matched",
    ]
    assert len(lines) == 3 + 3 and all(cell_len(line) <= width for line in lines)
    rows = lines[3:]
    assert rows[0].startswith("2024-05-01T10:15:00Z ") and rows[0].endswith("…")
    assert rows[1].startswith("2024-05-03T10:00:00Z ") and rows[2].startswith("- ")
    assert "\\x1b[31" in rows[2]  # escaped, then cut to the column
    assert "\x1b" not in "".join(lines) and "\t" not in "".join(lines)
    if width == 200:
        assert "SQL-PROD-KEF1PF6" in rows[0] and "zoë.martin" in rows[0]
        assert "\\x1b[31mevil\\x09tab" in rows[2]
        assert "process.command_line" in rows[0] and "destination.ip" in rows[1]
        assert (
            "curl -s http://169.254.169.254/latest/meta-data/iam/security-credentials/" in rows[0]
        )
    else:
        assert "169.254.169.254" in rows[1] and "SQL-PROD-KE" in rows[0]


def test_table_caps_its_rows(tmp_path: Path) -> None:
    events = [net(**HIT_NET)] * 5
    lines = table_text(events, tmp_path, max_rows=2, width=120).splitlines()
    assert lines[0] == "5 hit(s)" and len(lines) == 3 + 2 + 1
    assert lines[-1].startswith("… 3 more hit(s) not shown (--max-table-rows 2)")
    assert "-f ndjson" in lines[-1]
    assert len(table_text(events, tmp_path, max_rows=0, width=120).splitlines()) == 3 + 5


def test_max_table_rows_option_and_config_key(tmp_path: Path) -> None:
    path = tmp_path / "five.ndjson"
    path.write_text((json.dumps(net(**HIT_NET)) + "\n") * 5)
    flag = cli(path, "--engine", "python", "-f", "table", "--max-table-rows", "1").stdout
    assert "… 4 more hit(s) not shown" in flag and flag.count("web-1") == 1
    config = tmp_path / "c.toml"
    config.write_text("max-table-rows = 3\n")
    keyed = cli(path, "--engine", "python", "-f", "table", "--config", config).stdout
    assert "… 2 more hit(s) not shown" in keyed and keyed.count("web-1") == 3
    whole = cli(path, "--engine", "python", "-f", "table").stdout
    assert "more hit(s)" not in whole and whole.count("web-1") == 5
    bad = cli(path, "--max-table-rows", "-1")
    assert bad.returncode == 2 and "--max-table-rows" in bad.stderr


@pytest.mark.parametrize(("width", "dropped"), [(80, {"field", "branch"}), (200, set())])
def test_narrow_table_with_rules_keeps_room_for_the_value(
    tmp_path: Path, width: int, dropped: set[str]
) -> None:
    import io

    from imds_scan import run_scan
    from imds_scan.output import write_table
    from imds_scan.rules import default_rules, load_rules, pack_path

    path = tmp_path / "p.ndjson"
    event = proc(
        CMD_A,
        host={"name": "ip-10-27-214-196.ec2.internal"},
        user={"name": "svc-backup"},
        process={"name": "curl-wrapper.sh"},
    )
    path.write_text(json.dumps(event) + "\n")
    rules = [*default_rules(), *load_rules([pack_path("hardened")])[0]]
    out = io.StringIO()
    write_table(run_scan([str(path)], rules).hits, out, width=width)
    header = out.getvalue().splitlines()[1].split()
    columns = ["@timestamp", "host", "user", "process", "rule", "branch", "field", "matched"]
    assert header == [c for c in columns if c not in dropped]
    rows = out.getvalue().splitlines()[3:]
    assert len(rows) == 2 and all(len(row) <= width for row in rows)
    assert "curl -s http://169.254.1" in rows[0] and "/latest/meta-data/iam/se" in rows[1]
