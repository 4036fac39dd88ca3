"""Opening the library's SQLite files the one way they are all opened."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def connect(path: Path, synchronous: str) -> sqlite3.Connection:
    """An autocommit WAL connection any thread may use (callers serialise their own access).

    `synchronous` is FULL where a power cut must not lose a commit (the catalogue, villagers'
    requests) and NORMAL where losing the last second is fine and saves the SD card a sync.
    """
    db = sqlite3.connect(path, isolation_level=None, timeout=30.0, check_same_thread=False)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute(f"PRAGMA synchronous = {synchronous}")
    return db
