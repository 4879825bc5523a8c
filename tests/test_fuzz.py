"""Bounded fuzzing with hypothesis (docs/fuzzing.md): the Rust engine with its prefilter, the
Rust engine with ``--no-prefilter`` and the Python reference engine on generated adversarial
lines (the rules' literals respelled with JSON escapes and case changes, dotted and nested
keys, arrays, nulls, invalid UTF-8, long values, damaged lines, exporter wrappers), under the
bundled rule and the hardened pack together, lone surrogate escapes (``\\ud800``, read as
U+FFFD) and nesting up to and past the 1000-level limit included; wildcard patterns of many
``*`` and ``?`` through both engines; damaged gzip and zstd inputs through both engines; the
EQL compiler on token soup and on deep nesting. ``IMDS_FUZZ_EXAMPLES=N`` runs N examples per
test instead of the bounded default."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import zlib
from pathlib import Path
from typing import Any

import pytest
import zstandard
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from imds_scan import Rule, default_rules, ir_schema, run_scan
from imds_scan._engine import Scanner
from imds_scan.eql import EqlError, compile_rule, format_rule, parse_condition, rule_options
from imds_scan.rules import load_rules, pack_path
from imds_scan.rules.prefilter import event_form

HARDENED_IR = Path(__file__).parents[1] / "crates/imds-core/tests/data/hardened_ir.json"


def _settings(examples: int) -> settings:
    return settings(
        max_examples=int(os.environ.get("IMDS_FUZZ_EXAMPLES", examples)),
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


def _rules() -> list[Rule]:
    pack, _ = load_rules([pack_path("hardened")])
    return default_rules() + pack


RULES = _rules()


def test_rust_fuzz_fixture_is_the_compiled_pack() -> None:
    """crates/imds-core/tests/fuzz_props.rs fuzzes the pack's IR as compiled here. After a
    change to the pack: ``python3 -c 'import json, test_fuzz as t; print(json.dumps([r.ir for
    r in t.RULES[1:]], indent=1))' > ../crates/imds-core/tests/data/hardened_ir.json`` (in
    tests/, with the package on the path)."""
    assert json.loads(HARDENED_IR.read_text()) == [r.ir for r in RULES[1:]]


# ---------------------------------------------------------------- adversarial lines


def _literals(node: dict[str, Any]) -> list[str]:
    if node["node"] == "pred":
        if node["op"] == "imds_endpoint":
            return []  # class names, not text
        return [v.replace("*", "").replace("?", "x") for v in node["values"]]
    if node["node"] == "not":
        return _literals(node["arg"])
    return [v for arg in node["args"] for v in _literals(arg)]


# The rules' literals, and spellings of metadata endpoints that the hardened pack decodes.
LITERALS = sorted(
    {v for r in RULES for b in r.ir["branches"] for v in _literals(b["expr"]) if v}
    | {
        "2852039166",
        "0xA9FEA9FE",
        "0251.0376.0251.0376",
        "169.254.43518",
        "[::ffff:a9fe:a9fe]",
        "169%2e254%2e169%2e254",
        "169\uff0e254\uff0e169\uff0e254",
        "169.254.169.254.nip.io",
        "http://169.254.170.2/v2/credentials/abc",
        "fd00:ec2::254/latest/api/token",
        "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/",
        "169.254.169.254/metadata/identity/oauth2/token",
        "100.100.100.200/latest/meta-data/ram/security-credentials/",
        "168.63.129.16",
        "curl -s -H Metadata:true http://",
    }
)


def _preds(node: dict[str, Any]) -> list[dict[str, Any]]:
    if node["node"] == "pred":
        return [node]
    if node["node"] == "not":
        return _preds(node["arg"])
    return [p for arg in node["args"] for p in _preds(arg)]


FIELDS = sorted({p["field"] for r in RULES for b in r.ir["branches"] for p in _preds(b["expr"])})
INVALID_UTF8 = [b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xc0\xaf", b"\x80"]
FILLER = ["", " ", "/", '"', "\\", "\t", "\x00", "\x7f", ".", "é", "\u212a", "\U0001f600", ":"]
# Escapes of lone surrogates (both engines read each as U+FFFD), alone or next to a pair or
# other escapes.
LONE = [
    rb"\ud800",
    rb"\uDFFF",
    rb"\ud83d",
    rb"\uDE00",
    rb"\udbff\u0041",
    rb"\ud800\ud800\udc00",
    rb"\udc00\ud800",
    rb"\ud83d\/",
    rb"\ud83d\\ude00",
    rb"\ud83d\n\ude00",
]


@st.composite
def _string(draw: st.DrawFn) -> bytes:
    """A JSON string (quotes included) of pieces, each respelled: ASCII case changes, `\\/`,
    `\\uXXXX` in either case (surrogate pairs for astral characters), lone surrogate escapes,
    raw invalid UTF-8, long runs."""
    out = [b'"']
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.integers(0, 10))
        if kind <= 5:
            text = draw(st.sampled_from(LITERALS))
        elif kind == 6:
            text = draw(st.sampled_from(FILLER))
        elif kind == 7:
            out.append(draw(st.sampled_from(INVALID_UTF8)))
            continue
        elif kind == 8:
            text = "x" * draw(st.integers(1000, 5000))
        elif kind == 10:
            out.append(draw(st.sampled_from(LONE)))
            continue
        else:
            text = str(draw(st.integers(0, 10**6)))
        case = draw(st.integers(0, 2**64 - 1)) if kind != 8 and draw(st.booleans()) else 0
        escape = draw(st.integers(0, 2**64 - 1)) if kind != 8 and draw(st.booleans()) else 0
        upper_hex = draw(st.booleans())
        if not case and not escape:
            out.append(json.dumps(text, ensure_ascii=False)[1:-1].encode())
            continue
        for i, ch in enumerate(text):
            bit = 1 << (i % 64)
            if case & bit:
                ch = ch.upper() if ch.isascii() else ch
            if escape & bit:
                if ch == "/" and not upper_hex:
                    out.append(b"\\/")
                    continue
                units = ch.encode("utf-16-be")
                for k in range(0, len(units), 2):
                    unit = int.from_bytes(units[k : k + 2], "big")
                    out.append((f"\\u{unit:04X}" if upper_hex else f"\\u{unit:04x}").encode())
            else:
                out.append(json.dumps(ch, ensure_ascii=False)[1:-1].encode())
    out.append(b'"')
    return b"".join(out)


def _scalar() -> st.SearchStrategy[bytes]:
    return st.one_of(
        _string(),
        _string(),
        _string(),
        st.sampled_from([b"null", b"true", b"false", b"80", b"-0", b"1.5e3", b"1E400"]),
    )


def _value() -> st.SearchStrategy[bytes]:
    return st.recursive(
        _scalar(),
        lambda inner: st.lists(inner, max_size=4).map(lambda items: b"[" + b",".join(items) + b"]"),
        max_leaves=8,
    )


@st.composite
def _deep_or_not(draw: st.DrawFn) -> bytes:
    """A value, or one nested deep in objects and arrays: around json's and serde_json's
    recursion limits, and the engines' 1000 levels."""
    value = draw(_value())
    if draw(st.integers(0, 8)):
        return value
    depth = draw(st.one_of(st.integers(0, 140), st.integers(990, 1010), st.integers(1010, 2500)))
    objects = draw(st.sampled_from([0, 2**64 - 1, draw(st.integers(0, 2**64 - 1))]))
    kinds = [objects >> (i % 64) & 1 for i in range(depth)]
    return (
        b"".join(b'{"a":' if k else b"[" for k in kinds)
        + value
        + b"".join(b"}" if k else b"]" for k in reversed(kinds))
    )


def _key(text: str, escape: int) -> bytes:
    return (
        b'"'
        + b"".join(
            f"\\u{ord(ch):04x}".encode() if escape & (1 << (i % 64)) else ch.encode()
            for i, ch in enumerate(text)
        )
        + b'"'
    )


@st.composite
def _field(draw: st.DrawFn) -> bytes:
    """One member: a field's path as nested objects, dotted keys or a mix (the innermost
    object maybe in an array), its keys maybe escaped."""
    parts = draw(st.sampled_from(FIELDS)).split(".")
    groups = [parts[0]]
    for part in parts[1:]:
        if draw(st.booleans()):
            groups.append(part)
        else:
            groups[-1] += "." + part
    escape = draw(st.integers(0, 2**64 - 1)) if draw(st.integers(0, 4)) == 0 else 0
    in_array = draw(st.integers(0, 6)) == 0
    out, close = [], []
    for i, group in enumerate(groups):
        out.append(_key(group, escape) + b":")
        if i + 1 < len(groups):
            if in_array and i + 2 == len(groups):
                out.append(b"[")
                close.append(b"]")
            out.append(b"{")
            close.append(b"}")
    out.append(draw(_deep_or_not()))
    out.extend(reversed(close))
    return b"".join(out)


@st.composite
def _line(draw: st.DrawFn) -> bytes:
    line = (
        b"{"
        + draw(st.sampled_from([b",", b", "])).join(draw(st.lists(_field(), max_size=7)))
        + b"}"
    )
    damage = draw(st.integers(0, 14))
    if damage == 0:
        line = line[: draw(st.integers(0, len(line)))]
    elif damage == 1:
        at = draw(st.integers(0, len(line)))
        line = line[:at] + bytes([draw(st.integers(0, 255))]) + line[at:]
    elif damage == 2:
        line = b'{"_index":"logs-1","_id":"x","_source":' + line + b',"sort":[1]}'
    elif damage == 3:
        line = b" " + line + b" \t\r"
    return line.replace(b"\n", b" ")


# Built once: building a Scanner for the four rules takes most of a small scan's time.
SCANNER = Scanner([json.dumps(r.ir) for r in RULES])
HitKey = tuple[int, str, str, "dict[str, str] | None", str]


def _rust(path: Path, prefilter: bool) -> tuple[list[HitKey], dict[str, Any]]:
    """The Rust engine through the binding, as ``run_scan`` calls it."""
    raw, files, _ = SCANNER.scan([str(path)], threads=1, prefilter=prefilter)
    keys: list[HitKey] = [
        (
            line,
            RULES[rule].id,
            RULES[rule].branch_names[branch],
            None if w is None else dict(zip(("field", "op", "pattern", "value"), w, strict=True)),
            event,
        )
        for _, line, rule, branch, w, event in raw
    ]
    return keys, files[0]


@_settings(60)
@given(lines=st.lists(_line(), min_size=1, max_size=12), crlf=st.booleans())
def test_three_engines_agree_on_adversarial_lines(
    tmp_path: Path, lines: list[bytes], crlf: bool
) -> None:
    path = tmp_path / "fuzz.ndjson"
    path.write_bytes(b"".join(line + (b"\r\n" if crlf else b"\n") for line in lines))
    py = run_scan([str(path)], RULES, engine="python")
    expected = [(h.line, h.rule.id, h.branch, h.matched, h.event_text) for h in py.hits]
    fast, fast_stats = _rust(path, prefilter=True)
    full, full_stats = _rust(path, prefilter=False)
    assert full == expected
    assert fast == expected
    # Whether a line is a JSON object, and valid UTF-8: the Rust builder and Python's json.
    for name in ("events", "malformed", "invalid_utf8"):
        assert full_stats[name] == py.stats.total(name), name
    assert fast_stats["events"] == py.stats.total("events")
    assert fast_stats["malformed"] <= full_stats["malformed"]


# ---------------------------------------------------------------- damaged gzip and zstd

HIT = b'{"event":{"category":"network"},"destination":{"ip":"169.254.169.254"}}'
QUIET = b'{"event":{"category":"network"},"destination":{"ip":"10.0.0.1"}}'


def _readable(data: bytes, zstd: bool) -> bytes:
    """What a decoder gives for damaged data before it stops, taken in small pieces."""
    out = []
    try:
        if zstd:
            reader = zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True)
            while piece := reader.read1(256):
                out.append(piece)
        else:
            d = zlib.decompressobj(wbits=31)
            for i in range(0, len(data), 64):
                out.append(d.decompress(data[i : i + 64]))
                while d.eof and d.unused_data:  # the next member
                    rest = d.unused_data
                    d = zlib.decompressobj(wbits=31)
                    out.append(d.decompress(rest))
    except (zstandard.ZstdError, zlib.error):
        pass
    return b"".join(out)


@_settings(25)
@given(
    kinds=st.lists(st.sampled_from([HIT, QUIET, b"not json"]), min_size=1, max_size=400),
    zstd=st.booleans(),
    members=st.integers(1, 3),
    cut=st.floats(0, 1),
    flip=st.one_of(st.none(), st.tuples(st.floats(0, 1), st.integers(1, 255))),
)
# Cut at the end of the first of three members: a third of one line, no valid event.
@example(kinds=[QUIET], zstd=False, members=3, cut=0.3359375, flip=None)
def test_damaged_compressed_input(
    tmp_path: Path,
    kinds: list[bytes],
    zstd: bool,
    members: int,
    cut: float,
    flip: tuple[float, int] | None,
) -> None:
    """A cut or changed gzip/zstd input: both engines report an error (never a traceback)
    when the data cannot be decoded to its end, and find every hit of the lines decoded in
    full before the damage, and no hit that the undamaged input does not have there."""
    plain = b"".join(k + b"\n" for k in kinds)
    step = -(-len(plain) // members)
    parts = [plain[i : i + step] for i in range(0, len(plain), step)]
    members_data = [
        zstandard.ZstdCompressor(write_checksum=True).compress(p) if zstd else gzip.compress(p)
        for p in parts
    ]
    data = b"".join(members_data)
    # Cut at the end of a member (or frame), the data is whole, only shorter.
    ends = {sum(len(m) for m in members_data[: i + 1]) for i in range(len(members_data))}
    magic, size = (4 if zstd else 2), len(data)
    if flip is not None:
        at = magic + int(flip[0] * (len(data) - magic - 1))
        data = data[:at] + bytes([data[at] ^ flip[1]]) + data[at + 1 :]
    else:
        data = data[: magic + int(cut * (size - magic))]
    path = tmp_path / ("damaged.zst" if zstd else "damaged.gz")
    path.write_bytes(data)
    readable = _readable(data, zstd)
    complete = readable.count(b"\n")
    plain_path = tmp_path / "plain.ndjson"
    plain_path.write_bytes(plain)
    expected = [(h.line, h.event_text) for h in run_scan([str(plain_path)], RULES).hits]
    for engine in ("rust", "python"):
        result = run_scan([str(path)], RULES, engine=engine)  # type: ignore[arg-type]
        stats = result.stats.files[0]
        found = [(h.line, h.event_text) for h in result.hits]
        # Whole data cut short at a member's end may hold only part of a line: no valid
        # event, which is an error of its own (not damage).
        damaged = stats.error_kind not in (None, "no_events")
        if stats.error is not None and not damaged:
            assert stats.error_kind == "no_events", engine
            assert stats.events == stats.malformed > 0, engine
        if flip is None and len(data) in ends:
            assert not damaged, (engine, stats.error)
        if flip is None:
            # A cut: the decoder's output is a prefix of the input, so are the hits.
            assert plain.startswith(readable)
            assert set(found) <= set(expected), engine
            assert [h for h in found if h[0] <= complete] == [
                h for h in expected if h[0] <= complete
            ], engine
            if len(data) not in ends:
                assert damaged, (engine, stats.error)
        if damaged:
            kind = "zstd" if zstd else "gzip"
            assert (stats.error_kind, stats.compression) == ("damaged", kind), stats.error


# ---------------------------------------------------------------- the EQL compiler

TOKENS = [
    "any", "where", "process", "network", "sequence", "by", "with", "maxspan=1m", "until",
    "and", "or", "not", "(", ")", "[", "]", ",", "==", "!=", ":", "<", ">=", "~", "|", "?",
    "in", "in~", "like", "like~", "null", "true", "false", "0", "1.5", "-3", "1e3", "0x1f",
    "process.name", "destination.ip", "event.category", "a.b.c", "@timestamp", "`a b`",
    '"x"', '"*meta*"', '"?"', '""', "'s'", '"""t"""', '"\\u{41}"', '"\\q"', '"\\"',
    '"10.0.0.0/8"', '"169.254.169.254"', '"fd00:ec2::254"', '"aws-credentials"', '"nope"',
    "cidrMatch", "imdsEndpoint", "startsWith", "startsWith~", "endsWith~", "stringContains",
    "length", "descendant", "of", "$", "//c\n", "/*", "*/", "\\", "\n", "\u00e9", "\u212a",
]  # fmt: skip

_soup = st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=4)), max_size=40).flatmap(
    lambda tokens: st.sampled_from([" ", "", "\n"]).map(lambda sep: sep.join(tokens))
)


_FIELD = st.sampled_from(["process.name", "destination.ip", "a.b", "?x.y", "`a b`", "url.full"])
# Patterns of many `*` and `?` too: both wildcard matchers are linear.
_STRING = st.one_of(
    st.sampled_from(['"x"', '"*meta*"', '"a?c"', '""', '"10.0.0.0/8"', '"169.254.169.254"']),
    st.text("*?ab", min_size=1, max_size=40).map(lambda t: f'"{t}"'),
)
_LITERAL = st.one_of(_STRING, st.sampled_from(["80", "1.5", "true", "null", "-0"]))


def _list(values: st.SearchStrategy[str]) -> st.SearchStrategy[list[str]]:
    return st.lists(values, min_size=1, max_size=3).map(
        lambda v: ["(", *", ".join(v).split(" "), ")"]
    )


_PRED = st.one_of(
    st.tuples(_FIELD, st.sampled_from(["==", "!=", ":", "like", "like~"]), _LITERAL).map(list),
    st.tuples(_FIELD, st.sampled_from(["in", "in~", "not in", "like~", ":"]), _list(_LITERAL)).map(
        lambda t: [t[0], *t[1].split(" "), *t[2]]
    ),
    st.tuples(
        st.sampled_from(["cidrMatch", "startsWith~", "endsWith", "stringContains", "imdsEndpoint"]),
        _FIELD,
        st.lists(st.one_of(_STRING, st.just('"aws-credentials"')), min_size=1, max_size=2),
    ).map(lambda t: [t[0], "(", t[1], *[f", {v}" for v in t[2]], ")"]),
)
_EXPR = st.recursive(
    _PRED,
    lambda inner: st.one_of(
        inner.map(lambda e: ["not", *e]),
        inner.map(lambda e: ["(", *e, ")"]),
        st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(lambda t: [*t[0], t[1], *t[2]]),
    ),
    max_leaves=6,
)


@st.composite
def _grammar(draw: st.DrawFn) -> str:
    """A query of the supported grammar, maybe nested deep (around and far past the 100
    levels the compiler takes), then a few tokens dropped, added or swapped."""
    expr = draw(_EXPR)
    if draw(st.integers(0, 3)) == 0:
        depth = draw(st.one_of(st.integers(95, 105), st.integers(105, 3000)))
        levels = [["("], ["not", "("], ["not"], ["a.b", ":", '"y"', "or", "("]]
        level = draw(st.sampled_from(levels))
        expr = level * depth + expr + [")"] * (depth * level.count("("))
    tokens = [draw(st.sampled_from(["any", "process", "network"])), "where", *expr]
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(tokens)))
        roll = draw(st.integers(0, 2))
        if roll == 0 and at < len(tokens):
            del tokens[at]
        elif roll == 1:
            tokens.insert(at, draw(st.sampled_from(TOKENS)))
        elif at < len(tokens):
            tokens[at] = draw(st.sampled_from(TOKENS))
    return " ".join(tokens)


@st.composite
def _joined(draw: st.DrawFn) -> str:
    """A sequence or sample of grammar stages (spec/sequences.md), maybe mutated."""
    head = draw(st.sampled_from(["sequence", "sequence by a.b", "sample by a.b", "sample"]))
    if head.startswith("sequence") and draw(st.booleans()):
        head += " with maxspan=" + draw(st.sampled_from(["1m", "5", "0s", "2 h", "1.5s"]))
    tokens = head.split(" ")
    keys = draw(st.sampled_from([[], ["by", "?x"], ["by", "c", ",", "d"]]))
    for _ in range(draw(st.integers(1, 3))):
        opening = draw(st.sampled_from(["[", "[", "[", "!["]))
        category = draw(st.sampled_from(["any", "process"]))
        tokens += [opening, category, "where", *draw(_EXPR), "]", *keys]
        tokens += draw(st.sampled_from([[], [], ["with", "runs=2"]]))
    until = ["until", "[", "any", "where", "a", "==", "1", "]", *keys]
    tokens += draw(st.sampled_from([[], until]))
    tokens += draw(st.sampled_from([[], ["|", "head", "3"], ["|", "tail"], ["|", "sort", "a"]]))
    for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
        at = draw(st.integers(0, len(tokens) - 1))
        tokens[at] = draw(st.sampled_from(TOKENS))
    return " ".join(tokens)


def _query() -> st.SearchStrategy[str]:
    # Token soup (after a valid head, so that the parser gets past `where`), and queries of
    # the grammar, mutated: most of the second kind compile.
    return st.one_of(
        _soup,
        _soup.map(lambda s: "any where " + s),
        _soup.map(lambda s: "sequence [any where a == 1] " + s),
        _grammar(),
        _grammar(),
        _joined(),
    )


@_settings(1000)
@given(query=_query())
def test_eql_compiler_raises_only_eql_errors(query: str) -> None:
    try:
        ir = compile_rule(query, name="fuzz", rule_id="fuzz", severity="low")
    except EqlError:
        pass
    else:
        # What compiles prints back to the same rule, and the Rust engine takes it (a
        # sequence's or sample's stages, as single-event rules).
        again = compile_rule(
            format_rule(ir), name="fuzz", rule_id="fuzz", severity="low", **rule_options(ir)
        )
        assert again == ir
        ir_schema.check(ir)
        Scanner([json.dumps(event_form(ir))])
    with contextlib.suppress(EqlError):
        parse_condition(query)


@pytest.mark.parametrize("depth", [1, 10, 60, 100])
def test_eql_nesting_within_bounds(depth: int) -> None:
    query = "any where " + "(" * depth + 'process.name == "x"' + ")" * depth
    ir = compile_rule(query, name="n")
    assert compile_rule(format_rule(ir), name="n") == ir


@pytest.mark.parametrize("depth", [101, 5000])
@pytest.mark.parametrize("level", ["(", 'a.b : "y" or ('])
def test_eql_nesting_past_bounds_is_an_eql_error(depth: int, level: str) -> None:
    query = "any where " + level * depth + 'process.name == "x"' + ")" * depth
    with pytest.raises(EqlError, match="more than 100 levels"):
        compile_rule(query, name="n")


# ---------------------------------------------------------------- wildcards


def _hits(hits: list[Any]) -> list[tuple[int, str, str, Any]]:
    return [(h.line, h.rule.id, h.branch, h.matched) for h in hits]


@_settings(40)
@given(
    patterns=st.lists(st.text("*?aAb", min_size=1, max_size=60), min_size=1, max_size=4),
    values=st.lists(
        st.one_of(
            st.text("aAbB*?x\u212a", max_size=60),
            st.tuples(st.integers(0, 3000), st.text("abAB", max_size=3)).map(
                lambda t: "a" * t[0] + t[1]
            ),
        ),
        min_size=1,
        max_size=12,
    ),
)
def test_engines_agree_on_patterns_of_many_wildcards(
    tmp_path: Path, patterns: list[str], values: list[str]
) -> None:
    """Patterns like ``*a*a*a?a*b`` (exponential for a backtracking matcher) against long
    runs of the pattern's letters: both engines, with and without the prefilter, alike."""
    rules = []
    for i, pattern in enumerate(patterns):
        op = ("like", "like~", ":")[i % 3]
        query = f"any where process.name {op} {json.dumps(pattern)}"
        ir = compile_rule(query, name=f"w{i}", rule_id=f"w{i}", severity="low")
        rules.append(Rule(f"w{i}", f"w{i}", "low", query, ir))
    path = tmp_path / "w.ndjson"
    lines = (json.dumps({"process": {"name": v}}) + "\n" for v in values)
    path.write_text("".join(lines), encoding="utf-8")
    py = _hits(run_scan([str(path)], rules, engine="python").hits)
    assert _hits(run_scan([str(path)], rules, engine="rust").hits) == py
    assert _hits(run_scan([str(path)], rules, engine="rust", prefilter=False).hits) == py
