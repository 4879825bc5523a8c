"""docs/architecture.md's "Adding an operator" list is complete and short: each listed file
names every op of the IR, and every source file that names every op is listed."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = ROOT / "docs" / "architecture.md"
HEADING = "### Adding an operator"
SCHEMA = ROOT / "spec" / "ir.schema.json"
IR_RS = ROOT / "crates" / "imds-core" / "src" / "ir.rs"
# Files that can name ops: code, specs, docs, vectors and test data.
SUFFIXES = {".rs", ".py", ".pyi", ".md", ".json", ".jsonl", ".toml"}
# Build output, caches and virtual environments hold copies, not sources.
SKIP_DIRS = {"target", "node_modules", "__pycache__", "venv"}


def listed_paths() -> list[str]:
    """The backticked path of each bullet under the heading, up to the next heading."""
    lines = ARCHITECTURE.read_text(encoding="utf-8").splitlines()
    assert HEADING in lines, f"docs/architecture.md has no {HEADING!r} section"
    paths = []
    for line in lines[lines.index(HEADING) + 1 :]:
        if line.startswith("#"):
            break
        bullet = re.match(r"- `([^`]+)`", line)
        if bullet:
            paths.append(bullet.group(1))
    return paths


def _resolve(ref: str, schema: Any) -> Any:
    node = schema
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _values(node: Any, schema: Any, out: set[str], seen: set[str]) -> None:
    """The strings an `op` property's schema allows (enum, const, through $ref and *Of)."""
    if not isinstance(node, dict):
        return
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/") and ref not in seen:
        seen.add(ref)
        _values(_resolve(ref, schema), schema, out, seen)
    out.update(v for v in node.get("enum", ()) if isinstance(v, str))
    if isinstance(node.get("const"), str):
        out.add(node["const"])
    for key in ("oneOf", "anyOf", "allOf"):
        for sub in node.get(key, ()):
            _values(sub, schema, out, seen)


def schema_ops(schema: Any) -> set[str]:
    ops: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            props = node.get("properties")
            if isinstance(props, dict) and "op" in props:
                _values(props["op"], schema, ops, set())
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return ops


def rust_ops(text: str) -> set[str]:
    """The variants of `enum Op`, as serde's snake_case names them."""
    body = re.search(r"enum Op \{\n(.*?)\n\}", text, re.S)
    assert body, "no `pub enum Op` in ir.rs"
    variants = re.findall(r"^\s*([A-Z]\w*)\s*,", body.group(1), re.M)
    return {re.sub(r"(?<!^)(?=[A-Z])", "_", v).lower() for v in variants}


def op_names() -> set[str]:
    if SCHEMA.exists():
        ops = schema_ops(json.loads(SCHEMA.read_text(encoding="utf-8")))
    else:
        ops = rust_ops(IR_RS.read_text(encoding="utf-8"))
    assert len(ops) >= 10, f"too few ops found: {sorted(ops)}"
    return ops


def op_pattern(op: str) -> re.Pattern[str]:
    """An op named as in the IR (`eq_ci`) or as a Rust variant (`EqCi`), as a whole word."""
    camel = "".join(part.title() for part in op.split("_"))
    return re.compile(rf"\b(?:{re.escape(op)}|{camel})\b")


def missing_ops(texts: list[str], ops: set[str]) -> list[str]:
    return sorted(op for op in ops if not any(op_pattern(op).search(t) for t in texts))


def source_files() -> list[Path]:
    out = []
    for top, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith(".")]
        out.extend(Path(top, f) for f in files if Path(f).suffix in SUFFIXES)
    return out


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def test_op_names_come_from_the_ir() -> None:
    ops = rust_ops(IR_RS.read_text(encoding="utf-8"))
    assert {"eq", "eq_ci", "starts_with_ci", "cidr", "imds_endpoint"} <= ops
    # The schema, once there, is read instead: it must give the same names.
    assert op_names() == ops
    assert op_pattern("eq_ci").search("Op::EqCi =>") and op_pattern("eq_ci").search('"eq_ci"')
    assert not op_pattern("eq").search("eq_ci assert_eq PartialEq")


def test_schema_ops_read_enums_consts_and_refs() -> None:
    schema = {
        "$defs": {"Op": {"enum": ["eq", "like"]}},
        "oneOf": [
            {"properties": {"op": {"$ref": "#/$defs/Op"}}},
            {"properties": {"op": {"const": "cidr"}, "field": {"enum": ["not-an-op"]}}},
        ],
    }
    assert schema_ops(schema) == {"eq", "like", "cidr"}


def test_every_listed_file_exists_and_names_every_op() -> None:
    ops = op_names()
    paths = listed_paths()
    assert paths, f"no files listed under {HEADING!r}"
    assert len(paths) == len(set(paths)), f"a file is listed twice: {paths}"
    problems = []
    for entry in paths:
        matched = sorted(ROOT.glob(entry))
        if not matched:
            problems.append(f"{entry}: no such file")
            continue
        # A glob (the shared vectors) names every op across its files.
        missing = missing_ops([read(p) for p in matched], ops)
        if missing:
            problems.append(f"{entry}: does not name {', '.join(missing)}")
    assert not problems, "docs/architecture.md, " + HEADING + ":\n" + "\n".join(problems)


def test_every_file_naming_every_op_is_listed() -> None:
    ops = op_names()
    listed = {p.resolve() for entry in listed_paths() for p in ROOT.glob(entry)}
    unlisted = sorted(
        str(path.relative_to(ROOT))
        for path in source_files()
        if path != ARCHITECTURE
        and path.resolve() not in listed
        and not missing_ops([read(path)], ops)
    )
    assert not unlisted, (
        f"these files name every op but are not in docs/architecture.md, {HEADING}: "
        + ", ".join(unlisted)
    )
