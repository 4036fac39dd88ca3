"""The device page's local content section: phone uploads that resume, a USB folder, plain refusals."""

from __future__ import annotations

from kiosk.library import local
from tests.test_admin import admin, app, box, client, csrf_of, hw  # noqa: F401 (fixtures)
from tests.test_local import PDF, VIDEO


def begin(admin, csrf, name, size):
    r = admin.post("/admin/local/files", data={"csrf": csrf, "name": name, "size": str(size)}, headers={"Accept": "application/json"})
    return r


def put(admin, csrf, token, offset, data):
    return admin.put(f"/admin/local/files/{token}?offset={offset}", data=data, headers={"X-CSRF-Token": csrf})


def test_a_phone_upload_resumes_after_a_dropped_piece_and_becomes_a_local_item(admin, box):
    cfg, lib, _ = box
    page = admin.get("/admin/")
    assert "添加本地内容" in page.text and 'id="local-form"' in page.text
    csrf = csrf_of(page.text)
    data = VIDEO.read_bytes()
    token = begin(admin, csrf, "村晚.mp4", len(data)).get_json()["token"]
    assert put(admin, csrf, token, 0, data[:100_000]).get_json()["received"] == 100_000
    # the Wi-Fi dropped: the page asks where the box stands, and a piece at a wrong offset is refused
    assert admin.get(f"/admin/local/files/{token}").get_json()["received"] == 100_000
    wrong = put(admin, csrf, token, 50_000, data[50_000:150_000])
    assert wrong.status_code == 409 and wrong.get_json()["received"] == 100_000
    assert put(admin, csrf, token, 100_000, data[100_000:]).get_json()["received"] == len(data)
    r = admin.post("/admin/local/add", data={"csrf": csrf, "token": token, "title": "村晚", "category": "culture", "description": ""})
    assert r.status_code == 302
    item = lib.item("local.test-point.1")
    assert item.title == "村晚" and item.category == "culture"
    page = admin.get("/admin/").text
    assert "已添加“村晚”" in page and "等待上传" in page
    assert not list((cfg.data_dir / "local" / "incoming").iterdir())


def test_a_piece_without_the_csrf_token_is_refused(admin):
    csrf = csrf_of(admin.get("/admin/").text)
    token = begin(admin, csrf, "a.pdf", 10).get_json()["token"]
    assert put(admin, "wrong", token, 0, b"%PDF-1.4\n0").status_code == 400
    assert admin.get(f"/admin/local/files/{token}").get_json()["received"] == 0


def test_a_file_that_is_not_media_is_refused_in_plain_chinese_and_nothing_stored(admin, box):
    cfg, lib, _ = box
    csrf = csrf_of(admin.get("/admin/").text)
    before = [i.id for i in lib.items()]
    data = b"MZ this is a program, not a video"
    token = begin(admin, csrf, "a.exe", len(data)).get_json()["token"]
    put(admin, csrf, token, 0, data)
    r = admin.post("/admin/local/add", data={"csrf": csrf, "token": token, "title": "x"}, follow_redirects=True)
    assert "没有添加" in r.text and "不是视频、图片、音频或 PDF" in r.text
    assert [i.id for i in lib.items()] == before and local.status(cfg)["items"] == []
    assert not list((cfg.data_dir / "local" / "incoming").iterdir())


def test_a_file_over_the_cap_is_refused_before_any_byte_is_sent(admin, box):
    csrf = csrf_of(admin.get("/admin/").text)
    r = begin(admin, csrf, "huge.mp4", (box[0].uplink.upload_max_mb + 1) * 2**20)
    assert r.status_code == 400 and "太大" in r.get_json()["detail"]


def test_a_folder_on_a_usb_disk_is_offered_and_added(admin, box, tmp_path, monkeypatch):
    cfg, lib, _ = box
    from kiosk.library import usb

    disk = tmp_path / "usb" / "kiosk"
    (disk / "本地内容" / "村规民约").mkdir(parents=True)
    (disk / "本地内容" / "村规民约" / "guide.pdf").write_bytes(PDF.read_bytes())
    monkeypatch.setattr(usb, "candidates", lambda cfg: [disk.parent])
    page = admin.get("/admin/").text
    assert "添加“村规民约”" in page
    r = admin.post("/admin/local/add", data={"csrf": csrf_of(page), "usb_folder": str(disk / "本地内容" / "村规民约"),
                                             "title": "村规民约", "category": "local"})
    assert r.status_code == 302 and lib.item("local.test-point.1").title == "村规民约"
    assert (disk / "本地内容" / "村规民约" / "guide.pdf").exists()  # the disk is never changed
