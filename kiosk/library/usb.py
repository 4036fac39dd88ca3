"""Import from a USB disk or a disc: every bag in its `storage.usb_folder` folder.

The disk is only ever read (udev mounts it read-only; nothing here writes to it).
The library's ingest stages each package and publishes it by rename only after every
hash matched, so a disk pulled out mid-import leaves nothing half-done; inserting it
again resumes the import, the packages already here answering `unchanged` cheaply.

While an import runs, a small record in data_dir says how far it is (`progress()`,
for the device page) and what to tell villagers (`notice()`, for the touch screen).
The record is rewritten at most about once a second, to spare the SD card.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator

from kiosk import clock
from kiosk.config import Config
from kiosk.errors import KioskError
from kiosk.library.model import Outcome

log = logging.getLogger(__name__)

RECORD = "usb-import.json"
LOCK = "usb-import.lock"
WRITE_EVERY_S = 1.0
NOTICE_FOR_S = 600.0  # the touch screen shows the result this long after the import ended
MEDIA_ROOTS = ("/run/kiosk-usb", "/media", "/run/media", "/mnt")  # the first: kiosk-usb-import@.service


def content_folder(cfg: Config, path: Path) -> Path | None:
    """The folder to import: `<path>/<usb_folder>`, or `path` itself when it is that folder; None otherwise."""
    path = Path(path)
    if (path / cfg.storage.usb_folder).is_dir():
        return path / cfg.storage.usb_folder
    if path.name == cfg.storage.usb_folder and path.is_dir():
        return path
    return None  # a disk without our folder is someone's own disk: leave it alone


def import_folder(cfg: Config, library: Any, path: Path, stop: threading.Event | None = None,
                  on_outcome: Callable[[Outcome], None] | None = None,
                  on_progress: Callable[[int, int, str], None] | None = None) -> list[Outcome]:
    """Import every bag on a disk (given its mount point or its kiosk folder); one import at a time.

    `stop` ends the import after the package being read (SIGTERM); `on_outcome` hears each
    answer; `on_progress(done, total, label)` hears the bytes of the whole disk (a terminal)."""
    from kiosk.library import find_bags

    folder = content_folder(cfg, path)
    if folder is None:
        log.info("event=usb_no_content_folder path=%s folder=%s", path, cfg.storage.usb_folder)
        return []
    with _single(cfg):
        bags = find_bags(folder)
        sizes = [_size(b) for b in bags]
        record: dict[str, Any] = {
            "state": "importing", "folder": str(folder), "started": clock.now(), "finished": None,
            "bags": len(bags), "bag": 0, "done_bytes": 0, "total_bytes": sum(sizes), "label": "",
            "counts": {}, "rejected": [],
        }
        _write(cfg, record)
        last = [clock.monotonic()]
        before = [0]

        def write_now_and_then() -> None:
            if clock.monotonic() - last[0] >= WRITE_EVERY_S:
                last[0] = clock.monotonic()
                _write(cfg, record)

        def progress(done: int, total: int, label: str) -> None:
            record.update(done_bytes=before[0] + done, label=label)
            if on_progress is not None:
                on_progress(record["done_bytes"], record["total_bytes"], label)
            write_now_and_then()

        log.info("event=usb_import_started folder=%s bags=%d bytes=%d", folder, len(bags), record["total_bytes"])
        outcomes: list[Outcome] = []
        try:
            for n, (bag, size) in enumerate(zip(bags, sizes), 1):
                if not _readable(folder):
                    record["error"] = "the disk was removed"
                    break
                if stop is not None and stop.is_set():
                    record["error"] = "stopped"
                    break
                record.update(bag=n, label=bag.name)
                write_now_and_then()  # small bags may finish without a progress call of their own
                outcomes.append(library.ingest(bag, source="usb", progress=progress))
                if on_outcome is not None:
                    on_outcome(outcomes[-1])
                before[0] += size
                record["done_bytes"] = before[0]
        except OSError as e:  # the disk went away or cannot be read
            record["error"] = str(e)
        except BaseException as e:  # a fault of the box, not of a bag: the record must not say "done"
            record["error"] = f"the import stopped on an error: {e!r}"[:500]
            raise
        finally:
            record["counts"] = dict(Counter(o.outcome for o in outcomes))
            record["rejected"] = [o.to_json() for o in outcomes if o.rejected][:50]
            record["finished"] = clock.now()
            record["state"] = "interrupted" if "error" in record or not _readable(folder) else "done"
            _write(cfg, record)
        log.info("event=usb_import_%s folder=%s counts=%s", record["state"], folder, record["counts"])
        library.index_pinyin()
        return outcomes


def _size(bag: Path) -> int:
    """Bytes of a bag, from names and sizes only (a .tar's own size)."""
    if not bag.is_dir():
        return bag.stat().st_size
    return sum(os.lstat(os.path.join(d, f)).st_size for d, _, files in os.walk(bag) for f in files)


def start_import(cfg: Config, library: Any, path: Path) -> threading.Thread:
    """Run `import_folder` in the background (the device page's "import" button)."""
    if is_running(cfg):
        raise KioskError("an import is already running")

    def run() -> None:
        try:
            import_folder(cfg, library, path)
        except Exception:  # logged; the record says what happened
            log.exception("event=usb_import_failed path=%s", path)

    t = threading.Thread(target=run, name="usb-import", daemon=True)
    t.start()
    return t


def candidates(cfg: Config, roots: tuple[str, ...] = MEDIA_ROOTS) -> list[Path]:
    """Mounted disks (/media/<disk> or /media/<user>/<disk>) that hold a `storage.usb_folder` folder."""
    found: list[Path] = []
    for root in map(Path, roots):
        for disk in _subdirs(root):
            if (disk / cfg.storage.usb_folder).is_dir():
                found.append(disk)
                continue
            found.extend(d for d in _subdirs(disk) if (d / cfg.storage.usb_folder).is_dir())
    return found


def _subdirs(path: Path) -> list[Path]:
    try:
        return sorted(p for p in path.iterdir() if p.is_dir())
    except OSError:
        return []


def progress(cfg: Config) -> dict[str, Any] | None:
    """The running or last import: state, folder, bytes done and total, counts, rejections; None if none yet."""
    record = _read(cfg)
    if record and record.get("state") == "importing" and not is_running(cfg):
        record["state"] = "interrupted"  # the importing process died (power cut, kill)
    return record


def notice(cfg: Config) -> dict[str, Any] | None:
    """What the touch screen should say about an import now, in zh-CN and en; None when nothing."""
    record = progress(cfg)
    if not record:
        return None
    state = record["state"]
    ended = record.get("finished") or record.get("updated") or 0  # a killed import never wrote "finished"
    if state != "importing" and clock.now() - ended > NOTICE_FOR_S:
        return None
    if state == "importing":
        total = record.get("total_bytes") or 0
        pct = int(100 * record.get("done_bytes", 0) / total) if total else 0
        return {"state": state, "percent": pct,
                "zh": f"正在从U盘导入新内容（{pct}%），请不要拔出U盘。",
                "en": f"Importing new content from the USB disk ({pct}%). Please do not remove it."}
    counts = record.get("counts", {})
    new = counts.get("published", 0)
    if state == "interrupted":
        return {"state": state, "percent": None,
                "zh": f"U盘导入没有完成（已导入 {new} 项）。请重新插入U盘，会接着导入。",
                "en": f"The USB import did not finish ({new} new). Insert the disk again to continue."}
    return {"state": state, "percent": 100,
            "zh": f"U盘导入完成：新增 {new} 项内容。" if new else "U盘导入完成：没有新内容。",
            "en": f"USB import finished: {new} new items." if new else "USB import finished: nothing new."}


def is_running(cfg: Config) -> bool:
    """Whether an import holds the lock now (in this process or another)."""
    try:
        fd = os.open(cfg.data_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases a lock we just took
    return False


@contextlib.contextmanager
def _single(cfg: Config) -> Iterator[None]:
    # flock, not a pid file: the kernel drops it when the process dies, even by SIGKILL
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(cfg.data_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise KioskError("another USB import is running; wait for it to finish") from None
        yield
    finally:
        os.close(fd)


def _readable(folder: Path) -> bool:
    try:
        os.listdir(folder)
        return True
    except OSError:
        return False


def _write(cfg: Config, record: dict[str, Any]) -> None:
    record["updated"] = clock.now()
    path = cfg.data_dir / RECORD
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


def _read(cfg: Config) -> dict[str, Any] | None:
    try:
        data = json.loads((cfg.data_dir / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
