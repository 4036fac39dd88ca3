"""What county staff read: a point's facts in plain Chinese, the offline filter, charts, the work report."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kiosk import clock, wire
from kiosk.centre import charts
from tests.centre_helpers import centre_config, report, signed, staff_centre, staff_login

HOUR = 3600


@pytest.fixture
def centre(cfg_path: Path, tmp_path: Path):
    for app, store in staff_centre(centre_config(cfg_path, str(tmp_path / "centre.sqlite"), KIOSK_CENTRE_OFFLINE_AFTER_S="600")):
        client = app.test_client()
        staff_login(client)
        yield app, store, client


def post(app, point: str, secret: str, reports: list) -> None:
    body = wire.encode_batch(reports)
    r = app.test_client().post(wire.HEARTBEATS_PATH, data=body, headers=signed(point, secret, body, int(clock.now())))
    assert r.status_code == 200, r.json


def beat(point: str, seq: int, **extra) -> dict:
    return report(point, seq, box_time=clock.now(), clock_synced=True, **extra)


HEALTH = {"temp_c": 52.4, "disk_percent": 40.0, "disk_free": 19327352832, "disk_total": 31999999999,
          "root_readonly": False, "throttled": 0, "under_voltage": False, "cpu_percent": 12.0, "load1": 0.25,
          "memory_percent": 31.0, "display_restarts": 0, "display_failed": False, "ext4_errors": 0, "status": "ok"}


def test_a_points_page_shows_labelled_chinese_values_never_raw_keys_timestamps_or_none(centre) -> None:
    app, store, client = centre
    secret = store.enroll("p1", name="王家村", township="东风乡")
    content = {"items": 120, "bytes": 40_000_000_000, "last_ingest": clock.now() - 86400, "quarantined": 0}
    event = beat("p1", 2, kind="event", event="boot", detail={"previous_boot_id": None, "uptime_s": 12}, health=HEALTH)
    event.pop("content")  # as a box sends an event: the content stays the last beat's
    post(app, "p1", secret, [beat("p1", 1, health=HEALTH, content=content), event])
    page = client.get("/points/p1").get_data(as_text=True)
    text = re.sub(r"<[^>]+>", " ", page.split("<main>")[1])
    for raw in ("disk_free", "root_readonly", "19327352832", "None", "False", "True", "last_ingest", "temp_c",
                "previous_boot_id", "uptime_s"):
        assert raw not in text, raw
    assert not re.search(r"\b1[6-9]\d{8}\b", text)  # no Unix timestamp
    assert "磁盘剩余" in text and "19.3 GB" in text and "系统盘只读" in text and "否" in text
    for words in ("CPU 温度", "52 °C", "节目数量", "120 个", "40.0 GB"):
        assert words in text, words
    assert "开机" in text and "上次开机编号: —" in text and "开机后运行: 0 分钟" in text


def test_a_points_page_explains_its_uptime_strip(centre) -> None:
    app, store, client = centre
    post(app, "p1", store.enroll("p1"), [beat("p1", 1)])
    page = client.get("/points/p1").get_data(as_text=True)
    legend = re.search(r'<p class="legend" id="strip-legend">(.*?)</p>', page, re.S).group(1)
    for words in ("全天都有报告", "部分时间有报告", "全天没有报告", "还没有登记"):
        assert words in legend


def test_a_chart_spans_the_data_there_is_not_always_thirty_days() -> None:
    now = 1_800_000_000.0
    reports = [{"at": now - HOUR * 3 + i * 300, "temp_c": 40.0 + i % 3} for i in range(36)]
    svg = charts.line_chart(reports, "temp_c", "t", "°C", now)
    xs = [float(p.split(",")[0]) for p in re.search(r'points="([^"]+)"', svg).group(1).split()]
    left, right = 44, 640 - 10
    assert xs[0] - left < 0.1 * (right - left)  # the line starts near the left edge ...
    assert right - xs[-1] < 0.1 * (right - left)  # ... and ends near the right
    assert len(xs) > 20  # three hours drawn in more than a couple of points
    month = [{"at": now - 29 * 86400 + i * 6 * HOUR, "temp_c": 50.0} for i in range(116)]
    assert len(re.search(r'points="([^"]+)"', charts.line_chart(month, "temp_c", "t", "°C", now)).group(1).split()) > 100


def test_an_offline_filter_with_no_match_says_no_point_matches(centre) -> None:
    app, store, client = centre
    post(app, "p1", store.enroll("p1"), [beat("p1", 1)])
    page = client.get("/?offline_hours=48").get_data(as_text=True)
    assert "没有符合条件的服务点" in page
    assert "没有服务点" not in page and "kiosk centre enroll" not in page


def test_the_work_report_opens_with_a_summary_and_ends_with_every_request(centre) -> None:
    app, store, client = centre
    s1 = store.enroll("p1", township="东风乡")
    store.enroll("p2", township="城关镇")
    asks = [{"id": n, "at": clock.now(), "topic": "agriculture" if n % 3 else "health",
             "text": "想看养猪" if n % 2 else f"第 {n} 个问题"} for n in range(1, 251)]
    post(app, "p1", s1, [beat("p1", seq, requests=asks[(seq - 1) * 25: seq * 25]) for seq in range(1, 11)])
    page = client.get("/report").get_data(as_text=True)
    summary = page.index('id="summary"')
    assert summary < page.index("一、服务点运行") < page.index('id="appendix"')
    head = page[summary:page.index("一、服务点运行")]
    assert "2</strong> 个服务点" in head and "50%" in head  # two points, one online
    assert "各栏目播放次数" in head and "农业科技" in head
    top = re.search(r'<table id="top-requests">(.*?)</table>', head, re.S).group(1)
    assert re.search(r"想看养猪</td><td>[^<]*</td><td class=\"num\">125<", top)
    appendix = page[page.index('id="appendix"'):]
    assert appendix.count("<tr><td>") == 250 and "全部点播需求（250 条）" in appendix
