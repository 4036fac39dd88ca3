"""Publishing: the centre signs packages and recalls and serves a signed index to telecom points.

Packages are built with the library's own `build_package`, so the centre makes exactly
what a box accepts. Published .tar files live in <data_dir>/packages; the index is
rebuilt and signed on every publish and kept beside them, so its bytes and signature
always match.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import shutil
import tarfile
import tempfile
import threading
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any

from kiosk import clock
from kiosk.centre.store import Store
from kiosk.config import Config
from kiosk.errors import KioskError

log = logging.getLogger(__name__)

_TAR_NAME = re.compile(r"([a-z0-9._-]{1,64})-(\d{1,9})\.tar")
INDEX_PATH = "/api/v1/packages"


class Publisher:
    """Builds, records and serves the centre's signed packages."""

    def __init__(self, cfg: Config, store: Store) -> None:
        self.cfg = cfg
        self.store = store
        self.dir = Path(cfg.data_dir) / "packages"
        self._lock = threading.Lock()

    # --- the key -------------------------------------------------------------------------
    def key_path(self) -> Path:
        """The publisher private key, made on first use when missing (public key beside it)."""
        from kiosk.library.signing import generate_key

        path = self.cfg.path("centre.publisher_key")
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            generate_key(path)
            log.info("publisher key made path=%s", path)
        return path

    def public_key_pem(self) -> str:
        """The public key boxes put in their trust folder."""
        from cryptography.hazmat.primitives import serialization

        from kiosk.library.signing import load_private_key

        key = load_private_key(self.key_path())
        return key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    # --- publishing -------------------------------------------------------------------------
    def publish(self, src: Path, user: str = "") -> dict[str, Any]:
        """Sign the folder `src` (kiosk.json plus payload) as a package and add it to the index."""
        from kiosk.library.package import build_package
        from kiosk.library.record import parse_record

        src = Path(src)
        try:
            record = parse_record((src / "kiosk.json").read_bytes())
        except FileNotFoundError:
            raise KioskError("the folder has no kiosk.json") from None
        with self._lock:
            self.dir.mkdir(parents=True, exist_ok=True)
            name = f"{record.id}-{record.version}.tar"
            out = self.dir / name
            if out.exists():
                raise KioskError(f"{record.id} version {record.version} is already published; raise the version")
            build_package(src, self.key_path(), out)
            entry = {
                "id": record.id,
                "version": record.version,
                "title": record.title or "",
                "size": out.stat().st_size,
                "tagmanifest_sha256": _tagmanifest_sha256(out),
                "withdraws": list(record.withdraws or []),
            }
            with self.store.db.transaction() as cur:
                cur.execute(
                    "INSERT INTO packages (id, version, title, size, tagmanifest_sha256, file, withdraws, published_at, published_by) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (entry["id"], entry["version"], entry["title"], entry["size"], entry["tagmanifest_sha256"], name,
                     ",".join(entry["withdraws"]), clock.now(), user),
                )
            self._write_index()
        log.info("package published id=%s version=%s by=%s", record.id, record.version, user)
        return entry

    def publish_zip(self, zip_path: Path, user: str = "") -> dict[str, Any]:
        """Publish an uploaded .zip holding kiosk.json and the payload (at its top or in one folder)."""
        tmp = Path(tempfile.mkdtemp(prefix="publish-"))
        try:
            _safe_unzip(zip_path, tmp, self.cfg.centre.max_unpacked_mb << 20)
            tops = [p for p in tmp.iterdir()]
            src = tops[0] if len(tops) == 1 and tops[0].is_dir() and (tops[0] / "kiosk.json").exists() else tmp
            return self.publish(src, user)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def withdraw(self, ids: list[str], title: str = "", user: str = "") -> dict[str, Any]:
        """Publish a signed recall of `ids`; boxes remove them from screens and store."""
        ids = [i.strip() for i in ids if i.strip()]
        if not ids:
            raise KioskError("name at least one package id to withdraw")
        recall_id = f"recall-{hashlib.sha256(','.join(sorted(ids)).encode()).hexdigest()[:12]}"
        version = 1 + max([int(r[0]) for r in self.store.db.query("SELECT version FROM packages WHERE id = ?", (recall_id,))] or [0])
        tmp = Path(tempfile.mkdtemp(prefix="recall-"))
        try:
            record = {"id": recall_id, "version": version, "title": title or f"撤回 {', '.join(ids)}", "withdraws": ids}
            (tmp / "kiosk.json").write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
            (tmp / "data").mkdir()
            (tmp / "data" / "README.txt").write_text("recall\n", encoding="utf-8")
            return self.publish(tmp, user)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def packages(self) -> list[dict[str, Any]]:
        """Every published package and recall, newest first."""
        rows = self.store.db.query(
            "SELECT id, version, title, size, tagmanifest_sha256, file, withdraws, published_at, published_by "
            "FROM packages ORDER BY published_at DESC"
        )
        keys = ("id", "version", "title", "size", "tagmanifest_sha256", "file", "withdraws", "published_at", "published_by")
        out = [dict(zip(keys, r)) for r in rows]
        for p in out:
            p["withdraws"] = [w for w in p["withdraws"].split(",") if w]
        return out

    # --- the index ---------------------------------------------------------------------------
    def _write_index(self) -> None:
        from kiosk.library.signing import load_private_key

        latest: dict[str, dict[str, Any]] = {}
        for p in sorted(self.packages(), key=lambda p: p["published_at"]):
            for gone in p["withdraws"]:
                latest.pop(gone, None)  # a withdrawn package is no longer offered
            if p["id"] not in latest or latest[p["id"]]["version"] < p["version"]:
                latest[p["id"]] = p
        index = {
            "generated": int(clock.now()),
            "packages": [
                {"id": p["id"], "version": p["version"], "size": p["size"],
                 "tagmanifest_sha256": p["tagmanifest_sha256"], "path": f"{INDEX_PATH}/{p['file']}"}
                for p in sorted(latest.values(), key=lambda p: (p["id"], p["version"]))
            ],
        }
        data = json.dumps(index, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
        sig = base64.b64encode(load_private_key(self.key_path()).sign(data)) + b"\n"
        self.dir.mkdir(parents=True, exist_ok=True)
        for name, content in (("index.json.sig", sig), ("index.json", data)):
            tmp = self.dir / f".{name}.tmp"
            tmp.write_bytes(content)
            tmp.replace(self.dir / name)

    def index(self) -> tuple[bytes, bytes]:
        """(index.json bytes, base64 signature) as last written; made on first ask."""
        with self._lock:
            if not (self.dir / "index.json").exists() or not (self.dir / "index.json.sig").exists():
                self._write_index()
            return (self.dir / "index.json").read_bytes(), (self.dir / "index.json.sig").read_bytes()

    def file(self, name: str) -> Path | None:
        """The path of a published .tar by its file name, or None."""
        m = _TAR_NAME.fullmatch(name)
        if not m:
            return None
        row = self.store.db.one("SELECT file FROM packages WHERE id = ? AND version = ?", (m.group(1), int(m.group(2))))
        path = self.dir / name
        return path if row and path.is_file() else None


def _tagmanifest_sha256(tar_path: Path) -> str:
    """The sha256 of the package's tagmanifest-sha256.txt (what the signature covers)."""
    with tarfile.open(tar_path) as tar:
        for member in tar:
            if PurePosixPath(member.name).name == "tagmanifest-sha256.txt" and member.name.count("/") == 1:
                f = tar.extractfile(member)
                if f is not None:
                    return hashlib.sha256(f.read()).hexdigest()
    raise KioskError(f"{tar_path} has no tagmanifest-sha256.txt")


MAX_ZIP_MEMBERS = 10_000  # files and folders in one upload; a package of e-books has a few hundred


def _safe_unzip(zip_path: Path, dest: Path, max_bytes: int) -> None:
    """Unpack a zip, refusing absolute paths, .., links, more than MAX_ZIP_MEMBERS members and
    more than `max_bytes` unpacked (a zip is untrusted input: 99 KiB of zip can unpack to 100 MB)."""
    try:
        with zipfile.ZipFile(zip_path) as zf:
            members = zf.infolist()
            if len(members) > MAX_ZIP_MEMBERS:
                raise KioskError(f"the zip holds {len(members)} files; at most {MAX_ZIP_MEMBERS} are taken")
            if sum(info.file_size for info in members) > max_bytes:
                raise KioskError(f"the zip unpacks to more than {max_bytes >> 20} MB (centre.max_unpacked_mb)")
            for info in members:
                name = PurePosixPath(info.filename)
                if name.is_absolute() or ".." in name.parts or (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise KioskError(f"the zip holds an unsafe path: {info.filename}")
            written = 0
            for info in members:
                # the sizes a zip declares are not trusted: what is written is counted
                out = dest / info.filename
                if info.is_dir():
                    out.mkdir(parents=True, exist_ok=True)
                    continue
                out.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(out, "wb") as f:
                    while chunk := src.read(1 << 20):
                        written += len(chunk)
                        if written > max_bytes:
                            raise KioskError(f"the zip unpacks to more than {max_bytes >> 20} MB (centre.max_unpacked_mb)")
                        f.write(chunk)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, zlib.error) as e:
        raise KioskError(f"the upload is not a zip file the centre can read ({e})") from None
    except OSError as e:  # two members with one name, a file where a folder must go
        raise KioskError(f"the zip could not be unpacked: {e.strerror or e}") from None
