"""Ingest: one package from a folder or .tar to published, unchanged, skipped, waiting or rejected.

The order is the point: everything cheap comes before any payload byte is read.

1. open the bag (every path checked, nothing written), hash the small tag files;
2. the Ed25519 signature over tagmanifest-sha256.txt against the trust folder;
3. kiosk.json; then skipped (`targets` leave this point out) / a software package's platform
   and version (kiosk.update.offer) / withdrawn / stale / unchanged (a repeat hashes no
   payload) / expired;
4. completeness (in the spool: missing or growing files mean `waiting`), size, free space
   (evicting what may be evicted first);
5. the payload read ONCE: hashed while copied into a staging folder on the store's file
   system (fsync'd), or, for a spool folder already on that file system, hashed in place;
6. only when every hash matched: an atomic rename into the store, then one catalogue
   transaction; the old version's folder goes last.

Versions: the same id and version again is `unchanged`; a lower version than the one
held is `rejected` with reason `bad_record` and a detail starting "stale" (the record
is well-formed but cannot be published; the quarantine's plain words say a newer
version is already here). A recall (kiosk.json with `withdraws`) is stored like any
package, never listed, and remembers for each id the version it withdrew: the one held,
or 1 when the box never had the id.

A power cut at any point leaves a staging folder (deleted on the next open), or a
verified store folder the catalogue does not know yet (registered on the next open).
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import mimetypes
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from kiosk import clock, update
from kiosk.errors import PackageRejected
from kiosk.library import pinyin, search
from kiosk.library.bag import Bag, open_bag
from kiosk.library.model import FileEntry, Outcome
from kiosk.library.targets import is_target
from kiosk.library.store import fsync_dir, fsync_file, hash_copy, hash_copy_span

if TYPE_CHECKING:
    from kiosk.library import Library

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]
MiB = 1 << 20
WITHDRAWN_FILE = "withdrawn.json"  # written into a recall's store folder, for rebuilds

_EXTRA_TYPES = {
    ".mp4": "video/mp4", ".m4v": "video/mp4", ".webm": "video/webm", ".mkv": "video/x-matroska",
    ".mp3": "audio/mpeg", ".m4a": "audio/mp4", ".ogg": "audio/ogg", ".opus": "audio/ogg", ".wav": "audio/wav",
    ".pdf": "application/pdf", ".epub": "application/epub+zip", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
    ".png": "image/png", ".webp": "image/webp", ".svg": "image/svg+xml", ".gif": "image/gif",
    ".html": "text/html", ".htm": "text/html", ".txt": "text/plain", ".vtt": "text/vtt", ".srt": "text/plain",
    ".json": "application/json", ".zip": "application/zip",
}


def media_type(path: str) -> str:
    """A file's media type from its name (fixed table first, so it does not vary by machine)."""
    ext = os.path.splitext(path)[1].lower()
    return _EXTRA_TYPES.get(ext) or mimetypes.guess_type(path)[0] or "application/octet-stream"


class Waiting(Exception):
    """A spool bag that is still arriving."""


@contextmanager
def ingest_lock(data_dir: Path, wait: bool | float = True) -> Iterator[bool]:
    """One ingest, eviction or recovery at a time on this box, across processes and threads.

    `wait`: True waits as long as it takes, False not at all, a number that many seconds.
    Yields whether the lock is held (always True when `wait` is True)."""
    fd = os.open(data_dir / "library.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        # real time, not kiosk.clock: a test's frozen clock would make this wait forever
        deadline = time.monotonic() + (0.0 if wait is False else float(wait) if wait is not True else 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if wait is True else fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.1)
        yield True
    finally:
        os.close(fd)


def ingest_one(lib: "Library", path: Path, source: str, progress: Progress | None) -> Outcome:
    """Ingest one package under the library's lock; never raises for bad input."""
    path = Path(path)
    ctx: dict[str, Any] = {"id": None, "version": None}
    with ingest_lock(lib.cfg.data_dir):
        try:
            try:
                outcome = _ingest(lib, path, source, progress, ctx)
            except OSError as e:
                if source == "spool" and e.errno != errno.ENOSPC:
                    raise  # the spool watcher retries a few times before it gives up on a bag
                # a USB disk pulled out, a bad sector: said plainly, like any rejection
                code = "no_space" if e.errno == errno.ENOSPC else "bad_bag"
                raise PackageRejected(code, f"could not read or write {e.filename or path}: {e.strerror}") from None
            except (PackageRejected, Waiting):
                raise
            except Exception as e:
                # whatever the bag reader did not foresee is still this bag's rejection, never
                # the end of an import: the next bag on the disk gets its turn
                log.warning("event=ingest_unexpected path=%s error=%r", path, e, exc_info=True)
                raise PackageRejected("bad_bag", f"unreadable package: {e!r}"[:500]) from None
        except Waiting as e:
            outcome = Outcome(str(path), "waiting", ctx["id"], ctx["version"], None, str(e))
        except PackageRejected as e:
            reason, detail = e.reason, e.detail
            outcome = Outcome(str(path), "rejected", ctx["id"], ctx["version"], reason, detail)
            lib._quarantine.add(path, source, reason, detail, ctx["id"], ctx["version"],
                                move=source == "spool", kind=ctx.get("code"), title=ctx.get("title"))
        if outcome.outcome != "waiting":  # the spool asks often; the SD card need not hear of it
            lib.catalogue.record_outcome(outcome, clock.now())
    log.info("event=ingest source=%s path=%s outcome=%s id=%s version=%s reason=%s detail=%r",
             source, path, outcome.outcome, outcome.id, outcome.version, outcome.reason, outcome.detail)
    return outcome


def _ingest(lib: "Library", path: Path, source: str, progress: Progress | None, ctx: dict[str, Any]) -> Outcome:
    from kiosk.library.package import check_package
    from kiosk.library.pointkey import own_key

    if source == "spool" and not (path.exists() or path.is_symlink()):
        raise Waiting(f"{path} is not there (yet)")
    with open_bag(path) as bag:
        if source == "spool":
            _check_arrived(bag)
        # 1-2. signature, tag hashes, record, completeness: no payload byte read yet
        record = check_package(bag, lib.cfg.path("storage.trust_dir"), check_expiry=False, own=own_key(lib.cfg),
                               software_trust_dir=lib.cfg.path("storage.software_trust_dir"))
        ctx["id"], ctx["version"], ctx["title"] = record.id, record.version, record.title
        if not is_target(record.targets, lib.cfg.point.id, lib.cfg.point.township):
            _done_with_spool(path, source)
            return Outcome(str(path), "skipped", record.id, record.version, None, "not for this point")
        if record.software is not None:
            ctx["code"] = "platform"  # the one rejection offer() makes
            why = update.offer(lib.cfg, record.software)
            if why is not None:
                _done_with_spool(path, source)
                return Outcome(str(path), "unchanged", record.id, record.version, None, why)
            ctx.pop("code")
        pinyin.prepare()  # the box's child loads its dictionary while the payload is hashed
        recall = record.is_recall
        # 3. what the catalogue already knows
        held = lib.catalogue.row(record.id)
        if held is not None and held["version"] == record.version:
            _done_with_spool(path, source)
            return Outcome(str(path), "unchanged", record.id, record.version, None, "already here")
        if held is not None and held["version"] > record.version:
            ctx["code"] = "stale"
            raise PackageRejected("bad_record", f"stale: version {record.version} is older than version {held['version']} already here")
        gone = lib.catalogue.withdrawn_version(record.id)
        if gone is not None and record.version <= gone and not recall:
            raise PackageRejected("withdrawn", f"{record.id} was withdrawn up to version {gone}")
        if not recall and record.expired(clock.now()):
            raise PackageRejected("expired", f"{record.id} expired on {record.expires}")
        if any("sha256" not in d for d in bag.payload.values()):
            raise PackageRejected("bad_bag", "manifest-sha256.txt does not list every payload file")
        # 4. room for it
        files = sorted(bag.payload)
        sizes = bag.present()
        total = sum(sizes[f] for f in files)
        lib._make_room(total, record.priority, str(path))
        # 5. read every payload byte once
        in_place = source == "spool" and not bag.is_tar and not recall and lib.store.same_fs(path)
        entries = _verify(lib, bag, files, sizes, total, in_place, progress)
        if pinyin.ready():  # else the catalogue indexes the pinyin after this batch
            search.title_pinyin(record.title)  # loads pypinyin now, not between rename and commit
        # 6. publish: rename into the store, then the catalogue
        folder = path if in_place else entries.pop("__staging__")
        try:
            withdrawn = _withdrawn_versions(lib, record) if recall else {}
            if recall:
                _write_json(Path(folder) / WITHDRAWN_FILE, withdrawn)
            target = lib.store.publish(Path(folder), record.id, record.version)
        except BaseException:
            if not in_place:
                shutil.rmtree(folder, ignore_errors=True)
            raise
    lib._register(record, target, list(entries.values()), withdrawn, held)
    if source == "spool" and not in_place:
        _done_with_spool(path, source)
    return Outcome(str(path), "published", record.id, record.version, None, "recall" if recall else "", {"bytes": total})


def _check_arrived(bag: Bag) -> None:
    """In the spool, missing files or a Payload-Oxum not yet reached mean: still arriving."""
    present = bag.present()
    missing = [p for p in bag.payload if p not in present]
    if missing:
        raise Waiting(f"{len(missing)} file(s) not here yet, e.g. {missing[0]}")
    if bag.oxum is not None and sum(present[p] for p in bag.payload) < bag.oxum[0]:
        raise Waiting("Payload-Oxum not reached yet")


def _verify(lib: "Library", bag: Bag, files: list[str], sizes: dict[str, int], total: int,
            in_place: bool, progress: Progress | None) -> dict[str, Any]:
    """Hash every payload file once (copying it into staging unless in place); bad_hash on a mismatch."""
    done = 0
    label = ""

    def step(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done, total, label)

    staging = None if in_place else lib.store.new_staging()
    out: dict[str, Any] = {}
    try:
        if staging is not None:
            for name in sorted(bag.tags):
                # only tag files that were checked (listed) or that we read, never stray ones
                if name in bag.tag_manifest or name in ("bagit.txt", "tagmanifest-sha256.txt", "signature.ed25519"):
                    dest = staging / name
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(bag.read_tag(name))
        made: set[Path] = set()
        for rel in files:
            label = rel[5:]
            dest = None
            if staging is not None:
                dest = staging / rel
                if dest.parent not in made:
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    made.add(dest.parent)
            try:
                with bag.open_payload(rel) as f:
                    span = _span(bag, rel, f) if dest is not None else None
                    try:
                        if span is None:
                            raise NotImplementedError
                        digest, size = hash_copy_span(*span, dest, step)  # type: ignore[arg-type]
                    except (NotImplementedError, OSError) as e:
                        if isinstance(e, OSError) and e.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                            raise
                        # no span, or a file system that cannot sendfile: copy through Python
                        if dest is not None and span is not None:
                            dest.unlink(missing_ok=True)
                        digest, size = hash_copy(f, dest, step)
            except OSError as e:
                if e.errno == errno.ENOSPC:  # the disk filled while copying
                    raise PackageRejected("no_space", "the disk filled while copying") from None
                raise PackageRejected("bad_bag", f"{rel} could not be read: {e.strerror}") from None
            if digest != bag.payload[rel]["sha256"]:
                raise PackageRejected("bad_hash", f"{rel} does not match manifest-sha256.txt")
            if size != sizes[rel]:
                raise PackageRejected("bad_hash", f"{rel} changed size while it was read")
            out[rel] = FileEntry(label, size, digest, media_type(label))
        if staging is not None:
            for p in sorted(staging.rglob("*")):
                if p.is_file():
                    fsync_file(p)
            for d in sorted(made | {staging}, key=lambda p: len(p.parts), reverse=True):
                fsync_dir(d)
            out["__staging__"] = staging
    except BaseException:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _span(bag: Bag, rel: str, f: Any) -> tuple[int, int, int] | None:
    """(fd, offset, size) of a payload file's bytes for an in-kernel copy, or None to stream it."""
    try:
        if not bag.is_tar:
            fd = f.fileno()
            return fd, 0, os.fstat(fd).st_size
        member = bag._members.get(rel)  # a plain member's bytes lie contiguous in the tar
        tar = bag._tar
        if member is None or tar is None or member.sparse is not None or not member.isreg():
            return None
        return tar.fileobj.fileno(), member.offset_data, member.size  # type: ignore[union-attr]
    except (AttributeError, OSError, ValueError):
        return None


def _withdrawn_versions(lib: "Library", record: Any) -> dict[str, int]:
    """For each id a recall names: the version withdrawn (the one held, else at least 1).

    When the box never had the id (the recall came first), version 1 is withdrawn: a
    carousel repeat of the first version is refused, a corrected later version is not.
    """
    out: dict[str, int] = {}
    for wid in record.withdraws:
        row = lib.catalogue.row(wid)
        before = lib.catalogue.withdrawn_version(wid) or 0
        out[wid] = max(row["version"] if row is not None and row["kind"] == "item" else 1, before)
    return out


def _done_with_spool(path: Path, source: str) -> None:
    """Remove a spool entry once it is published or known (never any other source)."""
    if source != "spool" or not (path.exists() or path.is_symlink()):
        return
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink()
    fsync_dir(path.parent)


def _write_json(path: Path, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())
