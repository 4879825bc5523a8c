"""new_terms and threshold rules in a scan (spec/kql.md, "Rule types" and "Output").

Such a rule runs as one single-event *stage rule* ``RULEID/query`` (its condition, with host
filters and its allowlist), scanned by the chosen engine beside the other rules, so the
condition runs prefiltered at scan speed. Its hits are taken out of the engine's batches by
the sequence layer (:mod:`imds_scan.sequences`, which spills their texts and feeds them to the
rule's matcher, ``add(rank, line, event, ref)``); when the engine's stream ends, the matcher's
alerts become Hits (``branch`` "new_terms" or "threshold"), rule by rule in load order.

The matchers are ``imds_scan.kibana_rules`` (the product path; rust engine and cluster) and
``imds_scan.reference.kibana_rules`` (the python engine), one interface (:class:`RuleMatcher`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from .ir_schema import ALERT_KINDS
from .records import Hit, iso_ms
from .rules import Rule

KINDS = ALERT_KINDS
# The stage rule's id suffix and its branch's name.
STAGE = "query"


class Alert(Protocol):
    """One alert of a matcher (spec/kql.md, Rule types): ``ref`` the alert's event (a
    threshold bucket's last event), ``run_ms`` its run, ``warmup`` (new_terms), and the
    ``new_terms`` values (field order) or the ``threshold_result``."""

    @property
    def ref(self) -> int: ...

    @property
    def run_ms(self) -> int: ...

    @property
    def warmup(self) -> bool: ...

    @property
    def new_terms(self) -> list[object] | None: ...

    @property
    def threshold_result(self) -> Mapping[str, Any] | None: ...


class RuleMatcher(Protocol):
    """Both engines' matcher of one new_terms or threshold rule. ``no_time`` and
    ``no_time_refs`` (matching events without a time: how many, the refs of the first
    few in position order) are read once ``finish``'s alerts are consumed."""

    def add(self, rank: int, line: int, event: str, ref: int) -> None: ...

    def finish(self) -> Iterator[Alert]: ...


def rule_kind(rule: Rule) -> str | None:
    """``"new_terms"`` or ``"threshold"`` from the rule's IR, None for any other rule."""
    return next((kind for kind in KINDS if kind in rule.ir), None)


def stage_rules(rule: Rule) -> list[Rule]:
    """The rule's condition as one single-event rule ``RULEID/query`` (one branch ``query``),
    with the rule's allowlist; its name, severity and source. Host filters are added to it as
    to any rule (:func:`~imds_scan.filters.with_host_filter`)."""
    kind = rule_kind(rule)
    if kind is None:
        raise ValueError(f"rule {rule.id!r} is neither a new_terms nor a threshold rule")
    rule_id = f"{rule.id}/{STAGE}"
    ir: dict[str, Any] = {
        "ir_version": rule.ir["ir_version"],
        "id": rule_id,
        "name": rule.name,
        "severity": rule.severity,
        "branches": [{"name": STAGE, "expr": rule.ir[kind]["expr"]}],
    }
    if "allowlist" in rule.ir:
        ir["allowlist"] = rule.ir["allowlist"]
    return [dataclasses.replace(rule, id=rule_id, ir=ir, threat=(), references=())]


def make_matcher(engine: str, rule_ir_json: str, memory_budget: int) -> RuleMatcher:
    """The chosen engine's matcher of one rule: the product one for ``rust`` (and the
    cluster), the reference one for ``python``."""
    import importlib

    # Imported by name: each module is typed on its own.
    name = "imds_scan.reference.kibana_rules" if engine == "python" else "imds_scan.kibana_rules"
    module: Any = importlib.import_module(name)
    matcher: RuleMatcher = module.RuleMatcher(rule_ir_json, memory_budget)
    return matcher


def _time(value: object) -> object:
    """A time of a threshold result as written: epoch milliseconds as ISO 8601 UTC."""
    return iso_ms(value) if isinstance(value, int) and not isinstance(value, bool) else value


def threshold_result(result: Mapping[str, Any]) -> dict[str, Any]:
    """The record's ``threshold_result``: ``terms``, ``count``, ``cardinality`` (when set),
    ``from``, ``last`` in that order, times as ISO 8601 UTC."""
    out: dict[str, Any] = {"terms": dict(result.get("terms") or {}), "count": result["count"]}
    if result.get("cardinality"):
        out["cardinality"] = [dict(c) for c in result["cardinality"]]
    out["from"] = _time(result.get("from"))
    out["last"] = _time(result.get("last"))
    return out


def alert_hit(rule: Rule, kind: str, alert: Alert, where: tuple[str, int, str]) -> Hit:
    """A matcher's alert as a Hit of ``rule`` at its event (source, line, text)."""
    source, line, text = where
    run = iso_ms(alert.run_ms)
    if kind == "threshold":
        found = alert.threshold_result or {}
        return Hit(
            source, line, rule, kind, None, text, run=run, threshold_result=threshold_result(found)
        )
    return Hit(
        source,
        line,
        rule,
        kind,
        None,
        text,
        run=run,
        new_terms=tuple(alert.new_terms or ()),
        warmup=bool(alert.warmup),
    )
