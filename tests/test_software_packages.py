"""Software packages: trusted only through the software trust folder, for this platform, newer than what runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kiosk import __version__
from kiosk import config as config_mod
from kiosk.errors import PackageRejected
from kiosk.library import Library
from kiosk.library.record import parse_record
from kiosk.update import platform_tag
from tests.packages import DROP, make_bag, make_key, record_bytes, trust_dir, trust_key
from tests.test_malformed import store_fingerprint, tree_fingerprint

WHEEL = {"wheels/field_kiosk-9.0-py3-none-any.whl": b"PK\x03\x04 not a real wheel"}


def software(version: str = "9.0", platforms: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    """A software package's record fields."""
    return {"id": "kiosk-app", "kind": "software", "main": DROP, "title": "Field Kiosk",
            "software": {"component": "app", "version": version, "platforms": platforms or [platform_tag()]}, **extra}


def software_key(tmp: Path) -> Path:
    """The software key, trusted in <tmp>/software-trust only."""
    key = tmp / "keys" / "software.pem"
    if not key.exists():
        make_key(key)
        trust_key(key, tmp / "software-trust")
    return key


def box(tmp_path: Path) -> Library:
    cfg = config_mod.Config({s.name: s.default for s in config_mod.SETTINGS}).replace(
        storage__data_dir=str(tmp_path / "data"), storage__trust_dir=str(trust_dir(tmp_path)),
        storage__software_trust_dir=str(tmp_path / "software-trust"), storage__min_free_percent=0)
    return Library(cfg)


def offer(lib: Library, bag: Path) -> Any:
    """Ingest a package from a "USB disk" and check that nothing else changed unless it was published."""
    before, disk = store_fingerprint(lib), tree_fingerprint(bag)
    outcome = lib.ingest(bag, source="usb")
    assert tree_fingerprint(bag) == disk
    if outcome.outcome != "published":
        assert store_fingerprint(lib) == before
    return outcome


def test_a_software_package_signed_with_the_software_key_is_stored_and_never_listed(tmp_path):
    lib = box(tmp_path)
    outcome = offer(lib, make_bag(tmp_path, files=WHEEL, record=software(), key=software_key(tmp_path)))
    assert outcome.outcome == "published", outcome
    assert lib.items() == []
    record, folder = lib.software_package("kiosk-app")
    assert record.software.version == "9.0"
    assert (folder / "data" / "wheels" / "field_kiosk-9.0-py3-none-any.whl").exists()


def test_a_software_package_signed_only_with_a_content_key_is_untrusted(tmp_path):
    lib = box(tmp_path)
    software_key(tmp_path)  # the box does trust a software key, just not this signer
    outcome = offer(lib, make_bag(tmp_path, files=WHEEL, record=software()))  # the content publisher's key
    assert (outcome.outcome, outcome.reason) == ("rejected", "untrusted")
    assert "software key" in outcome.detail
    assert lib.quarantine()[0]["code"] == "untrusted"


def test_a_content_package_signed_only_with_the_software_key_is_untrusted(tmp_path):
    lib = box(tmp_path)
    outcome = offer(lib, make_bag(tmp_path, key=software_key(tmp_path)))
    assert (outcome.outcome, outcome.reason) == ("rejected", "untrusted")


@pytest.mark.parametrize("version", [__version__, "0.0.1"])
def test_a_release_not_newer_than_the_running_one_is_unchanged(tmp_path, version):
    lib = box(tmp_path)
    outcome = offer(lib, make_bag(tmp_path, files=WHEEL, record=software(version), key=software_key(tmp_path)))
    assert outcome.outcome == "unchanged"
    assert "not newer" in outcome.detail


def test_a_release_for_another_platform_is_rejected_saying_so(tmp_path):
    lib = box(tmp_path)
    other = "linux-riscv64" if platform_tag() != "linux-riscv64" else "linux-aarch64"
    outcome = offer(lib, make_bag(tmp_path, files=WHEEL, record=software(platforms=[other]), key=software_key(tmp_path)))
    assert (outcome.outcome, outcome.reason) == ("rejected", "bad_record")
    assert other in outcome.detail and platform_tag() in outcome.detail
    assert "别的机型" in lib.quarantine()[0]["reason"]


def test_a_software_package_with_files_outside_its_folder_is_a_bad_record(tmp_path):
    lib = box(tmp_path)
    files = {**WHEEL, "video.mp4": b"x"}
    outcome = offer(lib, make_bag(tmp_path, files=files, record=software(), key=software_key(tmp_path)))
    assert (outcome.outcome, outcome.reason) == ("rejected", "bad_record")
    outcome = offer(lib, make_bag(tmp_path, files={"wheels/readme.txt": b"x"}, record=software(), key=software_key(tmp_path)))
    assert (outcome.outcome, outcome.reason) == ("rejected", "bad_record")


@pytest.mark.parametrize("fields", [
    {"kind": "plugin"},
    {"software": DROP},
    {"software": {"component": "firmware", "version": "1", "platforms": ["linux-x86_64"]}},
    {"software": {"component": "app", "version": "not a version", "platforms": ["linux-x86_64"]}},
    {"software": {"component": "app", "version": "2.0", "platforms": []}},
    {"software": {"component": "app", "version": "2.0", "platforms": ["Linux x86"]}},
])
def test_a_malformed_software_record_is_a_bad_record(fields):
    with pytest.raises(PackageRejected) as e:
        parse_record(record_bytes({**software(), **fields}))
    assert e.value.reason == "bad_record"


def test_the_software_field_belongs_to_software_packages_only():
    with pytest.raises(PackageRejected):
        parse_record(record_bytes({"software": software()["software"]}))


def test_kiosk_package_build_and_verify_a_software_package(tmp_path):
    key = software_key(tmp_path)
    src = tmp_path / "release"
    (src / "data" / "wheels").mkdir(parents=True)
    (src / "data" / "wheels" / "field_kiosk-9.0-py3-none-any.whl").write_bytes(b"PK")
    (src / "kiosk.json").write_bytes(record_bytes(software()))
    out = tmp_path / "kiosk-app-9.0.tar"
    cli = [sys.executable, "-m", "kiosk.cli", "package"]
    subprocess.run([*cli, "build", str(src), "--key", str(key), "-o", str(out)], check=True, capture_output=True, timeout=60)
    ok = subprocess.run([*cli, "verify", str(out), "--trust", str(trust_dir(tmp_path)),
                         "--software-trust", str(tmp_path / "software-trust")], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    only_content = subprocess.run([*cli, "verify", str(out), "--trust", str(trust_dir(tmp_path)),
                                   "--software-trust", str(tmp_path / "nowhere")], capture_output=True, text=True, timeout=60)
    assert only_content.returncode == 1 and "untrusted" in only_content.stderr
