"""Allowlist presets (--preset cloud-agents) and per-entry drop counts, on both engines.

The events are written from the vendors' documentation and the field layouts of public
datasets (Winlogbeat's Windows Security 5156, Auditbeat's auditd module, Elastic Defend)."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from conftest import ENGINES, hit_keys
from imds_scan.config import merge_allowlists, parse_allowlist, preset_allowlist
from imds_scan.rules import default_rules, load_rules, pack_path
from imds_scan.run import allowlist_drops

NET = {"category": ["network"], "type": ["connection"]}


def _net(ip: str = "169.254.169.254", port: int = 80, **process: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"event": NET, "destination": {"ip": ip, "port": port}}
    if process:
        event["process"] = process
    return event


def _win5156(executable: str, name: str | None, ip: str = "169.254.169.254", port: int = 80):
    """Winlogbeat's mapping of a Security 5156 event (the Application is a device path)."""
    event = _net(ip, port, executable=executable, pid=2212)
    if name is not None:
        event["process"]["name"] = name
    event["event"] = {**NET, "code": "5156", "provider": "Microsoft-Windows-Security-Auditing"}
    event["winlog"] = {"event_id": "5156", "event_data": {"Application": executable}}
    return event


def _auditd(comm: str, exe: str, ip: str = "169.254.169.254") -> dict[str, Any]:
    """Auditbeat's auditd module: process.name is the kernel's comm (15 bytes at most)."""
    event = _net(ip, 80, name=comm, executable=exe, pid=811)
    event["auditd"] = {"data": {"syscall": "connect"}, "summary": {"how": exe}}
    event["user"] = {"name": "root"}
    return event


NWA = (
    "C:\\Packages\\Plugins\\Microsoft.Azure.NetworkWatcher.NetworkWatcherAgentWindows"
    "\\1.4.2573.1\\NetworkWatcherAgent\\NetworkWatcherAgent.exe"
)
NWA_DEVICE = (
    "\\device\\harddiskvolume2\\packages\\plugins\\microsoft.azure.networkwatcher."
    "networkwatcheragentwindows\\1.4.1974.1\\networkwatcheragent\\networkwatcheragent.exe"
)

# Each: an event the seed rule flags, and the preset entry that drops it.
AGENTS: list[tuple[dict[str, Any], str]] = [
    (_win5156(NWA_DEVICE, "NetworkWatcherAgent.exe"), "HarddiskVolume?\\Packages"),
    (_net(executable=NWA, name="NetworkWatcherAgent.exe"), "C:\\Packages\\Plugins"),
    (_win5156(NWA_DEVICE, None), "HarddiskVolume?\\Packages"),  # no process.name: the path
    (_net(name="ec2config.exe"), 'process.name "ec2config.exe"'),
    (
        _win5156("C:\\Program Files\\Amazon\\Ec2ConfigService\\Ec2Config.exe", "Ec2Config.exe"),
        "Ec2ConfigService",
    ),
    (
        _win5156(
            "\\device\\harddiskvolume1\\program files\\amazon\\cfn-bootstrap\\winhup.exe", None
        ),
        "cfn-bootstrap\\winhup.exe",
    ),
    (_net(name="winhup.exe"), 'process.name "winhup.exe"'),
    (_auditd("amazon-ssm-agen", "/usr/bin/amazon-ssm-agent"), "/usr/bin/amazon-ssm-agent"),
    (_auditd("amazon-ssm-agen", "/snap/amazon-ssm-agent/9565/amazon-ssm-agent"), "/snap/"),
    (_net(name="amazon-ssm-agen"), 'process.name "amazon-ssm-agen"'),
    (_net(name="google_guest_ag"), 'process.name "google_guest_ag"'),
    (_net(name="google_osconfig"), 'process.name "google_osconfig"'),
    (_net(name="google_ip_forwa"), 'process.name "google_ip_forwa"'),
    (_net(name="google_accounts"), 'process.name "google_accounts"'),
    (_auditd("google_ip_forwa", "/usr/bin/google_ip_forwarding_daemon"), "google_ip_forwarding"),
    (
        {
            "event": {"category": ["process"], "type": ["start"]},
            "user": {"name": "SYSTEM"},
            "process": {
                "name": "powershell.exe",
                "command_line": "powershell.exe -File C:\\ProgramData\\Amazon\\EC2-Windows\\"
                "Launch\\Scripts\\GetMetadata.ps1 http://169.254.169.254/latest/meta-data/",
            },
        },
        "EC2-Windows",
    ),
]

# Look-alikes the preset must leave alone (the near misses of the bundled sample, too).
STILL_HITS: list[dict[str, Any]] = [
    # The agent's name on a binary outside its documented path and without the name: a copy.
    _net(executable="C:\\Users\\Public\\NetworkWatcherAgent.exe", name="nwa.exe"),
    _win5156(
        "\\device\\harddiskvolume2\\users\\public\\packages\\plugins\\microsoft.azure."
        "networkwatcher.networkwatcheragentwindows\\1\\networkwatcheragent.exe",
        None,
    ),
    # SYSTEM PowerShell on a network event: no command line to scope it, so not dropped.
    {**_net(name="powershell.exe"), "user": {"name": "SYSTEM"}},
    # A 15-byte comm that is not one of the agents'.
    _net(name="amazon-ssm-agex"),
    _auditd("python3", "/usr/bin/python3.11"),
    # The old 5156 layout with neither process.name nor process.executable: no entry applies.
    {
        "event": NET,
        "destination": {"ip": "169.254.169.254", "port": 80},
        "winlog": {"event_id": "5156", "event_data": {"Application": NWA_DEVICE}},
    },
]


def _preset_rules(rules: list[Any] | None = None) -> list[Any]:
    return preset_allowlist("cloud-agents").apply(rules or default_rules())


@pytest.mark.parametrize("engine", ENGINES)
def test_cloud_agents_preset_drops_the_agents_and_names_the_entry(
    scan_events: Any, engine: str
) -> None:
    events = [event for event, _ in AGENTS]
    plain = scan_events(events, engine)
    assert len(plain.hits) == len(events)  # the seed rule flags every one of them
    rules = _preset_rules()
    tuned = scan_events(events, engine, rules)
    assert tuned.hits == []
    (rule,) = rules
    dropped = tuned.stats.files[0].allowlisted
    assert sum(dropped.values()) == len(events)
    # Each event is attributed to the first entry in file order that matches it.
    found = []
    for line, (_, expected) in enumerate(AGENTS):
        result = scan_events([AGENTS[line][0]], engine, rules)
        ((key, count),) = result.stats.files[0].allowlisted.items()
        found.append(rule.allowlist_labels[key[1]])
        assert key[0] == 0 and count == 1
        assert expected.lower() in rule.allowlist_labels[key[1]].lower(), found[-1]


@pytest.mark.parametrize("engine", ENGINES)
def test_cloud_agents_preset_keeps_look_alikes(scan_events: Any, engine: str) -> None:
    tuned = scan_events(STILL_HITS, engine, _preset_rules())
    assert [h.line for h in tuned.hits] == list(range(1, len(STILL_HITS) + 1))
    assert tuned.stats.files[0].allowlisted == {}


PRESET_FILE = Path(str(resources.files("imds_scan.rules"))) / "presets" / "cloud-agents.toml"


def test_every_preset_entry_cites_its_source() -> None:
    """Each value of the preset has a vendor URL in a comment above it, within its array."""
    cited = False
    values = 0
    for line in PRESET_FILE.read_text().splitlines():
        stripped = line.strip()
        if re.match(r'^"[a-z.]+" = \[$|^conditions = \[$', stripped):
            cited = False
        elif stripped.startswith("#") and "https://" in stripped:
            cited = True
        elif stripped.startswith(("'", '"')):
            values += 1
            assert cited, line
    allowlist = preset_allowlist("cloud-agents")
    assert values == len(allowlist.entries) > 40
    for entry in allowlist.entries:  # precise: no bare wildcard names, no lone powershell
        assert entry.label.startswith("preset cloud-agents: ")
        if entry.node.get("field") == "process.name":
            assert "*" not in entry.node["values"][0] and "?" not in entry.node["values"][0]
            assert entry.node["values"][0].lower() != "powershell.exe"


def test_truncated_names_are_15_bytes_of_a_documented_name() -> None:
    names = [
        e.node["values"][0]
        for e in preset_allowlist("cloud-agents").entries
        if e.node.get("field") == "process.name"
    ]
    # Windows names are not cut (only the Linux kernel's comm is).
    full = [n for n in names if len(n) > 15 and not n.endswith(".exe")] + [
        "amazon-ssm-agent",
        "google_guest_agent",
        "aws-cfn-bootstrap",
    ]
    truncated = [n for n in names if len(n.encode()) == 15 and not n.endswith(".exe")]
    assert sorted(truncated) == sorted({n[:15] for n in full})


def _random_events(seed: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    pool = [e for e, _ in AGENTS] + STILL_HITS
    out: list[dict[str, Any]] = []
    for _ in range(400):
        event = json.loads(json.dumps(rnd.choice(pool)))
        if rnd.random() < 0.3:
            event.setdefault("host", {})["name"] = rnd.choice(["web-1", "db-2", "build-3"])
        if rnd.random() < 0.2:
            address = rnd.choice(["10.0.0.2", "168.63.129.16", "::ffff:a9fe:a9fe"])
            event.setdefault("destination", {})["ip"] = address
        if rnd.random() < 0.2:
            event["user"] = {"name": rnd.choice(["SYSTEM", "root", "svc"])}
        out.append(event)
    return out


ALLOW = {
    "host.name": ["build-*"],
    "user.name": ["svc"],
    "destination.ip": ["10.0.0.0/8"],
    "conditions": ['user.name == "root" and process.name : "google*"'],
    "rules": {"imds-hardened-endpoint": {"destination.ip": ["168.63.129.16"]}},
}


def test_drop_counts_are_the_same_on_both_engines_and_match_an_oracle(scan_events: Any) -> None:
    rules, _ = load_rules(["default", pack_path("hardened")])
    allowlist = merge_allowlists(parse_allowlist(ALLOW, "c.toml"), preset_allowlist("cloud-agents"))
    tuned = allowlist.apply(rules)
    events = _random_events(7)
    results = {engine: scan_events(events, engine, tuned) for engine in ENGINES}
    py, rs = results["python"], results["rust"]
    assert [k[1:] for k in hit_keys(py.hits)] == [k[1:] for k in hit_keys(rs.hits)]
    assert py.stats.files[0].allowlisted == rs.stats.files[0].allowlisted
    # Oracle: the plain hits, each attributed to the first entry that alone would drop it.
    plain = scan_events(events, "python", rules)
    expected: dict[tuple[int, int], int] = {}
    for index, rule in enumerate(tuned):
        singles = [dict(rule.ir, allowlist=[node]) for node in rule.ir.get("allowlist", [])]
        lines = {h.line for h in plain.hits if h.rule.id == rule.id}
        kept = {h.line for h in py.hits if h.rule.id == rule.id}
        for line in sorted(lines - kept):
            event = events[line - 1]
            for entry, ir in enumerate(singles):
                alone = scan_events([event], "python", [type(rule)(**{**vars(rule), "ir": ir})])
                if not alone.hits:
                    expected[(index, entry)] = expected.get((index, entry), 0) + 1
                    break
    assert py.stats.files[0].allowlisted == expected
    assert sum(expected.values()) == len(plain.hits) - len(py.hits) > 50
    drops = allowlist_drops(tuned, rs)
    assert [d.rule_id for d in drops] == [r.id for r in tuned]
    assert sum(d.dropped for d in drops) == sum(expected.values())


def _cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imds_scan", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )


def test_cli_preset_reports_what_each_entry_dropped(tmp_path: Path) -> None:
    data = tmp_path / "fleet.ndjson"
    events = [AGENTS[0][0]] * 3 + [AGENTS[7][0], STILL_HITS[0]]
    data.write_text("".join(json.dumps(e) + "\n" for e in events))
    proc = _cli(data, "-f", "ndjson", "--preset", "cloud-agents")
    assert proc.returncode == 1, proc.stderr
    assert [json.loads(x)["line"] for x in proc.stdout.splitlines()] == [5]
    assert "allowlist dropped 4 hit(s) of imds-default:" in proc.stderr
    assert re.search(r"\n\s+3  preset cloud-agents: process.executable \"\\Device", proc.stderr)
    assert '      1  preset cloud-agents: process.executable "/usr/bin/amazon-ssm-agent"' in (
        proc.stderr
    )
    assert "warning" not in proc.stderr
    # The config key, and a warning when the allowlist drops every hit of a rule.
    config = tmp_path / "imds-scan.toml"
    config.write_text('preset = ["cloud-agents"]\n')
    proc = _cli(
        data, "-f", "ndjson", "-q", "--config", config, "--allow", 'process.name == "nwa.exe"'
    )
    assert proc.returncode == 0, proc.stderr
    assert "hit(s) of imds-default:" not in proc.stderr  # -q: no scan line ...
    assert (
        "imds-scan: warning: the allowlist dropped every hit of rule imds-default (5)"
        in proc.stderr
    )  # ... but the warning
    proc = _cli(data, "--preset", "cloud-agent")
    assert proc.returncode == 2
    assert "unknown allowlist preset 'cloud-agent' (bundled presets: cloud-agents)" in proc.stderr
    proc = _cli("--show-rule", "--preset", "cloud-agents")
    assert proc.returncode == 0 and "NetworkWatcherAgent.exe" in proc.stdout


AZURE_GUEST = (
    "C:\\WindowsAzure\\GuestAgent_2.7.41491.1102_2024-01-01_000000\\WindowsAzureGuestAgent.exe"
)
PACK_NOISE: list[dict[str, Any]] = [
    # An Azure Windows host: the VM Agent talks to WireServer, Network Watcher to IMDS.
    _win5156(AZURE_GUEST, "WindowsAzureGuestAgent.exe", "168.63.129.16", 32526),
    _win5156(AZURE_GUEST, "WindowsAzureGuestAgent.exe", "168.63.129.16", 80),
    _win5156(NWA_DEVICE, "NetworkWatcherAgent.exe", "169.254.169.254", 80),
    # An AWS Windows host: EC2Config and cfn-hup read the metadata service.
    _win5156("C:\\Program Files\\Amazon\\Ec2ConfigService\\Ec2Config.exe", "Ec2Config.exe"),
    _win5156("C:\\Program Files\\Amazon\\cfn-bootstrap\\winhup.exe", "winhup.exe"),
    # Azure DNS: not WireServer, so no pack hit at all, with or without the preset.
    _win5156("C:\\Windows\\System32\\svchost.exe", "svchost.exe", "168.63.129.16", 53),
]


@pytest.mark.parametrize("engine", ENGINES)
def test_preset_quiets_the_hardened_pack_on_cloud_hosts(scan_events: Any, engine: str) -> None:
    rules, _ = load_rules([pack_path("hardened")])
    plain = scan_events(PACK_NOISE, engine, rules)
    assert [(h.line, h.rule.id) for h in plain.hits] == [
        (line, "imds-hardened-endpoint") for line in range(1, 6)
    ]
    tuned = scan_events(PACK_NOISE, engine, _preset_rules(rules))
    assert tuned.hits == []
    assert sum(tuned.stats.files[0].allowlisted.values()) == 5


def test_summary_explains_the_severity_classes(tmp_path: Path) -> None:
    data = tmp_path / "mixed.ndjson"
    events = [
        PACK_NOISE[0],
        {
            "process": {
                "command_line": "curl http://169.254.169.254/latest/meta-data/iam/security-credentials/r"
            }
        },
        {"url": {"full": "http://metadata.google.internal/computeMetadata/v1/project/"}},
    ]
    data.write_text("".join(json.dumps(e) + "\n" for e in events))
    proc = _cli(data, "-f", "ndjson", "--pack", "hardened", "--summary", "-q")
    assert proc.returncode == 1, proc.stderr
    section = proc.stderr.split("hits by severity (why):\n", 1)[1].split("\nhits by rule")[0]
    rows = [line.split(None, 2) for line in section.splitlines()]
    assert [(r[0], r[1]) for r in rows] == [("1", "critical"), ("1", "high"), ("1", "medium")]
    assert "imds-hardened-credentials: Critical: the event names a credential endpoint" in section
    assert "imds-hardened-endpoint: Medium: the event only reaches a metadata-service address" in (
        section
    )


# Windows Security 5156 as Log Analytics exports it (SecurityEvent table): the address is there,
# but in Log Analytics' columns, not ECS fields.
LOG_ANALYTICS_5156 = {
    "TimeGenerated": "2024-03-01T10:00:00Z",
    "Computer": "vm-web-1",
    "EventID": 5156,
    "Activity": "5156 - The Windows Filtering Platform has permitted a connection.",
    "Application": "\\device\\harddiskvolume2\\windows\\system32\\curl.exe",
    "DestAddress": "169.254.169.254",
    "DestPort": "80",
    "SourceAddress": "10.0.0.4",
    "Direction": "%%14593",
}
RAW_AUDITD = (
    "type=SYSCALL msg=audit(1709287200.123:4711): arch=c000003e syscall=42 success=yes exit=0 "
    'ppid=1 pid=811 uid=0 comm="curl" exe="/usr/bin/curl" key="imds"\n'
    "type=SOCKADDR msg=audit(1709287200.123:4711): saddr=0200005000A9FEA9FE0000000000000000\n"
)


@pytest.mark.parametrize("engine", ENGINES)
def test_non_ecs_input_is_named_not_silently_empty(tmp_path: Path, engine: str) -> None:
    la = tmp_path / "securityevent.ndjson"
    la.write_text(json.dumps(LOG_ANALYTICS_5156) + "\n" + json.dumps({"TimeGenerated": "x"}) + "\n")
    audit = tmp_path / "audit.log"
    audit.write_text(RAW_AUDITD)
    ecs_quiet = tmp_path / "ecs.ndjson"  # ECS, no hits: not named
    ecs_quiet.write_text(json.dumps(_net("10.0.0.1", name="curl")) + "\n")
    hits = tmp_path / "hits.ndjson"
    hits.write_text(json.dumps(STILL_HITS[0]) + "\n")
    proc = _cli(la, audit, ecs_quiet, hits, "-f", "ndjson", "--engine", engine)
    # Raw auditd text has no valid event at all: an input error (exit 2), named as such.
    assert proc.returncode == 2, proc.stderr
    assert f"error: {audit}: no valid event: all 2 lines are malformed (not NDJSON?)" in (
        proc.stderr
    )
    assert "inputs that do not look like ECS (no field the rules read): 1" in proc.stderr
    warnings = [x for x in proc.stderr.splitlines() if "look like ECS" in x and "warning" in x]
    assert warnings == [
        f"imds-scan: warning: {la}: does not look like ECS: none of the first 2 events has a "
        "field the rules read (destination.address, destination.ip, event.category, "
        "event.type, process.args, process.command_line, …); fields seen: TimeGenerated, "
        "Computer, EventID, Activity, Application, DestAddress",
    ]
    # -q keeps the diagnostics.
    proc = _cli(la, "-q", "--engine", engine)
    assert proc.returncode == 0 and "does not look like ECS" in proc.stderr
