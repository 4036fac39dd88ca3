"""The centre's HTTP side through Flask's test client: heartbeats, bad input, logins, views."""

from __future__ import annotations

import gzip
import time
import re
from pathlib import Path

import pytest

from kiosk import clock, wire
from tests.centre_helpers import centre_config, db_url, report, signed, post_batch, staff_centre, staff_login  # noqa: F401  (db_url is a fixture)


@pytest.fixture
def centre(cfg_path: Path, db_url: str):  # noqa: F811
    yield from staff_centre(centre_config(cfg_path, db_url, KIOSK_CENTRE_OFFLINE_AFTER_S="600"))


post = post_batch


def login(client) -> str:
    assert staff_login(client).status_code == 302
    # the session (and so its CSRF token) is new after a login
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").get_data(as_text=True)).group(1)


def test_a_box_signed_batch_is_stored_and_acknowledged(centre) -> None:
    app, store = centre
    secret = store.enroll("p1")
    r = post(app.test_client(), "p1", secret, [report("p1", 1), report("p1", 2)])
    assert r.status_code == 200
    assert r.json["acked"] == [1, 2] and abs(r.json["server_time"] - clock.now()) < 5
    assert store.seqs("p1") == [1, 2]


def test_a_replayed_batch_is_acknowledged_but_stores_nothing_new(centre) -> None:
    app, store = centre
    secret = store.enroll("p1")
    client = app.test_client()
    body = wire.encode_batch([report("p1", 1), report("p1", 2)])
    ts = int(clock.now())
    first = client.post(wire.HEARTBEATS_PATH, data=body, headers=signed("p1", secret, body, ts))
    seen = store.point("p1")["last_seen"]
    again = client.post(wire.HEARTBEATS_PATH, data=body, headers=signed("p1", secret, body, ts))
    assert first.json["stored"] == 2 and again.status_code == 200 and again.json["stored"] == 0
    assert store.seqs("p1") == [1, 2] and store.point("p1")["last_seen"] == seen


@pytest.mark.parametrize(
    "case, status, error",
    [
        ("forged", 401, "signature"),
        ("unknown_point", 401, "signature"),
        ("no_header", 401, "auth"),
        ("far_off", 401, "clock"),
        ("oversized", 413, "too_large"),
        ("not_gzip", 400, "not_gzip"),
        ("malformed_json", 400, "bad_json"),
        ("bad_report", 400, "bad_report"),
        ("another_points_report", 400, "bad_report"),
        ("huge_seq", 400, "bad_report"),
    ],
)
def test_bad_input_is_refused_with_a_clear_status_and_nothing_is_stored(centre, case: str, status: int, error: str) -> None:
    app, store = centre
    secret = store.enroll("p1")
    store.enroll("p2")
    client = app.test_client()
    good = wire.encode_batch([report("p1", 1)])
    now = int(clock.now())
    path = wire.HEARTBEATS_PATH
    if case == "forged":
        headers = signed("p1", "not-the-secret", good, now)
        r = client.post(path, data=good, headers=headers)
    elif case == "unknown_point":
        r = client.post(path, data=good, headers=signed("nobody", secret, good, now))
    elif case == "no_header":
        r = client.post(path, data=good)
    elif case == "far_off":
        r = post(client, "p1", secret, [report("p1", 1)], ts=now - wire.MAX_SKEW_S - 60)
        assert abs(r.json["server_time"] - now) < 5  # so the box can correct its offset
    elif case == "oversized":
        r = post(client, "p1", secret, [], body=b"\x1f\x8b" + b"0" * (wire.MAX_BODY_BYTES + 10))
    elif case == "not_gzip":
        r = post(client, "p1", secret, [], body=b'{"reports": []}')
    elif case == "malformed_json":
        r = post(client, "p1", secret, [], body=gzip.compress(b'{"reports": [}'))
    elif case == "bad_report":
        r = post(client, "p1", secret, [], body=wire.encode_batch([report("p1", 1), {"seq": "x", "kind": "beat"}]))
    elif case == "huge_seq":
        r = post(client, "p1", secret, [report("p1", 1), report("p1", 2**64)])
    else:
        r = post(client, "p1", secret, [report("p1", 1), report("p2", 2)])
    assert r.status_code == status
    assert r.json["error"] == error and r.json["detail"]
    assert store.report_count() == 0 and store.point("p1")["last_seen"] is None


def test_a_gzip_bomb_is_refused_once_inflated_past_the_limit(centre) -> None:
    app, store = centre
    secret = store.enroll("p1")
    bomb = gzip.compress(b" " * (wire.MAX_INFLATED_BYTES + 1024))
    r = post(app.test_client(), "p1", secret, [], body=bomb)
    assert r.status_code == 413 and store.report_count() == 0


def test_the_dashboard_needs_a_login_and_shows_offline_points_by_township(centre) -> None:
    app, store = centre
    client = app.test_client()
    assert client.get("/").status_code == 302
    s1 = store.enroll("p1", name="王家村服务点", township="城关镇")
    store.enroll("p2", name="李庄服务点", township="东风乡")
    with clock.use(clock.FrozenClock(clock.now() - 3 * 3600)):
        store.ingest("p2", [report("p2", 1)])
    post(client, "p1", s1, [report("p1", 1)])
    login(client)
    page = client.get("/").get_data(as_text=True)
    assert "城关镇" in page and "东风乡" in page
    assert 'data-point="p1" data-status="online"' in page and 'data-point="p2" data-status="offline"' in page
    filtered = client.get("/?offline_hours=2").get_data(as_text=True)
    assert 'data-point="p2"' in filtered and 'data-point="p1"' not in filtered
    assert 'data-point="p2"' not in client.get("/?offline_hours=4").get_data(as_text=True)


def test_a_points_page_draws_its_uptime_strip_and_health_charts(centre) -> None:
    app, store = centre
    secret = store.enroll("p1")
    client = app.test_client()
    post(client, "p1", secret, [report("p1", 1, box_time=clock.now(), clock_synced=True)])
    login(client)
    page = client.get("/points/p1").get_data(as_text=True)
    assert page.count("<svg") == 5 and ("<polyline" in page or "<circle" in page)
    assert "无数据" not in page.split("CPU")[1][:300]
    assert client.get("/points/nobody").status_code == 404


def test_every_post_needs_the_csrf_token(centre) -> None:
    app, store = centre
    client = app.test_client()
    r = client.post("/login", data={"username": "staff", "password": "good password"})
    assert r.status_code == 400
    token = login(client)
    assert client.post("/tokens", data={"name": "x"}).status_code == 400
    assert store.tokens() == []
    assert client.post("/tokens", data={"name": "x", "csrf_token": token}).status_code == 200
    assert len(store.tokens()) == 1


def test_the_points_api_answers_staff_and_api_tokens_only(centre) -> None:
    app, store = centre
    secret = store.enroll("p1", township="城关镇")
    client = app.test_client()
    post(client, "p1", secret, [report("p1", 1)])
    assert client.get("/api/v1/points").status_code == 401
    assert client.get("/api/v1/points", headers={"Authorization": "Bearer wrong"}).status_code == 401
    token = store.new_token("monitor")
    r = client.get("/api/v1/points", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    assert r.json["total"] == 1 and r.json["page"] == 1
    assert [(p["id"], p["township"], p["status"]) for p in r.json["points"]] == [("p1", "城关镇", "online")]
    assert r.json["points"][0]["last_seen"] == pytest.approx(clock.now(), abs=5)


def test_metrics_are_in_the_prometheus_text_format(centre) -> None:
    app, store = centre
    secret = store.enroll("p1")
    store.enroll("p2")
    client = app.test_client()
    post(client, "p1", secret, [report("p1", 1), report("p1", 2)])
    post(client, "p1", secret, [report("p1", 2)])
    text = client.get("/metrics").get_data(as_text=True)
    assert 'kiosk_centre_points{status="online"} 1.0' in text
    assert 'kiosk_centre_points{status="never"} 1.0' in text
    assert 'kiosk_centre_reports_received_total{outcome="stored"} 2.0' in text
    assert 'kiosk_centre_reports_received_total{outcome="duplicate"} 1.0' in text
    assert "kiosk_centre_request_seconds_bucket" in text


def test_usage_and_requests_export_as_csv_and_a_printable_report(centre) -> None:
    app, store = centre
    secret = store.enroll("p1", township="城关镇")
    client = app.test_client()
    ask = [{"id": 1, "at": clock.now(), "topic": "health", "text": "高血压怎么吃药"}]
    post(client, "p1", secret, [report("p1", 1, box_time=clock.now(), clock_synced=True, requests=ask)])
    login(client)
    usage = client.get("/usage.csv?by=township").get_data(as_text=True)
    assert usage.lstrip("\ufeff").splitlines()[0] == "乡镇,月份,打开次数,播放次数"
    assert "城关镇" in usage and ",2,1" in usage
    assert "高血压怎么吃药" in client.get("/requests.csv").get_data(as_text=True)
    report_page = client.get("/report").get_data(as_text=True)
    assert "城关镇" in report_page and "高血压怎么吃药" in report_page
    assert client.get("/usage.csv?by=nonsense").status_code == 400


def test_a_busy_database_answers_503_with_retry_after_and_stores_nothing(centre, monkeypatch) -> None:
    import sqlite3

    app, store = centre
    secret = store.enroll("p1")

    def locked(*args, **kwargs):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(store, "ingest", locked)
    r = post(app.test_client(), "p1", secret, [report("p1", 1)])
    assert r.status_code == 503 and r.headers["Retry-After"] == "30" and r.json["error"] == "busy"
    monkeypatch.undo()
    assert store.report_count() == 0


def test_staff_enrol_a_point_from_the_dashboard_and_see_its_secret_once(centre) -> None:
    app, store = centre
    client = app.test_client()
    token = login(client)
    page = client.post("/enroll", data={"point_id": "xx-01", "name": "东风村", "township": "东风乡", "csrf_token": token})
    assert page.status_code == 200
    shown = re.search(r'<code class="token" id="secret">([0-9a-f]{64})</code>', page.get_data(as_text=True)).group(1)
    assert store.secret("xx-01") == shown and store.point("xx-01")["township"] == "东风乡"
    bad = client.post("/enroll", data={"point_id": "Bad Id", "csrf_token": token})
    assert bad.status_code == 400 and len(store.points()) == 1


def test_when_enough_points_are_being_stored_the_next_one_is_asked_to_come_back_shortly(centre) -> None:
    app, store = centre
    secret = store.enroll("p1")
    gate = app.extensions["centre"]["ingest_gate"]
    taken = 0
    while gate.acquire(blocking=False):
        taken += 1
    try:
        r = post(app.test_client(), "p1", secret, [report("p1", 1)])
    finally:
        for _ in range(taken):
            gate.release()
    assert taken >= 2
    assert r.status_code == 503 and r.json["error"] == "busy" and 1 <= int(r.headers["Retry-After"]) <= 5
    assert store.report_count() == 0
    assert post(app.test_client(), "p1", secret, [report("p1", 1)]).status_code == 200


def test_the_usage_and_requests_pages_show_months_by_township_and_topic(centre) -> None:
    app, store = centre
    secret = store.enroll("p1", township="城关镇")
    client = app.test_client()
    ask = [{"id": 3, "at": clock.now(), "topic": "law", "text": "土地承包合同纠纷怎么办"}]
    post(client, "p1", secret, [report("p1", 1, box_time=clock.now(), clock_synced=True, requests=ask)])
    login(client)
    usage = client.get("/usage").get_data(as_text=True)
    month = time.strftime("%Y-%m", time.localtime(clock.now()))
    assert "城关镇" in usage and "农业科技" in usage and f"<th>{month}</th>" in usage
    asks = client.get("/requests").get_data(as_text=True)
    assert "土地承包合同纠纷怎么办" in asks and "法律常识" in asks
    report_page = client.get("/report").get_data(as_text=True)
    assert "<td>城关镇</td>" in report_page and "农业科技" in report_page
    empty = client.get("/usage?from=2001-01&to=2001-02").get_data(as_text=True)
    assert "这段时间没有数据" in empty


def test_a_points_page_lists_its_events_in_plain_words(centre) -> None:
    app, store = centre
    secret = store.enroll("p1")
    client = app.test_client()
    event = report("p1", 2, kind="event", event="under_voltage", detail={"volts": 4.6})
    post(client, "p1", secret, [report("p1", 1), event])
    login(client)
    page = client.get("/points/p1").get_data(as_text=True)
    assert "供电电压不足" in page and "volts: 4.6" in page
    assert store.events("p1") == [{"seq": 2, "at": store.events("p1")[0]["at"], "event": "under_voltage", "detail": {"volts": 4.6}}]


def test_the_uptime_strip_is_green_for_days_reported_red_for_silent_days_and_grey_before_enrolment() -> None:
    from kiosk.centre import charts

    now = time.mktime((2026, 11, 22, 12, 0, 0, 0, 0, -1))
    day = 86400.0
    # reported every hour of the last 3 days, silent the 3 days before, enrolled 6 days ago
    reports = [{"at": now - h * 3600} for h in range(0, 3 * 24 + 12)]
    svg = charts.uptime_strip(reports, now, days=10, since=now - 6 * day - 12 * 3600)
    colours = re.findall(r'fill="(#[0-9a-f]{6})"><title>', svg)
    assert colours == ["#dadce0"] * 3 + ["#c5221f"] * 3 + ["#1e8e3e"] * 4
