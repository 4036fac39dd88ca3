"""The wire format the box and the centre share: signed, gzipped batches of reports.

A request to POST /api/v1/heartbeats carries a gzip body of
`{"reports": [report, ...]}` and the header

    Authorization: KioskHMAC point=<id>, ts=<unix seconds>, sig=<hex>

where sig = HMAC-SHA256(secret, METHOD \\n PATH \\n ts \\n sha256hex(body)).
The centre answers `{"acked": [seq, ...], "server_time": t}`. A box has no
real-time clock, so when the centre refuses a timestamp as too far off it
answers 401 with `{"error": "clock", "server_time": t}` and the box signs
again with its offset corrected. The secret never travels in a URL.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import io
import json
import re
from typing import Any

from kiosk.errors import KioskError

SCHEME = "KioskHMAC"
REPORT_FORMAT = 1
MAX_BODY_BYTES = 4 * 1024 * 1024  # compressed; a batch of a few hundred reports is far less
MAX_INFLATED_BYTES = 32 * 1024 * 1024  # a gzip bomb stops here
MAX_SKEW_S = 600
REPORT_KINDS = ("beat", "event")
EVENT_TYPES = ("boot", "under_voltage", "overheat", "disk_full", "read_only_root", "display_restarts", "fault")

_AUTH_RE = re.compile(r"^KioskHMAC point=([a-z0-9._-]{1,64}), ts=(\d{1,12}), sig=([0-9a-f]{64})$")


class WireError(KioskError, ValueError):
    """A request does not follow the wire format; `status` is the HTTP answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def signature(secret: str, method: str, path: str, ts: int, body: bytes) -> str:
    """The hex HMAC over what a request must not be able to change."""
    message = f"{method.upper()}\n{path}\n{ts}\n{hashlib.sha256(body).hexdigest()}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def authorization(point_id: str, secret: str, method: str, path: str, ts: int, body: bytes) -> str:
    """The Authorization header value for a request."""
    return f"{SCHEME} point={point_id}, ts={ts}, sig={signature(secret, method, path, ts, body)}"


def parse_authorization(header: str | None) -> tuple[str, int, str]:
    """(point id, timestamp, signature) from the header, or WireError 401."""
    m = _AUTH_RE.match(header or "")
    if not m:
        raise WireError("missing or malformed Authorization header", 401)
    return m.group(1), int(m.group(2)), m.group(3)


def check_signature(secret: str, method: str, path: str, ts: int, body: bytes, sig: str) -> None:
    """Raise WireError 401 unless `sig` is right (compared in constant time)."""
    if not hmac.compare_digest(signature(secret, method, path, ts, body), sig):
        raise WireError("signature does not match", 401)


def encode_batch(reports: list[dict[str, Any]]) -> bytes:
    """The gzip body for a batch of reports."""
    raw = json.dumps({"reports": reports}, separators=(",", ":"), ensure_ascii=False).encode()
    return gzip.compress(raw, compresslevel=6, mtime=0)


def decode_batch(body: bytes) -> list[dict[str, Any]]:
    """The reports of a gzip body, or WireError 400/413."""
    if len(body) > MAX_BODY_BYTES:
        raise WireError("body too large", 413)
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(body)) as f:
            raw = f.read(MAX_INFLATED_BYTES + 1)
    except (OSError, EOFError):
        raise WireError("body is not gzip", 400) from None
    if len(raw) > MAX_INFLATED_BYTES:
        raise WireError("body too large once inflated", 413)
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise WireError("body is not JSON", 400) from None
    if not isinstance(data, dict) or not isinstance(data.get("reports"), list):
        raise WireError("body must be an object with a list of reports", 400)
    for report in data["reports"]:
        check_report(report)
    return data["reports"]


def check_report(report: Any) -> None:
    """Raise WireError 400 unless `report` has the fields every report must have."""
    if not isinstance(report, dict):
        raise WireError("a report must be an object")
    seq = report.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise WireError("a report needs a sequence number >= 1")
    if report.get("kind") not in REPORT_KINDS:
        raise WireError(f"a report's kind must be one of {', '.join(REPORT_KINDS)}")
    if not isinstance(report.get("point_id"), str):
        raise WireError("a report needs its point_id")
    for key in ("health", "content", "usage"):
        if key in report and not isinstance(report[key], dict):
            raise WireError(f"a report's {key} must be an object")
    if "requests" in report and not isinstance(report["requests"], list):
        raise WireError("a report's requests must be a list")
