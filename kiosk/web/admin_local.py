"""The device page's "本地内容" section: add the village's own videos, photos, audio or a PDF.

From a phone on the village Wi-Fi the files go up in pieces (static/local-upload.js): the box
remembers how many bytes of each file arrived (kiosk/library/local.py), so when the Wi-Fi
drops the page asks where it stood and goes on from there. From a USB disk, each folder in
`<disk>/<storage.usb_folder>/本地内容/` (or `local/`) is offered as one item. The routes join
the admin blueprint, so its login and CSRF guard covers them; the raw-body PUT of a piece
carries the CSRF token in a header, since it has no form.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import current_app, flash, jsonify, redirect, request, url_for

from kiosk.errors import KioskError, NotFound
from kiosk.library import local
from kiosk.library.mediacheck import MediaRefused
from kiosk.web import auth
from kiosk.web.admin import bp

log = logging.getLogger(__name__)

USB_FOLDERS = ("本地内容", "local")  # on a USB disk, under storage.usb_folder
MAX_PIECE = 8 * 1024 * 1024  # the page sends 1 MiB pieces
TOPICS = (("local", "本地资讯"), ("agriculture", "农业技术"), ("health", "健康"), ("law", "法律"),
          ("culture", "文化娱乐"), ("children", "少儿"), ("lectures", "讲座"))


def _cfg() -> Any:
    return current_app.extensions["kiosk"]["config"]


def _json_error(status: int, zh: str, en: str) -> Any:
    return jsonify(error=en, detail=zh), status


@bp.context_processor
def _local_section() -> dict[str, Any]:
    """What the section shows: local items with their way to the centre, uploads, USB folders."""
    def view() -> dict[str, Any]:
        try:
            mine = local.status(_cfg())
        except Exception as e:  # the section's trouble must not hide the page
            log.warning("event=admin_local_failed error=%r", e)
            mine = None
        try:  # the uplink's own status (the box passes it in; the web does not import the uplink)
            going = (current_app.extensions["kiosk"]["uplink_status"]() or {}).get("upload")
        except Exception as e:
            log.warning("event=admin_upload_status_failed error=%r", e)
            going = None
        return {"local": mine, "upload": going, "topics": TOPICS, "usb": usb_folders(),
                "max_mb": _cfg().uplink.upload_max_mb}
    return {"local_view": view}


def usb_folders() -> list[dict[str, Any]]:
    """Folders of local content on plugged-in USB disks: {"disk", "path", "name", "files"}."""
    from kiosk.library import usb

    found = []
    try:
        disks = usb.candidates(_cfg())
    except Exception as e:
        log.warning("event=admin_local_usb_failed error=%r", e)
        return []
    for disk in disks:
        for sub in USB_FOLDERS:
            root = Path(disk) / _cfg().storage.usb_folder / sub
            if not root.is_dir():
                continue
            for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
                files = sorted(f for f in folder.iterdir() if f.is_file() and not f.name.startswith("."))
                if files:
                    found.append({"disk": str(disk), "path": str(folder), "name": folder.name, "files": len(files)})
    return found


@bp.post("/local/files")
def local_file_begin() -> Any:
    """Begin receiving one file from the phone: {"token", "received"}."""
    name = request.form.get("name", "")
    try:
        size = int(request.form.get("size", ""))
    except ValueError:
        return _json_error(400, "文件大小不对", "size must be a whole number")
    try:
        with local.LocalBook(_cfg()) as book:
            token = book.start_incoming(name, size)
    except MediaRefused as e:
        return _json_error(400, e.zh, e.en)
    return jsonify(token=token, received=0, size=size)


@bp.get("/local/files/<token>")
def local_file_state(token: str) -> Any:
    """How many bytes of a file arrived (the page resumes from here)."""
    try:
        with local.LocalBook(_cfg()) as book:
            return jsonify(book.incoming(token))
    except NotFound:
        return _json_error(404, "这个上传已经不在了，请重新选择文件", "no such upload")


@bp.put("/local/files/<token>")
def local_file_piece(token: str) -> Any:
    """One piece of a file at ?offset=N; the new total."""
    if not auth.csrf_ok(request.headers.get("X-CSRF-Token")):
        return _json_error(400, "页面已过期，请刷新后再试", "CSRF token missing or wrong")
    length = request.content_length
    if length is None or length > MAX_PIECE:
        return _json_error(400, "上传的数据不对", "a piece needs a Content-Length of at most 8 MiB")
    try:
        offset = int(request.args.get("offset", ""))
        with local.LocalBook(_cfg()) as book:
            received = book.append_incoming(token, offset, request.stream, length)
    except ValueError:
        return _json_error(400, "上传的数据不对", "?offset= must be a whole number")
    except NotFound:
        return _json_error(404, "这个上传已经不在了，请重新选择文件", "no such upload")
    except KioskError as e:
        with local.LocalBook(_cfg()) as book:
            have = book.incoming(token)["received"]
        return jsonify(error=str(e), detail="从断点继续", received=have), 409
    return jsonify(received=received)


@bp.post("/local/add")
def local_add() -> Any:
    """Make the uploaded files (or a USB folder) into a local item on the screens."""
    cfg = _cfg()
    title, topic, words = request.form.get("title", ""), request.form.get("category", "local"), request.form.get("description", "")
    tokens = [t for t in request.form.getlist("token") if t]
    folder = request.form.get("usb_folder", "")
    try:
        with local.LocalBook(cfg) as book:
            if folder:
                chosen = next((f for f in usb_folders() if f["path"] == folder), None)
                if chosen is None:
                    raise MediaRefused("没有找到这个U盘文件夹，请重新插好再试", "no such folder on a USB disk")
                files = sorted(p for p in Path(folder).iterdir() if p.is_file() and not p.name.startswith("."))
                names = [p.name for p in files]
            else:
                taken = book.take_incoming(tokens)
                files, names = [p for p, _ in taken], [n for _, n in taken]
        made = local.add(cfg, current_app.extensions["kiosk"]["library"], files, title, topic, words, names=names)
    except MediaRefused as e:
        flash(f"没有添加：{e.zh}。 Not added: {e.en}", "fault")
    except KioskError as e:
        flash(f"没有添加：{e}", "fault")
    else:
        flash(f"已添加“{' '.join(title.split())}”，村民现在就能在屏幕上看到；有线路时会送县中心审核。 Added ({made['id']}).", "ok")
        log.info("event=admin_local_add id=%s files=%d", made["id"], len(files))
    finally:
        if tokens:
            with local.LocalBook(cfg) as book:
                book.drop_incoming(tokens)
    return redirect(url_for("admin.index", open="local") + "#local")
