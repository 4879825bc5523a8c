"""The ``imds-scan`` command line.

Exit codes: 0 no hits, 1 hits, 2 error (usage, or an input that could not be read fully),
130 interrupted. Results go to stdout; the summary and diagnostics go to stderr.
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from typing import Annotated

import typer

from . import output
from .eql import EqlError
from .rules import default_rules
from .scan import InputError, expand_inputs, run_scan

EXIT_CLEAN, EXIT_HITS, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130

app = typer.Typer(add_completion=False, rich_markup_mode=None)


class Format(StrEnum):
    auto = "auto"
    table = "table"
    ndjson = "ndjson"


class EngineName(StrEnum):
    rust = "rust"
    python = "python"


@app.command(
    help="Scan ECS NDJSON logs for cloud Instance Metadata API access (MITRE T1552.005) with "
    "Elastic's detection rule. PATHS are files, directories or globs (quote them to let "
    "imds-scan expand '**'). Exit: 0 no hits, 1 hits, 2 error, 130 interrupted."
)
def scan(
    paths: Annotated[list[str], typer.Argument(help="NDJSON files, directories or globs.")],
    fmt: Annotated[
        Format,
        typer.Option(
            "--format",
            "-f",
            help="table (on a terminal), ndjson (one hit per line); auto picks table on a "
            "terminal and ndjson otherwise.",
        ),
    ] = Format.auto,
    engine: Annotated[
        EngineName,
        typer.Option(help="rust (fast) or python (the plain reference implementation)."),
    ] = EngineName.rust,
    threads: Annotated[int, typer.Option(min=0, help="Worker threads; 0 = all cores.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary on stderr.")] = False,
    prefilter: Annotated[
        bool,
        typer.Option(
            help="Skip lines that cannot match before parsing them (rust engine). "
            "--no-prefilter parses every line: slower, for checking."
        ),
    ] = True,
) -> None:
    try:
        rules = default_rules()
        inputs = expand_inputs(paths)
        result = run_scan(inputs, rules, engine=engine.value, threads=threads, prefilter=prefilter)
    except KeyboardInterrupt:
        print("imds-scan: interrupted", file=sys.stderr)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except (EqlError, InputError) as exc:
        print(f"imds-scan: error: {exc}", file=sys.stderr)
        raise typer.Exit(EXIT_ERROR) from None

    use_table = fmt is Format.table or (fmt is Format.auto and output.is_terminal(sys.stdout))
    try:
        if use_table:
            output.write_table(result.hits, sys.stdout)
        else:
            output.write_ndjson(result.hits, sys.stdout)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): not an error; silence the final flush.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if not quiet:
        output.print_summary(result.stats, result.hits)
    if result.stats.errors:
        raise typer.Exit(EXIT_ERROR)
    raise typer.Exit(EXIT_HITS if result.hits else EXIT_CLEAN)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        print("imds-scan: interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
