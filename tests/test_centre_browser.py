"""The centre's dashboard in Debian's Chromium: log in, see which points are offline."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.centre_helpers import report
from tests.test_centre_e2e import OFFLINE_AFTER_S, Centre
from tests.conftest import missing

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
QUIET_S = 6  # long enough for a browser page to load while a fresh point is still online
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def centre(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Centre]:
    c = Centre(tmp_path_factory.mktemp("centre-browser"), "")
    c.db = str(c.root / "centre.sqlite")
    text = c.config.read_text().replace('db = ""', f'db = "{c.db}"')
    c.config.write_text(text.replace(f"offline_after_s = {OFFLINE_AFTER_S}", f"offline_after_s = {QUIET_S}"), encoding="utf-8")
    assert c.kiosk("centre", "add-user", "staff", stdin="good password\n").returncode == 0
    quiet = c.enroll("b-quiet", township="东风乡")
    c.start()
    c.post("b-quiet", quiet, [report("b-quiet", 1)])
    time.sleep(QUIET_S + 0.5)
    c.loud = c.enroll("b-loud", township="城关镇")  # type: ignore[attr-defined]
    yield c
    c.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        missing("Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def log_in(page: Any, centre: Centre) -> None:
    page.goto(centre.url + "/")
    page.fill("input[name=username]", "staff")
    page.fill("input[name=password]", "good password")
    page.click("button[type=submit]")
    page.wait_for_url(centre.url + "/")


def test_staff_log_in_and_see_the_offline_point_marked_in_red(centre: Centre, browser: Any) -> None:
    page = browser.new_page(locale="zh-CN")
    log_in(page, centre)
    centre.post("b-loud", centre.loud, [report("b-loud", 1)])  # type: ignore[attr-defined]
    page.reload()
    quiet = page.locator("tr[data-point=b-quiet]")
    loud = page.locator("tr[data-point=b-loud]")
    assert quiet.get_attribute("data-status") == "offline"
    assert "离线" in quiet.inner_text()
    assert quiet.evaluate("e => getComputedStyle(e.querySelector('td')).backgroundColor") == "rgb(252, 232, 230)"
    assert loud.get_attribute("data-status") == "online" and "在线" in loud.inner_text()
    assert page.locator("tr[data-child=东风乡]").count() == 1
    page.close()


def test_a_wrong_password_keeps_the_dashboard_closed(centre: Centre, browser: Any) -> None:
    page = browser.new_page(locale="zh-CN")
    page.goto(centre.url + "/")
    page.fill("input[name=username]", "staff")
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    assert "用户名或密码不对" in page.locator("[role=alert]").inner_text()
    assert page.locator("tr[data-point]").count() == 0
    page.close()


def test_the_offline_filter_and_a_points_charts_work_in_the_browser(centre: Centre, browser: Any) -> None:
    page = browser.new_page(locale="zh-CN")
    log_in(page, centre)
    page.fill("input[name=offline_hours]", "0")
    page.click("form.inline button[type=submit]")
    rows = page.locator("tr[data-point]").evaluate_all("rows => rows.map(r => [r.dataset.point, r.dataset.status])")
    assert ["b-quiet", "offline"] in rows and {status for _, status in rows} == {"offline"}
    page.click("a:has-text('b-quiet')")
    assert page.locator("svg.strip rect").count() == 30
    page.close()
