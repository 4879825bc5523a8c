#!/usr/bin/env python3
"""Write python/imds_scan/data/mapping_profile.json: the Elasticsearch mapping KQL rules are
compiled against (spec/kql.md, Mapping profile).

    python3 spec/mapping/generate_profile.py ECS_FLAT_YML --ecs-version V
        [--endpoint FIELDS_YML ... --endpoint-version V]
        [--integrations spec/mapping/integration_fields.json] [--output PATH]

ECS_FLAT_YML is elastic/ecs's generated/ecs/ecs_flat.yml at a release tag; each --endpoint file
is one of elastic/endpoint-package's package/endpoint/data_stream/*/fields/fields.yml;
--integrations is the hand-checked table of the integration fields Elastic's KQL rules name
(spec/mapping/README.md says where each entry was read). Standard library only (the YAML
subset reader of spec/ecs/generate_types.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "ecs"))
from generate_types import read_yaml  # noqa: E402

DEFAULT_OUTPUT = os.path.join(
    HERE, "..", "..", "python", "imds_scan", "data", "mapping_profile.json"
)
DEFAULT_INTEGRATIONS = os.path.join(HERE, "integration_fields.json")

# Elasticsearch mapping types the profile holds (python/imds_scan/mapping.py maps them to IR
# types). `group` (a fields.yml container) and `alias` (a name for another field; only in
# Defend's action data streams) are not values: left out.
MAPPING_TYPES = frozenset(
    {
        "keyword",
        "constant_keyword",
        "wildcard",
        "text",
        "match_only_text",
        "flattened",
        "ip",
        "long",
        "integer",
        "short",
        "byte",
        "unsigned_long",
        "double",
        "float",
        "half_float",
        "scaled_float",
        "date",
        "date_nanos",
        "boolean",
        "object",
        "nested",
        "geo_point",
        "histogram",
    }
)
SKIPPED = frozenset({"group", "alias"})
TEXT = frozenset({"text", "match_only_text"})
# Fleet installs Elastic Defend and the integrations: a keyword field without its own
# ignore_above gets 1024 (Kibana fleet, epm template mappings), unless not indexed.
FLEET_IGNORE_ABOVE = 1024
# Analyzers the engines implement (spec/kql.md, Analysis), by the name the sources give them.
ANALYZERS = {None: "standard", "standard": "standard"}


class ProfileError(SystemExit):
    pass


def _spec(
    name: str, item: dict[str, Any], where: str, fleet: bool, analyzers: dict[Any, str]
) -> dict[str, Any] | None:
    """The profile's entry for one field definition, or None when it is not a value."""
    es_type = item.get("type")
    if not isinstance(es_type, str):
        raise ProfileError(f"{where}: {name}: no type")
    if es_type in SKIPPED:
        return None
    if es_type not in MAPPING_TYPES:
        raise ProfileError(f"{where}: {name}: unknown Elasticsearch type {es_type!r}")
    spec: dict[str, Any] = {"type": es_type}
    if es_type == "keyword":
        above = item.get("ignore_above")
        indexed = str(item.get("index", "true")).lower() != "false" and (
            str(item.get("doc_values", "true")).lower() != "false"
        )
        if above is not None:
            spec["ignore_above"] = int(above)
        elif fleet and indexed and not item.get("dimension"):
            spec["ignore_above"] = FLEET_IGNORE_ABOVE
        if item.get("normalizer") is not None:
            if item["normalizer"] != "lowercase":
                raise ProfileError(f"{where}: {name}: unknown normalizer {item['normalizer']!r}")
            spec["normalizer"] = "lowercase"
    if es_type in TEXT:
        analyzer = item.get("analyzer")
        if analyzer not in analyzers:
            raise ProfileError(f"{where}: {name}: unknown analyzer {analyzer!r}")
        spec["analyzer"] = analyzers[analyzer]
    return spec


def ecs_fields(doc: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(field, entry) of ecs_flat.yml: each field, then its multi-fields (``.text``)."""
    if not isinstance(doc, dict):
        raise ProfileError(f"{where}: expected a mapping of flat field names")
    for name, item in doc.items():
        spec = _spec(name, item, where, False, ANALYZERS)
        if spec is None:
            continue
        yield name, spec
        for multi in item.get("multi_fields") or []:
            flat = multi["flat_name"]
            if flat != f"{name}.{multi['name']}":
                raise ProfileError(f"{where}: {flat}: not {name}.{multi['name']}")
            sub = _spec(flat, multi, where, False, ANALYZERS)
            if sub is not None:
                yield flat, {**sub, "multi_field": True}


def fields_yml(
    items: Any, where: str, analyzers: dict[Any, str], prefix: str = ""
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(field, entry) of a package's fields.yml (nested ``name``/``fields``; Fleet's
    defaults). ``external: ecs`` entries are ECS's own: left to ECS."""
    for item in items or []:
        name = prefix + item["name"]
        if item.get("type") == "group" or "fields" in item:
            if item.get("type") in ("nested", "object"):  # a container with its fields
                yield name, {"type": item["type"]}
            yield from fields_yml(item.get("fields"), where, analyzers, name + ".")
            continue
        if item.get("external"):
            continue
        if item.get("type") == "object" and item.get("object_type"):
            # Fleet's dynamic template: every field below has the object_type (a keyword
            # without the default ignore_above, as Fleet maps dynamic keywords).
            if "*" not in name:
                yield name, {"type": "object"}
                name += ".*"
            if item["object_type"] in MAPPING_TYPES:
                sub = {"type": item["object_type"]}
                spec = _spec(name, sub, where, False, analyzers)
                if spec is not None:
                    yield name, {**spec, "pattern": True}
            continue
        spec = _spec(name, item, where, True, analyzers)
        if spec is not None and "*" in name:
            # a name with `*` (Fleet: a dynamic template matching the path)
            if spec["type"] != "object":
                yield name, {**spec, "pattern": True}
            continue
        if spec is None:
            continue
        yield name, spec
        for multi in item.get("multi_fields") or []:
            sub = _spec(f"{name}.{multi['name']}", multi, where, True, analyzers)
            if sub is not None:
                yield f"{name}.{multi['name']}", {**sub, "multi_field": True}


def _ir_kind(spec: dict[str, Any]) -> str:
    """What a query on the field compares as: two sources may differ in details (text or
    match_only_text), never in this."""
    es_type = spec["type"]
    if es_type in TEXT:
        return "text"
    if es_type in ("keyword", "constant_keyword", "flattened"):
        return "keyword"
    return es_type


def build(
    ecs_text: str,
    endpoint_texts: list[tuple[str, str]],
    integrations: dict[str, Any] | None,
    ecs_version: str,
    endpoint_version: str | None,
) -> tuple[dict[str, Any], list[str]]:
    """The profile, and notes on every definition that lost to an earlier source (ECS, then
    Elastic Defend, then the integrations: the first source to define a field decides it)."""
    fields: dict[str, tuple[str, dict[str, Any]]] = {}
    notes: list[str] = []

    def add(name: str, spec: dict[str, Any], origin: str, where: str) -> None:
        have = fields.get(name)
        if have is None:
            fields[name] = (origin, spec)
            return
        if have[1] == spec:
            return
        if have[0] == origin and _ir_kind(have[1]) != _ir_kind(spec):
            raise ProfileError(f"{where}: {name}: {spec}, but another {origin} file says {have[1]}")
        notes.append(f"{name}: {where} says {_show(spec)}; kept {have[0]}'s {_show(have[1])}")

    for name, spec in ecs_fields(read_yaml(ecs_text), "ecs_flat.yml"):
        add(name, spec, "ecs", "ecs_flat.yml")
    for where, text in endpoint_texts:
        for name, spec in fields_yml(read_yaml(text), f"endpoint {where}", ANALYZERS):
            add(name, spec, "endpoint", f"endpoint {where}")
    sources = [f"elastic/ecs v{ecs_version} generated/ecs/ecs_flat.yml"]
    if endpoint_texts:
        sources.append(
            f"elastic/endpoint-package v{endpoint_version} "
            "package/endpoint/data_stream/*/fields/fields.yml"
        )
    for package, entry in (integrations or {}).get("packages", {}).items():
        origin = f"integration {package}"
        analyzers = {**ANALYZERS, **entry.get("analyzers", {})}
        for path, source in entry["files"].items():
            where = f"{package} {path}"
            for name, spec in fields_yml(source["fields"], where, analyzers):
                add(name, spec, origin, where)
            sources.append(
                f"elastic/integrations packages/{package}/{path} at {source['commit'][:12]}"
            )
    groups: dict[tuple[str, str], list[str]] = {}
    for name, (origin, spec) in sorted(fields.items()):
        groups.setdefault((origin.split(" ")[0], json.dumps(spec, sort_keys=True)), []).append(name)
    profile = {
        "profile_version": 1,
        "ecs_version": ecs_version,
        "endpoint_package_version": endpoint_version,
        "sources": sources,
        "groups": [
            {"from": origin, **json.loads(spec), "fields": names}
            for (origin, spec), names in sorted(groups.items())
        ],
    }
    return profile, notes


def _show(spec: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in spec.items())


def dumps(profile: dict[str, Any]) -> str:
    """Compact JSON, one field name per line: a regeneration's diff reads field by field."""
    head = {k: v for k, v in profile.items() if k != "groups"}
    out = [json.dumps(head, ensure_ascii=False)[:-1] + ',"groups":[']
    for i, group in enumerate(profile["groups"]):
        attrs = {k: v for k, v in group.items() if k != "fields"}
        names = ",\n".join(json.dumps(n, ensure_ascii=False) for n in group["fields"])
        sep = "," if i + 1 < len(profile["groups"]) else ""
        out.append(
            json.dumps(attrs, ensure_ascii=False)[:-1] + ',"fields":[\n' + names + "]}" + sep
        )
    out.append("]}")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ecs_flat", help="elastic/ecs generated/ecs/ecs_flat.yml")
    parser.add_argument("--ecs-version", required=True, help="the ECS release, e.g. 9.4.0")
    parser.add_argument("--endpoint", action="append", default=[], metavar="FIELDS_YML")
    parser.add_argument("--endpoint-version", help="the endpoint-package release")
    parser.add_argument("--integrations", default=DEFAULT_INTEGRATIONS, metavar="JSON")
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
    integrations = json.loads(text(args.integrations)) if args.integrations else None
    profile, notes = build(
        text(args.ecs_flat),
        endpoints,
        integrations,
        args.ecs_version,
        args.endpoint_version if args.endpoint else None,
    )
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(dumps(profile))
    for note in dict.fromkeys(notes):
        print(f"note: {note}", file=sys.stderr)
    count = sum(len(g["fields"]) for g in profile["groups"])
    print(f"wrote {args.output}: {count} fields, {len(notes)} notes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
