"""What villagers opened and watched, recorded anonymously and kept bounded.

One row per open or play (item, topic, seconds, when; nothing about who).
Raw rows are kept for RAW_KEEP_S and at most MAX_EVENTS; `rollup()` folds
whole past days into a daily table (kept DAILY_KEEP_DAYS) that the heartbeat
reads, so the totals outlive the raw rows.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from kiosk import clock
from kiosk.config import Config
from kiosk.library.db import connect

log = logging.getLogger(__name__)

KINDS = ("open", "play", "watch")  # watch: more seconds of a play already counted
MAX_EVENTS = 200_000
RAW_KEEP_S = 35 * 86400
DAILY_KEEP_DAYS = 400
MAX_PLAY_S = 6 * 3600  # a single play longer than this is a screen left running

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    item_id TEXT NOT NULL,
    category TEXT NOT NULL,
    kind TEXT NOT NULL,
    seconds REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
CREATE TABLE IF NOT EXISTS daily (
    day TEXT NOT NULL,
    category TEXT NOT NULL,
    opens INTEGER NOT NULL,
    plays INTEGER NOT NULL,
    seconds REAL NOT NULL,
    PRIMARY KEY (day, category)
);
"""


def _day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(ts))


class Usage:
    """The box's usage record, safe to share between threads."""

    def __init__(self, cfg_or_path: Config | Path | str) -> None:
        path = cfg_or_path.data_dir / "usage.sqlite" if isinstance(cfg_or_path, Config) else Path(cfg_or_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        # NORMAL: a power cut may lose the last second of counts, which is fine for statistics
        # and saves the SD card a sync per tap.
        self._db = connect(path, "NORMAL")
        self._db.executescript(SCHEMA)
        self._inserts = 0

    def record(self, item_id: str, category: str, kind: str = "open", seconds: float = 0.0, when: float | None = None) -> None:
        """Note one open or play of an item, or more seconds of a play ("watch"); no personal data."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        seconds = max(0.0, min(float(seconds or 0.0), MAX_PLAY_S))
        ts = clock.now() if when is None else when
        with self._lock:
            self._db.execute(
                "INSERT INTO events (ts, item_id, category, kind, seconds) VALUES (?, ?, ?, ?, ?)",
                (ts, item_id[:64], (category or "other")[:32], kind, seconds),
            )
            self._inserts += 1
            if self._inserts % 1000 == 0:
                self._trim()

    def since(self, ts: float) -> dict[str, Any]:
        """Totals since `ts` from the raw rows: opens, plays, seconds, by category and the top items."""
        with self._lock:
            rows = self._db.execute(
                "SELECT category, sum(kind='open'), sum(kind='play'), sum(seconds) FROM events WHERE ts >= ? GROUP BY category",
                (ts,),
            ).fetchall()
            mine = self._db.execute(
                "SELECT sum(kind='open'), sum(kind='play'), sum(seconds) FROM events WHERE ts >= ? AND item_id LIKE 'local.%'",
                (ts,),
            ).fetchone()
            top = self._db.execute(
                "SELECT item_id, count(*) AS n FROM events WHERE ts >= ? AND kind != 'watch' GROUP BY item_id ORDER BY n DESC, item_id LIMIT 10",
                (ts,),
            ).fetchall()
        by_category = {r[0]: {"opens": int(r[1] or 0), "plays": int(r[2] or 0), "seconds": round(float(r[3] or 0), 1)} for r in rows}
        return {
            "since": ts,
            "opens": sum(c["opens"] for c in by_category.values()),
            "plays": sum(c["plays"] for c in by_category.values()),
            "seconds": round(sum(c["seconds"] for c in by_category.values()), 1),
            "by_category": by_category,
            "top_items": [{"id": r[0], "count": int(r[1])} for r in top],
            # of all the above, what was made locally (ids local.<point>.<n>), for the work report
            "local": {"opens": int(mine[0] or 0), "plays": int(mine[1] or 0), "seconds": round(float(mine[2] or 0), 1)},
        }

    def rollup(self) -> list[dict[str, Any]]:
        """Fold every whole past day into the daily table; return the daily rows (oldest first)."""
        today = _day(clock.now())
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                rows = self._db.execute("SELECT ts, category, kind, seconds FROM events").fetchall()
                totals: dict[tuple[str, str], list[float]] = {}
                for ts, category, kind, seconds in rows:
                    day = _day(ts)
                    if day >= today:
                        continue
                    t = totals.setdefault((day, category), [0, 0, 0.0])
                    if kind in ("open", "play"):
                        t[0 if kind == "open" else 1] += 1
                    t[2] += seconds
                for (day, category), (opens, plays, seconds) in totals.items():
                    # Replace, not add: a day is recomputed from every raw row it still has.
                    self._db.execute(
                        "INSERT INTO daily (day, category, opens, plays, seconds) VALUES (?, ?, ?, ?, ?) "
                        "ON CONFLICT (day, category) DO UPDATE SET opens=excluded.opens, plays=excluded.plays, seconds=excluded.seconds "
                        "WHERE excluded.opens + excluded.plays >= daily.opens + daily.plays",
                        (day, category, int(opens), int(plays), round(seconds, 1)),
                    )
                oldest = time.strftime("%Y-%m-%d", time.localtime(clock.now() - DAILY_KEEP_DAYS * 86400))
                self._db.execute("DELETE FROM daily WHERE day < ?", (oldest,))
                self._trim()
                out = self._db.execute("SELECT day, category, opens, plays, seconds FROM daily ORDER BY day, category").fetchall()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return [{"day": r[0], "category": r[1], "opens": r[2], "plays": r[3], "seconds": r[4]} for r in out]

    def _trim(self) -> None:
        """Keep the raw table bounded by age and by count (caller holds the lock)."""
        self._db.execute("DELETE FROM events WHERE ts < ?", (clock.now() - RAW_KEEP_S,))
        self._db.execute(
            "DELETE FROM events WHERE id <= (SELECT max(id) FROM events) - ?",
            (MAX_EVENTS,),
        )

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
