"""Local content: what the village makes (a video, photos, a PDF) becomes a package signed by the point.

`add()` checks each file (video, picture, audio or PDF, and a video that plays),
builds a package `local.<point id>.<n>` version 1 signed with the point's own key,
and ingests it through the same path as any package, so it is on the screens at once.
The built .tar stays in <data_dir>/local/outgoing until the centre has all of it;
`LocalBook` (local.sqlite) remembers each one's way up: `pending` (waiting to go),
`uploading` (bytes the centre has), `sent` (the centre has it, staff have not
decided), then `approved` or `rejected` with the reviewer's reason.

The device page's resumable browser upload lands files here first (`incoming`):
each part remembers how many bytes arrived, so a phone that drops off the Wi-Fi
resumes where it stopped.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
from pathlib import Path
from typing import IO, Any, Callable, Iterable

from kiosk import clock
from kiosk.config import Config
from kiosk.errors import KioskError, NotFound
from kiosk.library.bag import file_sha256
from kiosk.library.db import connect
from kiosk.library.mediacheck import MediaRefused, check_file
from kiosk.library.pointkey import ensure_key, local_prefix

log = logging.getLogger(__name__)

MiB = 1 << 20
STATES = ("pending", "uploading", "sent", "approved", "rejected")
DEFAULT_CATEGORY = "local"
MAX_FILES = 20
KEEP_INCOMING_S = 3 * 86400  # a phone upload left half-done for three days is given up
KEEP_DECIDED = 200  # decided entries kept for the device page; the table stays bounded
_TOKEN = re.compile(r"^[0-9a-f]{32}$")
_COPY_CHUNK = 1 << 20

SCHEMA = """
CREATE TABLE IF NOT EXISTS local (
    id TEXT PRIMARY KEY,
    n INTEGER NOT NULL UNIQUE,
    version INTEGER NOT NULL,
    title TEXT NOT NULL,
    category TEXT NOT NULL,
    digest TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    created_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    sent_bytes INTEGER NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT '',
    decided_at REAL,
    sha256 TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS incoming (
    token TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    received INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
"""


class Duplicate(KioskError, ValueError):
    """The same files were added before."""


class LocalBook:
    """The box's record of its local packages and of phone uploads in progress; thread-safe."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.root = cfg.data_dir / "local"
        (self.root / "outgoing").mkdir(parents=True, exist_ok=True)
        (self.root / "incoming").mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = connect(cfg.data_dir / "local.sqlite", "FULL")
        self._db.executescript(SCHEMA)
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(local)").fetchall()}
        if "sha256" not in columns:  # a book made before the upload remembered the package's hash
            self._db.execute("ALTER TABLE local ADD COLUMN sha256 TEXT NOT NULL DEFAULT ''")

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def __enter__(self) -> "LocalBook":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- the packages ------------------------------------------------------------------
    def package_path(self, item_id: str, version: int) -> Path:
        """Where a local package's .tar waits to go up."""
        return self.root / "outgoing" / f"{item_id}-{version}.tar"

    def entries(self, limit: int = 50) -> list[dict[str, Any]]:
        """Local packages, newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, version, title, category, size, created_at, state, sent_bytes, reason, decided_at "
                "FROM local ORDER BY n DESC LIMIT ?", (limit,)).fetchall()
        keys = ("id", "version", "title", "category", "size", "created_at", "state", "sent_bytes", "reason", "decided_at")
        return [dict(zip(keys, r)) for r in rows]

    def waiting(self) -> list[dict[str, Any]]:
        """Packages the centre does not have in full yet, oldest first."""
        return [e for e in reversed(self.entries(limit=10_000)) if e["state"] in ("pending", "uploading")]

    def undecided(self) -> list[dict[str, Any]]:
        """Packages at the centre that staff have not decided on yet."""
        return [e for e in self.entries(limit=10_000) if e["state"] == "sent"]

    def package_sha256(self, item_id: str, version: int) -> str:
        """The SHA-256 of a waiting package's .tar, read once and remembered (a 200 MB video is not hashed every round)."""
        with self._lock:
            row = self._db.execute("SELECT sha256 FROM local WHERE id = ?", (item_id,)).fetchone()
        if row and row[0]:
            return row[0]
        digest = file_sha256(self.package_path(item_id, version))
        with self._lock:
            self._db.execute("UPDATE local SET sha256 = ? WHERE id = ?", (digest, item_id))
        return digest

    def set_sent_bytes(self, item_id: str, sent: int) -> None:
        """How many bytes of a package the centre has (the upload resumes from there)."""
        with self._lock:
            self._db.execute("UPDATE local SET state = 'uploading', sent_bytes = ? WHERE id = ? AND state IN ('pending', 'uploading')",
                             (sent, item_id))

    def mark_sent(self, item_id: str) -> None:
        """The centre has all of a package: its .tar is no longer needed here."""
        with self._lock:
            row = self._db.execute("SELECT version, size FROM local WHERE id = ?", (item_id,)).fetchone()
            if row is None:
                return
            self._db.execute("UPDATE local SET state = 'sent', sent_bytes = ? WHERE id = ? AND state IN ('pending', 'uploading')",
                             (row[1], item_id))
        self.package_path(item_id, row[0]).unlink(missing_ok=True)
        log.info("event=local_sent id=%s", item_id)

    def apply_decisions(self, decisions: dict[str, Any]) -> int:
        """The centre's word on our packages ({id: {"state", "reason"}}); return how many changed."""
        changed = 0
        for item_id, d in (decisions or {}).items():
            if not isinstance(d, dict) or d.get("state") not in ("approved", "rejected"):
                continue
            reason = str(d.get("reason") or "")[:500]
            with self._lock:
                cur = self._db.execute(
                    "UPDATE local SET state = ?, reason = ?, decided_at = ? WHERE id = ? AND (state != ? OR reason != ?)",
                    (d["state"], reason, clock.now(), item_id, d["state"], reason))
            if cur.rowcount:
                changed += 1
                self.mark_sent(item_id)  # decided means the centre has it all
                log.info("event=local_decided id=%s state=%s reason=%r", item_id, d["state"], reason)
        return changed

    def summary(self) -> dict[str, Any]:
        """For `kiosk status --json` and the device page: counts by state and the newest entries."""
        with self._lock:
            counts = dict(self._db.execute("SELECT state, count(*) FROM local GROUP BY state").fetchall())
        return {"counts": {s: counts.get(s, 0) for s in STATES}, "items": self.entries(limit=20)}

    def _next_number(self) -> int:
        (n,) = self._db.execute("SELECT coalesce(max(n), 0) FROM local").fetchone()
        return int(n) + 1

    def _prune(self) -> None:
        self._db.execute(
            "DELETE FROM local WHERE state IN ('approved', 'rejected') AND n NOT IN "
            "(SELECT n FROM local WHERE state IN ('approved', 'rejected') ORDER BY n DESC LIMIT ?)", (KEEP_DECIDED,))

    # --- phone uploads (resumable) ---------------------------------------------------------
    def start_incoming(self, name: str, size: int) -> str:
        """Begin receiving one file of `size` bytes; its token."""
        if size <= 0:
            raise MediaRefused(f"{name} 是空文件", f"{name} is empty")
        limit = self.cfg.uplink.upload_max_mb * MiB
        if size > limit:
            raise MediaRefused(f"{name} 太大了（{size / MiB:.0f} MB，上限 {limit / MiB:.0f} MB）",
                               f"{name} is {size / MiB:.0f} MB, over the limit of {limit / MiB:.0f} MB")
        self._prune_incoming()
        token = secrets.token_hex(16)
        self._incoming_path(token).touch()
        with self._lock:
            self._db.execute("INSERT INTO incoming (token, name, size, created_at) VALUES (?, ?, ?, ?)",
                             (token, os.path.basename(name)[:200] or "file", size, clock.now()))
        return token

    def incoming(self, token: str) -> dict[str, Any]:
        """{"token", "name", "size", "received"} of a file being received, or NotFound."""
        if not _TOKEN.match(token or ""):
            raise NotFound("no such upload")
        with self._lock:
            row = self._db.execute("SELECT token, name, size, received FROM incoming WHERE token = ?", (token,)).fetchone()
        if row is None:
            raise NotFound("no such upload")
        # the file on disk is the truth after a power cut: a write that was not recorded counts
        have = min(self._incoming_path(token).stat().st_size, row[2])
        return {"token": row[0], "name": row[1], "size": row[2], "received": have}

    def append_incoming(self, token: str, offset: int, stream: IO[bytes], length: int) -> int:
        """Write `length` bytes from `stream` at `offset` (which must be what arrived so far); the new total."""
        info = self.incoming(token)
        if offset != info["received"]:
            raise KioskError(f"offset {offset} is not where this upload stands ({info['received']})")
        if length < 0 or offset + length > info["size"]:
            raise KioskError("more bytes than the file's size")
        path = self._incoming_path(token)
        with open(path, "r+b") as f:
            f.truncate(offset)  # a half-written piece from a dropped connection goes
            f.seek(offset)
            left = length
            while left:
                chunk = stream.read(min(_COPY_CHUNK, left))
                if not chunk:
                    break
                f.write(chunk)
                left -= len(chunk)
            f.flush()
            os.fsync(f.fileno())
            total = f.tell()
        with self._lock:
            self._db.execute("UPDATE incoming SET received = ? WHERE token = ?", (total, token))
        if left:
            raise KioskError("the connection ended before the piece was complete; resume from the offset")
        return total

    def take_incoming(self, tokens: Iterable[str]) -> list[tuple[Path, str]]:
        """The finished files of these tokens ((path, original name)); KioskError when one is not finished."""
        out = []
        for token in tokens:
            info = self.incoming(token)
            if info["received"] != info["size"]:
                raise KioskError(f"{info['name']} has not finished uploading ({info['received']} of {info['size']} bytes)")
            out.append((self._incoming_path(token), info["name"]))
        return out

    def drop_incoming(self, tokens: Iterable[str]) -> None:
        """Forget phone uploads (after they became a package, or were refused)."""
        for token in tokens:
            if _TOKEN.match(token or ""):
                self._incoming_path(token).unlink(missing_ok=True)
                with self._lock:
                    self._db.execute("DELETE FROM incoming WHERE token = ?", (token,))

    def _incoming_path(self, token: str) -> Path:
        return self.root / "incoming" / f"{token}.part"

    def _prune_incoming(self) -> None:
        cutoff = clock.now() - KEEP_INCOMING_S
        with self._lock:
            old = [r[0] for r in self._db.execute("SELECT token FROM incoming WHERE created_at < ?", (cutoff,)).fetchall()]
        self.drop_incoming(old)


def add(cfg: Config, library: Any, files: list[Path], title: str, category: str = DEFAULT_CATEGORY,
        description: str = "", names: list[str] | None = None,
        progress: Callable[[int, int, str], None] | None = None) -> dict[str, Any]:
    """Make files into a local package signed by the point, on the screens at once; {"id", "version"}.

    Bad input (no title, a file that is not video, picture, audio or PDF, a video that
    does not play, too large, the same files again) is refused before anything is stored."""
    from kiosk.library.package import build_package
    from kiosk.library.record import CATEGORY_RE, LIMITS

    title = " ".join((title or "").split())
    if not title:
        raise MediaRefused("请填写标题", "a title is needed")
    if len(title) > LIMITS["title"]:
        raise MediaRefused(f"标题太长（最多 {LIMITS['title']} 个字）", f"the title is longer than {LIMITS['title']} characters")
    category = (category or DEFAULT_CATEGORY).strip()
    if not CATEGORY_RE.match(category):
        raise MediaRefused(f"栏目 {category!r} 不对", f"category {category!r} is not a slug")
    description = (description or "").strip()[: LIMITS["description"]]
    files = [Path(f) for f in files]
    if not files:
        raise MediaRefused("请选择至少一个文件", "choose at least one file")
    if len(files) > MAX_FILES:
        raise MediaRefused(f"一次最多 {MAX_FILES} 个文件", f"at most {MAX_FILES} files at once")
    names = names or [f.name for f in files]
    limit = cfg.uplink.upload_max_mb * MiB
    checked = [check_file(f, limit) for f in files]
    total = sum(f.stat().st_size for f in files)
    if total > limit:
        raise MediaRefused(f"文件合计太大（{total / MiB:.0f} MB，上限 {limit / MiB:.0f} MB）",
                           f"the files come to {total / MiB:.0f} MB, over the limit of {limit / MiB:.0f} MB")
    digest = _digest(files)
    book = LocalBook(cfg)
    key = ensure_key(cfg)
    lock = os.open(book.root / "add.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one add at a time across processes: numbers never repeat
        with book._lock:
            dup = book._db.execute("SELECT id FROM local WHERE digest = ?", (digest,)).fetchone()
            n = book._next_number()
        if dup:
            raise Duplicate(f"这些文件已经添加过（{dup[0]}） / these files were added before as {dup[0]}")
        item_id = f"{local_prefix(cfg.point.id)}{n}"
        if len(item_id) > 64:
            raise KioskError(f"point id {cfg.point.id} is too long for local package ids")
        version = 1
        out = book.package_path(item_id, version)
        with tempfile.TemporaryDirectory(prefix=".local-", dir=book.root) as tmp:
            src = Path(tmp)
            (src / "data").mkdir()
            payload = []
            for i, (c, name) in enumerate(zip(checked, names), 1):
                rel = f"{i:02d}-{c.kind}{c.suffix}"
                shutil.copyfile(c.path, src / "data" / rel)  # a copy: the package builder refuses hard links
                payload.append((rel, c.kind))
            record = {"id": item_id, "version": version, "title": title, "description": description,
                      "category": category, "language": "zh-CN", "tags": ["本地"], "main": _main(payload),
                      "priority": 7}
            poster = next((rel for rel, kind in payload if kind == "picture"), None)
            if poster and poster != record["main"]:
                record["poster"] = poster
            (src / "kiosk.json").write_text(json.dumps(record, ensure_ascii=False, indent=1), encoding="utf-8")
            build_package(src, key, out, progress)
        outcome = library.ingest(out, source="local", progress=progress)
        if outcome.outcome != "published":
            out.unlink(missing_ok=True)
            raise KioskError(f"the box refused its own package: {outcome.reason}: {outcome.detail}")
        with book._lock:
            book._db.execute("INSERT INTO local (id, n, version, title, category, digest, size, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             (item_id, n, version, title, category, digest, out.stat().st_size, clock.now()))
            book._prune()
    finally:
        os.close(lock)
        book.close()
    log.info("event=local_added id=%s files=%d bytes=%d", item_id, len(files), total)
    return {"id": item_id, "version": version}


def _main(payload: list[tuple[str, str]]) -> str:
    """The file the screens open: a video, else a PDF, else audio, else the first picture."""
    for kind in ("video", "pdf", "audio", "picture"):
        for rel, k in payload:
            if k == kind:
                return rel
    return payload[0][0]


def _digest(files: list[Path]) -> str:
    """One hash over the files' contents in order: the same files again are a duplicate."""
    outer = hashlib.sha256()
    for f in files:
        h = hashlib.sha256()
        with open(f, "rb") as fh:
            while chunk := fh.read(_COPY_CHUNK):
                h.update(chunk)
        outer.update(h.digest())
    return outer.hexdigest()


def status(cfg: Config) -> dict[str, Any]:
    """`kiosk status --json`'s "local": counts by state and the newest local packages with their reasons."""
    if not (cfg.data_dir / "local.sqlite").exists():
        return {"counts": {s: 0 for s in STATES}, "items": []}
    with LocalBook(cfg) as book:
        return book.summary()
