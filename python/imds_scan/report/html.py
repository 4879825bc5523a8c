"""``--report FILE.html``: one self-contained page (inline CSS and SVG, no script, no fetch).

Every piece of log content goes through :func:`esc` (control characters made visible, then
HTML-escaped with quotes): an attacker controls command lines and host names. A restrictive
Content-Security-Policy is a second line: even a missed escape could not run or fetch anything.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import cast

import polars as pl

from ..output import DISPLAY_LIMIT, events, events_label, iso_second, terms_label
from ..records import ScanStats
from ..reference.event import deep_json
from ..results import ScanResult
from .aggregate import Aggregates
from .summary import TS, cell, summaries

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'"
MAX_HIT_ROWS = 2000
# Rows of each per-host/process/user table (one row per distinct value: a fleet has many).
MAX_GROUP_ROWS = 200
MAX_BINS = 400
CHART_W, CHART_H, PAD_L, PAD_B, PAD_T = 960, 220, 48, 36, 12

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1d2430;
background:#f6f7f9}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.meta{color:#5b6472;margin-bottom:16px}
.facts{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0}
.fact{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:8px 14px;min-width:110px}
.fact b{display:block;font-size:20px}.fact span{color:#5b6472;font-size:12px}
table{border-collapse:collapse;background:#fff;border:1px solid #dde1e7;width:100%;
margin-bottom:8px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #eceff3;vertical-align:top}
th{background:#eef1f5;font-weight:600;white-space:nowrap}
td.t{white-space:nowrap;font-variant-numeric:tabular-nums}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
code{font:12px/1.4 ui-monospace,"DejaVu Sans Mono",monospace;white-space:pre-wrap;
word-break:break-all}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:0 24px}
svg{background:#fff;border:1px solid #dde1e7;border-radius:6px;width:100%;height:auto}
.bar{fill:#c0392b}.axis{stroke:#8a93a0;stroke-width:1}.lbl{font:11px sans-serif;fill:#5b6472}
.note{color:#5b6472;font-size:12px}
tr.ev td{border-bottom:1px solid #eceff3;padding-top:0}tr.ev ol{margin:0;padding-left:22px}
"""


def esc(value: object, width: int = DISPLAY_LIMIT) -> str:
    """Log content (or anything) as inert HTML text, cut to ``width`` characters with a marker
    counting the rest: the page's size follows the number of rows, not an attacker's values."""
    return html.escape(cell(value, width), quote=True)


def _table(
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    numeric: set[int],
    after: Sequence[str] = (),
) -> str:
    """``after``: HTML (escaped already) put after each row, by row ("" for none)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{esc(v)}</td>'
            if i in numeric
            else f'<td class="t">{esc(v)}</td>'
            if isinstance(v, datetime)
            else f"<td><code>{esc(v)}</code></td>"
            for i, v in enumerate(row)
        )
        + "</tr>"
        + (after[k] if k < len(after) else "")
        for k, row in enumerate(rows)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def timeline(frame: pl.DataFrame | Aggregates) -> tuple[str, pl.DataFrame]:
    """Hits per hour (span up to 3 days), day (up to MAX_BINS days), week (up to MAX_BINS
    weeks) or year, empty bins included: (bin name, frame of ``bin``, ``hits``).
    ``frame``: the hits frame, or the aggregates of a stream of hits."""
    agg = frame if isinstance(frame, Aggregates) else Aggregates.of(frame)
    hours = agg.parts["by_hour"]
    if hours.is_empty():
        return "hour", pl.DataFrame(schema={"bin": agg.head.schema[TS], "hits": pl.Int64})
    seen = agg.parts["seen"].row(0, named=True)
    first, last = seen["first_seen"], seen["last_seen"]
    assert isinstance(first, datetime) and isinstance(last, datetime)
    span = last - first
    if span <= timedelta(days=3):
        name, every = "hour", "1h"
    elif span <= timedelta(days=MAX_BINS):
        name, every = "day", "1d"
    elif span <= timedelta(weeks=MAX_BINS):
        name, every = "week", "1w"
    else:  # e.g. a forged @timestamp far in the past: keep the chart small
        name, every = "year", "1y"
    # Day, week and year boundaries (UTC) are hour boundaries: hour bins rebin exactly.
    counts = hours.group_by(pl.col("bin").dt.truncate(every)).agg(
        pl.col("hits").sum().cast(pl.Int64)
    )
    start, end = counts.get_column("bin").min(), counts.get_column("bin").max()
    assert isinstance(start, datetime) and isinstance(end, datetime)
    bins = pl.DataFrame(
        {"bin": pl.datetime_range(start, end, every, time_zone="UTC", time_unit="us", eager=True)}
    )
    return name, bins.join(counts, on="bin", how="left").fill_null(0).sort("bin")


def _bin_label(moment: datetime, unit: str) -> str:
    text = iso_second(moment)  # a 4-digit year (0999), which strftime's %Y does not give
    return {"hour": f"{text[:10]} {text[11:14]}00", "year": text[:4]}.get(unit, text[:10])


def timeline_svg(frame: pl.DataFrame | Aggregates) -> str:
    unit, bins = timeline(frame)
    if bins.is_empty():
        return '<p class="note">No hit has a parsable @timestamp: no timeline.</p>'
    counts = bins.get_column("hits").to_list()
    moments = bins.get_column("bin").to_list()
    peak = max(counts)
    plot_w, plot_h = CHART_W - PAD_L - 8, CHART_H - PAD_B - PAD_T
    step = plot_w / len(counts)
    bar_w = max(step * 0.8, 1.0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {CHART_W} {CHART_H}" '
        f'role="img" aria-label="hits per {unit}">',
        f'<line class="axis" x1="{PAD_L}" y1="{PAD_T + plot_h}" x2="{CHART_W - 8}" '
        f'y2="{PAD_T + plot_h}"/>',
        f'<line class="axis" x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{PAD_T + plot_h}"/>',
        f'<text class="lbl" x="{PAD_L - 6}" y="{PAD_T + 10}" text-anchor="end">{peak}</text>',
        f'<text class="lbl" x="{PAD_L - 6}" y="{PAD_T + plot_h}" text-anchor="end">0</text>',
    ]
    for i, (moment, hits) in enumerate(zip(moments, counts, strict=True)):
        if not hits:
            continue
        height = max(plot_h * hits / peak, 1.0)
        x, y = PAD_L + i * step + (step - bar_w) / 2, PAD_T + plot_h - height
        parts.append(
            f'<rect class="bar" x="{x:.2f}" y="{y:.2f}" width="{bar_w:.2f}" '
            f'height="{height:.2f}"><title>{esc(_bin_label(moment, unit))}: {hits} hit(s)'
            "</title></rect>"
        )
    ticks = sorted({0, len(moments) // 2, len(moments) - 1})
    for i in ticks:
        anchor = "start" if i == 0 else "end" if i == len(moments) - 1 else "middle"
        x = PAD_L + i * step + step / 2
        parts.append(
            f'<text class="lbl" x="{x:.2f}" y="{CHART_H - 14}" text-anchor="{anchor}">'
            f"{esc(_bin_label(moments[i], unit))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts) + f'<p class="note">Hits per {unit} (UTC).</p>'


# How the frame's ``events`` column (frame.events_json) writes a missing-event stage.
_MISSING = '{"missing": true, "source": null, "line": null, "event": null}'


def result_events(text: str) -> list[tuple[str, int, str] | None]:
    """The (source, line, event text as written) of each stage of a result's ``events``
    column, None for a missing-event stage. The column embeds each event's JSON text (as
    frame.events_json writes it): read in order, so the texts come back exactly."""
    decode = json.JSONDecoder().raw_decode
    out: list[tuple[str, int, str] | None] = []
    pos = 1
    with deep_json(text):
        while text.startswith(("{", ", {"), pos):
            pos += 0 if text[pos] == "{" else 2
            if text.startswith(_MISSING, pos):
                out.append(None)
                pos += len(_MISSING)
                continue
            source, pos = decode(text, pos + len('{"source": '))
            line, pos = decode(text, pos + len(', "line": '))
            start = pos + len(', "event": ')
            _, pos = decode(text, start)
            out.append((source, line, text[start:pos]))
            pos += 1  # the item's "}"
    return out


def _event_item(event: tuple[str, int, str] | None) -> str:
    if event is None:
        return '<li><span class="note">missing (no such event, as the query requires)</span>'
    source, line, body = event
    return f"<li><code>{esc(f'{source}:{line}')}</code> <code>{esc(body)}</code>"


def _result_rows(shown: pl.DataFrame, columns: int) -> list[str]:
    """Per hit row, the list of a sequence's or sample's events (source:line and the event,
    each cut as any value); "" for a single-event hit."""
    out = []
    for text in shown.get_column("events").to_list():
        if text is None:
            out.append("")
            continue
        try:
            stages = result_events(text)
        except (ValueError, IndexError):  # not frame.events_json's: show it as it is
            items = [f"<li><code>{esc(text)}</code>"]
        else:
            items = [_event_item(event) for event in stages]
        out.append(
            f'<tr class="ev"><td></td><td colspan="{columns - 1}"><ol start="1">'
            f"{''.join(items)}</ol></td></tr>"
        )
    return out


def iso_millis(moment: datetime) -> str:
    """A frame's time as a record writes it (ISO 8601 UTC, milliseconds)."""
    from ..records import iso_ms

    return iso_ms((moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1))


def _fact(value: object, label: str) -> str:
    return f'<div class="fact"><b>{esc(value)}</b><span>{esc(label)}</span></div>'


def render_report(
    result: ScanResult,
    *,
    title: str = "imds-scan report",
    filters: Sequence[tuple[str, str]] = (),
    generated: datetime | None = None,
    max_rows: int = MAX_HIT_ROWS,
    max_group_rows: int = MAX_GROUP_ROWS,
) -> str:
    """The whole report as one HTML document."""
    return render_aggregates(
        Aggregates.of(result.frame, keep=max_rows),
        result.stats,
        title=title,
        filters=filters,
        generated=generated,
        max_rows=max_rows,
        max_group_rows=max_group_rows,
    )


def render_aggregates(
    agg: Aggregates,
    stats: ScanStats,
    *,
    title: str = "imds-scan report",
    filters: Sequence[tuple[str, str]] = (),
    generated: datetime | None = None,
    max_rows: int = MAX_HIT_ROWS,
    max_group_rows: int = MAX_GROUP_ROWS,
    partial: str | None = None,
) -> str:
    """The report from the aggregates of a stream of hits (its first ``max_rows`` hits kept:
    ``Aggregates(keep=max_rows)``). ``partial``: why the hits are not all there."""
    tables = summaries(agg)
    seen = tables["seen"].row(0, named=True)
    when = (generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
    facts = "".join(
        [
            _fact(f"{agg.count:,}", "hits"),
            _fact(f"{events(stats):,}", "events scanned"),
            _fact(f"{len(stats.files):,}", "files"),
            # n_unique counts a missing host.name as one, as its null group is one row.
            _fact(f"{len(tables['by_host']) if agg.count else 0:,}", "hosts"),
            _fact(cell(seen["first_seen"]), "first seen"),
            _fact(cell(seen["last_seen"]), "last seen"),
        ]
    )
    warmup = tables["warmup"].item()
    if warmup:
        facts += _fact(f"{warmup:,}", "new_terms alerts of warm-up runs")
    meta = [f"Generated {esc(when)} by imds-scan ({esc(stats.engine)} engine)"]
    meta += [f"{esc(label)}: <code>{esc(value)}</code>" for label, value in filters]
    if stats.errors or stats.total("malformed"):
        meta.append(
            f"{stats.total('malformed'):,} malformed line(s), "
            f"{len(stats.errors)} unreadable input(s)"
        )
    if partial:
        meta.append(esc(partial))

    def counted(name: str, key_label: str, keys: Sequence[str]) -> str:
        rows = [
            [*(r[k] for k in keys), r["hits"], r["first_seen"], r["last_seen"]]
            for r in tables[name].head(max_group_rows).iter_rows(named=True)
        ]
        headers = [*key_label.split("|"), "hits", "first seen", "last seen"]
        more = len(tables[name]) - len(rows)
        note = f'<p class="note">The top {len(rows):,} of {len(tables[name]):,}.</p>'
        return _table(headers, rows, {len(keys)}) + (note if more else "")

    def matched(r: dict[str, object]) -> str | None:
        if isinstance(r["run"], datetime):  # a new_terms or threshold alert
            return terms_label(
                str(r["branch"]),
                str(r["new_terms"]),
                iso_millis(r["run"]),
                bool(r["warmup"]),
                str(r["threshold_result"]),
            )
        if isinstance(r["events"], str):  # a sequence or sample: its events follow in a row
            try:
                missing = result_events(r["events"]).count(None)
            except (ValueError, IndexError):
                missing = 0
            return events_label(cast(int, r["event_count"]), missing, str(r["join_keys"]))
        if r["matched.field"] is None:
            return None
        return (
            f"{r['matched.field']} {r['matched.op']} {r['matched.pattern']}: {r['matched.value']}"
        )

    shown = agg.head.head(max_rows)
    hit_rows = [
        [
            r[TS],
            f"{r['source']}:{r['line']}",
            r["branch"],
            r["host.name"],
            r["user.name"],
            r["process.name"],
            r["process.command_line"],
            matched(r),
        ]
        for r in shown.iter_rows(named=True)
    ]
    hit_note = (
        f'<p class="note">The first {max_rows:,} of {agg.count:,} hits; write every hit with '
        "--format csv or parquet.</p>"
        if agg.count > max_rows
        else ""
    )
    body = [
        f"<h1>{esc(title)}</h1>",
        f'<div class="meta">{"<br>".join(meta)}</div>',
        f'<div class="facts">{facts}</div>',
        "<h2>Timeline</h2>",
        timeline_svg(agg),
        "<h2>By rule and branch</h2>",
        counted("by_rule_branch", "rule|branch", ("rule", "branch")),
        '<div class="grid"><div><h2>By host</h2>',
        counted("by_host", "host.name", ("host.name",)),
        "</div><div><h2>By process</h2>",
        counted("by_process", "process.name", ("process.name",)),
        "</div><div><h2>By user</h2>",
        counted("by_user", "user.name", ("user.name",)),
        "</div><div><h2>Top command lines</h2>",
        _table(
            ["process.command_line", "hits"],
            tables["top_command_lines"].select("process.command_line", "hits").rows(),
            {1},
        )
        if len(tables["top_command_lines"])
        else '<p class="note">No hit has a process.command_line.</p>',
        "</div></div>",
        "<h2>Hits</h2>",
        _table(
            [
                "@timestamp",
                "source:line",
                "branch",
                "host.name",
                "user.name",
                "process.name",
                "process.command_line",
                "matched",
            ],
            hit_rows,
            set(),
            _result_rows(shown, 8),
        ),
        hit_note,
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )


def write_report(result: ScanResult, path: str, *, filters: Sequence[tuple[str, str]] = ()) -> None:
    text = render_report(result, filters=filters)
    with open(path, "w", encoding="utf-8") as out:
        out.write(text)
