"""The catalogue: SQLite (WAL) index of what the store holds, with full-text search.

The store on disk is the truth; this file is an index of it that can be rebuilt
(see Library's recovery). One connection per thread, since the web server calls
from many threads and an sqlite3 connection must not be shared between them.
Writes use synchronous=FULL: ingests are rare, and a commit that survives a power
cut keeps the catalogue and the store in step.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from kiosk import clock
from kiosk.library import hanzi, search
from kiosk.library.model import CATEGORIES, FileEntry, Item
from kiosk.library.db import connect

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3  # 3: the words table of the on-screen pinyin keyboard
HISTORY_KEEP = 1000  # ingest outcomes kept for the device page (bounded table)
MAX_RESULTS = 1000  # a search pages through at most this many results
SEARCH_POOL = 100  # rows fetched per ranking stage, a multiple of it, so pages stay in one order

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    n INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    version INTEGER NOT NULL,
    kind TEXT NOT NULL DEFAULT 'item',
    title TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    category TEXT NOT NULL DEFAULT 'other',
    language TEXT NOT NULL DEFAULT 'zh-CN',
    tags TEXT NOT NULL DEFAULT '[]',
    main TEXT NOT NULL DEFAULT '',
    poster TEXT,
    priority INTEGER NOT NULL DEFAULT 5,
    expires TEXT,
    published_at REAL NOT NULL,
    pinned INTEGER NOT NULL DEFAULT 0,
    last_opened REAL,
    size INTEGER NOT NULL DEFAULT 0,
    title_py TEXT NOT NULL DEFAULT '',
    title_ini TEXT NOT NULL DEFAULT '',
    expired_noted INTEGER NOT NULL DEFAULT 0,
    narration TEXT
);
CREATE INDEX IF NOT EXISTS items_shelf ON items(kind, category, published_at DESC, expires);
CREATE INDEX IF NOT EXISTS items_new ON items(kind, published_at DESC, expires);
CREATE TABLE IF NOT EXISTS files (
    n INTEGER NOT NULL REFERENCES items(n) ON DELETE CASCADE,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    media_type TEXT NOT NULL,
    PRIMARY KEY (n, path)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS withdrawn (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    recall TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    source TEXT NOT NULL,
    outcome TEXT NOT NULL,
    id TEXT,
    version INTEGER,
    reason TEXT,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS words (
    py TEXT NOT NULL,
    ini TEXT NOT NULL,
    word TEXT NOT NULL,
    n INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS words_py ON words(py);
CREATE INDEX IF NOT EXISTS words_ini ON words(ini);
CREATE INDEX IF NOT EXISTS words_n ON words(n);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
-- items published before pinyin could be read at once: index_pinyin() fills their pinyin in
CREATE TABLE IF NOT EXISTS pinyin_pending (n INTEGER PRIMARY KEY);
INSERT OR IGNORE INTO meta (k, v) VALUES ('generation', 0);
"""

_ITEM_COLS = (
    "n, id, version, kind, title, description, category, language, tags, main, poster, priority, "
    "expires, published_at, pinned, last_opened, size, title_py, title_ini, narration"
)


def today() -> str:
    """The box's local date as YYYY-MM-DD (expiry is by the local calendar)."""
    return time.strftime("%Y-%m-%d", time.localtime(clock.now()))


def shelf(category: str) -> str:
    """The screens' shelf for a category slug: one of CATEGORIES or "other"."""
    return category if category in CATEGORIES else "other"


class Catalogue:
    """The SQLite index of published items, recalls and ingest history."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[sqlite3.Connection] = []
        self._cache: dict[tuple[Any, ...], Any] = {}
        db = self.conn()
        db.executescript(_SCHEMA)  # IF NOT EXISTS throughout; executescript commits on its own
        if "narration" not in {r[1] for r in db.execute("PRAGMA table_info(items)")}:
            db.execute("ALTER TABLE items ADD COLUMN narration TEXT")  # a catalogue from before recorded narration
        if db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            self._reindex()

    def _reindex(self) -> None:
        """(Re)build the search index from the items table (new file, or a new tokenising scheme)."""
        with self.write() as db:
            db.execute("DROP TABLE IF EXISTS items_fts")
            db.execute("DELETE FROM words")
            db.execute("CREATE VIRTUAL TABLE items_fts USING fts5(t, d, pf, pi, pi1, tokenize = 'unicode61 remove_diacritics 0')")
            for r in db.execute("SELECT n, title, description, tags FROM items WHERE kind = 'item'").fetchall():
                self._index(db, r["n"], r["title"], r["description"], json.loads(r["tags"]))
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _index(self, db: sqlite3.Connection, n: int, title: str, description: str, tags: list[str], with_pinyin: bool = True) -> None:
        doc = search.document(title, description, tags, with_pinyin)
        db.execute("INSERT INTO items_fts (rowid, t, d, pf, pi, pi1) VALUES (?,?,?,?,?,?)", (n, doc.t, doc.d, doc.pf, doc.pi, doc.pi1))
        if with_pinyin:
            db.executemany("INSERT INTO words (py, ini, word, n) VALUES (?,?,?,?)", [(py, ini, w, n) for w, py, ini in hanzi.words_of(title, tags)])
        else:
            db.execute("INSERT OR IGNORE INTO pinyin_pending (n) VALUES (?)", (n,))

    def pinyin_pending(self) -> int:
        """Items whose pinyin is still to be indexed."""
        return self.conn().execute("SELECT count(*) FROM pinyin_pending").fetchone()[0]

    def index_pinyin(self) -> int:
        """Fill in the pinyin (index columns and words) of items published without it; return how many.

        Read outside any transaction (the child may still be loading its dictionary), then
        written in one; an item replaced meanwhile is left for its own indexing."""
        rows = self.conn().execute(
            "SELECT p.n, i.title, i.description, i.tags FROM pinyin_pending p JOIN items i ON i.n = p.n").fetchall()
        if not rows:
            return 0
        done = []
        for r in rows:
            tags = json.loads(r["tags"] or "[]")
            done.append((r["n"], search.title_pinyin(r["title"]), search.document(r["title"], r["description"], tags),
                         hanzi.words_of(r["title"], tags)))
        with self.write() as db:
            for n, (py, ini), doc, words in done:
                if db.execute("DELETE FROM pinyin_pending WHERE n = ?", (n,)).rowcount:
                    db.execute("UPDATE items SET title_py = ?, title_ini = ? WHERE n = ?", (py, ini, n))
                    db.execute("UPDATE items_fts SET pf = ?, pi = ?, pi1 = ? WHERE rowid = ?", (doc.pf, doc.pi, doc.pi1, n))
                    db.execute("DELETE FROM words WHERE n = ?", (n,))
                    db.executemany("INSERT INTO words (py, ini, word, n) VALUES (?,?,?,?)", [(wp, wi, w, n) for w, wp, wi in words])
            db.execute("UPDATE meta SET v = v + 1 WHERE k = 'generation'")
        return len(done)

    def generation(self) -> int:
        """A number that changes with every change of what the screens can see."""
        return self.conn().execute("SELECT v FROM meta WHERE k = 'generation'").fetchone()[0]

    def _cached(self, key: tuple[Any, ...], make: Any) -> Any:
        full = (*key, self.generation(), today())
        if full not in self._cache:
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[full] = make()
        return self._cache[full]

    # --- connections -------------------------------------------------------------
    def conn(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = connect(self.path, "FULL")
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA foreign_keys = ON")
            db.execute("PRAGMA busy_timeout = 30000")
            self._local.db = db
            with self._lock:
                self._conns.append(db)
        return db

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE ... COMMIT, rolled back on error)."""
        db = self.conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            conns, self._conns = self._conns, []
        for db in conns:
            try:
                db.close()
            except sqlite3.Error:
                pass
        self._local = threading.local()

    # --- writing ---------------------------------------------------------------------
    def put(self, db: sqlite3.Connection, record: Any, files: Sequence[FileEntry], published_at: float, kind: str = "item",
            with_pinyin: bool = True) -> None:
        """Insert or replace (one transaction, the caller's) the row of `record.id`; pinyin later when not `with_pinyin`."""
        old = db.execute("SELECT n, pinned, last_opened FROM items WHERE id = ?", (record.id,)).fetchone()
        pinned, last_opened = (old["pinned"], old["last_opened"]) if old else (0, None)
        if old:
            self._delete_n(db, old["n"])
        tags = list(record.tags or ())
        title = record.title or ""
        py, ini = search.title_pinyin(title) if with_pinyin else ("", "")
        expires = str(record.expires)[:10] if record.expires else None
        cur = db.execute(
            "INSERT INTO items (id, version, kind, title, description, category, language, tags, main, poster, "
            "priority, expires, published_at, pinned, last_opened, size, title_py, title_ini, narration) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                record.id, record.version, kind, title, record.description or "", shelf(record.category or ""),
                record.language or "zh-CN", json.dumps(tags, ensure_ascii=False), record.main or "", record.poster,
                record.priority, expires, published_at, pinned, last_opened, sum(f.size for f in files), py, ini,
                record.narration,
            ),
        )
        n = cur.lastrowid
        db.executemany(
            "INSERT INTO files (n, path, size, sha256, media_type) VALUES (?,?,?,?,?)",
            [(n, f.path, f.size, f.sha256, f.media_type) for f in files],
        )
        if kind == "item":
            self._index(db, n, title, record.description or "", tags, with_pinyin)
        db.execute("UPDATE meta SET v = v + 1 WHERE k = 'generation'")

    def _delete_n(self, db: sqlite3.Connection, n: int) -> None:
        db.execute("UPDATE meta SET v = v + 1 WHERE k = 'generation'")
        db.execute("DELETE FROM items_fts WHERE rowid = ?", (n,))
        db.execute("DELETE FROM words WHERE n = ?", (n,))
        db.execute("DELETE FROM pinyin_pending WHERE n = ?", (n,))
        db.execute("DELETE FROM files WHERE n = ?", (n,))
        db.execute("DELETE FROM items WHERE n = ?", (n,))

    def remove(self, db: sqlite3.Connection, item_id: str) -> bool:
        """Delete an item's row (in the caller's transaction); True when there was one."""
        row = db.execute("SELECT n FROM items WHERE id = ?", (item_id,)).fetchone()
        if row:
            self._delete_n(db, row["n"])
        return row is not None

    def withdraw(self, db: sqlite3.Connection, item_id: str, version: int, recall: str, at: float) -> None:
        """Remember that versions up to `version` of `item_id` are withdrawn."""
        db.execute(
            "INSERT INTO withdrawn (id, version, recall, at) VALUES (?,?,?,?) "
            "ON CONFLICT(id) DO UPDATE SET version = max(version, excluded.version), recall = excluded.recall, at = excluded.at",
            (item_id, version, recall, at),
        )

    def record_outcome(self, outcome: Any, at: float) -> None:
        """Append an ingest outcome to the bounded history.

        Committed without an fsync of its own (synchronous=NORMAL for this transaction):
        a power cut may cost the history its last lines, never the catalogue, and the next
        FULL commit syncs them too. One fsync less per package (about 5 ms here)."""
        db = self.conn()
        db.execute("PRAGMA synchronous = NORMAL")
        try:
            with self.write() as db:
                db.execute(
                    "INSERT INTO history (at, source, outcome, id, version, reason, detail) VALUES (?,?,?,?,?,?,?)",
                    (at, outcome.source, outcome.outcome, outcome.id, outcome.version, outcome.reason, outcome.detail),
                )
                db.execute("DELETE FROM history WHERE seq <= (SELECT max(seq) FROM history) - ?", (HISTORY_KEEP,))
        finally:
            db.execute("PRAGMA synchronous = FULL")

    # --- reading ---------------------------------------------------------------------
    def row(self, item_id: str) -> sqlite3.Row | None:
        """The row of an id (any kind, visible or not)."""
        return self.conn().execute(f"SELECT {_ITEM_COLS} FROM items WHERE id = ?", (item_id,)).fetchone()

    def withdrawn_version(self, item_id: str) -> int | None:
        """The highest withdrawn version of an id, or None."""
        row = self.conn().execute("SELECT version FROM withdrawn WHERE id = ?", (item_id,)).fetchone()
        return row[0] if row else None

    def keys(self) -> set[tuple[str, int]]:
        """Every (id, version) the catalogue holds, as plain tuples (cheap for 100,000)."""
        cur = self.conn().cursor()
        cur.row_factory = None
        return set(cur.execute("SELECT id, version FROM items"))

    def rows(self) -> list[sqlite3.Row]:
        """Every row: id, version, kind (for recovery and eviction)."""
        return self.conn().execute(
            "SELECT n, id, version, kind, priority, expires, pinned, last_opened, published_at, size FROM items"
        ).fetchall()

    def files(self, ns: Sequence[int]) -> dict[int, list[FileEntry]]:
        """The files of the given rows."""
        out: dict[int, list[FileEntry]] = {n: [] for n in ns}
        if not ns:
            return out
        marks = ",".join("?" * len(ns))
        for r in self.conn().execute(f"SELECT n, path, size, sha256, media_type FROM files WHERE n IN ({marks}) ORDER BY n, path", list(ns)):
            out[r["n"]].append(FileEntry(r["path"], r["size"], r["sha256"], r["media_type"]))
        return out

    def _items(self, rows: Sequence[sqlite3.Row]) -> list[Item]:
        files = self.files([r["n"] for r in rows])
        return [
            Item(
                id=r["id"], version=r["version"], title=r["title"], description=r["description"], category=r["category"],
                language=r["language"], tags=tuple(json.loads(r["tags"])), main=r["main"], poster=r["poster"],
                priority=r["priority"], expires=r["expires"], published_at=r["published_at"], pinned=bool(r["pinned"]),
                files=tuple(files[r["n"]]), narration=r["narration"],
            )
            for r in rows
        ]

    def visible(self, item_id: str) -> Item | None:
        """One visible item."""
        rows = self.conn().execute(
            f"SELECT {_ITEM_COLS} FROM items WHERE id = ? AND kind = 'item' AND (expires IS NULL OR expires >= ?)",
            (item_id, today()),
        ).fetchall()
        return self._items(rows)[0] if rows else None

    def listing(self, category: str | None, limit: int, offset: int) -> list[Item]:
        """Visible items, newest first."""
        where, args = "kind = 'item' AND (expires IS NULL OR expires >= ?)", [today()]
        if category:
            where += " AND category = ?"
            args.append(category)
        rows = self.conn().execute(
            f"SELECT {_ITEM_COLS} FROM items WHERE {where} ORDER BY published_at DESC, n DESC LIMIT ? OFFSET ?",
            [*args, limit, offset],
        ).fetchall()
        return self._items(rows)

    def search(self, q: str, category: str | None, limit: int, offset: int) -> list[Item]:
        """Visible items matching `q`: titles starting with it, then titles holding it, then the rest."""
        query = search.parse_query(q)
        need = min(offset + limit, MAX_RESULTS)
        pool = -(-max(need, 1) // SEARCH_POOL) * SEARCH_POOL
        where, args = "kind = 'item' AND (expires IS NULL OR expires >= ?)", [today()]
        if category:
            where += " AND category = ?"
            args.append(category)
        cols = ", ".join("items." + c.strip() for c in _ITEM_COLS.split(","))
        found: list[sqlite3.Row] = []
        seen: set[int] = set()
        for expr in (query.start, query.title, query.anywhere):
            if expr is None or len(found) >= pool:
                continue
            # rowid order (newest first) lets FTS5 stop early; no relevance score over every match
            try:
                rows = self.conn().execute(
                    f"SELECT {cols} FROM items_fts JOIN items ON items.n = items_fts.rowid "
                    f"WHERE items_fts MATCH ? AND {where} ORDER BY items_fts.rowid DESC LIMIT ?",
                    [expr, *args, pool + len(found)],
                ).fetchall()
            except sqlite3.OperationalError as e:  # a query FTS5 cannot parse finds nothing, calmly
                log.warning("event=search_failed q=%r expr=%r error=%s", q, expr, e)
                continue
            fresh = [r for r in rows if r["n"] not in seen]
            fresh.sort(key=lambda r: (search.tier(q, r["title"], r["title_py"], r["title_ini"]), -r["n"]))
            for r in fresh[: pool - len(found)]:
                seen.add(r["n"])
                found.append(r)
        return self._items(found[offset : offset + limit])

    def words(self, letters: str, limit: int) -> list[tuple[str, str]]:
        """(word, pinyin) of titles and tags whose pinyin or initials start with `letters`: whole matches, then the most used."""
        hi = letters + "{"  # just after every string that starts with `letters` ("{" follows "z")
        rows = self.conn().execute(
            "SELECT word, py, 0 AS by_ini FROM (SELECT word, py FROM words WHERE py >= ? AND py < ? LIMIT 2000) "
            "UNION ALL SELECT word, py, 1 FROM (SELECT word, py FROM words WHERE ini >= ? AND ini < ? LIMIT 2000)",
            (letters, hi, letters, hi),
        ).fetchall()
        counts: dict[tuple[str, str], list[int]] = {}
        for r in rows:
            c = counts.setdefault((r["word"], r["py"]), [0, r["by_ini"]])
            c[0] += 1
            c[1] = min(c[1], r["by_ini"])
        ranked = sorted(counts.items(), key=lambda kv: (kv[0][1] != letters, kv[1][1], -kv[1][0], len(kv[0][0])))
        return [key for key, _ in ranked[:limit]]

    def categories(self) -> list[dict[str, Any]]:
        """Counts and newest publication time per shelf, visible items only (cached until a change)."""
        return [dict(c) for c in self._cached(("categories",), self._categories)]

    def _categories(self) -> list[dict[str, Any]]:
        rows = self.conn().execute(
            "SELECT category, count(*) AS c, max(published_at) AS newest FROM items "
            "WHERE kind = 'item' AND (expires IS NULL OR expires >= ?) GROUP BY category",
            (today(),),
        ).fetchall()
        order = {slug: i for i, slug in enumerate((*CATEGORIES, "other"))}
        return sorted(
            ({"slug": r["category"], "count": r["c"], "newest": r["newest"]} for r in rows),
            key=lambda c: order.get(c["slug"], len(order)),
        )

    def file_entry(self, item_id: str, version: int, path: str) -> FileEntry | None:
        """A visible item's file entry."""
        r = self.conn().execute(
            "SELECT f.path, f.size, f.sha256, f.media_type FROM items i JOIN files f ON f.n = i.n "
            "WHERE i.id = ? AND i.version = ? AND f.path = ? AND i.kind = 'item' AND (i.expires IS NULL OR i.expires >= ?)",
            (item_id, version, path, today()),
        ).fetchone()
        return FileEntry(r["path"], r["size"], r["sha256"], r["media_type"]) if r else None

    def totals(self) -> tuple[int, int]:
        """(visible items, bytes of every stored package), cached until a change."""
        return self._cached(("totals",), self._totals)

    def _totals(self) -> tuple[int, int]:
        db = self.conn()
        n = db.execute("SELECT count(*) FROM items WHERE kind = 'item' AND (expires IS NULL OR expires >= ?)", (today(),)).fetchone()[0]
        size = db.execute("SELECT coalesce(sum(size), 0) FROM items").fetchone()[0]
        return n, size

    def last_published(self) -> float | None:
        """When the last package was published."""
        return self.conn().execute("SELECT max(at) FROM history WHERE outcome = 'published'").fetchone()[0]

    def history(self, limit: int) -> list[dict[str, Any]]:
        """The latest ingest outcomes, newest first."""
        rows = self.conn().execute(
            "SELECT at, source, outcome, id, version, reason, detail FROM history ORDER BY seq DESC LIMIT ?", (limit,)
        ).fetchall()
        return [dict(r) for r in rows]

    def newly_expired(self) -> list[str]:
        """Ids past expiry not reported before; marks them reported."""
        with self.write() as db:
            ids = [r[0] for r in db.execute(
                "SELECT id FROM items WHERE kind = 'item' AND expires IS NOT NULL AND expires < ? AND expired_noted = 0", (today(),)
            )]
            db.execute("UPDATE items SET expired_noted = 1 WHERE kind = 'item' AND expires IS NOT NULL AND expires < ?", (today(),))
        return ids

    def mark_opened(self, item_id: str, at: float) -> None:
        """Remember when an item was last opened."""
        with self.write() as db:
            db.execute("UPDATE items SET last_opened = ? WHERE id = ?", (at, item_id))

    def set_pinned(self, item_id: str, pinned: bool) -> bool:
        """Pin or release an item; False when there is no such item."""
        with self.write() as db:
            return db.execute("UPDATE items SET pinned = ? WHERE id = ? AND kind = 'item'", (int(pinned), item_id)).rowcount > 0


def check(path: Path) -> bool:
    """True when the catalogue file opens and passes PRAGMA integrity_check."""
    try:
        db = sqlite3.connect(path, timeout=30.0)
        try:
            ok = db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            db.execute("SELECT count(*) FROM items").fetchone()
            return ok
        finally:
            db.close()
    except sqlite3.DatabaseError as e:
        log.warning("event=catalogue_damaged path=%s error=%s", path, e)
        return False
