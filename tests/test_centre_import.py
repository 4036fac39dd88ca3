"""Reports carried on a USB disk from a box without a line: `kiosk centre import DIR`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kiosk import wire
from kiosk.centre.importer import import_dir
from kiosk.centre.store import Store
from tests.centre_helpers import db_url, report  # noqa: F401  (db_url is a fixture)


@pytest.fixture
def store(db_url: str):  # noqa: F811
    s = Store(db_url)
    yield s
    s.close()


def export(folder: Path, point: str, secret: str, seqs: range) -> None:
    """Write export files as `kiosk uplink export` does, one per block of sequence numbers."""
    folder.mkdir(exist_ok=True)
    reports = [report(point, s) for s in seqs]
    blocks: dict[str, list] = {}
    for r in reports:
        blocks.setdefault(wire.export_name(point, r["seq"]), []).append(r)
    for name, block in blocks.items():
        # an old box time: an export is days old when it reaches the centre
        (folder / name).write_bytes(wire.export_file(point, secret, block, ts=1_600_000_000))


def test_an_import_stores_every_report_once_and_leaves_a_signed_acknowledgement(store: Store, tmp_path: Path) -> None:
    usb = tmp_path / "usb"
    s1, s2 = store.enroll("p1"), store.enroll("p2")
    export(usb, "p1", s1, range(1, 2501))
    export(usb, "p2", s2, range(1, 11))
    result = import_dir(store, usb)
    assert result["stored"] == 2510 and result["refused"] == []
    assert store.seqs("p1") == list(range(1, 2501)) and store.seqs("p2") == list(range(1, 11))
    assert wire.decode_ack_file((usb / "p1.ack").read_bytes(), "p1", s1) == list(range(1, 2501))
    again = import_dir(store, usb)
    assert again["stored"] == 0 and again["reports"] == 2510 and store.report_count() == 2510


def test_an_import_refuses_forged_unknown_and_damaged_files_and_keeps_the_good_ones(store: Store, tmp_path: Path) -> None:
    usb = tmp_path / "usb"
    secret = store.enroll("p1")
    export(usb, "p1", secret, range(1, 5))
    export(usb / "forged", "p1", "f" * 64, range(5, 9))
    (usb / "p1-000000000005.khb").write_bytes((usb / "forged" / "p1-000000000001.khb").read_bytes())
    export(usb / "stranger", "nobody", "x" * 64, range(1, 3))
    (usb / "nobody-000000000001.khb").write_bytes((usb / "stranger" / "nobody-000000000001.khb").read_bytes())
    (usb / "junk-000000000001.khb").write_bytes(b"not an export file")
    result = import_dir(store, usb)
    errors = sorted((r["file"], r["error"]) for r in result["refused"])
    assert errors == [
        ("junk-000000000001.khb", "not_export"),
        ("nobody-000000000001.khb", "unknown_point"),
        ("p1-000000000005.khb", "signature"),
    ]
    assert store.seqs("p1") == [1, 2, 3, 4] and store.report_count() == 4


def test_kiosk_centre_import_says_what_it_did_and_fails_when_a_file_was_refused(cfg_path: Path, tmp_path: Path) -> None:
    db = tmp_path / "centre.sqlite"
    store = Store(str(db))
    secret = store.enroll("p1")
    store.close()
    usb = tmp_path / "usb"
    export(usb, "p1", secret, range(1, 4))
    env = {"KIOSK_CENTRE_DB": str(db), "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "kiosk.cli", "centre", "import", str(usb), "--config", str(cfg_path)]
    ok = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert ok.returncode == 0 and "imported 3 reports from 1 files (3 new)" in ok.stdout
    (usb / "junk-000000000001.khb").write_bytes(b"junk")
    bad = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 1 and "refused junk-000000000001.khb" in bad.stdout and "(0 new)" in bad.stdout
    missing = subprocess.run(cmd[:-3] + [str(tmp_path / "nowhere"), "--config", str(cfg_path)], capture_output=True, text=True, env=env, timeout=60)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
