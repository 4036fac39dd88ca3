"""`kiosk uplink export DIR`: the outbox onto a USB disk, for a point without any line.

The files are the wire format itself (kiosk/wire.py): one signed gzip batch per
block of sequence numbers, so `kiosk centre import DIR` checks them exactly as
it checks a POST and stores each (point, seq) once. Export never deletes a
report from the outbox: a USB disk can be lost on the way. Reports leave the
outbox only when the centre has them: acknowledged over the line, or listed in
the signed `<point>.ack` file a centre's import may leave in DIR, which the next
export reads. Exporting the same outbox again writes byte-identical files, and
files on the disk only ever gain reports (see `_union`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any, Callable

from kiosk import clock, usbfolder, wire
from kiosk.config import Config
from kiosk.errors import KioskError
from kiosk.uplink.outbox import Outbox

log = logging.getLogger(__name__)


def read_ack(cfg: Config, dir_fd: int, box: Outbox) -> int:
    """Apply the centre's signed acknowledgement file in the folder, if any; return reports removed.

    Only an acknowledgement that verifies with this point's secret deletes anything.
    """
    name = f"{cfg.point.id}{wire.ACK_SUFFIX}"
    data = usbfolder.read(dir_fd, name, limit=wire.MAX_INFLATED_BYTES)
    if data is None:
        return 0
    try:
        acked = wire.decode_ack_file(data, cfg.point.id, cfg.centre.secret)
    except wire.WireError as e:
        log.warning("event=export_ack_refused name=%s error=%s", name, e)
        return 0
    before = box.depth()
    box.acknowledge(acked)
    return before - box.depth()


def export(
    cfg: Config,
    folder: Path,
    compose: Callable[[Outbox], Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Write every waiting report into `folder` as signed batch files; see the module docstring.

    `compose(box)` may add a fresh report first (the CLI writes a beat when the
    last one is older than a heartbeat interval, so usage and requests travel too).
    """
    if not cfg.centre.secret:
        raise KioskError("centre.secret is not set: the centre could not check the exported reports")
    folder = Path(folder)
    if not folder.parent.is_dir():
        raise KioskError(f"{folder.parent} does not exist (is the USB disk mounted?)")
    folder.mkdir(exist_ok=True)
    dir_fd = usbfolder.open_folder(folder)
    written = unchanged = reports = 0
    with contextlib.ExitStack() as closing, Outbox.of(cfg) as box:
        closing.callback(os.close, dir_fd)
        acked = read_ack(cfg, dir_fd, box)
        if compose is not None:
            compose(box)
        blocks: dict[str, list[dict[str, Any]]] = {}
        after = 0
        while batch := box.oldest(after=after, limit=1000):
            for r in batch:
                blocks.setdefault(wire.export_name(cfg.point.id, r["seq"]), []).append(r)
            after = batch[-1]["seq"]
        total = sum(len(v) for v in blocks.values())
        for name, block in sorted(blocks.items()):
            old = usbfolder.read(dir_fd, name)
            block = _union(cfg, folder / name, old, block)
            # ts is the newest report's box time, so the same reports give the same bytes.
            ts = int(max(float(r.get("box_time") or 0) for r in block))
            data = wire.export_file(cfg.point.id, cfg.centre.secret, block, ts)
            if old == data:
                unchanged += 1
            else:
                usbfolder.write_atomically(dir_fd, name, data)
                written += 1
            reports += len(block)
            if progress:
                progress(reports, total)
        _sync_folder(dir_fd)
        summary = {"dir": str(folder), "reports": reports, "files_written": written, "files_unchanged": unchanged,
                   "acknowledged_by_file": acked, "at": clock.now()}
        box.set_state(last_export=summary)
    log.info("event=uplink_exported dir=%s reports=%d written=%d unchanged=%d acked=%d", folder, reports, written, unchanged, acked)
    return summary


def _union(cfg: Config, path: Path, old: bytes | None, block: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The block's reports plus any an earlier export put in the same file that are gone from the outbox.

    Files on the disk are never shrunk: a report no longer in the outbox was
    acknowledged, or the outbox was lost, and only the first is safe to forget.
    The centre stores each (point, seq) once, so a report sent twice costs nothing.
    """
    if old is None:
        return block
    try:
        header, body = wire.read_export_file(old)
        point, ts, sig = wire.parse_authorization(header)
        wire.check_signature(cfg.centre.secret, "POST", wire.HEARTBEATS_PATH, ts, body, sig)
        earlier = wire.decode_batch(body)
    except (OSError, wire.WireError) as e:
        log.warning("event=export_file_replaced path=%s error=%s", path, e)
        return block
    merged = {r["seq"]: r for r in earlier if r.get("point_id") == cfg.point.id}
    merged.update((r["seq"], r) for r in block)
    return [merged[s] for s in sorted(merged)]


def _sync_folder(dir_fd: int) -> None:
    try:
        os.fsync(dir_fd)
    except OSError:
        pass  # some USB file systems cannot sync a folder; the files themselves were synced


def export_local(cfg: Config, folder: Path) -> dict[str, Any]:
    """Local packages onto the disk too (folder/uploads), after reading the centre's word from its last import.

    A package stays on the box, and on the disk, until the centre's signed `<point>.uploads`
    file says it has it; then the box forgets the .tar and the disk's copy goes."""
    from kiosk.library.local import LocalBook

    copied = 0
    dir_fd = usbfolder.open_folder(folder)
    try:
        with LocalBook(cfg) as book:
            raw = usbfolder.read(dir_fd, f"{cfg.point.id}{wire.UPLOADS_SUFFIX}")
            news: dict[str, Any] = {}
            if raw is not None:
                try:
                    news = wire.decode_uploads_file(raw, cfg.point.id, cfg.centre.secret)
                except wire.WireError as e:
                    log.warning("event=export_uploads_file_refused dir=%s error=%s", folder, e)
            waiting = book.waiting()
            if not news and not waiting:
                return {"local_packages": 0, "local_written": 0}
            with contextlib.suppress(FileExistsError):
                os.mkdir(wire.UPLOADS_DIR, 0o755, dir_fd=dir_fd)
            sub_fd = usbfolder.open_folder(wire.UPLOADS_DIR, dir_fd=dir_fd)
            try:
                for item_id, d in news.items():
                    if isinstance(d, dict) and d.get("state") in ("pending", "approved", "rejected"):
                        book.mark_sent(item_id)
                        for name in os.listdir(sub_fd):
                            if name.startswith(f"{item_id}-") and name.endswith(".tar"):
                                os.unlink(name, dir_fd=sub_fd)  # unlinks a link itself, never its target
                book.apply_decisions(news)
                waiting = book.waiting()
                for e in waiting:
                    src = book.package_path(e["id"], e["version"])
                    try:
                        have = os.stat(src.name, dir_fd=sub_fd, follow_symlinks=False).st_size
                    except FileNotFoundError:
                        have = -1
                    if not src.is_file() or have == src.stat().st_size:
                        continue
                    usbfolder.write_atomically(sub_fd, src.name, src)
                    copied += 1
                _sync_folder(sub_fd)
            finally:
                os.close(sub_fd)
    finally:
        os.close(dir_fd)
    log.info("event=local_exported dir=%s packages=%d written=%d", folder, len(waiting), copied)
    return {"local_packages": len(waiting), "local_written": copied}
