"""The staff dashboard: points by township, a point's page, usage, requests, the work report."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, current_app, g, render_template, request
from markupsafe import Markup

from kiosk import clock
from kiosk.centre import auth, charts, stats, status, summary
from kiosk.centre.auth import login_required, requested_node
from kiosk.centre.tree import PROVINCE, BadScope, Node
from kiosk.errors import KioskError, NotFound

bp = Blueprint("dash", __name__)
REPORT_MAX_REQUESTS = 20000  # the appendix lists every request of the months, up to this many
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


@bp.get("/")
@login_required
def index() -> Any:
    """The dashboard at a node of the tree: counts by status for each child, worst first, and a page of points."""
    c = _centre()
    store = c["store"]
    now = clock.now()
    rules = store.rules(c["config"])
    node = _page_node()
    try:
        filters = summary.parse_filters(request.args)
    except summary.BadQuery as e:
        abort(400, description=str(e))
    counts = summary.summary(store, rules, now, node)
    listing = summary.points_page(store, rules, now, node, **filters)
    for p in listing["points"]:
        p["offline_since"] = p["last_seen"] if p["status"] == "offline" else None
    return render_template(
        "centre/index.html", node=node, counts=counts["node"], children=counts["children"], listing=listing,
        filters=filters, filtered=bool(filters["status"] or filters["q"] or filters["offline_hours"] is not None),
        grace=rules.in_grace(now),
        keep={k: request.args[k] for k in ("q", "status", "offline_hours") if request.args.get(k)},
    )


def _page_node() -> Node:
    """The node a page shows: as the API reads it, but a province of one county opens on that county."""
    node = requested_node()
    if node.level == "province" and not request.args.get("county"):
        only = summary.only_county(_centre()["store"])
        if only is not None:
            return Node(only)
    return node


def node_args(node: Node, extra: dict[str, Any] | None = None, **more: Any) -> dict[str, Any]:
    """The query arguments naming a node (none for the province), with any others for a link."""
    args = {k: v for k, v in (("county", node.county), ("township", node.township)) if v}
    return {**args, **(extra or {}), **more}


def node_crumbs(node: Node) -> list[tuple[str, dict[str, str]]]:
    """(label, query) for each level from the staff member's own down to `node`."""
    levels = [("全省 province", {}), (node.county or summary.UNNAMED["county"], node_args(Node(node.county))),
              (node.township or summary.UNNAMED["township"], node_args(node))]
    depth = {"province": 1, "county": 2, "township": 3}
    return levels[depth[auth.scope().level] - 1 : depth[node.level]]


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
    auth.check_point(p)
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
    node = _page_node()
    tables = {by: stats.pivot(stats.usage(store, by, first, last, node), by) for by in (_by_place(node), "category")}
    return render_template("centre/usage.html", tables=tables, first=first, last=last, node=node, place=_by_place(node))


@bp.get("/usage.csv")
@login_required
def usage_csv() -> Any:
    """Usage as CSV (?by=township or category)."""
    by = request.args.get("by", "township")
    if by not in ("county", "township", "category"):
        abort(400, description="by must be county, township or category")
    first, last = _months()
    node = _page_node()
    rows = stats.usage(_centre()["store"], by, first, last, node)
    if by == "category":
        text = stats.to_csv(["栏目", "月份", "打开次数", "播放次数"],
                            ([stats.topic_name(r[by]), r["month"], r["opens"], r["plays"]] for r in rows))
    else:
        text = stats.to_csv([_PLACE_ZH[by], "月份", "打开次数", "播放次数"],
                            ([r[by] or summary.UNNAMED[by], r["month"], r["opens"], r["plays"]] for r in rows))
    return _csv(text, f"usage-by-{by}-{first}-{last}.csv")


@bp.get("/requests")
@login_required
def requests_page() -> Any:
    """Villagers' requests, newest first, and the topics asked for most."""
    first, last = _months()
    store = _centre()["store"]
    node = _page_node()
    return render_template(
        "centre/requests.html", rows=stats.requests(store, first, last, 500, node),
        topics=stats.request_topics(store, first, last, node), first=first, last=last, node=node,
    )


@bp.get("/requests.csv")
@login_required
def requests_csv() -> Any:
    """Villagers' requests as CSV."""
    first, last = _months()
    rows = stats.requests(_centre()["store"], first, last, 100000, _page_node())
    text = stats.to_csv(
        ["时间", "服务点编号", "服务点", "乡镇", "栏目", "内容"],
        ([stats.local_time(r["at"]), r["point"], r["name"], r["township"], stats.topic_name(r["topic"]), r["text"]] for r in rows),
    )
    return _csv(text, f"requests-{first}-{last}.csv")


@bp.get("/points.csv")
@login_required
def points_csv() -> Any:
    """The points of a node with their status as CSV, streamed (a province has hundreds of thousands)."""
    c = _centre()
    store, node = c["store"], _page_node()
    rows = summary.iter_points(store, store.rules(c["config"]), clock.now(), node)
    text = stats.csv_stream(
        ["编号", "名称", "乡镇", "状态", "最后联系", "县"],
        ([p["id"], p["name"], p["township"], status.LABELS_ZH[p["status"]], stats.local_time(p["last_seen"]), p["county"]]
         for p in rows),
    )
    return _csv(text, "points.csv" if node.level == "province" else f"points-{node.name}.csv")


@bp.get("/report")
@login_required
def report() -> Any:
    """A printable work report for a node and months: points, usage by place and topic, villagers' requests."""
    first, last = _months()
    c = _centre()
    store, node, now = c["store"], _page_node(), clock.now()
    rules = store.rules(c["config"])
    counts = summary.summary(store, rules, now, node)
    offline = summary.points_page(store, rules, now, node, status="offline", per_page=summary.MAX_PER_PAGE)
    place = _by_place(node)
    return render_template(
        "centre/report.html", first=first, last=last, node=node, counts=counts["node"], total=counts["node"]["total"],
        children=counts["children"], offline=offline["points"], offline_total=offline["total"], place=place,
        tables={by: stats.pivot(stats.usage(store, by, first, last, node), by) for by in (place, "category")},
        topics=stats.request_topics(store, first, last, node), top=stats.top_requests(store, first, last, node),
        asks=stats.requests(store, first, last, REPORT_MAX_REQUESTS, node),
        plays=stats.pivot(stats.usage(store, "category", first, last, node), "category", measure="plays"),
        online_share=round(100 * counts["node"]["online"] / counts["node"]["total"]) if counts["node"]["total"] else 0,
        generated=stats.local_time(now), local=stats.local_share(store, first, last, node),
    )


_PLACE_ZH = {"county": "县", "township": "乡镇"}


def _by_place(node: Node) -> str:
    """Usage of the province is shown by county, of a county or township by township."""
    return "county" if node.level == "province" else "township"


@bp.route("/tokens", methods=["GET", "POST"])
@login_required
def tokens() -> Any:
    """API tokens: make one (shown once) or revoke one."""
    store = _centre()["store"]
    new = ""
    # staff see and act on the tokens inside their own scope; a new token gets their scope
    mine = [t for t in store.tokens() if _inside(t["scope"])]
    if request.method == "POST":
        if request.form.get("revoke"):
            if request.form["revoke"] not in {t["id"] for t in mine}:
                abort(404, description="no such token")
            store.revoke_token(request.form["revoke"])
        else:
            new = store.new_token(request.form.get("name", "").strip()[:64], scope=str(auth.scope()))
        mine = [t for t in store.tokens() if _inside(t["scope"])]
    return render_template("centre/tokens.html", tokens=mine, new=new)


def _inside(scope: str) -> bool:
    try:
        return auth.scope().contains(Node.parse(scope))
    except BadScope:
        return False


@bp.route("/enroll", methods=["GET", "POST"])
@login_required
def enroll() -> Any:
    """Enrol a point (or give it a new secret); the secret is shown once."""
    point_id = secret = error = ""
    if request.method == "POST":
        point_id = request.form.get("point_id", "").strip()
        store = _centre()["store"]
        try:
            county = request.form.get("county", "").strip() or auth.scope().county or store.county
            township = request.form.get("township", "").strip() or auth.scope().township or ""
            auth.check_scope(Node(county, township or None))
            if store.secret(point_id) is not None:  # re-enrolling cuts off the old box: only within the scope
                auth.check_point(store.point(point_id))
            secret = store.enroll(point_id, name=request.form.get("name", "").strip()[:100], township=township, county=county)
        except KioskError as e:
            error = f"没有登记：编号只能用小写字母、数字和 . _ -。 Not enrolled: {e}"
    return render_template("centre/enroll.html", point_id=point_id, secret=secret, error=error), (400 if error else 200)


@bp.route("/publish", methods=["GET", "POST"])
@login_required
def publish() -> Any:
    """Upload a .zip (kiosk.json and data/), sign it and add it to the index; list what is published."""
    auth.check_scope(PROVINCE)  # a package goes to every point the centre serves
    publisher = _centre()["publisher"]
    message = error = ""
    if request.method == "POST":
        upload = request.files.get("package")  # its size is capped app-wide: MAX_CONTENT_LENGTH
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
    auth.check_scope(PROVINCE)
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
