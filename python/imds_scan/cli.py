"""The ``imds-scan`` command line.

Exit codes: 0 no hits, 1 hits, 2 error (usage, or an input that could not be read fully),
130 interrupted. Results go to stdout; the summary and diagnostics go to stderr.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from enum import StrEnum
from typing import Annotated

import typer

from . import output as output_mod
from .eql import EqlError
from .filters import FilterError, parse_time_bound
from .scan import InputError, ScanConfig, ScanResult
from .scan import scan as run_configured_scan

EXIT_CLEAN, EXIT_HITS, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130

app = typer.Typer(add_completion=False, rich_markup_mode=None)


class Format(StrEnum):
    auto = "auto"
    table = "table"
    ndjson = "ndjson"
    json = "json"
    csv = "csv"
    parquet = "parquet"
    alerts = "alerts"


class EngineName(StrEnum):
    rust = "rust"
    python = "python"


def _choose_format(fmt: Format | None, output: str | None) -> str:
    """The format to write: --format, else --output's extension, else table/ndjson (auto)."""
    from .report.formats import format_for_path

    to_file = output is not None and output != "-"
    if fmt is not None and fmt is not Format.auto:
        chosen = fmt.value
    elif to_file:
        assert output is not None
        found = format_for_path(output)
        if found is None:
            raise typer.BadParameter(
                f"cannot tell the format of {output!r} from its extension "
                "(.ndjson .jsonl .json .csv .parquet .alerts.ndjson .txt): pass --format",
                param_hint="'--output'",
            )
        chosen = found
    else:
        chosen = "table" if output_mod.is_terminal(sys.stdout) else "ndjson"
    if chosen == "parquet" and not to_file:
        raise typer.BadParameter(
            "parquet is binary and is not written to stdout: add --output FILE.parquet",
            param_hint="'--format'",
        )
    return chosen


def _time_bound(text: str | None, hint: str) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_time_bound(text)
    except FilterError as exc:
        raise typer.BadParameter(str(exc), param_hint=hint) from None


@app.command(
    help="Scan ECS NDJSON logs for cloud Instance Metadata API access (MITRE T1552.005) with "
    "Elastic's detection rule. PATHS are files, directories or globs (quote them to let "
    "imds-scan expand '**'). Exit: 0 no hits, 1 hits, 2 error, 130 interrupted."
)
def scan(
    paths: Annotated[list[str], typer.Argument(help="NDJSON files, directories or globs.")],
    fmt: Annotated[
        Format | None,
        typer.Option(
            "--format",
            "-f",
            help="table, ndjson (one hit per line), json (the ndjson records as one array), "
            "csv, parquet (needs --output), alerts (ECS alert documents, NDJSON). Default: "
            "from --output's extension, else auto: table on a terminal, ndjson otherwise.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Write the results to this file instead of stdout ('-' = stdout).",
        ),
    ] = None,
    summary: Annotated[
        bool | None,
        typer.Option(
            "--summary/--no-summary",
            help="Print aggregations (by rule and branch, host, process, user, day; top "
            "command lines; first and last seen) to stderr. Default: on when stdout is a "
            "terminal.",
            show_default=False,
        ),
    ] = None,
    report: Annotated[
        str | None,
        typer.Option(
            "--report",
            metavar="FILE.html",
            help="Also write a self-contained HTML report (timeline, per-host and "
            "per-process tables, hit list) to this file.",
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            metavar="WHEN",
            help="Only hits with @timestamp at or after this: ISO 8601 (2024-05-01, "
            "2024-05-01T12:00:00Z; no zone = UTC) or a duration back from now (30m, 12h, 7d).",
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            metavar="WHEN", help="Only hits with @timestamp before this (same forms as --since)."
        ),
    ] = None,
    host: Annotated[
        list[str] | None,
        typer.Option(
            "--host",
            metavar="GLOB",
            help="Only events whose host.name matches this glob (* and ?, ASCII "
            "case-insensitive); repeatable: any of them.",
        ),
    ] = None,
    exclude_host: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude-host",
            metavar="GLOB",
            help="Skip events whose host.name matches this glob; repeatable.",
        ),
    ] = None,
    engine: Annotated[
        EngineName,
        typer.Option(help="rust (fast) or python (the plain reference implementation)."),
    ] = EngineName.rust,
    threads: Annotated[int, typer.Option(min=0, help="Worker threads; 0 = all cores.")] = 0,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="Nothing on stderr but diagnostics (and --summary, if given)."
        ),
    ] = False,
    prefilter: Annotated[
        bool,
        typer.Option(
            help="Skip lines that cannot match before parsing them (rust engine). "
            "--no-prefilter parses every line: slower, for checking."
        ),
    ] = True,
) -> None:
    chosen = _choose_format(fmt, output)
    config = ScanConfig(
        engine=engine.value,
        threads=threads,
        prefilter=prefilter,
        hosts=tuple(host or ()),
        exclude_hosts=tuple(exclude_host or ()),
        since=_time_bound(since, "'--since'"),
        until=_time_bound(until, "'--until'"),
    )
    try:
        result = run_configured_scan(paths, config=config)
        problem = _write_results(result, chosen, output, report, config)
    except KeyboardInterrupt:
        print("imds-scan: interrupted", file=sys.stderr)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except (EqlError, InputError, FilterError) as exc:
        print(f"imds-scan: error: {output_mod.safe(str(exc))}", file=sys.stderr)
        raise typer.Exit(EXIT_ERROR) from None
    if not quiet:
        output_mod.print_summary(result.stats, result.hits)
    if summary if summary is not None else (not quiet and output_mod.is_terminal(sys.stdout)):
        from .report.summary import format_summaries

        print(format_summaries(result.frame), file=sys.stderr)
    if result.stats.errors or problem:
        raise typer.Exit(EXIT_ERROR)
    raise typer.Exit(EXIT_HITS if result.hits else EXIT_CLEAN)


def _filters_described(config: ScanConfig) -> list[tuple[str, str]]:
    described = [("--host", h) for h in config.hosts]
    described += [("--exclude-host", h) for h in config.exclude_hosts]
    if config.since is not None:
        described.append(("--since", config.since.isoformat()))
    if config.until is not None:
        described.append(("--until", config.until.isoformat()))
    return described


def _write_results(
    result: ScanResult, fmt: str, output: str | None, report: str | None, config: ScanConfig
) -> bool:
    """Write the results and the report; True if a file could not be written."""
    from .report.formats import write_file, write_text

    problem = False
    if output is not None and output != "-":
        try:
            write_file(fmt, result, output)
        except OSError as exc:
            print(
                f"imds-scan: error: cannot write {output_mod.safe(output)}: {exc.strerror}",
                file=sys.stderr,
            )
            problem = True
    else:
        try:
            write_text(fmt, result, sys.stdout)
            sys.stdout.flush()
        except BrokenPipeError:
            # The reader went away (e.g. `| head`): not an error; silence the final flush.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if report is not None:
        from .report.html import write_report

        try:
            write_report(result, report, filters=_filters_described(config))
        except OSError as exc:
            print(
                f"imds-scan: error: cannot write {output_mod.safe(report)}: {exc.strerror}",
                file=sys.stderr,
            )
            problem = True
    return problem


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        print("imds-scan: interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
