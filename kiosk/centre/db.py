"""The centre's database connection: SQLite (WAL) or PostgreSQL (psycopg 3), one dialect seam.

Hand-written rather than SQLAlchemy because the centre needs only a handful of
portable statements (INSERT ... ON CONFLICT DO NOTHING RETURNING works in both
SQLite >= 3.35 and PostgreSQL), and the ingest path is hot: a thin DB-API layer
keeps it at thousands of reports a second. The differences live here alone:
placeholders (`?` vs `%s`), the autoincrement column type and connection setup.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from kiosk.centre import migrate

log = logging.getLogger(__name__)

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class Database:
    """One connection per thread to SQLite or PostgreSQL, with `?` placeholders everywhere."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_pg = url.startswith(("postgresql://", "postgres://"))
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()
        self.schema = ""
        if self.is_pg:
            self._pg_url, self.schema = _split_schema(url)
        else:
            Path(url).parent.mkdir(parents=True, exist_ok=True)
        if self.schema:
            self._create_schema()
        # the schema is versioned: every pending migration is applied before the first use
        migrate.upgrade(self._pg_url if self.is_pg else url, self.schema)

    def _create_schema(self) -> None:
        """Make the PostgreSQL schema named in the URL; another process making it at once is fine."""
        import psycopg

        with psycopg.connect(self._pg_url, autocommit=True) as conn:
            try:
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            except psycopg.errors.UniqueViolation:  # IF NOT EXISTS is not atomic: it lost a race
                pass

    # --- connections --------------------------------------------------------------
    def _connect(self) -> Any:
        if self.is_pg:
            import psycopg  # only the PostgreSQL backend needs it

            conn = psycopg.connect(self._pg_url, autocommit=True)
            if self.schema:
                conn.execute(f'SET search_path TO "{self.schema}"')
        else:
            # autocommit mode; transactions are opened explicitly with BEGIN IMMEDIATE so
            # concurrent writers queue on the busy timeout instead of failing to upgrade a lock.
            conn = sqlite3.connect(self.url, isolation_level=None, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
        with self._lock:
            self._all.append(conn)
        return conn

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or (self.is_pg and conn.closed):
            conn = self._local.conn = self._connect()
        return conn

    def close(self) -> None:
        """Close every connection this object opened."""
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()
        self._local = threading.local()

    # --- statements -----------------------------------------------------------------
    def sql(self, statement: str) -> str:
        """The statement in this backend's placeholder style."""
        # psycopg reads every % as a placeholder: a literal one (LIKE 'x-%') is doubled
        return statement.replace("%", "%%").replace("?", "%s") if self.is_pg else statement

    def vacuum(self, table: str) -> None:
        """VACUUM ANALYZE a table after a bulk load (outside any transaction, as both backends need)."""
        if self.is_pg:
            self._conn().execute(f"VACUUM ANALYZE {table}")
        else:
            self._conn().execute(f"ANALYZE {table}")

    def floor_int(self, expr: str) -> str:
        """SQL for the whole number at or below a (non-negative) expression, on either backend."""
        # PostgreSQL's CAST rounds; SQLite's truncates, which is the floor for what we pass
        return f"CAST(FLOOR({expr}) AS INTEGER)" if self.is_pg else f"CAST({expr} AS INTEGER)"

    def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """Bulk-load rows (PostgreSQL COPY, else batched INSERTs in one transaction); return how many."""
        n = 0
        if self.is_pg:
            conn = self._conn()
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                        n += 1
            return n
        statement = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        with self.transaction() as cur:
            batch: list[Sequence[Any]] = []
            for row in rows:
                batch.append(row)
                if len(batch) >= 10000:
                    cur.executemany(statement, batch)
                    n += len(batch)
                    batch = []
            cur.executemany(statement, batch)
            n += len(batch)
        return n

    @contextlib.contextmanager
    def transaction(self) -> Iterator["Cursor"]:
        """A write transaction; committed when the block ends, rolled back on error."""
        conn = self._conn()
        if self.is_pg:
            try:
                with conn.transaction():
                    with conn.cursor() as cur:
                        yield Cursor(self, cur)
            except Exception:
                self._drop_if_broken(conn)
                raise
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield Cursor(self, conn.cursor())
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only statement."""
        conn = self._conn()
        if self.is_pg:
            try:
                with conn.cursor() as cur:
                    cur.execute(self.sql(statement), params)
                    return cur.fetchall()
            except Exception:
                self._drop_if_broken(conn)
                raise
        return conn.execute(statement, params).fetchall()

    def _drop_if_broken(self, conn: Any) -> None:
        """Forget a PostgreSQL connection that broke (server restarted), so the next call reconnects."""
        if getattr(conn, "broken", False) or conn.closed:
            with contextlib.suppress(Exception):
                conn.close()
            if getattr(self._local, "conn", None) is conn:
                self._local.conn = None
            with self._lock:
                if conn in self._all:
                    self._all.remove(conn)

    def one(self, statement: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """The first row of a read-only statement, or None."""
        rows = self.query(statement, params)
        return rows[0] if rows else None


class Cursor:
    """A cursor inside a transaction that speaks `?` placeholders on both backends."""

    def __init__(self, db: Database, cur: Any) -> None:
        self.db = db
        self.cur = cur

    def execute(self, statement: str, params: Sequence[Any] = ()) -> "Cursor":
        """Run one statement."""
        self.cur.execute(self.db.sql(statement), params)
        return self

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for many rows."""
        if rows:
            self.cur.executemany(self.db.sql(statement), rows)

    def fetchall(self) -> list[tuple[Any, ...]]:
        """Rows of the last statement."""
        return self.cur.fetchall()

    def fetchone(self) -> tuple[Any, ...] | None:
        """The next row of the last statement."""
        return self.cur.fetchone()

    @property
    def rowcount(self) -> int:
        return self.cur.rowcount


def _split_schema(url: str) -> tuple[str, str]:
    """Take our own `schema=` query parameter off a PostgreSQL URL (libpq does not know it)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = ""
    rest = []
    for key, value in query:
        if key == "schema":
            schema = value
        else:
            rest.append((key, value))
    if schema and not _SCHEMA_NAME.fullmatch(schema):
        from kiosk.errors import ConfigError

        raise ConfigError(f"centre.db: schema {schema!r} must be lower-case letters, digits and _")
    return urlunsplit(parts._replace(query=urlencode(rest))), schema
