"""ECS alert documents (``--format alerts``): one per hit, ready to re-ingest into Elastic.

Each document is the source event with ``event.kind`` set to ``alert``, the rule in ``rule.*``,
the ATT&CK mapping in ``threat.*`` and where the hit came from in ``imds_scan.*``. Only ECS
field names are added outside ``imds_scan``; ECS has no ``rule.severity``, so the severity is
``event.severity`` (Elastic's risk number for it) and ``imds_scan.severity`` (the word).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from ..scan import Hit

ATTACK = "https://attack.mitre.org"
THREAT: dict[str, Any] = {
    "framework": "MITRE ATT&CK",
    "tactic": {
        "id": "TA0006",
        "name": "Credential Access",
        "reference": f"{ATTACK}/tactics/TA0006/",
    },
    "technique": {
        "id": "T1552",
        "name": "Unsecured Credentials",
        "reference": f"{ATTACK}/techniques/T1552/",
        "subtechnique": {
            "id": "T1552.005",
            "name": "Cloud Instance Metadata API",
            "reference": f"{ATTACK}/techniques/T1552/005/",
        },
    },
}
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


def _take(obj: dict[str, Any], head: str) -> dict[str, Any]:
    """Remove and return the top-level keys of a namespace, as spelled (``rule``, ``rule.x``)."""
    return {key: obj.pop(key) for key in list(obj) if key == head or key.startswith(f"{head}.")}


def alert_document(hit: Hit) -> dict[str, Any]:
    """The hit as an ECS alert. The event's own fields are kept, @timestamp as written; the
    event's own ``rule``/``threat`` fields (say, a firewall rule) move to ``imds_scan.original``
    so that ``rule.*`` and ``threat.*`` describe this detection alone."""
    doc: dict[str, Any] = json.loads(hit.event_text)  # plain numbers: they re-ingest as numbers
    original = {**_take(doc, "rule"), **_take(doc, "threat")}
    _take(doc, "imds_scan")  # the event must not speak for the scanner
    _put(doc, "event.kind", "alert")
    risk = RISK.get(hit.rule.severity.lower())
    if risk is not None:
        _put(doc, "event.severity", risk)
        _put(doc, "event.risk_score", float(risk))
    doc["rule"] = {
        "id": hit.rule.id,
        "name": hit.rule.name,
        "ruleset": RULESET,
        "reference": THREAT["technique"]["subtechnique"]["reference"],
    }
    doc["threat"] = copy.deepcopy(THREAT)
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
    return json.dumps(alert_document(hit), ensure_ascii=False)
