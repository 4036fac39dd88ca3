"""The content library: ingest, store, catalogue, search, quarantine, eviction.

`Library` is the one object other parts use. Its method signatures are the
contract between the library and the web, scheduler and uplink parts.

Beyond the original contract:

- ``with library.opening(item_id):`` counts an item as open (the media server holds it
  while it finds and opens a file) so that eviction never removes a package someone is
  watching; eviction in another process (`kiosk ingest`) also spares anything opened in
  the last 15 minutes (mark_opened).
- ``library.reject(path, source, code, detail)`` quarantines a package without ingesting
  it (the spool's bag that never completed: code "incomplete", reported as bad_bag).
- ``library.quarantine_dir`` is the quarantine folder; ``find_bags(root)`` lists the bags
  under a folder as ingest_tree sees them.

Decisions: a lower version than the one held is rejected as bad_record with a detail
starting "stale"; a bag from a USB disk or the command line is never modified, and its
quarantine entry records where it was (a spool bag is moved into quarantine). See
ingest.py and quarantine.py.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from kiosk import clock
from kiosk.config import Config
from kiosk.errors import KioskError, NotFound, PackageRejected
from kiosk.library import eviction, pinyin
from kiosk.library.catalogue import Catalogue, check, today
from kiosk.library.ingest import WITHDRAWN_FILE, ingest_lock, ingest_one, media_type
from kiosk.library.model import CATEGORIES, REASONS, FileEntry, Item, Outcome
from kiosk.library.quarantine import Quarantine
from kiosk.library.store import Store

__all__ = ["Library", "Item", "FileEntry", "Outcome", "CATEGORIES", "find_bags"]

log = logging.getLogger(__name__)

# progress(done_bytes, total_bytes, label) is called during long work.
Progress = Callable[[int, int, str], None]

MiB = 1 << 20
CHECKED_FILE = "catalogue.checked"  # the boot id of the last full integrity check
BUSY_WAIT_S = 10.0  # how long the device page's delete waits for a running import


class Library:
    """The box's content: opened from a Config, safe to share between threads.

    Opening it recovers from a crash or power cut: leftover staging folders are
    deleted, a missing or damaged catalogue is rebuilt from the store, and store
    folders the catalogue does not know (verified before their rename) are registered,
    or removed when a newer version or a withdrawal supersedes them.
    """

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        data = cfg.data_dir
        data.mkdir(parents=True, exist_ok=True)
        self.store = Store(data)
        self._quarantine = Quarantine(data / "quarantine", cfg.storage.quarantine_keep_days)
        self._open = eviction.OpenItems()
        self._db_path = data / "catalogue.sqlite"
        with ingest_lock(data, wait=False) as mine:
            if not mine:  # another process is ingesting; recovery is its business now
                self.catalogue = Catalogue(self._db_path)
                return
            self.store.clear_leftovers()
            if self._db_path.exists() and self._check_due() and not check(self._db_path):
                self._set_aside_damaged()
            self.catalogue = Catalogue(self._db_path)
            self._reconcile()
            self._checked()

    # --- ingest ---------------------------------------------------------------
    def ingest(self, path: Path, source: str = "cli", progress: Progress | None = None) -> Outcome:
        """Ingest one bag (folder or .tar) and say what became of it."""
        return ingest_one(self, Path(path), source, progress)

    def ingest_tree(self, root: Path, source: str = "usb", progress: Progress | None = None) -> list[Outcome]:
        """Ingest every bag found under `root` (a USB disk's folder)."""
        outcomes = [self.ingest(p, source, progress) for p in find_bags(Path(root))]
        self.index_pinyin()
        return outcomes

    def index_pinyin(self) -> int:
        """Index the pinyin of items published while pinyin could not be read at once; how many.

        A package waits for nobody's dictionary: when the box's pinyin child is still loading
        (about 1.5 s after a start), an item is published and found by hanzi and English at
        once, and by pinyin when the batch it came in is done (spool scan, USB import, command)."""
        try:
            return self.catalogue.index_pinyin()
        except Exception as e:  # the items are visible; their pinyin waits for the next try
            log.warning("event=pinyin_index_failed error=%r", e)
            return 0

    def software_package(self, item_id: str) -> tuple[Any, Path] | None:
        """A stored software package's record and folder (for the updater), or None."""
        from kiosk.library.record import parse_record

        row = self.catalogue.row(item_id)
        if row is None or row["kind"] != "software":
            return None
        folder = self.store.dir(item_id, row["version"])
        return parse_record((folder / "kiosk.json").read_bytes()), folder

    def software_ids(self) -> list[str]:
        """Ids of the stored software packages."""
        return sorted(r["id"] for r in self.catalogue.rows() if r["kind"] == "software")

    def reject(self, path: Path, source: str, code: str, detail: str = "") -> Outcome:
        """Quarantine a package without ingesting it (a spool bag that never completed: code "incomplete").

        `code` is a DESIGN.md reason, or a finer word ("incomplete") reported as bad_bag."""
        reason = code if code in REASONS else "bad_bag"
        with ingest_lock(self.cfg.data_dir):
            self._quarantine.add(Path(path), source, reason, detail, move=source == "spool", kind=code)
            outcome = Outcome(str(path), "rejected", None, None, reason, detail, {"code": code})
            self.catalogue.record_outcome(outcome, clock.now())
        return outcome

    # --- reading (the screens and the API) ----------------------------------------
    def items(self, category: str | None = None, q: str | None = None, limit: int = 50, offset: int = 0) -> list[Item]:
        """Visible items, newest first, or best match first when `q` is given."""
        limit, offset = max(0, min(int(limit), 1000)), max(0, int(offset))
        if q and q.strip():
            return self.catalogue.search(q.strip()[:100], category or None, limit, offset)
        return self.catalogue.listing(category or None, limit, offset)

    def words(self, letters: str, limit: int = 16) -> list[tuple[str, str]]:
        """The catalogue's own words (titles, tags) for typed pinyin or initials, for the on-screen keyboard."""
        return self.catalogue.words(letters, limit)

    def item(self, item_id: str) -> Item:
        """One visible item, or NotFound."""
        found = self.catalogue.visible(item_id)
        if found is None:
            raise NotFound(f"no item {item_id}")
        return found

    def categories(self) -> list[dict[str, Any]]:
        """[{"slug", "count", "newest"}] for every category with visible items ("other" included)."""
        return self.catalogue.categories()

    def media_path(self, item_id: str, version: int, path: str) -> tuple[Path, FileEntry]:
        """The file on disk and its entry, for a visible item's payload file; NotFound otherwise."""
        entry = self.catalogue.file_entry(item_id, int(version), path)
        if entry is None:
            raise NotFound(f"no file {path} in {item_id} version {version}")
        return self.store.media(item_id, int(version), entry.path), entry

    def mark_opened(self, item_id: str) -> None:
        """Note that an item was opened (least recently opened is evicted first)."""
        self.catalogue.mark_opened(item_id, clock.now())

    @contextmanager
    def opening(self, item_id: str) -> Iterator[None]:
        """Count an item as open (being served) so eviction leaves it alone."""
        with self._open.hold(item_id):
            yield

    # --- the administrator ------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """{"items", "bytes", "last_ingest", "quarantined", "free_bytes", "total_bytes"}."""
        items, size = self.catalogue.totals()
        free, total = self.store.usage()
        return {
            "items": items,
            "bytes": size,
            "last_ingest": self.catalogue.last_published(),
            "quarantined": self._quarantine.count(),
            "free_bytes": free,
            "total_bytes": total,
        }

    def recent(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest ingest outcomes, newest first."""
        return self.catalogue.history(limit)

    def quarantine(self) -> list[dict[str, Any]]:
        """Quarantined packages with reason code, plain-words reason and when."""
        return self._quarantine.entries()

    def pin(self, item_id: str, pinned: bool = True) -> None:
        """Keep an item from automatic eviction (or release it)."""
        if not self.catalogue.set_pinned(item_id, pinned):
            raise NotFound(f"no item {item_id}")

    def delete(self, item_id: str) -> None:
        """Remove an item from the screens and the store."""
        with ingest_lock(self.cfg.data_dir, wait=BUSY_WAIT_S) as held:
            if not held:
                raise KioskError("an import is running; try again when it has finished")
            row = self.catalogue.row(item_id)
            if row is None or row["kind"] != "item":
                raise NotFound(f"no item {item_id}")
            self._remove_rows([row], "deleted")

    # --- housekeeping (the scheduler) ----------------------------------------------
    def expire(self) -> list[str]:
        """Hide items past their expiry date; return their ids."""
        # Visibility is derived from the date at every query; this only reports the change.
        return self.catalogue.newly_expired()

    def evict(self) -> list[str]:
        """Remove whole packages until storage.min_free_percent is free; return their ids."""
        with ingest_lock(self.cfg.data_dir, wait=False) as held:
            if not held:  # an ingest is running and makes its own room; next time
                return []
            self._quarantine.prune()
            self.index_pinyin()  # anything an earlier batch left (a power cut, a failed child)
            free, total = self.store.usage()
            need = int(total * self.cfg.storage.min_free_percent / 100) - free
            if need <= 0:
                return []
            rows = eviction.choose(self.catalogue.rows(), need, today(), clock.now(), self._open.ids())
            self._remove_rows(rows, "evicted")
            return [r["id"] for r in rows]

    def close(self) -> None:
        """Close the catalogue's connections."""
        self.catalogue.close()

    @property
    def quarantine_dir(self) -> Path:
        """The quarantine folder (the spool watcher moves abandoned bags there)."""
        return self._quarantine.root

    # --- inside: used by ingest ---------------------------------------------------
    def _make_room(self, size: int, priority: int, label: str) -> None:
        """too_large or no_space unless `size` bytes fit with min_free_percent left (evicting if need be)."""
        free, total = self.store.usage()
        keep = int(total * self.cfg.storage.min_free_percent / 100)
        if size > self.cfg.storage.max_package_mb * MiB:
            raise PackageRejected("too_large", f"{size} bytes is over storage.max_package_mb ({self.cfg.storage.max_package_mb} MB)")
        if size > total - keep:
            raise PackageRejected("too_large", f"{size} bytes would not fit even on an empty disk")
        need = size + keep - free
        if need <= 0:
            return
        rows = eviction.choose(self.catalogue.rows(), need, today(), clock.now(), self._open.ids(), max_priority=priority)
        if sum(r["size"] for r in rows) < need:
            raise PackageRejected("no_space", f"{size} bytes needed, {max(0, free - keep)} bytes free above the reserve")
        log.info("event=evict_for_ingest package=%s need=%d ids=%s", label, need, ",".join(r["id"] for r in rows))
        self._remove_rows(rows, "evicted")
        free, _ = self.store.usage()
        if size + keep > free:
            raise PackageRejected("no_space", f"{size} bytes needed, {max(0, free - keep)} bytes free above the reserve")

    def _register(self, record: Any, target: Path, files: list[FileEntry], withdrawn: dict[str, int],
                  held: sqlite3.Row | None, published_at: float | None = None) -> None:
        """The catalogue transaction of a publication, then the superseded folders go."""
        now = clock.now() if published_at is None else published_at
        gone: list[sqlite3.Row] = []
        with self.catalogue.write() as db:
            self.catalogue.put(db, record, files, now, kind=_row_kind(record), with_pinyin=pinyin.ready())
            for wid, version in withdrawn.items():
                self.catalogue.withdraw(db, wid, version, record.id, now)
                row = db.execute("SELECT id, version, kind FROM items WHERE id = ?", (wid,)).fetchone()
                if row is not None and row["kind"] == "item" and row["version"] <= version:
                    self.catalogue.remove(db, wid)
                    gone.append(row)
        if held is not None and held["version"] != record.version:
            self.store.remove(record.id, held["version"])
        for row in gone:
            self.store.remove(row["id"], row["version"])

    def _remove_rows(self, rows: list[sqlite3.Row], why: str) -> None:
        for r in rows:
            # The folder goes first: after a power cut in between, recovery drops a row
            # without a folder, whereas a folder without a row would be registered again.
            self.store.remove(r["id"], r["version"])
            with self.catalogue.write() as db:
                self.catalogue.remove(db, r["id"])
            log.info("event=%s id=%s version=%s", why, r["id"], r["version"])

    # --- inside: recovery -----------------------------------------------------------
    # A full integrity check reads the whole catalogue (about a second for 100,000 items
    # here, more on a Pi), so it runs once per boot: SQLite survives a killed process,
    # and only a power cut (after which the box boots again) or a failing card damages it.
    def _check_due(self) -> bool:
        try:
            return (self.cfg.data_dir / CHECKED_FILE).read_text().strip() != _boot_id()
        except OSError:
            return True

    def _checked(self) -> None:
        boot = _boot_id()
        if boot:
            tmp = self.cfg.data_dir / (CHECKED_FILE + ".tmp")
            tmp.write_text(boot)
            os.replace(tmp, self.cfg.data_dir / CHECKED_FILE)

    def _set_aside_damaged(self) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(clock.now()))
        for suffix in ("", "-wal", "-shm"):
            p = Path(f"{self._db_path}{suffix}")
            if p.exists():
                os.replace(p, Path(f"{self._db_path}.damaged-{stamp}{suffix}"))
        log.warning("event=catalogue_rebuild reason=damaged path=%s", self._db_path)

    def _reconcile(self) -> None:
        """Make the catalogue and the store agree (both directions); the store wins."""
        from kiosk.library.record import parse_record

        # plain tuples and names: this runs at every open, over every package
        known = self.catalogue.keys()
        on_disk = set(self.store.names())
        for key in known:
            if key not in on_disk:
                log.warning("event=catalogue_row_without_folder id=%s version=%s", *key)
                with self.catalogue.write() as db:
                    self.catalogue.remove(db, key[0])
        # Recalls first, so that withdrawn items found below stay withdrawn.
        unknown = sorted((k for k in on_disk if k not in known),
                         key=lambda k: (not (self.store.dir(*k) / WITHDRAWN_FILE).exists(), k))
        for item_id, version in unknown:
            folder = self.store.dir(item_id, version)
            try:
                record = parse_record((folder / "kiosk.json").read_bytes())
                if record.id != item_id or record.version != version:
                    raise PackageRejected("bad_record", "record does not match its folder")
                row = self.catalogue.row(item_id)
                gone = self.catalogue.withdrawn_version(item_id)
                recall = record.is_recall
                if (row is not None and row["version"] >= version) or (not recall and gone is not None and version <= gone):
                    self.store.remove(item_id, version)
                    continue
                withdrawn = {}
                if recall:
                    withdrawn = json.loads((folder / WITHDRAWN_FILE).read_text(encoding="utf-8"))
                files = _files_of(folder)
                # the folder's time keeps the order of the screens' "newest first" in a rebuild
                self._register(record, folder, files, withdrawn, row, published_at=folder.stat().st_mtime)
                log.info("event=registered_from_store id=%s version=%s", item_id, version)
            except (OSError, ValueError, PackageRejected) as e:
                log.warning("event=store_folder_unreadable id=%s version=%s error=%s", item_id, version, e)
                self.store.remove(item_id, version)


def _row_kind(record: Any) -> str:
    """The catalogue's kind of a package's row: only "item" rows reach the screens or eviction."""
    if record.is_recall:
        return "recall"
    return "software" if record.is_software else "item"


def _boot_id() -> str:
    """This boot's id (Linux), or "" where there is none (then every open checks)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _files_of(folder: Path) -> list[FileEntry]:
    """A verified store folder's payload entries, from its manifest (no rehashing)."""
    out = []
    for line in (folder / "manifest-sha256.txt").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        digest, rel = line.split(None, 1)
        from kiosk.library.bag import decode_path

        rel = decode_path(rel.strip())
        if rel.startswith("./"):
            rel = rel[2:]
        if rel.startswith("*"):
            rel = rel[1:]
        p = folder / rel
        if p.is_file():  # listed system litter may be absent
            out.append(FileEntry(rel[5:], p.stat().st_size, digest.lower(), media_type(rel[5:])))
    return out


def find_bags(root: Path, depth: int = 3) -> list[Path]:
    """Bags under `root`: itself if it is one, else folders holding bagit.txt and .tar files (symlinks not followed)."""
    if root.is_file() or (root / "bagit.txt").exists() or root.is_symlink():
        return [root]
    if not root.is_dir():
        from kiosk.errors import KioskError

        raise KioskError(f"{root} is neither a bag, a .tar file nor a folder")
    found: list[Path] = []

    def walk(d: Path, level: int) -> None:
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError:
            return
        for e in entries:
            if e.name.startswith("."):
                continue
            p = Path(e.path)
            if e.is_dir(follow_symlinks=False):
                if (p / "bagit.txt").exists():
                    found.append(p)
                elif level < depth:
                    walk(p, level + 1)
            elif e.is_file(follow_symlinks=False) and e.name.lower().endswith(".tar"):
                found.append(p)

    walk(root, 1)
    return found
