"""The wire format the box and the centre share: signed, gzipped batches of reports.

A request to POST /api/v1/heartbeats carries a gzip body of
`{"reports": [report, ...]}` and the header

    Authorization: KioskHMAC point=<id>, ts=<unix seconds>, sig=<hex>

where sig = HMAC-SHA256(secret, METHOD \\n PATH \\n ts \\n sha256hex(body)).
The centre answers `{"acked": [seq, ...], "ack_sig": hex, "server_time": t}`, where
ack_sig = HMAC-SHA256(secret, "ACK" \n <the request's sig> \n <acked, sorted, comma-joined>)
(`ack_signature`); the box deletes reports only on an answer whose ack_sig it verifies,
so no one between the two can make it drop reports. A box has no
real-time clock, so when the centre refuses a timestamp as too far off it
answers 401 with `{"error": "clock", "server_time": t}` and the box signs
again with its offset corrected. The secret never travels in a URL.

Additions by the box side (backward compatible; nothing above changed):

The request carries `Content-Type: application/json` and `Content-Encoding: gzip`
(the body is exactly `encode_batch()`); HEARTBEATS_PATH is the path signed.
Sequence numbers increase and never repeat for a point, but may skip (after a
reboot, and where old routine beats were thinned on the box), so a gap is not a
loss. A report, as the box writes it (fields absent or None when unknown):

    {"v": 1, "kind": "beat" | "event", "point_id": str, "seq": int,
     "box_time": float (the box's clock, unix s; may be wrong), "clock_synced": bool | None,
     "boot_id": str | None, "uptime_s": float | None, "software": {"version": "0.1.0", "state": "current"},
     "event": one of EVENT_TYPES, "detail": {...}          (kind "event" only)
     "health": {"temp_c", "throttled", "under_voltage", "cpu_percent", "load1",
                "memory_percent", "disk_percent", "disk_free", "disk_total",
                "root_readonly", "display_restarts", "display_failed", "ext4_errors",
                "status": "ok" | "warning" | "fault", "problems": [state id, ...]},
                                                          (beats; events carry it too)
     "content": {"items", "bytes", "last_ingest", "quarantined", "free_bytes", "total_bytes"},
     "usage": {"since", "until", "opens", "plays", "seconds",
               "by_category": {category: {"opens", "plays", "seconds"}},
               "top_items": [{"id", "count"}]},           (since the previous beat)
     "requests": [{"id": int, "at": float, "topic": str, "text": str}],
     "point_key": str,                                    (beats: the point's Ed25519 public key,
                                                           32 raw bytes in base64; see docs/uplink.md)
     "thinned": int}                                      (beats that absorbed thinned ones)

Every report is under 1 KiB once gzipped. When old beats are thinned on the box,
the usage of the dropped ones is added into the beat that is kept, so usage
totals survive thinning; "since" then reaches back over the dropped ones.

Export to a USB disk (`kiosk uplink export DIR`, `kiosk centre import DIR`): one
file per block of EXPORT_BLOCK sequence numbers, named
`<point>-<first seq of the block, 12 digits>.khb`, flat in DIR. A file is the
Authorization header value, a newline, then the gzip body exactly as it would be
POSTed (see `write_export_file` / `read_export_file`); its ts is the newest
report's box time, so an export of the same reports is byte-identical and an
import must not apply the MAX_SKEW_S check (replays are harmless: the centre
stores each (point, seq) once). A centre may leave an acknowledgement file
`<point>.ack` in DIR (`encode_ack_file` / `decode_ack_file`, HMAC with the
point's secret); the next export on the box then deletes those reports.

Local content on a USB disk: the box's export puts each waiting local package in
`DIR/uploads/<id>-<version>.tar` (signed by the point's own key, which needs no HMAC);
the centre's import leaves `<point>.uploads` (`encode_uploads_file`), signed like an
ack file, saying for each package it holds whether it is `pending` (under review),
`approved` or `rejected` (with the reason).
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

HEARTBEATS_PATH = "/api/v1/heartbeats"
CONTENT_TYPE = "application/json"
CONTENT_ENCODING = "gzip"
EXPORT_SUFFIX = ".khb"
ACK_SUFFIX = ".ack"
UPLOADS_SUFFIX = ".uploads"  # the centre's word on a point's local content, left on a USB disk
UPLOADS_DIR = "uploads"  # local packages a box exports, in this folder of DIR
EXPORT_BLOCK = 1000  # sequence numbers per export file: stable names, files that stay small

_AUTH_RE = re.compile(r"KioskHMAC point=([a-z0-9._-]{1,64}), ts=([0-9]{1,12}), sig=([0-9a-f]{64})")  # fullmatch only


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
    m = _AUTH_RE.fullmatch(header or "")
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
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):  # RecursionError: nested too deep
        raise WireError("body is not JSON (or nested too deep)", 400) from None
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


def export_name(point_id: str, seq: int) -> str:
    """The file name of the export block holding `seq`."""
    return f"{point_id}-{(seq - 1) // EXPORT_BLOCK * EXPORT_BLOCK + 1:012d}{EXPORT_SUFFIX}"


def export_file(point_id: str, secret: str, reports: list[dict[str, Any]], ts: int) -> bytes:
    """The bytes of an export file: the Authorization header line, then the gzip body."""
    body = encode_batch(reports)
    header = authorization(point_id, secret, "POST", HEARTBEATS_PATH, ts, body)
    return header.encode() + b"\n" + body


def read_export_file(data: bytes) -> tuple[str, bytes]:
    """(Authorization header value, gzip body) of an export file, or WireError 400."""
    header, sep, body = data.partition(b"\n")
    if not sep or not header.startswith(SCHEME.encode()):
        raise WireError("not a heartbeat export file", 400)
    return header.decode("ascii", "replace"), body


def ack_signature(secret: str, request_sig: str, acked: list[int]) -> str:
    """The hex HMAC a centre puts beside `acked` in its answer, bound to the request it answers.

    The box deletes a report only when this verifies, so a man in the middle on plain HTTP
    cannot make it drop reports by answering for the centre (nor by replaying an old answer:
    the request's own signature is in the message).
    """
    message = f"ACK\n{request_sig}\n" + ",".join(str(s) for s in sorted(set(acked)))
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def check_ack(secret: str, request_sig: str, acked: list[int], ack_sig: Any) -> bool:
    """True when the centre's `ack_sig` over `acked` verifies with this point's secret."""
    return isinstance(ack_sig, str) and hmac.compare_digest(ack_signature(secret, request_sig, acked), ack_sig)


def encode_ack_file(point_id: str, secret: str, acked: list[int], ts: int) -> bytes:
    """An acknowledgement file the centre may leave for a box: the seqs it has stored."""
    body = json.dumps({"point_id": point_id, "acked": sorted(set(acked)), "ts": ts}, separators=(",", ":")).encode()
    return authorization(point_id, secret, "ACK", HEARTBEATS_PATH, ts, body).encode() + b"\n" + body


def decode_ack_file(data: bytes, point_id: str, secret: str) -> list[int]:
    """The acknowledged seqs of an ack file for this point, or WireError 401/400."""
    header, _, body = data.partition(b"\n")
    point, ts, sig = parse_authorization(header.decode("ascii", "replace"))
    if point != point_id:
        raise WireError("acknowledgement is for another point", 401)
    check_signature(secret, "ACK", HEARTBEATS_PATH, ts, body, sig)
    try:
        acked = json.loads(body)["acked"]
    except (ValueError, KeyError, TypeError):
        raise WireError("acknowledgement is not JSON", 400) from None
    if not isinstance(acked, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in acked):
        raise WireError("acknowledgement must list sequence numbers", 400)
    return acked


def encode_uploads_file(point_id: str, secret: str, uploads: dict[str, Any], ts: int) -> bytes:
    """The centre's word on a point's local packages ({id: {"state", "reason"}}), signed like an ack file."""
    body = json.dumps({"point_id": point_id, "uploads": uploads, "ts": ts}, separators=(",", ":"), ensure_ascii=False).encode()
    return authorization(point_id, secret, "UPLOADS", HEARTBEATS_PATH, ts, body).encode() + b"\n" + body


def decode_uploads_file(data: bytes, point_id: str, secret: str) -> dict[str, Any]:
    """The uploads of an uploads file for this point, or WireError 401/400."""
    header, _, body = data.partition(b"\n")
    point, ts, sig = parse_authorization(header.decode("ascii", "replace"))
    if point != point_id:
        raise WireError("the file is for another point", 401)
    check_signature(secret, "UPLOADS", HEARTBEATS_PATH, ts, body, sig)
    try:
        uploads = json.loads(body)["uploads"]
    except (ValueError, KeyError, TypeError):
        raise WireError("the uploads file is not JSON", 400) from None
    if not isinstance(uploads, dict):
        raise WireError("the uploads file must map ids to states", 400)
    return uploads
