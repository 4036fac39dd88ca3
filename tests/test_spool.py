"""The satellite spool: bags taken only when whole, repeats cheap, abandoned bags quarantined."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import threading
import time
from pathlib import Path

import pytest

from kiosk import clock
from kiosk.errors import NotFound
from kiosk.library import Library, spool
from tests.packages import DROP, make_bag, trust_dir


@pytest.fixture
def box(cfg, tmp_path):
    """A configuration trusting the test publisher, with the spool on the store's file system."""
    c = cfg.replace(storage__trust_dir=str(trust_dir(tmp_path)), storage__spool_settle_s=5.0, storage__spool_stale_s=600.0)
    lib = Library(c)
    yield c, lib
    lib.close()


def _spool(cfg) -> Path:
    p = cfg.path("storage.spool_dir")
    p.mkdir(parents=True, exist_ok=True)
    return p


def _pieces(bag: Path) -> list[tuple[str, bytes]]:
    return [(p.relative_to(bag).as_posix(), p.read_bytes()) for p in sorted(bag.rglob("*")) if p.is_file()]


class HashCounter:
    """Counts every byte fed to hashlib's sha256 and hashlib.new while installed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.bytes = 0
        real_new, real_sha256 = hashlib.new, hashlib.sha256
        counter = self

        class Counting:
            def __init__(self, h, data: bytes = b"") -> None:
                self._h = h
                if data:
                    self.update(data)

            def update(self, data) -> None:
                counter.bytes += len(data)
                self._h.update(data)

            def __getattr__(self, name):
                return getattr(self._h, name)

        monkeypatch.setattr(hashlib, "new", lambda name, data=b"", **kw: Counting(real_new(name, **kw), data))
        monkeypatch.setattr(hashlib, "sha256", lambda data=b"", **kw: Counting(real_sha256(**kw), data))


def test_a_bag_written_in_random_order_is_waiting_until_complete_and_settled(box, tmp_path):
    cfg, lib = box
    bag = make_bag(tmp_path, files={"a.mp4": os.urandom(5000), "b/c.pdf": os.urandom(3000)}, record={"main": "a.mp4"}, oxum=False)
    pieces = _pieces(bag)
    random.Random(7).shuffle(pieces)
    target = _spool(cfg) / "bag-one"
    with clock.use(clock.FrozenClock()) as frozen:
        for rel, data in pieces:
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            # each file grows in three writes, with a look at the spool between them
            for part in (data[: len(data) // 3], data[len(data) // 3 : 2 * len(data) // 3], data[2 * len(data) // 3 :]):
                with open(dest, "ab") as f:
                    f.write(part)
                assert spool.scan(cfg, lib) == []
                frozen.advance(1.0)
        assert spool.scan(cfg, lib) == []  # complete, but changed less than spool_settle_s ago
        frozen.advance(cfg.storage.spool_settle_s)
        [outcome] = spool.scan(cfg, lib)
    assert outcome.outcome == "published" and outcome.id == "pig-farming"
    assert not target.exists() and list(_spool(cfg).iterdir()) == []
    assert [f.path for f in lib.item("pig-farming").files] == ["a.mp4", "b/c.pdf"]


def test_a_writer_thread_growing_files_in_any_order_is_taken_only_after_it_finished(box, tmp_path):
    cfg, lib = box
    cfg = cfg.replace(storage__spool_settle_s=2.0)  # far longer than the writer's pauses, even on a busy machine
    files = {f"part{i}.bin": os.urandom(20_000 + i) for i in range(6)}
    bag = make_bag(tmp_path, files=files, record={"main": "part0.bin"}, oxum=False)
    pieces = _pieces(bag)
    random.Random(3).shuffle(pieces)
    finished = threading.Event()

    def writer() -> None:
        for rel, data in pieces:
            dest = _spool(cfg) / "arriving" / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open(dest, "wb") as f:
                for i in range(0, len(data), 4096):
                    f.write(data[i : i + 4096])
                    f.flush()
                    time.sleep(0.002)
        finished.set()

    t = threading.Thread(target=writer)
    t.start()
    outcomes = []
    deadline = time.monotonic() + 30
    while not outcomes and time.monotonic() < deadline:
        outcomes = spool.scan(cfg, lib)
        if not outcomes:
            time.sleep(0.05)
        else:
            assert finished.is_set(), "a bag was taken while it was still being written"
    t.join()
    assert [o.outcome for o in outcomes] == ["published"]
    assert {f.path for f in lib.item("pig-farming").files} == set(files)


def test_a_bag_whose_payload_oxum_is_reached_is_taken_at_once(box, tmp_path):
    cfg, lib = box
    cfg = cfg.replace(storage__spool_settle_s=3600.0)
    bag = make_bag(tmp_path)
    shutil.copytree(bag, _spool(cfg) / "whole")
    [outcome] = spool.scan(cfg, lib)
    assert outcome.outcome == "published"
    assert list(_spool(cfg).iterdir()) == []


def test_a_bag_with_oxum_reached_but_a_half_written_tag_manifest_is_not_taken_early(box, tmp_path):
    cfg, lib = box
    cfg = cfg.replace(storage__spool_settle_s=3600.0)
    bag = make_bag(tmp_path)
    target = _spool(cfg) / "half"
    shutil.copytree(bag, target)
    tm = target / "tagmanifest-sha256.txt"
    full = tm.read_bytes()
    tm.write_bytes(full.splitlines(keepends=True)[0])  # a tag manifest cut after one line
    assert spool.scan(cfg, lib) == []
    tm.write_bytes(full)
    assert [o.outcome for o in spool.scan(cfg, lib)] == ["published"]


def test_a_spool_on_the_store_file_system_is_published_by_rename_without_a_copy(box, tmp_path):
    cfg, lib = box
    bag = make_bag(tmp_path, files={"film.mp4": os.urandom(100_000)}, record={"main": "film.mp4"})
    shutil.copytree(bag, _spool(cfg) / "film")
    inode = os.stat(_spool(cfg) / "film" / "data" / "film.mp4").st_ino
    [outcome] = spool.scan(cfg, lib)
    assert outcome.outcome == "published"
    on_disk, _ = lib.media_path("pig-farming", 1, "film.mp4")
    assert os.stat(on_disk).st_ino == inode


def test_a_carousel_repeating_a_published_bag_ten_times_hashes_its_payload_once(box, tmp_path, monkeypatch):
    cfg, lib = box
    payload = os.urandom(1 << 20)
    bag = make_bag(tmp_path, files={"video.mp4": payload})
    counter = HashCounter(monkeypatch)
    shutil.copytree(bag, _spool(cfg) / "carousel")
    assert [o.outcome for o in spool.scan(cfg, lib)] == ["published"]
    first = counter.bytes
    assert first >= len(payload)
    for turn in range(10):
        shutil.copytree(bag, _spool(cfg) / f"carousel-{turn}")
        assert [o.outcome for o in spool.scan(cfg, lib)] == ["unchanged"]
        assert list(_spool(cfg).iterdir()) == []  # the repeat's spool entry is removed
    assert counter.bytes - first < 10 * 64 * 1024  # tag files only, never the 1 MiB payload again


def test_an_abandoned_partial_bag_is_reported_then_quarantined_never_deleted(box, tmp_path):
    cfg, lib = box
    bag = make_bag(tmp_path, files={"a.mp4": b"a" * 1000, "b.mp4": b"b" * 1000}, record={"main": "a.mp4"})
    target = _spool(cfg) / "never-finished"
    shutil.copytree(bag, target)
    (target / "data" / "b.mp4").unlink()  # the carousel never sent it
    with clock.use(clock.FrozenClock()) as frozen:
        assert spool.scan(cfg, lib) == []
        frozen.advance(cfg.storage.spool_settle_s * 10)
        assert spool.scan(cfg, lib) == []
        [waiting] = spool.status(cfg)["waiting"]
        assert waiting["name"] == "never-finished" and waiting["missing"] == 1
        frozen.advance(cfg.storage.spool_stale_s)
        [outcome] = spool.scan(cfg, lib)
    assert outcome.outcome == "rejected" and outcome.reason == "bad_bag"
    assert not target.exists()
    report = spool.status(cfg)
    assert report["waiting"] == [] and report["abandoned"][0]["name"] == "never-finished"
    assert lib.summary()["quarantined"] == 1
    [entry] = lib.quarantine()
    kept = lib.quarantine_dir / entry["entry"] / "package" / "data" / "a.mp4"
    assert kept.read_bytes() == b"a" * 1000  # moved, not deleted


def test_what_the_watcher_knows_survives_a_restart(box, tmp_path):
    cfg, lib = box
    bag = make_bag(tmp_path, oxum=False)
    target = _spool(cfg) / "slow"
    shutil.copytree(bag, target)
    with clock.use(clock.FrozenClock()) as frozen:
        assert spool.scan(cfg, lib) == []
        state = json.loads((cfg.data_dir / spool.STATE_FILE).read_text())
        assert "slow" in state["entries"]
        lib.close()
        frozen.advance(cfg.storage.spool_settle_s)
        restarted = Library(cfg)  # a new process would read the same state file
        try:
            assert [o.outcome for o in spool.scan(cfg, restarted)] == ["published"]
        finally:
            restarted.close()


def test_a_damaged_bag_in_the_spool_is_quarantined_with_its_reason_and_leaves_the_spool(box, tmp_path):
    cfg, lib = box
    def damage(d: Path) -> None:
        f = d / "data" / "video.mp4"
        f.write_bytes(b"x" * f.stat().st_size)  # same size, other bytes

    shutil.copytree(make_bag(tmp_path, mutate=damage), _spool(cfg) / "damaged")
    [outcome] = spool.scan(cfg, lib)
    assert outcome.outcome == "rejected" and outcome.reason == "bad_hash"
    assert list(_spool(cfg).iterdir()) == []
    assert lib.summary()["quarantined"] == 1
    with pytest.raises(NotFound):
        lib.item("pig-farming")


def test_a_tar_package_in_the_spool_is_taken_once_its_size_settles(box, tmp_path):
    cfg, lib = box
    tar = make_bag(tmp_path, tar=True)
    with clock.use(clock.FrozenClock()) as frozen:
        shutil.copy(tar, _spool(cfg) / "pkg.tar")
        assert spool.scan(cfg, lib) == []
        frozen.advance(cfg.storage.spool_settle_s)
        assert [o.outcome for o in spool.scan(cfg, lib)] == ["published"]
    assert list(_spool(cfg).iterdir()) == []


def test_a_withdrawal_received_by_satellite_takes_the_item_off_the_screens(box, tmp_path):
    cfg, lib = box
    shutil.copytree(make_bag(tmp_path), _spool(cfg) / "item")
    assert [o.outcome for o in spool.scan(cfg, lib)] == ["published"]
    recall = make_bag(tmp_path, record={"id": "recall-pig", "withdraws": ["pig-farming"], "main": DROP, "title": DROP})
    shutil.copytree(recall, _spool(cfg) / "recall")
    assert [o.outcome for o in spool.scan(cfg, lib)] == ["published"]
    with pytest.raises(NotFound):
        lib.item("pig-farming")
    # the carousel sends the withdrawn item again: refused
    shutil.copytree(make_bag(tmp_path), _spool(cfg) / "item-again")
    [again] = spool.scan(cfg, lib)
    assert again.outcome == "rejected" and again.reason == "withdrawn"
    assert list(_spool(cfg).iterdir()) == []


def test_a_damaged_state_file_costs_one_settle_period_and_nothing_else(box, tmp_path):
    cfg, lib = box
    (cfg.data_dir / spool.STATE_FILE).write_text("{not json")
    shutil.copytree(make_bag(tmp_path, oxum=False), _spool(cfg) / "bag")
    with clock.use(clock.FrozenClock()) as frozen:
        assert spool.scan(cfg, lib) == []
        frozen.advance(cfg.storage.spool_settle_s)
        assert [o.outcome for o in spool.scan(cfg, lib)] == ["published"]
    assert json.loads((cfg.data_dir / spool.STATE_FILE).read_text())["entries"] == {}


def test_a_bag_the_library_finds_still_arriving_is_asked_about_less_often_until_it_grows(box, tmp_path):
    cfg, lib = box
    bag = make_bag(tmp_path, files={"a.mp4": b"a" * 5000}, record={"main": "a.mp4"})
    target = _spool(cfg) / "short"
    shutil.copytree(bag, target)
    with open(target / "data" / "a.mp4", "r+b") as f:
        f.truncate(3000)  # listed and present, but short of its Payload-Oxum
    settle = cfg.storage.spool_settle_s
    with clock.use(clock.FrozenClock()) as frozen:
        assert spool.scan(cfg, lib) == []
        frozen.advance(settle)
        assert [o.outcome for o in spool.scan(cfg, lib)] == ["waiting"]
        frozen.advance(settle)
        assert spool.scan(cfg, lib) == []  # held: asked again after 2x settle, then 4x ...
        frozen.advance(settle)
        assert [o.outcome for o in spool.scan(cfg, lib)] == ["waiting"]
        frozen.advance(settle * 2)
        assert spool.scan(cfg, lib) == []
        (target / "data" / "a.mp4").write_bytes(b"a" * 5000)  # the rest arrives
        assert [o.outcome for o in spool.scan(cfg, lib)] == ["published"]


def test_a_file_of_full_size_still_full_of_holes_is_not_taken_early(box, tmp_path):
    cfg, lib = box
    payload = os.urandom(1 << 20)
    bag = make_bag(tmp_path, files={"video.mp4": payload})
    target = _spool(cfg) / "sparse"
    shutil.copytree(bag, target)
    film = target / "data" / "video.mp4"
    with open(film, "r+b") as f:  # the receiver made it full size and has filled only its start
        f.truncate(0)
        f.write(payload[:4096])
        f.truncate(len(payload))
    if os.stat(film).st_blocks * 512 >= len(payload):
        pytest.skip("this file system does not keep holes")
    with clock.use(clock.FrozenClock()):
        assert spool.scan(cfg, lib) == []  # Payload-Oxum reached by size, but not by content
        film.write_bytes(payload)
        assert [o.outcome for o in spool.scan(cfg, lib)] == ["published"]


def test_the_device_page_sees_how_far_the_bag_being_published_is(box, tmp_path, monkeypatch):
    cfg, lib = box
    shutil.copytree(make_bag(tmp_path, files={"film.mp4": os.urandom(3 << 20)}, record={"main": "film.mp4"}), _spool(cfg) / "film")
    real, seen = lib.ingest, []

    def watched(path, source="cli", progress=None):
        def step(done, total, label):
            progress(done, total, label)
            seen.append(spool.status(cfg)["taking"])

        return real(path, source, step)

    monkeypatch.setattr(lib, "ingest", watched)
    assert [o.outcome for o in spool.scan(cfg, lib)] == ["published"]
    assert seen and seen[-1]["name"] == "film" and seen[-1]["done_bytes"] == seen[-1]["total_bytes"] == 3 << 20
    assert spool.status(cfg)["taking"] is None
