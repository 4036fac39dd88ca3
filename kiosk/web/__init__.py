"""The box's Flask app: screens (villagers) at /, admin (device page) at /admin, api at /api/v1."""

from __future__ import annotations

import logging
import os
import secrets
from typing import Any, Callable

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from kiosk import config as config_mod

log = logging.getLogger(__name__)


def _secret_key(cfg: config_mod.Config) -> str:
    """web.secret_key, else one generated once and kept in the data folder (sessions survive restarts)."""
    if cfg.web.secret_key:
        return cfg.web.secret_key
    path = cfg.data_dir / "web-secret"
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key)
    os.replace(tmp, path)
    return key


def _open_part(factory: Callable[[], Any], name: str) -> Any:
    """Open an optional part (usage, wishes, speech); the screens still work without it."""
    try:
        return factory()
    except Exception as e:  # a broken part must not keep the screens dark
        log.warning("event=part_unavailable part=%s error=%r", name, e)
        return None


def create_app(
    config: config_mod.Config | None = None,
    hardware: Any = None,
    *,
    library: Any = None,
    uplink_status: Callable[[], dict[str, Any]] | None = None,
    start_jobs: bool = True,
    usage: Any = None,
    wishes: Any = None,
) -> Flask:
    """Build the app. `uplink_status` is handed in by the runner so web never imports uplink.

    `start_jobs` is accepted for the house signature; the runner (kiosk.box) starts the
    scheduler, so the app itself never starts background work.
    """
    from kiosk.library.usage import Usage
    from kiosk.library.wishes import Wishes
    from kiosk.web import api, headers, i18n, media, screens
    from kiosk.web.speech import Speaker

    cfg = config or config_mod.load()
    app = Flask(__name__)
    app.config["KIOSK"] = cfg
    app.config["SECRET_KEY"] = _secret_key(cfg)
    # waitress refuses a larger body before reading it; this covers the app behind any other server
    app.config["MAX_CONTENT_LENGTH"] = cfg.web.max_request_kb * 1024
    app.config["JSON_AS_ASCII"] = False
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    if library is None:
        from kiosk.library import Library

        library = Library(cfg)
    app.extensions["kiosk"] = {
        "config": cfg,
        "hardware": hardware,
        "library": library,
        "uplink_status": uplink_status or (lambda: {}),
        "usage": usage if usage is not None else _open_part(lambda: Usage(cfg), "usage"),
        "wishes": wishes if wishes is not None else _open_part(lambda: Wishes(cfg), "wishes"),
        "speech": _open_part(lambda: Speaker(cfg.data_dir / "speech"), "speech"),
    }

    i18n.init_app(app)
    headers.init_app(app)
    app.register_blueprint(screens.bp)
    app.register_blueprint(media.bp)
    app.register_blueprint(api.bp, url_prefix="/api/v1")

    # The device page (admin blueprint at /admin) registers here.
    try:
        from kiosk.web import admin  # noqa: F401
    except ImportError:
        admin = None
    if admin is not None and hasattr(admin, "bp"):
        app.register_blueprint(admin.bp, url_prefix="/admin")

    @app.errorhandler(HTTPException)
    def _api_errors_as_json(e: HTTPException) -> Any:
        # Blueprint handlers miss routing 404s, so the API's JSON errors live here.
        if request.path.startswith("/api/"):
            return jsonify(error=e.name, detail=e.description), e.code
        if request.path.startswith("/admin") or request.path.startswith("/media/"):
            return e
        return screens.calm_error(e.code or 500)

    @app.errorhandler(Exception)
    def _never_a_traceback(e: Exception) -> Any:
        # Villagers must never see a traceback: log it, answer calmly.
        log.exception("event=unhandled_error path=%s", request.path)
        if request.path.startswith("/api/"):
            return jsonify(error="Internal Server Error", detail="the box could not answer; try again"), 500
        return screens.calm_error(500)

    @app.get("/healthz")
    def healthz() -> Any:
        return {"ok": True}

    return app
