"""Local content up to the county centre: a resumable upload, within the day's budget and the sync window.

Each waiting local package (kiosk/library/local.py) goes up in pieces of PIECE_BYTES:
the box asks the centre to begin (or resume) the upload and learns how many bytes
it already has, then sends each next piece at that offset, every request signed
with the point's secret through the one client (kiosk/uplink/client.py). A dropped
line or a restart costs at most the piece in flight: the centre keeps every whole
piece, and the next run resumes from its offset. Bytes sent count against
uplink.upload_daily_mb (saved after each piece, so a power cut does not reset
it); uploading waits for sync.window like downloading. See docs/uplink.md.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from kiosk import clock
from kiosk.config import Config
from kiosk.library.local import LocalBook
from kiosk.uplink.client import CentreClient, UplinkError
from kiosk.uplink.sync import in_window

log = logging.getLogger(__name__)

PIECE_BYTES = 256 * 1024  # at 1 Mbit/s a piece is 2 s: a cut line loses little, and requests stay few
STATE = "upload-state.json"
BEGIN_PATH = "/api/v1/uploads"
# refusals that will not change by trying again: the package is marked refused by the centre
FINAL = {"not_yours", "too_large", "duplicate", "bad_hash", "bad_record", "bad_bag", "bad_signature", "untrusted"}


def run(cfg: Config, stop: threading.Event | None = None, client: CentreClient | None = None) -> dict[str, Any]:
    """Send what waits, oldest first, until done, out of budget or window, or the line fails."""
    stop = stop or threading.Event()
    result: dict[str, Any] = {"sent_bytes": 0, "done": [], "skipped": None, "at": clock.now()}
    if not cfg.centre.url:
        result["skipped"] = "no uplink"
        return result
    state = _load(cfg)
    own = client is None
    client = client or CentreClient(cfg)
    try:
        with LocalBook(cfg) as book:
            for entry in book.waiting():
                if stop.is_set():
                    result["skipped"] = "stop"
                    break
                if not in_window(cfg.sync.window, clock.now()):
                    result["skipped"] = "window"
                    break
                if _budget_left(cfg, state) <= 0:
                    result["skipped"] = "budget"
                    break
                if not _send(cfg, book, client, entry, state, stop, result):
                    break
        state["last_error"] = result.get("error")
        if result.get("error"):
            state["last_error_at"] = clock.now()
    finally:
        state["current"] = None
        state["last_run"] = {k: result[k] for k in ("sent_bytes", "done", "skipped", "at")}
        _save(cfg, state)
        if own:
            client.close()
    if result["sent_bytes"] or result["done"]:
        log.info("job=local_upload sent_bytes=%d done=%s skipped=%s", result["sent_bytes"], ",".join(result["done"]) or "-",
                 result["skipped"] or "-")
    return result


def _send(cfg: Config, book: LocalBook, client: CentreClient, entry: dict[str, Any], state: dict[str, Any],
          stop: threading.Event, result: dict[str, Any]) -> bool:
    """Upload one package from where the centre stands; False when the run must end."""
    item_id, version = entry["id"], entry["version"]
    path = book.package_path(item_id, version)
    if not path.is_file():
        log.error("event=local_package_missing id=%s path=%s", item_id, path)
        book.apply_decisions({item_id: {"state": "rejected", "reason": "本机找不到这个内容的文件，请重新添加 / the package file is gone; add it again"}})
        return True
    size = path.stat().st_size
    begin = json.dumps({"id": item_id, "version": version, "size": size, "sha256": book.package_sha256(item_id, version)}).encode()
    answer = _call(client, "POST", BEGIN_PATH, begin, result, item_id, book)
    if answer is None:
        return result.get("error") is None
    offset = int(answer.get("offset") or 0)
    with open(path, "rb") as f:
        while answer.get("state") == "receiving" and offset < size:
            if stop.is_set():
                result["skipped"] = "stop"
                return False
            if not in_window(cfg.sync.window, clock.now()):
                result["skipped"] = "window"
                return False
            left = _budget_left(cfg, state)
            if left <= 0:
                result["skipped"] = "budget"
                return False
            f.seek(offset)
            piece = f.read(min(PIECE_BYTES, left, size - offset))
            state["current"] = {"id": item_id, "title": entry["title"], "sent": offset, "size": size, "at": clock.now()}
            _spend(state, cfg, len(piece))  # bytes on the wire are paid for even when the line drops
            _save(cfg, state)
            answer = _call(client, "PATCH", f"{BEGIN_PATH}/{item_id}?offset={offset}", piece, result, item_id, book,
                           {"Content-Type": "application/offset+octet-stream"})
            if answer is None:
                return result.get("error") is None
            result["sent_bytes"] += len(piece)
            offset = int(answer.get("offset") or 0)
            book.set_sent_bytes(item_id, offset)
    if answer.get("state") in ("pending", "approved", "rejected"):
        book.mark_sent(item_id)
        if answer["state"] != "pending":
            book.apply_decisions({item_id: {"state": answer["state"], "reason": answer.get("reason") or ""}})
        result["done"].append(item_id)
    return True


def _call(client: CentreClient, method: str, path: str, body: bytes, result: dict[str, Any], item_id: str,
          book: LocalBook, headers: dict[str, str] | None = None) -> dict[str, Any] | None:
    """The centre's JSON answer; None on failure (result["error"] set when the run must end)."""
    try:
        r = client.signed(method, path, body, headers)
    except UplinkError as e:
        result["error"] = f"the line failed: {e}"
        return None
    try:
        data = r.json()
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    if r.status_code == 200:
        return data
    error = str(data.get("error") or f"HTTP {r.status_code}")
    detail = str(data.get("detail") or "")
    if r.status_code == 409 and error in ("offset", "replayed") and isinstance(data.get("offset"), int):
        book.set_sent_bytes(item_id, data["offset"])  # resume where the centre stands, next time round
        result["error"] = None
        return None
    if error in FINAL:
        log.error("event=local_upload_refused id=%s error=%s detail=%r", item_id, error, detail)
        book.apply_decisions({item_id: {"state": "rejected", "reason": f"县中心拒收 refused by the centre: {detail or error}"}})
        return None
    result["error"] = f"{error}: {detail}" if detail else error
    return None


# --- budget and state ----------------------------------------------------------------


def _today(now: float) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(now))


def _budget_left(cfg: Config, state: dict[str, Any]) -> int:
    if state.get("day") != _today(clock.now()):
        state["day"], state["used"] = _today(clock.now()), 0
    return cfg.uplink.upload_daily_mb * 1024 * 1024 - int(state.get("used") or 0)


def _spend(state: dict[str, Any], cfg: Config, n: int) -> None:
    _budget_left(cfg, state)  # rolls the day over first
    state["used"] = int(state.get("used") or 0) + n


def _load(cfg: Config) -> dict[str, Any]:
    try:
        state = json.loads((cfg.data_dir / STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        state = {}
    return state if isinstance(state, dict) else {}


def _save(cfg: Config, state: dict[str, Any]) -> None:
    path = cfg.data_dir / STATE
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(state, f, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)



def status(cfg: Config) -> dict[str, Any]:
    """For the device page: what is going up now, budget used today, window, the last problem."""
    state = _load(cfg)
    now = clock.now()
    used = int(state.get("used") or 0) if state.get("day") == _today(now) else 0
    return {
        "enabled": bool(cfg.centre.url),
        "current": state.get("current"),
        "budget_bytes": cfg.uplink.upload_daily_mb * 1024 * 1024,
        "used_bytes": used,
        "window": cfg.sync.window,
        "in_window": in_window(cfg.sync.window, now),
        "last_run": state.get("last_run"),
        "last_error": state.get("last_error"),
        "last_error_at": state.get("last_error_at"),
    }
