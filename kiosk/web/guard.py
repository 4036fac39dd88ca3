"""Cross-site protection for the screens' few POSTs (a wish, a play report).

The screens are public on the kiosk and the local network, so there is no
login to tie a CSRF token to: a POST must come from a page of this box
(same Origin, or Referer when a browser sends no Origin) and, for a wish,
carry a signed token the page was rendered with.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app, request
from itsdangerous import BadSignature, URLSafeTimedSerializer

TOKEN_MAX_AGE_S = 24 * 3600


def same_origin() -> bool:
    """True when the request's Origin (or Referer) is this box's own address, or absent."""
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source:
        return True  # not a browser's cross-site request: browsers send Origin on POST
    if source == "null":
        return False
    parts = urlsplit(source)
    return f"{parts.scheme}://{parts.netloc}" == f"{request.scheme}://{request.host}"


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=f"kiosk-{purpose}")


def page_token(purpose: str) -> str:
    """A token a page embeds to prove a later POST came from it."""
    return _serializer(purpose).dumps(purpose)


def token_ok(purpose: str, token: str | None) -> bool:
    """True when `token` was made by page_token(purpose) within the last day."""
    if not token:
        return False
    try:
        return _serializer(purpose).loads(token, max_age=TOKEN_MAX_AGE_S) == purpose
    except BadSignature:
        return False
