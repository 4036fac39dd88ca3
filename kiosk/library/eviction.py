"""Eviction: which whole packages to remove so that storage.min_free_percent stays free.

Order: expired first, then lowest priority, then least recently opened (never opened
counts from its publication). Never evicted automatically: priority 9, pinned items,
recalls, and items open now. "Open now" is an in-process count the media server bumps
(Library.opening); since an ingest may run in another process (`kiosk ingest`), an item
opened within RECENT_OPEN_S is also treated as open.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from contextlib import contextmanager
from typing import Iterable, Iterator

NEVER = 9
RECENT_OPEN_S = 15 * 60


class OpenItems:
    """A thread-safe count of how many readers have each item open."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count: Counter[str] = Counter()

    @contextmanager
    def hold(self, item_id: str) -> Iterator[None]:
        """Count the item as open for the duration of a with-block."""
        with self._lock:
            self._count[item_id] += 1
        try:
            yield
        finally:
            with self._lock:
                self._count[item_id] -= 1
                if self._count[item_id] <= 0:
                    del self._count[item_id]

    def ids(self) -> set[str]:
        """The ids open now."""
        with self._lock:
            return set(self._count)


def candidates(rows: Iterable[sqlite3.Row], today: str, now: float, open_ids: set[str],
               max_priority: int = NEVER - 1) -> list[sqlite3.Row]:
    """Evictable rows, first to go first."""
    out = []
    for r in rows:
        expired = r["expires"] is not None and r["expires"] < today
        if r["kind"] != "item" or r["pinned"] or r["id"] in open_ids:
            continue
        if r["priority"] >= NEVER:
            continue
        if r["last_opened"] is not None and now - r["last_opened"] < RECENT_OPEN_S:
            continue
        if not expired and r["priority"] > max_priority:
            continue
        out.append(r)
    return sorted(out, key=lambda r: (
        0 if r["expires"] is not None and r["expires"] < today else 1,
        r["priority"],
        r["last_opened"] if r["last_opened"] is not None else r["published_at"],
    ))


def choose(rows: Iterable[sqlite3.Row], need: int, today: str, now: float, open_ids: set[str],
           max_priority: int = NEVER - 1) -> list[sqlite3.Row]:
    """The fewest rows, in eviction order, that free at least `need` bytes (all of them if they cannot)."""
    chosen, freed = [], 0
    for r in candidates(rows, today, now, open_ids, max_priority):
        if freed >= need:
            break
        chosen.append(r)
        freed += r["size"]
    return chosen
