"""The fast hit path (issue 14): records and rows built by the engine, not per hit in Python,
write byte for byte what the Hit objects write, in every format, for both engines."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from imds_scan import ScanConfig, default_rules
from imds_scan.batch import ALERTS, FRAME, HITS, RECORDS, HitBatch, hit_records
from imds_scan.engines import HitStream
from imds_scan.report import formats
from imds_scan.rules import load_rules
from imds_scan.run import open_scan

ROOT = Path(__file__).resolve().parent.parent
BROAD_RULE = ROOT / "tests" / "data" / "broad" / "process_start.toml"
FORMATS = ["ndjson", "json", "csv", "alerts", "table", "parquet"]


def rules() -> list[Any]:
    broad, _ = load_rules([str(BROAD_RULE)])
    return [*broad, *default_rules()]


def event(n: int) -> dict[str, Any]:
    """Start events with awkward values: non-ASCII, escapes, controls, formulas, numbers."""
    values = ["plain", "é ü 漢字 😀", "a\u009bb", "tab\there", '=HYPERLINK("x")', "-1+2", 'q"uote']
    doc: dict[str, Any] = {
        "@timestamp": f"2024-05-0{1 + n % 3}T10:{n % 60:02d}:00.{n:03d}Z",
        "event": {"category": ["process"], "type": ["start"]},
        "host": {"name": f"web-{n % 5}"},
        "user.name": values[n % len(values)],
        "process": {
            "name": "curl" if n % 4 == 0 else f"p{n % 3}",
            "command_line": f"curl http://169.254.169.254/latest/meta-data {values[n % 7]}",
            "args_count": n,
        },
    }
    if n % 9 == 0:
        doc["process"]["parent"] = {"name": ["bash", "sh"]}
        doc["destination"] = {"ip": "169.254.169.254"}
    if n % 11 == 0:
        del doc["@timestamp"]
    return doc


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / 'lög "x".ndjson'  # a name JSON must escape
    lines = []
    for n in range(700):
        lines.append(json.dumps(event(n), ensure_ascii=n % 2 == 0))
        if n % 5 == 0:
            lines.append('{"event": {"type": "end"}}')
        if n % 97 == 0:
            lines.append("not json")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def written(stream: HitStream, fmt: str, path: Path) -> bytes | pl.DataFrame:
    """What the CLI's writer of ``fmt`` writes from ``stream``."""
    if fmt == "parquet":
        writer: formats.HitWriter = formats.ParquetWriter(str(path))
    else:
        out = io.BytesIO()
        writer = formats.stream_writer(fmt, out, max_table_rows=40, width=150)
    for batch in stream:
        writer.write(batch)
    writer.close()
    return pl.read_parquet(path) if fmt == "parquet" else out.getvalue()


def assert_same(fast: bytes | pl.DataFrame, slow: bytes | pl.DataFrame) -> None:
    if isinstance(fast, pl.DataFrame):
        assert isinstance(slow, pl.DataFrame)
        assert fast.schema == slow.schema
        assert fast.equals(slow)
    else:
        assert fast == slow


@pytest.mark.parametrize("engine", ["rust", "python"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_fast_path_writes_what_hits_write(log: Path, tmp_path: Path, fmt: str, engine: str) -> None:
    config = ScanConfig(engine=engine)  # type: ignore[arg-type]
    slow = written(
        open_scan([str(log)], rules=rules(), config=config, needs=frozenset({HITS})),
        fmt,
        tmp_path / "slow.parquet",
    )
    needs = formats.NEEDS[fmt]
    stream = open_scan([str(log)], rules=rules(), config=config, needs=needs)
    seen: list[HitBatch] = []

    def batches() -> Any:
        for batch in stream:
            seen.append(batch)
            yield batch

    fast = written(HitStream(batches(), stream.close), fmt, tmp_path / "fast.parquet")
    assert_same(fast, slow)
    if isinstance(slow, bytes):
        assert len(slow) > 1000
    # The Rust engine built the records (rows, alerts) itself: no Hit objects in the batches.
    if engine == "rust" and (RECORDS in needs or FRAME in needs or ALERTS in needs):
        assert seen and not any(batch.has_hits for batch in seen)


def test_fast_path_max_hits_cuts_records_and_frames(log: Path, tmp_path: Path) -> None:
    whole = open_scan([str(log)], rules=rules(), needs=frozenset({HITS})).collect().hits
    assert len(whole) > 1000
    last = (whole[332].source, whole[332].line)
    for fmt in ("ndjson", "json", "csv", "parquet"):
        outputs = []
        for needs in (frozenset({HITS}), formats.NEEDS[fmt]):
            stream = open_scan(
                [str(log)], rules=rules(), config=ScanConfig(max_hits=333), needs=needs
            )
            outputs.append(written(stream, fmt, tmp_path / f"{len(outputs)}.parquet"))
            assert stream.stats is not None
            assert stream.stats.stopped_at == last
        assert_same(*outputs)
        if fmt == "ndjson":
            assert isinstance(outputs[0], bytes)
            records = outputs[0].splitlines()
            assert len(records) == 333
            assert json.loads(records[-1])["line"] == last[1]


def test_batch_forms_agree(log: Path) -> None:
    """A batch's records, frame, head and take agree with its Hit objects."""
    from imds_scan.report.alerts import alert_json
    from imds_scan.report.frame import hits_frame

    def alerts(hits: list[Any]) -> bytes:
        return "".join(f"{alert_json(hit)}\n" for hit in hits).encode()

    needs = frozenset({HITS, RECORDS, FRAME, ALERTS})
    stream = open_scan([str(log)], rules=rules(), needs=needs)
    batch = next(iter(stream))
    stream.close()
    hits = list(batch.hits)
    assert batch.records == hit_records(hits)
    assert batch.alerts == alerts(hits)
    assert batch.frame.equals(hits_frame(hits))
    head = batch.head(7)
    assert head.count == 7 and head.records == hit_records(hits[:7])
    assert head.frame.equals(hits_frame(hits[:7]))
    assert head.alerts == alerts(hits[:7])
    assert head.position(6) == (hits[6].source, hits[6].line)
    keep = [0, 3, 4, 10]
    taken = batch.take(keep)
    assert taken.records == hit_records([hits[i] for i in keep])
    assert taken.frame.equals(hits_frame([hits[i] for i in keep]))
    assert taken.alerts == alerts([hits[i] for i in keep])
    # Without Hit objects, a position comes from the frame or the records.
    records_only = HitBatch(len(hits), records=batch.records)
    assert records_only.position(5) == (hits[5].source, hits[5].line)
    frame_only = HitBatch(len(hits), frame=batch.frame)
    assert frame_only.position(5) == (hits[5].source, hits[5].line)
    with pytest.raises(LookupError):
        _ = records_only.hits


def test_records_of_a_name_that_is_not_utf8(tmp_path: Path) -> None:
    """A file name that is not UTF-8 (surrogates after os.fsdecode) was a UnicodeEncodeError;
    its record now holds the JSON escape of each surrogate."""
    from imds_scan.records import Hit

    rule = rules()[0]
    hit = Hit("bad\udcff.ndjson", 3, rule, "process", None, '{"a": 1}')
    line = hit_records([hit])
    assert b'"bad\\udcff.ndjson"' in line
    assert json.loads(line)["source"] == "bad\udcff.ndjson"


def engine_outputs(log: Path, fmt: str, tmp_path: Path) -> list[bytes | pl.DataFrame]:
    """What the Rust and the Python engine write of ``log`` in ``fmt``."""
    return [
        written(
            open_scan(
                [str(log)],
                rules=rules(),
                config=ScanConfig(engine=engine),  # type: ignore[arg-type]
                needs=formats.NEEDS[fmt],
            ),
            fmt,
            tmp_path / f"{engine}.{fmt}",
        )
        for engine in ("rust", "python")
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_engines_write_the_same(log: Path, tmp_path: Path, fmt: str) -> None:
    assert_same(*engine_outputs(log, fmt, tmp_path))


def test_an_integer_longer_than_python_converts_is_written_by_both_engines(
    tmp_path: Path,
) -> None:
    """Python converts at most 4,300 digits by default: the reference engine's alerts (and
    the cluster's) failed with exit 2 on such an event; both engines now write its digits."""
    digits = "7" * 5000
    doc = json.dumps(event(1))
    path = tmp_path / "big.ndjson"
    path.write_text(doc[:-1] + f', "n": {digits}, "f": -{digits}.5e3}}\n')
    outputs = engine_outputs(path, "alerts", tmp_path)
    assert_same(*outputs)
    assert isinstance(outputs[0], bytes)
    assert f'"n": {digits}'.encode() in outputs[0]


@pytest.mark.parametrize("engine", ["rust", "python"])
@pytest.mark.parametrize("fmt", ["ndjson", "csv", "parquet"])
def test_a_file_name_that_is_not_utf8_is_scanned(tmp_path: Path, engine: str, fmt: str) -> None:
    """The Rust engine refused such a name before scanning (UnicodeEncodeError, exit 2)."""
    import os
    import subprocess
    import sys

    folder = tmp_path / "logs"
    folder.mkdir()
    sample = (ROOT / "bench" / "sample" / "ecs-sample.ndjson").read_bytes()
    bad = os.path.join(os.fsencode(folder), b"bad\xff.ndjson")
    with open(bad, "wb") as f:
        f.write(sample)
    out = tmp_path / f"out.{fmt}"
    proc = subprocess.run(
        [sys.executable, "-m", "imds_scan", str(folder), "--engine", engine, "-q", "-o", str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1, proc.stderr
    name = os.fsdecode(bad)
    if fmt == "parquet":
        sources = set(pl.read_parquet(out)["source"])
    elif fmt == "csv":
        sources = set(pl.read_csv(out)["source"])
    else:
        sources = {
            json.loads(line)["source"]
            for line in out.read_text(errors="surrogateescape").splitlines()
        }
    # NDJSON keeps the exact name; a frame (CSV, Parquet) holds UTF-8, the byte escaped.
    assert sources == ({name} if fmt == "ndjson" else {name.replace("\udcff", "\\xff")})


START = '"event": {"category": "process", "type": "start"}'


def start(rest: str) -> str:
    """A start event's text with the members ``rest`` after its ``event``."""
    return "{" + START + ", " + rest + "}"


def awkward_alert_lines() -> list[bytes]:
    """Start events that the alert documents must read as Python's json does: controls,
    invalid UTF-8, lone surrogates (in keys too), repeated keys, numbers of every form, the
    event's own rule/threat/imds_scan/kibana fields in every spelling, exporter wrappers,
    an `event` to replace, deep nesting."""
    numbers = [
        "0", "-0", "7", "-12", "12345678901234567890123456789", "1.0", "-0.0", "1.50",
        "1E3", "1e-7", "2.5e+20", "1e400", "-1e400", "0.1", "123456789012345678.5",
        "1e16", "1e15", "0.0001", "0.00001", "4.9e-324", "1.7976931348623157e308",
        "3.141592653589793238462643383279", "9007199254740993", "1e-400",
    ]  # fmt: skip
    lines = [
        start('"n": [' + ", ".join(numbers) + "]"),
        start('"c": "a\\u0000b\\u001fc\\t\\n\\r\\b\\f\\"\\\\\\/ \u0085\u2028 \x7f"'),
        start('"\\ud800k": "\\udc00v\\ud83d\\ude00", "x": "\\ud83dz"'),
        start('"\\udc00": 1, "\ufffd": 2, "\\udc00": 3, "k": {"a": 1, "a": [2]}'),
        '{"event": {"type": "start", "kind": "event", "severity": 9, "category": "process"}, '
        '"event.kind": "x", "event.severity": 1, "event.risk_score": 2.0, "n": 1}',
        '{"event.category": "process", "event.type": "start", "event": "not an object"}',
        '{"event.category": "process", "event.type": ["start"], "event": [1, {"kind": 2}]}',
        start(
            '"rule": {"name": "fw"}, "rule.id": 3, "threat.x": [], "imds_scan": {"a": 1}, '
            '"imds_scan.line": 9, "rules": 1, "kibana.alert.uuid": "u", "threat": null'
        ),
        '{"_index": "logs", "_id": "1", "_source": ' + start('"host": {"name": "w"}') + "}",
        '{"_index": "logs", "_source": ' + start('"_index": "i", "_source": {"a": 1}') + "}",
        start('"deep": ' + "[" * 400 + "1" + "]" * 400),
        start('"d": ' + '{"a": ' * 300 + "true" + "}" * 300),
        # Objects of many members, with repeated and moved keys.
        start(", ".join(f'"k{i}": {i}' for i in range(40)) + ', "k3": "again", "rule.x": 1'),
        '{"event": {' + ", ".join(f'"e{i}": {i}' for i in range(30)) + ', "kind": 1, '
        '"category": "process", "type": "start", "e5": [5], "severity": 2}, "event.kind": 2}',
        '{ "event" : { "category" : "process", "type" : "start" } , "sp" : [ ] , '
        '"o" : { } , "t" : true , "f" : false , "z" : null }',
    ]
    encoded = [line.encode("utf-8") for line in lines]
    encoded.append(start('"bad": "@ ok @"').encode().replace(b"@", b"\xff\xfe\xc3", 1))
    encoded.append(start('"@key": 1').encode().replace(b"@", b"\xe2\x82") + b"\r")
    return encoded


def test_engine_alerts_are_pythons(tmp_path: Path) -> None:
    """The Rust engine's alert documents are byte for byte report/alerts.py's, built from
    the Hit objects (the CLI's path before issue 14's alerts moved into the engine)."""
    path = tmp_path / 'a "b".ndjson'
    lines = awkward_alert_lines()
    path.write_bytes(b"\n".join(lines * 3) + b"\n")
    slow = written(
        open_scan([str(path)], rules=rules(), needs=frozenset({HITS})), "alerts", tmp_path
    )
    stream = open_scan([str(path)], rules=rules(), needs=formats.NEEDS["alerts"])
    seen: list[HitBatch] = []

    def batches() -> Any:
        for batch in stream:
            seen.append(batch)
            yield batch

    fast = written(HitStream(batches(), stream.close), "alerts", tmp_path)
    assert isinstance(fast, bytes) and isinstance(slow, bytes)
    assert fast.splitlines() == slow.splitlines()
    assert fast == slow
    assert len(fast.splitlines()) == 3 * len(lines)
    assert formats.NEEDS["alerts"] == {ALERTS}
    assert seen and all(b.alerts is not None and not b.has_hits for b in seen)


def test_engine_alert_numbers_are_pythons(tmp_path: Path) -> None:
    """Floats as json.dumps writes them (repr: shortest digits, its switch to exponents)."""
    import random

    rng = random.Random(14)
    texts = []
    for _ in range(3000):
        x = rng.choice([rng.random(), rng.uniform(-1e6, 1e6), rng.expovariate(1e-9)])
        x *= 10.0 ** rng.randint(-30, 30)
        if rng.random() < 0.3:  # where Rust's shortest digits are not always the nearest
            x = rng.uniform(1e14, 1e17)
        texts.append(rng.choice([repr(x), f"{x:.17g}", f"{x:.3e}", f"{x:.20f}", f"{x:E}"]))
    texts += [f"{rng.randint(-(10**30), 10**30)}", "100000000000000000.0", "1e22", "1e23"]
    lines = [start('"n": [' + ", ".join(texts[k : k + 50]) + "]") for k in range(0, len(texts), 50)]
    path = tmp_path / "n.ndjson"
    path.write_text("\n".join(lines) + "\n")
    outputs = [
        written(open_scan([str(path)], rules=rules(), needs=needs), "alerts", tmp_path)
        for needs in (frozenset({HITS}), formats.NEEDS["alerts"])
    ]
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_engine_rows_of_awkward_events_are_pythons(tmp_path: Path, fmt: str) -> None:
    """The engine reads a row's fields from the event's text without building the document
    (issue 14): the same cells as the frame built from the Hit objects, also where it must
    fall back to the parser (repeated or escaped keys, lone surrogates)."""
    lines = awkward_alert_lines() + [
        start(line).encode()
        for line in [
            '"host": {"name": "a"}, "host": {"name": "b"}',
            '"host": {"name": "a", "name": "b"}, "user": {"id": 1, "id": 2}',
            '"ho\\u0073t": {"name": "escaped key"}',
            '"user": {"name": "\\ud800x"}, "host": {"name": "\\"q\\" \\u00e9\\t"}',
            '"process": [{"name": "a"}, {"name": ["b", 1.50, true, null, {"x": 1}]}], '
            '"process.name": "c", "process.parent": {"name": {"x": 1}}, "process.": 1',
            '"destination.ip": "1.2.3.4", "destination": {"address": ["x", ["y"]]}, '
            '"url": {"domain": "\\u00e9"}, "x": {"host": {"name": "no"}}, "y": ["[\\"]", "{"]',
            '"@timestamp": ["2024-05-01T10:00:00+02:00", "x"], "host.name": "=cmd"',
            '"@timestamp": 1714557600000, "process": {"command_line": "-x", "executable": ""}',
            '"@timestamp": "nope", "user.name": -0.0',
        ]
    ]
    path = tmp_path / "rows.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    outputs = [
        written(open_scan([str(path)], rules=rules(), needs=needs), fmt, tmp_path / f"{k}.pq")
        for k, needs in enumerate((frozenset({HITS}), formats.NEEDS[fmt]))
    ]
    assert_same(*outputs)


def test_engine_buffers_reach_the_writers_uncopied(log: Path) -> None:
    # The engine's records, alerts and rows are views of its own buffers (no bytes object
    # copied on the main thread, holding the GIL): read-only, alive as long as a view is,
    # the same bytes as the copies the slicing paths make.
    import ctypes
    import gc

    needs = formats.NEEDS["ndjson"] | formats.NEEDS["alerts"] | formats.NEEDS["parquet"]
    views = []
    copies = []
    for batch in open_scan([str(log)], rules=rules(), needs=needs):
        for view in (batch.records_data, batch.alerts_data, batch.ipc_rows):
            assert isinstance(view, memoryview) and view.readonly
            assert type(view.obj).__name__ == "Buffer"
            views.append(view)
        with pytest.raises(TypeError):  # no writable view of the engine's bytes
            ctypes.c_char.from_buffer(batch.records_data.obj)
        copies += [batch.records, batch.alerts, bytes(batch.ipc_rows)]  # type: ignore[arg-type]
    del batch
    gc.collect()
    assert len(views) >= 3
    assert [view.tobytes() for view in views] == copies
