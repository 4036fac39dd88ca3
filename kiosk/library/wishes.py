"""Villagers' "我想看" requests: kept on the box until the centre has them, never lost.

Stored in SQLite with synchronous=FULL so a request a villager was thanked for
survives a power cut. Pending requests are never dropped; sent ones are pruned
after a while so the table stays bounded.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Iterable

from kiosk import clock
from kiosk.config import Config
from kiosk.library.db import connect

log = logging.getLogger(__name__)

MAX_WORDS = 200  # characters a villager can type; more is not a wish, it is noise
KEEP_SENT_S = 90 * 86400
MAX_PENDING = 100_000  # a box that never reaches the centre still stays bounded

SCHEMA = """
CREATE TABLE IF NOT EXISTS wishes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    category TEXT NOT NULL,
    words TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT 'screen',
    sent_at REAL
);
CREATE INDEX IF NOT EXISTS wishes_pending ON wishes (sent_at, id);
"""


class WishRefused(ValueError):
    """A request that cannot be stored (empty, or the box is full of unsent ones)."""


class Wishes:
    """The box's store of villagers' requests, safe to share between threads."""

    def __init__(self, cfg_or_path: Config | Path | str) -> None:
        path = cfg_or_path.data_dir / "wishes.sqlite" if isinstance(cfg_or_path, Config) else Path(cfg_or_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = connect(path, "FULL")
        self._db.executescript(SCHEMA)

    def add(self, category: str, words: str, source: str = "screen") -> int:
        """Store one request durably and return its id."""
        category = (category or "other").strip()[:32] or "other"
        words = " ".join((words or "").split())[:MAX_WORDS]
        if not words and category == "other":
            raise WishRefused("a request needs a topic or some words")
        with self._lock:
            (pending,) = self._db.execute("SELECT count(*) FROM wishes WHERE sent_at IS NULL").fetchone()
            if pending >= MAX_PENDING:
                raise WishRefused("too many requests are waiting to be sent")
            cur = self._db.execute(
                "INSERT INTO wishes (ts, category, words, source) VALUES (?, ?, ?, ?)",
                (clock.now(), category, words, source[:16]),
            )
            wish_id = int(cur.lastrowid or 0)
        log.info("event=wish_stored id=%d category=%s", wish_id, category)
        return wish_id

    def pending(self, limit: int = 500) -> list[dict[str, Any]]:
        """Requests not yet acknowledged by the centre, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, ts, category, words, source FROM wishes WHERE sent_at IS NULL ORDER BY id LIMIT ?",
                (limit,),
            ).fetchall()
        return [{"id": r[0], "ts": r[1], "category": r[2], "words": r[3], "source": r[4]} for r in rows]

    def mark_sent(self, ids: Iterable[int]) -> int:
        """Note that the centre has these requests; prune long-sent ones. Returns how many were marked."""
        ids = [int(i) for i in ids]
        now = clock.now()
        marked = 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for start in range(0, len(ids), 500):
                    chunk = ids[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    cur = self._db.execute(f"UPDATE wishes SET sent_at = ? WHERE sent_at IS NULL AND id IN ({marks})", (now, *chunk))
                    marked += cur.rowcount
                self._db.execute("DELETE FROM wishes WHERE sent_at IS NOT NULL AND sent_at < ?", (now - KEEP_SENT_S,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return marked

    def counts(self) -> dict[str, int]:
        """{"pending", "sent"}: for the device page and status."""
        with self._lock:
            pending, sent = self._db.execute(
                "SELECT count(*) FILTER (WHERE sent_at IS NULL), count(*) FILTER (WHERE sent_at IS NOT NULL) FROM wishes"
            ).fetchone()
        return {"pending": int(pending or 0), "sent": int(sent or 0)}

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
