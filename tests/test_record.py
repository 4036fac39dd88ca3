"""kiosk.json, checked field by field."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from kiosk.errors import PackageRejected
from kiosk.library.record import Record, parse_record

GOOD: dict[str, Any] = {
    "id": "maize-2026.v1_a",
    "version": 3,
    "title": "玉米种植",
    "description": "春播要点",
    "language": "zh-CN",
    "tags": ["玉米", "春播"],
    "category": "agriculture",
    "main": "data/video/maize.mp4",
    "poster": "poster.jpg",
    "priority": 7,
    "expires": "2027-06-30",
}


def raw(**changes: Any) -> bytes:
    obj = {**GOOD, **changes}
    return json.dumps({k: v for k, v in obj.items() if v is not ...}, ensure_ascii=False).encode()


def reason_and_detail(data: bytes) -> tuple[str, str]:
    with pytest.raises(PackageRejected) as e:
        parse_record(data)
    return e.value.reason, e.value.detail


def test_it_parses_a_full_record_and_makes_paths_relative_to_data() -> None:
    r = parse_record(raw())
    assert r == Record(
        id="maize-2026.v1_a", version=3, title="玉米种植", description="春播要点", language="zh-CN",
        tags=("玉米", "春播"), category="agriculture", main="video/maize.mp4", poster="poster.jpg",
        priority=7, expires="2027-06-30", withdraws=None,
    )
    assert not r.is_recall


def test_defaults_fill_the_optional_fields() -> None:
    r = parse_record(b'{"id": "a", "version": 1, "title": "t", "main": "a.mp4"}')
    assert (r.language, r.tags, r.category, r.priority, r.expires, r.poster, r.description) == ("zh-CN", (), "other", 5, None, None, "")


def test_a_missing_title_falls_back_to_the_id_and_language_underscores_become_hyphens() -> None:
    r = parse_record(raw(title=..., language="zh_CN"))
    assert (r.title, r.language) == (GOOD["id"], "zh-CN")
    assert parse_record(raw(title="  ")).title == GOOD["id"]


def test_an_unknown_category_is_kept_as_given() -> None:
    assert parse_record(raw(category="weather")).category == "weather"


def test_a_recall_has_withdraws_and_no_main() -> None:
    r = parse_record(b'{"id": "recall-7", "version": 1, "withdraws": ["bad-video", "old.one"]}')
    assert r.is_recall and r.withdraws == ("bad-video", "old.one") and r.main is None


@pytest.mark.parametrize(
    "changes,field",
    [
        ({"id": ""}, "id"),
        ({"id": "Upper"}, "id"),
        ({"id": "a" * 65}, "id"),
        ({"id": "../etc"}, "id"),
        ({"id": ".."}, "id"),
        ({"id": "空格"}, "id"),
        ({"id": 5}, "id"),
        ({"id": ...}, "id"),
        ({"version": 0}, "version"),
        ({"version": -1}, "version"),
        ({"version": True}, "version"),
        ({"version": "2"}, "version"),
        ({"version": 1.5}, "version"),
        ({"version": ...}, "version"),
        ({"title": 7}, "title"),
        ({"title": "长" * 201}, "title"),
        ({"description": "x" * 10_001}, "description"),
        ({"description": ["a"]}, "description"),
        ({"language": "zh_CN!"}, "language"),
        ({"language": "中文"}, "language"),
        ({"tags": "玉米"}, "tags"),
        ({"tags": [1]}, "tags"),
        ({"tags": ["x"] * 51}, "tags"),
        ({"category": "Farm Work"}, "category"),
        ({"category": 3}, "category"),
        ({"main": ...}, "main"),
        ({"main": "../../etc/passwd"}, "main"),
        ({"main": "/etc/passwd"}, "main"),
        ({"main": "data/"}, "main"),
        ({"main": 3}, "main"),
        ({"poster": "data/../x.jpg"}, "poster"),
        ({"priority": 10}, "priority"),
        ({"priority": -1}, "priority"),
        ({"priority": "5"}, "priority"),
        ({"expires": "next year"}, "expires"),
        ({"expires": 20270101}, "expires"),
        ({"withdraws": "a"}, "withdraws"),
        ({"withdraws": []}, "withdraws"),
        ({"withdraws": ["Bad Id"]}, "withdraws"),
        ({"withdraws": ["a"]}, "main"),
    ],
)
def test_a_bad_field_is_a_bad_record_naming_the_field(changes: dict[str, Any], field: str) -> None:
    reason, detail = reason_and_detail(raw(**changes))
    assert reason == "bad_record"
    assert field in detail


@pytest.mark.parametrize(
    "data,words",
    [
        (b"\xff\xfe{", "UTF-8"),
        (b"not json", "not JSON"),
        (b"[1, 2]", "object"),
        (b'{"id": "a", "id": "b"}', "twice"),
        (b'{"id": "a", "version": NaN}', "JSON"),
        (b"[" * 60_000, "kiosk.json"),
        (b'{"title": "' + b"x" * 70_000 + b'"}', "larger"),
    ],
)
def test_a_file_that_is_not_a_json_object_is_a_bad_record(data: bytes, words: str) -> None:
    reason, detail = reason_and_detail(data)
    assert reason == "bad_record"
    assert words in detail


def test_a_utf8_bom_is_tolerated() -> None:
    assert parse_record(b"\xef\xbb\xbf" + raw()).id == GOOD["id"]


def test_expiry_is_after_the_named_day() -> None:
    r = parse_record(raw(expires="2027-06-30"))
    noon = lambda d: dt.datetime.combine(d, dt.time(12)).timestamp()  # noqa: E731
    assert not r.expired(noon(dt.date(2027, 6, 30)))
    assert r.expired(noon(dt.date(2027, 7, 1)))
    assert not parse_record(raw(expires=None)).expired(noon(dt.date(2100, 1, 1)))


def test_to_json_round_trips_through_parse() -> None:
    r = parse_record(raw())
    assert parse_record(json.dumps(r.to_json()).encode()) == r
