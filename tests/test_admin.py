"""The device page at /admin: login, CSRF, every health state shown, content actions, power, status CLI."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk import clock
from kiosk.device import health, history
from kiosk.device.fake import FakeHardware
from kiosk.errors import NotFound
from kiosk.library import Library, usb
from kiosk.web import auth, create_app
from kiosk.web.admin import fmt_time
from tests.packages import make_bag, trust_dir
from tests.test_health import NOW, STATE_SETUPS

PASSWORD = "村委会2024pw"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "administrator.md"


@pytest.fixture
def box(cfg, tmp_path):
    """A box with one published item, one quarantined package, a power helper that records its calls."""
    calls = tmp_path / "power-calls"
    helper = tmp_path / "kiosk-power"
    helper.write_text(f'#!/bin/sh\necho "$@" >> "{calls}"\n')
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    cfg = cfg.replace(storage__trust_dir=str(trust_dir(tmp_path)), admin__power_command=str(helper))
    lib = Library(cfg)
    assert lib.ingest(make_bag(tmp_path)).outcome == "published"
    assert lib.ingest(make_bag(tmp_path, record={"id": "bad-one"}, mutate=lambda d: (d / "data/video.mp4").write_bytes(b"x"))).rejected
    yield cfg, lib, calls
    lib.close()
    history.close_all()


@pytest.fixture
def hw():
    return FakeHardware()


@pytest.fixture
def app(box, hw):
    cfg, lib, _ = box
    return create_app(cfg, hw, library=lib, start_jobs=False,
                      uplink_status=lambda: {"last_sent": clock.now() - 60, "outbox": 17})


@pytest.fixture
def client(app):
    return app.test_client()


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def log_in(client, cfg, password: str = PASSWORD):
    if not auth.has_password(cfg):
        auth.set_password(cfg, PASSWORD)
    token = csrf_of(client.get("/admin/login").text)
    return client.post("/admin/login", data={"csrf": token, "password": password})


@pytest.fixture
def admin(client, box):
    assert log_in(client, box[0]).status_code == 302
    return client


# --- login -----------------------------------------------------------------------------


def test_the_first_visit_sets_the_password_and_logs_in(client, box):
    cfg = box[0]
    page = client.get("/admin/")
    assert page.status_code == 401 and 'name="password2"' in page.text
    assert auth.setup_code(cfg) in page.text  # the box's own screen shows the one-time code
    r = client.post("/admin/setup", data={"csrf": csrf_of(page.text), "code": auth.setup_code(cfg),
                                          "password": PASSWORD, "password2": PASSWORD})
    assert r.status_code == 302
    assert "设备状况" in client.get("/admin/").text
    assert auth.check_password(cfg, PASSWORD)
    assert PASSWORD not in auth.password_path(cfg).read_text()  # stored hashed
    assert oct(auth.password_path(cfg).stat().st_mode & 0o777) == "0o600"


def test_once_set_the_password_cannot_be_set_again_from_the_page(client, box):
    cfg = box[0]
    auth.set_password(cfg, PASSWORD)
    token = csrf_of(client.get("/admin/login").text)
    r = client.post("/admin/setup", data={"csrf": token, "code": auth.setup_code(cfg), "password": "takeover1", "password2": "takeover1"})
    assert r.status_code == 409
    assert auth.check_password(cfg, PASSWORD) and not auth.check_password(cfg, "takeover1")


def test_a_wrong_password_is_refused_and_logins_are_rate_limited(client, box):
    cfg = box[0]
    with clock.use(clock.FrozenClock(NOW)) as frozen:
        for _ in range(cfg.admin.max_login_attempts):
            r = log_in(client, cfg, "wrong-password")
            assert r.status_code == 401 and "密码不对" in r.text
        r = log_in(client, cfg)  # even the right one waits now
        assert r.status_code == 429 and "分钟后再试" in r.text
        frozen.advance(15 * 60 + 1)
        assert log_in(client, cfg).status_code == 302


def test_a_session_ends_after_the_configured_minutes_without_use(client, box):
    with clock.use(clock.FrozenClock(NOW)) as frozen:
        log_in(client, box[0])
        frozen.advance(20 * 60)
        assert client.get("/admin/").status_code == 200  # use extends it
        frozen.advance(box[0].admin.session_minutes * 60 + 1)
        r = client.get("/admin/")
        assert r.status_code == 401 and 'name="password"' in r.text


def test_logging_out_ends_the_session(admin):
    token = csrf_of(admin.get("/admin/").text)
    admin.post("/admin/logout", data={"csrf": token})
    assert admin.get("/admin/").status_code == 401


# --- nothing without login, nothing without the token ---------------------------------------


@pytest.mark.parametrize("method,path,data", [
    ("GET", "/admin", None), ("GET", "/admin/", None), ("GET", "/admin/log", None),
    ("GET", "/admin/power/reboot", None), ("GET", "/admin/items/pig-farming/delete", None),
    ("GET", "/admin/no/such/page", None),
    ("POST", "/admin/items/pig-farming/pin", {"pinned": "1"}),
    ("POST", "/admin/items/pig-farming/delete", {"confirm": "yes"}),
    ("POST", "/admin/power/shutdown", {"confirm": "yes"}),
    ("POST", "/admin/import", {"disk": "/media/usb"}),
])
def test_without_login_every_admin_route_answers_with_the_login_page_and_changes_nothing(client, box, method, path, data):
    cfg, lib, calls = box
    auth.set_password(cfg, PASSWORD)
    if data is not None:
        data = {**data, "csrf": csrf_of(client.get("/admin/login").text)}  # even with a valid anonymous token
    r = client.open(path, method=method, data=data)
    assert r.status_code == 401
    assert 'name="password"' in r.text and "设备状况" not in r.text
    assert lib.item("pig-farming").pinned is False
    assert not calls.exists()


def test_without_login_json_answers_401(client, box):
    r = client.get("/admin/status.json")
    assert r.status_code == 401 and r.is_json and "health" not in r.json


@pytest.mark.parametrize("token", [None, "", "forged-token"])
def test_a_post_with_a_wrong_or_missing_csrf_token_changes_nothing(admin, box, token):
    cfg, lib, calls = box
    data = {"pinned": "1"} if token is None else {"pinned": "1", "csrf": token}
    r = admin.post("/admin/items/pig-farming/pin", data=data)
    assert r.status_code == 400 and "操作没有执行" in r.text
    assert lib.item("pig-farming").pinned is False
    r = admin.post("/admin/power/reboot", data={"confirm": "yes", "csrf": token or ""})
    assert r.status_code == 400 and not calls.exists()


def test_the_touch_screens_reach_no_admin_action(app, client):
    admin_rules = [r for r in app.url_map.iter_rules() if r.endpoint.startswith("admin.")]
    assert admin_rules and all(r.rule.startswith("/admin") for r in admin_rules)
    home = client.get("/")
    assert home.status_code == 200 and 'action="/admin' not in home.text  # no admin form on the screens


# --- the page ------------------------------------------------------------------------------

WARN_OR_FAULT = sorted(k for k, s in health.STATES.items() if s.level in ("warning", "fault"))


@pytest.mark.parametrize("state_id", WARN_OR_FAULT)
def test_each_warning_and_fault_is_documented_and_rendered_on_the_page(box, state_id):
    cfg, lib, _ = box
    readings, uplink, changes = STATE_SETUPS[state_id]
    state = health.STATES[state_id]
    assert state.zh in DOCS.read_text(encoding="utf-8") and f"`{state_id}`" in DOCS.read_text(encoding="utf-8")
    with clock.use(clock.FrozenClock(NOW)):
        app = create_app(cfg.replace(**changes), FakeHardware(**readings), library=lib, start_jobs=False,
                         uplink_status=lambda: uplink or {})
        client = app.test_client()
        log_in(client, cfg)
        page = client.get("/admin/").text
    glance = page[page.index('id="glance"'):page.index('id="health"')]
    assert state.zh in glance
    assert f'data-status="{state.level}"' in glance
    card = page[page.index(f'id="signal-{state.signal}"'):]
    assert f'data-state="{state_id}"' in card[:200] and state.zh in card[:1500]


def test_a_healthy_box_says_all_is_well_in_green(admin):
    page = admin.get("/admin/").text
    assert 'data-status="ok"' in page and "一切正常" in page


def test_the_page_shows_content_recent_arrivals_quarantine_and_uplink(admin, box):
    page = admin.get("/admin/").text
    content = page[page.index('id="content"'):page.index('id="import"')]
    assert re.search(r"节目 .*?<b>1</b>", content, re.S) and re.search(r"被拒收 .*?<b>1</b>", content, re.S)
    recent = page[page.index('id="recent"'):page.index('id="quarantine"')]
    assert "科学养猪" in recent and "已上架" in recent and "被拒收" in recent
    quarantine = page[page.index('id="quarantine"'):page.index('id="uplink"')]
    assert box[1].quarantine()[0]["reason"] in quarantine  # the reason in plain words
    uplink = page[page.index('id="uplink"'):page.index('id="power"')]
    assert "没有设置县中心地址" in uplink  # this box has no centre


def test_uplink_shows_last_report_and_outbox_depth_when_a_centre_is_set(box, hw):
    cfg, lib, _ = box
    app = create_app(cfg.replace(centre__url="http://centre.example"), hw, library=lib, start_jobs=False,
                     uplink_status=lambda: {"last_sent": 1_800_000_000.0, "outbox": 17})
    client = app.test_client()
    log_in(client, cfg)
    page = client.get("/admin/").text
    uplink = page[page.index('id="uplink"'):page.index('id="power"')]
    assert "<b>17</b>" in uplink and fmt_time(1_800_000_000.0) in uplink


def test_sparklines_are_drawn_from_the_history(admin, box, hw):
    cfg = box[0]
    for t in (50.0, 60.0, 70.0):
        history.sample(cfg, hw.__class__(temp_c=t))
    card = admin.get("/admin/").text
    card = card[card.index('id="signal-temperature"'):card.index('id="signal-power"')]
    assert card.count("<svg") == 2 and "<path d=\"M" in card


def test_pin_unpin_and_delete_an_item(admin, box):
    lib = box[1]
    token = csrf_of(admin.get("/admin/").text)
    admin.post("/admin/items/pig-farming/pin", data={"csrf": token, "pinned": "1"})
    assert lib.item("pig-farming").pinned is True
    admin.post("/admin/items/pig-farming/pin", data={"csrf": token, "pinned": "0"})
    assert lib.item("pig-farming").pinned is False
    ask = admin.post("/admin/items/pig-farming/delete", data={"csrf": token})  # no confirm: only the question
    assert "确定要删除" in ask.text and lib.item("pig-farming")
    admin.post("/admin/items/pig-farming/delete", data={"csrf": token, "confirm": "yes"})
    with pytest.raises(NotFound):
        lib.item("pig-farming")
    r = admin.post("/admin/items/no-such/pin", data={"csrf": token, "pinned": "1"}, follow_redirects=True)
    assert "没有找到这个节目" in r.text


@pytest.mark.parametrize("action", ["restart-screens", "reboot", "shutdown"])
def test_power_actions_ask_first_then_call_the_helper(admin, box, action):
    calls = box[2]
    token = csrf_of(admin.get("/admin/").text)
    ask = admin.get(f"/admin/power/{action}")
    assert "确定要" in ask.text and not calls.exists()
    admin.post(f"/admin/power/{action}", data={"csrf": token})
    assert not calls.exists()
    done = admin.post(f"/admin/power/{action}", data={"csrf": token, "confirm": "yes"})
    assert done.status_code == 200 and calls.read_text().split() == [action]


def test_a_failing_helper_is_said_plainly(admin, box, app):
    cfg = box[0]
    app.extensions["kiosk"]["config"] = cfg.replace(admin__power_command="/bin/false")
    token = csrf_of(admin.get("/admin/").text)
    r = admin.post("/admin/power/reboot", data={"csrf": token, "confirm": "yes"})
    assert r.status_code == 500 and "没有成功" in r.text


def test_the_log_page_shows_recent_lines(admin):
    assert "event=admin_login" in admin.get("/admin/log").text


def test_usb_progress_is_shown_from_the_importers_record(admin, box):
    cfg = box[0]
    assert (history.IMPORT_PROGRESS, history.IMPORT_LOCK) == (usb.RECORD, usb.LOCK)  # the agreed file names
    (cfg.data_dir / usb.RECORD).write_text(json.dumps({
        "state": "done", "finished": NOW, "counts": {"published": 19, "rejected": 1}, "bags": 20, "bag": 20,
        "done_bytes": 100, "total_bytes": 100}), encoding="utf-8")
    section = admin.get("/admin/").text
    section = section[section.index('id="import"'):section.index('id="items"')]
    assert "新上架 19 个" in section and "拒收 1 个" in section


def test_importing_from_a_path_the_box_did_not_find_is_refused(admin, box, tmp_path):
    token = csrf_of(admin.get("/admin/").text)
    r = admin.post("/admin/import", data={"csrf": token, "disk": str(tmp_path)}, follow_redirects=True)
    assert "没有找到这个U盘" in r.text
    assert not (box[0].data_dir / usb.RECORD).exists()


def test_status_json_has_health_content_and_uplink(admin):
    data = admin.get("/admin/status.json").json
    assert data["health"]["status"] == "ok" and data["content"]["quarantined"] == 1 and data["uplink"]["outbox"] == 17


# --- the command line ------------------------------------------------------------------------


def kiosk(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kiosk.cli", *args], input=stdin, capture_output=True, text=True, timeout=60)


def test_kiosk_status_json_gives_health_and_content_with_the_quarantine_count(box, cfg_path, tmp_path):
    cfg = box[0]
    conf = tmp_path / "status.toml"
    conf.write_text(cfg_path.read_text() + f'\n[admin]\npower_command = "true"\n', encoding="utf-8")
    conf.write_text(conf.read_text().replace("[storage]\n", f'[storage]\ntrust_dir = "{cfg.storage.trust_dir}"\n'))
    r = kiosk("status", "--config", str(conf), "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["content"]["quarantined"] == 1 and data["content"]["items"] == 1
    assert data["health"]["status"] == "ok" and set(data["health"]["signals"]) == {k for k, _, _ in health.SIGNALS}
    text = kiosk("status", "--config", str(conf))
    assert text.returncode == 0 and "一切正常" in text.stdout and "quarantined 1" in text.stdout


def test_kiosk_admin_set_password_reads_standard_input(cfg, cfg_path):
    r = kiosk("admin", "set-password", "--config", str(cfg_path), stdin="new-secret-1\n")
    assert r.returncode == 0, r.stderr
    assert auth.check_password(cfg, "new-secret-1")
    r = kiosk("admin", "set-password", "--config", str(cfg_path), stdin="abc\n")
    assert r.returncode != 0 and "at least" in r.stderr and "Traceback" not in r.stderr
    assert auth.check_password(cfg, "new-secret-1")  # unchanged


def test_the_log_keeps_only_the_last_200_lines_and_others_warnings(admin):
    import logging

    for i in range(250):
        logging.getLogger("kiosk.test").warning("event=line n=%d", i)
    logging.getLogger("apscheduler.executors").info("Running job chatter")
    logging.getLogger("waitress").warning("event=queue_depth n=9")
    text = admin.get("/admin/log").text
    assert "n=249" in text and "event=line n=10\n" not in text
    assert "queue_depth" in text and "chatter" not in text
