"""Inputs at archive scale, measured in one run (issue 4): imds-scan on gzip and zstd copies of
a corpus next to `gzip -dc` / `zstd -dc` of the same files, the speed-up from 1 to 2 threads,
and peak RSS while scanning a large input.

    python3 bench/inputs_probe.py --corpus /work/data/ecs-1g.ndjson --big /work/data/ecs-5g.ndjson
    python3 bench/inputs_probe.py --long-lines /tmp/long-lines   # peak RSS for long lines only
    python3 bench/inputs_probe.py --ctrl-c --corpus bench/data/ecs-1G-s7.ndjson   # Ctrl-C latency

The compressed copies (`CORPUS.gz`, gzip -6; `CORPUS.zst`, zstd -3) are made next to the
corpus when missing. Every case runs as its own process (the CLI, `-f ndjson -q`, hits
counted from stdout and checked against `CORPUS.expected.json`); wall time and peak RSS
(`ru_maxrss` from wait4) are measured from outside. MB/s is of uncompressed bytes.

`--long-lines DIR` measures instead the memory of long lines (docs/inputs.md, "Memory is
bounded"): one line of 60 MB and one of 200 MB that hold the metadata address (so the prefilter
passes them to the parser) but are no hit, a gzip of 1 GiB of zeros without a newline (about 1
MB) and ten copies of it together, each case one CLI process; the files are made in DIR when
missing.

`--ctrl-c` measures instead how long the CLI takes to stop after SIGINT (docs/inputs.md: "Ctrl-C
stops the scan within a buffer's time"): on an endless line (`/dev/zero`) and on the corpus,
plain (the Rust engine with `--no-prefilter`, else it is done before the signal) and gzip, each
engine; SIGINT is sent 1 s after start, and the exit code must be 130.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CLI = [sys.executable, "-m", "imds_scan"]


def run(
    cmd: list[str], stdout_to_null: bool = False, ok: tuple[int, ...] = (0, 1)
) -> tuple[float, float, bytes, float]:
    """(wall seconds, peak RSS MiB, stdout, CPU seconds) of one command."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL if stdout_to_null else subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out = b"" if proc.stdout is None else proc.stdout.read()
    err = b"" if proc.stderr is None else proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code not in ok:
        raise SystemExit(f"{cmd} exited {code}: {err.decode(errors='replace')}")
    return wall, usage.ru_maxrss / 1024, out, usage.ru_utime + usage.ru_stime


def ensure_copies(corpus: Path) -> dict[str, Path]:
    copies = {"gzip": Path(f"{corpus}.gz"), "zstd": Path(f"{corpus}.zst")}
    for kind, path in copies.items():
        if not path.exists():
            tool = ["gzip", "-6", "-c"] if kind == "gzip" else ["zstd", "-3", "-q", "-c"]
            with path.open("wb") as out:
                subprocess.run([*tool, str(corpus)], stdout=out, check=True)
    return copies


def expected_hits(corpus: Path) -> int | None:
    meta = Path(f"{corpus}.expected.json")
    return json.loads(meta.read_text())["hits"] if meta.exists() else None


def scan_case(name: str, inputs: list[Path], threads: int, size: int, want: int | None) -> dict:
    cmd = [*CLI, *map(str, inputs), "-f", "ndjson", "-q", "--threads", str(threads)]
    wall, rss, out, cpu = run(cmd)
    hits = out.count(b"\n")
    return {
        "case": name,
        "threads": threads,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "MB/s": round(size / 1e6 / wall),
        "peak_rss_MiB": round(rss),
        "hits": hits,
        "correct": None if want is None else hits == want,
    }


def long_line_files(workdir: Path) -> dict[str, tuple[Path, int]]:
    """The inputs of --long-lines: name -> (path, length of its longest line in bytes)."""
    workdir.mkdir(parents=True, exist_ok=True)
    files: dict[str, tuple[Path, int]] = {}
    sizes = (("one short line", 0), ("60 MB line", 60_000_000), ("200 MB line", 200_000_000))
    for name, size in sizes:
        path = workdir / f"line-{size}.ndjson"
        head = '{"message":"curl http://169.254.169.254/latest/meta-data/ '
        if not path.exists():
            # A needle, but no event.category: no hit. Written in pieces: this process stays
            # small, so the peak RSS of the scans it forks is theirs.
            with path.open("w") as out:
                out.write(head)
                left = max(0, size - len(head) - 2)
                while left:
                    out.write("x" * min(left, 1 << 20))
                    left -= min(left, 1 << 20)
                out.write('"}\n')
        files[name] = (path, max(size, len(head) + 2))
    zeros = workdir / "zeros-1g.gz"
    if not zeros.exists():  # one 1 GiB line: 1024 gzip members of 1 MiB of zeros
        with zeros.open("wb") as out:
            out.write(gzip.compress(bytes(1 << 20)) * 1024)
    files["1 GiB of zeros, gzip"] = (zeros, 1 << 30)
    return files


def long_lines(workdir: Path) -> None:
    """Peak RSS of long lines, evaluated (up to --max-line-bytes) or read past."""
    files = long_line_files(workdir)
    cases = [
        ("one short line", "rust", []),
        ("60 MB line", "rust", []),
        ("200 MB line", "rust", []),
        ("200 MB line", "rust", ["--max-line-bytes", "256M"]),
        ("1 GiB of zeros, gzip", "rust", []),
        ("10 x 1 GiB of zeros", "rust", []),
        ("one short line", "python", []),
        ("60 MB line", "python", []),
        ("200 MB line", "python", []),
        ("1 GiB of zeros, gzip", "python", []),
    ]
    base: dict[str, float] = {}
    print(f"{'input':<22} {'engine':<7} {'options':<24} {'exit':>4} {'RSS MiB':>8} {'x line':>7}")
    for name, engine, extra in cases:
        if name.startswith("10 x"):  # ten inputs (copies, not one path ten times)
            path, length = files["1 GiB of zeros, gzip"]
            paths = []
            for k in range(10):
                copy = workdir / f"zeros-1g-{k}.gz"
                if not copy.exists():
                    shutil.copyfile(path, copy)
                paths.append(str(copy))
        else:
            path, length = files[name]
            paths = [str(path)]
        cmd = [*CLI, *paths, "-q", "-f", "ndjson", "--engine", engine, *extra]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        code, rss = os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024
        evaluated = length <= (256 << 20 if extra else 64 << 20)
        if name == "one short line":
            base[engine] = rss
        ratio = (rss - base[engine]) * (1 << 20) / length if evaluated and length > 1e6 else None
        print(
            f"{name:<22} {engine:<7} {' '.join(extra) or '(default 64M)':<24} "
            f"{code:>4} {rss:>8.0f} "
            f"{'-' if ratio is None else f'{ratio:.2f}':>7}"
        )
    print("x line: (peak RSS - the engine's RSS for one short line) / line length, when evaluated")


def ctrl_c(corpus: Path) -> None:
    """Seconds from SIGINT to exit, and the exit code, per input and engine."""
    import signal

    inputs = [("/dev/zero (one endless line)", Path("/dev/zero"))]
    if corpus.exists():
        inputs += [("corpus, plain", corpus), ("corpus, gzip", ensure_copies(corpus)["gzip"])]
    print(f"{'input':<30} {'engine':<7} {'exit':>4} {'stop s':>7}")
    for name, path in inputs:
        for engine in ("rust", "python"):
            cmd = [*CLI, str(path), "-q", "-f", "ndjson", "--engine", engine]
            if name == "corpus, plain" and engine == "rust":  # else done within the second
                cmd.append("--no-prefilter")
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
            sent = time.perf_counter()
            proc.send_signal(signal.SIGINT)
            try:
                code = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            print(f"{name:<30} {engine:<7} {code:>4} {time.perf_counter() - sent:>7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=Path("/work/data/ecs-1g.ndjson"))
    parser.add_argument("--big", type=Path, help="a large plain input for peak RSS (e.g. 5 GB)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--long-lines", type=Path, metavar="DIR", help="see above")
    parser.add_argument("--ctrl-c", action="store_true", help="see above")
    args = parser.parse_args()
    if args.ctrl_c:
        ctrl_c(args.corpus)
        return
    if args.long_lines:
        long_lines(args.long_lines)
        return
    corpus: Path = args.corpus
    size = corpus.stat().st_size
    want = expected_hits(corpus)
    copies = ensure_copies(corpus)
    for path in [corpus, *copies.values()]:  # from the page cache, like the others
        subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)

    rows: list[dict[str, Any]] = []
    for kind, tool in (("gzip", "gzip"), ("zstd", "zstd")):
        if shutil.which(tool):
            wall, rss, _, cpu = run([tool, "-dc", str(copies[kind])], stdout_to_null=True)
            rows.append(
                {
                    "case": f"{tool} -dc > /dev/null",
                    "threads": 1,
                    "wall_s": round(wall, 2),
                    "cpu_s": round(cpu, 2),
                    "MB/s": round(size / 1e6 / wall),
                    "peak_rss_MiB": round(rss),
                    "hits": None,
                    "correct": None,
                }
            )
        for threads in (1, 2):
            rows.append(scan_case(f"imds-scan {kind}", [copies[kind]], threads, size, want))
    for threads in (1, 2):
        rows.append(scan_case("imds-scan plain", [corpus], threads, size, want))
    rows.append(
        scan_case(
            "imds-scan gzip + zstd (2 files)",
            [copies["gzip"], copies["zstd"]],
            2,
            2 * size,
            None if want is None else 2 * want,
        )
    )
    if args.big:
        big_size = args.big.stat().st_size
        rows.append(
            scan_case(
                f"imds-scan plain {big_size / 1e9:.1f} GB",
                [args.big],
                2,
                big_size,
                expected_hits(args.big),
            )
        )
    by = {(r["case"], r["threads"]): r for r in rows}
    print(f"corpus {corpus} ({size / 1e6:,.0f} MB, {want} hits), {os.cpu_count()} cores")
    load = os.getloadavg()[0]
    print(f"load average at the end: {load:.2f} (other processes share the cores when > 0)")
    print(
        f"{'case':<38} {'thr':>3} {'wall s':>7} {'cpu s':>6} {'MB/s':>6} {'RSS MiB':>8} "
        f"{'hits':>6} ok"
    )
    for r in rows:
        print(
            f"{r['case']:<38} {r['threads']:>3} {r['wall_s']:>7} {r['cpu_s']:>6} {r['MB/s']:>6} "
            f"{r['peak_rss_MiB']:>8} {r['hits'] if r['hits'] is not None else '-':>6} "
            f"{'-' if r['correct'] is None else 'yes' if r['correct'] else 'NO'}"
        )
    for kind in ("plain", "gzip", "zstd"):
        one, two = by[(f"imds-scan {kind}", 1)], by[(f"imds-scan {kind}", 2)]
        print(f"speed-up 1 -> 2 threads, {kind}: {one['wall_s'] / two['wall_s']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
