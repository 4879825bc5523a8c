#!/usr/bin/env python3
"""Benchmark harness: imds-scan's Rust engine against its pure-Python engine and the tools a
user would reach for instead, on one generated corpus, with correctness beside every figure.

    python3 bench/harness.py                    # ~1 GiB corpus, 3 interleaved repetitions
    python3 bench/harness.py --size 200M --repeat 1

Generates (or reuses, keyed by size and seed) ``bench/data/ecs-SIZE-sSEED.ndjson`` with
bench/gen_corpus.py, plus gzip and zstd copies; times every case round-robin, ``--repeat``
times; writes ``bench/results/DATE-SIZE.{md,json,png}`` and the latest table into
bench/README.md. Optional tools missing from the machine are skipped with a note.
See bench/README.md ("Benchmark") for what each row measures.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import elastic_rules  # bench/ is on sys.path
from corpus.seed_rule import engine_rule
from corpus.writer import parse_size

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PEERS = BENCH / "peers.py"
GEN = BENCH / "gen_corpus.py"
README = BENCH / "README.md"
MARK_START = "<!-- bench-results:start -->"
MARK_END = "<!-- bench-results:end -->"
ABSENT_NEEDLE = "zq-imds-absent-needle-xj"
IMDS_COMPRESSION_WORDS = ("gzip", ".gz", "zstd", ".zst")
IMDS_OK = (0, 1)  # imds-scan exits 1 when it found hits


BROAD_RULE = REPO / "tests" / "data" / "broad" / "process_start.toml"
NOISY = "noisy corpus"
BASE_CLI = "imds-scan CLI, all threads"  # the default rule's row the ratios divide by
HS_2 = "Python hyperscan + orjson, 2 processes"
STARTUP = "imds-scan CLI start-up (1-line input)"
# Issue 14 and 15's targets, reported (never asserted) beside the figures.
TARGET_NOISY_GB_S = 2.0
TARGET_VS_PEER = 1.5
TARGET_SWEEP_RATIO = 4.0
TARGET_LOAD_S = 0.3
TARGET_STARTUP_S = 0.15
TARGET_MANY_HITS_RATIO = 3.0
TARGET_MANY_HITS_RSS_MB = 200

# Issue 17's case: a two-stage sequence rule against a single-event rule with its literals.
SEQ_ROW = f"{BASE_CLI}, sequence rule (2 stages)"
SEQ_BASE_ROW = f"{BASE_CLI}, single-event rule with the sequence's literals"
TARGET_SEQUENCE_SPEED = 0.5  # the sequence rule at no less than half the single-event speed
SEQUENCE_QUERY = """sequence by host.name with maxspan=5m
  [process where process.args : "*169.254.169.254*"]
  [network where destination.ip == "169.254.169.254"]"""
SINGLE_QUERY = """any where
  (event.category == "process" and process.args : "*169.254.169.254*") or
  (event.category == "network" and destination.ip == "169.254.169.254")"""
# The same shape with broad stages: most lines are candidates, the matcher does the work.
BROAD_SEQ_ROW = f"{BASE_CLI}, sequence rule (2 broad stages)"
BROAD_SEQ_BASE_ROW = f"{BASE_CLI}, single-event rule with the broad sequence's stages"
BROAD_SEQUENCE_QUERY = """sequence by host.name with maxspan=5m
  [process where event.type == "start"]
  [network where true]"""
BROAD_SINGLE_QUERY = (
    'any where (event.category == "process" and event.type == "start") or '
    'event.category == "network"'
)

# Issue 19's cases: Elastic's KQL rules, all accepted ones and the IMDS new_terms rule alone,
# each against the default rule (BASE_CLI) of the same run.
KQL_ALL_ROW = f"{BASE_CLI}, all accepted Elastic KQL rules"
KQL_IMDS_ROW = f"{BASE_CLI}, Elastic IMDS new_terms KQL rule alone"
KQL_ROWS = (KQL_ALL_ROW, KQL_IMDS_ROW)

PACK = "hardened"
PACK_SUFFIX = f", --pack {PACK}"  # a row that runs the pack beside its row without it


def pack_ratios(rows: list[dict[str, Any]]) -> list[str]:
    """The pack's cost: each pack row's scan time over its twin's without the pack."""
    by_name = {r["name"]: r for r in rows}
    out = []
    for r in rows:
        base = by_name.get(r["name"].removesuffix(PACK_SUFFIX))
        if r["name"].endswith(PACK_SUFFIX) and base and r.get("work_s") and base.get("work_s"):
            best = (
                base["best_mb_s"] / r["best_mb_s"]
                if r.get("best_mb_s") and base.get("best_mb_s")
                else None
            )
            out.append(
                f"- {base['name']}: {r['work_s'] / base['work_s']:.2f}x the default rule's "
                f"time (median; fastest rounds {fmt(best)}x): {fmt(base['work_s'])} s -> "
                f"{fmt(r['work_s'])} s"
            )
    return out


def _gnu_time() -> str | None:
    """/usr/bin/time when it is GNU time (peak RSS of the command itself, via -f %M)."""
    exe = shutil.which("time", path="/usr/bin:/bin")
    if exe is None:
        return None
    probe = subprocess.run([exe, "--version"], capture_output=True, text=True)
    return exe if "GNU" in probe.stdout + probe.stderr else None


GNU_TIME = _gnu_time()


def log(msg: str) -> None:
    print(f"[harness] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- inputs


@dataclasses.dataclass
class Corpus:
    path: Path
    expected: dict[str, Any]

    @property
    def bytes(self) -> int:
        return int(self.expected["bytes"])

    @property
    def lines(self) -> int:
        return int(self.expected["lines"])

    @property
    def hits(self) -> int:
        return int(self.expected["hits"])


def ensure_corpus(data: Path, size: str, seed: int, noise_rate: float = 0.0) -> Corpus:
    """The corpus for (size, seed, noise rate), generated when missing or incomplete."""
    noise = f"-noise{noise_rate:g}" if noise_rate else ""
    path = data / f"ecs-{size.upper()}-s{seed}{noise}.ndjson"
    exp = path.with_name(path.name + ".expected.json")
    if path.exists() and exp.exists():
        expected = json.loads(exp.read_text())
        if expected.get("bytes") == path.stat().st_size:
            log(f"reusing {path.relative_to(REPO)}")
            return Corpus(path, expected)
    data.mkdir(parents=True, exist_ok=True)
    log(f"generating {path.relative_to(REPO)} (size {size}, seed {seed}; ~20 MB/s)")
    cmd = [sys.executable, str(GEN), "--size", size, "--seed", str(seed), "--out", str(path)]
    if noise_rate:
        cmd += ["--noise-rate", str(noise_rate)]
    subprocess.run(cmd, check=True)
    return Corpus(path, json.loads(exp.read_text()))


def ensure_compressed(corpus: Corpus, notes: list[str]) -> dict[str, Path]:
    """gzip (-6) and zstd (-3) copies next to the corpus, made once."""
    out: dict[str, Path] = {}
    src = corpus.path
    gz = src.with_name(src.name + ".gz")
    if not _fresh(gz, src):
        tool = shutil.which("pigz") or shutil.which("gzip")
        if tool is None:
            notes.append("gzip not installed: no .gz input")
        else:
            log(f"compressing {gz.name} with {Path(tool).name} -6")
            _compress([tool, "-6", "-c", str(src)], gz)
    if gz.exists():
        out["gz"] = gz
    zst = src.with_name(src.name + ".zst")
    if not _fresh(zst, src):
        if shutil.which("zstd"):
            log(f"compressing {zst.name} with zstd -3")
            _compress(["zstd", "-3", "-T0", "-q", "-c", str(src)], zst)
        else:
            try:
                import zstandard
            except ImportError:
                notes.append("neither the zstd CLI nor the zstandard package: no .zst input")
            else:
                log(f"compressing {zst.name} with the zstandard package (level 3)")
                part = zst.with_name(zst.name + ".part")
                with open(src, "rb") as fin, open(part, "wb") as fout:
                    zstandard.ZstdCompressor(level=3, threads=-1).copy_stream(fin, fout)
                part.replace(zst)
    if zst.exists():
        out["zst"] = zst
    return out


def ensure_shards(corpus: Corpus, n: int) -> tuple[Path, list[Path]]:
    """The corpus cut into `n` files of about equal size at line ends, in a directory."""
    src = corpus.path
    folder = src.with_name(src.name + f".{n}-parts")
    parts = [folder / f"part-{i}.ndjson" for i in range(n)]
    if all(_fresh(p, src) for p in parts):
        return folder, parts
    log(f"cutting {src.name} into {n} files in {folder.name}/")
    folder.mkdir(exist_ok=True)
    size = src.stat().st_size
    with open(src, "rb") as f:
        cuts = [0]
        for i in range(1, n):
            f.seek(size * i // n)
            f.readline()
            cuts.append(f.tell())
        cuts.append(size)
        for part, a, b in zip(parts, cuts, cuts[1:], strict=False):
            f.seek(a)
            with open(part, "wb") as out:
                left = b - a
                while left:
                    chunk = f.read(min(left, 64 << 20))
                    out.write(chunk)
                    left -= len(chunk)
    return folder, parts


def _fresh(path: Path, src: Path) -> bool:
    return path.exists() and path.stat().st_mtime >= src.stat().st_mtime


def _compress(cmd: list[str], dest: Path) -> None:
    part = dest.with_name(dest.name + ".part")
    with open(part, "wb") as f:
        subprocess.run(cmd, stdout=f, check=True)
    part.replace(dest)


# ----------------------------------------------------------------------------- cases


@dataclasses.dataclass
class Case:
    name: str
    group: str  # imds-scan | baseline | peer | limit
    argv: list[str]
    input: Path
    corpus: Corpus | None  # expected counts (None: the count is not a rule hit count)
    threads: str
    parse: Callable[[str, str], dict[str, Any]]
    note: str = ""
    ok_codes: tuple[int, ...] = (0,)
    bytes: int = 0  # uncompressed bytes scanned
    lines: int = 0
    compressed_bytes: int = 0
    once: bool = False  # correctness probe: run in the first repetition only
    # Files the case writes: removed before each run, untimed. Opening the last round's
    # 400 MB output with O_TRUNC makes the file system free it first (~0.3 s on ext4),
    # charged to whichever run opens it; a fresh file measures the scan.
    outputs: tuple[Path, ...] = ()


def _count_lines(out: str, _err: str) -> dict[str, Any]:
    return {"hits": sum(1 for line in out.splitlines() if line.strip())}


def _rg_count(out: str, _err: str) -> dict[str, Any]:
    return {"hits": int(out.strip() or 0)}


def _no_count(_out: str, _err: str) -> dict[str, Any]:
    return {}


def _file_lines(path: Path) -> Callable[[str, str], dict[str, Any]]:
    """Hits written to an NDJSON output file: its lines."""

    def parse(_out: str, _err: str) -> dict[str, Any]:
        n = 0
        with open(path, "rb") as f:
            while chunk := f.read(16 << 20):
                n += chunk.count(b"\n")
        return {"hits": n}

    return parse


def _parquet_rows(path: Path) -> Callable[[str, str], dict[str, Any]]:
    """Hits written to a Parquet output file: its rows (from the footer)."""

    def parse(_out: str, _err: str) -> dict[str, Any]:
        import polars as pl

        return {"hits": int(pl.scan_parquet(path).select(pl.len()).collect().item())}

    return parse


def _worker_json(out: str, _err: str) -> dict[str, Any]:
    line = out.strip().splitlines()[-1]
    result: dict[str, Any] = json.loads(line)
    return result


def fresh_bytecode(notes: list[str], package: Path | None = None) -> None:
    """Compile the imds_scan package's stale bytecode before timing, as `pip install` does:
    run from a source tree with PYTHONDONTWRITEBYTECODE set, every CLI row would otherwise
    pay for compiling the modules changed since their .pyc was written (~50 ms a run)."""
    import compileall

    if package is None:
        import imds_scan

        package = Path(imds_scan.__file__).parent
    if compileall.compile_dir(package, quiet=2):
        notes.append(f"imds_scan's bytecode ({package}) brought up to date before timing")
    else:
        notes.append(f"imds_scan's bytecode ({package}) could not be compiled: rows may be slow")


def imds_cli() -> list[str] | None:
    # The entry point next to this interpreter (a venv's bin/), not a wrapper such as a pyenv
    # shim, which would add its own start-up (~0.1-0.2 s) to every CLI row.
    beside = Path(sys.executable).parent / "imds-scan"
    if beside.exists():
        return [str(beside)]
    exe = shutil.which("imds-scan")
    if exe:
        return [exe]
    try:
        import imds_scan  # noqa: F401
    except ImportError:
        return None
    return [sys.executable, "-m", "imds_scan"]


def has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def imds_supports_compression(cli: list[str]) -> bool:
    proc = subprocess.run([*cli, "--help"], capture_output=True, text=True)
    text = (proc.stdout + proc.stderr).lower()
    return any(w in text for w in IMDS_COMPRESSION_WORDS)


def build_cases(
    corpus: Corpus,
    compressed: dict[str, Path],
    py_corpus: Corpus,
    needles: Path,
    rule_file: Path,
    tiny: Path,
    shards: tuple[Path, list[Path]] | None,
    args: argparse.Namespace,
    notes: list[str],
    noisy: Corpus | None = None,
    sweep: dict[str, Any] | None = None,
    kql: dict[str, Any] | None = None,
) -> list[Case]:
    cases: list[Case] = []
    nd = corpus.path
    cores = os.cpu_count() or 1

    def add(case: Case) -> None:
        if case.corpus is not None:
            case.bytes, case.lines = case.corpus.bytes, case.corpus.lines
        elif not case.bytes:
            case.bytes, case.lines = corpus.bytes, corpus.lines
        if args.only and not selected(case.name, args.only):
            return
        cases.append(case)

    cli = imds_cli()
    if cli is None:
        notes.append("imds-scan is not installed (`pip install .`): its rows are skipped")
    else:
        fresh_bytecode(notes)
        for threads in ("1", "0"):
            label = "1" if threads == "1" else f"all ({cores})"
            add(
                Case(
                    f"imds-scan CLI, {'1 thread' if threads == '1' else 'all threads'}",
                    "imds-scan",
                    [*cli, "--threads", threads, "-f", "ndjson", "-q", str(nd)],
                    nd,
                    corpus,
                    label,
                    _count_lines,
                    "wall time of the command: interpreter start-up, imports, scan, output",
                    ok_codes=IMDS_OK,
                )
            )
        if shards is not None:
            add(
                Case(
                    f"imds-scan CLI, all threads, {len(shards[1])} files",
                    "imds-scan",
                    [*cli, "--threads", "0", "-f", "ndjson", "-q", str(shards[0])],
                    shards[0],
                    corpus,
                    f"all ({cores})",
                    _count_lines,
                    f"the same corpus cut into {len(shards[1])} files at line ends (the engine "
                    "runs files in parallel)",
                    ok_codes=IMDS_OK,
                )
            )
        for threads in ("1", "0"):
            label = "1" if threads == "1" else f"all ({cores})"
            add(
                Case(
                    f"imds-scan Python API, {'1 thread' if threads == '1' else 'all threads'}",
                    "imds-scan",
                    [sys.executable, str(PEERS), "api", str(nd), "--threads", threads],
                    nd,
                    corpus,
                    label,
                    _worker_json,
                    "imds_scan.run_scan in a fresh interpreter; MB/s from the call's "
                    "own time (start-up shown apart)",
                )
            )
        add(
            Case(
                f"imds-scan Python API, all threads{PACK_SUFFIX}",
                "imds-scan",
                [sys.executable, str(PEERS), "api", str(nd), "--threads", "0", "--pack", PACK],
                nd,
                None,
                f"all ({cores})",
                _worker_json,
                "the default rule and the hardened pack in one scan: its hits are the pack's "
                "too, so no expected count",
            )
        )
        if shards is not None:
            add(
                Case(
                    f"imds-scan Python API, all threads, {len(shards[1])} files",
                    "imds-scan",
                    [sys.executable, str(PEERS), "api", *map(str, shards[1]), "--threads", "0"],
                    shards[0],
                    corpus,
                    f"all ({cores})",
                    _worker_json,
                    f"the same corpus cut into {len(shards[1])} files at line ends",
                )
            )
        add(
            Case(
                "imds-scan CLI start-up (1-line input)",
                "imds-scan",
                [*cli, "-f", "ndjson", "-q", str(tiny)],
                tiny,
                None,
                "1",
                _count_lines,
                "start-up cost alone: the scan of one line is negligible",
                ok_codes=IMDS_OK,
                bytes=tiny.stat().st_size,
                lines=1,
            )
        )
        if compressed:
            if imds_supports_compression(cli):
                for kind, path in compressed.items():
                    for threads in ("1", "0"):
                        label = "1" if threads == "1" else f"all ({cores})"
                        add(
                            Case(
                                f"imds-scan CLI .{kind}, "
                                + ("1 thread" if threads == "1" else "all threads"),
                                "imds-scan",
                                [*cli, "--threads", threads, "-f", "ndjson", "-q", str(path)],
                                path,
                                corpus,
                                label,
                                _count_lines,
                                "MB/s of uncompressed NDJSON; wall time of the command",
                                ok_codes=IMDS_OK,
                                compressed_bytes=path.stat().st_size,
                            )
                        )
                    add(
                        Case(
                            f"imds-scan CLI .{kind}, all threads{PACK_SUFFIX}",
                            "imds-scan",
                            [
                                *cli,
                                "--threads",
                                "0",
                                "--pack",
                                PACK,
                                "-f",
                                "ndjson",
                                "-q",
                                str(path),
                            ],
                            path,
                            None,
                            f"all ({cores})",
                            _count_lines,
                            "MB/s of uncompressed NDJSON; wall time of the command; the default "
                            "rule and the hardened pack",
                            ok_codes=IMDS_OK,
                            compressed_bytes=path.stat().st_size,
                        )
                    )
            else:
                notes.append(
                    "imds-scan on .gz/.zst: not supported yet (`imds-scan --help` names no "
                    "compression); those rows are skipped"
                )
        py_note = "the pure-Python reference engine (stdlib json on every line)"
        if py_corpus.path != corpus.path:
            py_note += (
                f"; run on the {py_corpus.bytes / 1e6:.0f} MB corpus of the same seed, its "
                "MB/s taken as the full corpus's (extrapolated)"
            )
        py_name = "imds-scan --engine python"
        if py_corpus.path != corpus.path:
            py_name += f" ({py_corpus.bytes / 1e6:.0f} MB corpus)"
        add(
            Case(
                py_name,
                "baseline",
                [*cli, "--engine", "python", "-f", "ndjson", "-q", str(py_corpus.path)],
                py_corpus.path,
                py_corpus,
                "1",
                _count_lines,
                py_note,
                ok_codes=IMDS_OK,
            )
        )

    if has_module("duckdb"):
        add(
            Case(
                "DuckDB SQL",
                "peer",
                [sys.executable, str(PEERS), "duckdb", str(nd), "--rule", str(rule_file)],
                nd,
                corpus,
                f"all ({cores})",
                _worker_json,
            )
        )
    else:
        notes.append("duckdb not installed (`pip install .[bench]`): skipped")

    if has_module("polars"):
        for kind, label in (
            ("polars-default", "Polars, default schema inference"),
            ("polars", "Polars, default inference + overrides"),
            ("polars-full-schema", "Polars, whole-file schema inference"),
        ):
            add(
                Case(
                    label,
                    "peer",
                    [sys.executable, str(PEERS), kind, str(nd), "--rule", str(rule_file)],
                    nd,
                    corpus,
                    f"all ({cores})",
                    _worker_json,
                    once=kind == "polars-default",
                )
            )
    else:
        notes.append("polars not installed (`pip install .[bench]`): skipped")

    if has_module("hyperscan") and has_module("orjson"):
        for procs in sorted({1, min(2, cores), cores}):
            add(
                Case(
                    f"Python hyperscan + orjson, {procs} process{'es' if procs > 1 else ''}",
                    "peer",
                    [
                        sys.executable,
                        str(PEERS),
                        "hyperscan",
                        str(nd),
                        "--procs",
                        str(procs),
                        "--rule",
                        str(rule_file),
                    ],
                    nd,
                    corpus,
                    str(procs),
                    _worker_json,
                )
            )
    else:
        notes.append("hyperscan or orjson not installed (`pip install .[bench]`): skipped")

    rg = shutil.which("rg")
    if rg:
        add(
            Case(
                "rg -c -F (absent needle)",
                "limit",
                [rg, "-c", "-F", ABSENT_NEEDLE, str(nd)],
                nd,
                None,
                "1",
                _rg_count,
                "raw search speed: a needle that never occurs",
                ok_codes=(0, 1),
            )
        )
        add(
            Case(
                "rg -c -i -F -f needles",
                "limit",
                [rg, "-c", "-i", "-F", "-f", str(needles), str(nd)],
                nd,
                None,
                "1",
                _rg_count,
                f"the rule's {len(needles.read_text().split())} needles, case-insensitive; "
                "counts lines holding one (no escape "
                "handling, no rule evaluation): not comparable with hits",
                ok_codes=(0, 1),
            )
        )
    else:
        notes.append("ripgrep (rg) not installed (`apt-get install ripgrep`): skipped")

    for kind, tool in (("gz", "gzip"), ("zst", "zstd")):
        if kind not in compressed:
            continue
        exe = shutil.which(tool)
        if exe is None:
            notes.append(f"{tool} CLI not installed: `{tool} -dc` skipped")
            continue
        path = compressed[kind]
        add(
            Case(
                f"{tool} -dc > /dev/null",
                "limit",
                [exe, "-dc", str(path)],
                path,
                None,
                "1",
                _no_count,
                f"decompression alone; MB/s of uncompressed output ({path.stat().st_size / 1e6:.0f}"
                " MB compressed)",
                compressed_bytes=path.stat().st_size,
            )
        )
    if cli is not None:
        extra_cases(cli, corpus, noisy, sweep, shards, rule_file, tiny, args, notes, add)
        sequence_cases(cli, corpus, tiny, args, notes, add)
        if kql is not None:
            kql_cases(cli, corpus, tiny, notes, add, kql)
    return cases


def selected(name: str, only: str) -> bool:
    """`--only`: the case's name holds one of the substrings; the default rule's row comes
    along with a KQL row, whose figures are ratios to it."""
    wanted = only.split(",")
    if any(o in name for o in wanted):
        return True
    return name == BASE_CLI and any(o in row for row in KQL_ROWS for o in wanted)


def _rule_toml(name: str, rule_id: str, query: str) -> str:
    return (
        '[metadata]\ncreation_date = "2026/12/05"\nmaturity = "development"\n'
        'updated_date = "2026/12/05"\n\n[rule]\nauthor = ["imds-scan bench"]\n'
        f'description = "{name}."\nlanguage = "eql"\nlicense = "Apache-2.0"\n'
        f'name = "{name}"\nrisk_score = 21\nrule_id = "{rule_id}"\nseverity = "low"\n'
        f"type = \"eql\"\n\nquery = '''\n{query}\n'''\n"
    )


def sequence_cases(
    cli: list[str],
    corpus: Corpus,
    tiny: Path,
    args: argparse.Namespace,
    notes: list[str],
    add: Callable[[Case], None],
) -> None:
    """Issue 17's cases: a sequence rule whose stages hold the default rule's literals, and a
    single-event rule with the same literals, each alone over the corpus; the same with broad
    stages (most lines candidates), written to files."""
    names = (SEQ_ROW, SEQ_BASE_ROW, BROAD_SEQ_ROW, BROAD_SEQ_BASE_ROW)
    if args.only and not any(o in n for n in names for o in args.only.split(",")):
        return
    folder = args.data / "sequence"
    folder.mkdir(parents=True, exist_ok=True)
    rules = {
        "sequence": ("IMDS request then connection", SEQUENCE_QUERY),
        "single": ("IMDS request or connection", SINGLE_QUERY),
        "broad-sequence": ("Process start then connection", BROAD_SEQUENCE_QUERY),
        "broad-single": ("Process start or connection", BROAD_SINGLE_QUERY),
    }
    for stem, (title, query) in rules.items():
        (folder / f"{stem}.toml").write_text(_rule_toml(title, f"bench-{stem}", query))
    probe = subprocess.run(
        [*cli, "--rule", str(folder / "sequence.toml"), "-f", "ndjson", "-q", str(tiny)],
        capture_output=True,
        text=True,
    )
    if probe.returncode not in IMDS_OK:
        why = (probe.stderr.strip().splitlines() or ["no message"])[0]
        notes.append(f"sequence case skipped: this imds-scan refuses the sequence rule ({why})")
        return
    cores = os.cpu_count() or 1
    nd = corpus.path
    stages = "stages: [process: args hold 169.254.169.254] [network: destination.ip is it]"
    broad = "stages: [process start] [network]"
    for name, stem, note in (
        (SEQ_ROW, "sequence", f"sequence by host.name with maxspan=5m, {stages}; hits = results"),
        (SEQ_BASE_ROW, "single", "the sequence's two stage conditions as one single-event rule"),
        (BROAD_SEQ_ROW, "broad-sequence", f"the same shape, {broad}; results to a file"),
        (BROAD_SEQ_BASE_ROW, "broad-single", "the broad stages as one rule; hits to a file"),
    ):
        rule = folder / f"{stem}.toml"
        outputs: tuple[Path, ...] = ()
        if stem.startswith("broad"):
            dest = folder / f"{stem}.out.ndjson"
            out, parse, outputs = ["-o", str(dest)], _file_lines(dest), (dest,)
        else:
            out, parse = [], _count_lines
        add(
            Case(
                name,
                "imds-scan",
                [*cli, "--threads", "0", "--rule", str(rule), "-f", "ndjson", *out, "-q", str(nd)],
                nd,
                None,
                f"all ({cores})",
                parse,
                f"{note}; wall time of the command",
                ok_codes=IMDS_OK,
                outputs=outputs,
            )
        )


def _probe(cli: list[str], rule: str, tiny: Path) -> str | None:
    """None when the CLI runs the rule(s) over one line, else the first line of its error."""
    probe = subprocess.run(
        [*cli, "--rule", rule, "-f", "ndjson", "-q", str(tiny)], capture_output=True, text=True
    )
    if probe.returncode in IMDS_OK:
        return None
    return (probe.stderr.strip().splitlines() or [f"exit {probe.returncode}"])[0]


def kql_cases(
    cli: list[str],
    corpus: Corpus,
    tiny: Path,
    notes: list[str],
    add: Callable[[Case], None],
    kql: dict[str, Any],
) -> None:
    """Issue 19's cases: every active KQL rule of elastic/detection-rules that imds-scan
    accepts, and the IMDS new_terms rule alone, over the corpus (ratios to the default rule's
    row of the same run); each skipped with the reason while imds-scan cannot run it."""
    commit = str(kql["commit"])[:12]
    cores = os.cpu_count() or 1
    nd = corpus.path
    rows: list[tuple[str, str, str]] = []
    if not kql["accepted"]:
        why = kql.get("first_refusal") or "no KQL rule file found"
        notes.append(
            f"KQL cases skipped: this imds-scan accepts none of the {kql['files']} active KQL "
            f"rules of elastic/detection-rules {commit} ({why})"
        )
    else:
        rows.append(
            (
                KQL_ALL_ROW,
                str(kql["dir"]),
                f"the {kql['accepted']} of the {kql['files']} active KQL rules of "
                f"elastic/detection-rules {commit} that imds-scan accepts (query, new_terms, "
                "threshold); hits = query hits and alerts; no expected count",
            )
        )
    imds = kql.get("imds")
    if imds is None:
        notes.append(f"IMDS new_terms case skipped: no rule named {elastic_rules.IMDS_RULE_NAME!r}")
    elif not imds["accepted"]:
        notes.append(f"IMDS new_terms case skipped: imds-scan refuses the rule ({imds['reason']})")
    else:
        rows.append(
            (
                KQL_IMDS_ROW,
                str(imds["dir"]),
                f"{elastic_rules.IMDS_RULE_NAME!r} (new_terms on host.id and "
                "process.executable) alone; hits = alerts",
            )
        )
    for name, rule, note in rows:
        why = _probe(cli, rule, tiny)
        if why is not None:
            notes.append(f"{name} skipped: imds-scan cannot run it ({why})")
            continue
        add(
            Case(
                name,
                "imds-scan",
                [*cli, "--threads", "0", "--rule", rule, "-f", "ndjson", "-q", str(nd)],
                nd,
                None,
                f"all ({cores})",
                _count_lines,
                f"{note}; wall time of the command",
                ok_codes=IMDS_OK,
            )
        )


def extra_cases(
    cli: list[str],
    corpus: Corpus,
    noisy: Corpus | None,
    sweep: dict[str, Any] | None,
    shards: tuple[Path, list[Path]] | None,
    rule_file: Path,
    tiny: Path,
    args: argparse.Namespace,
    notes: list[str],
    add: Callable[[Case], None],
) -> None:
    """Issue 14 and 15's cases: the noisy corpus, the Elastic rule-count sweep (the
    single-event rules over the corpus's shards too), many hits."""
    nd = corpus.path
    cores = os.cpu_count() or 1
    if noisy is not None:
        rate = f"{noisy.expected.get('noise_rate', 0):.0%}"
        add(
            Case(
                f"imds-scan CLI, 2 threads, {NOISY}",
                "imds-scan",
                [*cli, "--threads", "2", "-f", "ndjson", "-q", str(noisy.path)],
                noisy.path,
                noisy,
                "2",
                _count_lines,
                f"{rate} of lines carry the rule's literals without matching (cloud agents "
                "polling the metadata service, GCE DNS lookups, health checks' process ends); "
                "wall time of the command",
                ok_codes=IMDS_OK,
            )
        )
        if has_module("hyperscan") and has_module("orjson"):
            add(
                Case(
                    f"{HS_2}, {NOISY}",
                    "peer",
                    [
                        sys.executable,
                        str(PEERS),
                        "hyperscan",
                        str(noisy.path),
                        "--procs",
                        "2",
                        "--rule",
                        str(rule_file),
                    ],
                    noisy.path,
                    noisy,
                    "2",
                    _worker_json,
                )
            )
    if sweep is not None:
        commit = str(sweep["commit"])[:12]
        for label, sub in sweep["subsets"].items():
            n = sub["rules"]
            what = f"{n} Elastic rule{'s' if n != 1 else ''}" + (
                " (all accepted)" if label == "all" else ""
            )
            chosen = f"the first {n} of the {sweep['accepted']} rules"
            if label == "single":
                what = f"{n} single-event Elastic rules (all accepted)"
                chosen = f"the {n} single-event ones (no sequence or sample) of the"
                chosen += f" {sweep['accepted']}"
            add(
                Case(
                    f"{BASE_CLI}, {what}",
                    "imds-scan",
                    [*cli, "--threads", "0", "--rule", sub["dir"], "-f", "ndjson", "-q", str(nd)],
                    nd,
                    None,
                    f"all ({cores})",
                    _count_lines,
                    f"{chosen} rules of elastic/detection-rules "
                    f"{commit} that imds-scan accepts, by rule_id; no expected count",
                    ok_codes=IMDS_OK,
                )
            )
            if label == "single" and shards is not None:
                # As many files as threads: each file's lane, with its many hits, must not
                # wait for the one before it (it scans on the pool once a thread is free).
                add(
                    Case(
                        f"{BASE_CLI}, {what}, {len(shards[1])} files",
                        "imds-scan",
                        [
                            *cli,
                            *("--threads", "0", "--rule", sub["dir"], "-f", "ndjson", "-q"),
                            str(shards[0]),
                        ],
                        shards[0],
                        None,
                        f"all ({cores})",
                        _count_lines,
                        f"the same rules over the corpus cut into {len(shards[1])} files at "
                        "line ends; the same hits as over the one file",
                        ok_codes=IMDS_OK,
                    )
                )
        full = sweep["subsets"].get("all")
        if full is not None:
            add(
                Case(
                    f"rule loading, {full['rules']} Elastic rules",
                    "imds-scan",
                    [sys.executable, str(PEERS), "load", full["dir"]],
                    Path(full["dir"]),
                    None,
                    "1",
                    _worker_json,
                    "TOML parsing and EQL compilation, measured inside the process",
                    bytes=1,
                    lines=1,
                )
            )
            add(
                Case(
                    f"imds-scan CLI start-up, {full['rules']} Elastic rules (1-line input)",
                    "imds-scan",
                    [*cli, "--rule", full["dir"], "-f", "ndjson", "-q", str(tiny)],
                    tiny,
                    None,
                    "1",
                    _count_lines,
                    "start-up with the whole rule set: imports, rule loading, a one-line scan",
                    ok_codes=IMDS_OK,
                    bytes=tiny.stat().st_size,
                    lines=1,
                )
            )
    out_dir = args.data / "many-hits"
    out_dir.mkdir(parents=True, exist_ok=True)
    for kind, parse in (("ndjson", _file_lines), ("parquet", _parquet_rows)):
        if kind == "parquet" and not has_module("polars"):
            notes.append("polars not installed: the Parquet many-hits rows are skipped")
            continue
        for which, rule in (("default rule", None), ("broad rule", BROAD_RULE)):
            dest = out_dir / f"{which.split()[0]}.{kind}"
            rule_args = ["--rule", str(rule)] if rule is not None else []
            out_args = ["-f", kind, "-o", str(dest), "-q", str(nd)]
            add(
                Case(
                    f"{BASE_CLI}, {which} -> {kind} file",
                    "imds-scan",
                    [*cli, "--threads", "0", *rule_args, *out_args],
                    nd,
                    corpus if rule is None else None,
                    f"all ({cores})",
                    parse(dest),
                    "many hits (issue 14): every process start"
                    if rule is not None
                    else "the default rule, same output, for the ratio",
                    ok_codes=IMDS_OK,
                    outputs=(dest,),
                )
            )


# ----------------------------------------------------------------------------- running


def run_once(case: Case, tmp: Path) -> dict[str, Any]:
    """Run the case's command; wall time, peak RSS (of the largest process), parsed output."""
    out_path, err_path, rss_path = tmp / "stdout", tmp / "stderr", tmp / "rss"
    for path in case.outputs:
        path.unlink(missing_ok=True)
    to_null = case.argv[0].endswith(("gzip", "zstd"))
    argv = case.argv
    if GNU_TIME:
        # A child forked from this (large) interpreter would report the harness's own RSS
        # until it execs; GNU time forks from a small process.
        rss_path.unlink(missing_ok=True)
        argv = [GNU_TIME, "-f", "%M", "-o", str(rss_path), *argv]
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        sink = subprocess.DEVNULL if to_null else out
        busy0 = busy_cpu_s()
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=sink, stderr=err, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        busy1 = busy_cpu_s()
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    stdout = out_path.read_text(errors="replace")
    stderr = err_path.read_text(errors="replace")
    rss_kb = usage.ru_maxrss
    if GNU_TIME and rss_path.exists():
        with contextlib.suppress(ValueError, IndexError):
            rss_kb = int(rss_path.read_text().split()[-1])
    result: dict[str, Any] = {"wall_s": wall, "rss_mb": rss_kb / 1024, "code": code}
    if busy0 is not None and busy1 is not None:
        # CPU time the machine spent on something else while this case ran.
        result["other_cpu_s"] = max(0.0, busy1 - busy0 - usage.ru_utime - usage.ru_stime)
    if code not in case.ok_codes:
        result["error"] = f"exit {code}: {stderr.strip().splitlines()[-1:] or ''}"
        return result
    try:
        result.update(case.parse(stdout, stderr))
    except (ValueError, IndexError) as exc:
        result["error"] = f"unreadable output: {exc}; {stderr.strip()[-300:]}"
    return result


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def busy_cpu_s() -> float | None:
    """CPU-seconds the whole machine has spent busy (all cores), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return None
    # user nice system idle iowait irq softirq steal
    ticks = [int(x) for x in fields[:8]]
    return (sum(ticks) - ticks[3] - ticks[4]) / _CLK_TCK


def warm_cache(paths: list[Path]) -> None:
    """Read every input once so each case starts from the page cache, and from the same
    cache whatever read the file before: its cached pages are dropped first (clean pages, no
    privilege needed), then read back in one sequential pass. Pages cached piecemeal earlier
    made the same scans slower: the default rule's 0.18 s against 0.15 s after this, and
    hyperscan + orjson's 0.37 s against 0.31 s (2026-12-07, bench/README.md)."""
    for path in paths:
        with open(path, "rb") as f:
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            while f.read(16 << 20):
                pass


def wait_quiet(limit_s: float) -> float:
    """Wait (up to `limit_s`) until other processes use < 0.15 core; the seconds waited."""
    waited = 0.0
    while waited < limit_s:
        b0 = busy_cpu_s()
        time.sleep(0.5)
        b1 = busy_cpu_s()
        if b0 is None or b1 is None or (b1 - b0) / 0.5 < 0.15:
            break
        waited += 0.5
    return waited


def run_all(
    cases: list[Case], repeat: int, quiet_wait: float = 0.0
) -> dict[str, list[dict[str, Any]]]:
    runs: dict[str, list[dict[str, Any]]] = {c.name: [] for c in cases}
    with tempfile.TemporaryDirectory(prefix="imds-bench-") as tmpdir:
        tmp = Path(tmpdir)
        for rep in range(repeat if cases else 0):  # --only may leave none (notes say why)
            # Interleaved: every case once per round, the starting case rotating each round.
            order = cases[rep % len(cases) :] + cases[: rep % len(cases)]
            for case in order:
                if case.once and rep > 0:
                    continue
                waited = wait_quiet(quiet_wait) if quiet_wait > 0 else 0.0
                if waited >= quiet_wait > 0:
                    log(f"machine still busy after {quiet_wait:.0f} s: running anyway")
                r = run_once(case, tmp)
                runs[case.name].append(r)
                shown = r.get("error") or f"hits={r.get('hits', '-')}"
                log(f"round {rep + 1}/{repeat}  {case.name:<48} {r['wall_s']:8.3f} s  {shown}")
    return runs


# ----------------------------------------------------------------------------- summary


def summarize(case: Case, runs: list[dict[str, Any]]) -> dict[str, Any]:
    good = [r for r in runs if "error" not in r]
    row: dict[str, Any] = {
        "name": case.name,
        "group": case.group,
        "threads": case.threads,
        "input": case.input.name,
        "bytes": case.bytes,
        "compressed_bytes": case.compressed_bytes,
        "lines": case.lines,
        "runs": len(runs),
        "note": case.note,
    }
    if not good:
        row["error"] = runs[0].get("error", "no run") if runs else "no run"
        row["hits"] = None
        if runs:
            row["wall_s"] = statistics.median(r["wall_s"] for r in runs)
            row["rss_mb"] = max(r["rss_mb"] for r in runs)
        if case.corpus is not None:
            row["expected"] = case.corpus.hits
        return row
    wall = statistics.median(r["wall_s"] for r in good)
    work = statistics.median(r.get("work_s", r["wall_s"]) for r in good)
    row.update(
        wall_s=wall,
        work_s=work,
        setup_s=wall - work if any("work_s" in r for r in good) else None,
        mb_s=case.bytes / 1e6 / work if work > 0 and case.lines > 1 else None,
        mevents_s=case.lines / 1e6 / work if work > 0 and case.lines > 1 else None,
        rss_mb=max(r["rss_mb"] for r in good),
    )
    hit_counts = sorted({r.get("hits") for r in good}, key=lambda h: (h is None, h))
    row["hits"] = hit_counts[0] if len(hit_counts) == 1 else hit_counts
    if case.corpus is not None:
        row["expected"] = case.corpus.hits
        row["ok"] = row["hits"] == case.corpus.hits
    best = min(r.get("work_s", r["wall_s"]) for r in good)
    if row.get("mb_s") is not None and best > 0:
        row["best_mb_s"] = case.bytes / 1e6 / best
    walls = [r["wall_s"] for r in good]
    row["wall_min_s"], row["wall_max_s"] = min(walls), max(walls)
    others = [r["other_cpu_s"] for r in good if "other_cpu_s" in r]
    if others:
        row["other_cpu_s"] = max(others)
    errors = [r["error"] for r in runs if "error" in r]
    if errors:
        row["error"] = f"{len(errors)} of {len(runs)} runs failed: {errors[0]}"
    for key in ("notes", "version", "candidates"):
        if key in good[0]:
            row[f"worker_{key}"] = good[0][key]
    if "error" in good[0]:
        row["error"] = good[0]["error"]
    return row


def _verdict(ok: bool) -> str:
    return "**pass**" if ok else "**fail**"


def target_lines(rows: list[dict[str, Any]], meta: dict[str, Any]) -> list[str]:
    """Issue 14 and 15's targets beside the figures of this run (medians; pass/fail text)."""
    by = {r["name"]: r for r in rows if r.get("work_s")}
    out: list[str] = []
    base = by.get(BASE_CLI)

    def hits(r: dict[str, Any]) -> str:
        exp = f" of {r['expected']}" if r.get("expected") is not None else ""
        return f"{r.get('hits')} hits{exp}"

    peer = by.get(HS_2)
    if base and peer:
        x = peer["work_s"] / base["work_s"]
        out.append(
            f"- Default rule, CLI, all threads: {fmt(base['mb_s'])} MB/s ({hits(base)}) against "
            f"hyperscan + orjson in 2 processes {fmt(peer['mb_s'])} MB/s ({hits(peer)}): "
            f"{x:.2f}x (target >= {TARGET_VS_PEER}x; the CLI's time includes its start-up, "
            f"the peer's does not): {_verdict(x >= TARGET_VS_PEER)}"
        )
    cli_noisy = by.get(f"imds-scan CLI, 2 threads, {NOISY}")
    if cli_noisy:
        gb = cli_noisy["mb_s"] / 1000
        nc = meta.get("noisy_corpus", {})
        out.append(
            f"- Noisy corpus (`{nc.get('name')}`, {nc.get('noise_lines')} noise lines), CLI, 2 "
            f"threads: {gb:.2f} GB/s ({hits(cli_noisy)}; target >= {TARGET_NOISY_GB_S} GB/s): "
            f"{_verdict(gb >= TARGET_NOISY_GB_S)}"
        )
        peer_noisy = by.get(f"{HS_2}, {NOISY}")
        if peer_noisy:
            x = peer_noisy["work_s"] / cli_noisy["work_s"]
            out.append(
                f"- Noisy corpus against hyperscan + orjson in 2 processes "
                f"({fmt(peer_noisy['mb_s'])} MB/s, {hits(peer_noisy)}): {x:.2f}x (target: "
                f"ahead, > 1x): {_verdict(x > 1)}"
            )
    sweep = [r for r in rows if r["name"].startswith(BASE_CLI) and "Elastic rule" in r["name"]]
    if base and sweep:
        er = meta.get("elastic_rules", {})
        out.append(
            f"- Rule-count sweep (elastic/detection-rules {er.get('commit')}: {er.get('accepted')}"
            f" of {er.get('files')} rule files accepted), CLI, all threads, against the default "
            f"rule alone ({fmt(base['work_s'])} s, {hits(base)}):"
        )
        for r in sweep:
            if not r.get("work_s"):
                continue
            x = r["work_s"] / base["work_s"]
            line = (
                f"  - {r['name'].removeprefix(BASE_CLI + ', ')}: {fmt(r['work_s'])} s, "
                f"{x:.1f}x, {fmt(r.get('mb_s'))} MB/s, {hits(r)}"
            )
            if "all accepted" in r["name"]:
                line += f" (target <= {TARGET_SWEEP_RATIO:g}x): {_verdict(x <= TARGET_SWEEP_RATIO)}"
            out.append(line)
    for r in rows:
        if r["name"].startswith("rule loading") and r.get("work_s"):
            out.append(
                f"- {r['name']}: {fmt(r['work_s'])} s for {r.get('hits')} rules, "
                f"{r['work_s'] / TARGET_LOAD_S:.1f}x the target (<= {TARGET_LOAD_S} s): "
                f"{_verdict(r['work_s'] <= TARGET_LOAD_S)}"
            )
    startup = by.get(STARTUP)
    if startup:
        out.append(
            f"- Start-up (one-line scan, default rule): {fmt(startup['wall_s'])} s (target <= "
            f"{TARGET_STARTUP_S} s): {_verdict(startup['wall_s'] <= TARGET_STARTUP_S)}"
        )
    for r in rows:
        if r["name"].startswith("imds-scan CLI start-up, ") and r.get("wall_s"):
            than = f", {r['wall_s'] / startup['wall_s']:.1f}x the default rule's" if startup else ""
            out.append(f"- {r['name']}: {fmt(r['wall_s'])} s{than} (no target)")
    for seq_row, single_row, what, target in (
        (SEQ_ROW, SEQ_BASE_ROW, "same literals", True),
        (BROAD_SEQ_ROW, BROAD_SEQ_BASE_ROW, "broad stages", False),
    ):
        seq, single = by.get(seq_row), by.get(single_row)
        if not (seq and single):
            continue
        x = single["work_s"] / seq["work_s"]  # the sequence rule's speed over the single one's
        verdict = (
            f"(target >= {TARGET_SEQUENCE_SPEED}x): {_verdict(x >= TARGET_SEQUENCE_SPEED)}"
            if target
            else "(no target)"
        )
        out.append(
            f"- Sequence rule ({what}): {fmt(seq['work_s'])} s, {fmt(seq['rss_mb'], 0)} MB peak "
            f"RSS, {seq.get('hits')} sequences; single-event rule "
            f"{fmt(single['work_s'])} s, {fmt(single['rss_mb'], 0)} MB, {single.get('hits')} hits: "
            f"{x:.2f}x its speed {verdict}"
        )
    kql_rows = [by[name] for name in KQL_ROWS if name in by]
    if base and kql_rows:
        k = meta.get("kql", {})
        out.append(
            f"- KQL rules (elastic/detection-rules {k.get('commit')}: {k.get('accepted')} of "
            f"{k.get('files')} active KQL rule files accepted), CLI, all threads, against the "
            f"default rule alone ({fmt(base['work_s'])} s, {hits(base)}; no target):"
        )
        for r in kql_rows:
            out.append(
                f"  - {r['name'].removeprefix(BASE_CLI + ', ')}: {fmt(r['work_s'])} s, "
                f"{r['work_s'] / base['work_s']:.1f}x, {fmt(r.get('mb_s'))} MB/s, "
                f"{fmt(r.get('rss_mb'), 0)} MB peak RSS, {hits(r)}"
            )
    for fmt_name in ("ndjson", "parquet"):
        broad = by.get(f"{BASE_CLI}, broad rule -> {fmt_name} file")
        default = by.get(f"{BASE_CLI}, default rule -> {fmt_name} file")
        if broad and default:
            x = broad["work_s"] / default["work_s"]
            ok = x <= TARGET_MANY_HITS_RATIO and broad["rss_mb"] <= TARGET_MANY_HITS_RSS_MB
            out.append(
                f"- Many hits, {fmt_name} file: broad rule {fmt(broad['work_s'])} s, "
                f"{fmt(broad['rss_mb'], 0)} MB peak RSS, {hits(broad)}; default rule "
                f"{fmt(default['work_s'])} s, {fmt(default['rss_mb'], 0)} MB, {hits(default)}: "
                f"{x:.1f}x the time (target <= {TARGET_MANY_HITS_RATIO:g}x, <= "
                f"{TARGET_MANY_HITS_RSS_MB} MB): {_verdict(ok)}"
            )
    return out


def machine() -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        cpu = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next(
            line.split(":", 1)[1].strip() for line in cpu.splitlines() if "model name" in line
        )
    except (OSError, StopIteration):
        info["cpu"] = platform.processor() or "?"
    info["cores"] = str(os.cpu_count())
    try:
        mem = Path("/proc/meminfo").read_text().split()
        info["ram"] = f"{int(mem[mem.index('MemTotal:') + 1]) / (1 << 20):.1f} GiB"
    except (OSError, ValueError):
        info["ram"] = "?"
    info["os"] = f"{platform.system()} {platform.release()}"
    info["python"] = platform.python_version()

    def version(cmd: list[str]) -> str | None:
        if not shutil.which(cmd[0]):
            return None
        p = subprocess.run(cmd, capture_output=True, text=True)
        first = (p.stdout or p.stderr).strip().splitlines()
        if not first:
            return None
        text = first[0].strip("* ").split(", by ")[0]
        # "rustc 1.95.0 (…)" -> "1.95.0 (…)", "ripgrep 13.0.0" -> "13.0.0"
        words = text.split()
        return " ".join(w for w in words if any(c.isdigit() for c in w)) or text

    from importlib import metadata

    for pkg in ("imds-scan", "duckdb", "polars", "hyperscan", "orjson", "zstandard"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            info[pkg] = metadata.version(pkg)
    for key, cmd in (
        ("rustc", ["rustc", "--version"]),
        ("rg", ["rg", "--version"]),
        ("gzip", ["gzip", "--version"]),
        ("zstd", ["zstd", "--version"]),
    ):
        v = version(cmd)
        if v:
            info[key] = v
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "crates", "python"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        if commit:
            info["commit"] = commit + (" (+ uncommitted engine changes)" if dirty else "")
    except OSError:
        pass
    return info


def fmt(x: float | None, digits: int = 2) -> str:
    if x is None:
        return "-"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    m = meta["machine"]
    corpus = meta["corpus"]
    py_rows = [r for r in rows if r["group"] == "baseline" and r.get("mb_s")]
    py_mb = py_rows[0]["mb_s"] if py_rows else None
    lines = [
        f"### {meta['date']}: {corpus['bytes'] / 1e9:.2f} GB corpus, {meta['repeat']} rounds",
        "",
        f"Corpus: `{corpus['name']}` ({corpus['lines']:,} events, {corpus['bytes']:,} bytes, "
        f"{corpus['hits']} expected hits, seed {corpus['seed']}), from the page cache. "
        f"Median of {meta['repeat']} interleaved rounds. Command: `{meta['command']}`",
        "",
        f"Machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('ram')} RAM, {m.get('os')}; "
        + ", ".join(
            f"{k} {v}"
            for k, v in m.items()
            if k not in ("cpu", "cores", "ram", "os") and v is not None
        )
        + ".",
        "",
        "| # | tool | threads | wall s | scan s | MB/s | best MB/s | M events/s | x py "
        "| peak RSS MB | hits | expected | correct |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    notes: list[str] = []
    for i, r in enumerate(rows, 1):
        if r.get("ok") is True:
            ok = "yes"
        elif r.get("ok") is False:
            ok = "**NO**"
        else:
            ok = "n/a"
        if r.get("error") and r.get("hits") is None:
            ok = "**failed**"
        comparable = py_mb and r.get("mb_s") and r["group"] in ("imds-scan", "peer")
        speedup = r["mb_s"] / py_mb if comparable else None
        hits = r.get("hits")
        lines.append(
            f"| {i} | {r['name']} | {r['threads']} | {fmt(r.get('wall_s'))} | "
            f"{fmt(r.get('work_s'))} | {fmt(r.get('mb_s'), 1)} | {fmt(r.get('best_mb_s'), 1)} | "
            f"{fmt(r.get('mevents_s'), 3)} | "
            f"{fmt(speedup, 1)} | {fmt(r.get('rss_mb'), 0)} | "
            f"{'-' if hits is None else hits} | {r.get('expected', '-')} | {ok} |"
        )
        parts = [p for p in (r.get("note"), r.get("worker_notes")) if p]
        if r.get("setup_s") is not None and r.get("wall_s"):
            parts.append(f"process start-up + imports {r['setup_s'] * 1000:.0f} ms")
        if r.get("runs", 0) > 1 and r.get("wall_min_s") is not None:
            parts.append(f"wall {r['wall_min_s']:.2f}-{r['wall_max_s']:.2f} s over the rounds")
        if r.get("other_cpu_s", 0) > 0.2 * (r.get("wall_s") or 0) + 0.05:
            parts.append(
                f"**busy machine**: other processes took up to {r['other_cpu_s']:.1f} CPU-s "
                "during a run"
            )
        if r.get("worker_candidates") is not None:
            parts.append(f"{r['worker_candidates']} candidate lines")
        if r.get("compressed_bytes") and r.get("work_s"):
            per_s = r["compressed_bytes"] / 1e6 / r["work_s"]
            parts.append(f"{per_s:.0f} MB/s of compressed input")
        if r.get("error"):
            parts.append(f"error: {r['error']}")
        if r["input"] != corpus["name"]:
            parts.append(f"input `{r['input']}`")
        notes.append(f"{i}. {'; '.join(parts)}")
    lines += [
        "",
        "Times are medians over the rounds; 'best MB/s' uses the fastest round (the least "
        "disturbed on a shared machine). MB/s and events/s use the scan time: the wall time "
        "of the command, except for rows run "
        "through Python workers (API, DuckDB, Polars, hyperscan), where it is the time of the "
        "call measured inside the process (wall minus start-up). Peak RSS is that of the "
        "largest process (GNU time's %M when installed, else wait4's ru_maxrss); it counts the "
        "pages of a memory-mapped input (rg, hyperscan), which are page cache, not heap. "
        "'x py' is MB/s over the pure-Python engine's.",
        "",
        *notes,
    ]
    targets = target_lines(rows, meta)
    if targets:
        lines += ["", "Targets of issues 14, 15, 17 and 19 (reported, not asserted):", "", *targets]
    ratios = pack_ratios(rows)
    if ratios:
        lines += ["", f"Cost of `--pack {PACK}` (the default rule and the pack in one scan):", ""]
        lines += ratios
    if meta["notes"]:
        lines += ["", "Skipped or limited:", "", *(f"- {n}" for n in meta["notes"])]
    return "\n".join(lines) + "\n"


def chart(rows: list[dict[str, Any]], meta: dict[str, Any], dest: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    shown = [r for r in rows if r.get("mb_s") and r["lines"] > 1]
    colors = {True: "#2a9d8f", False: "#e76f51", None: "#8d99ae"}
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(shown) + 1.6))
    names = [r["name"] for r in shown][::-1]
    vals = [r["mb_s"] for r in shown][::-1]
    cols = [colors[r.get("ok")] for r in shown][::-1]
    bars = ax.barh(names, vals, color=cols)
    ax.set_xscale("log")
    ax.set_xlabel("MB/s of uncompressed NDJSON (log scale)")
    for bar, v in zip(bars, vals, strict=True):
        ax.text(v * 1.05, bar.get_y() + bar.get_height() / 2, f"{v:,.0f}", va="center", fontsize=8)
    m = meta["machine"]
    ax.set_title(
        f"imds-scan benchmark {meta['date']}: {meta['corpus']['bytes'] / 1e9:.2f} GB ECS NDJSON, "
        f"{m.get('cores')} cores ({m.get('cpu', '')[:40]})",
        fontsize=9,
    )
    from matplotlib.patches import Patch

    ax.legend(
        handles=[
            Patch(color=colors[True], label="hit count = expected"),
            Patch(color=colors[False], label="hit count wrong"),
            Patch(color=colors[None], label="no rule hit count (limit)"),
        ],
        loc="lower right",
        fontsize=8,
    )
    ax.set_xlim(right=max(vals) * 4)
    fig.tight_layout()
    fig.savefig(dest, dpi=110)
    plt.close(fig)
    return True


def update_readme(md: str, png: Path | None) -> None:
    text = README.read_text()
    block = [MARK_START, "", md.rstrip()]
    if png is not None:
        block += ["", f"![benchmark chart](results/{png.name})"]
    block += ["", MARK_END]
    new = "\n".join(block)
    if MARK_START in text and MARK_END in text:
        head, rest = text.split(MARK_START, 1)
        text = head + new + rest.split(MARK_END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + new + "\n"
    README.write_text(text)


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size", default="1G", help="corpus size, e.g. 1G, 200M (default 1G)")
    ap.add_argument("--seed", type=int, default=7, help="corpus seed (default 7)")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument(
        "--python-size",
        default="200M",
        help="largest corpus the pure-Python engine scans; above it, it runs on a corpus of "
        "this size and the same seed and its MB/s is extrapolated (default 200M)",
    )
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=60,
        help="before each run, wait up to this many seconds for other processes to leave the "
        "CPUs idle (default 60; 0 = never wait). Runs disturbed anyway are flagged.",
    )
    ap.add_argument("--only", help="comma-separated substrings: run only the matching cases")
    ap.add_argument("--no-compressed", action="store_true", help="no gzip/zstd copies or rows")
    ap.add_argument(
        "--noise-rate",
        type=float,
        default=0.05,
        help="the noisy corpus's share of lines that carry the rule's literals without matching "
        "(default 0.05; 0 = no noisy corpus)",
    )
    ap.add_argument(
        "--rules-commit",
        default=elastic_rules.COMMIT,
        help="elastic/detection-rules commit of the rule-count sweep (default: the pinned one)",
    )
    ap.add_argument(
        "--rules-from",
        type=Path,
        help="a local copy of elastic/detection-rules (or its rules/) instead of fetching it",
    )
    ap.add_argument("--no-sweep", action="store_true", help="no Elastic rule-count sweep")
    ap.add_argument("--no-kql", action="store_true", help="no Elastic KQL rule cases (issue 19)")
    ap.add_argument("--data", type=Path, default=BENCH / "data", help="corpus directory")
    ap.add_argument("--results", type=Path, default=BENCH / "results", help="output directory")
    ap.add_argument(
        "--no-readme", action="store_true", help="do not put the table into bench/README.md"
    )
    args = ap.parse_args(argv)

    notes: list[str] = []
    size = args.size.upper()
    corpus = ensure_corpus(args.data, size, args.seed)
    compressed = {} if args.no_compressed else ensure_compressed(corpus, notes)
    py_corpus = corpus
    if parse_size(args.python_size) < corpus.bytes:
        py_corpus = ensure_corpus(args.data, args.python_size.upper(), args.seed)
    # What the seed rule looks for, from the engine: rg's needles, and the file the peers
    # read it from (so that they need not import imds_scan).
    seed = engine_rule()
    needles = args.data / "needles.txt"
    needles.write_text("\n".join(seed.needles) + "\n")
    rule_file = args.data / "seed-rule.json"
    seed.write(rule_file)
    tiny = args.data / "one-line.ndjson"
    with open(corpus.path, "rb") as f:
        tiny.write_bytes(f.readline())

    cores = os.cpu_count() or 1
    shards = ensure_shards(corpus, cores) if cores > 1 else None

    def wanted(*names: str) -> bool:
        return not args.only or any(o in n for n in names for o in args.only.split(","))

    noisy = None
    if args.noise_rate and wanted(f"imds-scan CLI, 2 threads, {NOISY}", f"{HS_2}, {NOISY}"):
        noisy = ensure_corpus(args.data, size, args.seed, args.noise_rate)
    sweep = None
    # The sweep's case names before its rules are counted (N unknown): enough for --only.
    sweep_names = [f"{BASE_CLI}, {n} Elastic rules" for n in ("1", "10", "100")]
    sweep_names += [
        f"{BASE_CLI}, all Elastic rules (all accepted)",
        f"{BASE_CLI}, single-event Elastic rules (all accepted)",
        "rule loading, Elastic rules",
        "imds-scan CLI start-up, Elastic rules (1-line input)",
    ]
    if not args.no_sweep and wanted(*sweep_names):
        try:
            sweep = elastic_rules.prepare(args.rules_commit, args.data, args.rules_from)
        except SystemExit as exc:
            notes.append(f"Elastic rule-count sweep skipped: {exc}")
    kql = None
    if not args.no_kql and wanted(*KQL_ROWS):
        try:
            kql = elastic_rules.prepare_kql(args.rules_commit, args.data, args.rules_from)
        except SystemExit as exc:
            notes.append(f"KQL cases skipped: {exc}")
    cases = build_cases(
        corpus,
        compressed,
        py_corpus,
        needles,
        rule_file,
        tiny,
        shards,
        args,
        notes,
        noisy=noisy,
        sweep=sweep,
        kql=kql,
    )
    log(f"{len(cases)} cases x {args.repeat} rounds; warming the page cache")
    inputs = {c.input for c in cases if c.input.is_file()}
    if shards is not None:
        inputs.update(shards[1])
    warm_cache(sorted(inputs))
    started = time.time()
    runs = run_all(cases, args.repeat, args.quiet_wait)
    log(f"timed runs took {time.time() - started:.0f} s")

    rows = [summarize(c, runs[c.name]) for c in cases]
    today = dt.date.today().isoformat()
    meta: dict[str, Any] = {
        "date": today,
        "repeat": args.repeat,
        "command": "python3 bench/harness.py "
        + " ".join(a for a in (argv if argv is not None else sys.argv[1:])),
        "machine": machine(),
        "corpus": {
            "name": corpus.path.name,
            "bytes": corpus.bytes,
            "lines": corpus.lines,
            "hits": corpus.hits,
            "seed": args.seed,
        },
        "notes": notes,
    }
    if noisy is not None:
        meta["noisy_corpus"] = {
            "name": noisy.path.name,
            "bytes": noisy.bytes,
            "lines": noisy.lines,
            "hits": noisy.hits,
            "noise_lines": noisy.expected.get("noise_lines"),
        }
    if sweep is not None:
        meta["elastic_rules"] = {k: sweep[k] for k in ("commit", "files", "accepted")}
    if kql is not None:
        meta["kql"] = {k: kql[k] for k in ("commit", "files", "accepted")}
    meta["command"] = meta["command"].strip()
    args.results.mkdir(parents=True, exist_ok=True)
    stem = args.results / f"{today}-{size}"
    md = markdown(rows, meta)
    Path(f"{stem}.md").write_text(md)
    Path(f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    png = Path(f"{stem}.png")
    drawn = chart(rows, meta, png)
    if not drawn:
        notes.append("matplotlib not installed: no chart")
    if not args.no_readme:
        update_readme(md, png if drawn else None)
    print(md)
    log(f"wrote {stem}.md, .json{', .png' if drawn else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
