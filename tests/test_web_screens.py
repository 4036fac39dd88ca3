"""The touch screens, server side: pages render, wishes are stored safely, failures stay calm."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

import pytest

from kiosk import config as config_mod
from kiosk.demo import publish_samples
from kiosk.library import Library
from kiosk.library.wishes import Wishes
from kiosk.web import create_app
from tests.webbox import write_config

KIOSK = {"REMOTE_ADDR": "127.0.0.1"}
PHONE = {"REMOTE_ADDR": "192.168.1.23"}


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Library]:
    root = tmp_path_factory.mktemp("screens")
    cfg = config_mod.load(write_config(root), env={})
    lib = Library(cfg)
    publish_samples(cfg, lib, root / "work")
    yield lib
    lib.close()


@pytest.fixture
def app(library: Library, tmp_path: Path) -> Any:
    wishes = Wishes(tmp_path / "wishes.sqlite")
    return create_app(library.cfg, None, library=library, wishes=wishes)


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


def page(client: Any, url: str, env: dict[str, str] = KIOSK) -> str:
    r = client.get(url, environ_base=env)
    assert r.status_code == 200, (url, r.status_code)
    return r.get_data(as_text=True)


def test_home_shows_a_tile_per_topic_with_its_count_and_newest_item(client: Any) -> None:
    html = page(client, "/")
    assert "农业科技" in html and "卫生健康" in html and "文化戏曲" in html
    assert re.search(r'data-topic="agriculture".*?2 个', html, re.S)
    assert "新到内容" in html


def test_home_switches_to_english_and_remembers_it(client: Any) -> None:
    r = client.get("/lang/en?next=/topic/health", environ_base=KIOSK)
    assert r.status_code == 302 and r.headers["Location"].endswith("/topic/health")
    html = page(client, "/")
    assert "Farming" in html and "农业科技" not in html


def test_the_language_switch_never_sends_anyone_off_the_box(client: Any) -> None:
    for nxt in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)"):
        r = client.get("/lang/en", query_string={"next": nxt}, environ_base=KIOSK)
        assert r.headers["Location"] in ("/", "http://localhost/")


def test_a_topic_lists_its_items_with_posters(client: Any) -> None:
    html = page(client, "/topic/agriculture")
    assert "科学养猪" in html and "玉米春播六要点" in html
    assert '/media/sample-pig-farming/1/poster.jpg' in html
    assert "高血压" not in html


@pytest.mark.parametrize("item_id,button", [
    ("sample-pig-farming", "/play/sample-pig-farming"),
    ("sample-hypertension", "/read/sample-hypertension"),
    ("sample-corn-sowing", "/read/sample-corn-sowing"),
    ("sample-henan-opera", "/pictures/sample-henan-opera"),
])
def test_an_item_page_opens_each_media_type_its_own_way(client: Any, item_id: str, button: str) -> None:
    html = page(client, f"/item/{item_id}")
    assert f'href="{button}"' in html
    assert "读一读" in html


def test_the_player_page_carries_the_video(client: Any) -> None:
    html = page(client, "/play/sample-pig-farming")
    assert 'src="/media/sample-pig-farming/1/video.mp4"' in html


def test_a_picture_set_shows_every_picture(client: Any) -> None:
    html = page(client, "/pictures/sample-henan-opera")
    for name in ("01-mulan.jpg", "02-chaoyanggou.jpg", "03-xiangyulian.jpg", "04-yangmen.jpg"):
        assert name in html


def test_opening_an_item_is_counted_anonymously(client: Any) -> None:
    page(client, "/item/sample-corn-sowing")
    usage = client.application.extensions["kiosk"]["usage"]
    assert usage.since(0)["by_category"]["agriculture"]["opens"] >= 1


def test_search_answers_server_side_too_for_phones(client: Any) -> None:
    html = page(client, "/search?q=yz", env=PHONE)
    assert "科学养猪" in html


def test_an_unknown_page_is_a_calm_404_not_a_traceback(client: Any) -> None:
    r = client.get("/item/no-such-item", environ_base=KIOSK)
    assert r.status_code == 404
    html = r.get_data(as_text=True)
    assert "<title>没有这一页</title>" in html and "这一页没有找到" in html
    assert "请稍等" not in html  # nothing is coming: the villager should not wait


def test_a_failing_library_shows_a_calm_page_that_retries(library: Library, tmp_path: Path) -> None:
    class Broken:
        cfg = library.cfg

        def __getattr__(self, name: str) -> Any:
            def fail(*a: Any, **k: Any) -> Any:
                raise RuntimeError("disk on fire")
            return fail

    app = create_app(library.cfg, None, library=Broken(), wishes=Wishes(tmp_path / "w.sqlite"))
    r = app.test_client().get("/", environ_base=KIOSK)
    body = r.get_data(as_text=True)
    assert r.status_code == 500
    assert "请稍等" in body and 'http-equiv="refresh"' in body
    assert "Traceback" not in body and "disk on fire" not in body


def _wish_token(client: Any) -> str:
    html = page(client, "/wish")
    return re.search(r'name="token" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]


def test_a_wish_is_stored_and_the_villager_is_thanked(client: Any) -> None:
    token = _wish_token(client)
    r = client.post("/wish", data={"token": token, "category": "agriculture", "words": "养猪 玉米"},
                    headers={"Origin": "http://localhost"}, environ_base=KIOSK)
    assert r.status_code == 200 and "收到了" in r.get_data(as_text=True)
    pending = client.application.extensions["kiosk"]["wishes"].pending()
    assert [(w["category"], w["words"]) for w in pending] == [("agriculture", "养猪 玉米")]


def test_a_wish_without_the_page_token_is_refused_and_not_stored(client: Any) -> None:
    r = client.post("/wish", data={"category": "agriculture", "words": "x"}, environ_base=KIOSK)
    assert r.status_code == 400
    assert client.application.extensions["kiosk"]["wishes"].pending() == []


def test_a_wish_from_another_site_is_refused_and_not_stored(client: Any) -> None:
    token = _wish_token(client)
    r = client.post("/wish", data={"token": token, "category": "law", "words": "x"},
                    headers={"Origin": "http://evil.example"}, environ_base=KIOSK)
    assert r.status_code == 403
    assert client.application.extensions["kiosk"]["wishes"].pending() == []


def test_phones_browse_read_only(client: Any) -> None:
    assert "/wish" not in page(client, "/", env=PHONE)
    token = _wish_token(client)
    r = client.post("/wish", data={"token": token, "category": "law", "words": "x"}, environ_base=PHONE)
    assert r.status_code == 403
    assert client.application.extensions["kiosk"]["wishes"].pending() == []


def test_an_empty_wish_is_refused_with_plain_words(client: Any) -> None:
    token = _wish_token(client)
    r = client.post("/wish", data={"token": token, "category": "", "words": "  "}, environ_base=KIOSK)
    assert r.status_code == 400 and "请先选类别" in r.get_data(as_text=True)


def test_the_kiosk_gets_the_on_screen_keyboard_and_phones_their_own(client: Any) -> None:
    kiosk = page(client, "/search")
    assert 'id="keyboard"' in kiosk and "readonly" in kiosk
    phone = page(client, "/search", env=PHONE)
    assert 'id="keyboard"' not in phone and "readonly" not in phone


def test_the_attract_loop_leads_with_local_notices_then_new_arrivals(client: Any) -> None:
    html = page(client, "/attract")
    slides = re.findall(r"<h2>(.*?)</h2>", html)
    assert slides[0] == "村卫生室夏季值班安排"
    assert "科学养猪：猪舍通风与清洁" in slides and len(slides) == len(set(slides))


def test_the_wish_words_pinyin_agrees_with_pypinyin() -> None:
    from pypinyin import Style, lazy_pinyin

    from kiosk.web.screens import WISH_WORDS

    for words in WISH_WORDS.values():
        for word, full, initials in words:
            assert full == "".join(lazy_pinyin(word)).lower(), word
            assert initials == "".join(lazy_pinyin(word, style=Style.FIRST_LETTER)).lower(), word


def test_serving_the_screens_never_loads_pypinyin(tmp_path: Path) -> None:
    # pypinyin costs about 50 MB resident; the idle box must stay small.
    import subprocess
    import sys

    code = f"""
import sys
from kiosk import config as config_mod
from kiosk.library import Library
from kiosk.web import create_app
cfg = config_mod.load({str(write_config(tmp_path))!r}, env={{}})
client = create_app(cfg, None, library=Library(cfg)).test_client()
for url in ("/", "/topic/health", "/search?q=yz", "/wish", "/api/v1/items?q=yumi", "/attract"):
    assert client.get(url, environ_base={{"REMOTE_ADDR": "127.0.0.1"}}).status_code == 200, url
print("pypinyin" in sys.modules)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_the_idle_return_forgets_the_visitors_language(client: Any) -> None:
    client.get("/lang/en?next=/", environ_base=KIOSK)
    assert "Farming" in page(client, "/")
    r = client.get("/idle", environ_base=KIOSK)
    assert r.status_code == 302 and r.headers["Location"] == "/"
    assert "农业科技" in page(client, "/")


def test_an_item_without_a_poster_gives_its_words_the_whole_page(client: Any) -> None:
    assert '<div class="item noposter">' in page(client, "/item/sample-land-contract")
    assert '<div class="item">' in page(client, "/item/sample-corn-sowing")


def test_every_vendored_file_of_the_pdf_viewer_ships_in_the_package() -> None:
    import fnmatch
    import tomllib

    root = Path(__file__).resolve().parent.parent
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["kiosk"]
    vendor = root / "kiosk" / "web" / "static" / "vendor" / "pdfjs"
    files = [p.relative_to(root / "kiosk").as_posix() for p in vendor.rglob("*") if p.is_file()]
    assert "web/static/vendor/pdfjs/pdf.worker.min.mjs" in files and "web/static/vendor/pdfjs/LICENSE" in files
    assert [f for f in files if not any(fnmatch.fnmatch(f, pat) for pat in patterns)] == []
