"""Differential tests: the Rust engine (with its prefilter) must report exactly the hits of the
pure-Python reference engine, on adversarial events built to break a fast path: JSON escapes
anywhere (keys too), mixed case, arrays, nested/dotted key mixes, ip spellings, missing and null
fields, long values, CRLF line ends, malformed lines."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import hit_keys
from imds_scan import default_rules
from imds_scan.scan import run_scan

IMDS_TEXT = [
    "169.254.169.254",
    "metadata/instance",
    "iam/security-credentials",
    "latest/meta-data",
    "latest/dynamic",
    "instance-identity",
    "computeMetadata",
    "metadata.google.internal",
    "imds.azure.com",
    "metadata/v1",
    "fd00:ec2::254",
    "169.254.169.253",
    "metadata",
]
IPS = [
    "169.254.169.254",
    "::ffff:169.254.169.254",
    "::FFFF:a9fe:a9fe",
    "0:0:0:0:0:ffff:a9fe:a9fe",
    "0000:0000:0000:0000:0000:FFFF:A9FE:A9FE",
    "::169.254.169.254",
    "64:ff9b::a9fe:a9fe",
    "169.254.169.054",
    "169.254.169.253",
    "10.0.0.1",
    "fd00:ec2::254",
    "FD00:EC2:0:0:0:0:0:254",
    "fe80::1%eth0",
    "::ffff:a9fe:a9fe%1",
    "not-an-ip",
    "",
]
NAMES = [
    "curl",
    "cloud-init",
    "CLOUD-INIT",
    "Cloud-Init",
    "waagent",
    "WaAgent",
    "WaAppAgent.exe",
    "waappagent.EXE",
    "amazon-ssm-agent",
    "google_guest_agent",
    "AzureGuestAgent.exe",
    "WindowsAzureGuestAgent.exe",
    "aws-cfn-bootstrap",
    "python3",
    "\u212aelvin",
    "\u017fsm",
]
FIELDS = [
    "event.category",
    "event.type",
    "destination.ip",
    "destination.address",
    "url.domain",
    "process.name",
    "process.args",
    "process.command_line",
    "message",
    "host.name",
]


def _mutate_case(rnd: random.Random, text: str) -> str:
    return "".join(c.upper() if rnd.random() < 0.3 else c for c in text)


def _scalar(rnd: random.Random, field: str) -> Any:
    kind = rnd.random()
    if field == "event.category":
        return rnd.choice(["network", "process", "host", "Network", "file", "network "])
    if field == "event.type":
        return rnd.choice(["start", "Start", "end", "info", "connection"])
    if field == "process.name":
        return rnd.choice(NAMES)
    if field.endswith(".ip") or (field == "destination.address" and kind < 0.5):
        return rnd.choice(IPS)
    if kind < 0.1:
        return rnd.choice([None, True, 169, 1.5e3, -0.0])
    if kind < 0.2:
        return "x" * rnd.randint(1000, 3000) + rnd.choice(IMDS_TEXT)
    pieces = [
        rnd.choice(["curl ", "http://", "/", " -H x", "é", "☃", "\t", "\u212a", ""])
        for _ in range(rnd.randint(0, 3))
    ]
    pieces.insert(rnd.randint(0, len(pieces)), _mutate_case(rnd, rnd.choice(IMDS_TEXT)))
    return "".join(pieces)


def _value(rnd: random.Random, field: str) -> Any:
    if rnd.random() < 0.3:
        return [
            [_scalar(rnd, field)] if rnd.random() < 0.2 else _scalar(rnd, field)
            for _ in range(rnd.randint(0, 3))
        ]
    return _scalar(rnd, field)


def _place(rnd: random.Random, doc: dict[str, Any], parts: list[str], value: Any) -> None:
    """Put a value at a path, choosing nested objects or dotted keys at random."""
    cut = rnd.randint(1, len(parts))
    key = ".".join(parts[:cut])
    if cut == len(parts):
        doc[key] = value
        return
    child = doc.get(key)
    if not isinstance(child, dict):
        child = {}
        doc[key] = [child] if rnd.random() < 0.1 else child
    if isinstance(child, list):
        child = child[0]
    _place(rnd, child, parts[cut:], value)


def _encode_str(rnd: random.Random, text: str, escape_rate: float) -> str:
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in '"\\' or code < 0x20:
            out.append(json.dumps(ch)[1:-1])
        elif rnd.random() < escape_rate:
            if ch == "/" and rnd.random() < 0.5:
                out.append("\\/")
            elif code > 0xFFFF:
                code -= 0x10000
                out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04X}")
            else:
                out.append(f"\\u{code:04x}" if rnd.random() < 0.5 else f"\\u{code:04X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def encode(rnd: random.Random, obj: Any, escape_rate: float) -> str:
    """JSON text with randomly escaped characters, in keys and values alike."""
    if isinstance(obj, dict):
        items = [
            f"{_encode_str(rnd, k, escape_rate)}:{encode(rnd, v, escape_rate)}"
            for k, v in obj.items()
        ]
        return "{" + rnd.choice([",", ", "]).join(items) + "}"
    if isinstance(obj, list):
        return "[" + ",".join(encode(rnd, v, escape_rate) for v in obj) + "]"
    if isinstance(obj, str):
        return _encode_str(rnd, obj, escape_rate)
    return json.dumps(obj)


def make_line(rnd: random.Random) -> str:
    doc: dict[str, Any] = {}
    for field in rnd.sample(FIELDS, rnd.randint(1, len(FIELDS))):
        _place(rnd, doc, field.split("."), _value(rnd, field))
    line = encode(rnd, doc, rnd.choice([0.0, 0.0, 0.05, 0.5]))
    roll = rnd.random()
    if roll < 0.03:
        return line[: rnd.randint(0, len(line))]  # truncated
    if roll < 0.05:
        return rnd.choice(["[1,2]", '"x"', "{}", "", "   ", '{"a":NaN}', '{"a":"\\ud800"}'])
    return line


def _scan_both(path: Path) -> None:
    rules = default_rules()
    py = run_scan([str(path)], rules, engine="python")
    rs = run_scan([str(path)], rules, engine="rust")
    rs_full = run_scan([str(path)], rules, engine="rust", prefilter=False)
    assert hit_keys(rs.hits) == hit_keys(py.hits)
    assert hit_keys(rs_full.hits) == hit_keys(py.hits)
    for name in ("events", "malformed", "invalid_utf8"):
        assert rs_full.stats.total(name) == py.stats.total(name), name
    assert rs.stats.total("events") == py.stats.total("events")


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32), count=st.integers(1, 30), crlf=st.booleans())
def test_engines_agree_on_adversarial_events(
    tmp_path: Path, seed: int, count: int, crlf: bool
) -> None:
    rnd = random.Random(seed)
    ending = "\r\n" if crlf else "\n"
    path = tmp_path / "adversarial.ndjson"
    path.write_bytes(
        "".join(make_line(rnd) + ending for _ in range(count)).encode("utf-8", "surrogatepass")
    )
    _scan_both(path)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=300))
def test_engines_agree_on_arbitrary_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "bytes.ndjson"
    path.write_bytes(
        b'{"event":{"category":"network"},"destination.ip":"169.254.169.254"}\n' + data
    )
    _scan_both(path)


def test_engines_agree_on_nesting_limit(tmp_path: Path) -> None:
    path = tmp_path / "deep.ndjson"
    lines = [
        '{"event":{"category":"network"},"destination.ip":"169.254.169.254","a":'
        + "[" * (depth - 1)
        + "]" * (depth - 1)
        + "}"
        for depth in (126, 127, 128, 129, 5000)
    ]
    path.write_text("\n".join(lines) + "\n")
    py = run_scan([str(path)], default_rules(), engine="python")
    assert [h.line for h in py.hits] == [1, 2]
    assert py.stats.total("malformed") == 3
    _scan_both(path)


GENERATOR = Path(__file__).parents[1] / "bench" / "gen_corpus.py"


def test_engines_agree_on_generated_corpus(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.ndjson"
    subprocess.run(
        [
            sys.executable,
            str(GENERATOR),
            "--size",
            "8M",
            "--seed",
            "7",
            "--tp-rate",
            "0.01",
            "--near-miss-rate",
            "0.02",
            "--out",
            str(corpus),
        ],
        check=True,
        capture_output=True,
    )
    expected = json.loads(Path(f"{corpus}.expected.json").read_text())
    rules = default_rules()
    py = run_scan([str(corpus)], rules, engine="python")
    rs = run_scan([str(corpus)], rules, engine="rust", threads=2)
    assert len(py.hits) == expected["hits"] > 0
    assert hit_keys(rs.hits) == hit_keys(py.hits)
    assert rs.stats.total("events") == py.stats.total("events") == expected["lines"]
    by_branch = {b: sum(h.branch == b for h in rs.hits) for b in ("network", "process")}
    assert by_branch == expected["hits_by_branch"]
