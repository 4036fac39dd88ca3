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

from kiosk import clock, wire
from kiosk.centre import ingest
from kiosk.centre.store import Store

log = logging.getLogger(__name__)


def import_dir(store: Store, folder: Path, progress: Callable[[int, int, str], None] | None = None,
               write_acks: bool = True, uploads: Any = None) -> dict[str, object]:
    """Import every export file in `folder`; return counts and the files refused with why."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    files = sorted(p for p in folder.iterdir() if p.name.endswith(wire.EXPORT_SUFFIX) and p.is_file())
    stored = received = 0
    refused: list[dict[str, str]] = []
    acked: dict[str, set[int]] = {}
    for n, path in enumerate(files, 1):
        if progress:
            progress(n, len(files), path.name)
        try:
            header, body = wire.read_export_file(path.read_bytes())
        except (OSError, wire.WireError) as e:
            refused.append({"file": path.name, "error": "not_export", "detail": str(e)})
            continue
        try:
            point_id = wire.parse_authorization(header)[0]
        except wire.WireError as e:
            refused.append({"file": path.name, "error": "auth", "detail": str(e)})
            continue
        if store.secret(point_id) is None:  # staff at the centre may know what the network must not
            refused.append({"file": path.name, "error": "unknown_point", "detail": f"point {point_id} is not enrolled here"})
            continue
        answer = ingest.receive(store, header, body, check_clock=False, uploads=uploads)
        if not answer.ok:
            refused.append({"file": path.name, "error": answer.body["error"], "detail": answer.body["detail"]})
            continue
        acked.setdefault(point_id, set()).update(answer.body["acked"])
        stored += answer.stored
        received += len(answer.body["acked"])
    taken = _import_uploads(uploads, folder, refused, progress) if uploads is not None else {}
    if write_acks:
        for point_id, seqs in acked.items():
            _write_ack(store, folder, point_id, sorted(seqs))
        if uploads is not None:
            for point_id in sorted(set(acked) | set(taken)):
                _write_uploads(store, uploads, folder, point_id, taken.get(point_id, {}))
    log.info("import done folder=%s files=%d reports=%d stored=%d refused=%d", folder, len(files), received, stored, len(refused))
    return {"files": len(files), "reports": received, "stored": stored, "refused": refused, "points": sorted(acked),
            "uploads": sum(len(v) for v in taken.values())}


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


def _write_uploads(store: Store, uploads: Any, folder: Path, point_id: str, taken: dict[str, Any]) -> None:
    """Leave the point the centre's word on its local packages: received (pending), approved, rejected."""
    secret = store.secret(point_id)
    if secret is None:
        return
    news = {**taken, **uploads.news(point_id)}
    if not news:
        return
    data = wire.encode_uploads_file(point_id, secret, news, int(clock.now()))
    tmp = folder / f".{point_id}{wire.UPLOADS_SUFFIX}.tmp"
    try:
        tmp.write_bytes(data)
        os.replace(tmp, folder / f"{point_id}{wire.UPLOADS_SUFFIX}")
    except OSError as e:
        log.warning("uploads file not written folder=%s point=%s error=%s", folder, point_id, e)


def _write_ack(store: Store, folder: Path, point_id: str, seqs: list[int]) -> None:
    secret = store.secret(point_id)
    if secret is None:
        return
    data = wire.encode_ack_file(point_id, secret, seqs, int(clock.now()))
    path = folder / f"{point_id}{wire.ACK_SUFFIX}"
    tmp = folder / f".{point_id}{wire.ACK_SUFFIX}.tmp"
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as e:  # a read-only disk: the import still counts, the box just keeps its copy
        log.warning("ack not written folder=%s point=%s error=%s", folder, point_id, e)
