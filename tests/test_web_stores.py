"""The screens' two stores: villagers' wishes (never lost) and anonymous usage (bounded)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from kiosk import clock
from kiosk.library import usage as usage_mod
from kiosk.library.usage import Usage
from kiosk.library.wishes import WishRefused, Wishes


def test_a_wish_survives_closing_and_reopening_the_store(tmp_path: Path) -> None:
    w = Wishes(tmp_path / "w.sqlite")
    w.add("agriculture", "养猪")
    w.close()
    again = Wishes(tmp_path / "w.sqlite")
    assert [x["words"] for x in again.pending()] == ["养猪"]


def test_the_wish_store_syncs_fully_on_every_write(tmp_path: Path) -> None:
    w = Wishes(tmp_path / "w.sqlite")
    assert w._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_sent_wishes_leave_the_pending_list_and_others_stay(tmp_path: Path) -> None:
    w = Wishes(tmp_path / "w.sqlite")
    a, b, c = (w.add("law", f"问题{i}") for i in range(3))
    assert w.mark_sent([a, c]) == 2
    assert [x["id"] for x in w.pending()] == [b]
    assert w.mark_sent([a]) == 0  # already sent: nothing changes
    assert w.counts() == {"pending": 1, "sent": 2}


def test_an_empty_wish_is_refused_and_nothing_is_stored(tmp_path: Path) -> None:
    w = Wishes(tmp_path / "w.sqlite")
    with pytest.raises(WishRefused):
        w.add("", "   ")
    assert w.pending() == []


def test_overlong_words_are_cut_not_refused(tmp_path: Path) -> None:
    w = Wishes(tmp_path / "w.sqlite")
    w.add("culture", "戏" * 1000)
    assert len(w.pending()[0]["words"]) == 200


def test_usage_totals_since_a_time_by_category(tmp_path: Path) -> None:
    u = Usage(tmp_path / "u.sqlite")
    u.record("pig", "agriculture", "open", when=100)
    u.record("pig", "agriculture", "play", 30, when=200)
    u.record("pig", "agriculture", "watch", 15, when=250)  # more of the same play
    u.record("bp", "health", "open", when=300)
    s = u.since(150)
    assert s["opens"] == 1 and s["plays"] == 1 and s["seconds"] == 45
    assert s["by_category"] == {"agriculture": {"opens": 0, "plays": 1, "seconds": 45.0},
                                "health": {"opens": 1, "plays": 0, "seconds": 0.0}}
    assert {t["id"] for t in s["top_items"]} == {"pig", "bp"}


def test_usage_keeps_nothing_about_who(tmp_path: Path) -> None:
    u = Usage(tmp_path / "u.sqlite")
    u.record("pig", "agriculture", "open")
    cols = [r[1] for r in sqlite3.connect(tmp_path / "u.sqlite").execute("PRAGMA table_info(events)")]
    assert cols == ["id", "ts", "item_id", "category", "kind", "seconds"]


def test_rollup_folds_past_days_and_keeps_today_raw(tmp_path: Path) -> None:
    day = 86400.0
    now = 1_800_000_000.0
    with clock.use(clock.FrozenClock(now)):
        u = Usage(tmp_path / "u.sqlite")
        u.record("pig", "agriculture", "open", when=now - 2 * day)
        u.record("pig", "agriculture", "play", 60, when=now - 2 * day + 10)
        u.record("corn", "agriculture", "open", when=now - day)
        u.record("bp", "health", "open", when=now)
        rows = u.rollup()
        assert sum(r["opens"] for r in rows) == 2 and sum(r["plays"] for r in rows) == 1
        assert all(r["day"] < usage_mod._day(now) for r in rows)
        assert u.rollup() == rows  # running it again changes nothing


def test_usage_stays_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(usage_mod, "MAX_EVENTS", 50)
    u = Usage(tmp_path / "u.sqlite")
    for i in range(1200):
        u.record(f"i{i}", "other", "open")
    (n,) = sqlite3.connect(tmp_path / "u.sqlite").execute("SELECT count(*) FROM events").fetchone()
    assert n == 250  # trimmed to 50 at the 1000th insert, then 200 more


def test_a_play_longer_than_a_day_is_capped(tmp_path: Path) -> None:
    u = Usage(tmp_path / "u.sqlite")
    u.record("pig", "agriculture", "play", 10 * 86400)
    assert u.since(0)["seconds"] == usage_mod.MAX_PLAY_S
