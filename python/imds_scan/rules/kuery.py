"""KQL ("kuery") rule files: Elastic's ``query``, ``new_terms`` and ``threshold`` rules
compiled to the IR of spec/kql.md (Rule types): the query and the rule's ``filters`` (Query
DSL, AND-ed in) as one condition; for new_terms and threshold, the rule's schedule (``from``,
``interval``), time fields and terms. Everything else Elastic's files hold is ignored."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import EqlError

if TYPE_CHECKING:
    from ..mapping import FieldMapping, Mapping

Node = dict[str, Any]
KINDS = ("query", "new_terms", "threshold")
# Why the other rule types of Elastic's detection engine are refused.
REFUSED_TYPES = {
    "threat_match": "it matches events against threat-intelligence indices, which an archive "
    "scan does not have",
    "machine_learning": "it reads the anomalies of Elastic's machine learning jobs",
    "esql": "ES|QL is not supported",
    "eql": 'an EQL rule needs language = "eql"',
}
# Kibana's defaults: look back 6 minutes, every 5 minutes.
DEFAULT_FROM = "now-6m"
DEFAULT_INTERVAL = "5m"
_UNIT_MS = {
    "s": 1000,
    "m": 60_000,
    "h": 3_600_000,
    "H": 3_600_000,
    "d": 86_400_000,
    "w": 7 * 86_400_000,
}


class KueryRuleError(ValueError):
    """A refusal: ``message`` names the key; the loader adds the file."""


def duration_ms(text: str, key: str, *, relative: bool) -> int:
    """``now-9m`` (``relative``: Kibana's date math, units s m h H d w) or ``5m`` (the
    alerting framework's duration, units s m h d) in milliseconds; KueryRuleError naming
    ``key``."""
    pattern = r"now-([0-9]+)([smhHdw])" if relative else r"([0-9]+)([smhd])"
    match = re.fullmatch(pattern, text)
    if match is None or int(match.group(1)) == 0:
        example, units = ("now-9m", "s, m, h, d or w") if relative else ("5m", "s, m, h or d")
        raise KueryRuleError(
            f"rule.{key}: {text!r} is not a duration imds-scan reads (such as {example}: "
            f"a whole number of {units})"
        )
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


def compile_kuery(
    rule: dict[str, Any],
    *,
    rule_type: str,
    head: dict[str, Any],
    mapping: Mapping,
    on_query_error: Callable[[EqlError], Exception],
) -> dict[str, Any]:
    """The IR of a KQL rule (``head``: ir_version, id, name, severity). ``on_query_error``
    turns a query error into the loader's refusal (file:line:column)."""
    from ..kql import _combine, compile_query

    query = rule.get("query")
    if not isinstance(query, str):
        raise KueryRuleError("rule.query: expected a string")
    try:
        expr = compile_query(query, mapping=mapping)
    except EqlError as exc:
        raise on_query_error(exc) from None
    filters = _filters(rule.get("filters"), mapping)
    expr = _combine("and", [expr, *filters])
    if rule_type == "query":
        return {**head, "branches": [{"name": "query", "expr": expr}]}
    body = {"expr": expr, **_schedule(rule)}
    if rule_type == "new_terms":
        body["history_window_ms"], body["fields"] = _new_terms(rule, body["from_ms"], mapping)
        return {**head, "new_terms": body}
    body.update(_threshold(rule, mapping))
    return {**head, "threshold": body}


def _schedule(rule: dict[str, Any]) -> dict[str, Any]:
    override = rule.get("timestamp_override")
    if override is not None and (not isinstance(override, str) or not override):
        raise KueryRuleError("rule.timestamp_override: expected a field name")
    no_fallback = rule.get("timestamp_override_fallback_disabled") is True
    if rule.get("to", "now") != "now":
        raise KueryRuleError(f"rule.to: {rule['to']!r}: only now is supported")
    return {
        "timestamp_field": override or "@timestamp",
        "fallback_timestamp_field": "@timestamp" if override and not no_fallback else None,
        "interval_ms": duration_ms(
            _text(rule, "interval", DEFAULT_INTERVAL), "interval", relative=False
        ),
        "from_ms": duration_ms(_text(rule, "from", DEFAULT_FROM), "from", relative=True),
    }


def _text(rule: dict[str, Any], key: str, default: str) -> str:
    value = rule.get(key, default)
    if not isinstance(value, str):
        raise KueryRuleError(f"rule.{key}: expected a string")
    return value


def _field_ref(name: Any, key: str, mapping: Mapping) -> Node:
    """A field whose indexed values a new_terms or threshold rule groups by."""
    if not isinstance(name, str) or not name:
        raise KueryRuleError(f"rule.{key}: expected a field name")
    from ..kql import unmodelled

    fm = mapping.resolve(name)
    reason = unmodelled(mapping, name, fm)
    if reason is not None:
        raise KueryRuleError(f"rule.{key}: {reason}")
    if fm.ir_type == "text" or fm.type in ("object", "nested"):
        raise KueryRuleError(
            f"rule.{key}: {name} is a {fm.type} field: Elasticsearch cannot aggregate its terms"
        )
    ref: Node = {"field": fm.multi_field_of or fm.name, "field_type": fm.ir_type}
    if fm.ir_type == "keyword":
        if fm.ignore_above is not None:
            ref["ignore_above"] = fm.ignore_above
        if fm.normalizer is not None:
            ref["normalizer"] = fm.normalizer
    return ref


def _new_terms(rule: dict[str, Any], from_ms: int, mapping: Mapping) -> tuple[int, list[Node]]:
    table = rule.get("new_terms")
    if not isinstance(table, dict):
        raise KueryRuleError("rule.new_terms: missing (a new_terms rule names its fields there)")
    if table.get("field", "new_terms_fields") != "new_terms_fields":
        raise KueryRuleError('rule.new_terms.field: expected "new_terms_fields"')
    names = table.get("value")
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not 1 <= len(names) <= 3:
        raise KueryRuleError("rule.new_terms.value: expected one to three field names")
    if len(set(map(str, names))) != len(names):
        raise KueryRuleError("rule.new_terms.value: a field is named twice")
    fields = [_field_ref(n, "new_terms.value", mapping) for n in names]
    window = table.get("history_window_start")
    if isinstance(window, list) and len(window) == 1 and isinstance(window[0], dict):
        window = window[0].get("value")
    if not isinstance(window, str):
        raise KueryRuleError(
            "rule.new_terms.history_window_start: expected "
            '[{field = "history_window_start", value = "now-7d"}]'
        )
    history = duration_ms(window, "new_terms.history_window_start", relative=True)
    if history <= from_ms:
        raise KueryRuleError(
            f"rule.new_terms.history_window_start: {window} must reach further back than "
            "rule.from (Kibana refuses the rule)"
        )
    return history, fields


def _threshold(rule: dict[str, Any], mapping: Mapping) -> dict[str, Any]:
    table = rule.get("threshold")
    if not isinstance(table, dict):
        raise KueryRuleError("rule.threshold: missing (a threshold rule sets its value there)")
    names = table.get("field", [])
    if isinstance(names, str):
        names = [names] if names else []
    if not isinstance(names, list) or len(names) > 5:
        raise KueryRuleError("rule.threshold.field: expected at most five field names")
    if len(set(map(str, names))) != len(names):
        raise KueryRuleError("rule.threshold.field: a field is named twice")
    value = table.get("value")
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 2**31 - 1:
        raise KueryRuleError("rule.threshold.value: expected an integer of at least 1")
    cardinality = table.get("cardinality", [])
    if not isinstance(cardinality, list):
        raise KueryRuleError("rule.threshold.cardinality: expected an array of {field, value}")
    counts = []
    for entry in cardinality[:1]:  # Kibana reads the first entry only
        count = entry.get("value") if isinstance(entry, dict) else None
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise KueryRuleError(
                "rule.threshold.cardinality: value: expected an integer of at least 0"
            )
        ref = _field_ref(entry.get("field"), "threshold.cardinality.field", mapping)
        counts.append({**ref, "value": count})
    return {
        "fields": [_field_ref(n, "threshold.field", mapping) for n in names],
        "value": value,
        "cardinality": counts,
    }


# ---------------------------------------------------------------- filters


def _filters(entries: Any, mapping: Mapping) -> list[Node]:
    """The enabled ``[[rule.filters]]`` as conditions (``meta.negate``: negated)."""
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise KueryRuleError("rule.filters: expected an array of tables")
    out = []
    for i, entry in enumerate(entries):
        where = f"rule.filters[{i}]"
        if not isinstance(entry, dict):
            raise KueryRuleError(f"{where}: expected a table")
        meta = entry.get("meta", {})
        if not isinstance(meta, dict):
            raise KueryRuleError(f"{where}.meta: expected a table")
        if meta.get("disabled") is True:
            continue
        dsl = entry.get("query")
        if dsl is None:  # the older layout: the query's keys beside meta
            dsl = {k: v for k, v in entry.items() if k not in ("meta", "$state")}
        try:
            node = _dsl(dsl, mapping)
        except KueryRuleError as exc:
            raise KueryRuleError(f"{where}: {exc}") from None
        except EqlError as exc:
            raise KueryRuleError(f"{where}: {exc.message}") from None
        if node is None:
            if meta.get("negate") is True:
                raise KueryRuleError(f"{where}: a negated match_all matches no event")
            continue
        out.append({"node": "not", "arg": node} if meta.get("negate") is True else node)
    return out


def _one(dsl: Any, kind: str) -> tuple[str, Any]:
    """The single ``{field: spec}`` of a leaf query."""
    if not isinstance(dsl, dict) or len(dsl) != 1:
        raise KueryRuleError(f"{kind}: expected one field")
    ((name, spec),) = dsl.items()
    return name, spec


def _dsl(dsl: Any, mapping: Mapping) -> Node | None:
    """A Query DSL query as a condition; None for match_all."""
    from ..kql import _combine, _pred

    if not isinstance(dsl, dict) or len(dsl) != 1:
        raise KueryRuleError("expected a table with one Query DSL query")
    ((kind, body),) = dsl.items()
    if kind == "match_all":
        return None
    if kind == "bool":
        return _bool(body, mapping)
    if kind == "exists":
        if not isinstance(body, dict) or not isinstance(body.get("field"), str):
            raise KueryRuleError("exists: expected {field = NAME}")
        return _pred(mapping.resolve(body["field"]), "exists", [])
    if kind == "wildcard":
        name, spec = _one(body, kind)
        if isinstance(spec, dict):
            extra = set(spec) - {"value", "wildcard", "case_insensitive", "boost", "rewrite"}
            if extra:
                raise KueryRuleError(f"wildcard: {sorted(extra)[0]} is not supported")
            pattern = spec.get("value", spec.get("wildcard"))
            ci = spec.get("case_insensitive") is True
        else:
            pattern, ci = spec, False
        if not isinstance(pattern, str):
            raise KueryRuleError("wildcard: expected a string pattern")
        fm = mapping.resolve(name)
        if fm.ir_type not in ("keyword", "wildcard"):
            raise KueryRuleError(
                f"wildcard: {name} is {_article(fm.type)} field (supported: keyword and wildcard)"
            )
        if ci:
            return _pred(fm, "wildcard_query_ci", [pattern])
        from ..kql import _normalized

        return _pred(fm, "wildcard_query", [_normalized(fm, pattern)])
    if kind in ("match_phrase", "match", "term"):
        name, spec = _one(body, kind)
        key = "value" if kind == "term" else "query"
        if isinstance(spec, dict):
            extra = set(spec) - {key, "boost"}
            if extra:
                raise KueryRuleError(f"{kind}: {sorted(extra)[0]} is not supported")
            spec = spec.get(key)
        return _leaf(kind, name, spec, mapping)
    if kind == "terms":
        if not isinstance(body, dict):
            raise KueryRuleError("terms: expected {FIELD = [values]}")
        body = {k: v for k, v in body.items() if k != "boost"}
        name, values = _one(body, kind)
        if not isinstance(values, list) or not values:
            raise KueryRuleError("terms: expected a non-empty array of values")
        return _combine("or", [_leaf("term", name, v, mapping) for v in values])
    if kind == "range":
        name, spec = _one(body, kind)
        if not isinstance(spec, dict):
            raise KueryRuleError("range: expected {gte, gt, lte, lt}")
        extra = set(spec) - {"gte", "gt", "lte", "lt", "boost"}
        if extra:
            raise KueryRuleError(f"range: {sorted(extra)[0]} is not supported")
        parts = [
            _leaf(op, name, spec[op], mapping) for op in ("gte", "gt", "lte", "lt") if op in spec
        ]
        if not parts:
            raise KueryRuleError("range: no bound")
        return _combine("and", parts)
    raise KueryRuleError(f"a {kind} query is not supported in filters")


def _article(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" or noun.startswith("ip") else "a ") + noun


def _leaf(kind: str, name: Any, value: Any, mapping: Mapping) -> Node:
    """A match_phrase / match / term query, or one range bound, on one field."""
    from ..kql import Lit, _Compiler, _Parser

    if not isinstance(name, str) or not name:
        raise KueryRuleError(f"{kind}: expected a field name")
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str):
        raise KueryRuleError(f"{kind}: {name}: expected a string, number or boolean value")
    fm: FieldMapping = mapping.resolve(name)
    compiler = _Compiler(_Parser(value, "<filter>"), mapping)
    if kind in ("gte", "gt", "lte", "lt"):
        return compiler.range(Lit(0, list(name), True), kind, Lit(0, list(value), True), None)
    if kind == "term":
        if fm.ir_type == "text":
            raise KueryRuleError(f"term: {name} is a text field (a term query matches one token)")
        if fm.type == "keyword":
            from ..kql import _normalized, _pred

            return _pred(fm, "eq", [_normalized(fm, value)])
        return compiler.term(fm, value, 0)
    return compiler.is_(fm, Lit(0, list(value), kind == "match_phrase"))


def _bool(body: Any, mapping: Mapping) -> Node | None:
    from ..kql import _combine, _negate

    if not isinstance(body, dict):
        raise KueryRuleError("bool: expected a table")
    extra = set(body) - {"must", "filter", "should", "must_not", "minimum_should_match", "boost"}
    if extra:
        raise KueryRuleError(f"bool: {sorted(extra)[0]} is not supported")

    def clauses(key: str) -> list[Node | None]:
        items = body.get(key, [])
        items = [items] if isinstance(items, dict) else items
        if not isinstance(items, list):
            raise KueryRuleError(f"bool.{key}: expected an array of queries")
        return [_dsl(item, mapping) for item in items]

    required = [n for n in clauses("must") + clauses("filter") if n is not None]
    should = clauses("should")
    minimum = body.get("minimum_should_match")
    if minimum not in (None, 1, "1"):
        raise KueryRuleError("bool: minimum_should_match other than 1 is not supported")
    parts = list(required)
    # Without must or filter one should clause must hold; with them, none need (unless
    # minimum_should_match says 1).
    if should and (minimum is not None or not required):
        if any(n is None for n in should):
            pass  # a match_all among the should clauses: always satisfied
        else:
            parts.append(_combine("or", [n for n in should if n is not None]))
    for node in clauses("must_not"):
        if node is None:
            raise KueryRuleError("bool.must_not: a match_all there matches no event")
        parts.append(_negate(node))
    if not parts:
        return None
    return _combine("and", parts)
