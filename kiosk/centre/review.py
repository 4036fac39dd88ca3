"""The review queue for local content the points sent up: preview, correct, approve or reject.

Staff see the uploads of the points in their scope (a county's staff their county's);
each one's video, photos and PDF play in the browser from the unpacked package. The work
lives in kiosk/centre/uploads.py; these views parse and render.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, g, get_flashed_messages, redirect, render_template, request, send_file, url_for

from kiosk.centre.auth import check_scope, login_required, scope
from kiosk.centre.uploads import STATES, node_of
from kiosk.errors import KioskError, NotFound

bp = Blueprint("review", __name__, url_prefix="/uploads")

STATE_WORDS = {"receiving": ("正在接收", "receiving"), "pending": ("待审核", "waiting for review"),
               "approved": ("已通过", "approved"), "rejected": ("未通过", "rejected")}


def _uploads() -> Any:
    return current_app.extensions["centre"]["uploads"]


def _one(item_id: str) -> dict[str, Any]:
    try:
        upload = _uploads().get(item_id)
    except NotFound:
        abort(404, description=f"no upload {item_id}")
    check_scope(node_of(upload))
    return upload


@bp.get("")
@login_required
def queue() -> Any:
    """Uploads in the staff member's scope, those waiting for review first."""
    state = request.args.get("state") or None
    if state not in (None, *STATES):
        abort(400, description=f"state must be one of {', '.join(STATES)}")
    rows = _uploads().list(state, scope=scope())
    rows.sort(key=lambda u: (u["state"] != "pending", -(u["created_at"] or 0)))
    return render_template("centre/uploads.html", uploads=rows, state=state, words=STATE_WORDS,
                           messages=get_flashed_messages(with_categories=True))


@bp.get("/<item_id>")
@login_required
def detail(item_id: str) -> Any:
    """One upload: its files to preview, where it came from, and the decision forms."""
    upload = _one(item_id)
    files = _uploads().files(item_id) if upload["state"] != "receiving" else []
    return render_template("centre/upload.html", u=upload, files=files, words=STATE_WORDS,
                           messages=get_flashed_messages(with_categories=True))


@bp.get("/<item_id>/files/<path:rel>")
@login_required
def preview(item_id: str, rel: str) -> Any:
    """A payload file for the preview, with HTTP Range (a video seeks)."""
    _one(item_id)
    try:
        path = _uploads().file_path(item_id, rel)
    except NotFound:
        abort(404, description=f"no file {rel}")
    return send_file(path, conditional=True, max_age=0)


@bp.post("/<item_id>/edit")
@login_required
def edit(item_id: str) -> Any:
    """Correct the title, topic and description before deciding."""
    _one(item_id)
    try:
        _uploads().edit(item_id, request.form.get("title", ""), request.form.get("category", ""), request.form.get("description", ""))
        flash("已保存修改。 Saved.", "ok")
    except KioskError as e:
        flash(f"没有保存：{e}", "error")
    return redirect(url_for("review.detail", item_id=item_id))


@bp.post("/<item_id>/approve")
@login_required
def approve(item_id: str) -> Any:
    """Re-sign and list in the package index, for every point or the townships ticked."""
    _one(item_id)
    townships = [t for t in request.form.getlist("townships") if t.strip()]
    townships += [t.strip() for t in request.form.get("townships_more", "").replace("，", ",").split(",") if t.strip()]
    try:
        entry = _uploads().approve(current_app.extensions["centre"]["publisher"], item_id, townships, user=g.user)
        flash(f"已通过并发布（{entry['id']} 第 {entry['version']} 版）。 Approved and published.", "ok")
    except KioskError as e:
        flash(f"没有通过：{e}", "error")
    return redirect(url_for("review.detail", item_id=item_id))


@bp.post("/<item_id>/reject")
@login_required
def reject(item_id: str) -> Any:
    """Refuse with a reason the point will see."""
    _one(item_id)
    try:
        _uploads().reject(item_id, request.form.get("reason", ""), user=g.user)
        flash("已退回，原因会送到服务点。 Rejected; the point will see why.", "ok")
    except KioskError as e:
        flash(f"没有退回：{e}", "error")
    return redirect(url_for("review.detail", item_id=item_id))
