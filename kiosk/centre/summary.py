"""Summaries first: counts by status for each child of a node, and paged lists of points.

Everything is counted and filtered in the database, from `last_seen` and the two cutoffs
of `Rules` (status is derived, never stored), so a page costs the same with 700,000
points as with 700: one grouped count over an index, or one page of at most
`MAX_PER_PAGE` rows. Search terms go in as parameters with LIKE's wildcards escaped.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

from kiosk.centre.status import STATUSES, Rules
from kiosk.centre.store import Store, point_columns, point_row
from kiosk.centre.tree import CONTROL_CHARS, Node
from kiosk.errors import KioskError

MAX_PER_PAGE = 100
CACHE_S = 15.0  # how long the counts of a large node are kept (the dashboard reloads every 60 s)
CACHE_MIN_POINTS = 20_000  # smaller nodes are counted afresh every time: it costs little there
COUNTED = ("online", "late", "offline", "never")
UNNAMED = {"county": "（未分县）", "township": "（未分乡镇）"}


class BadQuery(KioskError, ValueError):
    """A filter or page that cannot be read."""


def _counts_sql(rules: Rules, now: float) -> tuple[str, list[Any]]:
    late, offline = rules.cutoffs(now)
    return (
        "COUNT(*), SUM(CASE WHEN last_seen IS NULL THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN last_seen <= ? THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN last_seen > ? AND last_seen <= ? THEN 1 ELSE 0 END)",
        [offline, offline, late],
    )


def _counts(row: tuple[Any, ...]) -> dict[str, int]:
    total, never, offline, late = (int(v or 0) for v in row)
    return {"online": total - never - offline - late, "late": late, "offline": offline, "never": never, "total": total}


def exists(store: Store, node: Node) -> bool:
    """True when at least one point is inside the node (the province always exists)."""
    if node.level == "province":
        return True
    where, params = node.where()
    return store.db.one(f"SELECT 1 FROM points WHERE {where} LIMIT 1", params) is not None


def only_county(store: Store) -> str | None:
    """The county's name when every point is in one county (a county centre), else None."""
    rows = store.db.query("SELECT DISTINCT county FROM points LIMIT 2")
    return rows[0][0] if len(rows) == 1 else None


def summary(store: Store, rules: Rules, now: float, node: Node) -> dict[str, Any]:
    """{"node": {...counts}, "children": [{"name", online, late, offline, never, total}]}, worst child first.

    The province's children are its counties, a county's its townships; a township's
    points are listed by `points_page`, so its children list is empty.
    """
    key = f"{node}|{rules.late_after_s:g}|{rules.offline_after_s:g}"
    row = store.db.one("SELECT computed_at, body FROM summaries WHERE node = ?", (key,))
    if row is not None and 0 <= now - row[0] < CACHE_S:
        return json.loads(row[1])
    answer = _count_children(store, rules, now, node)
    if answer["node"]["total"] >= CACHE_MIN_POINTS:
        # kept in the database, not in this process: every centre process gives the same counts
        with store.db.transaction() as cur:
            cur.execute("INSERT INTO summaries (node, computed_at, body) VALUES (?, ?, ?) ON CONFLICT (node) DO UPDATE "
                        "SET computed_at = excluded.computed_at, body = excluded.body",
                        (key, now, json.dumps(answer, ensure_ascii=False)))
    return answer


def _count_children(store: Store, rules: Rules, now: float, node: Node) -> dict[str, Any]:
    where, params = node.where()
    counts, cparams = _counts_sql(rules, now)
    head: dict[str, Any] = {"name": node.name, "level": node.level, "scope": str(node), "county": node.county,
                            "township": node.township}
    children: list[dict[str, Any]] = []
    if node.level == "township":
        row = store.db.one(f"SELECT {counts} FROM points WHERE {where}", cparams + params)
        head.update(_counts(row or (0, 0, 0, 0)))
        return {"node": head, "children": children}
    key = "county" if node.level == "province" else "township"
    rows = store.db.query(f"SELECT {key}, {counts} FROM points WHERE {where} GROUP BY {key}", cparams + params)
    for r in rows:
        children.append({"name": r[0], "label": r[0] or UNNAMED[key], **_counts(r[1:])})
    # the node's own counts are its children's, summed: one pass over the points, not two
    head.update({k: sum(c[k] for c in children) for k in (*COUNTED, "total")})
    # the worst first: most offline, then most late, then most never seen
    children.sort(key=lambda c: (-c["offline"], -c["late"], -c["never"], c["name"]))
    return {"node": head, "children": children}


def parse_filters(args: Any) -> dict[str, Any]:
    """status, q, offline_hours, page and per_page from request arguments, checked."""
    status = (args.get("status") or "").strip()
    if status and status not in STATUSES:
        raise BadQuery(f"status must be one of {', '.join(STATUSES)}")
    q = (args.get("q") or "").strip()
    if len(q) > 100 or CONTROL_CHARS.search(q):
        raise BadQuery("a search is at most 100 characters without control characters")
    hours_arg = (args.get("offline_hours") or "").strip()
    hours = None
    if hours_arg:
        try:
            hours = float(hours_arg)
        except ValueError:
            raise BadQuery("offline_hours must be a number of hours") from None
        if not 0 <= hours < 100 * 365 * 24:
            raise BadQuery("offline_hours must be a number of hours, 0 or more")
    page = _positive(args.get("page"), "page", 1)
    per_page = min(_positive(args.get("per_page"), "per_page", 50), MAX_PER_PAGE)
    return {"status": status, "q": q, "offline_hours": hours, "page": page, "per_page": per_page}


def _positive(value: Any, name: str, default: int) -> int:
    if value in (None, ""):
        return default
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise BadQuery(f"{name} must be a whole number, 1 or more") from None
    if n < 1 or n > 10**9:
        raise BadQuery(f"{name} must be a whole number, 1 or more")
    return n


def like_pattern(q: str) -> str:
    """A LIKE pattern finding `q` anywhere, its own % _ and \\ taken literally."""
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def points_page(store: Store, rules: Rules, now: float, node: Node, status: str = "", q: str = "",
                offline_hours: float | None = None, page: int = 1, per_page: int = 50) -> dict[str, Any]:
    """One page of the points inside a node, longest silent first: {"total", "page", "per_page", "pages", "points"}.

    Without a search or an hours filter the total is the node's count of that status
    from `summary` (so a province's list does not count 700,000 rows again).
    """
    per_page = max(1, min(per_page, MAX_PER_PAGE))
    where, params = node.where()
    conds, cparams = [where], list(params)
    late, offline = rules.cutoffs(now)
    if status == "never":
        conds.append("last_seen IS NULL")
    elif status == "offline":
        conds.append("last_seen <= ?")
        cparams.append(offline)
    elif status == "late":
        conds.append("last_seen > ? AND last_seen <= ?")
        cparams += [offline, late]
    elif status == "online":
        conds.append("last_seen > ?")
        cparams.append(late)
    if offline_hours is not None:  # offline, and for longer than that
        conds.append("last_seen <= ?")
        cparams.append(min(offline, now - offline_hours * 3600))
    if q:
        conds.append("(id LIKE ? ESCAPE '\\' OR name LIKE ? ESCAPE '\\')")
        cparams += [like_pattern(q.lower()), like_pattern(q)]
    sql_where = " AND ".join(conds)
    if not q and offline_hours is None:
        total = int(summary(store, rules, now, node)["node"][status or "total"])
    else:
        total = int(store.db.one(f"SELECT COUNT(*) FROM points WHERE {sql_where}", cparams)[0])
    rows = store.db.query(
        f"SELECT {point_columns()} FROM points WHERE {sql_where} "
        "ORDER BY last_seen ASC NULLS FIRST, id LIMIT ? OFFSET ?",
        cparams + [per_page, (page - 1) * per_page],
    )
    points = []
    for r in rows:
        p = point_row(r)
        p["status"] = rules.status(p["last_seen"], now)
        p["alert"] = rules.alert(p["last_seen"], now)
        p["quiet_s"] = None if p["last_seen"] is None else max(0.0, now - p["last_seen"])
        points.append(p)
    return {"total": total, "page": page, "per_page": per_page, "pages": max(1, -(-total // per_page)),
            "node": str(node), "points": points}


def iter_points(store: Store, rules: Rules, now: float, node: Node, chunk: int = 5000) -> Iterator[dict[str, Any]]:
    """Every point inside a node with its status, by id, read `chunk` rows at a time (for exports)."""
    where, params = node.where()
    after = ""
    while True:
        rows = store.db.query(
            f"SELECT {point_columns()} FROM points WHERE {where} AND id > ? ORDER BY id LIMIT ?", params + [after, chunk]
        )
        for r in rows:
            p = point_row(r)
            p["status"] = rules.status(p["last_seen"], now)
            yield p
        if len(rows) < chunk:
            return
        after = rows[-1][0]
