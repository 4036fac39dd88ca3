"""Fixtures and helpers for the centre's tests: the store on SQLite and on PostgreSQL, signed posts."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from kiosk import config as config_mod
from kiosk import wire
from tests.conftest import missing

# tools/test.sh creates this role and database (password authentication) on a fresh machine.
PG_URL = os.environ.get("KIOSK_TEST_PG_URL", "postgresql://kiosk_test:kiosk_test@127.0.0.1:5432/kiosk_test")


def pg_reachable() -> str:
    """An empty string when PostgreSQL answers, else why not."""
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return ""
    except Exception as e:  # any failure means: skip, and say why
        return f"PostgreSQL at {PG_URL} is unreachable: {e}"


def drop_schema(schema: str) -> None:
    """Remove a test's PostgreSQL schema and everything in it."""
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The centre's database: a SQLite file, or a schema of its own on the PostgreSQL server."""
    if request.param == "sqlite":
        yield str(tmp_path / "centre.sqlite")
        return
    why = pg_reachable()
    if why:
        missing(why)
    schema = f"t_{uuid.uuid4().hex[:16]}"
    yield f"{PG_URL}?schema={schema}"
    drop_schema(schema)


def centre_config(cfg_path: Path, db_url: str, **env: str) -> config_mod.Config:
    """The test configuration with the centre's database and any other overrides."""
    return config_mod.load(cfg_path, env={"KIOSK_CENTRE_DB": db_url, **env})


def report(point_id: str, seq: int, **extra: Any) -> dict[str, Any]:
    """A report as a box writes it (kiosk/wire.py)."""
    r: dict[str, Any] = {
        "v": 1, "kind": "beat", "point_id": point_id, "seq": seq, "box_time": 1_700_000_000.0 + seq,
        "clock_synced": False, "boot_id": "b1", "software": "0.1.0",
        "health": {"temp_c": 50.0 + seq % 5, "disk_percent": 40.0, "memory_percent": 30.0, "load1": 0.2},
        "content": {"items": 10, "bytes": 1000},
        "usage": {"opens": 2, "plays": 1, "by_category": {"agriculture": {"opens": 2, "plays": 1, "seconds": 30.0}}},
    }
    r.update(extra)
    return r


def signed(point_id: str, secret: str, body: bytes, ts: int) -> dict[str, str]:
    """Headers of a heartbeat POST signed as the box signs it."""
    return {
        "Authorization": wire.authorization(point_id, secret, "POST", wire.HEARTBEATS_PATH, ts, body),
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
    }


STAFF, STAFF_PASSWORD = "staff", "good password"


def staff_centre(cfg: config_mod.Config) -> Iterator[tuple[Any, Any]]:
    """A centre app on `cfg` with the staff login STAFF; yields (app, store) and closes the store."""
    from kiosk.centre.app import create_centre_app

    app = create_centre_app(cfg)
    app.config["TESTING"] = True
    store = app.extensions["centre"]["store"]
    store.set_user(STAFF, STAFF_PASSWORD)
    yield app, store
    store.close()


def page_csrf(client: Any, path: str = "/login") -> str:
    """The CSRF token in the form of the page at `path`."""
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def staff_login(client: Any) -> Any:
    """Log the test client in as STAFF; the answer to the login."""
    return client.post("/login", data={"username": STAFF, "password": STAFF_PASSWORD, "csrf_token": page_csrf(client)})


def post_batch(client: Any, point: str, secret: str, reports: list, ts: int | None = None, body: bytes | None = None) -> Any:
    """A batch of reports POSTed as the box signs it."""
    from kiosk import clock

    body = wire.encode_batch(reports) if body is None else body
    ts = int(clock.now()) if ts is None else ts
    return client.post(wire.HEARTBEATS_PATH, data=body, headers=signed(point, secret, body, ts))
