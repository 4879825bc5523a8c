"""The plan of a scan's rules (spec/sequences.md, "Scan layer"): what the engine runs for
them. A single-event rule runs as itself, with the host filters; a sequence, sample, new_terms
or threshold rule as its *stage rules*, single-event rules whose hits :mod:`imds_scan.sequences`
matches. Kept apart from that module so that a scan without such rules does not import it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .ir_schema import ALERT_KINDS
from .ir_schema import rule_kind as ir_rule_kind
from .rules import Rule

KINDS = ("sequence", "sample")


def rule_kind(rule: Rule) -> str:
    """``"sequence"``, ``"sample"``, ``"new_terms"``, ``"threshold"`` or ``"event"``, from
    the rule's IR (which holds exactly one of those keys or ``branches``)."""
    return ir_rule_kind(rule.ir)


def stage_rules(rule: Rule) -> list[Rule]:
    """The single-event rules of a sequence or sample rule's stages, then of its ``until``:
    ids ``RULEID/stage1``, ``RULEID/stage2``, …, ``RULEID/until``, one branch each (named
    ``stage1``…, ``until``), with the rule's allowlist; its name, severity and source. Host
    filters are added to them as to any rule (:func:`~imds_scan.filters.with_host_filter`)."""
    kind = rule_kind(rule)
    if kind in ALERT_KINDS:
        from . import kibana_scan

        return kibana_scan.stage_rules(rule)  # its condition: RULEID/query
    if kind == "event":
        raise ValueError(f"rule {rule.id!r} is neither a sequence nor a sample")
    body = rule.ir[kind]
    parts = [(f"stage{n}", stage["expr"]) for n, stage in enumerate(body["stages"], 1)]
    if body.get("until") is not None:
        parts.append(("until", body["until"]["expr"]))
    out = []
    for name, expr in parts:
        ir: dict[str, Any] = {
            "ir_version": rule.ir["ir_version"],
            "id": f"{rule.id}/{name}",
            "name": rule.name,
            "severity": rule.severity,
            "branches": [{"name": name, "expr": expr}],
        }
        if "allowlist" in rule.ir:
            ir["allowlist"] = rule.ir["allowlist"]
        out.append(
            dataclasses.replace(rule, id=f"{rule.id}/{name}", ir=ir, threat=(), references=())
        )
    return out


@dataclasses.dataclass(frozen=True)
class RulePlan:
    """The rules of a scan as the engine runs them.

    ``rules``: the rules as loaded (host filters applied to the single-event ones), what the
    statistics and counts are about; ``engine_rules``: the single-event rules and every
    sequence, sample, new_terms or threshold rule's stage rules, in load order; ``owner[i]``:
    the index in ``rules`` of engine rule ``i``; ``stage[i]``: its stage index in its rule
    (the number of stages for ``until``; 0 for a new_terms or threshold rule's condition),
    None for a single-event rule; ``also[i]``: the further stages its hits are candidates of
    (a run of stages with one condition, as ``with runs=N`` makes, runs as one stage rule:
    evaluated once per line, its hits added to each of those stages in order)."""

    rules: list[Rule]
    engine_rules: list[Rule]
    owner: list[int]
    stage: list[int | None]
    also: list[tuple[int, ...]]
    # Threads the engine's set-up may use (the scan's --threads; 0: one per core).
    threads: int = 0

    @property
    def has_sequences(self) -> bool:
        """Whether some rule runs as stage rules (a sequence, sample, new_terms or threshold
        rule): the scan then goes through :func:`with_sequences`."""
        return any(s is not None for s in self.stage)

    @functools.cached_property
    def engine_json(self) -> list[str]:
        """The engine rules' IR as JSON: made once for the prefilter warnings and the engine
        (a thousand rules: tenths of a second)."""
        return [json.dumps(rule.ir) for rule in self.engine_rules]

    @functools.cached_property
    def _scanner(self) -> _Making:
        from ._engine import Scanner

        forms, threads = self.engine_json, self.threads  # here: json.dumps holds the GIL
        return _Making(lambda: Scanner(forms, threads))

    def start_scanner(self) -> None:
        """Begin making :attr:`scanner` on a thread of its own: the binding compiles the rules
        without the GIL, while the set-up in Python goes on (a thousand rules: tenths of a
        second)."""
        self._scanner.start()

    @property
    def scanner(self) -> Any:
        """The Rust engine's Scanner of the engine rules, made once (the prefilter warnings'
        sample scan and the scan share it); ValueError, each time asked, if the engine refuses
        a rule."""
        return self._scanner.result()


class _Making:
    """A value made once, on a thread of its own once started (else when asked for)."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._thread: threading.Thread | None = None
        self._done = False
        self._value: Any = None
        self._error: BaseException | None = None

    def _run(self) -> None:
        try:
            self._value = self._make()
        except BaseException as exc:  # given to whoever asks for the value
            self._error = exc

    def start(self) -> None:
        if self._thread is None and not self._done:
            # Not a daemon: the interpreter never stops while the binding is in the middle.
            self._thread = threading.Thread(target=self._run, name="imds-scan set-up")
            self._thread.start()

    def result(self) -> Any:
        if not self._done:
            if self._thread is None:
                self._run()
            else:
                self._thread.join()
            self._done = True
        if self._error is not None:
            raise self._error
        return self._value


def plan_rules(
    rules: Sequence[Rule], hosts: Sequence[str], exclude: Sequence[str], threads: int = 0
) -> RulePlan:
    """The engine's rules for ``rules``: each sequence, sample, new_terms or threshold rule
    replaced by its stage rules, host filters added to every rule the engine runs.
    ``threads``: what the engine's set-up may use (0: a thread per core)."""
    from .filters import with_host_filter

    shown: list[Rule] = []
    engine: list[Rule] = []
    owner: list[int] = []
    stage: list[int | None] = []
    also: list[tuple[int, ...]] = []
    for index, rule in enumerate(rules):
        if rule_kind(rule) == "event":
            (filtered,) = with_host_filter([rule], hosts, exclude)
            shown.append(filtered)
            engine.append(filtered)
            owner.append(index)
            stage.append(None)
            also.append(())
            continue
        shown.append(rule)
        stages = with_host_filter(stage_rules(rule), hosts, exclude)
        for first, last in _runs(rule, stages):
            engine.append(stages[first])
            owner.append(index)
            stage.append(first)
            also.append(tuple(range(first + 1, last)))
    from .engines import thread_count

    return RulePlan(shown, engine, owner, stage, also, thread_count(threads))


def _runs(rule: Rule, stages: Sequence[Rule]) -> Iterator[tuple[int, int]]:
    """The stage rules of ``rule`` as runs ``stages[first:last]`` of one condition: adjacent
    stages (not ``until``) whose stage rules are equal but for their names (Elastic's rules
    write ``with runs=25``: 25 stages, which would be evaluated 25 times over)."""
    kind = rule_kind(rule)
    count = len(rule.ir[kind]["stages"]) if kind in KINDS else len(stages)

    def condition(stage_rule: Rule) -> tuple[dict[str, Any], list[Any]]:
        ir = {k: v for k, v in stage_rule.ir.items() if k not in ("id", "branches")}
        return ir, [branch["expr"] for branch in stage_rule.ir["branches"]]

    first = 0
    while first < len(stages):
        last = first + 1
        if first < count:
            same = condition(stages[first])
            while last < count and condition(stages[last]) == same:
                last += 1
        yield first, last
        first = last
