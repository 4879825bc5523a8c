"""The Python package's structure: no import cycles, reporting apart from the reference
engine, one statistics shape for every engine."""

from __future__ import annotations

import ast
import json
import re
from dataclasses import asdict
from pathlib import Path

import pytest

from imds_scan import default_rules
from imds_scan.stats import STATS_FIELDS, FileStats, add_stats

PACKAGE = Path(__file__).resolve().parent.parent / "python" / "imds_scan"


def import_graph(root: Path, package: str = "imds_scan") -> dict[str, set[str]]:
    """Module → the package's modules it imports, wherever the import is: at the top, inside
    a function (a late import still ties the two) or under ``if TYPE_CHECKING:`` (types tie
    them too). ``from . import x`` is an edge to module ``x`` when it is one."""
    modules: dict[str, tuple[Path, bool]] = {}
    for path in root.rglob("*.py"):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        edges: set[str] = set()
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    here = name.split(".")
                    keep = len(here) - node.level + is_package
                    base = ".".join(here[:keep] + ([node.module] if node.module else []))
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in modules else base)
            edges.update(t for t in targets if t in modules and t != name)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (its modules, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module)):
            return found
    return None


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in graph[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_no_import_cycles() -> None:
    cycle = find_cycle(import_graph(PACKAGE))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_cycle_check_sees_late_and_typing_imports(tmp_path: Path) -> None:
    """A cycle closed by an import inside a function (scan ↔ cluster, once) or under
    TYPE_CHECKING (results ↔ report.frame, once) is one."""
    (tmp_path / "__init__.py").write_text("")
    (tmp_path / "a.py").write_text("from .b import run\n")
    (tmp_path / "b.py").write_text("def run():\n    from . import a\n")
    (tmp_path / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import run\n"
    )
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.c"] == {"pkg.a"}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.a"]
    (tmp_path / "b.py").write_text("def run():\n    pass\n")
    assert find_cycle(import_graph(tmp_path, "pkg")) is None
    (tmp_path / "b.py").write_text((tmp_path / "c.py").read_text())
    assert find_cycle(import_graph(tmp_path, "pkg")) == ["pkg.a", "pkg.b", "pkg.a"]


# What the reference engine is, beyond the event model and input reading it shares.
ENGINE = {"imds_scan.reference.eval", "imds_scan.reference.scan.engine"}


@pytest.mark.parametrize(
    "module",
    [
        "imds_scan.output",
        "imds_scan.filters",
        "imds_scan.shape",
        *sorted(f"imds_scan.report.{p.stem}" for p in (PACKAGE / "report").glob("[!_]*.py")),
    ],
)
def test_reporting_and_filters_never_load_the_reference_engine(module: str) -> None:
    """They read events through imds_scan.reference.event (and shape reads inputs through
    reference.scan.source and reference.scan.lines), never through the evaluator or its scan."""
    loaded = reachable(import_graph(PACKAGE), module)
    assert not loaded & ENGINE, f"{module} imports {sorted(loaded & ENGINE)}"


def test_one_statistics_shape_for_every_engine(tmp_path: Path) -> None:
    """The binding's per-input dict has exactly FileStats's fields, in its order (the adapter
    converts it field by field), and so does the reference engine's."""
    from imds_scan import _engine
    from imds_scan.reference.scan.engine import scan_inputs

    path = tmp_path / "f.ndjson"
    path.write_text('{"a": 1}\nnot json\n')
    rules = default_rules()
    _, rust, _ = _engine.Scanner([json.dumps(r.ir) for r in rules]).scan([str(path)])
    _, python, _ = scan_inputs([str(path)], [r.ir for r in rules])
    assert tuple(rust[0]) == STATS_FIELDS
    assert tuple(asdict(python[0])) == STATS_FIELDS
    declared = getattr(_engine, "STATS_FIELDS", None)  # once the binding declares its keys
    assert declared is None or tuple(declared) == STATS_FIELDS


def test_add_stats_adds_every_field() -> None:
    """The cluster's merge of byte ranges has a rule for every FileStats field."""
    total = FileStats(error=None, compression="gzip", allowlisted={(0, 1): 2})
    part = asdict(FileStats(error="damaged", compression="zstd", allowlisted={(0, 1): 3}))
    part.update({name: 1 for name, value in part.items() if isinstance(value, int)})
    add_stats(total, part)
    add_stats(total, part)
    assert total.bytes == total.events == total.source_bytes == total.lines == 2
    assert (total.error, total.compression) == ("damaged", "gzip")
    assert total.allowlisted == {(0, 1): 8}
    assert total.malformed_examples == []


def test_add_stats_makes_a_pieces_lines_the_inputs() -> None:
    """A byte range's malformed examples and error line count from its first line: the lines
    of the ranges before it are added (the error's text says the same line); the first error
    is kept, all its fields together; with the offset unknown, examples and line are dropped."""
    total = FileStats()
    first = asdict(FileStats(lines=10, malformed_examples=[(2, "bad")]))
    failed = asdict(
        FileStats(
            lines=3,
            malformed_examples=[(1, "worse")],
            error="read error at byte 500 (line 3): OSError: gone",
            error_kind="read",
            error_offset=500,
            error_line=3,
        )
    )
    add_stats(total, first, 0)
    add_stats(total, failed, 10)
    add_stats(total, {**failed, "error": "other", "error_kind": "open"}, 13)
    assert total.malformed_examples == [(2, "bad"), (11, "worse"), (14, "worse")]
    assert (total.error_kind, total.error_offset, total.error_line) == ("read", 500, 13)
    assert total.error == "read error at byte 500 (line 13): OSError: gone"
    assert total.lines == 16
    lost = FileStats()
    add_stats(lost, failed, None)
    assert (lost.error_line, lost.malformed_examples) == (None, [])
    assert lost.error == "read error at byte 500: OSError: gone"


@pytest.mark.parametrize("name", ["event", "eval", "ip", "wildcard", "endpoint"])
def test_reference_semantics_mirror_the_rust_core(name: str) -> None:
    """Each semantics module of the Rust core has its Python twin, under the same name."""
    rust = PACKAGE.parent.parent / "crates" / "imds-core" / "src" / f"{name}.rs"
    assert rust.is_file() and (PACKAGE / "reference" / f"{name}.py").is_file()


CORE = Path(__file__).resolve().parent.parent / "crates" / "imds-core" / "src"


def _rust_module(path: Path) -> tuple[str, ...]:
    parts = path.relative_to(CORE).with_suffix("").parts
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return parts


def _rust_paths(code: str) -> list[list[str]]:
    """The paths `crate::…`, `super::…` and `self::…` in code, braces expanded one level."""
    found = []
    for m in re.finditer(
        r"\b(crate|super|self)((?:::(?:super|[a-z_][a-z0-9_]*))*)::(\{[^}]*\}|\w+)", code
    ):
        head = [m.group(1), *[p for p in m.group(2).split("::") if p]]
        tail = m.group(3)
        if tail.startswith("{"):
            found += [[*head, item.strip().split("::")[0]] for item in tail[1:-1].split(",")]
        else:
            found.append([*head, tail])
    return found


def rust_sibling_graphs() -> dict[tuple[str, ...], dict[str, set[str]]]:
    """For each module with child modules, its children and which sibling each one uses
    (outside `#[cfg(test)]` modules and comments)."""
    modules = {_rust_module(p): p for p in CORE.rglob("*.rs")}
    graphs: dict[tuple[str, ...], dict[str, set[str]]] = {}
    for module in modules:
        if module:
            graphs.setdefault(module[:-1], {}).setdefault(module[-1], set())
    for module, path in modules.items():
        text = path.read_text()
        text = re.split(r"#\[cfg\(test\)\]\s*mod \w+ \{", text)[0]
        code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))
        for parts in _rust_paths(code):
            base: tuple[str, ...] = module
            if parts[0] == "crate":
                base, parts = (), parts[1:]
            elif parts[0] == "self":
                parts = parts[1:]
            while parts and parts[0] == "super":
                base, parts = base[:-1], parts[1:]
            target = (*base, *parts)
            # Below their common ancestor, the child holding `module` uses the one holding
            # the target (a use of an ancestor's own items, or of a descendant, is no edge).
            d = 0
            while d < min(len(module), len(target)) and module[d] == target[d]:
                d += 1
            if d < len(module) and d < len(target) and target[d] in graphs.get(module[:d], {}):
                graphs[module[:d]][module[d]].add(target[d])
    return graphs


def test_rust_core_modules_have_no_cycles() -> None:
    graphs = rust_sibling_graphs()
    assert {"prefilter", "scan", "eval", "endpoint"} <= set(graphs[()]), graphs[()]
    assert graphs[()]["prefilter"] >= {"ir", "endpoint"}  # the check sees uses
    for parent, graph in graphs.items():
        cycle = find_cycle(graph)
        assert cycle is None, f"module cycle in crate::{'::'.join(parent)}: {' -> '.join(cycle)}"


def test_rust_cycle_check_sees_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert _rust_paths("use crate::{ir::Op, eval::X};\nuse super::super::scan::Y;") == [
        ["crate", "ir"],
        ["crate", "eval"],
        ["super", "super", "scan", "Y"],
    ]


def test_operator_groups_are_the_schemas_ops_named_once() -> None:
    """The affix and text-only operator groups are defined in ir_schema only, from the
    schema's op names; the EQL compiler, the config checks and the reference engine use them."""
    from imds_scan import config, eql, ir_schema
    from imds_scan.reference import eval as reference_eval

    ops = set(ir_schema.ops())
    assert ir_schema.AFFIX_OPS < ir_schema.TEXT_OPS < ops
    assert {op.removesuffix("_ci") for op in ir_schema.AFFIX_OPS} == set(
        reference_eval._AFFIX_TESTS
    )
    assert eql.TEXT_OPS is ir_schema.TEXT_OPS and config.AFFIX_OPS is ir_schema.AFFIX_OPS
    assert reference_eval.TEXT_OPS is ir_schema.TEXT_OPS
    for path in PACKAGE.rglob("*.py"):
        if path.name != "ir_schema.py":
            assert "_OPS = frozenset(" not in path.read_text(encoding="utf-8"), path


def test_range_size_default_is_defined_once() -> None:
    """The cluster's default range size is the only one: the cluster, ScanConfig and the
    CLI's --range-size take theirs from it (in engines, which a local scan imports anyway;
    the cluster module it does not)."""
    import inspect

    from imds_scan import cli, cluster, engines, run

    assert run.ScanConfig().range_size == engines.DEFAULT_RANGE_SIZE
    parameter = inspect.signature(cluster.run_cluster).parameters["range_size"]
    assert parameter.default == engines.DEFAULT_RANGE_SIZE
    option = inspect.signature(cli.scan_command).parameters["range_size"].default
    assert cli.parse_size(option) == engines.DEFAULT_RANGE_SIZE
    source = (PACKAGE / "run.py").read_text(encoding="utf-8")
    assert "range_size: int = DEFAULT_RANGE_SIZE" in source
