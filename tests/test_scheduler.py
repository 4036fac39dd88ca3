"""The scheduler: its registry, backoff, clean stops, and every job stopped by SIGTERM mid-way."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from kiosk import clock
from kiosk.config import SETTINGS
from kiosk.device.fake import FakeHardware
from kiosk.errors import NotFound
from kiosk.library import Library, spool, usb
from kiosk.scheduler import Context, Job, JobState, backoff_delay, jobs, registry, run_guarded, start
from kiosk.uplink import sync
from tests.packages import make_bag, trust_dir
from tests.test_sync import Centre

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def box(cfg, tmp_path):
    c = cfg.replace(storage__trust_dir=str(trust_dir(tmp_path)), scheduler__jitter_s=0)
    lib = Library(c)
    yield c, lib
    lib.close()


# --- the registry and backoff ----------------------------------------------------------


def test_every_job_is_registered_with_an_interval_setting_that_exists():
    names = {s.name for s in SETTINGS}
    table = registry()
    assert [j.id for j in table] == [
        "spool_scan", "housekeeping", "health_sample", "heartbeat", "telecom_sync", "local_upload", "software_update"]
    assert all(j.interval in names for j in table)


def test_backoff_doubles_from_the_interval_and_stops_at_the_cap():
    assert [backoff_delay(60, n, 3600) for n in range(1, 9)] == [60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert backoff_delay(60, 0, 3600) == 0


def test_a_failing_job_is_logged_and_retried_less_often_until_it_succeeds(cfg, caplog):
    calls = []
    broken = [True]

    def flaky(ctx: Context) -> None:
        calls.append(clock.now())
        if broken[0]:
            raise OSError("the disk is not there")

    job = Job("flaky", flaky, "storage.housekeeping_interval_s")
    ctx, state = Context(cfg.replace(storage__housekeeping_interval_s=10, scheduler__backoff_max_s=40)), JobState()
    with clock.use(clock.FrozenClock()) as frozen:
        ran = []
        for _ in range(16):  # every 10 s for 160 s, as the scheduler would call it
            run_guarded(job, ctx, state)
            ran.append(len(calls))
            frozen.advance(10)
        assert "job=flaky event=failed" in caplog.text and "OSError" in state.last_error
        # tried at 0, 10, 30, 70, 110, 150: doubling, then capped at 40 s
        assert [round(t - calls[0]) for t in calls] == [0, 10, 30, 70, 110, 150]
        broken[0] = False
        frozen.advance(40)
        assert run_guarded(job, ctx, state) is True
        assert state.failures == 0 and state.last_error is None
        assert run_guarded(job, ctx, state) is True  # back to every run


def test_the_scheduler_runs_jobs_in_the_background_never_two_at_once_and_stops(cfg):
    running, overlaps, calls = [0], [0], []
    lock = threading.Lock()

    def slow(ctx: Context) -> None:
        with lock:
            running[0] += 1
            overlaps[0] = max(overlaps[0], running[0])
            calls.append(time.monotonic())
        time.sleep(0.3)
        with lock:
            running[0] -= 1

    runner = start(cfg.replace(storage__spool_scan_s=0.05, scheduler__jitter_s=0), None, None,
                   jobs=(Job("slow", slow, "storage.spool_scan_s", first_delay_s=0),))
    deadline = time.monotonic() + 10
    while len(calls) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    runner.shutdown()
    after = len(calls)
    time.sleep(0.3)
    assert after >= 3 and len(calls) == after
    assert overlaps[0] == 1
    assert runner.status()["slow"]["runs"] == after


def test_waking_a_job_runs_it_now_instead_of_at_its_next_interval(cfg):
    ran = threading.Event()
    runner = start(cfg.replace(centre__heartbeat_interval_s=3600, scheduler__jitter_s=0), None, None,
                   jobs=(Job("heartbeat", lambda ctx: ran.set(), "centre.heartbeat_interval_s", first_delay_s=3600),))
    try:
        assert not ran.wait(0.5)
        runner.ctx.wake("heartbeat")
        assert ran.wait(10)
    finally:
        runner.shutdown()


# --- the jobs, called directly ------------------------------------------------------------


def test_the_spool_job_publishes_a_whole_bag(box, tmp_path):
    cfg, lib = box
    shutil.copytree(make_bag(tmp_path), cfg.path("storage.spool_dir") / "bag")
    [outcome] = jobs.spool_scan(Context(cfg, lib))
    assert outcome.outcome == "published"


def test_housekeeping_takes_expired_items_off_the_screens(box, tmp_path):
    cfg, lib = box
    june_1 = time.mktime((2026, 6, 1, 12, 0, 0, 0, 0, -1))
    with clock.use(clock.FrozenClock(june_1)) as frozen:
        assert lib.ingest(make_bag(tmp_path, record={"expires": "2026-06-10"})).outcome == "published"
        assert jobs.housekeeping(Context(cfg, lib))["expired"] == []
        frozen.advance(12 * 86400)
        assert jobs.housekeeping(Context(cfg, lib))["expired"] == ["pig-farming"]
    with pytest.raises(NotFound):
        lib.item("pig-farming")


def test_the_health_job_samples_the_hardware_and_the_heartbeat_job_fills_the_outbox(box):
    cfg, lib = box
    hw = FakeHardware()
    snapshot = jobs.health_sample(Context(cfg, lib, hw))
    assert snapshot is not None and hw.reads >= 1
    assert jobs.heartbeat(Context(cfg, lib, hw))["outbox"] >= 1  # no centre: kept for a USB export


def test_an_event_seen_by_the_health_job_wakes_the_heartbeat_and_a_known_one_does_not(box):
    cfg, lib = box
    hw = FakeHardware()
    woken: list[str] = []
    ctx = Context(cfg, lib, hw, wake=woken.append)
    jobs.heartbeat(ctx)  # the outbox now knows this boot and that all is well
    jobs.health_sample(ctx)
    assert woken == []
    hw.set(under_voltage_now=True)
    jobs.health_sample(ctx)
    assert woken == ["heartbeat"]
    written = jobs.heartbeat(ctx)["written"]
    assert len(written) == 2  # the under-voltage event, then the routine beat
    jobs.health_sample(ctx)
    assert woken == ["heartbeat"]  # reported once, not every minute


# --- SIGTERM in the middle of each job: a real `kiosk run` ----------------------------------


def _run_box(cfg_path: Path, **env: str) -> subprocess.Popen:
    full = {**os.environ, "KIOSK_SCHEDULER_JITTER_S": "0", "KIOSK_STORAGE_SPOOL_SCAN_S": "0.2", **env}
    full.pop("KIOSK_CONFIG", None)
    return subprocess.Popen([sys.executable, "-m", "kiosk.cli", "run", "--config", str(cfg_path)], cwd=ROOT, env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    text = out.decode("utf-8", "replace")
    assert proc.returncode == 0, text
    return text


def _integrity(cfg) -> None:
    with sqlite3.connect(cfg.data_dir / "catalogue.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _wait(cond, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.e2e
def test_sigterm_during_a_spool_scan_stops_cleanly_and_the_rest_is_taken_after_a_restart(cfg_path, cfg, tmp_path):
    trust = trust_dir(tmp_path)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    for i in range(60):  # enough that the box is still busy with them when SIGTERM comes
        shutil.move(str(make_bag(tmp_path, files={"v.mp4": os.urandom(400_000)}, record={"id": f"item-{i:02d}", "main": "v.mp4"})),
                    incoming / f"item-{i:02d}")
    spool_dir = cfg.path("storage.spool_dir")
    shutil.move(str(incoming), spool_dir)  # the whole lot lands at once
    proc = _run_box(cfg_path, KIOSK_STORAGE_TRUST_DIR=str(trust))
    try:
        _wait(lambda: any(p.name.startswith(".taking-") for p in spool_dir.iterdir()) or len(list(spool_dir.iterdir())) < 60)
    finally:
        _stop(proc)
    c = cfg.replace(storage__trust_dir=str(trust))
    _integrity(c)
    lib = Library(c)
    try:
        left = len(list(spool_dir.iterdir()))
        assert 0 < left  # stopped mid-way, not after the whole spool
        assert lib.summary()["items"] + left == 60  # each bag either published or still in the spool
        spool.scan(c, lib)
        assert lib.summary()["items"] == 60 and list(spool_dir.iterdir()) == []
    finally:
        lib.close()


@pytest.mark.e2e
def test_a_power_cut_during_a_spool_scan_loses_nothing_and_the_rest_is_taken_after_a_restart(cfg_path, cfg, tmp_path):
    trust = trust_dir(tmp_path)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    for i in range(40):
        shutil.move(str(make_bag(tmp_path, files={"v.mp4": os.urandom(400_000)}, record={"id": f"item-{i:02d}", "main": "v.mp4"})),
                    incoming / f"item-{i:02d}")
    spool_dir = cfg.path("storage.spool_dir")
    shutil.move(str(incoming), spool_dir)
    proc = _run_box(cfg_path, KIOSK_STORAGE_TRUST_DIR=str(trust))
    try:
        _wait(lambda: any(p.name.startswith(".taking-") for p in spool_dir.iterdir()), timeout=60)
    finally:
        proc.kill()  # SIGKILL: as good as pulling the plug, for the processes
        proc.communicate(timeout=30)
    c = cfg.replace(storage__trust_dir=str(trust))
    lib = Library(c)  # opening recovers: registers what was verified and renamed, drops staging
    try:
        _integrity(c)
        spool.scan(c, lib)  # a claimed bag (.taking-...) is finished first
        assert lib.summary()["items"] == 40 and list(spool_dir.iterdir()) == []
    finally:
        lib.close()


@pytest.mark.e2e
def test_sigterm_during_a_download_stops_cleanly_and_the_download_resumes(cfg_path, cfg, tmp_path):
    trust = trust_dir(tmp_path)
    centre = Centre(tmp_path / "keys" / "publisher.pem")
    centre.publish([make_bag(tmp_path, files={"v.mp4": os.urandom(3_000_000)}, record={"main": "v.mp4"}, tar=True)])
    centre.trickle = 0.01  # 64 KiB every 10 ms: a slow line
    try:
        proc = _run_box(cfg_path, KIOSK_STORAGE_TRUST_DIR=str(trust), KIOSK_CENTRE_URL=centre.url, KIOSK_SYNC_INTERVAL_S="1")
        partial = sync.partial_dir(cfg)
        try:
            _wait(lambda: partial.exists() and any(p.stat().st_size > 0 for p in partial.iterdir()))
        finally:
            _stop(proc)
        [part] = partial.iterdir()
        have = part.stat().st_size
        assert 0 < have < 3_000_000
        c = cfg.replace(storage__trust_dir=str(trust), centre__url=centre.url)
        _integrity(c)
        lib = Library(c)
        try:
            centre.trickle = 0
            assert [o.outcome for o in sync.run(c, lib).outcomes] == ["published"]
            assert centre.package_requests()[-1][1] == f"bytes={have}-"
        finally:
            lib.close()
    finally:
        centre.close()


@pytest.mark.e2e
def test_sigterm_during_a_usb_import_stops_cleanly_and_the_import_resumes(cfg_path, cfg, tmp_path):
    trust = trust_dir(tmp_path)
    disk = tmp_path / "disk"
    (disk / "kiosk").mkdir(parents=True)
    bags = 60
    for i in range(bags):
        shutil.move(str(make_bag(tmp_path, files={"v.mp4": os.urandom(200_000)}, record={"id": f"item-{i:02d}", "main": "v.mp4"})),
                    disk / "kiosk" / f"item-{i:02d}")
    env = {**os.environ, "KIOSK_STORAGE_TRUST_DIR": str(trust)}
    proc = subprocess.Popen([sys.executable, "-m", "kiosk.cli", "ingest", "--source", "usb", "--config", str(cfg_path), str(disk)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    store = cfg.data_dir / "store"
    _wait(lambda: store.is_dir() and len(list(store.iterdir())) >= 2)  # some bags are in, most are not
    # Hold the import still while SIGTERM is queued, so it cannot finish every bag first.
    proc.send_signal(signal.SIGSTOP)
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGCONT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out.decode("utf-8", "replace")
    c = cfg.replace(storage__trust_dir=str(trust))
    _integrity(c)
    assert usb.progress(c)["state"] == "interrupted"
    lib = Library(c)
    try:
        done = lib.summary()["items"]
        assert 0 < done < bags
        outcomes = usb.import_folder(c, lib, disk)
        assert sorted(o.outcome for o in outcomes) == ["published"] * (bags - done) + ["unchanged"] * done
    finally:
        lib.close()


@pytest.mark.e2e
def test_sigterm_with_every_job_running_often_exits_cleanly(cfg_path, cfg, tmp_path):
    trust_dir(tmp_path)
    centre = Centre(tmp_path / "keys" / "publisher.pem")
    centre.publish([make_bag(tmp_path, tar=True)])
    fast = {"KIOSK_STORAGE_HOUSEKEEPING_INTERVAL_S": "1", "KIOSK_HEALTH_SAMPLE_INTERVAL_S": "1",
            "KIOSK_CENTRE_HEARTBEAT_INTERVAL_S": "1", "KIOSK_SYNC_INTERVAL_S": "1"}
    try:
        proc = _run_box(cfg_path, KIOSK_STORAGE_TRUST_DIR=str(tmp_path / "trust"), KIOSK_CENTRE_URL=centre.url, **fast)
        _wait(lambda: any(p.endswith(".tar") for p, _ in centre.log))  # the sync job has run
        health = requests.get(f"http://127.0.0.1:{cfg.web.port}/api/v1/health", timeout=5)
        assert health.status_code == 200
        _stop(proc)
    finally:
        centre.close()
    _integrity(cfg)


@pytest.mark.e2e
def test_a_running_box_publishes_a_bag_dropped_in_its_spool_and_quarantines_an_abandoned_one(cfg_path, cfg, tmp_path):
    trust = trust_dir(tmp_path)
    spool_dir = cfg.path("storage.spool_dir")
    spool_dir.mkdir(parents=True)
    partial = make_bag(tmp_path, files={"a.mp4": b"a" * 1000, "b.mp4": b"b" * 1000}, record={"id": "half", "main": "a.mp4"})
    (partial / "data" / "b.mp4").unlink()
    shutil.move(str(partial), spool_dir / "half")
    env = {"KIOSK_STORAGE_TRUST_DIR": str(trust), "KIOSK_STORAGE_SPOOL_SETTLE_S": "0.5", "KIOSK_STORAGE_SPOOL_STALE_S": "3"}
    proc = _run_box(cfg_path, **env)
    try:
        shutil.move(str(make_bag(tmp_path)), spool_dir / "whole")
        items = f"http://127.0.0.1:{cfg.web.port}/api/v1/items"

        def listed() -> list[str]:
            try:
                return [i["id"] for i in requests.get(items, timeout=2).json()]
            except requests.ConnectionError:
                return []

        _wait(lambda: listed() == ["pig-farming"])
        _wait(lambda: not (spool_dir / "half").exists())
    finally:
        _stop(proc)
    status = subprocess.run([sys.executable, "-m", "kiosk.cli", "status", "--json", "--config", str(cfg_path)], cwd=ROOT,
                            env={**os.environ, **env}, capture_output=True, text=True)
    assert json.loads(status.stdout)["content"]["quarantined"] == 1
    assert spool.status(cfg)["abandoned"][0]["name"] == "half"
    assert list(spool_dir.iterdir()) == []
