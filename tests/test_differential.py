"""Differential tests: the Rust engine (with its prefilter) must report exactly the hits of the
pure-Python reference engine, on adversarial events built to break a fast path: JSON escapes
anywhere (keys too), mixed case, arrays, nested/dotted key mixes, ip spellings, missing and null
fields, long values, CRLF line ends, malformed lines."""

from __future__ import annotations

import gzip
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import hit_keys
from imds_scan import Rule, default_rules, ir_schema, run_scan
from imds_scan._engine import Scanner
from imds_scan.eql import compile_rule, format_condition, format_rule, quote
from imds_scan.reference.endpoint import CLASSES as ENDPOINT_CLASSES
from imds_scan.reference.ip import parse_ip
from imds_scan.stats import FileStats

# The bundled rule's literals as the engine's prefilter derives them, and near misses.
IMDS_TEXT = [
    *(Scanner([json.dumps(default_rules()[0].ir)]).needles() or []),
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
    if roll < 0.07:  # a lone surrogate escape in a field that decides (U+FFFD in both engines)
        return line.replace("latest", "late\\udc00st", 1).replace(
            "169.254.169.254", "169.254.169.254\\ud83d", 1
        )
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
    assert [_read_fields(f) for f in rs.stats.files] == [_read_fields(f) for f in py.stats.files]


# What both engines report of how an input was read, whatever the cause's wording.
READ_FIELDS = ("lines", "bytes", "source_bytes", "compression", "long_lines")
ERROR_FIELDS = ("error_kind", "error_offset", "error_line")


def _read_fields(stats: FileStats) -> tuple[Any, ...]:
    return tuple(getattr(stats, name) for name in READ_FIELDS + ERROR_FIELDS)


def _gzip_cut_in_a_long_line() -> bytes:
    """Gzip data cut while the engines read past a line longer than max-line-bytes (1000)."""
    noise = random.Random(4).randbytes(300_000).replace(b"\n", b" ")
    hit = json.dumps({"event": {"category": "network"}, "destination.ip": "169.254.169.254"})
    packed = gzip.compress(f"{hit}\n\n{hit}\n".encode() + noise + b"\n" + hit.encode())
    return packed[: len(packed) // 2]


def _numbers_gzip() -> bytes:
    rnd = random.Random(1)
    return gzip.compress("".join(f'{{"a": {rnd.random()}}}\n' for _ in range(50_000)).encode())


def _zstd_with_a_bad_frame() -> bytes:
    line = b'{"event":{"category":"network"},"destination.ip":"169.254.169.254"}\n'
    frames = [zstandard.ZstdCompressor(write_checksum=True).compress(line * 5000)] * 3
    frames[1] = b"\x28\xb5\x2f\xfd" + bytes(b ^ 0x5A for b in frames[1][4:])
    return b"".join(frames)


INPUT_ERRORS = {
    "truncated.gz": (lambda: _numbers_gzip()[:30_000], "damaged"),
    "bad-frame.zst": (_zstd_with_a_bad_frame, "damaged"),
    "long-line.gz": (_gzip_cut_in_a_long_line, "damaged"),
    "header.gz": (lambda: gzip.compress(b"{}\n")[:7], "damaged"),
    "twice.gz": (lambda: gzip.compress(gzip.compress(b"{}\n")), "nested_compression"),
    "utf16.gz": (lambda: gzip.compress("{}\n".encode("utf-16")), "unsupported"),
    "archive.xz": (lambda: b"\xfd7zXZ\x00" + bytes(20), "unsupported"),
}


@pytest.mark.parametrize("name", sorted(INPUT_ERRORS))
def test_engines_agree_on_input_errors(tmp_path: Path, name: str) -> None:
    """Damaged, refused and unreadable inputs: both engines give the same error kind, byte
    offset and line, and the same lines and bytes read before it."""
    make, kind = INPUT_ERRORS[name]
    path = tmp_path / name
    path.write_bytes(make())
    results = [
        run_scan([str(path)], default_rules(), engine=engine, max_line_bytes=1000).stats.files[0]
        for engine in ("rust", "python")
    ]
    assert results[0].error_kind == kind, results[0].error
    assert _read_fields(results[0]) == _read_fields(results[1])
    assert (results[0].error_offset is None) == (kind != "damaged")
    rust, python = ([line for line, _ in f.malformed_examples] for f in results)
    assert rust == python


def test_reference_interruption_has_offset_and_line() -> None:
    """Ctrl-C in the middle of an input: the reference engine reports where, as the Rust
    engine's interrupted error does (kind, byte offset, line); the inputs after it are not
    read."""
    from imds_scan.reference.scan.engine import scan_inputs

    data = b'{"a": 1}\n{"b": 2}\n'

    class Stream:
        def __init__(self) -> None:
            self.left = data

        def read(self, size: int = -1) -> bytes:
            if not self.left:
                raise KeyboardInterrupt
            taken, self.left = self.left[:size], self.left[size:]
            return taken

        def close(self) -> None:
            pass

    _, (first, second), interrupted = scan_inputs([Stream, Stream], [])  # type: ignore[list-item]
    assert interrupted
    assert (first.error_kind, first.error_offset, first.error_line) == (
        "interrupted",
        len(data),
        2,
    )
    assert first.error == f"interrupted: scanned up to byte {len(data)} (line 2)"
    assert (second.error_kind, second.error_offset, second.error_line) == (
        "interrupted",
        None,
        None,
    )


def test_engines_agree_on_missing_inputs_and_read_errors(tmp_path: Path) -> None:
    paths = [str(tmp_path / "missing.ndjson"), str(tmp_path)]
    if Path("/proc/self/mem").exists():  # opens, then fails to read (EIO)
        paths.append("/proc/self/mem")
    rust, python = (
        run_scan(paths, default_rules(), engine=engine).stats.files for engine in ("rust", "python")
    )
    assert [_read_fields(f) for f in rust] == [_read_fields(f) for f in python]
    kinds = [(f.error_kind, f.error_offset, f.error_line) for f in rust]
    assert (
        kinds
        == [("not_found", None, None), ("is_directory", None, None), ("read", 0, None)][
            : len(paths)
        ]
    )


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
        for depth in (999, 1000, 1001, 1002, 5000)
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


# ---------------------------------------------------------------- every operator and function
#
# Random rules over every IR operator (compiled from their EQL text, so the parser and the
# printer are exercised too), random events built from the rules' own literals (case-mutated,
# cut, JSON-escaped, IPs in every spelling), both engines, with and without the prefilter.

TEXT_LITERALS = [
    "curl",
    "Curl",
    "CURL.EXE",
    "meta-data",
    "/latest/",
    "169.254.",
    "a9fe",
    "80",
    "8080",
    "true",
    "é",
    "É",
    "K",
    "\u212a",
    'q"uote',
    "back\\slash",
    "",
    "x",
    "metadata.google.internal",
]
CIDRS = [
    "169.254.0.0/16",
    "169.254.169.254",
    "169.254.169.254/31",
    "10.0.0.0/8",
    "10.1.2.0/23",
    "192.168.1.128/25",
    "0.0.0.0/0",
    "fd00:ec2::/32",
    "fd00:ec2::254",
    "fe80::/10",
    "2001:db8::/48",
    "::ffff:0:0/96",
    "::/0",
    "::/80",
]
IP_SPELLINGS = [
    "169.254.169.254",
    "::ffff:169.254.169.254",
    "::FFFF:A9FE:A9FE",
    "0:0:0:0:0:ffff:a9fe:a9fe",
    "169.254.169.255",
    "169.254.1.1",
    "::ffff:a9fe:101",
    "0000:0000:0000:0000:0000:FFFF:a9fe:0101",
    "10.1.2.3",
    "10.1.3.255",
    "::ffff:10.1.2.3",
    "::ffff:a01:203",
    "0:0:0:0:0:ffff:0a01:0203",
    "192.168.1.200",
    "192.168.1.7",
    "fd00:ec2::254",
    "FD00:0EC2:0:0:0:0:0:254",
    "fd00:ec2:ffff::1%eth0",
    "fe80::1%eth0",
    "FEBF::1",
    "2001:db8::1",
    "2001:0DB8:0000:ffff::1",
    "::1",
    "::",
    "::169.254.169.254",
    "junk",
    "169.254.169.054",
    "",
]
RULE_FIELDS = {
    "a": "keyword",
    "b.c": "keyword",
    "process.name": "keyword",
    "destination.ip": "ip",
    "source.ip": "ip",
}
# Every operator of the IR, read from spec/ir.schema.json: a new one is generated here too
# (KQL's, which EQL cannot write, in tests/test_kql_ops.py).
KEYWORD_OPS = [op for op in ir_schema.ops() if op not in ir_schema.KQL_OPS]
# The text operators are refused on ip fields.
IP_OPS = [
    op
    for op in KEYWORD_OPS
    if op in ("eq", "eq_ci", "cidr", "exists", "imds_endpoint", "lt", "lte", "gt", "gte")
]
assert len(IP_OPS) == 9


def _pattern(rnd: random.Random) -> str:
    text = _mutate_case(rnd, rnd.choice(TEXT_LITERALS))
    chars = list(text)
    for _ in range(rnd.randint(0, 3)):
        chars.insert(rnd.randint(0, len(chars)), rnd.choice("*?*"))
    return "".join(chars)


def _regex(rnd: random.Random) -> str:
    """A wildcard pattern written as a Lucene regular expression (`*` is `.*`, `?` is `.`,
    other punctuation escaped), sometimes with a class or an alternation."""
    out = []
    for c in _pattern(rnd):
        out.append(".*" if c == "*" else "." if c == "?" else c if c.isalnum() else "\\" + c)
    text = "".join(out)
    roll = rnd.random()
    if roll < 0.2:
        return f"({text}|[a-z]+)"
    if roll < 0.3:
        return text + "[0-9]?"
    return text


def _random_pred(rnd: random.Random) -> dict[str, Any]:
    field = rnd.choice(list(RULE_FIELDS))
    ftype = RULE_FIELDS[field]
    op = rnd.choice(IP_OPS if ftype == "ip" else KEYWORD_OPS)
    # EQL's string functions take one string; cidrMatch and the operators take several.
    single = op.startswith(("starts_with", "ends_with", "contains")) or op in ir_schema.RANGE_OPS
    count = 1 if single else rnd.randint(1, 3)
    if op == "exists":
        values = []
    elif op == "cidr":
        values = rnd.sample(CIDRS, rnd.randint(1, 3))
    elif op == "imds_endpoint":
        values = rnd.sample(sorted(ENDPOINT_CLASSES), rnd.randint(1, 3))
    elif ftype == "ip":
        values = [v for v in rnd.sample(IP_SPELLINGS, 4) if parse_ip(v) is not None][:count] or [
            "169.254.169.254"
        ]
    elif op in ("wildcard", "like"):
        values = [_pattern(rnd) for _ in range(count)]
    elif op in ("regex", "regex_ci"):
        values = [_regex(rnd) for _ in range(count)]
    else:
        values = [_mutate_case(rnd, rnd.choice(TEXT_LITERALS)) for _ in range(count)]
    return {"node": "pred", "field": field, "field_type": ftype, "op": op, "values": values}


def _random_expr(rnd: random.Random, depth: int = 0) -> dict[str, Any]:
    roll = rnd.random()
    if depth >= 3 or roll < 0.45:
        return _random_pred(rnd)
    if roll < 0.55:
        return {"node": "not", "arg": _random_expr(rnd, depth + 1)}
    kind = "and" if roll < 0.85 else "or"
    return {"node": kind, "args": [_random_expr(rnd, depth + 1) for _ in range(rnd.randint(2, 3))]}


def _text_value(rnd: random.Random, literals: list[str]) -> Any:
    roll = rnd.random()
    if roll < 0.1:
        return rnd.choice([80, 8080, True, False, None, 1.5])
    if roll < 0.25:
        return rnd.choice(IP_SPELLINGS)
    base = (
        rnd.choice(literals or TEXT_LITERALS)
        .replace("*", rnd.choice(["", "zz"]))
        .replace("?", rnd.choice(["é", "q"]))
    )
    if rnd.random() < 0.3:
        base = base[: rnd.randint(0, len(base))]
    pieces = [
        rnd.choice(["", "x", "Pre ", "/"]),
        _mutate_case(rnd, base),
        rnd.choice(["", "y", " post"]),
    ]
    return "".join(pieces)


def _rule_event(rnd: random.Random, literals: list[str]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for field, ftype in RULE_FIELDS.items():
        if rnd.random() < 0.25:
            continue
        make = (
            (lambda: rnd.choice(IP_SPELLINGS))
            if ftype == "ip"
            else (lambda: _text_value(rnd, literals))
        )
        value: Any = [make() for _ in range(rnd.randint(0, 3))] if rnd.random() < 0.3 else make()
        _place(rnd, doc, field.split("."), value)
    return doc


def _ors(node: dict[str, Any]) -> list[dict[str, Any]]:
    """The operands of a top-level `or`, nested ones flattened (spec/ir.md, Branches)."""
    return [leaf for arg in node["args"] for leaf in _ors(arg)] if node["node"] == "or" else [node]


_AFFIX_QUERY = {
    "contains": ("*lit*", False),
    "contains_ci": ("*lit*", True),
    "ends_with": ("*lit", False),
    "ends_with_ci": ("*lit", True),
}


def _normal(node: dict[str, Any]) -> dict[str, Any]:
    r"""The tree as the compiler builds it (spec/ir.md, Nodes): `and`/`or` chains flat,
    `not not x` as `x`, `endsWith`/`stringContains` whose literal holds `*`, `?` or `\` as
    the wildcard query Elasticsearch sends (the literal escaped: the same test)."""
    if node["node"] == "pred":
        op, values = node["op"], node["values"]
        if op in _AFFIX_QUERY and any(c in values[0] for c in "*?\\"):
            escaped = "".join("\\" + c if c in "*?\\" else c for c in values[0])
            pattern, ci = _AFFIX_QUERY[op]
            wanted = "wildcard_query_ci" if ci else "wildcard_query"
            return {**node, "op": wanted, "values": [pattern.replace("lit", escaped)]}
        return node
    if node["node"] == "not":
        arg = _normal(node["arg"])
        return arg["arg"] if arg["node"] == "not" else {"node": "not", "arg": arg}
    args = [_normal(a) for a in node["args"]]
    flat = [b for a in args for b in (a["args"] if a["node"] == node["node"] else [a])]
    return {"node": node["node"], "args": flat}


def _literals(node: dict[str, Any]) -> list[str]:
    if node["node"] == "pred":
        return list(node["values"])
    if node["node"] == "not":
        return _literals(node["arg"])
    return [v for arg in node["args"] for v in _literals(arg)]


def _write_events(rnd: random.Random, path: Path, exprs: list[dict[str, Any]]) -> Path:
    """5-25 events built from the expressions' literals, some JSON-escaped."""
    literals = [v for e in exprs for v in _literals(e)]
    lines = [
        encode(rnd, _rule_event(rnd, literals), rnd.choice([0.0, 0.0, 0.1, 0.5]))
        for _ in range(rnd.randint(5, 25))
    ]
    path.write_bytes("".join(line + "\n" for line in lines).encode("utf-8", "surrogatepass"))
    return path


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32))
def test_engines_agree_on_every_operator(tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    exprs = [_random_expr(rnd) for _ in range(rnd.randint(1, 3))]
    query = "any where " + " or ".join(f"({format_condition(e)})" for e in exprs)
    rule_ir = compile_rule(query, name="random", rule_id="random", severity="low")
    # The printer and the parser agree: EQL → IR → EQL → IR is stable.
    assert [b["expr"] for b in rule_ir["branches"]] == [
        leaf for e in exprs for leaf in _ors(_normal(e))
    ]
    assert (
        compile_rule(format_rule(rule_ir), name="random", rule_id="random", severity="low")
        == rule_ir
    )
    rules = [Rule("random", "random", "low", query, rule_ir)]
    path = _write_events(rnd, tmp_path / "ops.ndjson", exprs)
    py = run_scan([str(path)], rules, engine="python")
    rs = run_scan([str(path)], rules, engine="rust")
    rs_full = run_scan([str(path)], rules, engine="rust", prefilter=False)
    assert hit_keys(rs_full.hits) == hit_keys(py.hits), query
    assert hit_keys(rs.hits) == hit_keys(py.hits), query


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32))
def test_engines_agree_with_several_rules(tmp_path: Path, seed: int) -> None:
    # Several rules: the Rust engine evaluates on a candidate line only the rules whose
    # needles it holds (the rule gate); the Python engine evaluates them all.
    rnd = random.Random(seed)
    exprs = [_random_expr(rnd) for _ in range(rnd.randint(2, 6))]
    rules = []
    for i, expr in enumerate(exprs):
        query = f"any where {format_condition(expr)}"
        rule_ir = compile_rule(query, name=f"r{i}", rule_id=f"r{i}", severity="low")
        rules.append(Rule(f"r{i}", f"r{i}", "low", query, rule_ir))
    path = _write_events(rnd, tmp_path / "rules.ndjson", exprs)
    py = run_scan([str(path)], rules, engine="python")
    rs = run_scan([str(path)], rules, engine="rust")
    assert hit_keys(rs.hits) == hit_keys(py.hits), [r.query for r in rules]


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**32),
    op=st.sampled_from([*KEYWORD_OPS, "cidr-ip", "eq-ip", "exists-ip"]),
)
def test_prefilter_is_sound_for_every_operator(tmp_path: Path, seed: int, op: str) -> None:
    """One filterable predicate per rule, events holding its literal in any spelling (case,
    `\\u` escapes, `\\/`): the prefilter may skip only lines the reference engine rejects."""
    rnd = random.Random(seed)
    if op.endswith("-ip"):
        pred = _random_pred(rnd)
        while pred["field_type"] != "ip" or pred["op"] != op[:-3]:
            pred = _random_pred(rnd)
    else:
        pred = _random_pred(rnd)
        while pred["field_type"] != "keyword" or pred["op"] != op:
            pred = _random_pred(rnd)
    query = f"any where {format_condition(pred)}"
    rule_ir = compile_rule(query, name="one", rule_id="one", severity="low")
    rules = [Rule("one", "one", "low", query, rule_ir)]
    lines = [
        encode(rnd, _rule_event(rnd, pred["values"]), rnd.choice([0.0, 0.2, 0.6]))
        for _ in range(40)
    ]
    path = tmp_path / "one.ndjson"
    path.write_bytes("".join(line + "\n" for line in lines).encode("utf-8", "surrogatepass"))
    py = run_scan([str(path)], rules, engine="python")
    rs = run_scan([str(path)], rules, engine="rust")
    assert hit_keys(rs.hits) == hit_keys(py.hits), query


def _deep(levels: int, prefix: str) -> str:
    """A condition `levels` deep: `and`/`or` alternating, an `and` on top (one branch)."""
    text = f'{prefix}0 == "x"'
    for i in range(1, levels):
        op = "and" if (levels - 1 - i) % 2 == 0 else "or"
        text = f'{prefix}{i} : "x*" {op} ({text})'
    return text


def test_engines_agree_at_the_nesting_limit(tmp_path: Path) -> None:
    """Rules and an allowlist at the compiler's limit (100 levels; the Rust engine read at
    most about 62 before), wrapped by a host filter: both engines load and agree."""
    from imds_scan.config import condition_allowlist
    from imds_scan.eql import MAX_DEPTH, ir_depth
    from imds_scan.filters import with_host_filter

    queries = {
        "alternating": f"any where {_deep(MAX_DEPTH, 'f')}",
        "nots": "any where " + "not " * 131 + '(f1 : "x*" and not f2 == "x")',
    }
    rules = []
    for name, query in queries.items():
        rule_ir = compile_rule(query, name=name, rule_id=name, severity="low")
        rules.append(Rule(name, name, "low", query, rule_ir))
    assert ir_depth(rules[0].ir["branches"][0]["expr"]) == MAX_DEPTH
    rules = condition_allowlist([_deep(MAX_DEPTH, "g")]).apply(rules)
    rules = with_host_filter(rules, ["web-*"], ["web-9"])
    # The allowlist and the host filter add levels beyond MAX_DEPTH (the IR limit is 128).
    assert ir_depth(rules[0].ir["branches"][0]["expr"]) > MAX_DEPTH
    rnd = random.Random(7)
    events = []
    for _ in range(300):
        event: dict[str, Any] = {"host": {"name": rnd.choice(["web-1", "web-9", "db-1"])}}
        for prefix in "fg":
            for i in range(MAX_DEPTH):
                if rnd.random() < 0.9:
                    event[f"{prefix}{i}"] = rnd.choice(["x", "xy", "y"])
        events.append(json.dumps(event))
    path = tmp_path / "deep.ndjson"
    path.write_text("\n".join(events) + "\n")
    py = run_scan([str(path)], rules, engine="python")
    rs = run_scan([str(path)], rules, engine="rust")
    assert hit_keys(rs.hits) == hit_keys(py.hits)
    assert {h.rule.id for h in py.hits} == {"alternating", "nots"}


# ---------------------------------------------------------------- wildcard patterns

WILDCARD_ALPHABET = "aAbB*?é\u212a"


@settings(max_examples=2000, deadline=None)
@given(
    pattern=st.text(WILDCARD_ALPHABET, max_size=8),
    value=st.text(WILDCARD_ALPHABET, max_size=12),
    fold=st.booleans(),
)
def test_reference_wildcard_agrees_with_the_regex_definition(
    pattern: str, value: str, fold: bool
) -> None:
    from imds_scan.reference.wildcard import Wildcard, ascii_fold, wildcard_regex

    subject = ascii_fold(value) if fold else value
    expected = wildcard_regex(pattern, fold).fullmatch(subject) is not None
    assert Wildcard(pattern, fold).fullmatch(subject) is expected


def test_reference_wildcard_pieces_longer_than_a_word() -> None:
    from imds_scan.reference.wildcard import Wildcard, wildcard_regex

    for pattern in ("*" + "?" * 70 + "b*", "*" + "?" * 63 + "a" + "?" * 64 + "*", "a*?b?*c"):
        for value in ("a" * 69 + "b", "a" * 70 + "b", "a" * 71 + "b", "xa" * 100, "azbzzbc"):
            assert Wildcard(pattern).fullmatch(value) is (
                wildcard_regex(pattern).fullmatch(value) is not None
            ), (pattern, value)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    patterns=st.lists(st.text(WILDCARD_ALPHABET, max_size=8), min_size=1, max_size=8),
    values=st.lists(st.text(WILDCARD_ALPHABET, max_size=12), min_size=1, max_size=30),
)
def test_engines_agree_on_wildcards(tmp_path: Path, patterns: list[str], values: list[str]) -> None:
    rules = []
    for i, pattern in enumerate(patterns):
        op = ":" if i % 2 else "like"
        query = f"any where v {op} {quote(pattern)}"
        rule_ir = compile_rule(query, name=f"w{i}", rule_id=f"w{i}", severity="low")
        rules.append(Rule(f"w{i}", f"w{i}", "low", query, rule_ir))
    path = tmp_path / "w.ndjson"
    path.write_text("".join(json.dumps({"v": v}) + "\n" for v in values), encoding="utf-8")
    py = run_scan([str(path)], rules, engine="python")
    rs = run_scan([str(path)], rules, engine="rust", prefilter=False)
    assert hit_keys(rs.hits) == hit_keys(py.hits)


CATASTROPHIC = """
import json, sys, tempfile
from imds_scan import Rule
from imds_scan.eql import compile_rule
from imds_scan import run_scan
pattern, engine = sys.argv[1], sys.argv[2]
query = f"any where v : {json.dumps(pattern, ensure_ascii=False)}"
rule = Rule("c", "c", "low", query, compile_rule(query, name="c", rule_id="c", severity="low"))
with tempfile.NamedTemporaryFile("w", suffix=".ndjson") as f:
    f.write(json.dumps({"v": "a" * 1_000_000}) + "\\n")
    f.flush()
    print(len(run_scan([f.name], [rule], engine=engine, prefilter=False).hits))
"""


@pytest.mark.parametrize("engine", ["python", "rust"])
@pytest.mark.parametrize(
    "pattern",
    ["*a*a*a*a*a*a*a*b", "*" + "?" * 5000 + "b*", "*" + "a" * 5000 + "b*", "*a?" * 50 + "b*"],
)
def test_wildcards_never_backtrack_on_a_long_value(engine: str, pattern: str) -> None:
    """A 1 MB value: the reference engine's regex took over 120 s on `*a*a*…b` (exponential
    in the stars); both matchers make one pass now. The time-out (generous: a pass takes well
    under a second) is the failure, not a measured duration."""
    proc = subprocess.run(
        [sys.executable, "-c", CATASTROPHIC, pattern, engine],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "0\n"
