"""The box's JSON API at /api/v1: items, one item, health, and the screens' play reports."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, abort, current_app, jsonify, request

from kiosk.errors import NotFound
from kiosk.library import hanzi
from kiosk.web.guard import same_origin

log = logging.getLogger(__name__)

bp = Blueprint("api", __name__)

MAX_PLAY_S = 86_400  # one report covers one screen's play: never more than a day

MAX_LIMIT = 200


def _part(name: str) -> Any:
    return current_app.extensions["kiosk"][name]


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        abort(400, description=f"{name} must be a whole number")
    return max(low, min(value, high))


@bp.get("/items")
def items() -> Any:
    """Visible items: ?category=&q=&limit=&offset=."""
    category = request.args.get("category") or None
    q = (request.args.get("q") or "").strip() or None
    limit = _int_arg("limit", 50, 1, MAX_LIMIT)
    offset = _int_arg("offset", 0, 0, 10_000_000)
    found = _part("library").items(category=category, q=q, limit=limit, offset=offset)
    return jsonify([it.to_json() for it in found])


@bp.get("/items/<item_id>")
def item(item_id: str) -> Any:
    """One visible item."""
    try:
        it = _part("library").item(item_id)
    except NotFound:
        abort(404, description=f"no item {item_id}")
    return jsonify(it.to_json())


@bp.get("/hanzi")
def hanzi_candidates() -> Any:
    """Hanzi for typed pinyin (?p=yangzhu) for the on-screen keyboard: the catalogue's own words first."""
    typed = (request.args.get("p") or "")[:64]
    return jsonify([c.to_json() for c in hanzi.candidates(typed, _part("library").words)])


@bp.get("/categories")
def categories() -> Any:
    """Every category with visible items, with counts."""
    return jsonify(_part("library").categories())


@bp.get("/health")
def health() -> Any:
    """The box's health as the device part reads it, with the content summary and uplink state."""
    cfg = _part("config")
    hardware = _part("hardware")
    out: dict[str, Any] = {"point": {"id": cfg.point.id, "name": cfg.point.name}}
    try:
        out["uplink"] = _part("uplink_status")()
    except Exception as e:
        log.warning("event=uplink_status_failed error=%r", e)
        out["uplink"] = None
    try:
        from kiosk.device import health as device_health

        # The uplink goes in too, so "no report reached the centre for a day" is judged as well.
        out["health"] = device_health.snapshot(hardware, cfg, out["uplink"]) if hardware is not None else None
    except ImportError:
        out["health"] = None
    except Exception as e:  # a failing sensor must not take the API down
        log.warning("event=health_snapshot_failed error=%r", e)
        out["health"] = {"error": str(e)}
    try:
        out["content"] = _part("library").summary()
    except Exception as e:
        log.warning("event=summary_failed error=%r", e)
        out["content"] = None
    wishes = _part("wishes")
    out["wishes"] = wishes.counts() if wishes is not None else None
    return jsonify(out)


@bp.get("/notice")
def notice() -> Any:
    """What the screens should tell villagers now (a USB import and how far it is), or null."""
    try:
        from kiosk.library import usb
    except ImportError:
        return jsonify(notice=None)
    try:
        found = usb.notice(_part("config"))
    except Exception as e:  # a notice is a courtesy: never an error on the screens
        log.warning("event=notice_failed error=%r", e)
        found = None
    if not found:
        return jsonify(notice=None)
    from kiosk.web.i18n import current_language

    text = found.get("en") if current_language() == "en" else found.get("zh")
    return jsonify(notice={"state": found.get("state"), "percent": found.get("percent"), "text": text})


@bp.post("/plays")
def plays() -> Any:
    """The screens report how long a video or audio was played (anonymous)."""
    if not same_origin():
        abort(403, description="cross-site request")
    try:
        data = request.get_json(silent=True, force=True) or {}
    except RecursionError:  # nesting deeper than the parser goes: not a report of ours
        abort(400, description="the body is nested too deeply")
    if not isinstance(data, dict):
        abort(400, description="the body must be a JSON object")
    item_id = str(data.get("item") or "")
    try:
        seconds = float(data.get("seconds") or 0)
    except (TypeError, ValueError):
        abort(400, description="seconds must be a number")
    if not 0 <= seconds <= MAX_PLAY_S:  # NaN fails this too
        abort(400, description=f"seconds must be between 0 and {MAX_PLAY_S}")
    try:
        it = _part("library").item(item_id)
    except NotFound:
        abort(404, description=f"no item {item_id}")
    usage = _part("usage")
    if usage is not None and seconds > 0:
        # The first report of a screen's play counts a play; later ones add its seconds.
        usage.record(it.id, it.category, "watch" if data.get("continued") else "play", seconds)
    return jsonify(ok=True)
