"""Rule files in Elastic's detection-rules TOML shape: the bundled default, files copied in that
shape (tests/data/rules), refusals with their reasons and positions, directories, and hits
that name their rule and severity on both engines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import imds_scan.rules
from conftest import ENGINES
from imds_scan import ScanConfig, scan
from imds_scan.eql import compile_rule, format_rule
from imds_scan.rules import (
    DEFAULT_RULE_ID,
    DEFAULT_RULE_NAME,
    RuleFileError,
    default_query,
    default_rules,
    load_rule_file,
    load_rules,
)

DATA = Path(__file__).parent / "data" / "rules"
PROCESS_RULE = DATA / "imds_process_by_unusual_tool.toml"
NETWORK_RULE = DATA / "imds_connection_from_container_range.toml"
# The seed detection card, kept verbatim in the package.
SEED_CARD = Path(imds_scan.rules.__file__).with_name("detection-card.txt")

CURL = {
    "event": {"category": ["process"], "type": ["start"], "action": "exec"},
    "process": {
        "name": "curl",
        "executable": "/usr/bin/curl",
        "args": ["curl", "-s", "http://169.254.169.254/latest/meta-data/iam/security-credentials/"],
        "command_line": "curl -s http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "parent": {"name": "bash"},
    },
}
CONTAINER_CONNECTION = {
    "event": {"category": ["network"]},
    "source": {"ip": "10.244.3.7"},
    "destination": {"ip": "::ffff:169.254.169.254", "port": 80},
}


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imds_scan", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def write_events(path: Path, *events: dict[str, Any] | str) -> Path:
    path.write_text("".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in events))
    return path


# ---------------------------------------------------------------- the bundled rule


def test_bundled_rule_is_an_elastic_rule_file() -> None:
    (rule,) = default_rules()
    assert (rule.id, rule.name, rule.severity, rule.risk_score) == (
        DEFAULT_RULE_ID,
        DEFAULT_RULE_NAME,
        "high",
        73,
    )
    assert rule.query == default_query()
    assert rule.technique_ids == ["T1552", "T1552.005"]
    (threat,) = rule.threat
    assert threat["framework"] == "MITRE ATT&CK"
    assert threat["tactic"] == {
        "id": "TA0006",
        "name": "Credential Access",
        "reference": "https://attack.mitre.org/tactics/TA0006/",
    }
    assert rule.references[0] == "https://attack.mitre.org/techniques/T1552/005/"
    assert len(rule.references) == 8
    assert len(rule.false_positives) == 3
    assert rule.branch_names == ["network", "process"]


def test_bundled_metadata_comes_from_the_seed_card() -> None:
    card = SEED_CARD.read_text()
    (rule,) = default_rules()
    for text in (*rule.references, *rule.false_positives):
        assert text in card
    assert "Detects access to Cloud Instance Metadata API (IMDS)" in rule.description


def test_default_alias_and_the_bundled_file_agree() -> None:
    rules, warnings = load_rules(["default"])
    assert [r.ir for r in rules] == [r.ir for r in default_rules()] and warnings == []


def test_a_file_named_default_in_the_working_directory_is_not_the_bundled_rule(
    tmp_path: Path,
) -> None:
    # A hostile directory: `default` is a rule like the bundled one that never matches.
    bundled = Path(imds_scan.rules.__file__).with_name("imds_default.toml").read_text("utf-8")
    (rule,) = default_rules()
    decoy = bundled.replace(rule.query, 'any where process.name == "no-such-process"')
    assert decoy != bundled
    (tmp_path / "default").write_text(decoy, "utf-8")
    (tmp_path / "events.ndjson").write_text(json.dumps(CURL) + "\n", "utf-8")

    plain = run("events.ndjson", "-f", "ndjson", cwd=tmp_path)
    assert plain.returncode == 1, plain.stderr  # no --rule: the bundled rule, silently
    assert json.loads(plain.stdout)["rule_id"] == DEFAULT_RULE_ID
    assert "default" not in plain.stderr

    named = run("events.ndjson", "-f", "ndjson", "--rule", "default", cwd=tmp_path)
    assert named.returncode == 1, named.stderr  # --rule default: the bundled rule, and why
    assert "./default names it" in named.stderr

    path = run("events.ndjson", "-f", "ndjson", "--rule", "./default", cwd=tmp_path)
    assert (path.returncode, path.stdout) == (0, ""), path.stderr  # the file, by its path


# ---------------------------------------------------------------- files in Elastic's shape


def test_elastic_rule_files_load_with_their_metadata() -> None:
    rules, warnings = load_rules([str(DATA)])
    assert warnings == []
    by_id = {r.id: r for r in rules}
    process = by_id["5d0c7a9e-2f3b-4c1e-9a67-1b2c3d4e5f60"]
    assert process.name == "Instance Metadata Request by a Scripting Tool"
    assert (process.severity, process.risk_score) == ("medium", 47)
    assert process.technique_ids == ["T1552", "T1552.005"]
    assert process.branch_names == ["process"]
    assert process.source == str(PROCESS_RULE)
    network = by_id["9c3f1e20-7d4a-4b8e-8f51-0a1b2c3d4e5f"]
    assert (network.severity, network.branch_names) == ("low", ["network"])
    # A directory loads its files in path order.
    assert [r.source for r in rules] == sorted(str(p) for p in DATA.glob("*.toml"))


def test_printed_rules_compile_back_to_the_same_ir() -> None:
    rules, _ = load_rules([str(DATA), "default"])
    for rule in rules:
        again = compile_rule(
            format_rule(rule.ir), name=rule.name, rule_id=rule.id, severity=rule.severity
        )
        assert again == rule.ir


@pytest.mark.parametrize("engine", ENGINES)
def test_elastic_rule_files_run_and_hits_name_their_rule(scan_events: Any, engine: str) -> None:
    rules, _ = load_rules([str(PROCESS_RULE), str(NETWORK_RULE), "default"])
    benign_tool = {**CURL, "process": {**CURL["process"], "parent": {"name": "cloud-init"}}}
    not_container = {**CONTAINER_CONNECTION, "source": {"ip": "192.168.1.4"}}
    wrong_port = {
        **CONTAINER_CONNECTION,
        "destination": {"ip": "169.254.169.254", "port": "8080"},
    }
    result = scan_events(
        [CURL, benign_tool, CONTAINER_CONNECTION, not_container, wrong_port], engine, rules
    )
    got = [(h.line, h.rule.id, h.rule.severity, h.branch) for h in result.hits]
    assert got == [
        (1, rules[0].id, "medium", "process"),
        (1, DEFAULT_RULE_ID, "high", "process"),
        # The seed excludes cloud-init by process.name, not by parent: it still matches.
        (2, DEFAULT_RULE_ID, "high", "process"),
        (3, rules[1].id, "low", "network"),
        (3, DEFAULT_RULE_ID, "high", "network"),
        (4, DEFAULT_RULE_ID, "high", "network"),
        (5, DEFAULT_RULE_ID, "high", "network"),
    ]
    # The witness of the Elastic rule is the predicate that decided its `or`.
    assert result.hits[0].matched == {
        "field": "process.name",
        "op": "wildcard",
        "pattern": "curl",
        "value": "curl",
    }
    # A plain `and` is decided by its last predicate (spec/ir.md, Witness).
    assert result.hits[3].matched == {
        "field": "source.ip",
        "op": "cidr",
        "pattern": "10.244.0.0/16",
        "value": "10.244.3.7",
    }


def test_cli_runs_a_rule_file_and_names_rule_and_severity(tmp_path: Path) -> None:
    events = write_events(tmp_path / "e.ndjson", CURL, CONTAINER_CONNECTION)
    proc = run(events, "--rule", PROCESS_RULE, "--rule", NETWORK_RULE, "-f", "ndjson")
    assert proc.returncode == 1, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(r["line"], r["rule"], r["rule_id"], r["severity"]) for r in records] == [
        (
            1,
            "Instance Metadata Request by a Scripting Tool",
            "5d0c7a9e-2f3b-4c1e-9a67-1b2c3d4e5f60",
            "medium",
        ),
        (
            2,
            "Metadata Endpoint Connection from a Container Network",
            "9c3f1e20-7d4a-4b8e-8f51-0a1b2c3d4e5f",
            "low",
        ),
    ]


# ---------------------------------------------------------------- refusals

RULE_HEAD = """[metadata]
creation_date = "2026/11/28"

[rule]
name = "t"
rule_id = "t-1"
severity = "low"
"""


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            'language = "eql"\ntype = "eql"\nquery = \'\'\'\nsequence by host.id\n'
            "  [process where true]\n'''\n",
            ":11:1: A sequence requires a minimum of 2 queries, found [1]",
        ),
        (
            'language = "eql"\nquery = \'\'\'\nprocess where event.type == "start" and\n'
            "  lengthOf(process.args) > 3\n'''\n",
            ":11:3: function lengthOf() is not supported",
        ),
        (
            'language = "eql"\nquery = \'process where process.name == "a" | head 5\'\n',
            ":9:44: pipes are not supported",
        ),
        (
            'language = "eql"\nquery = "process where process.name == \\"a\\" and x = 2"\n',
            ": rule.query:1:41: '=' is not supported: use '=='",
        ),
        (
            'language = "lucene"\ntype = "query"\nquery = "process.name: curl"\n',
            ": language 'lucene' is not supported (Lucene query syntax is not supported)",
        ),
        (
            'language = "esql"\ntype = "esql"\nquery = "from logs-*"\n',
            ": language 'esql' is not supported",
        ),
        (
            'type = "machine_learning"\nanomaly_threshold = 75\n',
            ": rule type 'machine_learning' is not supported",
        ),
        (
            'language = "eql"\ntype = "threshold"\nquery = "any where a == \\"b\\""\n',
            ": rule type 'threshold' is not supported",
        ),
        ('language = "eql"\n', ": rule.query is missing"),
        ('language = "eql"\nquery = 5\n', ": rule.query: expected a string"),
        (
            'language = "eql"\nquery = "any where a == \\"b\\""\nreferences = ["x", 1]\n',
            ": rule.references[1]: expected a string",
        ),
    ],
)
def test_refused_rule_files(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "rule.toml"
    path.write_text(RULE_HEAD + body)
    with pytest.raises(RuleFileError) as err:
        load_rule_file(path)
    assert str(err.value).startswith(str(path)), err.value
    assert message in str(err.value), str(err.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not toml = = 1", "not valid TOML"),
        ('[metadata]\nx = "y"\n', "no [rule] table: not a detection rule file"),
        (
            RULE_HEAD.replace('"low"', '"urgent"')
            + 'language = "eql"\nquery = "any where a == 1"\n',
            "rule.severity: 'urgent' is not one of low, medium, high, critical",
        ),
    ],
)
def test_not_rule_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "x.toml"
    path.write_text(text)
    with pytest.raises(RuleFileError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_rule_file(path)


def test_directory_with_a_refused_file(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text(PROCESS_RULE.read_text())
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.toml").write_text(
        RULE_HEAD + "language = \"eql\"\nquery = '''\nsequence [any where a == \"x\"]\n'''\n"
    )
    (tmp_path / "notes.md").write_text("not a rule")
    with pytest.raises(
        RuleFileError, match=r"sub/b\.toml:10:1: A sequence requires a minimum of 2 queries"
    ):
        load_rules([str(tmp_path)])
    rules, warnings = load_rules([str(tmp_path)], skip_unsupported=True)
    assert [r.name for r in rules] == ["Instance Metadata Request by a Scripting Tool"]
    assert len(warnings) == 1 and "A sequence requires a minimum of 2 queries" in warnings[0]


def test_duplicate_rule_ids_and_empty_directories(tmp_path: Path) -> None:
    (tmp_path / "copy.toml").write_text(PROCESS_RULE.read_text())
    with pytest.raises(RuleFileError, match="is also the id of"):
        load_rules([str(PROCESS_RULE), str(tmp_path / "copy.toml")])
    # The same file twice is one rule.
    assert len(load_rules([str(PROCESS_RULE), str(PROCESS_RULE)])[0]) == 1
    (tmp_path / "empty").mkdir()
    with pytest.raises(RuleFileError, match=r"no \.toml rule file"):
        load_rules([str(tmp_path / "empty")])


def test_cli_refuses_with_reason_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "seq.toml"
    bad.write_text(
        RULE_HEAD + "language = \"eql\"\nquery = '''\nsequence [any where a == \"x\"]\n'''\n"
    )
    events = write_events(tmp_path / "e.ndjson", CURL)
    proc = run(events, "--rule", bad)
    assert proc.returncode == 2
    assert f"{bad}:10:1: A sequence requires a minimum of 2 queries" in proc.stderr
    proc = run(
        events, "--rule", bad, "--rule", PROCESS_RULE, "--skip-unsupported-rules", "-f", "ndjson"
    )
    assert proc.returncode == 1, proc.stderr
    assert "warning: skipped" in proc.stderr and "A sequence requires" in proc.stderr
    assert len(proc.stdout.splitlines()) == 1


def test_warns_when_a_rule_has_no_selective_literal(tmp_path: Path) -> None:
    rule = tmp_path / "slow.toml"
    rule.write_text(
        RULE_HEAD + "language = \"eql\"\nquery = '''\nany where not user.name == \"root\"\n'''\n"
    )
    weak = tmp_path / "weak.toml"
    weak.write_text(
        RULE_HEAD.replace("t-1", "t-2")
        + "language = \"eql\"\nquery = '''\nprocess where true_field == \"x\"\n'''\n"
    )
    events = write_events(tmp_path / "e.ndjson", CURL)
    proc = run(events, "--rule", rule, "--rule", weak, "-f", "ndjson")
    assert "rule 't' (t-1) has no literal that every match contains" in proc.stderr
    assert "the scan will parse every line" in proc.stderr
    assert "rule 't' (t-2): its literal \"process\" is in about 77% of the lines" in proc.stderr
    assert "parse" not in run(events, "-f", "ndjson").stderr
    # The python engine parses every line anyway: nothing to warn about.
    assert "warning" not in run(events, "--rule", rule, "--engine", "python").stderr


def _alternating(levels: int) -> str:
    """A condition `levels` deep: `and`/`or` alternating (no chain to flatten)."""
    text = 'process.name == "curl"'
    for i in range(1, levels):
        text = f'f{i} == "x" {"and" if i % 2 else "or"} ({text})'
    return text


@pytest.mark.parametrize("engine", ENGINES)
def test_too_deep_rule_is_refused_at_load_and_skippable(tmp_path: Path, engine: str) -> None:
    # 62 alternating levels used to pass the compiler and kill the Rust engine ("bad IR:
    # recursion limit") even with --skip-unsupported-rules; now both engines run up to 100
    # levels and the compiler refuses more, naming the file, line and column.
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.toml").write_text(PROCESS_RULE.read_text())
    query = f"any where not ({_alternating(100)})"  # 101 levels in one branch, 100 parentheses
    (rules / "deep.toml").write_text(RULE_HEAD + f"language = \"eql\"\nquery = '''\n{query}\n'''\n")
    # Every `fN == "x"` holds: each level is true.
    events = write_events(tmp_path / "e.ndjson", {**CURL, **{f"f{i}": "x" for i in range(100)}})
    proc = run(events, "--rule", rules, "--engine", engine)
    assert proc.returncode == 2
    column = query.index('f1 == "x"') + 1  # the first node at level 101
    assert proc.stderr == (
        f"imds-scan: error: {rules / 'deep.toml'}:10:{column}: the condition nests more than "
        "100 levels deep (and/or/not; at most 100 are supported)\n"
    )
    proc = run(
        events, "--rule", rules, "--skip-unsupported-rules", "-f", "ndjson", "--engine", engine
    )
    assert proc.returncode == 1, proc.stderr
    assert "warning: skipped" in proc.stderr and "deep.toml:10:" in proc.stderr
    assert len(proc.stdout.splitlines()) == 1
    # 62 levels (and 100) run in either engine.
    for levels in (62, 100):
        (rules / "deep.toml").write_text(
            RULE_HEAD + f"language = \"eql\"\nquery = '''\nany where {_alternating(levels)}\n'''\n"
        )
        proc = run(events, "--rule", rules, "-f", "ndjson", "--engine", engine)
        assert proc.returncode == 1, proc.stderr
        assert [json.loads(line)["rule_id"] for line in proc.stdout.splitlines()] == [
            "5d0c7a9e-2f3b-4c1e-9a67-1b2c3d4e5f60",
            "t-1",
        ]


def test_each_refused_rule_file_is_one_readable_line(tmp_path: Path) -> None:
    # The messages used to be joined by "\n", then escaped as one line: "…\x0a…".
    for name, query in [("a", "sequence [any where a == 1]"), ("b", "any where lengthOf(a) > 1")]:
        (tmp_path / f"{name}.toml").write_text(
            RULE_HEAD + f"language = \"eql\"\nquery = '''\n{query}\n'''\n"
        )
    (tmp_path / "c.toml").write_text("not toml = = 1")
    (tmp_path / "d\x1bname.toml").write_text("[metadata]\n")
    events = write_events(tmp_path / "e.ndjson", CURL)
    proc = run(events, "--rule", tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 4, proc.stderr
    assert all(line.startswith(f"imds-scan: error: {tmp_path}/") for line in lines), lines
    assert "\\x0a" not in proc.stderr
    assert "a.toml:10:1: A sequence requires a minimum of 2 queries" in lines[0]
    assert "b.toml:10:11: function lengthOf() is not supported" in lines[1]
    assert "c.toml: not valid TOML" in lines[2]
    # A control character in a file name is still escaped.
    assert "d\\x1bname.toml: no [rule] table" in lines[3]


# ---------------------------------------------------------------- an EQL rule's filters

EQL_FILTERS = """
[[rule.filters]]
[rule.filters.meta]
negate = true
[rule.filters.query.match_phrase]
"host.name" = "web-1"

[[rule.filters]]
[rule.filters.query.exists]
field = "user.name"

[[rule.filters]]
[rule.filters.meta]
disabled = true
[rule.filters.query.exists]
field = "nobody"
"""
NOT_WEB_1 = {
    "node": "not",
    "arg": {
        "node": "pred",
        "field": "host.name",
        "field_type": "keyword",
        "op": "eq",
        "values": ["web-1"],
        "ignore_above": 1024,
    },
}
HAS_USER = {
    "node": "pred",
    "field": "user.name",
    "field_type": "keyword",
    "op": "exists",
    "values": [],
    "ignore_above": 1024,
}


def eql_rule(tmp_path: Path, query: str, extra: str = "") -> Path:
    path = tmp_path / "rule.toml"
    path.write_text(RULE_HEAD + f"language = \"eql\"\nquery = '''\n{query}\n'''\n{extra}")
    return path


def test_an_eql_rules_filters_are_anded_into_every_branch(tmp_path: Path) -> None:
    # Kibana sends [[rule.filters]] as the EQL search's filter (they used to be ignored).
    query = 'any where process.name == "curl" or destination.ip == "169.254.169.254"'
    plain = load_rule_file(str(eql_rule(tmp_path, query)))
    filtered = load_rule_file(str(eql_rule(tmp_path, query, EQL_FILTERS)))
    assert len(filtered.ir["branches"]) == len(plain.ir["branches"]) == 2
    for mine, theirs in zip(filtered.ir["branches"], plain.ir["branches"], strict=True):
        # First, so that the branch's own last predicate still witnesses it.
        assert mine["expr"] == {"node": "and", "args": [NOT_WEB_1, HAS_USER, theirs["expr"]]}
    assert load_rule_file(str(eql_rule(tmp_path, query, "filters = []\n"))).ir == plain.ir


def test_a_sequences_filters_hold_for_every_stage_and_until(tmp_path: Path) -> None:
    query = (
        'sequence by host.name with maxspan=1m [process where process.name == "curl"] '
        "![network where destination.port == 443] [network where destination.port == 80] "
        'until [process where event.type == "end"]'
    )
    body = load_rule_file(str(eql_rule(tmp_path, query, EQL_FILTERS))).ir["sequence"]
    plain = load_rule_file(str(eql_rule(tmp_path, query))).ir["sequence"]
    parts = [*body["stages"], body["until"]]
    assert len(parts) == 4
    for mine, theirs in zip(parts, [*plain["stages"], plain["until"]], strict=True):
        assert mine["expr"]["args"][:2] == [NOT_WEB_1, HAS_USER]
        assert mine["expr"]["args"][2:] == theirs["expr"]["args"]
        assert {k: v for k, v in mine.items() if k != "expr"} == {
            k: v for k, v in theirs.items() if k != "expr"
        }


def test_a_bad_filter_of_an_eql_rule_is_refused_by_its_place(tmp_path: Path) -> None:
    bad = '[[rule.filters]]\nquery = {query_string = {query = "a"}}\n'
    with pytest.raises(RuleFileError, match=r"rule\.toml: rule\.filters\[0\]: a query_string"):
        load_rule_file(str(eql_rule(tmp_path, 'any where a == "x"', bad)))


@pytest.mark.parametrize("engine", ENGINES)
def test_an_eql_rules_filters_decide_its_hits(
    scan_events: Any, engine: str, tmp_path: Path
) -> None:
    rule = load_rule_file(str(eql_rule(tmp_path, 'any where process.name == "curl"', EQL_FILTERS)))
    events = [
        {**CURL, "host": {"name": "web-2"}, "user": {"name": "root"}},
        {**CURL, "host": {"name": "web-1"}, "user": {"name": "root"}},  # negated filter
        {**CURL, "host": {"name": "web-2"}},  # no user.name
        {**CURL, "user": {"name": "root"}},  # no host.name: the negation holds
    ]
    result = scan_events(events, engine, [rule])
    assert [h.line for h in result.hits] == [1, 4]
    assert result.hits[0].matched == {
        "field": "process.name",
        "op": "eq",
        "pattern": "curl",
        "value": "curl",
    }


@pytest.mark.parametrize("engine", ENGINES)
def test_a_filtered_out_event_takes_no_part_in_a_sequence(engine: str, tmp_path: Path) -> None:
    query = (
        'sequence by host.name with maxspan=1m [process where process.name == "curl"] '
        '[network where destination.ip == "169.254.169.254"]'
    )
    svc = (
        '[[rule.filters]]\nquery = {bool = {must_not = [{match_phrase = {"user.name" = "svc"}}]}}\n'
    )

    def event(second: int, user: str, **fields: Any) -> dict[str, Any]:
        return {
            "@timestamp": f"2024-05-01T10:00:0{second}.000Z",
            "host": {"name": "h"},
            "user": {"name": user},
            **fields,
        }

    events = [
        event(0, "svc", event={"category": ["process"]}, process={"name": "curl"}),
        event(1, "root", event={"category": ["network"]}, destination={"ip": "169.254.169.254"}),
        event(2, "root", event={"category": ["process"]}, process={"name": "curl"}),
        event(3, "svc", event={"category": ["network"]}, destination={"ip": "169.254.169.254"}),
        event(4, "root", event={"category": ["network"]}, destination={"ip": "169.254.169.254"}),
    ]
    path = write_events(tmp_path / "events.ndjson", *events)
    config = ScanConfig(engine=engine)  # type: ignore[arg-type]

    def results(extra: str) -> list[list[int | None]]:
        rule = load_rule_file(str(eql_rule(tmp_path, query, extra)))
        hits = scan([str(path)], rules=[rule], config=config).hits
        return [[e.line for e in h.events] for h in hits]

    # Without the filter: (1, 2) and (3, 4); with it, events 1 and 4 are not in the search.
    assert results("") == [[1, 2], [3, 4]]
    assert results(svc) == [[3, 5]]
