"""Warnings about unselective prefilter literals: each names the rule and its most frequent
literal once, with the share of lines the scan parses for it, measured on the start of the
input (plain, gzip, a directory) or, without one, taken from a table of common ECS words."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from imds_scan.eql import compile_rule
from imds_scan.rules import Rule, default_rules
from imds_scan.rules.prefilter import prefilter_warnings


def rule(query: str, rule_id: str = "r-1") -> Rule:
    ir = compile_rule(query, name="weak", rule_id=rule_id)
    return Rule(id=rule_id, name="weak", severity="low", query=query, ir=ir)


ZEBRA_AB = 'any where process.name : ("zebra", "ab")'  # needles "zebra" and "ab"


def lines_file(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(json.dumps({"message": m}) + "\n" for m in lines))
    return path


def mixed() -> list[str]:
    # 20 lines: "ab" in 6 of them, "ZEBRA" (folded to ASCII lower case) in 2 others, as whole
    # values (beside other rules, the rule gate opens a rule where its values are).
    return ["ab"] * 6 + ["ZEBRA"] * 2 + ["nothing here"] * 12


def test_measured_share_names_the_most_frequent_literal_once_per_rule(tmp_path: Path) -> None:
    events = lines_file(tmp_path / "e.ndjson", mixed())
    warnings = prefilter_warnings([rule(ZEBRA_AB), rule(ZEBRA_AB, "r-2")], [str(events)])
    assert len(warnings) == 2 and all(w.count("'weak'") == 1 for w in warnings)
    assert warnings[0].startswith("rule 'weak' (r-1): its literal \"ab\" is in 30% of the lines")
    assert "(the first 1 KiB of e.ndjson)" in warnings[0]
    # The cost is every line holding one of the rule's literals: 8 of 20 (beside the other
    # rule, the lines it is evaluated on).
    assert "the scan evaluates this rule on about 40% of the lines (slow)" in warnings[0]


def test_no_warning_below_a_tenth_of_the_lines(tmp_path: Path) -> None:
    imds = "curl http://169.254.169.254/latest/meta-data/"
    rare = lines_file(tmp_path / "rare.ndjson", [imds] * 5 + ["quiet"] * 95)
    assert prefilter_warnings(default_rules(), [str(rare)]) == []
    noisy = lines_file(tmp_path / "noisy.ndjson", [imds] * 15 + ["quiet"] * 85)
    (warning,) = prefilter_warnings(default_rules(), [str(noisy)])
    assert "(imds-default): its literal" in warning and "15% of the lines" in warning


def test_a_file_of_hits_is_no_reason_to_warn(tmp_path: Path) -> None:
    # Every line holds the default rule's literal, but every line is a hit: nothing parsed
    # in vain. The same lines with the event type of no match are parsed in vain.
    hit = {
        "event": {"category": "process", "type": "start"},
        "process": {"name": "curl", "command_line": "curl http://169.254.169.254/latest/"},
    }
    hits = tmp_path / "hits.ndjson"
    hits.write_text((json.dumps(hit) + "\n") * 30)
    assert prefilter_warnings(default_rules(), [str(hits)]) == []
    hit["event"]["type"] = "end"
    ends = tmp_path / "ends.ndjson"
    ends.write_text((json.dumps(hit) + "\n") * 30)
    (warning,) = prefilter_warnings(default_rules(), [str(ends)])
    assert 'its literal "169.254.169.254" is in 100% of the lines sampled' in warning


def test_sample_of_a_gzip_file_in_a_directory(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    text = lines_file(tmp_path / "e.ndjson", mixed()).read_bytes()
    (folder / "e.ndjson.gz").write_bytes(gzip.compress(text))
    (warning,) = prefilter_warnings([rule(ZEBRA_AB)], [str(folder)])
    assert "of e.ndjson.gz)" in warning and "about 40% of the lines" in warning


def test_without_a_sample_the_table_of_common_words_stands_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broad, short = rule('process where true_field == "x"'), rule(ZEBRA_AB, "r-2")
    few = lines_file(tmp_path / "few.ndjson", mixed()[:19])  # too few lines to measure
    # `-` is stdin, even when the working directory holds a file of that name.
    lines_file(tmp_path / "-", mixed())
    monkeypatch.chdir(tmp_path)
    for paths in (["-"], [str(few)]):
        first, second = prefilter_warnings([broad, short], paths)
        assert 'its literal "process" is in about 77% of the lines of typical ECS logs' in first
        assert 'its literal "ab" is so short or common that most lines hold it' in second


def test_cli_prints_each_rule_once_on_the_rust_engine(tmp_path: Path) -> None:
    events = lines_file(tmp_path / "e.ndjson", mixed())
    more = lines_file(tmp_path / "f.ndjson", mixed())
    rule_file = tmp_path / "weak.toml"
    rule_file.write_text(
        '[rule]\nname = "weak"\nrule_id = "r-9"\nseverity = "low"\nlanguage = "eql"\n'
        f"query = '''\n{ZEBRA_AB}\n'''\n"
    )
    cmd = [sys.executable, "-m", "imds_scan", "--rule", str(rule_file), "-f", "ndjson"]
    proc = subprocess.run([*cmd, events, more], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if "r-9" in ln]
    assert line.startswith("imds-scan: warning: rule 'weak' (r-9): its literal \"ab\"")
    python = subprocess.run(
        [*cmd, "--engine", "python", events], capture_output=True, text=True, timeout=120
    )
    assert "r-9" not in python.stderr  # it parses every line anyway


def gated_file(path: Path) -> Path:
    # 30 lines: "zebra" in 24 of them (in another field: no hit of `message : "zebra"`),
    # "alice" in one of those only.
    lines = [("zebra", "alice")] + [("zebra", "bob")] * 23 + [("quiet", "bob")] * 6
    events = [{"note": n, "message": "-", "user": {"name": u}} for n, u in lines]
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def scanner_of(rules: list[Rule]) -> Callable[[], Any]:
    from imds_scan._engine import Scanner

    return lambda: Scanner([json.dumps(r.ir) for r in rules])


def test_beside_other_rules_the_share_is_the_lines_the_rule_gate_opens(tmp_path: Path) -> None:
    # The rule's literal "zebra" is on 80% of the lines, but with another rule beside it the
    # engine evaluates it only where "alice" is too: 1 line of 30, no warning.
    events = str(gated_file(tmp_path / "e.ndjson"))
    rules = [
        rule('any where message : "zebra" and user.name : "alice"'),
        rule('any where user.name : "nobodyzz"', "r-2"),
    ]
    assert prefilter_warnings(rules, [events], cache=False, scanner=scanner_of(rules)) == []
    # Without the scan's Scanner (host filters: a plan of its own), the same.
    assert prefilter_warnings(rules, [events], cache=False) == []
    # Alone, the rule is evaluated on every line holding its literal "zebra".
    (warning,) = prefilter_warnings(rules[:1], [events], cache=False, scanner=scanner_of(rules[:1]))
    assert '(r-1): its literal "zebra" is in 80% of the lines' in warning


def test_beside_other_rules_a_rule_open_on_most_lines_is_still_named(tmp_path: Path) -> None:
    events = str(gated_file(tmp_path / "e.ndjson"))
    rules = [rule('any where message : "zebra"'), rule('any where user.name : "nobodyzz"', "r-2")]
    (warning,) = prefilter_warnings(rules, [events], cache=False, scanner=scanner_of(rules))
    assert prefilter_warnings(rules, [events], cache=False) == [warning]
    assert warning.startswith("rule 'weak' (r-1): its literal \"zebra\" is in 80% of the lines")
    # The gate opens it on the 24 lines holding "zebra", and none is a hit.
    assert "the scan evaluates this rule on about 80% of the lines (slow)" in warning


def test_a_sequence_is_named_once_with_its_costliest_stage(tmp_path: Path) -> None:
    # Its stages run as rules of the engine: each would be named on its own ("…/stage1",
    # "…/stage2"). "zebra" is on 24 of 30 lines, "alice" on one of them: stage 2 (two
    # clauses) is evaluated on 1 line, stages 1 and 3 on 24.
    events = gated_file(tmp_path / "e.ndjson")
    rule_file = tmp_path / "seq.toml"
    query = (
        'sequence by host.name [any where message : "zebra"] '
        '[any where message : "zebra" and user.name : "alice"] [any where message : "zebra"]'
    )
    rule_file.write_text(
        '[rule]\nname = "seq"\nrule_id = "s-1"\nseverity = "low"\nlanguage = "eql"\n'
        f"query = '''\n{query}\n'''\n"
    )
    other = tmp_path / "other.toml"
    other.write_text(
        '[rule]\nname = "other"\nrule_id = "o-1"\nseverity = "low"\nlanguage = "eql"\n'
        "query = '''\nany where user.name : \"nobodyzz\"\n'''\n"
    )
    cmd = [sys.executable, "-m", "imds_scan", "--rule", str(rule_file), "--rule", str(other)]
    proc = subprocess.run(
        [*cmd, "-f", "ndjson", str(events)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if "s-1" in ln]
    assert line.startswith("imds-scan: warning: rule 'seq' (s-1), stage1: its literal \"zebra\"")
    assert "/stage" not in line
    assert "the scan evaluates this stage on about 80% of the lines" in line
    assert line.endswith("(slow); 1 more of its stages likewise")


def test_a_rule_alone_costs_the_lines_where_all_its_clauses_hold(tmp_path: Path) -> None:
    # "process" is on every line and "start" too, but as a key (process.start) on all but
    # three: alone, the rule is still parsed only where a clause of each kind holds, the three
    # lines it matches. No warning; the literals' share would have named it (100%).
    events = []
    for i in range(30):
        kind = "start" if i % 10 == 0 else "end"
        events.append(
            {
                "event": {"category": ["process"], "type": [kind]},
                "process": {"name": "sh", "start": "2024-05-06T00:00:00Z"},
            }
        )
    path = tmp_path / "e.ndjson"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    broad = rule('process where event.type == "start"')
    assert prefilter_warnings([broad], [str(path)], cache=False) == []
    assert prefilter_warnings([broad], [str(path)], cache=False, scanner=scanner_of([broad])) == []
