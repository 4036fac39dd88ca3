"""The centre's JSON API: heartbeats from points, the points list, the package index."""

from __future__ import annotations

import logging
import random
from typing import Any

from flask import Blueprint, Response, abort, current_app, jsonify, request, send_file
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from kiosk import clock, wire
from kiosk.centre import ingest, summary
from kiosk.centre.auth import requested_node, staff_or_token

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
        answer = ingest.receive(c["store"], request.headers.get("Authorization"), body, method=request.method, path=request.path)
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
    keys = ("id", "name", "county", "township", "status", "last_seen", "alert", "last_seq", "software")
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


@metrics_bp.get("/metrics")
def metrics() -> Any:
    """Prometheus text format."""
    return Response(generate_latest(_centre()["metrics"].registry), mimetype=CONTENT_TYPE_LATEST)
