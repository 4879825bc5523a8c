"""The TOML configuration: command-line options and allowlists.

``imds-scan --config FILE`` (else ``imds-scan.toml`` in the working directory, when present)::

    format = "ndjson"             # any command-line option: its long name, '-' or '_'
    threads = 4
    exclude-host = ["canary-*"]

    [allowlist]                   # global: drop events of any rule matching an entry
    "process.name" = ["terraform", "packer"]
    "destination.ip" = ["10.0.0.0/8"]
    conditions = ['user.name == "svc_health" and process.name == "curl"']

    [allowlist.rules."imds-default"]   # only for this rule_id
    "process.executable" = ["/opt/monitoring/*"]

Top-level keys are the command's options, found by walking the Click command, so every option
has a key (and only options do). Values are checked against the option's type; the command
line overrides the file. Allowlist entries compile into each rule's IR as ``and not (...)``
conjuncts, so both engines apply them at full speed. Every problem is an error naming the file
and the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .eql import EqlError, Node, parse_condition
from .fields import field_type
from .ipaddr import parse_cidr
from .rules import Rule

DEFAULT_CONFIG = "imds-scan.toml"
ALLOWLIST = "allowlist"
# Options that make no sense in a config file (a config naming a config).
NOT_IN_CONFIG = frozenset({"config"})

# Allowlist keys: fields matched by name or glob (EQL `:` semantics: ASCII case-insensitive,
# whole value, `*` and `?`), fields matched by CIDR block, free EQL conditions.
GLOB_FIELDS = (
    "process.name",
    "process.parent.name",
    "process.executable",
    "process.command_line",
    "user.name",
    "host.name",
)
CIDR_FIELDS = ("destination.ip",)
CONDITIONS = "conditions"
PER_RULE = "rules"
ALLOWLIST_KEYS = (*GLOB_FIELDS, *CIDR_FIELDS, CONDITIONS)


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and the key."""


# ---------------------------------------------------------------- allowlists


@dataclass(frozen=True)
class Allowlist:
    """Exclusions as IR nodes: an event matching any of them is not a hit."""

    entries: tuple[Node, ...] = ()
    per_rule: dict[str, tuple[Node, ...]] = field(default_factory=dict)
    source: str = ""

    def __bool__(self) -> bool:
        return bool(self.entries) or any(self.per_rule.values())

    def for_rule(self, rule_id: str) -> list[Node]:
        return [*self.entries, *self.per_rule.get(rule_id, ())]

    def unknown_rule_ids(self, rules: Sequence[Rule]) -> list[str]:
        """Per-rule sections naming no loaded rule (likely a typo in the id)."""
        ids = {r.id for r in rules}
        return [rule_id for rule_id in self.per_rule if rule_id not in ids]

    def apply(self, rules: Sequence[Rule]) -> list[Rule]:
        """The rules with ``and not (<entries>)`` appended to every branch.

        Appending keeps ``matched``: a true ``not`` yields no witness entries and the branch's
        own come first (docs/ir.md, Witness). Branch names are kept."""
        out = []
        for rule in rules:
            nodes = self.for_rule(rule.id)
            if not nodes:
                out.append(rule)
                continue
            exclusion = {"node": "not", "arg": _any_of(nodes)}
            ir = dict(rule.ir)
            ir["branches"] = [
                {**branch, "expr": _and(branch["expr"], exclusion)} for branch in ir["branches"]
            ]
            out.append(dataclasses.replace(rule, ir=ir))
        return out


def _any_of(nodes: Sequence[Node]) -> Node:
    if len(nodes) == 1:
        return nodes[0]
    # One flat `or`, as the compiler builds it (so the printed EQL compiles back to it).
    return {
        "node": "or",
        "args": [a for n in nodes for a in (n["args"] if n["node"] == "or" else [n])],
    }


def _and(expr: Node, extra: Node) -> Node:
    args = expr["args"] if expr["node"] == "and" else [expr]
    return {"node": "and", "args": [*args, extra]}


def _pred(name: str, op: str, values: list[str]) -> Node:
    return {
        "node": "pred",
        "field": name,
        "field_type": field_type(name),
        "op": op,
        "values": values,
    }


def _type_name(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a float",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _string_list(value: Any, key: str, source: str) -> list[str]:
    items = value if isinstance(value, list) else [value]
    for i, item in enumerate(items):
        if not isinstance(item, str):
            where = f"{key}[{i}]" if isinstance(value, list) else key
            raise ConfigError(
                f"{source}: {where}: expected a string or an array of strings, "
                f"found {_type_name(item)}"
            )
    return items


def glob_node(name: str, globs: Sequence[str], key: str, source: str) -> Node:
    """``name`` matches one of the globs: ``in~`` for plain names, ``:`` for patterns."""
    for i, glob in enumerate(globs):
        where = f"{key}[{i}]"
        if not glob:
            raise ConfigError(f"{source}: {where}: an empty glob matches nothing")
        if not glob.strip("*"):
            raise ConfigError(
                f"{source}: {where}: {glob!r} matches every value: it would silence the rule "
                f"for any event with {name}"
            )
    plain = [g for g in globs if "*" not in g and "?" not in g]
    patterns = [g for g in globs if g not in plain]
    nodes = []
    if plain:
        nodes.append(_pred(name, "eq_ci", plain))
    if patterns:
        nodes.append(_pred(name, "wildcard", patterns))
    return _any_of(nodes)


def cidr_node(name: str, blocks: Sequence[str], key: str, source: str) -> Node:
    for i, block in enumerate(blocks):
        if parse_cidr(block) is None:
            raise ConfigError(
                f"{source}: {key}[{i}]: {block!r} is not an IP address or CIDR block "
                "(like 10.0.0.0/8 or fd00:ec2::/32)"
            )
    return _pred(name, "cidr", list(blocks))


def _flatten(table: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Dotted keys, however written: ``"process.name" = ...`` or ``process.name = ...``
    (a nested table in TOML)."""
    out = []
    for key, value in table.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict) and not (prefix == "" and key == PER_RULE):
            out.extend(_flatten(value, f"{full}."))
        else:
            out.append((full, value))
    return out


def _entries(table: dict[str, Any], key_prefix: str, source: str) -> list[Node]:
    nodes: list[Node] = []
    for name, value in _flatten(table):
        key = f"{key_prefix}.{name}"
        if name == PER_RULE:
            continue
        if name not in ALLOWLIST_KEYS:
            hint = difflib.get_close_matches(name, ALLOWLIST_KEYS, n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(
                f"{source}: unknown key {key!r}{suggestion}; allowlist keys: "
                + ", ".join(ALLOWLIST_KEYS)
            )
        values = _string_list(value, key, source)
        if not values:
            continue
        if name == CONDITIONS:
            for i, text in enumerate(values):
                try:
                    nodes.append(parse_condition(text, f"{source}: {key}[{i}]"))
                except EqlError as exc:
                    raise ConfigError(str(exc)) from None
        elif name in CIDR_FIELDS:
            nodes.append(cidr_node(name, values, key, source))
        else:
            nodes.append(glob_node(name, values, key, source))
    return nodes


def parse_allowlist(table: Any, source: str, key: str = ALLOWLIST) -> Allowlist:
    """The ``[allowlist]`` table: global entries and ``[allowlist.rules."<rule_id>"]``."""
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: {key}: expected a table, found {_type_name(table)}")
    entries = _entries(table, key, source)
    per_rule: dict[str, tuple[Node, ...]] = {}
    rules = table.get(PER_RULE, {})
    if not isinstance(rules, dict):
        raise ConfigError(f"{source}: {key}.{PER_RULE}: expected a table of rule ids")
    for rule_id, sub in rules.items():
        sub_key = f'{key}.{PER_RULE}."{rule_id}"'
        if not isinstance(sub, dict):
            raise ConfigError(f"{source}: {sub_key}: expected a table, found {_type_name(sub)}")
        if PER_RULE in sub:
            raise ConfigError(f"{source}: {sub_key}.{PER_RULE}: rules do not nest")
        per_rule[rule_id] = tuple(_entries(sub, sub_key, source))
    return Allowlist(tuple(entries), per_rule, source)


def condition_allowlist(conditions: Sequence[str], source: str = "--allow") -> Allowlist:
    """Global exclusions given as EQL conditions (the ``--allow`` option)."""
    nodes = []
    for i, text in enumerate(conditions):
        try:
            nodes.append(
                parse_condition(text, source if len(conditions) == 1 else f"{source}[{i}]")
            )
        except EqlError as exc:
            raise ConfigError(str(exc)) from None
    return Allowlist(tuple(nodes), {}, source)


def merge(*allowlists: Allowlist) -> Allowlist:
    entries: list[Node] = []
    per_rule: dict[str, tuple[Node, ...]] = {}
    for allowlist in allowlists:
        entries.extend(allowlist.entries)
        for rule_id, nodes in allowlist.per_rule.items():
            per_rule[rule_id] = (*per_rule.get(rule_id, ()), *nodes)
    return Allowlist(tuple(entries), per_rule, ", ".join(a.source for a in allowlists if a))


# ---------------------------------------------------------------- options
#
# The command is walked as Click sees it (``typer.main.get_command(app)``), by duck typing:
# Typer builds it on Click or on its own vendored copy of Click, with the same attributes.


def option_keys(command: Any) -> dict[str, Any]:
    """Config key → the command's parameter: each option's long names as written
    (``exclude-host``) and with ``_`` (``exclude_host``); arguments by name. The ``--no-x``
    side of a boolean flag is not a key: ``x = false`` says it."""
    keys: dict[str, Any] = {}
    for param in command.params:
        if param.name is None:
            continue
        if param.param_type_name == "option":
            names = [opt[2:] for opt in param.opts if opt.startswith("--")]
        else:
            names = [param.name]
        if NOT_IN_CONFIG & set(names):
            continue
        for name in names:
            keys[name] = param
            keys[name.replace("-", "_")] = param
    return keys


def _is_flag(param: Any) -> bool:
    return bool(getattr(param, "is_flag", False)) and not getattr(param, "count", False)


def _check_value(param: Any, value: Any, key: str, source: str, ctx: Any) -> Any:
    """The value as Click's default_map wants it, after Click's own conversion accepted it."""
    many = bool(getattr(param, "multiple", False)) or param.nargs == -1
    items = value if isinstance(value, list) else [value]
    if isinstance(value, list) and not many:
        raise ConfigError(f"{source}: {key}: expected a single value, found an array")
    for i, item in enumerate(items):
        where = f"{key}[{i}]" if isinstance(value, list) else key
        if isinstance(item, dict | list):
            raise ConfigError(f"{source}: {where}: expected a value, found {_type_name(item)}")
        if _is_flag(param) and not isinstance(item, bool):
            raise ConfigError(f"{source}: {where}: expected true or false, found {item!r}")
        if not _is_flag(param) and isinstance(item, bool):
            raise ConfigError(f"{source}: {where}: expected a value, found a boolean")
    checked = items if many else value
    try:
        converted = param.process_value(ctx, checked)
    except Exception as exc:  # Click's BadParameter, from Click or Typer's copy of it
        message = getattr(exc, "message", None) or str(exc)
        raise ConfigError(f"{source}: {key}: {message}") from None
    # Click converts leniently ("4" → 4, 1 → "1"); a TOML file has types, so hold to them.
    outs = list(converted) if many and isinstance(converted, list | tuple) else [converted]
    for i, (item, out) in enumerate(zip(items, outs, strict=False)):
        where = f"{key}[{i}]" if isinstance(value, list) else key
        number = isinstance(out, int | float) and not isinstance(out, bool)
        if isinstance(item, int | float) and isinstance(out, str):
            raise ConfigError(f"{source}: {where}: expected a string, found {_type_name(item)}")
        if isinstance(item, str) and number:
            raise ConfigError(f"{source}: {where}: expected a number, found a string")
    return checked


@dataclass(frozen=True)
class Config:
    """A loaded configuration: option defaults (Click's ``default_map``) and allowlists."""

    path: str
    default_map: dict[str, Any]
    allowlist: Allowlist


def parse_config(text: str, source: str, command: Any, ctx: Any = None) -> Config:
    """Check a config's text against the command's options (``ctx``: the command's context,
    made here when not given)."""
    if ctx is None:
        ctx = command.context_class(command)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    keys = option_keys(command)
    default_map: dict[str, Any] = {}
    given: dict[str, str] = {}
    allowlist = Allowlist(source=source)
    for key, value in doc.items():
        if key == ALLOWLIST:
            allowlist = parse_allowlist(value, source)
            continue
        param = keys.get(key)
        if param is None or param.name is None:
            if key in NOT_IN_CONFIG:
                raise ConfigError(f"{source}: {key}: cannot be set in a config file")
            hint = difflib.get_close_matches(key, [*keys, ALLOWLIST], n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(f"{source}: unknown key {key!r}{suggestion}")
        if param.name in given:
            raise ConfigError(f"{source}: {key}: already set as {given[param.name]!r}")
        given[param.name] = key
        default_map[param.name] = _check_value(param, value, key, source, ctx)
    return Config(source, default_map, allowlist)


def load_config(path: str | os.PathLike[str], command: Any, ctx: Any = None) -> Config:
    """Read and check a config file against the command's options."""
    source = os.fspath(path)
    try:
        with open(path, "rb") as stream:
            raw = stream.read()
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: not UTF-8 text") from None
    return parse_config(text, source, command, ctx)
