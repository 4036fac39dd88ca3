"""The heartbeat outbox: reports wait on the box's own disk until the centre acknowledges them.

SQLite in data_dir with synchronous=FULL, because an event or a villager's
request the box has recorded must survive a power cut. Sequence numbers never
repeat: they are reserved in blocks in a small fsynced file beside the outbox
(`outbox.seq`) and mirrored in the outbox itself, so losing either one still
leaves the other, and a new number is always above both. Reserving blocks
keeps SD card writes down at the price of a gap after a reboot, which the wire
format allows. The outbox stays bounded: routine beats older than 14 days are
thinned to one an hour, after 60 days to one a day (their usage counts are
added into the beat kept); events and reports carrying requests are never dropped.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterable

from kiosk import clock
from kiosk.config import Config

log = logging.getLogger(__name__)

SEQ_BLOCK = 64
THIN_HOURLY_AFTER_S = 14 * 86400
THIN_DAILY_AFTER_S = 60 * 86400

SCHEMA = """
CREATE TABLE IF NOT EXISTS reports (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    created REAL NOT NULL,
    keep INTEGER NOT NULL DEFAULT 0,
    held INTEGER NOT NULL DEFAULT 0,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reports_thin ON reports (keep, created);
CREATE TABLE IF NOT EXISTS carried (
    wish_id INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS carried_seq ON carried (seq);
CREATE TABLE IF NOT EXISTS state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

# One lock per outbox file: the scheduler's job, the web page's status and events
# from other threads may touch it at once; SQLite's busy timeout covers other processes.
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def outbox_path(cfg: Config) -> Path:
    """Where the outbox lives."""
    return cfg.data_dir / "outbox.sqlite"


def _lock_for(path: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(str(path.resolve()), threading.Lock())


class SequenceFile:
    """The high-water mark of reserved sequence numbers, in a file written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> int:
        """The first sequence number not yet reserved (1 when the file is missing or unreadable)."""
        try:
            return max(1, int(self.path.read_text().strip()))
        except (OSError, ValueError):
            return 1

    def write(self, value: int) -> None:
        """Store `value` durably: write a temporary file, fsync, rename, fsync the folder."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w") as f:
            f.write(f"{value}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class Outbox:
    """Reports waiting to be acknowledged, with the uplink's small state (key/value)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.seqfile = SequenceFile(path.with_suffix(".seq"))
        self._lock = _lock_for(path)
        try:
            self._db = self._open()
        except sqlite3.OperationalError:
            raise  # busy or unreadable: not corrupt, so nothing is moved aside
        except sqlite3.DatabaseError as e:
            # A corrupt outbox must not stop the box from reporting: keep it aside for
            # a person to look at and start a fresh one (the sequence file carries on).
            aside = path.with_name(f"{path.name}.corrupt-{int(clock.now())}")
            log.error("event=outbox_corrupt path=%s moved_to=%s error=%s", path, aside, e)
            os.replace(path, aside)
            for suffix in ("-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)
            self._db = self._open()

    @classmethod
    def of(cls, cfg: Config) -> "Outbox":
        """The outbox of a configuration."""
        return cls(outbox_path(cfg))

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(SCHEMA)
        db.execute("SELECT count(*) FROM reports").fetchone()
        return db

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def __enter__(self) -> "Outbox":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- writing ----------------------------------------------------------------
    def _next_seqs(self, n: int) -> list[int]:
        """Reserve `n` new sequence numbers (caller holds the lock and a transaction)."""
        (db_max,) = self._db.execute("SELECT coalesce(max(seq), 0) FROM reports").fetchone()
        row = self._db.execute("SELECT value FROM state WHERE key = 'seq_next'").fetchone()
        reserved = self.seqfile.read()  # every number below it may have been used
        # An intact outbox knows exactly where it stands; a new or lost one starts above the reservation.
        first = max(int(row[0]), db_max + 1) if row else max(reserved, db_max + 1)
        last = first + n - 1
        if last >= reserved:
            self.seqfile.write(last + 1 + SEQ_BLOCK)
        self._db.execute("INSERT OR REPLACE INTO state (key, value) VALUES ('seq_next', ?)", (str(last + 1),))
        return list(range(first, last + 1))

    def add(self, reports: list[dict[str, Any]], state: dict[str, Any] | None = None, carried: dict[int, list[int]] | None = None) -> list[int]:
        """Write reports (given their seq here) and state changes in one durable transaction.

        `carried` maps a report's index in `reports` to the villagers' request ids it carries.
        """
        if not reports and not state:
            return []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                seqs = self._next_seqs(len(reports)) if reports else []
                for i, (seq, report) in enumerate(zip(seqs, reports)):
                    report["seq"] = seq
                    wish_ids = (carried or {}).get(i, [])
                    keep = 1 if report.get("kind") != "beat" or wish_ids or report.get("requests") else 0
                    created = float(report.get("box_time") or clock.now())
                    self._db.execute(
                        "INSERT INTO reports (seq, kind, created, keep, body) VALUES (?, ?, ?, ?, ?)",
                        (seq, report.get("kind", "beat"), created, keep, _dumps(report)),
                    )
                    self._db.executemany("INSERT OR REPLACE INTO carried (wish_id, seq) VALUES (?, ?)", [(w, seq) for w in wish_ids])
                if seqs:
                    state = {**(state or {}), "last_report_seq": seqs[-1]}
                for key, value in (state or {}).items():
                    self._db.execute("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", (key, json.dumps(value)))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return seqs

    def acknowledge(self, seqs: Iterable[int]) -> list[int]:
        """Delete acknowledged reports; return the villagers' request ids they carried."""
        seqs = sorted(set(int(s) for s in seqs))
        if not seqs:
            return []
        wish_ids: list[int] = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for start in range(0, len(seqs), 500):
                    chunk = seqs[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    wish_ids += [r[0] for r in self._db.execute(f"SELECT wish_id FROM carried WHERE seq IN ({marks})", chunk)]
                    self._db.execute(f"DELETE FROM reports WHERE seq IN ({marks})", chunk)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return wish_ids

    def acknowledged_requests(self) -> list[int]:
        """Villagers' request ids whose report has left the outbox (acknowledged by the centre)."""
        rows = self._db.execute("SELECT wish_id FROM carried WHERE seq NOT IN (SELECT seq FROM reports) ORDER BY wish_id")
        return [r[0] for r in rows]

    def forget_carried(self, wish_ids: Iterable[int]) -> None:
        """Drop the note that these requests ride in a report (they are marked sent now)."""
        ids = [int(i) for i in wish_ids]
        with self._lock:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                self._db.execute(f"DELETE FROM carried WHERE wish_id IN ({','.join('?' * len(chunk))})", chunk)

    def set_state(self, **values: Any) -> None:
        """Remember small facts (last sent, last error, offsets) in the outbox."""
        self.add([], state=values)

    # --- reading ----------------------------------------------------------------
    def state(self, key: str, default: Any = None) -> Any:
        """One remembered fact, or `default`."""
        row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def depth(self) -> int:
        """How many reports wait."""
        return int(self._db.execute("SELECT count(*) FROM reports").fetchone()[0])

    def get(self, seqs: Iterable[int]) -> list[dict[str, Any]]:
        """These reports, in sequence order (missing ones left out)."""
        seqs = list(seqs)
        marks = ",".join("?" * len(seqs))
        rows = self._db.execute(f"SELECT body FROM reports WHERE seq IN ({marks}) ORDER BY seq", seqs).fetchall() if seqs else []
        return [json.loads(r[0]) for r in rows]

    def oldest(self, after: int = 0, limit: int = 200, held: bool = True) -> list[dict[str, Any]]:
        """Up to `limit` reports with seq above `after`, oldest first (without held ones if `held` is False)."""
        where = "" if held else " AND held = 0"
        rows = self._db.execute(f"SELECT body FROM reports WHERE seq > ?{where} ORDER BY seq LIMIT ?", (after, limit)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def hold(self, seq: int, software: str) -> None:
        """Stop sending a report the centre refuses as malformed; it stays (and is exported) until
        the software changes, so one bad report cannot block the line or be lost."""
        with self._lock:
            self._db.execute("UPDATE reports SET held = 1 WHERE seq = ?", (seq,))
            self._db.execute("INSERT OR REPLACE INTO state (key, value) VALUES ('held_software', ?)", (json.dumps(software),))

    def release_held(self, software: str) -> int:
        """Send held reports again once the software is another version (the refusal may be fixed)."""
        if self.state("held_software") in (None, software):
            return 0
        with self._lock:
            n = self._db.execute("UPDATE reports SET held = 0 WHERE held = 1").rowcount
        return n

    def held(self) -> int:
        """How many reports the centre refused and wait aside."""
        return int(self._db.execute("SELECT count(*) FROM reports WHERE held = 1").fetchone()[0])

    def carried_ids(self) -> set[int]:
        """Villagers' request ids already riding in a waiting report."""
        return {r[0] for r in self._db.execute("SELECT wish_id FROM carried")}

    # --- staying bounded ----------------------------------------------------------
    def thin(self, now: float | None = None) -> int:
        """Thin old routine beats (one an hour after 14 days, one a day after 60); return how many went."""
        now = clock.now() if now is None else now
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, created, body FROM reports WHERE keep = 0 AND kind = 'beat' AND created < ? ORDER BY seq",
                (now - THIN_HOURLY_AFTER_S,),
            ).fetchall()
            buckets: dict[tuple[str, int], list[tuple[int, dict[str, Any]]]] = {}
            for seq, created, body in rows:
                key = ("day", int(created // 86400)) if created < now - THIN_DAILY_AFTER_S else ("hour", int(created // 3600))
                buckets.setdefault(key, []).append((seq, json.loads(body)))
            dropped: list[int] = []
            updates: list[tuple[str, int]] = []
            for beats in buckets.values():
                if len(beats) < 2:
                    continue
                kept_seq, kept = beats[-1]  # the newest beat of the bucket says most about the box now
                for seq, beat in beats[:-1]:
                    kept["usage"] = merge_usage(beat.get("usage"), kept.get("usage"))
                    dropped.append(seq)
                kept["thinned"] = int(kept.get("thinned", 0)) + len(beats) - 1
                updates.append((_dumps(kept), kept_seq))
            if not dropped:
                return 0
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("UPDATE reports SET body = ? WHERE seq = ?", updates)
                for start in range(0, len(dropped), 500):
                    chunk = dropped[start : start + 500]
                    self._db.execute(f"DELETE FROM reports WHERE seq IN ({','.join('?' * len(chunk))})", chunk)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        log.info("event=outbox_thinned dropped=%d kept=%d", len(dropped), len(updates))
        return len(dropped)


def merge_usage(older: dict[str, Any] | None, newer: dict[str, Any] | None) -> dict[str, Any] | None:
    """One usage record covering both (counts added, the span widened)."""
    if not older:
        return newer
    if not newer:
        return older
    out = dict(newer)
    for key in ("opens", "plays"):
        out[key] = int(older.get(key) or 0) + int(newer.get(key) or 0)
    out["seconds"] = round(float(older.get("seconds") or 0) + float(newer.get("seconds") or 0), 1)
    if older.get("since") is not None:
        out["since"] = min(older["since"], newer.get("since", older["since"]))
    cats: dict[str, dict[str, Any]] = {}
    for source in (older.get("by_category") or {}, newer.get("by_category") or {}):
        for cat, c in source.items():
            t = cats.setdefault(cat, {"opens": 0, "plays": 0, "seconds": 0.0})
            t["opens"] += int(c.get("opens") or 0)
            t["plays"] += int(c.get("plays") or 0)
            t["seconds"] = round(t["seconds"] + float(c.get("seconds") or 0), 1)
    out["by_category"] = cats
    tops: dict[str, int] = {}
    for source in (older.get("top_items") or [], newer.get("top_items") or []):
        for t in source:
            tops[t["id"]] = tops.get(t["id"], 0) + int(t.get("count") or 0)
    out["top_items"] = [{"id": k, "count": v} for k, v in sorted(tops.items(), key=lambda kv: (-kv[1], kv[0]))[:10]]
    return out


def _dumps(report: dict[str, Any]) -> str:
    return json.dumps(report, separators=(",", ":"), ensure_ascii=False)
