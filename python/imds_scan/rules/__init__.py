"""Loading rules: Elastic detection-rules TOML files (the bundled default is one) compiled to IR.

A rule file is read the way Elastic's detection-rules repository writes them: ``[metadata]``,
``[rule]`` with ``name``, ``rule_id``, ``severity``, ``language = "eql"``, ``query`` and optional
``description``, ``risk_score``, ``references``, ``false_positives``, ``tags``, imds-scan's own
``branch_names`` (one per branch of the query, instead of ``branch<N>``), and
``[[rule.threat]]`` (MITRE ATT&CK); for sequences and samples, ``timestamp_field``,
``tiebreaker_field``, ``event_category_override`` and imds-scan's ``size`` and
``max_samples_per_key`` (spec/sequences.md); ``[[rule.filters]]`` (Query DSL, read as a KQL
rule's). ``language = "kuery"`` files (KQL ``query``, ``new_terms`` and ``threshold`` rules,
with ``filters``) compile by rules/kuery.py (spec/kql.md). Other keys are Elastic's and are
ignored. A rule outside what imds-scan runs (another language or rule type, an unsupported
function...) is refused with the reason and, for query errors, the file's line and column.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..mapping import Mapping as KqlMapping
    from .cache import RuleCache


@dataclass(frozen=True)
class Rule:
    """A rule's metadata plus its compiled IR (what both engines consume)."""

    id: str
    name: str
    severity: str
    query: str
    ir: dict[str, Any]
    description: str = ""
    risk_score: int | None = None
    references: tuple[str, ...] = ()
    false_positives: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    # ``[[rule.threat]]`` entries as written (framework, tactic, technique, subtechnique).
    threat: tuple[dict[str, Any], ...] = field(default=(), hash=False)
    # Where the rule came from (a path, or ``<bundled>``).
    source: str = ""
    # What each of ``ir["allowlist"]``'s entries is, in the same order (config.Allowlist).
    allowlist_labels: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        """ "event", "sequence", "sample", "new_terms" or "threshold" (spec/sequences.md,
        spec/kql.md)."""
        from ..ir_schema import rule_kind

        return rule_kind(self.ir)

    def map_conditions(self, wrap: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
        """The IR with ``wrap(expr)`` in place of each condition: every branch, or every
        stage and ``until`` of a sequence or sample (host filters, allowlists)."""
        from ..ir_schema import map_conditions

        return map_conditions(self.ir, wrap)

    @property
    def branch_names(self) -> list[str]:
        if self.kind != "event":
            return [self.kind]  # a sequence's or sample's results name no branch of it
        return [b["name"] for b in self.ir["branches"]]

    @property
    def technique_ids(self) -> list[str]:
        """MITRE ATT&CK technique and sub-technique ids of ``[[rule.threat]]``, in order."""
        ids = []
        for threat in self.threat:
            for technique in threat.get("technique", []):
                ids.append(technique.get("id", ""))
                ids.extend(sub.get("id", "") for sub in technique.get("subtechnique", []))
        return [i for i in ids if i]


DEFAULT_RULE_ID = "imds-default"
DEFAULT_RULE_NAME = "Detect Cloud Instance Metadata API"
DEFAULT_RULE_FILE = "imds_default.toml"
# `--rule default` names the bundled rule, even where a file of that name exists (./default
# names the file): a directory being scanned must not decide which rule runs.
DEFAULT_RULE_ALIAS = "default"


class BundledRule(enum.Enum):
    """The bundled rule as a ``load_rules`` spec that is not a path: what runs when no
    ``--rule`` is given, whatever files the current directory holds."""

    RULE = "bundled"


BUNDLED_RULE = BundledRule.RULE
SEVERITIES = ("low", "medium", "high", "critical")


# Bundled rule packs (`--pack NAME`): directories of rule files under rules/packs/.
PACKS = ("hardened",)
# Bundled allowlist presets (`--preset NAME`): rules/presets/<name>.toml, an [allowlist] table.
PRESETS = ("cloud-agents",)


class RuleFileError(ValueError):
    """A rule file that cannot be loaded: unreadable, not a rule, or outside the EQL subset.
    ``problems`` holds one message per refused file (the text joins them with newlines)."""

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


def _bundled_bytes() -> bytes:
    # Read beside this module when the package is files on disk: importlib.resources' reader
    # would cost every plain scan's start-up its imports (zipfile and others).
    try:
        with open(os.path.join(os.path.dirname(__file__), DEFAULT_RULE_FILE), "rb") as f:
            return f.read()
    except OSError:
        from importlib import resources

        return resources.files("imds_scan.rules").joinpath(DEFAULT_RULE_FILE).read_bytes()


def _bundled_text() -> str:
    return _decode(_bundled_bytes())


def default_query() -> str:
    """The seed's Elastic EQL query, exactly as published (the bundled rule file's query)."""
    import tomllib

    query: str = tomllib.loads(_bundled_text())["rule"]["query"]
    return query


def load_rule(query: str, *, rule_id: str, name: str, severity: str, source: str) -> Rule:
    """A rule from a query and the three fields every hit reports."""
    from ..eql import compile_rule

    ir = compile_rule(query, name=name, rule_id=rule_id, severity=severity, source=source)
    return Rule(rule_id, name, severity, query, ir, source=source)


def pack_path(name: str) -> str:
    """The directory of a bundled rule pack; RuleFileError for an unknown name."""
    if name not in PACKS:
        raise RuleFileError(f"unknown rule pack {name!r} (bundled packs: {', '.join(PACKS)})")
    from importlib import resources  # (its imports, and pathlib's, cost a scan's start-up)

    return os.path.join(str(resources.files("imds_scan.rules")), "packs", name)


def preset_text(name: str) -> str:
    """The text of a bundled allowlist preset; RuleFileError for an unknown name."""
    if name not in PRESETS:
        raise RuleFileError(
            f"unknown allowlist preset {name!r} (bundled presets: {', '.join(PRESETS)})"
        )
    from importlib import resources

    return resources.files("imds_scan.rules").joinpath("presets", f"{name}.toml").read_text("utf-8")


BUNDLED_SOURCE = f"<bundled {DEFAULT_RULE_FILE}>"


def default_rules() -> list[Rule]:
    """The bundled rule (python/imds_scan/rules/imds_default.toml)."""
    return [parse_rule_text(_bundled_text(), BUNDLED_SOURCE)]


# ---------------------------------------------------------------- rule files


def _where(text: str, query: str) -> tuple[int, int] | None:
    """(lines before, column offset of its first line) of the query inside the file's text,
    when it appears there verbatim (a ``'''`` string, or a plain one without escapes)."""
    at = text.find(query) if query else -1
    if at < 0:
        return None
    return text.count("\n", 0, at), at - (text.rfind("\n", 0, at) + 1)


def _get(table: dict[str, Any], key: str, kind: type | tuple[type, ...], source: str) -> Any:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        names = {str: "a string", int: "an integer", list: "an array", dict: "a table"}
        wanted = names.get(kind, str(kind)) if isinstance(kind, type) else "a value"
        raise RuleFileError(f"{source}: rule.{key}: expected {wanted}")
    return value


def _strings(table: dict[str, Any], key: str, source: str) -> tuple[str, ...]:
    values = _get(table, key, list, source) or []
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise RuleFileError(f"{source}: rule.{key}[{i}]: expected a string")
    return tuple(values)


# A file can only hold an EQL rule if "eql" is in its text (any case), or could be written with
# a \\u escape: without either it is refused by its `language` or `type` line, unparsed (unless
# that language is kuery: KQL rules are parsed).
# (Patterns, compiled when first used: a scan with the default rule uses none of them.)
_MAY_BE_EQL = r"[eE][qQ][lL]|\\[uU]"
_KIND_LINE = r'(?m)^(language|type)[ \t]*=[ \t]*"([A-Za-z0-9_-]*)"[ \t]*$'
# Any line that might set either key (quoted or dotted keys, other string forms).
_ANY_KIND_LINE = r"(?m)^[ \t]*[\"']?(?:language|type)\b"
_HEADER_LINE = r"(?m)^[ \t]*\["


def _plainly_not_eql(text: str, source: str) -> RuleFileError | None:
    """The refusal of a rule file that cannot hold an EQL or KQL rule, found without parsing
    the TOML (Lucene, ES|QL and machine learning rules); None when that is not plain from its
    lines, or the file is a KQL rule, and the file is parsed. (Such a file that is not valid
    TOML either is refused for its language rather than its syntax.)"""
    if re.search(_MAY_BE_EQL, text):
        return None
    matches = list(re.finditer(_KIND_LINE, text))
    if len(matches) != len(re.findall(_ANY_KIND_LINE, text)):
        return None
    found: dict[str, str] = {}
    for match in matches:
        key, value = match.groups()
        headers = list(re.compile(_HEADER_LINE).finditer(text, 0, match.start()))
        at = headers[-1].start() if headers else -1
        table = text[at : text.find("\n", at)] if at >= 0 else ""
        if key in found or table.strip() != "[rule]":
            return None  # twice, or outside [rule]: let the parser say
        found[key] = value
    if found.get("language", "").lower() == "kuery":
        return None  # a KQL rule: parsed
    if "language" in found:
        return RuleFileError(f"{source}: {_language_refusal(found['language'])}")
    if "type" in found:
        return RuleFileError(f"{source}: {_type_refusal(found['type'])}")
    return None


def _language_refusal(language: str) -> str:
    why = {
        "lucene": "Lucene query syntax is not supported",
        "esql": "ES|QL is not supported",
    }.get(language.lower(), "imds-scan runs EQL and KQL (kuery) rules")
    return f"language {language!r} is not supported ({why})"


def _type_refusal(rule_type: str) -> str:
    from .kuery import REFUSED_TYPES

    why = REFUSED_TYPES.get(rule_type.lower(), "imds-scan runs EQL and KQL (kuery) rules")
    return f"rule type {rule_type!r} is not supported ({why})"


def parse_rule_text(
    text: str,
    source: str,
    field_types: Mapping[str, str] | None = None,
    mapping: KqlMapping | None = None,
) -> Rule:
    """One rule from the text of an Elastic detection-rules TOML file; ``field_types``: the
    user's field type overrides (fields.field_type), which win over the ECS table;
    ``mapping``: what KQL rules compile against (mapping.load_mapping)."""
    import tomllib

    from ..eql import EqlError, compile_rule

    refused = _plainly_not_eql(text, source)
    if refused is not None:
        raise refused
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RuleFileError(f"{source}: not valid TOML: {exc}") from None
    rule = doc.get("rule")
    if not isinstance(rule, dict):
        raise RuleFileError(f"{source}: no [rule] table: not a detection rule file")
    rule_type = _get(rule, "type", str, source)
    language = _get(rule, "language", str, source)
    if language is None and rule_type is None:
        raise RuleFileError(
            f"{source}: rule.language is missing (imds-scan runs EQL and KQL rules)"
        )
    if language is not None and language.lower() == "kuery":
        return _kuery_rule(text, rule, (rule_type or "query").lower(), source, field_types, mapping)
    if language is not None and language.lower() != "eql":
        raise RuleFileError(f"{source}: {_language_refusal(language)}")
    if rule_type is not None and rule_type.lower() != "eql":
        raise RuleFileError(f"{source}: {_type_refusal(rule_type)}")
    missing = [k for k in ("name", "rule_id", "query") if k not in rule]
    if missing:
        raise RuleFileError(f"{source}: rule.{missing[0]} is missing")
    name = _get(rule, "name", str, source)
    rule_id = _get(rule, "rule_id", str, source)
    query = _get(rule, "query", str, source)
    severity = _get(rule, "severity", str, source) or ""
    if severity and severity.lower() not in SEVERITIES:
        raise RuleFileError(
            f"{source}: rule.severity: {severity!r} is not one of {', '.join(SEVERITIES)}"
        )
    if not rule_id:
        raise RuleFileError(f"{source}: rule.rule_id is empty")
    risk_score = _get(rule, "risk_score", int, source)
    threat = _get(rule, "threat", list, source) or []
    if not all(isinstance(t, dict) for t in threat):
        raise RuleFileError(f"{source}: rule.threat: expected an array of tables")
    options = _sequence_options(rule, source)
    try:
        ir = compile_rule(
            query,
            name=name,
            rule_id=rule_id,
            severity=severity.lower(),
            source=source,
            field_types=field_types,
            **options,
        )
    except EqlError as exc:
        raise _query_error(text, query, exc, source) from None
    kind = "sequence" if "sequence" in ir else "sample" if "sample" in ir else "event"
    if rule.get("filters") is not None:
        ir = _with_filters(ir, kind, rule["filters"], source, field_types, mapping)
    for key in ("size", "max_samples_per_key"):
        wanted = ("sample",) if key == "max_samples_per_key" else ("sequence", "sample")
        if rule.get(key) is not None and kind not in wanted:
            queries = " and ".join(f"{k} queries" for k in wanted)
            article = "an" if kind == "event" else "a"
            raise RuleFileError(
                f"{source}: rule.{key}: only for {queries} (this is {article} {kind} query)"
            )
    names = _strings(rule, "branch_names", source)
    if names and kind != "event":
        raise RuleFileError(f"{source}: rule.branch_names: a {kind} query has no branches to name")
    if names:  # imds-scan's own key: what each branch detects, instead of branch<N>
        if len(names) != len(ir["branches"]) or len(set(names)) != len(names):
            raise RuleFileError(
                f"{source}: rule.branch_names: expected {len(ir['branches'])} distinct names "
                f"(one per branch of the query), found {len(names)}"
            )
        ir["branches"] = [{**b, "name": n} for b, n in zip(ir["branches"], names, strict=True)]
    return Rule(
        id=rule_id,
        name=name,
        severity=severity.lower(),
        query=query,
        ir=ir,
        description=(_get(rule, "description", str, source) or "").strip(),
        risk_score=risk_score,
        references=_strings(rule, "references", source),
        false_positives=_strings(rule, "false_positives", source),
        tags=_strings(rule, "tags", source),
        threat=tuple(threat),
        source=source,
    )


def _with_filters(
    ir: dict[str, Any],
    kind: str,
    entries: Any,
    source: str,
    field_types: Mapping[str, str] | None,
    mapping: KqlMapping | None,
) -> dict[str, Any]:
    """``ir`` with the rule's ``[[rule.filters]]`` AND-ed into every branch, or every stage
    and ``until`` of a sequence or sample: Kibana sends them as the EQL search's filter, which
    every event of the search must pass. Read as for a KQL rule (spec/kql.md), against the
    mapping profile. The filters come first: an ``and`` is witnessed by its last predicate
    (spec/ir.md), so a hit still shows what the rule's own condition matched."""
    from ..kql import _combine
    from .kuery import KueryRuleError, _filters

    try:
        filters = _filters(entries, _kql_mapping(mapping, field_types))
    except KueryRuleError as exc:
        raise RuleFileError(f"{source}: {exc}") from None
    if not filters:
        return ir
    if kind == "event":
        parts = ir["branches"]
    else:
        body = ir[kind]
        parts = [*body["stages"], *([body["until"]] if body.get("until") else [])]
    for part in parts:
        part["expr"] = _combine("and", [*filters, part["expr"]])
    return ir


def _kql_mapping(mapping: KqlMapping | None, field_types: Mapping[str, str] | None) -> KqlMapping:
    """What KQL queries and Query DSL filters compile against: ``mapping``, else the profile
    with ``field_types``."""
    from ..mapping import load_mapping

    return mapping if mapping is not None else load_mapping(None, field_types)


def _query_error(text: str, query: str, exc: Any, source: str) -> RuleFileError:
    """A query's error (line and column inside the query) at its place in the file."""
    place = _where(text, query)
    if place is None:
        return RuleFileError(f"{source}: rule.query:{exc.line}:{exc.column}: {exc.message}")
    lines_before, column_offset = place
    line = lines_before + exc.line
    column = exc.column + (column_offset if exc.line == 1 else 0)
    return RuleFileError(f"{source}:{line}:{column}: {exc.message}")


def _metadata(rule: dict[str, Any], source: str) -> dict[str, Any]:
    """The Rule fields every rule file gives: name, id, severity, description, …"""
    missing = [k for k in ("name", "rule_id", "query") if k not in rule]
    if missing:
        raise RuleFileError(f"{source}: rule.{missing[0]} is missing")
    severity = _get(rule, "severity", str, source) or ""
    if severity and severity.lower() not in SEVERITIES:
        raise RuleFileError(
            f"{source}: rule.severity: {severity!r} is not one of {', '.join(SEVERITIES)}"
        )
    rule_id = _get(rule, "rule_id", str, source)
    if not rule_id:
        raise RuleFileError(f"{source}: rule.rule_id is empty")
    threat = _get(rule, "threat", list, source) or []
    if not all(isinstance(t, dict) for t in threat):
        raise RuleFileError(f"{source}: rule.threat: expected an array of tables")
    return {
        "id": rule_id,
        "name": _get(rule, "name", str, source),
        "severity": severity.lower(),
        "query": _get(rule, "query", str, source),
        "description": (_get(rule, "description", str, source) or "").strip(),
        "risk_score": _get(rule, "risk_score", int, source),
        "references": _strings(rule, "references", source),
        "false_positives": _strings(rule, "false_positives", source),
        "tags": _strings(rule, "tags", source),
        "threat": tuple(threat),
        "source": source,
    }


def _kuery_rule(
    text: str,
    rule: dict[str, Any],
    rule_type: str,
    source: str,
    field_types: Mapping[str, str] | None,
    mapping: KqlMapping | None = None,
) -> Rule:
    """A KQL rule file (spec/kql.md, Rule types); ``mapping`` None: the profile with
    ``field_types``."""
    from .kuery import KINDS, KueryRuleError, compile_kuery

    if rule_type not in KINDS:
        raise RuleFileError(f"{source}: {_type_refusal(rule_type)}")
    meta = _metadata(rule, source)
    for key in ("branch_names", "size", "max_samples_per_key"):
        if rule.get(key) is not None:
            raise RuleFileError(f"{source}: rule.{key}: only for EQL rules")
    head = {
        "ir_version": 1,
        "id": meta["id"],
        "name": meta["name"],
        "severity": meta["severity"],
    }
    try:
        ir = compile_kuery(
            rule,
            rule_type=rule_type,
            head=head,
            mapping=_kql_mapping(mapping, field_types),
            on_query_error=lambda exc: _query_error(text, meta["query"], exc, source),
        )
    except KueryRuleError as exc:
        raise RuleFileError(f"{source}: {exc}") from None
    return Rule(ir=ir, **meta)


def _sequence_options(rule: dict[str, Any], source: str) -> dict[str, Any]:
    """The compile_rule options of ``[rule]`` (spec/sequences.md): Elastic's
    ``timestamp_field``, ``tiebreaker_field`` and ``event_category_override`` (the field
    of ``CATEGORY where``, for every query), imds-scan's ``size`` and
    ``max_samples_per_key`` (Elasticsearch's EQL search options; absent: no limit).
    ``timestamp_override`` is checked but sets no option: Kibana sends it as the run's range
    filter, never as the EQL search's ``timestamp_field``, so a sequence's time stays
    ``@timestamp`` unless ``timestamp_field`` says otherwise."""
    options: dict[str, Any] = {}
    for key, option in (
        ("timestamp_field", "timestamp_field"),
        ("tiebreaker_field", "tiebreaker_field"),
        ("event_category_override", "category_field"),
        ("timestamp_override", None),
    ):
        value = _get(rule, key, str, source)
        if value is not None:
            if not value:
                raise RuleFileError(f'{source}: rule.{key}: expected a field name, found ""')
            if option is not None:
                options[option] = value
    for key, low in (("size", 0), ("max_samples_per_key", 1)):
        value = _get(rule, key, int, source)
        if value is not None:
            if not low <= value <= 2**63 - 1:
                raise RuleFileError(
                    f"{source}: rule.{key}: expected an integer of at least {low}, found {value}"
                )
            options[key] = value
    return options


def _decode(data: bytes) -> str:
    """A file's bytes as text, as ``Path.read_text("utf-8")`` reads them (universal newlines)."""
    text = data.decode("utf-8")
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def load_rule_file(
    path: str | os.PathLike[str],
    *,
    cache: RuleCache | None = None,
    field_types: Mapping[str, str] | None = None,
    mapping: KqlMapping | None = None,
    regular: bool = False,
) -> Rule:
    """One rule file; RuleFileError if it cannot be read or is not a rule imds-scan runs.
    With a ``cache``, what the file compiles to (or why it is refused) is looked up there by
    the hash of its bytes, and stored there when absent (see rules/cache.py). At most
    MAX_SMALL_FILE_BYTES are read; ``regular``: only a regular file (a directory's entries:
    a FIFO there would hang the load), else a pipe such as ``<(...)`` is read too."""
    from ..smallfile import SmallFileError, TooLarge, read_small_file

    try:
        data = read_small_file(path, regular=regular)
    except OSError as exc:
        raise RuleFileError(f"{os.fspath(path)}: cannot read: {exc.strerror or exc}") from None
    except SmallFileError as exc:
        kind = ": not a rule file" if isinstance(exc, TooLarge) else ""
        raise RuleFileError(f"{os.fspath(path)}: {exc}{kind}") from None
    return _load_bytes(data, os.fspath(path), cache, field_types=field_types, mapping=mapping)


def _load_bytes(
    data: bytes,
    source: str,
    cache: RuleCache | None,
    *,
    bundled: bool = False,
    field_types: Mapping[str, str] | None = None,
    mapping: KqlMapping | None = None,
) -> Rule:
    from . import cache as cache_mod

    name = ""
    if cache is not None:
        # The overrides change what the file compiles to: they are part of the key.
        types = cache_mod.overrides_bytes(field_types)
        if mapping is not None:
            types += mapping.cache_key()
        name = cache_mod.bundled_key(data, types) if bundled else cache_mod.key(data, types)
    if cache is not None:
        entry = cache.get(name)
        found = _from_entry(entry, source) if entry is not None else None
        if found is not None:
            if isinstance(found, RuleFileError):
                raise found
            return found
    try:
        text = _decode(data)
    except UnicodeDecodeError:
        raise RuleFileError(f"{source}: not UTF-8 text") from None
    # Compiled without its path: the entry stands for the content, wherever it is found.
    try:
        rule = parse_rule_text(text, "", field_types, mapping)
    except RuleFileError as exc:
        if cache is not None:
            cache.put(name, {"refused": str(exc)})
        raise RuleFileError(f"{source}{exc}") from None
    if cache is not None:
        _store(cache, name, rule)
    return _with_source(rule, source)


_ENTRY_STRINGS = ("id", "name", "severity", "query", "description")
_ENTRY_LISTS = ("references", "false_positives", "tags")


def _store(cache: RuleCache, name: str, rule: Rule) -> None:
    entry: dict[str, Any] = {k: getattr(rule, k) for k in (*_ENTRY_STRINGS, "ir", "risk_score")}
    entry.update({k: list(getattr(rule, k)) for k in (*_ENTRY_LISTS, "threat")})
    # Only what JSON gives back unchanged (a TOML date in a threat table would not).
    try:
        import json

        if json.loads(json.dumps(entry)) != entry:
            return
    except (TypeError, ValueError):
        return
    cache.put(name, {"rule": entry})


def _from_entry(entry: dict[str, Any], source: str) -> Rule | RuleFileError | None:
    """The rule (or the refusal) a cache entry holds; None for an entry of another shape."""
    if isinstance(entry.get("refused"), str):
        return RuleFileError(f"{source}{entry['refused']}")
    rule = entry.get("rule")
    if not isinstance(rule, dict) or not isinstance(rule.get("ir"), dict):
        return None
    risk = rule.get("risk_score")
    if not all(isinstance(rule.get(k), str) for k in _ENTRY_STRINGS) or not (
        risk is None or (isinstance(risk, int) and not isinstance(risk, bool))
    ):
        return None
    lists: dict[str, Any] = {k: rule.get(k) for k in (*_ENTRY_LISTS, "threat")}
    if not all(isinstance(v, list) for v in lists.values()):
        return None
    if not all(isinstance(s, str) for k in _ENTRY_LISTS for s in lists[k]) or not all(
        isinstance(t, dict) for t in lists["threat"]
    ):
        return None
    return Rule(
        id=rule["id"],
        name=rule["name"],
        severity=rule["severity"],
        query=rule["query"],
        ir=rule["ir"],
        description=rule["description"],
        risk_score=risk,
        references=tuple(lists["references"]),
        false_positives=tuple(lists["false_positives"]),
        tags=tuple(lists["tags"]),
        threat=tuple(lists["threat"]),
        source=source,
    )


def _with_source(rule: Rule, source: str) -> Rule:
    import dataclasses

    return dataclasses.replace(rule, source=source)


def _rule_files(spec: str) -> list[tuple[str, bool]]:
    """The files ``spec`` names, each with whether it was found in a directory."""
    if os.path.isdir(spec):
        found = sorted(
            os.path.join(root, name)
            for root, _dirs, files in os.walk(spec)
            for name in files
            if name.endswith(".toml")
        )
        if not found:
            raise RuleFileError(f"{spec}: no .toml rule file in this directory")
        return [(path, True) for path in found]
    return [(spec, False)]


def load_rules(
    specs: Sequence[str | BundledRule],
    *,
    skip_unsupported: bool = False,
    cache: bool = True,
    field_types: Mapping[str, str] | None = None,
    mapping: KqlMapping | None = None,
) -> tuple[list[Rule], list[str]]:
    """Rules from files and directories (every ``.toml`` below a directory, in path order);
    ``default`` (or ``BUNDLED_RULE``) is the bundled rule, never a file of that name (a
    warning says when one exists: ``./default`` names it). Returns (rules, warnings).

    A file that cannot be loaded is an error (RuleFileError naming every such file), unless
    ``skip_unsupported``: then each is a warning and the others run. Two rules with one
    ``rule_id`` are always an error. ``cache``: use the compiled-rule cache under the user's
    cache directory (rules/cache.py); the results are the same either way. ``field_types``:
    the user's field type overrides (config ``field-types``, ``--field-type``); ``mapping``:
    what KQL rules compile against (config ``mapping``, ``--mapping``; None: the profile with
    ``field_types``).
    """
    from .cache import RuleCache

    store = RuleCache() if cache else None
    rules: list[Rule] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    notes: list[str] = []
    for spec in specs:
        if isinstance(spec, BundledRule) or spec == DEFAULT_RULE_ALIAS:
            if spec == DEFAULT_RULE_ALIAS and os.path.lexists(spec) and not notes:
                notes.append(
                    f"'{DEFAULT_RULE_ALIAS}' is the bundled rule: the file {DEFAULT_RULE_ALIAS} "
                    f"in the current directory is not loaded (./{DEFAULT_RULE_ALIAS} names it)"
                )
            loaded = [
                _load_bytes(
                    _bundled_bytes(),
                    BUNDLED_SOURCE,
                    store,
                    bundled=True,
                    field_types=field_types,
                    mapping=mapping,
                )
            ]
        else:
            loaded = []
            try:
                files = _rule_files(spec)
            except RuleFileError as exc:
                problems.append(str(exc))
                continue
            for path, in_directory in files:
                try:
                    loaded.append(
                        load_rule_file(
                            path,
                            cache=store,
                            field_types=field_types,
                            mapping=mapping,
                            regular=in_directory,
                        )
                    )
                except RuleFileError as exc:
                    problems.append(str(exc))
        for rule in loaded:
            if rule.id in seen:
                if seen[rule.id] == rule.source:
                    continue  # the same file named twice
                raise RuleFileError(
                    f"{rule.source}: rule_id {rule.id!r} is also the id of {seen[rule.id]}"
                )
            seen[rule.id] = rule.source
            rules.append(rule)
    if problems and not skip_unsupported:
        raise RuleFileError(*problems)
    warnings = [*notes, *(f"skipped {p}" for p in problems)]
    if not rules:
        raise RuleFileError("no rule to run" + (f": {len(problems)} skipped" if problems else ""))
    return rules, warnings
