"""Import of reports a box without a line exported to a USB disk (`kiosk centre import DIR`).

Each export file is the Authorization header line and the gzip body exactly as the box
would POST them (kiosk/wire.py), so they pass the same checks as the HTTP endpoint,
except the clock: an export is old by nature, and a replay is harmless because each
(point, seq) is stored once. For each point the centre leaves a signed `.ack` file,
so the box's next export can delete what the centre has.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable

from kiosk import clock, usbfolder, wire
from kiosk.centre import ingest
from kiosk.centre.store import Store

log = logging.getLogger(__name__)

MAX_FILE_BYTES = wire.MAX_BODY_BYTES + 4096  # the header line and a body the endpoint would take


def import_dir(store: Store, folder: Path, progress: Callable[[int, int, str], None] | None = None,
               write_acks: bool = True, uploads: Any = None) -> dict[str, object]:
    """Import every export file in `folder`; return counts and the files refused with why."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    dir_fd = usbfolder.open_folder(folder)  # the disk is someone else's: no link in it is followed
    try:
        return _import(store, folder, dir_fd, progress, write_acks, uploads)
    finally:
        os.close(dir_fd)


def _import(store: Store, folder: Path, dir_fd: int, progress: Callable[[int, int, str], None] | None,
            write_acks: bool, uploads: Any) -> dict[str, object]:
    files = usbfolder.names(dir_fd, wire.EXPORT_SUFFIX)
    stored = received = 0
    refused: list[dict[str, str]] = []
    acked: dict[str, set[int]] = {}
    for n, name in enumerate(files, 1):
        if progress:
            progress(n, len(files), name)
        data = usbfolder.read(dir_fd, name, limit=MAX_FILE_BYTES)
        if data is None:
            refused.append({"file": name, "error": "not_export", "detail": "not a regular file (a link, a folder, a device?) or too large"})
            continue
        try:
            point_id, answer = _one(store, data, uploads)
        except wire.WireError as e:
            refused.append({"file": name, "error": "not_export", "detail": str(e)})
            continue
        except Exception as e:  # anything unforeseen is this file's refusal; the rest are imported
            log.exception("import file failed folder=%s file=%s", folder, name)
            refused.append({"file": name, "error": "failed", "detail": f"{type(e).__name__}: {e}"})
            continue
        if not answer.ok:
            refused.append({"file": name, "error": answer.body["error"], "detail": answer.body["detail"]})
            continue
        acked.setdefault(point_id, set()).update(answer.body["acked"])
        stored += answer.stored
        received += len(answer.body["acked"])
    taken = _import_uploads(uploads, folder, refused, progress) if uploads is not None else {}
    if write_acks:
        for point_id, seqs in acked.items():
            _write_ack(store, dir_fd, point_id, sorted(seqs))
        if uploads is not None:
            for point_id in sorted(set(acked) | set(taken)):
                _write_uploads(store, uploads, dir_fd, point_id, taken.get(point_id, {}))
    log.info("import done folder=%s files=%d reports=%d stored=%d refused=%d", folder, len(files), received, stored, len(refused))
    return {"files": len(files), "reports": received, "stored": stored, "refused": refused, "points": sorted(acked),
            "uploads": sum(len(v) for v in taken.values())}


def _one(store: Store, data: bytes, uploads: Any) -> tuple[str, ingest.Answer]:
    """Check and store one export file: (point id, the centre's answer), or WireError."""
    header, body = wire.read_export_file(data)
    point_id = wire.parse_authorization(header)[0]
    if store.secret(point_id) is None:  # staff at the centre may know what the network must not
        return point_id, ingest.refuse(401, "unknown_point", f"point {point_id} is not enrolled here", clock.now())
    return point_id, ingest.receive(store, header, body, check_clock=False, uploads=uploads)


def _import_uploads(uploads: Any, folder: Path, refused: list[dict[str, str]],
                    progress: Callable[[int, int, str], None] | None) -> dict[str, dict[str, Any]]:
    """Take in the local packages in folder/uploads; {point: {id: {"state", "reason"}}} of those taken."""
    from kiosk.centre.uploads import Refusal, point_of

    sub = folder / wire.UPLOADS_DIR
    files = sorted(p for p in sub.iterdir() if p.name.endswith(".tar") and p.is_file()) if sub.is_dir() else []
    taken: dict[str, dict[str, Any]] = {}
    for n, path in enumerate(files, 1):
        if progress:
            progress(n, len(files), f"{wire.UPLOADS_DIR}/{path.name}")
        try:
            answer = uploads.take_file(path)
        except Refusal as r:
            refused.append({"file": f"{wire.UPLOADS_DIR}/{path.name}", "error": r.error, "detail": r.detail})
            continue
        taken.setdefault(point_of(answer["id"]) or "", {})[answer["id"]] = {"state": answer["state"], "reason": answer["reason"]}
    return taken


def _write_uploads(store: Store, uploads: Any, dir_fd: int, point_id: str, taken: dict[str, Any]) -> None:
    """Leave the point the centre's word on its local packages: received (pending), approved, rejected."""
    secret = store.secret(point_id)
    if secret is None:
        return
    news = {**taken, **uploads.news(point_id)}
    if not news:
        return
    data = wire.encode_uploads_file(point_id, secret, news, int(clock.now()))
    try:
        usbfolder.write_atomically(dir_fd, f"{point_id}{wire.UPLOADS_SUFFIX}", data)
    except OSError as e:
        log.warning("uploads file not written point=%s error=%s", point_id, e)


def _write_ack(store: Store, dir_fd: int, point_id: str, seqs: list[int]) -> None:
    secret = store.secret(point_id)
    if secret is None:
        return
    data = wire.encode_ack_file(point_id, secret, seqs, int(clock.now()))
    try:
        usbfolder.write_atomically(dir_fd, f"{point_id}{wire.ACK_SUFFIX}", data)
    except OSError as e:  # a read-only disk: the import still counts, the box just keeps its copy
        log.warning("ack not written point=%s error=%s", point_id, e)
