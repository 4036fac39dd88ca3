"""The box's Flask app: screens (villagers) at /, admin (device page) at /admin, api at /api/v1."""

from __future__ import annotations

from typing import Any, Callable

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from kiosk import config as config_mod


def create_app(
    config: config_mod.Config | None = None,
    hardware: Any = None,
    *,
    library: Any = None,
    uplink_status: Callable[[], dict[str, Any]] | None = None,
) -> Flask:
    """Build the app. `uplink_status` is handed in by the runner so web never imports uplink."""
    cfg = config or config_mod.load()
    app = Flask(__name__)
    app.config["KIOSK"] = cfg
    app.extensions["kiosk"] = {
        "config": cfg,
        "hardware": hardware,
        "library": library,
        "uplink_status": uplink_status or (lambda: {}),
    }

    @app.errorhandler(HTTPException)
    def _api_errors_as_json(e: HTTPException) -> Any:
        # Blueprint handlers miss routing 404s, so the API's JSON errors live here.
        if request.path.startswith("/api/"):
            return jsonify(error=e.name, detail=e.description), e.code
        return e

    @app.get("/healthz")
    def healthz() -> Any:
        return {"ok": True}

    return app
