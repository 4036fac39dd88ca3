"""Versioned schema migrations of the centre's database, with yoyo-migrations.

yoyo rather than alembic because the centre speaks plain SQL through DB-API (see db.py)
and alembic would bring SQLAlchemy for nothing. The migrations live in `migrations/`,
numbered; each runs once, in order, in a transaction, and is recorded in yoyo's own
tables. A database made before migrations existed is recognised by the first one
(`0001_baseline`, which only makes what is missing), then upgraded in place. yoyo's lock
table keeps two centre processes starting at once from migrating the same database twice.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from urllib.parse import quote

from yoyo import get_backend, read_migrations
from yoyo.migrations import MigrationList

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
LOCK_TIMEOUT_S = 600  # a migration of a large database takes minutes; a second process waits for it


def yoyo_url(url: str, schema: str = "") -> str:
    """The yoyo URL of a SQLite path or a (schema-less) PostgreSQL URL."""
    if url.startswith(("postgresql://", "postgres://")):
        rest = url.split("://", 1)[1]
        if schema:
            rest += ("&" if "?" in rest else "?") + f"schema={schema}"
        return "postgresql+psycopg://" + rest
    return "sqlite:///" + quote(str(Path(url).resolve()))


def pending(url: str, schema: str = "") -> list[str]:
    """The ids of the migrations not yet applied."""
    backend = get_backend(yoyo_url(url, schema))
    try:
        return [m.id for m in backend.to_apply(read_migrations(str(MIGRATIONS)))]
    finally:
        backend.connection.close()


def upgrade(url: str, schema: str = "") -> list[str]:
    """Apply every pending migration; return the ids applied (none when up to date)."""
    backend = get_backend(yoyo_url(url, schema))
    try:
        migrations = read_migrations(str(MIGRATIONS))
        with backend.lock(timeout=LOCK_TIMEOUT_S):
            todo = backend.to_apply(migrations)
            for m in todo:
                t0 = time.monotonic()
                backend.apply_migrations(MigrationList([m]))
                log.info("migration applied id=%s seconds=%.1f", m.id, time.monotonic() - t0)
        return [m.id for m in todo]
    finally:
        backend.connection.close()
