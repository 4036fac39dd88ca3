"""The centre's JSON API: heartbeats from points, the points list, the package index."""

from __future__ import annotations

import hmac
import json
import logging
import random
from typing import Any

from flask import Blueprint, Response, abort, current_app, jsonify, request, send_file
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from kiosk import clock, wire
from kiosk.centre import ingest, summary
from kiosk.centre.auth import requested_node, scope, staff_or_token
from kiosk.centre.uploads import Refusal, read_piece

log = logging.getLogger(__name__)

bp = Blueprint("api", __name__, url_prefix="/api/v1")
BUSY_RETRY_AFTER_S = 30
metrics_bp = Blueprint("metrics", __name__)


def _centre() -> dict[str, Any]:
    return current_app.extensions["centre"]


@bp.post("/heartbeats")
def heartbeats() -> Any:
    """A point's signed batch of reports; acknowledged by sequence number."""
    c = _centre()
    if (request.content_length or 0) > wire.MAX_BODY_BYTES:
        # Refused before reading, so an oversized body costs nothing.
        c["metrics"].refused.labels("too_large").inc()
        return jsonify(error="too_large", detail=f"body over {wire.MAX_BODY_BYTES} bytes", server_time=int(clock.now())), 413
    body = request.stream.read(wire.MAX_BODY_BYTES + 1)
    gate = c["ingest_gate"]
    # Only a few threads ingest at once; the others stay free for the dashboard. When a whole
    # county reconnects, the excess is told at once to come back in a few seconds (boxes
    # honour it): waiting here for a turn, even 0.2 s, filled the threads and the dashboard
    # queued behind them.
    if not gate.acquire(blocking=False):
        c["metrics"].refused.labels("busy").inc()
        answer = {"error": "busy", "detail": "the centre is catching up with other points; try again shortly",
                  "server_time": int(clock.now())}
        return jsonify(answer), 503, {"Retry-After": str(random.randint(1, 5))}
    try:
        answer = ingest.receive(c["store"], request.headers.get("Authorization"), body, method=request.method, path=request.path,
                                uploads=c["uploads"])
    except Exception as e:
        if not _database_error(e):
            raise
        # The store is locked or down: nothing was stored and the box keeps its reports; ask it to wait.
        log.warning("heartbeat deferred reason=busy error=%r", e)
        c["metrics"].refused.labels("busy").inc()
        body = {"error": "busy", "detail": "the centre's database is busy; try again later", "server_time": int(clock.now())}
        return jsonify(body), 503, {"Retry-After": str(BUSY_RETRY_AFTER_S)}
    finally:
        gate.release()
    if answer.ok:
        c["metrics"].reports.labels("stored").inc(answer.stored)
        c["metrics"].reports.labels("duplicate").inc(len(answer.body["acked"]) - answer.stored)
    else:
        c["metrics"].refused.labels(answer.body["error"]).inc()
    return jsonify(answer.body), answer.status


def _database_error(e: Exception) -> bool:
    """True for the store's operational errors (locked, connection lost), on either backend."""
    import sqlite3

    return isinstance(e, sqlite3.OperationalError) or type(e).__module__.startswith("psycopg")


@bp.get("/points")
@staff_or_token
def points() -> Any:
    """A page of the points of a node (?county=&township=&status=&q=&offline_hours=&page=&per_page=)."""
    c = _centre()
    node = requested_node()
    try:
        filters = summary.parse_filters(request.args)
    except summary.BadQuery as e:
        abort(400, description=str(e))
    result = summary.points_page(c["store"], c["store"].rules(c["config"]), clock.now(), node, **filters)
    keys = ("id", "name", "county", "township", "status", "last_seen", "alert", "last_seq", "software",
            "software_state")
    result["points"] = [{k: p[k] for k in keys} for p in result["points"]]
    return jsonify(result)


@bp.get("/summary")
@staff_or_token
def summary_counts() -> Any:
    """Counts by status for each child of a node (?county=&township=), the worst first."""
    c = _centre()
    node = requested_node()
    return jsonify(summary.summary(c["store"], c["store"].rules(c["config"]), clock.now(), node))


@bp.get("/packages/index.json")
def package_index() -> Any:
    """The signed index of published packages, for telecom-mode points."""
    data, _sig = _centre()["publisher"].index()
    return Response(data, mimetype="application/json")


@bp.get("/packages/index.json.sig")
def package_index_sig() -> Any:
    """Base64 Ed25519 signature over the exact bytes of index.json."""
    _data, sig = _centre()["publisher"].index()
    return Response(sig, mimetype="text/plain")


@bp.get("/packages/<name>")
def package_file(name: str) -> Any:
    """A published package's .tar, with HTTP Range."""
    path = _centre()["publisher"].file(name)
    if path is None:
        abort(404, description=f"no package {name}")
    return send_file(path, mimetype="application/x-tar", conditional=True, etag=True, max_age=0)


# --- local content from the points (kiosk/centre/uploads.py) -------------------------------------


def _signed_path() -> str:
    """What the point signed: the path and, when there is one, the query (it carries the offset)."""
    query = request.query_string.decode("ascii", "replace")
    return request.path + (f"?{query}" if query else "")


@bp.post("/uploads")
def upload_begin() -> Any:
    """A point opens or resumes the upload of one of its local packages."""
    uploads = _centre()["uploads"]
    body = request.stream.read(4097)  # a small JSON object; more is refused unread
    if len(body) > 4096:
        return jsonify(error="too_large", detail="the request to begin an upload is small JSON", server_time=int(clock.now())), 413
    try:
        point_id, _sig = uploads.authenticate(request.headers.get("Authorization"), "POST", _signed_path(), body)
        try:
            asked = json.loads(body)
        except ValueError:
            raise Refusal(400, "bad_json", "the body is not JSON") from None
        if not isinstance(asked, dict):
            raise Refusal(400, "bad_json", "the body must be a JSON object")
        return jsonify(uploads.begin(point_id, asked))
    except Refusal as r:
        log.warning("upload refused error=%s detail=%s", r.error, r.detail)
        return jsonify(r.body()), r.status


@bp.patch("/uploads/<item_id>")
def upload_piece(item_id: str) -> Any:
    """The next piece of an upload, at ?offset=N."""
    uploads = _centre()["uploads"]
    try:
        try:
            offset = int(request.args.get("offset", ""))
        except ValueError:
            raise Refusal(400, "bad_request", "?offset= must be a whole number") from None
        piece = read_piece(request.stream, request.content_length)
        point_id, sig = uploads.authenticate(request.headers.get("Authorization"), "PATCH", _signed_path(), piece)
        return jsonify(uploads.append(point_id, item_id, offset, piece, sig))
    except Refusal as r:
        log.warning("upload piece refused id=%s error=%s detail=%s", item_id, r.error, r.detail)
        return jsonify(r.body()), r.status


@bp.get("/uploads")
@staff_or_token
def uploads_list() -> Any:
    """Every upload: id, point_id, township, state, title, size, received, reason."""
    keys = ("id", "version", "point_id", "county", "township", "state", "title", "category", "size", "received",
            "created_at", "decided_at", "reason", "townships")
    rows = _centre()["uploads"].list(request.args.get("state") or None, scope=scope())
    return jsonify([{k: u[k] for k in keys} for u in rows])


@metrics_bp.get("/metrics")
def metrics() -> Any:
    """Prometheus text format; with centre.metrics_token set, only for `Authorization: Bearer <token>`."""
    token = _centre()["config"].centre.metrics_token
    if token:
        sent = request.headers.get("Authorization", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            return Response("metrics need Authorization: Bearer <centre.metrics_token>\n", 401,
                            {"WWW-Authenticate": 'Bearer realm="metrics"'}, mimetype="text/plain")
    return Response(generate_latest(_centre()["metrics"].registry), mimetype=CONTENT_TYPE_LATEST)
