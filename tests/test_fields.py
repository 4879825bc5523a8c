"""Field types: the shipped ECS table (what spec/ecs/generate_types.py makes of the field
definitions), read lazily; the user's overrides from the config and the command line, checked
and passed to the compiler (and into the rule cache's key)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
import typer

from imds_scan import fields
from imds_scan.cli import app
from imds_scan.config import ConfigError, parse_config
from imds_scan.rules import load_rules, parse_rule_text
from imds_scan.rules.cache import RuleCache

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "python" / "imds_scan" / "data" / "ecs_types.json"
SCHEMA = ROOT / "spec" / "ir.schema.json"
COMMAND = typer.main.get_command(app)


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "generate_types", ROOT / "spec/ecs/generate_types.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- the table


@pytest.mark.parametrize(
    ("field", "ftype"),
    [
        ("process.pid", "long"),
        ("process.parent.pid", "long"),
        ("destination.port", "long"),
        ("source.port", "long"),
        ("event.duration", "long"),
        ("file.size", "long"),
        ("@timestamp", "date"),
        ("event.created", "date"),
        ("process.start", "date"),
        ("source.ip", "ip"),
        ("destination.ip", "ip"),
        ("dns.resolved_ip", "ip"),
        ("host.cpu.usage", "scaled_float"),
        ("process.interactive", "boolean"),
        ("process.code_signature.trusted", "boolean"),
        ("event.risk_score", "float"),
        ("gen_ai.request.temperature", "double"),
        ("gen_ai.usage.input_tokens", "integer"),
        # Elastic Defend's own fields (endpoint-package)
        ("process.Ext.relative_file_creation_time", "double"),
        ("dll.Ext.relative_file_name_modify_time", "double"),
        ("file.Ext.entropy", "double"),
        ("process.Ext.token.integrity_level", "long"),
        ("process.parent.Ext.real.pid", "long"),
        ("process.Ext.api.parameters.size", "unsigned_long"),
        ("Endpoint.metrics.cpu.endpoint.mean", "half_float"),
        # keywords, by mapping or by default
        ("process.name", "keyword"),
        ("process.command_line", "keyword"),  # wildcard
        ("process.command_line.text", "keyword"),  # match_only_text multi-field
        ("message", "keyword"),  # match_only_text
        ("data_stream.type", "keyword"),  # constant_keyword
        ("labels.anything", "keyword"),  # object of keywords
        ("destination.address", "keyword"),
        ("source.geo.location", "keyword"),  # geo_point: not modelled
        ("myapp.latency", "keyword"),  # not in ECS
    ],
)
def test_known_fields_have_their_ecs_type(field: str, ftype: str) -> None:
    assert fields.field_type(field) == ftype


def test_the_table_names_its_sources_and_holds_only_schema_types() -> None:
    doc = json.loads(DATA.read_text(encoding="utf-8"))
    assert doc["ecs_version"] == "9.4.0"
    assert doc["endpoint_package_version"] == "9.5.0"
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    enum = schema["$defs"]["pred"]["properties"]["field_type"]["enum"]
    # EQL compares text and wildcard mappings as keywords; those IR types are KQL's.
    assert list(fields.FIELD_TYPES) == [t for t in enum if t not in ("text", "wildcard")]
    assert set(doc["types"]) <= set(fields.FIELD_TYPES) - {"keyword"}
    names = [n for ns in doc["types"].values() for n in ns]
    assert len(names) == len(set(names))  # one type per field
    for ns in doc["types"].values():
        assert ns == sorted(ns)
    # the file is exactly what the generator writes for that content (its format)
    assert generator().dumps(doc) == DATA.read_text(encoding="utf-8")
    # the old list of ip fields is still ip
    assert {"client.ip", "host.ip", "related.ip", "threat.indicator.ip"} <= fields.IP_FIELDS


def test_the_table_is_read_on_first_lookup_not_at_import() -> None:
    code = (
        "import imds_scan.fields as f, imds_scan.eql, imds_scan.config, imds_scan.cli\n"
        "assert f._table.cache_info().currsize == 0, 'read at import'\n"
        "assert f.field_type('process.pid') == 'long'\n"
        "assert f._table.cache_info().currsize == 1\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------- the generator

# Hand-written in the two files' shapes (not copied from them).
ECS_SAMPLE = """\
'@timestamp':
  dashed_name: timestamp
  description: 'When it happened.

    Required: field for all events.'
  flat_name: '@timestamp'
  type: date
a.count:
  description: A count,
    over two lines
  flat_name: a.count
  type: long
a.cmd:
  flat_name: a.cmd
  multi_fields:
  - flat_name: a.cmd.text
    name: text
    type: match_only_text
  normalize: []
  type: wildcard
a.loc:
  flat_name: a.loc
  type: geo_point
a.ratio:
  flat_name: a.ratio
  scaling_factor: 1000
  type: scaled_float
"""

ENDPOINT_SAMPLE = """\
- name: a
  type: group
  fields:
    - name: count
      type: long
    - name: Ext
      type: group
      fields:
        - name: entropy
          type: double
          description: "type: keyword (not a key)"
        - name: flag
          type: boolean
- name: b.name
  type: keyword
"""


def test_the_generator_maps_types_and_reads_both_shapes() -> None:
    gen = generator()
    table = gen.build(ECS_SAMPLE, [("s", ENDPOINT_SAMPLE)], "1.2.3", "4.5.6")
    assert table["types"] == {
        "boolean": ["a.Ext.flag"],
        "date": ["@timestamp"],
        "double": ["a.Ext.entropy"],
        "long": ["a.count"],
        "scaled_float": ["a.ratio"],
    }
    assert table["ecs_version"] == "1.2.3"


def test_the_generator_stops_on_an_unknown_type_or_a_conflict() -> None:
    gen = generator()
    with pytest.raises(SystemExit, match="unknown Elasticsearch type 'date_nanos'"):
        gen.build("x.y:\n  type: date_nanos\n", [], "1", None)
    with pytest.raises(SystemExit, match=r"a\.count: double, but ECS says long"):
        gen.build(ECS_SAMPLE, [("s", "- name: a.count\n  type: double\n")], "1", "2")


# ---------------------------------------------------------------- overrides


def test_overrides_win_and_unknown_types_are_refused() -> None:
    assert fields.field_type("process.pid", {"process.pid": "keyword"}) == "keyword"
    assert fields.field_type("process.pid", {"process.pid": "wildcard"}) == "keyword"
    assert fields.field_type("myapp.n", {"myapp.n": "unsigned_long"}) == "unsigned_long"
    assert fields.field_type("process.pid", {"other": "date"}) == "long"
    assert fields.parse_assignments(["a.b=long", "c=date", "a.b=ip"], "--field-type") == {
        "a.b": "ip",
        "c": "date",
    }
    with pytest.raises(ValueError, match=r"--field-type: a\.b: unknown field type 'lng'"):
        fields.parse_assignments(["a.b=lng"], "--field-type")
    for bad in ("a.b", "=long", "a.b="):
        with pytest.raises(ValueError, match="expected FIELD=TYPE"):
            fields.parse_assignments([bad], "--field-type")
    with pytest.raises(ValueError, match="is not a field name"):
        fields.check_overrides({"a..b": "long"}, "field-types")


def test_config_table_and_flag_give_the_same_overrides() -> None:
    table = parse_config(
        '[field-types]\n"myapp.n" = "long"\nmyapp.seen = "date"\n', "c.toml", COMMAND
    )
    listed = parse_config('field-type = ["myapp.n=long", "myapp.seen=date"]\n', "c.toml", COMMAND)
    assert (
        table.default_map
        == listed.default_map
        == {"field_type": ["myapp.n=long", "myapp.seen=date"]}
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[field-types]\n"a.b" = "lng"\n', "c.toml: field-types: a.b: unknown field type 'lng'"),
        ('[field-types]\n"a.b" = 3\n', "c.toml: field-types: a.b: expected a type name"),
        ("field-types = 3\n", "c.toml: field-types: expected a table of field = type"),
        ('field-type = ["a.b"]\n', "c.toml: field-type: 'a.b': expected FIELD=TYPE"),
        ('field-type = ["a.b=x"]\n', "c.toml: field-type: a.b: unknown field type 'x'"),
        (
            'field-type = ["a=long"]\n[field-types]\n"b" = "long"\n',
            "c.toml: field-types: already set as 'field-type'",
        ),
    ],
)
def test_config_errors_name_the_key_and_field(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "c.toml", COMMAND)
    assert str(info.value).startswith(message), str(info.value)


RULE = """\
[rule]
name = "typed"
rule_id = "typed-1"
severity = "low"
language = "eql"
type = "eql"
query = 'any where myapp.n == 5 and process.pid == 7'
"""


def _types(ir: dict[str, object]) -> dict[str, str]:
    branch = ir["branches"][0]  # type: ignore[index]
    return {p["field"]: p["field_type"] for p in branch["expr"]["args"]}


def test_overrides_reach_the_compiler_and_the_cache_key(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text(RULE, encoding="utf-8")
    assert _types(parse_rule_text(RULE, "r.toml").ir) == {
        "myapp.n": "keyword",
        "process.pid": "long",
    }
    store = tmp_path / "cache"
    plain = RuleCache(str(store))
    # through the cache: first without overrides, then with them (not the cached entry)
    for expected, overrides in (
        ({"myapp.n": "keyword", "process.pid": "long"}, None),
        (
            {"myapp.n": "long", "process.pid": "keyword"},
            {"myapp.n": "long", "process.pid": "keyword"},
        ),
        ({"myapp.n": "keyword", "process.pid": "long"}, None),
    ):
        from imds_scan.rules import load_rule_file

        rule = load_rule_file(path, cache=plain, field_types=overrides)
        assert _types(rule.ir) == expected
    assert len(list(store.glob("*.json"))) == 2
    rules, _ = load_rules([str(path)], cache=False, field_types={"myapp.n": "date"})
    assert _types(rules[0].ir)["myapp.n"] == "date"


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imds_scan", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_flag_and_config_merge_the_flag_winning(tmp_path: Path) -> None:
    import imds_scan.eql as eql

    rule = tmp_path / "r.toml"
    rule.write_text(RULE, encoding="utf-8")
    config = tmp_path / "c.toml"
    config.write_text('[field-types]\n"myapp.n" = "date"\n"process.pid" = "keyword"\n')
    # --show-rule prints the EQL; the types are checked through the loader the CLI calls
    proc = _cli("--config", config, "--rule", rule, "--show-rule", "--field-type", "myapp.n=long")
    assert proc.returncode == 0, proc.stderr
    assert "myapp.n == 5" in proc.stdout
    bad = _cli("--no-config", "--rule", rule, "--show-rule", "--field-type", "myapp.n=lng")
    assert bad.returncode == 2
    assert "--field-type" in bad.stderr and "unknown field type 'lng'" in bad.stderr
    assert "Traceback" not in bad.stderr
    # the merge itself
    from imds_scan.cli import _field_types

    ctx = SimpleNamespace(
        meta={"imds_scan.config": parse_config(config.read_text(), "c.toml", COMMAND)},
        get_parameter_source=lambda name: SimpleNamespace(name="COMMANDLINE"),
    )
    merged = _field_types(ctx, ["myapp.n=long"])  # type: ignore[arg-type]
    assert merged == {"myapp.n": "long", "process.pid": "keyword"}
    assert (
        eql.compile_rule("any where myapp.n == 5", name="n", field_types=merged)["branches"][0][
            "expr"
        ]["field_type"]
        == "long"
    )


# ---------------------------------------------------------------- spec/vectors/typed.jsonl

TYPED = ROOT / "spec" / "vectors" / "typed.jsonl"


def test_typed_vectors_are_valid_and_cover_every_type() -> None:
    """The replay itself is in tests/test_vectors.py and crates/imds-core/tests/vectors.rs;
    here: the file's shape, every rule valid by the schema, every type and op covered."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))
    vectors = [json.loads(line) for line in TYPED.read_text(encoding="utf-8").splitlines() if line]
    names = [v["name"] for v in vectors]
    assert len(names) == len(set(names))
    decided: set[tuple[str, str]] = set()
    for vector in vectors:
        pred = vector["pred"]
        ir = {
            "ir_version": 1,
            "id": "vector",
            "name": "vector",
            "severity": "low",
            "branches": [{"name": "b", "expr": {"node": "pred", **pred}}],
        }
        validator.validate(ir)
        if isinstance(vector["event"], str):
            assert isinstance(json.loads(vector["event"]), dict)
        for hit in vector["hits"]:
            assert hit["witness"]["op"] == pred["op"]
            assert hit["witness"]["pattern"] in (pred["values"] or [""])
            decided.add((pred["field_type"], pred["op"]))
    assert {t for t, _ in decided} == set(fields.FIELD_TYPES)
    assert {op for _, op in decided} == {"eq", "lt", "lte", "gt", "gte", "exists"}


def _allow_types(node: dict[str, object]) -> list[str]:
    if node["node"] == "pred":
        return [str(node["field_type"])]
    children = node.get("args") or [node.get("arg")]
    return [t for child in children for t in _allow_types(child)]  # type: ignore[arg-type]


def test_overrides_reach_allowlist_conditions() -> None:
    from imds_scan.config import condition_allowlist

    text = (
        '[field-types]\n"myapp.n" = "long"\n'
        "[allowlist]\nconditions = ['myapp.n == 5 and myapp.m == 6']\n"
    )
    config = parse_config(text, "c.toml", COMMAND)
    assert _allow_types(config.allowlist.entries[0].node) == ["long", "keyword"]
    assert config.allowlist_table == {"conditions": ["myapp.n == 5 and myapp.m == 6"]}
    allowed = condition_allowlist(["myapp.m == 6"], field_types={"myapp.m": "date"})
    assert _allow_types(allowed.entries[0].node) == ["date"]


def test_cli_flag_retypes_the_config_allowlist(tmp_path: Path) -> None:
    """--field-type reaches the config's allowlist conditions (compiled again) and --allow."""
    rule = tmp_path / "r.toml"
    rule.write_text(RULE, encoding="utf-8")
    config = tmp_path / "c.toml"
    config.write_text("[allowlist]\nconditions = ['myapp.m == 6']\n", encoding="utf-8")
    code = (
        "import sys, typer\n"
        "from imds_scan.cli import _load_rules, app\n"
        "from imds_scan.config import load_config\n"
        "cmd = typer.main.get_command(app)\n"
        "ctx = cmd.make_context('imds-scan', ['--no-config'])\n"
        f"ctx.meta['imds_scan.config'] = load_config({str(config)!r}, cmd, ctx)\n"
        f"rules = _load_rules(ctx, [{str(rule)!r}], ['myapp.k == 1'], False, cache=False,\n"
        "    field_types={'myapp.m': 'long', 'myapp.k': 'date'})\n"
        "print([n['field_type'] for n in rules[0].ir['allowlist']])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['long', 'date']"


def test_node_fields_reads_preds_and_expressions() -> None:
    from imds_scan.eql import parse_query

    node = parse_query(
        "process where length(process.name) > 3 and not process.pid + 1 < process.parent.pid"
        ' or host.name == "x"'
    )
    assert fields.node_fields(node) == {
        "event.category",
        "process.name",
        "process.pid",
        "process.parent.pid",
        "host.name",
    }


@pytest.mark.parametrize("engine", ["rust", "python"])
def test_a_rule_of_expressions_scans_an_input_without_hits(tmp_path: Path, engine: str) -> None:
    # The end-of-scan check of inputs that do not look like ECS walked only preds and
    # failed on an expr node (KeyError: 'args') after the whole scan.
    rule = tmp_path / "r.toml"
    rule.write_text(
        '[rule]\nname = "long names"\nrule_id = "r1"\nseverity = "low"\nlanguage = "eql"\n'
        "query = '''process where length(process.name) > 3'''\n"
    )
    logs = tmp_path / "a.ndjson"
    logs.write_text('{"a": 1}\n')
    proc = subprocess.run(
        [sys.executable, "-m", "imds_scan", str(logs), "--rule", str(rule), "--engine", engine],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "does not look like ECS" in proc.stderr and "process.name" in proc.stderr
