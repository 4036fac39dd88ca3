"""Staff logins, CSRF on every form, and API tokens for machines.

CSRF is hand-written (a per-session token checked on every POST) because it is a dozen
lines and the centre has no other use for a forms library.
"""

from __future__ import annotations

import functools
import hmac
import logging
import re
import secrets
from typing import Any, Callable
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, g, redirect, render_template, request, session, url_for

from kiosk import clock
from kiosk.centre import throttle
from kiosk.centre.tree import BadScope, Node

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)

# Requests that prove themselves otherwise (HMAC) and so skip the CSRF check.
CSRF_EXEMPT = {"/api/v1/heartbeats", "/api/v1/uploads"}
# A `next=` target: a path on this centre and nothing else. Browsers drop tabs and newlines
# from URLs and read "\" as "/", so "/\t/evil.example" would leave the centre.
_LOCAL_PATH = re.compile(r"/(?![/\\])[A-Za-z0-9/._~%!$&'()*+,;=:@?-]*")


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
    """The logged-in user name, if any; a login ends centre.session_hours after it was made."""
    user, at = session.get("user"), session.get("login_at")
    if not user or not isinstance(at, (int, float)):
        return None
    hours = current_app.extensions["centre"]["config"].centre.session_hours
    if not 0 <= clock.now() - at < hours * 3600:
        session.clear()  # a page that reloads itself keeps the cookie fresh, but not the login
        return None
    return user


def safe_next(target: str) -> str:
    """`target` when it is a path on this centre, else the dashboard."""
    if _LOCAL_PATH.fullmatch(target) and not urlsplit(target).netloc:
        return target
    return url_for("dash.index")


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


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """The login form, with the store-counted back-off of kiosk/centre/throttle.py."""
    error, status = "", 200
    if request.method == "POST":
        username = request.form.get("username", "").strip()[:128]
        password = request.form.get("password", "")[:1024]
        store = current_app.extensions["centre"]["store"]
        counters = throttle.keys(username, request.remote_addr or "")
        wait = throttle.begin(store, counters, clock.now())
        if wait:
            log.warning("staff login refused user=%s address=%s reason=throttled wait_s=%.0f", username, request.remote_addr, wait)
            error, status = f"登录失败次数过多，请 {wait:.0f} 秒后再试。 Too many failed logins; try again in {wait:.0f} s.", 429
        elif store.check_user(username, password):
            throttle.succeeded(store, counters)
            session.clear()
            session["user"] = username
            session["login_at"] = clock.now()
            session.permanent = True
            log.info("staff login user=%s", username)
            return redirect(safe_next(request.args.get("next", "")))
        else:
            log.warning("staff login failed user=%s address=%s", username, request.remote_addr)
            error, status = "用户名或密码不对。 Wrong user name or password.", 401
    return render_template("centre/login.html", error=error), status


@bp.post("/logout")
def logout() -> Any:
    """End the session."""
    session.clear()
    return redirect(url_for("auth.login"))
