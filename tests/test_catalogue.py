"""The catalogue as the screens read it, and its recovery from the store after a crash."""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest

from kiosk.errors import NotFound
from kiosk.library import Library
from tests.packages import make_bag, trust_dir


@pytest.fixture
def cfg2(cfg, tmp_path: Path):
    return cfg.replace(storage__trust_dir=str(trust_dir(tmp_path)))


@pytest.fixture
def lib(cfg2):
    library = Library(cfg2)
    yield library
    library.close()


def publish(lib: Library, tmp: Path, item_id: str, **record) -> None:
    assert lib.ingest(make_bag(tmp, record={"id": item_id, **record})).outcome == "published"


def test_items_are_listed_newest_first_and_by_category(lib: Library, tmp_path: Path) -> None:
    publish(lib, tmp_path, "a", category="health")
    publish(lib, tmp_path, "b", category="agriculture")
    publish(lib, tmp_path, "c", category="fishing")
    assert [i.id for i in lib.items()] == ["c", "b", "a"]
    assert [i.id for i in lib.items(category="health")] == ["a"]
    assert [i.id for i in lib.items(category="other")] == ["c"]
    assert lib.item("c").category == "other"
    assert [i.id for i in lib.items(limit=1, offset=1)] == ["b"]


def test_categories_count_visible_items_per_shelf(lib: Library, tmp_path: Path) -> None:
    publish(lib, tmp_path, "a", category="health")
    publish(lib, tmp_path, "b", category="health")
    publish(lib, tmp_path, "c", category="fishing")
    cats = {c["slug"]: c["count"] for c in lib.categories()}
    assert cats == {"health": 2, "other": 1}
    lib.delete("a")
    assert {c["slug"]: c["count"] for c in lib.categories()} == {"health": 1, "other": 1}


def test_an_unknown_item_or_file_is_not_found(lib: Library, tmp_path: Path) -> None:
    publish(lib, tmp_path, "a")
    with pytest.raises(NotFound):
        lib.item("nope")
    with pytest.raises(NotFound):
        lib.media_path("a", 1, "../kiosk.json")
    with pytest.raises(NotFound):
        lib.media_path("a", 2, "video.mp4")
    with pytest.raises(NotFound):
        lib.pin("nope")


def test_delete_removes_an_item_from_screens_and_store(lib: Library, tmp_path: Path) -> None:
    publish(lib, tmp_path, "a")
    lib.delete("a")
    assert lib.items() == [] and not lib.store.dir("a", 1).exists()
    with pytest.raises(NotFound):
        lib.delete("a")


def test_the_summary_counts_items_bytes_and_quarantine(lib: Library, tmp_path: Path) -> None:
    publish(lib, tmp_path, "a")
    s = lib.summary()
    assert s["items"] == 1 and s["bytes"] == 320 and s["quarantined"] == 0
    assert s["last_ingest"] is not None and 0 < s["free_bytes"] <= s["total_bytes"]


def test_many_threads_can_read_at_once(lib: Library, tmp_path: Path) -> None:
    for n in range(5):
        publish(lib, tmp_path, f"item-{n}", title=f"养猪第{n}讲")
    errors: list[BaseException] = []

    def read() -> None:
        try:
            for _ in range(30):
                assert len(lib.items(q="养猪")) == 5
                assert lib.categories()[0]["count"] == 5
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# --- recovery ---------------------------------------------------------------------


def test_a_lost_catalogue_is_rebuilt_from_the_store(cfg2, tmp_path: Path) -> None:
    lib = Library(cfg2)
    publish(lib, tmp_path, "a", title="玉米种植")
    publish(lib, tmp_path, "b")
    lib.ingest(make_bag(tmp_path, files={}, record={"id": "recall", "withdraws": ["b"], "main": None, "title": None}))
    lib.close()
    for p in cfg2.data_dir.glob("catalogue.sqlite*"):
        p.unlink()
    lib = Library(cfg2)
    assert [i.id for i in lib.items(q="yumi")] == ["a"]
    assert lib.media_path("a", 1, "video.mp4")[0].exists()
    assert lib.ingest(make_bag(tmp_path, record={"id": "b"})).reason == "withdrawn"
    lib.close()


def test_a_rebuilt_catalogue_keeps_newest_first(cfg2, tmp_path: Path) -> None:
    lib = Library(cfg2)
    for n, item_id in enumerate(("first", "second", "third")):
        publish(lib, tmp_path, item_id)
        os.utime(lib.store.dir(item_id, 1), (1_700_000_000 + n, 1_700_000_000 + n))
    lib.close()
    for p in cfg2.data_dir.glob("catalogue.sqlite*"):
        p.unlink()
    lib = Library(cfg2)
    assert [i.id for i in lib.items()] == ["third", "second", "first"]
    lib.close()


def test_a_damaged_catalogue_is_set_aside_and_rebuilt(cfg2, tmp_path: Path) -> None:
    lib = Library(cfg2)
    publish(lib, tmp_path, "a")
    lib.close()
    db = cfg2.data_dir / "catalogue.sqlite"
    with sqlite3.connect(db) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(db.read_bytes())
    data[4096:8192] = os.urandom(4096)  # a torn page, as a power cut on an SD card leaves
    db.write_bytes(bytes(data))
    (cfg2.data_dir / "catalogue.checked").write_text("the boot before the power cut")
    lib = Library(cfg2)
    assert [i.id for i in lib.items()] == ["a"]
    assert list(cfg2.data_dir.glob("catalogue.sqlite.damaged-*"))
    with sqlite3.connect(db) as c:
        assert c.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    lib.close()


def test_leftover_staging_folders_are_removed_on_open(cfg2) -> None:
    lib = Library(cfg2)
    half = lib.store.new_staging()
    (half / "data").mkdir()
    (half / "data" / "video.mp4").write_bytes(b"half a vid")
    lib.close()
    Library(cfg2).close()
    assert not half.exists()


def test_a_verified_store_folder_the_catalogue_missed_is_registered(cfg2, tmp_path: Path) -> None:
    lib = Library(cfg2)
    publish(lib, tmp_path, "a")
    publish(lib, tmp_path, "a", version=2, title="第二版")
    # as if the power failed after the rename of version 2 but before its catalogue commit
    with lib.catalogue.write() as db:
        lib.catalogue.remove(db, "a")
    shutil.copytree(lib.store.dir("a", 2), lib.store.dir("a", 1))
    lib.close()
    lib = Library(cfg2)
    assert lib.item("a").version == 2 and lib.item("a").title == "第二版"
    assert not lib.store.dir("a", 1).exists()  # the superseded folder went
    lib.close()


def test_a_catalogue_row_whose_folder_vanished_is_dropped(cfg2, tmp_path: Path) -> None:
    lib = Library(cfg2)
    publish(lib, tmp_path, "a")
    publish(lib, tmp_path, "b")
    shutil.rmtree(lib.store.dir("a", 1))
    lib.close()
    lib = Library(cfg2)
    assert [i.id for i in lib.items()] == ["b"]
    lib.close()
