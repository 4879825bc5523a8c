"""ECS alert documents (``--format alerts``): one per hit, ready to re-ingest into Elastic.

Each document is the source event with ``event.kind`` set to ``alert``, the rule in
``rule.*``, the rule's own ATT&CK mapping (its ``[[rule.threat]]``) in ``threat.*`` and where
the hit came from in ``imds_scan.*``. Only ECS field names are added outside ``imds_scan``; ECS
has no ``rule.severity``, so the severity is ``event.severity`` (Elastic's risk number for it)
and ``imds_scan.severity`` (the word).

A sequence or sample result gives what Elastic's detection engine writes for one: a shell alert
for the result (the fields its events share) and a building-block alert per event that is
present, linked by ``kibana.alert.group.id`` (docs/output.md, Alert documents).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..records import Hit, SeqEvent
from ..reference.event import deep_json, load_event
from ..rules import Rule

# Elastic Security's default risk score for each rule severity.
RISK = {"low": 21, "medium": 47, "high": 73, "critical": 99}
RULESET = "imds-scan"


def _drop(obj: dict[str, Any], parts: list[str]) -> None:
    """Remove every spelling of a field path (nested, dotted or mixed keys)."""
    for key in list(obj):
        key_parts = key.split(".")
        if key_parts == parts[: len(key_parts)]:
            rest = parts[len(key_parts) :]
            if not rest or not isinstance(obj[key], dict):
                del obj[key]
            else:
                _drop(obj[key], rest)


def _put(obj: dict[str, Any], path: str, value: Any) -> None:
    """Set a field so that it has exactly this value however the event spelled it before."""
    parts = path.split(".")
    _drop(obj, parts)
    for part in parts[:-1]:
        if not isinstance(obj.get(part), dict):
            obj[part] = {}
        obj = obj[part]
    obj[parts[-1]] = value


def _one_or_many(values: list[Any]) -> Any:
    """ECS keyword fields hold one value or an array: one value stays a scalar."""
    unique = list(dict.fromkeys(v for v in values if v is not None))
    return unique[0] if len(unique) == 1 else unique


def _fields(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        key: _one_or_many([item.get(key) for item in items])
        for key in ("id", "name", "reference")
        if any(item.get(key) is not None for item in items)
    }


def threat_fields(rule: Rule) -> dict[str, Any]:
    """ECS ``threat.*`` from the rule's own ``[[rule.threat]]`` mapping (empty without one)."""
    entries = [t for t in rule.threat if isinstance(t, dict)]
    if not entries:
        return {}
    tactics = [t["tactic"] for t in entries if isinstance(t.get("tactic"), dict)]
    techniques = [x for t in entries for x in t.get("technique", []) if isinstance(x, dict)]
    subs = [x for t in techniques for x in t.get("subtechnique", []) if isinstance(x, dict)]
    threat: dict[str, Any] = {"framework": _one_or_many([t.get("framework") for t in entries])}
    if tactics:
        threat["tactic"] = _fields(tactics)
    if techniques:
        threat["technique"] = _fields(techniques)
        if subs:
            threat["technique"]["subtechnique"] = _fields(subs)
    return threat


def _take(obj: dict[str, Any], head: str) -> dict[str, Any]:
    """Remove and return the top-level keys of a namespace, as spelled (``rule``, ``rule.x``)."""
    return {key: obj.pop(key) for key in list(obj) if key == head or key.startswith(f"{head}.")}


def _source_fields(doc: dict[str, Any], *spaces: str) -> dict[str, Any]:
    """Take the event's own fields of the namespaces the alert sets (``rule``, ``threat``...):
    they go to ``imds_scan.original``; an ``imds_scan`` of the event's own is dropped (the
    event must not speak for the scanner)."""
    original = {key: value for space in spaces for key, value in _take(doc, space).items()}
    _take(doc, "imds_scan")
    return original


def _detection(
    doc: dict[str, Any], hit: Hit, scan: dict[str, Any], original: dict[str, Any]
) -> None:
    """Mark ``doc`` as this rule's alert: event.kind, severity, ``rule.*``, ``threat.*``, and
    ``imds_scan`` (``scan``, then what the event had in the alert's namespaces)."""
    _put(doc, "event.kind", "alert")
    risk = RISK.get(hit.rule.severity.lower())
    if risk is not None:
        _put(doc, "event.severity", risk)
        _put(doc, "event.risk_score", float(risk))
    doc.update(_rule_fields(hit.rule))
    doc["imds_scan"] = scan
    if original:
        doc["imds_scan"]["original"] = original


def _rule_fields(rule: Rule) -> dict[str, Any]:
    """``rule`` and (when the rule has an ATT&CK mapping) ``threat`` of the rule's alerts."""
    fields: dict[str, Any] = {"rule": {"id": rule.id, "name": rule.name, "ruleset": RULESET}}
    if rule.references:
        fields["rule"]["reference"] = rule.references[0]
    threat = threat_fields(rule)
    if threat:
        fields["threat"] = threat
    return fields


def alert_rule(rule: Rule) -> tuple[int | None, str]:
    """What the Rust engine needs to write the rule's single-event alerts as
    :func:`alert_json` does (``Scanner.scan_iter``'s ``alerts``): the ``event.severity``
    (None for an unknown severity) and the ``rule`` and ``threat`` members as JSON text."""
    members = json.dumps(_rule_fields(rule), ensure_ascii=False)[1:-1]
    return RISK.get(rule.severity.lower()), members


def alert_document(hit: Hit) -> dict[str, Any]:
    """The hit as an ECS alert. The event's own fields are kept, @timestamp as written; the
    event's own ``rule``/``threat`` fields (say, a firewall rule) move to ``imds_scan.original``
    so that ``rule.*`` and ``threat.*`` describe this detection alone. The Rust engine
    writes the same document for its hits (crates/imds-core/src/scan/alert.rs): a change
    here goes there too (tests/test_fastpath.py compares them)."""
    # Plain numbers: they re-ingest as numbers.
    doc: dict[str, Any] = load_event(hit.event_text, numbers_as_text=False)
    original = _source_fields(doc, "rule", "threat")
    scan = {
        "source": hit.source,
        "line": hit.line,
        "branch": hit.branch,
        "severity": hit.rule.severity,
        "matched": hit.matched,
    }
    _detection(doc, hit, scan, original)
    return doc


# What Elastic's detection engine calls the alerts of one sequence (its field names).
UUID = "kibana.alert.uuid"
GROUP_ID = "kibana.alert.group.id"
GROUP_INDEX = "kibana.alert.group.index"
BUILDING_BLOCK = "kibana.alert.building_block_type"
ANCESTORS = "kibana.alert.ancestors"
DEPTH = "kibana.alert.depth"


def _alert_id(hit: Hit, part: str) -> str:
    """A stable id for one alert of a result: the same events of the same rule give the same
    ids on every run (a re-ingest can use them as document ids)."""
    import hashlib  # here: a plain scan does not import it (tests/test_startup_imports.py)

    events = [[e.source, e.line] for e in hit.events or ()]
    text = json.dumps([hit.rule.id, hit.branch, events, part], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _nested(value: Any) -> Any:
    """A document with dotted keys spelled as nested objects (``{"a.b": 1}`` as
    ``{"a": {"b": 1}}``), so that the spellings compare alike; a later key wins a clash."""
    if isinstance(value, list):
        return [_nested(item) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        *heads, last = key.split(".")
        obj = out
        for head in heads:
            if not isinstance(obj.get(head), dict):
                obj[head] = {}
            obj = obj[head]
        item = _nested(item)
        if isinstance(item, dict) and isinstance(obj.get(last), dict):
            obj[last] = {**obj[last], **item}
        else:
            obj[last] = item
    return out


def _same(a: Any, b: Any) -> bool:
    # A JSON number and a string differ, and so do true and 1.
    return type(a) is type(b) and a == b


def _shared(a: Any, b: Any) -> Any:
    """What two values have in common: equal values, the common fields of objects (by
    recursion), the common items of arrays (a value against an array: as a one-item array);
    None when nothing."""
    if isinstance(a, dict) and isinstance(b, dict):
        both = {key: _shared(value, b[key]) for key, value in a.items() if key in b}
        kept = {key: value for key, value in both.items() if value is not None}
        return kept or None
    if isinstance(a, list) or isinstance(b, list):
        left, right = (a if isinstance(a, list) else [a]), (b if isinstance(b, list) else [b])
        common = [x for x in left if any(_same(x, y) for y in right)]
        return common or None
    return a if _same(a, b) else None


def _result_alerts(hit: Hit) -> list[dict[str, Any]]:
    """A sequence's or sample's alerts, as Elastic's detection engine builds them: a shell
    alert for the result and a building-block alert per event that is present (a
    missing-event stage has none), linked: every one has the shell's id as
    ``kibana.alert.group.id``; a building block its place among them as
    ``kibana.alert.group.index``; the shell lists the events and building blocks in
    ``kibana.alert.ancestors``. Shell first, then the building blocks in stage order."""
    events: Sequence[SeqEvent] = hit.events or ()
    keys = list(hit.join_keys or ())
    shell_id = _alert_id(hit, "shell")
    blocks: list[dict[str, Any]] = []
    shared: Any = None
    ancestors: list[dict[str, Any]] = []
    first_time: Any = None
    for stage, event in enumerate(events, start=1):
        if event.event_text is None:
            continue
        with deep_json(event.event_text):
            doc: dict[str, Any] = load_event(event.event_text, numbers_as_text=False)
        # The event's own kibana.* must not pose as this alert's links.
        original = _source_fields(doc, "rule", "threat", "kibana")
        nested = _nested(doc)
        shared = nested if not blocks else _shared(shared, nested)
        if first_time is None:
            first_time = nested.get("@timestamp")
        index = len(blocks)
        block_id = _alert_id(hit, f"block{index}")
        parent = {"id": str(event.line), "index": event.source, "type": "event", "depth": 0}
        scan = {
            "source": event.source,
            "line": event.line,
            "branch": hit.branch,
            "severity": hit.rule.severity,
            "matched": None,
            "stage": stage,
            "join_keys": keys,
        }
        _detection(doc, hit, scan, original)
        doc.update(
            {
                UUID: block_id,
                GROUP_ID: shell_id,
                GROUP_INDEX: index,
                BUILDING_BLOCK: "default",
                ANCESTORS: [parent],
                DEPTH: 1,
            }
        )
        blocks.append(doc)
        block = {"id": block_id, "index": "", "type": "signal", "depth": 1, "rule": hit.rule.id}
        ancestors += [parent, block]
    shell: dict[str, Any] = shared if isinstance(shared, dict) else {}
    if "@timestamp" not in shell and first_time is not None:
        shell["@timestamp"] = first_time  # the first event's, as a single hit's alert has
    scan = {
        "source": hit.source,
        "line": hit.line,
        "branch": hit.branch,
        "severity": hit.rule.severity,
        "matched": None,
        "join_keys": keys,
        "events": [
            {"missing": True}
            if event.event_text is None
            else {"source": event.source, "line": event.line}
            for event in events
        ],
    }
    _detection(shell, hit, scan, {})
    shell.update({UUID: shell_id, GROUP_ID: shell_id, ANCESTORS: ancestors, DEPTH: 2})
    return [shell, *blocks]


# Kibana's fields of its new_terms and threshold alerts.
NEW_TERMS = "kibana.alert.new_terms"
THRESHOLD_RESULT = "kibana.alert.threshold_result"
ORIGINAL_TIME = "kibana.alert.original_time"


def _new_terms_alert(hit: Hit) -> dict[str, Any]:
    """A new_terms alert as Kibana's new_terms rule type writes one: the event's alert with
    the new values in ``kibana.alert.new_terms``; the run and warm-up in ``imds_scan``."""
    doc = alert_document(hit)
    doc["imds_scan"].update({"new_terms": list(hit.new_terms or ()), "run": hit.run})
    doc["imds_scan"]["warmup"] = bool(hit.warmup)
    doc[NEW_TERMS] = list(hit.new_terms or ())
    return doc


def _threshold_alert(hit: Hit) -> dict[str, Any]:
    """A threshold alert as Kibana's threshold rule type writes one: not an event but the
    bucket: its terms as fields, ``@timestamp`` its last event's time and
    ``kibana.alert.threshold_result`` (terms and cardinality as ``{field, value}`` lists,
    count, from); where the last event is, the run and the whole result in ``imds_scan``."""
    result = dict(hit.threshold_result or {})
    terms = dict(result.get("terms") or {})
    doc: dict[str, Any] = {"@timestamp": result.get("last")}
    for name, value in terms.items():
        _put(doc, name, value)
    scan = {
        "source": hit.source,
        "line": hit.line,
        "branch": hit.branch,
        "severity": hit.rule.severity,
        "matched": None,
        "run": hit.run,
        "threshold_result": result,
    }
    _detection(doc, hit, scan, {})
    kibana: dict[str, Any] = {
        "terms": [{"field": name, "value": value} for name, value in terms.items()],
        "count": result.get("count"),
        "from": result.get("from"),
    }
    if result.get("cardinality"):
        kibana["cardinality"] = result["cardinality"]
    doc[THRESHOLD_RESULT] = kibana
    doc[ORIGINAL_TIME] = result.get("last")
    return doc


def alert_documents(hit: Hit) -> list[dict[str, Any]]:
    """The hit's alert: one, or a result's shell and building blocks (for events nested
    deeply, call it inside ``deep_json``, as :func:`alert_json` does)."""
    if hit.run is not None:
        return [_threshold_alert(hit) if hit.branch == "threshold" else _new_terms_alert(hit)]
    return [alert_document(hit)] if hit.events is None else _result_alerts(hit)


def alert_json(hit: Hit) -> str:
    """The hit's alert document(s), one JSON text a line (no final newline)."""
    if hit.events is None:
        with deep_json(hit.event_text):
            return "\n".join(json.dumps(doc, ensure_ascii=False) for doc in alert_documents(hit))
    # Room for the (recursive) reading, comparing and writing of deeply nested events.
    with deep_json("".join(e.event_text or "" for e in hit.events)):
        docs = alert_documents(hit)
        return "\n".join(json.dumps(doc, ensure_ascii=False) for doc in docs)
