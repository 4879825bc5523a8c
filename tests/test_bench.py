"""The benchmark corpus generator (bench/gen_corpus.py, the package bench/corpus): the same
arguments give the same bytes, the committed sample is what its documented command writes, and
the noisy corpus's noise lines hold the rule's literals without matching; the Elastic rule
sweep's subsets (bench/elastic_rules.py)."""

from __future__ import annotations

import gzip
import re
import shlex
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = ROOT / "bench" / "gen_corpus.py"
SAMPLE = ROOT / "bench" / "sample" / "ecs-sample.ndjson"


def bench_harness() -> Any:
    """bench/harness.py, imported from its folder (it is no package)."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import harness
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return harness


def generate(*args: str | Path) -> None:
    subprocess.run(
        [sys.executable, str(GENERATOR), *map(str, args), "--quiet"],
        check=True,
        capture_output=True,
        timeout=120,
    )


def test_gzip_corpus_is_the_same_bytes_for_the_same_arguments(tmp_path: Path) -> None:
    args = ("--size", "300K", "--seed", "5", "--tp-rate", "0.02")
    generate(*args, "--out", tmp_path / "a.ndjson")
    generate(*args, "--format", "gz", "--out", tmp_path / "b.ndjson.gz")
    generate(*args, "--format", "gz", "--out", tmp_path / "c.ndjson.gz")
    first, second = (tmp_path / "b.ndjson.gz").read_bytes(), (tmp_path / "c.ndjson.gz").read_bytes()
    # No file name (FNAME flag, 0x08) and no time in the header: nothing but the arguments.
    assert first[3] & 0x08 == 0 and first[4:8] == bytes(4)
    assert first == second
    assert gzip.decompress(first) == (tmp_path / "a.ndjson").read_bytes()


def test_sample_is_what_its_documented_command_writes(tmp_path: Path) -> None:
    readme = (ROOT / "bench" / "README.md").read_text()
    block = re.search(r"\*\*Committed sample\.\*\*.*?```sh\n(.*?)```", readme, re.S)
    assert block is not None
    argv = shlex.split(block.group(1).replace("\\\n", " "))
    assert argv[:2] == ["python3", "bench/gen_corpus.py"]
    out = argv.index("--out") + 1
    assert argv[out] == "bench/sample/ecs-sample.ndjson"
    argv[out] = str(tmp_path / "sample.ndjson")
    generate(*argv[2:])
    assert (tmp_path / "sample.ndjson").read_bytes() == SAMPLE.read_bytes()
    written = tmp_path / "sample.ndjson.expected.json"
    assert written.read_bytes() == Path(f"{SAMPLE}.expected.json").read_bytes()


def test_noise_lines_carry_the_rules_literals_and_match_in_neither_engine(tmp_path: Path) -> None:
    import json

    from imds_scan import default_rules
    from imds_scan._engine import Scanner

    out = tmp_path / "noise.ndjson"
    generate(
        *("--size", "200K", "--seed", "4", "--tp-rate", "0", "--near-miss-rate", "0"),
        *("--noise-rate", "0.3", "--out", out),
    )
    expected = json.loads(out.with_name(out.name + ".expected.json").read_text())
    (rule,) = default_rules()
    needles = [n.lower() for n in Scanner([json.dumps(rule.ir)]).needles() or ()]
    assert needles
    lines = out.read_text().splitlines()
    noisy = [line for line in lines if any(n in line.lower() for n in needles)]
    # Benign lines hold no needle, so the lines that do are the noise lines, every variant.
    assert len(noisy) == expected["noise_lines"] > 0.2 * len(lines)
    assert expected["hits"] == 0 and sorted(expected["noise_by_variant"]) == [
        "agent_connection",
        "gce_dns_lookup",
        "health_check_end",
    ]
    for engine in ("rust", "python"):
        proc = subprocess.run(
            [sys.executable, "-m", "imds_scan", "--engine", engine, "-f", "ndjson", "-q", out],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert (proc.returncode, proc.stdout) == (0, ""), (engine, proc.stderr)


RULE_TOML = """[rule]
name = "r {id}"
rule_id = "{id}"
severity = "low"
language = "{lang}"
query = '''
process where process.name == "{id}"
'''
"""


def test_elastic_rule_sweep_takes_the_first_accepted_rules_by_rule_id(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import elastic_rules
    finally:
        sys.path.remove(str(ROOT / "bench"))
    # A tarball laid out as GitHub's codeload serves it: one top directory, then rules/.
    src = tmp_path / "detection-rules-abc" / "rules"
    (src / "linux").mkdir(parents=True)
    (src / "windows").mkdir()
    for folder, rid, lang in (
        ("linux", "c-3", "eql"),
        ("windows", "a-1", "eql"),
        ("windows", "b-2", "kuery"),  # refused: not EQL
        ("linux", "d-4", "eql"),
    ):
        (src / folder / f"{rid}.toml").write_text(RULE_TOML.format(id=rid, lang=lang))
    # A sequence rule: in the sweep, not in the single-event set (issue 15's own measure).
    sequence = RULE_TOML.format(id="e-5", lang="eql").replace(
        'process where process.name == "e-5"',
        "sequence by host.id [process where true] [network where true]",
    )
    (src / "linux" / "e-5.toml").write_text(sequence)
    (tmp_path / "README.md").write_text("outside rules/: not extracted")
    tarball = tmp_path / "dr.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(src.parent, arcname="detection-rules-abc")
    cache = tmp_path / "cache"
    cache.mkdir()
    assert elastic_rules._fetch_tarball("abc", cache, url=tarball.as_uri())
    assert sorted(p.name for p in (cache / "rules").rglob("*.toml")) == [
        "a-1.toml",
        "b-2.toml",
        "c-3.toml",
        "d-4.toml",
        "e-5.toml",
    ]
    info = elastic_rules.prepare("abc", tmp_path / "data", cache, sizes=("1", "2", "all"))
    assert (info["files"], info["accepted"], info["single_event"]) == (5, 4, 3)
    subsets = info["subsets"]
    assert isinstance(subsets, dict)
    chosen = {k: sorted(p.name for p in Path(v["dir"]).iterdir()) for k, v in subsets.items()}
    assert chosen == {
        "1": ["0000-a-1.toml"],
        "2": ["0000-a-1.toml", "0001-c-3.toml"],
        "all": ["0000-a-1.toml", "0001-c-3.toml", "0002-d-4.toml", "0003-e-5.toml"],
        "single": ["0000-a-1.toml", "0001-c-3.toml", "0002-d-4.toml"],
    }


def test_harness_reports_the_issue_targets_as_pass_or_fail() -> None:
    harness = bench_harness()

    def row(name: str, work_s: float, hits: int, rss_mb: float = 30.0) -> dict[str, object]:
        return {"name": name, "work_s": work_s, "wall_s": work_s, "mb_s": 1073.7 / work_s,
                "hits": hits, "rss_mb": rss_mb}  # fmt: skip

    base = harness.BASE_CLI
    rows = [
        row(base, 0.5, 483),
        row(harness.HS_2, 0.8, 483),
        row(f"imds-scan CLI, 2 threads, {harness.NOISY}", 0.6, 504),
        row(f"{harness.HS_2}, {harness.NOISY}", 3.0, 504),
        row(f"{base}, 715 Elastic rules (all accepted)", 2.5, 20256),
        row(f"{base}, broad rule -> ndjson file", 1.2, 277004, rss_mb=250),
        row(f"{base}, default rule -> ndjson file", 0.5, 483),
    ]
    meta = {"noisy_corpus": {"name": "n.ndjson", "noise_lines": 9}, "elastic_rules": {}}
    text = "\n".join(harness.target_lines(rows, meta))
    assert "1.60x (target >= 1.5x" in text  # the peer's time over the CLI's
    assert "CLI, 2 threads: 1.79 GB/s (504 hits; target >= 2.0 GB/s): **fail**" in text
    assert "(target: ahead, > 1x): **pass**" in text
    assert "5.0x, 429 MB/s, 20256 hits (target <= 4x): **fail**" in text
    # Within 3x of the time, but above 200 MB peak RSS.
    assert "250 MB peak RSS, 277004 hits" in text and "2.4x the time" in text
    assert text.rstrip().endswith("**fail**")


def test_harness_reports_the_sequence_target() -> None:
    """Issue 17's case: the sequence rule's speed over the single-event rule's, and memory."""
    harness = bench_harness()

    def rows(seq_s: float) -> list[dict[str, object]]:
        return [
            {"name": harness.SEQ_ROW, "work_s": seq_s, "hits": 3, "rss_mb": 41.0},
            {"name": harness.SEQ_BASE_ROW, "work_s": 0.5, "hits": 483, "rss_mb": 30.0},
        ]

    text = "\n".join(harness.target_lines(rows(0.9), {}))
    assert "Sequence rule (same literals): 0.90 s, 41 MB peak RSS, 3 sequences" in text
    assert "0.56x its speed (target >= 0.5x): **pass**" in text
    assert "0.42x its speed (target >= 0.5x): **fail**" in "\n".join(
        harness.target_lines(rows(1.2), {})
    )
    broad = [
        {"name": harness.BROAD_SEQ_ROW, "work_s": 4.0, "hits": 900, "rss_mb": 90.0},
        {"name": harness.BROAD_SEQ_BASE_ROW, "work_s": 2.0, "hits": 9000, "rss_mb": 60.0},
    ]
    text = "\n".join(harness.target_lines(broad, {}))
    assert "(broad stages): 4.00 s, 90 MB peak RSS, 900 sequences" in text
    assert "2.00 s, 60 MB, 9000 hits: 0.50x its speed (no target)" in text
    # The single-event rules hold the sequences' two stage conditions.
    from imds_scan.eql import compile_rule

    for query in (harness.SINGLE_QUERY, harness.BROAD_SINGLE_QUERY):
        assert len(compile_rule(query, name="single")["branches"]) == 2


def test_kql_sets_hold_the_accepted_active_kuery_rules_and_the_imds_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 19's benchmark sets (bench/elastic_rules.py): active KQL rule files only (not
    ``_deprecated/``, not EQL), those imds-scan accepts sorted by rule_id, and the IMDS
    new_terms rule alone, or the reasons when imds-scan refuses them."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import elastic_rules
    finally:
        sys.path.remove(str(ROOT / "bench"))
    import imds_scan.rules as rules_mod

    rules = tmp_path / "rules"
    for folder, rid, lang, name in (
        ("linux", "b-2", "kuery", "r b-2"),
        ("cloud", "a-1", "kuery", elastic_rules.IMDS_RULE_NAME),
        ("linux", "c-3", "eql", "r c-3"),  # EQL: not a KQL rule
        ("_deprecated", "d-4", "kuery", "r d-4"),  # not active
        ("linux", "e-5", "kuery", "r e-5 refused"),
    ):
        (rules / folder).mkdir(parents=True, exist_ok=True)
        text = RULE_TOML.format(id=rid, lang=lang).replace(f'name = "r {rid}"', f'name = "{name}"')
        (rules / folder / f"{rid}.toml").write_text(text)

    def fake_load(path: Path) -> rules_mod.Rule:
        text = Path(path).read_text()
        if "refused" in text or refuse_all:
            raise rules_mod.RuleFileError(f"{path}: no\nsecond line")
        rid = text.split('rule_id = "')[1].split('"')[0]
        return rules_mod.Rule(rid, rid, "low", "q", {})

    monkeypatch.setattr(rules_mod, "load_rule_file", fake_load)
    refuse_all = False
    info = elastic_rules.kql_sets(rules, tmp_path / "sets")
    assert (info["files"], info["accepted"], info["first_refusal"]) == (3, 2, None)
    assert sorted(p.name for p in Path(str(info["dir"])).iterdir()) == [
        "0000-a-1.toml",
        "0001-b-2.toml",
    ]
    imds = info["imds"]
    assert isinstance(imds, dict) and imds["accepted"] and imds["reason"] is None
    assert [p.name for p in Path(imds["dir"]).iterdir()] == ["0000-a-1.toml"]

    refuse_all = True
    info = elastic_rules.kql_sets(rules, tmp_path / "sets")
    assert (info["files"], info["accepted"]) == (3, 0)
    assert list(Path(str(info["dir"])).iterdir()) == []
    assert str(info["first_refusal"]).endswith(": no")  # the reason's first line
    imds = info["imds"]
    assert isinstance(imds, dict) and not imds["accepted"] and "dir" not in imds
    assert str(imds["reason"]).endswith("a-1.toml: no")


def test_harness_reports_the_kql_cases_against_the_default_rule() -> None:
    """Issue 19's rows: each KQL row's time as a ratio to the default rule's row, with hits;
    `--only KQL` keeps the default rule's row for the ratio."""
    harness = bench_harness()

    base = harness.BASE_CLI
    rows = [
        {"name": base, "work_s": 0.5, "mb_s": 2000.0, "hits": 483, "rss_mb": 30.0},
        {"name": harness.KQL_ALL_ROW, "work_s": 3.0, "mb_s": 333.3, "hits": 9001, "rss_mb": 120.0},
        {"name": harness.KQL_IMDS_ROW, "work_s": 0.6, "mb_s": 1666.7, "hits": 7, "rss_mb": 35.0},
    ]
    meta = {"kql": {"commit": "abc", "files": 674, "accepted": 650}}
    text = "\n".join(harness.target_lines(rows, meta))
    assert "650 of 674 active KQL rule files accepted" in text
    assert "all accepted Elastic KQL rules: 3.00 s, 6.0x, 333 MB/s, 120 MB peak RSS, 9001" in text
    assert "Elastic IMDS new_terms KQL rule alone: 0.60 s, 1.2x" in text and "7 hits" in text
    assert harness.selected(base, "KQL") and harness.selected(harness.KQL_IMDS_ROW, "KQL")
    assert not harness.selected(base, "sequence")


def test_harness_compiles_stale_bytecode_before_timing(tmp_path: Path) -> None:
    # A source tree run with PYTHONDONTWRITEBYTECODE would compile its changed modules on
    # every CLI row; the harness brings the bytecode up to date first, as pip install does.
    harness = bench_harness()
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "mod.py").write_text("X = 1\n")
    notes: list[str] = []
    harness.fresh_bytecode(notes, package)
    assert [p.name.split(".")[0] for p in (package / "__pycache__").iterdir()] == ["mod"]
    assert notes == [f"imds_scan's bytecode ({package}) brought up to date before timing"]


def test_harness_times_each_round_into_a_fresh_output_file(tmp_path: Path) -> None:
    # Truncating the last round's large output is the file system's work, charged to the run
    # that opens it: each round starts without it.
    harness = bench_harness()
    dest = tmp_path / "out.ndjson"
    dest.write_text("the last round's output\n")
    case = harness.Case(
        "probe",
        "imds-scan",
        ["/bin/sh", "-c", 'test ! -e "$1" && echo hit > "$1"', "sh", str(dest)],
        dest,
        None,
        "1",
        harness._file_lines(dest),
        outputs=(dest,),
    )
    work = tmp_path / "work"
    work.mkdir()
    for _ in range(2):
        result = harness.run_once(case, work)
        assert "error" not in result and result["hits"] == 1
