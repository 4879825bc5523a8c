"""The hardened rule pack (`--pack hardened`, issue 8): every spelling and endpoint is caught
and labelled on both engines, near misses are not, a benign corpus gives no hit, and the
imdsEndpoint decoder agrees between the engines on random tokens."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ENGINES, hit_keys
from imds_scan import run_scan
from imds_scan.eql import EqlError, compile_rule
from imds_scan.reference.endpoint import findings, inet_aton
from imds_scan.rules import Rule, RuleFileError, load_rule_file, load_rules, pack_path

ROOT = Path(__file__).resolve().parent.parent


def pack() -> list[Rule]:
    return load_rules([pack_path("hardened")])[0]


# (spelling as written, endpoint class, rule id): the host alone (no path), so the finding is
# the address itself.
A = "imds-hardened-endpoint"
M = "imds-hardened-metadata"
C = "imds-hardened-credentials"
SPELLINGS = [
    "169.254.169.254",
    "2852039166",
    "0xA9FEA9FE",
    "0xA9.0xFE.0xA9.0xFE",
    "0251.0376.0251.0376",
    "0251.254.169.254",
    "169.254.43518",
    "169.16689662",
    "0xa9.0xfea9fe",
    "0251.00376.000251.0000376",
    "169%2e254%2e169%2e254",
    "169\u3002254\u3002169\u3002254",
    "169\uff61254\uff61169\uff61254",
    "169\uff0e254\uff0e169\uff0e254",
]
BRACKETED = [
    "[::ffff:a9fe:a9fe]",
    "[::ffff:169.254.169.254]",
    "[0:0:0:0:0:ffff:a9fe:a9fe]",
]
CASES: list[tuple[str, str, str, str]] = (
    # (value, expected class, expected witness text, rule id)
    [(f"curl -s http://{s}/", "imds-link-local", s, A) for s in SPELLINGS]
    + [(f"curl http://{s}:80/", "imds-link-local", s, A) for s in BRACKETED]
    + [
        ("wget http://[fd00:ec2::254]/", "aws-imds-ipv6", "[fd00:ec2::254]", A),
        ("curl http://169.254.169.254.nip.io/", "imds-wildcard-dns", "169.254.169.254.nip.io", A),
        ("curl 169-254-169-254.sslip.io", "imds-wildcard-dns", "169-254-169-254.sslip.io", A),
        ("curl http://user@0xA9FEA9FE:8080/", "imds-link-local", "0xA9FEA9FE", A),
        (
            "curl -X PUT http://169.254.169.254/latest/api/token",
            "aws-imds-token",
            "/latest/api/token",
            M,
        ),
        ("curl http://instance-data/", "aws-instance-data", "instance-data", M),
        (
            "curl http://instance-data.ec2.internal./",
            "aws-instance-data",
            "instance-data.ec2.internal",
            M,
        ),
        ("curl http://169.254.170.2/v2/credentials/abc", "ecs-credentials", "169.254.170.2", C),
        (
            "env AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/v2/credentials/x sh",
            "ecs-credentials",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            C,
        ),
        ("curl http://169.254.170.23/v1/credentials", "eks-pod-identity", "169.254.170.23", C),
        ("curl http://[fd00:ec2::23]/v1/credentials", "eks-pod-identity", "[fd00:ec2::23]", C),
        ("curl http://metadata.goog/", "gcp-metadata-host", "metadata.goog", M),
        ("curl -H 'Metadata-Flavor: Google' http://metadata/", "gcp-metadata-host", "metadata", M),
        (
            "curl http://10.0.0.5/computeMetadata/v1beta1/project",
            "gcp-metadata-v1beta1",
            "/computeMetadata/v1beta1",
            M,
        ),
        (
            "curl 'http://10.0.0.5/metadata/identity/oauth2/token?resource=x'",
            "azure-mi-token",
            "/metadata/identity/oauth2/token",
            C,
        ),
        (
            "curl http://168.63.129.16/machine?comp=goalstate",
            "azure-wireserver",
            "168.63.129.16",
            A,
        ),
        ("curl http://10.1.1.1/opc/v2/instance/", "oracle-metadata", "/opc/v2/", M),
        ("curl http://10.1.1.1/opc/v1/instance/", "oracle-metadata", "/opc/v1/", M),
        ("curl http://192.0.0.192/", "oracle-imds", "192.0.0.192", A),
        ("curl http://100.100.100.200/", "alibaba-imds", "100.100.100.200", A),
        (
            "curl http://metadata.tencentyun.com/",
            "tencent-metadata-host",
            "metadata.tencentyun.com",
            M,
        ),
        ("curl http://10.0.0.9/metadata/v1/id", "digitalocean-metadata", "/metadata/v1/", M),
        (
            "curl http://10.0.0.9/openstack/latest/meta_data.json",
            "openstack-metadata",
            "/openstack/latest",
            M,
        ),
        ("curl http://10.0.0.9/hetzner/v1/metadata", "hetzner-metadata", "/hetzner/v1/metadata", M),
        ("curl http://169.254.42.42/conf", "scaleway-imds", "169.254.42.42", A),
        (
            "curl http://0xA9FEA9FE/latest/meta-data/iam/security-credentials/role",
            "aws-credentials",
            "/latest/meta-data/iam/security-credentials",
            C,
        ),
        (
            "curl http://169.254.169.254%2flatest%2fmeta-data%2f",
            "aws-metadata",
            "%2flatest%2fmeta-data",
            M,
        ),
    ]
)
NOT_FLAGGED = [
    "curl http://169.254.169.253/",
    "ntpdate 169.254.169.123",
    "curl http://1169.254.169.2545/",
    "ping 169.254.169.254.5",
    "echo 0x169.254.169.254",
    "id=12852039166",
    "curl http://10.0.0.1/metadata",
    "curl http://metadata/computeMetadata",
    "version 169.254.169.254x",
    "169.254.169.254_old",
    "curl http://[::ffff:a9fe:a9fd]/",
    "curl 169-254-169-253.nip.io",
]


def _events(value: str) -> list[tuple[str, dict[str, Any]]]:
    """The value as each field it fits: command line, an args element, url fields."""
    url = value.split()[-1].strip("'")
    return [
        ("process.command_line", {"process": {"command_line": value}}),
        ("process.args", {"process": {"args": ["sh", "-c", value]}}),
        ("url.full", {"url": {"full": url}}),
        ("url.original", {"url": {"original": url}}),
    ]


@pytest.mark.parametrize("engine", ENGINES)
def test_every_spelling_and_endpoint_is_labelled(scan_events, engine: str) -> None:
    events: list[dict[str, Any] | str] = []
    expected = []
    for value, cls, token, rule_id in CASES:
        for field, event in _events(value):
            url = value.split()[-1]
            if field.startswith("url.") and (token not in url or "Metadata-Flavor" in value):
                continue  # the token (or the header it needs) is outside the URL
            events.append(event)
            expected.append((field, cls, token, rule_id))
    result = run_scan_events(scan_events, events, engine)
    got = {h.line: h for h in result.hits}
    for line, (field, cls, token, rule_id) in enumerate(expected, start=1):
        hit = got.get(line)
        assert hit is not None, (field, cls, token)
        assert hit.rule.id == rule_id, (field, token, hit.rule.id)
        assert hit.matched == {
            "field": field,
            "op": "imds_endpoint",
            "pattern": cls,
            "value": token,
        }, (field, token)
    assert len(result.hits) == len(expected)  # one rule per event: the levels exclude each other


def run_scan_events(scan_events: Any, events: list[dict[str, Any] | str], engine: str) -> Any:
    return scan_events(events, engine, pack())


@pytest.mark.parametrize("engine", ENGINES)
def test_destination_and_domain_fields(scan_events, engine: str) -> None:
    events: list[dict[str, Any] | str] = [
        {"destination": {"address": "0xA9FEA9FE"}},
        {"destination": {"ip": "::ffff:a9fe:a9fe"}},
        {"url": {"domain": "169.254.169.254.nip.io"}},
        {"destination": {"domain": "metadata.goog"}},
        {"dns": {"question": {"name": "instance-data.ec2.internal"}}},
        {"destination": {"address": "169.254.169.253"}},
    ]
    hits = run_scan_events(scan_events, events, engine).hits
    assert [(h.line, h.matched["pattern"], h.matched["value"]) for h in hits] == [
        (1, "imds-link-local", "0xA9FEA9FE"),
        (2, "imds-link-local", "::ffff:a9fe:a9fe"),
        (3, "imds-wildcard-dns", "169.254.169.254.nip.io"),
        (4, "gcp-metadata-host", "metadata.goog"),
        (5, "aws-instance-data", "instance-data.ec2.internal"),
    ]


@pytest.mark.parametrize("engine", ENGINES)
def test_near_misses_are_not_flagged(scan_events, engine: str) -> None:
    events: list[dict[str, Any] | str] = [
        event for value in NOT_FLAGGED for _, event in _events(value)
    ]
    events += [{"destination": {"ip": "169.254.169.253"}}, {"url": {"domain": "metadata"}}]
    assert run_scan_events(scan_events, events, engine).hits == []


WIRESERVER_PORTS = [
    # (event, pack hit?): WireServer is HTTP on 80 and 32526; 168.63.129.16 is also Azure's
    # DNS resolver (53), which every Azure VM queries.
    ({"destination": {"ip": "168.63.129.16", "port": 53}}, False),
    ({"destination": {"ip": "168.63.129.16", "port": "53"}, "network": {"protocol": "dns"}}, False),
    ({"destination": {"address": "168.63.129.16:53"}}, False),
    ({"url": {"full": "http://168.63.129.16:53/"}}, False),
    ({"url": {"full": "http://[::ffff:a83f:8110]:53/"}}, False),
    ({"destination": {"ip": "168.63.129.16", "port": 80}}, True),
    ({"destination": {"ip": "168.63.129.16", "port": "32526"}}, True),
    ({"destination": {"ip": "168.63.129.16", "port": [53, 80]}}, True),  # any of them
    ({"destination": {"ip": "168.63.129.16"}}, True),  # no port anywhere: counted
    ({"destination": {"ip": "168.63.129.16", "port": "domain"}}, True),  # not a number
    ({"url": {"full": "http://168.63.129.16:32526/vmSettings"}}, True),
    ({"url": {"full": "http://[::ffff:a83f:8110]:80/"}}, True),
    (
        {
            "url": {"full": "http://168.63.129.16/machine?comp=goalstate"},
            "destination": {"port": 80},
        },
        True,
    ),
    # The port in the value wins over the event's.
    ({"url": {"full": "http://168.63.129.16:53/"}, "destination": {"port": 80}}, False),
    # Unscoped classes ignore ports: 169.254.169.254 has no other use.
    ({"destination": {"ip": "169.254.169.254", "port": 53}}, True),
]


@pytest.mark.parametrize("engine", ENGINES)
def test_wireserver_is_scoped_by_port(scan_events, engine: str) -> None:
    events: list[dict[str, Any] | str] = [event for event, _ in WIRESERVER_PORTS]
    hits = run_scan_events(scan_events, events, engine).hits
    flagged = [line for line, (_, hit) in enumerate(WIRESERVER_PORTS, start=1) if hit]
    assert [h.line for h in hits] == flagged
    assert {h.matched["pattern"] for h in hits} == {"azure-wireserver", "imds-link-local"}


def test_pack_branches_say_what_they_detect(tmp_path: Path) -> None:
    names = [r.branch_names for r in pack()]
    assert names[0][0] == "credentials-in-process.command_line"
    assert names[0][-1] == "credentials-in-dns.question.name"
    assert names[1:] == [["metadata-path-or-host"], ["metadata-address"]]
    assert not any(re.fullmatch(r"branch\d+", n) for rule in names for n in rule)
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[rule]\nname = "x"\nrule_id = "x"\nlanguage = "eql"\nbranch_names = ["a"]\n'
        'query = \'any where a == "1" or b == "2"\'\n'
    )
    with pytest.raises(RuleFileError, match=r"rule.branch_names: expected 2 distinct names"):
        load_rule_file(bad)


def test_inet_aton_ranges() -> None:
    assert inet_aton("1.2.3.4") == bytes(10) + b"\xff\xff\x01\x02\x03\x04"
    assert inet_aton("0x1.0x100") is not None
    assert inet_aton("1.2.65536") is None
    assert inet_aton("1.16777216") is None
    assert inet_aton("4294967296") is None
    assert inet_aton("08") is None  # not octal
    assert inet_aton("1.2.3.4.5") is None
    assert inet_aton("") is None


def test_compiler_checks_classes() -> None:
    with pytest.raises(EqlError, match="not an endpoint class"):
        compile_rule('any where imdsEndpoint(url.full, "nope")', name="x")
    ir = compile_rule('any where imdsEndpoint(destination.ip, "imds-link-local")', name="x")
    assert ir["branches"][0]["expr"]["op"] == "imds_endpoint"


def test_cli_pack_and_config(tmp_path: Path) -> None:
    data = tmp_path / "e.ndjson"
    data.write_text(json.dumps({"process": {"command_line": "curl http://2852039166/"}}) + "\n")
    config = tmp_path / "imds-scan.toml"
    config.write_text('pack = ["hardened"]\n')
    for args in (["--pack", "hardened"], ["--config", str(config)]):
        out = subprocess.run(
            [sys.executable, "-m", "imds_scan", *args, "--format", "ndjson", str(data)],
            capture_output=True,
            text=True,
        )
        lines = [json.loads(line) for line in out.stdout.splitlines()]
        assert [h["rule_id"] for h in lines] == ["imds-hardened-endpoint"], out.stderr
    out = subprocess.run(
        [sys.executable, "-m", "imds_scan", "--pack", "nope", str(data)],
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0 and "unknown rule pack" in out.stderr


def test_benign_corpus_has_no_hits(tmp_path: Path) -> None:
    corpus = tmp_path / "benign.ndjson"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "gen_corpus.py"),
            "--size",
            "20M",
            "--tp-rate",
            "0",
            "--near-miss-rate",
            "0",
            "--quiet",
            "--out",
            str(corpus),
        ],
        check=True,
    )
    result = run_scan([str(corpus)], pack(), engine="rust")
    assert result.hits == []


_TOKEN_PARTS = st.sampled_from(
    [
        "169",
        "254",
        "0xA9",
        "0xfe",
        "0251",
        "0376",
        "00",
        "0",
        "43518",
        "16689662",
        "2852039166",
        "0xA9FEA9FE",
        ".",
        ".",
        ":",
        "[",
        "]",
        "::ffff:",
        "a9fe",
        "fd00:ec2::",
        "254",
        "23",
        "%2e",
        "%2f",
        "%2",
        "\u3002",
        "\uff0e",
        "-",
        ".nip.io",
        ".sslip.io",
        "/",
        "@",
        " ",
        "instance-data",
        "metadata",
        "Metadata-Flavor",
        "/latest/api/token",
        "/LATEST/meta-data",
        "x",
        "_",
        "170.2",
        "42.42",
        "168.63.129.16",
        ":53",
        ":80",
        ":32526",
        "é",
        "0x",
        "08",
        "\\",
        '"',
    ]
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.lists(_TOKEN_PARTS, max_size=12).map("".join), min_size=1, max_size=20))
def test_decoder_differential(tmp_path: Path, values: list[str]) -> None:
    """Rust vs Python on random tokens: every class, every field kind."""
    classes = sorted({c for v in values for c, _ in findings(v)} | {"imds-link-local"})
    query = "any where " + " or ".join(
        f"imdsEndpoint({f}, {', '.join(json.dumps(c) for c in classes)})"
        for f in ("process.command_line", "process.args", "destination.ip")
    )
    ir = compile_rule(query, name="diff", rule_id="diff")
    rule = Rule("diff", "diff", "", query, ir)
    path = tmp_path / "diff.ndjson"
    lines = []
    for value in values:
        lines.append(json.dumps({"process": {"command_line": value}}))
        lines.append(json.dumps({"process": {"args": [value, "x"]}}, ensure_ascii=False))
        port = [None, 53, 80, "32526"][len(value) % 4]  # port-scoped classes read it
        lines.append(json.dumps({"destination": {"ip": value, "port": port}}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    hits = {e: hit_keys(run_scan([str(path)], [rule], engine=e).hits) for e in ENGINES}
    assert hits["rust"] == hits["python"]


RAW_LINES = [
    # JSON escapes around and inside a spelling: the Rust prefilter must still pass them.
    r'{"process":{"command_line":"echo\n169.254.169.254"}}',
    r'{"process":{"command_line":"curl http:\/\/10.0.0.1\/latest\/api\/token"}}',
    r'{"process":{"command_line":"curl \u0031\u0036\u0039.254.169.254"}}',
    r'{"process":{"command_line":"curl 169\u3002254\u3002169\u3002254"}}',
    r'{"process":{"command_line":"curl \"0xA9FEA9FE\""}}',
    r'{"process":{"args":[2852039166]}}',
    r'{"destination":{"address":"[::FFFF:A9FE:A9FE]"}}',
    r'{"url":{"full":"http://[FD00:0EC2::254]/"}}',
    r'{"url":{"full":"http://%31%36%39.254.169.254/"}}',
    r'{"url":{"full":"http://169.254.169.254\t/"}}',
    r'{"process":{"command_line":"x\\169.254.169.254"}}',
]


@pytest.mark.parametrize("engine", ENGINES)
def test_json_escapes(scan_events, engine: str) -> None:
    hits = run_scan_events(scan_events, list(RAW_LINES), engine).hits
    assert sorted(h.line for h in hits) == list(range(1, len(RAW_LINES) + 1))


def test_prefilter_is_used_and_sound(tmp_path: Path) -> None:
    from imds_scan._engine import Scanner

    assert Scanner([json.dumps(r.ir) for r in pack()]).needles() == []  # active, no needle
    path = tmp_path / "raw.ndjson"
    path.write_text("\n".join(RAW_LINES) + "\n", encoding="utf-8")
    with_filter = run_scan([str(path)], pack(), engine="rust")
    without = run_scan([str(path)], pack(), engine="rust", prefilter=False)
    assert hit_keys(with_filter.hits) == hit_keys(without.hits)
    assert len(with_filter.hits) == len(RAW_LINES)


def test_table_names_the_rule_when_several_ran(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from imds_scan.output import write_table

    monkeypatch.setenv("COLUMNS", "250")  # cells are cut to fit the terminal's width
    from imds_scan.rules import default_rules

    data = tmp_path / "t.ndjson"
    data.write_text(
        json.dumps({"event": {"category": "process"}, "process": {"args": ["curl", "0xA9FEA9FE"]}})
        + "\n"
        + json.dumps({"destination": {"ip": "169.254.169.254"}, "event": {"category": "network"}})
        + "\n"
    )

    def table(rules: list[Rule]) -> str:
        out = io.StringIO()
        write_table(run_scan([str(data)], rules).hits, out)
        return out.getvalue()

    both = table([*default_rules(), *pack()])
    assert "rule" in both.splitlines()[1]  # the header, under the hit count
    assert "imds-hardened-endpoint (medium)" in both and "imds-default (high)" in both
    # One rule: no column for it.
    assert "imds-default" not in table(default_rules())


SAMPLE = Path(__file__).resolve().parent.parent / "bench" / "sample" / "ecs-sample.ndjson"


@pytest.mark.parametrize("engine", ENGINES)
def test_sample_azure_dns_is_not_wireserver(engine: str) -> None:
    """The sample's near misses include Azure DNS (168.63.129.16 port 53)."""
    assert "168.63.129.16" in SAMPLE.read_text()
    hits = run_scan([str(SAMPLE)], pack(), engine=engine).hits
    assert hits and not [h for h in hits if "168.63.129.16" in h.event_text]
