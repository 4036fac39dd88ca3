"""The centre's store: points, reports, villagers' requests, staff logins and API tokens.

One API over SQLite (the default, WAL) and PostgreSQL (`centre.db = postgresql://...`).
Reports are stored once per (point, seq): ingestion is a batched
INSERT ... ON CONFLICT DO NOTHING, so a replayed or re-sent batch stores nothing new.

Each point's enrolment secret is stored as it is, not hashed: the HMAC that proves a
report needs the secret itself on both ends. Guard the database like a key file.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import socket
import secrets
import time
from typing import Any, Iterable

from werkzeug.security import check_password_hash, generate_password_hash

from kiosk import clock
from kiosk.centre.db import Database
from kiosk.centre.status import Rules
from kiosk.centre.tree import BadScope, Node, check_name
from kiosk.config import Config
from kiosk.errors import KioskError, NotFound
from kiosk.wire import MAX_SKEW_S

log = logging.getLogger(__name__)

POINT_ID = re.compile(r"[a-z0-9._-]{1,64}")  # always fullmatch: "$" lets a trailing newline through
TOKEN_ID = re.compile(r"[0-9a-f]{12}")
_REPORT_COLS = (
    "point, seq, received_at, box_time, at, kind, event, detail, boot_id, "
    "temp_c, disk_percent, memory_percent, load1, health, content, usage"
)
_WIDTH = 16  # columns of a report row
_CHUNK = 400
LOCAL_PLAYS = ":local"  # the plays table's row for local content (a part of the categories' rows, not one of them)  # rows per multi-row INSERT: 16 x 400 parameters stays far below SQLite's limit


class Store:
    """The centre's data; safe to share between threads (one connection per thread)."""

    def __init__(self, url: str, county: str = "") -> None:
        self.db = Database(url)
        self.county = check_name(county, "county")
        if self.county:
            # points enrolled before the tree existed belong to the county this centre serves
            with self.db.transaction() as cur:
                cur.execute("UPDATE points SET county = ? WHERE county = ''", (self.county,))
                if cur.rowcount:
                    log.info("points placed in county=%s points=%d", self.county, cur.rowcount)

    @classmethod
    def from_config(cls, cfg: Config) -> "Store":
        """Open the store `centre.db` names (a SQLite path or a postgresql:// URL)."""
        url = cfg.centre.db
        # a URL must not go through Path, which would fold its "//"
        return cls(url if url.startswith(("postgresql://", "postgres://")) else str(cfg.path("centre.db")),
                   county=cfg.centre.county)

    def close(self) -> None:
        """Close its connections."""
        self.db.close()

    # --- meta: the centre's own start time ----------------------------------------------
    def get_meta(self, key: str, default: str = "") -> str:
        """A value from the meta table."""
        row = self.db.one("SELECT value FROM meta WHERE key = ?", (key,))
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        """Set a value in the meta table."""
        with self.db.transaction() as cur:
            cur.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def mark_started(self) -> float:
        """Record that a centre process started now (alerts wait one offline period).

        A row per start, in the database, so every process of the centre judges the grace
        alike; rows older than 90 days are dropped (the table stays small).
        """
        now = clock.now()
        with self.db.transaction() as cur:
            cur.execute("INSERT INTO centre_starts (started_at, host, pid) VALUES (?, ?, ?)",
                        (now, socket.gethostname()[:64], os.getpid()))
            cur.execute("DELETE FROM centre_starts WHERE started_at < ?", (now - 90 * 86400,))
        log.info("centre started at=%.0f", now)
        return now

    def started_at(self) -> float:
        """When a centre process last started (0 when none ever did)."""
        row = self.db.one("SELECT MAX(started_at) FROM centre_starts")
        return float(row[0]) if row and row[0] is not None else 0.0

    def rules(self, cfg: Config) -> Rules:
        """The status rules of this configuration and the recorded start time."""
        return Rules(cfg.centre.heartbeat_interval_s, cfg.centre.offline_after_s, self.started_at())

    # --- points -------------------------------------------------------------------------
    def enroll(self, point_id: str, name: str = "", township: str = "", county: str = "") -> str:
        """Enrol a point (or give an enrolled one a new secret); return the secret.

        Without a county the point goes to the county this centre serves (`centre.county`);
        on re-enrolment empty fields keep what the point had.
        """
        if not POINT_ID.fullmatch(point_id):
            raise KioskError(f"point id {point_id!r} must be 1 to 64 of a-z 0-9 . _ -")
        county = check_name(county, "county") or self.county
        township = check_name(township, "township")
        secret = secrets.token_hex(32)
        with self.db.transaction() as cur:
            cur.execute(
                "INSERT INTO points (id, name, county, township, secret, enrolled_at) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET secret = excluded.secret, "
                "name = CASE WHEN excluded.name = '' THEN points.name ELSE excluded.name END, "
                "county = CASE WHEN excluded.county = '' THEN points.county ELSE excluded.county END, "
                "township = CASE WHEN excluded.township = '' THEN points.township ELSE excluded.township END",
                (point_id, name, county, township, secret, clock.now()),
            )
        log.info("point enrolled point=%s county=%s township=%s", point_id, county, township)
        return secret

    def secret(self, point_id: str) -> str | None:
        """A point's enrolment secret, or None for an unknown point."""
        row = self.db.one("SELECT secret FROM points WHERE id = ?", (point_id,))
        return row[0] if row else None

    def points(self) -> list[dict[str, Any]]:
        """Every point with its facts (status is derived by the caller from last_seen)."""
        rows = self.db.query(
            f"SELECT {_POINT_COLS} FROM points ORDER BY county, township, id"
        )
        return [_point(r) for r in rows]

    def point(self, point_id: str) -> dict[str, Any]:
        """One point's facts, or NotFound."""
        row = self.db.one(
            f"SELECT {_POINT_COLS} FROM points WHERE id = ?",
            (point_id,),
        )
        if row is None:
            raise NotFound(f"no point {point_id}")
        return _point(row)

    # --- reports ------------------------------------------------------------------------
    def ingest(self, point_id: str, reports: list[dict[str, Any]], received_at: float | None = None) -> tuple[list[int], int]:
        """Store a batch of one point's reports once each; return (acked seqs, newly stored)."""
        received_at = clock.now() if received_at is None else received_at
        by_seq: dict[int, dict[str, Any]] = {}
        for r in reports:
            by_seq.setdefault(r["seq"], r)  # a seq twice in one batch is stored once
        rows = [_report_row(point_id, r, received_at) for r in by_seq.values()]
        new: list[int] = []
        with self.db.transaction() as cur:
            stored = _already_stored(cur, point_id, list(by_seq))
            rows = [row for row in rows if row[1] not in stored]
            for i in range(0, len(rows), _CHUNK):
                chunk = rows[i : i + _CHUNK]
                values = ",".join(["(" + ",".join("?" * _WIDTH) + ")"] * len(chunk))
                cur.execute(
                    f"INSERT INTO reports ({_REPORT_COLS}) VALUES {values} ON CONFLICT DO NOTHING RETURNING seq",
                    [v for row in chunk for v in row],
                )
                new.extend(int(r[0]) for r in cur.fetchall())
            if new:
                plays, asks = _facts(point_id, [(by_seq[s], rows_at) for s, rows_at in _at_by_seq(rows, new)])
                _insert_rows(cur, "plays (point, seq, category, month, opens, plays)", plays, "(point, seq, category)")
                _insert_rows(cur, "requests (point, rid, seq, at, month, topic, text)", asks, "(point, rid)")
                newest = by_seq[max(new)]
                if _takes_over(cur, point_id, max(new), received_at):
                    cur.execute(
                        # an event carries health but no content: the content of the last beat stays
                        "UPDATE points SET last_seen = ?, last_seq = ?, last_box_time = ?, "
                        "last_health = COALESCE(?, last_health), last_content = COALESCE(?, last_content), "
                        f"software = ?, software_state = ?, {_MAX_SEQ} WHERE id = ?",
                        (
                            received_at, max(new), _num(_box_time(newest)), _json(_latest(by_seq, new, "health")),
                            _json(_latest(by_seq, new, "content")), _software(newest.get("software")),
                            _software_state(newest.get("software")), max(new), max(new), point_id,
                        ),
                    )
                else:
                    cur.execute(f"UPDATE points SET last_seen = ?, {_MAX_SEQ} WHERE id = ?", (received_at, max(new), max(new), point_id))
        return sorted(by_seq), len(new)

    def reports(self, point_id: str, since: float, limit: int = 20000) -> list[dict[str, Any]]:
        """A point's reports described at or after `since`, oldest first."""
        rows = self.db.query(
            "SELECT seq, received_at, at, kind, event, temp_c, disk_percent, memory_percent, load1 "
            "FROM reports WHERE point = ? AND at >= ? ORDER BY at LIMIT ?",
            (point_id, since, limit),
        )
        keys = ("seq", "received_at", "at", "kind", "event", "temp_c", "disk_percent", "memory_percent", "load1")
        return [dict(zip(keys, r)) for r in rows]

    def events(self, point_id: str, limit: int = 50) -> list[dict[str, Any]]:
        """A point's latest events (boot, under-voltage, ...), newest first."""
        rows = self.db.query(
            "SELECT seq, at, event, detail FROM reports WHERE point = ? AND kind = 'event' ORDER BY at DESC LIMIT ?",
            (point_id, limit),
        )
        return [{"seq": r[0], "at": r[1], "event": r[2], "detail": json.loads(r[3]) if r[3] else None} for r in rows]

    def report_count(self) -> int:
        """How many reports are stored."""
        row = self.db.one("SELECT COUNT(*) FROM reports")
        return int(row[0]) if row else 0

    def seqs(self, point_id: str) -> list[int]:
        """Every stored sequence number of a point, in order (for checks and tests)."""
        return [int(r[0]) for r in self.db.query("SELECT seq FROM reports WHERE point = ? ORDER BY seq", (point_id,))]

    # --- staff and tokens -----------------------------------------------------------------
    def set_user(self, username: str, password: str, scope: str = "province") -> None:
        """Add a staff login or change its password (stored hashed) and scope."""
        if not username or len(password) < 8:
            raise KioskError("a login needs a user name and a password of at least 8 characters")
        node = Node.parse(scope)
        with self.db.transaction() as cur:
            cur.execute(
                "INSERT INTO users (username, password_hash, created_at, scope) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash, scope = excluded.scope",
                (username, generate_password_hash(password), clock.now(), str(node)),
            )

    def user_scope(self, username: str) -> Node | None:
        """The scope of a staff login, or None when there is no such login."""
        row = self.db.one("SELECT scope FROM users WHERE username = ?", (username,))
        return _scope(row[0]) if row else None

    def check_user(self, username: str, password: str) -> bool:
        """True when the login is right; an unknown user costs the same hash, so the time tells nothing."""
        row = self.db.one("SELECT password_hash FROM users WHERE username = ?", (username,))
        if row is None:
            check_password_hash(_dummy_hash(), password)
            return False
        return check_password_hash(row[0], password)

    def new_token(self, name: str, scope: str = "province") -> str:
        """Make an API token for a scope (only its hash is kept); return the token, shown once."""
        node = Node.parse(scope)
        token = secrets.token_urlsafe(32)
        with self.db.transaction() as cur:
            cur.execute(
                "INSERT INTO api_tokens (token_sha256, name, created_at, scope) VALUES (?, ?, ?, ?)",
                (hashlib.sha256(token.encode()).hexdigest(), name or "token", clock.now(), str(node)),
            )
        return token

    def token_scope(self, token: str) -> Node | None:
        """The scope of a live API token, or None."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        row = self.db.one("SELECT scope FROM api_tokens WHERE token_sha256 = ?", (digest,))
        return _scope(row[0]) if row else None

    def check_token(self, token: str) -> bool:
        """True for a live API token."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        return self.db.one("SELECT 1 FROM api_tokens WHERE token_sha256 = ?", (digest,)) is not None

    def tokens(self) -> list[dict[str, Any]]:
        """The API tokens (names and digests' first characters, never the tokens)."""
        rows = self.db.query("SELECT token_sha256, name, created_at, scope FROM api_tokens ORDER BY created_at")
        return [{"id": r[0][:12], "name": r[1], "created_at": r[2], "scope": r[3]} for r in rows]

    def revoke_token(self, token_id: str) -> None:
        """Remove the API token whose digest starts with exactly these 12 hex digits (its id)."""
        # Compared as a string, never as a LIKE pattern: "_" and "%" in an id are wildcards there.
        if not TOKEN_ID.fullmatch(token_id):
            raise NotFound("no such token")
        with self.db.transaction() as cur:
            cur.execute("DELETE FROM api_tokens WHERE substr(token_sha256, 1, 12) = ?", (token_id,))
            if cur.rowcount == 0:
                raise NotFound("no such token")


@functools.lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """A hash made the way real ones are, checked when the user name is unknown."""
    return generate_password_hash(secrets.token_hex(16))


# --- turning reports into rows ------------------------------------------------------------

LATEST_HOLD_S = MAX_SKEW_S  # a point's latest state gives way to a lower sequence number after this


# the highest sequence number ever stored for a point: below it a report may be stored already
_MAX_SEQ = "max_seq = CASE WHEN max_seq IS NULL OR max_seq < ? THEN ? ELSE max_seq END"


def _already_stored(cur: Any, point_id: str, seqs: list[int]) -> set[int]:
    """Which of these sequence numbers the point has stored already.

    On PostgreSQL reports are partitioned by day and (point, seq) cannot be a key, so the
    store looks: the point's row is locked first (two processes storing one point's batch
    take turns), and only numbers at or below the highest one stored are looked up, so a
    box's usual batch of new reports costs no lookup at all. SQLite keeps its key as well.
    """
    lock = " FOR UPDATE" if cur.db.is_pg else ""
    row = cur.execute(f"SELECT max_seq FROM points WHERE id = ?{lock}", (point_id,)).fetchone()
    top = row[0] if row else None
    maybe = [s for s in seqs if top is not None and s <= top]
    found: set[int] = set()
    for i in range(0, len(maybe), 500):
        part = maybe[i : i + 500]
        marks = ",".join("?" * len(part))
        found.update(int(r[0]) for r in cur.execute(
            f"SELECT seq FROM reports WHERE point = ? AND seq IN ({marks})", (point_id, *part)).fetchall())
    return found


def _takes_over(cur: Any, point_id: str, seq: int, received_at: float) -> bool:
    """Whether the newest report of a batch becomes the point's latest state.

    The higher sequence number wins, as a box sends them in order; but the state a report
    set holds for LATEST_HOLD_S of the centre's time at most against lower numbers. So a
    backlog arriving just after the newest reports (a box sends those first) does not
    replace them, while neither a report with an absurd sequence number (2^62) nor a box
    whose sequence started again (a new SD card) can pin the state for longer.
    """
    row = cur.execute(
        "SELECT p.last_seq, r.received_at FROM points p LEFT JOIN reports r ON r.point = p.id AND r.seq = p.last_seq "
        "WHERE p.id = ?",
        (point_id,),
    ).fetchone()
    if row is None or row[0] is None or seq > row[0]:
        return True
    return row[1] is None or row[1] < received_at - LATEST_HOLD_S


def _latest(by_seq: dict[int, dict[str, Any]], new: list[int], key: str) -> Any:
    """The block `key` of the newest new report that has one (events carry no content)."""
    return next((by_seq[s][key] for s in sorted(new, reverse=True) if by_seq[s].get(key) is not None), None)


def _software(value: Any) -> str:
    """The software version a report names (a string, or {"version", "state"})."""
    if isinstance(value, dict):
        value = value.get("version")
    return str(value or "")[:64]


def _software_state(value: Any) -> str:
    """The update state a report names ("" from a box too old to say)."""
    state = value.get("state") if isinstance(value, dict) else None
    return str(state or "")[:32]


def _insert_rows(cur: Any, target: str, rows: list[tuple[Any, ...]], key: str) -> None:
    """Multi-row INSERT ... ON CONFLICT DO NOTHING: one round trip per chunk, on both backends."""
    if not rows:
        return
    width = len(rows[0])
    step = max(1, 6000 // width)
    for i in range(0, len(rows), step):
        chunk = rows[i : i + step]
        values = ",".join(["(" + ",".join("?" * width) + ")"] * len(chunk))
        cur.execute(f"INSERT INTO {target} VALUES {values} ON CONFLICT {key} DO NOTHING", [v for row in chunk for v in row])


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _first(d: Any, *keys: str) -> Any:
    if not isinstance(d, dict):
        return None
    for k in keys:
        if d.get(k) is not None:
            return d[k]
    return None


def _box_time(r: dict[str, Any]) -> Any:
    return _first(r, "box_time", "time", "ts")


def _at(r: dict[str, Any], received_at: float) -> float:
    """When the report describes: the box's clock if synchronised and plausible, else receipt."""
    box = _num(_box_time(r))
    synced = _first(r, "clock_synced", "synced")
    if box is not None and synced is not False and received_at - 400 * 86400 < box <= received_at + MAX_SKEW_S:
        return box
    return received_at


def _report_row(point_id: str, r: dict[str, Any], received_at: float) -> tuple[Any, ...]:
    health = r.get("health") or {}
    return (
        point_id,
        r["seq"],
        received_at,
        _num(_box_time(r)),
        _at(r, received_at),
        r["kind"],
        str(_first(r, "event", "event_type", "type") or "") or None if r["kind"] == "event" else None,
        _json(r.get("detail")) if r["kind"] == "event" else None,
        str(r.get("boot_id") or "") or None,
        _num(_first(health, "temp_c", "cpu_temp_c", "temperature_c", "temperature")),
        _num(_first(health, "disk_percent", "disk_used_percent", "disk_use_percent")),
        _num(_first(health, "memory_percent", "mem_percent", "memory_used_percent")),
        _num(_first(health, "load1", "load_1", "load")),
        _json(r.get("health")),
        _json(r.get("content")),
        _json(r.get("usage")),
    )


def _at_by_seq(rows: list[tuple[Any, ...]], new: Iterable[int]) -> list[tuple[int, float]]:
    wanted = set(new)
    return [(row[1], row[4]) for row in rows if row[1] in wanted]  # (seq, at)


def month_of(t: float) -> str:
    """The month (YYYY-MM, the centre's local time) a moment falls in."""
    return time.strftime("%Y-%m", time.localtime(t))


def _facts(point_id: str, reports: list[tuple[dict[str, Any], float]]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Play counts by category and villagers' requests carried by new reports."""
    plays_rows: list[tuple[Any, ...]] = []
    asks: list[tuple[Any, ...]] = []
    for r, at in reports:
        month = month_of(at)
        usage = r.get("usage") or {}
        by_cat = _first(usage, "by_category")
        if isinstance(by_cat, dict):
            for category, c in by_cat.items():
                opens, plays = _count(c, "opens"), _count(c, "plays")
                if opens or plays:
                    plays_rows.append((point_id, r["seq"], str(category)[:64], month, opens, plays))
            mine = usage.get("local")
            if isinstance(mine, dict) and (_count(mine, "opens") or _count(mine, "plays")):
                # a row of its own, under a name no category can have (slugs have no ':')
                plays_rows.append((point_id, r["seq"], LOCAL_PLAYS, month, _count(mine, "opens"), _count(mine, "plays")))
        elif isinstance(usage, dict) and (_count(usage, "opens") or _count(usage, "plays")):
            # the box dropped the per-category split to keep the report small: keep the totals
            plays_rows.append((point_id, r["seq"], "", month, _count(usage, "opens"), _count(usage, "plays")))
        requests = r.get("requests")
        if requests is None:
            requests = usage.get("requests") if isinstance(usage, dict) else None
        for n, ask in enumerate(requests if isinstance(requests, list) else []):
            if isinstance(ask, str):
                ask = {"text": ask}
            if not isinstance(ask, dict):
                continue
            ask_at = _num(_first(ask, "at", "time", "ts"))
            ask_at = ask_at if ask_at is not None and abs(ask_at - at) < 400 * 86400 else at
            topic = str(_first(ask, "topic", "category") or "")[:64]
            text = str(_first(ask, "text", "title", "query") or "")[:500]
            # The box's own request id keeps a request re-carried in a later report from counting twice.
            rid = f"id:{ask['id']}" if ask.get("id") is not None else f"seq:{r['seq']}:{n}"
            asks.append((point_id, rid, r["seq"], ask_at, month_of(ask_at), topic, text))
    return plays_rows, asks


def _count(d: Any, key: str) -> int:
    v = d.get(key) if isinstance(d, dict) else None
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 else 0


_POINT_COLS = ("id, name, township, enrolled_at, last_seen, last_seq, last_box_time, "
               "last_health, last_content, software, county, software_state")


def _scope(text: str) -> Node | None:
    """A stored scope; one that cannot be read lets nothing through (None), never everything."""
    try:
        return Node.parse(text)
    except BadScope:
        log.warning("unreadable scope=%r", text)
        return None


def point_columns() -> str:
    """The columns `point_row` reads, for queries of points outside this module."""
    return _POINT_COLS


def point_row(row: tuple[Any, ...]) -> dict[str, Any]:
    """A point's facts from a row of `point_columns()`."""
    return _point(row)


def _point(row: tuple[Any, ...]) -> dict[str, Any]:
    health = json.loads(row[7]) if row[7] else None
    content = json.loads(row[8]) if row[8] else None
    return {
        "id": row[0],
        "name": row[1],
        "township": row[2],
        "enrolled_at": row[3],
        "last_seen": row[4],
        "last_seq": row[5],
        "last_box_time": row[6],
        "health": health,
        "content": content,
        "software": row[9],
        "county": row[10],
        "software_state": row[11],
    }
