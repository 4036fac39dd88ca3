"""Malformed requests to the box get a 4xx answer, never a 500, and change nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from kiosk.library import Library
from kiosk.web import create_app
from tests.packages import make_bag, trust_dir

BIG = "9" * 5000
ORIGIN = {"Origin": "http://localhost"}


@pytest.fixture
def client(cfg, tmp_path: Path) -> Iterator[Any]:
    from kiosk.device.fake import FakeHardware

    lib = Library(cfg.replace(storage__trust_dir=str(trust_dir(tmp_path))))
    assert lib.ingest(make_bag(tmp_path)).outcome == "published"
    app = create_app(lib.cfg, FakeHardware(), library=lib, uplink_status=lambda: {"enabled": False})
    yield app.test_client()
    lib.close()


@pytest.mark.parametrize("header,status", [
    (f"bytes={BIG}-", 416),   # starts past the end
    (f"bytes=-{BIG}", 206),   # the last BIG bytes: the whole file
    (f"bytes=0-{BIG}", 206),  # to BIG: to the end
])
def test_range_numbers_of_five_thousand_digits_are_answered_not_crashed_on(client, header: str, status: int) -> None:
    r = client.get("/media/pig-farming/1/video.mp4", headers={"Range": header})
    assert r.status_code == status


@pytest.mark.parametrize("url", [
    "/topic/agriculture?page=99999999999999999999",
    f"/topic/agriculture?page={BIG}",
    f"/media/pig-farming/{BIG}/video.mp4",
    f"/speak/pig-farming/{BIG}",
    "/api/v1/items?offset=99999999999999999999",
    f"/api/v1/items?limit={BIG}",
])
def test_huge_page_and_version_numbers_get_a_4xx_or_a_plain_page(client, url: str) -> None:
    assert client.get(url).status_code < 500


@pytest.mark.parametrize("nxt", ["/%0D%0ASet-Cookie:%20x=1", "%0D%0A", "/\\evil.example", "//evil.example", "/%09/evil.example"])
def test_a_language_switch_never_redirects_off_the_box_or_puts_a_control_character_in_a_header(client, nxt: str) -> None:
    r = client.get(f"/lang/en?next={nxt}")
    assert r.status_code == 302 and r.headers["Location"] == "/"


def test_a_language_switch_goes_back_to_the_page_it_came_from(client) -> None:
    assert client.get("/lang/en?next=/topic/health%3Fpage%3D2").headers["Location"] == "/topic/health?page=2"


@pytest.mark.parametrize("body", [
    b"[1, 2]", b'"a string"', b"5", b"[" * 100_000 + b"]" * 100_000,
    b'{"item": "pig-farming", "seconds": "nan"}', b'{"item": "pig-farming", "seconds": 1e400}',
    b'{"item": "pig-farming", "seconds": -5}', b'{"item": "pig-farming", "seconds": ' + BIG.encode() + b"}",
])
def test_a_play_report_that_is_not_a_sane_object_is_refused_and_counts_nothing(client, body: bytes) -> None:
    usage = client.application.extensions["kiosk"]["usage"]
    before = usage.since(0)
    r = client.post("/api/v1/plays", data=body, content_type="application/json", headers=ORIGIN)
    assert 400 <= r.status_code < 500 and r.is_json
    assert usage.since(0) == before
