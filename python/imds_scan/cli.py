"""The ``imds-scan`` command line.

Exit codes: 0 no hits, 1 hits, 2 error (usage, or an input that could not be read fully),
130 interrupted. Results go to stdout; the summary and diagnostics go to stderr.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO, cast, get_type_hints

from . import output as output_mod
from .engines import DEFAULT_RANGE_SIZE, MAX_THREADS
from .errors import EqlError
from .escape import safe
from .filters import FilterError, parse_time_bound
from .outfile import LINE_FORMATS, OutputError, PendingOutput, refuse_inputs
from .reference.scan.lines import MAX_LINE_BYTES
from .rules import Rule
from .run import ScanConfig
from .run import open_scan as scan  # the CLI streams its hits to the writers
from .sources import InputError

if TYPE_CHECKING:
    import typer

    from .batch import HitBatch
    from .engines import HitStream
    from .mapping import Mapping as KqlMapping
    from .progress import ProgressBar
    from .records import ScanStats
    from .report.aggregate import Aggregates

EXIT_CLEAN, EXIT_HITS, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130

# Typer (~40 ms of imports, and its command built from the signature) is loaded only when
# the fast path (_fast_params) cannot read the command line itself: `app` is made on first use.


class _Fallback(Exception):
    """The fast path met a usage error: Typer runs the command line again, to word it."""


# True while the fast path runs the command (then a usage error is a _Fallback).
_fast = False


def _bad(
    message: str,
    param_hint: str | None = None,
    ctx: typer.Context | None = None,
    name: str | None = None,
) -> Exception:
    """A usage error: Click's BadParameter (Typer formats it), or _Fallback on the fast path;
    a ValueError naming the file and the key when parameter ``name`` came from the config."""
    where = None if ctx is None or name is None else _config_key(ctx, name)
    if where is not None:
        return ValueError(f"{where}: {message}")
    if _fast:
        return _Fallback(message)
    from typer import BadParameter

    return BadParameter(message, param_hint=param_hint)


def _config_key(ctx: typer.Context, name: str) -> str | None:
    """``FILE: key`` when parameter ``name`` took its value from the config, else None."""
    loaded = ctx.meta.get("imds_scan.config")
    source = ctx.get_parameter_source(name)
    if loaded is None or getattr(source, "name", "") != "DEFAULT_MAP":
        return None
    return f"{loaded.path}: {loaded.key_of.get(name, name)}"


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


def _choose_format(ctx: typer.Context, fmt: Format | None, output: str | None) -> str:
    """The format to write: --format, else --output's extension, else table/ndjson (auto).
    A config's ``format`` gives way to the extension of an --output given on the command
    line (which wins over the config); with both in the config, ``format`` wins."""
    from .report.formats import format_for_path

    to_file = output is not None and output != "-"
    implied = format_for_path(output) if to_file and output is not None else None
    if (
        implied is not None
        and _config_key(ctx, "fmt") is not None
        and _config_key(ctx, "output") is None
    ):
        fmt = None
    if fmt is not None and fmt is not Format.auto:
        chosen = fmt.value
    elif to_file:
        if implied is None:
            raise _bad(
                f"cannot tell the format of {output!r} from its extension "
                "(.ndjson .jsonl .json .csv .parquet .alerts.ndjson .txt): pass --format",
                "'--output'",
                ctx,
                "output",
            )
        chosen = implied
    else:
        chosen = "table" if output_mod.is_terminal(sys.stdout) else "ndjson"
    if chosen == "parquet" and not to_file:
        raise _bad(
            "parquet is binary and is not written to stdout: add --output FILE.parquet",
            "'--format'",
            ctx,
            "fmt",
        )
    return chosen


_CONFIG_PARAMS = "imds_scan.config_params"


def _config_param(ctx: typer.Context, param: typer.CallbackParam, value: object) -> object:
    """Eager --config/--no-config: once both are known, read the config before the other
    options, so its keys become their defaults (Click's default_map); the command line wins."""
    seen = ctx.meta.setdefault(_CONFIG_PARAMS, {})
    seen[param.name] = value
    if len(seen) == 2:
        _load_config(ctx, seen["config_file"], bool(seen["no_config"]))
    return value


def _load_config(ctx: typer.Context, named: str | None, none: bool) -> None:
    """Read --config FILE, else $IMDS_SCAN_CONFIG, else the user's config file when there is
    one; never ./imds-scan.toml unless named (an evidence bundle could carry one). What is
    read is said on stderr."""
    from .userdirs import CONFIG_ENV, DEFAULT_CONFIG, user_config_path

    if named is not None and none:
        raise _bad("--config and --no-config contradict each other")
    path, origin = None, ""
    if none:
        pass
    elif named is not None:
        path = named
    elif os.environ.get(CONFIG_ENV):
        path, origin = os.environ[CONFIG_ENV], f" (from ${CONFIG_ENV})"
    elif os.path.exists(user_config_path()):
        path = user_config_path()
    loaded = None
    if path is not None:
        from .config import ConfigError, load_config

        try:
            loaded = load_config(path, ctx.command, ctx)
        except ConfigError as exc:
            print(f"imds-scan: error: {safe(str(exc))}", file=sys.stderr)
            raise SystemExit(EXIT_ERROR) from None
        ctx.default_map = {**(ctx.default_map or {}), **loaded.default_map}
        ctx.meta["imds_scan.config"] = loaded
        keys = ", ".join(loaded.keys) or "nothing"
        print(
            f"imds-scan: config: {safe(path)}{origin} sets {safe(keys)}",
            file=sys.stderr,
        )
    if os.path.isfile(DEFAULT_CONFIG) and not _same_file(path, DEFAULT_CONFIG):
        print(
            f"imds-scan: notice: ./{DEFAULT_CONFIG} was not read (a config is only read when "
            f"named); to use it: --config {DEFAULT_CONFIG}",
            file=sys.stderr,
        )


def _same_file(a: str | None, b: str) -> bool:
    try:
        return a is not None and os.path.samefile(a, b)
    except OSError:
        return False


def _show_version(value: bool) -> None:
    if value:
        from ._engine import __version__

        _to_stdout(lambda: print(f"imds-scan {__version__}"))
        raise SystemExit(EXIT_CLEAN)


def _bounded_threads(ctx: typer.Context, threads: int) -> int:
    if threads <= MAX_THREADS:
        return threads
    source = ctx.get_parameter_source("threads")
    where = "config: threads =" if getattr(source, "name", "") == "DEFAULT_MAP" else "--threads"
    shown = str(threads) if threads < 10**15 else "(a huge number)"
    print(
        f"imds-scan: warning: {where} {shown} is more than {MAX_THREADS}: using {MAX_THREADS}",
        file=sys.stderr,
    )
    return MAX_THREADS


def _check_report_name(ctx: typer.Context, report: str | None) -> None:
    # An HTML page written over a log, or a config, by a slip of the keyboard.
    if report is not None and not report.lower().endswith((".html", ".htm")):
        raise _bad(
            f"{report!r} does not end in .html: the report is an HTML page",
            "'--report'",
            ctx,
            "report",
        )


def parse_size(text: str) -> int:
    """``1048576``, ``64K``, ``256M``, ``1G`` (powers of 1024) → bytes; ValueError otherwise."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    stripped = text.strip().upper().removesuffix("B").removesuffix("I")
    number, unit = stripped.rstrip("KMG"), stripped[len(stripped.rstrip("KMG")) :]
    if not number.isdigit() or unit not in units or int(number) < 1:
        raise ValueError(f"{text!r} is not a size (e.g. 64M, 1G, or a number of bytes)")
    return int(number) * units[unit]


def _size(ctx: typer.Context, name: str, text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise _bad(str(exc), _hint(name), ctx, name) from None


def _hint(name: str) -> str:
    """A parameter's flag as Click's errors quote it: ``'--max-line-bytes'``."""
    return "'--" + name.replace("_", "-") + "'"


def _field_type_param(
    ctx: typer.Context, param: typer.CallbackParam, value: list[str] | None
) -> list[str] | None:
    """--field-type FIELD=TYPE (and the config's [field-types]): checked as given."""
    from .fields import parse_assignments

    try:
        parse_assignments(value or (), "--field-type")
    except ValueError as exc:
        raise _bad(str(exc).removeprefix("--field-type: ")) from None
    return value


def _field_type_items(ctx: typer.Context, given: list[str] | None) -> list[str]:
    """The FIELD=TYPE items: the config's, then the command line's (which win for a field
    both name; a repeatable option would otherwise replace the config's list)."""
    items = list(given or ())
    source = ctx.get_parameter_source("field_type")
    loaded = ctx.meta.get("imds_scan.config")
    if getattr(source, "name", "") == "COMMANDLINE" and loaded is not None:
        items = [*loaded.default_map.get("field_type", ()), *items]
    return items


def _field_types(ctx: typer.Context, given: list[str] | None) -> dict[str, str]:
    """The field type overrides (IR types), as the EQL compiler takes them."""
    from .fields import parse_assignments

    return parse_assignments(_field_type_items(ctx, given), "--field-type")


def _mapping(ctx: typer.Context, path: str | None, given: list[str] | None) -> KqlMapping | None:
    """The mapping KQL rules compile against: the profile, the field type overrides (as
    written: `text` stays text), then --mapping FILE.json (config: mapping) when named;
    None without either (the rule loader then takes the profile: a plain scan's start-up
    does not import the module). ValueError naming the flag or the config key, the file,
    the field and the key."""
    items = _field_type_items(ctx, given)
    if path is None and not items:
        return None
    from .mapping import MappingError, load_mapping

    raw: dict[str, str] = {}
    for item in items:
        field, _, value = item.partition("=")
        raw[field.strip()] = value.strip()
    try:
        return load_mapping(path, raw)
    except MappingError as exc:
        loaded = ctx.meta.get("imds_scan.config")
        source = ctx.get_parameter_source("mapping_file")
        if getattr(source, "name", "") == "DEFAULT_MAP" and loaded is not None:
            raise ValueError(f"{loaded.path}: mapping: {exc}") from None
        raise ValueError(f"--mapping {exc}") from None


def _time_bound(ctx: typer.Context, name: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_time_bound(text)
    except FilterError as exc:
        raise _bad(str(exc), _hint(name), ctx, name) from None


def _host_globs(ctx: typer.Context, name: str, globs: list[str] | None) -> tuple[str, ...]:
    for i, glob in enumerate(globs or ()):
        if not glob:
            key = _config_key(ctx, name)
            if key is not None:  # the config's array: the item too
                raise ValueError(f"{key}[{i}]: an empty glob matches nothing")
            raise _bad("an empty glob matches nothing", _hint(name))
    return tuple(globs or ())


def _cluster(ctx: typer.Context, spec: str | None) -> str | None:
    if spec is not None:
        from .cluster import parse_cluster

        try:
            parse_cluster(spec)
        except InputError as exc:
            raise _bad(str(exc).removeprefix("--cluster "), "'--cluster'", ctx, "cluster") from None
    return spec


HELP = (
    "Scan ECS NDJSON logs for cloud Instance Metadata API access (MITRE T1552.005) with "
    "Elastic's detection rule. PATHS are files, directories or globs (quote them to let "
    "imds-scan expand '**'), '-' for stdin, or s3://bucket/prefix (globs too); gzip and zstd "
    "input is decompressed. Exit: 0 no hits, 1 hits, 2 error, 130 interrupted."
)


# The command (registered with Typer by _app()); the fast path calls it too.
def scan_command(
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
    max_table_rows: Annotated[
        int,
        typer.Option(
            min=0,
            metavar="N",
            help="--format table shows the first N hits, then a line counting the others "
            "(0 = all).",
        ),
    ] = output_mod.MAX_TABLE_ROWS,
    max_hits: Annotated[
        int | None,
        typer.Option(
            "--max-hits",
            min=1,
            metavar="N",
            help="Stop the scan after N hits (after --since/--until): the output holds the "
            "first N, the summary says where the scan stopped; exit 1.",
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
    threads: Annotated[
        int, typer.Option(min=0, help="Worker threads; 0 = all cores; at most 256.")
    ] = 0,
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
    ] = f"{DEFAULT_RANGE_SIZE >> 20}M",
    max_line_bytes: Annotated[
        str,
        typer.Option(
            "--max-line-bytes",
            metavar="SIZE",
            help="Longest line evaluated (bytes; K, M, G suffixes). A longer line is read past "
            "in bounded memory, reported with its file, line and length, and not evaluated; "
            "the exit code is then 2.",
        ),
    ] = f"{MAX_LINE_BYTES >> 20}M",
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
    preset: Annotated[
        list[str] | None,
        typer.Option(
            "--preset",
            metavar="NAME",
            help="Also apply a bundled allowlist preset: 'cloud-agents' drops the cloud "
            "providers' own agents (Azure Network Watcher and VM Agent, EC2Config, EC2Launch, "
            "cfn-hup, SSM Agent, the GCE guest environment, also as auditd's 15-byte names). "
            "The summary counts what each entry dropped. Repeatable.",
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
    rule_cache: Annotated[
        bool,
        typer.Option(
            help="Keep compiled rule files in the user's cache directory "
            "($XDG_CACHE_HOME/imds-scan/rules, ~/.cache/...), keyed by a hash of each file, "
            "so loading them again is fast. --no-rule-cache compiles every file.",
        ),
    ] = True,
    allow: Annotated[
        list[str] | None,
        typer.Option(
            "--allow",
            metavar="EQL",
            help="Drop events matching this EQL condition from every rule, e.g. "
            "'process.name in~ (\"terraform\")'. Repeatable; adds to the config's [allowlist].",
        ),
    ] = None,
    field_type: Annotated[
        list[str] | None,
        typer.Option(
            "--field-type",
            metavar="FIELD=TYPE",
            callback=_field_type_param,
            help="Compare FIELD as this Elasticsearch type in the rules' queries (long, "
            "integer, short, byte, unsigned_long, double, float, half_float, scaled_float, "
            "date, boolean, ip, keyword), instead of its ECS type (keyword for a field ECS "
            "does not define). Repeatable; adds to the config's [field-types] table, the "
            "command line winning for a field both name.",
        ),
    ] = None,
    mapping_file: Annotated[
        str | None,
        typer.Option(
            "--mapping",
            metavar="FILE.json",
            help="Field mappings for KQL rules, over the shipped profile (ECS, Elastic Defend, "
            "the integrations Elastic's rules use) and --field-type: a JSON object field -> "
            'type ("long"), or field -> {"type", "analyzer", "normalizer", "ignore_above", '
            '"multi_field_of"}.',
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
            callback=_config_param,
            help="TOML config: any option by its long name (threads = 4, exclude-host = "
            "[...]) and [allowlist] tables. Default: $IMDS_SCAN_CONFIG, else "
            "$XDG_CONFIG_HOME/imds-scan/config.toml (~/.config/...) if present; never "
            "./imds-scan.toml unless named. The file read is named on stderr.",
            show_default=False,
        ),
    ] = None,
    no_config: Annotated[
        bool,
        typer.Option(
            "--no-config",
            is_eager=True,
            callback=_config_param,
            help="Read no config file at all.",
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            is_eager=True,
            callback=_show_version,
            help="Print imds-scan's version and exit.",
        ),
    ] = False,
) -> None:
    try:
        # A value from the config is wrong: a ValueError naming the file and the key.
        chosen = _choose_format(ctx, fmt, output)
        _check_report_name(ctx, report)
        config = ScanConfig(
            engine=engine.value,
            threads=_bounded_threads(ctx, threads),
            prefilter=prefilter,
            hosts=_host_globs(ctx, "host", host),
            exclude_hosts=_host_globs(ctx, "exclude_host", exclude_host),
            since=_time_bound(ctx, "since", since),
            until=_time_bound(ctx, "until", until),
            endpoint_url=endpoint_url,
            cluster=_cluster(ctx, cluster),
            range_size=_size(ctx, "range_size", range_size),
            max_line_bytes=_size(ctx, "max_line_bytes", max_line_bytes),
            max_hits=max_hits,
        )
        rules = _load_rules(
            ctx,
            rule,
            allow,
            skip_unsupported_rules,
            pack,
            preset,
            rule_cache,
            field_types=_field_types(ctx, field_type),
            mapping=_mapping(ctx, mapping_file, field_type),
        )
        if show_rule:
            _to_stdout(lambda: _show_rules(rules, config))
    except ValueError as exc:  # EqlError, RuleFileError, ConfigError, FilterError, config values
        # One line per refused rule file: the messages are escaped, not the line breaks.
        for problem in getattr(exc, "problems", None) or [str(exc)]:
            print(f"imds-scan: error: {safe(problem)}", file=sys.stderr)
        raise SystemExit(EXIT_ERROR) from None
    if show_rule:
        raise SystemExit(EXIT_CLEAN)
    if not paths:
        raise _bad("give files, directories or globs to scan", param_hint="PATHS")
    plan = None
    if engine is EngineName.rust and prefilter:
        from .plan import plan_rules
        from .rules.prefilter import prefilter_warnings

        # Of the rules the engine runs: a sequence's stages each. Without host filters, this is
        # the scan's own plan (and, scanning here, its Scanner): made once.
        unfiltered = plan_rules(rules, (), (), config.threads)
        shared = not config.hosts and not config.exclude_hosts
        if shared and config.cluster is None:
            unfiltered.start_scanner()  # compiled while the warnings are worked out
        for warning in prefilter_warnings(
            unfiltered.engine_rules,
            paths,
            cache=rule_cache,
            ir_json=unfiltered.engine_json,
            scanner=(lambda: unfiltered.scanner) if shared and config.cluster is None else None,
            owners=[unfiltered.rules[i] for i in unfiltered.owner],
            threads=config.threads,
        ):
            print(f"imds-scan: warning: {safe(warning)}", file=sys.stderr)
        if shared:
            plan = unfiltered
    interrupted = False
    try:
        out_file, report_file = _prepare_outputs(output, report)
    except OutputError as exc:  # before scanning: an hour's scan is not lost at the end
        print(f"imds-scan: error: {safe(str(exc))}", file=sys.stderr)
        raise SystemExit(EXIT_ERROR) from None
    pending = [f for f in (out_file, report_file) if f is not None]
    want_summary = (
        summary if summary is not None else (not quiet and output_mod.is_terminal(sys.stdout))
    )
    sink: _Sink | None = None
    try:
        sink = _Sink(chosen, out_file, max_table_rows, want_summary or report is not None)
        with _progress_bar(quiet) as progress:
            stream = scan(
                paths,
                rules=rules,
                config=config,
                progress=progress,
                check_inputs=lambda sources: refuse_inputs(pending, sources, paths),
                needs=sink.needs,
                plan=plan,
            )
            interrupted = sink.consume(stream)
        stats = stream.close()
        if interrupted:
            stats.interrupted = True
        interrupted = stats.interrupted
        with _deferred_interrupt() as late:  # the hits found are written in full
            problem = sink.close()
            if report_file is not None:
                problem |= _write_report(report_file, sink, stats, _filters_described(config))
        interrupted |= late.is_set()
    except KeyboardInterrupt:
        print("imds-scan: interrupted", file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED) from None
    except (EqlError, InputError, FilterError, OutputError) as exc:
        print(f"imds-scan: error: {safe(str(exc))}", file=sys.stderr)
        raise SystemExit(EXIT_ERROR) from None
    finally:
        if sink is not None:
            sink.discard()
        for f in pending:  # a temporary file not renamed (nothing to write, or a failure)
            f.discard()
    if not quiet:
        output_mod.print_summary(stats, sink.count)
    else:  # -q drops the scan line, never the reason for exit 2 nor an input left unread
        for failed in stats.errors:
            print(
                f"imds-scan: error: {safe(failed.path)}: {safe(failed.error or '')}",
                file=sys.stderr,
            )
        for path, reason in stats.skipped:
            print(f"imds-scan: warning: skipped: {safe(path)}: {safe(reason)}", file=sys.stderr)
    for warning in [*output_mod.no_time_warnings(stats), *output_mod.allowlist_warnings(stats)]:
        print(f"imds-scan: warning: {warning}", file=sys.stderr)
    for shape in stats.not_ecs:
        print(f"imds-scan: warning: {shape.message}", file=sys.stderr)
    if want_summary and sink.aggregates is not None:
        from .report.summary import format_summaries

        why = {r.id: _first_sentence(r.description) for r in rules}
        print(format_summaries(sink.aggregates, why=why), file=sys.stderr)
    if interrupted:
        print("imds-scan: interrupted; the results cover what was read until then", file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED)
    if stats.errors or problem:
        raise SystemExit(EXIT_ERROR)
    raise SystemExit(EXIT_HITS if sink.count else EXIT_CLEAN)


_APP: typer.Typer | None = None


def _app() -> typer.Typer:
    """The Typer application (made once): the command line as Click reads it."""
    global _APP
    if _APP is None:
        import typer

        # Typer reads these signatures several times while it builds the command, and with
        # `from __future__ import annotations` would evaluate every Annotated[...] string each
        # time (about 10 ms of start-up): evaluated once here instead.
        names = {**globals(), "typer": typer}
        for function in (scan_command, _config_param, _show_version, _field_type_param):
            function.__annotations__ = get_type_hints(function, names, include_extras=True)
        # Unexpected exceptions reach main(): one line (a traceback with IMDS_SCAN_DEBUG).
        app = typer.Typer(
            add_completion=False,
            rich_markup_mode=None,
            pretty_exceptions_enable=False,
            context_settings={"help_option_names": ["-h", "--help"]},
        )
        app.command(help=HELP)(scan_command)
        _APP = app
    return _APP


def __getattr__(name: str) -> Any:
    if name == "app":  # `from imds_scan.cli import app` (tests, docs)
        return _app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _first_sentence(text: str) -> str:
    head, dot, _ = " ".join(text.split()).partition(". ")
    return head + ("." if head and (dot or not head.endswith(".")) else "")


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
    presets: list[str] | None = None,
    cache: bool = True,
    field_types: dict[str, str] | None = None,
    mapping: KqlMapping | None = None,
) -> list[Rule]:
    """The rules to run: --rule files (default: the bundled rule) with the config's
    [allowlist], the --preset allowlists and --allow conditions compiled in, in that order
    (the order in which a dropped event is attributed). Warnings go to stderr."""
    from .rules import BUNDLED_RULE, BundledRule, load_rules, pack_path

    # Not the path "default": a file of that name in the current directory is not a rule.
    given: list[str | BundledRule] = [*specs] if specs else [BUNDLED_RULE]
    rules, warnings = load_rules(
        [*given, *(pack_path(name) for name in packs or ())],
        skip_unsupported=skip,
        cache=cache,
        field_types=field_types,
        mapping=mapping,
    )
    loaded = ctx.meta.get("imds_scan.config")
    if loaded is None and not presets and not allow:  # no allowlist: config.py not needed
        for warning in warnings:
            print(f"imds-scan: warning: {safe(warning)}", file=sys.stderr)
        return rules
    from .config import (
        Allowlist,
        condition_allowlist,
        merge_allowlists,
        parse_allowlist,
        preset_allowlist,
    )

    config_allowlist = loaded.allowlist if loaded is not None else Allowlist()
    if loaded is not None and loaded.allowlist_table is not None and field_types:
        # compiled again: --field-type may add to the config's own [field-types]
        config_allowlist = parse_allowlist(
            loaded.allowlist_table, loaded.path, field_types=field_types
        )
    allow_key = _config_key(ctx, "allow")
    allowlist = merge_allowlists(
        config_allowlist,
        *(preset_allowlist(name) for name in dict.fromkeys(presets or ())),
        condition_allowlist(
            allow or (),
            "--allow" if allow_key is None else allow_key,
            field_types=field_types,
            indexed=allow_key is not None,
        ),
    )
    for rule_id in allowlist.unknown_rule_ids(rules):
        warnings.append(f'{allowlist.source}: [allowlist.rules."{rule_id}"] names no loaded rule')
    for warning in warnings:
        print(f"imds-scan: warning: {safe(warning)}", file=sys.stderr)
    return allowlist.apply(rules)


def _show_rules(rules: list[Rule], config: ScanConfig) -> None:
    """--show-rule: each rule's effective EQL (as the engines receive it), then exit 0."""
    from . import kibana_scan
    from .eql import format_rule, options_text
    from .sequences import effective_rules

    for i, rule in enumerate(effective_rules(rules, config.hosts, config.exclude_hosts)):
        if i:
            print()
        print(f"// {rule.name} (rule_id {rule.id}, severity {rule.severity or 'unset'})")
        print(f"// from {rule.source}")
        if rule.kind in kibana_scan.KINDS:  # its condition, as its stage rule runs it
            print("\n".join(f"// {line}" for line in kibana_scan.describe(rule)))
            print(format_rule(kibana_scan.stage_rules(rule)[0].ir))
            continue
        if rule.kind in ("sequence", "sample"):
            print(f"// {safe(options_text(rule.ir))}")
        print(format_rule(rule.ir))


def _filters_described(config: ScanConfig) -> list[tuple[str, str]]:
    described = [("--host", h) for h in config.hosts]
    described += [("--exclude-host", h) for h in config.exclude_hosts]
    if config.since is not None:
        described.append(("--since", config.since.isoformat()))
    if config.until is not None:
        described.append(("--until", config.until.isoformat()))
    return described


def _prepare_outputs(
    output: str | None, report: str | None
) -> tuple[PendingOutput | None, PendingOutput | None]:
    """Check that the output files can be written (their temporary files are made now)."""
    out_file = PendingOutput(output, "--output") if output not in (None, "-") else None
    try:
        report_file = PendingOutput(report, "--report") if report is not None else None
    except OutputError:
        if out_file is not None:
            out_file.discard()
        raise
    if out_file is not None and report_file is not None and out_file.target == report_file.target:
        out_file.discard()
        report_file.discard()
        raise OutputError("--output and --report name the same file")
    return out_file, report_file


def _to_stdout(write: Callable[[], None]) -> None:
    """Run ``write`` (to stdout) and flush. A reader that went away (``| head``) is not an
    error; a stdout that cannot be written (a full disk) is: one line, SystemExit(2)."""
    try:
        write()
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
    except OSError as exc:
        _silence_stdout()
        print(
            f"imds-scan: error: cannot write to standard output: {exc.strerror or exc}",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_ERROR) from None


def _silence_stdout() -> None:
    """Standard output is gone or full: send what is still buffered nowhere, quietly."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


class _Guard:
    """While hits are written, Ctrl-C waits for the batch to be written whole; elsewhere it
    interrupts as usual (the engine sees it and stops)."""

    def __init__(self) -> None:
        self.writing = False
        self.pressed = False

    def handler(self, signum: int, frame: object) -> None:
        if self.writing:
            self.pressed = True
        else:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGINT, self.handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    @contextlib.contextmanager
    def writing_batch(self) -> Iterator[None]:
        self.writing = True
        try:
            yield
        finally:
            self.writing = False
        if self.pressed:
            raise KeyboardInterrupt


class _Sink:
    """Where the hits go as they stream past: the --output writer (or stdout's), and the
    aggregates of --summary and --report (with the report's first hits). ``needs``: what
    they read from the batches (the engine builds only that)."""

    def __init__(
        self, fmt: str, out_file: PendingOutput | None, max_table_rows: int, aggregate: bool
    ) -> None:
        from .batch import FRAME
        from .report.formats import NEEDS, HitWriter, stream_writer

        self.fmt = fmt
        self.out_file = out_file
        self.count = 0
        self.problem = False
        self.failure: OSError | None = None
        self.aggregates: Aggregates | None = None
        self.needs = NEEDS[fmt] | ({FRAME} if aggregate else set())
        if aggregate:  # Polars only then: plain ndjson output never imports it
            from .report.aggregate import Aggregates
            from .report.html import MAX_HIT_ROWS

            self.aggregates = Aggregates(keep=MAX_HIT_ROWS)
        self.handle: BinaryIO | None = None
        self.writer: HitWriter | None
        if out_file is None:
            # Bytes to stdout's own buffer, text in its encoding: records go through whole.
            sys.stdout.flush()
            self.writer = stream_writer(
                fmt,
                sys.stdout.buffer,
                max_table_rows=max_table_rows,
                encoding=sys.stdout.encoding,
                errors=sys.stdout.errors or "strict",
                width=output_mod.table_width(sys.stdout) if fmt == "table" else None,
            )
        elif fmt == "parquet":
            from .report.formats import ParquetWriter

            self.writer = ParquetWriter(out_file.write_path)
        else:
            try:
                # Closed by close() or discard(): it lives across the whole stream.
                self.handle = out_file.open_binary()
            except OSError as exc:
                self.writer, self.failure = None, exc
            else:
                self.writer = stream_writer(fmt, self.handle, max_table_rows=max_table_rows)

    def consume(self, stream: HitStream) -> bool:
        """Write the stream's batches as they come; True if Ctrl-C stopped it."""
        guard = _Guard()
        try:
            with guard.installed():
                for batch in stream:
                    with guard.writing_batch():
                        self.write(batch)
        except KeyboardInterrupt:
            return True
        return False

    def write(self, batch: HitBatch) -> None:
        self.count += batch.count
        if self.aggregates is not None:
            self.aggregates.add_frame(batch.frame)
        if self.writer is None:
            return
        try:
            self.writer.write(batch)
            # A reader (of stdout, or tail -f of the file) sees each batch as it comes.
            out = sys.stdout.buffer if self.out_file is None else self.handle
            if out is not None:
                out.flush()
        except OSError as exc:
            self._failed(exc)

    def _failed(self, exc: OSError) -> None:
        self.writer = None
        if self.out_file is not None:
            self.failure = self.failure or exc
            return
        _silence_stdout()
        if not isinstance(exc, BrokenPipeError):  # a reader that went away is no error
            print(
                f"imds-scan: error: cannot write to standard output: {exc.strerror or exc}",
                file=sys.stderr,
            )
            self.problem = True

    def close(self) -> bool:
        """End the document and put the output file in place; True if it failed."""
        if self.writer is not None:
            try:
                self.writer.close()
                if self.out_file is None:
                    sys.stdout.flush()
            except OSError as exc:
                self._failed(exc)
        if self.handle is not None:
            try:
                self.handle.close()
            except OSError as exc:
                self.failure = self.failure or exc
        if self.out_file is None:
            return self.problem
        return _finish_output(self.out_file, self.fmt, self.failure)

    def discard(self) -> None:
        from .report.formats import ParquetWriter

        if isinstance(self.writer, ParquetWriter):
            self.writer.discard()
        if self.handle is not None:
            with contextlib.suppress(OSError):
                self.handle.close()


def _write_report(
    file: PendingOutput, sink: _Sink, stats: ScanStats, filters: list[tuple[str, str]]
) -> bool:
    from .report.html import render_aggregates

    assert sink.aggregates is not None
    partial = None
    if stats.interrupted:
        partial = "Interrupted (Ctrl-C): the hits cover what was read until then."
    elif stats.stopped_at is not None:
        where, line = stats.stopped_at
        partial = f"Stopped early by --max-hits at {where}:{line}: the hits are partial."

    def write(path: str) -> None:
        assert sink.aggregates is not None
        text = render_aggregates(sink.aggregates, stats, filters=filters, partial=partial)
        with open(path, "w", encoding="utf-8") as out:
            out.write(text)

    return _write_output(file, "html", write)


def _finish_output(file: PendingOutput, fmt: str, failure: OSError | None) -> bool:
    """Rename the written file over the target; True on failure. A line format cut short
    keeps its whole records; any other is not renamed."""
    name = safe(file.path)
    if failure is not None:
        reason = failure.strerror or str(failure)
        if fmt in LINE_FORMATS and not file.in_place:
            try:
                kept = file.keep_whole_lines()
            except (OSError, OutputError):
                kept = None
            if kept is not None:
                print(
                    f"imds-scan: error: cannot write {name} in full: {reason}; it holds the "
                    f"first {kept:,} record(s)",
                    file=sys.stderr,
                )
                return True
        file.discard()
        print(f"imds-scan: error: cannot write {name}: {reason}", file=sys.stderr)
        return True
    try:
        file.commit()
    except OutputError as exc:
        print(f"imds-scan: error: {safe(str(exc))}", file=sys.stderr)
        return True
    return False


def _write_output(file: PendingOutput, fmt: str, write: Callable[[str], None]) -> bool:
    """Write to the temporary file, then rename it over the target; True on failure."""
    try:
        write(file.write_path)
    except OSError as exc:
        return _finish_output(file, fmt, exc)
    return _finish_output(file, fmt, None)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "an expression is nested too deeply (RecursionError)"
    if isinstance(exc, MemoryError):
        return "out of memory"
    return safe(f"{type(exc).__name__}: {exc}")


class _ClosedStdout(io.RawIOBase):
    """Standard output when the process started without one (``>&-``): writing to it fails
    as writing to a closed descriptor does, so results meant for it are an error (exit 2),
    not lost in silence."""

    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        raise OSError(errno.EBADF, "standard output is closed")


# The fast path: a command line of paths and these options is read here, as Click would read
# it, and the command runs without Typer. Anything else (another option or form, a config
# file to read, a usage error) goes to Typer. tests/test_startup_imports.py checks these
# tables against the Click command and both paths' output against each other.
_FAST_VALUES = {
    "--format": "fmt",
    "-f": "fmt",
    "--output": "output",
    "-o": "output",
    "--max-table-rows": "max_table_rows",
    "--max-hits": "max_hits",
    "--report": "report",
    "--since": "since",
    "--until": "until",
    "--host": "host",
    "--exclude-host": "exclude_host",
    "--engine": "engine",
    "--threads": "threads",
    "--endpoint-url": "endpoint_url",
    "--cluster": "cluster",
    "--range-size": "range_size",
    "--max-line-bytes": "max_line_bytes",
    "--rule": "rule",
    "--pack": "pack",
    "--preset": "preset",
    "--allow": "allow",
    "--mapping": "mapping_file",
}
_FAST_FLAGS = {
    "--quiet": ("quiet", True),
    "-q": ("quiet", True),
    "--summary": ("summary", True),
    "--no-summary": ("summary", False),
    "--prefilter": ("prefilter", True),
    "--no-prefilter": ("prefilter", False),
    "--skip-unsupported-rules": ("skip_unsupported_rules", True),
    "--rule-cache": ("rule_cache", True),
    "--no-rule-cache": ("rule_cache", False),
    "--show-rule": ("show_rule", True),
    "--no-config": ("no_config", True),  # then no config is looked for (scripts pass it)
}
_FAST_LISTS = frozenset({"host", "exclude_host", "rule", "pack", "preset", "allow"})
_FAST_INTS = {"max_table_rows": 0, "max_hits": 1, "threads": 0}  # the options' minimum
_FAST_CHOICES: dict[str, type[StrEnum]] = {"fmt": Format, "engine": EngineName}


def _fast_params(args: list[str]) -> dict[str, Any] | None:
    """scan_command's parameters for ``args``, or None when Typer must read them."""
    from .userdirs import CONFIG_ENV, DEFAULT_CONFIG, user_config_path

    if (
        os.name != "posix"  # Click expands globs in the arguments on Windows
        or any(k.endswith("_COMPLETE") for k in os.environ)  # Click's shell completion
        or os.path.isfile(DEFAULT_CONFIG)  # Typer's path says it was not read
    ):
        return None
    code = scan_command.__code__
    names = code.co_varnames[: code.co_argcount]
    defaults = scan_command.__defaults__ or ()
    params: dict[str, Any] = dict(zip(names[len(names) - len(defaults) :], defaults, strict=True))
    lists: dict[str, list[str]] = {}
    paths: list[str] = []
    rest = iter(args)
    for arg in rest:
        if arg == "--":
            paths.extend(rest)
            break
        if arg == "-" or not arg.startswith("-"):
            paths.append(arg)
            continue
        name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name in _FAST_FLAGS and not eq:
            param, flag = _FAST_FLAGS[name]
            params[param] = flag
            continue
        param = _FAST_VALUES.get(name, "")
        if not param:
            return None
        if not eq:  # Click takes the next argument, whatever it looks like
            following = next(rest, None)
            if following is None:
                return None
            value = following
        if param in _FAST_LISTS:
            lists.setdefault(param, []).append(value)
        elif param in _FAST_INTS:
            try:
                number = int(value)
            except ValueError:
                return None
            if number < _FAST_INTS[param] or (param == "threads" and number > MAX_THREADS):
                return None  # (over MAX_THREADS: Typer's path warns)
            params[param] = number
        elif param in _FAST_CHOICES:
            choice = _FAST_CHOICES[param]
            if value not in choice.__members__.values():
                return None
            params[param] = choice(value)
        else:
            params[param] = value
    if not paths:
        return None
    if not params["no_config"] and (
        os.environ.get(CONFIG_ENV) or os.path.exists(user_config_path())
    ):
        return None  # a config to read: Typer's path reads it
    params.update(lists, paths=paths)
    return params


class _FastContext:
    """What scan_command reads of Click's context when the fast path runs it: no config was
    read, and every option came from the command line or its default."""

    def __init__(self) -> None:
        self.meta: dict[str, Any] = {}

    def get_parameter_source(self, name: str) -> None:
        return None


def _run_fast(params: dict[str, Any]) -> None:
    """Run the command as Typer would (its exits, Ctrl-C, EPIPE); _Fallback on a usage error,
    before anything was written."""
    global _fast
    _fast = True
    try:
        scan_command(cast("typer.Context", _FastContext()), **params)
    except KeyboardInterrupt:
        raise SystemExit(EXIT_INTERRUPTED) from None
    except EOFError:
        print("\nAborted!", file=sys.stderr)
        raise SystemExit(1) from None
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        _silence_stdout()
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stderr.fileno())
        raise SystemExit(1) from None
    finally:
        _fast = False
    raise SystemExit(EXIT_CLEAN)


def _run() -> None:
    params = _fast_params(sys.argv[1:])
    if params is not None:
        with contextlib.suppress(_Fallback):  # then Typer words the usage error
            _run_fast(params)
    _app()()


def main() -> None:
    """The entry point: exit codes as documented, never a traceback (unless IMDS_SCAN_DEBUG)."""
    # numpy (pyarrow imports it, when installed, to write Parquet) starts OpenBLAS with a
    # thread per core, which spins a while waiting for work the CLI never gives it: CPU the
    # scan's threads lose (6% of the time writing many hits to Parquet on 2 cores). The
    # user's setting wins.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    code: int | str | None
    if sys.stdout is None:
        sys.stdout = io.TextIOWrapper(_ClosedStdout())
    try:
        _run()
        code = EXIT_CLEAN
    except SystemExit as stop:
        code = stop.code
    except KeyboardInterrupt:
        print("imds-scan: interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    except Exception as exc:  # a bug or an unforeseen condition: one line, exit 2
        if os.environ.get("IMDS_SCAN_DEBUG"):
            import traceback

            traceback.print_exc()
        else:
            print(
                f"imds-scan: error: {_describe(exc)} (IMDS_SCAN_DEBUG=1 shows where)",
                file=sys.stderr,
            )
        code = EXIT_ERROR
    try:
        _to_stdout(lambda: None)  # what is still buffered
    except SystemExit:
        code = EXIT_ERROR
    sys.exit(code)
