"""Receiving a signed batch of reports: check who sent it, when, and what, then store it once.

Every check happens before anything is written, so a refused request changes nothing.
The HTTP endpoint and the USB import both come through `receive`.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

from kiosk import clock, wire
from kiosk.centre import schema
from kiosk.centre.store import Store

log = logging.getLogger(__name__)

HEARTBEATS_PATH = wire.HEARTBEATS_PATH
MAX_SEQ = 2**63  # the database's BIGINT
_NOT_ENROLLED = secrets.token_hex(32)  # checked against when the point is unknown, so both refusals cost the same


@dataclass
class Answer:
    """What to answer the box: an HTTP status and a JSON body."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)
    stored: int = 0

    @property
    def ok(self) -> bool:
        return self.status == 200


def refuse(status: int, error: str, detail: str, now: float) -> Answer:
    """A refusal with a machine-readable code, a plain sentence and the centre's time."""
    return Answer(status, {"error": error, "detail": detail, "server_time": int(now)})


NOT_SIGNED = "the signature does not match, or the point is not enrolled here"


def point_secret(store: Store, method: str, path: str, point_id: str, ts: int, body: bytes, sig: str) -> str | None:
    """The point's secret when `sig` is its signature of the request, else None.

    An unknown point costs the same work and gets the same None as a wrong signature:
    a refusal must not tell a stranger which point ids are enrolled.
    """
    secret = store.secret(point_id)
    try:
        wire.check_signature(secret or _NOT_ENROLLED, method, path, ts, body, sig)
    except wire.WireError:
        log.warning("request refused point=%s path=%s reason=%s", point_id, path,
                    "unknown_point" if secret is None else "signature")
        return None
    return secret


def receive(
    store: Store,
    authorization: str | None,
    body: bytes,
    *,
    method: str = "POST",
    path: str = HEARTBEATS_PATH,
    check_clock: bool = True,
    uploads: Any = None,
) -> Answer:
    """Check and store one signed batch; nothing is stored unless every check passes."""
    now = clock.now()
    try:
        point_id, ts, sig = wire.parse_authorization(authorization)
    except wire.WireError as e:
        return refuse(401, "auth", str(e), now)
    if len(body) > wire.MAX_BODY_BYTES:
        return refuse(413, "too_large", f"body over {wire.MAX_BODY_BYTES} bytes", now)
    secret = point_secret(store, method, path, point_id, ts, body, sig)
    if secret is None:
        return refuse(401, "signature", NOT_SIGNED, now)
    if check_clock and abs(ts - now) > wire.MAX_SKEW_S:
        # Also what stops an old captured request from being replayed later.
        log.info("heartbeat refused point=%s reason=clock skew_s=%d", point_id, ts - now)
        return refuse(401, "clock", f"timestamp {ts} is more than {wire.MAX_SKEW_S} s from the centre's clock", now)
    try:
        reports = schema.check_batch(wire.decode_batch(body))
    except wire.WireError as e:
        code = "too_large" if e.status == 413 else "not_gzip" if "gzip" in str(e) else "bad_json" if "JSON" in str(e) else "bad_report"
        log.warning("heartbeat refused point=%s reason=%s", point_id, code)
        return refuse(e.status, code, str(e), now)
    for r in reports:
        if r["point_id"] != point_id:
            return refuse(400, "bad_report", f"a report for {r['point_id']} was signed by {point_id}", now)
        if r["seq"] >= MAX_SEQ:
            return refuse(400, "bad_report", f"sequence number {r['seq']} is too large", now)
    acked, stored = store.ingest(point_id, reports)
    log.debug("heartbeats stored point=%s received=%d new=%d", point_id, len(reports), stored)
    body_out: dict[str, Any] = {"acked": acked, "ack_sig": wire.ack_signature(secret, sig, acked), "server_time": int(now), "stored": stored}
    if uploads is not None:
        key = next((r["point_key"] for r in reversed(reports) if isinstance(r.get("point_key"), str)), None)
        if key and len(key) <= 64:
            uploads.note_key(point_id, key)
        news = uploads.news(point_id)
        if news:  # staff's decisions on the point's local content ride along with the acknowledgement
            body_out["uploads"] = news
    return Answer(200, body_out, stored)
