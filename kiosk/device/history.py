"""Bounded health history in SQLite: 7 days by the minute, then hourly for 90 days.

The SD card is spared: samples are kept in memory and written in one
transaction every FLUSH_EVERY samples (about every 10 minutes), so a power
cut loses at most those minutes of history, never the file. Minutes older
than 7 days are folded into hourly rows (worst value for alarms, mean for
loads) and hourly rows older than 90 days are dropped: nothing grows.
The scheduler's health job calls `sample(cfg, hardware)` every
health.sample_interval_s; the device page asks `series()` for sparklines.
"""

from __future__ import annotations

import atexit
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

from kiosk import clock
from kiosk.config import Config
from kiosk.device import Hardware, Readings
from kiosk.device import health

log = logging.getLogger(__name__)

MINUTE_KEEP_S = 7 * 86400
HOUR_KEEP_S = 90 * 86400
FLUSH_EVERY = 10
# the USB import's progress record in data_dir (written by the importer)
IMPORT_PROGRESS = "usb-import.json"
IMPORT_LOCK = "usb-import.lock"

# column -> how an hour (or a sparkline bucket) sums it up: the worst for alarms, the mean for loads.
COLUMNS: dict[str, str] = {
    "temp_c": "max",
    "under_voltage": "max",
    "disk_percent": "max",
    "memory_percent": "avg",
    "cpu_percent": "avg",
    "load1": "avg",
    "ext4_errors": "max",
    "readonly": "max",
    "display_restarts": "max",
}
# which column a signal's card draws
SIGNAL_COLUMN = {
    "temperature": "temp_c",
    "power": "under_voltage",
    "disk": "disk_percent",
    "memory": "memory_percent",
    "sdcard": "ext4_errors",
    "readonly": "readonly",
    "display": "display_restarts",
}

_SCHEMA = "".join(
    f"CREATE TABLE IF NOT EXISTS {table} (ts INTEGER PRIMARY KEY, {', '.join(f'{c} REAL' for c in COLUMNS)});"
    for table in ("minute", "hour")
)


def row_of(r: Readings) -> dict[str, float | None]:
    """The numbers of a reading that the history keeps."""
    def flag(v: bool | None) -> float | None:
        return None if v is None else float(v)

    return {
        "temp_c": r.temp_c,
        "under_voltage": flag(r.under_voltage_now),
        "disk_percent": r.disk_percent,
        "memory_percent": r.memory_percent,
        "cpu_percent": r.cpu_percent,
        "load1": r.load1,
        "ext4_errors": None if r.ext4_errors is None else float(r.ext4_errors),
        "readonly": flag(r.root_readonly),
        "display_restarts": None if r.display_restarts is None else float(r.display_restarts),
    }


class HistoryStore:
    """The health history of one box; thread-safe; writes in batches."""

    def __init__(self, path: Path, flush_every: int = FLUSH_EVERY) -> None:
        self.path = Path(path)
        self.flush_every = flush_every
        self._buffer: list[tuple[int, dict[str, float | None]]] = []
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        # WAL with synchronous=NORMAL: one append per batch, no journal file created and deleted each time.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self.writes = 0  # transactions committed, for the bench
        self._last_cut: int | None = None

    def add(self, row: dict[str, float | None], ts: float | None = None) -> None:
        """Keep one sample (at the minute of `ts`, default now); written with the next batch."""
        minute = int((clock.now() if ts is None else ts) // 60 * 60)
        with self._lock:
            self._buffer.append((minute, row))
            if len(self._buffer) >= self.flush_every:
                self._flush_locked()

    def flush(self) -> None:
        """Write what is buffered now (on shutdown)."""
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if not self._buffer:
            return
        cols = list(COLUMNS)
        sql = f"INSERT OR REPLACE INTO minute (ts, {', '.join(cols)}) VALUES (?{', ?' * len(cols)})"
        now = clock.now()
        minute_cut = int((now - MINUTE_KEEP_S) // 3600 * 3600)  # an hour's minutes fold together
        hour_cut = int(now - HOUR_KEEP_S)
        aggs = ", ".join(f"{COLUMNS[c].upper()}({c})" for c in cols)
        db = self._db
        try:
            db.execute("BEGIN")
            db.executemany(sql, [(ts, *(row.get(c) for c in cols)) for ts, row in self._buffer])
            if minute_cut != self._last_cut:  # the cut moves once an hour: fold only then
                db.execute(
                    f"INSERT OR REPLACE INTO hour (ts, {', '.join(cols)}) "
                    f"SELECT ts / 3600 * 3600 AS h, {aggs} FROM minute WHERE ts < ? GROUP BY h",
                    (minute_cut,),
                )
                db.execute("DELETE FROM minute WHERE ts < ?", (minute_cut,))
                db.execute("DELETE FROM hour WHERE ts < ?", (hour_cut,))
            db.execute("COMMIT")
        except sqlite3.Error:
            db.execute("ROLLBACK")
            log.exception("event=history_write_failed rows=%d", len(self._buffer))
            if len(self._buffer) > 10 * self.flush_every:  # bounded even when the disk refuses
                del self._buffer[: self.flush_every]
            return
        self.writes += 1
        self._last_cut = minute_cut
        self._buffer.clear()

    def series(self, column: str, seconds: float, buckets: int, until: float | None = None) -> list[float | None]:
        """`buckets` values over the last `seconds` (oldest first); None where nothing was sampled."""
        return self.series_many((column,), seconds, buckets, until)[column]

    def series_many(self, columns: tuple[str, ...] | list[str], seconds: float, buckets: int,
                    until: float | None = None) -> dict[str, list[float | None]]:
        """Like series() for several columns at once (one query per table: the page draws 14 lines)."""
        for column in columns:
            if column not in COLUMNS:
                raise ValueError(f"unknown history column {column!r}")
        end = clock.now() if until is None else until
        start = end - seconds
        width = seconds / buckets
        sums = {c: [0.0] * buckets for c in columns}
        counts = {c: [0] * buckets for c in columns}
        highs: dict[str, list[float | None]] = {c: [None] * buckets for c in columns}

        def put(c: str, b: int, total: float | None, n: int, high: float | None) -> None:
            if 0 <= b < buckets and n and total is not None and high is not None:
                sums[c][b] += total
                counts[c][b] += n
                old = highs[c][b]
                highs[c][b] = high if old is None else max(old, high)

        picks = ", ".join(f"SUM({c}), COUNT({c}), MAX({c})" for c in columns)
        with self._lock:
            for table in ("hour", "minute"):
                rows = self._db.execute(
                    f"SELECT CAST((ts - ?) / ? AS INTEGER) AS b, {picks} FROM {table} "
                    f"WHERE ts >= ? AND ts < ? GROUP BY b",
                    (start, width, start, end),
                ).fetchall()
                for row in rows:
                    for i, c in enumerate(columns):
                        put(c, int(row[0]), row[1 + 3 * i], row[2 + 3 * i], row[3 + 3 * i])
            for ts, sample in self._buffer:
                if start <= ts < end:
                    for c in columns:
                        v = sample.get(c)
                        if v is not None:
                            put(c, int((ts - start) // width), v, 1, v)
        out: dict[str, list[float | None]] = {}
        for c in columns:
            if COLUMNS[c] == "max":
                out[c] = highs[c]
            else:
                out[c] = [t / n if n else None for t, n in zip(sums[c], counts[c])]
        return out

    def counts(self) -> dict[str, int]:
        """Rows held per table, and samples waiting in memory."""
        with self._lock:
            out = {t: self._db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("minute", "hour")}
            out["buffered"] = len(self._buffer)
        return out

    def close(self) -> None:
        """Write the buffer and close the file."""
        with self._lock:
            self._flush_locked()
            self._db.close()


_stores: dict[Path, HistoryStore] = {}
_stores_lock = threading.Lock()


def open_store(cfg: Config) -> HistoryStore:
    """The box's one history store (shared, so the page sees samples not yet written)."""
    path = (cfg.data_dir / "health.sqlite").resolve()
    with _stores_lock:
        if path not in _stores:
            if not _stores:
                atexit.register(close_all)  # `kiosk run` exits normally on SIGTERM: the buffer is written
            _stores[path] = HistoryStore(path)
        return _stores[path]


def close_all() -> None:
    """Flush and close every open store (on shutdown, and between tests)."""
    with _stores_lock:
        for store in _stores.values():
            try:
                store.close()
            except sqlite3.Error:
                log.exception("event=history_close_failed")
        _stores.clear()


def importing(cfg: Config) -> bool:
    """True while a USB import is under way.

    Read from the importer's record and lock (kiosk/library/usb.py: "state" is
    "importing" and the flock is held); device does not import the library, so
    the two file names are agreed here.
    """
    import fcntl
    import json
    import os

    try:
        record = json.loads((cfg.data_dir / IMPORT_PROGRESS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not (isinstance(record, dict) and record.get("state") == "importing"):
        return False
    try:
        fd = os.open(cfg.data_dir / IMPORT_LOCK, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True  # the importer holds it: an import is running
    finally:
        os.close(fd)
    return False  # a record left by an importer that died


def sample(cfg: Config, hardware: Hardware, store: HistoryStore | None = None) -> dict[str, Any]:
    """Read, judge, keep one sample and set the status LED; returns the health snapshot."""
    store = store or open_store(cfg)
    readings = hardware.read()
    snap = health.assess(readings, cfg, hardware=hardware.name)
    store.add(row_of(readings), snap["at"])
    hardware.set_status(health.led_state(snap, importing(cfg)))
    if snap["status"] != "ok":
        log.info("event=health status=%s state=%s", snap["status"], snap["state"])
    return snap
