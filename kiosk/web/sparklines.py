"""Server-rendered SVG sparklines of the health history for the device page (24 h and 7 days)."""

from __future__ import annotations

from markupsafe import Markup

from kiosk.device import history

DAY = 86400


def sparkline(values: list[float | None], width: int = 240, height: int = 44, low: float | None = None, high: float | None = None) -> Markup:
    """A server-rendered SVG line over `values` (oldest first); gaps where a value is None."""
    present = [v for v in values if v is not None]
    if not present:
        return Markup(f'<svg class="spark" viewBox="0 0 {width} {height}" role="img" aria-label="没有记录"><text x="4" y="{height // 2 + 5}">没有记录</text></svg>')
    lo = min(present) if low is None else min(low, min(present))
    hi = max(present) if high is None else max(high, max(present))
    span = (hi - lo) or 1.0
    step = width / max(1, len(values) - 1)
    path, pen_down = [], False
    for i, v in enumerate(values):
        if v is None:
            pen_down = False
            continue
        x = i * step
        y = height - 2 - (v - lo) / span * (height - 4)
        path.append(f"{'L' if pen_down else 'M'}{x:.1f},{y:.1f}")
        pen_down = True
    label = f"最低 {min(present):.0f}，最高 {max(present):.0f}"
    return Markup(
        f'<svg class="spark" viewBox="0 0 {width} {height}" preserveAspectRatio="none" role="img" aria-label="{label}">'
        f'<path d="{" ".join(path)}" fill="none" stroke="currentColor" stroke-width="2"/></svg>'
    )


# column -> fixed scale, so a flat line at 0 reads as "never" rather than filling the box
_SCALES = {"temp_c": (30, 85), "under_voltage": (0, 1), "readonly": (0, 1), "disk_percent": (0, 100), "memory_percent": (0, 100), "ext4_errors": (0, 1), "display_restarts": (0, 3)}


def for_history(store: history.HistoryStore | None) -> dict[str, dict[str, Markup]]:
    """Day and week sparklines of every signal the history keeps."""
    out: dict[str, dict[str, Markup]] = {}
    if store is None:
        return out
    columns = tuple(history.SIGNAL_COLUMN.values())
    day = store.series_many(columns, DAY, 96)
    week = store.series_many(columns, 7 * DAY, 168)
    for signal, column in history.SIGNAL_COLUMN.items():
        lo, hi = _SCALES.get(column, (None, None))
        out[signal] = {
            "day": sparkline(day[column], low=lo, high=hi),
            "week": sparkline(week[column], low=lo, high=hi),
        }
    return out
