"""The publisher's side: `kiosk package keygen | build | verify`, and the box's package checks."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from kiosk import cli
from kiosk.errors import KioskError, PackageRejected
from kiosk.library.bag import open_bag, validate_bag
from kiosk.library.package import build_package, check_package, verify_package
from tests.packages import DROP, make_bag, make_key, resign, trust_dir, trust_key
from tests.conftest import need_module

RECORD = {"id": "winter-pigs", "version": 2, "title": "冬季养猪", "category": "agriculture", "main": "data/pigs.mp4", "poster": "img/poster.jpg"}


def source(tmp: Path, top_level: bool = False, record: dict | None = None) -> Path:
    src = tmp / "src"
    payload = src if top_level else src / "data"
    (payload / "img").mkdir(parents=True)
    (payload / "pigs.mp4").write_bytes(b"\x00mp4" * 5000)
    (payload / "img/poster.jpg").write_bytes(b"\xff\xd8poster")
    (payload / "说明 2.txt").write_text("中文说明\n", encoding="utf-8")
    (src / "kiosk.json").write_text(json.dumps(record or RECORD, ensure_ascii=False), encoding="utf-8")
    return src


def run(*args: str) -> int:
    return cli.main(list(args))


def verify_reason(path: Path, trust: Path) -> str:
    with pytest.raises(PackageRejected) as e:
        verify_package(path, trust)
    return e.value.reason


# --- keygen, build, verify ----------------------------------------------------------


@pytest.mark.parametrize("out", ["pkg", "pkg.tar"])
@pytest.mark.parametrize("top_level", [False, True], ids=["data-folder", "top-level"])
def test_a_built_package_verifies_and_passes_loc_bagit(tmp_path: Path, out: str, top_level: bool, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "publisher.pem"
    assert run("package", "keygen", str(key)) == 0
    trust = tmp_path / "trust"
    trust.mkdir()
    shutil.copy(tmp_path / "publisher.pem.pub", trust / "publisher.pub")
    src = source(tmp_path, top_level)
    assert run("package", "build", str(src), "--key", str(key), "-o", str(tmp_path / out)) == 0
    capsys.readouterr()
    assert run("package", "verify", str(tmp_path / out), "--trust", str(trust)) == 0
    assert "accepted: winter-pigs version 2" in capsys.readouterr().out
    record = verify_package(tmp_path / out, trust)
    assert (record.main, record.poster) == ("pigs.mp4", "img/poster.jpg")
    with open_bag(tmp_path / out) as bag:
        assert set(bag.payload) == {"data/pigs.mp4", "data/img/poster.jpg", "data/说明 2.txt"}
        assert set(bag.tag_manifest) == {"bagit.txt", "bag-info.txt", "manifest-sha256.txt", "kiosk.json"}
        assert bag.oxum == (20000 + 8 + len("中文说明\n".encode()), 3)
        assert "signature.ed25519" not in bag.tag_manifest
    if out == "pkg":
        bagit = need_module("bagit")
        bagit.Bag(str(tmp_path / out)).validate()
    else:
        with tarfile.open(tmp_path / out) as t:
            assert {n.split("/")[0] for n in t.getnames()} == {"pkg"}


def test_build_refuses_to_overwrite_and_leaves_nothing_half_written(tmp_path: Path) -> None:
    key = make_key(tmp_path / "k.pem")
    src = source(tmp_path)
    out = tmp_path / "out.tar"
    out.write_bytes(b"precious")
    with pytest.raises(KioskError):
        build_package(src, key, out)
    assert out.read_bytes() == b"precious"
    (src / "kiosk.json").write_text('{"id": "BAD", "version": 1}')
    with pytest.raises(PackageRejected):
        build_package(src, key, tmp_path / "x.tar")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.pem", "k.pem.pub", "out.tar", "src"]


def test_build_refuses_a_main_that_is_not_in_the_payload(tmp_path: Path) -> None:
    key = make_key(tmp_path / "k.pem")
    src = source(tmp_path, record={**RECORD, "main": "missing.mp4"})
    assert run("package", "build", str(src), "--key", str(key), "-o", str(tmp_path / "o")) == 2
    assert not (tmp_path / "o").exists()


def test_keygen_refuses_an_existing_file_with_a_plain_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "k").write_text("mine")
    assert run("package", "keygen", str(tmp_path / "k")) == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "k").read_text() == "mine"


def test_verify_uses_the_configured_trust_folder(tmp_path: Path, cfg_path: Path, cfg, capsys: pytest.CaptureFixture[str]) -> None:
    bag = make_bag(tmp_path)
    assert run("package", "verify", str(bag), "--config", str(cfg_path)) == 1
    assert "untrusted" in capsys.readouterr().err
    shutil.copytree(trust_dir(tmp_path), cfg.path("storage.trust_dir"))
    assert run("package", "verify", str(bag), "--config", str(cfg_path)) == 0


def test_the_real_command_prints_one_plain_line_when_it_rejects(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, mutate=lambda d: (d / "data/video.mp4").write_bytes(b"changed"))
    done = subprocess.run(
        [sys.executable, "-m", "kiosk.cli", "package", "verify", str(bag), "--trust", str(trust_dir(tmp_path))],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "bad_bag" in done.stderr and "Traceback" not in done.stderr


# --- a bag from LoC's tool, signed with an OpenSSL key ------------------------------------


@pytest.mark.needs(shutil.which("openssl") is not None, "openssl not installed")
def test_a_loc_bagit_bag_with_kiosk_json_and_an_openssl_signature_verifies(tmp_path: Path) -> None:
    bagit = need_module("bagit")
    bag = tmp_path / "loc"
    (bag / "videos").mkdir(parents=True)
    (bag / "videos/maize.mp4").write_bytes(b"maize" * 1000)
    bagit.make_bag(str(bag), {"Source-Organization": "县文化馆"}, checksums=["sha256"])
    (bag / "kiosk.json").write_text(
        json.dumps({"id": "maize", "version": 1, "title": "玉米种植", "category": "agriculture", "main": "data/videos/maize.mp4"}, ensure_ascii=False),
        encoding="utf-8",
    )
    # add kiosk.json to the tag manifest, as a publisher would with sha256sum
    digest = subprocess.run(["openssl", "dgst", "-sha256", "-r", str(bag / "kiosk.json")], capture_output=True, text=True, check=True).stdout.split()[0]
    with (bag / "tagmanifest-sha256.txt").open("a") as f:
        f.write(f"{digest} kiosk.json\n")
    key = tmp_path / "openssl.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(key)], check=True, capture_output=True)
    trust = tmp_path / "trust"
    trust.mkdir()
    subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-out", str(trust / "county.pem")], check=True, capture_output=True)
    raw_sig = subprocess.run(
        ["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", str(key), "-in", str(bag / "tagmanifest-sha256.txt")],
        capture_output=True, check=True,
    ).stdout
    (bag / "signature.ed25519").write_bytes(base64.b64encode(raw_sig) + b"\n")
    assert run("package", "verify", str(bag), "--trust", str(trust)) == 0
    assert verify_package(bag, trust).main == "videos/maize.mp4"
    tar = tmp_path / "loc.tar"
    with tarfile.open(tar, "w") as t:
        t.add(bag, arcname="loc")
    assert verify_package(tar, trust).id == "maize"


# --- the box's checks, in order ---------------------------------------------------------


def test_signature_is_checked_before_the_payload_is_hashed(tmp_path: Path) -> None:
    stranger = make_key(tmp_path / "stranger" / "k.pem")
    # an untrusted package whose payload is also corrupt: the cheap check answers
    bag = make_bag(tmp_path, key=stranger, mutate=lambda d: (d / "data/video.mp4").write_bytes(b"x" * 320))
    assert verify_reason(bag, trust_dir(tmp_path)) == "untrusted"


@pytest.mark.parametrize(
    "mutate,reason",
    [
        (lambda d: (d / "signature.ed25519").unlink(), "bad_signature"),
        (lambda d: (d / "signature.ed25519").write_text("garbage!\n"), "bad_signature"),
        (lambda d: (d / "tagmanifest-sha256.txt").write_text((d / "tagmanifest-sha256.txt").read_text() + "\n"), "untrusted"),
        (lambda d: (d / "kiosk.json").write_text('{"id": "other", "version": 9}'), "bad_hash"),
        (lambda d: (d / "data/video.mp4").write_bytes(b"y" * 320), "bad_hash"),
        (lambda d: (d / "data/video.mp4").write_bytes(b"short"), "bad_bag"),
        (lambda d: (d / "data/extra.mp4").write_bytes(b"extra"), "bad_bag"),
        (lambda d: (d / "data/video.mp4").unlink(), "bad_bag"),
        (lambda d: (d / "data/evil").symlink_to("/etc/passwd"), "unsafe_path"),
    ],
    ids=["no-signature", "garbled-signature", "tagmanifest-changed", "record-changed", "payload-changed", "payload-truncated", "extra-file", "missing-file", "symlink"],
)
@pytest.mark.parametrize("tar", [False, True], ids=["folder", "tar"])
def test_a_broken_package_is_rejected_with_its_reason(tmp_path: Path, mutate, reason: str, tar: bool) -> None:
    if tar and reason == "unsafe_path":
        pytest.skip("tar symlinks are covered in test_bag")
    bag = make_bag(tmp_path, mutate=mutate, tar=tar)
    assert verify_reason(bag, trust_dir(tmp_path)) == reason


def test_a_tag_file_left_out_of_the_signed_manifest_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "keys" / "publisher.pem"
    bag = make_bag(tmp_path, mutate=lambda d: resign(d, key, ["bagit.txt", "bag-info.txt", "kiosk.json"]))
    assert verify_reason(bag, trust_dir(tmp_path)) == "bad_bag"
    bag = make_bag(tmp_path, mutate=lambda d: resign(d, key, ["bagit.txt", "bag-info.txt", "manifest-sha256.txt"]))
    assert verify_reason(bag, trust_dir(tmp_path)) == "bad_record"


@pytest.mark.parametrize(
    "record",
    [{"id": "Bad Id"}, {"version": 0}, {"main": DROP}, {"main": "not-there.mp4"}, {"poster": "nope.jpg"}, {"title": "x" * 5000}],
)
def test_a_signed_package_with_a_bad_record_is_a_bad_record(tmp_path: Path, record: dict) -> None:
    assert verify_reason(make_bag(tmp_path, record=record), trust_dir(tmp_path)) == "bad_record"


def test_a_signed_record_that_is_not_utf8_is_a_bad_record(tmp_path: Path) -> None:
    assert verify_reason(make_bag(tmp_path, kiosk_json=b'{"id": "\xff"}'), trust_dir(tmp_path)) == "bad_record"


def test_an_expired_package_is_refused_as_expired(tmp_path: Path) -> None:
    assert verify_reason(make_bag(tmp_path, record={"expires": "2001-01-01"}), trust_dir(tmp_path)) == "expired"


def test_a_recall_is_a_package_without_payload(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, files={}, record={"id": "recall-1", "main": DROP, "title": DROP, "withdraws": ["pig-farming"]}, tar=True)
    record = verify_package(bag, trust_dir(tmp_path))
    assert record.is_recall and record.withdraws == ("pig-farming",)


def test_a_second_trusted_publisher_is_named_in_the_check(tmp_path: Path) -> None:
    other = make_key(tmp_path / "other" / "county-b.pem")
    trust_key(other, trust_dir(tmp_path))
    bag = make_bag(tmp_path, key=other)
    with open_bag(bag) as b:
        assert check_package(b, trust_dir(tmp_path)).id == "pig-farming"


def test_check_package_reads_no_payload(tmp_path: Path) -> None:
    # payload replaced by same-size junk: only hashing notices, and check_package must not hash
    bag = make_bag(tmp_path, mutate=lambda d: (d / "data/video.mp4").write_bytes(b"z" * 320))
    with open_bag(bag) as b:
        check_package(b, trust_dir(tmp_path))
    assert verify_reason(bag, trust_dir(tmp_path)) == "bad_hash"


def test_bag_only_judges_the_bagit_layer_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    unsigned = make_bag(tmp_path, sign_it=False)
    assert run("package", "verify", "--bag-only", str(unsigned)) == 0
    assert run("package", "verify", str(unsigned), "--trust", str(trust_dir(tmp_path))) == 1
    assert "bad_signature" in capsys.readouterr().err
    assert validate_bag(unsigned) == []


def test_mac_litter_beside_the_tag_files_is_ignored(tmp_path: Path) -> None:
    def litter(d: Path) -> None:
        (d / ".DS_Store").write_bytes(b"mac")
        (d / "._kiosk.json").write_bytes(b"apple double")
        (d / "data/._video.mp4").write_bytes(b"apple double")

    warnings: list[str] = []
    record = verify_package(make_bag(tmp_path, mutate=litter), trust_dir(tmp_path), warnings=warnings)
    assert record.id == "pig-farming"
    assert any(".DS_Store" in w for w in warnings)


def test_build_leaves_system_litter_out_of_the_package(tmp_path: Path) -> None:
    key = make_key(tmp_path / "k.pem")
    src = source(tmp_path)
    (src / ".DS_Store").write_bytes(b"mac")
    (src / "data/Thumbs.db").write_bytes(b"windows")
    with open_bag(build_package(src, key, tmp_path / "pkg")) as bag:
        assert set(bag.payload) == {"data/pigs.mp4", "data/img/poster.jpg", "data/说明 2.txt"}


def test_verify_refuses_a_package_over_the_configured_size_limit(tmp_path: Path, cfg_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    bag = make_bag(tmp_path, files={"video.mp4": b"x" * (2 << 20)})
    monkeypatch.setenv("KIOSK_STORAGE_MAX_PACKAGE_MB", "1")
    assert run("package", "verify", str(bag), "--config", str(cfg_path), "--trust", str(trust_dir(tmp_path))) == 1
    assert "too_large" in capsys.readouterr().err
    monkeypatch.setenv("KIOSK_STORAGE_MAX_PACKAGE_MB", "3")
    assert run("package", "verify", str(bag), "--config", str(cfg_path), "--trust", str(trust_dir(tmp_path))) == 0


@pytest.mark.parametrize("out", ["odd", "odd.tar"])
def test_odd_file_names_survive_build_and_verify(tmp_path: Path, out: str) -> None:
    key = make_key(tmp_path / "k.pem")
    trust = tmp_path / "trust"
    trust_key(key, trust)
    src = tmp_path / "src"
    names = ["50% off.mp4", "line\nbreak.txt", "carriage\rreturn.txt", "back\\slash.txt", "空格 文件.mp4", "~tilde", "%0A literally"]
    (src / "data").mkdir(parents=True)
    for n in names:
        (src / "data" / n).write_bytes(n.encode())
    (src / "kiosk.json").write_text(json.dumps({"id": "odd", "version": 1, "title": "t", "main": "50% off.mp4"}))
    build_package(src, key, tmp_path / out)
    assert verify_package(tmp_path / out, trust).main == "50% off.mp4"
    with open_bag(tmp_path / out) as bag:
        assert set(bag.payload) == {f"data/{n}" for n in names}


def test_a_loc_bag_with_percent_signs_in_names_verifies(tmp_path: Path) -> None:
    # bagit-python writes '%' unencoded (RFC 8493 wants %25); such names must still match
    bagit = need_module("bagit")
    bag = tmp_path / "loc"
    bag.mkdir()
    for n in ("50% off.mp4", "%25 literally.txt", "%0A literally.txt"):
        (bag / n).write_bytes(n.encode())
    bagit.make_bag(str(bag), checksums=["sha256"])
    (bag / "kiosk.json").write_text(json.dumps({"id": "pct", "version": 1, "title": "t", "main": "%25 literally.txt"}))
    key = tmp_path / "keys" / "publisher.pem"
    trust_dir(tmp_path)
    resign(bag, key)
    warnings: list[str] = []
    assert verify_package(bag, trust_dir(tmp_path), warnings=warnings).id == "pct"
    assert any("percent" in w for w in warnings)
