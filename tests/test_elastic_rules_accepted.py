"""Every active EQL rule of Elastic's detection-rules, at the commit that bench/elastic_rules.py
pins, is accepted: a single-event rule compiles and both engines load its IR; a sequence or
sample compiles to the IR of spec/sequences.md, prints back to the same IR, and both engines
load each of its stages as a single-event rule.

The rules are test data, fetched for tests and benchmarks, never by imds-scan at run time.
Where they are found, in this order:

- ``IMDS_SCAN_ELASTIC_RULES=DIR``: a checkout of elastic/detection-rules at the pinned commit,
  its ``rules/`` directory, or a directory holding ``detection-rules-COMMIT/rules`` (such as
  ``bench/data``); ``IMDS_SCAN_ELASTIC_RULES=fetch`` fetches them the way
  ``python3 bench/elastic_rules.py`` does, into ``bench/data/`` (network access needed);
- else ``bench/data/detection-rules-COMMIT/rules``, where ``python3 bench/elastic_rules.py``
  keeps them.

Without any of them the test is skipped, saying so. A rule is *single-event* when its
``[rule]`` is EQL (``language`` or ``type``) and its query is not a ``sequence`` or ``sample``;
*active* when it is not under ``rules/_deprecated/``; a *sequence* or *sample* rule is an
EQL rule whose query is one.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tomllib
from pathlib import Path

import pytest

from imds_scan._engine import Scanner
from imds_scan.reference.eval import CompiledRule
from imds_scan.rules import RuleFileError, load_rule_file

ROOT = Path(__file__).resolve().parent.parent
ENV = "IMDS_SCAN_ELASTIC_RULES"
# Active single-event EQL rules at the pinned commit (a check that the right tree was found).
EXPECTED = 757
# Active sequence and sample rules there (and deprecated sequences, which are accepted too).
EXPECTED_JOINED = {"sequence": 194, "sample": 3}
EXPECTED_DEPRECATED_SEQUENCES = 19


def _elastic_rules() -> tuple[object, str]:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import elastic_rules
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return elastic_rules, str(elastic_rules.COMMIT)


def rules_dir() -> Path:
    """The ``rules/`` directory of detection-rules at the pinned commit, or a skip."""
    module, commit = _elastic_rules()
    given = os.environ.get(ENV, "")
    if given == "fetch":
        try:
            return Path(module.rules_dir(commit))  # type: ignore[attr-defined]
        except SystemExit as exc:
            pytest.skip(f"{ENV}=fetch: {exc}")
    candidates = []
    if given:
        base = Path(given).expanduser()
        candidates = [base / f"detection-rules-{commit}" / "rules", base / "rules", base]
    else:
        candidates = [ROOT / "bench" / "data" / f"detection-rules-{commit}" / "rules"]
    for path in candidates:
        if path.is_dir() and any(path.rglob("*.toml")):
            return path
    pytest.skip(
        f"elastic/detection-rules at {commit} not found "
        f"({', '.join(map(str, candidates))}): run `python3 bench/elastic_rules.py`, or set "
        f"{ENV} to a local copy (or to `fetch`)"
    )


def _query_kind(query: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", query, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text).lstrip()
    word = re.match(r"[A-Za-z_]+", text)
    return word.group(0).lower() if word else ""


def eql_rules(rules: Path, deprecated: bool = False) -> list[tuple[Path, str]]:
    """(path, query kind: "sequence", "sample" or another word) of every EQL rule file, the
    active ones (or the deprecated ones)."""
    out = []
    for path in sorted(rules.rglob("*.toml")):
        if ("_deprecated" in path.relative_to(rules).parts) != deprecated:
            continue
        try:
            rule = tomllib.loads(path.read_text("utf-8")).get("rule", {})
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            continue
        kind = {str(rule.get("language", "")).lower(), str(rule.get("type", "")).lower()}
        if "eql" in kind:
            out.append((path, _query_kind(str(rule.get("query", "")))))
    return out


def single_event_rules(rules: Path) -> list[Path]:
    return [path for path, kind in eql_rules(rules) if kind not in ("sequence", "sample")]


def test_every_single_event_elastic_rule_is_accepted_by_both_engines() -> None:
    rules = rules_dir()
    paths = single_event_rules(rules)
    assert len(paths) == EXPECTED, f"{rules}: not detection-rules at the pinned commit?"
    refused: list[str] = []
    irs: list[str] = []
    for path in paths:
        try:
            rule = load_rule_file(path)
        except RuleFileError as exc:
            refused.append(str(exc))
            continue
        try:
            CompiledRule(rule.ir)
            Scanner([json.dumps(rule.ir)])
        except Exception as exc:  # a refusal (ValueError) or a crash: list them all
            refused.append(f"{path}: an engine refuses the IR: {type(exc).__name__}: {exc}")
            continue
        irs.append(json.dumps(rule.ir))
    summary = "\n".join(refused[:40])
    assert refused == [], f"{len(refused)} of {len(paths)} refused:\n{summary}"
    # All of them in one engine, as `--rule DIR` loads them (one shared rule gate).
    Scanner(irs).needles()


def test_every_sequence_and_sample_elastic_rule_is_accepted() -> None:
    from imds_scan import ir_schema
    from imds_scan.eql import compile_rule, format_rule, rule_options
    from imds_scan.rules.prefilter import event_form

    rules = rules_dir()
    joined = [(p, k) for p, k in eql_rules(rules) if k in ("sequence", "sample")]
    counts = {k: sum(1 for _, kind in joined if kind == k) for k in EXPECTED_JOINED}
    assert counts == EXPECTED_JOINED, f"{rules}: not detection-rules at the pinned commit?"
    deprecated = [p for p, k in eql_rules(rules, deprecated=True) if k == "sequence"]
    assert len(deprecated) == EXPECTED_DEPRECATED_SEQUENCES
    refused: list[str] = []
    stages: list[str] = []
    for path in [p for p, _ in joined] + deprecated:
        try:
            rule = load_rule_file(path)
            ir_schema.check(rule.ir)
        except (RuleFileError, ValueError) as exc:
            refused.append(str(exc))
            continue
        again = compile_rule(
            format_rule(rule.ir),
            name=rule.name,
            rule_id=rule.id,
            severity=rule.severity,
            **rule_options(rule.ir),
        )
        if again != rule.ir:
            refused.append(f"{path}: format_rule does not give the IR back")
        as_event = event_form(rule.ir)
        try:
            CompiledRule(as_event)
            Scanner([json.dumps(as_event)])
        except Exception as exc:  # a refusal (ValueError) or a crash: list them all
            refused.append(f"{path}: an engine refuses a stage: {type(exc).__name__}: {exc}")
            continue
        stages.append(json.dumps(as_event))
    summary = "\n".join(refused[:40])
    assert refused == [], f"{len(refused)} refused:\n{summary}"
    Scanner(stages).needles()
