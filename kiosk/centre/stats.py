"""What the dashboard and the work report show: points with status, usage, villagers' requests."""

from __future__ import annotations

import csv
import io
import time
from collections import Counter
from typing import Any, Iterable, Iterator

from kiosk.centre.status import Rules
from kiosk.centre.store import LOCAL_PLAYS, Store, month_of
from kiosk.centre.tree import PROVINCE, Node


# The box's topic names (kiosk/web/i18n.py), repeated here: the centre shares only the wire
# and package formats with the box.
TOPICS_ZH = {
    "agriculture": "农业科技", "health": "卫生健康", "law": "法律常识", "culture": "文化戏曲",
    "children": "少儿天地", "lectures": "讲座课堂", "local": "本地资讯", "other": "其他", "": "未分类",
}


def topic_name(slug: str | None) -> str:
    """A topic's plain Chinese name (the slug itself when unknown)."""
    return TOPICS_ZH.get(slug or "", slug or "")


def overview(store: Store, rules: Rules, now: float) -> list[dict[str, Any]]:
    """Every point with its derived status, alert flag and how long it has been quiet."""
    out = []
    for p in store.points():
        status = rules.status(p["last_seen"], now)
        p["status"] = status
        p["alert"] = rules.alert(p["last_seen"], now)
        p["quiet_s"] = None if p["last_seen"] is None else max(0.0, now - p["last_seen"])
        # "Offline since": the last moment the centre heard from it.
        p["offline_since"] = p["last_seen"] if status == "offline" else None
        out.append(p)
    return out


def count_by_status(points: Iterable[dict[str, Any]]) -> dict[str, int]:
    """How many points are in each status (every status present, zero included)."""
    counts = Counter(p["status"] for p in points)
    return {s: counts.get(s, 0) for s in ("online", "late", "offline", "never")}


def status_counts(store: Store, rules: Rules, now: float) -> tuple[dict[str, int], int]:
    """(points by status, offline points alerting) counted in the database (cheap for /metrics)."""
    row = store.db.one(
        "SELECT COUNT(*), "
        "SUM(CASE WHEN last_seen IS NULL THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN last_seen IS NOT NULL AND ? - last_seen >= ? THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN last_seen IS NOT NULL AND ? - last_seen >= ? AND ? - last_seen < ? THEN 1 ELSE 0 END) "
        "FROM points",
        (now, rules.offline_after_s, now, rules.late_after_s, now, rules.offline_after_s),
    )
    total, never, offline, late = (int(v or 0) for v in row) if row else (0, 0, 0, 0)
    counts = {"online": total - never - offline - late, "late": late, "offline": offline, "never": never}
    return counts, 0 if rules.in_grace(now) else offline


def by_township(points: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Points grouped by township, townships in name order, offline ones first within each."""
    order = {"offline": 0, "late": 1, "never": 2, "online": 3}
    groups: dict[str, list[dict[str, Any]]] = {}
    for p in points:
        groups.setdefault(p["township"] or "（未分乡镇）", []).append(p)
    return [(t, sorted(ps, key=lambda p: (order[p["status"]], p["id"]))) for t, ps in sorted(groups.items())]


def month_range(months: int, now: float) -> tuple[str, str]:
    """(first, last) month of the `months` months up to now."""
    t = time.localtime(now)
    y, m = t.tm_year, t.tm_mon
    total = y * 12 + (m - 1) - (months - 1)
    return f"{total // 12:04d}-{total % 12 + 1:02d}", month_of(now)


def usage(store: Store, by: str, first: str, last: str, node: Node = PROVINCE) -> list[dict[str, Any]]:
    """Plays summed by county, township or topic (category), and month, between two months, inside a node."""
    key = {"county": "p.county", "township": "p.township", "category": "pl.category"}.get(by)
    if key is None:
        raise ValueError("usage is by county, township or category")
    where, params = node.where("p")
    rows = store.db.query(
        f"SELECT {key}, pl.month, SUM(pl.opens), SUM(pl.plays) FROM plays pl JOIN points p ON p.id = pl.point "
        f"WHERE pl.month >= ? AND pl.month <= ? AND pl.category != ? AND {where} GROUP BY {key}, pl.month ORDER BY {key}, pl.month",
        (first, last, LOCAL_PLAYS, *params),
    )
    return [{by: r[0] or "", "month": r[1], "opens": int(r[2]), "plays": int(r[3])} for r in rows]


def local_share(store: Store, first: str, last: str, node: Node = PROVINCE) -> dict[str, int]:
    """Opens and plays of everything, and of local content (made at the points), between two months, inside a node."""
    where, params = node.where("p")
    row = store.db.one(
        "SELECT SUM(CASE WHEN pl.category = ? THEN 0 ELSE pl.opens END), SUM(CASE WHEN pl.category = ? THEN 0 ELSE pl.plays END), "
        "SUM(CASE WHEN pl.category = ? THEN pl.opens ELSE 0 END), SUM(CASE WHEN pl.category = ? THEN pl.plays ELSE 0 END) "
        f"FROM plays pl JOIN points p ON p.id = pl.point WHERE pl.month >= ? AND pl.month <= ? AND {where}",
        (LOCAL_PLAYS,) * 4 + (first, last, *params))
    keys = ("opens", "plays", "local_opens", "local_plays")
    return {k: int(v or 0) for k, v in zip(keys, row or (0, 0, 0, 0))}


def pivot(rows: list[dict[str, Any]], by: str, measure: str = "opens") -> tuple[list[str], list[tuple[str, list[int], int]]]:
    """(months, [(name, `measure` per month, total)]) for a table with months as columns."""
    months = sorted({r["month"] for r in rows})
    table: dict[str, dict[str, int]] = {}
    for r in rows:
        table.setdefault(r[by], {})[r["month"]] = r[measure]
    lines = [(name, [cells.get(m, 0) for m in months], sum(cells.values())) for name, cells in sorted(table.items())]
    return months, lines


def requests(store: Store, first: str, last: str, limit: int = 1000, node: Node = PROVINCE) -> list[dict[str, Any]]:
    """Villagers' requests between two months inside a node, newest first."""
    where, params = node.where("p")
    rows = store.db.query(
        "SELECT r.at, r.point, p.name, p.township, r.topic, r.text, p.county FROM requests r JOIN points p ON p.id = r.point "
        f"WHERE r.month >= ? AND r.month <= ? AND {where} ORDER BY r.at DESC LIMIT ?",
        (first, last, *params, limit),
    )
    keys = ("at", "point", "name", "township", "topic", "text", "county")
    return [dict(zip(keys, r)) for r in rows]


def request_topics(store: Store, first: str, last: str, node: Node = PROVINCE) -> list[tuple[str, int]]:
    """How often each topic was asked for inside a node, most asked first."""
    where, params = node.where("p")
    rows = store.db.query(
        "SELECT r.topic, COUNT(*) FROM requests r JOIN points p ON p.id = r.point "
        f"WHERE r.month >= ? AND r.month <= ? AND {where} GROUP BY r.topic ORDER BY COUNT(*) DESC",
        (first, last, *params),
    )
    return [(r[0] or "", int(r[1])) for r in rows]


# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A value safe for a spreadsheet: text that would start a formula gets a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def top_requests(store: Store, first: str, last: str, node: Node = PROVINCE, limit: int = 10) -> list[tuple[str, str, int]]:
    """The requests asked most often inside a node (the same words), with their topic and count, most first."""
    where, params = node.where("p")
    rows = store.db.query(
        "SELECT r.text, MIN(r.topic), COUNT(*) FROM requests r JOIN points p ON p.id = r.point "
        f"WHERE r.month >= ? AND r.month <= ? AND r.text <> '' AND {where} "
        "GROUP BY r.text ORDER BY COUNT(*) DESC, r.text LIMIT ?",
        (first, last, *params, limit),
    )
    return [(r[0], r[1] or "", int(r[2])) for r in rows]


def to_csv(header: list[str], rows: Iterable[Iterable[Any]]) -> str:
    """CSV text with a byte-order mark so spreadsheet programs read the Chinese right; no cell runs as a formula."""
    return "".join(csv_stream(header, rows))


def csv_stream(header: list[str], rows: Iterable[Iterable[Any]], chunk: int = 1000) -> Iterator[str]:
    """The same CSV text in pieces of `chunk` rows, so a province's export never sits whole in memory."""
    buf = io.StringIO()
    buf.write("\ufeff")
    writer = csv.writer(buf)
    writer.writerow(header)
    for n, row in enumerate(rows, 1):
        writer.writerow([csv_cell(v) for v in row])
        if n % chunk == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def local_time(t: float | None) -> str:
    """A moment as local date and time, or an empty string."""
    return "" if t is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(t))
