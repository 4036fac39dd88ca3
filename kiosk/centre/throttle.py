"""The staff login limiter: back-off per user and address, counted in the store.

Every attempt is counted before the password is checked, in one transaction of the store,
so guesses sent in parallel (or to several centre processes on one database) cannot get
past the limit, and a refused attempt costs no password hash. Three counters, each with
its own free failures before waits start doubling (1 s, 2 s, 4 s ... at most 15 minutes):

- the user name from this address: 5, so a guesser is slowed at once;
- the address, whatever the user name: 20, so one address cannot try many names;
- the user name from anywhere: 100, so many addresses cannot share out the guessing.

A stranger who fails from another address never makes the user's own address wait (only
the third counter is shared, and it needs 100 failures in 15 minutes before it delays
anyone). A right password clears the first counter and takes its attempt off the others.
Failures older than WINDOW_S are forgotten.
"""

from __future__ import annotations

import math
from typing import Any

from kiosk.centre.store import Store

WINDOW_S = 900.0
MAX_WAIT_S = 900.0
FREE = {"pair": 5, "address": 20, "user": 100}


def keys(username: str, address: str) -> dict[str, str]:
    """The counters one attempt touches."""
    user = username.strip().lower()[:128]
    return {"pair": f"pair:{user}@{address}", "address": f"address:{address}", "user": f"user:{user}"}


def wait_after(kind: str, fails: int) -> float:
    """Seconds the next attempt must wait after `fails` failures on a counter of this kind."""
    over = fails - FREE[kind]
    return 0.0 if over < 0 else min(MAX_WAIT_S, 2.0 ** min(over, 20))


def begin(store: Store, counters: dict[str, str], now: float) -> float:
    """Count an attempt on every counter; or, while one of them must wait, the seconds left (nothing counted)."""
    db = store.db
    with db.transaction() as cur:
        cur.execute("DELETE FROM login_throttle WHERE last_at < ? AND wait_until < ?", (now - WINDOW_S, now))
        for key in counters.values():
            cur.execute(
                "INSERT INTO login_throttle (key, fails, last_at, wait_until) VALUES (?, 0, ?, 0) ON CONFLICT (key) DO NOTHING",
                (key, now),
            )
        marks = ",".join("?" * len(counters))
        lock = " FOR UPDATE" if db.is_pg else ""  # SQLite's BEGIN IMMEDIATE already holds the write lock
        rows = {r[0]: r for r in cur.execute(
            f"SELECT key, fails, last_at, wait_until FROM login_throttle WHERE key IN ({marks}){lock}",
            list(counters.values()),
        ).fetchall()}
        wait = max(float(rows[k][3]) - now for k in counters.values())
        if wait > 0:
            return float(math.ceil(wait))
        for kind, key in counters.items():
            _key, fails, last_at, _until = rows[key]
            fails = 1 if now - float(last_at) > WINDOW_S else int(fails) + 1
            wait = wait_after(kind, fails)
            # 0 when there is nothing to wait for: an attempt that read the clock a moment
            # before this one but got the lock after it must not see a wait
            cur.execute(
                "UPDATE login_throttle SET fails = ?, last_at = ?, wait_until = ? WHERE key = ?",
                (fails, now, now + wait if wait else 0.0, key),
            )
    return 0.0


def succeeded(store: Store, counters: dict[str, str]) -> None:
    """A right password: forget this user's failures from this address, take the attempt off the others."""
    with store.db.transaction() as cur:
        cur.execute("DELETE FROM login_throttle WHERE key = ?", (counters["pair"],))
        for kind in ("address", "user"):
            cur.execute(
                "UPDATE login_throttle SET fails = fails - 1 WHERE key = ? AND fails > 0", (counters[kind],)
            )


def table(store: Store) -> list[tuple[Any, ...]]:
    """Every counter (for checks and tests)."""
    return store.db.query("SELECT key, fails, last_at, wait_until FROM login_throttle ORDER BY key")
