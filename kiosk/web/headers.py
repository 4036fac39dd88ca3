"""The box server's security headers: no sniffing, no framing by others, package files that never run script.

Packages come from publishers the box trusts, but a trusted publisher can still ship a
file that carries script (an .svg, an .xhtml, an XML file with a stylesheet, or a file
whose declared type is HTML). Served from the box's own origin, such a script could read
the device page with the administrator's cookie. So every payload type that is not known
to be passive is served with a sandboxing Content-Security-Policy: the browser shows it
as a document with an opaque origin and no script. HTML and XHTML articles keep their
styles and pictures, and the same origin (the reading screen sets large type from
outside the frame), but no script, no forms, no frames and no plugins.
"""

from __future__ import annotations

from flask import Flask, Response, request

# Types that cannot carry script into a page of the box: shown as they are.
PASSIVE_TYPES = frozenset({
    "image/jpeg", "image/png", "image/webp", "image/gif", "image/avif", "image/bmp",
    "application/pdf",  # Chromium's viewer runs a PDF's own script apart from the page's origin
    "text/plain", "text/css", "text/vtt", "application/json",
    "application/octet-stream", "application/zip", "application/epub+zip",
})
PASSIVE_PREFIXES = ("video/", "audio/", "font/")
ARTICLE_TYPES = frozenset({"text/html", "application/xhtml+xml"})

_COMMON = "default-src 'none'; img-src 'self' data:; media-src 'self'; font-src 'self'; " \
          "style-src 'self' 'unsafe-inline'; form-action 'none'; base-uri 'none'; frame-ancestors 'self'"
# An article: same origin so the reading screen can restyle it, and still no script at all.
ARTICLE_POLICY = "sandbox allow-same-origin; " + _COMMON
# Anything else that could carry script (SVG, XML, unknown types): an opaque origin too.
DOCUMENT_POLICY = "sandbox; " + _COMMON


def payload_policy(content_type: str) -> str | None:
    """The Content-Security-Policy a package file of this type is served with; None for passive types."""
    ctype = content_type.split(";", 1)[0].strip().lower()
    if ctype in PASSIVE_TYPES or ctype.startswith(PASSIVE_PREFIXES):
        return None
    return ARTICLE_POLICY if ctype in ARTICLE_TYPES else DOCUMENT_POLICY


def _set_headers(resp: Response) -> Response:
    resp.headers["X-Content-Type-Options"] = "nosniff"
    if request.path == "/admin" or request.path.startswith("/admin/"):
        # The device page is never inside a frame, not even one of the box's own pages.
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Content-Security-Policy"] = "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    else:
        resp.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
        resp.headers.setdefault("Content-Security-Policy", "frame-ancestors 'self'")
    resp.headers.setdefault("Referrer-Policy", "same-origin")
    return resp


def init_app(app: Flask) -> None:
    """Send the headers on every response; the session cookie is HttpOnly and SameSite=Strict."""
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Strict"
    app.after_request(_set_headers)
