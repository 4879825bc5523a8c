"""Many rules at once, shaped like Elastic's detection rules (common literals such as `process`,
`linux`, `start` next to each rule's own): the Rust engine, whose prefilter lets a line through
only when all literal clauses of some rule's branch are in it, must report exactly the hits of
the reference engine and of a scan without the prefilter."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from test_differential import _encode_str, encode

from conftest import hit_keys
from imds_scan import run_scan
from imds_scan.rules import load_rules

RULES = Path(__file__).parent / "data" / "elastic_shaped"

# Values the rules test, near misses, and filler; drawn per field.
VALUES: dict[str, list[Any]] = {
    "event.category": ["process", "file", "network", "Process", "authentication"],
    "event.type": ["start", "end", "change", "creation", "START", "info"],
    "event.action": ["exec", "exec_event", "executed", "start", "fork", "Exec"],
    "host.os.type": ["linux", "windows", "macos", "LINUX", "Windows"],
    "process.name": [
        "sshd",
        "SSHD",
        "sshd ",
        "bash",
        "sh",
        "dash",
        "curl",
        "wget",
        "curl.exe",
        "cmd.exe",
        "CMD.EXE",
        "conhost.exe",
        "powershell.exe",
        "node",
        "x ",
        "ssh",
        "",
    ],
    "process.parent.name": [
        "node",
        "bun",
        "Bun.exe",
        "node.exe",
        "ubuntu",
        "services.exe",
        "explorer.exe",
        "powershell.exe",
        "systemd",
        "bunny",
    ],
    "process.args": [
        "-o ProxyCommand=nc %h 22",
        "-o proxycommand",
        "-o Proxy",
        "/c",
        "/C",
        "/c start",
        "-D",
        ["-o", "ProxyCommand"],
        ["/c", "whoami"],
        "-la",
    ],
    "process.command_line": [
        "curl http://169.254.169.254/latest/meta-data/",
        "wget metadata.google.internal",
        "curl http://169.254.169.25/",
        "ls -la /tmp",
        "cmd.exe /c start calc",
    ],
    "process.executable": [
        "C:\\Windows\\System32\\svchost.exe",
        "c:\\windows\\system32\\evil.exe",
        "\\Device\\HarddiskVolume3\\Windows\\System32\\x.exe",
        "Registry",
        "MemCompression",
        "C:\\Windows\\System32\\smss.exe",
        "/usr/bin/ssh",
        "D:\\Windows\\System32\\a.exe",
    ],
    "process.parent.pid": [4, 44, "4", 1, 400],
    "process.code_signature.trusted": [True, False, "true", None],
    "user.id": ["S-1-5-18", "S-1-5-180", "s-1-5-18", "1000"],
    "file.path": [
        "/etc/hosts",
        "/etc/hosts.allow",
        "C:\\Windows\\System32\\drivers\\etc\\hosts",
        "/etc/HOSTS",
        "/tmp/hosts",
    ],
    "dns.question.name": ["evil.top", "a.b.xyz", "x.LOL", "example.com", "top.example"],
}


# Per rule, an event it matches: the generator starts from one and changes some fields.
TEMPLATES: list[dict[str, Any]] = [
    {
        "event.category": "process",
        "host.os.type": "linux",
        "event.type": "start",
        "event.action": "exec",
        "process.name": "sshd",
        "process.args": "-o ProxyCommand=nc",
    },
    {
        "event.category": "process",
        "event.type": "start",
        "event.action": "exec",
        "process.name": "x ",
    },
    {
        "event.category": "process",
        "event.type": "start",
        "process.parent.name": "bun",
        "process.name": "cmd.exe",
        "process.args": "/c",
    },
    {
        "event.category": "process",
        "host.os.type": "windows",
        "event.type": "start",
        "process.executable": "C:\\Windows\\System32\\evil.exe",
        "process.parent.name": "services.exe",
        "process.code_signature.trusted": False,
    },
    {"event.category": "file", "event.type": "change", "file.path": "/etc/hosts"},
    {
        "event.category": "process",
        "event.type": "start",
        "process.name": "curl",
        "process.command_line": "curl http://169.254.169.254/latest/meta-data/",
    },
    {
        "event.category": "process",
        "host.os.type": "windows",
        "event.action": "start",
        "user.id": "S-1-5-18",
        "process.parent.name": "explorer.exe",
        "process.name": "cmd.exe",
    },
    {
        "event.category": "process",
        "host.os.type": "windows",
        "event.type": "start",
        "process.parent.pid": 4,
        "process.executable": "C:\\Windows\\System32\\x.exe",
    },
    {
        "event.category": "network",
        "host.os.type": "linux",
        "dns.question.name": "evil.top",
        "process.name": "dig",
    },
]


def _event(rnd: random.Random) -> dict[str, Any]:
    flat = dict(rnd.choice(TEMPLATES))
    for field, choices in VALUES.items():
        roll = rnd.random()
        if roll < 0.15:
            flat[field] = rnd.choice(choices)
        elif roll < 0.2:
            flat.pop(field, None)
    doc: dict[str, Any] = {}
    for field, value in flat.items():
        node = doc
        parts = field.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if field == "event.category" and rnd.random() < 0.5:
            value = [value]
        node[parts[-1]] = value
    return doc


def engines_agree(tmp_path: Path, rules: list[Any], lines: list[str]) -> tuple[Any, Any]:
    """Scan ``lines`` with the reference engine and the Rust one (prefilter on and off); all
    three give the same hits. The reference and prefiltered Rust results."""
    path = tmp_path / "events.ndjson"
    path.write_bytes("".join(line + "\n" for line in lines).encode("utf-8", "surrogatepass"))
    py = run_scan([str(path)], rules, engine="python")
    rs = run_scan([str(path)], rules, engine="rust")
    rs_full = run_scan([str(path)], rules, engine="rust", prefilter=False)
    assert hit_keys(rs_full.hits) == hit_keys(py.hits)
    assert hit_keys(rs.hits) == hit_keys(py.hits)
    return py, rs


@pytest.mark.parametrize("seed", range(6))
def test_elastic_shaped_rules_agree_with_and_without_prefilter(tmp_path: Path, seed: int) -> None:
    rules, warnings = load_rules([str(RULES)])
    assert not warnings and len(rules) == 9
    rnd = random.Random(seed)
    lines = [encode(rnd, _event(rnd), rnd.choice([0.0, 0.0, 0.0, 0.05, 0.3])) for _ in range(400)]
    py, rs = engines_agree(tmp_path, rules, lines)
    # Not vacuous: rules hit, and the prefilter skips lines holding common literals only.
    assert len({h.rule.id for h in py.hits}) >= 5
    stats = rs.stats.files[0]
    assert stats.candidates < stats.events


FIELD_AWARE = Path(__file__).parent / "data" / "field_aware"

# Per field: the rules' literals as whole values, pieces, numbers, booleans, and near misses.
FIELD_VALUES: dict[str, list[Any]] = {
    "event.category": ["process", "network", ["process"]],
    "event.type": ["start", ["start", "end"], "end"],
    "host.os.type": ["linux", "windows", "Linux", ["linux"], "linuxx"],
    "process.name": [
        *["curl", "CURL", "curl ", " curl", "xcurl", "sh", "SH", "sh ", "bash", "bash ", ""],
        *['curl"', ["curl", "x"], ["x ", "y"], 4, True],
    ],
    "labels.level": [4, "4", 44, "44", 4.0, "x4", [4], [1, 4], -4, "4 ", 40, True],
    "labels.flag": [True, False, "true", "TRUE", "truex", 1, [False, True]],
    "process.executable": ["/tmp/x", "/TMP/x", "/tmpx", "x/tmp/", "/tmp/", '/tmp/"a\\', 5],
    "process.pe.original_file_name": ["a.exe", None, [], "", 3, ["x"]],
    "process.args_count": [1, 3, 5, "3", "4", 2.5, "x"],
    "file.path": ["/etc/x", "/etc", "x/etc/", "/ETC/a", "/etc/"],
    "file.name": ["a.conf", "a.CONF", ".conf", "a.conf ", "conf", ".conf.x"],
    "process.parent.name": ["node", "NODE", "bun", "Bun", "bunny", "ubuntu", "nodejs"],
    "user.name": ["", " ", "root", None, [""]],
}

# Members whose key (not value) is one of the literals, at paths no rule reads.
DECOY_KEYS = ["curl", "/tmp/x", "4", "true", "linux", "original_file_name", "args_count", "sh"]


def _encode_spaced(rnd: random.Random, obj: Any, escape_rate: float) -> str:
    """`encode`, with whitespace of either kind around `:` and `,` now and then."""
    if isinstance(obj, dict):
        colon = rnd.choice([":", ":", " : ", ":\t", " :"])
        items = [
            f"{_encode_str(rnd, k, escape_rate)}{colon}{_encode_spaced(rnd, v, escape_rate)}"
            for k, v in obj.items()
        ]
        return "{" + rnd.choice([",", ", ", " ,"]).join(items) + "}"
    if isinstance(obj, list):
        return (
            "["
            + rnd.choice([",", " , "]).join(_encode_spaced(rnd, v, escape_rate) for v in obj)
            + "]"
        )
    return encode(rnd, obj, escape_rate)


def _field_aware_event(rnd: random.Random) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for field, choices in FIELD_VALUES.items():
        if rnd.random() < 0.4:
            continue
        value = rnd.choice(choices)
        if rnd.random() < 0.3:
            doc[field] = value  # a dotted key
            continue
        node = doc
        parts = field.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                break
            node = child
        else:
            node[parts[-1]] = value
    for key in rnd.sample(DECOY_KEYS, rnd.randint(0, 3)):
        doc.setdefault("decoy", {})[key] = rnd.choice([1, "x", True, {"curl": "y"}])
    return doc


@pytest.mark.parametrize("seed", range(6))
def test_field_aware_needles_agree_with_and_without_prefilter(tmp_path: Path, seed: int) -> None:
    """Needles that know where a literal stands (a whole value between quotes, a key, a
    number's text between token boundaries) lose no hit: literals as keys, numbers and
    booleans on keyword fields, whitespace around `:`, escapes in keys and values."""
    rules, warnings = load_rules([str(FIELD_AWARE)])
    assert not warnings and len(rules) == 9
    rnd = random.Random(seed)
    lines = [
        _encode_spaced(rnd, _field_aware_event(rnd), rnd.choice([0.0, 0.0, 0.0, 0.05, 0.3]))
        for _ in range(600)
    ]
    py, rs = engines_agree(tmp_path, rules, lines)
    # Not vacuous: most rules hit, and the prefilter skips lines.
    assert len({h.rule.id for h in py.hits}) >= 7
    stats = rs.stats.files[0]
    assert stats.candidates < stats.events
