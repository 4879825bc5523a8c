"""KQL nested queries (`f: { … }`) and the IR's `nested` node in Python (spec/kql.md, spec/ir.md
"Nested scopes"): what the compiler writes and refuses (Kibana's kuery functions nested.ts,
is.ts, range.ts and utils/get_full_field_name_node.ts, read in our own words), the checker, the
reference engine's nested documents and their evaluation, held to a brute-force model on random
events, and the --show-rule display."""

from __future__ import annotations

import json
import random
from typing import Any, ClassVar

import pytest

from imds_scan import ir_schema
from imds_scan.eql import MAX_DEPTH, format_condition, ir_depth
from imds_scan.errors import EqlError
from imds_scan.kql import compile_query
from imds_scan.mapping import FieldMapping
from imds_scan.reference.eval import CompiledRule
from imds_scan.reference.event import nested_docs, parse_line


class Profile:
    """A data view with nested fields `n` and `n.m`; any other field is a keyword."""

    FIELDS: ClassVar[dict[str, FieldMapping]] = {
        f.name: f
        for f in (
            FieldMapping("n", "nested", "nested"),
            FieldMapping("n.x", "keyword", "keyword", ignore_above=8),
            FieldMapping("n.port", "long", "long"),
            FieldMapping("n.addr", "ip", "ip"),
            FieldMapping("n.msg", "text", "text", analyzer="standard"),
            FieldMapping("n.m", "nested", "nested"),
            FieldMapping("n.m.x", "keyword", "keyword"),
            FieldMapping("top", "keyword", "keyword"),
            FieldMapping("obj", "object", "object"),
        )
    }

    def resolve(self, field: str) -> FieldMapping:
        return self.FIELDS.get(field) or FieldMapping(field, "keyword", "keyword")

    def expand(self, pattern: str) -> list[str]:
        from fnmatch import fnmatchcase

        if "*" not in pattern:
            known = self.FIELDS.get(pattern)
            return [pattern] if known and known.type not in ("object", "nested") else []
        return sorted(
            n
            for n, f in self.FIELDS.items()
            if fnmatchcase(n, pattern) and f.type not in ("object", "nested")
        )


def ir(query: str) -> Any:
    return compile_query(query, mapping=Profile())  # type: ignore[arg-type]


def kw(field: str, *values: str, op: str = "eq", **keys: Any) -> dict[str, Any]:
    return {
        "node": "pred",
        "field": field,
        "field_type": "keyword",
        "op": op,
        "values": [*values],
        **keys,
    }


def nested(path: str, arg: dict[str, Any]) -> dict[str, Any]:
    return {"node": "nested", "path": path, "arg": arg}


def rule(expr: dict[str, Any]) -> CompiledRule:
    doc = {"ir_version": 1, "id": "r", "name": "r", "severity": "low"}
    return CompiledRule({**doc, "branches": [{"name": "b", "expr": expr}]})


# ---------------------------------------------------------------- the compiler


def test_a_group_prefixes_its_fields_with_the_path() -> None:
    assert ir("n: { x: a and port >= 80 }") == nested(
        "n",
        {
            "node": "and",
            "args": [
                kw("n.x", "a", ignore_above=8),
                {
                    "node": "pred",
                    "field": "n.port",
                    "field_type": "long",
                    "op": "gte",
                    "values": ["80"],
                },
            ],
        },
    )


def test_groups_nest_and_take_the_outer_path() -> None:
    assert ir("n: { m: { x: 1 } }") == nested("n", nested("n.m", kw("n.m.x", "1")))


def test_value_lists_exists_wildcards_ranges_and_not_inside() -> None:
    got = ir("n: { x: (a or b*) and not addr: 10.0.0.0/8 and msg: * and port < 9 }")
    assert got["node"] == "nested" and got["path"] == "n"
    args = got["arg"]["args"]
    assert args[0] == {
        "node": "or",
        "args": [
            kw("n.x", "a", ignore_above=8),
            kw("n.x", "b*", op="wildcard_query", ignore_above=8),
        ],
    }
    assert args[1] == {
        "node": "not",
        "arg": {
            "node": "pred",
            "field": "n.addr",
            "field_type": "ip",
            "op": "cidr",
            "values": ["10.0.0.0/8"],
        },
    }
    assert args[2]["op"] == "exists" and args[2]["field"] == "n.msg"
    assert args[3]["op"] == "lt" and args[3]["field"] == "n.port"


def test_not_outside_a_group_negates_the_nested_node() -> None:
    assert ir("not n: { x: a }") == {
        "node": "not",
        "arg": nested("n", kw("n.x", "a", ignore_above=8)),
    }


def test_an_unknown_field_inside_a_group_is_queried_under_its_path() -> None:
    # get_full_field_name_node.ts checks only fields its data view knows.
    assert ir("n: { zz: 1 }") == nested("n", kw("n.zz", "1"))


def test_a_field_name_wildcard_inside_a_group_expands_under_its_path() -> None:
    # n.m.x is under n.m, not n: get_full_field_name_node.ts refuses the pattern's field.
    with pytest.raises(
        EqlError, match=r"nested field n\.m, but the query names it in the nested group n"
    ):
        ir("n: { m.*: q }")
    assert ir("n: { x*: q }") == nested("n", kw("n.x", "q", ignore_above=8))


def test_a_field_name_wildcard_outside_a_group_is_wrapped_per_nested_field() -> None:
    # is.ts wrapWithNestedQuery: each field's query in a nested query on its own nested path.
    assert ir("*x: q") == {
        "node": "or",
        "args": [
            nested("n.m", kw("n.m.x", "q")),
            nested("n", kw("n.x", "q", ignore_above=8)),
        ],
    }
    assert ir("n.port* > 3") == nested(
        "n", {"node": "pred", "field": "n.port", "field_type": "long", "op": "gt", "values": ["3"]}
    )


def test_match_all_inside_a_group_holds_on_every_nested_document() -> None:
    got = ir("n: { *: * }")
    assert got["node"] == "nested" and got["path"] == "n"
    first = got["arg"]["args"][0]
    assert first["op"] == "exists" and first["field"].startswith("n.")
    assert got["arg"]["args"][1] == {"node": "not", "arg": first}
    compiled = rule(got)
    assert compiled.evaluate({"n": [{}]}) is not None
    assert compiled.evaluate({"n": []}) is None and compiled.evaluate({}) is None


@pytest.mark.parametrize(
    ("query", "where", "words"),
    [
        ("n.x: a", (1, 1), "n.x is a field of the nested field n, but the query names it outside"),
        (
            "top: a and n.m.x: 1",
            (1, 12),
            "field of the nested field n.m, but the query names it outside",
        ),
        (
            "n: { m.x: 1 }",
            (1, 6),
            "n.m.x is a field of the nested field n.m, but the query names it in the nested group",
        ),
        (
            "n.zz: 1",
            (1, 1),
            "n.zz lies under the nested field n: Elasticsearch finds nothing there outside",
        ),
        (
            "n: { m.zz: 1 }",
            (1, 6),
            "n.m.zz lies under the nested field n.m: Elasticsearch finds nothing there in a nested",
        ),
        (
            "top: { x: 1 }",
            (1, 1),
            "nested query on top, which the mapping profile does not map as nested",
        ),
        ("obj: { x: 1 }", (1, 1), "nested query on obj"),
        ("n: { m: { m: { x: 1 } } }", (1, 11), "nested query on n.m.m"),
        ("n: { x: 1 }: 2", None, ""),
        ("n: { hello }", (1, 6), "free text"),
        ("n: *", (1, 1), "n is mapped as nested: it has no values to compare"),
        ("n: { x: 1 ", None, ""),
    ],
)
def test_refusals(query: str, where: tuple[int, int] | None, words: str) -> None:
    with pytest.raises(EqlError) as err:
        ir(query)
    if where is not None:
        assert (err.value.line, err.value.column) == where, err.value
    assert words in err.value.message


def test_a_nested_node_is_one_level() -> None:
    assert ir_depth(nested("n", kw("n.x", "a"))) == 2
    # 98 groups and a pred: 99 levels; 100 groups and a pred: 101, refused.
    inner = "x: 1"
    for _ in range(98):
        inner = f"n: {{ {inner} }}"
    assert ir_depth(compile_query(inner, mapping=_Deep())) == 99  # type: ignore[arg-type]
    with pytest.raises(EqlError, match=f"more than {MAX_DEPTH} levels"):
        compile_query(f"n: {{ n: {{ n: {{ {inner} }} }} }}", mapping=_Deep())  # type: ignore[arg-type]


class _Deep(Profile):
    """Every name made of `n` parts is nested (for the depth limit)."""

    def resolve(self, field: str) -> FieldMapping:
        if set(field.split(".")) == {"n"}:
            return FieldMapping(field, "nested", "nested")
        return FieldMapping(field, "keyword", "keyword")


def test_show_rule_displays_the_scope() -> None:
    node = nested(
        "a.b", {"node": "and", "args": [kw("a.b.x", "1"), {"node": "not", "arg": kw("a.b.y", "2")}]}
    )
    assert format_condition(node) == "nested(a.b, a.b.x == 1 and a.b.y != 2)"
    long = nested(
        "a", {"node": "and", "args": [kw("a.x" + "x" * 60, "1"), kw("a.y" + "y" * 60, "2")]}
    )
    assert format_condition(long).splitlines()[0] == "nested(a,"
    assert format_condition(long).splitlines()[-1] == ")"


# ---------------------------------------------------------------- the checker


def test_the_checker_accepts_nested_scopes_in_every_condition() -> None:
    doc = {"ir_version": 1, "id": "r", "name": "r", "severity": "low"}
    inner = nested("a", nested("a.b.c", {"node": "not", "arg": kw("a.b.c.d", "1")}))
    ir_schema.check({**doc, "branches": [{"name": "b", "expr": inner}], "allowlist": [inner]})


def test_the_checker_reports_the_path_before_the_children() -> None:
    doc = {"ir_version": 1, "id": "r", "name": "r", "severity": "low"}
    bad = nested("a", nested("x..y", kw("q", "1")))
    with pytest.raises(ValueError) as err:
        ir_schema.check({**doc, "branches": [{"name": "b", "expr": bad}]})
    assert (
        str(err.value)
        == 'bad IR: $.branches[0].expr.arg.path: nested node: path "x..y" is not a field path'
    )
    # The first branch's problem first.
    ok = nested("a", kw("a.b", "1"))
    two = [{"name": "b", "expr": ok}, {"name": "c", "expr": nested("p", kw("a.b", "1"))}]
    with pytest.raises(
        ValueError, match=r"\$\.branches\[1\]\.expr\.arg\.field: nested node: field"
    ):
        ir_schema.check({**doc, "branches": two})


# ---------------------------------------------------------------- the reference engine


def test_nested_documents_in_document_order() -> None:
    event = {"a": [{"i": 1}, [{"i": 2}], None, 3], "a.b": 4, "x": {"a": 5}, "a.c": {"i": 6}}
    assert list(nested_docs(event, ["a"])) == [{"i": 1}, {"i": 2}, {"b": 4}, {"c": {"i": 6}}]
    assert list(nested_docs(event, ["a", "c"])) == [{"i": 6}]
    assert list(nested_docs({"a.b.c": 1}, ["a", "b"])) == [{"c": 1}]
    assert list(nested_docs({"a": {"b": [{"c": 1}, {"c": 2}]}}, ["a", "b"])) == [{"c": 1}, {"c": 2}]


def test_a_pred_inside_reads_its_field_below_the_scope() -> None:
    expr = nested("a", {"node": "and", "args": [kw("a.x", "1"), kw("a.y", "2")]})
    compiled = rule(expr)
    assert compiled.evaluate({"a": [{"x": "1"}, {"y": "2"}]}) is None
    hit = compiled.evaluate({"a": [{"x": "1"}, {"x": "1", "y": "2"}]})
    assert hit is not None and hit[1] is not None and hit[1].as_tuple() == ("a.y", "eq", "2", "2")


def test_endpoint_ports_come_from_the_event_in_a_scope() -> None:
    expr = nested(
        "a",
        {
            "node": "pred",
            "field": "a.u",
            "field_type": "keyword",
            "op": "imds_endpoint",
            "values": ["azure-wireserver"],
        },
    )
    compiled = rule(expr)
    assert (
        compiled.evaluate({"a": [{"u": "168.63.129.16"}], "destination": {"port": "80"}})
        is not None
    )
    assert (
        compiled.evaluate(
            {
                "a": [{"u": "168.63.129.16", "destination": {"port": "80"}}],
                "destination": {"port": "53"},
            }
        )
        is None
    )


# A brute-force model of spec/ir.md "Nested scopes": every object of the event with the path it
# sits at (a dotted key's inner parts are objects of their own holding the rest of the key),
# and a field's values as the leaves found at its path; then the tree evaluated as spec/ir.md
# says (truth and witness entries).


def _objects(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [o for item in value for o in _objects(item)]
    return [value] if isinstance(value, dict) else []


def _nodes(
    obj: dict[str, Any], prefix: tuple[str, ...]
) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    out = []
    for key, value in obj.items():
        parts = tuple(key.split("."))
        out += [(prefix + parts[:i], {".".join(parts[i:]): value}) for i in range(1, len(parts))]
        for o in _objects(value):
            out.append((prefix + parts, o))
            out += _nodes(o, prefix + parts)
    return out


def _leaves(obj: dict[str, Any], prefix: tuple[str, ...]) -> list[tuple[tuple[str, ...], str]]:
    out: list[tuple[tuple[str, ...], str]] = []

    def walk(value: Any, path: tuple[str, ...]) -> None:
        if isinstance(value, list):
            for item in value:
                walk(item, path)
        elif isinstance(value, dict):
            out.extend(_leaves(value, path))
        elif isinstance(value, str):
            out.append((path, value))

    for key, value in obj.items():
        walk(value, prefix + tuple(key.split(".")))
    return out


def _model(
    node: dict[str, Any], doc: dict[str, Any], scope: str
) -> list[tuple[str, str, bool]] | None:
    kind = node["node"]
    if kind == "pred":
        rest = tuple(node["field"][len(scope) + 1 if scope else 0 :].split("."))
        for path, value in _leaves(doc, ()):
            if path == rest and value in node["values"]:
                return [(node["field"], value, False)]
        return None
    if kind == "nested":
        rest = tuple(node["path"][len(scope) + 1 if scope else 0 :].split("."))
        for path, obj in _nodes(doc, ()):
            if path == rest:
                found = _model(node["arg"], obj, node["path"])
                if found is not None:
                    return found
        return None
    if kind == "not":
        return [] if _model(node["arg"], doc, scope) is None else None
    if kind == "and":
        entries: list[tuple[str, str, bool]] = []
        for arg in node["args"]:
            got = _model(arg, doc, scope)
            if got is None:
                return None
            entries += got
        return entries
    for arg in node["args"]:
        got = _model(arg, doc, scope)
        if got is not None:
            return [(f, v, True) for f, v, _ in got]
    return None


def _random_value(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth > 2 or roll < 0.35:
        return rng.choice(["1", "2", None, ["1", "2"], []])
    if roll < 0.7:
        return [_random_object(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return _random_object(rng, depth + 1)


def _random_object(rng: random.Random, depth: int) -> dict[str, Any]:
    keys = ["a", "b", "x", "a.b", "a.x", "b.x", "a.b.x", "x.a"]
    return {k: _random_value(rng, depth) for k in rng.sample(keys, rng.randint(1, 4))}


def _random_tree(rng: random.Random, scope: str, depth: int) -> dict[str, Any]:
    roll = rng.random()
    under = f"{scope}." if scope else ""
    if depth > 3 or roll < 0.35:
        return kw(under + rng.choice(["x", "a.x", "b.x", "a"]), rng.choice(["1", "2"]))
    if roll < 0.55:
        return _scoped(rng, under, depth)
    if roll < 0.7:
        return {"node": "not", "arg": _random_tree(rng, scope, depth + 1)}
    kind = rng.choice(["and", "or"])
    return {
        "node": kind,
        "args": [_random_tree(rng, scope, depth + 1) for _ in range(rng.randint(1, 3))],
    }


def _scoped(rng: random.Random, under: str, depth: int) -> dict[str, Any]:
    path = under + rng.choice(["a", "b", "a.b"])
    return nested(path, _random_tree(rng, path, depth + 1))


def test_reference_nested_evaluation_matches_a_brute_force_model() -> None:
    rng = random.Random(19)
    checked = hits = 0
    for _ in range(3000):
        tree = _random_tree(rng, "", 0)
        if tree["node"] != "nested" and rng.random() < 0.5:
            tree = _scoped(rng, "", 0)
        event = _random_object(rng, 0)
        # Through the line parser, as the scan reads it (repeated keys cannot occur here).
        doc, _, _ = parse_line(json.dumps(event).encode())  # type: ignore[misc]
        got = rule(tree).evaluate(doc)
        want = _model(tree, event, "")
        assert (got is None) == (want is None), (tree, event)
        if want is not None:
            hits += 1
            deciding = next((e for e in want if e[2]), want[-1] if want else None)
            witness = got[1] if got is not None else None
            if deciding is None:
                assert witness is None
            else:
                assert witness is not None and (witness.field, witness.value) == deciding[:2], (
                    tree,
                    event,
                )
        checked += 1
    assert hits > 300 and checked - hits > 300


def test_the_checker_reads_a_scope_in_the_schema_walks_order() -> None:
    # The field is checked right after its type, before the op (both engines walk alike).
    doc = {"ir_version": 1, "id": "r", "name": "r", "severity": "low"}
    bad = nested("a", {**kw("q", "1"), "op": "regx"})
    with pytest.raises(ValueError) as err:
        ir_schema.check({**doc, "branches": [{"name": "b", "expr": bad}]})
    assert "expr.arg.field: nested node: field" in str(err.value)
    # An expr node under a scope is refused as soon as its kind is read.
    expr = {"node": "expr", "text": "t", "expr": {"field": "a.b", "field_type": "keyword"}, "x": 1}
    with pytest.raises(ValueError) as err:
        ir_schema.check({**doc, "branches": [{"name": "b", "expr": nested("a", expr)}]})
    assert str(err.value) == (
        "bad IR: $.branches[0].expr.arg.node: nested node: "
        'an expr node cannot be under nested path "a"'
    )


GCP_RULE_QUERY = (
    'data_stream.dataset: "gcp.audit" and gcp.audit.service_data.policy_delta.binding_deltas:{\n'
    '  action: "ADD" and role: ("roles/iam.serviceAccountTokenCreator" or\n'
    '  "roles/iam.serviceAccountUser") }'
)


def test_the_gcp_binding_deltas_rule_loads_when_a_mapping_declares_the_field_nested(
    tmp_path: Any,
) -> None:
    from imds_scan.mapping import load_mapping

    with pytest.raises(EqlError, match="not of nested type"):
        compile_query(GCP_RULE_QUERY, mapping=load_mapping(None))
    path = tmp_path / "mapping.json"
    path.write_text('{"gcp.audit.service_data.policy_delta.binding_deltas": "nested"}')
    got = compile_query(GCP_RULE_QUERY, mapping=load_mapping(str(path)))
    scope = got["args"][1]
    assert scope["node"] == "nested"
    assert scope["path"] == "gcp.audit.service_data.policy_delta.binding_deltas"
    compiled = rule(got)
    deltas = [
        {"action": "REMOVE", "role": "roles/iam.serviceAccountUser"},
        {"action": "ADD", "role": "roles/owner"},
    ]
    event = {
        "data_stream": {"dataset": "gcp.audit"},
        "gcp": {"audit": {"service_data": {"policy_delta": {"binding_deltas": deltas}}}},
    }
    assert compiled.evaluate(event) is None
    deltas.append({"action": "ADD", "role": "roles/iam.serviceAccountUser"})
    assert compiled.evaluate(event) is not None


def test_the_fields_a_nested_node_reads_are_written_in_full() -> None:
    from imds_scan.fields import node_fields

    assert node_fields(nested("a", nested("a.b", kw("a.b.c", "1")))) == {"a.b.c"}


def test_both_engines_agree_on_random_nested_scopes(tmp_path: Any) -> None:
    """The brute-force model's random trees and events through imds_scan.run_scan: the Rust
    engine (prefilter on and off) and the reference engine give the same hits and witnesses."""
    from conftest import hit_keys
    from imds_scan import Rule, run_scan

    rng = random.Random(1919)
    lines = [json.dumps(_random_object(rng, 0)) for _ in range(40)]
    path = tmp_path / "events.ndjson"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    doc = {"ir_version": 1, "id": "r", "name": "r", "severity": "low"}
    hits = 0
    for i in range(60):
        tree = _scoped(rng, "", 0) if i % 2 else _random_tree(rng, "", 0)
        rules = [Rule("r", "r", "low", "", {**doc, "branches": [{"name": "b", "expr": tree}]})]
        python = run_scan([str(path)], rules, engine="python")
        for prefilter in (True, False):
            rust = run_scan([str(path)], rules, engine="rust", prefilter=prefilter)
            assert hit_keys(rust.hits) == hit_keys(python.hits), tree
        hits += len(python.hits)
    assert hits > 100
