"""Telecom sync: fetch what the centre's signed index lists and the box lacks.

The centre serves (see docs/channels.md):

    GET <centre.url>/api/v1/packages/index.json
        {"generated": <unix>, "packages": [{"id", "version", "size",
          "tagmanifest_sha256", "path": "/api/v1/packages/<id>-<version>.tar",
          "targets": optional, as in kiosk.json}]}
    GET <centre.url>/api/v1/packages/index.json.sig
        one line: base64 Ed25519 signature over the exact bytes of index.json

The index is trusted only when a key in storage.trust_dir verifies it, and an index
older than the last one accepted is refused (a replayed index could hide a recall).
Lines are metered: downloads happen only within sync.window hours and stop when
sync.daily_budget_mb is spent; a download cut off (budget, window, a dropped line,
SIGTERM) stays as a partial file under data_dir and resumes with an HTTP Range
request. A finished file must have the index's size and tag manifest hash before it
goes to `library.ingest(source="telecom")`; withdrawals are ordinary signed recall
packages in the index and need nothing special here. An entry's `targets` is the centre's
rollout of a package it cannot re-sign (a software release): an entry not for this point
is not downloaded (docs/updates.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import urllib3

from kiosk import clock
from kiosk.config import Config
from kiosk.errors import KioskError, NotFound, PackageRejected
from kiosk.library import signing
from kiosk.library.record import Targets, parse_targets
from kiosk.library.targets import is_target
from kiosk.library.model import Outcome

log = logging.getLogger(__name__)

INDEX = "/api/v1/packages/index.json"
STATE = "sync-state.json"
PARTIAL_DIR = "sync"
CHUNK = 256 * 1024
MAX_INDEX_BYTES = 8 << 20
ATTEMPTS = 3  # tries within one run while a dropped connection still makes progress
RETRY_LATER = {"no_space"}  # rejections that may go away; the rest are final for that package
RETRY_AFTER_S = 86400.0
_ID = re.compile(r"[a-z0-9._-]{1,64}")
_SHA = re.compile(r"[0-9a-f]{64}")
_lock = threading.Lock()


@dataclass(frozen=True)
class Entry:
    """One package the index lists."""

    id: str
    version: int
    size: int
    tagmanifest_sha256: str
    path: str
    targets: Targets | None = None  # the centre's rollout; None: every point

    @property
    def file_name(self) -> str:
        return f"{self.id}-{self.version}-{self.tagmanifest_sha256[:16]}.tar"


@dataclass
class Result:
    """What one sync run did."""

    skipped: str | None = None  # disabled, window, budget, stale_index, no_index
    outcomes: list[Outcome] = field(default_factory=list)
    downloaded: int = 0
    pending: int = 0


def run(cfg: Config, library: Any, stop: threading.Event | None = None, session: requests.Session | None = None) -> Result:
    """One look at the centre's index, fetching and ingesting what is missing within window and budget."""
    if not cfg.centre.url or not cfg.sync.enabled:
        return Result(skipped="disabled")
    stop = stop or threading.Event()
    with _lock:
        state = _load(cfg)
        own = session is None
        session = session or requests.Session()
        try:
            return _run(cfg, library, state, stop, session)
        except Exception as e:  # the line is down or the index was refused: the device page says so
            before = state.get("last_failure") if isinstance(state.get("last_failure"), dict) else {}
            ok_at = (state.get("last_run") or {}).get("at") or 0
            since = before.get("since") or before.get("at") if (before.get("at") or 0) > ok_at else None
            state["last_failure"] = {"at": clock.now(), "since": since or clock.now(), "code": failure_code(e),
                                     "detail": f"{type(e).__name__}: {e}"[:300]}
            raise
        finally:
            _save(cfg, state)
            if own:
                session.close()


def _run(cfg: Config, library: Any, state: dict[str, Any], stop: threading.Event, session: requests.Session) -> Result:
    result = Result()
    if not in_window(cfg.sync.window, clock.now()):
        result.skipped = "window"
        return result
    if _budget_left(cfg, state) <= 0:
        result.skipped = "budget"
        return result
    try:
        generated, entries = fetch_index(cfg, session, state)
    except NoIndex:
        result.skipped = "no_index"
        return result
    if generated < state.get("generated", 0):
        log.warning("event=sync_index_refused reason=older generated=%s last=%s", generated, state["generated"])
        result.skipped = "stale_index"
        return result
    state["generated"] = generated
    here = (cfg.point.id, cfg.point.township)
    wanted = [e for e in entries if is_target(e.targets, *here) and not _have(library, state, e)]
    # smallest first: recalls and small items get through a tight budget before a big video
    wanted.sort(key=lambda e: (e.size, e.id))
    _clear_partials(cfg, {e.file_name for e in wanted})
    result.pending = len(wanted)
    for entry in wanted:
        if stop.is_set():
            break
        if not in_window(cfg.sync.window, clock.now()):
            result.skipped = "window"
            break
        try:
            path = _download(cfg, state, entry, session, stop, result)
        except (requests.HTTPError, KioskError) as e:  # this package only; the others may be fine
            log.warning("event=sync_download_failed id=%s version=%s error=%r", entry.id, entry.version, str(e))
            continue
        if path is None:
            break
        outcome = _ingest(cfg, library, state, entry, path)
        result.outcomes.append(outcome)
        result.pending -= 1
    state["last_run"] = {"at": clock.now(), "skipped": result.skipped, "pending": result.pending,
                         "downloaded": result.downloaded, "outcomes": [o.to_json() for o in result.outcomes][-20:]}
    return result


def fetch_index(cfg: Config, session: requests.Session, state: dict[str, Any]) -> tuple[int, list[Entry]]:
    """The centre's index, its signature verified against the trust folder; KioskError otherwise."""
    base = cfg.centre.url.rstrip("/")
    timeout = cfg.sync.timeout_s
    body = _get_small(session, base + INDEX, timeout)
    sig = _get_small(session, base + INDEX + ".sig", timeout)
    _spend(state, cfg, len(body) + len(sig))
    try:
        signing.verify_signature(body, sig, cfg.path("storage.trust_dir"))
    except PackageRejected as e:
        raise IndexUntrusted(f"the centre's package index is not signed by a trusted key ({e.reason}: {e.detail})") from None
    try:
        doc = json.loads(body)
        generated = int(doc["generated"])
        entries = [_entry(p) for p in doc["packages"]]
    except (ValueError, KeyError, TypeError) as e:
        raise IndexMalformed(f"the centre's package index is malformed: {e}") from None
    return generated, entries


class IndexUntrusted(KioskError):
    """The index's signature verifies against no key in the trust folder."""


class IndexMalformed(KioskError, ValueError):
    """The index is too large or not the JSON the box expects."""


def failure_code(e: BaseException) -> str:
    """Why a look at the centre failed, as a code the device page has words for."""
    if isinstance(e, IndexUntrusted):
        return "untrusted_index"
    if isinstance(e, IndexMalformed):
        return "bad_index"
    if isinstance(e, requests.HTTPError):
        return "centre_error"
    if isinstance(e, (requests.ConnectionError, requests.Timeout, urllib3.exceptions.HTTPError)):
        return "line_down"
    return "failed"


def _entry(p: dict[str, Any]) -> Entry:
    try:
        targets = parse_targets(p["targets"]) if p.get("targets") is not None else None
    except PackageRejected as err:
        raise ValueError(err.detail) from None
    e = Entry(str(p["id"]), int(p["version"]), int(p["size"]), str(p["tagmanifest_sha256"]).lower(), str(p["path"]), targets)
    if not _ID.fullmatch(e.id) or e.version < 1 or e.size < 0 or not _SHA.fullmatch(e.tagmanifest_sha256):
        raise ValueError(f"bad entry {p!r}")
    # the index names files on the centre only: no other host, no climbing out
    if not e.path.startswith("/api/v1/packages/") or ".." in e.path or "//" in e.path or "?" in e.path:
        raise ValueError(f"bad path {e.path!r}")
    return e


class NoIndex(KioskError):
    """The centre publishes no package index (404): nothing to fetch, and nothing wrong."""


def _get_small(session: requests.Session, url: str, timeout: float) -> bytes:
    r = session.get(url, timeout=timeout, stream=True)
    try:
        if r.status_code == 404:
            log.info("event=sync_no_index url=%s", url)
            raise NoIndex(f"{url} is not there")
        r.raise_for_status()
        body = r.raw.read(MAX_INDEX_BYTES + 1, decode_content=True)
    finally:
        r.close()
    if len(body) > MAX_INDEX_BYTES:
        raise IndexMalformed(f"{url} is larger than {MAX_INDEX_BYTES} bytes")
    return body


def _have(library: Any, state: dict[str, Any], e: Entry) -> bool:
    """Handled before (published, even if evicted since; or refused), or a newer version is here."""
    done = state["done"].get(e.tagmanifest_sha256)
    if done is not None:
        return clock.now() < done.get("retry_at", float("inf"))
    try:
        return library.item(e.id).version >= e.version
    except NotFound:
        return False


def _download(cfg: Config, state: dict[str, Any], e: Entry, session: requests.Session, stop: threading.Event, result: Result) -> Path | None:
    """The whole file, resuming a partial one; None when cut off (budget, stop, line) for now."""
    part = partial_dir(cfg) / (e.file_name + ".part")
    part.parent.mkdir(parents=True, exist_ok=True)
    whole = part.with_suffix("")
    if whole.exists() and whole.stat().st_size == e.size:
        return whole  # downloaded before a stop or power cut, not yet ingested
    url = cfg.centre.url.rstrip("/") + e.path
    for _ in range(ATTEMPTS):
        have = part.stat().st_size if part.exists() else 0
        if have > e.size:
            part.unlink()
            have = 0
        if have == e.size:
            break
        left = _budget_left(cfg, state)
        if left <= 0:
            result.skipped = "budget"
            log.info("event=sync_budget_spent id=%s have=%d size=%d", e.id, have, e.size)
            return None
        got = _fetch_range(cfg, state, session, url, part, have, e.size, left, stop)
        result.downloaded += got
        if stop.is_set() or got == 0:
            return None  # stopping, or no progress at all: the partial file waits for the next run
    if not part.exists() or part.stat().st_size != e.size:
        return None
    os.replace(part, whole)
    return whole


def _fetch_range(cfg: Config, state: dict[str, Any], session: requests.Session, url: str, part: Path,
                 have: int, size: int, budget: int, stop: threading.Event) -> int:
    """Append bytes from `have` on to the partial file; returns bytes received (kept even when cut off)."""
    limit = min(size - have, budget)
    headers = {}
    if limit < size - have:  # ask only for what the budget allows: bytes in flight are paid for too
        headers["Range"] = f"bytes={have}-{have + limit - 1}"
    elif have:
        headers["Range"] = f"bytes={have}-"
    got = 0
    try:
        with session.get(url, headers=headers, stream=True, timeout=cfg.sync.timeout_s) as r:
            if r.status_code == 416:  # the partial file does not fit the centre's file: start again
                part.unlink(missing_ok=True)
                raise KioskError(f"{url}: range {have}- not satisfiable; the partial download was dropped")
            if r.status_code == 200 and have:
                have = 0  # the server ignored Range: start again
                limit = min(size, budget)
            elif r.status_code == 206:
                if not r.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
                    raise KioskError(f"{url}: the server answered another range: {r.headers.get('Content-Range')}")
            else:
                r.raise_for_status()
                if r.status_code != 200:
                    raise KioskError(f"{url}: unexpected status {r.status_code}")
            with open(part, "r+b" if have else "wb") as f:
                f.seek(have)
                f.truncate()
                try:
                    while got < limit and not stop.is_set():
                        # read1 hands over what has arrived; a fixed-size read would throw away
                        # the bytes of a chunk cut short when the line drops
                        chunk = r.raw.read1(min(CHUNK, limit - got))
                        if not chunk:
                            break
                        f.write(chunk)
                        got += len(chunk)
                finally:
                    f.flush()
                    os.fsync(f.fileno())
    except requests.HTTPError:
        raise  # the centre answered, with an error about this package
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
            urllib3.exceptions.HTTPError, OSError) as e:
        log.warning("event=sync_cut_off url=%s at=%d error=%r", url, have + got, str(e))
    finally:
        _spend(state, cfg, got)
        _save(cfg, state)  # the budget spent must survive a power cut
    return got


def _ingest(cfg: Config, library: Any, state: dict[str, Any], e: Entry, path: Path) -> Outcome:
    """Check the file against the index, ingest it, and remember the answer."""
    try:
        if path.stat().st_size != e.size or _tagmanifest_sha256(path) != e.tagmanifest_sha256:
            outcome = Outcome(source="telecom", outcome="rejected", id=e.id, version=e.version, reason="bad_hash",
                              detail="the downloaded file does not match the centre's index")
        else:
            outcome = library.ingest(path, source="telecom")
    finally:
        path.unlink(missing_ok=True)
    done = {"id": e.id, "version": e.version, "outcome": outcome.outcome, "reason": outcome.reason, "at": clock.now()}
    if outcome.rejected and outcome.reason in RETRY_LATER:
        done["retry_at"] = clock.now() + RETRY_AFTER_S  # not every hour: each try costs the download
    state["done"][e.tagmanifest_sha256] = done
    log.info("event=sync_ingested id=%s version=%s outcome=%s reason=%s", e.id, e.version, outcome.outcome, outcome.reason)
    return outcome


def _tagmanifest_sha256(path: Path) -> str | None:
    """Hash of the tar's tagmanifest-sha256.txt (top level or in the one folder), read without extracting."""
    try:
        with tarfile.open(path, mode="r:") as tar:
            for m in tar:
                parts = m.name.lstrip("./").split("/")
                if m.isreg() and parts[-1] == "tagmanifest-sha256.txt" and len(parts) <= 2:
                    f = tar.extractfile(m)
                    return hashlib.sha256(f.read()).hexdigest() if f else None
    except (tarfile.TarError, OSError):
        return None
    return None


# --- window and budget --------------------------------------------------------


def in_window(window: str, now: float) -> bool:
    """Whether downloading is allowed at `now` (local hours "22-06" wrap midnight; empty: always)."""
    window = window.strip()
    if not window:
        return True
    start, end = (int(x) for x in window.split("-"))
    hour = time.localtime(now).tm_hour
    if start == end:
        return True
    return start <= hour < end if start < end else hour >= start or hour < end


def _today(now: float) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(now))


def _budget_left(cfg: Config, state: dict[str, Any]) -> int:
    if state.get("day") != _today(clock.now()):
        state["day"], state["used"] = _today(clock.now()), 0
    return cfg.sync.daily_budget_mb * 1024 * 1024 - state["used"]


def _spend(state: dict[str, Any], cfg: Config, n: int) -> None:
    _budget_left(cfg, state)  # rolls the day over first
    state["used"] += n


# --- state --------------------------------------------------------------------


def partial_dir(cfg: Config) -> Path:
    """Where partial downloads wait to be resumed."""
    return cfg.data_dir / PARTIAL_DIR


def _clear_partials(cfg: Config, keep: set[str]) -> None:
    """Drop partial files of packages the index no longer lists (replaced or withdrawn)."""
    try:
        names = os.listdir(partial_dir(cfg))
    except FileNotFoundError:
        return
    for name in names:
        if name.removesuffix(".part") not in keep:
            (partial_dir(cfg) / name).unlink(missing_ok=True)


def _load(cfg: Config) -> dict[str, Any]:
    try:
        state = json.loads((cfg.data_dir / STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        state = {}
    if not isinstance(state, dict):
        state = {}
    state.setdefault("done", {})
    state.setdefault("used", 0)
    state.setdefault("day", "")
    return state


def _save(cfg: Config, state: dict[str, Any]) -> None:
    # keep the memory of handled packages bounded: the newest 5,000 are plenty
    if len(state["done"]) > 5000:
        newest = sorted(state["done"].items(), key=lambda kv: kv[1].get("at", 0))[-5000:]
        state["done"] = dict(newest)
    path = cfg.data_dir / STATE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(state, f, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


_PARTIAL_NAME = re.compile(r"(?P<id>.+)-(?P<version>[0-9]+)-[0-9a-f]{16}\.tar(?P<part>\.part)?")


def status(cfg: Config) -> dict[str, Any]:
    """For the device page: budget used today, the last run, downloads waiting, the last problem."""
    state = _load(cfg)
    now = clock.now()
    used = state["used"] if state.get("day") == _today(now) else 0
    try:
        partial = sorted(os.listdir(partial_dir(cfg)))
    except FileNotFoundError:
        partial = []
    files = []
    for name in partial:
        m = _PARTIAL_NAME.fullmatch(name)
        try:
            st = (partial_dir(cfg) / name).stat()
        except OSError:
            continue  # finished or dropped while we looked
        files.append({"name": name, "id": m["id"] if m else name, "version": int(m["version"]) if m else None,
                      "bytes": st.st_size, "at": st.st_mtime, "whole": bool(m) and not m["part"]})
    last_run = state.get("last_run") if isinstance(state.get("last_run"), dict) else None
    return {
        "enabled": bool(cfg.centre.url and cfg.sync.enabled),
        "window": cfg.sync.window,
        "in_window": in_window(cfg.sync.window, now),
        "interval_s": cfg.sync.interval_s,
        "budget_bytes": cfg.sync.daily_budget_mb * 1024 * 1024,
        "used_bytes": used,
        "last_run": last_run,
        "index_generated": state.get("generated"),
        "pending": (last_run or {}).get("pending", 0),
        "partial": partial,
        "partial_files": files,
        "last_error": _last_problem(state, last_run),
    }


def _last_problem(state: dict[str, Any], last_run: dict[str, Any] | None) -> dict[str, Any] | None:
    """The newest trouble the state file records: a refused index or a refused package."""
    found: list[dict[str, Any]] = []
    failure = state.get("last_failure")
    if isinstance(failure, dict) and (failure.get("at") or 0) > ((last_run or {}).get("at") or 0):
        found.append({"at": failure.get("at"), "since": failure.get("since") or failure.get("at"),
                      "code": failure.get("code") or "failed", "id": None, "version": None,
                      "detail": failure.get("detail", "")})
    if last_run and last_run.get("skipped") == "stale_index":
        found.append({"at": last_run.get("at"), "code": "stale_index", "id": None, "version": None,
                      "detail": "the centre's index was older than the last one accepted"})
    refused = [d for d in state["done"].values() if isinstance(d, dict) and d.get("outcome") == "rejected"]
    if refused:
        d = max(refused, key=lambda d: d.get("at") or 0)
        found.append({"at": d.get("at"), "code": d.get("reason"), "id": d.get("id"), "version": d.get("version"),
                      "detail": f"{d.get('id')} v{d.get('version')} was refused: {d.get('reason')}"})
    return max(found, key=lambda p: p.get("at") or 0) if found else None
