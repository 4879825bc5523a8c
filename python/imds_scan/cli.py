"""The ``imds-scan`` command line.

Exit codes: 0 no hits, 1 hits, 2 error (usage, or an input that could not be read fully),
130 interrupted. Results go to stdout; the summary and diagnostics go to stderr.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from . import output as output_mod
from .eql import EqlError
from .filters import FilterError, parse_time_bound
from .rules import Rule
from .scan import InputError, ScanConfig, ScanInterrupted, ScanResult
from .scan import scan as run_configured_scan

if TYPE_CHECKING:
    from .progress import ProgressBar

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


def _load_config(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> str | None:
    """Eager --config: read the file (else ./imds-scan.toml when present) before the other
    options, so its keys become their defaults (Click's default_map); the command line wins."""
    from .config import DEFAULT_CONFIG, ConfigError, load_config

    path = (
        value if value is not None else DEFAULT_CONFIG if os.path.isfile(DEFAULT_CONFIG) else None
    )
    if path is None:
        return None
    try:
        loaded = load_config(path, ctx.command, ctx)
    except ConfigError as exc:
        print(f"imds-scan: error: {output_mod.safe(str(exc))}", file=sys.stderr)
        raise typer.Exit(EXIT_ERROR) from None
    ctx.default_map = {**(ctx.default_map or {}), **loaded.default_map}
    ctx.meta["imds_scan.config"] = loaded
    return path


def _size(text: str, hint: str) -> int:
    from .cluster import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=hint) from None


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
    "imds-scan expand '**'), '-' for stdin, or s3://bucket/prefix (globs too); gzip and zstd "
    "input is decompressed. Exit: 0 no hits, 1 hits, 2 error, 130 interrupted."
)
def scan(
    ctx: typer.Context,
    paths: Annotated[
        list[str] | None,
        typer.Argument(help="NDJSON files, directories or globs.", show_default=False),
    ] = None,
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
            "--quiet",
            "-q",
            help="Nothing on stderr but diagnostics (and --summary, if given): no progress "
            "bar, no scan line.",
        ),
    ] = False,
    endpoint_url: Annotated[
        str | None,
        typer.Option(
            "--endpoint-url",
            metavar="URL",
            help="S3-compatible endpoint for s3:// inputs (MinIO, Ceph...). Credentials come "
            "from the standard AWS chain (environment, ~/.aws, SSO, instance roles).",
        ),
    ] = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster",
            metavar="ADDRESS",
            help="Distribute the scan over a Dask cluster: a scheduler address "
            "(tcp://host:8786) or local:N (N worker processes on this machine). Workers read "
            "the inputs themselves (same paths, or S3). Needs 'imds-scan[cluster]'.",
        ),
    ] = None,
    range_size: Annotated[
        str,
        typer.Option(
            "--range-size",
            metavar="SIZE",
            help="With --cluster: plain inputs larger than this are split into line-aligned "
            "byte ranges of this size, small ones packed into shares of it (bytes; K, M, G "
            "suffixes).",
        ),
    ] = "256M",
    max_line_bytes: Annotated[
        str,
        typer.Option(
            "--max-line-bytes",
            metavar="SIZE",
            help="Longest line evaluated (bytes; K, M, G suffixes). A longer line is read past "
            "in bounded memory, reported with its file, line and length, and not evaluated; "
            "the exit code is then 2.",
        ),
    ] = "64M",
    prefilter: Annotated[
        bool,
        typer.Option(
            help="Skip lines that cannot match before parsing them (rust engine). "
            "--no-prefilter parses every line: slower, for checking."
        ),
    ] = True,
    rule: Annotated[
        list[str] | None,
        typer.Option(
            "--rule",
            metavar="FILE|DIR",
            help="Rule file in Elastic's detection-rules TOML format (EQL rules), or a "
            "directory: every .toml below it. Repeatable. 'default' is the bundled rule, "
            "which runs when no --rule is given.",
        ),
    ] = None,
    pack: Annotated[
        list[str] | None,
        typer.Option(
            "--pack",
            metavar="NAME",
            help="Also run a bundled rule pack, in addition to the --rule rules (or the "
            "default rule): 'hardened' catches other spellings of the metadata address "
            "(hex, octal, IPv6, nip.io...) and other clouds' endpoints, one rule per severity. "
            "Repeatable.",
        ),
    ] = None,
    skip_unsupported_rules: Annotated[
        bool,
        typer.Option(
            "--skip-unsupported-rules",
            help="Warn about rule files imds-scan cannot run (another language, a sequence, "
            "an unsupported function...) and run the others, instead of stopping.",
        ),
    ] = False,
    allow: Annotated[
        list[str] | None,
        typer.Option(
            "--allow",
            metavar="EQL",
            help="Drop events matching this EQL condition from every rule, e.g. "
            "'process.name in~ (\"terraform\")'. Repeatable; adds to the config's [allowlist].",
        ),
    ] = None,
    show_rule: Annotated[
        bool,
        typer.Option(
            "--show-rule",
            help="Print the effective EQL of every loaded rule (allowlists and host filters "
            "included) and exit.",
        ),
    ] = False,
    config_file: Annotated[
        str | None,
        typer.Option(
            "--config",
            metavar="FILE",
            is_eager=True,
            callback=_load_config,
            help="TOML config: any option by its long name (threads = 4, exclude-host = "
            "[...]) and [allowlist] tables. Default: ./imds-scan.toml if present.",
            show_default=False,
        ),
    ] = None,
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
        endpoint_url=endpoint_url,
        cluster=cluster,
        range_size=_size(range_size, "'--range-size'"),
        max_line_bytes=_size(max_line_bytes, "'--max-line-bytes'"),
    )
    try:
        rules = _load_rules(ctx, rule, allow, skip_unsupported_rules, pack)
        if show_rule:
            _show_rules(rules, config)
    except ValueError as exc:  # EqlError, RuleFileError, ConfigError, FilterError
        print(f"imds-scan: error: {output_mod.safe(str(exc))}", file=sys.stderr)
        raise typer.Exit(EXIT_ERROR) from None
    if show_rule:
        raise typer.Exit(EXIT_CLEAN)
    if not paths:
        raise typer.BadParameter("give files, directories or globs to scan", param_hint="PATHS")
    if engine is EngineName.rust and prefilter:
        from .rules.prefilter import prefilter_warnings

        for warning in prefilter_warnings(rules):
            print(f"imds-scan: warning: {output_mod.safe(warning)}", file=sys.stderr)
    interrupted = False
    try:
        with _progress_bar(quiet) as progress:
            try:
                result = run_configured_scan(paths, rules=rules, config=config, progress=progress)
            except ScanInterrupted as stopped:  # write what was found before Ctrl-C
                result, interrupted = stopped.result, True
        with _deferred_interrupt() as late:  # the hits found are written in full
            problem = _write_results(result, chosen, output, report, config)
        interrupted |= late.is_set()
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
    if interrupted:
        print("imds-scan: interrupted; the results cover what was read until then", file=sys.stderr)
        raise typer.Exit(EXIT_INTERRUPTED)
    if result.stats.errors or problem:
        raise typer.Exit(EXIT_ERROR)
    raise typer.Exit(EXIT_HITS if result.hits else EXIT_CLEAN)


@contextlib.contextmanager
def _deferred_interrupt() -> Iterator[threading.Event]:
    """While the results are written, Ctrl-C is noted (the event is set), not raised."""
    pressed = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pressed.set())
    try:
        yield pressed
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _progress_bar(quiet: bool) -> Iterator[ProgressBar | None]:
    """A progress bar on stderr while scanning, when stderr is a terminal and not --quiet."""
    if quiet or not output_mod.is_terminal(sys.stderr):
        yield None
        return
    from .progress import ProgressBar

    with ProgressBar(sys.stderr) as bar:
        yield bar


def _load_rules(
    ctx: typer.Context,
    specs: list[str] | None,
    allow: list[str] | None,
    skip: bool,
    packs: list[str] | None = None,
) -> list[Rule]:
    """The rules to run: --rule files (default: the bundled rule) with the config's
    [allowlist] and --allow conditions compiled in. Warnings go to stderr."""
    from .config import Allowlist, condition_allowlist, merge
    from .rules import DEFAULT_RULE_ALIAS, load_rules, pack_path

    pack_specs = [pack_path(name) for name in packs or ()]
    rules, warnings = load_rules(
        [*(specs or [DEFAULT_RULE_ALIAS]), *pack_specs], skip_unsupported=skip
    )
    loaded = ctx.meta.get("imds_scan.config")
    allowlist = merge(
        loaded.allowlist if loaded is not None else Allowlist(),
        condition_allowlist(allow or ()),
    )
    for rule_id in allowlist.unknown_rule_ids(rules):
        warnings.append(f'{allowlist.source}: [allowlist.rules."{rule_id}"] names no loaded rule')
    for warning in warnings:
        print(f"imds-scan: warning: {output_mod.safe(warning)}", file=sys.stderr)
    return allowlist.apply(rules)


def _show_rules(rules: list[Rule], config: ScanConfig) -> None:
    """--show-rule: each rule's effective EQL (as the engines receive it), then exit 0."""
    from .eql import format_rule
    from .filters import with_host_filter

    for i, rule in enumerate(with_host_filter(rules, config.hosts, config.exclude_hosts)):
        if i:
            print()
        print(f"// {rule.name} (rule_id {rule.id}, severity {rule.severity or 'unset'})")
        print(f"// from {rule.source}")
        print(format_rule(rule.ir))


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
