"""Payload files under /media/<id>/<version>/<path>: Range (206), ETag, If-None-Match.

Werkzeug's send_file does the serving (file wrapper, Content-Range, HEAD). Its
Range handling differs from RFC 9110 in a few corners, so the Range header is
judged here first and handed on normalised:
- a suffix longer than the file means the whole file (werkzeug answers 416);
- several ranges, a unit other than bytes or a malformed header are ignored
  (200 with the whole file; werkzeug answers 416);
- If-None-Match is judged before Range (304 wins over 206).
"""

from __future__ import annotations

import mimetypes
import re
from contextlib import ExitStack
from typing import Any

from flask import Blueprint, Response, abort, current_app, request, send_file
from werkzeug.http import parse_etags

from kiosk.errors import NotFound

bp = Blueprint("media", __name__)

_SAFE_SEGMENT = re.compile(r"^[^/\\\x00]+$")
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)

# Types browsers need exactly, whatever the platform's mime.types says.
_TYPES = {
    ".mp4": "video/mp4", ".m4v": "video/mp4", ".webm": "video/webm", ".ogv": "video/ogg",
    ".mp3": "audio/mpeg", ".m4a": "audio/mp4", ".ogg": "audio/ogg", ".wav": "audio/wav",
    ".pdf": "application/pdf", ".html": "text/html", ".htm": "text/html",
    ".txt": "text/plain", ".css": "text/css", ".svg": "image/svg+xml",
    ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp", ".gif": "image/gif",
    ".epub": "application/epub+zip", ".json": "application/json",
}


def content_type(path: str, declared: str | None = None) -> str:
    """The Content-Type for a payload file: by extension, else as the package declared it."""
    ext = ("." + path.rsplit(".", 1)[-1].lower()) if "." in path else ""
    if ext in _TYPES:
        return _TYPES[ext]
    if declared and "/" in declared:
        return declared
    return mimetypes.guess_type(path)[0] or "application/octet-stream"


def resolve_range(header: str, length: int) -> tuple[int, int] | None | bool:
    """One byte range as (first, last) inclusive; None to ignore the header; False when unsatisfiable."""
    m = _RANGE.match(header)
    if not m or length <= 0:
        return None  # malformed, several ranges, other units, or an empty file: send it whole
    first, last = m.group(1), m.group(2)
    if first == "" and last == "":
        return None
    if first == "":
        suffix = int(last)
        if suffix == 0:
            return False
        return max(0, length - suffix), length - 1
    start = int(first)
    if last != "" and int(last) < start:
        return None  # invalid syntax per RFC 9110: ignore
    if start >= length:
        return False
    end = int(last) if last != "" else length - 1
    return start, min(end, length - 1)


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    return parse_etags(header).contains_weak(etag)


@bp.route("/media/<item_id>/<int:version>/<path:path>", methods=["GET", "HEAD"], merge_slashes=False)
def file(item_id: str, version: int, path: str) -> Any:
    """Serve one payload file of a visible item."""
    segments = path.split("/")
    if path.startswith("/") or any(s in ("", ".", "..") or not _SAFE_SEGMENT.match(s) for s in segments):
        abort(404)
    library = current_app.extensions["kiosk"]["library"]
    stack = ExitStack()
    try:
        if hasattr(library, "opening"):
            # Keeps the package from eviction while its file is being sent.
            stack.enter_context(library.opening(item_id))
        disk_path, entry = library.media_path(item_id, version, path)
    except NotFound:
        stack.close()
        abort(404)
    except Exception:
        stack.close()
        raise
    try:
        etag = entry.sha256
        size = entry.size
        ctype = content_type(path, getattr(entry, "media_type", None))
        headers = {"Accept-Ranges": "bytes", "X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=86400"}
        if ctype.startswith("text/html"):
            # Articles are shown, never run: no scripts, but same origin so the screen can set large type.
            headers["Content-Security-Policy"] = "sandbox allow-same-origin"
        if _etag_matches(request.headers.get("If-None-Match"), etag):
            stack.close()
            resp = Response(status=304, headers=headers)
            resp.set_etag(etag)
            return resp
        environ = request.environ
        raw_range = environ.pop("HTTP_RANGE", None)
        if_range = environ.get("HTTP_IF_RANGE")
        if raw_range and (not if_range or if_range.strip() == f'"{etag}"'):
            rng = resolve_range(raw_range, size)
            if rng is False:
                stack.close()
                resp = Response(status=416, headers=headers)
                resp.headers["Content-Range"] = f"bytes */{size}"
                resp.set_etag(etag)
                return resp
            if rng:
                environ["HTTP_RANGE"] = f"bytes={rng[0]}-{rng[1]}"
        environ.pop("HTTP_IF_RANGE", None)  # judged above, with the strong comparison RFC 9110 asks for
        resp = send_file(disk_path, mimetype=ctype, conditional=True, etag=etag, max_age=86400)
        resp.headers.update(headers)
        resp.call_on_close(stack.close)
        return resp
    except BaseException:
        stack.close()
        raise
