"""Stand-in for the mapping profile (spec/kql.md, Mapping profile): the API the KQL compiler
codes against, answered from the field-type table (fields.field_type) until the real profile
lands. ``.text`` multi-fields are text (standard analyzer), ``.caseless`` ones keyword with the
lowercase normalizer; everything else has the table's type; nothing has ``ignore_above``."""

from __future__ import annotations

import collections.abc
from dataclasses import dataclass
from fnmatch import fnmatchcase

from .fields import field_type


@dataclass(frozen=True)
class FieldMapping:
    name: str
    type: str
    ir_type: str
    analyzer: str | None = None
    normalizer: str | None = None
    ignore_above: int | None = None
    multi_field_of: str | None = None


class Mapping:
    def __init__(self, field_types: collections.abc.Mapping[str, str] | None = None) -> None:
        self._overrides = dict(field_types or {})

    def resolve(self, field: str) -> FieldMapping:
        parent, dot, last = field.rpartition(".")
        if dot and parent and last == "text":
            return FieldMapping(field, "text", "text", analyzer="standard", multi_field_of=parent)
        if dot and parent and last == "caseless":
            return FieldMapping(
                field, "keyword", "keyword", normalizer="lowercase", multi_field_of=parent
            )
        ftype = field_type(field, self._overrides)
        return FieldMapping(field, ftype, ftype)

    def expand(self, pattern: str) -> list[str]:
        from .fields import _table

        names = set(_table()) | set(self._overrides)
        # KQL's field wildcard is `*` only: escape fnmatch's other specials.
        glob = "".join(c if c == "*" else f"[{c}]" if c in "?[]" else c for c in pattern)
        return sorted(n for n in names if fnmatchcase(n, glob))


def load_mapping(
    path: str | None, field_types: collections.abc.Mapping[str, str] | None = None
) -> Mapping:
    if path is not None:
        raise ValueError(f"{path}: --mapping is not supported yet")
    return Mapping(field_types)
