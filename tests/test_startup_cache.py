"""Loading rule files fast: the compiled-rule cache (same rules and refusals with and without
it, only under the user's cache directory, damaged entries ignored, off by flag and config
key) and the refusal of files that are plainly not EQL without parsing their TOML."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import imds_scan.rules as rules_mod
from imds_scan.rules import RuleFileError, load_rule_file, load_rules
from imds_scan.rules.cache import RuleCache, cache_dir

DATA = Path(__file__).parent / "data" / "rules"
EVENT = {  # a hit of imds_process_by_unusual_tool.toml
    "event": {"category": ["process"], "type": ["start"], "action": "exec"},
    "process": {
        "name": "curl",
        "executable": "/usr/bin/curl",
        "args": ["curl", "-s", "http://169.254.169.254/latest/meta-data/iam/security-credentials/"],
        "command_line": "curl -s http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "parent": {"name": "bash"},
    },
}

KUERY = """[metadata]
creation_date = "2020/01/01"

[rule]
author = ["Elastic"]
description = "A Lucene rule (KQL rules are loaded: tests/test_kql.py)."
language = "lucene"
name = "Some KQL rule"
rule_id = "kql-1"
severity = "low"
type = "query"
query = '''
process.name : "curl"
'''
"""
ML = """[rule]
name = "An anomaly job"
rule_id = "ml-1"
severity = "low"
type = "machine_learning"
machine_learning_job_id = "x"
"""
SEQUENCE = """[rule]
name = "A sequence"
rule_id = "seq-1"
severity = "low"
language = "eql"
type = "eql"
query = '''
sequence [process where true]
'''
"""


def rule_dir(tmp_path: Path) -> Path:
    """Rule files: the two test rules, refusals of several kinds, and one file twice."""
    rules = tmp_path / "rules"
    rules.mkdir()
    for path in DATA.glob("*.toml"):
        (rules / path.name).write_bytes(path.read_bytes())
    (rules / "kql.toml").write_text(KUERY, encoding="utf-8")
    (rules / "sub").mkdir()
    (rules / "sub" / "kql-copy.toml").write_text(KUERY.replace("kql-1", "kql-2"), "utf-8")
    (rules / "ml.toml").write_text(ML, encoding="utf-8")
    (rules / "seq.toml").write_text(SEQUENCE, encoding="utf-8")
    (rules / "broken.toml").write_text("[rule\nname = 1\n", encoding="utf-8")
    return rules


def entries() -> list[Path]:
    directory = cache_dir()
    assert directory is not None
    return sorted(Path(directory).glob("*.json")) if os.path.isdir(directory) else []


def test_the_cache_gives_the_rules_and_refusals_of_a_fresh_compile(tmp_path: Path) -> None:
    rules = str(rule_dir(tmp_path))
    fresh = load_rules([rules, "default"], skip_unsupported=True, cache=False)
    assert entries() == []  # cache=False writes nothing
    first = load_rules([rules, "default"], skip_unsupported=True)
    stored = entries()
    assert len(stored) == 8  # 7 files (every refusal too) and the bundled rule
    second = load_rules([rules, "default"], skip_unsupported=True)
    assert fresh == first == second
    assert len(second[0]) == 3 and len(second[1]) == 5
    # The same content at another path: the entry is shared, the messages name each path.
    assert any("sub/kql-copy.toml: language 'lucene'" in w for w in second[1])


def test_an_entry_is_used_when_present(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rules = str(rule_dir(tmp_path))
    expected = load_rules([rules], skip_unsupported=True)

    def no_parse(text: str, source: str) -> None:
        raise AssertionError("parsed although cached")

    monkeypatch.setattr(rules_mod, "parse_rule_text", no_parse)
    assert load_rules([rules], skip_unsupported=True) == expected


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],  # cut short
        lambda data: data.replace(b'"', b"'", 1),  # a changed byte: the checksum differs
        lambda data: b"",
        lambda data: b"\xff\xfe garbage",
    ],
)
def test_a_damaged_entry_is_ignored_and_rewritten(tmp_path: Path, damage) -> None:  # type: ignore[no-untyped-def]
    rules = str(rule_dir(tmp_path))
    expected = load_rules([rules], skip_unsupported=True, cache=False)
    load_rules([rules], skip_unsupported=True)
    for path in entries():
        path.write_bytes(damage(path.read_bytes()))
    assert load_rules([rules], skip_unsupported=True) == expected
    cache = RuleCache()
    assert all(cache.get(path.stem) is not None for path in entries())


def test_an_entry_of_another_shape_is_ignored(tmp_path: Path) -> None:
    """A well-formed entry (right checksum) whose content is not a rule is not trusted."""
    rules = str(rule_dir(tmp_path))
    expected = load_rules([rules], skip_unsupported=True, cache=False)
    load_rules([rules], skip_unsupported=True)
    cache = RuleCache()
    for path in entries():
        payload = cache.get(path.stem)
        assert payload is not None
        if "rule" in payload:
            payload["rule"]["ir"] = ["not", "an", "object"]
        else:
            payload = {"refused": 42}
        cache.put(path.stem, {k: v for k, v in payload.items() if k != "key"})
    assert load_rules([rules], skip_unsupported=True) == expected
    # An entry stored under another file's name is not taken for it either.
    names = [p.stem for p in entries()]
    (Path(cache_dir() or "") / f"{names[0]}.json").write_bytes(
        (Path(cache_dir() or "") / f"{names[1]}.json").read_bytes()
    )
    assert load_rules([rules], skip_unsupported=True) == expected


def test_an_edited_file_is_compiled_again(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    text = (DATA / "imds_process_by_unusual_tool.toml").read_text("utf-8")
    path.write_text(text, encoding="utf-8")
    before = load_rule_file(path, cache=RuleCache())
    severity = tomllib.loads(text)["rule"]["severity"]
    other = "critical" if severity != "critical" else "low"
    path.write_text(text.replace(f'severity = "{severity}"', f'severity = "{other}"'), "utf-8")
    after = load_rule_file(path, cache=RuleCache())
    assert (before.severity, after.severity) == (severity, other)


def test_the_cache_lives_only_under_the_users_cache_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = rule_dir(tmp_path)
    before = sorted(rules.rglob("*"))
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # ignored: not absolute
    monkeypatch.chdir(rules)
    load_rules(["."], skip_unsupported=True)
    assert cache_dir() == str(home / ".cache" / "imds-scan" / "rules")
    assert len(list((home / ".cache" / "imds-scan" / "rules").glob("*.json"))) == 7
    assert sorted(rules.rglob("*")) == before  # nothing written beside the rule files
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == str(tmp_path / "xdg" / "imds-scan" / "rules")


def test_an_unwritable_cache_is_no_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory", encoding="utf-8")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    rules = str(rule_dir(tmp_path))
    assert load_rules([rules], skip_unsupported=True) == load_rules(
        [rules], skip_unsupported=True, cache=False
    )


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imds_scan", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


@pytest.mark.parametrize("how", ["flag", "config"])
def test_the_cache_is_turned_off_by_flag_and_config_key(tmp_path: Path, how: str) -> None:
    rules = rule_dir(tmp_path)
    events = tmp_path / "events.ndjson"
    events.write_text(json.dumps(EVENT) + "\n", encoding="utf-8")
    config = tmp_path / "c.toml"
    config.write_text("rule-cache = false\n", encoding="utf-8")
    off = ["--no-rule-cache"] if how == "flag" else ["--config", str(config)]
    args = [str(events), "--rule", str(rules), "--skip-unsupported-rules", "-f", "ndjson", "-q"]
    plain = run_cli(*args, *off, cwd=tmp_path)
    assert plain.returncode == 1, plain.stderr
    assert entries() == []
    cached = run_cli(*args, cwd=tmp_path)
    assert entries() != []
    again = run_cli(*args, cwd=tmp_path)
    assert plain.stdout == cached.stdout == again.stdout
    assert plain.stdout.count("\n") == 1
    # stderr differs only by the config line
    assert [ln for ln in plain.stderr.splitlines() if "config:" not in ln] == (
        again.stderr.splitlines()
    )


# ------------------------------------------------------------ refused without parsing


def fail_toml(monkeypatch: pytest.MonkeyPatch) -> None:
    def loads(text: str) -> None:
        raise AssertionError("TOML parsed")

    monkeypatch.setattr(tomllib, "loads", loads)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (KUERY, "language 'lucene' is not supported (Lucene query syntax is not supported)"),
        (
            ML,
            "rule type 'machine_learning' is not supported "
            "(it reads the anomalies of Elastic's machine learning jobs)",
        ),
        (
            KUERY.replace('"lucene"', '"esql"').replace('type = "query"', 'type = "esql"'),
            "language 'esql' is not supported (ES|QL is not supported)",
        ),
    ],
)
def test_a_file_that_is_plainly_not_eql_is_refused_unparsed(
    monkeypatch: pytest.MonkeyPatch, text: str, reason: str
) -> None:
    with pytest.raises(RuleFileError) as parsed:
        rules_mod.parse_rule_text(text, "x.toml")
    assert str(parsed.value) == f"x.toml: {reason}"
    fail_toml(monkeypatch)
    with pytest.raises(RuleFileError) as cheap:
        rules_mod.parse_rule_text(text, "x.toml")
    assert str(cheap.value) == str(parsed.value)


@pytest.mark.parametrize(
    "text",
    [
        KUERY.replace("A Lucene rule", "Unlike the EQL rule"),  # "eql" somewhere: parsed
        KUERY.replace("A Lucene rule", "\\u0041 Lucene rule"),  # an escape could spell eql
        KUERY.replace('language = "lucene"', 'language = "e\\u0071l"'),
        KUERY.replace("[rule]", "[rule]\n[other]"),  # the line is not in [rule]
        KUERY + '\n[rule.x]\nlanguage = "lucene"\n',  # twice
        KUERY.replace('language = "lucene"', "language = 'lucene'"),  # another form
        KUERY.replace('language = "lucene"', '"language" = "lucene"'),
        KUERY.replace('language = "lucene"', 'language = "kuery"'),  # KQL: parsed
    ],
)
def test_other_files_are_parsed(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    fail_toml(monkeypatch)
    with pytest.raises(AssertionError, match="TOML parsed"):
        rules_mod.parse_rule_text(text, "x.toml")


def test_the_key_covers_the_compiler_and_its_data() -> None:
    """Every file the compiler reads is part of the key (a changed one, even without a new
    version, never reads an older compiler's entries)."""
    from imds_scan.rules import cache as cache_mod

    package = Path(cache_mod._PACKAGE)
    for name in cache_mod._COMPILER_FILES:
        assert (package / name).is_file(), name
    for needed in ("eql.py", "rules/__init__.py", "reference/endpoint.py", "spec/endpoints.toml"):
        assert needed in cache_mod._COMPILER_FILES
    assert (package / "spec" / "endpoints.toml").read_bytes() in cache_mod._compiler()


# ------------------------------------------------------------ prefilter literals


def many_rules(count: int) -> list[rules_mod.Rule]:
    """Rules enough for their prefilter literals to be cached; some draw a warning."""
    queries = [f'process where process.name == "tool-{i}"' for i in range(count - 2)]
    queries += ['process where process.name == "ab"', "process where process.pid > 1"]
    return [
        rules_mod.load_rule(q, rule_id=f"r-{i}", name=f"R{i}", severity="low", source="x")
        for i, q in enumerate(queries)
    ]


class CountingScanner:
    """The binding's Scanner, counting the rules whose literals are looked for."""

    from imds_scan._engine import Scanner as real

    made = 0

    @staticmethod
    def needles_each(rules: list[str], threads: int = 0) -> list[list[str] | None]:
        CountingScanner.made += len(rules)
        return CountingScanner.real.needles_each(rules, threads)


def test_many_rules_take_their_literals_from_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    from imds_scan import _engine
    from imds_scan.rules.prefilter import CACHE_NEEDLES_FROM, prefilter_warnings

    rules = many_rules(CACHE_NEEDLES_FROM + 3)
    fresh = prefilter_warnings(rules, cache=False)
    assert entries() == []  # cache=False writes nothing
    assert len(fresh) == 2  # "ab" is short, pid > 1 has no literal
    monkeypatch.setattr(_engine, "Scanner", CountingScanner)
    assert prefilter_warnings(rules) == fresh
    assert CountingScanner.made == len(rules)  # found, then stored
    (stored,) = entries()
    assert stored.name.startswith("needles-")
    CountingScanner.made = 0
    assert prefilter_warnings(rules) == fresh
    assert CountingScanner.made == 0  # from the cache
    # Other rules, or a damaged entry: found again.
    assert prefilter_warnings(rules[1:]) == [w for w in fresh if "(r-0)" not in w]
    assert CountingScanner.made == len(rules) - 1
    CountingScanner.made = 0
    cache = RuleCache()
    cache.put(stored.stem, {"needles": [["x"]]})
    assert prefilter_warnings(rules) == fresh
    assert CountingScanner.made == len(rules)


def test_the_literals_key_names_the_engine_build(monkeypatch: pytest.MonkeyPatch) -> None:
    from imds_scan import _engine
    from imds_scan.rules.cache import needles_key

    forms = ['{"a": 1}', '{"b": 2}']
    first = needles_key(forms)
    assert needles_key(forms) == first
    assert needles_key(forms[:1]) != first
    assert needles_key(['{"a": 1}{"b": 2}']) != first  # the forms are kept apart
    monkeypatch.setattr(_engine, "__version__", "another")
    assert needles_key(forms) != first


def test_few_rules_keep_no_literals_in_the_cache() -> None:
    from imds_scan.rules.prefilter import CACHE_NEEDLES_FROM, prefilter_warnings

    assert prefilter_warnings(many_rules(CACHE_NEEDLES_FROM - 1)) != []
    assert entries() == []


def test_the_bundled_rules_key_follows_the_compiler_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bundled rule's entry is named from the compiler files' sizes and modification
    times (a plain scan does not read them): a file edited in place names another entry."""
    from imds_scan.rules import cache as cache_mod

    package = tmp_path / "package"
    for name in cache_mod._COMPILER_FILES:
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_bytes((Path(cache_mod._PACKAGE) / name).read_bytes())
    monkeypatch.setattr(cache_mod, "_PACKAGE", str(package))

    def key() -> str:
        cache_mod._compiler_stamp.cache_clear()
        return cache_mod.bundled_key(b"rule")

    first = key()
    assert key() == first
    eql = package / "eql.py"
    before = eql.stat()
    eql.write_bytes(eql.read_bytes().replace(b"def ", b"def_", 1))  # the same size
    os.utime(eql, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    assert key() != first
    os.utime(eql, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert key() == first  # what Python's bytecode cache would trust too
    assert cache_mod.bundled_key(b"rule", b"x") != first
    eql.unlink()
    assert key() != first
    cache_mod._compiler_stamp.cache_clear()
