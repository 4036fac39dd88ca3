"""The JSON API at /api/v1: items, one item, categories, health, play reports."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from kiosk import config as config_mod
from kiosk.library import Library
from kiosk.web import create_app
from tests.packages import make_bag, trust_dir


@pytest.fixture
def library(tmp_path: Path) -> Iterator[Library]:
    trust = trust_dir(tmp_path)
    cfg = config_mod.load(None, env={
        "KIOSK_STORAGE_DATA_DIR": str(tmp_path / "data"),
        "KIOSK_STORAGE_TRUST_DIR": str(trust),
        "KIOSK_STORAGE_MIN_FREE_PERCENT": "0",
        "KIOSK_HARDWARE_BACKEND": "fake",
    })
    lib = Library(cfg)
    for rec, files in [
        ({"id": "pig", "title": "科学养猪", "description": "冬季猪舍保暖", "category": "agriculture"}, None),
        ({"id": "corn", "title": "玉米种植技术", "description": "春播要点", "category": "agriculture", "main": "a.html"},
         {"a.html": "<p>玉米</p>".encode()}),
        ({"id": "bp", "title": "高血压防护", "description": "blood pressure at home", "category": "health", "main": "g.pdf"},
         {"g.pdf": b"%PDF-1.4\n%%EOF\n"}),
    ]:
        outcome = lib.ingest(make_bag(tmp_path, files=files, record=rec))
        assert outcome.outcome == "published", outcome
    yield lib
    lib.close()


@pytest.fixture
def client(library: Library):  # type: ignore[no-untyped-def]
    from kiosk.device.fake import FakeHardware

    app = create_app(library.cfg, FakeHardware(), library=library, uplink_status=lambda: {"enabled": False})
    return app.test_client()


def test_items_lists_every_visible_item_with_file_urls(client) -> None:  # type: ignore[no-untyped-def]
    items = client.get("/api/v1/items").get_json()
    assert {i["id"] for i in items} == {"pig", "corn", "bp"}
    for it in items:
        assert {"id", "version", "title", "category", "files"} <= set(it)
        assert all(f["url"].startswith(f"/media/{it['id']}/{it['version']}/") for f in it["files"])


def test_items_filters_by_category_and_limits(client) -> None:  # type: ignore[no-untyped-def]
    assert {i["id"] for i in client.get("/api/v1/items?category=agriculture").get_json()} == {"pig", "corn"}
    assert len(client.get("/api/v1/items?limit=1").get_json()) == 1


@pytest.mark.parametrize("q,expected", [("yz", "pig"), ("yumi", "corn"), ("高血", "bp"), ("pressure", "bp"), ("猪舍", "pig")])
def test_search_finds_hanzi_pinyin_initials_full_pinyin_and_english(client, q: str, expected: str) -> None:  # type: ignore[no-untyped-def]
    found = [i["id"] for i in client.get("/api/v1/items", query_string={"q": q}).get_json()]
    assert expected in found


def test_a_bad_limit_is_a_json_400(client) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/api/v1/items?limit=lots")
    assert r.status_code == 400
    assert r.get_json()["error"]


def test_one_item_is_found_by_id(client) -> None:  # type: ignore[no-untyped-def]
    it = client.get("/api/v1/items/corn").get_json()
    assert it["title"] == "玉米种植技术"
    assert it["files"][0]["url"] == "/media/corn/1/a.html"


def test_an_unknown_item_is_a_json_404(client) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/api/v1/items/nothing-here")
    assert r.status_code == 404
    assert r.is_json and r.get_json()["error"] == "Not Found"


def test_an_unknown_api_route_is_json_too(client) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/api/v1/no/such/thing")
    assert r.status_code == 404 and r.is_json


def test_categories_give_counts(client) -> None:  # type: ignore[no-untyped-def]
    cats = {c["slug"]: c["count"] for c in client.get("/api/v1/categories").get_json()}
    assert cats == {"agriculture": 2, "health": 1}


def test_health_reports_the_point_its_content_and_the_device(client) -> None:  # type: ignore[no-untyped-def]
    h = client.get("/api/v1/health").get_json()
    assert h["point"]["id"] == "point-0001"
    assert h["content"]["items"] == 3
    assert h["health"] is not None
    assert h["uplink"] == {"enabled": False}
    assert h["wishes"] == {"pending": 0, "sent": 0}


def test_a_play_report_is_recorded_as_anonymous_usage(client) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/api/v1/plays", json={"item": "pig", "seconds": 42}, headers={"Origin": "http://localhost"})
    assert r.status_code == 200
    usage = client.application.extensions["kiosk"]["usage"]
    totals = usage.since(0)
    assert totals["plays"] == 1 and totals["seconds"] == 42
    assert totals["by_category"]["agriculture"]["plays"] == 1


def test_a_play_report_from_another_site_is_refused_and_not_recorded(client) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/api/v1/plays", json={"item": "pig", "seconds": 42}, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403
    assert client.application.extensions["kiosk"]["usage"].since(0)["plays"] == 0


def test_a_play_report_for_an_unknown_item_is_404(client) -> None:  # type: ignore[no-untyped-def]
    assert client.post("/api/v1/plays", json={"item": "nope", "seconds": 3}).status_code == 404


def test_serving_a_file_does_not_keep_its_item_from_eviction(client, library: Library) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/media/corn/1/a.html")
    assert r.status_code == 200 and "玉米" in r.get_data(as_text=True)
    r.close()
    assert library._open.ids() == set()


def test_the_screens_show_a_newly_published_item_at_once(client, library: Library, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    kiosk = {"REMOTE_ADDR": "127.0.0.1"}
    assert "秦腔选段" not in client.get("/", environ_base=kiosk).get_data(as_text=True)
    assert "秦腔选段" not in client.get("/topic/culture", environ_base=kiosk).get_data(as_text=True)
    outcome = library.ingest(make_bag(tmp_path, record={"id": "opera", "title": "秦腔选段", "category": "culture"}))
    assert outcome.outcome == "published"
    assert "秦腔选段" in client.get("/", environ_base=kiosk).get_data(as_text=True)
    assert "秦腔选段" in client.get("/topic/culture", environ_base=kiosk).get_data(as_text=True)
    library.delete("opera")
    assert "秦腔选段" not in client.get("/topic/culture", environ_base=kiosk).get_data(as_text=True)


def test_the_screens_hear_about_a_usb_import_in_plain_words(client, library: Library, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    from kiosk.library import usb

    assert client.get("/api/v1/notice").get_json() == {"notice": None}
    disk = tmp_path / "disk"
    bag = make_bag(tmp_path, record={"id": "usb-item", "title": "U盘里的节目"})
    shutil.copytree(bag, disk / library.cfg.storage.usb_folder / bag.name)
    usb.import_folder(library.cfg, library, disk)
    notice = client.get("/api/v1/notice").get_json()["notice"]
    assert notice["state"] == "done" or notice["percent"] == 100
    assert "导入完成" in notice["text"] and "1" in notice["text"]
    english = client.get("/api/v1/notice?lang=en").get_json()["notice"]
    assert "finished" in english["text"]


def test_later_reports_of_one_play_add_seconds_without_counting_another_play(client) -> None:  # type: ignore[no-untyped-def]
    client.post("/api/v1/plays", json={"item": "pig", "seconds": 30})
    client.post("/api/v1/plays", json={"item": "pig", "seconds": 60, "continued": True})
    totals = client.application.extensions["kiosk"]["usage"].since(0)
    assert totals["plays"] == 1 and totals["seconds"] == 90
