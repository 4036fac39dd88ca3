"""Hanzi from pinyin typed on the on-screen keyboard: the catalogue's own words first, then a shipped dictionary."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from kiosk import config as config_mod
from kiosk.library import Library, hanzi
from kiosk.library.wishes import Wishes
from kiosk.web import create_app
from tests.webbox import write_config

KIOSK = {"REMOTE_ADDR": "127.0.0.1"}


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Library]:
    from kiosk.demo import publish_samples

    root = tmp_path_factory.mktemp("hanzi")
    cfg = config_mod.load(write_config(root), env={})
    lib = Library(cfg)
    publish_samples(cfg, lib, root / "work")
    yield lib
    lib.close()


def words(found: list[hanzi.Candidate]) -> list[str]:
    return [c.word for c in found]


def test_full_pinyin_gives_the_common_word_first() -> None:
    assert words(hanzi.candidates("yangzhu"))[0] == "养猪"
    assert words(hanzi.candidates("gaoxueya"))[0] == "高血压"
    assert "玉米" in words(hanzi.candidates("yumi"))[:3]


def test_only_simplified_characters_in_their_usual_reading_lead() -> None:
    first = words(hanzi.candidates("yang"))[:8]
    assert "英" not in first and "鍚" not in first and "养" in first


def test_an_unfinished_syllable_offers_words_and_a_long_run_offers_its_first_word() -> None:
    assert "养殖" in words(hanzi.candidates("yangz"))
    found = hanzi.candidates("yangzhujishu")
    assert found[0] == hanzi.Candidate("养猪", 7)  # 7 letters used; jishu stays typed


def test_the_catalogues_own_words_come_before_the_dictionary(library: Library) -> None:
    assert words(hanzi.candidates("yuju"))[0] != "豫剧"
    assert words(hanzi.candidates("yuju", library.words))[0] == "豫剧"
    assert words(hanzi.candidates("hmx", library.words)) == []  # nothing here is 黄梅戏
    assert "养猪" in words(hanzi.candidates("yz", library.words))  # initials find the catalogue's words


def test_typed_letters_become_hanzi_and_non_pinyin_is_refused() -> None:
    assert hanzi.to_hanzi("yangzhu yumi") == "养猪 玉米"
    assert hanzi.to_hanzi("想看 gaoxueya") == "想看 高血压"
    assert hanzi.to_hanzi("xq") is None and hanzi.to_hanzi("qwrt") is None
    assert hanzi.to_hanzi("") == "" and hanzi.to_hanzi("养猪") == "养猪"


def test_the_shipped_dictionary_is_sorted_by_pinyin_and_well_formed() -> None:
    lines = hanzi.DICTIONARY.read_text(encoding="utf-8").splitlines()
    assert len(lines) > 30_000 and lines == sorted(lines)
    for line in lines[::97]:
        py, word, freq = line.split("\t")
        assert py.isascii() and py.isalpha() and py.islower() and word and int(freq) >= 0


@pytest.fixture
def client(library: Library, tmp_path: Path) -> Any:
    app = create_app(library.cfg, None, library=library, wishes=Wishes(tmp_path / "w.sqlite"))
    return app.test_client()


def test_the_keyboard_asks_the_box_for_candidates(client: Any) -> None:
    got = client.get("/api/v1/hanzi?p=yuju").get_json()
    assert got[0] == {"w": "豫剧", "n": 4}
    assert client.get("/api/v1/hanzi?p=%3Cscript%3E").get_json() == []
    assert client.get("/api/v1/hanzi").get_json() == []


def _send(client: Any, words: str) -> Any:
    import re

    html = client.get("/wish", environ_base=KIOSK).get_data(as_text=True)
    token = re.search(r'name="token" value="([^"]+)"', html).group(1)
    return client.post("/wish", data={"token": token, "category": "health", "words": words},
                       environ_base=KIOSK, headers={"Origin": "http://localhost", "Host": "localhost"})


def test_a_request_typed_as_pinyin_is_stored_as_hanzi(client: Any) -> None:
    r = _send(client, "养猪 fangzhapian gaoxueya")
    assert r.status_code == 200, r.get_data(as_text=True)
    store = client.application.extensions["kiosk"]["wishes"]
    assert [w["words"] for w in store.pending()] == ["养猪 防诈骗 高血压"]


def test_letters_that_are_no_pinyin_are_refused_in_plain_words_and_nothing_is_stored(client: Any) -> None:
    r = _send(client, "qwrt")
    assert r.status_code == 400 and "请在字母下面点选" in r.get_data(as_text=True)
    assert client.application.extensions["kiosk"]["wishes"].pending() == []


def test_a_catalogue_from_before_the_keyboards_words_gets_them_when_opened(library: Library) -> None:
    import sqlite3

    path = library.catalogue.path
    db = sqlite3.connect(path)
    db.execute("DELETE FROM words")
    db.execute("PRAGMA user_version = 2")
    db.commit()
    db.close()
    from kiosk.library.catalogue import Catalogue

    again = Catalogue(path)
    try:
        assert ("豫剧", "yuju") in again.words("yuju", 5)
    finally:
        again.close()
