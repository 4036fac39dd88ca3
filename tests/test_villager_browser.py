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


@pytest.fixture(scope="module")
def calm_box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A box that goes idle after 5 s: long enough for two taps in a row on a busy machine."""
    from tests.webbox import running_box

    with running_box(tmp_path_factory.mktemp("calm"), idle_return_s=5) as b:
        yield b


def shot(pg: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    w, h = pg.size
    pg.screenshot(path=str(ARTIFACTS / f"{name}-{w}x{h}.png"))


def no_sideways_scroll(pg: Any) -> bool:
    return pg.evaluate("document.documentElement.scrollWidth") <= pg.size[0]


# 1. read aloud -----------------------------------------------------------------------

def test_read_aloud_plays_the_article_part_after_part_in_mandarin(screen: Any, box: Any) -> None:  # noqa: F811
    pg = screen
    pg.goto(box.url + "item/sample-corn-sowing")
    with pg.expect_response(lambda r: r.url.endswith("/speak/sample-corn-sowing")) as plan:
        with pg.expect_response(lambda r: "/speak/sample-corn-sowing/0" in r.url, timeout=30000) as first:
            pg.tap("#speak")
    assert plan.value.json()["parts"] > 1  # the article, not only its title
    assert first.value.status in (200, 206) and first.value.headers["content-type"] == "audio/wav"
    pg.wait_for_function("document.getElementById('speak').innerText.trim() === '停止朗读'")  # it says how to stop
    shot(pg, "read-aloud")
    pg.tap("#speak")  # a second tap stops it
    assert pg.inner_text("#speak").strip() == "读一读"


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
        sheet = pg.locator("#pdfsheet").bounding_box()
        for _ in range(100):  # a villager looking at the page while it comes (a busy Pi may take seconds)
            if pg.locator("#pdfview[data-page='1']").count():
                break
            pg.mouse.move(sheet["x"] + 100, sheet["y"] + 100)
            pg.mouse.wheel(0, 10)
            time.sleep(0.3)
        pg.tap("#pdfbigger")
        pg.wait_for_selector("#pdfview[data-zoom='1.5']")
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


# 2. and 3. waking the screen, and the idle return -----------------------------------

def test_the_touch_that_wakes_the_screen_opens_nothing(screen: Any, calm_box: Any) -> None:
    pg = screen
    idle_box = calm_box
    pg.goto(idle_box.url)
    pg.wait_for_selector("#attract:not([hidden])", timeout=15000)
    tile = pg.locator("[data-topic=health]").bounding_box()
    opened: list[str] = []
    pg.on("framenavigated", lambda f: opened.append(f.url))
    pg.touchscreen.tap(tile["x"] + tile["width"] / 2, tile["y"] + tile["height"] / 2)  # right over a tile
    pg.wait_for_selector("#attract", state="hidden")
    assert opened == [] and pg.url == idle_box.url
    shot(pg, "woken")
    pg.touchscreen.tap(tile["x"] + tile["width"] / 2, tile["y"] + tile["height"] / 2)  # now the tile opens
    pg.wait_for_url("**/topic/health")


def test_an_idle_return_gives_the_next_villager_the_box_as_set_up(screen: Any, calm_box: Any) -> None:
    pg = screen
    idle_box = calm_box
    pg.goto(idle_box.url + "search")
    pg.tap(".bar [lang=en]")  # one villager reads in English and types a little
    pg.wait_for_selector("html[lang=en]")
    pg.tap("#keyboard [data-key=y]")
    pg.wait_for_url(idle_box.url, timeout=15000)  # then walks away
    pg.wait_for_selector("#attract:not([hidden])", timeout=10000)
    assert pg.get_attribute("html", "lang") == "zh-CN"
    assert "农业科技" in pg.inner_text(".tiles")
    # On home, in English and scrolled down: left alone, home comes back in Chinese, at the top.
    pg.tap("#attract")
    pg.tap(".bar [lang=en]")
    pg.wait_for_selector("html[lang=en]")
    pg.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    pg.wait_for_selector("html[lang=zh-CN] #attract:not([hidden])", timeout=15000)
    assert pg.evaluate("window.scrollY") == 0
    pg.tap("#attract")
    assert "农业科技" in pg.inner_text(".tiles")


# 8. layout -----------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["pictures/sample-henan-opera", "read/sample-hypertension", "read/sample-land-contract",
                                  "item/sample-henan-opera", "item/sample-water-safety", "topic/agriculture"])
def test_titles_are_shown_whole_on_reading_pages(screen: Any, box: Any, path: str) -> None:  # noqa: F811
    pg = screen
    pg.goto(box.url + path)
    h1 = pg.locator(".bar h1")
    assert h1.evaluate("e => e.scrollWidth <= e.clientWidth"), h1.inner_text()
    assert all(t.evaluate("e => e.scrollWidth <= e.clientWidth && e.scrollHeight <= e.clientHeight + 1")
               for t in pg.locator(".card .title").all())
    shot(pg, "title-" + path.split("/")[1])


def test_an_item_without_a_poster_uses_the_page_for_its_words(screen: Any, box: Any) -> None:  # noqa: F811
    pg = screen
    pg.goto(box.url + "item/sample-land-contract")
    main = pg.locator("main").bounding_box()
    desc = pg.locator(".desc").bounding_box()
    assert desc["width"] > 0.8 * (main["width"] - 40)
    shot(pg, "item-without-poster")


def test_the_attract_captions_stay_clear_of_the_touch_hint(screen: Any, box: Any) -> None:  # noqa: F811
    pg = screen
    pg.goto(box.url + "attract")
    slides = pg.locator(".slide").count()
    assert slides >= 3
    for n in range(slides):
        pg.evaluate("n => document.querySelectorAll('.slide').forEach((s, i) => s.classList.toggle('on', i === n))", n)
        hint = pg.locator(".hint").bounding_box()
        for part in pg.locator(".slide.on > *").all():
            box_ = part.bounding_box()
            assert box_["y"] + box_["height"] <= hint["y"] + 1, (n, part.inner_text())
            assert box_["y"] >= 0
        shot(pg, f"attract-slide{n}")


def test_the_not_found_page_says_so_and_does_not_ask_to_wait(screen: Any, box: Any) -> None:  # noqa: F811
    pg = screen
    pg.goto(box.url + "item/no-such-thing")
    assert pg.title() == "没有这一页" and "请稍等" not in pg.inner_text("body")
    shot(pg, "not-found")


# Contrast of every piece of visible text against what is really behind it (WCAG 2 AA).
CONTRAST_JS = """() => {
  const rgba = s => { const m = s.match(/[\\d.]+/g).map(Number); return [m[0], m[1], m[2], m.length > 3 ? m[3] : 1]; };
  const over = (top, under) => { const a = top[3]; return [0, 1, 2].map(i => top[i] * a + under[i] * (1 - a)).concat([1]); };
  const lum = c => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); };
  const behind = el => { const layers = []; for (let e = el; e; e = e.parentElement) {
      const cs = getComputedStyle(e); const c = rgba(cs.backgroundColor); if (c[3] > 0) layers.push(c); if (c[3] >= 1) break; }
    let bg = [255, 255, 255, 1]; for (let i = layers.length - 1; i >= 0; i--) bg = over(layers[i], bg); return bg; };
  const alpha = el => { let a = 1; for (let e = el; e; e = e.parentElement) a *= parseFloat(getComputedStyle(e).opacity); return a; };
  const out = []; const w = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT); let n;
  while ((n = w.nextNode())) { const t = n.textContent.trim(); const el = n.parentElement; if (!t || !el) continue;
    const r = el.getBoundingClientRect(); if (!r.width || !r.height || el.closest('[hidden], :disabled, template')) continue;
    const cs = getComputedStyle(el); if (cs.visibility === 'hidden') continue;
    const bg = behind(el); const fgc = rgba(cs.color); const fg = over([fgc[0], fgc[1], fgc[2], fgc[3] * alpha(el)], bg);
    const a = lum(fg), b = lum(bg); const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(cs.fontSize), bold = parseInt(cs.fontWeight, 10) >= 700;
    const large = size >= 24 || (bold && size >= 18.66);
    out.push({text: t.slice(0, 16), ratio: Math.round(ratio * 100) / 100, need: large ? 3 : 4.5}); }
  return out; }"""


@pytest.mark.parametrize("path", ["", "topic/children", "item/sample-water-safety", "search", "wish"])
def test_every_text_meets_wcag_aa_contrast_as_rendered(screen: Any, box: Any, path: str) -> None:  # noqa: F811
    pg = screen
    pg.goto(box.url + path)
    texts = pg.evaluate(CONTRAST_JS)
    assert texts
    assert [t for t in texts if t["ratio"] < t["need"]] == []


def test_the_children_tile_meets_aa_contrast(screen: Any, box: Any) -> None:  # noqa: F811
    pg = screen
    pg.goto(box.url)
    tile = [t for t in pg.evaluate(CONTRAST_JS) if t["text"] == "少儿天地"]
    assert tile and tile[0]["ratio"] >= 4.5  # was 3.0:1 in orange


def test_a_usb_import_notice_covers_no_tile_and_goes_at_a_tap(screen: Any, box: Any, tmp_path: Any) -> None:  # noqa: F811
    import shutil

    from kiosk.library import usb
    from tests.packages import make_bag

    key = box.cfg.data_dir.parent / "work" / "publisher" / "demo-publisher.pem"
    rid = f"usb-notice-{screen.size[0]}"
    bag = make_bag(tmp_path, key=key, record={"id": rid, "title": "U盘送来的节目", "category": "local"})
    disk = tmp_path / "disk"
    shutil.copytree(bag, disk / box.cfg.storage.usb_folder / bag.name)
    usb.import_folder(box.cfg, box.library, disk)
    pg = screen
    pg.goto(box.url)
    pg.wait_for_selector("#notice:not([hidden])", timeout=10000)
    pg.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    note = pg.locator("#notice").bounding_box()
    for el in pg.locator(".tile, .card").all():
        b = el.bounding_box()
        overlaps = not (b["y"] >= note["y"] + note["height"] or b["y"] + b["height"] <= note["y"])
        assert not overlaps, el.inner_text()
    pg.evaluate("window.scrollTo(0, 0)")
    shot(pg, "usb-notice")
    pg.tap("#notice")
    assert pg.locator("#notice").is_hidden()
    pg.reload()
    pg.wait_for_timeout(1500)  # a few notice polls: the same words stay away
    assert pg.locator("#notice").is_hidden()


# 5. the player ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def strict_browser(browser: Any) -> Iterator[Any]:  # noqa: F811
    """Chromium with its ordinary autoplay policy: only a real tap may start sound."""
    from tests.test_screens_browser import ARGS, CHROMIUM

    b = browser.browser_type.launch(executable_path=CHROMIUM, args=[a for a in ARGS if not a.startswith("--autoplay-policy")])
    yield b
    b.close()


PLAYING = "(() => { const v = document.getElementById('player'); return !v.paused && v.currentTime > 0.3; })()"


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_one_tap_on_play_starts_the_video(strict_browser: Any, box: Any, size: Any) -> None:  # noqa: F811
    ctx = context(strict_browser, *size)
    pg = ctx.new_page()
    pg.size = size
    try:
        pg.goto(box.url + "item/sample-pig-farming")
        pg.tap("#open")  # the only tap
        pg.wait_for_url("**/play/sample-pig-farming")
        pg.wait_for_function(PLAYING, timeout=15000)
        assert no_sideways_scroll(pg)
        small = pg.evaluate("""() => [...document.querySelectorAll('.controls .btn, #seek')].map(e => e.getBoundingClientRect())
          .filter(r => r.width < 48 || r.height < 48).length""")
        assert small == 0
        # Every control says in words what it does; the play button says what a tap will do now.
        words = [b.inner_text().strip() for b in pg.locator(".controls .btn").all()]
        assert all(words) and "暂停" in words and "小声" in words and "大声" in words
        shot(pg, "player-playing")
    finally:
        ctx.close()


def test_volume_goes_down_and_up_and_says_how_loud(screen: Any, box: Any) -> None:  # noqa: F811
    pg = screen
    pg.goto(box.url + "play/sample-pig-farming")
    pg.wait_for_function("document.getElementById('player').readyState >= 1")
    start = pg.evaluate("document.getElementById('player').volume")
    pg.tap("#quieter")
    assert pg.evaluate("document.getElementById('player').volume") == pytest.approx(start - 0.2)
    assert pg.inner_text("#volume") == f"音量 {round((start - 0.2) * 100)}%"
    pg.tap("#louder")
    pg.tap("#louder")
    assert pg.evaluate("document.getElementById('player').volume") == pytest.approx(min(1.0, start + 0.2))


def test_a_resumed_video_says_from_where_and_can_start_over(screen: Any, box: Any) -> None:  # noqa: F811
    pg = screen
    pg.goto(box.url + "play/sample-pig-farming")
    pg.wait_for_function("document.getElementById('player').readyState >= 1")
    pg.evaluate("document.getElementById('player').pause()")
    bar = pg.locator("#seek").bounding_box()
    pg.mouse.click(bar["x"] + bar["width"] * 0.6, bar["y"] + bar["height"] / 2)
    pg.wait_for_function("document.getElementById('player').currentTime > 5")
    pg.goto(box.url + "item/sample-pig-farming")
    pg.tap("#open")
    pg.wait_for_selector("#resumed:not([hidden])", timeout=15000)
    said = pg.inner_text("#resumedtext")
    assert said.startswith("从 0:0") and said.endswith("接着播放"), said
    assert pg.evaluate("document.getElementById('player').currentTime") > 4
    shot(pg, "player-resumed")
    pg.tap("#fromstart")
    assert pg.evaluate("document.getElementById('player').currentTime") < 2
    assert pg.locator("#resumed").is_hidden()
    pg.wait_for_function(PLAYING, timeout=15000)


# 6. and 7. hanzi without a hardware keyboard, and 我想看 on one screen --------------------

def type_letters(pg: Any, letters: str) -> None:
    for ch in letters:
        pg.tap(f"#keyboard [data-key={ch}]")


def test_pinyin_typed_on_the_search_keyboard_offers_hanzi_from_the_catalogue_first(screen: Any, box: Any) -> None:  # noqa: F811
    pg = screen
    pg.goto(box.url + "search")
    type_letters(pg, "yuju")
    first = pg.locator("#candidates .cand").first
    first.wait_for()
    assert first.inner_text() == "豫剧"  # the catalogue's word, before the dictionary's 语句
    shot(pg, "search-candidates")
    first.tap()
    assert pg.input_value("#q") == "豫剧"
    pg.wait_for_selector("#results [data-item=sample-henan-opera]", timeout=10000)
    assert no_sideways_scroll(pg)


@pytest.mark.parametrize("size", [(800, 480), (1280, 800), (480, 800)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_the_request_page_fits_one_screen_with_keyboard_candidates_and_send(browser: Any, box: Any, size: Any) -> None:  # noqa: F811
    ctx = context(browser, *size)
    pg = ctx.new_page()
    pg.size = size
    try:
        pg.goto(box.url + "wish")
        type_letters(pg, "yang")
        pg.locator("#candidates .cand").first.wait_for()
        w, h = size
        for sel in ("#typed", "#candidates", "#keyboard", "#send", "#chosen"):
            b = pg.locator(sel).bounding_box()
            assert b["y"] >= 0 and b["y"] + b["height"] <= h + 0.5, sel  # on screen without scrolling
            assert b["x"] >= 0 and b["x"] + b["width"] <= w + 0.5, sel
        if size == (800, 480) or size == (1280, 800):
            assert pg.evaluate("document.documentElement.scrollHeight") <= h  # the page does not scroll at all
        small = pg.evaluate("""() => [...document.querySelectorAll('button, a, input:not([type=hidden])')].map(e => e.getBoundingClientRect())
          .filter(r => r.width > 0 && r.height > 0 && r.right > 0 && r.left < innerWidth && (r.width < 48 || r.height < 48)).length""")
        assert small == 0
        assert no_sideways_scroll(pg)
        shot(pg, "wish-keyboard")
    finally:
        ctx.close()


def test_a_request_is_typed_in_pinyin_picked_as_hanzi_and_sent(screen: Any, box: Any) -> None:  # noqa: F811
    from kiosk.library.wishes import Wishes

    pg = screen
    pg.goto(box.url + "wish")
    pg.tap("[data-topic=health]")
    type_letters(pg, "yangzhu")
    pg.locator("#candidates .cand", has_text="养猪").first.tap()
    assert pg.input_value("#typed") == "养猪"
    pg.tap("#keyboard [data-key=space]")
    type_letters(pg, "gaoxueya")  # sent as letters, without picking
    pg.locator("#candidates .cand").first.wait_for()
    assert pg.inner_text("#chosen") == "养猪 gaoxueya"
    pg.tap("#send")
    pg.wait_for_selector("#done[data-ok=true]")
    assert "养猪 高血压" in pg.inner_text("#done")
    store = Wishes(box.cfg.data_dir / "wishes.sqlite")
    try:
        mine = [w["words"] for w in store.pending() if w["category"] == "health"]
    finally:
        store.close()
    assert "养猪 高血压" in mine and not any(c.isascii() and c.isalpha() for w in mine for c in w)
    # The thank-you page's home button shows its icon: white on red, not red on red.
    icon = pg.evaluate("""() => { const i = document.querySelector('#done .btn .icon'); const b = i.closest('.btn');
      return [getComputedStyle(i).color, getComputedStyle(b).backgroundColor]; }""")
    assert icon[0] != icon[1]
    assert pg.evaluate(CONTRAST_JS) and all(t["ratio"] >= t["need"] for t in pg.evaluate(CONTRAST_JS))
    shot(pg, "wish-done")
