"""Rendering results for people and programs; log content never reaches a terminal raw."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO

from .escape import safe
from .reference.event import field_values, load_event

if TYPE_CHECKING:
    from .records import Hit, ScanStats


def write_ndjson(hits: list[Hit], out: TextIO) -> None:
    for hit in hits:
        out.write(hit.to_json())
        out.write("\n")


# Characters of one value shown in summaries and the HTML report; the rest is counted in a
# marker. An attacker sizes values (a 20 MB command line), the machine formats keep them whole.
DISPLAY_LIMIT = 300
# Rows of --format table before a line counting the rest (--max-table-rows; 0 = all).
MAX_TABLE_ROWS = 1000
# Table width when the output is not a terminal and $COLUMNS is unset.
FILE_WIDTH = 160


def clip(text: str, limit: int = DISPLAY_LIMIT) -> str:
    """``text`` escaped (:func:`safe`) and cut to at most ``limit`` characters plus a visible
    marker, ``…[+N chars]``, N counting the characters of ``text`` not shown; 0 = whole."""
    shown = safe(text[:limit] if limit else text)
    if not limit or (len(text) <= limit and len(shown) <= limit):
        return shown
    kept, used = 0, 0
    for char in text[:limit]:  # an escape is longer than its character: count what fits
        size = len(safe(char))
        if used + size > limit:
            break
        kept, used = kept + 1, used + size
    return f"{safe(text[:kept])}…[+{len(text) - kept} chars]"


def _field(doc: dict[str, object] | None, path: str) -> str:
    # load_event keeps numbers as their JSON text, so a numeric host.name still shows.
    values = list(field_values(doc, path.split("."))) if doc is not None else []
    return ", ".join(values) if values else "-"


def iso_second(moment: datetime | None) -> str:
    """ISO 8601 UTC to the second; isoformat pads the year to 4 digits (strftime may not)."""
    if moment is None:
        return "-"
    text = moment.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat()
    return f"{text}Z"


def table_width(out: TextIO) -> int:
    """The terminal's width, else $COLUMNS, else FILE_WIDTH."""
    if is_terminal(out):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            width = os.get_terminal_size(out.fileno()).columns
            if width > 0:  # a pty whose size was never set reports 0
                return width
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else FILE_WIDTH


class _Column:
    # A plain class, not a dataclass: making one costs every run's start-up about a millisecond.
    def __init__(self, header: str, soft: int, hard: int, cap: int) -> None:
        self.header = header
        self.soft = soft  # shrunk to this first (the value column first of all),
        self.hard = hard  # then to this; a cell wider than its column is cut with "…"
        self.cap = cap  # never wider than this
        self.cells: list[str] = []
        self.width = 0


def _escaped_head(text: str, cap: int) -> str:
    """Enough of ``text``, escaped, to fill ``cap`` cells: the rest is never measured (a value
    can be 20 MB) and a "…" stands for it."""
    head = text[: 2 * cap + 8]  # more than cap characters: combining marks take no cell
    return safe(head) if head == text else safe(head) + "…"


def _cut(text: str, width: int) -> str:
    """``text`` in exactly ``width`` cells: padded, or cut with a trailing "…"."""
    from rich.cells import cell_len, set_cell_size

    if cell_len(text) <= width:
        return set_cell_size(text, width)
    return set_cell_size(text, max(width - 1, 0)) + "…"


# Shrunk in this order when the table is wider than the terminal; the time never is.
_SHRINK = ("rule", "process", "user", "host", "branch")
# Left out, in this order, while the value would get fewer cells than this: the value says
# more than its field's name, and the rule column more than the branch (often "branch1").
_DROP = (("field", 30), ("branch", 20))


def _fit(columns: list[_Column], total: int, sep: int) -> list[_Column]:
    """Set widths for ``total`` cells. The last column (the matched value) gets what the others
    leave; when that is too little, columns are left out (_DROP), then the others shrink to
    their soft and then hard minimums, the value to its hard minimum. A terminal narrower than
    that gets long lines."""
    from rich.cells import cell_len

    for col in columns:
        col.width = min(col.cap, max(cell_len(c) for c in [col.header, *col.cells]))
    value = columns[-1]
    natural = value.width

    def room(soft: bool = False) -> int:
        """Cells left for the value (``soft``: were the others at their soft minimums)."""
        others = [
            min(c.width, c.soft) if soft and c.header in _SHRINK else c.width for c in columns
        ]
        return total - sum(others[:-1]) - sep * (len(columns) - 1)

    for name, need in _DROP:
        if room(soft=True) < min(natural, need):
            columns = [col for col in columns if col.header != name]
    for floor in ("soft", "hard"):
        for name in _SHRINK:
            lack = min(natural, getattr(value, floor)) - room()
            for col in columns:
                if col.header == name and lack > 0:
                    col.width -= min(lack, max(0, col.width - getattr(col, floor)))
    value.width = max(min(natural, room()), min(natural, value.hard))
    return columns


def write_table(
    hits: list[Hit],
    out: TextIO,
    max_rows: int = MAX_TABLE_ROWS,
    width: int | None = None,
    *,
    total: int | None = None,
    by_rule: bool | None = None,
) -> None:
    """One line per hit, fitted to ``width`` (default: :func:`table_width`): time, host, user,
    process, rule (when several ran), branch, the matched field and value. Cells too wide are
    cut with "…" (the whole record is in ``-f ndjson``); log content is escaped. A stream's
    table: ``hits`` its first rows, ``total`` its hits, ``by_rule`` whether several rules hit.
    A sequence or sample result is one line: its first event's, with :func:`result_label` as
    the value."""
    from .filters import event_time

    width = table_width(out) if width is None else width
    shown = hits[:max_rows] if max_rows > 0 else hits
    total = len(hits) if total is None else total
    # Several rules (a pack, --rule DIR): say which one each hit is from.
    if by_rule is None:
        by_rule = len({hit.rule.id for hit in hits}) > 1
    columns = [
        _Column("@timestamp", 20, 20, 20),
        _Column("host", 12, 8, 32),
        _Column("user", 8, 5, 20),
        _Column("process", 8, 6, 24),
        *([_Column("rule", 12, 8, 40)] if by_rule else []),
        _Column("branch", 7, 4, 16),
        _Column("field", 12, 12, 24),
        _Column("matched", 30, 12, max(width, 20)),
    ]
    for hit in shown:
        try:
            doc: dict[str, object] | None = load_event(hit.event_text)
        except ValueError:
            doc = None
        matched = hit.matched or {}
        if hit.events is not None:  # a sequence or sample: what it joined, not a predicate
            matched = {"value": result_label(hit)}
        elif hit.run is not None:  # a new_terms or threshold alert: its terms and run
            matched = {"value": alert_label(hit)}
        texts = [
            iso_second(event_time(doc) if doc is not None else None),
            _field(doc, "host.name"),
            _field(doc, "user.name"),
            _field(doc, "process.name"),
            *([f"{hit.rule.id} ({hit.rule.severity})"] if by_rule else []),
            hit.branch,
            matched.get("field", ""),
            matched.get("value", ""),
        ]
        for col, text in zip(columns, texts, strict=True):
            col.cells.append(_escaped_head(text, col.cap))
    sep = 2 if width >= 120 else 1
    columns = _fit(columns, width, sep)
    gap = " " * sep

    def line(cells: list[str]) -> str:
        text = gap.join(_cut(c, col.width) for c, col in zip(cells, columns, strict=True))
        return text.rstrip() + "\n"

    out.write(f"{total:,} hit(s)\n")
    out.write(line([c.header for c in columns]))
    out.write(gap.join("─" * c.width for c in columns) + "\n")
    for row in zip(*(c.cells for c in columns), strict=True):
        out.write(line(list(row)))
    if len(shown) < total:
        out.write(
            f"… {total - len(shown):,} more hit(s) not shown (--max-table-rows "
            f"{max_rows:,}): -f ndjson for all\n"
        )


def result_label(hit: Hit) -> str:
    """A sequence or sample result in a few words: ``2 events (1 missing) by ["h1"]``."""
    events = hit.events or ()
    present = sum(1 for event in events if event.event_text is not None)
    keys = json.dumps(list(hit.join_keys or ()), ensure_ascii=False)
    return events_label(present, len(events) - present, keys)


def alert_label(hit: Hit) -> str:
    """A new_terms or threshold alert in a few words (the table's and the report's value):
    ``new ["h-1"] (run 2024-05-01T10:05:00.000Z, warm-up)``,
    ``count 12 by {"host.id": "h-1"} (run …)``."""
    from .records import alert_fields

    fields = alert_fields(hit)
    return terms_label(
        hit.branch,
        json.dumps(fields.get("new_terms"), ensure_ascii=False),
        str(hit.run),
        bool(fields.get("warmup")),
        json.dumps(fields.get("threshold_result"), ensure_ascii=False),
    )


def terms_label(branch: str, new_terms: str, run: str, warmup: bool, threshold: str) -> str:
    """:func:`alert_label` from the frame's columns (JSON text of ``new_terms`` and
    ``threshold_result``)."""
    if branch == "threshold":
        try:
            result = json.loads(threshold)
            terms = json.dumps(result.get("terms") or {}, ensure_ascii=False)
            text = f"count {result.get('count')}" + ("" if terms == "{}" else f" by {terms}")
            for card in result.get("cardinality") or ():
                text += f", {card.get('value')} distinct {card.get('field')}"
        except (ValueError, AttributeError, TypeError):  # not the record's: as it is
            text = threshold
        return f"{text} (run {run})"
    return f"new {new_terms} (run {run}{', warm-up' if warmup else ''})"


def events_label(present: int, missing: int, join_keys: str) -> str:
    """:func:`result_label` from the counts and the join keys' JSON text."""
    text = f"{present} event{'' if present == 1 else 's'}"
    if missing:
        text += f" ({missing} missing)"
    return text if join_keys == "[]" else f"{text} by {join_keys}"


def events(stats: ScanStats) -> int:
    """Events read: the non-blank lines that are not malformed (those are counted apart)."""
    return stats.total("events") - stats.total("malformed")


def format_summary(stats: ScanStats, hits: list[Hit] | int, examples: int = 5) -> str:
    """The scan line and what went wrong; ``hits``: the hits, or how many there were."""
    count = hits if isinstance(hits, int) else len(hits)
    files = len(stats.files)
    compressed = [f for f in stats.files if f.compression]
    read = ""
    if compressed:
        packed = sum(f.source_bytes for f in compressed) / 1e6
        read = f" ({len(compressed)} compressed: {packed:,.1f} MB read)"
    lines = [
        f"imds-scan: {files:,} file(s), {events(stats):,} events, "
        f"{stats.total('bytes') / 1e6:,.1f} MB{read}, {count:,} hit(s) "
        f"in {stats.elapsed:.2f} s ({stats.mb_per_s:,.0f} MB/s, {stats.engine} engine)"
    ]
    if stats.interrupted:
        lines.append(
            "  interrupted (Ctrl-C): the results cover what was read until then; the output "
            "is partial (whole records)"
        )
    if stats.stopped_at is not None:
        where, line = stats.stopped_at
        lines.append(
            f"  stopped early by --max-hits after {count:,} hit(s), at {safe(where)}:{line}: "
            "the output is partial"
        )
    if stats.outside_time_window:
        lines.append(f"  hits outside --since/--until: {stats.outside_time_window:,}")
    if stats.alerts:
        per_rule = ", ".join(f"{safe(rule)} {count:,}" for rule, count in stats.alerts.items())
        lines.append(f"  new_terms/threshold alerts: {per_rule}")
    if stats.warmup_alerts:
        lines.append(
            f"  new_terms alerts of warm-up runs (history window before the first event): "
            f"{stats.warmup_alerts:,}"
        )
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
        spots = [(f.path, line) for f in stats.files for line in f.invalid_utf8_lines]
        lines.extend(f"    {safe(path)}:{line}" for path, line in spots[:examples])
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
    if stats.not_ecs:
        lines.append(
            f"  inputs that do not look like ECS (no field the rules read): {len(stats.not_ecs):,}"
        )
    for drops in stats.allowlist:
        if drops.dropped:  # each entry that dropped something, in attribution order
            lines.append(f"  allowlist dropped {drops.dropped:,} hit(s) of {safe(drops.rule_id)}:")
            lines.extend(f"    {n:>7,}  {safe(label)}" for label, n in drops.entries if n)
    return "\n".join(lines)


def allowlist_warnings(stats: ScanStats) -> list[str]:
    """Rules whose allowlist dropped every hit: likely an entry broader than meant."""
    return [
        f"the allowlist dropped every hit of rule {safe(d.rule_id)} ({d.dropped:,}): "
        "check that its entries are not broader than meant (--show-rule prints them)"
        for d in stats.allowlist
        if d.dropped and not d.hits
    ]


def no_time_warnings(stats: ScanStats) -> list[str]:
    """Sequence and sample stage candidates, and new_terms and threshold rules' matching
    events, left out for want of a parsable time (they cannot take part, as in Elasticsearch),
    with the first few as file:line."""
    out = []
    if stats.no_time:
        where = ", ".join(f"{safe(path)}:{line}" for path, line in stats.no_time_examples)
        out.append(
            f"{stats.no_time:,} sequence/sample candidate(s) without a parsable timestamp were "
            f"left out of the sequences and samples (e.g. {where})"
        )
    if stats.kql_no_time:
        where = ", ".join(f"{safe(path)}:{line}" for path, line in stats.kql_no_time_examples)
        out.append(
            f"{stats.kql_no_time:,} matching event(s) of new_terms/threshold rules (counted per "
            f"rule) without a parsable time (timestamp_override or @timestamp) were left out "
            f"of their alerts (e.g. {where})"
        )
    return out


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def print_summary(stats: ScanStats, hits: list[Hit] | int) -> None:
    print(format_summary(stats, hits), file=sys.stderr)
