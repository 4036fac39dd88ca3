"""The touch screens in Debian's Chromium (Playwright) against the real box on loopback.

Screenshots go to test-artifacts/screens/.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from kiosk.library.usage import Usage
from kiosk.library.wishes import Wishes
from tests.webbox import running_box

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screens"

pytestmark.append(pytest.mark.needs(Path(CHROMIUM).exists(), "Debian's chromium is not installed"))
try:
    import playwright.sync_api as sync_api
except ImportError:  # missing() says so when a test runs
    sync_api = None

# Every visible link, button and field, with its size.
TARGETS_JS = """() => [...document.querySelectorAll('a, button, input:not([type=hidden]), select, [role=button]')]
  .map(e => [e, e.getBoundingClientRect()]).filter(([e, r]) => r.width > 0 && r.height > 0)
  .map(([e, r]) => ({html: e.outerHTML.slice(0, 80), w: r.width, h: r.height}))"""
# The size of every piece of visible text.
TEXT_SIZES_JS = """() => { const out = []; const w = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  let n; while ((n = w.nextNode())) { const t = n.textContent.trim(); if (!t) continue;
    const el = n.parentElement; const r = el.getBoundingClientRect(); if (!r.width || !r.height) continue;
    out.push({text: t.slice(0, 20), size: parseFloat(getComputedStyle(el).fontSize)}); } return out; }"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with running_box(tmp_path_factory.mktemp("browser")) as b:
        yield b


@pytest.fixture(scope="module")
def idle_box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with running_box(tmp_path_factory.mktemp("idle"), idle_return_s=2) as b:
        yield b


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 800, "height": 480}, has_touch=True)
    pg = ctx.new_page()
    yield pg
    ctx.close()


def shot(pg: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / f"{name}.png"))


@pytest.mark.parametrize("width,height", [(800, 480), (1280, 800), (480, 800)])
def test_home_fits_the_screen_with_big_targets_and_large_text(browser: Any, box: Any, width: int, height: int) -> None:
    ctx = browser.new_context(viewport={"width": width, "height": height}, has_touch=True)
    pg = ctx.new_page()
    try:
        pg.goto(box.url)
        assert pg.locator(".tile").count() >= 5
        assert pg.evaluate("document.documentElement.scrollWidth") <= width
        small = [t for t in pg.evaluate(TARGETS_JS) if t["w"] < 48 or t["h"] < 48]
        assert small == []
        tiny = [t for t in pg.evaluate(TEXT_SIZES_JS) if t["size"] < 20]
        assert tiny == []
        assert pg.evaluate("getComputedStyle(document.body).userSelect") == "none"
        assert "user-scalable=no" in pg.get_attribute("meta[name=viewport]", "content")
        shot(pg, f"home-{width}x{height}")
    finally:
        ctx.close()


def test_a_villager_taps_a_topic_then_an_item_then_plays_and_seeks(page: Any, box: Any) -> None:
    page.goto(box.url)
    page.tap("[data-topic=agriculture]")
    page.wait_for_url("**/topic/agriculture")
    page.tap("[data-item=sample-pig-farming]")
    page.wait_for_url("**/item/sample-pig-farming")
    shot(page, "item")
    page.tap("#open")
    page.wait_for_url("**/play/sample-pig-farming")
    page.wait_for_function("document.getElementById('player').readyState >= 1")
    page.wait_for_function("document.getElementById('player').currentTime > 0.5", timeout=15000)  # it plays by itself
    first = page.evaluate("document.getElementById('player').currentTime")
    # Playing on: time advances (and over a second of it counts as a play, below).
    page.wait_for_function(f"document.getElementById('player').currentTime > {max(first + 0.3, 1.5)}", timeout=15000)
    shot(page, "player")
    # Seek by tapping the bar at four fifths of its width: the 10 s video jumps to about 8 s.
    bar = page.locator("#seek").bounding_box()
    page.mouse.click(bar["x"] + bar["width"] * 0.8, bar["y"] + bar["height"] / 2)
    page.wait_for_function("document.getElementById('player').currentTime > 6.5", timeout=15000)
    # The big back-10-seconds button seeks too.
    page.tap("#toggle")
    page.wait_for_function("document.getElementById('player').paused")
    before = page.evaluate("document.getElementById('player').currentTime")
    page.tap("#rew")
    page.wait_for_function(f"document.getElementById('player').currentTime < {before - 5}")
    # Leaving the player reports how long it played, anonymously.
    page.goto(box.url)
    usage = Usage(box.cfg.data_dir / "usage.sqlite")
    try:
        deadline = time.monotonic() + 10
        while usage.since(0)["plays"] == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        played = usage.since(0)["by_category"]["agriculture"]
    finally:
        usage.close()
    assert played["plays"] >= 1 and played["seconds"] >= 1


def test_the_player_resumes_where_this_screen_left_off(page: Any, box: Any) -> None:
    page.goto(box.url + "play/sample-pig-farming")
    page.wait_for_function("document.getElementById('player').readyState >= 1")
    bar = page.locator("#seek").bounding_box()
    page.mouse.click(bar["x"] + bar["width"] * 0.5, bar["y"] + bar["height"] / 2)
    page.wait_for_function("document.getElementById('player').currentTime > 4.5")
    page.reload()
    page.wait_for_function("document.getElementById('player').readyState >= 1")
    page.wait_for_function("document.getElementById('player').currentTime > 4", timeout=15000)


def test_pinyin_initials_on_the_on_screen_keyboard_find_an_item(page: Any, box: Any) -> None:
    page.goto(box.url)
    page.tap(".bar a[href='/search']")
    page.wait_for_url("**/search")
    page.tap("[data-key=y]")
    page.tap("[data-key=z]")
    assert page.input_value("#q") == "yz"
    page.wait_for_selector("#results [data-item=sample-pig-farming]", timeout=10000)
    shot(page, "search-yz")
    page.tap("#results [data-item=sample-pig-farming]")
    page.wait_for_url("**/item/sample-pig-farming")


def test_full_pinyin_finds_an_item_as_you_type(page: Any, box: Any) -> None:
    page.goto(box.url + "search")
    for key in "yumi":
        page.tap(f"[data-key={key}]")
    page.wait_for_selector("#results [data-item=sample-corn-sowing]", timeout=10000)


def test_an_idle_screen_returns_home_and_shows_new_arrivals(page: Any, idle_box: Any) -> None:
    page.goto(idle_box.url + "topic/health")
    page.wait_for_url(idle_box.url, timeout=15000)
    page.wait_for_selector("#attract:not([hidden]) .slide.on h2", timeout=10000)
    assert page.locator("#attract .slide.on h2").inner_text().strip()
    shot(page, "attract")
    page.tap("#attract")  # the first touch wakes the screen and opens nothing
    page.wait_for_selector("#attract", state="hidden")
    assert page.url == idle_box.url
    assert page.locator(".tile").count() >= 5
    # Left alone on home, the loop comes back.
    page.wait_for_selector("#attract:not([hidden])", timeout=10000)


def test_the_attract_page_on_its_own_leads_home_at_a_touch(page: Any, box: Any) -> None:
    page.goto(box.url + "attract")
    assert page.locator(".slide.on h2").inner_text().strip()
    page.tap("#attract")
    page.wait_for_url(box.url)


def test_a_villager_asks_for_content_and_the_request_is_stored(page: Any, box: Any) -> None:
    page.goto(box.url)
    page.tap(".bar a[href='/wish']")
    page.wait_for_url("**/wish")
    page.tap("[data-topic=agriculture]")
    page.tap("#suggest [data-word=养猪]")
    for key in "ym":  # pinyin initials of 玉米 narrow the suggestions
        page.tap(f"#keyboard [data-key={key}]")
    page.tap("#suggest [data-word=玉米]")
    assert page.inner_text("#chosen") == "养猪、玉米"
    shot(page, "wish")
    page.tap("#send")
    page.wait_for_selector("#done[data-ok=true]")
    shot(page, "wish-done")
    store = Wishes(box.cfg.data_dir / "wishes.sqlite")
    try:
        assert [(w["category"], w["words"]) for w in store.pending()] == [("agriculture", "养猪 玉米")]
    finally:
        store.close()


@pytest.mark.parametrize("path", ["read/sample-corn-sowing", "pictures/sample-henan-opera", "read/sample-hypertension"])
def test_documents_and_pictures_open_in_large_type_without_sideways_scroll(page: Any, box: Any, path: str) -> None:
    page.goto(box.url + path)
    if path.startswith("read/sample-corn"):
        frame = page.frame_locator("#doc")
        frame.locator("#kiosk-article-css").wait_for(state="attached")
        size = frame.locator("p").first.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
        assert size >= 24
    if path.startswith("pictures"):
        page.tap("#next")
        assert page.inner_text("#counter") == "2 / 4"
    assert page.evaluate("document.documentElement.scrollWidth") <= 800
    shot(page, path.replace("/", "-"))


def test_a_usb_import_is_announced_on_the_screen(page: Any, box: Any, tmp_path: Path) -> None:
    import shutil

    from kiosk.library import usb
    from tests.packages import make_bag

    key = box.cfg.data_dir.parent / "work" / "publisher" / "demo-publisher.pem"
    bag = make_bag(tmp_path, key=key, record={"id": "usb-news", "title": "U盘送来的新节目", "category": "local"})
    disk = tmp_path / "disk"
    shutil.copytree(bag, disk / box.cfg.storage.usb_folder / bag.name)
    usb.import_folder(box.cfg, box.library, disk)
    page.goto(box.url)
    page.wait_for_selector("#notice:not([hidden])", timeout=10000)
    assert "导入完成" in page.inner_text("#notice")
    assert "U盘送来的新节目" in page.inner_text("main")
    shot(page, "usb-notice")


def test_while_the_box_restarts_the_screen_shows_a_calm_page_that_retries(browser: Any, tmp_path: Path) -> None:
    ctx = browser.new_context(viewport={"width": 800, "height": 480})
    pg = ctx.new_page()
    try:
        with running_box(tmp_path / "restarting") as b:
            pg.goto(b.url)
            pg.wait_for_function("navigator.serviceWorker.controller !== null", timeout=15000)
            url = b.url
        # The box is gone now: a tap on a topic must not show the browser's error page.
        pg.goto(url + "topic/health")
        pg.wait_for_selector("#calm[data-offline]")
        assert "请稍等" in pg.inner_text("body")
        shot(pg, "restarting")
    finally:
        ctx.close()


def test_the_home_screen_shows_what_a_usb_import_brought_without_a_touch(page: Any, box: Any) -> None:
    # The import runs in another process (the udev-started unit): the screen learns of it only
    # through /api/v1/notice, here answered as during and after an import.
    answers = [{"state": "importing", "percent": 40, "text": "正在从U盘导入新内容（40%），请不要拔出U盘。"},
               {"state": "done", "percent": 100, "text": "U盘导入完成：新增 1 项内容。"}]
    asked: list[int] = []

    def notice(route: Any) -> None:
        asked.append(1)
        body = answers[0] if len(asked) == 1 else answers[1]
        route.fulfill(status=200, content_type="application/json", body=json.dumps({"notice": body}))

    page.route("**/api/v1/notice", notice)
    page.goto(box.url)
    page.evaluate("window.__before_import = true")
    page.wait_for_function("!window.__before_import", timeout=20000)  # the page was loaded anew
    page.wait_for_selector("#notice:not([hidden])", timeout=10000)
    assert "导入完成" in page.inner_text("#notice")
