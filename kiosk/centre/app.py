"""The county centre's Flask app: dashboard at /, JSON API at /api/v1, /metrics."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, g, jsonify, render_template, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from kiosk import clock
from kiosk import config as config_mod
from kiosk.centre import api, auth, facts, review, stats, status, views
from kiosk.centre.metrics import Metrics
from kiosk.centre.publish import Publisher
from kiosk.centre.store import Store
from kiosk.centre.uploads import Uploads

log = logging.getLogger(__name__)


def create_centre_app(cfg: config_mod.Config | None = None, store: Store | None = None) -> Flask:
    """Build the centre app; records the centre's start time (alerts wait one offline period)."""
    cfg = cfg or config_mod.load()
    store = store or Store.from_config(cfg)
    store.mark_started()
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=_secret_key(cfg),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=cfg.centre.session_hours),
        # The largest upload to publish, with room for the form around it; the heartbeat and
        # upload endpoints check their own, far lower, limits and answer in JSON.
        MAX_CONTENT_LENGTH=(cfg.centre.max_upload_mb << 20) + 65536,
    )

    def summary() -> tuple[dict[str, int], int]:
        return stats.status_counts(store, store.rules(cfg), clock.now())

    app.session_interface = _SessionInterface()
    if cfg.centre.trust_proxy:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)  # type: ignore[method-assign]
    app.extensions["centre"] = {
        "config": cfg,
        "store": store,
        "metrics": Metrics(summary),
        "publisher": Publisher(cfg, store),
        "uploads": Uploads(cfg, store),
        # SQLite writes one at a time, so two ingesting threads keep it busy; a PostgreSQL server
        # with more threads (and cores) takes more. The rest of the threads serve the dashboard.
        "ingest_gate": threading.BoundedSemaphore(max(2, cfg.web.threads // 4) if store.db.is_pg else 2),
    }
    app.register_blueprint(auth.bp)
    app.register_blueprint(views.bp)
    app.register_blueprint(review.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(api.metrics_bp)
    app.before_request(auth.check_csrf)
    app.jinja_env.globals.update(
        csrf_token=auth.csrf_token, staff=auth.staff, COLOURS=status.COLOURS,
        LABELS_ZH=status.LABELS_ZH, LABELS_EN=status.LABELS_EN, EVENTS_ZH=status.EVENTS_ZH,
        SOFTWARE_ZH=status.SOFTWARE_ZH, SOFTWARE_EN=status.SOFTWARE_EN,
    )
    app.jinja_env.globals.update(fact=facts.fact, fact_rows=facts.rows, HEALTH_FACTS=facts.HEALTH, CONTENT_FACTS=facts.CONTENT)
    app.jinja_env.filters.update(celsius=facts.celsius, percent=facts.percent, detail=facts.detail, when=facts.moment)
    app.jinja_env.globals.update(staff_scope=auth.scope, node_args=views.node_args, node_crumbs=views.node_crumbs)
    app.jinja_env.filters["dt"] = stats.local_time
    app.jinja_env.filters["ago"] = _ago
    app.jinja_env.filters["topic"] = stats.topic_name

    @app.before_request
    def _start_timer() -> None:
        g.t0 = time.perf_counter()

    @app.after_request
    def _observe(response: Any) -> Any:
        if "t0" in g:
            endpoint = request.url_rule.rule if request.url_rule else "unmatched"
            app.extensions["centre"]["metrics"].latency.labels(endpoint).observe(time.perf_counter() - g.t0)
        return response

    @app.after_request
    def _safe_headers(response: Any) -> Any:
        # No page of the centre may be framed (clickjacking) or sniffed into another type.
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
        return response

    @app.errorhandler(HTTPException)
    def _api_errors_as_json(e: HTTPException) -> Any:
        # Blueprint handlers miss routing 404s, so the API's JSON errors live here.
        if request.path.startswith("/api/"):
            return jsonify(error=e.name, detail=e.description, server_time=int(clock.now())), e.code
        if e.code == 413:
            mb = cfg.centre.max_upload_mb
            e.description = f"上传的文件超过 {mb} MB，没有发布。 Not published: the upload is over {mb} MB (centre.max_upload_mb)."
        if e.code in _TITLES_ZH:
            return render_template("centre/error.html", code=e.code, name=e.name, description=e.description,
                                   title_zh=_TITLES_ZH[e.code]), e.code
        return e

    @app.get("/healthz")
    def healthz() -> Any:
        return {"ok": True}

    return app


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with the cookie marked Secure whenever the request came over TLS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure or super().get_cookie_secure(app)


_TITLES_ZH = {400: "请求有误", 401: "需要登录", 403: "没有权限", 404: "找不到这个页面", 413: "文件太大", 500: "中心出错了"}


def _secret_key(cfg: config_mod.Config) -> str:
    """web.secret_key, else one made once and kept in the data folder."""
    if cfg.web.secret_key:
        return cfg.web.secret_key
    path = Path(cfg.data_dir) / "centre-secret-key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_hex(32)
        path.write_text(key)
        path.chmod(0o600)
        return key


def _ago(seconds: float | None) -> str:
    """A duration in plain Chinese: 5 分钟, 3 小时, 2 天."""
    if seconds is None:
        return ""
    if seconds < 90:
        return f"{int(seconds)} 秒"
    if seconds < 5400:
        return f"{int(seconds // 60)} 分钟"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} 小时"
    return f"{seconds / 86400:.0f} 天"
