"""Reading bags: folders and tars, manifests as RFC 8493 writes them, unsafe paths refused."""

from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path

import pytest

from kiosk.errors import PackageRejected, UnsafePath
from kiosk.library.bag import decode_path, encode_path, open_bag, validate_bag
from tests.packages import make_bag, tar_folder, tar_member, write_bag
from tests.conftest import missing

FILES = {"video.mp4": b"v" * 1000, "sub dir/说明.txt": b"hello\n", "poster.jpg": b"\xff\xd8jpeg"}


def plain_bag(tmp: Path, files: dict[str, bytes] = FILES, **kw) -> Path:
    return write_bag(tmp / "plain", files, None, None, **kw)


def rejected(path: Path) -> PackageRejected:
    with pytest.raises(PackageRejected) as e:
        validate_bag(path)
    return e.value


# --- opening ------------------------------------------------------------------


def test_it_opens_a_folder_bag_and_lists_its_payload_without_reading_it(tmp_path: Path) -> None:
    bag = open_bag(plain_bag(tmp_path))
    assert bag.version == (1, 0)
    assert not bag.is_tar
    assert bag.oxum == (sum(len(d) for d in FILES.values()), 3)
    assert set(bag.payload) == {f"data/{p}" for p in FILES}
    assert bag.payload["data/video.mp4"] == {"sha256": hashlib.sha256(FILES["video.mp4"]).hexdigest()}
    assert bag.present() == {f"data/{p}": len(d) for p, d in FILES.items()}
    assert set(bag.tag_manifest) == {"bagit.txt", "bag-info.txt", "manifest-sha256.txt"}
    assert ("Bagging-Date", "2026-01-01") in bag.bag_info


@pytest.mark.parametrize("top", ["bag", ""])
def test_it_opens_a_tar_with_one_folder_or_the_bag_at_its_root(tmp_path: Path, top: str) -> None:
    tar = tar_folder(plain_bag(tmp_path), tmp_path / "b.tar", top=top)
    with open_bag(tar) as bag:
        assert bag.is_tar
        assert bag.present() == {f"data/{p}": len(d) for p, d in FILES.items()}
        with bag.open_payload("data/sub dir/说明.txt") as f:
            assert f.read() == b"hello\n"
        bag.check_tags()
        bag.check_complete()
    assert validate_bag(tar) == []


def test_opening_and_checking_does_not_hash_the_payload(tmp_path: Path) -> None:
    # same size, other bytes: only hashing can tell, and open/check_* must not hash
    folder = plain_bag(tmp_path)
    (folder / "data/video.mp4").write_bytes(b"w" * 1000)
    with open_bag(folder) as bag:
        bag.check_tags()
        bag.check_complete()
    assert rejected(folder).reason == "bad_hash"


def test_read_tag_returns_tag_bytes_and_refuses_over_the_limit(tmp_path: Path) -> None:
    bag = open_bag(plain_bag(tmp_path))
    assert bag.read_tag("bagit.txt", 100).startswith(b"BagIt-Version: 1.0")
    with pytest.raises(PackageRejected):
        bag.read_tag("bag-info.txt", 10)
    with pytest.raises(PackageRejected):
        bag.read_tag("kiosk.json", 100)
    assert not bag.has_tag("kiosk.json")


# --- manifests --------------------------------------------------------------------


def test_manifest_paths_with_cr_lf_and_percent_are_percent_encoded() -> None:
    name = "data/a%b\nc\rd.txt"
    assert encode_path(name) == "data/a%25b%0Ac%0Dd.txt"
    assert decode_path(encode_path(name)) == name
    assert decode_path("data/%7Etilde%0a") == "data/%7Etilde\n"


def test_it_reads_a_file_whose_name_has_a_newline_and_a_percent(tmp_path: Path) -> None:
    files = {"50%\noff.txt": b"sale"}
    folder = plain_bag(tmp_path, files)
    (folder / "manifest-sha256.txt").write_text(f"{hashlib.sha256(b'sale').hexdigest()}  data/50%25%0Aoff.txt\n")
    bag = open_bag(folder)
    assert list(bag.payload) == ["data/50%\noff.txt"]
    bag.check_complete()


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"])
def test_manifests_may_end_lines_with_lf_crlf_or_cr(tmp_path: Path, ending: str) -> None:
    folder = plain_bag(tmp_path)
    for name in ("manifest-sha256.txt", "bag-info.txt", "bagit.txt"):
        p = folder / name
        p.write_bytes(p.read_bytes().replace(b"\n", ending.encode()))
    (folder / "tagmanifest-sha256.txt").unlink()
    assert validate_bag(folder) == []
    assert set(open_bag(folder).payload) == {f"data/{p}" for p in FILES}


def test_it_accepts_several_algorithms_and_checks_them_all(tmp_path: Path) -> None:
    folder = plain_bag(tmp_path, algorithms=("sha256", "sha512", "md5"))
    assert open_bag(folder).algorithms == ["md5", "sha256", "sha512"]
    validate_bag(folder)
    lines = (folder / "manifest-md5.txt").read_text().splitlines()
    lines[0] = "0" * 32 + lines[0][32:]
    (folder / "manifest-md5.txt").write_text("\n".join(lines) + "\n")
    assert rejected(folder).reason == "bad_hash"


def test_it_refuses_payload_manifests_that_list_different_files(tmp_path: Path) -> None:
    folder = plain_bag(tmp_path, algorithms=("sha256", "sha512"))
    lines = (folder / "manifest-sha512.txt").read_text().splitlines()
    (folder / "manifest-sha512.txt").write_text("\n".join(lines[1:]) + "\n")
    assert rejected(folder).reason == "bad_bag"


def test_a_bom_in_bagit_txt_is_an_error(tmp_path: Path) -> None:
    folder = plain_bag(tmp_path)
    (folder / "bagit.txt").write_bytes(b"\xef\xbb\xbf" + (folder / "bagit.txt").read_bytes())
    assert rejected(folder).reason == "bad_bag"


@pytest.mark.parametrize("line", ["BagIt-Version: 2.0", "BagIt-Version : 1.0", "BagIt-Version: 1", "Version: 1.0"])
def test_it_refuses_a_bagit_txt_it_does_not_understand(tmp_path: Path, line: str) -> None:
    folder = plain_bag(tmp_path)
    (folder / "bagit.txt").write_text(f"{line}\nTag-File-Character-Encoding: UTF-8\n")
    assert rejected(folder).reason == "bad_bag"


@pytest.mark.parametrize("what", ["missing file", "extra file", "wrong oxum", "no data folder", "no manifest", "bad line"])
def test_it_refuses_an_incomplete_or_malformed_bag(tmp_path: Path, what: str) -> None:
    folder = plain_bag(tmp_path)
    (folder / "tagmanifest-sha256.txt").unlink()
    if what == "missing file":
        (folder / "data/video.mp4").unlink()
    elif what == "extra file":
        (folder / "data/extra.bin").write_bytes(b"x")
    elif what == "wrong oxum":
        (folder / "bag-info.txt").write_text("Payload-Oxum: 1.3\n")
    elif what == "no data folder":
        for p in sorted(folder.joinpath("data").rglob("*"), reverse=True):
            p.rmdir() if p.is_dir() else p.unlink()
        folder.joinpath("data").rmdir()
    elif what == "no manifest":
        (folder / "manifest-sha256.txt").unlink()
    elif what == "bad line":
        (folder / "manifest-sha256.txt").write_text("abc data/video.mp4\n")
    assert rejected(folder).reason == "bad_bag"


def test_a_changed_tag_file_is_a_bad_hash(tmp_path: Path) -> None:
    folder = plain_bag(tmp_path)
    (folder / "bag-info.txt").write_text((folder / "bag-info.txt").read_text() + "Contact-Name: someone\n")
    assert rejected(folder).reason == "bad_hash"


def test_system_litter_in_data_is_a_warning_not_a_refusal(tmp_path: Path) -> None:
    folder = plain_bag(tmp_path)
    (folder / "data/.DS_Store").write_bytes(b"mac")
    (folder / "data/._video.mp4").write_bytes(b"apple double")
    warnings = validate_bag(folder)
    assert any(".DS_Store" in w for w in warnings)
    assert set(open_bag(folder).payload) == {f"data/{p}" for p in FILES}


# --- unsafe paths in folders -----------------------------------------------------------


@pytest.mark.parametrize("path", ["../escape.txt", "data/../../escape.txt", "/etc/passwd", "~/x", "data//x", "data/./x", "bagit.txt"])
def test_manifest_paths_outside_data_are_unsafe(tmp_path: Path, path: str) -> None:
    folder = plain_bag(tmp_path)
    with (folder / "manifest-sha256.txt").open("a") as f:
        f.write(f"{'0' * 64}  {path}\n")
    assert rejected(folder).reason == "unsafe_path"


def test_a_symlink_in_a_folder_bag_is_unsafe(tmp_path: Path) -> None:
    folder = plain_bag(tmp_path)
    (folder / "data/video.mp4").unlink()
    (folder / "data/video.mp4").symlink_to("/etc/passwd")
    with pytest.raises(UnsafePath):
        open_bag(folder)


def test_a_symlinked_folder_inside_data_is_unsafe(tmp_path: Path) -> None:
    folder = plain_bag(tmp_path)
    (folder / "data/link").symlink_to(tmp_path)
    with pytest.raises(UnsafePath):
        open_bag(folder)


def test_a_bag_that_is_itself_a_symlink_is_unsafe(tmp_path: Path) -> None:
    folder = plain_bag(tmp_path)
    (tmp_path / "link").symlink_to(folder)
    with pytest.raises(UnsafePath):
        open_bag(tmp_path / "link")


def test_a_fifo_in_a_folder_bag_is_unsafe(tmp_path: Path) -> None:
    folder = plain_bag(tmp_path)
    os.mkfifo(folder / "data/pipe")
    with pytest.raises(UnsafePath):
        open_bag(folder)


def test_a_hard_link_in_a_folder_bag_is_unsafe(tmp_path: Path) -> None:
    folder = plain_bag(tmp_path)
    os.link(folder / "data/video.mp4", tmp_path / "outside.mp4")
    with pytest.raises(UnsafePath):
        open_bag(folder)


@pytest.mark.needs(os.geteuid() == 0, "making a device node needs root")
def test_a_device_file_in_a_folder_bag_is_unsafe(tmp_path: Path) -> None:
    folder = plain_bag(tmp_path)
    os.mknod(folder / "data/null", 0o600 | 0o020000, os.makedev(1, 3))
    with pytest.raises(UnsafePath):
        open_bag(folder)


# --- unsafe tars -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "member",
    [
        tar_member("bag/data/../../escape.txt", b"x"),
        tar_member("../escape.txt", b"x"),
        tar_member("/etc/cron.d/evil", b"x"),
        tar_member("bag/data/link", None, tarfile.SYMTYPE, "/etc/passwd"),
        tar_member("bag/data/inside-link", None, tarfile.SYMTYPE, "video.mp4"),
        tar_member("bag/data/hard", None, tarfile.LNKTYPE, "bag/data/video.mp4"),
        tar_member("bag/data/dev", None, tarfile.CHRTYPE),
        tar_member("bag/data/blk", None, tarfile.BLKTYPE),
        tar_member("bag/data/fifo", None, tarfile.FIFOTYPE),
    ],
    ids=["dotdot-in-data", "dotdot-top", "absolute", "symlink-out", "symlink-in", "hardlink", "chardev", "blockdev", "fifo"],
)
def test_unsafe_tar_members_are_refused_before_anything_is_written(tmp_path: Path, member: tuple) -> None:
    tar = tar_folder(plain_bag(tmp_path), tmp_path / "evil.tar", top="bag", extra=[member])
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(UnsafePath):
        open_bag(tar)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not Path("/etc/cron.d/evil").exists()


def test_a_tar_with_two_top_folders_is_a_bad_bag(tmp_path: Path) -> None:
    tar = tar_folder(plain_bag(tmp_path), tmp_path / "two.tar", top="bag", extra=[tar_member("other/x", b"x")])
    with pytest.raises(PackageRejected) as e:
        open_bag(tar)
    assert e.value.reason == "bad_bag"


def test_a_compressed_or_truncated_tar_is_a_bad_bag(tmp_path: Path) -> None:
    tar = tar_folder(plain_bag(tmp_path), tmp_path / "b.tar")
    data = tar.read_bytes()
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(data[: len(data) // 3])
    gz = tmp_path / "b.tar.gz"
    with tarfile.open(gz, "w:gz") as t:
        t.add(tmp_path / "plain", arcname="plain")
    for p in (truncated, gz):
        with pytest.raises(PackageRejected) as e:
            validate_bag(p)
        assert e.value.reason == "bad_bag"


def test_a_tar_member_listed_twice_is_a_bad_bag(tmp_path: Path) -> None:
    tar = tar_folder(plain_bag(tmp_path), tmp_path / "dup.tar", top="bag", extra=[tar_member("bag/data/video.mp4", b"other")])
    with pytest.raises(PackageRejected) as e:
        open_bag(tar)
    assert e.value.reason == "bad_bag"


def test_validate_reports_progress_up_to_the_payload_size(tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    validate_bag(plain_bag(tmp_path), progress=lambda done, total, label: seen.append((done, total)))
    total = sum(len(d) for d in FILES.values())
    assert seen and seen[-1] == (total, total)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_make_bag_tars_are_valid_bags(tmp_path: Path) -> None:
    assert validate_bag(make_bag(tmp_path, tar=True)) == []


def test_copy_payload_copies_while_hashing_and_refuses_a_changed_file(tmp_path: Path) -> None:
    import io

    folder = plain_bag(tmp_path)
    with open_bag(folder) as bag:
        out = io.BytesIO()
        digests = bag.copy_payload("data/video.mp4", out)
        assert out.getvalue() == FILES["video.mp4"]
        assert digests["sha256"] == hashlib.sha256(FILES["video.mp4"]).hexdigest()
    (folder / "data/video.mp4").write_bytes(b"w" * 1000)
    with open_bag(folder) as bag, pytest.raises(PackageRejected) as e:
        bag.copy_payload("data/video.mp4", io.BytesIO())
    assert e.value.reason == "bad_hash"


def test_a_full_disk_while_copying_is_a_write_error_not_a_bad_bag(tmp_path: Path) -> None:
    import errno

    from kiosk.library.bag import WriteError

    class Full:
        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    with open_bag(plain_bag(tmp_path)) as bag, pytest.raises(WriteError) as e:
        bag.copy_payload("data/video.mp4", Full())  # type: ignore[arg-type]
    assert e.value.errno == errno.ENOSPC


@pytest.mark.parametrize("how", ["folder", "contents"])
def test_it_reads_tars_made_by_gnu_tar(tmp_path: Path, how: str) -> None:
    import shutil
    import subprocess

    if shutil.which("tar") is None:
        missing("tar not installed")
    folder = plain_bag(tmp_path)
    out = tmp_path / "gnu.tar"
    args = ["-C", str(tmp_path), "plain"] if how == "folder" else ["-C", str(folder), "."]
    subprocess.run(["tar", "-cf", str(out), *args], check=True)
    assert validate_bag(out) == []


def test_names_that_differ_only_in_case_are_kept_with_a_warning(tmp_path: Path) -> None:
    folder = plain_bag(tmp_path, {"a.txt": b"one", "A.txt": b"two"})
    assert any("case-insensitive" in w for w in validate_bag(folder))


# --- the tag files' text, rule by rule ------------------------------------------------


def test_bagit_txt_gives_version_and_encoding() -> None:
    from kiosk.library.tagfiles import parse_bagit_txt

    warnings: list[str] = []
    assert parse_bagit_txt(b"BagIt-Version: 0.97\r\nTag-File-Character-Encoding: ISO-8859-1\r\n", warnings) == ((0, 97), "ISO-8859-1")
    assert warnings == []


def test_bag_info_joins_continuation_lines_and_keeps_repeated_labels() -> None:
    from kiosk.library.tagfiles import parse_bag_info

    info, oxum = parse_bag_info("Contact-Name: A\nExternal-Description: one\n  two\nContact-Name: B\nPayload-Oxum: 12.3\n")
    assert info == [("Contact-Name", "A"), ("External-Description", "one two"), ("Contact-Name", "B"), ("Payload-Oxum", "12.3")]
    assert oxum == (12, 3)
    with pytest.raises(PackageRejected):
        parse_bag_info("Payload-Oxum: 12\n")
    with pytest.raises(PackageRejected):
        parse_bag_info("no colon here\n")


def test_manifest_lines_may_use_tabs_and_several_spaces_and_upper_case_hex() -> None:
    from kiosk.library.tagfiles import parse_manifest

    digest = "AB" * 32
    text = f"{digest}\t data/a b.txt\n{digest.lower()}    data/c.txt\n\n"
    got = parse_manifest(text, "manifest-sha256.txt", "sha256", True, (1, 0), [])
    assert got == {"data/a b.txt": digest.lower(), "data/c.txt": digest.lower()}


def test_a_tar_cut_off_inside_a_payload_file_is_refused_when_opened(tmp_path: Path) -> None:
    folder = plain_bag(tmp_path, {"big.bin": os.urandom(100_000)})
    tar = tar_folder(folder, tmp_path / "b.tar")
    data = tar.read_bytes()
    with tarfile.open(tar) as t:
        member = t.getmember("plain/data/big.bin")
    tar.write_bytes(data[: member.offset_data + 50_000])
    with pytest.raises(PackageRejected) as e:
        open_bag(tar)
    assert e.value.reason == "bad_bag" and "truncated" in e.value.detail


def test_a_mangled_tar_is_always_a_plain_rejection_never_a_crash(tmp_path: Path) -> None:
    import random

    from kiosk.library.package import verify_package
    from tests.packages import trust_dir

    good = make_bag(tmp_path, files={"a.mp4": b"x" * 3000, "d/b.txt": "中文".encode()}, tar=True).read_bytes()
    trust = trust_dir(tmp_path)
    rnd = random.Random(8493)
    target = tmp_path / "mangled.tar"
    outcomes = set()
    for _ in range(300):
        data = bytearray(good)
        if rnd.random() < 0.5:
            for _ in range(rnd.randint(1, 8)):
                data[rnd.randrange(len(data))] = rnd.randrange(256)
        else:
            del data[rnd.randrange(len(data)):]
        target.write_bytes(bytes(data))
        try:
            verify_package(target, trust)
            outcomes.add("accepted")
        except PackageRejected as e:
            outcomes.add(e.reason)
    assert "bad_bag" in outcomes and len(outcomes) > 2
