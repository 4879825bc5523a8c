"""Loading rules: the bundled default (the Elastic query, verbatim) compiled to IR."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

from ..eql import compile_rule


@dataclass(frozen=True)
class Rule:
    """A rule's metadata plus its compiled IR (what both engines consume)."""

    id: str
    name: str
    severity: str
    query: str
    ir: dict[str, Any]

    @property
    def branch_names(self) -> list[str]:
        return [b["name"] for b in self.ir["branches"]]


DEFAULT_RULE_ID = "imds-default"
DEFAULT_RULE_NAME = "Detect Cloud Instance Metadata API"


def default_query() -> str:
    """The seed's Elastic EQL query, exactly as published."""
    return resources.files("imds_scan.rules").joinpath("default.eql").read_text("utf-8")


def load_rule(query: str, *, rule_id: str, name: str, severity: str, source: str) -> Rule:
    ir = compile_rule(query, name=name, rule_id=rule_id, severity=severity, source=source)
    return Rule(rule_id, name, severity, query, ir)


def default_rules() -> list[Rule]:
    return [
        load_rule(
            default_query(),
            rule_id=DEFAULT_RULE_ID,
            name=DEFAULT_RULE_NAME,
            severity="high",
            source="default.eql",
        )
    ]
