#!/usr/bin/env python3
"""The seed rule written the way a user of another tool would write it, one run per process.

    python3 bench/peers.py KIND PATH... [--procs N] [--threads N]

KIND is ``duckdb``, ``polars``, ``polars-full-schema``, ``hyperscan``, ``api`` (imds-scan's
Rust engine through the Python API) or ``load`` (imds-scan's rule loading alone, PATH being rule
files or directories). Prints one JSON object on stdout: ``hits``, ``work_s``
(the time of the scan itself, measured inside the process), ``setup_s`` (interpreter start-up
to the first scanned byte: imports, connection), and ``notes``. bench/harness.py runs these
interleaved and measures wall time and peak RSS from outside.

Each peer reads only the fields the rule reads: event.category, event.type, destination.ip,
destination.address, url.domain, process.name, process.args, process.command_line, nested
(``{"process":{"name":…}}``) or as a top-level dotted key (``{"process.name":…}``).
"""

from __future__ import annotations

import json
import mmap
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from corpus.seed_rule import SeedRule, engine_rule  # bench/ is on sys.path

_T0 = time.perf_counter()
REPO = Path(__file__).resolve().parent.parent


def ip_spellings(v4: str) -> tuple[str, ...]:
    """SQL and Polars cannot compare ip-typed fields as 16-byte addresses: these are the
    spellings of an IPv4 address a careful user would list (lower case, %scope stripped)."""
    a, b, c, d = (int(x) for x in v4.split("."))
    hexed = f"{a << 8 | b:x}:{c << 8 | d:x}"
    return (
        v4,
        f"::ffff:{v4}",
        f"::ffff:{hexed}",
        f"0:0:0:0:0:ffff:{hexed}",
        f"0:0:0:0:0:ffff:{v4}",
        f"::0:ffff:{hexed}",
        f"0::ffff:{hexed}",
    )


def net_alternatives(rule: SeedRule) -> list[tuple[str, tuple[str, ...]]]:
    """The network branch's alternatives as (field, values equal to one of): the ip field's
    value as its spellings, the keyword fields' values as they are."""
    out = []
    for field, op, value in rule.alternatives("network"):
        assert op == "eq", (field, op)
        out.append((field, ip_spellings(value) if field == "destination.ip" else (value,)))
    return out


def _sql_list(items: tuple[str, ...], fold: bool = False) -> str:
    return "[" + ", ".join("'" + (s.lower() if fold else s) + "'" for s in items) + "]"


# ----------------------------------------------------------------------------- DuckDB

DUCKDB_COLUMNS = {
    "event": "STRUCT(category JSON, type JSON)",
    "event.category": "JSON",
    "event.type": "JSON",
    "destination": "STRUCT(ip JSON, address JSON)",
    "destination.ip": "JSON",
    "destination.address": "JSON",
    "url": "STRUCT(domain JSON)",
    "url.domain": "JSON",
    "process": "STRUCT(name JSON, args JSON, command_line JSON)",
    "process.name": "JSON",
    "process.args": "JSON",
    "process.command_line": "JSON",
}

# A field's values: scalar -> [text], array -> its non-null elements, null/object -> [].
DUCKDB_MACRO = """
CREATE OR REPLACE MACRO vals(j) AS CASE
    WHEN j IS NULL THEN []::VARCHAR[]
    WHEN json_type(j) = 'ARRAY'
        THEN list_filter(from_json(j, '["VARCHAR"]'), lambda x: x IS NOT NULL)
    WHEN json_type(j) IN ('OBJECT', 'NULL') THEN []::VARCHAR[]
    ELSE [json_extract_string(j, '$')]
END
"""


# The columns of the query below that hold a network alternative's field.
DUCKDB_NET_COLUMNS = {"destination.ip": "dip", "destination.address": "dadr", "url.domain": "dom"}


def duckdb_query(path: str, rule: SeedRule) -> str:
    cols = "{" + ", ".join(f"'{k}': '{v}'" for k, v in DUCKDB_COLUMNS.items()) + "}"
    net = "\n        OR ".join(
        f"list_contains({DUCKDB_NET_COLUMNS[field]}, '{values[0]}')"
        if len(values) == 1
        else f"list_has_any({DUCKDB_NET_COLUMNS[field]}, {_sql_list(values)})"
        for field, values in net_alternatives(rule)
    )
    args_like = " OR ".join(f"x ILIKE '%{s}%'" for s in rule.substrings("process.args"))
    cmd_like = " OR ".join(f"x ILIKE '%{s}%'" for s in rule.substrings("process.command_line"))
    net_excluded = _sql_list(rule.excluded("network"), fold=True)
    proc_excluded = _sql_list(rule.excluded("process"), fold=True)
    return f"""
WITH e AS (
  SELECT
    vals(event.category) || vals("event.category") AS cat,
    vals(event.type) || vals("event.type") AS typ,
    list_transform(vals(destination.ip) || vals("destination.ip"),
                   lambda x: lower(regexp_replace(x, '%.*$', ''))) AS dip,
    vals(destination.address) || vals("destination.address") AS dadr,
    vals(url.domain) || vals("url.domain") AS dom,
    list_transform(vals(process.name) || vals("process.name"), lambda x: lower(x)) AS pname,
    vals(process.args) || vals("process.args") AS args,
    vals(process.command_line) || vals("process.command_line") AS cmd
  FROM read_ndjson('{path}', columns = {cols}, ignore_errors = true)
)
SELECT count(*) FROM e WHERE
  (list_contains(cat, 'network')
   AND ({net})
   AND NOT list_has_any(pname, {net_excluded}))
  OR
  (list_contains(cat, 'process') AND list_contains(typ, 'start')
   AND (len(list_filter(args, lambda x: {args_like})) > 0
        OR len(list_filter(cmd, lambda x: {cmd_like})) > 0)
   AND NOT list_has_any(pname, {proc_excluded}))
"""


def run_duckdb(path: str, threads: int, rule: SeedRule) -> dict[str, Any]:
    import duckdb

    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {threads}")
    con.execute(DUCKDB_MACRO)
    query = duckdb_query(path, rule)
    t0 = time.perf_counter()
    row = con.execute(query).fetchone()
    work = time.perf_counter() - t0
    return {
        "hits": int(row[0]) if row else 0,
        "work_s": work,
        "version": duckdb.__version__,
        "notes": (
            "read_ndjson with explicit JSON-typed columns for the 8 fields (nested and top-level "
            "dotted); arrays via from_json; ip field compared against a fixed list of spellings "
            "(no 16-byte address type without the inet extension); ILIKE/lower() fold Unicode, "
            "not ASCII only; nested arrays are not flattened; rows whose declared columns have "
            "another JSON shape are dropped by ignore_errors"
        ),
    }


# ----------------------------------------------------------------------------- Polars


def _polars_rule(schema: Any, rule: SeedRule) -> tuple[Any, list[str]]:
    """The rule as one Polars expression over the inferred schema, and the fields it lacks."""
    import polars as pl

    missing: list[str] = []

    def leaf(path: str) -> list[tuple[Any, Any]]:
        """(expression, dtype) of each form of the field: nested and top-level dotted."""
        found: list[Any] = []
        head, _, tail = path.partition(".")
        if head in schema and isinstance(schema[head], pl.Struct):
            names = {f.name: f.dtype for f in schema[head].fields}
            if tail in names:
                found.append((pl.col(head).struct.field(tail), names[tail]))
        if not found:
            missing.append(f"{head}{{{tail}}}")
        if path in schema:
            found.append((pl.col(path), schema[path]))
        else:
            missing.append(f'"{path}"')
        return found

    def list_any(lst: Any, pred: Callable[[Any], Any]) -> Any:
        return lst.list.eval(pred(pl.element())).list.any().fill_null(False)

    def any_of(path: str, pred: Callable[[Any], Any]) -> Any:
        exprs = []
        for expr, dtype in leaf(path):
            if isinstance(dtype, pl.List):
                exprs.append(list_any(expr.cast(pl.List(pl.String)), pred))
            elif dtype == pl.String:
                # A column seen both as a string and as an array is inferred as String, the
                # arrays as their text. Polars renders that text without JSON escapes
                # (`C:\\x` becomes `C:\x`), so str.json_decode fails on it: take the quoted
                # items out of the array rows only. The predicates below cannot match the
                # array text itself across a `","` separator.
                arrays = pl.when(expr.str.starts_with("[")).then(expr)
                items = arrays.str.extract_all(r'"(?:[^"\\]|\\.)*"').list.eval(
                    pl.element().str.strip_chars('"')
                )
                exprs.append(pred(expr).fill_null(False) | list_any(items, pred))
            else:
                exprs.append(pred(expr.cast(pl.String)).fill_null(False))
        return pl.any_horizontal(exprs) if exprs else pl.lit(False)

    def ci_in(values: tuple[str, ...]) -> Callable[[Any], Any]:
        lowered = [v.lower() for v in values]
        return lambda x: x.str.to_lowercase().is_in(lowered)

    def contains_ci(subs: tuple[str, ...]) -> Callable[[Any], Any]:
        def pred(x: Any) -> Any:
            low = x.str.to_lowercase()
            return pl.any_horizontal([low.str.contains(s.lower(), literal=True) for s in subs])

        return pred

    def equal_to(field: str, values: tuple[str, ...]) -> Callable[[Any], Any]:
        if field == "destination.ip":
            return lambda x: x.str.replace(r"%.*$", "").str.to_lowercase().is_in(list(values))
        return lambda x: x == values[0] if len(values) == 1 else x.is_in(list(values))

    net = (
        any_of("event.category", lambda x: x == "network")
        & pl.any_horizontal(
            [any_of(field, equal_to(field, values)) for field, values in net_alternatives(rule)]
        )
        & ~any_of("process.name", ci_in(rule.excluded("network")))
    )
    proc = (
        any_of("event.category", lambda x: x == "process")
        & any_of("event.type", lambda x: x == "start")
        & (
            any_of("process.args", contains_ci(rule.substrings("process.args")))
            | any_of("process.command_line", contains_ci(rule.substrings("process.command_line")))
        )
        & ~any_of("process.name", ci_in(rule.excluded("process")))
    )
    return net | proc, list(dict.fromkeys(missing))


def run_polars(path: str, mode: str, rule: SeedRule) -> dict[str, Any]:
    """mode: ``default`` (infer from the first 100 lines, as shipped), ``overrides`` (the same
    plus String overrides for the top-level dotted rule fields it inferred, the fix a user
    makes after the SchemaError), ``full`` (infer from the whole file)."""
    import polars as pl

    t0 = time.perf_counter()
    if mode == "full":
        lf = pl.scan_ndjson(path, infer_schema_length=None)
    else:
        lf = pl.scan_ndjson(path)
        if mode == "overrides":
            inferred = lf.collect_schema()
            # The columns that fail: inferred List(String), but a bare string further down.
            fix = {f: pl.String for f in ("event.category", "event.type") if f in inferred}
            lf = pl.scan_ndjson(path, schema_overrides=fix)
    schema = lf.collect_schema()
    expr, missing = _polars_rule(schema, rule)
    how = {
        "default": "default schema inference (first 100 lines)",
        "overrides": "default schema inference (first 100 lines) + String overrides for the "
        "dotted event.category/event.type it inferred as lists",
        "full": "whole-file schema inference (reads the file twice)",
    }[mode]
    notes = (
        f"scan_ndjson, {how}; arrays and mixed string/array columns decoded per row; ip field "
        "compared against a fixed list of spellings; to_lowercase folds Unicode"
    )
    if missing:
        notes += "; forms absent from the inferred schema (never read): " + " ".join(missing)
    out: dict[str, Any] = {"version": pl.__version__}
    try:
        hits = lf.filter(expr).select(pl.len()).collect().item()
    except pl.exceptions.PolarsError as exc:
        out.update(hits=None, error=f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
    else:
        out["hits"] = int(hits)
    out.update(work_s=time.perf_counter() - t0, notes=notes)
    return out


# ----------------------------------------------------------------------------- hyperscan


def _load_reference() -> Any:
    try:
        from imds_scan.reference import eval as reference
    except ImportError:
        sys.path.insert(0, str(REPO / "python"))
        from imds_scan.reference import eval as reference
    return reference


def _hs_patterns(needles: tuple[str, ...]) -> list[bytes]:
    """Needles as regexes (`/` may be written `\\/`), plus the `\\u00XX` escape guard for every
    character that occurs in a needle (either case)."""
    import re

    pats = [re.escape(n).replace("/", r"\\?/").encode() for n in needles]
    chars = {c for n in needles for c in n} | {c.upper() for n in needles for c in n}
    codes = sorted({f"{ord(c):02x}" for c in chars})
    pats.append((r"\\u00(?:" + "|".join(codes) + ")").encode())
    return pats


_HS_STATE: tuple[Any, Any] = (None, None)


def _hs_setup(seed: SeedRule) -> None:
    """Compile the rule and the pattern database once, before any worker forks."""
    global _HS_STATE
    import hyperscan

    reference = _load_reference()
    rule = reference.CompiledRule(seed.ir)
    db = hyperscan.Database()
    pats = _hs_patterns(seed.needles)
    db.compile(
        expressions=pats,
        ids=list(range(len(pats))),
        elements=len(pats),
        flags=[hyperscan.HS_FLAG_CASELESS] * len(pats),
    )
    _HS_STATE = (rule, db)


def _hs_scan_range(args: tuple[str, int, int]) -> tuple[int, int]:
    """(candidate lines, hits) in the lines starting in [start, end) of the file."""
    import orjson

    path, start, end = args
    rule, db = _HS_STATE
    candidates = hits = 0
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        start, end = _line_start(m, start), _line_start(m, end)
        ends: list[int] = []
        # One scan over the whole (memory-mapped) range: no copy, no block edges.
        with memoryview(m) as view:
            db.scan(view[start:end], match_event_handler=_collect_ends, context=ends)
        seen = -1
        for to in ends:
            to += start
            if to <= seen:
                continue  # this line is already a candidate
            ls = m.rfind(b"\n", start, to) + 1 or start
            le = m.find(b"\n", to, end)
            seen = le = end if le < 0 else le
            candidates += 1
            try:
                doc = orjson.loads(m[ls:le])
            except orjson.JSONDecodeError:
                continue
            if isinstance(doc, dict) and rule.evaluate(doc) is not None:
                hits += 1
    return candidates, hits


def _collect_ends(_id: int, _from: int, to: int, _flags: int, ends: list[int]) -> None:
    ends.append(to)


def _line_start(m: mmap.mmap, off: int) -> int:
    """The first line start at or after byte `off`."""
    if off == 0 or off >= len(m):
        return min(off, len(m))
    nl = m.find(b"\n", off - 1)
    return len(m) if nl < 0 else nl + 1


def _hs_ranges(path: str, procs: int) -> list[tuple[str, int, int]]:
    size = os.path.getsize(path)
    cuts = [size * i // procs for i in range(procs)] + [size]
    return [(path, cuts[i], cuts[i + 1]) for i in range(procs)]


def run_hyperscan(path: str, procs: int, rule: SeedRule) -> dict[str, Any]:
    import hyperscan
    import orjson  # noqa: F401  (imported before the clock starts)

    _hs_setup(rule)
    t0 = time.perf_counter()
    ranges = _hs_ranges(path, procs)
    if procs == 1:
        parts = [_hs_scan_range(ranges[0])]
    else:
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(procs) as pool:
            parts = pool.map(_hs_scan_range, ranges)
    work = time.perf_counter() - t0
    return {
        "hits": sum(h for _, h in parts),
        "candidates": sum(c for c, _ in parts),
        "work_s": work,
        "version": getattr(hyperscan, "__version__", "?"),
        "notes": (
            f"{procs} process(es); hyperscan caseless multi-pattern scan of the whole "
            f"memory-mapped range ({len(rule.needles)} needles with `\\/` allowed, plus a "
            "`\\u00XX` escape guard), "
            "then orjson + "
            "imds_scan.reference rule evaluation on candidate lines only"
        ),
    }


# ----------------------------------------------------------------------------- imds-scan API


def run_api(paths: list[str], threads: int, pack: str | None = None) -> dict[str, Any]:
    from imds_scan import run_scan
    from imds_scan.rules import default_rules, load_rules, pack_path

    rules = load_rules(["default", pack_path(pack)])[0] if pack else default_rules()
    t0 = time.perf_counter()
    result = run_scan(paths, rules, engine="rust", threads=threads)
    work = time.perf_counter() - t0
    stats = result.stats
    return {
        "hits": len(result.hits),
        "events": stats.total("events"),
        "candidates": stats.total("candidates"),
        "work_s": work,
        "notes": "imds_scan.run_scan(engine='rust'); time of the call, imports excluded"
        + (f"; default rule + {pack} pack" if pack else ""),
    }


def run_load(paths: list[str]) -> dict[str, Any]:
    """Rule loading alone: imds_scan.rules.load_rules on rule files or directories (TOML
    parsing and EQL compilation; the imports before it are start-up)."""
    from imds_scan.rules import load_rules

    t0 = time.perf_counter()
    rules, skipped = load_rules(paths, skip_unsupported=True)
    work = time.perf_counter() - t0
    return {
        "hits": len(rules),
        "work_s": work,
        "notes": f"imds_scan.rules.load_rules: {len(rules)} rules loaded, {len(skipped)} skipped; "
        "'hits' is the number of rules loaded",
    }


def main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "kind",
        choices=[
            "duckdb",
            "polars-default",
            "polars",
            "polars-full-schema",
            "hyperscan",
            "api",
            "load",
        ],
    )
    ap.add_argument(
        "path", nargs="+", help="input file(s); only `api` takes several; `load`: rule paths"
    )
    ap.add_argument("--procs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--pack", help="api: also run this bundled rule pack")
    ap.add_argument(
        "--rule",
        help="the seed rule's IR and needles as bench/harness.py writes them (default: ask the "
        "engine, which imports imds_scan into this process)",
    )
    args = ap.parse_args(argv)

    def rule() -> SeedRule:
        return SeedRule.from_file(args.rule) if args.rule else engine_rule()

    runners: dict[str, Callable[[], dict[str, Any]]] = {
        "duckdb": lambda: run_duckdb(args.path[0], args.threads, rule()),
        "polars-default": lambda: run_polars(args.path[0], "default", rule()),
        "polars": lambda: run_polars(args.path[0], "overrides", rule()),
        "polars-full-schema": lambda: run_polars(args.path[0], "full", rule()),
        "hyperscan": lambda: run_hyperscan(args.path[0], args.procs, rule()),
        "api": lambda: run_api(args.path, args.threads, args.pack),
        "load": lambda: run_load(args.path),
    }
    out = runners[args.kind]()
    out["setup_s"] = time.perf_counter() - _T0 - out["work_s"]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
