"""Start-up: a plain scan (NDJSON out, no summary, no config) imports only what it uses. Polars,
Rich, Typer (the CLI reads a plain command line itself: the fast path), the config machinery,
the TOML parser (once the rule cache holds the bundled rule) and the EQL compiler's parser
tables stay unloaded; `import imds_scan` loads a module of the API only when one of its names
is used. The fast path reads its options as Click does, and gives the output Typer's gives."""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EVENT = {
    "@timestamp": "2024-05-06T00:59:04.180Z",
    "event": {"category": ["network"], "type": ["start"]},
    "host": {"name": "web-1"},
    "process": {"name": "curl", "executable": "/usr/bin/curl"},
    "destination": {"ip": "169.254.169.254", "port": 80},
    "url": {"full": "http://169.254.169.254/latest/meta-data/"},
}
# Never needed by a plain scan.
HEAVY = ("polars", "rich", "imds_scan.report.aggregate", "imds_scan.report.html")
# Not needed to read a plain command line (cli._fast_params).
TYPER = ("typer", "typer.main", "click", "typer._click")
# Not needed once the rule cache holds the bundled rule (whose entry is found without a
# cryptographic hash), nor without a config or allowlist; the EQL compiler (its module alone
# costs ~25 ms) is only needed to compile a rule the cache does not hold.
LAZY = ("tomllib", "imds_scan.config", "hashlib", "imds_scan.eql")
# Only a scan with --cluster needs the cluster module (and its dataclasses, ~5 ms).
CLUSTER = ("imds_scan.cluster",)
# Only a sequence, sample, new_terms or threshold rule needs the sequence machinery; only an
# input without hits the look at its shape (not ECS?); nothing of a plain scan pathlib (with
# urllib.parse and ipaddress, ~5 ms).
LAYERS = ("imds_scan.sequences", "imds_scan.shape", "pathlib")


def module_names(importtime: str) -> set[str]:
    """The modules named in ``-X importtime`` output."""
    return set(re.findall(r"^import time:.*\|\s*(\S+)\s*$", importtime, re.MULTILINE))


@functools.cache
def at_start_up() -> frozenset[str]:
    """What the interpreter imports before any of ours: site's .pth files may import pathlib."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "pass"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return frozenset(module_names(done.stderr))


def imported(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run the CLI with -X importtime; the modules it imported."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "imds_scan", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )
    names = module_names(done.stderr)
    assert "imds_scan.cli" in names, done.stderr[-2000:]
    return done, names


@pytest.mark.parametrize("to_file", [True, False])
def test_a_plain_scan_imports_neither_polars_nor_rich(tmp_path: Path, to_file: bool) -> None:
    events = tmp_path / "events.ndjson"
    events.write_text(json.dumps(EVENT) + "\n", encoding="utf-8")
    out = ["--output", str(tmp_path / "hits.ndjson")] if to_file else ["-f", "ndjson"]
    first, _ = imported(str(events), "-q", *out, cwd=tmp_path)
    assert first.returncode == 1, first.stderr[-2000:]
    done, names = imported(str(events), "-q", *out, cwd=tmp_path)  # the rule cache is warm
    assert done.returncode == 1, done.stderr[-2000:]
    hits = (tmp_path / "hits.ndjson").read_text("utf-8") if to_file else done.stdout
    assert hits.count("\n") == 1
    for module in HEAVY + TYPER + LAZY + CLUSTER + LAYERS:
        if module not in at_start_up():
            assert module not in names, f"{module} imported by a plain scan"


def test_an_input_without_hits_still_gets_its_shape_looked_at(tmp_path: Path) -> None:
    """The converse for imds_scan.shape: an input without hits is looked at (is it ECS?)."""
    events = tmp_path / "events.ndjson"
    events.write_text(json.dumps({"message": "not ECS"}) + "\n", encoding="utf-8")
    done, names = imported(str(events), "-f", "ndjson", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "imds_scan.shape" in names
    assert "does not look like ECS" in done.stderr, done.stderr[-2000:]


def test_the_summary_still_gets_polars(tmp_path: Path) -> None:
    """The converse, so that the check above cannot pass by not seeing imports at all."""
    events = tmp_path / "events.ndjson"
    events.write_text(json.dumps(EVENT) + "\n", encoding="utf-8")
    done, names = imported(str(events), "-q", "-f", "ndjson", "--summary", cwd=tmp_path)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "polars" in names


def test_a_config_file_still_loads_the_config_machinery(tmp_path: Path) -> None:
    events = tmp_path / "events.ndjson"
    events.write_text(json.dumps(EVENT) + "\n", encoding="utf-8")
    config = tmp_path / "c.toml"
    config.write_text('[allowlist]\n"process.name" = ["curl"]\n', encoding="utf-8")
    done, names = imported(str(events), "-q", "-f", "ndjson", "--config", str(config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]  # the allowlist dropped the hit
    assert {"tomllib", "imds_scan.config"} <= names


def test_the_package_loads_api_modules_when_used() -> None:
    code = (
        "import sys, imds_scan\n"
        "before = {m for m in sys.modules if m.startswith('imds_scan.')}\n"
        "from imds_scan import scan, iter_scan, ScanConfig, Rule, EqlError, default_rules\n"
        "from imds_scan import Engine, FileResult, FilterError, Hit, HitIterator, InputError\n"
        "from imds_scan import ScanInterrupted, ScanResult, ScanStats, compile_rule\n"
        "from imds_scan import expand_inputs, run_scan\n"
        "import imds_scan.run, imds_scan.records\n"
        "assert scan is imds_scan.run.scan and Hit is imds_scan.records.Hit\n"
        "assert set(imds_scan.__all__) <= set(dir(imds_scan))\n"
        "try:\n"
        "    imds_scan.nothing\n"
        "except AttributeError as exc:\n"
        "    assert 'nothing' in str(exc)\n"
        "else:\n"
        "    raise SystemExit('no AttributeError')\n"
        "print(sorted(before))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"  # `import imds_scan` alone loads none of its modules


def test_a_command_line_typer_must_read_still_gets_it(tmp_path: Path) -> None:
    """The converse: an option the fast path leaves to Typer, and a usage error it finds."""
    events = tmp_path / "events.ndjson"
    events.write_text(json.dumps(EVENT) + "\n", encoding="utf-8")
    done, names = imported(
        str(events), "-q", "-f", "ndjson", "--field-type", "a=long", cwd=tmp_path
    )
    assert done.returncode == 1, done.stderr[-2000:]
    assert "typer" in names
    done, names = imported(str(events), "-f", "parquet", cwd=tmp_path)
    assert done.returncode == 2
    assert "Invalid value for '--format': parquet is binary" in done.stderr
    assert "typer" in names


# ------------------------------------------------------------------ the fast path


def test_the_fast_path_reads_each_option_as_click_does() -> None:
    """Its tables against the Click command: same names, repeatable or not, flags and their
    values, integer minimums, choices; every other option is left to Typer on purpose."""
    import typer

    from imds_scan import cli

    command = typer.main.get_command(cli.app)
    params = {p.name: p for p in command.params}
    options = [p for p in command.params if p.param_type_name == "option"]
    by_opt = {opt: p for p in options for opt in (*p.opts, *p.secondary_opts)}
    fast = set(cli._FAST_VALUES.values()) | {name for name, _ in cli._FAST_FLAGS.values()}
    # Typer reads these: they have callbacks (eager ones, or a check of their own).
    assert set(params) - fast - {"paths"} == {"field_type", "config_file", "version"}
    assert set(cli._FAST_VALUES) | set(cli._FAST_FLAGS) == set(by_opt) - {
        "--field-type",
        "--config",
        "--version",
    }
    for opt, name in cli._FAST_VALUES.items():
        p = by_opt[opt]
        assert (p.name, p.nargs, p.is_flag, p.is_eager) == (name, 1, False, False), opt
        assert p.multiple == (name in cli._FAST_LISTS), opt
        if name in cli._FAST_INTS:
            assert (p.type.min, p.type.max) == (cli._FAST_INTS[name], None), opt
        elif name in cli._FAST_CHOICES:
            choices = {getattr(c, "value", c) for c in p.type.choices}
            assert choices == {m.value for m in cli._FAST_CHOICES[name]}, opt
            assert p.type.case_sensitive, opt
        else:
            assert type(p.type).__name__ == "StringParamType", opt
    for opt, (name, value) in cli._FAST_FLAGS.items():
        p = by_opt[opt]
        # --no-config is eager (it reads the config with --config): the fast path, which
        # never reads one, has only to skip looking for one.
        assert (p.name, p.is_flag, p.is_eager) == (name, True, opt == "--no-config"), opt
        assert value == (opt in p.opts), opt
    # The defaults the fast path starts from are the command's.
    defaults = cli._fast_params(["x"])
    assert defaults is not None
    for name, p in params.items():
        if name in fast:
            assert defaults[name] == p.default or (p.default is None and not defaults[name]), name


# A hit of the default rule; (arguments, whether the fast path runs them to the end).
FAST_CASES = [
    (["{events}", "-f", "ndjson", "-q"], True),
    (["{events}", "--format=ndjson", "--quiet", "--threads", "1"], True),
    (["-q", "-f", "json", "--", "{events}"], True),
    (["{events}", "-q", "-o", "hits.ndjson"], True),
    (["{events}", "-q", "--output=hits.csv", "--no-summary", "--max-hits", "1"], True),
    (
        ["{events}", "-f", "csv", "-q", "--host", "web-*", "--host", "db-*", "--exclude-host", "x"],
        True,
    ),
    (["{events}", "-q", "-f", "ndjson", "--since", "2024-01-01", "--until", "2030-01-01"], True),
    (["{events}", "-q", "-f", "ndjson", "--engine", "python", "--no-prefilter"], True),
    (["{events}", "-q", "-f", "ndjson", "--pack", "hardened", "--rule", "default"], True),
    (
        ["{events}", "-q", "-f", "ndjson", "--preset", "cloud-agents", "--allow", "user.id == 1"],
        True,
    ),
    (["{events}", "-q", "-f", "table", "--max-table-rows", "0", "--no-rule-cache"], True),
    (["{events}", "-q", "-f", "ndjson", "--range-size", "1M", "--max-line-bytes", "1K"], True),
    (["{events}", "--show-rule", "--skip-unsupported-rules"], True),
    (["--no-config", "{events}", "-q", "-f", "ndjson"], True),
    (["{events}", "--no-config", "--no-config", "-q", "-o", "hits.ndjson"], True),
    (["{events}", "-q", "-f", "ndjson", "-o", "--no-config"], True),  # a file named so
    (["{events}", "-q", "-o", "--odd.ndjson"], True),  # Click takes it as the value
    (["missing.ndjson", "-q", "-f", "ndjson"], True),
    (["{events}", "-q", "--mapping", "missing.json"], True),
    (["{events}", "-q", "--allow", "process.name ==", "-f", "ndjson"], True),
    # Usage errors: Typer words them (the fast path found them, or left them to it).
    (["{events}", "-f", "parquet"], False),
    (["{events}", "-o", "hits.unknown"], False),
    (["{events}", "--report", "r.txt"], False),
    (["{events}", "--since", "someday"], False),
    (["{events}", "--range-size", "12Q"], False),
    (["{events}", "-f", "xml"], False),
    (["{events}", "--engine", "PYTHON"], False),
    (["{events}", "--threads", "-1"], False),
    (["{events}", "-q", "-f", "ndjson", "--threads", "9999"], False),
    (["{events}", "--max-hits", "0"], False),
    (["{events}", "--no-config", "--config", "c.toml"], False),
    (["{events}", "--no-config=1"], False),
    (["{events}", "--nope"], False),
    (["{events}", "-f"], False),
    (["{events}", "--quiet=1"], False),
    (["{events}", "-qf", "ndjson"], False),
    ([], False),
    (["-q"], False),
]
RUN = (
    "import sys\n"
    "from imds_scan import cli\n"
    "if sys.argv.pop(1) == 'typer':\n"
    "    cli._fast_params = lambda args: None\n"
    "sys.argv[0] = 'imds-scan'\n"
    "try:\n"
    "    cli.main()\n"
    "finally:\n"
    "    print('typer loaded:', 'typer' in sys.modules, file=sys.stderr)\n"
)


def run_as(
    how: str, args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> tuple[int, str, str, str, bool]:
    done = subprocess.run(
        [sys.executable, "-c", RUN, how, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
    )
    stderr, _, loaded = done.stderr.rpartition("typer loaded: ")
    written = sorted(p.name for p in cwd.iterdir() if p.name != "events.ndjson")
    files = "".join(f"{name}:{(cwd / name).read_text('utf-8')}" for name in written)
    return done.returncode, done.stdout, stderr, files, loaded.strip() == "True"


@pytest.mark.parametrize(("args", "fast"), FAST_CASES, ids=[" ".join(a) for a, _ in FAST_CASES])
def test_the_fast_path_gives_what_typer_gives(tmp_path: Path, args: list[str], fast: bool) -> None:
    results = []
    for how in ("fast", "typer"):
        cwd = tmp_path / how
        cwd.mkdir()
        events = cwd / "events.ndjson"
        events.write_text(json.dumps(EVENT) + "\n", encoding="utf-8")
        results.append(run_as(how, [a.format(events="events.ndjson") for a in args], cwd))
    (code, out, err, files, loaded), typer_run = results
    assert (code, out, err, files) == typer_run[:4]
    assert loaded is not fast  # the case took the path it is meant to test
    assert typer_run[4]


@pytest.mark.parametrize("where", ["env", "user"])
def test_no_config_takes_the_fast_path_past_a_config(tmp_path: Path, where: str) -> None:
    """A config that would hide the hit ($IMDS_SCAN_CONFIG, or the user's own file): Typer's
    path reads it; with --no-config the fast path runs, reads none, and says what Typer says."""
    config = tmp_path / "config.toml"
    config.write_text('[allowlist]\n"process.name" = ["curl"]\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "IMDS_SCAN_CONFIG"}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    if where == "env":
        env["IMDS_SCAN_CONFIG"] = str(config)
    else:
        (tmp_path / "xdg" / "imds-scan").mkdir(parents=True)
        config.replace(tmp_path / "xdg" / "imds-scan" / "config.toml")
    results = {}
    for how, extra in (("fast", ["--no-config"]), ("typer", ["--no-config"]), ("fast", [])):
        cwd = tmp_path / f"{how}{len(extra)}"
        cwd.mkdir()
        (cwd / "events.ndjson").write_text(json.dumps(EVENT) + "\n", encoding="utf-8")
        args = ["events.ndjson", "-q", "-f", "ndjson", *extra]
        results[how, len(extra)] = run_as(how, args, cwd, env)
    code, out, err, files, loaded = results["fast", 1]
    assert (code, out, err, files) == results["typer", 1][:4]
    assert code == 1 and out.count("\n") == 1 and not loaded
    code, out, err, _, loaded = results["fast", 0]  # the config is read: by Typer's path
    assert (code, out, loaded) == (0, "", True)
    assert "config:" in err and "sets allowlist" in err


def test_a_plain_scan_in_a_bare_interpreter_leaves_zipfile_unloaded(tmp_path: Path) -> None:
    """Without site's .pth files (some environments import certifi, hence importlib.resources
    and zipfile, into every interpreter): the bundled rule is read as a file, not through
    importlib.resources' reader (zipfile and more)."""
    events = tmp_path / "events.ndjson"
    events.write_text(json.dumps(EVENT) + "\n", encoding="utf-8")
    code = (
        "import json, sys\n"
        "sys.path[:] = json.loads(sys.argv.pop(1))\n"
        "sys.argv[0] = 'imds-scan'\n"
        "from imds_scan.cli import main\n"
        "try:\n"
        "    main()\n"
        "finally:\n"
        "    print('loaded:', *sorted(sys.modules), file=sys.stderr)\n"
    )
    args = ["-S", "-c", code, json.dumps(sys.path), str(events), "-q", "-f", "ndjson"]
    for _ in range(2):  # the second with the rule cache warm
        done = subprocess.run(
            [sys.executable, *args], capture_output=True, text=True, timeout=120, cwd=tmp_path
        )
        assert done.returncode == 1, done.stderr[-2000:]
    loaded = set(done.stderr.rpartition("loaded: ")[2].split())
    assert "imds_scan.cli" in loaded
    for module in ("zipfile", "importlib.readers", *HEAVY, *TYPER, *LAZY):
        assert module not in loaded, module


def test_safe_escapes_what_its_regular_expression_did() -> None:
    """escape.safe is a translation table (no regular expression to compile at start-up): it
    escapes exactly the characters of the class it replaces, over every code point."""
    from imds_scan.escape import safe

    old = re.compile(
        "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
    )

    def expected(text: str) -> str:
        return old.sub(
            lambda m: f"\\u{ord(m[0]):04x}" if ord(m[0]) > 0xFF else f"\\x{ord(m[0]):02x}", text
        )

    every = "".join(map(chr, range(0x110000)))
    assert safe(every) == expected(every)
    assert safe("a\x1b[31mb\u202ec\ud800") == "a\\x1b[31mb\\u202ec\ud800"


# The CLI in a process that says at exit what OPENBLAS_NUM_THREADS was and, when numpy had
# loaded OpenBLAS, how many threads OpenBLAS says it runs (counting the process's threads
# instead raced with threads still ending).
COUNT_THREADS = """
import atexit, ctypes, os, sys

def report():
    names = ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
             "openblas_get_num_threads")
    with open("/proc/self/maps") as maps:
        libs = {l.split()[-1] for l in maps if "openblas" in l.lower() and "/" in l}
    counts = [getattr(ctypes.CDLL(p), n)() for p in sorted(libs) for n in names
              if hasattr(ctypes.CDLL(p), n)]
    print("blas:", os.environ.get("OPENBLAS_NUM_THREADS"), counts[0] if counts else None,
          file=sys.stderr)

atexit.register(report)
from imds_scan import cli
sys.argv[0] = "imds-scan"
cli.main()
"""


@pytest.mark.skipif(not Path("/proc/self/maps").is_file(), reason="needs Linux's /proc")
def test_writing_parquet_starts_no_openblas_threads_unless_the_user_asks(tmp_path: Path) -> None:
    # pyarrow imports numpy when it is installed, whose OpenBLAS would start a thread per core
    # that spins for work the CLI never gives it; the CLI sets OPENBLAS_NUM_THREADS=1 unless
    # the user set it.
    events = tmp_path / "events.ndjson"
    events.write_text(json.dumps(EVENT) + "\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    args = [str(events), "-q", "--no-summary", "-f", "parquet", "-o", str(tmp_path / "h.parquet")]

    def run(**extra: str) -> tuple[str, str]:
        done = subprocess.run(
            [sys.executable, "-c", COUNT_THREADS, *args],
            capture_output=True,
            text=True,
            timeout=120,
            env={**env, **extra},
        )
        assert done.returncode == 1, done.stderr[-2000:]
        setting, threads = re.findall(r"blas: (\S+) (\S+)", done.stderr)[-1]
        return setting, threads

    default, three = run(), run(OPENBLAS_NUM_THREADS="3")
    assert (default[0], three[0]) == ("1", "3")  # the user's setting is kept
    if default[1] != "None":  # numpy is installed: OpenBLAS was loaded, with one thread
        assert default[1] == "1"
        if (os.cpu_count() or 1) > 1:
            assert int(three[1]) > 1  # (at most one per core)
