"""The TOML config: every option has a key (and only options do), errors name the file and the
key, and allowlists remove exactly the events they name, on both engines, without changing
``matched`` for the rest."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from conftest import ENGINES, hit_keys
from imds_scan.cli import app
from imds_scan.config import (
    ALLOWLIST_KEYS,
    Allowlist,
    ConfigError,
    condition_allowlist,
    load_config,
    option_keys,
    parse_allowlist,
    parse_config,
)
from imds_scan.eql import compile_rule, format_rule, inline_allowlist
from imds_scan.reference.event import field_values, load_event
from imds_scan.reference.ip import in_cidr, parse_cidr, parse_ip
from imds_scan.reference.wildcard import ascii_fold, wildcard_regex
from imds_scan.rules import default_rules, load_rules

COMMAND = typer.main.get_command(app)
DATA = Path(__file__).parent / "data" / "rules"


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imds_scan", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


# ---------------------------------------------------------------- options ↔ keys

# Values tried, in order, for an option whose type the test does not know: the first one the
# option accepts is used. An option that takes none of them needs a new candidate here.
CANDIDATES: list[Any] = [True, 2, "ndjson", "rust", "7d", "x.toml", ["x"], ["a.b=long"]]


def _sample(key: str) -> tuple[Any, dict[str, Any]]:
    for value in CANDIDATES:
        try:
            return value, parse_config(
                f"{key} = {json.dumps(value)}\n", "c.toml", COMMAND
            ).default_map
        except ConfigError:
            continue
    raise AssertionError(f"no candidate value is accepted for {key}")


def test_every_option_has_a_config_key_and_back() -> None:
    keys = option_keys(COMMAND)
    for param in COMMAND.params:
        if {"--config", "--no-config", "--version"} & set(getattr(param, "opts", ())):
            assert not {k for k, p in keys.items() if p is param}
            continue
        longs = [o[2:] for o in param.opts if o.startswith("--")] or [param.name]
        for name in longs:
            assert keys[name] is param and keys[name.replace("-", "_")] is param
            value, default_map = _sample(name)
            assert param.name in default_map, name
            many = getattr(param, "multiple", False) or param.nargs == -1
            expected = [value] if many and not isinstance(value, list) else value
            assert default_map[param.name] == expected
    # The reverse: every key is an option (or an argument) of the command.
    names = {p.name for p in COMMAND.params}
    assert {p.name for p in keys.values()} <= names


def test_config_sets_options_and_the_command_line_wins(tmp_path: Path) -> None:
    events = tmp_path / "e.ndjson"
    hit = {"event": {"category": "network"}, "destination": {"ip": "169.254.169.254"}}
    other = {**hit, "host": {"name": "canary-1"}}
    events.write_text(json.dumps(hit) + "\n" + json.dumps(other) + "\n")
    (tmp_path / "imds-scan.toml").write_text(
        'format = "ndjson"\nexclude_host = ["canary-*"]\nengine = "python"\nquiet = true\n'
    )
    # ./imds-scan.toml is read when named, and said so on stderr (even with quiet = true).
    proc = run(events, "--config", "imds-scan.toml", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert [json.loads(x)["line"] for x in proc.stdout.splitlines()] == [1]
    assert proc.stderr == (
        "imds-scan: config: imds-scan.toml sets format, exclude_host, engine, quiet\n"
    )
    # The command line overrides a key.
    proc = run(
        events,
        "--config",
        "imds-scan.toml",
        "--exclude-host",
        "nothing",
        "-f",
        "json",
        cwd=tmp_path,
    )
    assert [r["line"] for r in json.loads(proc.stdout)] == [1, 2]
    # --config names another file; paths can come from the config too.
    other_config = tmp_path / "other.toml"
    other_config.write_text(f'format = "ndjson"\npaths = [{json.dumps(str(events))}]\n')
    proc = run("--config", other_config, "-q")
    assert proc.returncode == 1 and len(proc.stdout.splitlines()) == 2, proc.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('frmat = "csv"', "c.toml: unknown key 'frmat' (did you mean 'format'?)"),
        ('threads = "many"', "c.toml: threads: "),
        ("threads = true", "c.toml: threads: expected a value, found a boolean"),
        ("threads = -1", "c.toml: threads: "),
        ("threads = [1, 2]", "c.toml: threads: expected a single value, found an array"),
        ("quiet = 1", "c.toml: quiet: expected true or false, found 1"),
        ('format = "xml"', "c.toml: format: "),
        ("host = [1]", "c.toml: host[0]: expected a string, found an integer"),
        ('threads = "4"', "c.toml: threads: expected a number, found a string"),
        ("threads = 4.5", "c.toml: threads: expected an integer, found a float"),
        ("max-hits = 2.5", "c.toml: max-hits: expected an integer, found a float"),
        ("max_table_rows = 2.0", "c.toml: max_table_rows: expected an integer, found a float"),
        ("host = [{a = 1}]", "c.toml: host[0]: expected a value, found a table"),
        ('config = "x.toml"', "c.toml: config: cannot be set in a config file"),
        ('exclude-host = ["a"]\nexclude_host = ["b"]', "c.toml: exclude_host: already set as"),
        ("[allowlist]\nprocess.nme = ['x']", "c.toml: unknown key 'allowlist.process.nme'"),
        (
            '[allowlist]\n"process.name" = [1]',
            "c.toml: allowlist.process.name[0]: expected a string",
        ),
        ('[allowlist]\n"process.name" = ""', "c.toml: allowlist.process.name[0]: an empty glob"),
        (
            '[allowlist]\n"process.command_line" = ["curl *", "**"]',
            "c.toml: allowlist.process.command_line[1]: '**' matches every value",
        ),
        (
            '[allowlist]\n"destination.ip" = ["10.0.0.0/33"]',
            "c.toml: allowlist.destination.ip[0]: '10.0.0.0/33' is not an IP address or CIDR",
        ),
        (
            '[allowlist]\n"destination.ip" = ["169.254.169.254", "metadata"]',
            "c.toml: allowlist.destination.ip[1]: 'metadata' is not an IP address",
        ),
        (
            "[allowlist]\nconditions = ['user.name == ']",
            "c.toml: allowlist.conditions[0]:1:14: expected a literal",
        ),
        ("allowlist = 3", "c.toml: allowlist: expected a table"),
        ("[allowlist]\nrules = 3", "c.toml: allowlist.rules: expected a table of rule ids"),
        (
            '[allowlist.rules."imds-default"]\nuser.nam = ["x"]',
            "c.toml: unknown key 'allowlist.rules.\"imds-default\".user.nam'",
        ),
        ("threads = ", "c.toml: not valid TOML"),
    ],
)
def test_config_errors_name_file_and_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(text + "\n", "c.toml", COMMAND)
    assert message in str(err.value), str(err.value)


def test_cli_config_errors_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('threads = "x"\n')
    proc = run("--config", bad, "x.ndjson")
    assert proc.returncode == 2
    assert f"imds-scan: error: {bad}: threads: " in proc.stderr
    proc = run("--config", tmp_path / "missing.toml", "x.ndjson")
    assert proc.returncode == 2 and "missing.toml: cannot read" in proc.stderr
    (tmp_path / "imds-scan.toml").write_text("nope = 1\n")
    proc = run("--config", "imds-scan.toml", "x.ndjson", cwd=tmp_path)
    assert proc.returncode == 2 and "imds-scan.toml: unknown key 'nope'" in proc.stderr


def test_load_config_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('threads = 3\n[allowlist]\n"host.name" = ["a"]\n')
    loaded = load_config(path, COMMAND)
    assert loaded.default_map == {"threads": 3} and bool(loaded.allowlist)


# ---------------------------------------------------------------- allowlists

HOSTS = ["web-1"] * 8 + ["WEB-2", "build-7", "db-1", "db-12"]
USERS = ["root"] * 8 + ["svc_health", "SVC_HEALTH", "alice"]
NAMES = ["curl"] * 10 + ["Terraform", "terraform-provider-aws_v5", "python3", "PACKER", "packer2"]
PARENTS = ["bash"] * 10 + ["ansible-playbook", "chef-client", "sshd"]
EXECUTABLES = ["/usr/bin/curl"] * 10 + ["/opt/monitoring/bin/check", "/OPT/MONITORING/x", "/opt/x"]
COMMANDS = [
    "curl http://169.254.169.254/latest/meta-data/instance-id",
    "curl -s http://169.254.169.254/latest/meta-data/iam/security-credentials/",
] * 4 + ["check --imds http://169.254.169.254/latest/dynamic/instance-identity/document"]
DESTINATIONS = ["169.254.169.254"] * 8 + ["::ffff:a9fe:a9fe", "fd00:ec2::254"]


def _events() -> list[dict[str, Any]]:
    """Hits of the bundled rule (both branches), each attribute the allowlist names drawn on
    its own (sometimes missing, sometimes an array), so every entry excludes some events."""
    rnd = random.Random(5)

    def pick(values: list[str]) -> Any:
        roll = rnd.random()
        if roll < 0.08:
            return None
        if roll < 0.15:
            return [rnd.choice(values), rnd.choice(values)]
        return rnd.choice(values)

    events = []
    for i in range(300):
        proc = {
            "name": pick(NAMES),
            "parent": {"name": pick(PARENTS)},
            "executable": pick(EXECUTABLES),
            "command_line": rnd.choice(COMMANDS),
        }
        common = {"user": {"name": pick(USERS)}, "host.name": pick(HOSTS), "process": proc}
        if i % 2:
            events.append({"event": {"category": ["process"], "type": ["start"]}, **common})
        else:
            events.append(
                {"event": {"category": "network"}, "destination.ip": pick(DESTINATIONS), **common}
            )
    return events


ALLOWLIST_TOML = """
[allowlist]
"process.name" = ["terraform", "terraform-provider-*", "packer"]
process.parent.name = ["Ansible-Playbook"]
"process.executable" = ["/opt/monitoring/*"]
"user.name" = ["svc_health"]
conditions = ['host.name : "build-*" and process.name == "python3"']

[allowlist.rules."imds-default"]
"process.command_line" = ["*/latest/dynamic/instance-identity/*"]
"host.name" = ["db-?"]
"destination.ip" = ["fd00:ec2::/32", "10.0.0.0/8"]
"""


def _excluded(doc: dict[str, Any]) -> bool:
    """The allowlist above, written out plainly over the event (the test's own oracle)."""

    def values(path: str) -> list[str]:
        return list(field_values(doc, path.split(".")))

    def glob(path: str, patterns: list[str]) -> bool:
        return any(
            wildcard_regex(p).fullmatch(ascii_fold(v)) for v in values(path) for p in patterns
        )

    def cidr(path: str, blocks: list[str]) -> bool:
        parsed = [parse_cidr(b) for b in blocks]
        for v in values(path):
            address = parse_ip(v)
            if address is not None and any(in_cidr(address, b) for b in parsed if b):
                return True
        return False

    return (
        glob("process.name", ["terraform", "terraform-provider-*", "packer"])
        or glob("process.parent.name", ["Ansible-Playbook"])
        or glob("process.executable", ["/opt/monitoring/*"])
        or glob("user.name", ["svc_health"])
        or (glob("host.name", ["build-*"]) and "python3" in values("process.name"))
        or glob("process.command_line", ["*/latest/dynamic/instance-identity/*"])
        or glob("host.name", ["db-?"])
        or cidr("destination.ip", ["fd00:ec2::/32", "10.0.0.0/8"])
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_allowlist_removes_exactly_the_events_it_names(scan_events: Any, engine: str) -> None:
    events = _events()
    allowlist = parse_config(ALLOWLIST_TOML, "c.toml", COMMAND).allowlist
    plain = scan_events(events, engine, default_rules())
    tuned = scan_events(events, engine, allowlist.apply(default_rules()))
    kept = [h for h in plain.hits if not _excluded(load_event(h.event_text))]
    # The sample exercises the allowlist, and leaves hits of both branches.
    assert 50 < len(kept) < len(plain.hits) - 50
    assert {h.branch for h in kept} == {"network", "process"}
    # Exactly the hits the allowlist does not name remain, with the same `matched`.
    assert [(h.line, h.branch, h.matched) for h in tuned.hits] == [
        (h.line, h.branch, h.matched) for h in kept
    ]


def test_allowlist_runs_the_same_on_both_engines(scan_events: Any) -> None:
    rules = parse_config(ALLOWLIST_TOML, "c.toml", COMMAND).allowlist.apply(default_rules())
    events = _events()
    py = scan_events(events, "python", rules)
    rs = scan_events(events, "rust", rules)
    assert [k[1:] for k in hit_keys(rs.hits)] == [k[1:] for k in hit_keys(py.hits)]


def test_per_rule_allowlist_touches_only_its_rule(scan_events: Any) -> None:
    rules, _ = load_rules([str(DATA), "default"])
    allowlist = parse_allowlist({"rules": {"imds-default": {"process.name": ["curl"]}}}, "c.toml")
    tuned = allowlist.apply(rules)
    assert [r.ir for r in tuned[:2]] == [r.ir for r in rules[:2]]
    assert tuned[2].ir != rules[2].ir
    assert allowlist.unknown_rule_ids(rules) == []
    assert parse_allowlist({"rules": {"typo": {}}}, "c").unknown_rule_ids(rules) == ["typo"]


def test_allowlist_compiles_to_ordered_entries_and_prints_back() -> None:
    allowlist = parse_config(ALLOWLIST_TOML, "c.toml", COMMAND).allowlist
    (rule,) = allowlist.apply(default_rules())
    (seed,) = default_rules()
    # Branches untouched; one IR entry per value, labelled, in file order (global first).
    assert rule.ir["branches"] == seed.ir["branches"]
    assert len(rule.ir["allowlist"]) == len(rule.allowlist_labels) == 11
    assert rule.allowlist_labels[0] == 'c.toml: process.name "terraform"'
    assert rule.allowlist_labels[-1] == (
        'c.toml [allowlist.rules."imds-default"]: destination.ip "10.0.0.0/8"'
    )
    # Printed (and meant) as a last `and not (...)` of every branch.
    inlined = inline_allowlist(rule.ir)
    for tuned, plain in zip(inlined["branches"], seed.ir["branches"], strict=True):
        assert tuned["name"] == plain["name"]
        assert tuned["expr"]["args"][:-1] == plain["expr"]["args"]
        assert tuned["expr"]["args"][-1]["node"] == "not"
        exclusion = tuned["expr"]["args"][-1]["arg"]
        assert exclusion["node"] == "or" and len(exclusion["args"]) == 11
    text = format_rule(rule.ir)
    assert 'process.name in~ ("terraform")' in text
    assert 'process.name : "terraform-provider-*"' in text
    assert 'cidrMatch(destination.ip, "fd00:ec2::/32")' in text
    assert compile_rule(text, name=rule.name, rule_id=rule.id, severity=rule.severity) == inlined


EXAMPLE = Path(__file__).parents[1] / "examples" / "imds-scan.toml"


def _uncommented(text: str) -> str:
    """The example with its commented-out settings turned on (not its prose comments)."""
    setting = re.compile(r"^# (\s*)([\"'\]]|[a-z][a-z.-]* = )")
    return "\n".join(line[2:] if setting.match(line) else line for line in text.splitlines())


def test_example_config_is_valid_commented_and_uncommented() -> None:
    text = EXAMPLE.read_text()
    assert not parse_config(text, str(EXAMPLE), COMMAND).allowlist  # all starting points off
    for key in ALLOWLIST_KEYS:
        assert f'"{key}"' in text or f"{key} =" in text, key
    enabled = parse_config(_uncommented(text), str(EXAMPLE), COMMAND)
    assert enabled.default_map["fmt"] == "ndjson"
    allowlist = enabled.allowlist
    assert enabled.default_map["preset"] == ["cloud-agents"]
    assert len(allowlist.entries) == 30 and len(allowlist.per_rule["imds-default"]) == 4
    (rule,) = allowlist.apply(default_rules())
    assert compile_rule(
        format_rule(rule.ir), name=rule.name, rule_id=rule.id, severity=rule.severity
    ) == inline_allowlist(rule.ir)
    text = format_rule(rule.ir)
    assert '"C:\\\\Program Files\\\\Elastic\\\\Agent\\\\*"' in text
    assert "terraform-provider-aws*" in text


def test_empty_allowlist_changes_nothing() -> None:
    assert not Allowlist()
    assert Allowlist().apply(default_rules())[0].ir == default_rules()[0].ir
    assert not parse_allowlist({"process.name": []}, "c")


def test_cli_allow_and_show_rule(tmp_path: Path) -> None:
    events = tmp_path / "e.ndjson"
    base = {"event": {"category": "network"}, "destination": {"ip": "169.254.169.254"}}
    events.write_text(
        "".join(
            json.dumps({**base, "process": {"name": name}}) + "\n"
            for name in ("curl", "terraform", "TERRAFORM")
        )
    )
    proc = run(events, "-f", "ndjson", "--allow", 'process.name in~ ("terraform")')
    assert proc.returncode == 1, proc.stderr
    assert [json.loads(x)["line"] for x in proc.stdout.splitlines()] == [1]
    config = tmp_path / "c.toml"
    config.write_text('[allowlist]\n"process.name" = ["curl"]\n')
    proc = run(events, "-f", "ndjson", "--config", config, "--allow", 'process.name == "terraform"')
    assert [json.loads(x)["line"] for x in proc.stdout.splitlines()] == [3]
    proc = run("--show-rule", "--config", config, "--host", "web-*")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("// Detect Cloud Instance Metadata API (rule_id imds-default")
    assert 'not process.name in~ ("curl")' in proc.stdout
    assert 'host.name : "web-*" and' in proc.stdout
    query = proc.stdout.split("\n", 2)[2]
    assert len(compile_rule(query, name="x")["branches"]) == 2
    bad = run("--show-rule", "--allow", "process.name ==")
    assert bad.returncode == 2 and "--allow:1:16: expected a literal" in bad.stderr
    assert run("-f", "ndjson").returncode == 2  # no paths and no --show-rule


def test_condition_allowlist_names_its_source() -> None:
    with pytest.raises(ConfigError, match=r"--allow\[1\]:1:3: "):
        condition_allowlist(['a == "b"', "a = 1"])


# ---------------------------------------------------------------- which config is read

HIT_LINE = json.dumps({"event": {"category": "network"}, "destination": {"ip": "169.254.169.254"}})


def test_working_directory_config_is_not_read_implicitly(tmp_path: Path) -> None:
    # An evidence bundle's own config: hide every hit, overwrite a file, hand the scan to
    # someone's Dask scheduler, start 100,000 threads.
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "e.ndjson").write_text(HIT_LINE + "\n")
    (bundle / "imds-scan.toml").write_text(
        "quiet = true\nthreads = 100000\n"
        'report = "../victim.html"\ncluster = "tcp://192.0.2.1:8786"\n'
        "[allowlist]\nconditions = ['not user.name == \"x\"']\n"
    )
    proc = run("e.ndjson", "-f", "ndjson", cwd=bundle)
    assert proc.returncode == 1, proc.stderr
    assert [json.loads(x)["line"] for x in proc.stdout.splitlines()] == [1]
    assert not (tmp_path / "victim.html").exists()
    assert (
        "imds-scan: notice: ./imds-scan.toml was not read (a config is only read when named); "
        "to use it: --config imds-scan.toml"
    ) in proc.stderr.splitlines()
    assert "config:" not in proc.stderr
    # --no-config says the same; naming it reads it (and says so).
    proc = run("e.ndjson", "--no-config", "-f", "ndjson", cwd=bundle)
    assert proc.returncode == 1 and "was not read" in proc.stderr
    proc = run("--config", "imds-scan.toml", "--show-rule", "--cluster", "local:1", cwd=bundle)
    assert proc.returncode == 0, proc.stderr
    assert (
        "imds-scan: config: imds-scan.toml sets quiet, threads, report, cluster, allowlist"
        in proc.stderr
    )
    assert "was not read" not in proc.stderr


def test_user_config_env_and_no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events = tmp_path / "e.ndjson"
    events.write_text(HIT_LINE + "\n")
    home, xdg = tmp_path / "home", tmp_path / "xdg"
    (home / ".config" / "imds-scan").mkdir(parents=True)
    (home / ".config" / "imds-scan" / "config.toml").write_text('format = "json"\n')
    (xdg / "imds-scan").mkdir(parents=True)
    (xdg / "imds-scan" / "config.toml").write_text('format = "csv"\n')
    env_config = tmp_path / "env.toml"
    env_config.write_text('format = "alerts"\n')
    monkeypatch.setenv("HOME", str(home))
    # ~/.config when XDG_CONFIG_HOME is unset (or relative: the XDG rule ignores it).
    for xdg_value in (None, "relative/dir"):
        if xdg_value is None:
            monkeypatch.delenv("XDG_CONFIG_HOME")
        else:
            monkeypatch.setenv("XDG_CONFIG_HOME", xdg_value)
        proc = run(events, "-q")
        assert json.loads(proc.stdout)[0]["line"] == 1, proc.stderr
        where = home / ".config" / "imds-scan" / "config.toml"
        assert proc.stderr == f"imds-scan: config: {where} sets format\n"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    proc = run(events, "-q")
    assert proc.stdout.startswith("source,line,"), proc.stderr
    monkeypatch.setenv("IMDS_SCAN_CONFIG", str(env_config))
    proc = run(events, "-q")
    assert json.loads(proc.stdout)["event"]["kind"] == "alert", proc.stderr
    assert proc.stderr == f"imds-scan: config: {env_config} (from $IMDS_SCAN_CONFIG) sets format\n"
    # --config wins over both; --no-config reads nothing.
    named = tmp_path / "named.toml"
    named.write_text('format = "ndjson"\n')
    proc = run(events, "-q", "--config", named)
    assert json.loads(proc.stdout)["line"] == 1 and proc.stderr.count("config:") == 1
    proc = run(events, "-q", "--no-config", "-f", "ndjson")
    assert json.loads(proc.stdout)["line"] == 1 and proc.stderr == ""
    proc = run(events, "--no-config", "--config", named)
    assert proc.returncode == 2 and "--config and --no-config" in proc.stderr
    # A named config that is missing is an error, from the environment too.
    monkeypatch.setenv("IMDS_SCAN_CONFIG", str(tmp_path / "missing.toml"))
    proc = run(events, "-q")
    assert proc.returncode == 2 and "missing.toml: cannot read" in proc.stderr


@pytest.mark.parametrize(
    "text",
    [
        '"process.name" = ["?*"]',
        '"user.name" = ["*?"]',
        '"host.name" = ["*?*?"]',
        '"destination.ip" = ["0.0.0.0/0"]',
        '"destination.ip" = ["::/0"]',
        "conditions = ['process.name : \"*?\"']",
        "conditions = ['process.name like \"?*\"']",
        "conditions = ['user.name != null']",
        "conditions = ['startsWith(process.name, \"\")']",
        'conditions = [\'cidrMatch(source.ip, "::/64", "0.0.0.0/0")\']',
        'conditions = [\'user.name == "x" or not user.name == "x"\']',
        'conditions = [\'(host.name : "?*" or user.name == "a") and process.name : "**"\']',
        # Constants, folded: true for every event, whatever its fields.
        "conditions = ['true']",
        "conditions = ['not false']",
        "conditions = ['1 == 1']",
        "conditions = ['length(\"abc\") == 3']",
        "conditions = ['user.name == \"x\" or not (1 == 2)']",
    ],
)
def test_allowlist_entries_that_drop_every_event_are_refused(text: str) -> None:
    for section in ("[allowlist]", '[allowlist.rules."imds-default"]'):
        with pytest.raises(ConfigError) as err:
            parse_config(f"{section}\n{text}\n", "c.toml", COMMAND)
        message = str(err.value)
        assert message.startswith("c.toml: allowlist."), message
        assert "every" in message and "silence the rule" in message, message


@pytest.mark.parametrize(
    "condition",
    [
        'process.name : "?"',
        'process.name : "*x"',
        'not process.name : "*"',
        'user.name == "x" or not host.name == "x"',
        'cidrMatch(source.ip, "10.0.0.0/8")',
        'process.name : "*" and user.name == "svc"',
        "false",
        "not true",
        "1 == 2",
        'process.name == "a" and true',
    ],
)
def test_narrow_allowlist_conditions_are_kept(condition: str) -> None:
    assert condition_allowlist([condition])


def test_allow_that_drops_every_event_is_refused(tmp_path: Path) -> None:
    events = tmp_path / "e.ndjson"
    events.write_text(HIT_LINE + "\n")
    for condition in ('process.name like~ "?*"', 'url.full : "*?"', "true", "1 == 1"):
        proc = run(events, "--allow", condition)
        assert proc.returncode == 2
        assert proc.stderr.startswith(f"imds-scan: error: --allow: {condition!r} is true for"), (
            proc.stderr
        )
    for key in ("no-config = true", "version = true"):
        with pytest.raises(ConfigError, match="cannot be set in a config file"):
            parse_config(key + "\n", "c.toml", COMMAND)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('since = "yesterday"', "since: 'yesterday' is neither"),
        ('until = "x"', "until: 'x' is neither"),
        ('range-size = "12Q"', "range-size: '12Q' is not a size"),
        ('max_line_bytes = "0"', "max_line_bytes: '0' is not a size"),
        ('report = "r.txt"', "report: 'r.txt' does not end in .html"),
        ('output = "o.xyz"', "output: cannot tell the format of 'o.xyz'"),
        ('format = "parquet"', "format: parquet is binary"),
        ("allow = ['process.name == ']", "allow[0]:1:17: expected a literal"),
        ('host = [""]', "host[0]: an empty glob matches nothing"),
        ('exclude-host = ["a", ""]', "exclude-host[1]: an empty glob matches nothing"),
        ('cluster = "bogus"', "cluster: 'bogus': expected tcp://host:port or local:N"),
    ],
)
def test_bad_config_values_name_the_file_and_key(tmp_path: Path, text: str, where: str) -> None:
    # Checked once the command line is known (it may override them), and still the config's.
    events = tmp_path / "e.ndjson"
    events.write_text(HIT_LINE + "\n")
    config = tmp_path / "c.toml"
    config.write_text(text + "\n")
    proc = run("--config", config, events, "-q")
    assert proc.returncode == 2, proc.stderr
    assert f"imds-scan: error: {config}: {where}" in proc.stderr, proc.stderr
    assert "Usage:" not in proc.stderr and "Invalid value for '--" not in proc.stderr


def test_an_output_suffix_on_the_command_line_beats_the_config_format(tmp_path: Path) -> None:
    events = tmp_path / "e.ndjson"
    events.write_text(HIT_LINE + "\n")
    config = tmp_path / "c.toml"
    config.write_text('format = "ndjson"\n')
    # The extension says parquet: the command line's word wins over the config's.
    proc = run("--config", config, events, "-q", "-o", tmp_path / "x.parquet")
    assert proc.returncode == 1, proc.stderr
    assert (tmp_path / "x.parquet").read_bytes()[:4] == b"PAR1"
    # An extension that says nothing: the config's format.
    proc = run("--config", config, events, "-q", "-o", tmp_path / "x.log")
    assert proc.returncode == 1 and json.loads((tmp_path / "x.log").read_text())["line"] == 1
    # --format on the command line beats the extension.
    proc = run("--config", config, events, "-q", "-o", tmp_path / "y.csv", "-f", "json")
    assert json.loads((tmp_path / "y.csv").read_text())[0]["line"] == 1
    # Both in the config: its format wins, as --format does over -o's extension.
    config.write_text(f'format = "ndjson"\noutput = {json.dumps(str(tmp_path / "z.csv"))}\n')
    proc = run("--config", config, events, "-q")
    assert proc.returncode == 1 and json.loads((tmp_path / "z.csv").read_text())["line"] == 1
