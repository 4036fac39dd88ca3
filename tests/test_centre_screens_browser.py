"""County staff's screens in Debian's Chromium, on a desk (1280x800) and a phone (390x844).

Screenshots go to test-artifacts/centre/.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.centre_helpers import report
from tests.test_centre_browser import ARGS, CHROMIUM, log_in
from tests.test_centre_e2e import Centre

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

ARTEFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "centre"
SIZES = {"desk": (1280, 800), "phone": (390, 844)}
HEALTH = {"temp_c": 52.4, "disk_percent": 40.0, "disk_free": 19327352832, "disk_total": 31999999999,
          "root_readonly": False, "throttled": 0, "under_voltage": False, "cpu_percent": 12.0, "load1": 0.25,
          "memory_percent": 31.0, "display_restarts": 0, "display_failed": False, "ext4_errors": 0, "status": "ok"}


@pytest.fixture(scope="module")
def centre(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Centre]:
    c = Centre(tmp_path_factory.mktemp("centre-screens"), "")
    c.db = str(c.root / "centre.sqlite")
    c.config.write_text(c.config.read_text().replace('db = ""', f'db = "{c.db}"'), encoding="utf-8")
    assert c.kiosk("centre", "add-user", "staff", stdin="good password\n").returncode == 0
    secret = c.enroll("wangjia", township="东风乡")
    c.enroll("lijia", township="城关镇")
    c.start()
    now = time.time()
    topics = ("agriculture", "health", "law", "culture")
    asks = [{"id": n, "at": now - n * 60, "topic": topics[n % 4],
             "text": "想看养猪防疫的视频" if n % 3 == 0 else f"玉米病虫害怎么防治（第 {n} 次）"} for n in range(1, 121)]
    beats = [report("wangjia", seq, box_time=now - (40 - seq) * 300, clock_synced=True, health={**HEALTH, "temp_c": 48.0 + seq % 7},
                    content={"items": 120, "bytes": 40_000_000_000, "last_ingest": now - 86400, "quarantined": 1},
                    requests=asks[(seq - 1) * 3: seq * 3]) for seq in range(1, 41)]
    boot = report("wangjia", 41, kind="event", event="boot", box_time=now, clock_synced=True, health=HEALTH,
                  detail={"previous_boot_id": None, "uptime_s": 42.0})
    boot.pop("content")
    overheat = report("wangjia", 42, kind="event", event="overheat", box_time=now, clock_synced=True, health=HEALTH,
                      detail=[81.5, "风扇停了"])
    overheat.pop("content")
    assert c.post("wangjia", secret, beats + [boot, overheat]).status_code == 200
    yield c
    c.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def open_page(browser: Any, centre: Centre, size: str) -> Any:
    w, h = SIZES[size]
    page = browser.new_page(locale="zh-CN", viewport={"width": w, "height": h})
    log_in(page, centre)
    return page


def shot(page: Any, name: str) -> None:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / f"{name}.png"), full_page=True)


def no_sideways_scroll(page: Any) -> None:
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


@pytest.mark.parametrize("size", SIZES)
def test_a_points_page_reads_in_plain_chinese_with_a_legend_and_charts_that_fill_their_width(centre: Centre, browser: Any, size: str) -> None:
    page = open_page(browser, centre, size)
    page.goto(centre.url + "/points/wangjia")
    body = page.locator("main").inner_text()
    for raw in ("disk_free", "root_readonly", "19327352832", "None", "False", "previous_boot_id", "uptime_s"):
        assert raw not in body, raw
    for words in ("磁盘剩余", "19.3 GB", "系统盘只读", "否", "CPU 温度", "开机", "过热", "风扇停了", "120 个"):
        assert words in body, words
    legend = page.locator("#strip-legend")
    assert legend.is_visible() and "全天没有报告" in legend.inner_text()
    main_w = page.evaluate("document.querySelector('main').clientWidth")
    chart = page.locator("svg.chart").first.bounding_box()
    assert chart["width"] >= 0.4 * main_w and chart["width"] <= main_w
    # three hours of data drawn across the chart, not squeezed into its last tenth
    xs = page.locator("svg.chart polyline").first.get_attribute("points").split()
    first, last = float(xs[0].split(",")[0]), float(xs[-1].split(",")[0])
    assert last - first > 0.7 * (640 - 54)
    no_sideways_scroll(page)
    shot(page, f"point-{size}")
    page.close()


@pytest.mark.parametrize("size", SIZES)
def test_an_offline_filter_with_no_match_says_so(centre: Centre, browser: Any, size: str) -> None:
    page = open_page(browser, centre, size)
    page.fill("input[name=offline_hours]", "48")
    page.click("form.inline button[type=submit]")
    assert "没有符合条件的服务点" in page.locator("#no-match").inner_text()
    assert "kiosk centre enroll" not in page.locator("main").inner_text()
    no_sideways_scroll(page)
    shot(page, f"filter-no-match-{size}")
    page.close()


@pytest.mark.parametrize("size", SIZES)
def test_the_work_report_opens_with_its_summary_and_prints_without_stranded_table_headers(centre: Centre, browser: Any, size: str) -> None:
    page = open_page(browser, centre, size)
    page.goto(centre.url + "/report")
    summary = page.locator("#summary")
    assert summary.is_visible() and "2 个服务点" in summary.inner_text()
    assert re.search(r"在线 \d+%", summary.inner_text())
    assert "想看养猪防疫的视频" in page.locator("#top-requests").inner_text()
    y = page.evaluate("id => document.getElementById(id).getBoundingClientRect().top", "summary")
    assert y < page.evaluate("document.getElementById('appendix').getBoundingClientRect().top")
    assert page.locator("#all-requests tbody tr").count() == 120
    no_sideways_scroll(page)
    shot(page, f"report-{size}")
    page.emulate_media(media="print")
    styles = page.evaluate("""() => {
        const s = e => getComputedStyle(e);
        return {
          thead: [...document.querySelectorAll('thead')].every(e => s(e).display === 'table-header-group' && s(e).breakInside === 'avoid'),
          rows: [...document.querySelectorAll('tbody tr')].every(e => s(e).breakInside === 'avoid'),
          headings: [...document.querySelectorAll('h2, h3')].every(e => s(e).breakAfter === 'avoid'),
          appendix: s(document.getElementById('appendix')).breakBefore,
          menu: s(document.querySelector('header')).display,
        };
    }""")
    assert styles == {"thead": True, "rows": True, "headings": True, "appendix": "page", "menu": "none"}
    if size == "desk":
        (ARTEFACTS / "report.pdf").write_bytes(page.pdf(format="A4"))
    shot(page, f"report-print-{size}")
    page.close()
