"""The device page in Debian's Chromium: login, a CSRF refusal, a fault shown, a phone-sized screen."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from kiosk import config as config_mod
from kiosk.device import history
from kiosk.device.fake import FakeHardware
from kiosk.library import Library
from kiosk.web import create_app
from tests.conftest import free_port, need_module
from tests.packages import make_bag, trust_dir

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

PASSWORD = "dongfeng-2024"
ARTEFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    """The real app on a loopback port (waitress, in this process so the test can set the fake hardware)."""
    from waitress.server import create_server

    tmp = tmp_path_factory.mktemp("adminbox")
    (tmp / "data").mkdir()
    port = free_port()
    conf = tmp / "kiosk.toml"
    conf.write_text(f'[point]\nname = "东风村服务点"\n[storage]\ndata_dir = "{tmp / "data"}"\ntrust_dir = "{trust_dir(tmp)}"\n'
                    f'min_free_percent = 0\n[web]\nhost = "127.0.0.1"\nport = {port}\n[hardware]\nbackend = "fake"\n',
                    encoding="utf-8")
    cfg = config_mod.load(conf, env={})
    lib = Library(cfg)
    assert lib.ingest(make_bag(tmp)).outcome == "published"
    hw = FakeHardware()
    app = create_app(cfg, hw, library=lib, start_jobs=False)
    server = create_server(app, host="127.0.0.1", port=port, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield {"url": f"http://127.0.0.1:{port}", "hw": hw, "lib": lib}
    server.close()
    lib.close()
    history.close_all()


@pytest.fixture(scope="module")
def browser():
    sync_api = need_module("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield b
        b.close()


def _shot(page, name: str) -> None:
    ARTEFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / f"admin-{name}.png"), full_page=True)


def _logged_in(browser, box, **context):
    ctx = browser.new_context(**context)
    page = ctx.new_page()
    page.goto(box["url"] + "/admin")
    if page.locator('input[name="password2"]').count():
        page.fill('input[name="password"]', PASSWORD)
        page.fill('input[name="password2"]', PASSWORD)
    else:
        page.fill('input[name="password"]', PASSWORD)
    page.locator('button[type="submit"]').first.click()
    page.wait_for_selector("#glance")
    return ctx, page


def test_the_administrator_sets_a_password_logs_in_and_sees_all_is_well(browser, box):
    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(box["url"] + "/admin")
    assert page.locator("text=第一次使用").count() == 1
    assert page.locator("#setup-code").is_visible()  # the box's own screen shows the one-time code
    _shot(page, "first-visit-on-the-box")
    page.fill('input[name="password"]', PASSWORD)
    page.fill('input[name="password2"]', PASSWORD)
    page.click('button[type="submit"]')
    page.wait_for_selector("#glance")
    assert "一切正常" in page.inner_text("#glance")
    ctx.close()
    # a new browser must log in with the password, and a wrong one is refused
    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(box["url"] + "/admin/")
    page.fill('input[name="password"]', "not-the-password")
    page.click('button[type="submit"]')
    assert "密码不对" in page.inner_text("body")
    page.fill('input[name="password"]', PASSWORD)
    page.click('button[type="submit"]')
    page.wait_for_selector("#glance")
    _shot(page, "all-well")
    ctx.close()


def test_a_form_with_a_forged_csrf_token_changes_nothing(browser, box):
    ctx, page = _logged_in(browser, box)
    page.click("#items summary")
    form = page.locator('#item-pig-farming form')
    form.locator('input[name="csrf"]').evaluate("el => el.value = 'forged'")
    form.locator("button").click()
    page.wait_for_load_state()
    assert "操作没有执行" in page.inner_text("body")
    assert box["lib"].item("pig-farming").pinned is False
    ctx.close()


def test_a_fault_is_shown_red_with_what_to_do(browser, box):
    box["hw"].set(under_voltage_now=True, under_voltage_since_boot=True, throttled=0x50005)
    try:
        ctx, page = _logged_in(browser, box)
        glance = page.locator("#glance")
        assert "电源电压不足：请换用 5V 3A 电源" in glance.inner_text()
        assert glance.evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(179, 38, 30)"
        assert page.locator("#signal-power").get_attribute("data-level") == "fault"
        _shot(page, "under-voltage")
        ctx.close()
    finally:
        box["hw"].reset()


def test_the_page_works_on_a_phone_sized_screen(browser, box):
    ctx, page = _logged_in(browser, box, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    no_scroll = page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    assert no_scroll
    small = page.evaluate("""[...document.querySelectorAll('button, a.button')]
        .filter(e => e.checkVisibility())
        .map(e => e.getBoundingClientRect())
        .filter(r => r.height < 48 || r.width < 48).length""")
    assert small == 0
    _shot(page, "phone")
    ctx.close()


def test_holding_the_top_right_corner_of_the_touch_screen_opens_the_login(browser, box):
    ctx = browser.new_context(viewport={"width": 800, "height": 480}, has_touch=True)
    page = ctx.new_page()
    page.goto(box["url"] + "/")
    page.mouse.move(790, 10)
    page.mouse.down()
    page.mouse.up()  # a tap does what it always did
    page.wait_for_timeout(3500)
    assert "/admin" not in page.url
    page.goto(box["url"] + "/")
    page.mouse.move(790, 10)
    page.mouse.down()
    page.wait_for_url("**/admin/login", timeout=10000)
    page.mouse.up()
    assert page.locator("#keypad").count() == 1  # the box has no keyboard: one on the screen
    page.click('input[name="password"]')
    for ch in "dongfeng":
        page.click(f'#keypad [data-key="{ch}"]')
    page.click('#keypad [data-key="-"]')
    for ch in "2024":
        page.click(f'#keypad [data-key="{ch}"]')
    assert page.input_value('input[name="password"]') == PASSWORD
    _shot(page, "box-login-800x480")
    page.click('button[type="submit"]')
    page.wait_for_selector("#glance")
    ctx.close()
