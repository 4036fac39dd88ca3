"""Health judgement (every state from FakeHardware readings) and the bounded, batched history."""

from __future__ import annotations

import fcntl
import sqlite3

import pytest

from kiosk import clock
from kiosk.device import health, history
from kiosk.device.fake import FakeHardware

NOW = 1_800_000_000.0

# Every state of STATES, and the readings (and uplink status) that put a box into it.
STATE_SETUPS: dict[str, tuple[dict, dict | None, dict]] = {
    # state: (FakeHardware readings, uplink_status, config changes)
    "temperature.ok": ({}, None, {}),
    "temperature.warning": ({"temp_c": 72.0}, None, {}),
    "temperature.throttled": ({"temp_c": 66.0, "throttled_now": True, "throttled": 0x40004}, None, {}),
    "temperature.fault": ({"temp_c": 83.5}, None, {}),
    "temperature.unknown": ({"temp_c": None}, None, {}),
    "power.ok": ({}, None, {}),
    "power.under_voltage_since_boot": ({"under_voltage_since_boot": True, "throttled": 0x50000}, None, {}),
    "power.under_voltage_now": ({"under_voltage_now": True, "under_voltage_since_boot": True, "throttled": 0x50005}, None, {}),
    "power.unknown": ({"under_voltage_now": None, "under_voltage_since_boot": None, "throttled": None}, None, {}),
    "disk.ok": ({}, None, {}),
    "disk.warning": ({"disk_percent": 88.0}, None, {}),
    "disk.fault": ({"disk_percent": 97.0}, None, {}),
    "disk.unknown": ({"disk_percent": None}, None, {}),
    "memory.ok": ({}, None, {}),
    "memory.warning": ({"memory_percent": 94.0}, None, {}),
    "memory.unknown": ({"memory_percent": None}, None, {}),
    "sdcard.ok": ({}, None, {}),
    "sdcard.errors": ({"ext4_errors": 2}, None, {}),
    "sdcard.unknown": ({"ext4_errors": None}, None, {}),
    "readonly.ok": ({}, None, {}),
    "readonly.fault": ({"root_readonly": True}, None, {}),
    "readonly.unknown": ({"root_readonly": None}, None, {}),
    "display.ok": ({}, None, {}),
    "display.restarting": ({"display_restarts": 5}, None, {}),
    "display.failed": ({"display_restarts": 9, "display_failed": True}, None, {}),
    "display.unknown": ({"display_restarts": None, "display_failed": None}, None, {}),
    "uplink.off": ({}, None, {}),
    "uplink.ok": ({}, {"last_sent": NOW - 120, "outbox": 0}, {"centre__url": "http://centre.example"}),
    "uplink.starting": ({"uptime_s": 60.0}, {"last_sent": None, "outbox": 1}, {"centre__url": "http://centre.example"}),
    "uplink.late": ({}, {"last_sent": NOW - 3 * 86400, "outbox": 864}, {"centre__url": "http://centre.example"}),
    "uplink.unknown": ({}, None, {"centre__url": "http://centre.example"}),
}


def test_every_state_has_a_setup_in_these_tests():
    assert set(STATE_SETUPS) == set(health.STATES)


def test_every_warning_and_fault_says_what_to_do_in_both_languages():
    for s in health.STATES.values():
        if s.level in ("warning", "fault"):
            assert "：" in s.zh and ":" in s.en, s.id  # "what is wrong: what to do"


@pytest.mark.parametrize("state_id", sorted(STATE_SETUPS))
def test_fake_hardware_set_to_a_state_is_judged_so(cfg, state_id):
    readings, uplink, changes = STATE_SETUPS[state_id]
    with clock.use(clock.FrozenClock(NOW)):
        snap = health.snapshot(FakeHardware(**readings), cfg.replace(**changes), uplink)
    signal = state_id.split(".")[0]
    assert snap["signals"][signal]["state"] == state_id
    level = health.STATES[state_id].level
    expected = {"fault": "fault", "warning": "warning"}.get(level, "ok")
    assert snap["status"] == expected
    if level in ("warning", "fault"):
        assert snap["message"] == health.STATES[state_id].zh


def test_the_headline_is_the_worst_problem_and_every_problem_is_listed(cfg):
    snap = health.snapshot(FakeHardware(temp_c=72.0, under_voltage_now=True), cfg)
    assert snap["status"] == "fault"
    assert snap["message"] == "电源电压不足：请换用 5V 3A 电源"
    assert [p["state"] for p in snap["problems"]] == ["power.under_voltage_now", "temperature.warning"]


def test_a_healthy_box_says_all_is_well(cfg):
    snap = health.snapshot(FakeHardware(), cfg)
    assert (snap["status"], snap["message"], snap["problems"]) == ("ok", health.ALL_WELL.zh, [])


def test_thresholds_come_from_the_configuration(cfg):
    hw = FakeHardware(temp_c=66.0)
    assert health.snapshot(hw, cfg)["signals"]["temperature"]["level"] == "ok"
    assert health.snapshot(hw, cfg.replace(health__temp_warning_c=65))["signals"]["temperature"]["level"] == "warning"


def test_the_led_shows_fault_over_import_over_all_well(cfg):
    ok = health.snapshot(FakeHardware(), cfg)
    bad = health.snapshot(FakeHardware(root_readonly=True), cfg)
    assert health.led_state(ok) == "ok"
    assert health.led_state(ok, importing=True) == "importing"
    assert health.led_state(bad, importing=True) == "fault"


# --- history ------------------------------------------------------------------------------


@pytest.fixture
def frozen():
    with clock.use(clock.FrozenClock(NOW)) as c:
        yield c


@pytest.fixture
def store(cfg):
    s = history.HistoryStore(cfg.data_dir / "health.sqlite")
    yield s
    s.close()


def test_samples_are_written_in_batches_not_one_by_one(cfg, frozen, store):
    hw = FakeHardware()
    for _ in range(history.FLUSH_EVERY - 1):
        history.sample(cfg, hw, store)
        frozen.advance(60)
    assert store.writes == 0
    assert store.counts() == {"minute": 0, "hour": 0, "buffered": history.FLUSH_EVERY - 1}
    history.sample(cfg, hw, store)
    assert store.writes == 1
    assert store.counts()["minute"] == history.FLUSH_EVERY


def test_the_page_sees_samples_not_yet_written(cfg, frozen, store):
    history.sample(cfg, FakeHardware(temp_c=61.0), store)
    frozen.advance(60)
    assert store.series("temp_c", 86400, 96)[-1] == 61.0


def test_sampling_sets_the_status_led(cfg, frozen, store):
    hw = FakeHardware(disk_percent=99.0)
    history.sample(cfg, hw, store)
    assert hw.status == "fault"
    hw.reset()
    (cfg.data_dir / history.IMPORT_PROGRESS).write_text('{"state": "importing"}')
    history.sample(cfg, hw, store)
    assert hw.status == "ok"  # a record left by an importer that died: no lock held
    with open(cfg.data_dir / history.IMPORT_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as kiosk/library/usb.py holds it while importing
        history.sample(cfg, hw, store)
        assert hw.status == "importing"
    (cfg.data_dir / history.IMPORT_PROGRESS).write_text('{"state": "done"}')
    history.sample(cfg, hw, store)
    assert hw.status == "ok"


def test_history_is_bounded_minutes_for_a_week_then_hours_for_90_days(cfg, frozen):
    s = history.HistoryStore(cfg.data_dir / "h.sqlite", flush_every=500)
    hw = FakeHardware()
    for day in range(100):  # 100 days, sampled every 10 minutes (fewer rows, same folding)
        for m in range(0, 1440, 10):
            hw.set(temp_c=40.0 + (m // 60))
            s.add(history.row_of(hw.read()))
            frozen.advance(600)
    s.flush()
    counts = s.counts()
    assert counts["minute"] <= 7 * 24 * 6 + 6 + 1
    assert counts["hour"] <= 90 * 24 + 1
    db = sqlite3.connect(cfg.data_dir / "h.sqlite")
    oldest_minute = db.execute("SELECT MIN(ts) FROM minute").fetchone()[0]
    oldest_hour = db.execute("SELECT MIN(ts) FROM hour").fetchone()[0]
    assert oldest_minute >= clock.now() - 7 * 86400 - 3600
    assert oldest_hour >= clock.now() - 90 * 86400 - 3600
    # an hour folded keeps the worst temperature of that hour
    assert db.execute("SELECT MAX(temp_c) FROM hour").fetchone()[0] == 63.0
    s.close()


def test_a_series_has_gaps_where_nothing_was_sampled(cfg, frozen, store):
    store.add({"temp_c": 50.0})
    frozen.advance(3 * 3600)
    store.add({"temp_c": 70.0})
    store.flush()
    line = store.series("temp_c", 4 * 3600, 4, until=clock.now() + 1)
    assert line == [50.0, None, None, 70.0]
    with pytest.raises(ValueError):
        store.series("password", 3600, 4)


def test_flush_on_close_loses_nothing_buffered(cfg, frozen):
    s = history.HistoryStore(cfg.data_dir / "c.sqlite")
    s.add({"temp_c": 55.0})
    s.close()
    again = history.HistoryStore(cfg.data_dir / "c.sqlite")
    assert again.counts()["minute"] == 1
    again.close()
