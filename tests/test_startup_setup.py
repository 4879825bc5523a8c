"""The set-up of a scan with many rules is done once: the CLI plans the rules once, serialises
their IR once and builds one Scanner, which the prefilter warnings' sample scan shares; the
warnings and the hits are those of separate set-ups."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest

from imds_scan import _engine, cli
from imds_scan import plan as rule_plan
from imds_scan.rules import Rule, load_rule, load_rules
from imds_scan.rules.prefilter import prefilter_warnings

# (rule id, query): on the sample below, "ab" is in 6 of 20 lines and no rule's hit (the rule
# gate opens zebra-ab there too, as the not is no literal: warned);
# "table" and "a zebra" are only in the lines their rules match (no warning); pid > 1 has no
# literal; the sequence's stages are rules of the engine of their own.
QUERIES = [
    ("zebra-ab", 'any where message : ("*zebra*", "*ab*") and not message : "*table*"'),
    ("table", 'any where message : "*table*"'),
    ("a-zebra", 'any where message == "a ZEBRA"'),
    ("pid", "any where process.pid > 1"),
    ("never", 'any where message == "never there"'),
    ("seq", 'sequence [any where message : "*nothing*"] [any where message : "*table*"]'),
]


def sample_lines() -> list[str]:
    messages = ["table"] * 6 + ["a ZEBRA"] * 2 + ["nothing here"] * 12
    return [json.dumps({"message": m}) for m in messages]


def write_rules(folder: Path) -> Path:
    folder.mkdir()
    for rule_id, query in QUERIES:
        (folder / f"{rule_id}.toml").write_text(
            f'[rule]\nname = "R {rule_id}"\nrule_id = "{rule_id}"\nseverity = "low"\n'
            f"language = \"eql\"\nquery = '''\n{query}\n'''\n"
        )
    return folder


def write_events(path: Path) -> Path:
    """The sample lines as an NDJSON file."""
    path.write_text("".join(line + "\n" for line in sample_lines()))
    return path


def single_event_rules() -> list[Rule]:
    """The single-event rules of QUERIES."""
    return [
        load_rule(q, rule_id=i, name=i, severity="low", source="x")
        for i, q in QUERIES
        if not q.startswith("sequence")
    ]


def main_exit(monkeypatch: pytest.MonkeyPatch, *args: str) -> int | str | None:
    """The exit code of the CLI run in this process with ``args``."""
    monkeypatch.setattr(sys, "argv", ["imds-scan", *args])
    with pytest.raises(SystemExit) as stop:
        cli.main()
    return stop.value.code


class CountingScanner:
    """The binding's Scanner, counting the Scanners made."""

    real = _engine.Scanner
    made = 0

    def __new__(cls, rules: list[str], threads: int = 0) -> Any:
        CountingScanner.made += 1
        return cls.real(rules, threads)

    # Per call of needles_each, the threads it was given.
    needles_threads: ClassVar[list[int]] = []

    @staticmethod
    def needles_each(rules: list[str], threads: int = 0) -> list[list[str] | None]:
        CountingScanner.needles_threads.append(threads)
        return CountingScanner.real.needles_each(rules, threads)


def test_a_cli_scan_plans_its_rules_and_builds_its_scanner_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = write_rules(tmp_path / "rules")
    events = write_events(tmp_path / "e.ndjson")
    planned = []
    plan_rules = rule_plan.plan_rules

    def counting_plan(*args: Any) -> rule_plan.RulePlan:
        planned.append(args)
        return plan_rules(*args)

    monkeypatch.setattr(rule_plan, "plan_rules", counting_plan)
    monkeypatch.setattr(_engine, "Scanner", CountingScanner)
    code = main_exit(monkeypatch, "-f", "ndjson", "--rule", str(rules), str(events))
    err = capsys.readouterr().err
    assert code == 1, err
    # The warnings sampled the input with hits (those of the scan's own Scanner).
    assert "(zebra-ab): its literal" in err and "(pid) has no literal" in err
    assert "(table)" not in err and "(a-zebra)" not in err
    assert len(planned) == 1
    assert CountingScanner.made == 1


def test_the_warnings_set_up_keeps_to_the_scans_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `--threads 1`: the rules' literals are worked out on one thread too (by default, and
    # with `--threads 0`, on one per core).
    rules = write_rules(tmp_path / "rules")
    events = write_events(tmp_path / "e.ndjson")
    monkeypatch.setattr(_engine, "Scanner", CountingScanner)
    for flags, threads in (["--threads", "1"], 1), ([], 0), (["--threads", "3"], 3):
        CountingScanner.needles_threads = []
        code = main_exit(
            monkeypatch, "-q", "-f", "ndjson", *flags, "--rule", str(rules), str(events)
        )
        assert code == 1, capsys.readouterr().err
        assert CountingScanner.needles_threads == [threads]
    # On one thread, the literals are those found on many.
    forms = [json.dumps(r.ir) for r in single_event_rules()]
    assert _engine.Scanner.needles_each(forms, 1) == _engine.Scanner.needles_each(forms)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "imds_scan", "-q", "-f", "ndjson", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_the_shared_set_up_gives_what_separate_set_ups_give(tmp_path: Path) -> None:
    # A host filter makes the scan's plan differ from the warnings': each makes its own.
    rules = str(write_rules(tmp_path / "rules"))
    events = write_events(tmp_path / "e.ndjson")
    shared = run("--rule", rules, str(events))
    apart = run("--rule", rules, "--exclude-host", "no-such-host", str(events))
    assert shared.returncode == apart.returncode == 1, shared.stderr
    assert shared.stdout == apart.stdout and shared.stdout.count("\n") == 10
    assert shared.stderr == apart.stderr and "(zebra-ab)" in shared.stderr


def engine_rules(folder: Path) -> rule_plan.RulePlan:
    loaded, _ = load_rules([str(folder)], cache=False)
    return rule_plan.plan_rules(loaded, (), ())


def test_warnings_from_the_scan_scanner_are_those_of_the_flagged_rules_alone(
    tmp_path: Path,
) -> None:
    plan = engine_rules(write_rules(tmp_path / "rules"))
    events = write_events(tmp_path / "e.ndjson")
    alone = prefilter_warnings(plan.engine_rules, [str(events)], cache=False)
    assert len(alone) == 2  # zebra-ab (parsed in vain) and pid (no literal)
    made: list[int] = []

    def scanner() -> Any:
        made.append(1)
        return plan.scanner

    shared = prefilter_warnings(
        plan.engine_rules, [str(events)], cache=False, ir_json=plan.engine_json, scanner=scanner
    )
    assert shared == alone and made == [1]


def test_each_rules_literals_in_one_call_are_each_rule_alone() -> None:
    rules = single_event_rules()
    rules *= 6  # enough rules to be spread over threads
    forms = [json.dumps(r.ir) for r in rules]
    each = _engine.Scanner.needles_each(forms)
    assert each == [_engine.Scanner([f]).needles() for f in forms]
    assert None in each and ["ab", "zebra"] in [sorted(n or []) for n in each]
    # A faulty rule: the first one's error, as a Scanner of them all gives it.
    bad = [*forms[:20], '{"ir_version": 1}', *forms[20:], "{"]
    with pytest.raises(ValueError) as alone_error:
        _engine.Scanner(bad)
    with pytest.raises(ValueError, match="bad IR") as each_error:
        _engine.Scanner.needles_each(bad)
    assert str(each_error.value) == str(alone_error.value)


def test_a_rule_the_engine_refuses_stops_the_scan_with_its_error(tmp_path: Path) -> None:
    # The Scanner is made on a thread of its own: its error still reaches the caller.
    import imds_scan

    events = write_events(tmp_path / "e.ndjson")
    pred = {"node": "pred", "field": "source.ip", "field_type": "ip", "op": "eq"}
    ir = {
        "ir_version": 1,
        "id": "bad",
        "name": "bad",
        "severity": "low",
        "branches": [{"name": "b", "expr": {**pred, "values": ["not-an-ip"]}}],
    }
    bad = Rule(id="bad", name="bad", severity="low", query="", ir=ir)
    refused = 'field "source.ip": "not-an-ip" is not an IP address'
    with pytest.raises(ValueError, match=refused):
        imds_scan.scan([str(events)], rules=[bad])
    with pytest.raises(ValueError, match=refused):
        list(imds_scan.iter_scan([str(events)], rules=[bad]))
    plan = rule_plan.plan_rules([bad], (), ())
    plan.start_scanner()
    for _ in range(2):  # asked again: the same error
        with pytest.raises(ValueError, match=refused):
            plan.scanner  # noqa: B018


SET_UP_THREADS = """
import json, os, sys
from imds_scan._engine import Scanner
from imds_scan.eql import compile_rule

def threads():
    return len(os.listdir("/proc/self/task"))

forms = [
    json.dumps(compile_rule(f'any where message : "*w{i}*"', name=f"r{i}", rule_id=f"r-{i}"))
    for i in range(40)
]
before = threads()
Scanner(forms, int(sys.argv[1]))
print(threads() - before)
"""


@pytest.mark.skipif(
    not Path("/proc/self/task").is_dir() or (os.cpu_count() or 1) < 2,
    reason="counts threads in /proc; needs two cores to tell one thread from one per core",
)
def test_set_up_of_many_rules_keeps_to_the_threads_it_is_given() -> None:
    # Many rules are compiled side by side; with --threads 1 that is one thread, not rayon's
    # pool of a thread per core (which stays once started).
    def extra(threads: int) -> int:
        proc = subprocess.run(
            [sys.executable, "-c", SET_UP_THREADS, str(threads)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        return int(proc.stdout)

    cores = os.cpu_count() or 1
    assert extra(0) >= cores  # every core's thread
    assert extra(1) <= 1  # one thread, whose pool is gone with the set-up
