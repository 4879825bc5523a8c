"""The command line: writes the corpus (NDJSON or gzip) in large chunks and, beside it,
OUT.expected.json with the counts known by construction."""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import re
import sys
import time

from .generator import Generator

GENERATOR_VERSION = 2
DESCRIPTION = (
    "Deterministic generator of realistic ECS NDJSON security logs for imds-scan benchmarks."
)


def parse_size(text: str) -> int:
    """'1G', '100M', '512k', '2000' -> bytes (K/M/G are powers of 1024)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)(?:i?[bB])?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"bad size {text!r} (use e.g. 1G, 100M, 512K)")
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]
    n = int(float(m.group(1)) * mult)
    if n <= 0:
        raise argparse.ArgumentTypeError("size must be positive")
    return n


def rate(text: str) -> float:
    v = float(text)
    if not 0.0 <= v <= 0.5:
        raise argparse.ArgumentTypeError("rate must be within [0, 0.5]")
    return v


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--size",
        type=parse_size,
        default=parse_size("100M"),
        help="target size of the (uncompressed) NDJSON, e.g. 2M, 100M, 1G (default 100M)",
    )
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ap.add_argument(
        "--tp-rate", type=rate, default=0.0005, help="fraction of lines that are planted hits"
    )
    ap.add_argument(
        "--near-miss-rate", type=rate, default=0.002, help="fraction of lines that are near misses"
    )
    ap.add_argument(
        "--noise-rate",
        type=rate,
        default=0.0,
        help="fraction of lines that carry the seed rule's literals without matching it "
        "(cloud agents polling the metadata service; default 0)",
    )
    ap.add_argument("--out", required=True, help="output path; counts go to OUT.expected.json")
    ap.add_argument(
        "--format",
        choices=("ndjson", "gz"),
        default="ndjson",
        help="ndjson (default) or gz (gzip level 6 of the same bytes)",
    )
    ap.add_argument("--quiet", action="store_true", help="no summary on stderr")
    a = ap.parse_args(argv)
    if a.tp_rate + a.near_miss_rate + a.noise_rate > 0.5:
        ap.error("tp-rate + near-miss-rate + noise-rate must not exceed 0.5")

    t0 = time.perf_counter()
    gen = Generator(a.seed, a.size, a.tp_rate, a.near_miss_rate, a.noise_rate)
    hits_by_branch = {"network": 0, "process": 0}
    n_lines = n_bytes = n_nm = n_noise = 0
    target = a.size
    chunk: list[str] = []
    chunk_bytes = 0
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(open(a.out, "wb"))
        if a.format == "gz":
            # No file name or time in the gzip header: the same arguments, the same bytes.
            out = stack.enter_context(
                gzip.GzipFile(filename="", mode="wb", compresslevel=6, fileobj=out, mtime=0)
            )
        for line, label in gen.lines():
            b = (len(line) if line.isascii() else len(line.encode())) + 1
            chunk.append(line)
            chunk_bytes += b
            n_lines += 1
            n_bytes += b
            if label is not None:
                if label[0] == "tp":
                    hits_by_branch[label[1]] += 1
                elif label[0] == "noise":
                    n_noise += 1
                else:
                    n_nm += 1
            if chunk_bytes >= 1 << 22 or n_bytes >= target:
                chunk.append("")
                out.write("\n".join(chunk).encode())
                chunk.clear()
                chunk_bytes = 0
                if n_bytes >= target:
                    break
    elapsed = time.perf_counter() - t0
    expected = {
        "lines": n_lines,
        "bytes": n_bytes,
        "hits": hits_by_branch["network"] + hits_by_branch["process"],
        "hits_by_branch": hits_by_branch,
        "near_misses": n_nm,
        "seed": a.seed,
        "tp_rate": a.tp_rate,
        "near_miss_rate": a.near_miss_rate,
        "size_target": a.size,
        "format": a.format,
        "generator_version": GENERATOR_VERSION,
        "planted_hits_by_variant": dict(sorted(gen.planted_tp.items())),
        "planted_near_misses_by_variant": dict(sorted(gen.planted_nm.items())),
        "planted_modifiers": dict(sorted(gen.modifiers.items())),
    }
    if a.noise_rate:  # only then: the keys of a corpus without noise stay as they were
        expected["noise_rate"] = a.noise_rate
        expected["noise_lines"] = n_noise
        expected["noise_by_variant"] = dict(sorted(gen.planted_noise.items()))
    with open(a.out + ".expected.json", "w", encoding="utf-8") as f:
        json.dump(expected, f, indent=2, ensure_ascii=False)
        f.write("\n")
    if not a.quiet:
        print(
            f"wrote {a.out}: {n_lines} lines, {n_bytes} bytes, {expected['hits']} hits "
            f"({hits_by_branch['network']} network, {hits_by_branch['process']} process), "
            f"{n_nm} near misses, {n_noise} noise lines "
            f"in {elapsed:.1f}s ({n_bytes / elapsed / 1e6:.1f} MB/s; "
            f"{gen.guard_rejects} benign lines redrawn by the literal guard)",
            file=sys.stderr,
        )
    return 0
