"""The tree and scopes: summaries, paged point lists, and nothing seen or counted outside a scope."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from kiosk import cli, clock
from kiosk.centre.app import create_centre_app
from tests.centre_helpers import centre_config, db_url, report  # noqa: F401  (db_url is a fixture)

NOW = 1_800_000_000.0
# (point, county, township, seconds since its last report or None for never)
POINTS = (
    ("a1", "临县", "城关镇", 10), ("a2", "临县", "城关镇", 5000), ("a3", "临县", "东风乡", None),
    ("a4", "临县", "东风乡", 200), ("b1", "兴县", "河口镇", 7000), ("b2", "兴县", "河口镇", 9000),
    ("b3", "兴县", "石桥乡", 20), ("c1", "岚县", "新华镇", 30),
)


@pytest.fixture
def centre(cfg_path: Path, db_url: str):  # noqa: F811
    with clock.use(clock.FrozenClock(NOW - 20000)) as c:
        app = create_centre_app(centre_config(cfg_path, db_url, KIOSK_CENTRE_OFFLINE_AFTER_S="600",
                                              KIOSK_CENTRE_HEARTBEAT_INTERVAL_S="60"))
        store = app.extensions["centre"]["store"]
        for pid, county, township, ago in POINTS:
            store.enroll(pid, name=f"{township}{pid}服务点", township=township, county=county)
            if ago is not None:
                store.ingest(pid, [report(pid, 1)], received_at=NOW - ago)
        c.set(NOW)
        tokens = {
            "province": store.new_token("p", "province"),
            "linxian": store.new_token("l", "county:临县"),
            "dongfeng": store.new_token("d", "township:临县/东风乡"),
        }
        yield app.test_client(), tokens
        store.close()


def get(client, tokens, who: str, path: str):
    return client.get(path, headers={"Authorization": f"Bearer {tokens[who]}"})


def test_the_province_summary_counts_each_county_worst_first(centre) -> None:
    client, tokens = centre
    r = get(client, tokens, "province", "/api/v1/summary")
    assert r.status_code == 200
    children = r.json["children"]
    assert [c["name"] for c in children] == ["兴县", "临县", "岚县"]
    assert {k: children[0][k] for k in ("online", "late", "offline", "never")} == \
        {"online": 1, "late": 0, "offline": 2, "never": 0}
    assert {k: children[1][k] for k in ("online", "late", "offline", "never")} == \
        {"online": 1, "late": 1, "offline": 1, "never": 1}
    assert r.json["node"]["total"] == len(POINTS)


def test_a_county_summary_counts_its_townships(centre) -> None:
    client, tokens = centre
    r = get(client, tokens, "province", "/api/v1/summary?county=临县")
    assert r.status_code == 200 and r.json["node"]["name"] == "临县"
    assert {c["name"]: (c["online"], c["late"], c["offline"], c["never"]) for c in r.json["children"]} == {
        "城关镇": (1, 0, 1, 0), "东风乡": (0, 1, 0, 1)}


def test_county_staff_see_their_county_and_nothing_outside_it(centre) -> None:
    client, tokens = centre
    own = get(client, tokens, "linxian", "/api/v1/summary")
    assert own.status_code == 200 and own.json["node"]["scope"] == "county:临县"
    assert own.json["node"]["total"] == 4 and {c["name"] for c in own.json["children"]} == {"城关镇", "东风乡"}
    listed = get(client, tokens, "linxian", "/api/v1/points?per_page=100")
    assert listed.json["total"] == 4 and {p["county"] for p in listed.json["points"]} == {"临县"}
    for path in ("/api/v1/summary?county=兴县", "/api/v1/points?county=兴县", "/api/v1/points?county=没有这个县",
                 "/api/v1/summary?county=兴县&township=河口镇"):
        r = get(client, tokens, "linxian", path)
        assert r.status_code == 403, path
        assert "河口镇" not in r.get_data(as_text=True) and "b1" not in r.get_data(as_text=True)


def test_township_staff_may_not_look_at_their_whole_county(centre) -> None:
    client, tokens = centre
    assert get(client, tokens, "dongfeng", "/api/v1/summary?county=临县").status_code == 403
    own = get(client, tokens, "dongfeng", "/api/v1/points")
    assert own.status_code == 200 and sorted(p["id"] for p in own.json["points"]) == ["a3", "a4"]
    assert get(client, tokens, "dongfeng", "/api/v1/points?county=临县&township=东风乡").json["total"] == 2


def test_points_are_listed_longest_silent_first_with_filters(centre) -> None:
    client, tokens = centre
    r = get(client, tokens, "province", "/api/v1/points")
    assert [p["id"] for p in r.json["points"]][:4] == ["a3", "b2", "b1", "a2"]
    offline = get(client, tokens, "province", "/api/v1/points?status=offline").json
    assert offline["total"] == 3 and {p["status"] for p in offline["points"]} == {"offline"}
    long = get(client, tokens, "province", "/api/v1/points?offline_hours=2").json
    assert sorted(p["id"] for p in long["points"]) == ["b2"]  # 9000 s; 7000 s is under 2 hours
    found = get(client, tokens, "province", "/api/v1/points?q=河口").json
    assert sorted(p["id"] for p in found["points"]) == ["b1", "b2"]
    assert get(client, tokens, "province", "/api/v1/points?q=B3").json["points"][0]["id"] == "b3"


def test_pages_hold_at_most_a_hundred_and_a_page_past_the_end_is_empty(centre) -> None:
    client, tokens = centre
    r = get(client, tokens, "province", "/api/v1/points?per_page=3&page=2").json
    assert r["total"] == len(POINTS) and r["page"] == 2 and len(r["points"]) == 3 and r["pages"] == 3
    assert get(client, tokens, "province", "/api/v1/points?per_page=1000").json["per_page"] == 100
    past = get(client, tokens, "province", "/api/v1/points?page=99")
    assert past.status_code == 200 and past.json["points"] == [] and past.json["total"] == len(POINTS)


@pytest.mark.parametrize("query", ["page=0", "page=x", "per_page=-1", "status=asleep", "offline_hours=soon",
                                   "township=城关镇", "q=" + "x" * 101])
def test_a_bad_filter_is_a_clear_400(centre, query: str) -> None:
    client, tokens = centre
    r = get(client, tokens, "province", f"/api/v1/points?{query}")
    assert r.status_code == 400 and r.json["detail"]


def test_a_county_that_does_not_exist_is_a_clear_404(centre) -> None:
    client, tokens = centre
    for path in ("/api/v1/summary?county=没有这个县", "/api/v1/points?county=没有这个县",
                 "/api/v1/summary?county=临县&township=没有这个乡"):
        r = get(client, tokens, "province", path)
        assert r.status_code == 404 and "没有这个" in r.json["detail"], path


@pytest.mark.parametrize("q", ["%", "_", "\\", "a%", "' OR 1=1 --", "'; DROP TABLE points; --"])
def test_search_takes_wildcards_and_quotes_literally(centre, q: str) -> None:
    client, tokens = centre
    r = client.get("/api/v1/points", query_string={"q": q}, headers={"Authorization": f"Bearer {tokens['province']}"})
    assert r.status_code == 200 and r.json["total"] == 0
    assert get(client, tokens, "province", "/api/v1/points").json["total"] == len(POINTS)


def test_the_command_line_enrols_into_the_tree_and_gives_scoped_logins_and_tokens(cfg_path: Path, capsys, monkeypatch) -> None:
    conf = ["--config", str(cfg_path)]
    assert cli.main(["centre", "enroll", "p9", "--county", "临县", "--township", "东风乡", "--json", *conf]) == 0
    assert json.loads(capsys.readouterr().out)["point_id"] == "p9"
    monkeypatch.setattr("sys.stdin", io.StringIO("a good password\n"))
    assert cli.main(["centre", "add-user", "li", "--scope", "county:临县", *conf]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("a good password\n"))
    assert cli.main(["centre", "add-user", "wang", "--scope", "county", *conf]) == 2
    assert "scope" in capsys.readouterr().err
    assert cli.main(["centre", "token", "add", "script", "--scope", "township:临县/东风乡", *conf]) == 0
    token = capsys.readouterr().out.strip()
    assert cli.main(["centre", "points", "--json", *conf]) == 0
    assert json.loads(capsys.readouterr().out)[0]["county"] == "临县"
    from kiosk import config as config_mod
    from kiosk.centre.store import Store
    from kiosk.centre.tree import Node

    store = Store.from_config(config_mod.load(cfg_path, env={}))
    try:
        assert store.user_scope("li") == Node("临县") and store.user_scope("wang") is None
        assert store.token_scope(token) == Node("临县", "东风乡")
    finally:
        store.close()


# --- pages and exports ----------------------------------------------------------------


def log_in(client, user: str) -> str:
    import re

    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = client.post("/login", data={"username": user, "password": "a good password", "csrf_token": token})
    assert r.status_code == 302, r.get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").get_data(as_text=True)).group(1)


@pytest.fixture
def staff(centre):
    client, tokens = centre
    store = client.application.extensions["centre"]["store"]
    store.set_user("sheng", "a good password", "province")
    store.set_user("lin", "a good password", "county:临县")
    with clock.use(clock.FrozenClock(NOW - 86400)):
        store.ingest("b1", [report("b1", 2, requests=[{"id": 1, "text": "兴县的点播"}])], received_at=NOW - 86400)
        store.ingest("a2", [report("a2", 2, requests=[{"id": 1, "text": "临县的点播"}])], received_at=NOW - 86400)
    return client, store


def test_the_province_dashboard_lists_counties_worst_first_and_drills_down(staff) -> None:
    client, _ = staff
    log_in(client, "sheng")
    page = client.get("/").get_data(as_text=True)
    assert page.index('data-child="兴县"') < page.index('data-child="临县"') < page.index('data-child="岚县"')
    county = client.get("/?county=临县").get_data(as_text=True)
    assert 'data-child="城关镇"' in county and 'data-child="河口镇"' not in county
    township = client.get("/?county=临县&township=东风乡").get_data(as_text=True)
    assert 'data-point="a3"' in township and 'data-point="a4"' in township and 'data-point="a1"' not in township
    assert client.get("/?county=没有这个县").status_code == 404
    past = client.get("/?page=99")
    assert past.status_code == 200 and "nothing past the last page" in past.get_data(as_text=True)
    found = client.get("/?q=%25").get_data(as_text=True)
    assert "data-point=" not in found


def test_county_staff_pages_and_exports_hold_nothing_of_another_county(staff) -> None:
    client, _ = staff
    log_in(client, "lin")
    home = client.get("/").get_data(as_text=True)
    assert 'data-child="城关镇"' in home and "兴县" not in home and 'data-point="b' not in home
    for path in ("/?county=兴县", "/points/b1", "/points.csv?county=兴县", "/usage?county=兴县", "/usage.csv?county=兴县",
                 "/requests.csv?county=兴县", "/report?county=兴县", "/?county=没有这个县"):
        r = client.get(path)
        assert r.status_code == 403, path
    assert client.get("/points/a1").status_code == 200
    for path in ("/points.csv", "/requests.csv", "/usage.csv?by=township", "/report", "/requests", "/usage"):
        text = client.get(path).get_data(as_text=True)
        assert "兴县" not in text and "河口镇" not in text and "石桥乡" not in text, path
    assert "临县的点播" in client.get("/requests.csv").get_data(as_text=True)
    points_csv = client.get("/points.csv").get_data(as_text=True).lstrip("\ufeff").splitlines()
    assert len(points_csv) == 1 + 4


def test_county_staff_enrol_only_in_their_county_and_may_not_publish(staff) -> None:
    client, store = staff
    csrf = log_in(client, "lin")
    r = client.post("/enroll", data={"point_id": "a9", "township": "城关镇", "csrf_token": csrf})
    assert r.status_code == 200 and store.point("a9")["county"] == "临县"
    r = client.post("/enroll", data={"point_id": "x9", "county": "兴县", "csrf_token": csrf})
    assert r.status_code == 403 and store.secret("x9") is None
    before = store.secret("b1")
    assert client.post("/enroll", data={"point_id": "b1", "csrf_token": csrf}).status_code == 403
    assert store.secret("b1") == before  # a box of another county is not cut off
    assert client.get("/publish").status_code == 403
    r = client.post("/tokens", data={"name": "script", "csrf_token": csrf})
    assert r.status_code == 200 and "county:临县" in r.get_data(as_text=True)
    assert "province" not in client.get("/tokens").get_data(as_text=True).split("<table>")[1]
