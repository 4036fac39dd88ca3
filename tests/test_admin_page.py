"""The device page speaks of programmes by title and reasons in plain words: no paths, no exception text."""

from __future__ import annotations

import re

import pytest

from kiosk.device.fake import FakeHardware
from kiosk.library import Library
from kiosk.web import create_app
from tests.packages import make_bag, tar_folder, trust_dir
from tests.test_admin import csrf_of, log_in


@pytest.fixture
def usb_box(cfg, tmp_path):
    """A box that imported a USB disk: one programme published, a damaged one and an unreadable one refused."""
    cfg = cfg.replace(storage__trust_dir=str(trust_dir(tmp_path)))
    lib = Library(cfg)
    disk = tmp_path / "media" / "usb-村委会" / "kiosk"
    disk.mkdir(parents=True)
    good = make_bag(tmp_path, record={"id": "pig-farming", "title": "科学养猪"}, tar=True)
    good.rename(disk / "科学养猪.tar")
    damaged = make_bag(tmp_path, record={"id": "maize-2026", "title": "玉米高产栽培"},
                       mutate=lambda d: (d / "data/video.mp4").write_bytes((d / "data/video.mp4").read_bytes()[::-1]))
    tar_folder(damaged, disk / "玉米高产栽培.tar")
    junk = make_bag(tmp_path, kiosk_json=b"{not json")
    tar_folder(junk, disk / "村里的通知.tar")
    outcomes = {p.name: lib.ingest(p, source="usb") for p in sorted(disk.iterdir())}
    assert outcomes["科学养猪.tar"].outcome == "published"
    assert outcomes["玉米高产栽培.tar"].reason == "bad_hash" and outcomes["村里的通知.tar"].rejected
    yield cfg, lib, disk
    lib.close()


@pytest.fixture
def page(usb_box):
    cfg, lib, _ = usb_box
    client = create_app(cfg, FakeHardware(), library=lib, start_jobs=False).test_client()
    log_in(client, cfg)
    return client, client.get("/admin/").text


def _part(page: str, name: str) -> str:
    start = page.index(f'<section id="{name}">')
    return page[start:page.index("</section>", start)]


def test_lists_name_programmes_by_title_or_the_file_name_on_the_disk(page, usb_box):
    _, text = page
    quarantine = _part(text, "quarantine")
    assert "玉米高产栽培" in quarantine  # the record was readable: its title
    assert "村里的通知.tar" in quarantine  # it was not: the name on the disk
    assert "文件内容和清单对不上" in quarantine  # the reason in plain words
    recent = _part(text, "recent")
    assert "科学养猪" in recent and "玉米高产栽培" in recent and "村里的通知.tar" in recent
    assert "pig-farming" not in recent and "maize-2026" not in quarantine


def test_no_path_and_no_exception_text_reaches_the_page(page, usb_box):
    cfg, lib, disk = usb_box
    _, text = page
    assert str(disk.parent.parent) not in text and "/media/" not in text and str(cfg.data_dir) not in text
    for e in lib.quarantine():
        assert not e["detail"] or e["detail"] not in text
    assert not re.search(r"\b\w+(Error|Exception)\b|Traceback|errno|Expecting", text)


def test_delete_asks_with_the_title(page, usb_box):
    client, _ = page
    ask = client.get("/admin/items/pig-farming/delete").text
    assert "确定要删除节目“科学养猪”吗" in ask and "pig-farming" not in ask.split('action="')[0]
    r = client.post("/admin/items/pig-farming/delete", data={"csrf": csrf_of(ask), "confirm": "yes"})
    assert "已删除：“科学养猪”" in client.get(r.headers["Location"]).text
    gone = client.get("/admin/items/pig-farming/delete")
    assert gone.status_code == 302  # nothing left to ask about


def test_sections_open_on_demand_and_the_top_shows_the_state_first(page):
    _, text = page
    assert text.index('id="glance"') < text.index('<section id="health">')
    for name in ("content", "import", "items", "recent", "quarantine", "power", "password"):
        assert "<details>" in _part(text, name), name  # closed until tapped
    client, _ = page
    assert "<details open>" in _part(client.get("/admin/?open=quarantine").text, "quarantine")
