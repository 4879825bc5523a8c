"""Every worked verdict of spec/semantics.md, and the process branch, on both engines."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import ENGINES

NET = {"event": {"category": ["network"]}, "destination": {"ip": "169.254.169.254"}}


def proc(command_line: str, **extra: Any) -> dict[str, Any]:
    event = {
        "event": {"category": ["process"], "type": ["start"]},
        "process": {"name": "curl", "command_line": command_line},
    }
    event.update(extra)
    return event


CASES: list[tuple[str, dict[str, Any] | str, str | None]] = [
    # (label, event, expected branch or None)
    ("network ip, no process.name", NET, "network"),
    ("excluded name, other case", {**NET, "process": {"name": "CLOUD-INIT"}}, None),
    ("one excluded element in array", {**NET, "process": {"name": ["curl", "waagent"]}}, None),
    (
        "category array + mapped ip in array",
        {
            "event": {"category": ["host", "network"]},
            "destination": {"ip": ["10.0.0.1", "::ffff:a9fe:a9fe"]},
        },
        "network",
    ),
    (
        "destination.address is a keyword (case-sensitive)",
        {"event": {"category": "network"}, "destination": {"address": "FD00:EC2::254"}},
        None,
    ),
    (
        "url.domain == is case-sensitive",
        {"event": {"category": "network"}, "url": {"domain": "Metadata.Google.Internal"}},
        None,
    ),
    (
        "destination.address exact ipv6",
        {"event": {"category": "network"}, "destination": {"address": "fd00:ec2::254"}},
        "network",
    ),
    (
        "url.domain exact",
        {"event": {"category": "network"}, "url": {"domain": "metadata.google.internal"}},
        "network",
    ),
    ("ip: ::ffff dotted", {**NET, "destination": {"ip": "::ffff:169.254.169.254"}}, "network"),
    ("ip: upper-case mapped", {**NET, "destination": {"ip": "::FFFF:a9fe:a9fe"}}, "network"),
    ("ip: full form", {**NET, "destination": {"ip": "0:0:0:0:0:ffff:a9fe:a9fe"}}, "network"),
    ("ip: IPv4-compatible is not", {**NET, "destination": {"ip": "::169.254.169.254"}}, None),
    ("ip: NAT64 is not", {**NET, "destination": {"ip": "64:ff9b::a9fe:a9fe"}}, None),
    ("ip: leading-zero octet invalid", {**NET, "destination": {"ip": "169.254.169.054"}}, None),
    ("ip: AWS DNS is not IMDS", {**NET, "destination": {"ip": "169.254.169.253"}}, None),
    (
        "dotted keys",
        {"event.category": "network", "destination.ip": "169.254.169.254"},
        "network",
    ),
    (
        "mixed nested + dotted",
        {
            "event": {"category": "network"},
            "destination": {"ip": "169.254.169.254"},
            "process": {"parent.name": "x"},
            "process.name": "WaAppAgent.exe",
        },
        None,
    ),
    ("no category", {"destination": {"ip": "169.254.169.254"}}, None),
    ("network null process.name", {**NET, "process": {"name": None}}, "network"),
    ("network [null] process.name", {**NET, "process": {"name": [None]}}, "network"),
    # Process branch.
    ("process start", proc("curl http://169.254.169.254/latest/meta-data/"), "process"),
    (
        "event.type info+start",
        {
            **proc("curl http://169.254.169.254/"),
            "event": {"category": "process", "type": ["info", "start"]},
        },
        "process",
    ),
    (
        "event.type Start is not start",
        {**proc("curl http://169.254.169.254/"), "event": {"category": "process", "type": "Start"}},
        None,
    ),
    ("pattern is case-insensitive", proc("CURL HTTP://METADATA.GOOGLE.INTERNAL/"), "process"),
    (
        "escaped slash in raw JSON",
        '{"event":{"category":"process","type":"start"},'
        '"process":{"command_line":"curl http:\\/\\/x\\/latest\\/meta-data"}}',
        "process",
    ),
    (
        "unicode escape in raw JSON",
        '{"event":{"category":"process","type":"start"},'
        '"process":{"command_line":"curl x/\\u0069am/security-credentials/r"}}',
        "process",
    ),
    (
        "args element-wise",
        {
            "event": {"category": "process", "type": "start"},
            "process": {"args": ["curl", "http://169.254.169.254/"]},
        },
        "process",
    ),
    (
        "pattern never spans two args",
        {
            "event": {"category": "process", "type": "start"},
            "process": {"args": ["curl", "169.254.", "169.254"]},
        },
        None,
    ),
    (
        "excluded process in process branch",
        {
            **proc("curl http://169.254.169.254/"),
            "process": {"name": "Cloud-Init", "command_line": "curl http://169.254.169.254/"},
        },
        None,
    ),
    (
        "Kelvin sign does not fold to k",
        proc("curl x/latest/\u212aeta-data"),
        None,
    ),
    (
        "metadata string in a field the rule does not read",
        {
            "event": {"category": "process", "type": "start"},
            "file": {"path": "/tmp/169.254.169.254"},
        },
        None,
    ),
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("label", "event", "expected"), CASES, ids=[c[0] for c in CASES])
def test_verdict(scan_events, engine: str, label: str, event: Any, expected: str | None) -> None:
    result = scan_events([event], engine)
    branches = [hit.branch for hit in result.hits]
    assert branches == ([] if expected is None else [expected]), label


@pytest.mark.parametrize("engine", ENGINES)
def test_witness_names_the_deciding_predicate(scan_events, engine: str) -> None:
    result = scan_events(
        [
            {**NET, "destination": {"ip": ["10.1.1.1", "::ffff:a9fe:a9fe"]}},
            proc("curl -s http://169.254.169.254/latest/meta-data/"),
        ],
        engine,
    )
    assert [h.matched for h in result.hits] == [
        {
            "field": "destination.ip",
            "op": "eq",
            "pattern": "169.254.169.254",
            "value": "::ffff:a9fe:a9fe",
        },
        {
            "field": "process.command_line",
            "op": "wildcard",
            "pattern": "*169.254.169.254*",
            "value": "curl -s http://169.254.169.254/latest/meta-data/",
        },
    ]
