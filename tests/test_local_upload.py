"""Local content goes up: a resumable, signed upload to a real centre on the loopback, review, and the word back."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

from kiosk import clock, config as config_mod, wire
from kiosk.centre.app import create_centre_app
from kiosk.centre.uploads import Uploads
from kiosk.device.fake import FakeHardware
from kiosk.library import Library, local
from kiosk.library.pointkey import ensure_key, local_prefix
from kiosk.serving import WebServer
from kiosk.uplink import export_outbox, heartbeat_job, upload
from kiosk.uplink.client import CentreClient
from tests.packages import make_bag, make_key
from tests.test_local import PDF, PICTURE, VIDEO

POINT = "test-point"


@pytest.fixture
def centre(tmp_path: Path, cfg_path: Path) -> Iterator[dict[str, Any]]:
    ccfg = config_mod.load(cfg_path, env={"KIOSK_STORAGE_DATA_DIR": str(tmp_path / "centre"), "KIOSK_UPLINK_UPLOAD_MAX_MB": "8"})
    app = create_centre_app(ccfg)
    c = app.extensions["centre"]
    secret = c["store"].enroll(POINT, name="测试点", township="城关镇", county="平安县")
    server = WebServer(app, "127.0.0.1", 0, 4, ident="centre")
    yield {"cfg": ccfg, "app": app, "url": server.url.rstrip("/"), "secret": secret, "store": c["store"],
           "uploads": c["uploads"], "publisher": c["publisher"]}
    server.stop()
    c["store"].close()


@pytest.fixture
def box(cfg_path: Path, centre: dict[str, Any]) -> config_mod.Config:
    return config_mod.load(cfg_path, env={"KIOSK_CENTRE_URL": centre["url"], "KIOSK_CENTRE_SECRET": centre["secret"],
                                          "KIOSK_CENTRE_RECONNECT_DELAY_S": "0"})


@pytest.fixture
def lib(box: config_mod.Config) -> Iterator[Library]:
    library = Library(box)
    yield library
    library.close()


def beat(box: config_mod.Config, lib: Library) -> dict[str, Any]:
    return heartbeat_job(box, lib, FakeHardware(), sleep=lambda s: None)


def test_a_local_video_goes_up_is_approved_and_the_point_hears_of_it(box, lib, centre):
    made = local.add(box, lib, [VIDEO, PICTURE], "村里的豫剧团")
    beat(box, lib)  # carries the point's key
    result = upload.run(box)
    assert result["done"] == [made["id"]] and result["sent_bytes"] >= VIDEO.stat().st_size
    listed = requests.get(f"{centre['url']}/api/v1/uploads", headers={"Authorization": "Bearer nope"}, timeout=10)
    assert listed.status_code == 401
    (row,) = centre["uploads"].list()
    assert (row["id"], row["point_id"], row["state"], row["title"], row["township"]) == (made["id"], POINT, "pending", "村里的豫剧团", "城关镇")
    assert not local.LocalBook(box).package_path(made["id"], 1).exists()  # the centre has it all
    assert local.status(box)["counts"]["sent"] == 1
    entry = centre["uploads"].approve(centre["publisher"], made["id"], ["城关镇"], user="staff")
    assert entry["id"] == made["id"]
    index = json.loads(requests.get(f"{centre['url']}/api/v1/packages/index.json", timeout=10).content)
    assert made["id"] in [p["id"] for p in index["packages"]]
    beat(box, lib)
    assert local.status(box)["items"][0]["state"] == "approved"


def test_a_rejection_brings_its_reason_back_with_the_next_acknowledgement(box, lib, centre):
    made = local.add(box, lib, [PDF], "旧通知")
    beat(box, lib)
    upload.run(box)
    centre["uploads"].reject(made["id"], "内容已过时，请换新的", user="staff")
    beat(box, lib)
    (item,) = local.status(box)["items"]
    assert (item["state"], item["reason"]) == ("rejected", "内容已过时，请换新的")


def test_an_upload_cut_off_midway_resumes_from_where_the_centre_stands(box, lib, centre, monkeypatch):
    monkeypatch.setattr(upload, "PIECE_BYTES", 64 * 1024)
    made = local.add(box, lib, [VIDEO], "修路")
    beat(box, lib)
    real = CentreClient.signed
    calls = {"n": 0}

    def flaky(self, method, path, body, headers=None):
        calls["n"] += 1
        if method == "PATCH" and calls["n"] == 4:
            from kiosk.uplink.client import UplinkError
            raise UplinkError("ConnectionError: the line dropped")
        return real(self, method, path, body, headers)

    monkeypatch.setattr(CentreClient, "signed", flaky)
    first = upload.run(box)
    assert first["done"] == [] and "line" in first["error"]
    have = centre["uploads"].list()[0]["received"]
    assert 0 < have < local.LocalBook(box).package_path(made["id"], 1).stat().st_size
    assert upload.status(box)["last_error"]
    second = upload.run(box)
    assert second["done"] == [made["id"]]
    size = centre["uploads"].list()[0]["size"]
    assert first["sent_bytes"] + second["sent_bytes"] == size  # nothing sent twice
    assert centre["uploads"].list()[0]["state"] == "pending"


def test_the_daily_upload_budget_stops_the_upload_and_the_next_day_goes_on(box, lib, centre, monkeypatch):
    small = box.replace(uplink__upload_daily_mb=0)
    local.add(box, lib, [PDF], "手册")
    beat(box, lib)
    assert upload.run(small)["skipped"] == "budget"
    assert centre["uploads"].list() == []


def test_outside_the_sync_window_nothing_goes_up(box, lib, centre):
    hour = time.localtime(clock.now()).tm_hour
    shut = box.replace(sync__window=f"{(hour + 1) % 24}-{(hour + 2) % 24}")
    local.add(box, lib, [PDF], "手册")
    assert upload.run(shut)["skipped"] == "window"


# --- refusals at the centre: each refused with a reason, nothing stored ------------------------


def _signed(centre, method: str, path: str, body: bytes, point: str = POINT, secret: str | None = None, ts: int | None = None):
    ts = int(clock.now()) if ts is None else ts
    auth = wire.authorization(point, secret or centre["secret"], method, path, ts, body)
    return requests.request(method, centre["url"] + path, data=body, headers={"Authorization": auth}, timeout=10)


def _begin(centre, item_id: str, size: int, sha: str = "0" * 64, **kw):
    body = json.dumps({"id": item_id, "version": 1, "size": size, "sha256": sha}).encode()
    return _signed(centre, "POST", "/api/v1/uploads", body, **kw)


def _nothing(centre) -> None:
    assert centre["uploads"].list() == []
    folder = Path(centre["cfg"].data_dir) / "uploads"
    assert [p for p in folder.rglob("*") if p.is_file()] == [] or not folder.exists()


def test_an_upload_over_the_cap_is_refused(centre):
    r = _begin(centre, f"{local_prefix(POINT)}1", 9 * 1024 * 1024)
    assert (r.status_code, r.json()["error"]) == (413, "too_large")
    _nothing(centre)


def test_an_upload_from_an_unknown_point_is_refused_as_a_forged_one_is(centre):
    r = _begin(centre, "local.stranger.1", 100, point="stranger", secret="x" * 64)
    forged = _begin(centre, f"{local_prefix(POINT)}1", 100, secret="f" * 64)
    # the same answer as a wrong signature: a stranger learns nothing of which points are enrolled
    assert (r.status_code, r.json()) == (forged.status_code, forged.json()) == (401, r.json())
    assert r.json()["error"] == "signature"
    _nothing(centre)


def test_a_forged_upload_is_refused(centre):
    r = _begin(centre, f"{local_prefix(POINT)}1", 100, secret="f" * 64)
    assert (r.status_code, r.json()["error"]) == (401, "signature")
    _nothing(centre)


def test_an_upload_before_the_point_sent_its_key_waits_and_sends_no_bytes(centre, box, lib):
    made = local.add(box, lib, [PDF], "手册")
    result = upload.run(box)  # no heartbeat yet: the centre does not know the point's key
    assert result["sent_bytes"] == 0 and "no_point_key" in result["error"]
    assert local.status(box)["counts"]["pending"] == 1
    beat(box, lib)
    assert upload.run(box)["done"] == [made["id"]]


def test_an_upload_of_another_points_package_is_refused(centre):
    r = _begin(centre, "local.other.1", 100)
    assert (r.status_code, r.json()["error"]) == (403, "not_yours")
    _nothing(centre)


def test_a_replayed_or_stale_piece_is_refused(centre, box, lib):
    made = local.add(box, lib, [PDF], "手册")
    beat(box, lib)
    path = local.LocalBook(box).package_path(made["id"], 1)
    data = path.read_bytes()
    import hashlib
    assert _begin(centre, made["id"], len(data), hashlib.sha256(data).hexdigest()).status_code == 200
    p = f"/api/v1/uploads/{made['id']}?offset=0"
    ts = int(clock.now())
    first = _signed(centre, "PATCH", p, data[:1000], ts=ts)
    assert first.json()["offset"] == 1000
    again = _signed(centre, "PATCH", p, data[:1000], ts=ts)
    assert (again.status_code, again.json()["error"]) == (409, "replayed")
    old = _signed(centre, "PATCH", f"/api/v1/uploads/{made['id']}?offset=1000", data[1000:2000], ts=ts - 3600)
    assert (old.status_code, old.json()["error"]) == (401, "clock")
    # the offset is signed: the same piece cannot be put elsewhere
    auth = wire.authorization(POINT, centre["secret"], "PATCH", p, ts, data[:1000])
    moved = requests.patch(f"{centre['url']}/api/v1/uploads/{made['id']}?offset=1000", data=data[:1000], headers={"Authorization": auth}, timeout=10)
    assert (moved.status_code, moved.json()["error"]) == (401, "signature")
    assert centre["uploads"].list()[0]["received"] == 1000


def test_a_package_not_signed_by_the_points_own_key_is_refused_and_not_kept(centre, box, lib, tmp_path):
    ensure_key(box)
    beat(box, lib)
    stranger = make_key(tmp_path / "stranger.pem")
    bag = make_bag(tmp_path, {"a.pdf": PDF.read_bytes()}, {"id": f"{local_prefix(POINT)}7", "version": 1, "title": "x", "main": "a.pdf"},
                   key=stranger, tar=True)
    import hashlib
    data = bag.read_bytes()
    assert _begin(centre, f"{local_prefix(POINT)}7", len(data), hashlib.sha256(data).hexdigest()).status_code == 200
    r = _signed(centre, "PATCH", f"/api/v1/uploads/{local_prefix(POINT)}7?offset=0", data)
    assert (r.status_code, r.json()["error"]) == (422, "untrusted")
    _nothing(centre)


def test_a_duplicate_with_other_content_is_refused(centre, box, lib):
    made = local.add(box, lib, [PDF], "手册")
    beat(box, lib)
    upload.run(box)
    r = _begin(centre, made["id"], 1234, "1" * 64)
    assert (r.status_code, r.json()["error"]) == (409, "duplicate")
    assert len(centre["uploads"].list()) == 1


# --- the USB disk ------------------------------------------------------------------------------


def test_local_content_travels_on_the_usb_disk_and_the_decision_comes_back(cfg_path, tmp_path, centre):
    offline = config_mod.load(cfg_path, env={"KIOSK_CENTRE_SECRET": centre["secret"]})
    lib = Library(offline)
    try:
        made = local.add(offline, lib, [PDF], "村规民约")
        disk = tmp_path / "usb"
        disk.mkdir()
        summary = export_outbox(offline, disk / "kiosk", library=lib, hardware=FakeHardware())
        assert summary["local_written"] == 1
        from kiosk.centre.importer import import_dir
        result = import_dir(centre["store"], disk / "kiosk", uploads=centre["uploads"])
        assert result["uploads"] == 1 and not result["refused"]
        assert centre["uploads"].get(made["id"])["state"] == "pending"
        centre["uploads"].reject(made["id"], "请补充说明", user="staff")
        import_dir(centre["store"], disk / "kiosk", uploads=centre["uploads"])
        export_outbox(offline, disk / "kiosk", library=lib, hardware=FakeHardware())
        (item,) = local.status(offline)["items"]
        assert (item["state"], item["reason"]) == ("rejected", "请补充说明")
        assert not list((disk / "kiosk" / "uploads").glob("*.tar"))
    finally:
        lib.close()


def test_the_centre_lists_approves_and_rejects_uploads_from_the_command_line_and_the_api(box, lib, centre, cfg_path, tmp_path):
    import subprocess
    import sys

    first = local.add(box, lib, [PDF], "村规民约")
    second = local.add(box, lib, [VIDEO], "修路")
    beat(box, lib)
    upload.run(box)
    env = {**os.environ, "KIOSK_STORAGE_DATA_DIR": str(tmp_path / "centre")}
    run = [sys.executable, "-m", "kiosk.cli", "--config", str(cfg_path), "centre", "uploads"]
    listed = json.loads(subprocess.run([*run, "--json"], env=env, capture_output=True, text=True, timeout=60, check=True).stdout)
    assert {(u["id"], u["point_id"], u["state"], u["title"]) for u in listed} == {
        (first["id"], POINT, "pending", "村规民约"), (second["id"], POINT, "pending", "修路")}
    ok = subprocess.run([*run, "approve", first["id"], "--townships", "城关镇,东山乡"], env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    no = subprocess.run([*run, "reject", second["id"], "--reason", "画面太暗"], env=env, capture_output=True, text=True, timeout=60)
    assert no.returncode == 0, no.stderr
    again = subprocess.run([*run, "reject", second["id"], "--reason", "x"], env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode != 0 and "rejected" in again.stderr and "Traceback" not in again.stderr
    token = centre["store"].new_token("script")
    answer = requests.get(f"{centre['url']}/api/v1/uploads", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    states = {u["id"]: (u["state"], u["reason"], u["townships"]) for u in answer.json()}
    assert states == {first["id"]: ("approved", "", ["城关镇", "东山乡"]), second["id"]: ("rejected", "画面太暗", [])}
    tar = centre["publisher"].file(f"{first['id']}-1.tar")
    from kiosk.library.bag import open_bag
    with open_bag(tar) as bag:
        record = json.loads(bag.read_tag("kiosk.json"))
    assert record["targets"] == {"townships": ["城关镇", "东山乡"]}


def test_staff_review_only_the_uploads_of_their_own_scope(box, lib, centre):
    made = local.add(box, lib, [PDF], "村规民约")
    beat(box, lib)
    upload.run(box)
    county = "平安县"
    centre["store"].set_user("near", "good password", scope=f"township:{county}/城关镇")
    centre["store"].set_user("far", "good password", scope=f"township:{county}/别的乡")

    def session(user: str):
        client = centre["app"].test_client()
        page = client.get("/login").text
        import re
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        assert client.post("/login", data={"csrf_token": token, "username": user, "password": "good password"}).status_code == 302
        return client, re.search(r'name="csrf_token" value="([^"]+)"', client.get("/uploads").text).group(1)

    near, token = session("near")
    assert made["id"] in near.get("/uploads").text
    assert near.get(f"/uploads/{made['id']}").status_code == 200
    assert near.get(f"/uploads/{made['id']}/files/01-pdf.pdf").data[:5] == b"%PDF-"
    far, far_token = session("far")
    assert made["id"] not in far.get("/uploads").text
    assert far.get(f"/uploads/{made['id']}").status_code == 403
    assert far.post(f"/uploads/{made['id']}/reject", data={"csrf_token": far_token, "reason": "x"}).status_code == 403
    assert far.get("/api/v1/uploads").get_json() == []
    assert centre["uploads"].get(made["id"])["state"] == "pending"
    r = near.post(f"/uploads/{made['id']}/reject", data={"csrf_token": token, "reason": "  "}, follow_redirects=True)
    assert "没有退回" in r.text and centre["uploads"].get(made["id"])["state"] == "pending"


def test_plays_of_local_content_are_counted_and_the_work_report_gives_their_share(box, lib, centre):
    from kiosk.centre import stats
    from kiosk.library.usage import Usage

    made = local.add(box, lib, [VIDEO], "村里的豫剧团")
    u = Usage(box)
    try:
        since = clock.now() - 1
        u.record(made["id"], "local", "open")
        u.record(made["id"], "local", "play", 30.0)
        u.record("pig-farming", "agriculture", "open")
        u.record("pig-farming", "agriculture", "open")
        totals = u.since(since)
    finally:
        u.close()
    assert totals["local"] == {"opens": 1, "plays": 1, "seconds": 30.0} and totals["opens"] == 3
    beat(box, lib)
    month = stats.month_of(clock.now())
    share = stats.local_share(centre["store"], month, month)
    assert (share["local_opens"], share["opens"]) == (1, 3)
    by_topic = {r["category"]: r["opens"] for r in stats.usage(centre["store"], "category", month, month)}
    assert by_topic == {"local": 1, "agriculture": 2}  # the local row is a part, not a topic of its own
    centre["store"].set_user("boss", "good password")
    client = centre["app"].test_client()
    import re
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
    client.post("/login", data={"csrf_token": token, "username": "boss", "password": "good password"})
    assert "占全部 3 次的\n33.3%" in client.get("/report").text


def test_a_usb_disk_package_not_signed_by_its_points_key_or_from_an_unknown_point_is_refused(centre, box, lib, tmp_path):
    from kiosk.centre.importer import import_dir

    ensure_key(box)
    beat(box, lib)  # the centre knows the point's real key
    stranger = make_key(tmp_path / "stranger.pem")
    disk = tmp_path / "disk"
    (disk / "uploads").mkdir(parents=True)
    make_bag(tmp_path, {"a.pdf": PDF.read_bytes()}, {"id": f"{local_prefix(POINT)}5", "version": 1, "title": "x", "main": "a.pdf"},
             key=stranger, tar=True, name="forged").rename(disk / "uploads" / "forged.tar")
    make_bag(tmp_path, {"a.pdf": PDF.read_bytes()}, {"id": "local.nobody.1", "version": 1, "title": "x", "main": "a.pdf"},
             key=stranger, tar=True, name="nobody").rename(disk / "uploads" / "nobody.tar")
    result = import_dir(centre["store"], disk, uploads=centre["uploads"])
    assert sorted((r["file"], r["error"]) for r in result["refused"]) == [
        ("uploads/forged.tar", "untrusted"), ("uploads/nobody.tar", "unknown_point")]
    _nothing(centre)
