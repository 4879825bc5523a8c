#!/usr/bin/env python3
"""Write python/imds_scan/data/ecs_types.json: the Elasticsearch type of every ECS field (and
of Elastic Defend's own fields) that is not compared as a keyword, as the IR's field_type.

    python3 spec/ecs/generate_types.py ECS_FLAT_YML [--endpoint FIELDS_YML ...]
        [--ecs-version V] [--endpoint-version V] [--output PATH]

ECS_FLAT_YML is elastic/ecs's generated/ecs/ecs_flat.yml at a release tag; each --endpoint file
is one of elastic/endpoint-package's package/endpoint/data_stream/*/fields/fields.yml. See
spec/ecs/README.md for the versions in use and the exact command. Standard library only: the
two file shapes are read by the small YAML subset reader below (no PyYAML dependency).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

# Elasticsearch mapping type → the IR's field_type (spec/ir.md, Field types).
IR_TYPE = {
    "keyword": "keyword",
    "wildcard": "keyword",
    "constant_keyword": "keyword",
    "text": "keyword",
    "match_only_text": "keyword",
    "flattened": "keyword",
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
    "boolean": "boolean",
}
# Not a value a query compares (containers, aliases of other fields) or not modelled: such a
# field stays a keyword, the default.
NOT_TYPED = frozenset({"object", "nested", "group", "alias", "geo_point", "histogram"})

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUTPUT = os.path.join(HERE, "..", "..", "python", "imds_scan", "data", "ecs_types.json")


# ---------------------------------------------------------------- a YAML subset


class YamlError(ValueError):
    pass


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


class _Reader:
    """Block mappings and sequences (indented or not under their key), plain, quoted and
    block scalars (kept as text; only single-line ones are unquoted). Enough for the two file
    shapes above, which PyYAML wrote."""

    def __init__(self, text: str) -> None:
        self.lines = text.split("\n")
        self.i = 0

    def _skip_blank(self) -> None:
        while self.i < len(self.lines) and (
            not self.lines[self.i].strip() or self.lines[self.i].lstrip().startswith("#")
        ):
            self.i += 1

    def _peek(self) -> str | None:
        self._skip_blank()
        return self.lines[self.i] if self.i < len(self.lines) else None

    def block(self, indent: int) -> Any:
        line = self._peek()
        if line is None or _indent(line) != indent:
            raise YamlError(f"line {self.i + 1}: expected a block at column {indent}")
        if line[indent:].startswith("- ") or line[indent:] == "-":
            return self._sequence(indent)
        return self._mapping(indent)

    def _sequence(self, indent: int) -> list[Any]:
        items = []
        while True:
            line = self._peek()
            if line is None or _indent(line) != indent or not line[indent:].startswith("-"):
                return items
            rest = line[indent + 1 :]
            if not rest.strip():
                self.i += 1
                items.append(self.block(_indent(self._peek() or "")))
                continue
            # "- key: value": the item is a mapping whose first line holds the first key.
            self.lines[self.i] = " " * (indent + 2) + rest.lstrip(" ")
            if _indent(self.lines[self.i]) != indent + 2:
                raise YamlError(f"line {self.i + 1}: unexpected spacing after '-'")
            if self._key_of(self.lines[self.i][indent + 2 :]) is None:
                items.append(self._scalar(indent + 2, self.lines[self.i][indent + 2 :]))
            else:
                items.append(self._mapping(indent + 2))

    @staticmethod
    def _key_of(text: str) -> tuple[str, str] | None:
        if text.startswith(("'", '"')):
            quote = text[0]
            end = text.find(quote, 1)
            while quote == "'" and end >= 0 and text[end + 1 : end + 2] == "'":
                end = text.find(quote, end + 2)
            if end < 0 or not text[end + 1 :].startswith(":"):
                return None
            key = text[1:end].replace("''", "'") if quote == "'" else text[1:end]
            return key, text[end + 2 :]
        at = text.find(": ")
        if at < 0 and text.endswith(":"):
            at = len(text) - 1
        if at <= 0:
            return None
        return text[:at], text[at + 1 :]

    def _mapping(self, indent: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        while True:
            line = self._peek()
            if line is None or _indent(line) != indent or line[indent:].startswith("- "):
                return out
            found = self._key_of(line[indent:])
            if found is None:
                raise YamlError(f"line {self.i + 1}: expected 'key: value'")
            key, rest = found
            if key in out:
                raise YamlError(f"line {self.i + 1}: key {key!r} repeated")
            rest = rest.strip()
            if rest:
                out[key] = self._scalar(indent, rest)
                continue
            self.i += 1
            nxt = self._peek()
            if nxt is None or _indent(nxt) < indent:
                out[key] = None
            elif _indent(nxt) > indent:
                out[key] = self.block(_indent(nxt))
            elif nxt[indent:].startswith("- "):  # a sequence not indented under its key
                out[key] = self._sequence(indent)
            else:
                out[key] = None

    def _scalar(self, indent: int, text: str) -> str:
        """The scalar starting on the current line (``text``: its start); consumes its
        continuation lines."""
        start = self.i
        self.i += 1
        if text.startswith("'") or text.startswith('"'):
            quote = text[0]
            whole = text
            while not self._closed(whole, quote):
                if self.i >= len(self.lines):
                    raise YamlError(f"line {start + 1}: unterminated {quote} string")
                whole += "\n" + self.lines[self.i]
                self.i += 1
            body = whole[1 : whole.rstrip().rfind(quote)]
            return body.replace("''", "'") if quote == "'" else body
        if text in ("|", ">", "|-", ">-", "|+", ">+"):
            while self.i < len(self.lines) and (
                not self.lines[self.i].strip() or _indent(self.lines[self.i]) > indent
            ):
                self.i += 1
            return ""
        # A plain scalar may go on over more deeply indented lines.
        while self.i < len(self.lines):
            line = self.lines[self.i]
            if line.strip() and _indent(line) <= indent:
                break
            text += " " + line.strip() if line.strip() else ""
            self.i += 1
        return text.strip()

    @staticmethod
    def _closed(text: str, quote: str) -> bool:
        i = 1
        while i < len(text):
            ch = text[i]
            if quote == '"' and ch == "\\":
                i += 2
                continue
            if ch == quote:
                if quote == "'" and text[i + 1 : i + 2] == "'":
                    i += 2
                    continue
                return True
            i += 1
        return False


def read_yaml(text: str) -> Any:
    reader = _Reader(text)
    if reader._peek() is None:
        return None
    value = reader.block(0)
    if reader._peek() is not None:
        raise YamlError(f"line {reader.i + 1}: unexpected text after the document")
    return value


# ---------------------------------------------------------------- the table


def _typed(name: str, es_type: Any, where: str) -> str | None:
    if not isinstance(es_type, str):
        raise SystemExit(f"{where}: {name}: no type")
    if es_type in NOT_TYPED:
        return None
    if es_type not in IR_TYPE:
        raise SystemExit(f"{where}: {name}: unknown Elasticsearch type {es_type!r}")
    return IR_TYPE[es_type]


def ecs_fields(doc: Any, where: str) -> Iterator[tuple[str, str]]:
    """(field, IR type) of ecs_flat.yml: each field and its multi-fields (``.text``, ...)."""
    if not isinstance(doc, dict):
        raise SystemExit(f"{where}: expected a mapping of flat field names")
    for name, spec in doc.items():
        ftype = _typed(name, spec.get("type"), where)
        if ftype is not None:
            yield name, ftype
        for multi in spec.get("multi_fields") or []:
            sub = _typed(multi["flat_name"], multi.get("type"), where)
            if sub is not None:
                yield multi["flat_name"], sub


def endpoint_fields(items: Any, where: str, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(field, IR type) of an endpoint-package fields.yml: nested ``name``/``fields``."""
    for item in items or []:
        name = prefix + item["name"]
        if item.get("type") == "group" or "fields" in item:
            yield from endpoint_fields(item.get("fields"), where, name + ".")
            continue
        ftype = _typed(name, item.get("type"), where)
        if ftype is not None:
            yield name, ftype
        for multi in item.get("multi_fields") or []:
            sub = _typed(f"{name}.{multi['name']}", multi.get("type"), where)
            if sub is not None:
                yield f"{name}.{multi['name']}", sub


def build(
    ecs_text: str,
    endpoint_texts: list[tuple[str, str]],
    ecs_version: str,
    endpoint_version: str | None,
) -> dict[str, Any]:
    """The data file's content. ECS decides a field's type; an endpoint file may only add
    fields ECS lacks (a different type for an ECS field, or two endpoint files disagreeing,
    is an error: the table would depend on the order)."""
    types: dict[str, str] = {}
    for name, ftype in ecs_fields(read_yaml(ecs_text), "ecs_flat.yml"):
        types[name] = ftype
    ecs_names = set(read_yaml(ecs_text))
    from_endpoint: dict[str, tuple[str, str]] = {}
    for where, text in endpoint_texts:
        for name, ftype in endpoint_fields(read_yaml(text), where):
            if name in types and (name in ecs_names or name not in from_endpoint):
                if types[name] != ftype:
                    raise SystemExit(f"{where}: {name}: {ftype}, but ECS says {types[name]}")
                continue
            if name in from_endpoint and from_endpoint[name][0] != ftype:
                raise SystemExit(
                    f"{where}: {name}: {ftype}, but {from_endpoint[name][1]} says "
                    f"{from_endpoint[name][0]}"
                )
            from_endpoint[name] = (ftype, where)
    for name, (ftype, _where) in from_endpoint.items():
        types.setdefault(name, ftype)
    by_type: dict[str, list[str]] = {}
    for name, ftype in sorted(types.items()):
        if ftype != "keyword":
            by_type.setdefault(ftype, []).append(name)
    sources = [f"elastic/ecs v{ecs_version} generated/ecs/ecs_flat.yml"]
    if endpoint_texts:
        sources.append(
            f"elastic/endpoint-package v{endpoint_version} "
            "package/endpoint/data_stream/*/fields/fields.yml"
        )
    return {
        "ecs_version": ecs_version,
        "endpoint_package_version": endpoint_version,
        "sources": sources,
        "types": dict(sorted(by_type.items())),
    }


def dumps(table: dict[str, Any]) -> str:
    """The file's text: one field per line, so a regeneration's diff reads field by field."""
    return json.dumps(table, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ecs_flat", help="elastic/ecs generated/ecs/ecs_flat.yml")
    parser.add_argument("--ecs-version", required=True, help="the ECS release, e.g. 9.4.0")
    parser.add_argument("--endpoint", action="append", default=[], metavar="FIELDS_YML")
    parser.add_argument("--endpoint-version", help="the endpoint-package release")
    parser.add_argument("--output", default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    if args.endpoint and not args.endpoint_version:
        parser.error("--endpoint needs --endpoint-version")

    def text(path: str) -> str:
        with open(path, encoding="utf-8") as f:
            return f.read()

    # Named after their data stream (…/data_stream/<name>/fields/fields.yml).
    endpoints = [
        (os.path.basename(os.path.dirname(os.path.dirname(p))), text(p)) for p in args.endpoint
    ]
    table = build(
        text(args.ecs_flat),
        endpoints,
        args.ecs_version,
        args.endpoint_version if args.endpoint else None,
    )
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(dumps(table))
    counts = ", ".join(f"{t} {len(v)}" for t, v in table["types"].items())
    print(f"wrote {args.output}: {counts}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
