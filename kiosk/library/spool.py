"""The satellite spool: take bags the receiver writes, once they are whole.

The receiver writes each bag as a folder (or a .tar file) under storage.spool_dir,
file by file, in any order, repeated by the broadcast carousel, sometimes never
finished. `scan()` looks once and acts (DESIGN.md, "Content packages"):

- a bag is taken once every file its manifests list is present and no file has
  changed size for storage.spool_settle_s, or at once when the Payload-Oxum of
  bag-info.txt is reached (and its tag files and signature check out, so a
  half-written tag manifest is never taken early);
- taking a bag first renames it to a hidden `.taking-<name>` (so a carousel repeat
  starting meanwhile lands in a fresh folder), then hands it to `library.ingest(...,
  source="spool")`, which publishes by rename or answers `unchanged` for a repeat
  without hashing its payload; the spool entry is removed either way;
- a bag still incomplete after storage.spool_stale_s is reported (logged, and listed
  by `status()` for the device page) and moved to quarantine, never deleted.

What the watcher knows (when each entry was first seen, when its sizes last changed)
lives in a small JSON file in data_dir, so a restart neither forgets an abandoned bag
nor takes a growing one early. Only names, sizes and the small tag files are read
here; the payload is the library's business.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from kiosk import clock
from kiosk.config import Config
from kiosk.errors import KioskError
from kiosk.library.model import Outcome

log = logging.getLogger(__name__)

STATE_FILE = "spool-state.json"
CLAIM = ".taking-"
MAX_TAG_BYTES = 16 << 20  # tag files larger than this are not hashed for the early take
SPARSE_SLACK = 64 * 1024  # file systems may keep small files inline or compressed: only a real hole counts
MAX_FAILURES = 3  # an entry whose ingest raised this often is quarantined, not retried forever
HOLD_MAX_S = 3600.0  # longest pause between asks for a bag the library says is still arriving
KEEP_REPORTS = 50  # abandoned and recent outcomes kept for the device page
_MANIFEST = re.compile(r"(tag)?manifest-([A-Za-z0-9]+)\.txt")
_LINE = re.compile(r"([0-9A-Fa-f]+)[ \t]+\*?(?:\./)?(.+)")
_OXUM = re.compile(r"^payload-oxum:\s*([0-9]+)\.([0-9]+)\s*$", re.I | re.M)
_PCT = re.compile(r"%(0[AaDd]|25)")
_lock = threading.Lock()  # one scan at a time per process (the scheduler and "check now")
# the bag being taken now: the device page runs in the scheduler's process, so memory will
# do (no writes to the SD card for a progress figure)
_taking: dict[str, Any] = {}


@dataclass
class Look:
    """What one look at a spool entry found, without reading payload bytes."""

    files: dict[str, int]
    fingerprint: str
    listed: int = 0
    missing: int = 0
    complete: bool = False
    oxum_reached: bool = False

    @property
    def bytes(self) -> int:
        """Bytes received so far."""
        return sum(self.files.values())


def scan(cfg: Config, library: Any, stop: threading.Event | None = None) -> list[Outcome]:
    """Look at the spool once: take complete bags, quarantine abandoned ones; return the outcomes."""
    spool = cfg.path("storage.spool_dir")
    spool.mkdir(parents=True, exist_ok=True)
    with _lock:
        state = _load(cfg)
        before = json.dumps(state, sort_keys=True)
        outcomes: list[Outcome] = []
        try:
            _scan(cfg, library, state, spool, outcomes, stop)
        finally:
            if json.dumps(state, sort_keys=True) != before:
                _save(cfg, state)
        if any(o.outcome == "published" for o in outcomes):
            library.index_pinyin()
        return outcomes


def _scan(cfg: Config, library: Any, state: dict[str, Any], spool: Path, outcomes: list[Outcome], stop: threading.Event | None) -> None:
    for claimed in sorted(p for p in spool.iterdir() if p.name.startswith(CLAIM)):
        # a take interrupted by a stop or a power cut: finish it first
        if stop is not None and stop.is_set():
            return
        taken = _take(cfg, library, state, claimed, claimed.name[len(CLAIM):])
        if taken is not None:
            outcomes.append(taken)
    seen: set[str] = set()
    for path in sorted(spool.iterdir()):
        if stop is not None and stop.is_set():
            return
        name = path.name
        if name.startswith("."):
            continue  # hidden: claimed entries and receivers' temporary files
        seen.add(name)
        outcome = _consider(cfg, library, state, path)
        if outcome is not None:
            outcomes.append(outcome)
    for name in list(state["entries"]):
        if name not in seen and not (spool / name).exists():
            del state["entries"][name]


def _consider(cfg: Config, library: Any, state: dict[str, Any], path: Path) -> Outcome | None:
    """Take, abandon or keep waiting for one spool entry."""
    now = clock.now()
    try:
        look = look_at(path, cfg.path("storage.trust_dir"))
    except FileNotFoundError:
        return None  # vanished while we looked
    entry = state["entries"].get(path.name)
    if entry is None:
        entry = state["entries"][path.name] = {"first_seen": now, "changed": now, "fp": look.fingerprint}
        log.info("event=spool_arriving name=%s", path.name)
    if entry["fp"] != look.fingerprint:
        entry["fp"], entry["changed"] = look.fingerprint, now
        entry.pop("hold_until", None)  # something arrived: worth a new look at once
    # the wall clock of a box without a real-time clock can jump back: never wait longer for it
    entry["first_seen"] = min(entry["first_seen"], now)
    entry["changed"] = min(entry["changed"], now)
    entry.update(bytes=look.bytes, files=len(look.files), listed=look.listed, missing=look.missing)
    settled = now - entry["changed"] >= cfg.storage.spool_settle_s
    if look.complete and (look.oxum_reached or settled) and now >= entry.get("hold_until", 0):
        claimed = path.with_name(CLAIM + path.name)
        if claimed.exists():
            return None  # an earlier take of this name is still unresolved
        os.rename(path, claimed)
        return _take(cfg, library, state, claimed, path.name)
    if now - entry["first_seen"] >= cfg.storage.spool_stale_s:
        state["entries"].pop(path.name, None)
        detail = f"still incomplete after {cfg.storage.spool_stale_s:.0f} s: {look.missing} listed files missing, {look.bytes} bytes received"
        return _abandon(cfg, library, state, path, path.name, "incomplete", detail)
    return None


def _take(cfg: Config, library: Any, state: dict[str, Any], claimed: Path, name: str) -> Outcome | None:
    """Ingest a claimed entry, then remove what is left of it (or put it back if still arriving)."""

    def progress(done: int, total: int, label: str) -> None:
        _taking.update(done_bytes=done, total_bytes=total, label=label)

    _taking.clear()
    _taking.update(name=name, since=clock.now(), done_bytes=0, total_bytes=0, label="")
    try:
        outcome = library.ingest(claimed, source="spool", progress=progress)
    except Exception as e:  # a broken bag must not stop the spool: count, and give up after a few
        failures = state["failures"].get(name, 0) + 1
        state["failures"][name] = failures
        log.exception("event=spool_ingest_failed name=%s failures=%d", name, failures)
        if failures < MAX_FAILURES:
            return None  # left claimed; the next scan tries again
        state["failures"].pop(name, None)
        state["entries"].pop(name, None)
        return _abandon(cfg, library, state, claimed, name, "bad_bag", f"ingest failed {failures} times: {e}")
    finally:
        _taking.clear()
    state["failures"].pop(name, None)
    if outcome.outcome == "waiting":
        # the library saw something still missing: hand the entry back to the watcher,
        # keeping when it was first seen so that it still goes stale in time
        back = claimed.with_name(name)
        if claimed.exists() and not back.exists():
            os.rename(claimed, back)
        now = clock.now()
        entry = state["entries"].setdefault(name, {"first_seen": now, "changed": now, "fp": ""})
        # ask again less and less often until something changes (not every few seconds for a day)
        waits = entry["waits"] = entry.get("waits", 0) + 1
        entry["hold_until"] = now + min(cfg.storage.spool_settle_s * 2 ** waits, HOLD_MAX_S)
        (log.info if waits == 1 else log.debug)("event=spool_waiting name=%s detail=%r", name, outcome.detail)
        return outcome
    _remove(claimed)
    state["entries"].pop(name, None)
    _report(state, "recent", {"name": name, "at": clock.now(), **outcome.to_json()})
    log.info("event=spool_taken name=%s outcome=%s id=%s version=%s reason=%s", name, outcome.outcome, outcome.id, outcome.version, outcome.reason)
    return outcome


def _abandon(cfg: Config, library: Any, state: dict[str, Any], path: Path, name: str, code: str, detail: str) -> Outcome:
    """Move an entry that will never be taken into quarantine, with its reason."""
    outcome = library.reject(path, "spool", code, detail)
    if path.exists() or path.is_symlink():  # quarantine could not move it: keep it out of the watcher's way
        os.rename(path, path.with_name(f".abandoned-{name}"))
    _report(state, "abandoned", {"name": name, "at": clock.now(), "code": code, "detail": detail})
    log.warning("event=spool_abandoned name=%s code=%s detail=%r", name, code, detail)
    return outcome


def look_at(path: Path, trust_dir: Path | None = None) -> Look:
    """Sizes of an entry's files and whether it is complete, reading only small tag files."""
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        # a .tar is judged by its size settling alone; anything else never completes
        files = {"": st.st_size}
        return Look(files, _fingerprint(files), complete=path.suffix == ".tar" and stat.S_ISREG(st.st_mode) and st.st_size > 0)
    holes: list[str] = []
    files = _sizes(path, holes)
    # a file with holes being filled keeps its size: its blocks on disk say it is changing
    look = Look(files, _fingerprint(files, holes))
    manifests = [n for n in files if _MANIFEST.fullmatch(n)]
    if "bagit.txt" not in files or not any(not n.startswith("tag") for n in manifests):
        look.missing = 1
        return look
    listed: dict[str, dict[str, str]] = {}
    for name in manifests:
        alg = _MANIFEST.fullmatch(name).group(2).lower()  # type: ignore[union-attr]
        for rel, digest in _entries(path / name):
            listed.setdefault(rel, {})[alg] = digest
    look.listed = len(listed)
    look.missing = sum(1 for rel in listed if rel not in files)
    look.complete = look.missing == 0
    if look.complete:
        # a file of full size with holes is still being filled: only the settle rule may take it
        look.oxum_reached = not holes and _oxum_reached(path, files) and _tags_check_out(path, files, listed, trust_dir)
    return look


def _sizes(root: Path, holes: list[str] | None = None) -> dict[str, int]:
    """Every non-folder under root (relative path -> size); links and devices count with size 0.

    Files with holes (fewer blocks on disk than their size) are added to `holes`: a
    receiver that writes blocks out of order into a file of full size makes one."""
    out: dict[str, int] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        for fn in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            rel = fn if rel_dir == "." else f"{rel_dir}/{fn}".replace(os.sep, "/")
            try:
                s = os.lstat(os.path.join(dirpath, fn))
            except FileNotFoundError:
                continue
            out[rel] = s.st_size if stat.S_ISREG(s.st_mode) else 0
            if holes is not None and stat.S_ISREG(s.st_mode) and s.st_blocks * 512 + SPARSE_SLACK < s.st_size:
                holes.append(f"{rel}\0{s.st_blocks}")
    return out


def _fingerprint(files: dict[str, int], holes: Iterable[str] = ()) -> str:
    h = hashlib.sha1()
    for rel in sorted(files):
        h.update(f"{rel}\0{files[rel]}\n".encode("utf-8", "surrogateescape"))
    for hole in sorted(holes):
        h.update(f"{hole}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def _entries(manifest: Path) -> list[tuple[str, str]]:
    """(path, digest) of each well-formed manifest line; a half-written last line lists a missing file."""
    # Hand-written rather than bag.open_bag: that one rightly refuses a bag still being
    # written, while the watcher must read what is there so far without judging it.
    try:
        if manifest.stat().st_size > MAX_TAG_BYTES:
            return []
        text = manifest.read_bytes().decode("utf-8", "surrogateescape")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        m = _LINE.fullmatch(line)
        if m:
            rel = _PCT.sub(lambda p: chr(int(p.group(1), 16)), m.group(2).rstrip("\r"))
            out.append((rel, m.group(1).lower()))
    return out


def _oxum_reached(path: Path, files: dict[str, int]) -> bool:
    try:
        text = (path / "bag-info.txt").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    m = _OXUM.search(text)
    if not m:
        return False
    payload = [s for rel, s in files.items() if rel.startswith("data/")]
    return (sum(payload), len(payload)) == (int(m.group(1)), int(m.group(2)))


def _tags_check_out(path: Path, files: dict[str, int], listed: dict[str, dict[str, str]], trust_dir: Path | None) -> bool:
    """The early take's guard: every tag file matches the tag manifest and the signature verifies."""
    tags = {rel: d for rel, d in listed.items() if not rel.startswith("data/")}
    if not tags or any(files.get(rel, MAX_TAG_BYTES + 1) > MAX_TAG_BYTES for rel in tags):
        return False
    for rel, digests in tags.items():
        data = (path / rel).read_bytes()
        for alg, want in digests.items():
            if alg in hashlib.algorithms_guaranteed and hashlib.new(alg, data).hexdigest() != want:
                return False
    if trust_dir is None or "tagmanifest-sha256.txt" not in files:
        return True
    from kiosk.library import signing

    try:
        signing.verify_signature((path / "tagmanifest-sha256.txt").read_bytes(), (path / signing.SIGNATURE_FILE).read_bytes(), trust_dir)
    except (KioskError, OSError):
        return False  # not (yet) verifiable: the settle rule decides, and ingest gives the reason
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _report(state: dict[str, Any], key: str, record: dict[str, Any]) -> None:
    state[key] = ([record] + state[key])[:KEEP_REPORTS]


# --- state ------------------------------------------------------------------


def _state_path(cfg: Config) -> Path:
    return cfg.data_dir / STATE_FILE


def _load(cfg: Config) -> dict[str, Any]:
    state: dict[str, Any] = {}
    try:
        state = json.loads(_state_path(cfg).read_text(encoding="utf-8"))
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as e:  # a damaged state file costs one settle period, nothing more
        log.warning("event=spool_state_unreadable error=%r", str(e))
    if not isinstance(state, dict):
        state = {}
    for key, empty in (("entries", {}), ("failures", {}), ("abandoned", []), ("recent", [])):
        if not isinstance(state.get(key), type(empty)):
            state[key] = empty
    return state


def _save(cfg: Config, state: dict[str, Any]) -> None:
    """Write the state atomically (a power cut leaves the old file or the new one)."""
    path = _state_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(state, f, ensure_ascii=False, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def status(cfg: Config) -> dict[str, Any]:
    """For the device page: bags arriving, the one being published now (in this process),
    bags given up on (in quarantine), and recent takes."""
    state = _load(cfg)
    now = clock.now()
    waiting = [
        {
            "name": name,
            "first_seen": e.get("first_seen"),
            "age_s": max(0.0, now - e.get("first_seen", now)),
            "bytes": e.get("bytes", 0),
            "files": e.get("files", 0),
            "listed": e.get("listed", 0),
            "missing": e.get("missing", 0),
            "stale_in_s": max(0.0, e.get("first_seen", now) + cfg.storage.spool_stale_s - now),
        }
        for name, e in sorted(state["entries"].items())
    ]
    taking = dict(_taking) or None
    return {"waiting": waiting, "taking": taking, "abandoned": state["abandoned"], "recent": state["recent"]}
