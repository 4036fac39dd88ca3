"""Eviction keeps storage.min_free_percent free: expired first, then low priority, then least opened.

The store's disk is made small by measuring it as 100 kB holding what the store holds
(a real small file system needs root to mount); everything else is real.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kiosk import clock
from kiosk.library import Library, eviction
from tests.packages import make_bag, trust_dir

DISK = 100_000
SIZE = 10_000


def small_disk(lib: Library, size: int = DISK) -> None:
    """Measure the store's disk as `size` bytes holding what the store holds."""
    def usage() -> tuple[int, int]:
        used = sum(p.stat().st_size for p in lib.store.root.rglob("*") if p.is_file())
        return size - used, size
    lib.store.usage = usage  # type: ignore[method-assign]


@pytest.fixture
def lib(cfg, tmp_path: Path):
    library = Library(cfg.replace(storage__trust_dir=str(trust_dir(tmp_path)), storage__min_free_percent=30.0))
    small_disk(library)
    yield library
    library.close()


def publish(lib: Library, tmp: Path, item_id: str, **record) -> None:
    bag = make_bag(tmp, files={"video.mp4": item_id.encode().ljust(SIZE, b".")}, record={"id": item_id, **record})
    outcome = lib.ingest(bag)
    assert outcome.outcome == "published", outcome


def stored(lib: Library) -> set[str]:
    return {r["id"] for r in lib.catalogue.rows()}


def test_nothing_is_evicted_while_enough_is_free(lib: Library, tmp_path: Path) -> None:
    publish(lib, tmp_path, "a")
    assert lib.evict() == []
    assert stored(lib) == {"a"}


def test_the_lowest_priority_goes_first_then_the_least_recently_opened(lib: Library, tmp_path: Path) -> None:
    small_disk(lib, 10 * DISK)
    with clock.use(clock.FrozenClock()) as c:
        for i, (item_id, prio) in enumerate([("old-news", 2), ("seen-long-ago", 5), ("seen-lately", 5), ("keep", 5), ("x", 5), ("y", 5), ("z", 5)]):
            publish(lib, tmp_path, item_id, priority=prio)
            c.advance(60)
        lib.mark_opened("seen-lately")
        c.advance(3600)
        lib.mark_opened("keep")
        c.advance(3600)
        small_disk(lib)  # 7 packages of ~10.5 kB: about 26 kB free of 100 kB, under the 30 % wanted
        evicted = lib.evict()
        later = c.now() + 86400
    assert evicted == ["old-news"]
    assert lib.store.usage()[0] >= 30_000
    order = [r["id"] for r in eviction.candidates(lib.catalogue.rows(), "2000-01-01", later, set())]
    assert order == ["seen-long-ago", "x", "y", "z", "seen-lately", "keep"]


def test_expired_items_go_before_anything_else(lib: Library, tmp_path: Path) -> None:
    small_disk(lib, 10 * DISK)
    with clock.use(clock.FrozenClock(1_800_000_000.0)) as c:  # 2027-01-15
        for item_id in ("a", "b", "c", "d", "e", "f"):
            publish(lib, tmp_path, item_id, priority=1)
        publish(lib, tmp_path, "stale-notice", priority=8, expires="2027-01-20")
        c.advance(10 * 86400)
        small_disk(lib)
        assert lib.evict()[0] == "stale-notice"


def test_priority_nine_and_pinned_items_and_open_items_are_never_evicted(lib: Library, tmp_path: Path) -> None:
    small_disk(lib, 10 * DISK)
    publish(lib, tmp_path, "nine", priority=9)
    publish(lib, tmp_path, "pinned", priority=0)
    publish(lib, tmp_path, "watched", priority=0)
    for item_id in ("a", "b", "c", "d"):
        publish(lib, tmp_path, item_id, priority=3)
    lib.pin("pinned")
    small_disk(lib)
    with lib.opening("watched"):
        evicted = lib.evict()
    assert {"nine", "pinned", "watched"}.isdisjoint(evicted)
    assert evicted  # the others made room
    assert {"nine", "pinned", "watched"} <= stored(lib)


def test_whole_packages_go_from_screens_and_disk_together(lib: Library, tmp_path: Path) -> None:
    small_disk(lib, 10 * DISK)
    for item_id in ("a", "b", "c", "d", "e", "f", "g"):
        publish(lib, tmp_path, item_id)
    small_disk(lib)
    evicted = lib.evict()
    assert evicted
    for item_id in evicted:
        assert not lib.store.dir(item_id, 1).exists()
        assert item_id not in [i.id for i in lib.items()]


def test_ingest_evicts_lower_priority_content_to_make_room(lib: Library, tmp_path: Path) -> None:
    for item_id in ("a", "b", "c", "d", "e", "f"):
        publish(lib, tmp_path, item_id, priority=1)
    publish(lib, tmp_path, "important", priority=7)
    assert "important" in stored(lib)
    assert len(stored(lib)) < 7


def test_ingest_does_not_evict_more_important_content(lib: Library, tmp_path: Path) -> None:
    for item_id in ("a", "b", "c", "d", "e", "f"):
        publish(lib, tmp_path, item_id, priority=8)
    bag = make_bag(tmp_path, files={"video.mp4": b"n" * SIZE}, record={"id": "minor", "priority": 2})
    assert lib.ingest(bag).reason == "no_space"
    assert stored(lib) == {"a", "b", "c", "d", "e", "f"}


def test_a_package_bigger_than_the_whole_disk_is_too_large(lib: Library, tmp_path: Path) -> None:
    bag = make_bag(tmp_path, files={"video.mp4": b"n" * (DISK - 20_000)}, record={"id": "huge"})
    assert lib.ingest(bag).reason == "too_large"
