"""Presenting a profile: text sparklines for the terminal, a self-contained HTML report.

The HTML report has no scripts and loads nothing: styles are inline and charts are
SVG drawn here, so it opens anywhere, offline, and can be attached to an email.
"""

from __future__ import annotations

import datetime as dt
import decimal
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from headrace.analytics.profile import ColumnProfile, Histogram, Profile

_BLOCKS = " ▁▂▃▄▅▆▇█"


def sparkline(counts: Sequence[int]) -> str:
    """A one-line text histogram: ``▁▃█▅`` (a blank for an empty bin, ``▁`` for any non-empty one)."""
    peak = max(counts, default=0)
    if peak == 0:
        return ""
    steps = len(_BLOCKS) - 1
    # Non-empty bins get at least one step so a rare value stays visible.
    return "".join(_BLOCKS[0 if c == 0 else max(1, round(c / peak * steps))] for c in counts)


def format_value(value: Any, width: int = 32) -> str:
    """A short display form of a value: numbers with few digits, long text cut."""
    if value is None:
        return "–"
    if isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, decimal.Decimal):
        text = f"{value:f}" if abs(value.as_tuple().exponent) <= 6 else f"{float(value):.6g}"  # type: ignore[arg-type]
    elif isinstance(value, dt.datetime):
        text = value.isoformat(sep=" ", timespec="seconds")
    elif isinstance(value, bytes):
        text = value[:16].hex()
    else:
        text = str(value)
    text = text.replace("\n", "⏎")
    return text if len(text) <= width else text[: width - 1] + "…"


def _e(value: Any) -> str:
    return html.escape(format_value(value, 60), quote=True)


def _histogram_svg(hist: Histogram, width: int = 360, height: int = 110) -> str:
    """Vertical bars with the first and last edge as axis labels."""
    n, peak = len(hist.counts), max(hist.counts, default=0) or 1
    plot_h, gap = height - 22, 1
    bar_w = (width - gap * n) / n
    bars = []
    for i, count in enumerate(hist.counts):
        h = count / peak * (plot_h - 4)
        x, y = i * (bar_w + gap), plot_h - h
        label = f"{format_value(hist.edges[i])} – {format_value(hist.edges[i + 1])}: {count:,}"
        bars.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="#3b82f6">'
            f"<title>{html.escape(label)}</title></rect>"
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="histogram">'
        f'<line x1="0" y1="{plot_h}" x2="{width}" y2="{plot_h}" stroke="#9ca3af"/>'
        + "".join(bars)
        + f'<text x="0" y="{height - 6}" font-size="11" fill="#4b5563">{_e(hist.edges[0])}</text>'
        f'<text x="{width}" y="{height - 6}" font-size="11" fill="#4b5563" text-anchor="end">{_e(hist.edges[-1])}</text>'
        "</svg>"
    )


def _top_values_svg(top: Sequence[tuple[Any, int]], total: int, width: int = 360) -> str:
    """Horizontal bars, one per frequent value, labelled with the value and its share."""
    row_h = 20
    height = row_h * len(top)
    peak = max((c for _, c in top), default=1) or 1
    label_w = 130
    parts = []
    for i, (value, count) in enumerate(top):
        y = i * row_h
        w = count / peak * (width - label_w - 100)
        share = count / total if total else 0
        shown = f"{share:.1%}" if share >= 0.001 else "<0.1%"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 14}" font-size="12" text-anchor="end" fill="#111827">'
            f"{html.escape(format_value(value, 18))}</text>"
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" fill="#10b981"/>'
            f'<text x="{label_w + w + 4:.1f}" y="{y + 14}" font-size="11" fill="#4b5563">{count:,} ({shown})</text>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="top values">'
        + "".join(parts)
        + "</svg>"
    )


def _column_card(col: ColumnProfile, rows: int) -> str:
    stats: list[tuple[str, Any]] = [
        ("type", col.type),
        ("non-null", f"{col.count:,}"),
        ("nulls", f"{col.nulls:,} ({col.null_share:.1%})"),
        ("distinct", f"{col.distinct:,}" + ("" if col.distinct_exact else " (approx.)")),
        ("min", format_value(col.min)),
        ("max", format_value(col.max)),
    ]
    if col.mean is not None:
        stats += [("mean", format_value(col.mean)), ("std dev", format_value(col.stddev))]
    if col.quartiles:
        stats += [("quartiles", " / ".join(format_value(q) for q in col.quartiles))]
    table = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in stats
    )
    charts = []
    if col.histogram is not None and any(col.histogram.counts):
        charts.append(
            f"<figure><figcaption>Distribution</figcaption>{_histogram_svg(col.histogram)}</figure>"
        )
    if col.top_values:
        charts.append(
            f"<figure><figcaption>Most frequent</figcaption>{_top_values_svg(col.top_values, rows)}</figure>"
        )
    return (
        f'<section class="col"><h2>{html.escape(col.name)} <span class="kind">{html.escape(col.kind)}</span></h2>'
        f'<div class="body"><table>{table}</table><div class="charts">{"".join(charts)}</div></div></section>'
    )


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#111827;background:#f9fafb}
h1{font-size:22px;margin:0 0 4px} .meta{color:#4b5563;margin-bottom:20px}
.col{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:12px 16px;margin-bottom:14px}
.col h2{font-size:16px;margin:0 0 8px;word-break:break-all} .kind{font-size:12px;color:#6b7280;font-weight:normal}
.body{display:flex;gap:24px;flex-wrap:wrap} table{border-collapse:collapse;font-size:13px;min-width:260px}
th{text-align:left;color:#4b5563;font-weight:500;padding:2px 12px 2px 0} td{padding:2px 0;word-break:break-all}
.charts{display:flex;gap:24px;flex-wrap:wrap} figure{margin:0} figcaption{font-size:12px;color:#6b7280;margin-bottom:4px}
"""


def render_html(profile: Profile, title: str | None = None) -> str:
    """The profile as one self-contained HTML page.

    Args:
        profile: what :meth:`Analyzer.profile` returned.
        title: page heading; the table name by default.

    Returns:
        The HTML text.
    """
    heading = title or f"Profile of {profile.table}"
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    cards = "".join(_column_card(c, profile.rows) for c in profile.columns)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(heading)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(heading)}</h1>"
        f'<div class="meta">{profile.rows:,} rows · {len(profile.columns)} columns · generated {generated} by headrace</div>'
        f"{cards}</body></html>\n"
    )


def write_html(profile: Profile, path: str | Path, title: str | None = None) -> Path:
    """Write :func:`render_html` to ``path`` (UTF-8) and return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(profile, title), encoding="utf-8")
    return out
