"""Payload files under /media/<id>/<version>/<path>: Range (206), ETag, If-None-Match.

Hand-written rather than werkzeug's send_file, for two reasons found by tests and
the range bench: its Range handling differs from RFC 9110 in a few corners (a
suffix longer than the file, several ranges or another unit answer 416 where the
whole file is right; a Range beats If-None-Match), and its 206 bodies are Python
iterators that hold a waitress worker thread for the whole transfer, so twenty
video readers stall on eight threads. Here every 200 and 206 body is waitress's
file wrapper, which its I/O loop streams without a thread.
"""

from __future__ import annotations

import mimetypes
import os
import re
from contextlib import nullcontext
from typing import Any, Iterator

from flask import Blueprint, Response, abort, current_app, request
from werkzeug.http import parse_etags

from kiosk.errors import NotFound
from kiosk.web import headers as headers_mod

bp = Blueprint("media", __name__)

_SAFE_SEGMENT = re.compile(r"[^/\\\x00]+")
CHUNK = 256 * 1024
_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", re.IGNORECASE)

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


def _number(digits: str) -> str:
    """A Range number no longer than 19 digits: a longer one (5,000 digits) is past any file anyway,
    and Python refuses to convert more than 4,300 digits."""
    digits = digits.lstrip("0") or ("0" if digits else "")
    return digits if len(digits) <= 19 else "9" * 19


def resolve_range(header: str, length: int) -> tuple[int, int] | None | bool:
    """One byte range as (first, last) inclusive; None to ignore the header; False when unsatisfiable."""
    m = _RANGE.fullmatch(header)
    if not m or length <= 0:
        return None  # malformed, several ranges, other units, or an empty file: send it whole
    first, last = _number(m.group(1)), _number(m.group(2))
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


def _body(f: Any, length: int) -> Any:
    """The response body: waitress's file wrapper when there is one, else a bounded reader."""
    wrapper = request.environ.get("wsgi.file_wrapper")
    if wrapper is not None and hasattr(wrapper, "prepare"):
        # waitress streams a file wrapper from its I/O loop, from the file's position for
        # Content-Length bytes, so a long video read does not hold a worker thread.
        return wrapper(f, CHUNK)
    return _read_exactly(f, length)


def _read_exactly(f: Any, length: int) -> Iterator[bytes]:
    try:
        while length > 0:
            chunk = f.read(min(CHUNK, length))
            if not chunk:
                break
            length -= len(chunk)
            yield chunk
    finally:
        f.close()


@bp.route("/media/<item_id>/<int:version>/<path:path>", methods=["GET", "HEAD"], merge_slashes=False)
def file(item_id: str, version: int, path: str) -> Any:
    """Serve one payload file of a visible item."""
    segments = path.split("/")
    if path.startswith("/") or any(s in ("", ".", "..") or not _SAFE_SEGMENT.fullmatch(s) for s in segments):
        abort(404)
    library = current_app.extensions["kiosk"]["library"]
    hold = library.opening(item_id) if hasattr(library, "opening") else nullcontext()
    try:
        # Held only while the file is found and opened: an open file stays readable
        # even if eviction removes the package a moment later.
        with hold:
            disk_path, entry = library.media_path(item_id, version, path)
            f = open(disk_path, "rb")
    except (NotFound, FileNotFoundError):
        abort(404)
    size = os.fstat(f.fileno()).st_size
    etag = entry.sha256
    ctype = content_type(path, getattr(entry, "media_type", None))
    headers = {"Accept-Ranges": "bytes", "X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=86400"}
    policy = headers_mod.payload_policy(ctype)
    if policy:  # a type that could carry script never runs it on the box's origin
        headers["Content-Security-Policy"] = policy

    status, start, length = 200, 0, size
    if _etag_matches(request.headers.get("If-None-Match"), etag):
        status, length = 304, 0
    else:
        raw_range = request.headers.get("Range")
        if_range = request.headers.get("If-Range")
        # If-Range needs a strong match (RFC 9110); a stale one means "send it all".
        if raw_range and (not if_range or if_range.strip() == f'"{etag}"'):
            rng = resolve_range(raw_range, size)
            if rng is False:
                status, length = 416, 0
                headers["Content-Range"] = f"bytes */{size}"
            elif rng:
                status, start, length = 206, rng[0], rng[1] - rng[0] + 1
                headers["Content-Range"] = f"bytes {rng[0]}-{rng[1]}/{size}"

    if status in (304, 416) or request.method == "HEAD":
        f.close()
        body: Any = b""
    else:
        f.seek(start)
        body = _body(f, length)
    resp = Response(body, status=status, mimetype=ctype if status != 416 else None, headers=headers, direct_passthrough=True)
    if status in (200, 206):
        resp.content_length = length
    resp.set_etag(etag)
    resp.last_modified = entry_mtime(disk_path)
    return resp


def entry_mtime(path: Any) -> Any:
    """When the file was published (its modification time), for Last-Modified."""
    import datetime as dt

    try:
        return dt.datetime.fromtimestamp(os.stat(path).st_mtime, dt.timezone.utc)
    except OSError:
        return None
