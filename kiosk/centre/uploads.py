"""Local content coming up from the points: a resumable upload, checks, and the staff's review.

A point's package arrives in pieces (see docs/uplink.md, "Local content upload"):
`begin` opens or resumes an upload and says how many bytes the centre has; `append`
takes the next piece at exactly that offset. Every request is signed with the
point's HMAC secret like a heartbeat, over the method, the path with its query
(which carries the offset) and the piece's SHA-256, within MAX_SKEW_S of the
centre's clock; a request whose signature was already used is refused as a replay.

When the last byte is in, the whole file must match the SHA-256 the point declared
and be a package signed by that point's own key (sent in its heartbeats) with an id
`local.<point>.<n>`; then the upload is `pending` for review, else it is refused
and nothing of it is kept. A USB disk's copy (`take_file`) passes the same checks.
Approval re-signs the package with the centre's publisher key and lists it in the
package index (with `targets.townships` when chosen); rejection keeps the reason,
which reaches the point with its next acknowledgement.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from kiosk import clock, wire
from kiosk.centre import ingest
from kiosk.centre.store import Store
from kiosk.config import Config
from kiosk.library.bag import file_sha256
from kiosk.errors import KioskError, NotFound, PackageRejected

log = logging.getLogger(__name__)

UPLOADS_PATH = "/api/v1/uploads"
STATES = ("receiving", "pending", "approved", "rejected")
MAX_PIECE_BYTES = 4 * 1024 * 1024  # the box sends 256 KiB; a piece is held in memory until its signature is checked
NEWS_DAYS = 30  # decisions ride along with a point's acknowledgements this long
_LOCAL_ID = re.compile(r"^local\.([a-z0-9._-]+)\.(\d{1,9})$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
_COLS = ("id", "version", "point", "state", "size", "sha256", "received", "title", "category", "description",
         "created_at", "completed_at", "decided_at", "decided_by", "reason", "townships")


@dataclass
class Refusal(Exception):
    """An upload request refused: HTTP status, a code and a plain sentence."""

    status: int
    error: str
    detail: str
    extra: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "detail": self.detail, "server_time": int(clock.now()), **self.extra}


def node_of(upload: dict[str, Any]) -> Any:
    """The tree node (county, township) of the point an upload came from."""
    from kiosk.centre.tree import Node

    county = upload.get("county") or None
    return Node(county, (upload.get("township") or None) if county else None)


def point_of(item_id: str) -> str | None:
    """The point a local package id belongs to (local.<point>.<n>), or None."""
    m = _LOCAL_ID.match(item_id or "")
    return m.group(1) if m else None


class Uploads:
    """The centre's uploads: received files under <data_dir>/uploads, their rows in the store."""

    def __init__(self, cfg: Config, store: Store) -> None:
        self.cfg = cfg
        self.store = store
        self.dir = Path(cfg.data_dir) / "uploads"
        self.max_bytes = cfg.uplink.upload_max_mb * 1024 * 1024

    # --- point keys (from heartbeats) -----------------------------------------------------
    def note_key(self, point_id: str, key: str) -> None:
        """Remember the public key a point's heartbeat carried (the latest one counts)."""
        row = self.store.db.one("SELECT key FROM point_keys WHERE point = ?", (point_id,))
        if row and row[0] == key:
            return
        with self.store.db.transaction() as cur:
            cur.execute("INSERT INTO point_keys (point, key, seen_at) VALUES (?, ?, ?) "
                        "ON CONFLICT (point) DO UPDATE SET key = excluded.key, seen_at = excluded.seen_at",
                        (point_id, key, clock.now()))
        log.info("point key noted point=%s", point_id)

    def _own_key(self, point_id: str) -> Any:
        from kiosk.library.package import OwnKey
        from kiosk.library.pointkey import local_prefix
        from kiosk.library.signing import public_key_from_raw

        row = self.store.db.one("SELECT key FROM point_keys WHERE point = ?", (point_id,))
        if row is None:
            return None
        return OwnKey(local_prefix(point_id), public_key_from_raw(row[0]))

    # --- receiving over the line -------------------------------------------------------------
    def authenticate(self, authorization: str | None, method: str, signed_path: str, body: bytes) -> tuple[str, str]:
        """(point id, signature) of a correctly signed, fresh request, or Refusal 401."""
        now = clock.now()
        try:
            point_id, ts, sig = wire.parse_authorization(authorization)
        except wire.WireError as e:
            raise Refusal(401, "auth", str(e)) from None
        if ingest.point_secret(self.store, method, signed_path, point_id, ts, body, sig) is None:
            raise Refusal(401, "signature", ingest.NOT_SIGNED)
        if abs(ts - now) > wire.MAX_SKEW_S:
            raise Refusal(401, "clock", f"timestamp {ts} is more than {wire.MAX_SKEW_S} s from the centre's clock")
        return point_id, sig

    def begin(self, point_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """Open or resume an upload: {"id", "version", "offset", "state", "reason"}."""
        item_id, version = request.get("id"), request.get("version")
        size, sha = request.get("size"), request.get("sha256")
        if not isinstance(item_id, str) or point_of(item_id) != point_id:
            raise Refusal(403, "not_yours", f"point {point_id} may upload only its own local.{point_id}.<n> packages")
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version < 2**31:
            raise Refusal(400, "bad_request", "version must be a whole number >= 1")
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise Refusal(400, "bad_request", "size must be a whole number > 0")
        if not isinstance(sha, str) or not _SHA.match(sha):
            raise Refusal(400, "bad_request", "sha256 must be 64 hex digits")
        if size > self.max_bytes:
            raise Refusal(413, "too_large", f"{size} bytes is over the centre's cap of {self.cfg.uplink.upload_max_mb} MB")
        row = self._row(item_id)
        if row is not None:
            if row["version"] != version or row["sha256"] != sha or row["size"] != size:
                raise Refusal(409, "duplicate", f"{item_id} was already uploaded with other content")
            return self._answer(row)
        if self._own_key(point_id) is None:  # said before any byte is sent; the box tries again after a heartbeat
            raise Refusal(409, "no_point_key", f"point {point_id} has not sent its key yet (it travels in its heartbeats)")
        with self.store.db.transaction() as cur:
            cur.execute("INSERT INTO uploads (id, version, point, state, size, sha256, received, created_at) "
                        "VALUES (?, ?, ?, 'receiving', ?, ?, 0, ?) ON CONFLICT (id) DO NOTHING",
                        (item_id, version, point_id, size, sha, clock.now()))
        self.dir.mkdir(parents=True, exist_ok=True)
        self._part(item_id).touch()
        log.info("upload begun point=%s id=%s size=%d", point_id, item_id, size)
        return self._answer(self._row(item_id))

    def append(self, point_id: str, item_id: str, offset: int, piece: bytes, sig: str) -> dict[str, Any]:
        """Write the next piece at `offset`; when it is the last, check the whole package."""
        row = self._row(item_id)
        if row is None or row["point"] != point_id:
            raise Refusal(404, "no_upload", f"no upload {item_id} from point {point_id}; begin it first")
        if row["state"] != "receiving":
            return self._answer(row)
        if self._last_sig(item_id) == sig:
            raise Refusal(409, "replayed", "this piece was already received (a replayed request)", {"offset": row["received"]})
        if offset != row["received"]:
            raise Refusal(409, "offset", f"the centre has {row['received']} bytes, not {offset}", {"offset": row["received"]})
        if offset + len(piece) > row["size"]:
            raise Refusal(400, "bad_request", "more bytes than the declared size")
        part = self._part(item_id)
        with open(part, "r+b") as f:
            f.truncate(offset)
            f.seek(offset)
            f.write(piece)
            f.flush()
            os.fsync(f.fileno())
        received = offset + len(piece)
        with self.store.db.transaction() as cur:
            cur.execute("UPDATE uploads SET received = ?, last_sig = ? WHERE id = ? AND received = ?",
                        (received, sig, item_id, offset))
        if received == row["size"]:
            self._complete(point_id, item_id)
        return self._answer(self._row(item_id))

    def _complete(self, point_id: str, item_id: str) -> None:
        """The last byte is in: the whole file must be the declared one and the point's own package."""
        row = self._row(item_id)
        part = self._part(item_id)
        try:
            if file_sha256(part) != row["sha256"]:
                raise Refusal(422, "bad_hash", "the file does not match the SHA-256 the point declared")
            record = self._check(point_id, part)
            if record.id != item_id or record.version != row["version"]:
                raise Refusal(422, "bad_record", f"the package inside is {record.id} version {record.version}, not {item_id}")
        except Refusal:
            self._forget(item_id)
            raise
        self._accept(item_id, part, record)

    def _check(self, point_id: str, path: Path) -> Any:
        """The record of a package signed by this point's own key, or Refusal 422."""
        from kiosk.library.package import verify_package

        own = self._own_key(point_id)
        if own is None:
            raise Refusal(422, "no_point_key", f"point {point_id} has not sent its key yet (it travels in its heartbeats)")
        try:
            return verify_package(path, None, own=own, max_bytes=self.max_bytes)
        except PackageRejected as e:
            raise Refusal(422, e.reason, f"not a package of point {point_id}: {e.detail}") from None
        except (OSError, tarfile.TarError, ValueError) as e:
            raise Refusal(422, "bad_bag", f"unreadable package: {e}") from None

    def _accept(self, item_id: str, part: Path, record: Any) -> None:
        """Keep the checked package and unpack it for the review page's preview."""
        final = self._tar(item_id)
        os.replace(part, final)
        preview = self._preview(item_id)
        shutil.rmtree(preview, ignore_errors=True)
        with tarfile.open(final) as tar:  # paths were checked by verify_package
            tar.extractall(preview, filter="data")
        with self.store.db.transaction() as cur:
            cur.execute("UPDATE uploads SET state = 'pending', completed_at = ?, title = ?, category = ?, description = ? WHERE id = ?",
                        (clock.now(), record.title, record.category, record.description, item_id))
        log.info("upload received id=%s state=pending", item_id)

    def _forget(self, item_id: str) -> None:
        self._part(item_id).unlink(missing_ok=True)
        with self.store.db.transaction() as cur:
            cur.execute("DELETE FROM uploads WHERE id = ? AND state = 'receiving'", (item_id,))

    # --- a USB disk ----------------------------------------------------------------------------
    def take_file(self, path: Path) -> dict[str, Any]:
        """A package a point exported to a USB disk: the same checks; its answer, or Refusal."""
        from kiosk.library.bag import open_bag
        from kiosk.library.package import RECORD_FILE
        from kiosk.library.record import parse_record

        try:
            with open_bag(Path(path)) as bag:
                record = parse_record(bag.read_tag(RECORD_FILE, 64 * 1024))
        except (PackageRejected, OSError, tarfile.TarError, ValueError, KeyError) as e:
            raise Refusal(422, "bad_bag", f"not a package: {e}") from None
        point_id = point_of(record.id)
        if point_id is None or self.store.secret(point_id) is None:
            raise Refusal(401, "unknown_point", f"{record.id} is not a local package of a point enrolled here")
        size = Path(path).stat().st_size
        if size > self.max_bytes:
            raise Refusal(413, "too_large", f"{size} bytes is over the centre's cap of {self.cfg.uplink.upload_max_mb} MB")
        row = self._row(record.id)
        sha = file_sha256(Path(path))
        if row is not None and row["state"] != "receiving":
            if row["sha256"] != sha:
                raise Refusal(409, "duplicate", f"{record.id} was already uploaded with other content")
            return self._answer(row)
        checked = self._check(point_id, Path(path))
        self.dir.mkdir(parents=True, exist_ok=True)
        part = self._part(record.id)
        shutil.copyfile(path, part)
        with self.store.db.transaction() as cur:
            cur.execute("INSERT INTO uploads (id, version, point, state, size, sha256, received, created_at) "
                        "VALUES (?, ?, ?, 'receiving', ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET received = excluded.received, "
                        "sha256 = excluded.sha256, size = excluded.size",
                        (record.id, record.version, point_id, size, sha, size, clock.now()))
        self._accept(record.id, part, checked)
        return self._answer(self._row(record.id))

    # --- review --------------------------------------------------------------------------------
    def list(self, state: str | None = None, townships: list[str] | None = None, scope: Any = None) -> list[dict[str, Any]]:
        """Uploads with their point, county and township, newest first; only those in `scope` (a tree Node) when given."""
        rows = self.store.db.query(
            f"SELECT {', '.join('u.' + c for c in _COLS)}, p.township, p.name, p.county FROM uploads u "
            "LEFT JOIN points p ON p.id = u.point ORDER BY u.created_at DESC")
        out = []
        for r in rows:
            d = dict(zip(_COLS, r[: len(_COLS)]))
            d["township"], d["point_name"], d["county"] = r[len(_COLS)] or "", r[len(_COLS) + 1] or "", r[len(_COLS) + 2] or ""
            d["point_id"] = d["point"]
            d["townships"] = [t for t in (d["townships"] or "").split(",") if t]
            if (state and d["state"] != state) or (townships is not None and d["township"] not in townships):
                continue
            if scope is not None and not scope.contains(node_of(d)):
                continue
            out.append(d)
        return out

    def get(self, item_id: str) -> dict[str, Any]:
        """One upload, or NotFound."""
        found = [u for u in self.list() if u["id"] == item_id]
        if not found:
            raise NotFound(f"no upload {item_id}")
        return found[0]

    def files(self, item_id: str) -> list[dict[str, Any]]:
        """The payload files of a received upload, for the preview: {"path", "size", "type"}."""
        from kiosk.library.ingest import media_type

        data = self._bag_dir(item_id) / "data"
        if not data.is_dir():
            return []
        return [{"path": str(p.relative_to(data)), "size": p.stat().st_size, "type": media_type(p.name)}
                for p in sorted(data.rglob("*")) if p.is_file()]

    def file_path(self, item_id: str, rel: str) -> Path:
        """A payload file of an upload on disk (for the preview), or NotFound."""
        data = (self._bag_dir(item_id) / "data").resolve()
        path = (data / rel).resolve()
        if data not in path.parents or not path.is_file():
            raise NotFound(f"no file {rel} in {item_id}")
        return path

    def edit(self, item_id: str, title: str, category: str, description: str) -> None:
        """Staff's corrections to the title, topic and description before deciding."""
        from kiosk.library.record import CATEGORY_RE, LIMITS

        title = " ".join((title or "").split())
        if not title or len(title) > LIMITS["title"]:
            raise KioskError(f"a title of 1 to {LIMITS['title']} characters is needed")
        if not CATEGORY_RE.match(category or ""):
            raise KioskError(f"topic {category!r} is not a slug (a-z, 0-9, - and _)")
        self._undecided(item_id)
        with self.store.db.transaction() as cur:
            cur.execute("UPDATE uploads SET title = ?, category = ?, description = ? WHERE id = ?",
                        (title, category, (description or "")[: LIMITS["description"]], item_id))

    def approve(self, publisher: Any, item_id: str, townships: list[str] | None = None, user: str = "") -> dict[str, Any]:
        """Re-sign with the centre's publisher key and list in the package index; the published entry."""
        row = self._undecided(item_id)
        townships = [t.strip() for t in (townships or []) if t.strip()]
        record = json.loads((self._bag_dir(item_id) / "kiosk.json").read_text(encoding="utf-8"))
        changed = (record.get("title"), record.get("category"), record.get("description") or "") != (
            row["title"], row["category"], row["description"] or "")
        # an edited record is a new version, so the point that made it gets the corrected one too
        record.update(title=row["title"], category=row["category"], description=row["description"],
                      version=row["version"] + (1 if changed else 0))
        if townships:
            record["targets"] = {"townships": townships}
        with tempfile.TemporaryDirectory(prefix="approve-", dir=self.dir) as tmp:
            src = Path(tmp)
            shutil.copytree(self._bag_dir(item_id) / "data", src / "data")
            (src / "kiosk.json").write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
            entry = publisher.publish(src, user=user)
        self._decide(item_id, "approved", "", user, townships)
        return entry

    def reject(self, item_id: str, reason: str, user: str = "") -> None:
        """Refuse it with a reason the point will see."""
        reason = " ".join((reason or "").split())
        if not reason:
            raise KioskError("say why, so the point knows what to change")
        self._undecided(item_id)
        self._decide(item_id, "rejected", reason[:500], user, [])

    def news(self, point_id: str) -> dict[str, dict[str, str]]:
        """A point's recent decisions ({id: {"state", "reason"}}), carried with its acknowledgements."""
        since = clock.now() - NEWS_DAYS * 86400
        rows = self.store.db.query(
            "SELECT id, state, reason FROM uploads WHERE point = ? AND state IN ('approved', 'rejected') AND decided_at >= ?",
            (point_id, since))
        return {r[0]: {"state": r[1], "reason": r[2]} for r in rows}

    def _undecided(self, item_id: str) -> dict[str, Any]:
        row = self._row(item_id)
        if row is None:
            raise NotFound(f"no upload {item_id}")
        if row["state"] != "pending":
            raise KioskError(f"{item_id} is {row['state']}, not waiting for review")
        return row

    def _decide(self, item_id: str, state: str, reason: str, user: str, townships: list[str]) -> None:
        with self.store.db.transaction() as cur:
            cur.execute("UPDATE uploads SET state = ?, reason = ?, decided_at = ?, decided_by = ?, townships = ? WHERE id = ?",
                        (state, reason, clock.now(), user, ",".join(townships), item_id))
        log.info("upload decided id=%s state=%s by=%s reason=%r", item_id, state, user, reason)

    # --- inside ----------------------------------------------------------------------------------
    def _row(self, item_id: str) -> dict[str, Any] | None:
        r = self.store.db.one(f"SELECT {', '.join(_COLS)} FROM uploads WHERE id = ?", (item_id,))
        return dict(zip(_COLS, r)) if r else None

    def _last_sig(self, item_id: str) -> str:
        r = self.store.db.one("SELECT last_sig FROM uploads WHERE id = ?", (item_id,))
        return r[0] if r else ""

    def _answer(self, row: dict[str, Any] | None) -> dict[str, Any]:
        assert row is not None
        return {"id": row["id"], "version": row["version"], "offset": row["received"], "size": row["size"],
                "state": row["state"], "reason": row["reason"], "server_time": int(clock.now())}

    def _part(self, item_id: str) -> Path:
        return self.dir / f"{item_id}.part"

    def _tar(self, item_id: str) -> Path:
        return self.dir / f"{item_id}.tar"

    def _preview(self, item_id: str) -> Path:
        return self.dir / f"{item_id}.files"

    def _bag_dir(self, item_id: str) -> Path:
        """The unpacked bag (the tar's one top folder)."""
        preview = self._preview(item_id)
        tops = [p for p in preview.iterdir() if p.is_dir()] if preview.is_dir() else []
        if len(tops) != 1:
            raise NotFound(f"{item_id} has not been received in full")
        return tops[0]


def read_piece(stream: BinaryIO, length: int | None) -> bytes:
    """A piece's bytes from a request body, or Refusal (no length, too large, cut short)."""
    if length is None:
        raise Refusal(411, "length_required", "a piece needs a Content-Length")
    if length > MAX_PIECE_BYTES:
        raise Refusal(413, "too_large", f"a piece is at most {MAX_PIECE_BYTES} bytes")
    data = stream.read(length)
    if len(data) != length:
        raise Refusal(400, "cut_short", "the piece ended before its Content-Length")
    return data

