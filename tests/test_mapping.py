"""The mapping profile and the user's overrides (spec/kql.md, Mapping profile; spec/mapping/)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from imds_scan import fields
from imds_scan.mapping import (
    ANALYZERS,
    IR_TYPES,
    MAX_MAPPING_BYTES,
    FieldMapping,
    Mapping,
    MappingError,
    load_mapping,
)

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "python" / "imds_scan" / "data" / "mapping_profile.json"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "generate_profile", ROOT / "spec/mapping/generate_profile.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fm(
    name: str,
    type: str,
    ir_type: str,
    analyzer: str | None = None,
    normalizer: str | None = None,
    ignore_above: int | None = None,
    multi_field_of: str | None = None,
) -> FieldMapping:
    return FieldMapping(name, type, ir_type, analyzer, normalizer, ignore_above, multi_field_of)


# ---------------------------------------------------------------- the profile


@pytest.mark.parametrize(
    "expected",
    [
        # ECS keywords: ignore_above 1024 (a few others)
        fm("process.name", "keyword", "keyword", ignore_above=1024),
        fm("host.id", "keyword", "keyword", ignore_above=1024),
        fm("user.name", "keyword", "keyword", ignore_above=1024),
        fm("file.drive_letter", "keyword", "keyword", ignore_above=1),
        fm("url.query", "keyword", "keyword", ignore_above=2083),
        # ECS wildcard fields: no ignore_above
        fm("process.command_line", "wildcard", "wildcard"),
        fm("process.executable", "keyword", "keyword", ignore_above=1024),
        fm("file.path", "keyword", "keyword", ignore_above=1024),
        fm("registry.data.strings", "wildcard", "wildcard"),
        # .text multi-fields (ECS: match_only_text), read from their parent
        fm(
            "process.command_line.text",
            "match_only_text",
            "text",
            "standard",
            multi_field_of="process.command_line",
        ),
        fm(
            "process.executable.text",
            "match_only_text",
            "text",
            "standard",
            multi_field_of="process.executable",
        ),
        fm("user.name.text", "match_only_text", "text", "standard", multi_field_of="user.name"),
        # Elastic Defend's .caseless: keyword with the lowercase normalizer
        fm("process.name.caseless", "keyword", "keyword", None, "lowercase", 1024, "process.name"),
        fm(
            "process.command_line.caseless",
            "keyword",
            "keyword",
            None,
            "lowercase",
            1024,
            "process.command_line",
        ),
        fm("file.path.caseless", "keyword", "keyword", None, "lowercase", 1024, "file.path"),
        # Defend's own fields
        fm("process.Ext.relative_file_creation_time", "double", "double"),
        fm("process.Ext.token.integrity_level_name", "keyword", "keyword", ignore_above=1024),
        fm("process.Ext.script.content", "match_only_text", "text", "standard"),
        # text fields that are not multi-fields
        fm("message", "match_only_text", "text", "standard"),
        # dates, addresses, numbers, booleans
        fm("@timestamp", "date", "date"),
        fm("event.ingested", "date", "date"),
        fm("source.ip", "ip", "ip"),
        fm("destination.ip", "ip", "ip"),
        fm("process.pid", "long", "long"),
        fm("destination.port", "long", "long"),
        fm("event.risk_score", "float", "float"),
        fm("process.interactive", "boolean", "boolean"),
        fm("data_stream.dataset", "constant_keyword", "keyword"),
        fm("dll.pe.imports", "flattened", "keyword"),
        fm("email.attachments", "nested", "keyword"),
        # integration fields Elastic's KQL rules name (Fleet: keywords get ignore_above 1024)
        fm("powershell.file.script_block_text", "text", "text", "powershell_script"),
        fm("powershell.file.script_block_length", "long", "long"),
        fm("powershell.file.script_block_entropy_bits", "float", "float"),
        fm("aws.cloudtrail.user_identity.type", "keyword", "keyword", ignore_above=1024),
        fm("aws.cloudtrail.request_parameters", "keyword", "keyword", ignore_above=8191),
        fm(
            "aws.cloudtrail.request_parameters.text",
            "text",
            "text",
            "standard",
            multi_field_of="aws.cloudtrail.request_parameters",
        ),
        fm("aws.cloudtrail.console_login.additional_eventdata.mfa_used", "boolean", "boolean"),
        fm("aws.cloudtrail.flattened.request_parameters", "flattened", "keyword"),
        fm("github.actor_ip", "ip", "ip"),
        fm("github.repository_public", "boolean", "boolean"),
        fm("kubernetes.audit.user.groups", "text", "text", "standard"),
        fm("kubernetes.audit.requestObject.spec.containers.image", "text", "text", "standard"),
        fm("kubernetes.audit.responseStatus.code", "integer", "integer"),
        fm("okta.security_context.is_proxy", "boolean", "boolean"),
        fm("okta.debug_context.debug_data.flattened", "flattened", "keyword"),
        fm("azure.signinlogs.properties.is_interactive", "boolean", "boolean"),
        fm("azure.signinlogs.properties.status.error_code", "long", "long"),
        fm("azure.signinlogs.properties.app_id", "keyword", "keyword", ignore_above=1024),
        fm("azure.graphactivitylogs.properties.client_auth_method", "integer", "integer"),
        fm("azure.activitylogs.properties", "flattened", "keyword"),
        fm("azure.activitylogs.properties.status_code", "keyword", "keyword"),
        fm(
            "azure.auditlogs.properties.target_resources.0.modified_properties.3.new_value",
            "keyword",
            "keyword",
            ignore_above=1024,
        ),
        fm("gcp.audit.authorization_info", "nested", "keyword"),
        fm("gcp.audit.request.spec.hostPID", "keyword", "keyword"),
        fm("gcp.audit.status.code", "integer", "integer"),
        fm("o365.audit.OperationCount", "long", "long"),
        fm("o365.audit.Members", "flattened", "keyword"),
        fm("o365.audit.Parameters.WithinSizeRangeMinimum", "keyword", "keyword"),
        fm("o365.audit.Comments", "text", "text", "standard"),
        fm("winlog.event_data.SubjectUserName", "keyword", "keyword", ignore_above=1024),
        fm("winlog.event_data.AttributeLDAPDisplayName", "keyword", "keyword"),
        fm("winlog.logon.type", "keyword", "keyword", ignore_above=1024),
        fm("ml_is_dga.malicious_probability", "float", "float"),
        fm("beacon_stats.is_beaconing", "boolean", "boolean"),
        # unknown: keyword, no ignore_above
        fm("myapp.whatever", "keyword", "keyword"),
        fm("process.name.nope", "keyword", "keyword"),
    ],
    ids=lambda m: m.name,
)
def test_profile_fields(expected: FieldMapping) -> None:
    assert load_mapping(None).resolve(expected.name) == expected


def test_a_key_below_a_flattened_field_is_its_keyword_leaf() -> None:
    # a keyword (the root alone is "flattened": a query on it matches any leaf)
    got = load_mapping(None).resolve("dll.pe.imports.kernel32.CreateFileW")
    assert got == fm("dll.pe.imports.kernel32.CreateFileW", "keyword", "keyword")
    leaf = "aws.cloudtrail.flattened.request_parameters.x-amz-acl"
    assert load_mapping(None).resolve(leaf) == fm(leaf, "keyword", "keyword")


def test_fields_below_a_dynamic_object_take_its_object_type() -> None:
    mapping = load_mapping(None)
    decision = "kubernetes.audit.annotations.authorization_k8s_io/decision"
    assert mapping.resolve(decision) == fm(decision, "text", "text", "standard")
    # a dynamic keyword: no ignore_above (Fleet maps dynamic keywords without it)
    extra = "kubernetes.audit.user.extra.scopes"
    assert mapping.resolve(extra) == fm(extra, "keyword", "keyword")
    # a declared field under the same object keeps its own mapping
    dt_hash = "okta.debug_context.debug_data.dt_hash"
    assert mapping.resolve(dt_hash) == fm(dt_hash, "keyword", "keyword", ignore_above=1024)
    assert mapping.resolve("okta.debug_context.debug_data").type == "object"
    # patterns are not fields a wildcard lists
    assert not [n for n in mapping.expand("kubernetes.audit.*") if "*" in n]
    assert "kubernetes.audit.annotations.authorization_k8s_io/decision" not in mapping.expand(
        "kubernetes.audit.annotations*"
    )


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("a.*", "a.b", True),
        ("a.*", "a.b.c", True),
        ("a.*", "a", False),
        ("a.*", "ab.c", False),
        ("a.*.b", "a.x.b", True),
        ("a.*.b", "a.x.y.b", True),
        ("a.*.b", "a.b", False),
        ("a.*.b.*.c", "a.1.b.2.c", True),
        ("a.*.b.*.c", "a.b.b.c", False),
        ("a.*.b.*.c", "a.1.b.b.2.c", True),
        ("a.*.b.*.c", "a.1.c", False),
        ("*.x", "y.x", True),
        ("*.x", ".x", True),
    ],
)
def test_dynamic_patterns_glob_whole_names(pattern: str, name: str, matches: bool) -> None:
    import re

    from imds_scan.mapping import _globbed

    assert _globbed(name, pattern.split("*")) is matches
    # as a regex would say
    regex = ".*".join(re.escape(p) for p in pattern.split("*"))
    assert (re.fullmatch(regex, name, re.S) is not None) is matches


def test_the_rules_named_integration_fields_are_in_the_profile() -> None:
    # the fields of Elastic's KQL rules whose mapping is not a plain keyword are there
    doc = json.loads(PROFILE.read_text(encoding="utf-8"))
    shipped = {n for g in doc["groups"] if g["from"] == "integration" for n in g["fields"]}
    assert {
        "powershell.file.script_block_text",
        "aws.cloudtrail.flattened.request_parameters",
        "kubernetes.audit.requestObject.spec.containers.securityContext.privileged",
        "okta.debug_context.debug_data.flattened",
    } <= shipped
    assert any(s.startswith("elastic/integrations packages/windows/") for s in doc["sources"])


def test_profile_agrees_with_the_ecs_type_table() -> None:
    # data/ecs_types.json (EQL's field types) and the profile come from the same releases:
    # every ECS and Defend field has one type in both (text and wildcard compare as keyword
    # there).
    doc = json.loads(PROFILE.read_text(encoding="utf-8"))
    table = json.loads((PROFILE.parent / "ecs_types.json").read_text(encoding="utf-8"))
    assert (doc["ecs_version"], doc["endpoint_package_version"]) == (
        table["ecs_version"],
        table["endpoint_package_version"],
    )
    mapping = load_mapping(None)
    seen = 0
    for group in doc["groups"]:
        if group["from"] not in ("ecs", "endpoint"):
            continue
        for name in group["fields"]:
            ir = mapping.resolve(name).ir_type
            assert fields.field_type(name) == ("keyword" if ir in ("text", "wildcard") else ir)
            seen += 1
    assert seen > 4000
    for names in table["types"].values():
        for name in names:
            assert mapping.resolve(name).ir_type == fields.field_type(name)


def test_profile_shape_types_and_round_trip() -> None:
    text = PROFILE.read_text(encoding="utf-8")
    doc = json.loads(text)
    assert doc["profile_version"] == 1
    assert doc["ecs_version"] == "9.4.0" and doc["endpoint_package_version"] == "9.5.0"
    names: set[str] = set()
    for group in doc["groups"]:
        assert group["type"] in IR_TYPES
        assert (group.get("analyzer") is not None) == (group["type"] in ("text", "match_only_text"))
        assert group.get("analyzer") in (None, *ANALYZERS)
        assert group.get("normalizer") in (None, "lowercase")
        assert group["fields"] == sorted(group["fields"])
        assert not names & set(group["fields"]), "a field in two groups"
        names |= set(group["fields"])
        for name in group["fields"] if group.get("multi_field") else ():
            assert name.rsplit(".", 1)[0] in names or any(
                name.rsplit(".", 1)[0] in g["fields"] for g in doc["groups"]
            )
    # what the generator writes, byte for byte (one name a line; compact)
    assert generator().dumps(doc) == text
    assert len(text) < 400_000


def test_the_profile_is_read_on_first_lookup_not_at_import() -> None:
    code = (
        "import imds_scan.mapping as m, imds_scan.cli\n"
        "assert m._shipped.cache_info().currsize == 0, 'read at import'\n"
        "assert m.load_mapping(None).resolve('process.pid').type == 'long'\n"
        "assert m._shipped.cache_info().currsize == 1\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------- expand


def test_expand_field_name_wildcards() -> None:
    mapping = load_mapping(None)
    assert mapping.expand("process.command_line*") == [
        "process.command_line",
        "process.command_line.caseless",
        "process.command_line.text",
    ]
    # `*` spans dots; the whole name must match; case-sensitive
    assert "process.parent.name" in mapping.expand("process.*.name")
    assert "process.name" not in mapping.expand("process.*.name")
    assert mapping.expand("PROCESS.NAME*") == []
    assert mapping.expand("process.nam") == []
    # sorted; containers (object, nested) are not fields a wildcard stands for
    every = mapping.expand("*")
    assert every == sorted(every)
    assert "email.attachments" not in every and "dll.pe.imports" in every
    # without `*`: the field when the mapping names it, else nothing
    assert mapping.expand("process.name") == ["process.name"]
    assert mapping.expand("myapp.field") == []
    # regex characters in a name are literal
    assert mapping.expand("process.nam.") == []
    assert mapping.expand("@timestam*") == ["@timestamp"]


def test_expand_includes_the_users_fields(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text('{"myapp.latency_ms": "long", "myapp.note": "text"}')
    mapping = load_mapping(str(path), {"myapp.id": "keyword"})
    assert mapping.expand("myapp.*") == ["myapp.id", "myapp.latency_ms", "myapp.note"]


# ---------------------------------------------------------------- overrides


def test_overrides_precedence_profile_then_field_types_then_mapping(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text(
        json.dumps(
            {
                "process.pid": "keyword",
                "myapp.msg": {"type": "text", "analyzer": "powershell_script"},
                "myapp.msg.lower": {
                    "type": "keyword",
                    "normalizer": "lowercase",
                    "ignore_above": 256,
                    "multi_field_of": "myapp.msg",
                },
                "user.name": {"type": "keyword"},
            }
        )
    )
    types = {
        "process.pid": "date",
        "source.port": "keyword",
        "process.command_line.text": "keyword",
    }
    only_types = load_mapping(None, types)
    assert only_types.resolve("process.pid") == fm("process.pid", "date", "date")
    assert only_types.resolve("source.port") == fm("source.port", "keyword", "keyword")
    # the type only: a multi-field still reads its parent
    assert only_types.resolve("process.command_line.text") == fm(
        "process.command_line.text", "keyword", "keyword", multi_field_of="process.command_line"
    )
    # the same type as the profile's: the profile's mapping stays
    assert (
        load_mapping(None, {"process.name": "keyword"}).resolve("process.name").ignore_above == 1024
    )

    both = load_mapping(str(path), types)
    assert both.resolve("process.pid") == fm("process.pid", "keyword", "keyword")  # --mapping wins
    assert both.resolve("source.port").type == "keyword"  # field-types, over the profile
    assert both.resolve("myapp.msg") == fm("myapp.msg", "text", "text", "powershell_script")
    assert both.resolve("myapp.msg.lower") == fm(
        "myapp.msg.lower", "keyword", "keyword", None, "lowercase", 256, "myapp.msg"
    )
    # an object entry is the whole mapping: no ignore_above unless given
    assert both.resolve("user.name") == fm("user.name", "keyword", "keyword")
    # text without an analyzer: standard
    path.write_text('{"myapp.msg": {"type": "match_only_text"}, "x": "text"}')
    again = load_mapping(str(path))
    assert again.resolve("myapp.msg").analyzer == "standard"
    assert again.resolve("x") == fm("x", "text", "text", "standard")
    # a user's flattened field: the keys below it are keywords, the root stays flattened
    path.write_text('{"myapp.blob": "flattened"}')
    blob = load_mapping(str(path))
    assert blob.resolve("myapp.blob").type == "flattened"
    assert blob.resolve("myapp.blob.a.b") == fm("myapp.blob.a.b", "keyword", "keyword")
    # the profile is untouched by another Mapping's overrides
    assert load_mapping(None).resolve("process.pid").type == "long"


def test_cache_key_stands_for_the_overrides(tmp_path: Path) -> None:
    assert load_mapping(None).cache_key() == b""
    path = tmp_path / "m.json"
    path.write_text('{"a": "long"}')
    one = load_mapping(str(path)).cache_key()
    path.write_text('{"a": {"type": "long"}}')
    two = load_mapping(str(path)).cache_key()
    assert one and two and one != two
    assert load_mapping(None, {"a": "long"}).cache_key() not in (b"", one)
    assert Mapping({"a": "text"}).cache_key() != Mapping({"a": "keyword"}).cache_key()


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            '{"process.name": "keywrd"}',
            'm.json: process.name: unknown type "keywrd" (did you mean "keyword"?)',
        ),
        ('{"a": "zzzz"}', 'm.json: a: unknown type "zzzz"'),
        ('{"a": 3}', "m.json: a: expected a type name or an object, found a number"),
        ('{"a": null}', "m.json: a: expected a type name or an object, found null"),
        ('{"a": ["long"]}', "m.json: a: expected a type name or an object, found an array"),
        ('{"a": {}}', "m.json: a: type: missing"),
        ('{"a": {"type": 1}}', "m.json: a: type: expected a type name, found a number"),
        ('{"a": {"type": "lng"}}', 'm.json: a: type: unknown type "lng" (did you mean "long"?)'),
        (
            '{"a": {"type": "long", "store": true}}',
            'm.json: a: unknown key "store" (keys: type, analyzer, '
            "normalizer, ignore_above, multi_field_of)",
        ),
        (
            '{"a": {"type": "keyword", "analyzer": "standard"}}',
            "m.json: a: analyzer: only for text and match_only_text fields",
        ),
        (
            '{"a": {"type": "text", "analyzer": "english"}}',
            'm.json: a: analyzer: unknown analyzer "english" '
            "(analyzers: standard, powershell_script)",
        ),
        (
            '{"a": {"type": "text", "normalizer": "lowercase"}}',
            "m.json: a: normalizer: only for keyword fields",
        ),
        (
            '{"a": {"type": "keyword", "normalizer": "upper"}}',
            'm.json: a: normalizer: unknown normalizer "upper" (normalizers: lowercase)',
        ),
        (
            '{"a": {"type": "wildcard", "ignore_above": 5}}',
            "m.json: a: ignore_above: only for keyword fields",
        ),
        (
            '{"a": {"type": "keyword", "ignore_above": -1}}',
            "m.json: a: ignore_above: expected a whole number from 0 to 2147483647, found -1",
        ),
        (
            '{"a": {"type": "keyword", "ignore_above": 1.5}}',
            "m.json: a: ignore_above: expected a whole number from 0 to 2147483647, found 1.5",
        ),
        (
            '{"a": {"type": "keyword", "ignore_above": true}}',
            "m.json: a: ignore_above: expected a whole number "
            "from 0 to 2147483647, found a boolean",
        ),
        (
            '{"a": {"type": "keyword", "ignore_above": "9"}}',
            "m.json: a: ignore_above: expected a whole number from 0 to 2147483647, found a string",
        ),
        (
            '{"a.b": {"type": "text", "multi_field_of": "c"}}',
            "m.json: a.b: multi_field_of: a multi-field's name is its "
            "parent's and one more part; a.b is not below c",
        ),
        (
            '{"a.b": {"type": "text", "multi_field_of": 3}}',
            "m.json: a.b: multi_field_of: not a field name",
        ),
        (
            '{"process.command_line.text.x": {"type": "text", '
            '"multi_field_of": "process.command_line.text"}}',
            "m.json: process.command_line.text.x: multi_field_of: "
            "process.command_line.text is a multi-field, which has no multi-fields",
        ),
        (
            '{"email.attachments.x": {"type": "text", "multi_field_of": "email.attachments"}}',
            "m.json: email.attachments.x: multi_field_of: "
            "email.attachments is nested, which has no multi-fields",
        ),
        ('{"": "long"}', 'm.json: "": not a field name'),
        ('{"a..b": "long"}', 'm.json: "a..b": not a field name (an empty part between dots)'),
        ('{".a": "long"}', 'm.json: ".a": not a field name (an empty part between dots)'),
        ('{"a*": "long"}', "m.json: \"a*\": not a field name (a '*')"),
        ('{" a": "long"}', 'm.json: " a": not a field name (white space or a control character)'),
        (
            '{"a\\u001b[31m": "long"}',
            'm.json: "a\\u001b[31m": not a field name (white space or a control character)',
        ),
        ('{"a": "long", "a": "ip"}', "m.json: a: given twice"),
        (
            '["a"]',
            'm.json: expected a JSON object of field → type (or → {"type", …}), found an array',
        ),
        ('{"a": NaN}', "m.json: not valid JSON: NaN is not a JSON number"),
        ('{"a" "long"}', "m.json: not valid JSON: Expecting ':' delimiter (line 1, column 6)"),
        ("", "m.json: not valid JSON: Expecting value (line 1, column 1)"),
        ("[" * 100_000, "m.json: not valid JSON: nested too deeply"),
    ],
)
def test_mapping_file_errors_name_the_file_field_and_key(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "m.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(MappingError) as info:
        load_mapping(str(path))
    assert str(info.value) == f"{tmp_path}/{message}"


def test_mapping_file_junk_is_refused(tmp_path: Path) -> None:
    def refused(path: Path | str) -> str:
        with pytest.raises(MappingError) as info:
            load_mapping(str(path))
        return str(info.value)

    assert (
        refused(tmp_path / "none.json")
        == f"{tmp_path}/none.json: cannot read: No such file or directory"
    )
    assert refused(tmp_path) == f"{tmp_path}: not a regular file"
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(MAX_MAPPING_BYTES + 1)
    assert refused(big) == f"{big}: larger than 8 MiB: not a mapping"
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"a": "\xff"}')
    assert refused(bad) == f"{bad}: not UTF-8 text"
    if hasattr(os, "mkfifo"):  # a FIFO is refused, not waited on
        fifo = tmp_path / "fifo.json"
        os.mkfifo(fifo)
        assert refused(fifo) == f"{fifo}: not a regular file"


def test_field_types_are_checked_too() -> None:
    with pytest.raises(MappingError, match=r'^field-types: a: unknown type "bogus"$'):
        load_mapping(None, {"a": "bogus"})
    with pytest.raises(MappingError, match=r'^field-types: "a\.\.b": not a field name'):
        load_mapping(None, {"a..b": "long"})


# ---------------------------------------------------------------- the generator

# Hand-written in the source files' shapes (not copied from them).
ECS_SAMPLE = """\
a.cmd:
  flat_name: a.cmd
  multi_fields:
  - flat_name: a.cmd.text
    name: text
    type: match_only_text
  type: wildcard
a.name:
  flat_name: a.name
  ignore_above: 1024
  type: keyword
a.raw:
  flat_name: a.raw
  index: false
  doc_values: false
  type: keyword
"""

ENDPOINT_SAMPLE = """\
- name: a
  type: group
  fields:
    - name: name
      type: keyword
      multi_fields:
        - name: caseless
          type: keyword
          normalizer: lowercase
          ignore_above: 1024
        - name: text
          type: text
    - name: Ext.size
      type: long
    - name: Ext.tag
      type: keyword
    - name: Ext.unindexed
      type: keyword
      index: false
- name: b
  type: alias
  path: a.name
"""

PACKAGE_SAMPLE = [
    {
        "name": "pkg",
        "type": "group",
        "fields": [
            {"name": "script", "type": "text", "analyzer": "pkg_script_analyzer"},
            {"name": "id", "type": "keyword"},
            {"name": "a.name", "type": "keyword", "external": "ecs"},
        ],
    },
    {"name": "a.name", "type": "keyword", "ignore_above": 9},
]


def test_the_generator_reads_the_sources_with_fleets_defaults() -> None:
    gen = generator()
    integrations = {
        "packages": {
            "pkg": {
                "analyzers": {"pkg_script_analyzer": "powershell_script"},
                "files": {
                    "data_stream/x/fields/fields.yml": {
                        "commit": "0" * 40,
                        "fields": PACKAGE_SAMPLE,
                    }
                },
            }
        }
    }
    profile, notes = gen.build(ECS_SAMPLE, [("s", ENDPOINT_SAMPLE)], integrations, "1.2.3", "4.5.6")
    groups = {
        (
            g["from"],
            json.dumps({k: v for k, v in g.items() if k not in ("from", "fields")}, sort_keys=True),
        ): g["fields"]
        for g in profile["groups"]
    }

    def fields_of(origin: str, **attrs: object) -> list[str]:
        return groups[(origin, json.dumps(attrs, sort_keys=True))]

    assert fields_of("ecs", type="wildcard") == ["a.cmd"]
    assert fields_of("ecs", type="match_only_text", analyzer="standard", multi_field=True) == [
        "a.cmd.text"
    ]
    assert fields_of("ecs", type="keyword", ignore_above=1024) == ["a.name"]
    assert fields_of("ecs", type="keyword") == ["a.raw"]  # ECS states ignore_above itself
    assert fields_of(
        "endpoint", type="keyword", normalizer="lowercase", ignore_above=1024, multi_field=True
    ) == ["a.name.caseless"]
    assert fields_of("endpoint", type="long") == ["a.Ext.size"]
    # Fleet: 1024 unless the field is not indexed
    assert fields_of("endpoint", type="keyword", ignore_above=1024) == ["a.Ext.tag"]
    assert fields_of("endpoint", type="keyword") == ["a.Ext.unindexed"]
    assert fields_of("integration", type="text", analyzer="powershell_script") == ["pkg.script"]
    assert fields_of("integration", type="keyword", ignore_above=1024) == ["pkg.id"]
    # ECS decides: Defend's .text (text) and the package's a.name lose, with a note
    assert "a.name.text" in fields_of(
        "endpoint", type="text", analyzer="standard", multi_field=True
    )
    assert any(n.startswith("a.name: pkg data_stream/x/fields/fields.yml says") for n in notes)
    assert all("b" not in g["fields"] for g in profile["groups"])  # aliases left out
    assert (
        "elastic/integrations packages/pkg/data_stream/x/fields/fields.yml at 000000000000"
        in profile["sources"]
    )


def test_the_generator_stops_on_unknown_types_analyzers_and_conflicts() -> None:
    gen = generator()
    with pytest.raises(SystemExit, match="unknown Elasticsearch type 'version'"):
        gen.build("x.y:\n  type: version\n", [], None, "1", None)
    with pytest.raises(SystemExit, match="unknown analyzer 'english'"):
        gen.build("x.y:\n  type: text\n  analyzer: english\n", [], None, "1", None)
    with pytest.raises(SystemExit, match=r"a\.n: .*but another endpoint file says"):
        gen.build(
            ECS_SAMPLE,
            [("s", "- name: a.n\n  type: long\n"), ("t", "- name: a.n\n  type: ip\n")],
            None,
            "1",
            "2",
        )


# ---------------------------------------------------------------- --mapping and the config

RULE = """\
[rule]
name = "typed"
rule_id = "typed-1"
severity = "low"
language = "eql"
type = "eql"
query = 'any where process.pid == 7'
"""


def _cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imds_scan", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_cli_flag_and_config_errors_name_the_flag_or_key_the_file_and_field(
    tmp_path: Path,
) -> None:
    (tmp_path / "m.json").write_text('{"process.name": "keywrd"}')
    bad = _cli("--no-config", "--mapping", "m.json", "--show-rule", cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr == (
        'imds-scan: error: --mapping m.json: process.name: unknown type "keywrd" '
        '(did you mean "keyword"?)\n'
    )
    (tmp_path / "c.toml").write_text('mapping = "m.json"\n')
    bad = _cli("--config", "c.toml", "--show-rule", cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.splitlines()[-1] == (
        'imds-scan: error: c.toml: mapping: m.json: process.name: unknown type "keywrd" '
        '(did you mean "keyword"?)'
    )
    # a field name with a control character is escaped on the terminal
    (tmp_path / "m.json").write_text('{"a\\u001b[2J": "long"}')
    bad = _cli("--no-config", "--mapping", "m.json", "--show-rule", cwd=tmp_path)
    assert bad.returncode == 2 and "\x1b" not in bad.stderr and "Traceback" not in bad.stderr
    gone = _cli("--no-config", "--mapping", "nope.json", "--show-rule", cwd=tmp_path)
    assert gone.returncode == 2
    assert gone.stderr == (
        "imds-scan: error: --mapping nope.json: cannot read: No such file or directory\n"
    )
    (tmp_path / "c.toml").write_text("mapping = 3\n")
    bad = _cli("--config", "c.toml", "--show-rule", cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.splitlines()[-1] == (
        "imds-scan: error: c.toml: mapping: expected a string, found an integer"
    )


def test_flag_and_config_give_the_rule_loader_the_same_mapping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    import imds_scan.rules as rules_mod
    from imds_scan.cli import app

    seen: list[Mapping | None] = []
    real = rules_mod.load_rules

    def spy(*args: object, **kwargs: object) -> object:
        seen.append(kwargs.get("mapping"))  # type: ignore[arg-type]
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(rules_mod, "load_rules", spy)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.json").write_text('{"myapp.msg": {"type": "text"}, "process.pid": "ip"}')
    (tmp_path / "c.toml").write_text(
        'mapping = "m.json"\n[field-types]\n"myapp.n" = "text"\n"process.pid" = "keyword"\n'
    )
    runner = CliRunner()
    by_flag = runner.invoke(
        app,
        [
            "--no-config",
            "--show-rule",
            "--mapping",
            "m.json",
            "--field-type",
            "myapp.n=text",
            "--field-type",
            "process.pid=keyword",
        ],
    )
    assert by_flag.exit_code == 0, by_flag.output
    by_config = runner.invoke(app, ["--config", "c.toml", "--show-rule"])
    assert by_config.exit_code == 0, by_config.output
    without = runner.invoke(app, ["--no-config", "--show-rule"])
    assert without.exit_code == 0, without.output
    assert len(seen) == 3
    for mapping in seen[:2]:
        assert mapping is not None
        assert mapping.resolve("myapp.msg") == fm("myapp.msg", "text", "text", "standard")
        # --field-type as written (text stays text), then --mapping over it
        assert mapping.resolve("myapp.n") == fm("myapp.n", "text", "text", "standard")
        assert mapping.resolve("process.pid") == fm("process.pid", "ip", "ip")
    assert seen[0].cache_key() == seen[1].cache_key()  # type: ignore[union-attr]
    assert seen[2] is None  # nothing to override: the profile (a plain scan imports no more)


def test_the_mapping_is_part_of_the_rule_cache_key(tmp_path: Path) -> None:
    from imds_scan.rules import load_rule_file
    from imds_scan.rules.cache import RuleCache

    rule = tmp_path / "r.toml"
    rule.write_text(RULE, encoding="utf-8")
    (tmp_path / "m.json").write_text('{"myapp.x": "long"}')
    store = tmp_path / "cache"
    cache = RuleCache(str(store))
    load_rule_file(rule, cache=cache)
    load_rule_file(rule, cache=cache, mapping=load_mapping(None))  # no overrides: same entry
    assert len(list(store.glob("*.json"))) == 1
    load_rule_file(rule, cache=cache, mapping=load_mapping(str(tmp_path / "m.json")))
    assert len(list(store.glob("*.json"))) == 2


def test_a_plain_scan_does_not_import_the_mapping(tmp_path: Path) -> None:
    events = tmp_path / "events.ndjson"
    events.write_text('{"process": {"name": "curl"}}\n', encoding="utf-8")

    def modules(*args: str) -> set[str]:
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "imds_scan", "--no-config", "-q", *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        assert done.returncode in (0, 1), done.stderr[-2000:]
        return set(re.findall(r"^import time:.*\|\s*(\S+)\s*$", done.stderr, re.MULTILINE))

    assert "imds_scan.mapping" not in modules(str(events), "-f", "ndjson")
    # the converse: --mapping loads it
    (tmp_path / "m.json").write_text("{}")
    assert "imds_scan.mapping" in modules(str(events), "-f", "ndjson", "--mapping", "m.json")


def test_fields_elastic_rules_compare_by_range_are_numbers_or_dates() -> None:
    # A range on a keyword compares strings: every field Elastic's KQL rules compare with
    # < <= > >= is typed, but for a dynamic o365 parameter (a keyword in Elasticsearch too).
    root = os.environ.get("IMDS_SCAN_ELASTIC_RULES")
    if not root:
        pytest.skip("IMDS_SCAN_ELASTIC_RULES is not set")
    import tomllib

    mapping = load_mapping(None)
    ranged: dict[str, str] = {}
    for path in Path(root).rglob("*.toml"):
        if "_deprecated" in path.parts:
            continue
        rule = tomllib.loads(path.read_text(encoding="utf-8")).get("rule", {})
        if rule.get("language") != "kuery":
            continue
        query = re.sub(r'"(?:[^"\\]|\\.)*"', '""', rule.get("query", ""))
        for found in re.finditer(r"([A-Za-z_@][\w.@-]*)\s*(?:<=|>=|<|>)", query):
            ranged[found.group(1)] = mapping.resolve(found.group(1)).type
    assert len(ranged) >= 10
    keywords = {f for f, t in ranged.items() if t == "keyword"}
    assert keywords <= {"o365.audit.Parameters.WithinSizeRangeMinimum"}, keywords
