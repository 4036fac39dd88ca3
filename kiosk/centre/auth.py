"""Staff logins, CSRF on every form, and API tokens for machines.

CSRF is hand-written (a per-session token checked on every POST) because it is a dozen
lines and the centre has no other use for a forms library.
"""

from __future__ import annotations

import functools
import hmac
import logging
import secrets
from typing import Any, Callable

from flask import Blueprint, abort, current_app, g, redirect, render_template, request, session, url_for

from kiosk import clock
from kiosk.centre.tree import BadScope, Node

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)

# Requests that prove themselves otherwise (HMAC) and so skip the CSRF check.
CSRF_EXEMPT = {"/api/v1/heartbeats", "/api/v1/uploads"}
_FAILS: dict[str, list[float]] = {}
MAX_FAILS = 5
FAIL_WINDOW_S = 900


def csrf_token() -> str:
    """This session's CSRF token (made on first use)."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


def check_csrf() -> None:
    """Refuse a POST whose CSRF token is missing or wrong (before_request hook)."""
    if request.method != "POST" or request.path in CSRF_EXEMPT:
        return
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    if not sent or not hmac.compare_digest(sent, session.get("csrf", "")):
        abort(400, description="页面已过期，请刷新后再试。 The form token (CSRF) is missing or wrong; reload the page and try again.")


def staff() -> str | None:
    """The logged-in user name, if any."""
    return session.get("user")


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Send anyone not logged in to the login page."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        scope = _store().user_scope(staff()) if staff() else None
        if scope is None:  # not logged in, or the login was removed since
            session.pop("user", None)
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        g.user, g.scope = staff(), scope
        return view(*args, **kwargs)

    return wrapped


def staff_or_token(view: Callable[..., Any]) -> Callable[..., Any]:
    """Let in a logged-in user or a request with `Authorization: Bearer <API token>`."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        header = request.headers.get("Authorization", "")
        scope = _store().user_scope(staff()) if staff() else None
        if scope is None and header.startswith("Bearer "):
            scope = _store().token_scope(header[7:].strip())
        if scope is None:
            abort(401, description="log in, or send Authorization: Bearer <API token>")
        g.scope = scope
        return view(*args, **kwargs)

    return wrapped


def scope() -> Node:
    """The scope of this request's staff member or API token (set by the two decorators above)."""
    return g.scope


def check_scope(node: Node) -> None:
    """Refuse (403) a request for a node outside its scope: the one scope check of every view."""
    if not g.scope.contains(node):
        log.warning("outside scope scope=%s node=%s", g.scope, node)
        abort(403, description=f"没有权限：{node} 不在您的范围（{g.scope}）内。 {node} is outside your scope ({g.scope}).")


def requested_node() -> Node:
    """The node a request names (?county=&township=), else the scope's own; 403 outside the scope.

    400 for a name that cannot be read, 404 for a named county or township with no points.
    """
    from kiosk.centre import summary  # the tree's queries; imported here to keep auth light

    try:
        node = Node.of(request.args.get("county"), request.args.get("township"))
    except BadScope as e:
        abort(400, description=str(e))
    if node.level == "province" and not request.args.get("county"):
        node = g.scope  # nothing named: the staff member's own level
    check_scope(node)
    if node != g.scope and not summary.exists(_store(), node):
        abort(404, description=f"没有这个地方 no {node.level} named {node.name!r}")
    return node


def check_point(point: dict[str, Any]) -> None:
    """Refuse (403) a request about a point outside the scope."""
    check_scope(Node(point["county"], point["township"]))


def _store() -> Any:
    return current_app.extensions["centre"]["store"]


def _too_many(username: str) -> bool:
    now = clock.monotonic()
    fails = [t for t in _FAILS.get(username, []) if now - t < FAIL_WINDOW_S]
    _FAILS[username] = fails
    return len(fails) >= MAX_FAILS


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """The login form."""
    error = ""
    if request.method == "POST":
        username = request.form.get("username", "").strip()
        password = request.form.get("password", "")
        store = current_app.extensions["centre"]["store"]
        if _too_many(username):
            error = "登录失败次数过多，请 15 分钟后再试。 Too many failed logins; wait 15 minutes."
        elif store.check_user(username, password):
            _FAILS.pop(username, None)
            session.clear()
            session["user"] = username
            session.permanent = True
            log.info("staff login user=%s", username)
            target = request.args.get("next", "")
            return redirect(target if target.startswith("/") and not target.startswith("//") else url_for("dash.index"))
        else:
            _FAILS.setdefault(username, []).append(clock.monotonic())
            log.warning("staff login failed user=%s", username)
            error = "用户名或密码不对。 Wrong user name or password."
    return render_template("centre/login.html", error=error), (401 if error else 200)


@bp.post("/logout")
def logout() -> Any:
    """End the session."""
    session.clear()
    return redirect(url_for("auth.login"))
