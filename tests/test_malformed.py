"""A corpus of malformed packages: each is rejected with its reason and changes nothing else.

For every case the box already holds one good item; after the bad package is offered,
the catalogue's items, the store's files and the bag on its "USB disk" must be exactly
as before, and the quarantine must record the reason.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import shutil
import tarfile
from pathlib import Path
from typing import Any, Callable

import pytest

from kiosk import clock
from kiosk.library import Library
from tests.packages import DROP, make_bag, make_key, resign, tar_member, trust_dir

BIG = 64 * 1024


def tree_fingerprint(path: Path) -> str:
    """A hash of everything under `path`: names, types, modes, sizes, contents and link targets."""
    h = hashlib.sha256()
    paths = [path] if not path.is_dir() or path.is_symlink() else [path, *sorted(path.rglob("*"))]
    for p in paths:
        st = os.lstat(p)
        h.update(f"{p.relative_to(path.parent)}|{st.st_mode}|{st.st_size}|{st.st_mtime_ns}|{st.st_nlink}\n".encode())
        if p.is_symlink():
            h.update(os.readlink(p).encode())
        elif p.is_file() and not p.is_fifo():
            h.update(p.read_bytes())
    return h.hexdigest()


def store_fingerprint(lib: Library) -> tuple[Any, ...]:
    """What the screens could see: catalogue rows and every file under the store."""
    rows = tuple(sorted((r["id"], r["version"], r["kind"]) for r in lib.catalogue.rows()))
    files = tuple(sorted(
        (str(p.relative_to(lib.store.root)), p.stat().st_size) for p in lib.store.root.rglob("*") if p.is_file()
    ))
    return rows, files, tuple(sorted(i.id for i in lib.items()))


# --- mutations ---------------------------------------------------------------------


def write(rel: str, data: bytes) -> Callable[[Path], None]:
    return lambda d: (d / rel).write_bytes(data)


def append_manifest(line: str) -> Callable[[Path], None]:
    def go(d: Path) -> None:
        with open(d / "manifest-sha256.txt", "a") as f:
            f.write(line)
        resign(d, _key(d))
    return go


def _key(bag: Path) -> Path:
    return bag.parent.parent / "keys" / "publisher.pem"


def symlink(rel: str, target: str) -> Callable[[Path], None]:
    def go(d: Path) -> None:
        p = d / rel
        p.unlink(missing_ok=True)
        p.symlink_to(target)
    return go


def hardlink(d: Path) -> None:
    outside = d.parent / "outside.bin"
    outside.write_bytes((d / "data/video.mp4").read_bytes())
    (d / "data/video.mp4").unlink()
    os.link(outside, d / "data/video.mp4")


def fifo(d: Path) -> None:
    os.mkfifo(d / "data/pipe")


def extra_file(d: Path) -> None:
    (d / "data/extra.txt").write_bytes(b"not listed")


def missing_file(d: Path) -> None:
    (d / "data/video.mp4").unlink()


def truncate(d: Path) -> None:
    p = d / "data/video.mp4"
    p.write_bytes(p.read_bytes()[:10])


def extend(d: Path) -> None:
    with open(d / "data/video.mp4", "ab") as f:
        f.write(b"more")


def flip_byte(d: Path) -> None:
    p = d / "data/video.mp4"
    data = bytearray(p.read_bytes())
    data[5] ^= 0xFF
    p.write_bytes(bytes(data))


def manifest_rewritten_unsigned(d: Path) -> None:
    flip_byte(d)
    p = d / "data/video.mp4"
    (d / "manifest-sha256.txt").write_text(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  data/video.mp4\n")


def tagmanifest_rehashed_unsigned(d: Path) -> None:
    manifest_rewritten_unsigned(d)
    names = ("bagit.txt", "bag-info.txt", "manifest-sha256.txt", "kiosk.json")
    (d / "tagmanifest-sha256.txt").write_text(
        "".join(f"{hashlib.sha256((d / n).read_bytes()).hexdigest()}  {n}\n" for n in names)
    )


def record_changed_after_signing(d: Path) -> None:
    rec = json.loads((d / "kiosk.json").read_text())
    rec["priority"] = 9
    (d / "kiosk.json").write_text(json.dumps(rec))


def signed_by_stranger(d: Path) -> None:
    stranger = make_key(d.parent / "stranger" / "key.pem")
    resign(d, stranger)


def signature(data: bytes) -> Callable[[Path], None]:
    return write("signature.ed25519", data)


def remove(rel: str) -> Callable[[Path], None]:
    def go(d: Path) -> None:
        p = d / rel
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    return go


def kiosk_json_unlisted(d: Path) -> None:
    resign(d, _key(d), tags=["bagit.txt", "bag-info.txt", "manifest-sha256.txt"])


def only_md5(d: Path) -> None:
    data = (d / "data/video.mp4").read_bytes()
    (d / "manifest-sha256.txt").unlink()
    (d / "manifest-md5.txt").write_text(f"{hashlib.md5(data).hexdigest()}  data/video.mp4\n")
    resign(d, _key(d), tags=["bagit.txt", "bag-info.txt", "manifest-md5.txt", "kiosk.json"])


def fetch_outside(d: Path) -> None:
    (d / "fetch.txt").write_text("http://example.org/x 5 ../../x\n")
    resign(d, _key(d), tags=["bagit.txt", "bag-info.txt", "manifest-sha256.txt", "kiosk.json", "fetch.txt"])


def retag(d: Path) -> None:
    resign(d, _key(d))


def then_resign(f: Callable[[Path], None]) -> Callable[[Path], None]:
    def go(d: Path) -> None:
        f(d)
        resign(d, _key(d))
    return go


def raw_record(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


GOOD = {
    "id": "pig-farming", "version": 1, "title": "科学养猪", "description": "冬季", "category": "agriculture",
    "main": "video.mp4",
}

# (case id, make_bag keyword arguments, expected reason)
CASES: list[tuple[str, dict[str, Any], str]] = [
    # paths
    ("manifest_parent_traversal", {"mutate": append_manifest(f"{'0' * 64}  data/../../etc/passwd\n")}, "unsafe_path"),
    ("manifest_absolute_path", {"mutate": append_manifest(f"{'0' * 64}  /etc/passwd\n")}, "unsafe_path"),
    ("manifest_dotdot_only", {"mutate": append_manifest(f"{'0' * 64}  ../escape\n")}, "unsafe_path"),
    ("manifest_outside_data", {"mutate": append_manifest(f"{'0' * 64}  elsewhere/file\n")}, "unsafe_path"),
    ("manifest_tilde_path", {"mutate": append_manifest(f"{'0' * 64}  ~/x\n")}, "unsafe_path"),
    ("payload_symlink_outside", {"mutate": symlink("data/video.mp4", "/etc/passwd")}, "unsafe_path"),
    ("payload_symlink_relative", {"mutate": symlink("data/video.mp4", "../../../outside")}, "unsafe_path"),
    ("payload_dir_symlink", {"mutate": symlink("data/sub", "/etc")}, "unsafe_path"),
    ("tag_file_symlink", {"mutate": symlink("bag-info.txt", "/etc/hostname")}, "unsafe_path"),
    ("payload_hard_link", {"mutate": hardlink}, "unsafe_path"),
    ("payload_fifo", {"mutate": fifo}, "unsafe_path"),
    ("fetch_outside_data", {"mutate": fetch_outside}, "unsafe_path"),
    ("tar_member_escapes", {"tar": True, "tar_extra": [tar_member("../escape.txt", b"x")]}, "unsafe_path"),
    ("tar_member_absolute", {"tar": True, "tar_extra": [tar_member("/tmp/kiosk-escape.txt", b"x")]}, "unsafe_path"),
    ("tar_member_symlink", {"tar": True, "tar_extra": [tar_member("bag/data/link", None, tarfile.SYMTYPE, "/etc/passwd")]}, "unsafe_path"),
    ("tar_member_hard_link", {"tar": True, "tar_extra": [tar_member("bag/data/hl", None, tarfile.LNKTYPE, "/etc/passwd")]}, "unsafe_path"),
    ("tar_member_device", {"tar": True, "tar_extra": [tar_member("bag/data/dev", None, tarfile.CHRTYPE)]}, "unsafe_path"),
    ("tar_member_fifo", {"tar": True, "tar_extra": [tar_member("bag/data/fifo", None, tarfile.FIFOTYPE)]}, "unsafe_path"),
    ("tar_member_nested_escape", {"tar": True, "tar_extra": [tar_member("bag/data/../../../x", b"x")]}, "unsafe_path"),
    # payload
    ("payload_changed_same_size", {"mutate": flip_byte}, "bad_hash"),
    ("payload_changed_no_oxum", {"mutate": flip_byte, "oxum": False}, "bad_hash"),
    ("payload_truncated_no_oxum", {"mutate": truncate, "oxum": False}, "bad_hash"),
    ("payload_extended_no_oxum", {"mutate": extend, "oxum": False}, "bad_hash"),
    ("payload_truncated", {"mutate": truncate}, "bad_bag"),
    ("payload_extra_file", {"mutate": extra_file}, "bad_bag"),
    ("payload_missing_file", {"mutate": missing_file}, "bad_bag"),
    ("tar_payload_changed", {"mutate": flip_byte, "tar": True}, "bad_hash"),
    ("manifest_rewritten_after_signing", {"mutate": manifest_rewritten_unsigned}, "bad_hash"),
    ("record_changed_after_signing", {"mutate": record_changed_after_signing}, "bad_hash"),
    # bag structure
    ("bagit_txt_missing", {"mutate": then_resign(remove("bagit.txt"))}, "bad_bag"),
    ("bagit_txt_garbage", {"mutate": then_resign(write("bagit.txt", b"hello\n"))}, "bad_bag"),
    ("no_sha256_manifest", {"mutate": only_md5}, "bad_bag"),
    ("data_folder_missing", {"mutate": remove("data"), "files": {}}, "bad_bag"),
    ("manifest_line_garbage", {"mutate": append_manifest("this is not a manifest line\n")}, "bad_bag"),
    ("oxum_wrong", {"mutate": then_resign(write("bag-info.txt", b"Payload-Oxum: 1.7\n"))}, "bad_bag"),
    ("kiosk_json_not_in_tag_manifest", {"mutate": kiosk_json_unlisted}, "bad_record"),
    # signatures and trust
    ("signature_missing", {"sign_it": False}, "bad_signature"),
    ("signature_not_base64", {"mutate": signature(b"not base64 at all!!\n")}, "bad_signature"),
    ("signature_wrong_length", {"mutate": signature(base64.b64encode(b"x" * 32) + b"\n")}, "bad_signature"),
    ("signature_two_lines", {"mutate": signature(base64.b64encode(b"x" * 64) + b"\n" + base64.b64encode(b"y" * 64))}, "bad_signature"),
    ("signature_of_other_bytes", {"mutate": signature(base64.b64encode(b"z" * 64) + b"\n")}, "untrusted"),
    ("signed_by_untrusted_key", {"mutate": signed_by_stranger}, "untrusted"),
    ("tag_manifest_rehashed_not_resigned", {"mutate": tagmanifest_rehashed_unsigned}, "untrusted"),
    # the record
    ("record_missing", {"mutate": then_resign(remove("kiosk.json"))}, "bad_record"),
    ("record_not_json", {"kiosk_json": b"{not json"}, "bad_record"),
    ("record_not_utf8", {"kiosk_json": '{"id": "gbk", "title": "科学"}'.encode("gbk")}, "bad_record"),
    ("record_is_a_list", {"kiosk_json": b"[1, 2]"}, "bad_record"),
    ("record_id_uppercase", {"record": {"id": "Pig"}}, "bad_record"),
    ("record_id_slash", {"record": {"id": "../pig"}}, "bad_record"),
    ("record_id_too_long", {"record": {"id": "a" * 65}}, "bad_record"),
    ("record_id_dots", {"record": {"id": ".."}}, "bad_record"),
    ("record_id_missing", {"record": {"id": DROP}}, "bad_record"),
    ("record_id_trailing_newline", {"record": {"id": "pig\n"}}, "bad_record"),
    ("record_category_trailing_newline", {"record": {"category": "health\n"}}, "bad_record"),
    ("record_language_trailing_newline", {"record": {"language": "zh-CN\n"}}, "bad_record"),
    ("recall_id_trailing_newline", {"record": {"withdraws": ["pig\n"], "main": DROP}}, "bad_record"),
    ("record_version_string", {"record": {"version": "2"}}, "bad_record"),
    ("record_version_zero", {"record": {"version": 0}}, "bad_record"),
    ("record_version_float", {"record": {"version": 1.5}}, "bad_record"),
    ("record_title_huge", {"record": {"title": "猪" * 100_000}}, "bad_record"),
    ("record_title_number", {"record": {"title": 5}}, "bad_record"),
    ("record_tags_not_list", {"record": {"tags": "养猪"}}, "bad_record"),
    ("record_priority_ten", {"record": {"priority": 10}}, "bad_record"),
    ("record_priority_bool", {"record": {"priority": True}}, "bad_record"),
    ("record_expires_not_a_date", {"record": {"expires": "next week"}}, "bad_record"),
    ("record_main_not_in_payload", {"record": {"main": "other.mp4"}}, "bad_record"),
    ("record_main_escapes", {"record": {"main": "../../etc/passwd"}}, "bad_record"),
    ("record_main_missing", {"record": {"main": DROP}}, "bad_record"),
    ("record_duplicate_keys", {"kiosk_json": b'{"id": "a", "id": "b", "version": 1, "title": "x", "main": "video.mp4"}'}, "bad_record"),
    ("record_huge_file", {"kiosk_json": raw_record({**GOOD, "description": "x" * 9000, "pad": "y" * BIG})}, "bad_record"),
    ("recall_with_main", {"record": {"withdraws": ["x"], "main": "video.mp4"}}, "bad_record"),
    ("recall_empty_list", {"record": {"withdraws": []}}, "bad_record"),
    # the box's judgement
    ("expired", {"record": {"expires": "2020-01-01"}}, "expired"),
]


@pytest.fixture
def lib(cfg, tmp_path: Path):
    trust = trust_dir(tmp_path)
    library = Library(cfg.replace(storage__trust_dir=str(trust)))
    good = make_bag(tmp_path, record={"id": "already-here", "title": "已有的内容"}, name="good")
    assert library.ingest(good).outcome == "published"
    yield library
    library.close()


def offer(lib: Library, bag: Path, expected: str) -> None:
    """Ingest a bad bag and check that it is rejected and changes nothing but the quarantine."""
    before_store, before_source = store_fingerprint(lib), tree_fingerprint(bag)
    quarantined = lib.summary()["quarantined"]
    outcome = lib.ingest(bag, source="usb")
    assert (outcome.outcome, outcome.reason) == ("rejected", expected), outcome
    assert outcome.detail
    assert store_fingerprint(lib) == before_store
    assert tree_fingerprint(bag) == before_source
    assert lib.summary()["quarantined"] == quarantined + 1
    assert lib.quarantine()[0]["code"] == expected
    assert lib.quarantine()[0]["reason"]  # plain words for the administrator
    assert not list(lib.store.staging.iterdir())


@pytest.mark.parametrize("kwargs,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_it_rejects_a_malformed_package_and_changes_nothing_else(lib: Library, tmp_path: Path, kwargs: dict[str, Any], expected: str) -> None:
    bag = make_bag(tmp_path, **kwargs)
    offer(lib, bag, expected)


def test_it_rejects_a_stale_version_and_keeps_the_newer(lib: Library, tmp_path: Path) -> None:
    assert lib.ingest(make_bag(tmp_path, record={"version": 3})).outcome == "published"
    offer(lib, make_bag(tmp_path, record={"version": 2}), "bad_record")
    assert lib.item("pig-farming").version == 3
    assert "stale" in lib.recent(1)[0]["detail"]


def test_it_rejects_a_withdrawn_id_arriving_again(lib: Library, tmp_path: Path) -> None:
    assert lib.ingest(make_bag(tmp_path)).outcome == "published"
    recall = make_bag(tmp_path, record={"id": "recall-pig", "withdraws": ["pig-farming"], "main": DROP, "title": DROP})
    assert lib.ingest(recall).outcome == "published"
    offer(lib, make_bag(tmp_path), "withdrawn")


def test_it_rejects_a_package_with_no_trusted_key_at_all(lib: Library, tmp_path: Path) -> None:
    bag = make_bag(tmp_path)
    for p in (tmp_path / "trust").iterdir():
        p.unlink()
    offer(lib, bag, "untrusted")


def test_it_rejects_a_package_larger_than_the_limit(cfg, tmp_path: Path) -> None:
    library = Library(cfg.replace(storage__trust_dir=str(trust_dir(tmp_path)), storage__max_package_mb=1))
    offer(library, make_bag(tmp_path, files={"video.mp4": b"v" * (1 << 20 + 1)}), "too_large")


def test_it_rejects_a_package_larger_than_the_free_space(lib: Library, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(lib.store, "usage", lambda: (1000, 10**9))  # a nearly full disk, nothing evictable
    lib.pin("already-here")
    offer(lib, make_bag(tmp_path, files={"video.mp4": b"v" * 5000}), "no_space")


def test_it_rejects_garbage_that_is_not_a_bag(lib: Library, tmp_path: Path) -> None:
    for name, data in (("random.tar", os.urandom(4096)), ("notes.txt", b"hello"), ("empty.tar", b"")):
        p = tmp_path / name
        p.write_bytes(data)
        offer(lib, p, "bad_bag")
    empty = tmp_path / "empty-folder"
    empty.mkdir()
    offer(lib, empty, "bad_bag")


def test_it_rejects_a_compressed_tar(lib: Library, tmp_path: Path) -> None:
    bag = make_bag(tmp_path, tar=True)
    gz = tmp_path / "bag.tar"
    gz.write_bytes(gzip.compress(bag.read_bytes()))
    offer(lib, gz, "bad_bag")


def test_a_corpus_of_at_least_fifty_cases_is_checked() -> None:
    assert len(CASES) + 7 >= 50
    assert len({c[0] for c in CASES}) == len(CASES)


def test_a_rejected_spool_bag_moves_to_quarantine_with_its_reason(lib: Library, cfg, tmp_path: Path) -> None:
    spool = cfg.path("storage.spool_dir")
    spool.mkdir(parents=True, exist_ok=True)
    bag = make_bag(tmp_path, mutate=flip_byte)
    target = spool / "incoming"
    shutil.move(str(bag), target)
    outcome = lib.ingest(target, source="spool")
    assert outcome.reason == "bad_hash"
    assert not target.exists()
    entry = lib.quarantine()[0]
    assert entry["package"] == "package" and entry["source"] == "spool"
    assert (lib.quarantine_dir / entry["entry"] / "package" / "data" / "video.mp4").exists()


def test_old_quarantined_packages_are_pruned_but_their_record_kept(lib: Library, cfg, tmp_path: Path) -> None:
    spool = cfg.path("storage.spool_dir")
    spool.mkdir(parents=True, exist_ok=True)
    bag = make_bag(tmp_path, mutate=flip_byte)
    shutil.move(str(bag), spool / "x")
    with clock.use(clock.FrozenClock(clock.now())) as c:
        lib.ingest(spool / "x", source="spool")
        assert lib.summary()["quarantined"] == 1
        c.advance(31 * 86400)
        lib.evict()  # the housekeeping job prunes the quarantine too
        assert lib.summary()["quarantined"] == 0
        entry = lib.quarantine()[0]
        assert entry["pruned"] and entry["code"] == "bad_hash"
        assert not (lib.quarantine_dir / entry["entry"] / "package").exists()


def test_the_same_bad_disk_offered_twice_is_one_quarantined_package(lib: Library, tmp_path: Path) -> None:
    bag = make_bag(tmp_path, mutate=flip_byte)
    lib.ingest(bag, source="usb")
    lib.ingest(bag, source="usb")
    assert lib.summary()["quarantined"] == 1
    assert lib.quarantine()[0]["times"] == 2
    lib.ingest(make_bag(tmp_path, mutate=flip_byte), source="usb")  # another package
    assert lib.summary()["quarantined"] == 2


# --- unsigned input is cheap to refuse: bounded before the signature is checked ---------


def test_a_tar_of_more_members_than_a_package_may_have_is_refused_at_the_limit(lib: Library, tmp_path: Path) -> None:
    from kiosk.library.bag import MAX_FILES

    bag = make_bag(tmp_path, tar=True, tar_extra=[tar_member(f"bag/data/junk/{i}", b"") for i in range(MAX_FILES + 1)])
    offer(lib, bag, "bad_bag")
    assert f"more than {MAX_FILES}" in lib.quarantine()[0]["detail"]


def test_a_tar_header_too_large_to_be_a_name_is_refused_before_it_is_read(lib: Library, tmp_path: Path) -> None:
    from kiosk.library.bag import MAX_HEADER_BYTES

    long_name = "bag/data/" + "a" * (MAX_HEADER_BYTES * 2)  # written as a pax or GNU long-name header
    offer(lib, make_bag(tmp_path, tar=True, tar_extra=[tar_member(long_name, b"x")]), "bad_bag")
    assert "header" in lib.quarantine()[0]["detail"]


def test_a_manifest_of_more_lines_than_a_package_may_have_files_is_refused(lib: Library, tmp_path: Path) -> None:
    from kiosk.library.bag import MAX_FILES

    lines = "".join(f"{'0' * 64}  data/junk/{i}\n" for i in range(MAX_FILES + 1))
    offer(lib, make_bag(tmp_path, mutate=append_manifest(lines)), "bad_bag")
    assert "lines" in lib.quarantine()[0]["detail"]


def test_tag_files_larger_together_than_the_limit_are_refused(lib: Library, tmp_path: Path) -> None:
    from kiosk.library.bag import MAX_TAG_BYTES, MAX_TAG_TOTAL

    def fat_manifests(d: Path) -> None:
        n = (MAX_TAG_BYTES - 1) // (920 + 128)
        for alg, hexlen in (("md5", 32), ("sha1", 40), ("sha512", 128)):
            (d / f"manifest-{alg}.txt").write_text("".join(f"{'0' * hexlen}  data/{i:06d}{'x' * 900}\n" for i in range(n)))

    bag = make_bag(tmp_path, mutate=fat_manifests)
    assert sum(p.stat().st_size for p in bag.glob("manifest-*.txt")) > MAX_TAG_TOTAL
    offer(lib, bag, "bad_bag")
    assert "together" in lib.quarantine()[0]["detail"]


def test_quarantining_many_packages_from_a_disk_reads_the_records_once(lib: Library, tmp_path: Path, monkeypatch) -> None:
    from kiosk.library import quarantine

    q = quarantine.Quarantine(tmp_path / "q", 30)
    listings = []
    real = os.scandir
    monkeypatch.setattr(quarantine.os, "scandir", lambda p=".": (listings.append(p), real(p))[1])
    for i in range(200):
        q.add(tmp_path / f"junk-{i}", "usb", "bad_bag", "not a bag")
    q.add(tmp_path / "junk-7", "usb", "bad_bag", "not a bag")  # seen again: the same record
    assert len(listings) <= 1  # a listing per add made 1,200 junk bags take 30 s
    assert q.count() == 200 and [r["times"] for r in q.entries() if r["origin"].endswith("junk-7")] == [2]
