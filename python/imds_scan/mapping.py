"""The mapping KQL rules compile against: what Kibana's data view and Elasticsearch's index
mapping would say of each field (spec/kql.md, Mapping profile).

The shipped profile (``data/mapping_profile.json``: ECS, Elastic Defend, the integration fields
Elastic's KQL rules name; made by ``spec/mapping/generate_profile.py``) is read on the first
lookup, not at import. On top of it, in this order: the user's field type overrides (config
``field-types``, ``--field-type``: the type only) and a mapping file (config ``mapping``,
``--mapping FILE.json``). A field none of them names is a ``keyword`` without ``ignore_above``.
"""

from __future__ import annotations

import collections.abc as abc
from dataclasses import dataclass
from functools import cache
from typing import Any

# Elasticsearch mapping type → the IR's field_type (spec/ir.md, spec/kql.md). Types with no
# value a query compares here (containers, geo_point, histogram) read as keyword: the KQL
# compiler looks at ``type`` to refuse what Elasticsearch would.
IR_TYPES = {
    "keyword": "keyword",
    "constant_keyword": "keyword",
    "flattened": "keyword",
    "wildcard": "wildcard",
    "text": "text",
    "match_only_text": "text",
    "ip": "ip",
    "long": "long",
    "integer": "integer",
    "short": "short",
    "byte": "byte",
    "unsigned_long": "unsigned_long",
    "double": "double",
    "float": "float",
    "half_float": "half_float",
    "scaled_float": "scaled_float",
    "date": "date",
    "date_nanos": "date",
    "boolean": "boolean",
    "object": "keyword",
    "nested": "keyword",
    "geo_point": "keyword",
    "histogram": "keyword",
}
TEXT_TYPES = frozenset({"text", "match_only_text"})
ANALYZERS = ("standard", "powershell_script")
NORMALIZERS = ("lowercase",)
# Not fields a field-name wildcard stands for (Kibana lists leaf fields).
CONTAINERS = frozenset({"object", "nested"})
ENTRY_KEYS = ("type", "analyzer", "normalizer", "ignore_above", "multi_field_of")
# A mapping file is user input, maybe from an evidence bundle: bounded (the shipped profile,
# every field it knows, is under 200 KB).
MAX_MAPPING_BYTES = 8 << 20
_MAX_IGNORE_ABOVE = 2**31 - 1

_DATA = "mapping_profile.json"


@dataclass(frozen=True)
class FieldMapping:
    name: str
    type: str  # Elasticsearch mapping type: keyword, text, match_only_text, wildcard, ...
    ir_type: str  # the IR field_type: keyword, text, wildcard, ip, long, ...
    analyzer: str | None = None  # text: "standard" or "powershell_script"
    normalizer: str | None = None  # keyword: "lowercase" or None
    ignore_above: int | None = None
    multi_field_of: str | None = None  # "process.command_line" for "process.command_line.text"


class MappingError(ValueError):
    """A mapping file (or override) that cannot be used; the message names the file, the
    field and the key."""


def _keyword(name: str) -> FieldMapping:
    return FieldMapping(name, "keyword", "keyword", None, None, None, None)


def _of_type(name: str, es_type: str, multi_field_of: str | None) -> FieldMapping:
    """A field of this type with the type's defaults (text: the standard analyzer)."""
    analyzer = "standard" if es_type in TEXT_TYPES else None
    return FieldMapping(name, es_type, IR_TYPES[es_type], analyzer, None, None, multi_field_of)


# One group of the shipped profile: (type, analyzer, normalizer, ignore_above, multi-field).
_Group = tuple[str, str | None, str | None, int | None, bool]


@cache
def _shipped() -> tuple[dict[str, int], list[_Group], list[tuple[list[str], int]]]:
    """The shipped profile: field → its group, the groups, and the dynamic patterns (an
    integration's ``prefix.*`` or ``a.*.b``, split at `*`, which stands for any run of
    characters, dots included; the one with the most literal characters first). FieldMapping
    objects are made on lookup: the profile has thousands of fields, a rule set names few."""
    import json
    from importlib import resources

    text = resources.files("imds_scan").joinpath("data", _DATA).read_text("utf-8")
    index: dict[str, int] = {}
    groups: list[_Group] = []
    patterns: list[tuple[str, int]] = []
    for at, group in enumerate(json.loads(text)["groups"]):
        groups.append(
            (
                group["type"],
                group.get("analyzer"),
                group.get("normalizer"),
                group.get("ignore_above"),
                bool(group.get("multi_field")),
            )
        )
        if group.get("pattern"):
            patterns.extend((name, at) for name in group["fields"])
        else:
            index.update(dict.fromkeys(group["fields"], at))
    patterns.sort(key=lambda p: (-len(p[0].replace("*", "")), p[0]))
    return index, groups, [(name.split("*"), at) for name, at in patterns]


def _made(name: str, group: _Group) -> FieldMapping:
    es_type, analyzer, normalizer, above, multi = group
    parent = name.rsplit(".", 1)[0] if multi else None
    return FieldMapping(name, es_type, IR_TYPES[es_type], analyzer, normalizer, above, parent)


def _shipped_field(name: str) -> FieldMapping | None:
    index, groups, _ = _shipped()
    at = index.get(name)
    return None if at is None else _made(name, groups[at])


def _globbed(name: str, parts: list[str]) -> bool:
    """Whether ``name`` matches the pattern split at its `*`s (any run of characters each)."""
    first, last = parts[0], parts[-1]
    if len(name) < len(first) + len(last) or not name.startswith(first):
        return False
    if not name.endswith(last):
        return False
    at, end = len(first), len(name) - len(last)
    for part in parts[1:-1]:  # leftmost occurrences, in order: enough for `*` alone
        found = name.find(part, at, end)
        if found < 0:
            return False
        at = found + len(part)
    return True


class Mapping:
    """The profile with the user's overrides: ``types`` (field → type name, the type only) and
    ``entries`` (a mapping file's: a type name, or a complete FieldMapping), later winning."""

    def __init__(
        self,
        types: abc.Mapping[str, str] | None = None,
        entries: abc.Mapping[str, str | FieldMapping] | None = None,
    ) -> None:
        self._types = dict(types or {})
        self._entries = dict(entries or {})
        self._resolved: dict[str, FieldMapping] = {}
        self._names: list[str] | None = None

    def _exact(self, field: str) -> FieldMapping | None:
        found = _shipped_field(field)
        for layer in (self._types, self._entries):
            given = layer.get(field)
            if isinstance(given, FieldMapping):
                found = given
            elif given is not None and (found is None or found.type != given):
                # The type only: the value still comes from where the profile says.
                found = _of_type(field, given, found.multi_field_of if found else None)
        return found

    def resolve(self, field: str) -> FieldMapping:
        """The field's mapping; a field nothing names is a keyword (no ignore_above). A key
        below a ``flattened`` field is a keyword (Elasticsearch indexes a flattened field's
        leaves as keywords; ``type`` "flattened" is the root only, whose query matches any
        leaf)."""
        found = self._resolved.get(field)
        if found is not None:
            return found
        found = self._exact(field)
        if found is None:
            found = self._flattened_leaf(field) or self._dynamic(field) or _keyword(field)
        self._resolved[field] = found
        return found

    def _flattened_leaf(self, field: str) -> FieldMapping | None:
        at = field.find(".")
        while at > 0:
            parent = self._exact(field[:at])
            if parent is not None and parent.type == "flattened":
                return FieldMapping(
                    field, "keyword", "keyword", None, None, parent.ignore_above, None
                )
            at = field.find(".", at + 1)
        return None

    @staticmethod
    def _dynamic(field: str) -> FieldMapping | None:
        """A field below an integration's dynamic object (``kubernetes.audit.annotations.*``:
        text), as Fleet's dynamic template maps it."""
        _, groups, patterns = _shipped()
        for parts, at in patterns:
            if _globbed(field, parts):
                return _made(field, groups[at])
        return None

    def names(self) -> list[str]:
        """Every field the mapping names that a field-name wildcard can stand for, sorted."""
        if self._names is None:
            index, groups, _ = _shipped()
            every = {name for name, at in index.items() if groups[at][0] not in CONTAINERS}
            for name in {*self._types, *self._entries}:
                if self.resolve(name).type in CONTAINERS:
                    every.discard(name)
                else:
                    every.add(name)
            self._names = sorted(every)
        return self._names

    def expand(self, pattern: str) -> list[str]:
        """The fields a KQL field name stands for, sorted: with ``*`` (any run of characters,
        dots included; case-sensitive, whole name), every field of the mapping it matches;
        without, the field itself when the mapping names it. None: []."""
        if "*" not in pattern:
            known = self._exact(pattern)
            return [pattern] if known is not None and known.type not in CONTAINERS else []
        import re

        regex = re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.S)
        return [n for n in self.names() if regex.fullmatch(n)]

    def cache_key(self) -> bytes:
        """The overrides as key material for the compiled-rule cache (empty without any)."""
        if not self._types and not self._entries:
            return b""
        import json

        entries = {
            k: v
            if isinstance(v, str)
            else [v.type, v.analyzer, v.normalizer, v.ignore_above, v.multi_field_of]
            for k, v in self._entries.items()
        }
        doc = [sorted(self._types.items()), sorted(entries.items())]
        return b"\0mapping " + json.dumps(doc).encode()


# ---------------------------------------------------------------- the user's mapping file


def _name_problem(field: object) -> str | None:
    if not isinstance(field, str) or not field:
        return "not a field name"
    if field != field.strip() or any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in field):
        return "not a field name (white space or a control character)"
    if field.startswith(".") or field.endswith(".") or ".." in field:
        return "not a field name (an empty part between dots)"
    if "*" in field:
        return "not a field name (a '*')"
    return None


def _show(value: object) -> str:
    import json

    return json.dumps(value, ensure_ascii=True)


def _found(value: object) -> str:
    """What a JSON value is, in the IR checker's words ("a number", "an object", ...)."""
    from .ir_schema import kind_of

    return kind_of(value)


def _type_of(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise MappingError(f"{where}: expected a type name, found {_found(value)}")
    if value not in IR_TYPES:
        import difflib

        close = difflib.get_close_matches(value, list(IR_TYPES), n=1)
        hint = f" (did you mean {_show(close[0])}?)" if close else ""
        raise MappingError(f"{where}: unknown type {_show(value)}{hint}")
    return value


def check_entry(field: str, value: object, where: str) -> str | FieldMapping:
    """One field's entry of a mapping file (``where``: the file), checked; MappingError
    naming the file, the field and the key."""
    problem = _name_problem(field)
    if problem is not None:
        raise MappingError(f"{where}: {_show(field)}: {problem}")
    at = f"{where}: {field}"
    if isinstance(value, str):
        return _type_of(value, at)
    if not isinstance(value, dict):
        raise MappingError(f"{at}: expected a type name or an object, found {_found(value)}")
    for key in value:
        if key not in ENTRY_KEYS:
            raise MappingError(f"{at}: unknown key {_show(key)} (keys: {', '.join(ENTRY_KEYS)})")
    if "type" not in value:
        raise MappingError(f"{at}: type: missing")
    es_type = _type_of(value["type"], f"{at}: type")
    analyzer = value.get("analyzer")
    if analyzer is not None:
        if es_type not in TEXT_TYPES:
            raise MappingError(f"{at}: analyzer: only for text and match_only_text fields")
        if analyzer not in ANALYZERS:
            raise MappingError(
                f"{at}: analyzer: unknown analyzer {_show(analyzer)} "
                f"(analyzers: {', '.join(ANALYZERS)})"
            )
    elif es_type in TEXT_TYPES:
        analyzer = "standard"
    normalizer = value.get("normalizer")
    if normalizer is not None:
        if es_type != "keyword":
            raise MappingError(f"{at}: normalizer: only for keyword fields")
        if normalizer not in NORMALIZERS:
            raise MappingError(
                f"{at}: normalizer: unknown normalizer {_show(normalizer)} "
                f"(normalizers: {', '.join(NORMALIZERS)})"
            )
    above = value.get("ignore_above")
    if above is not None:
        if es_type != "keyword":
            raise MappingError(f"{at}: ignore_above: only for keyword fields")
        if (
            not isinstance(above, int)
            or isinstance(above, bool)
            or not 0 <= above <= _MAX_IGNORE_ABOVE
        ):
            raise MappingError(
                f"{at}: ignore_above: expected a whole number from 0 to {_MAX_IGNORE_ABOVE}, "
                f"found {_found(above) if isinstance(above, bool | str) else _show(above)}"
            )
    parent = value.get("multi_field_of")
    if parent is not None:
        if _name_problem(parent) is not None:
            raise MappingError(f"{at}: multi_field_of: {_name_problem(parent)}")
        assert isinstance(parent, str)
        if not field.startswith(parent + "."):
            raise MappingError(
                f"{at}: multi_field_of: a multi-field's name is its parent's and one more "
                f"part; {field} is not below {parent}"
            )
    return FieldMapping(field, es_type, IR_TYPES[es_type], analyzer, normalizer, above, parent)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Duplicate(key)
        out[key] = value
    return out


class _Duplicate(ValueError):
    pass


def read_mapping_file(path: str) -> dict[str, str | FieldMapping]:
    """A mapping file's entries, checked; MappingError naming the file (and the field and the
    key). Only a regular file, at most MAX_MAPPING_BYTES."""
    import json

    from .smallfile import SmallFileError, TooLarge, read_small_file

    try:
        raw = read_small_file(path, regular=True, limit=MAX_MAPPING_BYTES)
    except OSError as exc:
        raise MappingError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except SmallFileError as exc:
        kind = ": not a mapping" if isinstance(exc, TooLarge) else ""
        raise MappingError(f"{path}: {exc}{kind}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MappingError(f"{path}: not UTF-8 text") from None
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_refuse_constant)
    except _Duplicate as exc:
        raise MappingError(f"{path}: {exc.args[0]}: given twice") from None
    except json.JSONDecodeError as exc:
        raise MappingError(
            f"{path}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except ValueError as exc:
        raise MappingError(f"{path}: not valid JSON: {exc}") from None
    except RecursionError:
        raise MappingError(f"{path}: not valid JSON: nested too deeply") from None
    if not isinstance(doc, dict):
        raise MappingError(
            f'{path}: expected a JSON object of field → type (or → {{"type", …}}), '
            f"found {_found(doc)}"
        )
    return {field: check_entry(field, value, path) for field, value in doc.items()}


def load_mapping(path: str | None, field_types: abc.Mapping[str, str] | None = None) -> Mapping:
    """The profile, then ``field_types`` (field → type name: the type only), then the mapping
    file at ``path`` when given (read now; MappingError naming the file, the field and the
    key)."""
    types: dict[str, str] = {}
    for field, value in (field_types or {}).items():
        problem = _name_problem(field)
        if problem is not None:
            raise MappingError(f"field-types: {_show(field)}: {problem}")
        types[field] = _type_of(value, f"field-types: {field}")
    entries = read_mapping_file(path) if path is not None else {}
    mapping = Mapping(types, entries)
    for field, entry in entries.items():
        if isinstance(entry, FieldMapping) and entry.multi_field_of is not None:
            parent = mapping.resolve(entry.multi_field_of)
            if parent.multi_field_of is not None or parent.type in CONTAINERS:
                what = "a multi-field" if parent.multi_field_of is not None else parent.type
                raise MappingError(
                    f"{path}: {field}: multi_field_of: {entry.multi_field_of} is {what}, "
                    "which has no multi-fields"
                )
    return mapping
