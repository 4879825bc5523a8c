"""The TOML configuration: command-line options and allowlists.

``imds-scan --config FILE``, else ``$IMDS_SCAN_CONFIG``, else the user's
``$XDG_CONFIG_HOME/imds-scan/config.toml`` (``~/.config/...``) when present; ``--no-config``
reads none. ``imds-scan.toml`` in the working directory is never read unless named: an
evidence bundle could carry one. The CLI names the file it read, and its keys, on stderr::

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
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .fields import field_type, node_fields
from .ir_schema import AFFIX_OPS
from .rules import Rule
from .userdirs import CONFIG_ENV as CONFIG_ENV
from .userdirs import DEFAULT_CONFIG as DEFAULT_CONFIG
from .userdirs import user_config_path as user_config_path

if TYPE_CHECKING:
    from .eql import Node

# tomllib, difflib, the EQL compiler and the IP parser are imported where used: a scan without
# a config file, allowlist or preset does not load them (start-up time).

ALLOWLIST = "allowlist"
# `[field-types]`: a table field → type, the config's form of the repeatable --field-type.
FIELD_TYPES_KEYS = ("field-types", "field_types")
FIELD_TYPE_PARAM = "field_type"
# Options that make no sense in a config file (a config naming a config, or none).
NOT_IN_CONFIG = frozenset({"config", "no-config", "version"})


def matches_everything(pattern: str) -> bool:
    """A ``*``/``?`` pattern that every value matches: only wildcards, at least one ``*``."""
    return "*" in pattern and not pattern.strip("*?")


# Every IPv4 address, as the engines store it (IPv4-mapped): a block holding both ends holds all.
_IPV4_ENDS = (b"\x00" * 10 + b"\xff\xff" + b"\x00" * 4, b"\x00" * 10 + b"\xff" * 6)


def covers_every_address(block_text: str) -> bool:
    """A CIDR block holding every IPv4 address (``0.0.0.0/0``, ``::/0``)."""
    from .reference.ip import in_cidr, parse_cidr

    block = parse_cidr(block_text)
    return block is not None and all(in_cidr(end, block) for end in _IPV4_ENDS)


def _constant(node: Node) -> object:
    """The value of an ``expr`` node that reads no field (``true``, ``1 == 1``), as the
    reference evaluator folds it; None when it reads a field or cannot be evaluated."""
    if node["node"] != "expr" or node_fields(node):
        return None
    from .reference.expr import compile_value

    try:
        compiled = compile_value(node["expr"])
        return compiled.value(())
    except (ValueError, TypeError, ArithmeticError):
        return None


def holds_for_everything(node: Node) -> bool:
    """Whether a condition holds for every event that has the fields it names (an allowlist
    entry that would silence a rule). Conservative: False when unsure."""
    kind = node["node"]
    if kind == "pred":
        op, values = node["op"], node["values"]
        if op == "exists":
            return True
        if op in ("wildcard", "like"):
            return any(matches_everything(v) for v in values)
        if op in AFFIX_OPS:
            return "" in values
        if op == "cidr":
            return any(covers_every_address(v) for v in values)
        return False
    if kind == "expr":
        return _constant(node) is True
    if kind == "not":  # (null, unlike false, is not true when negated)
        return _constant(node["arg"]) is False
    if kind == "and":
        return all(holds_for_everything(arg) for arg in node["args"])
    if kind == "or":
        args = node["args"]
        # `x or not x` holds even without the field
        return any(holds_for_everything(a) or {"node": "not", "arg": a} in args for a in args)
    return False


def _checked_condition(text: str, where: str, field_types: Mapping[str, str] | None = None) -> Node:
    """An allowlist condition, refused when it would drop every event."""
    from .eql import EqlError, parse_condition

    try:
        node = parse_condition(text, where, field_types)
    except EqlError as exc:
        raise ConfigError(str(exc)) from None
    if holds_for_everything(node):
        fields = ", ".join(sorted(node_fields(node)))
        with_fields = f" (with {fields})" if fields else ""
        raise ConfigError(
            f"{where}: {text!r} is true for every event{with_fields}: it would silence the rule"
        )
    return node


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
class AllowEntry:
    """One exclusion: an IR node, and the label the summary counts its drops under."""

    label: str
    node: Node


@dataclass(frozen=True)
class Allowlist:
    """Exclusions, in order: an event a rule matches and an entry matches is not a hit."""

    entries: tuple[AllowEntry, ...] = ()
    per_rule: dict[str, tuple[AllowEntry, ...]] = field(default_factory=dict)
    source: str = ""

    def __bool__(self) -> bool:
        return bool(self.entries) or any(self.per_rule.values())

    def for_rule(self, rule_id: str) -> list[AllowEntry]:
        """The entries that apply to a rule, in attribution order: the global ones, then the
        rule's own."""
        return [*self.entries, *self.per_rule.get(rule_id, ())]

    def unknown_rule_ids(self, rules: Sequence[Rule]) -> list[str]:
        """Per-rule sections naming no loaded rule (likely a typo in the id)."""
        ids = {r.id for r in rules}
        return [rule_id for rule_id in self.per_rule if rule_id not in ids]

    def apply(self, rules: Sequence[Rule]) -> list[Rule]:
        """The rules with the entries appended to their IR's ``allowlist`` (spec/ir.md,
        Allowlists): both engines drop an event a branch matches when an entry matches it,
        and count it against the first such entry. ``matched`` and branch names are kept;
        the labels go to ``Rule.allowlist_labels``, in the same order. A sequence's or
        sample's IR has no allowlist (spec/sequences.md): each stage and ``until`` gets one
        last ``and not (entry or ...)`` conjunct instead, so an allowlisted event takes no part
        (as if not indexed); such drops are not counted per entry. A new_terms or threshold
        rule keeps them as an allowlist: its condition's stage rule runs it (spec/kql.md)."""
        out = []
        for rule in rules:
            entries = self.for_rule(rule.id)
            if not entries:
                out.append(rule)
                continue
            if rule.kind in ("sequence", "sample"):
                exclusion = {"node": "not", "arg": _any_of([e.node for e in entries])}

                def excluded(expr: Node, exclusion: Node = exclusion) -> Node:
                    args = expr["args"] if expr["node"] == "and" else [expr]
                    return {"node": "and", "args": [*args, exclusion]}

                out.append(dataclasses.replace(rule, ir=rule.map_conditions(excluded)))
                continue
            ir = dict(rule.ir)
            ir["allowlist"] = [*ir.get("allowlist", ()), *(e.node for e in entries)]
            labels = (*rule.allowlist_labels, *(e.label for e in entries))
            out.append(dataclasses.replace(rule, ir=ir, allowlist_labels=labels))
        return out


def _any_of(nodes: Sequence[Node]) -> Node:
    if len(nodes) == 1:
        return nodes[0]
    # One flat `or`, as the compiler builds it (so the printed EQL compiles back to it).
    return {
        "node": "or",
        "args": [a for n in nodes for a in (n["args"] if n["node"] == "or" else [n])],
    }


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
        if matches_everything(glob):
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
    from .reference.ip import parse_cidr

    for i, block in enumerate(blocks):
        if parse_cidr(block) is None:
            raise ConfigError(
                f"{source}: {key}[{i}]: {block!r} is not an IP address or CIDR block "
                "(like 10.0.0.0/8 or fd00:ec2::/32)"
            )
        if covers_every_address(block):
            raise ConfigError(
                f"{source}: {key}[{i}]: {block!r} holds every IPv4 address: it would silence "
                f"the rule for any event with {name}"
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


def _entries(
    table: dict[str, Any],
    key_prefix: str,
    source: str,
    field_types: Mapping[str, str] | None = None,
) -> list[AllowEntry]:
    """One entry per value (each name, pattern, block or condition), so the summary can say
    which one dropped what."""
    nodes: list[AllowEntry] = []
    origin = source if key_prefix == ALLOWLIST else f"{source} [{key_prefix}]"
    for name, value in _flatten(table):
        key = f"{key_prefix}.{name}"
        if name == PER_RULE:
            continue
        if name not in ALLOWLIST_KEYS:
            import difflib

            hint = difflib.get_close_matches(name, ALLOWLIST_KEYS, n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(
                f"{source}: unknown key {key!r}{suggestion}; allowlist keys: "
                + ", ".join(ALLOWLIST_KEYS)
            )
        values = _string_list(value, key, source)
        if not values:
            continue
        if name in CIDR_FIELDS:  # checked as a list, so errors name the index
            cidr_node(name, values, key, source)
        elif name != CONDITIONS:
            glob_node(name, values, key, source)
        for i, text in enumerate(values):
            where = f"{key}[{i}]"
            label = f'{origin}: {name} "{text}"' if name != CONDITIONS else f"{origin}: {text}"
            if name == CONDITIONS:
                node = _checked_condition(text, f"{source}: {where}", field_types)
            elif name in CIDR_FIELDS:
                node = cidr_node(name, [text], key, source)
            else:
                node = glob_node(name, [text], key, source)
            nodes.append(AllowEntry(label, node))
    return nodes


def parse_allowlist(
    table: Any,
    source: str,
    key: str = ALLOWLIST,
    field_types: Mapping[str, str] | None = None,
) -> Allowlist:
    """The ``[allowlist]`` table: global entries and ``[allowlist.rules."<rule_id>"]``;
    ``field_types``: the field type overrides its conditions are compiled with."""
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: {key}: expected a table, found {_type_name(table)}")
    entries = _entries(table, key, source, field_types)
    per_rule: dict[str, tuple[AllowEntry, ...]] = {}
    rules = table.get(PER_RULE, {})
    if not isinstance(rules, dict):
        raise ConfigError(f"{source}: {key}.{PER_RULE}: expected a table of rule ids")
    for rule_id, sub in rules.items():
        sub_key = f'{key}.{PER_RULE}."{rule_id}"'
        if not isinstance(sub, dict):
            raise ConfigError(f"{source}: {sub_key}: expected a table, found {_type_name(sub)}")
        if PER_RULE in sub:
            raise ConfigError(f"{source}: {sub_key}.{PER_RULE}: rules do not nest")
        per_rule[rule_id] = tuple(_entries(sub, sub_key, source, field_types))
    return Allowlist(tuple(entries), per_rule, source)


def preset_allowlist(name: str) -> Allowlist:
    """A bundled preset (rules/presets/<name>.toml): its [allowlist] table, entries labelled
    ``preset <name>``."""
    import tomllib

    from .rules import preset_text

    source = f"preset {name}"
    try:
        doc = tomllib.loads(preset_text(name))
    except tomllib.TOMLDecodeError as exc:  # a packaging error, not the user's
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    return parse_allowlist(doc.get(ALLOWLIST, {}), source)


def condition_allowlist(
    conditions: Sequence[str],
    source: str = "--allow",
    field_types: Mapping[str, str] | None = None,
    indexed: bool = False,
) -> Allowlist:
    """Global exclusions given as EQL conditions (the ``--allow`` option; ``indexed``: errors
    name the item even when there is one, as a config's array)."""
    nodes = []
    for i, text in enumerate(conditions):
        where = source if len(conditions) == 1 and not indexed else f"{source}[{i}]"
        node = _checked_condition(text, where, field_types)
        nodes.append(AllowEntry(f"{source}: {text}", node))
    return Allowlist(tuple(nodes), {}, source)


def merge_allowlists(*allowlists: Allowlist) -> Allowlist:
    """One allowlist; entries keep the order of the arguments (the attribution order)."""
    entries: list[AllowEntry] = []
    per_rule: dict[str, tuple[AllowEntry, ...]] = {}
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
        if isinstance(item, float) and isinstance(out, int) and not isinstance(out, bool):
            # Click would cut 4.5 to 4
            raise ConfigError(f"{source}: {where}: expected an integer, found a float")
    return checked


@dataclass(frozen=True)
class Config:
    """A loaded configuration: option defaults (Click's ``default_map``) and allowlists."""

    path: str
    default_map: dict[str, Any]
    allowlist: Allowlist
    # The top-level keys as written in the file, in order (the CLI names them on stderr).
    keys: tuple[str, ...] = ()
    # The [allowlist] table as written: compiled again when --field-type adds overrides.
    allowlist_table: Any = None
    # Parameter name → its key as written (`max-hits`): errors found later name it.
    key_of: dict[str, str] = field(default_factory=dict)


def parse_config(text: str, source: str, command: Any, ctx: Any = None) -> Config:
    """Check a config's text against the command's options (``ctx``: the command's context,
    made here when not given)."""
    import tomllib

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
            continue  # below, with the file's own field types
        if key in FIELD_TYPES_KEYS:
            if FIELD_TYPE_PARAM in given:
                raise ConfigError(f"{source}: {key}: already set as {given[FIELD_TYPE_PARAM]!r}")
            given[FIELD_TYPE_PARAM] = key
            default_map[FIELD_TYPE_PARAM] = field_type_items(value, key, source)
            continue
        param = keys.get(key)
        if param is None or param.name is None:
            if key in NOT_IN_CONFIG:
                raise ConfigError(f"{source}: {key}: cannot be set in a config file")
            import difflib

            hint = difflib.get_close_matches(key, [*keys, ALLOWLIST], n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(f"{source}: unknown key {key!r}{suggestion}")
        if param.name in given:
            raise ConfigError(f"{source}: {key}: already set as {given[param.name]!r}")
        given[param.name] = key
        default_map[param.name] = _check_value(param, value, key, source, ctx)
    if ALLOWLIST in doc:
        from .fields import parse_assignments

        own = parse_assignments(default_map.get(FIELD_TYPE_PARAM, ()), FIELD_TYPE_PARAM)
        allowlist = parse_allowlist(doc[ALLOWLIST], source, field_types=own)
    return Config(source, default_map, allowlist, tuple(doc), doc.get(ALLOWLIST), given)


def field_type_items(table: Any, key: str, source: str) -> list[str]:
    """The ``[field-types]`` table as the ``--field-type`` items it stands for (``FIELD=TYPE``,
    in file order), checked: each error names the file, the key and the field. Dotted keys
    written bare (``process.pid = "long"``, which TOML nests) count as the dotted field."""
    from .fields import check_overrides

    if not isinstance(table, dict):
        raise ConfigError(
            f"{source}: {key}: expected a table of field = type, found {_type_name(table)}"
        )
    flat: dict[str, Any] = {}

    def walk(sub: dict[str, Any], prefix: str) -> None:
        for name, value in sub.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{name}.")
            else:
                flat[f"{prefix}{name}"] = value

    walk(table, "")
    try:
        checked = check_overrides(flat, f"{source}: {key}")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    # As written (a mapping name such as "wildcard" stays itself): the flag's own check reads it.
    return [f"{name}={flat[name]}" for name in checked]


def load_config(path: str | os.PathLike[str], command: Any, ctx: Any = None) -> Config:
    """Read and check a config file against the command's options."""
    from .smallfile import SmallFileError, TooLarge, read_small_file

    source = os.fspath(path)
    try:
        raw = read_small_file(path, regular=False)
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}") from None
    except SmallFileError as exc:
        kind = ": not a config file" if isinstance(exc, TooLarge) else ""
        raise ConfigError(f"{source}: {exc}{kind}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: not UTF-8 text") from None
    return parse_config(text, source, command, ctx)
