"""Telling the user when a rule cannot use the Rust engine's prefilter (it would parse every
line, or nearly), instead of being silently slow."""

from __future__ import annotations

import json
from collections.abc import Sequence

from . import Rule

# Needles found in nearly every ECS line: field names and event.category / event.type values.
_WORDS = """
    authentication configuration database driver email file host iam intrusion_detection
    malware network package process registry session threat vulnerability web access admin
    allowed change connection creation deletion denied end error group info installation
    indicator protocol start user event category type action outcome kind dataset module agent
    source destination message labels tags observer related name args command_line executable
    parent pid path domain address port url http true false null
"""
COMMON_WORDS = frozenset(_WORDS.split())
# A needle shorter than this occurs in most lines of a large log.
SHORT = 4


def weak_needles(needles: Sequence[str]) -> list[str]:
    """The needles that select too little to keep the scan fast."""
    return [n for n in needles if len(n) < SHORT or n.lower() in COMMON_WORDS]


def prefilter_warnings(rules: Sequence[Rule]) -> list[str]:
    """One message per rule whose prefilter literals are missing or weak."""
    from .._engine import Scanner

    warnings = []
    for rule in rules:
        needles = Scanner([json.dumps(rule.ir)]).needles()
        label = f"rule {rule.name!r} ({rule.id})"
        if needles is None:
            warnings.append(
                f"{label} has no literal that every match contains: the scan will parse every "
                "line (slow). A condition with a selective string in every branch (for "
                'example process.name in~ ("curl")) lets it skip lines.'
            )
            continue
        weak = weak_needles(needles)
        if weak:
            shown = ", ".join(json.dumps(n) for n in weak[:5])
            warnings.append(
                f"{label}: every match contains one of its literals, but {shown} occur in "
                "most lines: the scan will parse most lines (slow)"
            )
    return warnings
