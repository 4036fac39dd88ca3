"""Ingest: what a good package becomes, versions, recalls, the spool, and `kiosk ingest`."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import bagit
import pytest
from cryptography.hazmat.primitives import serialization

from kiosk.library import Library
from tests.packages import DROP, make_bag, trust_dir
from tests.test_malformed import flip_byte, tree_fingerprint

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def lib(cfg, tmp_path: Path):
    library = Library(cfg.replace(storage__trust_dir=str(trust_dir(tmp_path))))
    yield library
    library.close()


def test_it_publishes_a_signed_folder_bag_and_lists_it(lib: Library, tmp_path: Path) -> None:
    bag = make_bag(tmp_path)
    before = tree_fingerprint(bag)
    outcome = lib.ingest(bag)
    assert (outcome.outcome, outcome.id, outcome.version) == ("published", "pig-farming", 1)
    item = lib.item("pig-farming")
    assert item.title == "科学养猪" and item.category == "agriculture"
    path, entry = lib.media_path("pig-farming", 1, "video.mp4")
    assert path.read_bytes() == (bag / "data/video.mp4").read_bytes()
    assert entry.media_type == "video/mp4"
    assert tree_fingerprint(bag) == before  # the source is never modified


def test_it_publishes_a_signed_tar_bag(lib: Library, tmp_path: Path) -> None:
    files = {"video.mp4": os.urandom(3 << 20), "sub/poster.png": b"\x89PNG fake"}
    bag = make_bag(tmp_path, files=files, record={"poster": "sub/poster.png"}, tar=True)
    assert lib.ingest(bag).outcome == "published"
    item = lib.item("pig-farming")
    assert item.poster == "sub/poster.png"
    assert {f.path for f in item.files} == {"video.mp4", "sub/poster.png"}
    assert lib.media_path("pig-farming", 1, "video.mp4")[0].read_bytes() == files["video.mp4"]


def _openssl_key(tmp: Path) -> tuple[Path, Path]:
    key, pub = tmp / "openssl.pem", tmp / "openssl-trust" / "openssl.pub"
    pub.parent.mkdir()
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(key)], check=True)
    subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-out", str(pub)], check=True)
    return key, pub.parent


def test_a_bag_made_by_the_library_of_congress_tool_with_an_openssl_key_is_published(cfg, tmp_path: Path) -> None:
    key, trust = _openssl_key(tmp_path)
    folder = tmp_path / "loc"
    folder.mkdir()
    (folder / "lesson.mp4").write_bytes(os.urandom(100_000))
    bag = bagit.make_bag(str(folder), {"Source-Organization": "县文化馆"}, checksums=["sha256"])
    record = {"id": "loc-bag", "version": 1, "title": "玉米种植", "category": "agriculture", "main": "lesson.mp4"}
    (folder / "kiosk.json").write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
    bag.save(manifests=True)  # rewrites the tag manifests, now listing kiosk.json too
    private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    signature = base64.b64encode(private.sign((folder / "tagmanifest-sha256.txt").read_bytes()))  # type: ignore[union-attr]
    (folder / "signature.ed25519").write_bytes(signature + b"\n")
    library = Library(cfg.replace(storage__trust_dir=str(trust)))
    assert library.ingest(folder).outcome == "published"
    assert library.item("loc-bag").main == "lesson.mp4"


def test_a_repeat_is_unchanged_and_hashes_no_payload(lib: Library, tmp_path: Path) -> None:
    bag = make_bag(tmp_path)
    assert lib.ingest(bag).outcome == "published"
    flip_byte(bag)  # were the payload hashed again, this would be bad_hash
    assert lib.ingest(bag).outcome == "unchanged"


def test_a_higher_version_replaces_the_old_one_in_one_step(lib: Library, tmp_path: Path) -> None:
    lib.ingest(make_bag(tmp_path))
    lib.pin("pig-farming")
    new = make_bag(tmp_path, files={"video.mp4": b"version two"}, record={"version": 2, "title": "科学养猪（新版）"})
    assert lib.ingest(new).outcome == "published"
    item = lib.item("pig-farming")
    assert (item.version, item.title, item.pinned) == (2, "科学养猪（新版）", True)
    assert [i.id for i in lib.items()] == ["pig-farming"]
    assert not lib.store.dir("pig-farming", 1).exists()
    assert lib.media_path("pig-farming", 2, "video.mp4")[0].read_bytes() == b"version two"
    with pytest.raises(LookupError):
        lib.media_path("pig-farming", 1, "video.mp4")


def test_a_recall_removes_the_item_from_screens_and_store_and_is_not_listed(lib: Library, tmp_path: Path) -> None:
    lib.ingest(make_bag(tmp_path))
    lib.ingest(make_bag(tmp_path, record={"id": "keep-me", "title": "留下"}))
    recall = make_bag(tmp_path, files={}, record={"id": "recall-2026-01", "withdraws": ["pig-farming"], "main": DROP, "title": DROP})
    outcome = lib.ingest(recall)
    assert outcome.outcome == "published"
    assert [i.id for i in lib.items()] == ["keep-me"]
    assert not lib.store.dir("pig-farming", 1).exists()
    with pytest.raises(LookupError):
        lib.item("recall-2026-01")
    assert lib.ingest(recall).outcome == "unchanged"


def test_a_withdrawn_id_comes_back_only_with_a_higher_version(lib: Library, tmp_path: Path) -> None:
    lib.ingest(make_bag(tmp_path, record={"version": 2}))
    lib.ingest(make_bag(tmp_path, files={}, record={"id": "recall", "withdraws": ["pig-farming"], "main": DROP, "title": DROP}))
    assert lib.ingest(make_bag(tmp_path, record={"version": 1})).reason == "withdrawn"
    assert lib.ingest(make_bag(tmp_path, record={"version": 2})).reason == "withdrawn"
    assert lib.ingest(make_bag(tmp_path, record={"version": 3})).outcome == "published"
    assert lib.item("pig-farming").version == 3


def test_a_recall_that_arrives_first_still_refuses_the_first_version(lib: Library, tmp_path: Path) -> None:
    lib.ingest(make_bag(tmp_path, files={}, record={"id": "recall", "withdraws": ["pig-farming"], "main": DROP, "title": DROP}))
    assert lib.ingest(make_bag(tmp_path)).reason == "withdrawn"


def test_a_spool_bag_on_the_store_file_system_is_published_by_rename(lib: Library, cfg, tmp_path: Path) -> None:
    spool = cfg.path("storage.spool_dir")
    spool.mkdir(parents=True)
    bag = make_bag(tmp_path, files={"video.mp4": os.urandom(1 << 20)})
    entry = spool / "bag"
    shutil.move(str(bag), entry)
    inode = (entry / "data/video.mp4").stat().st_ino
    assert lib.ingest(entry, source="spool").outcome == "published"
    assert not entry.exists()
    assert lib.media_path("pig-farming", 1, "video.mp4")[0].stat().st_ino == inode  # not copied


def test_a_spool_tar_is_copied_and_removed_from_the_spool(lib: Library, cfg, tmp_path: Path) -> None:
    spool = cfg.path("storage.spool_dir")
    spool.mkdir(parents=True)
    bag = make_bag(tmp_path, tar=True)
    entry = spool / "bag.tar"
    shutil.move(str(bag), entry)
    assert lib.ingest(entry, source="spool").outcome == "published"
    assert not entry.exists()


def test_a_repeat_in_the_spool_is_unchanged_and_removed(lib: Library, cfg, tmp_path: Path) -> None:
    lib.ingest(make_bag(tmp_path))
    spool = cfg.path("storage.spool_dir")
    spool.mkdir(parents=True)
    entry = spool / "repeat"
    shutil.move(str(make_bag(tmp_path)), entry)
    assert lib.ingest(entry, source="spool").outcome == "unchanged"
    assert not entry.exists()


def test_a_spool_bag_still_arriving_is_waiting_and_left_alone(lib: Library, cfg, tmp_path: Path) -> None:
    spool = cfg.path("storage.spool_dir")
    spool.mkdir(parents=True)
    entry = spool / "arriving"
    shutil.move(str(make_bag(tmp_path, files={"a.mp4": b"a", "video.mp4": b"v"})), entry)
    (entry / "data/a.mp4").unlink()
    outcome = lib.ingest(entry, source="spool")
    assert outcome.outcome == "waiting"
    assert entry.exists() and lib.summary()["quarantined"] == 0
    assert lib.items() == []


def test_a_usb_folder_of_bags_is_ingested_bag_by_bag(lib: Library, tmp_path: Path) -> None:
    usb = tmp_path / "usb" / "kiosk"
    usb.mkdir(parents=True)
    shutil.move(str(make_bag(tmp_path, record={"id": "a"})), usb / "a")
    shutil.move(str(make_bag(tmp_path, record={"id": "b"}, tar=True)), usb / "b.tar")
    shutil.move(str(make_bag(tmp_path, record={"id": "c"}, mutate=flip_byte)), usb / "c")
    before = tree_fingerprint(usb)
    outcomes = lib.ingest_tree(tmp_path / "usb", source="usb")
    assert [(o.id, o.outcome) for o in outcomes] == [("a", "published"), ("b", "published"), ("c", "rejected")]
    assert tree_fingerprint(usb) == before
    assert lib.recent(1)[0]["reason"] == "bad_hash"


def test_expired_items_leave_the_screens_and_expire_names_them(lib: Library, tmp_path: Path) -> None:
    from kiosk import clock

    with clock.use(clock.FrozenClock(1_800_000_000.0)) as c:  # 2027-01-15
        lib.ingest(make_bag(tmp_path, record={"expires": "2027-01-20"}))
        assert [i.id for i in lib.items()] == ["pig-farming"]
        assert lib.expire() == []
        c.advance(10 * 86400)
        assert lib.items() == [] and lib.categories() == []
        assert lib.expire() == ["pig-farming"]
        assert lib.expire() == []


def _kiosk(*args: str, cfg_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kiosk.cli", *args, "--config", str(cfg_path)],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )


def _with_trust(cfg_path: Path, trust: Path) -> Path:
    text = cfg_path.read_text(encoding="utf-8").replace("[storage]", f'[storage]\ntrust_dir = "{trust}"')
    cfg_path.write_text(text, encoding="utf-8")
    return cfg_path


def test_kiosk_ingest_prints_one_line_per_package_and_exits_1_on_a_rejection(cfg_path: Path, tmp_path: Path) -> None:
    _with_trust(cfg_path, trust_dir(tmp_path))
    good, bad = make_bag(tmp_path), make_bag(tmp_path, record={"id": "bad"}, mutate=flip_byte)
    done = _kiosk("ingest", str(good), cfg_path=cfg_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"published  pig-farming v1 {good}"]
    done = _kiosk("ingest", str(good), str(bad), "--json", cfg_path=cfg_path)
    assert done.returncode == 1
    assert [(o["outcome"], o["reason"]) for o in json.loads(done.stdout)] == [("unchanged", None), ("rejected", "bad_hash")]


def test_kiosk_ingest_says_plainly_when_a_path_does_not_exist(cfg_path: Path, tmp_path: Path) -> None:
    done = _kiosk("ingest", str(tmp_path / "no-such-disk"), cfg_path=cfg_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == f"kiosk: {tmp_path / 'no-such-disk'} does not exist"
    assert "Traceback" not in done.stderr


def test_a_spool_bag_that_never_completes_is_quarantined_not_deleted(lib: Library, cfg, tmp_path: Path) -> None:
    spool = cfg.path("storage.spool_dir")
    spool.mkdir(parents=True)
    entry = spool / "stuck"
    shutil.move(str(make_bag(tmp_path)), entry)
    (entry / "data/video.mp4").unlink()
    outcome = lib.reject(entry, "spool", "incomplete", "still incomplete after a day")
    assert (outcome.outcome, outcome.reason) == ("rejected", "bad_bag")
    assert not entry.exists()
    record = lib.quarantine()[0]
    assert record["reason"] == "内容包一直没有接收完整。" and record["package"] == "package"
    assert (lib.quarantine_dir / record["entry"] / "package" / "bagit.txt").exists()


def test_a_package_that_cannot_be_read_is_rejected_plainly(lib: Library, tmp_path: Path) -> None:
    bag = make_bag(tmp_path)
    (bag / "data/video.mp4").chmod(0)
    if os.access(bag / "data/video.mp4", os.R_OK):
        pytest.skip("running as root: a file without permissions is still readable")
    outcome = lib.ingest(bag, source="usb")
    assert (outcome.outcome, outcome.reason) == ("rejected", "bad_bag")


def test_nothing_is_visible_while_a_package_is_still_being_verified(lib: Library, tmp_path: Path) -> None:
    lib.ingest(make_bag(tmp_path, record={"version": 1}))
    seen = []

    def progress(done: int, total: int, label: str) -> None:
        # mid-way through version 2: the screens still see version 1 only
        seen.append((lib.item("pig-farming").version, [i.version for i in lib.items()]))
        with pytest.raises(LookupError):
            lib.media_path("pig-farming", 2, label)

    files = {f"part{i}.mp4": os.urandom(9 << 20) for i in range(2)}
    bag = make_bag(tmp_path, files=files, record={"version": 2, "main": "part0.mp4"})
    assert lib.ingest(bag, progress=progress).outcome == "published"
    assert len(seen) >= 2 and all(s == (1, [1]) for s in seen)
    assert lib.item("pig-farming").version == 2


def test_a_file_system_without_sendfile_still_gets_a_verified_copy(lib: Library, tmp_path: Path, monkeypatch) -> None:
    import errno

    def no_sendfile(*args: object) -> int:
        raise OSError(errno.EINVAL, "sendfile is not supported here")

    monkeypatch.setattr(os, "sendfile", no_sendfile)
    payload = os.urandom(3 << 20)
    assert lib.ingest(make_bag(tmp_path, files={"video.mp4": payload}, tar=True)).outcome == "published"
    assert lib.media_path("pig-farming", 1, "video.mp4")[0].read_bytes() == payload
