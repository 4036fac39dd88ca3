"""What a point reports is checked at the door: a bad batch is refused and changes nothing else,
an implausible reading is dropped alone, and nothing a point reports can break a page."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest

from kiosk import clock, wire
from kiosk.centre import schema
from kiosk.centre.store import LATEST_HOLD_S, Store
from tests.centre_helpers import centre_config, db_url, report, post_batch, staff_centre, staff_login  # noqa: F401  (db_url is a fixture)

TABLES = ("points", "reports", "plays", "requests")


@pytest.fixture
def centre(cfg_path: Path, db_url: str):  # noqa: F811
    yield from staff_centre(centre_config(cfg_path, db_url, KIOSK_CENTRE_OFFLINE_AFTER_S="600"))


def fingerprint(store: Store) -> tuple[Any, ...]:
    """Every row the centre keeps about points and what they reported."""
    return tuple(tuple(sorted(map(repr, store.db.query(f"SELECT * FROM {t}")))) for t in TABLES)


post = post_batch


def offer(app, store: Store, secret: str, reports: list[Any], status: int = 400, error: str = "bad_report") -> None:
    """Post a bad batch and check that it is refused with its reason and changes nothing else."""
    before = fingerprint(store)
    r = post(app.test_client(), "p1", secret, reports)
    assert (r.status_code, r.json["error"]) == (status, error), r.json
    assert r.json["detail"]
    assert fingerprint(store) == before


def login(client) -> None:
    assert staff_login(client).status_code == 302


def good(seq: Any, **extra: Any) -> dict[str, Any]:
    r = report("p1", 1, box_time=clock.now(), clock_synced=True)
    r.update(extra, seq=seq)
    return r


def event(seq: int, detail: Any) -> dict[str, Any]:
    return good(seq, kind="event", event="fault", detail=detail)


BAD_REPORTS: list[tuple[str, Any]] = [
    ("seq_is_a_bool", good(True)),
    ("seq_is_a_float", good(5.0)),
    ("seq_is_text", good("5")),
    ("seq_beyond_bigint", good(2**63)),
    ("seq_zero", good(0)),
    ("unknown_kind", good(5, kind="gossip")),
    ("point_id_with_newline", good(5, point_id="p1\n")),
    ("event_name_not_a_slug", good(5, kind="event", event="Boot<script>")),
    ("event_name_too_long", good(5, kind="event", event="x" * 40)),
    ("detail_nested_too_deep", event(5, {"a": {"b": {"c": {"d": {"e": 1}}}}})),
    ("detail_too_big", event(5, {"log": "x" * 5000})),
    ("health_not_an_object", good(5, health=[50.0])),
    ("content_not_an_object", good(5, content="full")),
    ("usage_negative", good(5, usage={"opens": -3})),
    ("usage_as_text", good(5, usage={"opens": "3"})),
    ("usage_nan", good(5, usage={"seconds": math.inf})),
    ("usage_huge", good(5, usage={"plays": 10**12})),
    ("usage_too_many_topics", good(5, usage={"by_category": {f"c{n}": {"opens": 1} for n in range(65)}})),
    ("usage_topic_not_an_object", good(5, usage={"by_category": {"health": 3}})),
    ("usage_topic_name_too_long", good(5, usage={"by_category": {"x" * 65: {"opens": 1}}})),
    ("top_items_wrong_shape", good(5, usage={"top_items": [["a", 1]]})),
    ("requests_not_a_list", good(5, requests={"text": "想看"})),
    ("too_many_requests", good(5, requests=[{"id": n, "text": "想看"} for n in range(51)])),
    ("request_text_not_text", good(5, requests=[{"id": 1, "text": ["想看"]}])),
    ("request_text_far_too_long", good(5, requests=[{"id": 1, "text": "想" * 5000}])),
    ("request_id_a_bool", good(5, requests=[{"id": True, "text": "想看"}])),
    ("request_topic_too_long", good(5, requests=[{"id": 1, "topic": "t" * 65, "text": "想看"}])),
    ("thinned_negative", good(5, thinned=-1)),
    ("a_report_is_a_list", [good(5)]),
    ("a_report_is_null", None),
]


@pytest.mark.parametrize("bad", [c[1] for c in BAD_REPORTS], ids=[c[0] for c in BAD_REPORTS])
def test_a_report_that_breaks_the_schema_is_refused_and_changes_nothing_else(centre, bad: Any) -> None:
    app, store = centre
    secret = store.enroll("p1", township="东风乡")
    assert post(app.test_client(), "p1", secret, [good(1, requests=[{"id": 1, "text": "想看养猪"}])]).status_code == 200
    offer(app, store, secret, [good(4), bad])


def test_a_batch_of_too_many_reports_is_refused_and_changes_nothing_else(centre) -> None:
    app, store = centre
    secret = store.enroll("p1")
    offer(app, store, secret, [good(n) for n in range(1, schema.MAX_REPORTS + 2)])


IMPLAUSIBLE_READINGS: list[tuple[str, dict[str, Any]]] = [
    ("text_temperature", {"temp_c": "hot"}),
    ("absurd_temperature", {"temp_c": 1e308}),
    ("disk_over_100", {"disk_percent": 250.0}),
    ("negative_disk", {"disk_free": -5}),
    ("bool_as_number", {"memory_percent": True}),
    ("object_as_number", {"load1": {"x": 1}}),
    ("unknown_status", {"status": "<b>fine</b>"}),
    ("problems_not_a_list", {"problems": "all"}),
]


@pytest.mark.parametrize("health", [c[1] for c in IMPLAUSIBLE_READINGS], ids=[c[0] for c in IMPLAUSIBLE_READINGS])
def test_an_implausible_reading_is_dropped_alone_and_the_point_stays_online(centre, health: dict[str, Any]) -> None:
    app, store = centre
    secret = store.enroll("p1")
    r = post(app.test_client(), "p1", secret, [good(1, health={**health, "cpu_percent": 12.0})])
    assert r.status_code == 200 and r.json["acked"] == [1]
    assert store.point("p1")["health"] == {"cpu_percent": 12.0}
    client = app.test_client()
    login(client)
    assert client.get("/").status_code == 200
    assert client.get("/points/p1").status_code == 200


def test_only_validated_values_are_stored(centre) -> None:
    app, store = centre
    secret = store.enroll("p1")
    r = good(1, stranger={"a": 1}, health={"temp_c": 50.0, "secret_sauce": "x" * 1000},
             requests=[{"id": 1, "text": "想" * 800, "topic": "health", "extra": 1}])
    assert post(app.test_client(), "p1", secret, [r]).status_code == 200
    row = store.db.one("SELECT health FROM reports WHERE point = 'p1'")
    assert row[0] == '{"temp_c":50.0}'
    assert store.point("p1")["health"] == {"temp_c": 50.0}
    text = store.db.one("SELECT text FROM requests WHERE point = 'p1'")[0]
    assert text == "想" * schema.MAX_TEXT


@pytest.mark.parametrize("health", [{}, {"temp_c": None}, {"status": "ok"}, None])
def test_a_report_without_a_temperature_leaves_every_page_working_with_a_dash(centre, health: Any) -> None:
    app, store = centre
    secret = store.enroll("p1", township="东风乡")
    extra = {"health": health} if health is not None else {}
    r = good(1, **extra)
    if health is None:
        r.pop("health")
    assert post(app.test_client(), "p1", secret, [r]).status_code == 200
    client = app.test_client()
    login(client)
    for page in ("/", "/points/p1", "/report", "/usage", "/requests", "/api/v1/points", "/metrics", "/points.csv"):
        assert client.get(page).status_code == 200, page
    row = re.search(r'<tr class="online" data-point="p1".*?</tr>', client.get("/").get_data(as_text=True), re.S).group(0)
    assert "—" in row


@pytest.mark.parametrize("detail", [
    {"temp_c": 81.0}, [1, 2, "three"], "a plain sentence", 42, True, {"nested": {"list": [1, {"x": None}]}}, {}, [],
    {"<b>": "<script>alert(1)</script>"},
])
def test_an_events_detail_of_any_json_shape_renders(centre, detail: Any) -> None:
    app, store = centre
    secret = store.enroll("p1")
    assert post(app.test_client(), "p1", secret, [event(1, detail)]).status_code == 200
    client = app.test_client()
    login(client)
    page = client.get("/points/p1")
    assert page.status_code == 200
    assert "<script>alert" not in page.get_data(as_text=True)


def test_an_events_detail_stored_before_the_schema_still_renders(centre) -> None:
    app, store = centre
    secret = store.enroll("p1")
    assert post(app.test_client(), "p1", secret, [event(1, {"x": 1})]).status_code == 200
    with store.db.transaction() as cur:  # as an older centre stored it, unchecked
        cur.execute("UPDATE reports SET detail = ? WHERE point = 'p1'", ('[[["deep"]], null, "x"]',))
        cur.execute("UPDATE points SET last_health = ?", ('{"temp_c": "hot", "disk_free": [1], "root_readonly": "no"}',))
    client = app.test_client()
    login(client)
    assert client.get("/points/p1").status_code == 200
    assert client.get("/").status_code == 200


def test_a_huge_sequence_number_cannot_pin_a_points_latest_state(centre) -> None:
    app, store = centre
    secret = store.enroll("p1")
    with clock.use(clock.FrozenClock(clock.now())) as frozen:
        assert post(app.test_client(), "p1", secret, [good(2**62, health={"temp_c": 99.0})]).status_code == 200
        frozen.advance(60)
        assert post(app.test_client(), "p1", secret, [good(7, health={"temp_c": 41.0})]).status_code == 200
        assert store.point("p1")["health"] == {"temp_c": 99.0}  # a backlog just after the newest does not replace it
        frozen.advance(LATEST_HOLD_S)
        assert post(app.test_client(), "p1", secret, [good(8, health={"temp_c": 42.0})]).status_code == 200
        assert store.point("p1")["health"] == {"temp_c": 42.0} and store.point("p1")["last_seq"] == 8
        frozen.advance(60)
        assert post(app.test_client(), "p1", secret, [good(9, health={"temp_c": 43.0})]).status_code == 200
        assert store.point("p1")["health"] == {"temp_c": 43.0}
