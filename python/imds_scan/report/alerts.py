"""ECS alert documents (``--format alerts``): one per hit, ready to re-ingest into Elastic.

Each document is the source event with ``event.kind`` set to ``alert``, the rule in
``rule.*``, the rule's own ATT&CK mapping (its ``[[rule.threat]]``) in ``threat.*`` and where
the hit came from in ``imds_scan.*``. Only ECS field names are added outside ``imds_scan``; ECS
has no ``rule.severity``, so the severity is ``event.severity`` (Elastic's risk number for it)
and ``imds_scan.severity`` (the word).
"""

from __future__ import annotations

import json
from typing import Any

from ..records import Hit
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


def alert_document(hit: Hit) -> dict[str, Any]:
    """The hit as an ECS alert. The event's own fields are kept, @timestamp as written; the
    event's own ``rule``/``threat`` fields (say, a firewall rule) move to ``imds_scan.original``
    so that ``rule.*`` and ``threat.*`` describe this detection alone."""
    # Plain numbers: they re-ingest as numbers.
    doc: dict[str, Any] = load_event(hit.event_text, numbers_as_text=False)
    original = {**_take(doc, "rule"), **_take(doc, "threat")}
    _take(doc, "imds_scan")  # the event must not speak for the scanner
    _put(doc, "event.kind", "alert")
    risk = RISK.get(hit.rule.severity.lower())
    if risk is not None:
        _put(doc, "event.severity", risk)
        _put(doc, "event.risk_score", float(risk))
    doc["rule"] = {"id": hit.rule.id, "name": hit.rule.name, "ruleset": RULESET}
    if hit.rule.references:
        doc["rule"]["reference"] = hit.rule.references[0]
    threat = threat_fields(hit.rule)
    if threat:
        doc["threat"] = threat
    doc["imds_scan"] = {
        "source": hit.source,
        "line": hit.line,
        "branch": hit.branch,
        "severity": hit.rule.severity,
        "matched": hit.matched,
    }
    if original:
        doc["imds_scan"]["original"] = original
    return doc


def alert_json(hit: Hit) -> str:
    with deep_json(hit.event_text):
        return json.dumps(alert_document(hit), ensure_ascii=False)
