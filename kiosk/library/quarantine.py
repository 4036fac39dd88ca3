"""Quarantine: where rejected packages go, each with a machine- and a human-readable reason.

    quarantine/<time>-<name>/reason.json   code, plain Chinese and English reason, when, source
    quarantine/<time>-<name>/package       the package itself, when it came from the spool

A spool bag is moved here (the spool is ours, and the bag must leave it). A bag from a
USB disk or given on the command line is never touched: its disk may be read-only and
copying gigabytes of junk would only wear the SD card, so the entry records where it
was. After storage.quarantine_keep_days the package is deleted and the record kept;
at most KEEP_RECORDS records are kept.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from kiosk import clock
from kiosk.library.store import fsync_dir

log = logging.getLogger(__name__)

KEEP_RECORDS = 1000

REASONS_ZH = {
    "bad_bag": "内容包格式不对，不是完整的 BagIt 包。",
    "bad_record": "内容说明（kiosk.json）有错误。",
    "bad_hash": "文件内容和清单对不上，可能已损坏或被改动。",
    "bad_signature": "签名不对，无法确认内容来自县中心。",
    "untrusted": "签名的发布者不在本机的信任名单里。",
    "unsafe_path": "内容包里有不安全的文件路径，已拒收。",
    "too_large": "内容包太大，本机放不下。",
    "expired": "内容已经过期。",
    "no_space": "磁盘空间不够，清理后也放不下。",
    "withdrawn": "这项内容已被县中心撤回。",
    "stale": "本机已有这项内容的更新版本。",
    "incomplete": "内容包一直没有接收完整。",
    "platform": "这个软件更新是给别的机型的，本机用不了。",
}
REASONS_EN = {
    "bad_bag": "Not a complete BagIt bag.",
    "bad_record": "The record (kiosk.json) is invalid.",
    "bad_hash": "A file does not match its checksum: damaged or changed.",
    "bad_signature": "The signature is wrong; the origin cannot be confirmed.",
    "untrusted": "Signed by a publisher this box does not trust.",
    "unsafe_path": "The package holds an unsafe file path.",
    "too_large": "The package is larger than this box can hold.",
    "expired": "The content has expired.",
    "no_space": "Not enough disk space, even after eviction.",
    "withdrawn": "This content was withdrawn by the county centre.",
    "stale": "A newer version of this content is already here.",
    "incomplete": "The package never arrived complete.",
    "platform": "This software update is built for another kind of machine.",
}


class Quarantine:
    """The quarantine folder."""

    def __init__(self, root: Path, keep_days: int) -> None:
        self.root = Path(root)
        self.keep_days = keep_days
        self.root.mkdir(parents=True, exist_ok=True)
        self._count: tuple[tuple[int, int], int] | None = None
        self._index: tuple[tuple[int, int], dict[tuple[str, str, str], str]] | None = None

    def add(self, origin: Path, source: str, code: str, detail: str = "", item_id: str | None = None,
            version: int | None = None, move: bool = False, key: str | None = None, kind: str | None = None,
            title: str | None = None) -> Path:
        """Record a rejected package; move it here when `move` (a spool bag), else leave it be.

        `kind` picks finer plain words than the reason code (e.g. "stale" for a bad_record)."""
        now = clock.now()
        will_move = move and (origin.exists() or origin.is_symlink())
        if not will_move:
            # the same disk offered again: one package, one record (seen once more)
            seen = self._unmoved().get((str(origin), code, detail))
            rec = _read_record(self.root / seen) if seen else None
            if seen and rec is not None and not rec.get("pruned"):
                rec.update(at=now, source=source, times=rec.get("times", 1) + 1)
                _write_json(self.root / seen / "reason.json", rec)
                return self.root / seen
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in origin.name)[:60] or "package"
        entry = Path(tempfile.mkdtemp(prefix=f"{stamp}-{safe}-", dir=self.root))
        record = {
            "code": code,
            "reason": REASONS_ZH.get(kind or code, code),
            "reason_en": REASONS_EN.get(kind or code, code),
            "detail": detail,
            "at": now,
            "source": source,
            "origin": str(origin),
            "id": item_id,
            "version": version,
            "title": title,  # the device page names a package by its title when the record was readable
            "key": key,
            "package": "package" if will_move else None,
            "pruned": False,
        }
        # the reason first, then the move: a power cut between leaves a record, never an
        # unexplained package
        _write_json(entry / "reason.json", record)
        fsync_dir(self.root)
        if will_move:
            try:
                os.rename(origin, entry / "package")
                fsync_dir(origin.parent)
                fsync_dir(entry)
            except OSError as e:  # another file system: leave it and say so
                log.warning("event=quarantine_move_failed origin=%s error=%s", origin, e)
                record["package"] = None
                _write_json(entry / "reason.json", record)
        moved = record["package"] is not None
        if not moved and self._index is not None:  # read fresh at the start of this add
            self._index[1][(str(origin), code, detail)] = entry.name
            self._index = (self._stamp(), self._index[1])  # our own add: still true without a rescan
        log.info("event=quarantined code=%s origin=%s moved=%s", code, origin, moved)
        return entry

    def entries(self) -> list[dict[str, Any]]:
        """Every record, newest first, with `entry` (the folder name)."""
        out = []
        for d in os.scandir(self.root):
            rec = _read_record(Path(d.path))
            if rec is None:
                continue
            rec["entry"] = d.name
            out.append(rec)
        out.sort(key=lambda r: r.get("at", 0), reverse=True)
        return out

    def _stamp(self) -> tuple[int, int]:
        # the folder's mtime and link count (one per entry): every add and prune changes them
        st = os.stat(self.root)
        return st.st_mtime_ns, st.st_nlink

    def _unmoved(self) -> dict[tuple[str, str, str], str]:
        """(origin, code, detail) -> entry of each record kept without its package, read once per change.

        Rescanning every record on each add made a disk of 1,200 junk bags take 30 s."""
        stamp = self._stamp()
        if self._index is None or self._index[0] != stamp:
            index: dict[tuple[str, str, str], str] = {}
            for rec in self.entries():  # newest first: the newest record of a package wins
                if not rec.get("pruned") and rec.get("package") is None:
                    index.setdefault((str(rec.get("origin")), str(rec.get("code")), str(rec.get("detail"))), rec["entry"])
            self._index = (stamp, index)
        return self._index[1]

    def count(self) -> int:
        """Packages in quarantine now (records whose package was pruned are not counted)."""
        # Cached on the folder's mtime and link count (one per entry), which every add and
        # prune changes (prune touches the folder).
        stamp = self._stamp()
        if self._count is None or self._count[0] != stamp:
            self._count = (stamp, sum(1 for r in self.entries() if not r.get("pruned")))
        return self._count[1]

    def prune(self) -> int:
        """Delete packages older than keep_days (keeping their record) and the oldest records; return how many."""
        limit = clock.now() - self.keep_days * 86400
        n = 0
        for i, rec in enumerate(self.entries()):
            entry = self.root / rec["entry"]
            if i >= KEEP_RECORDS:
                shutil.rmtree(entry, ignore_errors=True)
                n += 1
            elif not rec.get("pruned") and rec.get("at", 0) < limit:
                pkg = entry / "package"
                if pkg.is_dir() and not pkg.is_symlink():
                    shutil.rmtree(pkg, ignore_errors=True)
                elif pkg.exists() or pkg.is_symlink():
                    pkg.unlink()
                rec = {k: v for k, v in rec.items() if k != "entry"}
                rec.update(pruned=True, package=None)
                _write_json(entry / "reason.json", rec)
                n += 1
        if n:
            os.utime(self.root)  # tells count() that records changed
            self._count = None
        return n


def _read_record(entry: Path) -> dict[str, Any] | None:
    try:
        with open(entry / "reason.json", encoding="utf-8") as f:
            rec = json.load(f)
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
