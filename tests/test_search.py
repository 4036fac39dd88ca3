"""Search as villagers use it: two hanzi, pinyin initials, full pinyin, English; sensibly ranked."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiosk.library import Library
from kiosk.library.search import pinyin_splits, split_pinyin
from tests.packages import make_bag, trust_dir

ITEMS = [
    ("corn", "玉米", "", "agriculture", []),
    ("corn-growing", "玉米种植技术", "春播要点", "agriculture", []),
    ("growing-corn", "春季种植玉米", "", "agriculture", []),
    ("pigs-winter", "冬季猪舍管理", "讲解科学养猪的保暖和防疫", "agriculture", []),
    ("pig-basics", "养猪入门", "", "agriculture", ["畜牧"]),
    ("blood-pressure", "高血压的日常护理", "老年人健康", "health", ["健康"]),
    ("english", "Pig farming basics", "An introduction for beginners", "lectures", []),
    ("law-land", "土地承包法律知识", "农村土地", "law", []),
    ("opera", "秦腔选段", "传统戏曲", "culture", ["戏曲", "秦腔"]),
    ("pig-vaccine", "生猪防疫", "养猪场的疫苗接种", "agriculture", []),
    ("xian-apples", "西安苹果", "", "local", []),
]


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory):
    from kiosk import config

    tmp = tmp_path_factory.mktemp("search")
    data = tmp / "data"
    data.mkdir()
    cfg = config.load(None, env={"KIOSK_STORAGE_DATA_DIR": str(data), "KIOSK_STORAGE_TRUST_DIR": str(trust_dir(tmp)),
                                 "KIOSK_STORAGE_MIN_FREE_PERCENT": "0"})
    library = Library(cfg)
    for item_id, title, desc, category, tags in ITEMS:
        bag = make_bag(tmp, record={"id": item_id, "title": title, "description": desc, "category": category, "tags": tags})
        assert library.ingest(bag).outcome == "published"
    yield library
    library.close()


def ids(lib: Library, q: str, **kw) -> list[str]:
    return [i.id for i in lib.items(q=q, **kw)]


def test_two_hanzi_find_a_word_inside_a_title(lib: Library) -> None:
    assert "growing-corn" in ids(lib, "玉米")
    assert "blood-pressure" in ids(lib, "血压")


def test_two_hanzi_find_a_word_inside_a_description(lib: Library) -> None:
    assert set(ids(lib, "养猪")) == {"pigs-winter", "pig-basics", "pig-vaccine"}


def test_pinyin_initials_find_the_title(lib: Library) -> None:
    assert ids(lib, "yz")[0] == "pig-basics"  # 养猪入门
    assert ids(lib, "gxy") == ["blood-pressure"]
    assert "pig-basics" in ids(lib, "YZ")  # capitals and full-width letters too
    assert "pig-basics" in ids(lib, "ｙｚ")


def test_full_pinyin_finds_the_title(lib: Library) -> None:
    assert ids(lib, "yumi")[:3] == ["corn", "corn-growing", "growing-corn"]
    assert ids(lib, "yangzhu") == ["pig-basics"]
    assert ids(lib, "yang zhu") == ["pig-basics"]
    assert "pig-basics" in ids(lib, "yangzh")  # an unfinished syllable


def test_tags_are_searched_in_hanzi_and_pinyin(lib: Library) -> None:
    assert ids(lib, "畜牧") == ["pig-basics"]
    assert "opera" in ids(lib, "xiqu")


def test_english_words_are_found(lib: Library) -> None:
    assert ids(lib, "farming") == ["english"]
    assert ids(lib, "pig farming") == ["english"]
    assert ids(lib, "beginners") == ["english"]


def test_an_exact_title_comes_first_then_titles_starting_with_it_then_the_rest(lib: Library) -> None:
    assert ids(lib, "玉米") == ["corn", "corn-growing", "growing-corn"]


def test_a_title_match_ranks_before_a_description_match(lib: Library) -> None:
    # pig-vaccine is newer, but holds 养猪 only in its description
    assert ids(lib, "养猪")[0] == "pig-basics"


def test_one_hanzi_is_enough_to_find_something(lib: Library) -> None:
    assert {"pigs-winter", "pig-basics"} <= set(ids(lib, "猪"))


def test_a_category_narrows_a_search(lib: Library) -> None:
    assert ids(lib, "健康", category="agriculture") == []
    assert ids(lib, "健康", category="health") == ["blood-pressure"]


def test_search_syntax_in_a_query_is_harmless(lib: Library) -> None:
    for q in ('"', "*", "AND", "NEAR(", "^", "a:b", "t : 玉米", "玉米 OR", "(", "'; DROP TABLE items; --", "   ", "。，！"):
        assert isinstance(lib.items(q=q), list)
    assert len(lib.items()) == len(ITEMS)


def test_nothing_is_found_for_what_is_not_there(lib: Library) -> None:
    assert ids(lib, "火箭") == []
    assert ids(lib, "zzzz") == []


def test_paging_through_results_neither_repeats_nor_skips(lib: Library) -> None:
    whole = ids(lib, "yumi")
    assert ids(lib, "yumi", limit=1) + ids(lib, "yumi", limit=1, offset=1) + ids(lib, "yumi", limit=5, offset=2) == whole


def test_typed_pinyin_is_split_into_syllables() -> None:
    assert split_pinyin("yumi") == (["yu", "mi"], False)
    assert split_pinyin("yangz") == (["yang", "z"], True)
    assert split_pinyin("farming") is None or split_pinyin("farming")[0][0] == "fa"


def test_ambiguous_pinyin_is_read_every_likely_way() -> None:
    readings = [syl for syl, _ in pinyin_splits("xian")]
    assert ["xian"] in readings and ["xi", "an"] in readings


def test_a_place_name_typed_as_one_word_is_found(lib: Library) -> None:
    assert ids(lib, "xian") == ["xian-apples"]  # 西安, read xi an


def test_random_typing_never_breaks_the_search(lib: Library, caplog: pytest.LogCaptureFixture) -> None:
    import random

    rnd = random.Random(5)
    alphabet = "养猪玉米高血压 yzumiaxng\"'*^:(){}-+ANDORNEAR0123456789，。ＡＢ\t"
    for _ in range(300):
        q = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 12)))
        assert isinstance(lib.items(q=q), list)
    assert "search_failed" not in caplog.text
