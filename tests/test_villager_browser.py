"""What villagers stumbled on at the touch screens, walked again in Debian's Chromium with touch.

Each test plays the villager at 800x480 and 1280x800 (and a phone's 390x844 where phones
apply) against the real box on loopback; screenshots go to test-artifacts/screens/.
"""

from __future__ import annotations

import time
from typing import Any, Iterator

import pytest

from tests.test_screens_browser import ARTIFACTS, browser, box, idle_box  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

SIZES = [(800, 480), (1280, 800)]
WITH_PHONE = SIZES + [(390, 844)]

# How much of a canvas is not white: a page that rendered has ink on it.
INK_JS = """(sel) => { const c = document.querySelector(sel); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let ink = 0; for (let i = 0; i < d.length; i += 16) { if (d[i] < 200 || d[i+1] < 200 || d[i+2] < 200) ink++; } return ink / (d.length / 16); }"""


def context(browser: Any, width: int, height: int) -> Any:
    return browser.new_context(viewport={"width": width, "height": height}, has_touch=True)


@pytest.fixture(params=SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def screen(request: pytest.FixtureRequest, browser: Any) -> Iterator[Any]:  # noqa: F811
    ctx = context(browser, *request.param)
    pg = ctx.new_page()
    pg.size = request.param
    yield pg
    ctx.close()


@pytest.fixture(params=WITH_PHONE, ids=lambda s: f"{s[0]}x{s[1]}")
def any_screen(request: pytest.FixtureRequest, browser: Any) -> Iterator[Any]:  # noqa: F811
    ctx = context(browser, *request.param)
    pg = ctx.new_page()
    pg.size = request.param
    yield pg
    ctx.close()


def shot(pg: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    w, h = pg.size
    pg.screenshot(path=str(ARTIFACTS / f"{name}-{w}x{h}.png"))


def no_sideways_scroll(pg: Any) -> bool:
    return pg.evaluate("document.documentElement.scrollWidth") <= pg.size[0]


# 4. PDFs -----------------------------------------------------------------------------

def test_a_pdf_is_drawn_in_the_page_and_turned_by_buttons_and_swipes(any_screen: Any, box: Any) -> None:  # noqa: F811
    pg = any_screen
    pg.goto(box.url + "read/sample-hypertension")
    pg.wait_for_selector("#pdfview[data-page='1']", timeout=20000)
    assert pg.evaluate(INK_JS, "#pdfpage") > 0.01  # the page rendered: there is ink on the canvas
    assert pg.inner_text("#pdfcounter") == "第 1 / 2 页"
    # Nothing to download, print or draw on: no browser viewer, no such links.
    assert pg.locator("iframe, embed, object, a[download]").count() == 0
    assert not any(w in pg.inner_text("body") for w in ("下载", "打印", "Download", "Print"))
    assert no_sideways_scroll(pg)
    shot(pg, "pdf-page1")
    pg.tap("#pdfnext")
    pg.wait_for_selector("#pdfview[data-page='2']")
    assert pg.evaluate(INK_JS, "#pdfpage") > 0.005
    # A swipe from left to right goes back a page.
    sheet = pg.locator("#pdfsheet").bounding_box()
    y = sheet["y"] + sheet["height"] / 2
    pg.mouse.move(sheet["x"] + 40, y)
    pg.mouse.down()
    pg.mouse.move(sheet["x"] + sheet["width"] - 40, y, steps=5)
    pg.mouse.up()
    pg.wait_for_selector("#pdfview[data-page='1']")
    # Bigger type: the page is drawn wider than the screen and can be moved about.
    width = pg.evaluate("document.getElementById('pdfpage').getBoundingClientRect().width")
    pg.tap("#pdfbigger")
    pg.wait_for_selector("#pdfview[data-zoom='1.5']")
    assert pg.evaluate("document.getElementById('pdfpage').getBoundingClientRect().width") > width * 1.4
    assert no_sideways_scroll(pg)  # the sheet moves, not the page
    shot(pg, "pdf-bigger")


def test_reading_a_pdf_counts_as_activity_for_the_idle_return(browser: Any, idle_box: Any) -> None:  # noqa: F811
    ctx = context(browser, 800, 480)
    pg = ctx.new_page()
    try:
        pg.goto(idle_box.url + "read/sample-hypertension")
        pg.wait_for_selector("#pdfview[data-page='1']", timeout=20000)
        pg.tap("#pdfbigger")
        pg.wait_for_selector("#pdfview[data-zoom='1.5']")
        sheet = pg.locator("#pdfsheet").bounding_box()
        # Reading on for twice the idle time (2 s), a small scroll of the page now and then.
        for _ in range(10):
            pg.mouse.move(sheet["x"] + 100, sheet["y"] + 100)
            pg.mouse.wheel(0, 40)
            time.sleep(0.4)
            assert "/read/" in pg.url
        # Left alone, the screen goes home.
        pg.wait_for_url(idle_box.url, timeout=15000)
    finally:
        ctx.close()
