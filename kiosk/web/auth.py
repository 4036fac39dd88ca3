"""The device page's login: one password, hashed; rate-limited; expiring sessions; CSRF.

The password hash (werkzeug's scrypt) lives in <data_dir>/admin-password,
readable by the kiosk user alone. The CSRF check is written here rather than
taken from flask-wtf because CSRFProtect is app-wide and the screens' public
POSTs have their own guard (web/guard.py); this one is a per-session token
that only the admin blueprint checks.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import threading
from collections import deque
from pathlib import Path

from flask import session
from werkzeug.security import check_password_hash, generate_password_hash

from kiosk import clock
from kiosk.config import Config
from kiosk.errors import KioskError

log = logging.getLogger(__name__)

MIN_PASSWORD = 6
WINDOW_S = 15 * 60
PASSWORD_FILE = "admin-password"


class PasswordRefused(KioskError, ValueError):
    """A new password that is too short or otherwise unusable."""


def password_path(cfg: Config) -> Path:
    """Where the hash is kept."""
    return cfg.data_dir / PASSWORD_FILE


def has_password(cfg: Config) -> bool:
    """True once a password has been set."""
    try:
        return bool(password_path(cfg).read_text(encoding="ascii").strip())
    except OSError:
        return False


def set_password(cfg: Config, password: str) -> None:
    """Hash and store a new password (atomically, mode 0600)."""
    if len(password) < MIN_PASSWORD:
        raise PasswordRefused(f"the password must have at least {MIN_PASSWORD} characters")
    if password != password.strip():
        raise PasswordRefused("the password must not begin or end with a space")
    path = password_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(generate_password_hash(password, method="scrypt") + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    log.info("event=admin_password_set")


def check_password(cfg: Config, password: str) -> bool:
    """True when `password` matches the stored hash."""
    try:
        stored = password_path(cfg).read_text(encoding="ascii").strip()
    except OSError:
        return False
    return bool(stored) and check_password_hash(stored, password)


class RateLimiter:
    """At most `limit` failures per address in a sliding 15-minute window (kept in memory)."""

    def __init__(self, limit: int, window_s: float = WINDOW_S) -> None:
        self.limit = limit
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str) -> deque[float]:
        q = self._failures.setdefault(key, deque())
        cut = clock.monotonic() - self.window_s
        while q and q[0] < cut:
            q.popleft()
        return q

    def blocked(self, key: str) -> float:
        """Seconds until `key` may try again; 0 when it may now."""
        with self._lock:
            q = self._recent(key)
            if len(q) < self.limit:
                return 0.0
            return max(1.0, q[0] + self.window_s - clock.monotonic())

    def failed(self, key: str) -> None:
        """Count one failure."""
        with self._lock:
            self._recent(key).append(clock.monotonic())
            if len(self._failures) > 1000:  # bounded: forget addresses with nothing recent
                for k in [k for k, q in self._failures.items() if not q]:
                    del self._failures[k]

    def succeeded(self, key: str) -> None:
        """Forget the failures of `key`."""
        with self._lock:
            self._failures.pop(key, None)


# --- session -----------------------------------------------------------------------


def log_in(cfg: Config) -> None:
    """Mark this session as the administrator's, with a fresh CSRF token."""
    session.clear()
    session["admin"] = True
    session["admin_seen"] = clock.now()
    session["csrf"] = secrets.token_urlsafe(32)


def log_out() -> None:
    """End the session."""
    session.clear()


def logged_in(cfg: Config) -> bool:
    """True for a live admin session; touching it extends it (session_minutes without use ends it)."""
    if not session.get("admin"):
        return False
    seen = session.get("admin_seen", 0)
    now = clock.now()
    if not isinstance(seen, (int, float)) or not 0 <= now - seen <= cfg.admin.session_minutes * 60:
        session.clear()
        return False
    session["admin_seen"] = now
    return True


def csrf_token() -> str:
    """This session's CSRF token (made on first use)."""
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def csrf_ok(sent: str | None) -> bool:
    """True when `sent` is this session's token."""
    token = session.get("csrf")
    return bool(token and sent) and hmac.compare_digest(str(token), str(sent))
