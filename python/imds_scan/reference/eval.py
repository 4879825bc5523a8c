"""Rule evaluation: the IR of a rule compiled to predicates and evaluated on an event, with
the witness that decided it (spec/ir.md), mirrored by crates/imds-core/src/eval.rs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..eql import MAX_IR_DEPTH, ir_depth
from ..ir_schema import AFFIX_OPS, KQL_OPS, RANGE_OPS, REGEX_OPS, TEXT_OPS
from ..ir_schema import check as check_ir_schema
from ..stats import EngineWitness
from .analysis import TokenQuery, analyze, wildcard_on_text
from .endpoint import CLASSES, first_match, port_number
from .event import field_values, flat_text, nested_docs, raw_values
from .expr import compile_value
from .ip import in_cidr, parse_cidr, parse_ip
from .lucene_regex import LuceneRegex
from .typed import compare, java_lowercase, read_literal_span, read_value, utf16_len
from .wildcard import EsWildcard, Wildcard, ascii_fold

# The orders (of value against literal, typed.compare) each comparison accepts.
_WANTED_ORDERS = {"eq": (0,), "lt": (-1,), "lte": (-1, 0), "gt": (1,), "gte": (1, 0)}


@dataclass
class Witness:
    field: str
    op: str
    pattern: str
    value: str
    under_or: bool = False

    def as_tuple(self) -> EngineWitness:
        return (self.field, self.op, self.pattern, self.value)


# The test of each affix operator (its ``_ci`` twin folds both sides first).
_AFFIX_TESTS = {
    "starts_with": str.startswith,
    "ends_with": str.endswith,
    "contains": str.__contains__,
}


class _Pred:
    def __init__(self, node: dict[str, Any], scope: str = "") -> None:
        self.field = node["field"]
        # Read in the scope's document (spec/ir.md, Nested scopes): the field below its path.
        self.parts = self.field[len(scope) + 1 if scope else 0 :].split(".")
        self.op: str = node["op"]
        # A `wildcard` field compares as a keyword (the whole value, case-sensitive).
        self.field_type: str = "keyword" if node["field_type"] == "wildcard" else node["field_type"]
        self.is_ip = self.field_type == "ip"
        self.values: list[str] = node["values"]
        keyword = self.field_type == "keyword"
        self.ignore_above: int | None = node.get("ignore_above") if keyword else None
        self.lowercase = keyword and node.get("normalizer") is not None
        self.analyzer: str = node.get("analyzer", "standard")
        if (
            self.field_type == "text"
        ):  # the schema allows match, match_phrase, wildcard_query, exists
            if self.op == "exists" and self.values:
                raise ValueError("exists takes no values")
            if self.op in ("match", "match_phrase"):
                self.tokens = [analyze(self.analyzer, v) for v in self.values]
            elif self.op == "wildcard_query":  # what each token is tested against
                self.token_queries = [
                    [(q, EsWildcard(q.text) if q.kind == "wildcard" else None) for q in queries]
                    for queries in (wildcard_on_text(self.analyzer, v) for v in self.values)
                ]
            elif self.op != "exists":
                raise ValueError(f"{self.op} is not allowed on text field {self.field}")
            self.typed = False
            return
        if self.op in KQL_OPS:
            if self.op == "match" or self.op == "match_phrase" or not keyword:
                raise ValueError(
                    f"{self.op} is not allowed on {self.field_type} field {self.field}"
                )
            ci = self.op == "wildcard_query_ci"
            self.es_patterns = [EsWildcard(v, case_insensitive=ci) for v in self.values]
            self.typed = False
            return
        keyword_only = self.op in TEXT_OPS or self.op in REGEX_OPS
        if (keyword_only and self.field_type != "keyword") or (
            self.op == "eq_ci" and self.field_type not in ("keyword", "ip")
        ):
            raise ValueError(f"{self.op} is not allowed on {self.field_type} field {self.field}")
        # Values read as the field's type (reference/typed.py): ranges on every type, and
        # eq/exists on the types that are neither text nor addresses.
        self.typed = self.op in RANGE_OPS or (
            self.field_type not in ("keyword", "ip") and self.op in ("eq", "exists")
        )
        if self.op in RANGE_OPS and len(self.values) != 1:
            raise ValueError(f"{self.op} takes exactly one value, not {len(self.values)}")
        if self.typed:
            if self.op == "exists" and self.values:
                raise ValueError("exists takes no values")
            self.literals = [read_literal_span(self.field_type, v) for v in self.values]
        elif self.op in REGEX_OPS:
            self.regexes = [LuceneRegex(v, self.op == "regex_ci") for v in self.values]
        elif self.op == "imds_endpoint":
            for value in self.values:
                if value not in CLASSES:
                    raise ValueError(f"{value!r} is not an endpoint class")
        elif self.op == "exists":
            if self.values:
                raise ValueError("exists takes no values")
        elif self.op == "cidr":
            blocks = [parse_cidr(v) for v in self.values]
            for value, block in zip(self.values, blocks, strict=True):
                if block is None:
                    raise ValueError(f"{value!r} is not a CIDR block")
            self.blocks = [b for b in blocks if b is not None]
        elif self.is_ip:
            self.addresses = [parse_ip(v) for v in self.values]
        elif self.op in ("eq_ci", "starts_with_ci", "ends_with_ci", "contains_ci"):
            self.folded = [ascii_fold(v) for v in self.values]
        elif self.op in ("wildcard", "like"):
            self.patterns = [Wildcard(v, fold=self.op == "wildcard") for v in self.values]
        elif self.op not in ("eq", "exists", *AFFIX_OPS):
            raise ValueError(f"unknown op {self.op!r}")

    def _typed_literal_for(self, item: str | bool) -> str | None:
        """The first literal a typed value satisfies (``""`` for exists), or None."""
        value = read_value(self.field_type, item)
        if value is None:
            return None
        if self.op == "exists":
            return ""
        for literal, (low, high) in zip(self.values, self.literals, strict=True):
            if self.op == "eq":
                hit = compare(value, low) in (0, 1) and compare(value, high) in (-1, 0)
            else:
                bound = high if self.op in ("lte", "gt") else low
                hit = compare(value, bound) in _WANTED_ORDERS[self.op]
            if hit:
                return literal
        return None

    def _literal_for(self, value: str) -> str | None:
        """The first of this predicate's literals that `value` satisfies."""
        op = self.op
        if self.field_type == "text":
            if op == "exists":  # any value at all, whatever its tokens
                return ""
            tokens = analyze(self.analyzer, value)
            if op == "match":
                for literal, needed in zip(self.values, self.tokens, strict=True):
                    if any(t in tokens for t in needed):
                        return literal
            elif op == "match_phrase":
                for literal, needed in zip(self.values, self.tokens, strict=True):
                    n = len(needed)
                    if n and any(tokens[i : i + n] == needed for i in range(len(tokens) - n + 1)):
                        return literal
            else:  # wildcard_query: some entry holds
                for literal, queries in zip(self.values, self.token_queries, strict=True):
                    if any(_token_query_holds(q, es, tokens) for q, es in queries):
                        return literal
            return None
        if op in ("wildcard_query", "wildcard_query_ci"):
            for literal, es in zip(self.values, self.es_patterns, strict=True):
                if es.fullmatch(value):
                    return literal
            return None
        if op == "exists":  # any value (on an ip field, any address); no literal to report
            return "" if not self.is_ip or parse_ip(value) is not None else None
        if op == "cidr":
            address = parse_ip(value)
            if address is None:
                return None
            for literal, block in zip(self.values, self.blocks, strict=True):
                if in_cidr(address, block):
                    return literal
        elif self.is_ip:
            address = parse_ip(value)
            if address is None:
                return None
            for literal, wanted_address in zip(self.values, self.addresses, strict=True):
                if address == wanted_address:
                    return literal
        elif op == "eq":
            for literal in self.values:
                if value == literal:
                    return literal
        elif op == "eq_ci":
            folded = ascii_fold(value)
            for literal, wanted in zip(self.values, self.folded, strict=True):
                if folded == wanted:
                    return literal
        elif op in REGEX_OPS:
            for literal, regex in zip(self.values, self.regexes, strict=True):
                if regex.is_match(value):
                    return literal
        elif op in ("wildcard", "like"):
            subject = ascii_fold(value) if op == "wildcard" else value
            for literal, pattern in zip(self.values, self.patterns, strict=True):
                if pattern.fullmatch(subject):
                    return literal
        else:
            test = _AFFIX_TESTS[op.removesuffix("_ci")]
            if op.endswith("_ci"):
                folded = ascii_fold(value)
                for literal, wanted in zip(self.values, self.folded, strict=True):
                    if test(folded, wanted):
                        return literal
            else:
                for literal in self.values:
                    if test(value, literal):
                        return literal
        return None

    def witness(self, doc: dict[str, Any], event: dict[str, Any] | None = None) -> Witness | None:
        """The witness on ``doc`` (the event, or a nested document of ``event``)."""
        if self.op == "imds_endpoint":  # the witness value is the text that named the endpoint
            top = doc if event is None else event

            def event_ports() -> list[int]:  # the event's, also in a nested scope
                ports = (port_number(v) for v in field_values(top, ["destination", "port"]))
                return [p for p in ports if p is not None]

            for value in field_values(doc, self.parts):
                indexed = self._indexed(value)
                found = None if indexed is None else first_match(indexed, self.values, event_ports)
                if found is not None:
                    return Witness(self.field, self.op, self.values[found[0]], found[1])
            return None
        if self.typed:
            prepared = self.ignore_above is not None or self.lowercase
            for item in raw_values(doc, self.parts):
                if prepared:  # a keyword field: its indexed text
                    indexed = self._indexed(flat_text(item))
                    literal = None if indexed is None else self._typed_literal_for(indexed)
                else:
                    literal = self._typed_literal_for(item)
                if literal is not None:
                    return Witness(self.field, self.op, literal, flat_text(item))
            return None
        for value in field_values(doc, self.parts):
            indexed = self._indexed(value)
            literal = None if indexed is None else self._literal_for(indexed)
            if literal is not None:  # the witness shows the value as the event has it
                return Witness(self.field, self.op, literal, value)
        return None

    def _indexed(self, value: str) -> str | None:
        """What a keyword field indexes of ``value``: nothing past ``ignore_above``, else the
        value normalized."""
        if self.ignore_above is not None and utf16_len(value) > self.ignore_above:
            return None
        return java_lowercase(value) if self.lowercase else value


def _token_query_holds(query: TokenQuery, es: EsWildcard | None, tokens: list[str]) -> bool:
    """Whether a text value with these tokens holds one entry of ``wildcard_on_text``."""
    if query.kind == "term":
        return query.text in tokens
    if query.kind == "prefix":
        return any(t.startswith(query.text) for t in tokens)
    if es is not None:
        return any(es.fullmatch(t) for t in tokens)
    return True  # exists: any value


class ExprNode:
    """An ``expr`` node: holds when its value is true for some combination of its fields'
    values (spec/ir.md, Expressions)."""

    def __init__(self, node: dict[str, Any]) -> None:
        self.text: str = node["text"]
        self.expr = compile_value(node["expr"])

    def witness(self, doc: dict[str, Any]) -> Witness | None:
        found = self.expr.holds(doc)
        if found is None:
            return None
        field_name, value = found
        return Witness(field_name, "expr", self.text, value)


def _compile(node: dict[str, Any], scope: str = "") -> Any:
    """A node ready to evaluate; ``scope``: the enclosing nested path ("" at the top)."""
    kind = node["node"]
    if kind == "pred":
        return _Pred(node, scope)
    if kind == "expr":
        return ExprNode(node)
    if kind == "nested":
        path: str = node["path"]
        parts = path[len(scope) + 1 if scope else 0 :].split(".")
        return ("nested", (parts, _compile(node["arg"], path)))
    if kind == "not":
        return ("not", _compile(node["arg"], scope))
    return (kind, [_compile(arg, scope) for arg in node["args"]])


def _evaluate(
    node: Any, doc: dict[str, Any], event: dict[str, Any] | None = None
) -> list[Witness] | None:
    """None when false; when true, the witnesses as spec/ir.md defines them. ``doc`` is the
    scope (the event, or a nested document of ``event``)."""
    if isinstance(node, _Pred):
        witness = node.witness(doc, event)
        return None if witness is None else [witness]
    if isinstance(node, ExprNode):
        witness = node.witness(doc)
        return None if witness is None else [witness]
    kind, arg = node
    if kind == "nested":  # one nested document must hold the whole arg
        parts, inner = arg
        top = doc if event is None else event
        for nested in nested_docs(doc, parts):
            found = _evaluate(inner, nested, top)
            if found is not None:
                return found
        return None
    if kind == "not":
        return [] if _evaluate(arg, doc, event) is None else None
    if kind == "and":
        collected: list[Witness] = []
        for child in arg:
            found = _evaluate(child, doc, event)
            if found is None:
                return None
            collected.extend(found)
        return collected
    for child in arg:  # or
        found = _evaluate(child, doc, event)
        if found is not None:
            for witness in found:
                witness.under_or = True
            return found
    return None


@dataclass
class CompiledRule:
    """A rule's IR compiled for evaluation (the Rust engine's ``CompiledRule``); not the
    loaded rule with its metadata, :class:`imds_scan.rules.Rule`."""

    ir: dict[str, Any]
    branches: list[tuple[str, Any]] = field(init=False)

    allowlist: list[Any] = field(init=False)

    def __post_init__(self) -> None:
        check_ir_schema(self.ir)
        for branch in self.ir["branches"]:  # the Rust engine's limit, and its words
            depth = ir_depth(branch["expr"])
            if depth > MAX_IR_DEPTH:
                raise ValueError(
                    f"branch {json.dumps(branch['name'])} nests {depth} levels deep "
                    f"(at most {MAX_IR_DEPTH} are supported)"
                )
        self.branches = [(b["name"], _compile(b["expr"])) for b in self.ir["branches"]]
        self.allowlist = [_compile(node) for node in self.ir.get("allowlist", ())]

    def evaluate(self, doc: dict[str, Any]) -> tuple[int, Witness | None] | None:
        """(index of the first matching branch, deciding witness), or None."""
        verdict = self.judge(doc)
        return verdict if isinstance(verdict, tuple) else None

    def judge(self, doc: dict[str, Any]) -> tuple[int, Witness | None] | int | None:
        """A hit (branch, witness); else the index of the first allowlist entry that drops
        an event a branch matched (spec/ir.md, Allowlists); else None."""
        for index, (_, expr) in enumerate(self.branches):
            found = _evaluate(expr, doc)
            if found is not None:
                for entry, node in enumerate(self.allowlist):
                    if _evaluate(node, doc) is not None:
                        return entry
                deciding = next((w for w in found if w.under_or), found[-1] if found else None)
                return index, deciding
        return None
