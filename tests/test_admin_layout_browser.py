"""The device page's layout in Debian's Chromium at a phone, the box's small screen and a large one."""

from __future__ import annotations

import threading

import pytest

from kiosk import clock, config as config_mod
from kiosk.device import history
from kiosk.device.fake import FakeHardware
from kiosk.library import Library
from kiosk.web import auth, create_app
from tests.conftest import free_port
from tests.packages import make_bag, trust_dir
from tests.test_admin_browser import ARTEFACTS, browser  # noqa: F401 (the module's Chromium)

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

PASSWORD = "dongfeng-2024"
SIZES = {"phone": (390, 844), "box": (800, 480), "large": (1280, 800)}
UNTRUSTED = {"enabled": True, "window": "", "in_window": True, "interval_s": 3600, "budget_bytes": 100 << 20,
             "used_bytes": 2 << 20, "last_run": None, "pending": 0, "partial_files": [],
             "last_error": {"code": "untrusted_index", "id": None, "version": None, "detail": "x"}}


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    from waitress.server import create_server

    tmp = tmp_path_factory.mktemp("layoutbox")
    port = free_port()
    conf = tmp / "kiosk.toml"
    conf.write_text(f'[point]\nname = "东风村服务点"\n[storage]\ndata_dir = "{tmp / "data"}"\ntrust_dir = "{trust_dir(tmp)}"\n'
                    f'min_free_percent = 0\n[web]\nhost = "127.0.0.1"\nport = {port}\n[hardware]\nbackend = "fake"\n'
                    f'[centre]\nurl = "http://centre.example"\n', encoding="utf-8")
    cfg = config_mod.load(conf, env={})
    lib = Library(cfg)
    for i, title in enumerate(["科学养猪", "玉米高产栽培", "冬季防火常识", "村里的通知"]):
        assert lib.ingest(make_bag(tmp, record={"id": f"item-{i}", "title": title})).outcome == "published"
    lib.ingest(make_bag(tmp, record={"id": "broken", "title": "坏了的节目"}, mutate=lambda d: (d / "data/video.mp4").write_bytes((d / "data/video.mp4").read_bytes()[::-1])))
    auth.set_password(cfg, PASSWORD)
    hw = FakeHardware()
    state = {"sync": None}
    app = create_app(cfg, hw, library=lib, start_jobs=False,
                     uplink_status=lambda: {"last_sent": clock.now() - 60, "outbox": 0, "sync": state["sync"]})
    server = create_server(app, host="127.0.0.1", port=port, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    yield {"url": f"http://127.0.0.1:{port}", "hw": hw, "state": state}
    server.close()
    lib.close()
    history.close_all()


def _open(browser, box, size: str):
    w, h = SIZES[size]
    ctx = browser.new_context(viewport={"width": w, "height": h}, has_touch=True, is_mobile=size == "phone")
    page = ctx.new_page()
    page.goto(box["url"] + "/admin/login")
    page.fill('input[name="password"]', PASSWORD)
    page.click('button[type="submit"]')
    page.wait_for_selector("#glance")
    return ctx, page


def _fits(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    small = page.evaluate("""[...document.querySelectorAll('button, a.button, summary')]
        .filter(e => e.checkVisibility()).map(e => e.getBoundingClientRect())
        .filter(r => r.height < 48 || r.width < 48).map(r => [r.x, r.y, r.width, r.height])""")
    assert small == [], small


@pytest.mark.parametrize("size", list(SIZES))
def test_all_well_fits_in_a_few_screens_with_the_sections_closed(browser, box, size):
    ctx, page = _open(browser, box, size)
    w, h = SIZES[size]
    assert "一切正常" in page.inner_text("#glance")
    assert page.locator("#glance").bounding_box()["y"] < h / 2
    page.screenshot(path=str(ARTEFACTS / f"admin-all-well-{size}.png"), full_page=True)
    _fits(page)
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height <= 3 * max(h, 480) if size != "phone" else height <= 3 * h
    page.screenshot(path=str(ARTEFACTS / f"admin-all-well-{size}.png"), full_page=True)
    page.click("#quarantine summary")  # a section opens on a tap
    assert page.locator("#quarantine table").is_visible() and "坏了的节目" in page.inner_text("#quarantine")
    ctx.close()


@pytest.mark.parametrize("size", list(SIZES))
def test_problems_show_at_the_top_with_the_button_their_advice_names(browser, box, size):
    box["hw"].set(memory_percent=95.0)
    box["state"]["sync"] = UNTRUSTED
    try:
        ctx, page = _open(browser, box, size)
        glance = page.locator("#glance")
        assert glance.get_attribute("data-status") == "warning"
        text = glance.inner_text()
        assert "内存紧张" in text and "县中心的节目目录签名不对" in text
        button = page.locator('#glance li[data-state="memory.warning"] a[data-action="reboot"]')
        assert button.is_visible() and "重启设备" in button.inner_text()
        assert button.bounding_box()["y"] + button.bounding_box()["height"] <= SIZES[size][1] * 1.5
        assert page.locator("#sync details").get_attribute("open") is not None  # the section with a problem is open
        _fits(page)
        page.screenshot(path=str(ARTEFACTS / f"admin-problems-{size}.png"), full_page=True)
        button.click()
        page.wait_for_selector("#confirm")
        assert "确定要重启设备吗" in page.inner_text("#confirm")
        ctx.close()
    finally:
        box["hw"].reset()
        box["state"]["sync"] = None
