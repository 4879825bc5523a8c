"""The rule IR's JSON Schema (spec/ir.schema.json), checked by hand: no runtime dependency, and
the error names the place in the document, in the same order and words as the Rust engine
(``check_schema`` in crates/imds-core/src/ir.rs): a node's own keys first (unknown ones in
document order, then missing ones, then each key in schema order), then its children depth
first, branches before the allowlist. Keys, required keys and enums come from the schema.
A sequence's or sample's document (spec/sequences.md) is checked the same way: its object's
keys, then each key in schema order, then its stages, `until` and pipes depth first; last,
that every stage has as many join keys as the first. A new_terms or threshold document
(spec/kql.md, Rule types) likewise: its object's keys, then its `expr`, fields and
cardinality entries. What the schema cannot say of ``nested`` nodes (spec/ir.md, Nested
scopes) is checked on the way: a nested node's path once its own keys are (after ``path``'s
type), an ``expr`` node under one as soon as its kind is read, a pred's field under one right
after ``field``'s type.
An ``expr`` node's VALUE tree is checked the same way; a VALUE's shape is the one named by
the first of ``lit``, ``field``, ``fn`` it holds (none: ``missing key "lit", "field" or
"fn"``), and its ``args`` follow it depth first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

IR_VERSION = 1
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@cache
def schema() -> dict[str, Any]:
    """spec/ir.schema.json, as shipped in the package (``imds_scan/spec/``)."""
    from importlib import resources  # (its imports cost a plain scan's start-up)

    text = resources.files("imds_scan").joinpath("spec", "ir.schema.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def ops() -> list[str]:
    """Every operator of the IR, in the schema's order."""
    return list(schema()["$defs"]["pred"]["properties"]["op"]["enum"])


# Operators by kind, named once for the Python side (each is an op of the schema; a test checks
# it): those testing a value's start, end or content, with their ASCII case-insensitive twins...
AFFIX_OPS = frozenset(
    {"starts_with", "starts_with_ci", "ends_with", "ends_with_ci", "contains", "contains_ci"}
)
# ...and every operator that only makes sense on text (refused on ip-typed fields).
TEXT_OPS = frozenset({"wildcard", "like", *AFFIX_OPS})
# The comparisons with one literal (every field type) and the regular expressions (keyword).
RANGE_OPS = frozenset({"lt", "lte", "gt", "gte"})
REGEX_OPS = frozenset({"regex", "regex_ci"})
# KQL's operators (spec/ir.md, KQL additions): on text fields, and Elasticsearch's wildcard
# query on keyword and wildcard fields (which fields take which: the schema's `$defs/pred`).
KQL_OPS = frozenset({"match", "match_phrase", "wildcard_query", "wildcard_query_ci"})


# KQL rule types whose IR holds one condition (``expr``) under their own key (spec/kql.md).
ALERT_KINDS = ("new_terms", "threshold")


def rule_kind(ir: Mapping[str, Any]) -> str:
    """ "event", "sequence", "sample", "new_terms" or "threshold": which of the IR's shapes
    this is."""
    for kind in ("sequence", "sample", *ALERT_KINDS):
        if kind in ir:
            return kind
    return "event"


def conditions(ir: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every condition of a rule, named: its branches, or a sequence's or sample's stages
    (``stage1``, ...) and ``until``: what reads fields of an event."""
    kind = rule_kind(ir)
    if kind == "event":
        return [(str(b["name"]), b["expr"]) for b in ir["branches"]]
    if kind in ALERT_KINDS:
        return [("query", ir[kind]["expr"])]
    body = ir[kind]
    out = [(f"stage{i + 1}", stage["expr"]) for i, stage in enumerate(body["stages"])]
    if body.get("until"):
        out.append(("until", body["until"]["expr"]))
    return out


def map_conditions(
    ir: dict[str, Any], wrap: Callable[[dict[str, Any]], dict[str, Any]]
) -> dict[str, Any]:
    """The IR with ``wrap(expr)`` in place of each condition (branches, stages, until)."""
    kind = rule_kind(ir)
    if kind == "event":
        return {**ir, "branches": [{**b, "expr": wrap(b["expr"])} for b in ir["branches"]]}
    if kind in ALERT_KINDS:
        return {**ir, kind: {**ir[kind], "expr": wrap(ir[kind]["expr"])}}
    body = dict(ir[kind])
    body["stages"] = [{**stage, "expr": wrap(stage["expr"])} for stage in body["stages"]]
    if body.get("until"):
        body["until"] = {**body["until"], "expr": wrap(body["until"]["expr"])}
    return {**ir, kind: body}


def _shape(name: str) -> tuple[list[str], list[str]]:
    """(keys in schema order, required keys) of the document or a `$defs` entry."""
    part = schema() if name == "doc" else schema()["$defs"][name]
    return list(part["properties"]), list(part["required"])


def _key_path(path: str, key: str) -> str:
    if _PLAIN_KEY.fullmatch(key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class _Bad(ValueError):
    pass


def check(doc: Any) -> None:
    """Raise ValueError(``bad IR: PATH: what``) for the first way ``doc`` breaks the schema."""
    try:
        _check(doc)
    except _Bad as exc:
        raise ValueError(f"bad IR: {exc}") from None


# The keys that pick a value's shape (spec/ir.md, Expressions), in the schema's order.
_VALUE_KINDS = ("lit", "field", "fn")


def _value_shapes() -> list[dict[str, Any]]:
    shapes: list[dict[str, Any]] = schema()["$defs"]["value"]["oneOf"]
    return shapes


def _resolve(ref: str) -> dict[str, Any]:
    node: dict[str, Any] = schema()
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def _check_keys(value: dict[str, Any], path: str, keys: Any, required: Any) -> None:
    """An object's own keys: an unknown one (in document order), then a missing one."""
    for key in value:
        if key not in keys:
            raise _Bad(f"{_key_path(path, key)}: unknown key")
    for key in required:
        if key not in value:
            raise _Bad(f'{path}: missing key "{key}"')


def _value_children(value: Any, path: str) -> list[tuple[Any, str, str]]:
    """Check a VALUE of an ``expr`` node (its own keys, as a node's: unknown keys in document
    order, then missing ones, then each key in schema order); its arguments, to check next.
    Its shape is the one named by the first of ``lit``, ``field``, ``fn`` it holds."""
    if not isinstance(value, dict):
        raise _Bad(f"{path}: expected an object, found {kind_of(value)}")
    kind = next((k for k in _VALUE_KINDS if k in value), None)
    if kind is None:
        raise _Bad(f'{path}: missing key "lit", "field" or "fn"')
    shape = _value_shapes()[_VALUE_KINDS.index(kind)]
    keys, required = list(shape["properties"]), list(shape["required"])
    _check_keys(value, path, keys, required)
    for key in keys:
        if key not in value:
            continue
        got = value[key]
        where = _key_path(path, key)
        if key == "lit":
            if isinstance(got, list | dict):
                wanted = "a string, a number, a boolean or null"
                raise _Bad(f"{where}: expected {wanted}, found {kind_of(got)}")
            continue
        if key == "args":
            if not isinstance(got, list):
                raise _Bad(f"{where}: expected an array, found {kind_of(got)}")
            continue
        if not isinstance(got, str):
            raise _Bad(f"{where}: expected a string, found {kind_of(got)}")
        prop = shape["properties"][key]
        if "$ref" in prop:
            prop = _resolve(prop["$ref"])
        if "enum" in prop and got not in prop["enum"]:
            shown = json.dumps(got, ensure_ascii=False)
            raise _Bad(f"{where}: {shown} is not one of: {', '.join(prop['enum'])}")
    args = value.get("args", []) if kind == "fn" else []
    return [(arg, f"{_key_path(path, 'args')}[{i}]", "value") for i, arg in enumerate(args)]


# The document's shapes (the schema's top-level `oneOf`, in its order): the first of these keys
# a document holds picks its shape (none: `branches`), and the others are then unknown keys.
SHAPES = ("branches", "sequence", "sample", "new_terms", "threshold")


def _doc_shape(doc: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(keys, required keys) of a document, by its shape: the keys of the others are
    unknown, and so is a key whose `dependentRequired` names another shape (`allowlist`)."""
    shape = next((k for k in SHAPES if k in doc), SHAPES[0])
    keys, required = _shape("doc")
    depends: dict[str, list[str]] = schema().get("dependentRequired", {})
    keys = [
        k
        for k in keys
        if (k == shape or k not in SHAPES) and all(d == shape for d in depends.get(k, []))
    ]
    return keys, [*required, shape]


def _integer(value: dict[str, Any], key: str, path: str, prop: dict[str, Any]) -> None:
    """An integer (or null, when the schema allows it) of at least the schema's minimum."""
    got = value[key]
    nullable = "null" in prop["type"]
    where = _key_path(path, key)
    if got is None and nullable:
        return
    if type(got) is not int:
        wanted = "an integer or null" if nullable else "an integer"
        raise _Bad(f"{where}: expected {wanted}, found {kind_of(got)}")
    if "minimum" in prop and got < prop["minimum"]:
        raise _Bad(f"{where}: must be at least {prop['minimum']}, found {got}")


def _joined_children(value: dict[str, Any], path: str, place: str) -> list[tuple[Any, str, str]]:
    """Check a sequence's or sample's object, a stage, a join key or a pipe (its own keys, as a
    node's: unknown ones, missing ones, then each key in schema order); its parts, to check
    next."""
    part = schema()["$defs"][place]
    keys, required = list(part["properties"]), list(part["required"])
    _check_keys(value, path, keys, required)
    children: list[tuple[Any, str, str]] = []
    for key in keys:
        prop = part["properties"][key]
        if key not in value:
            continue  # an optional key (a join key's `optional`)
        got = value[key]
        where = _key_path(path, key)
        if "$ref" in prop:  # a node (a stage's expr) or a field type
            if prop["$ref"] == "#/$defs/node":
                children.append((got, where, "node"))
            elif not isinstance(got, str):
                raise _Bad(f"{where}: expected a string, found {kind_of(got)}")
            elif got not in _resolve(prop["$ref"])["enum"]:
                shown = json.dumps(got, ensure_ascii=False)
                raise _Bad(
                    f"{where}: {shown} is not one of: {', '.join(_resolve(prop['$ref'])['enum'])}"
                )
            continue
        kinds = prop.get("type")
        if "anyOf" in prop:  # until: null or a stage; the tiebreaker: null, a string or a field
            options = prop["anyOf"]
            ref = next(o["$ref"].rsplit("/", 1)[1] for o in options if "$ref" in o)
            strings = {"type": "string"} in options
            if isinstance(got, dict):
                children.append((got, where, ref))
            elif not (got is None or (strings and isinstance(got, str))):
                wanted = "a string, an object or null" if strings else "an object or null"
                raise _Bad(f"{where}: expected {wanted}, found {kind_of(got)}")
        elif kinds == "array":
            if not isinstance(got, list):
                raise _Bad(f"{where}: expected an array, found {kind_of(got)}")
            least = prop.get("minItems", 0)
            if len(got) < least:
                raise _Bad(f"{where}: must hold at least {least} items, found {len(got)}")
            item = prop["items"]["$ref"].rsplit("/", 1)[1]
            children += [(g, f"{where}[{i}]", item) for i, g in enumerate(got)]
        elif kinds == "boolean":
            if not isinstance(got, bool):
                raise _Bad(f"{where}: expected a boolean, found {kind_of(got)}")
        elif kinds in ("integer", ["integer", "null"]):
            _integer(value, key, path, prop)
        else:  # a string, or a string or null
            if not (isinstance(got, str) or (got is None and "null" in kinds)):
                wanted = "a string or null" if "null" in kinds else "a string"
                raise _Bad(f"{where}: expected {wanted}, found {kind_of(got)}")
            if "enum" in prop and got not in prop["enum"]:
                shown = json.dumps(got, ensure_ascii=False)
                raise _Bad(f"{where}: {shown} is not one of: {', '.join(prop['enum'])}")
    return children


def _check_pred_options(pred: dict[str, Any], path: str) -> None:
    """A predicate's optional keys (``ignore_above``, ``normalizer``, ``analyzer``: spec/ir.md,
    KQL additions), in schema order: an integer of at least the minimum, or one of an enum."""
    props = schema()["$defs"]["pred"]["properties"]
    for key in ("ignore_above", "normalizer", "analyzer"):
        if key not in pred:
            continue
        prop = props[key]
        if prop["type"] == "integer":
            _integer(pred, key, path, prop)
            continue
        got = pred[key]
        where = _key_path(path, key)
        if not isinstance(got, str):
            raise _Bad(f"{where}: expected a string, found {kind_of(got)}")
        if got not in prop["enum"]:
            shown = json.dumps(got, ensure_ascii=False)
            raise _Bad(f"{where}: {shown} is not one of: {', '.join(prop['enum'])}")


def _condition(rule: dict[str, Any], pred: dict[str, Any]) -> str | None:
    """The words for a `$defs/pred/allOf` rule's `if` when ``pred`` meets it, else None: a key
    that is present (``with "ignore_above"``), or a key whose value is listed (``with
    field_type "text"``)."""
    test = rule["if"]
    props: dict[str, Any] = test.get("properties", {})
    if not props:
        key = test["required"][0]
        return f'with "{key}"' if key in pred else None
    key, allowed = next(iter(props.items()))
    listed = allowed["enum"] if "enum" in allowed else [allowed["const"]]
    if pred.get(key) in listed:
        return f'with {key} "{pred[key]}"'
    return None


def _check_pred_pairs(pred: dict[str, Any], path: str) -> None:
    """Which field types take which optional keys and operators (the schema's
    `$defs/pred/allOf`, rule by rule in its order; in each, a key it requires, then the
    values it allows)."""
    for rule in schema()["$defs"]["pred"].get("allOf", []):
        condition = _condition(rule, pred)
        if condition is None:
            continue
        then = rule["then"]
        for key in then.get("required", []):
            if key not in pred:
                raise _Bad(f'{path}: missing key "{key}" (required {condition})')
        for key, allowed in then.get("properties", {}).items():
            if key in pred and pred[key] not in allowed["enum"]:
                shown = json.dumps(pred[key], ensure_ascii=False)
                raise _Bad(
                    f"{_key_path(path, key)}: {shown} is not allowed {condition} "
                    f"(allowed: {', '.join(allowed['enum'])})"
                )


def _check_key_counts(doc: dict[str, Any]) -> None:
    """Every stage of a sequence or sample (and its `until`) has as many join keys as the
    first: what the schema cannot say."""
    kind = next((k for k in ("sequence", "sample") if k in doc), None)
    if kind is None:
        return
    body = doc[kind]
    stages = [(f"$.{kind}.stages[{i}].keys", s) for i, s in enumerate(body["stages"])]
    if body.get("until") is not None:
        stages.append((f"$.{kind}.until.keys", body["until"]))
    first = len(body["stages"][0]["keys"])
    for path, stage in stages:
        if len(stage["keys"]) != first:
            raise _Bad(
                f"{path}: expected as many join keys as $.{kind}.stages[0] ({first}), "
                f"found {len(stage['keys'])}"
            )


# The objects of the sequence, sample, new_terms and threshold shapes, checked by
# _joined_children.
_JOINED_PLACES = frozenset(
    {
        *SHAPES[1:],
        "sequence_stage",
        "stage",
        "key",
        "field_ref",
        "pipe",
        "term_field",
        "cardinality",
    }
)


def _shown(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _check_nested_path(path: str, scope: str | None, where: str) -> None:
    """A nested node's path (spec/ir.md, Nested scopes): a field path (non-empty, no empty
    part), below the enclosing nested node's path when there is one."""
    if not all(path.split(".")):
        raise _Bad(f"{where}: nested node: path {_shown(path)} is not a field path")
    if scope is not None and not path.startswith(scope + "."):
        raise _Bad(
            f"{where}: nested node: path {_shown(path)} is not under its path {_shown(scope)}"
        )


def _check(doc: Any) -> None:
    _check_tree(doc)
    _check_key_counts(doc)


def _check_tree(doc: Any) -> None:
    defs = schema()["$defs"]
    kinds = defs["node"]["properties"]["node"]["enum"]
    field_types = defs["pred"]["properties"]["field_type"]["enum"]
    # Each entry's last item: the path of the nested node it is under (spec/ir.md, Nested
    # scopes), or None.
    stack: list[tuple[Any, str, str, str | None]] = [(doc, "$", "doc", None)]
    while stack:
        value, path, place, scope = stack.pop()
        if not isinstance(value, dict):
            raise _Bad(f"{path}: expected an object, found {kind_of(value)}")

        def string(key: str, value: dict[str, Any] = value, path: str = path) -> str | None:
            got = value.get(key)
            if got is None and key not in value:
                return None
            if not isinstance(got, str):
                raise _Bad(f"{_key_path(path, key)}: expected a string, found {kind_of(got)}")
            return got

        def one_of(key: str, allowed: list[str], path: str = path) -> None:
            got = string(key)
            if got is not None and got not in allowed:
                shown = json.dumps(got, ensure_ascii=False)
                raise _Bad(f"{_key_path(path, key)}: {shown} is not one of: {', '.join(allowed)}")

        def array(
            key: str, nonempty: bool, value: dict[str, Any] = value, path: str = path
        ) -> list[Any]:
            if key not in value:
                return []
            got = value[key]
            if not isinstance(got, list):
                raise _Bad(f"{_key_path(path, key)}: expected an array, found {kind_of(got)}")
            if nonempty and not got:
                raise _Bad(f"{_key_path(path, key)}: must not be empty")
            return got

        if place == "value":
            stack.extend((*c, None) for c in reversed(_value_children(value, path)))
            continue
        if place in _JOINED_PLACES:
            stack.extend((*c, None) for c in reversed(_joined_children(value, path, place)))
            continue
        kind = place
        if place == "node":
            if "node" not in value:
                raise _Bad(f'{path}: missing key "node"')
            one_of("node", kinds)
            kind = value["node"]
            if kind == "expr" and scope is not None:
                raise _Bad(
                    f"{_key_path(path, 'node')}: nested node: an expr node cannot be under "
                    f"nested path {_shown(scope)}"
                )
        shape = {"doc": "doc", "branch": "branch", "and": "chain", "or": "chain"}.get(kind, kind)
        keys, required = _doc_shape(value) if kind == "doc" else _shape(shape)
        _check_keys(value, path, keys, required)
        children: list[tuple[Any, str, str]] = []
        inner = scope  # the nested path of this node's children
        if kind == "doc":
            if "ir_version" in value:
                version = value["ir_version"]
                if type(version) is not int:
                    raise _Bad(f"$.ir_version: expected an integer, found {kind_of(version)}")
                if version != IR_VERSION:
                    raise _Bad(
                        f"$.ir_version: IR version {version} is not supported "
                        f"(expected {IR_VERSION})"
                    )
            for key in ("id", "name", "severity"):
                string(key)
            branches = array("branches", True)
            allowlist = array("allowlist", False)
            children += [(b, f"$.branches[{i}]", "branch") for i, b in enumerate(branches)]
            children += [(n, f"$.allowlist[{i}]", "node") for i, n in enumerate(allowlist)]
            for joined in SHAPES[1:]:
                if joined in value:
                    got = value[joined]
                    if not isinstance(got, dict):
                        raise _Bad(f"$.{joined}: expected an object, found {kind_of(got)}")
                    children.append((got, f"$.{joined}", joined))
        elif kind == "branch":
            string("name")
            children.append((value["expr"], _key_path(path, "expr"), "node"))
        elif kind in ("and", "or"):
            args = array("args", True)
            children += [(n, f"{_key_path(path, 'args')}[{i}]", "node") for i, n in enumerate(args)]
        elif kind == "not":
            children.append((value["arg"], _key_path(path, "arg"), "node"))
        elif kind == "nested":
            inner = string("path")
            _check_nested_path(inner or "", scope, _key_path(path, "path"))
            children.append((value["arg"], _key_path(path, "arg"), "node"))
        elif kind == "expr":
            string("text")
            children.append((value["expr"], _key_path(path, "expr"), "value"))
        else:
            field = string("field")
            if scope is not None and field is not None and not field.startswith(scope + "."):
                raise _Bad(
                    f"{_key_path(path, 'field')}: nested node: field {_shown(field)} is not "
                    f"under its path {_shown(scope)}"
                )
            one_of("field_type", field_types)
            one_of("op", ops())
            values = array("values", False)
            for i, item in enumerate(values):
                if not isinstance(item, str):
                    where = f"{_key_path(path, 'values')}[{i}]"
                    raise _Bad(f"{where}: expected a string, found {kind_of(item)}")
            _check_pred_options(value, path)
            _check_pred_pairs(value, path)
        stack.extend((*c, inner if c[2] == "node" else None) for c in reversed(children))
