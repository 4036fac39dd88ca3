"""`targets` on a package: a package not meant for this point is skipped and costs no payload reading."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk import config as config_mod
from kiosk.errors import PackageRejected
from kiosk.library import Library
from kiosk.library.record import parse_record
from kiosk.library.targets import bucket, is_target
from tests.packages import make_bag, record_bytes, trust_dir


def box(tmp_path: Path, point: str = "p-001", township: str = "城关镇") -> Library:
    trust = trust_dir(tmp_path)
    cfg = config_mod.Config({s.name: s.default for s in config_mod.SETTINGS}).replace(
        storage__data_dir=str(tmp_path / "data"), storage__trust_dir=str(trust), storage__min_free_percent=0,
        point__id=point, point__township=township)
    return Library(cfg)


def spoil_payload(folder: Path) -> None:
    """Change a payload byte after signing: any read of it would end in bad_hash."""
    p = folder / "data" / "video.mp4"
    p.write_bytes(b"X" + p.read_bytes()[1:])


def test_the_bucket_is_the_first_8_bytes_of_sha256_of_the_point_id_modulo_100():
    for pid in ("p-001", "村-42", "x"):
        want = int(hashlib.sha256(pid.encode()).hexdigest()[:16], 16) % 100
        assert bucket(pid) == want


def test_a_wider_percentage_keeps_every_point_a_narrower_one_reached():
    ids = [f"point-{n:04d}" for n in range(2000)]
    first = {p for p in ids if is_target(parse_record(record_bytes({"targets": {"percent": 10}})).targets, p, "")}
    wider = {p for p in ids if is_target(parse_record(record_bytes({"targets": {"percent": 30}})).targets, p, "")}
    assert first < wider
    assert 100 < len(first) < 300 and 450 < len(wider) < 750  # about 10 % and 30 % of 2000


def test_points_and_townships_name_targets_whatever_the_percentage():
    t = parse_record(record_bytes({"targets": {"points": ["p-9"], "townships": ["城关镇"], "percent": 0}})).targets
    assert is_target(t, "p-9", "别的镇")
    assert is_target(t, "p-1", "城关镇")
    assert not is_target(t, "p-1", "别的镇")
    assert not is_target(t, "p-1", "")
    assert is_target(None, "anyone", "")


@pytest.mark.parametrize("targets", [
    "all", [], {"percent": 101}, {"percent": -1}, {"percent": "10"}, {"points": "p-1"}, {"points": [1]},
    {"townships": [""]}, {"everyone": True},
])
def test_malformed_targets_are_a_bad_record(targets):
    with pytest.raises(PackageRejected) as e:
        parse_record(record_bytes({"targets": targets}))
    assert e.value.reason == "bad_record" and "targets" in e.value.detail


def test_a_package_for_other_points_is_skipped_without_reading_its_payload(tmp_path):
    lib = box(tmp_path)
    bag = make_bag(tmp_path, record={"targets": {"points": ["p-002"], "townships": ["别的镇"]}}, mutate=spoil_payload)
    outcome = lib.ingest(bag, source="usb")
    assert (outcome.outcome, outcome.reason) == ("skipped", None)  # a payload read would have said bad_hash
    assert lib.items() == [] and lib.quarantine() == []
    assert bag.exists()  # a USB disk is never modified
    assert lib.recent(1)[0]["outcome"] == "skipped"


def test_a_package_for_this_township_or_its_bucket_is_published(tmp_path):
    lib = box(tmp_path)
    assert lib.ingest(make_bag(tmp_path, record={"targets": {"townships": ["城关镇"]}})).outcome == "published"
    pct = bucket("p-001") + 1
    other = make_bag(tmp_path, record={"id": "b", "targets": {"percent": pct}})
    assert lib.ingest(other).outcome == "published"
    below = make_bag(tmp_path, record={"id": "c", "targets": {"percent": pct - 1}}, mutate=spoil_payload)
    assert lib.ingest(below).outcome == "skipped"


def test_a_skipped_spool_bag_leaves_the_spool(tmp_path):
    lib = box(tmp_path)
    spool = tmp_path / "spool"
    spool.mkdir()
    bag = make_bag(tmp_path, record={"targets": {"points": ["elsewhere"]}})
    entry = spool / bag.name
    bag.rename(entry)
    assert lib.ingest(entry, source="spool").outcome == "skipped"
    assert not entry.exists()


def test_the_command_line_exits_0_when_a_package_was_only_skipped(tmp_path, cfg_path):
    trust = trust_dir(tmp_path)
    bag = make_bag(tmp_path, record={"targets": {"points": ["elsewhere"]}})
    done = subprocess.run(
        [sys.executable, "-m", "kiosk.cli", "ingest", "--config", str(cfg_path), "--json", str(bag)],
        capture_output=True, text=True, env={"KIOSK_STORAGE_TRUST_DIR": str(trust), "PATH": "/usr/bin:/bin"}, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert [o["outcome"] for o in json.loads(done.stdout)] == ["skipped"]
