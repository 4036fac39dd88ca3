"""The centre's store and status rules, on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest

from kiosk import clock
from kiosk.centre import stats
from kiosk.centre.status import Rules
from kiosk.centre.store import Store
from kiosk.errors import KioskError, NotFound
from tests.centre_helpers import db_url, report  # noqa: F401  (db_url is a fixture)
from tests.conftest import missing


@pytest.fixture
def store(db_url: str):  # noqa: F811
    s = Store(db_url)
    yield s
    s.close()


def test_it_stores_each_report_once_however_often_it_arrives(store: Store) -> None:
    store.enroll("p1")
    acked, new = store.ingest("p1", [report("p1", s) for s in (1, 2, 3)])
    assert (acked, new) == ([1, 2, 3], 3)
    acked, new = store.ingest("p1", [report("p1", s) for s in (2, 3, 4, 4)])
    assert (acked, new) == ([2, 3, 4], 1)
    assert store.seqs("p1") == [1, 2, 3, 4]
    assert store.report_count() == 4


def test_a_replayed_report_does_not_count_its_usage_or_requests_twice(store: Store) -> None:
    store.enroll("p1", township="东风乡")
    ask = [{"id": 7, "at": clock.now(), "topic": "agriculture", "text": "想看养猪"}]
    store.ingest("p1", [report("p1", 1, requests=ask)])
    store.ingest("p1", [report("p1", 1, requests=ask)])
    store.ingest("p1", [report("p1", 2, requests=ask)])  # the same request carried again
    months = stats.month_range(24, clock.now())
    assert [r["text"] for r in stats.requests(store, *months)] == ["想看养猪"]
    usage = stats.usage(store, "township", "2000-01", "2999-12")
    assert sum(r["opens"] for r in usage) == 4 and {r["township"] for r in usage} == {"东风乡"}


def test_the_newest_report_sets_the_points_health_even_when_an_older_one_arrives_later(store: Store) -> None:
    store.enroll("p1")
    store.ingest("p1", [report("p1", 5, health={"temp_c": 61.0})])
    store.ingest("p1", [report("p1", 3, health={"temp_c": 40.0})])
    p = store.point("p1")
    assert p["last_seq"] == 5 and p["health"]["temp_c"] == 61.0


def test_enrolling_again_gives_a_new_secret_and_keeps_the_name(store: Store) -> None:
    first = store.enroll("p1", name="王家村", township="城关镇")
    second = store.enroll("p1")
    assert first != second and store.secret("p1") == second
    assert store.point("p1")["name"] == "王家村" and store.point("p1")["township"] == "城关镇"


def test_it_refuses_a_point_id_the_wire_format_cannot_carry(store: Store) -> None:
    with pytest.raises(KioskError):
        store.enroll("Bad Id!")
    with pytest.raises(NotFound):
        store.point("nobody")


def test_status_is_judged_by_the_centres_receive_time_never_the_boxs_clock(store: Store) -> None:
    with clock.use(clock.FrozenClock(1_800_000_000)) as c:
        rules = Rules(heartbeat_interval_s=60, offline_after_s=600, started_at=c.now() - 10_000)
        store.enroll("p1")
        store.enroll("p2")
        # the box believes it is 1970: irrelevant, the centre received it now
        store.ingest("p1", [report("p1", 1, box_time=5.0, clock_synced=False)])
        by_id = {p["id"]: p for p in stats.overview(store, rules, c.now())}
        assert by_id["p1"]["status"] == "online" and by_id["p2"]["status"] == "never"
        c.advance(121)
        assert stats.overview(store, rules, c.now())[0]["status"] == "late"
        c.advance(600)
        p1 = stats.overview(store, rules, c.now())[0]
        assert p1["status"] == "offline" and p1["alert"] and p1["offline_since"] == 1_800_000_000


def test_no_alerts_for_one_offline_period_after_the_centre_starts(store: Store) -> None:
    with clock.use(clock.FrozenClock(1_800_000_000)) as c:
        store.enroll("p1")
        store.ingest("p1", [report("p1", 1)])
        c.advance(5000)  # the centre was down all this time
        store.mark_started()
        from kiosk import config as config_mod

        cfg = config_mod.load(env={"KIOSK_CENTRE_OFFLINE_AFTER_S": "600"})
        rules = store.rules(cfg)
        p = stats.overview(store, rules, c.now())[0]
        assert p["status"] == "offline" and not p["alert"]
        c.advance(601)
        assert stats.overview(store, rules, c.now())[0]["alert"]


def test_staff_passwords_are_stored_hashed_and_checked(store: Store) -> None:
    store.set_user("zhang", "correct horse")
    assert store.check_user("zhang", "correct horse")
    assert not store.check_user("zhang", "wrong password")
    assert not store.check_user("li", "correct horse")
    stored = store.db.one("SELECT password_hash FROM users WHERE username = 'zhang'")[0]
    assert "correct horse" not in stored
    with pytest.raises(KioskError):
        store.set_user("wang", "short")


def test_api_tokens_work_until_revoked(store: Store) -> None:
    token = store.new_token("monitoring")
    assert store.check_token(token) and not store.check_token(token + "x")
    store.revoke_token(store.tokens()[0]["id"])
    assert not store.check_token(token)


def test_the_counts_for_metrics_agree_with_the_statuses_shown(store: Store) -> None:
    with clock.use(clock.FrozenClock(1_800_000_000)) as c:
        rules = Rules(heartbeat_interval_s=60, offline_after_s=600, started_at=c.now() - 10_000)
        for pid, ago in (("a", 5), ("b", 200), ("c", 700), ("d", None), ("e", 30)):
            store.enroll(pid)
            if ago is not None:
                with clock.use(clock.FrozenClock(c.now() - ago)):
                    store.ingest(pid, [report(pid, 1)])
        shown = stats.count_by_status(stats.overview(store, rules, c.now()))
        assert stats.status_counts(store, rules, c.now()) == (shown, 1)
        assert shown == {"online": 2, "late": 1, "offline": 1, "never": 1}


@pytest.mark.postgres
def test_a_postgresql_connection_lost_is_replaced_on_the_next_call(tmp_path) -> None:
    from tests.centre_helpers import PG_URL, drop_schema, pg_reachable

    if pg_reachable():
        missing(pg_reachable())
    import psycopg

    schema = f"t_lost_{abs(hash(str(tmp_path))) % 10**8}"
    s = Store(f"{PG_URL}?schema={schema}")
    try:
        s.enroll("p1")
        pid = s.db.one("SELECT pg_backend_pid()")[0]
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(psycopg.OperationalError):
            s.secret("p1")
        assert s.secret("p1") is not None
    finally:
        s.close()
        drop_schema(schema)


def test_a_literal_percent_sign_in_a_query_means_itself_on_both_backends(store: Store) -> None:
    store.enroll("storm-1")
    store.enroll("other")
    assert store.db.query("SELECT id FROM points WHERE id LIKE 'storm-%'") == [("storm-1",)]
    assert store.db.query("SELECT id FROM points WHERE id LIKE ?", ("oth%",)) == [("other",)]
