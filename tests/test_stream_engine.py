"""The Rust engine's streaming scan (``Scanner.scan_iter``): the same hits as ``scan()`` in the
same order, NDJSON records byte for byte as the Python writer's, early exits, Ctrl-C, and
memory that does not grow with the number of hits."""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from imds_scan._engine import Scanner
from imds_scan.engines import to_hit
from imds_scan.output import write_ndjson
from imds_scan.rules import Rule, default_rules, load_rule

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "bench" / "sample" / "ecs-sample.ndjson"
BROAD = 'process where event.type == "start"'


def broad_rule(name: str = "broad") -> Rule:
    return load_rule(BROAD, rule_id="broad-1", name=name, severity="low", source="<test>")


def scanner(rules: Sequence[Rule]) -> Scanner:
    return Scanner([json.dumps(rule.ir) for rule in rules])


def record_names(sources: Sequence[str], rules: Sequence[Rule]) -> Any:
    return (list(sources), [(r.name, r.id, r.severity, r.branch_names) for r in rules])


def drain(it: Any) -> tuple[list[Any], bytes]:
    hits: list[Any] = []
    records = b""
    for batch in it:
        assert batch.count > 0
        if batch.hits is not None:
            assert len(batch.hits) == batch.count
            hits.extend(batch.hits)
        records += batch.records or b""
    return hits, records


def python_ndjson(hits: Sequence[Any], sources: Sequence[str], rules: Sequence[Rule]) -> bytes:
    """What the Python writer writes for these engine hits, as UTF-8."""
    out = io.StringIO()
    write_ndjson([to_hit(raw, sources[raw[0]], rules) for raw in hits], out)
    return out.getvalue().encode("utf-8")


def event_line(i: int, pad: str = "") -> str:
    return json.dumps(
        {
            "event": {"type": "start", "category": "process"},
            "process": {"command_line": f"run {i} {pad}"},
        }
    )


def test_scan_iter_gives_scans_hits_and_stats_for_the_sample() -> None:
    rules = [broad_rule(), *default_rules()]
    engine = scanner(rules)
    hits, files, interrupted = engine.scan([str(SAMPLE)])
    assert len(hits) > 100 and not interrupted
    for threads, buffer_size, batch in [(1, 4194304, 4096), (2, 65536, 7), (3, 4096, 100)]:
        it = engine.scan_iter([str(SAMPLE)], threads=threads, buffer_size=buffer_size, batch=batch)
        got, records = drain(it)
        assert got == hits
        assert records == b""
        assert it.files == files
        assert it.done and not it.cancelled


def test_many_hits_over_files_regions_and_gzip_keep_scans_order(tmp_path: Path) -> None:
    rules = [broad_rule(), broad_rule("second")]
    inputs = []
    for k in range(3):
        lines = "".join(event_line(i) + "\n" + ("{}\n" if i % 3 else "") for i in range(6000))
        path = tmp_path / f"f{k}.ndjson"
        if k == 1:
            path = path.with_suffix(".ndjson.gz")
            path.write_bytes(gzip.compress(lines.encode()))
        else:
            path.write_text(lines)
        inputs.append(str(path))
    engine = scanner(rules)
    for threads in (2, 3):
        opts: dict[str, Any] = {"threads": threads, "buffer_size": 4096}
        hits, files, _ = engine.scan(inputs, **opts)
        assert len(hits) == 3 * 6000 * 2
        for cap in (1, 0):
            it = engine.scan_iter(
                inputs, **opts, batch=333, reorder_bytes=cap, records=record_names(inputs, rules)
            )
            got, records = drain(it)
            assert got == hits
            assert records == python_ndjson(hits, inputs, rules)
            assert it.files == files


TRICKY = [
    'q"uote',
    "back\\slash",
    "ctl\x01\x1f\t\n\r\x08\x0c\x7f",
    "é ü ß",
    "astral 😀 𝄞",
    "sep\u2028\u2029",
]


def test_ndjson_records_are_byte_identical_to_the_python_writer(tmp_path: Path) -> None:
    lines = []
    for i, text in enumerate(TRICKY):
        event = {
            "event": {"type": "start", "category": "process"},
            "process": {"name": "curl", "command_line": f"curl http://169.254.169.254/ {text}"},
            "n": i,
        }
        lines.append(json.dumps(event, ensure_ascii=i % 2 == 0))
    # Whitespace around the event (stripped), escapes kept verbatim, a non-ASCII key.
    lines.append('  \t{"event":{"type":"start"},"x":"\\u00e9\\ud83d\\ude00","ключ":1} \r')
    sources = []
    for k in range(len(TRICKY)):
        path = tmp_path / f"in{k}.ndjson"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        sources.append(str(path))
    names = [f"name {text}" for text in TRICKY]
    rules = [
        broad_rule(name='broad "é" \\ 😀'),
        *default_rules(),
    ]
    engine = scanner(rules)
    hits, _, _ = engine.scan(sources)
    assert any(hit[4] is not None for hit in hits), "no hit with a witness"
    got, records = drain(engine.scan_iter(sources, records=record_names(names, rules), hits=False))
    assert got == []
    assert records == python_ndjson(hits, names, rules)
    # One line per hit, aligned with the hit list.
    lines_out = records.split(b"\n")[:-1]
    assert [python_ndjson([hit], names, rules) for hit in hits] == [x + b"\n" for x in lines_out]


def test_batches_give_counts_positions_and_rule_counts_without_hit_objects(
    tmp_path: Path,
) -> None:
    rules = [broad_rule(), *default_rules(), broad_rule("second")]
    inputs = []
    for k in range(2):
        path = tmp_path / f"f{k}.ndjson"
        path.write_text("".join(event_line(i) + "\n" + "{}\n" for i in range(50)))
        inputs.append(str(path))
    engine = scanner(rules)
    hits, _, _ = engine.scan(inputs)
    names = record_names(inputs, rules)
    for options in [{"hits": True}, {"hits": False, "names": names, "records": True}]:
        positions: list[tuple[int, int]] = []
        counts = [0] * len(rules)
        batches = list(engine.scan_iter(inputs, batch=7, **options))
        assert [b.count for b in batches[:-1]] == [7] * (len(batches) - 1)
        for batch in batches:
            assert len(batch) == batch.count
            assert batch.rows is None
            if options["hits"]:
                assert batch.records is None
                got = [batch.position(k) for k in range(batch.count)]
                assert [h[:2] for h in batch.hits] == got
            else:
                assert batch.hits is None
                assert batch.records is not None
                assert batch.records.count(b"\n") == batch.count
            positions += [batch.position(k) for k in range(batch.count)]
            counts = [a + b for a, b in zip(counts, batch.rule_counts, strict=True)]
            with pytest.raises(IndexError):
                batch.position(batch.count)
        assert positions == [h[:2] for h in hits]
        assert counts == [sum(h[2] == r for h in hits) for r in range(len(rules))]
        assert counts[0] == counts[-1] == 100


def test_records_and_rows_need_names_given_once() -> None:
    rules = [broad_rule()]
    engine = scanner(rules)
    names = record_names([str(SAMPLE)], rules)
    with pytest.raises(ValueError, match="rows=True needs names"):
        engine.scan_iter([str(SAMPLE)], rows=True)
    with pytest.raises(ValueError, match="names"):
        engine.scan_iter([str(SAMPLE)], records=True)
    with pytest.raises(ValueError, match="twice"):
        engine.scan_iter([str(SAMPLE)], records=names, names=names)
    with pytest.raises(TypeError, match="records"):
        engine.scan_iter([str(SAMPLE)], records=3)
    # The older spelling (names as records) and the newer give the same records.
    old = drain(engine.scan_iter([str(SAMPLE)], records=names, hits=False))
    new = drain(engine.scan_iter([str(SAMPLE)], names=names, records=True, hits=False))
    assert old == new and old[1]
    # Names without records: no records.
    assert drain(engine.scan_iter([str(SAMPLE)], names=names, hits=False)) == ([], b"")


def test_source_names_with_no_utf8_form_are_refused_before_scanning() -> None:
    rules = [broad_rule()]
    engine = scanner(rules)
    name = os.fsdecode(b"bad-\xff.ndjson")
    with pytest.raises(ValueError, match="source 0"):
        engine.scan_iter([str(SAMPLE)], records=record_names([name], rules))
    with pytest.raises(ValueError, match="source names"):
        engine.scan_iter([str(SAMPLE)], records=record_names([], rules))
    with pytest.raises(ValueError, match="branches"):
        engine.scan_iter([str(SAMPLE)], records=([str(SAMPLE)], [("n", "i", "s", [])]))


def test_leaving_early_cancels_and_joins(tmp_path: Path) -> None:
    path = tmp_path / "many.ndjson"
    path.write_text("".join(event_line(i) + "\n" for i in range(50_000)))
    engine = scanner([broad_rule()])
    with engine.scan_iter([str(path)], batch=100, buffer_size=4096, threads=2) as it:
        first = next(it)
        assert first.count == 100 and len(first.hits) == 100
    assert it.done and it.cancelled
    assert next(it, None) is None
    assert len(it.files) == 1
    it.close()
    # Dropped without closing: the scan stops; the scanner is usable at once.
    it = engine.scan_iter([str(path)], batch=10, buffer_size=4096)
    next(it)
    del it
    hits, files, _ = engine.scan([str(path)])
    assert len(hits) == 50_000 and files[0]["error"] is None


class SlowStream(io.RawIOBase):
    """Events that end only long after it sends SIGINT to the process (after a few reads):
    a Ctrl-C not acted on fails the test instead of running forever."""

    def __init__(self) -> None:
        self.reads = 0
        self.block = b"".join((event_line(i) + "\n").encode() for i in range(50))

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        self.reads += 1
        if self.reads == 20:
            os.kill(os.getpid(), signal.SIGINT)
        if self.reads > 20_000:
            return b""
        return self.block[: size if size >= 0 else None]


def test_ctrl_c_cancels_the_scan_and_raises_keyboard_interrupt() -> None:
    engine = scanner([broad_rule()])
    it = engine.scan_iter([SlowStream()], batch=10**9, buffer_size=4096)
    # Python's own Ctrl-C handler, whatever this process inherited (a job started in the
    # background of a shell without job control ignores SIGINT).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            for _ in it:
                pass
    finally:
        signal.signal(signal.SIGINT, previous)
    assert it.done and it.cancelled
    [stats] = it.files
    assert stats["error_kind"] == "interrupted"
    assert stats["hits"] > 0


CHILD = """
import json, os, resource, sys
from imds_scan._engine import Scanner
from imds_scan.rules import load_rule

rule = load_rule({broad!r}, rule_id="b", name="b", severity="low", source="t")
engine = Scanner([json.dumps(rule.ir)])
names = ([sys.argv[1]], [(rule.name, rule.id, rule.severity, rule.branch_names)])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
hits = size = 0
rows = sys.argv[2] == "rows"
options = dict(names=names, records=not rows, rows=rows, hits=False)
with open(os.devnull, "wb") as out:
    for batch in engine.scan_iter([sys.argv[1]], threads=2, **options):
        data = batch.rows if rows else batch.records
        assert rows or data.count(b"\\n") == batch.count
        size += len(data)
        hits += batch.count
        out.write(data)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"before": before * 1024, "peak": peak * 1024, "hits": hits, "size": size}}))
"""


@pytest.mark.parametrize("output", ["records", "rows"])
def test_streaming_many_hits_keeps_memory_bounded(tmp_path: Path, output: str) -> None:
    count = 300_000
    pad = "x" * 300
    path = tmp_path / "broad.ndjson"
    with path.open("w") as out:
        for start in range(0, count, 10_000):
            out.write("".join(event_line(i, pad) + "\n" for i in range(start, start + 10_000)))
    child = textwrap.dedent(CHILD).format(broad=BROAD)
    result = subprocess.run(
        [sys.executable, "-c", child, str(path), output],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(result.stdout)
    assert report["hits"] == count
    # Every hit's event text alone, kept in memory, would take more than the file holds.
    held = path.stat().st_size
    grown = report["peak"] - report["before"]
    assert held > 100 << 20
    # Two threads: read buffers, one reorder buffer of 16 MiB, two batches in flight.
    assert grown < 80 << 20, f"peak RSS grew by {grown >> 20} MiB for {held >> 20} MiB of hits"


ROW_EVENTS = [
    # Arrays (nested too), nested and dotted spellings of one field, in document order.
    {
        "@timestamp": "2024-05-01T10:15:30.123456789+02:00",
        "event": {"type": ["info", "start"], "category": "process"},
        "host": {"name": ["h1", ["h2"]]},
        "host.name": "h3",
        "process": {"name": "curl", "parent": {"name": "bash"}, "command_line": 'a "b" \\c'},
        "process.executable": "/usr/bin/curl",
        "user": [{"name": "u1"}, {"name": ["u2", None, {"x": 1}]}],
    },
    # Numbers and booleans as the event spells them; escapes; non-ASCII; epoch millis.
    '{"@timestamp": 1714521600123, "event": {"type": "start"}, "user": {"name": 1.50},'
    ' "process": {"name": true, "command_line": "t\\u00e9\\n\\t\\"q\\" \\ud83d\\ude00 \\ud800"},'
    ' "destination": {"ip": "169.254.169.254", "address": 10E2}, "url.domain": "ünï.example"}',
    # Missing fields; an unparsable timestamp; an array of timestamps (the first counts).
    {"event": {"type": "start"}, "@timestamp": "2024-05-01 10:00:00"},
    {"event": {"type": "start"}, "@timestamp": ["1999-12-31", "2024-05-01"]},
    {"event": {"type": "start"}, "@timestamp": None, "host": {"name": None}},
    # An exporter's wrapper: the event is its _source.
    {"_index": "logs", "_id": "1", "_source": {"event": {"type": "start"}, "host.name": "w"}},
    # Whitespace around the line, a repeated key (the last wins, in the first one's place).
    ' \t{"event": {"type": "start"}, "user.name": "first", "host.name": "x",'
    ' "user.name": "last"}  \r',
]

ROW_RULES = [
    'any where event.type == "start"',
    'any where not process.name == "zzz"',
    'any where process.name == "curl"',
]


def rows_frame(batches: list[Any]) -> Any:
    import polars as pl

    frames = [pl.read_ipc_stream(batch.rows) for batch in batches]
    return pl.concat(frames) if frames else None


def test_rows_read_by_polars_equal_the_hits_frame(tmp_path: Path) -> None:
    import polars as pl
    from polars.testing import assert_frame_equal

    from imds_scan.report.frame import SCHEMA, hits_frame, with_alert_columns

    rules = [
        load_rule(text, rule_id=f"r{k}", name=f"rule {k} é", severity="low", source="<t>")
        for k, text in enumerate(ROW_RULES)
    ]
    rules += default_rules()
    lines = [e if isinstance(e, str) else json.dumps(e, ensure_ascii=False) for e in ROW_EVENTS]
    inputs, names = [], []
    for k in range(3):
        path = tmp_path / f"in{k}.ndjson"
        path.write_text("\n".join(lines[k:] + lines[:k]) + "\n\n", encoding="utf-8")
        inputs.append(str(path))
        names.append(f"name {k} 😀")
    engine = scanner(rules)
    batches = list(engine.scan_iter(inputs, batch=5, names=record_names(names, rules), rows=True))
    hits = [hit for batch in batches for hit in batch.hits]
    assert len(hits) > 20
    assert any(hit[4] is None for hit in hits), "no hit without a witness"
    assert len({hit[2] for hit in hits}) >= 3
    for batch in batches:
        # The alert columns of new_terms/threshold rules are Python's (ALERT_COLUMNS).
        got = with_alert_columns(pl.read_ipc_stream(batch.rows))
        assert got.schema == SCHEMA
        expected = hits_frame([to_hit(raw, names[raw[0]], rules) for raw in batch.hits])
        assert_frame_equal(got, expected)
    frame = rows_frame(batches)
    assert frame["host.name"].to_list()[:1] == ["h1, h2, h3"]
    assert frame["@timestamp"].null_count() > 0


def test_rows_read_timestamps_by_the_shared_vectors(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from imds_scan.report.frame import hits_frame

    cases = [json.loads(x) for x in (ROOT / "spec/vectors/timestamps.jsonl").open()]
    path = tmp_path / "times.ndjson"
    events = [{"event": {"type": "start"}, "@timestamp": case["value"]} for case in cases]
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    rules = [load_rule(ROW_RULES[0], rule_id="t", name="t", severity="low", source="<t>")]
    batches = list(
        scanner(rules).scan_iter([str(path)], batch=10, names=record_names(["t"], rules), rows=True)
    )
    frame = rows_frame(batches)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    expected = [
        None if c["micros"] is None else epoch + timedelta(microseconds=c["micros"]) for c in cases
    ]
    assert frame["@timestamp"].to_list() == expected
    hits = [to_hit(raw, "t", rules) for batch in batches for raw in batch.hits]
    assert hits_frame(hits)["@timestamp"].to_list() == expected


def test_rows_alone_build_no_hit_tuples() -> None:
    rules = [broad_rule()]
    names = record_names([str(SAMPLE)], rules)
    engine = scanner(rules)
    hits, _, _ = engine.scan([str(SAMPLE)])
    batches = list(engine.scan_iter([str(SAMPLE)], names=names, rows=True, hits=False))
    assert all(b.hits is None and b.records is None for b in batches)
    frame = rows_frame(batches)
    assert frame["line"].to_list() == [hit[1] for hit in hits]
