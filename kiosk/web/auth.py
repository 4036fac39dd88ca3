"""The device page's login: one password, hashed; rate-limited; revocable, expiring sessions; CSRF.

The password hash (werkzeug's scrypt) lives in <data_dir>/admin-password,
readable by the kiosk user alone. The first password can be set from the page
only with the one-time setup code (<data_dir>/admin-setup-code), which the box's
own screen shows and `kiosk admin setup-code` prints, so the first phone on the
village Wi-Fi cannot claim the box; it is written by an exclusive create, so of two
racing first visits exactly one wins. Sessions carry the session generation of
<data_dir>/admin-sessions: logging out and setting a password write a new one,
which ends every session (a copied cookie included). The CSRF check is written here rather than
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


def _check_new(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise PasswordRefused(f"the password must have at least {MIN_PASSWORD} characters")
    if password != password.strip():
        raise PasswordRefused("the password must not begin or end with a space")


def _write_private(path: Path, text: str) -> Path:
    """Write `text` to a fresh temporary file beside `path` (mode 0600, synced); return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    return tmp


def set_password(cfg: Config, password: str) -> None:
    """Hash and store a new password (atomically, mode 0600); every session ends."""
    _check_new(password)
    tmp = _write_private(password_path(cfg), generate_password_hash(password, method="scrypt") + "\n")
    os.replace(tmp, password_path(cfg))
    end_all_sessions(cfg)
    _drop_setup_code(cfg)
    log.info("event=admin_password_set")


def set_first_password(cfg: Config, password: str) -> bool:
    """Store the first password; False (and nothing changed) when one is set already.

    An exclusive create (a hard link of the finished file, which fails when the name
    exists): of two racing first visits exactly one wins, and the other is told so.
    """
    _check_new(password)
    path = password_path(cfg)
    tmp = _write_private(path, generate_password_hash(password, method="scrypt") + "\n")
    try:
        os.link(tmp, path)  # never unlink first: a racing visit could be the one that just won
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    end_all_sessions(cfg)
    _drop_setup_code(cfg)
    log.info("event=admin_password_set first=1")
    return True


# --- the one-time setup code ---------------------------------------------------------

SETUP_CODE_FILE = "admin-setup-code"
SETUP_CODE_DIGITS = 6


def setup_code(cfg: Config) -> str:
    """The one-time code that lets the page set the first password (made once, kept until a password is set)."""
    path = cfg.data_dir / SETUP_CODE_FILE
    try:
        code = path.read_text(encoding="ascii").strip()
        if code.isdigit() and len(code) == SETUP_CODE_DIGITS:
            return code
    except FileNotFoundError:
        pass
    code = "".join(str(secrets.randbelow(10)) for _ in range(SETUP_CODE_DIGITS))
    tmp = _write_private(path, code + "\n")
    try:
        os.link(tmp, path)  # two processes asking at once agree on the first code
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    finally:
        tmp.unlink(missing_ok=True)
    return code


def setup_code_ok(cfg: Config, sent: str | None) -> bool:
    """True when `sent` (spaces allowed) is the setup code."""
    digits = "".join(ch for ch in str(sent or "") if not ch.isspace())
    return bool(digits) and hmac.compare_digest(digits.encode(), setup_code(cfg).encode())


def _drop_setup_code(cfg: Config) -> None:
    (cfg.data_dir / SETUP_CODE_FILE).unlink(missing_ok=True)


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


SESSIONS_FILE = "admin-sessions"


def _generation(cfg: Config) -> str:
    """The session generation now (made on first use); a session from another one has ended."""
    path = cfg.data_dir / SESSIONS_FILE
    try:
        gen = path.read_text(encoding="ascii").strip()
        if gen:
            return gen
    except FileNotFoundError:
        pass
    end_all_sessions(cfg)
    return path.read_text(encoding="ascii").strip()


def end_all_sessions(cfg: Config) -> None:
    """Write a new session generation: every session made before ends at its next request."""
    path = cfg.data_dir / SESSIONS_FILE
    os.replace(_write_private(path, secrets.token_urlsafe(16) + "\n"), path)


def log_in(cfg: Config) -> None:
    """Mark this session as the administrator's, with a fresh CSRF token."""
    session.clear()
    session["admin"] = _generation(cfg)
    session["admin_seen"] = clock.now()
    session["csrf"] = secrets.token_urlsafe(32)


def log_out(cfg: Config) -> None:
    """End the administrator's sessions: this one, any copy of its cookie, and those on other devices."""
    end_all_sessions(cfg)
    session.clear()


def logged_in(cfg: Config) -> bool:
    """True for a live admin session; touching it extends it (session_minutes without use ends it)."""
    gen = session.get("admin")
    if not isinstance(gen, str) or not hmac.compare_digest(gen, _generation(cfg)):
        if gen is not None:
            session.clear()
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
