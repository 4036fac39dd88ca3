"""The administrator's device page at /admin: health at a glance, content, uplink, actions, log.

For a part-time village cadre: plain Chinese first, one sentence that says
what is wrong and what to do, big buttons, usable on a phone. Every route
needs the login (else the login page, or 401 for JSON); every POST needs the
session's CSRF token (else nothing changes). The view only parses and
renders: health lives in kiosk.device, content in kiosk.library.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from pathlib import Path
from typing import Any

from flask import (
    Blueprint, Response, current_app, flash, get_flashed_messages, jsonify, redirect, render_template,
    request, url_for,
)

from kiosk.device import Readings, health, history, power
from kiosk.errors import KioskError, NotFound
from kiosk import update
from kiosk.update import words as update_words
from kiosk.web import arrivals, auth, channels, sparklines
from kiosk.web import glance as glance_mod
from kiosk.web.screens import on_kiosk_screen
from kiosk.web.channels import CHANNEL_WORDS  # noqa: F401 (tests and docs read it here)

log = logging.getLogger(__name__)

bp = Blueprint("admin", __name__)

PUBLIC = {"admin.login", "admin.setup"}
LOG_LINES = 200
DAY = 86400


# --- the page's own log: a bounded ring in memory ----------------------------------
class LogRing(logging.Handler):
    """The last LOG_LINES log lines of this process, for the page (no disk writes, no journal rights)."""

    def __init__(self, size: int = LOG_LINES) -> None:
        super().__init__(level=logging.INFO)
        self.lines: collections.deque[str] = collections.deque(maxlen=size)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s", "%Y-%m-%d %H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.WARNING and not record.name.startswith("kiosk"):
            return  # the box's own lines, and only others' warnings (apscheduler logs every run)
        try:
            self.lines.append(self.format(record))
        except Exception:  # logging must never break the box
            self.handleError(record)


_ring_lock = threading.Lock()


def log_ring() -> LogRing:
    """The ring attached to the root logger (attached once per process)."""
    logger = logging.getLogger()
    with _ring_lock:
        for h in logger.handlers:
            if isinstance(h, LogRing):
                return h
        ring = LogRing()
        logger.addHandler(ring)
        return ring


@bp.record_once
def _install(state: Any) -> None:
    log_ring()


# --- helpers -------------------------------------------------------------------------
def _cfg() -> Any:
    return current_app.extensions["kiosk"]["config"]


def _part(name: str) -> Any:
    return current_app.extensions["kiosk"].get(name)


class _NoHardware:
    """Stands in when the app was built without hardware: every reading unknown."""

    name = "none"

    def read(self) -> Readings:
        return Readings()


def _hardware() -> Any:
    return _part("hardware") or _NoHardware()


def _limiter() -> auth.RateLimiter:
    """The app's login rate limiter (one per app, made on first use)."""
    return current_app.extensions.setdefault("kiosk_admin_limiter", auth.RateLimiter(_cfg().admin.max_login_attempts))


def _wants_json() -> bool:
    return request.path.endswith(".json") or request.accept_mimetypes.best == "application/json"


def _uplink() -> dict[str, Any]:
    try:
        return dict(_part("uplink_status")() or {})
    except Exception as e:  # the uplink part's trouble must not hide the page
        log.warning("event=uplink_status_failed error=%r", e)
        return {}


def _software() -> dict[str, Any] | None:
    """The software section: the running release, the update state and the last update, in words."""
    return _safe("software", lambda: update_words.view(update.status(_cfg())), None)


def _safe(what: str, fn: Any, default: Any) -> Any:
    """Ask the library; on failure show the rest of the page and say this part is unavailable."""
    try:
        return fn()
    except Exception as e:
        log.warning("event=admin_part_failed part=%s error=%r", what, e)
        return default


def fmt_time(ts: float | None) -> str:
    """A time in local form, or a dash."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "—"


def fmt_size(n: float | None) -> str:
    """Bytes in local form (GB, MB)."""
    if n is None:
        return "—"
    for unit, size in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} 字节"


def fmt_age(seconds: float | None, en: bool = False) -> str:
    """A span of time in plain words (minutes, hours, days)."""
    if seconds is None:
        return "—"
    if seconds < 3600:
        n, zh, eng = max(1, int(seconds // 60)), "分钟", "min"
    elif seconds < 2 * DAY:
        n, zh, eng = round(seconds / 3600), "小时", "h"
    else:
        n, zh, eng = round(seconds / DAY), "天", "days"
    return f"{n} {eng}" if en else f"{n} {zh}"


@bp.app_template_filter("admin_age")
def _admin_age(seconds: float | None) -> str:
    return fmt_age(seconds)


@bp.app_template_filter("admin_age_en")
def _admin_age_en(seconds: float | None) -> str:
    return fmt_age(seconds, en=True)


@bp.app_template_filter("admin_time")
def _admin_time(ts: float | None) -> str:
    return fmt_time(ts)


@bp.app_template_filter("file_name")
def _file_name(path: Any) -> str:
    return arrivals.file_name(path)


@bp.app_template_filter("admin_size")
def _admin_size(n: float | None) -> str:
    return fmt_size(n)


def _page(template: str, status: int = 200, **context: Any) -> Response:
    cfg = _cfg()
    body = render_template(template, point=cfg.point, csrf=auth.csrf_token(), kiosk_screen=on_kiosk_screen(),
                           idle_s=cfg.web.idle_return_s, admin_in=auth.logged_in(cfg), **context)
    resp = current_app.make_response((body, status))
    resp.headers["Cache-Control"] = "no-store"
    return resp


# --- the guard: login and CSRF on everything -----------------------------------------
@bp.before_request
def _guard() -> Any:
    cfg = _cfg()
    public = request.endpoint in PUBLIC
    if not public and not auth.logged_in(cfg):
        if _wants_json():
            return jsonify(error="login required", detail="请先登录设备管理页"), 401
        return _login_page(status=401)
    if request.method == "POST" and not auth.csrf_ok(request.form.get("csrf")):
        log.warning("event=admin_csrf_refused path=%s", request.path)
        return _page("admin/message.html", 400, level="fault",
                     title="操作没有执行", title_en="Nothing was done",
                     text="页面已过期或来源不明，为了安全没有执行。请回到设备管理页重新操作。",
                     text_en="The page was stale or not from this box, so nothing was changed. Go back and try again.")
    return None


def _login_page(status: int = 200, error: str = "", error_en: str = "") -> Response:
    cfg = _cfg()
    first = not auth.has_password(cfg)
    on_box = on_kiosk_screen()
    # The box's own screen shows the setup code: whoever stands at the box may set the first password.
    code = auth.setup_code(cfg) if first and on_box else ""
    return _page("admin/login.html", status, first=first, error=error, error_en=error_en, setup_code=code,
                 min_password=auth.MIN_PASSWORD)


def _too_many(wait: float) -> Response:
    minutes = int(wait // 60) + 1
    return _login_page(429, f"输错的次数太多，请 {minutes} 分钟后再试。", f"Too many wrong tries; try again in {minutes} min.")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """The login form; on success, the device page."""
    cfg = _cfg()
    if request.method == "GET":
        return redirect(url_for("admin.index")) if auth.logged_in(cfg) else _login_page()
    who = request.remote_addr or "?"
    wait = _limiter().blocked(who)
    if wait:
        return _too_many(wait)
    if not auth.check_password(cfg, request.form.get("password", "")):
        _limiter().failed(who)
        log.warning("event=admin_login_failed addr=%s", who)
        return _login_page(401, "密码不对，请再试一次。", "Wrong password, please try again.")
    _limiter().succeeded(who)
    auth.log_in(cfg)
    log.info("event=admin_login addr=%s", who)
    return redirect(url_for("admin.index"))


SETUP_KEY = "setup-code"  # wrong setup codes from any phone also count together: the code is short


@bp.post("/setup")
def setup() -> Any:
    """First visit: set the password with the one-time setup code (only while none is set)."""
    cfg = _cfg()
    if auth.has_password(cfg):
        return _login_page(409, "密码已经设置过了，请直接登录。", "A password is already set; please log in.")
    who = request.remote_addr or "?"
    keys = [who] if on_kiosk_screen() else [who, SETUP_KEY]
    wait = max(_limiter().blocked(k) for k in keys)
    if wait:
        return _too_many(wait)
    if not auth.setup_code_ok(cfg, request.form.get("code")):
        for k in keys:
            _limiter().failed(k)
        log.warning("event=admin_setup_code_refused addr=%s", who)
        return _login_page(403, "设置码不对。请看设备触摸屏上显示的设置码。", "Wrong setup code. Read it on the box's own screen.")
    pw, again = request.form.get("password", ""), request.form.get("password2", "")
    if pw != again:
        return _login_page(400, "两次输入的密码不一样，请重新输入。", "The two passwords differ; please type them again.")
    try:
        won = auth.set_first_password(cfg, pw)
    except auth.PasswordRefused:
        return _login_page(400, f"密码至少要 {auth.MIN_PASSWORD} 个字，前后不能有空格。",
                           f"The password needs at least {auth.MIN_PASSWORD} characters and no space at either end.")
    if not won:
        return _login_page(409, "密码已经设置过了，请直接登录。", "A password is already set; please log in.")
    auth.log_in(cfg)
    log.info("event=admin_setup addr=%s", who)
    return redirect(url_for("admin.index"))


@bp.post("/logout")
def logout() -> Any:
    """End the administrator's sessions (on every device)."""
    auth.log_out(_cfg())
    return redirect("/" if on_kiosk_screen() else url_for("admin.login"))


@bp.post("/password")
def change_password() -> Any:
    """A new password: the old one first; every other session ends."""
    cfg = _cfg()
    who = request.remote_addr or "?"
    wait = _limiter().blocked(who)
    if wait:
        flash(f"输错的次数太多，请 {int(wait // 60) + 1} 分钟后再试。", "fault")
    elif not auth.check_password(cfg, request.form.get("old", "")):
        _limiter().failed(who)
        flash("原来的密码不对，密码没有改。", "fault")
    elif request.form.get("password", "") != request.form.get("password2", ""):
        flash("两次输入的新密码不一样，密码没有改。", "fault")
    else:
        try:
            auth.set_password(cfg, request.form.get("password", ""))
        except auth.PasswordRefused:
            flash(f"新密码至少要 {auth.MIN_PASSWORD} 个字，前后不能有空格。密码没有改。", "fault")
        else:
            auth.log_in(cfg)  # this session goes on; every other one has ended
            flash("密码已经改好。其他手机要用新密码重新登录。", "ok")
            log.info("event=admin_password_changed addr=%s", who)
    return redirect(url_for("admin.index") + "#password")


# --- the device page -------------------------------------------------------------------
def _store() -> history.HistoryStore | None:
    try:
        return history.open_store(_cfg())
    except Exception as e:
        log.warning("event=history_unavailable error=%r", e)
        return None


# The page's sections, top to bottom, one template each under templates/admin/sections/.
# A part of the box that has something to show adds its name here and its template there.
SECTIONS = ["health", "content", "import", "local", "spool", "sync", "items", "recent", "quarantine", "uplink", "software", "power", "password", "more"]


def _title_of(item_id: str) -> str | None:
    try:
        return _part("library").item(item_id).title
    except Exception:  # gone since (deleted, evicted, withdrawn) or never published
        return None


def _action_url(action: str) -> str:
    """Where a button at the top goes: a power action's confirm page, or a section opened."""
    if action in _POWER_WORDS:
        return url_for("admin.power_action", action=action)
    return url_for("admin.index", open=action) + "#" + action


def _glance(snap: dict[str, Any], spool_view: Any, sync_view: Any) -> dict[str, Any]:
    return glance_mod.glance(snap, channels.problems(spool_view, sync_view))


@bp.get("")
@bp.get("/")
def index() -> Any:
    """The one-glance state and its actions at the top; every topic below in a section that opens on demand."""
    cfg = _cfg()
    lib = _part("library")
    uplink = _uplink()
    snap = health.snapshot(_hardware(), cfg, uplink)
    q = request.args.get("q", "").strip()
    items = _safe("items", lambda: lib.items(q=q or None, limit=30), None) if lib else None
    progress = import_progress()
    spool_view = _spool_status()
    sync_view = _safe("sync", lambda: channels.sync_view(uplink.get("sync")), None)
    recent = _safe("recent", lambda: lib.recent(20), None) if lib else None
    quarantine = _safe("quarantine", lib.quarantine, None) if lib else None
    named = [r.get("id") for r in recent or []] + [e.get("id") for e in quarantine or []]
    if sync_view:
        named += [f.get("id") for f in sync_view.get("partial_files") or []] + [(sync_view.get("refused") or {}).get("id")]
    titles = arrivals.titles_for(named, _title_of) if lib else {}
    reasons, reasons_en = _reason_words()
    opened = set(request.args.getlist("open"))
    return _page(
        "admin/index.html",
        sections=SECTIONS,
        opened=lambda name: name in opened,
        glance=_glance(snap, spool_view, sync_view),
        action_url=_action_url,
        action_words=glance_mod.ACTION_WORDS,
        snap=snap,
        signals=health.SIGNALS,
        sparks=sparklines.for_history(_store()),
        summary=_safe("summary", lib.summary, None) if lib else None,
        recent=arrivals.recent_view(recent, titles, reasons) if recent is not None else None,
        quarantine=arrivals.quarantine_view(quarantine, titles) if quarantine is not None else None,
        titles=titles,
        items=items,
        q=q,
        uplink=uplink,
        uplink_last=health.pick(uplink, "last_sent", "last_sent_at", "last_ack"),
        uplink_depth=health.pick(uplink, "outbox", "outbox_depth", "pending"),
        centre_url=cfg.centre.url,
        progress=progress,
        spool=spool_view,
        spool_stale_s=cfg.storage.spool_stale_s,
        sync=sync_view,
        sync_problems=channels.problems(sync_view),
        software=_software(),
        channel_words=CHANNEL_WORDS,
        channel_states=channels.CHANNEL_STATES,
        reason_words=reasons,
        reason_words_en=reasons_en,
        usb_disks=_usb_disks(),
        min_password=auth.MIN_PASSWORD,
        messages=get_flashed_messages(with_categories=True),
        refresh=bool(progress and progress.get("state") == "importing"),
    )


@bp.get("/status.json")
def status_json() -> Any:
    """The page's facts as JSON (for a phone that polls, and for tests)."""
    lib = _part("library")
    uplink = _uplink()
    snap = health.snapshot(_hardware(), _cfg(), uplink)
    spool_view = _spool_status()
    sync_view = _safe("sync", lambda: channels.sync_view(uplink.get("sync")), None)
    return jsonify(
        glance=_glance(snap, spool_view, sync_view),
        health=snap,
        content=_safe("summary", lib.summary, None) if lib else None,
        uplink=uplink,
        import_progress=import_progress(),
        spool=spool_view,
        sync=sync_view,
        software=_software(),
    )


@bp.get("/log")
def log_page() -> Any:
    """This process's last 200 log lines, newest last."""
    return _page("admin/log.html", lines=list(log_ring().lines))


# --- content actions -------------------------------------------------------------------
@bp.post("/items/<item_id>/pin")
def pin(item_id: str) -> Any:
    """Pin (keep) or release an item."""
    pinned = request.form.get("pinned", "1") == "1"
    title = _title_of(item_id)
    try:
        _part("library").pin(item_id, pinned)
    except NotFound:
        flash("没有找到这个节目，可能已经被删除了。", "fault")
    else:
        flash(("已固定，不会被自动删除：" if pinned else "已取消固定：") + f"“{title}”", "ok")
        log.info("event=admin_pin id=%s pinned=%s", item_id, pinned)
    return redirect(url_for("admin.index", q=request.form.get("q") or None, open="items") + "#items")


@bp.route("/items/<item_id>/delete", methods=["GET", "POST"])
def delete(item_id: str) -> Any:
    """Delete an item, after a confirm step that names it by its title."""
    title = _title_of(item_id)
    if title is None:
        flash("没有找到这个节目，可能已经被删除了。", "fault")
        return redirect(url_for("admin.index", open="items") + "#items")
    if request.method == "GET" or request.form.get("confirm") != "yes":
        return _page("admin/confirm.html", action=url_for("admin.delete", item_id=item_id),
                     question=f"确定要删除节目“{title}”吗？删除后村民就看不到了。",
                     question_en=f"Delete the programme “{title}”? Villagers will no longer see it.",
                     button="删除 Delete")
    try:
        _part("library").delete(item_id)
    except NotFound:
        flash("没有找到这个节目，可能已经被删除了。", "fault")
    except KioskError:
        flash("现在正在导入节目，不能删除。请等导入完成后再试。", "fault")
    else:
        flash(f"已删除：“{title}”", "ok")
        log.info("event=admin_delete id=%s", item_id)
    return redirect(url_for("admin.index", open="items") + "#items")


def _reason_words() -> tuple[dict[str, str], dict[str, str]]:
    """Rejection reasons in plain Chinese and in English (the library's own words)."""
    from kiosk.library import quarantine

    return dict(quarantine.REASONS_ZH), dict(quarantine.REASONS_EN)


# --- satellite spool and telecom sync (their words live in kiosk/web/channels.py) ------------
def _spool_status() -> dict[str, Any] | None:
    """The spool's status as the page shows it; None if unreadable."""
    from kiosk.library import spool

    return channels.spool_view(_safe("spool", lambda: spool.status(_cfg()), None))


# --- USB import --------------------------------------------------------------------------
def import_progress() -> dict[str, Any] | None:
    """The running or last USB import (kiosk/library/usb.py keeps the record), or None."""
    from kiosk.library import usb

    return _safe("usb_progress", lambda: usb.progress(_cfg()), None)


def _usb_disks() -> list[str]:
    from kiosk.library import usb

    return [str(p) for p in _safe("usb_candidates", lambda: usb.candidates(_cfg()), [])]


@bp.post("/import")
def start_import() -> Any:
    """Import from a plugged-in USB disk (one the box found; never a path typed in)."""
    from kiosk.library import usb

    disk = request.form.get("disk", "")
    if disk not in _usb_disks():
        flash("没有找到这个U盘，请重新插好再试。", "fault")
        return redirect(url_for("admin.index", open="import") + "#import")
    try:
        usb.start_import(_cfg(), _part("library"), Path(disk))
    except KioskError as e:
        log.info("event=admin_import_refused error=%r", str(e))
        flash("现在不能导入：已经有一个导入在进行，请等它完成。", "fault")
    else:
        flash("开始导入，请不要拔出U盘。", "ok")
        log.info("event=admin_import disk=%s", disk)
    return redirect(url_for("admin.index", open="import") + "#import")


# --- power -----------------------------------------------------------------------------
_POWER_WORDS = {
    "restart-screens": ("重启屏幕", "Restart screens", "确定要重启触摸屏吗？屏幕会黑几秒钟。", "Restart the touch screen? It goes dark for a few seconds.",
                        "触摸屏正在重启，几秒钟后就好。", "The touch screen is restarting."),
    "reboot": ("重启设备", "Reboot", "确定要重启设备吗？大约两分钟内屏幕和网页都用不了。", "Reboot the box? Screens and this page are away for about two minutes.",
               "设备正在重启，大约两分钟后再打开这个网页。", "The box is rebooting; open this page again in about two minutes."),
    "shutdown": ("关机", "Shut down", "确定要关机吗？关机后要拔掉电源再插上才能重新开机。", "Shut the box down? To start it again, unplug and replug the power.",
                 "设备正在关机。屏幕黑了以后等 10 秒，就可以拔电源了。", "The box is shutting down. Wait 10 s after the screen goes dark before unplugging."),
}


@bp.route("/power/<action>", methods=["GET", "POST"])
def power_action(action: str) -> Any:
    """Restart the screens, reboot or shut down, after a confirm step."""
    if action not in _POWER_WORDS:
        return _page("admin/message.html", 404, level="fault", title="没有这个操作", title_en="No such action", text="", text_en="")
    name, name_en, question, question_en, done, done_en = _POWER_WORDS[action]
    if request.method == "GET" or request.form.get("confirm") != "yes":
        return _page("admin/confirm.html", action=url_for("admin.power_action", action=action),
                     question=question, question_en=question_en, button=f"{name} {name_en}")
    try:
        power.perform(_cfg(), action)
    except KioskError as e:
        log.warning("event=admin_power_failed action=%s error=%r", action, str(e))
        return _page("admin/message.html", 500, level="fault", title=f"{name}没有成功", title_en=f"{name_en} failed",
                     text="请再试一次；仍不行，请直接拔掉电源再插上。", text_en="Try again; if it still fails, unplug the power and plug it in again.")
    return _page("admin/message.html", level="ok", title=name, title_en=name_en, text=done, text_en=done_en)


@bp.route("/<path:rest>", methods=["GET", "POST"])
def not_found(rest: str) -> Any:
    """Any other /admin address: the login page when logged out (the guard), else a plain 404."""
    return _page("admin/message.html", 404, level="warning", title="没有这一页", title_en="No such page",
                 text="请回到设备管理页。", text_en="Go back to the device page.")


from kiosk.web import admin_local  # noqa: E402,F401  (the local content section's routes join this blueprint)
