"""The round trip in Chromium: a video added on one box's device page reaches the centre, is approved
there, and appears on a second box after its sync; a rejected one brings its reason back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

from kiosk import config as config_mod
from kiosk.box import Box
from kiosk.centre.app import create_centre_app
from kiosk.device.fake import FakeHardware
from kiosk.serving import WebServer
from kiosk.uplink import heartbeat_job, sync, upload
from kiosk.web import auth
from tests.test_local import PDF, VIDEO
from tests.webbox import write_config

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"]
PASSWORD = "dongfeng-2024"
ARTEFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def _box(root: Path, point: str, centre: dict[str, Any], secret: str) -> Box:
    path = write_config(root)
    text = path.read_text(encoding="utf-8").replace('id = "test-point"', f'id = "{point}"')
    trust = root / "trust"
    trust.mkdir()
    (trust / "centre.pem").write_text(centre["publisher"].public_key_pem())
    text += f'\n[centre]\nurl = "{centre["url"]}"\nsecret = "{secret}"\nreconnect_delay_s = 0\n'
    text = text.replace("min_free_percent = 0", f'min_free_percent = 0\ntrust_dir = "{trust}"')
    path.write_text(text, encoding="utf-8")
    cfg = config_mod.load(path, env={})
    auth.set_password(cfg, PASSWORD)
    return Box(cfg, with_scheduler=False, hardware=FakeHardware()).start()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    ccfg = config_mod.load(write_config(tmp_path / "centre"), env={})
    app = create_centre_app(ccfg)
    c = app.extensions["centre"]
    c["store"].set_user("staff", "good password")
    server = WebServer(app, "127.0.0.1", 0, 4, ident="centre")
    centre = {"url": server.url.rstrip("/"), "store": c["store"], "uploads": c["uploads"], "publisher": c["publisher"]}
    a_secret = c["store"].enroll("dongfeng", name="东风村", township="东风乡")
    b_secret = c["store"].enroll("xishan", name="西山村", township="西山乡")
    a = _box(tmp_path / "a", "dongfeng", centre, a_secret)
    b = _box(tmp_path / "b", "xishan", centre, b_secret)
    yield {"centre": centre, "a": a, "b": b, "tmp": tmp_path}
    a.stop()
    b.stop()
    server.stop()
    c["store"].close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _device_page(browser: Any, box: Box) -> Any:
    page = browser.new_context(locale="zh-CN").new_page()
    page.goto(box.url + "admin/")
    page.fill('input[name="password"]', PASSWORD)
    page.locator('button[type="submit"]').first.click()
    page.wait_for_selector("#glance")
    page.goto(box.url + "admin/?open=local#local")  # the section, opened
    page.wait_for_selector("#local-title")
    return page


def _add(page: Any, files: list[Path], title: str, drop_first_piece: bool = False) -> None:
    dropped = []
    if drop_first_piece:  # the Wi-Fi drops once mid-upload: the page must resume, not start again
        def cut(route: Any) -> None:
            if route.request.method == "PUT" and not dropped:
                dropped.append(route.request.url)
                route.abort("connectionreset")
            else:
                route.continue_()
        page.route("**/admin/local/files/*", cut)
    page.set_input_files("#local-files", [str(f) for f in files])
    page.fill("#local-title", title)
    page.click("#local-submit")
    page.wait_for_selector(".flash", timeout=60_000)
    assert f"已添加“{title}”" in page.inner_text(".flash"), page.inner_text(".flash")
    if drop_first_piece:
        assert dropped, "the test meant to cut the connection once"


def _centre_page(browser: Any, centre: dict[str, Any]) -> Any:
    page = browser.new_context(locale="zh-CN").new_page()
    page.goto(centre["url"] + "/login")
    page.fill("input[name=username]", "staff")
    page.fill("input[name=password]", "good password")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    return page


def test_a_video_added_in_the_browser_reaches_the_centre_is_approved_and_plays_on_a_second_box(world, browser):
    a, b, centre = world["a"], world["b"], world["centre"]
    page = _device_page(browser, a)
    _add(page, [VIDEO], "东风村的豫剧团", drop_first_piece=True)
    items = requests.get(a.url + "api/v1/items?category=local", timeout=10).json()
    assert [i["title"] for i in items] == ["东风村的豫剧团"]  # on the box's own screens at once
    # the box's jobs: a heartbeat carries its key, the upload sends the package
    heartbeat_job(a.cfg, a.library, FakeHardware(), sleep=lambda s: None)
    assert upload.run(a.cfg)["done"] == [items[0]["id"]]

    staff = _centre_page(browser, centre)
    staff.goto(centre["url"] + "/uploads")
    row = staff.locator(f'tr[data-id="{items[0]["id"]}"]')
    assert row.get_attribute("data-state") == "pending" and "东风乡" in row.inner_text()
    row.locator("a").click()
    staff.wait_for_selector("#preview video")
    assert staff.locator("#preview video").evaluate("v => new Promise(r => { if (v.readyState >= 1) r(v.duration); "
                                                    "else v.addEventListener('loadedmetadata', () => r(v.duration)); })") > 0
    staff.fill("input[name=title]", "东风村豫剧团：穆桂英挂帅")
    staff.click("form[action$='/edit'] button")
    staff.click("#approve")
    staff.wait_for_selector("text=已通过并发布")
    ARTEFACTS.mkdir(exist_ok=True)
    staff.screenshot(path=str(ARTEFACTS / "centre-upload-approved.png"), full_page=True)

    # the second box's sync fetches it from the index, signed by the centre
    result = sync.run(b.cfg, b.library)
    got = requests.get(b.url + "api/v1/items?category=local", timeout=10).json()
    assert [(i["title"], i["id"]) for i in got] == [("东风村豫剧团：穆桂英挂帅", items[0]["id"])], result
    video = next(f for f in got[0]["files"] if f["url"].endswith(".mp4"))
    assert requests.get(b.url.rstrip("/") + video["url"], headers={"Range": "bytes=0-99"}, timeout=10).status_code == 206
    # the first box hears of the approval with its next acknowledgement
    heartbeat_job(a.cfg, a.library, FakeHardware(), sleep=lambda s: None)
    page.goto(a.url + "admin/?open=local&again=1#local")  # a new load, not a jump within the page
    assert page.locator(f'#local-items tr[data-id="{items[0]["id"]}"]').get_attribute("data-state") == "approved"


def test_a_rejected_upload_brings_its_reason_back_to_the_device_page_and_kiosk_status(world, browser):
    a, centre = world["a"], world["centre"]
    page = _device_page(browser, a)
    _add(page, [PDF], "旧的通知")
    item_id = requests.get(a.url + "api/v1/items?category=local", timeout=10).json()[0]["id"]
    heartbeat_job(a.cfg, a.library, FakeHardware(), sleep=lambda s: None)
    upload.run(a.cfg)
    staff = _centre_page(browser, centre)
    staff.goto(f"{centre['url']}/uploads/{item_id}")
    staff.wait_for_selector("#preview iframe")
    staff.fill("textarea[name=reason]", "通知已经过期，请换成新的")
    staff.click("#reject")
    staff.wait_for_selector("text=已退回")
    heartbeat_job(a.cfg, a.library, FakeHardware(), sleep=lambda s: None)
    page.goto(a.url + "admin/?open=local&again=1#local")  # a new load, not a jump within the page
    row = page.locator(f'#local-items tr[data-id="{item_id}"]')
    assert row.get_attribute("data-state") == "rejected" and "通知已经过期，请换成新的" in row.inner_text()
    page.screenshot(path=str(ARTEFACTS / "admin-local-rejected.png"), full_page=True)
    out = subprocess.run([sys.executable, "-m", "kiosk.cli", "--config", a.cfg.source, "status", "--json"],
                         capture_output=True, text=True, timeout=120)
    mine = json.loads(out.stdout)["local"]
    assert (mine["items"][0]["state"], mine["items"][0]["reason"]) == ("rejected", "通知已经过期，请换成新的")
