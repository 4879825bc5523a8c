"""The EQL compiler's sequences and samples (spec/sequences.md): what they compile to, what is
refused (with Elasticsearch's words where it has them, and the place), the printed form that
compiles back to the same IR, and the rule-file keys that go into the IR."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from imds_scan import ir_schema
from imds_scan.eql import EqlError, compile_rule, format_rule, parse_query, rule_options
from imds_scan.ir_schema import conditions, map_conditions, rule_kind
from imds_scan.rules import RuleFileError, load_rule_file, load_rules, parse_rule_text


def pred(field: str, op: str, values: list[str], ftype: str = "keyword") -> dict[str, Any]:
    return {"node": "pred", "field": field, "field_type": ftype, "op": op, "values": values}


def category(name: str, field: str = "event.category") -> dict[str, Any]:
    return pred(field, "eq", [name])


def key(field: str, ftype: str = "keyword") -> dict[str, str]:
    return {"field": field, "field_type": ftype}


def compile_seq(query: str, **options: Any) -> dict[str, Any]:
    ir = compile_rule(query, name="n", rule_id="r", severity="low", **options)
    ir_schema.check(ir)  # every compiled document follows the schema
    return ir


# ---------------------------------------------------------------- what a sequence compiles to


def test_a_sequence_compiles_to_the_ir_of_the_spec() -> None:
    ir = compile_seq(
        "sequence by host.id with maxspan=1m\n"
        '  [process where process.name == "curl"] by process.pid\n'
        '  [network where destination.ip == "169.254.169.254"] by process.pid\n'
        'until [process where event.type == "end"] by process.pid\n'
        "| head 5 | tail 2"
    )
    assert rule_kind(ir) == "sequence"
    assert set(ir) == {"ir_version", "id", "name", "severity", "sequence"}
    body = ir["sequence"]
    assert list(body) == [
        "timestamp_field",
        "tiebreaker_field",
        "maxspan_ms",
        "stages",
        "until",
        "pipes",
        "size",
    ]
    keys = [key("host.id"), key("process.pid", "long")]
    required: list[dict[str, Any]] = []  # the stage's condition alone
    assert body["timestamp_field"] == "@timestamp"
    assert body["tiebreaker_field"] is None
    assert body["maxspan_ms"] == 60_000
    assert body["stages"] == [
        {
            "expr": {
                "node": "and",
                "args": [category("process"), pred("process.name", "eq", ["curl"]), *required],
            },
            "keys": keys,
            "missing": False,
        },
        {
            "expr": {
                "node": "and",
                "args": [
                    category("network"),
                    pred("destination.ip", "eq", ["169.254.169.254"], "ip"),
                    *required,
                ],
            },
            "keys": keys,
            "missing": False,
        },
    ]
    assert body["until"] == {
        "expr": {
            "node": "and",
            "args": [category("process"), pred("event.type", "eq", ["end"]), *required],
        },
        "keys": keys,
    }
    assert body["pipes"] == [{"pipe": "head", "n": 5}, {"pipe": "tail", "n": 2}]
    assert body["size"] is None


def test_each_stage_condition_is_the_single_event_compile() -> None:
    # Without join keys a stage's expr is exactly what the same single-event query gives.
    conds = [
        'process where process.name in~ ("curl", "wget") and not process.args : "*-s*"',
        'any where length(process.command_line) > 400 or url.full regex~ "http://.*"',
        'file where file.path like "/etc/*" and ?user.id != null',
    ]
    query = "sequence " + " ".join(f"[{c}]" for c in conds)
    ir = compile_seq(query)
    assert [s["expr"] for s in ir["sequence"]["stages"]] == [parse_query(c) for c in conds]
    assert all(s["keys"] == [] for s in ir["sequence"]["stages"])


def test_optional_keys_are_marked() -> None:
    # `?k` may be null: "optional": true (absent otherwise); the condition is left alone.
    ir = compile_seq(
        'sequence by host.id, ?user.id [any where a == "x"] by host.id [any where b == "y"] by ?c'
    )
    first, second = ir["sequence"]["stages"]
    optional_user = {**key("user.id"), "optional": True}
    assert first["keys"] == [key("host.id"), optional_user, key("host.id")]
    assert first["expr"] == pred("a", "eq", ["x"])
    assert second["keys"] == [key("host.id"), optional_user, {**key("c"), "optional": True}]
    assert second["expr"] == pred("b", "eq", ["y"])


def test_runs_repeats_a_stage() -> None:
    ir = compile_seq('sequence by h [any where a == "x"] with runs=3 [any where b == "y"]')
    stages = ir["sequence"]["stages"]
    assert len(stages) == 4
    assert stages[0] == stages[1] == stages[2] and stages[0] is not stages[1]
    # One stage written with runs=2 is two stages: a sequence (Elastic's Okta rules do this).
    ir = compile_seq('sequence [any where a == "x"] with runs=2 until [any where b == 1]')
    assert len(ir["sequence"]["stages"]) == 2


def test_missing_stages_and_maxspan_units() -> None:
    ir = compile_seq('sequence with maxspan=5s ![any where a == "x"] [any where b == "y"]')
    assert [s["missing"] for s in ir["sequence"]["stages"]] == [True, False]
    spans = {"7ms": 7, "7s": 7000, "7m": 420_000, "7h": 25_200_000, "7d": 604_800_000}
    for text, millis in spans.items():
        query = f'sequence with maxspan={text} [any where a == "x"] [any where b == "y"]'
        assert compile_seq(query)["sequence"]["maxspan_ms"] == millis
    # Elasticsearch's grammar allows a space between the number and the unit.
    query = 'sequence with maxspan = 2 m [any where a == "x"] [any where b == "y"]'
    assert compile_seq(query)["sequence"]["maxspan_ms"] == 120_000


def test_a_sample_compiles_to_the_ir_of_the_spec() -> None:
    ir = compile_seq(
        'sample by host.id [process where a == "x"] by ?p [file where b == "y"] by ?q | head 2',
        max_samples_per_key=3,
    )
    assert rule_kind(ir) == "sample"
    body = ir["sample"]
    assert list(body) == [
        "timestamp_field",
        "tiebreaker_field",
        "stages",
        "max_samples_per_key",
        "pipes",
        "size",
    ]
    assert body["stages"] == [
        {
            "expr": {"node": "and", "args": [category("process"), pred("a", "eq", ["x"])]},
            "keys": [key("host.id"), {**key("p"), "optional": True}],
        },
        {
            "expr": {"node": "and", "args": [category("file"), pred("b", "eq", ["y"])]},
            "keys": [key("host.id"), {**key("q"), "optional": True}],
        },
    ]
    assert body["max_samples_per_key"] == 3
    assert body["pipes"] == [{"pipe": "head", "n": 2}]


def test_field_types_and_the_category_field_apply_to_stages_and_keys() -> None:
    ir = compile_seq(
        "sequence by n [process where n > 5] [any where true]",
        field_types={"n": "long"},
        category_field="my.category",
    )
    first = ir["sequence"]["stages"][0]
    assert first["keys"] == [key("n", "long")]
    assert first["expr"]["args"][:2] == [
        category("process", "my.category"),
        pred("n", "gt", ["5"], "long"),
    ]


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("query", "position", "message"),
    [
        (
            'sequence [any where a == "x"]',
            (1, 1),
            "A sequence requires a minimum of 2 queries, found [1]",
        ),
        (
            'sample by h [any where a == "x"]',
            (1, 1),
            "A sample requires a minimum of 2 queries, found [1]",
        ),
        (
            'sequence by h\n  [any where a == "x"] by p\n  [any where b == "y"]',
            (3, 3),
            "Inconsistent number of join keys specified; expected [1] but found [0]",
        ),
        (
            'sequence [any where a == "x"]\n  [any where b == "y"] by p, q',
            (2, 24),
            "Inconsistent number of join keys specified; expected [0] but found [2]",
        ),
        (
            'sequence [any where a == "x"] by p [any where b == "y"] by q until [any where c == 1]',
            (1, 68),
            "Inconsistent number of join keys specified; expected [1] but found [0]",
        ),
        (
            'sequence with maxspan=10 [any where a == "x"] [any where b == "y"]',
            (1, 23),
            "No time unit specified, did you mean [s] as in [10s]?",
        ),
        (
            'sequence with maxspan=10w [any where a == "x"] [any where b == "y"]',
            (1, 23),
            "Unrecognized time unit [w] in [10w], please specify one of [ms, s, m, h, d]",
        ),
        (
            'sequence with maxspan=1.5h [any where a == "x"] [any where b == "y"]',
            (1, 23),
            "Decimal time interval [1.5] not supported",
        ),
        (
            'sequence with maxspan=0s [any where a == "x"] [any where b == "y"]',
            (1, 23),
            "A positive maxspan value is required; found [0]",
        ),
        (
            'sequence with maxspan=1m by h [any where a == "x"] [any where b == "y"]',
            (1, 1),
            "Please specify sequence [by] before [with] not after",
        ),
        (
            'sequence [any where a == "x"] with runs=0 [any where b == "y"]',
            (1, 41),
            "A runs value between 1 and 100 is required; found [0]",
        ),
        (
            'sequence [any where a == "x"] with runs=101 [any where b == "y"]',
            (1, 41),
            "A runs value between 1 and 100 is required; found [101]",
        ),
        (
            'sequence [any where a == "x"]\n ![any where b == "y"]',
            (2, 2),
            "[with maxspan] is required for a sequence with missing events",
        ),
        (
            'sequence with maxspan=1m ![any where a == "x"] ![any where b == "y"]',
            (1, 1),
            "A sequence requires at least one positive event query",
        ),
        (
            'sample by h [any where a == "x"] ![any where b == "y"]',
            (1, 34),
            "missing events ('![') are not supported in samples",
        ),
        (
            'sequence [any where a == "x"] [any where b == "y"] until ![any where c == 1]',
            (1, 58),
            "missing events ('![') are not supported in [until]",
        ),
        (
            'sample by h with maxspan=1m [any where a == "x"] [any where b == "y"]',
            (1, 13),
            "[with maxspan] is not supported in samples",
        ),
        (
            'sample by h [any where a == "x"] with runs=2 [any where b == "y"]',
            (1, 34),
            "[with runs] is not supported in samples",
        ),
        (
            'sample by h [any where a == "x"] [any where b == "y"] until [any where c == 1]',
            (1, 55),
            "[until] is not supported in samples",
        ),
        (
            'sequence [any where a == "x"] [any where b == "y"] | sort a',
            (1, 52),
            "Pipe [sort] is not supported",
        ),
        (
            'sequence [any where a == "x"] [any where b == "y"] | hed 1',
            (1, 54),
            "Unrecognized pipe [hed]",
        ),
        (
            'sequence [any where a == "x"] [any where b == "y"] | head',
            (1, 52),
            "Pipe [head] expects exactly one argument but found [0]",
        ),
        (
            'sequence [any where a == "x"] [any where b == "y"] | tail -1',
            (1, 59),
            "Pipe [tail] expects a positive integer but found [-1]",
        ),
        (
            'sequence [any where a == "x"] [any where b == "y"] | head 1.5',
            (1, 59),
            "Pipe [head] expects a positive integer but found [1.5]",
        ),
        (
            'sequence by length(a) [any where a == "x"] [any where b == "y"]',
            (1, 13),
            "join keys must be field names, found [length(a)]",
        ),
        ('sequence [any where a == "x" [any where b == "y"]', (1, 30), "expected 'and', 'or'"),
        ('sequence [any where a == "x"] ! [any where b == 1]', (1, 31), "unexpected character"),
        ('sequence [any where a] [any where b == "y"]', (1, 21), "a field alone"),
        ('sequence [any where a == 1] [any where source.ip == "x"]', (1, 53), "IP address"),
        ('sequence [any where a == "x"] [any where b == "y"] extra', (1, 52), "'|' or end"),
    ],
)
def test_refused_with_the_place(query: str, position: tuple[int, int], message: str) -> None:
    with pytest.raises(EqlError) as err:
        compile_rule(query, name="n")
    assert message in err.value.message, err.value.message
    assert (err.value.line, err.value.column) == position, str(err.value)


def test_single_event_queries_are_unchanged() -> None:
    # Pipes and `![` stay refused outside sequences; parse_query stays single-event.
    for query, message in (
        ('any where a == "x" | head 1', "pipes are not supported"),
        ("any where a ![b]", "unexpected character '!'"),
        ("any where a ]", "expected an operator"),
    ):
        with pytest.raises(EqlError, match=message.replace("(", r"\(")):
            compile_rule(query, name="n")
    with pytest.raises(EqlError, match="sequence queries are not supported"):
        parse_query('sequence [any where a == "x"] [any where b == "y"]')
    ir = compile_rule('process where a == "x"', name="n")
    assert rule_kind(ir) == "event" and set(ir) == {
        "ir_version",
        "id",
        "name",
        "severity",
        "branches",
    }


def test_the_rule_file_names_the_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text(
        '[rule]\nname = "n"\nrule_id = "r"\nlanguage = "eql"\nquery = \'\'\'\n'
        'sequence with maxspan=5\n  [any where a == "x"]\n  [any where b == "y"]\n\'\'\'\n',
        "utf-8",
    )
    with pytest.raises(RuleFileError) as err:
        load_rule_file(path)
    assert str(err.value) == (f"{path}:6:23: No time unit specified, did you mean [s] as in [5s]?")


# ---------------------------------------------------------------- printing back


ROUND_TRIP = [
    "sequence by host.id with maxspan=90s\n"
    '  [process where process.name == "curl" and process.args : ("-s*", "*x")] by process.pid\n'
    '  ![network where destination.ip == "169.254.169.254"] by ?process.pid\n'
    '  [file where file.path : "*/credentials"] by process.pid with runs=2\n'
    'until [process where event.type == "end" or event.type == "stop"] by process.pid\n'
    "| tail 3",
    'sequence [any where a == "x"] [any where b == "y"]',
    'sequence with maxspan=1500ms [any where a == "x"] by a [any where true] by b | head 0',
    'sequence by `odd key`, ?x.y [any where length(a) > 3] [any where a == "x" and x.y != null]',
    'sample by host.id, ?user.id [process where a == "x"] [file where b == "y"] | head 4',
    'sample [any where cidrMatch(source.ip, "10.0.0.0/8")] [any where not c in (1, 2)]',
]


@pytest.mark.parametrize("query", ROUND_TRIP)
def test_format_rule_compiles_back_to_the_same_ir(query: str) -> None:
    ir = compile_seq(query, tiebreaker_field="event.sequence", size=7, timestamp_field="t")
    text = format_rule(ir)
    again = compile_rule(text, name="n", rule_id="r", severity="low", **rule_options(ir))
    assert again == ir, text
    assert format_rule(again) == text


def test_conditions_and_map_conditions_cover_every_stage() -> None:
    ir = compile_seq(
        'sequence by h with maxspan=1m [any where a == "x"] ![any where b == "y"] '
        'until [any where c == "z"]'
    )
    assert [name for name, _ in conditions(ir)] == ["stage1", "stage2", "until"]
    marker = pred("host.name", "eq", ["h1"])
    wrapped = map_conditions(ir, lambda expr: {"node": "and", "args": [marker, expr]})
    ir_schema.check(wrapped)
    assert all(expr["args"][0] == marker for _, expr in conditions(wrapped))
    assert ir["sequence"]["stages"][0]["expr"] == pred("a", "eq", ["x"])  # input untouched
    event = compile_rule('any where a == "x" or b == "y"', name="n")
    assert [name for name, _ in conditions(event)] == ["branch1", "branch2"]


# ---------------------------------------------------------------- rule files


RULE = """[rule]
name = "Sequence rule"
rule_id = "seq-1"
severity = "high"
language = "eql"
type = "eql"
{extra}
query = '''
{query}
'''
"""
QUERY = 'sequence by host.id with maxspan=1m [process where a == "x"] [network where b == "y"]'
SAMPLE_QUERY = 'sample by host.id [process where a == "x"] [network where b == "y"]'


def rule_text(query: str = QUERY, extra: str = "") -> str:
    return RULE.format(query=query, extra=extra)


def test_rule_file_keys_go_into_the_ir() -> None:
    rule = parse_rule_text(
        rule_text(
            extra='timestamp_field = "event.created"\ntiebreaker_field = "event.sequence"\n'
            'event_category_override = "event.type"\nsize = 10'
        ),
        "r.toml",
    )
    assert rule.kind == "sequence"
    assert rule.branch_names == ["sequence"]
    body = rule.ir["sequence"]
    assert (body["timestamp_field"], body["tiebreaker_field"], body["size"]) == (
        "event.created",
        key("event.sequence", "long"),
        10,
    )
    assert body["stages"][0]["expr"]["args"][0] == category("process", "event.type")
    sample = parse_rule_text(rule_text(SAMPLE_QUERY, "max_samples_per_key = 2"), "r.toml")
    assert (sample.kind, sample.branch_names) == ("sample", ["sample"])
    assert sample.ir["sample"]["max_samples_per_key"] == 2
    assert sample.ir["sample"]["size"] is None
    defaults = parse_rule_text(rule_text(), "r.toml").ir["sequence"]
    assert (defaults["timestamp_field"], defaults["tiebreaker_field"]) == ("@timestamp", None)


@pytest.mark.parametrize("query", [QUERY, SAMPLE_QUERY])
def test_timestamp_override_is_no_eql_time_field(query: str) -> None:
    # Kibana puts timestamp_override in the run's range filter and the rule's timestamp_field
    # in the EQL search: Elastic's rules (event.ingested) order their sequences by @timestamp.
    override = 'timestamp_override = "event.ingested"'
    kind = "sequence" if query == QUERY else "sample"
    plain = parse_rule_text(rule_text(query), "r.toml").ir
    assert parse_rule_text(rule_text(query, override), "r.toml").ir == plain
    both = parse_rule_text(rule_text(query, override + '\ntimestamp_field = "t"'), "r.toml")
    assert both.ir[kind]["timestamp_field"] == "t"


def test_single_event_rules_keep_their_ir() -> None:
    # timestamp_override and tiebreaker_field mean nothing to a single event: the IR is as
    # before; event_category_override names the category field there too.
    plain = parse_rule_text(rule_text('process where a == "x"'), "r.toml")
    with_keys = parse_rule_text(
        rule_text(
            'process where a == "x"',
            'timestamp_override = "event.ingested"\ntiebreaker_field = "x"',
        ),
        "r.toml",
    )
    assert plain.ir == with_keys.ir and plain.kind == "event"
    assert plain.branch_names == ["process"]


@pytest.mark.parametrize(
    ("query", "extra", "message"),
    [
        (QUERY, "max_samples_per_key = 2", "rule.max_samples_per_key: only for sample queries"),
        ('any where a == "x"', "size = 2", "rule.size: only for sequence queries and sample"),
        (QUERY, "size = -1", "rule.size: expected an integer of at least 0, found -1"),
        (SAMPLE_QUERY, "max_samples_per_key = 0", "expected an integer of at least 1, found 0"),
        (QUERY, 'size = "5"', "rule.size: expected an integer"),
        (QUERY, "tiebreaker_field = 1", "rule.tiebreaker_field: expected a string"),
        (QUERY, 'timestamp_override = ""', "rule.timestamp_override: expected a field name"),
        (QUERY, 'timestamp_field = ""', "rule.timestamp_field: expected a field name"),
        (SAMPLE_QUERY, "timestamp_field = 3", "rule.timestamp_field: expected a string"),
        (QUERY, 'branch_names = ["a"]', "a sequence query has no branches to name"),
    ],
)
def test_bad_rule_file_keys_are_refused(query: str, extra: str, message: str) -> None:
    with pytest.raises(RuleFileError, match=message):
        parse_rule_text(rule_text(query, extra), "r.toml")


def test_the_rule_cache_holds_sequence_rules(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = tmp_path / "r.toml"
    path.write_text(rule_text(extra='timestamp_field = "event.created"'), "utf-8")
    first = load_rules([str(path)])[0][0]
    entries = list((tmp_path / "cache").rglob("*.json"))
    assert len(entries) == 1
    assert json.loads(entries[0].read_text("utf-8").split("\n", 1)[1])["rule"]["ir"] == first.ir
    cached = load_rules([str(path)])[0][0]
    assert cached == first and cached.kind == "sequence"
    # Another key is another file's bytes, so another entry (never the old IR).
    path.write_text(rule_text(extra='timestamp_field = "@timestamp"'), "utf-8")
    again = load_rules([str(path)])[0][0]
    assert again.ir["sequence"]["timestamp_field"] == "@timestamp"
    assert len(list((tmp_path / "cache").rglob("*.json"))) == 2


# ---------------------------------------------------------------- code that reads conditions


def test_host_filters_allowlists_and_field_listings_take_sequences(tmp_path: Path) -> None:
    from imds_scan.config import condition_allowlist
    from imds_scan.filters import with_host_filter
    from imds_scan.rules.prefilter import prefilter_warnings
    from imds_scan.shape import rule_fields

    rule = parse_rule_text(rule_text(), "r.toml")
    sample = parse_rule_text(rule_text(SAMPLE_QUERY), "s.toml")
    # The host filter goes first in every stage (and until), as in every branch.
    (filtered,) = with_host_filter([rule], ["web-*"])
    ir_schema.check(filtered.ir)
    for _, expr in conditions(filtered.ir):
        assert expr["args"][0]["field"] == "host.name"
    # An allowlist becomes the last conjunct of every stage: no `allowlist` key.
    (allowed, allowed_sample) = condition_allowlist(['user.name == "svc"']).apply([rule, sample])
    for done in (allowed, allowed_sample):
        ir_schema.check(done.ir)
        assert "allowlist" not in done.ir and done.allowlist_labels == ()
        for _, expr in conditions(done.ir):
            assert expr["args"][-1] == {"node": "not", "arg": pred("user.name", "eq", ["svc"])}
    assert rule_fields([rule]) == ["a", "b", "event.category", "host.id"]
    # Prefilter warnings read the stages' literals; a stage without one is named.
    selective = parse_rule_text(
        rule_text(
            'sequence [process where process.name == "curlish-tool"] '
            '[network where destination.domain == "metadata.google.internal"]'
        ),
        "r.toml",
    )
    assert prefilter_warnings([selective]) == []
    weak = parse_rule_text(
        rule_text('sequence [any where a == "xq7"] [any where b != "z"]'), "w.toml"
    )
    (warning,) = prefilter_warnings([weak])
    assert "has no literal that every match contains" in warning


def test_show_rule_states_a_samples_options(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "r.toml"
    extra = 'timestamp_field = "event.created"\ntiebreaker_field = "event.sequence"\n'
    path.write_text(rule_text(SAMPLE_QUERY, extra + "max_samples_per_key = 2\nsize = 5"), "utf-8")
    run = subprocess.run(
        [sys.executable, "-m", "imds_scan", "--no-config", "--rule", str(path), "--show-rule"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[2] == (
        "// time field event.created, tiebreaker event.sequence, size 5, max_samples_per_key 2"
    )


def test_show_rule_prints_a_sequence(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "r.toml"
    path.write_text(rule_text(), "utf-8")
    run = subprocess.run(
        [sys.executable, "-m", "imds_scan", "--rule", str(path), "--show-rule", "--host", "h*"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    options, text = run.stdout.split("\n", 3)[2:]
    # What orders its events and bounds its results, though no key of the file sets them.
    assert options == "// time field @timestamp, tiebreaker none, size no limit"
    assert text.startswith("sequence with maxspan=1m\n"), text
    again = compile_rule(text, name="Sequence rule")
    stages = again["sequence"]["stages"]
    assert [len(s["expr"]["args"]) for s in stages] == [3, 3]  # host, category, a
    assert stages[0]["expr"]["args"][0]["field"] == "host.name"
    assert stages[1]["keys"] == [key("host.id")]
