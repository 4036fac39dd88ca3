"""The staff dashboard: points by township, a point's page, usage, requests, the work report."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, current_app, g, render_template, request
from markupsafe import Markup

from kiosk import clock
from kiosk.centre import charts, stats, status
from kiosk.centre.auth import login_required
from kiosk.errors import KioskError, NotFound

bp = Blueprint("dash", __name__)
_MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")


def _centre() -> dict[str, Any]:
    return current_app.extensions["centre"]


def _months() -> tuple[str, str]:
    """The month range asked for (?from=YYYY-MM&to=YYYY-MM), by default the last 12 months."""
    first, last = stats.month_range(12, clock.now())
    first = request.args.get("from", first)
    last = request.args.get("to", last)
    for month in (first, last):
        if not _MONTH.fullmatch(month):
            abort(400, description="月份要写成 2026-01 的样子。 Months are written YYYY-MM.")
    return first, last


def _overview() -> list[dict[str, Any]]:
    c = _centre()
    return stats.overview(c["store"], c["store"].rules(c["config"]), clock.now())


@bp.get("/")
@login_required
def index() -> Any:
    """Points by township with status colours; ?offline_hours=N keeps those offline longer."""
    c = _centre()
    now = clock.now()
    rules = c["store"].rules(c["config"])
    points = stats.overview(c["store"], rules, now)
    counts = stats.count_by_status(points)
    hours_arg = request.args.get("offline_hours", "").strip()
    hours: float | None = None
    if hours_arg:
        try:
            hours = max(0.0, float(hours_arg))
        except ValueError:
            hours = None
    shown = points
    if hours is not None:
        shown = [p for p in points if p["status"] == "offline" and p["quiet_s"] >= hours * 3600]
    return render_template(
        "centre/index.html", groups=stats.by_township(shown), counts=counts, total=len(points),
        hours=hours_arg if hours is not None else "", grace=rules.in_grace(now), shown=len(shown),
    )


@bp.get("/points/<point_id>")
@login_required
def point(point_id: str) -> Any:
    """One point: status, latest health, uptime strip and health charts over 30 days."""
    c = _centre()
    store = c["store"]
    now = clock.now()
    try:
        p = store.point(point_id)
    except NotFound:
        abort(404, description=f"no point {point_id}")
    rules = store.rules(c["config"])
    p["status"] = rules.status(p["last_seen"], now)
    p["quiet_s"] = None if p["last_seen"] is None else max(0.0, now - p["last_seen"])
    reports = store.reports(point_id, now - 30 * 86400)
    svg = {
        "strip": Markup(charts.uptime_strip(reports, now, since=min([p["enrolled_at"]] + [r["at"] for r in reports[:1]]))),
        "temp": Markup(charts.line_chart(reports, "temp_c", "CPU 温度 temperature", "°C", now, hi=90)),
        "disk": Markup(charts.line_chart(reports, "disk_percent", "磁盘使用 disk used", "%", now, hi=100)),
        "memory": Markup(charts.line_chart(reports, "memory_percent", "内存使用 memory used", "%", now, hi=100)),
        "load": Markup(charts.line_chart(reports, "load1", "负载 load", "1 min", now)),
    }
    return render_template("centre/point.html", p=p, svg=svg, events=store.events(point_id, 20))


@bp.get("/usage")
@login_required
def usage() -> Any:
    """Plays by township and by topic, month by month."""
    first, last = _months()
    store = _centre()["store"]
    tables = {by: stats.pivot(stats.usage(store, by, first, last), by) for by in ("township", "category")}
    return render_template("centre/usage.html", tables=tables, first=first, last=last)


@bp.get("/usage.csv")
@login_required
def usage_csv() -> Any:
    """Usage as CSV (?by=township or category)."""
    by = request.args.get("by", "township")
    if by not in ("township", "category"):
        abort(400, description="by must be township or category")
    first, last = _months()
    rows = stats.usage(_centre()["store"], by, first, last)
    if by == "category":
        text = stats.to_csv(["栏目", "月份", "打开次数", "播放次数"],
                            ([stats.topic_name(r[by]), r["month"], r["opens"], r["plays"]] for r in rows))
    else:
        text = stats.to_csv(["乡镇", "月份", "打开次数", "播放次数"],
                            ([r[by] or "（未分乡镇）", r["month"], r["opens"], r["plays"]] for r in rows))
    return _csv(text, f"usage-by-{by}-{first}-{last}.csv")


@bp.get("/requests")
@login_required
def requests_page() -> Any:
    """Villagers' requests, newest first, and the topics asked for most."""
    first, last = _months()
    store = _centre()["store"]
    return render_template(
        "centre/requests.html", rows=stats.requests(store, first, last, 500),
        topics=stats.request_topics(store, first, last), first=first, last=last,
    )


@bp.get("/requests.csv")
@login_required
def requests_csv() -> Any:
    """Villagers' requests as CSV."""
    first, last = _months()
    rows = stats.requests(_centre()["store"], first, last, 100000)
    text = stats.to_csv(
        ["时间", "服务点编号", "服务点", "乡镇", "栏目", "内容"],
        ([stats.local_time(r["at"]), r["point"], r["name"], r["township"], stats.topic_name(r["topic"]), r["text"]] for r in rows),
    )
    return _csv(text, f"requests-{first}-{last}.csv")


@bp.get("/points.csv")
@login_required
def points_csv() -> Any:
    """Every point with its status as CSV."""
    rows = _overview()
    text = stats.to_csv(
        ["编号", "名称", "乡镇", "状态", "最后联系"],
        ([p["id"], p["name"], p["township"], status.LABELS_ZH[p["status"]], stats.local_time(p["last_seen"])] for p in rows),
    )
    return _csv(text, "points.csv")


@bp.get("/report")
@login_required
def report() -> Any:
    """A printable work report: points, usage by township and topic, villagers' requests."""
    first, last = _months()
    store = _centre()["store"]
    points = _overview()
    return render_template(
        "centre/report.html", first=first, last=last, counts=stats.count_by_status(points), total=len(points),
        offline=[p for p in points if p["status"] == "offline"],
        tables={by: stats.pivot(stats.usage(store, by, first, last), by) for by in ("township", "category")},
        topics=stats.request_topics(store, first, last), asks=stats.requests(store, first, last, 200),
        generated=stats.local_time(clock.now()),
    )


@bp.route("/tokens", methods=["GET", "POST"])
@login_required
def tokens() -> Any:
    """API tokens: make one (shown once) or revoke one."""
    store = _centre()["store"]
    new = ""
    if request.method == "POST":
        if request.form.get("revoke"):
            try:
                store.revoke_token(request.form["revoke"])
            except NotFound:
                abort(404, description="no such token")
        else:
            new = store.new_token(request.form.get("name", "").strip()[:64])
    return render_template("centre/tokens.html", tokens=store.tokens(), new=new)


@bp.route("/enroll", methods=["GET", "POST"])
@login_required
def enroll() -> Any:
    """Enrol a point (or give it a new secret); the secret is shown once."""
    point_id = secret = error = ""
    if request.method == "POST":
        point_id = request.form.get("point_id", "").strip()
        try:
            secret = _centre()["store"].enroll(
                point_id, name=request.form.get("name", "").strip()[:100], township=request.form.get("township", "").strip()[:100]
            )
        except KioskError as e:
            error = f"没有登记：编号只能用小写字母、数字和 . _ -。 Not enrolled: {e}"
    return render_template("centre/enroll.html", point_id=point_id, secret=secret, error=error), (400 if error else 200)


@bp.route("/publish", methods=["GET", "POST"])
@login_required
def publish() -> Any:
    """Upload a .zip (kiosk.json and data/), sign it and add it to the index; list what is published."""
    publisher = _centre()["publisher"]
    message = error = ""
    if request.method == "POST":
        upload = request.files.get("package")
        if upload is None or not upload.filename:
            error = "请选择一个 zip 文件。 Choose a .zip file."
        else:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "upload.zip"
                upload.save(path)
                try:
                    entry = publisher.publish_zip(path, user=g.user)
                    message = f"已发布 {entry['id']} 第 {entry['version']} 版。 Published."
                except KioskError as e:
                    error = f"没有发布：{e} Not published."
    return _publish_page(message, error)


@bp.post("/publish/withdraw")
@login_required
def withdraw() -> Any:
    """Publish a signed recall of the named package ids."""
    message = error = ""
    try:
        entry = _centre()["publisher"].withdraw(request.form.get("ids", "").split(","), user=g.user)
        message = f"已发出撤回 {entry['id']}。 Recall published."
    except KioskError as e:
        error = f"没有撤回：{e} Not withdrawn."
    return _publish_page(message, error)


def _publish_page(message: str, error: str) -> Any:
    publisher = _centre()["publisher"]
    return render_template(
        "centre/publish.html", packages=publisher.packages(), public_key=publisher.public_key_pem(),
        message=message, error=error,
    ), (400 if error else 200)


def _csv(text: str, filename: str) -> Response:
    return Response(
        text, mimetype="text/csv", headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )
