"""Rendering results for people and programs; log content never reaches a terminal raw."""

from __future__ import annotations

import re
import sys
from typing import TextIO

from .scan import Hit, ScanStats

# C0 and C1 controls, DEL, and Unicode bidi/format characters that can reorder or hide text.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def safe(text: str) -> str:
    """Escape control and text-direction characters so log content cannot drive a terminal."""
    return _UNSAFE.sub(
        lambda m: (
            f"\\u{ord(m.group()):04x}" if ord(m.group()) > 0xFF else f"\\x{ord(m.group()):02x}"
        ),
        text,
    )


def write_ndjson(hits: list[Hit], out: TextIO) -> None:
    for hit in hits:
        out.write(hit.to_json())
        out.write("\n")


def _event_field(hit: Hit, path: str) -> str:
    from .filters import load_event
    from .reference import field_values

    try:
        # load_event keeps numbers as their JSON text, so a numeric host.name still shows.
        values = list(field_values(load_event(hit.event_text), path.split(".")))
    except ValueError:
        return ""
    return ", ".join(values)


def write_table(hits: list[Hit], out: TextIO) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"{len(hits)} hit(s)", show_lines=False, expand=True)
    # Several rules (a pack, --rule DIR): say which one each hit is from.
    by_rule = len({hit.rule.id for hit in hits}) > 1
    names = ("source:line", *(("rule",) if by_rule else ()), "branch", "host", "process")
    for name in (*names, "matched"):
        table.add_column(name, overflow="fold")
    for hit in hits:
        matched = ""
        if hit.matched:
            matched = f"{hit.matched['field']} ~ {hit.matched['pattern']}: {hit.matched['value']}"
        rule = (f"{hit.rule.id} ({hit.rule.severity})",) if by_rule else ()
        cells = (
            f"{hit.source}:{hit.line}",
            *rule,
            hit.branch,
            _event_field(hit, "host.name"),
            _event_field(hit, "process.name"),
            matched,
        )
        # Text() never interprets markup, and safe() removes control characters.
        table.add_row(*(Text(safe(cell)) for cell in cells))
    Console(file=out, highlight=False).print(table)


def format_summary(stats: ScanStats, hits: list[Hit], examples: int = 5) -> str:
    files = len(stats.files)
    compressed = [f for f in stats.files if f.compression]
    read = ""
    if compressed:
        packed = sum(f.source_bytes for f in compressed) / 1e6
        read = f" ({len(compressed)} compressed: {packed:,.1f} MB read)"
    lines = [
        f"imds-scan: {files} file(s), {stats.total('events'):,} events, "
        f"{stats.total('bytes') / 1e6:,.1f} MB{read}, {len(hits)} hit(s) "
        f"in {stats.elapsed:.2f} s ({stats.mb_per_s:,.0f} MB/s, {stats.engine} engine)"
    ]
    if stats.interrupted:
        lines.append("  interrupted (Ctrl-C): the results cover what was read until then")
    if stats.outside_time_window:
        lines.append(f"  hits outside --since/--until: {stats.outside_time_window:,}")
    malformed = stats.total("malformed")
    if malformed:
        lines.append(f"  malformed lines: {malformed:,}")
        shown = 0
        for f in stats.files:
            for line, reason in f.malformed_examples:
                if shown < examples:
                    lines.append(f"    {safe(f.path)}:{line}: {safe(reason)}")
                    shown += 1
    long_lines = stats.total("long_lines")
    if long_lines:
        lines.append(f"  lines longer than max-line-bytes (not evaluated): {long_lines:,}")
    invalid = stats.total("invalid_utf8")
    if invalid:
        lines.append(f"  lines with invalid UTF-8 (decoded with U+FFFD): {invalid:,}")
    if stats.errors:
        lines.append(f"  inputs not fully read: {len(stats.errors):,}")
    for f in stats.errors:
        lines.append(f"  error: {safe(f.path)}: {safe(f.error or '')}")
    empty = [f for f in stats.files if f.error is None and f.source_bytes == 0]
    if empty:
        names = ", ".join(safe(f.path) for f in empty[:examples])
        more = f" and {len(empty) - examples:,} more" if len(empty) > examples else ""
        lines.append(f"  empty inputs: {len(empty):,} ({names}{more})")
    for path, reason in stats.skipped:
        lines.append(f"  skipped: {safe(path)}: {safe(reason)}")
    return "\n".join(lines)


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def print_summary(stats: ScanStats, hits: list[Hit]) -> None:
    print(format_summary(stats, hits), file=sys.stderr)
