"""The centre against hostile input: logins, exports, tokens, headers and malformed requests."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest

from kiosk import clock, wire
from kiosk.centre.app import create_centre_app
from kiosk.errors import NotFound
from tests.centre_helpers import centre_config, db_url, report, signed, post_batch, staff_centre  # noqa: F401  (db_url is a fixture)


@pytest.fixture
def centre(cfg_path: Path, db_url: str):  # noqa: F811
    yield from staff_centre(centre_config(cfg_path, db_url, KIOSK_CENTRE_OFFLINE_AFTER_S="600"))


post = post_batch


def csrf(client, path: str = "/login") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


def login(client, next_: str = "", password: str = "good password", user: str = "staff", **kw):
    token = csrf(client)
    url = "/login" + (f"?next={next_}" if next_ else "")
    return client.post(url, data={"username": user, "password": password, "csrf_token": token}, **kw)


def rows(text: str) -> list[list[str]]:
    assert text.startswith("\ufeff")  # spreadsheet programs need the BOM to read Chinese
    return list(csv.reader(io.StringIO(text[1:])))


# --- CSV exports ------------------------------------------------------------------------


def test_csv_exports_neutralise_cells_a_spreadsheet_would_run_as_formulas(centre) -> None:
    app, store = centre
    secret = store.enroll("p1", name="@SUM(A1)", township="=HYPERLINK(\"http://x\")")
    client = app.test_client()
    asks = [{"id": n, "at": clock.now(), "topic": "health", "text": t}
            for n, t in enumerate(["=1+1", "+cmd|' /C calc'!A0", "-2+3", "@A1", "\tx", "想看养猪"], 1)]
    post(client, "p1", secret, [report("p1", 1, box_time=clock.now(), clock_synced=True, requests=asks)])
    login(client)
    requests = rows(client.get("/requests.csv").get_data(as_text=True))
    texts = sorted(r[5] for r in requests[1:])
    assert texts == sorted(["'=1+1", "'+cmd|' /C calc'!A0", "'-2+3", "'@A1", "'\tx", "想看养猪"])
    assert {r[3] for r in requests[1:]} == {"'=HYPERLINK(\"http://x\")"}
    assert {r[2] for r in requests[1:]} == {"'@SUM(A1)"}
    points = rows(client.get("/points.csv").get_data(as_text=True))
    assert points[1][1:3] == ["'@SUM(A1)", "'=HYPERLINK(\"http://x\")"]
    usage = rows(client.get("/usage.csv?by=township").get_data(as_text=True))
    assert usage[1][0] == "'=HYPERLINK(\"http://x\")"
    for table in (requests, points, usage):
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in table for cell in row)


def test_csv_exports_speak_chinese_headers_statuses_and_topic_names(centre) -> None:
    app, store = centre
    secret = store.enroll("p1", name="王家村", township="城关镇")
    store.enroll("p2", name="李家村", township="城关镇")
    client = app.test_client()
    ask = [{"id": 1, "at": clock.now(), "topic": "health", "text": "高血压怎么吃药"}]
    post(client, "p1", secret, [report("p1", 1, box_time=clock.now(), clock_synced=True, requests=ask)])
    login(client)
    points = rows(client.get("/points.csv").get_data(as_text=True))
    assert points[0] == ["编号", "名称", "乡镇", "状态", "最后联系", "县"]
    assert sorted(r[3] for r in points[1:]) == ["从未联系", "在线"]
    requests = rows(client.get("/requests.csv").get_data(as_text=True))
    assert requests[0] == ["时间", "服务点编号", "服务点", "乡镇", "栏目", "内容"]
    assert requests[1][4:] == ["卫生健康", "高血压怎么吃药"]
    by_topic = rows(client.get("/usage.csv?by=category").get_data(as_text=True))
    assert by_topic[0] == ["栏目", "月份", "打开次数", "播放次数"]
    assert by_topic[1][0] == "农业科技" and by_topic[1][2:] == ["2", "1"]
    assert rows(client.get("/usage.csv?by=township").get_data(as_text=True))[0] == ["乡镇", "月份", "打开次数", "播放次数"]


# --- API tokens ---------------------------------------------------------------------------


def test_revoking_a_token_removes_exactly_that_token(centre) -> None:
    _app, store = centre
    tokens = [store.new_token(f"t{n}") for n in range(3)]
    ids = [t["id"] for t in store.tokens()]
    before = store.tokens()
    for wildcard in ("____________", "%", "%%%%%%%%%%%%", ids[0][:11] + "_", ids[0] + "\n", ids[0].upper()):
        with pytest.raises(NotFound):
            store.revoke_token(wildcard)
        assert store.tokens() == before and all(store.check_token(t) for t in tokens)
    store.revoke_token(ids[1])
    assert [t["id"] for t in store.tokens()] == [ids[0], ids[2]]
    assert store.check_token(tokens[0]) and not store.check_token(tokens[1]) and store.check_token(tokens[2])
    with pytest.raises(NotFound):
        store.revoke_token(ids[1])


def test_a_wildcard_revocation_from_the_page_is_refused_and_every_token_stays(centre) -> None:
    app, store = centre
    client = app.test_client()
    store.new_token("a"), store.new_token("b")
    login(client)
    before = store.tokens()
    r = client.post("/tokens", data={"revoke": "____________", "csrf_token": csrf(client, "/tokens")})
    assert r.status_code == 404 and store.tokens() == before


# --- headers ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/login", "/", "/api/v1/points", "/metrics", "/healthz", "/no-such-page"])
def test_every_answer_forbids_framing_and_type_sniffing(centre, path: str) -> None:
    app, _store = centre
    r = app.test_client().get(path)
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]


def test_the_session_cookie_is_http_only_and_same_site(centre) -> None:
    app, _store = centre
    r = login(app.test_client())
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


# --- ids and malformed requests -----------------------------------------------------------


@pytest.mark.parametrize("point_id", ["p1\n", "p1\r\n", "P1", "p1 ", "", "p" * 65, "p/1"])
def test_a_point_id_must_match_in_full(centre, point_id: str) -> None:
    _app, store = centre
    from kiosk.errors import KioskError

    with pytest.raises(KioskError):
        store.enroll(point_id)
    assert store.points() == []


def test_an_authorization_header_with_a_trailing_newline_is_refused(centre) -> None:
    app, store = centre
    secret = store.enroll("p1")
    body = wire.encode_batch([report("p1", 1)])
    headers = signed("p1", secret, body, int(clock.now()))
    with pytest.raises(wire.WireError):
        wire.parse_authorization(headers["Authorization"] + "\n")
    with pytest.raises(wire.WireError):
        wire.parse_authorization(headers["Authorization"].replace("ts=", "ts=\u0661"))  # an Arabic-Indic digit
    assert store.report_count() == 0


@pytest.mark.parametrize("query", [
    "from=2026-01%0d%0aSet-Cookie:%20x=1", "to=%0d%0a", "from=9" * 10, "from=2026-13", "from=2026-1", "from=%00",
])
@pytest.mark.parametrize("page", ["/usage", "/usage.csv", "/requests", "/requests.csv", "/report"])
def test_malformed_month_parameters_get_400_never_500(centre, page: str, query: str) -> None:
    app, store = centre
    client = app.test_client()
    login(client)
    before = store.report_count(), store.points()
    r = client.get(f"{page}?{query}")
    assert r.status_code == 400 and "Set-Cookie: x" not in str(r.headers)
    assert (store.report_count(), store.points()) == before


@pytest.mark.parametrize("body", [b"[]", b'[{"reports": []}]', b'"reports"', b"null", b"1e999999", b"[" * 100000 + b"]" * 100000,
                                  b'{"reports": {"seq": 1}}', b'{"reports": [' + b"[" * 50000 + b"]" * 50000 + b"]}"])
def test_a_json_body_of_the_wrong_shape_gets_400_and_stores_nothing(centre, body: bytes) -> None:
    import gzip

    app, store = centre
    secret = store.enroll("p1")
    r = post(app.test_client(), "p1", secret, [], body=gzip.compress(body))
    assert r.status_code == 400 and r.json["detail"]
    assert store.report_count() == 0 and store.point("p1")["last_seen"] is None


# --- login -------------------------------------------------------------------------------


@pytest.mark.parametrize("target", [
    "%2F%09%2Fevil.example", "//evil.example", "%2F%2Fevil.example", "/%5Cevil.example", "%5C%5Cevil.example",
    "https://evil.example/", "%2F%0A%2Fevil.example", "%2F%0D%2Fevil.example", "javascript:alert(1)",
    "%20//evil.example", "/%09/evil.example", "%2F%5C%2Fevil.example", "evil.example",
])
def test_login_never_sends_anyone_off_the_centre(centre, target: str) -> None:
    app, _store = centre
    r = login(app.test_client(), next_=target)
    assert r.status_code == 302
    location = r.headers["Location"]
    assert location == "/", location


def test_login_returns_to_the_page_asked_for_on_the_centre(centre) -> None:
    app, _store = centre
    r = login(app.test_client(), next_="%2Fpoints%2Fp1%3Fx%3D1")
    assert r.headers["Location"] == "/points/p1?x=1"


def attempts(app, n: int, address: str, user: str = "staff", password: str = "wrong password") -> list[int]:
    client = app.test_client()
    return [login(client, user=user, password=password, environ_base={"REMOTE_ADDR": address}).status_code
            for _ in range(n)]


def test_a_stranger_failing_from_elsewhere_cannot_lock_the_user_out(centre) -> None:
    app, _store = centre
    with clock.use(clock.FrozenClock(clock.now())):
        stranger = attempts(app, 30, "203.0.113.9")
        assert stranger[:5] == [401] * 5 and set(stranger[5:]) == {429}
        r = login(app.test_client(), environ_base={"REMOTE_ADDR": "198.51.100.7"})
        assert r.status_code == 302 and r.headers["Location"] == "/"


def test_failed_logins_back_off_per_user_and_address_and_the_wait_passes(centre) -> None:
    app, _store = centre
    with clock.use(clock.FrozenClock(clock.now())) as frozen:
        assert attempts(app, 6, "203.0.113.9") == [401] * 5 + [429]
        assert login(app.test_client(), environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code == 429  # even the right one
        frozen.advance(1.5)
        assert attempts(app, 2, "203.0.113.9") == [401, 429]  # one more try, then a longer wait
        frozen.advance(2.5)
        assert login(app.test_client(), environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code == 302


def test_one_address_cannot_try_many_user_names(centre) -> None:
    app, _store = centre
    with clock.use(clock.FrozenClock(clock.now())):
        codes = [c for n in range(25) for c in attempts(app, 1, "203.0.113.9", user=f"user{n}")]
        assert codes[:20] == [401] * 20 and set(codes[20:]) == {429}


def test_parallel_guesses_cannot_beat_the_limit(centre) -> None:
    import threading

    app, _store = centre
    barrier = threading.Barrier(16)
    codes: list[int] = []

    def guess() -> None:
        client = app.test_client()
        token = csrf(client)
        barrier.wait()
        r = client.post("/login", data={"username": "staff", "password": "wrong", "csrf_token": token},
                        environ_base={"REMOTE_ADDR": "203.0.113.9"})
        codes.append(r.status_code)

    threads = [threading.Thread(target=guess) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [401] * 5 + [429] * 11


def test_the_limit_is_counted_in_the_store_so_every_centre_process_sees_it(centre, cfg_path: Path, db_url: str) -> None:  # noqa: F811
    app, _store = centre
    other = create_centre_app(centre_config(cfg_path, db_url))
    other.config["TESTING"] = True
    try:
        with clock.use(clock.FrozenClock(clock.now())):
            assert attempts(app, 5, "203.0.113.9") == [401] * 5
            assert attempts(other, 1, "203.0.113.9") == [429]
    finally:
        other.extensions["centre"]["store"].close()


def test_an_unknown_user_costs_the_same_password_hash_as_a_known_one(centre, monkeypatch) -> None:
    import kiosk.centre.store as store_mod

    _app, store = centre
    checked: list[str] = []
    real = store_mod.check_password_hash
    monkeypatch.setattr(store_mod, "check_password_hash", lambda h, p: checked.append(h.split("$")[0]) or real(h, p))
    assert not store.check_user("nobody", "a guess")
    assert not store.check_user("staff", "a guess")
    known = store.db.one("SELECT password_hash FROM users WHERE username = 'staff'")[0].split("$")[0]
    assert checked == [known, known]  # the same method and work factor both times


def test_a_login_ends_after_its_lifetime_even_on_a_page_that_reloads_itself(centre) -> None:
    app, _store = centre
    client = app.test_client()
    with clock.use(clock.FrozenClock(clock.now())) as frozen:
        assert login(client).status_code == 302
        for _ in range(11):
            frozen.advance(3600)
            assert client.get("/").status_code == 200  # the dashboard reloads itself every minute
        frozen.advance(3601)
        r = client.get("/")
        assert r.status_code == 302 and "/login" in r.headers["Location"]
        assert client.get("/api/v1/points").status_code == 401


def test_the_session_cookie_is_secure_when_served_over_tls(centre) -> None:
    app, _store = centre
    client = app.test_client()
    page = client.get("/login", base_url="https://centre.example").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = client.post("/login", data={"username": "staff", "password": "good password", "csrf_token": token},
                    base_url="https://centre.example")
    assert r.status_code == 302 and "Secure" in r.headers["Set-Cookie"]
    plain = login(app.test_client(), headers={"X-Forwarded-Proto": "https"}).headers["Set-Cookie"]
    assert "Secure" not in plain  # a forwarded header counts only behind a proxy the settings name


def test_behind_a_trusted_proxy_its_forwarded_proto_and_address_count(cfg_path: Path, db_url: str) -> None:  # noqa: F811
    app = create_centre_app(centre_config(cfg_path, db_url, KIOSK_CENTRE_TRUST_PROXY="true"))
    app.config["TESTING"] = True
    store = app.extensions["centre"]["store"]
    store.set_user("staff", "good password")
    try:
        r = login(app.test_client(), headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7"})
        assert "Secure" in r.headers["Set-Cookie"]
        with clock.use(clock.FrozenClock(clock.now())):
            client = app.test_client()
            codes = [login(client, password="wrong", headers={"X-Forwarded-For": "203.0.113.9"}).status_code for _ in range(6)]
            assert codes == [401] * 5 + [429]
            assert login(client, headers={"X-Forwarded-For": "198.51.100.7"}).status_code == 302
    finally:
        store.close()


# --- metrics and refusals -------------------------------------------------------------------


def test_metrics_can_require_a_token(cfg_path: Path, db_url: str) -> None:  # noqa: F811
    app = create_centre_app(centre_config(cfg_path, db_url, KIOSK_CENTRE_METRICS_TOKEN="s3cret-metrics"))
    try:
        client = app.test_client()
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert "kiosk_centre_points" not in client.get("/metrics").get_data(as_text=True)
        r = client.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics"})
        assert r.status_code == 200 and "kiosk_centre_points" in r.get_data(as_text=True)
    finally:
        app.extensions["centre"]["store"].close()


def test_a_refusal_does_not_tell_which_point_ids_are_enrolled(centre) -> None:
    app, store = centre
    store.enroll("p1")
    client = app.test_client()
    body = wire.encode_batch([report("p1", 1)])
    now = int(clock.now())
    enrolled = client.post(wire.HEARTBEATS_PATH, data=body, headers=signed("p1", "0" * 64, body, now))
    body2 = wire.encode_batch([report("p9", 1)])
    stranger = client.post(wire.HEARTBEATS_PATH, data=body2, headers=signed("p9", "0" * 64, body2, now))
    assert enrolled.status_code == stranger.status_code == 401
    strip = lambda j: {k: v for k, v in j.items() if k != "server_time"}  # noqa: E731
    assert strip(enrolled.json) == strip(stranger.json)
    assert store.report_count() == 0
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "p1" not in metrics and "p9" not in metrics and "unknown_point" not in metrics


# --- acknowledgements ----------------------------------------------------------------------


def test_the_centres_acknowledgement_is_signed_with_the_points_secret_and_bound_to_the_request(centre) -> None:
    app, store = centre
    secret = store.enroll("p1")
    body = wire.encode_batch([report("p1", 1), report("p1", 2)])
    headers = signed("p1", secret, body, int(clock.now()))
    r = app.test_client().post(wire.HEARTBEATS_PATH, data=body, headers=headers)
    sig = headers["Authorization"].rsplit("sig=", 1)[1]
    assert r.json["acked"] == [1, 2]
    assert wire.check_ack(secret, sig, [1, 2], r.json["ack_sig"])
    assert not wire.check_ack(secret, sig, [1, 2, 3], r.json["ack_sig"])  # a seq added on the way
    assert not wire.check_ack(secret, "0" * 64, [1, 2], r.json["ack_sig"])  # an answer to another request
    assert not wire.check_ack("another secret", sig, [1, 2], r.json["ack_sig"])


@pytest.mark.parametrize("query", [
    "page=99999999999999999999999", "page=-1", "page=1e400", "per_page=100000000000000000000", "per_page=-5",
    "page=%0d%0a", "status=%0d%0aX:%20y", "offline_hours=nan", "offline_hours=1e999", "offline_hours=-inf",
    "q=%00", "county=%0d%0a", "township=" + "x" * 5000, "page=" + "9" * 5000,
])
@pytest.mark.parametrize("path", ["/api/v1/points", "/api/v1/summary", "/"])
def test_malformed_query_parameters_get_an_answer_never_a_500(centre, path: str, query: str) -> None:
    app, store = centre
    store.enroll("p1")
    client = app.test_client()
    login(client)
    before = store.points()
    r = client.get(f"{path}?{query}")
    assert r.status_code < 500, r.get_data(as_text=True)[:300]
    assert not any("\r" in v or "\n" in v for _k, v in r.headers.items()) and store.points() == before
