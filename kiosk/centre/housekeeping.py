"""The centre's housekeeping: daily partitions ahead, roll-ups of reports, and their retention.

Every centre process runs it every `INTERVAL_S` (and once at start); the work is the
database's, so several processes take turns (an advisory lock on PostgreSQL, the write
lock on SQLite) and each step is safe to repeat:

- partitions (PostgreSQL): one per UTC day of `received_at`, made a few days ahead; a
  report that finds none lands in the default partition, never fails;
- roll-ups: reports received since the last run are added into `point_days` (one row per
  point and local day: reports, hours with a report as a bit mask, highest readings). A
  watermark in `meta` says how far it got, moved in the same transaction, so every
  report is counted once;
- retention: raw reports older than `centre.report_retention_days` and already rolled
  up are dropped (a whole partition at a time on PostgreSQL); roll-ups are kept.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

from kiosk import clock
from kiosk.centre.store import Store

log = logging.getLogger(__name__)

DAY = 86400
INTERVAL_S = 600
AHEAD_DAYS = 3
SETTLE_S = 300  # a report is rolled up once no transaction that stored it can still be open
_PARTITION = re.compile(r"reports_d([0-9]+)")
_LOCK_KEY = 0x6B696F736B  # "kiosk": the advisory lock of this job on PostgreSQL


def partition_name(day: int) -> str:
    """The partition holding reports received on this UTC day (days since 1970-01-01)."""
    return f"reports_d{day}"


def ensure_partitions(store: Store, now: float, ahead_days: int = AHEAD_DAYS) -> list[str]:
    """Make the daily partitions from yesterday to `ahead_days` ahead; return those made."""
    if not store.db.is_pg:
        return []
    made = []
    today = int(now // DAY)
    with store.db.transaction() as cur:
        if not _locked(cur):
            return []
        have = set(partitions(cur))
        for day in range(today - 1, today + ahead_days + 1):
            if day in have:
                continue
            lo, hi = day * DAY, (day + 1) * DAY
            # rows already in the default partition for this day would make the new one fail: leave that day there
            if cur.execute("SELECT 1 FROM reports_default WHERE received_at >= ? AND received_at < ? LIMIT 1",
                           (lo, hi)).fetchone():
                continue
            cur.execute(f"CREATE TABLE {partition_name(day)} PARTITION OF reports FOR VALUES FROM ({lo}) TO ({hi})")
            made.append(partition_name(day))
    if made:
        log.info("partitions made names=%s", ",".join(made))
    return made


def partitions(cur: Any) -> list[int]:
    """The days that have a partition of their own."""
    rows = cur.execute("SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'reports'::regclass").fetchall()
    days = []
    for (name,) in rows:
        m = _PARTITION.fullmatch(name.rsplit(".", 1)[-1].strip('"'))
        if m:
            days.append(int(m.group(1)))
    return sorted(days)


def roll_up(store: Store, now: float) -> int:
    """Add the reports received since the last roll-up into point_days; return how many."""
    db = store.db
    offset = time.localtime(now).tm_gmtoff
    day = db.floor_int(f"(at + {offset}) / {DAY}")
    hour = db.floor_int(f"((at + {offset}) - {db.floor_int(f'(at + {offset}) / {DAY}')} * {DAY}) / 3600")
    hi = now - SETTLE_S
    with db.transaction() as cur:
        if not _locked(cur):
            return 0
        row = cur.execute("SELECT value FROM meta WHERE key = 'rollup_until'" + (" FOR UPDATE" if db.is_pg else "")).fetchone()
        lo = float(row[0]) if row else 0.0
        if hi <= lo:
            return 0
        cur.execute(
            "INSERT INTO point_days (point, day, reports, hours, temp_max, disk_max, memory_max, load_max) "
            f"SELECT point, {day}, COUNT(*), SUM(DISTINCT 1 << {hour}), MAX(temp_c), MAX(disk_percent), "
            "MAX(memory_percent), MAX(load1) FROM reports WHERE received_at >= ? AND received_at < ? "
            f"GROUP BY point, {day} "
            "ON CONFLICT (point, day) DO UPDATE SET reports = point_days.reports + excluded.reports, "
            "hours = point_days.hours | excluded.hours, "
            + ", ".join(
                f"{c} = CASE WHEN point_days.{c} IS NULL OR excluded.{c} > point_days.{c} THEN excluded.{c} ELSE point_days.{c} END"
                for c in ("temp_max", "disk_max", "memory_max", "load_max")
            ),
            (lo, hi),
        )
        counted = cur.rowcount
        cur.execute(
            "INSERT INTO meta (key, value) VALUES ('rollup_until', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (repr(hi),),
        )
    log.info("roll-up from=%.0f to=%.0f rows=%d", lo, hi, counted)
    return counted


def expire(store: Store, now: float, keep_days: int) -> int:
    """Drop raw reports older than `keep_days` that are rolled up; return partitions or rows dropped."""
    db = store.db
    rolled = float(store.get_meta("rollup_until", "0") or 0)
    cutoff = min(now - keep_days * DAY, rolled)
    dropped = 0
    with db.transaction() as cur:
        if not _locked(cur):
            return 0
        if db.is_pg:
            for d in partitions(cur):
                if (d + 1) * DAY <= cutoff:
                    cur.execute(f"DROP TABLE {partition_name(d)}")
                    dropped += 1
            cur.execute("DELETE FROM reports_default WHERE received_at < ?", (cutoff,))
        else:
            cur.execute("DELETE FROM reports WHERE received_at < ?", (cutoff,))
            dropped = cur.rowcount
    if dropped:
        log.info("raw reports dropped before=%.0f count=%d", cutoff, dropped)
    return dropped


def run_once(store: Store, keep_days: int, now: float | None = None) -> dict[str, Any]:
    """Every step once: partitions ahead, roll-up, retention."""
    now = clock.now() if now is None else now
    return {
        "partitions": ensure_partitions(store, now),
        "rolled_up": roll_up(store, now),
        "expired": expire(store, now, keep_days),
    }


def _locked(cur: Any) -> bool:
    """Take this job's turn on PostgreSQL (until the transaction ends); SQLite's write lock is turn enough."""
    if not cur.db.is_pg:
        return True
    return bool(cur.execute("SELECT pg_try_advisory_xact_lock(?)", (_LOCK_KEY,)).fetchone()[0])


class Housekeeper:
    """`run_once` now and every INTERVAL_S in a background thread, until `stop()`."""

    def __init__(self, store: Store, keep_days: int, interval_s: float = INTERVAL_S) -> None:
        self.store = store
        self.keep_days = keep_days
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kiosk-centre-housekeeping", daemon=True)

    def start(self) -> "Housekeeper":
        """Run once (so today's partition exists before the first report) and start the thread."""
        self._once()
        self._thread.start()
        return self

    def _once(self) -> None:
        try:
            run_once(self.store, self.keep_days)
        except Exception as e:  # the centre keeps serving; the next turn tries again
            log.warning("housekeeping failed error=%r", e)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._once()

    def stop(self) -> None:
        """Stop the thread (waits for a turn in progress)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)
