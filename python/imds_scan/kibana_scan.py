"""new_terms and threshold rules in a scan (spec/kql.md, "Rule types" and "Output").

Such a rule runs as one single-event *stage rule* ``RULEID/query`` (its condition, with host
filters and its allowlist), scanned by the chosen engine beside the other rules, so the
condition runs prefiltered at scan speed. Its hits are taken out of the engine's batches by
the sequence layer (:mod:`imds_scan.sequences`, which spills their texts and feeds them to the
rule's matcher, ``add(rank, line, event, ref)``); when the engine's stream ends, the matcher's
alerts become Hits (``branch`` "new_terms" or "threshold"), rule by rule in load order.

The matcher is ``imds_scan.kibana_rules``' product one for every engine (pure Python; its
reference twin ``imds_scan.reference.kibana_rules`` is the tests' oracle), interface
:class:`RuleMatcher`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any, Protocol

from .ir_schema import ALERT_KINDS
from .records import Hit, iso_ms
from .rules import Rule

KINDS = ALERT_KINDS
# The stage rule's id suffix and its branch's name.
STAGE = "query"


class ThresholdResult(Protocol):
    """A threshold alert's bucket (``kibana_rules.ThresholdResult``): terms and cardinality as
    (field, value) pairs in field order, the count, the first and last event times."""

    @property
    def terms(self) -> tuple[tuple[str, object], ...]: ...

    @property
    def count(self) -> int: ...

    @property
    def cardinality(self) -> tuple[tuple[str, int], ...]: ...

    @property
    def from_ms(self) -> int: ...

    @property
    def last_ms(self) -> int: ...


class Alert(Protocol):
    """One alert of a matcher (``kibana_rules.Alert``): ``ref`` the alert's event (a
    threshold bucket's last event), ``run_ms`` its run, ``warmup`` (new_terms), and the
    ``new_terms`` values (field order) or the ``threshold_result``."""

    @property
    def ref(self) -> int: ...

    @property
    def run_ms(self) -> int: ...

    @property
    def warmup(self) -> bool: ...

    @property
    def new_terms(self) -> tuple[object, ...] | None: ...

    @property
    def threshold_result(self) -> ThresholdResult | None: ...


class RuleMatcher(Protocol):
    """Both matchers' interface (``kibana_rules.RuleMatcher``); ``no_time`` and
    ``no_time_refs`` (matching events without a time: how many, the refs of the first five
    by position) are read once ``finish``'s alerts are consumed."""

    @property
    def no_time(self) -> int: ...

    @property
    def no_time_refs(self) -> list[int]: ...

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


def _span(millis: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if millis % size == 0:
            return f"{millis // size}{unit}"
    return f"{millis}ms"


def describe(rule: Rule) -> list[str]:
    """What a new_terms or threshold rule does besides its condition, in a few lines (the
    comments of ``--show-rule``)."""
    kind = rule_kind(rule)
    body = rule.ir[kind or ""]
    fields = ", ".join(f["field"] for f in body["fields"]) or "(no field: one bucket)"
    if kind == "new_terms":
        what = f"new_terms: new values of {fields} against {_span(body['history_window_ms'])}"
        what += " of history"
    else:
        what = f"threshold: {body['value']} or more events by {fields}"
        for card in body["cardinality"]:
            what += f" with {card['value']} or more distinct {card['field']}"
    when = f"runs every {_span(body['interval_ms'])} over the last {_span(body['from_ms'])}"
    time = body["timestamp_field"]
    if body.get("fallback_timestamp_field"):
        time += f", else {body['fallback_timestamp_field']}"
    return [what, f"{when}; time: {time}; the condition:"]


def make_matcher(engine: str, rule_ir_json: str, memory_budget: int) -> RuleMatcher:
    """The rule's matcher: ``kibana_rules``' product matcher, for every engine and the
    cluster (it is pure Python; spec/kql.md, Matchers)."""
    import importlib

    # Imported by name: typed on its own (and a plain scan does not import it).
    module: Any = importlib.import_module("imds_scan.kibana_rules")
    matcher: RuleMatcher = module.make_matcher(rule_ir_json, memory_budget)
    return matcher


def threshold_result(result: ThresholdResult) -> dict[str, Any]:
    """The record's ``threshold_result``: ``terms`` (an object, field order), ``count``,
    ``cardinality`` (when the rule sets it), ``from``, ``last`` (ISO 8601 UTC)."""
    out: dict[str, Any] = {"terms": dict(result.terms), "count": result.count}
    if result.cardinality:
        out["cardinality"] = [{"field": f, "value": v} for f, v in result.cardinality]
    out["from"] = iso_ms(result.from_ms)
    out["last"] = iso_ms(result.last_ms)
    return out


def alert_hit(rule: Rule, kind: str, alert: Alert, where: tuple[str, int, str]) -> Hit:
    """A matcher's alert as a Hit of ``rule`` at its event (source, line, text)."""
    source, line, text = where
    run = iso_ms(alert.run_ms)
    if kind == "threshold":
        found = alert.threshold_result
        result = None if found is None else threshold_result(found)
        return Hit(source, line, rule, kind, None, text, run=run, threshold_result=result)
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
