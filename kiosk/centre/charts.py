"""Server-rendered SVG: a point's uptime strip and health charts (no JavaScript, prints well).

Hand-written because a chart library would be a large dependency for two simple shapes.
"""

from __future__ import annotations

import math
import time
from html import escape
from typing import Any

DAY = 86400


def _day_start(t: float) -> float:
    lt = time.localtime(t)
    return time.mktime((lt.tm_year, lt.tm_mon, lt.tm_mday, 0, 0, 0, 0, 0, -1))


def uptime_days(reports: list[dict[str, Any]], now: float, days: int = 30, slot_s: int = 3600) -> list[tuple[float, float]]:
    """[(day start, share of that day's hours with a report)] for the last `days` days, oldest first."""
    today = _day_start(now)
    starts = [today - (days - 1 - i) * DAY for i in range(days)]
    seen: set[int] = {int(r["at"] // slot_s) for r in reports}
    out = []
    for start in starts:
        end = min(start + DAY, now)
        slots = range(int(start // slot_s), int(max(start, end - 1) // slot_s) + 1)
        total = max(1, len(slots))
        out.append((start, sum(1 for s in slots if s in seen) / total))
    return out


def uptime_strip(reports: list[dict[str, Any]], now: float, days: int = 30, since: float | None = None) -> str:
    """An SVG strip, one bar a day: green when the point reported all day, red when never, grey before `since`."""
    cells = uptime_days(reports, now, days)
    w, h, gap = 18, 34, 3
    parts = [
        f'<svg class="strip" xmlns="http://www.w3.org/2000/svg" width="{len(cells) * (w + gap)}" height="{h + 18}" '
        f'viewBox="0 0 {len(cells) * (w + gap)} {h + 18}" '
        f'role="img" aria-label="30 天在线情况 uptime over 30 days">'
    ]
    for i, (start, share) in enumerate(cells):
        colour = "#1e8e3e" if share >= 0.95 else "#e8a100" if share > 0 else "#c5221f"
        if share == 0 and since is not None and start + DAY <= since:
            colour = "#dadce0"  # the point was not there yet
        day = time.strftime("%m-%d", time.localtime(start))
        parts.append(
            f'<rect x="{i * (w + gap)}" y="0" width="{w}" height="{h}" rx="2" fill="{colour}">'
            f"<title>{day}: {share * 100:.0f}%</title></rect>"
        )
        if i % 5 == 0:
            parts.append(f'<text x="{i * (w + gap)}" y="{h + 14}" font-size="11">{day}</text>')
    parts.append("</svg>")
    return "".join(parts)


BUCKETS_S = (300, 900, 3600, 3 * 3600, 6 * 3600)  # averaging steps, shortest that gives at most MAX_POINTS
MAX_POINTS = 120


def span_of(reports: list[dict[str, Any]], key: str, now: float, days: int) -> tuple[float, int]:
    """(start, bucket seconds) so a chart spans the data there is, not always `days` days."""
    since = now - days * DAY
    times = [r["at"] for r in reports if r.get(key) is not None and since <= r["at"] <= now]
    span = max(now - min(times), 3600.0) if times else days * DAY
    bucket = next((b for b in BUCKETS_S if span / b <= MAX_POINTS), BUCKETS_S[-1])
    return max(since, now - math.ceil(span / bucket) * bucket), bucket


def line_chart(reports: list[dict[str, Any]], key: str, label: str, unit: str, now: float, days: int = 30,
               lo: float | None = 0.0, hi: float | None = None) -> str:
    """An SVG line of `key` averaged per bucket over the span with data (at most `days` days); gaps where nothing came."""
    start, bucket_s = span_of(reports, key, now, days)
    buckets: dict[int, list[float]] = {}
    for r in reports:
        v = r.get(key)
        if v is not None and r["at"] >= start:
            buckets.setdefault(int((r["at"] - start) // bucket_s), []).append(float(v))
    n = max(1, math.ceil((now - start) / bucket_s))
    width, height, left, top = 640, 160, 44, 14
    plot_w, plot_h = width - left - 10, height - top - 24
    title = f"{escape(label)}"
    if not buckets:
        return (
            f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="60" role="img" aria-label="{title}">'
            f'<text x="4" y="20" font-size="14">{title}: 无数据 no data</text></svg>'
        )
    means = {i: sum(vs) / len(vs) for i, vs in buckets.items()}
    fmt = "%m-%d %H:%M" if now - start < 2 * DAY else "%m-%d"
    vmin = lo if lo is not None else min(means.values())
    vmax = hi if hi is not None else max(means.values())
    vmax = max(vmax, max(means.values()))
    if vmax <= vmin:
        vmax = vmin + 1

    def xy(i: int, v: float) -> tuple[float, float]:
        return left + plot_w * (i + 0.5) / n, top + plot_h * (1 - (v - vmin) / (vmax - vmin))

    paths, current = [], []
    for i in range(n):
        if i in means:
            x, y = xy(i, means[i])
            current.append(f"{x:.1f},{y:.1f}")
        elif current:
            paths.append(current)
            current = []
    if current:
        paths.append(current)
    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{title}">',
        f'<text x="{left}" y="11" font-size="12">{title} ({escape(unit)})</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#999"/>',
        f'<text x="2" y="{top + 10}" font-size="11">{_axis(vmax)}</text>',
        f'<text x="2" y="{top + plot_h}" font-size="11">{_axis(vmin)}</text>',
        f'<text x="{left}" y="{height - 4}" font-size="11">{time.strftime(fmt, time.localtime(start))}</text>',
        f'<text x="{left + plot_w}" y="{height - 4}" font-size="11" text-anchor="end">{time.strftime(fmt, time.localtime(now))}</text>',
    ]
    for pts in paths:
        if len(pts) == 1:
            x, y = pts[0].split(",")
            parts.append(f'<circle cx="{x}" cy="{y}" r="2" fill="#1a73e8"/>')
        else:
            parts.append(f'<polyline fill="none" stroke="#1a73e8" stroke-width="2" points="{" ".join(pts)}"/>')
    parts.append("</svg>")
    return "".join(parts)


def _axis(v: float) -> str:
    """An axis label: whole numbers, one decimal for small values (a load of 0.3)."""
    return f"{v:.0f}" if abs(v) >= 10 or v == int(v) else f"{v:.1f}"
