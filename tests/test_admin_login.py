"""The device page's first visit and sessions: the one-time setup code, an atomic first password, sessions that end."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from kiosk.device.fake import FakeHardware
from kiosk.library import Library
from kiosk.web import auth, create_app
from tests.test_admin import PASSWORD, csrf_of

PHONE = {"REMOTE_ADDR": "192.168.1.50"}


@pytest.fixture
def app(cfg):
    lib = Library(cfg)
    yield create_app(cfg, FakeHardware(), library=lib, start_jobs=False)
    lib.close()


def phone(app, addr: str = "192.168.1.50"):
    """A test client that comes from a phone on the village Wi-Fi, not from the box's own screen."""
    c = app.test_client()
    c.environ_base["REMOTE_ADDR"] = addr
    return c


def setup(client, code: str | None, password: str = PASSWORD):
    token = csrf_of(client.get("/admin/login").text)
    data = {"csrf": token, "password": password, "password2": password}
    if code is not None:
        data["code"] = code
    return client.post("/admin/setup", data=data)


def log_in(client, password: str = PASSWORD):
    return client.post("/admin/login", data={"csrf": csrf_of(client.get("/admin/login").text), "password": password})


# --- the one-time setup code -----------------------------------------------------------------


def test_a_phone_cannot_claim_the_password_without_the_code_from_the_box(app, cfg):
    c = phone(app)
    page = c.get("/admin/login").text
    code = auth.setup_code(cfg)
    assert 'name="code"' in page and code not in page and "右上角按住 3 秒" in page
    for wrong in (None, "", "000000" if code != "000000" else "111111"):
        r = setup(c, wrong)
        assert r.status_code == 403 and "设置码不对" in r.text
        assert not auth.has_password(cfg)
    r = setup(c, f"{code[:3]} {code[3:]}")  # typed with the space the screen shows
    assert r.status_code == 302 and auth.check_password(cfg, PASSWORD)
    assert c.get("/admin/").status_code == 200
    assert not (cfg.data_dir / auth.SETUP_CODE_FILE).exists()  # one time only


def test_the_box_screen_shows_the_setup_code_and_can_set_the_password_itself(app, cfg):
    c = app.test_client()  # the loopback: the box's own touch screen
    page = c.get("/admin/login").text
    assert 'id="setup-code"' in page and f"{auth.setup_code(cfg)[:3]} {auth.setup_code(cfg)[3:]}" in page
    assert 'id="keypad"' in page  # no hardware keyboard on the box
    assert setup(c, auth.setup_code(cfg)).status_code == 302


def test_wrong_setup_codes_from_many_phones_count_together(app, cfg):
    for i in range(cfg.admin.max_login_attempts):
        assert setup(phone(app, f"192.168.1.{10 + i}"), "999999" if auth.setup_code(cfg) != "999999" else "888888").status_code == 403
    r = setup(phone(app, "192.168.1.99"), auth.setup_code(cfg))  # even the right code waits now
    assert r.status_code == 429 and not auth.has_password(cfg)
    assert setup(app.test_client(), auth.setup_code(cfg)).status_code == 302  # the box's own screen still can


def kiosk(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kiosk.cli", *args], capture_output=True, text=True, timeout=60)


def test_kiosk_admin_setup_code_prints_the_code_until_a_password_is_set(cfg, cfg_path):
    r = kiosk("admin", "setup-code", "--config", str(cfg_path))
    assert r.returncode == 0, r.stderr
    code = auth.setup_code(cfg)
    assert f"{code[:3]} {code[3:]}" in r.stdout
    assert kiosk("admin", "setup-code", "--config", str(cfg_path)).stdout == r.stdout  # the same code until used
    auth.set_password(cfg, PASSWORD)
    r = kiosk("admin", "setup-code", "--config", str(cfg_path))
    assert r.returncode != 0 and "already" in r.stderr and "Traceback" not in r.stderr


# --- an atomic first visit -------------------------------------------------------------------


def test_two_racing_first_visits_leave_the_password_of_the_one_told_it_worked(app, cfg):
    code = auth.setup_code(cfg)
    clients = [phone(app, f"192.168.1.{20 + i}") for i in range(6)]
    tokens = [csrf_of(c.get("/admin/login").text) for c in clients]
    start = threading.Barrier(len(clients))
    answers: dict[int, int] = {}

    def visit(i: int) -> None:
        start.wait()
        pw = f"password-{i}"
        answers[i] = clients[i].post("/admin/setup", data={"csrf": tokens[i], "code": code, "password": pw, "password2": pw}).status_code

    threads = [threading.Thread(target=visit, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    told_ok = [i for i, status in answers.items() if status == 302]
    assert len(told_ok) == 1, answers
    assert all(status == 409 for i, status in answers.items() if i not in told_ok)
    assert auth.check_password(cfg, f"password-{told_ok[0]}")
    for i in answers:
        assert (clients[i].get("/admin/").status_code == 200) == (i in told_ok)


# --- sessions that end -----------------------------------------------------------------------


def test_logging_out_ends_every_session_even_a_copied_cookie(app, cfg):
    auth.set_password(cfg, PASSWORD)
    a, b = phone(app), phone(app, "192.168.1.51")
    assert log_in(a).status_code == 302 and log_in(b).status_code == 302
    stolen = a.get_cookie("session").value
    thief = phone(app, "192.168.1.66")
    thief.set_cookie("session", stolen)
    assert thief.get("/admin/").status_code == 200
    a.post("/admin/logout", data={"csrf": csrf_of(a.get("/admin/").text)})
    for c in (a, b, thief):
        assert c.get("/admin/").status_code == 401


def test_a_password_change_ends_every_other_session(app, cfg):
    auth.set_password(cfg, PASSWORD)
    a, b = phone(app), phone(app, "192.168.1.51")
    log_in(a), log_in(b)
    token = csrf_of(a.get("/admin/").text)
    r = a.post("/admin/password", data={"csrf": token, "old": "wrong-one", "password": "new-pass-1", "password2": "new-pass-1"})
    assert "原来的密码不对" in a.get(r.headers["Location"]).text and auth.check_password(cfg, PASSWORD)
    a.post("/admin/password", data={"csrf": token, "old": PASSWORD, "password": "new-pass-1", "password2": "new-pass-1"})
    assert auth.check_password(cfg, "new-pass-1")
    assert a.get("/admin/").status_code == 200  # the one who changed it stays
    assert b.get("/admin/").status_code == 401
    assert log_in(b, PASSWORD).status_code == 401 and log_in(b, "new-pass-1").status_code == 302


def test_kiosk_admin_set_password_ends_every_session(app, cfg, cfg_path):
    auth.set_password(cfg, PASSWORD)
    a = phone(app)
    log_in(a)
    r = subprocess.run([sys.executable, "-m", "kiosk.cli", "admin", "set-password", "--config", str(cfg_path)],
                       input="another-1\n", capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert a.get("/admin/").status_code == 401


# --- the way in from the touch screen --------------------------------------------------------


def test_only_the_box_screen_offers_the_long_press_way_in(app):
    assert "admin-entry.js" in app.test_client().get("/").text
    assert "admin-entry.js" not in phone(app).get("/").text
