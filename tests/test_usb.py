"""USB disks and discs: every bag in the kiosk/ folder imported, the disk only read, resumable."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from kiosk.errors import KioskError, NotFound
from kiosk.library import Library, usb
from tests.packages import DROP, make_bag, trust_dir


@pytest.fixture
def box(cfg, tmp_path):
    c = cfg.replace(storage__trust_dir=str(trust_dir(tmp_path)))
    lib = Library(c)
    yield c, lib
    lib.close()


def _disk(tmp_path: Path, n: int = 20, bad: int | None = None) -> Path:
    """A mounted disk with n bags in kiosk/, bag number `bad` damaged."""
    disk = tmp_path / "disk"
    folder = disk / "kiosk"
    folder.mkdir(parents=True)
    for i in range(n):

        def damage(d: Path) -> None:
            f = d / "data" / "video.mp4"
            f.write_bytes(b"x" * f.stat().st_size)

        bag = make_bag(tmp_path, files={"video.mp4": os.urandom(2000 + i)}, record={"id": f"item-{i:02d}", "title": f"节目 {i}"},
                       mutate=damage if i == bad else None)
        shutil.move(str(bag), folder / f"item-{i:02d}")
    return disk


def _snapshot(root: Path) -> dict[str, tuple]:
    out = {}
    for p in sorted(root.rglob("*")):
        st = os.lstat(p)
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
        out[p.relative_to(root).as_posix()] = (st.st_mode, st.st_size, st.st_mtime_ns, digest)
    return out


def test_a_disk_of_20_bags_with_one_bad_publishes_19_quarantines_1_and_is_left_unchanged(box, tmp_path):
    cfg, lib = box
    disk = _disk(tmp_path, 20, bad=7)
    before = _snapshot(disk)
    outcomes = usb.import_folder(cfg, lib, disk)
    assert sorted(o.outcome for o in outcomes) == ["published"] * 19 + ["rejected"]
    [bad] = [o for o in outcomes if o.rejected]
    assert bad.id == "item-07" and bad.reason == "bad_hash"
    assert lib.summary()["items"] == 19 and lib.summary()["quarantined"] == 1
    assert _snapshot(disk) == before  # byte for byte, times and modes too
    record = usb.progress(cfg)
    assert record["state"] == "done" and record["counts"] == {"published": 19, "rejected": 1}
    assert record["done_bytes"] == record["total_bytes"] > 0
    assert "新增 19 项" in usb.notice(cfg)["zh"]


def test_a_disk_without_a_kiosk_folder_is_left_alone(box, tmp_path):
    cfg, lib = box
    disk = tmp_path / "someones-photos"
    disk.mkdir()
    shutil.move(str(make_bag(tmp_path)), disk / "a-bag")
    assert usb.import_folder(cfg, lib, disk) == []
    assert lib.summary()["items"] == 0


def test_a_disk_pulled_out_mid_import_leaves_nothing_half_done_and_the_import_resumes(box, tmp_path, monkeypatch):
    cfg, lib = box
    disk = _disk(tmp_path, 8)
    pocket = tmp_path / "pocket"
    real_ingest = lib.ingest
    calls = []

    def ingest_then_pull(path, source="cli", progress=None):
        calls.append(path)
        if len(calls) == 3:
            # the villager pulls the disk out while the third package is being read
            def pulled(done, total, label):
                if done >= total // 2 and disk.exists():
                    os.rename(disk, pocket)
                    raise OSError(5, "Input/output error")
                progress(done, total, label)

            return real_ingest(path, source, pulled)
        return real_ingest(path, source, progress)

    monkeypatch.setattr(lib, "ingest", ingest_then_pull)
    usb.import_folder(cfg, lib, disk)
    assert usb.progress(cfg)["state"] == "interrupted"
    assert "重新插入" in usb.notice(cfg)["zh"]
    assert lib.summary()["items"] == 2
    with pytest.raises(NotFound):
        lib.item("item-02")  # the package being read when the disk went is not visible
    assert lib.store.clear_leftovers() == 0  # and nothing of it was left behind
    monkeypatch.setattr(lib, "ingest", real_ingest)
    os.rename(pocket, disk)  # inserted again
    again = usb.import_folder(cfg, lib, disk)
    assert sorted(o.outcome for o in again) == ["published"] * 6 + ["unchanged"] * 2
    assert lib.summary()["items"] == 8
    assert usb.progress(cfg)["state"] == "done"


def test_the_screens_are_told_while_an_import_runs_and_a_second_import_is_refused(box, tmp_path, monkeypatch):
    cfg, lib = box
    disk = _disk(tmp_path, 2)
    real_ingest = lib.ingest
    seen = []

    def watching(path, source="cli", progress=None):
        seen.append(usb.notice(cfg))
        with pytest.raises(KioskError):
            usb.import_folder(cfg, lib, disk)
        assert usb.is_running(cfg)
        return real_ingest(path, source, progress)

    monkeypatch.setattr(lib, "ingest", watching)
    usb.import_folder(cfg, lib, disk)
    assert seen[0]["state"] == "importing" and "请不要拔出" in seen[0]["zh"]
    assert not usb.is_running(cfg)
    assert usb.notice(cfg)["state"] == "done"


def test_a_withdrawal_received_on_a_usb_disk_takes_the_item_off_the_screens(box, tmp_path):
    cfg, lib = box
    disk = _disk(tmp_path, 2)
    usb.import_folder(cfg, lib, disk)
    assert lib.item("item-01").title == "节目 1"
    recall = make_bag(tmp_path, record={"id": "recall-1", "withdraws": ["item-01"], "main": DROP, "title": DROP})
    shutil.move(str(recall), disk / "kiosk" / "zz-recall")
    outcomes = usb.import_folder(cfg, lib, disk)
    # item-01 is met again before its recall on the same disk: unchanged, then withdrawn
    assert [o.outcome for o in outcomes] == ["unchanged", "unchanged", "published"]
    with pytest.raises(NotFound):
        lib.item("item-01")
    assert lib.item("item-00")


def test_the_mount_point_or_the_kiosk_folder_itself_may_be_given(box, tmp_path):
    cfg, lib = box
    disk = _disk(tmp_path, 1)
    assert usb.content_folder(cfg, disk) == disk / "kiosk"
    assert usb.content_folder(cfg, disk / "kiosk") == disk / "kiosk"
    assert [o.outcome for o in usb.import_folder(cfg, lib, disk / "kiosk")] == ["published"]
    assert usb.candidates(cfg, roots=(str(tmp_path),)) == [disk]


SYSTEMD = Path(__file__).resolve().parent.parent / "systemd"


def test_the_udev_rule_starts_the_import_unit_which_mounts_read_only_and_imports(tmp_path):
    rule = (SYSTEMD / "90-kiosk-usb.rules").read_text()
    assert 'ENV{SYSTEMD_WANTS}+="kiosk-usb-import@%k.service"' in rule
    assert "restart kiosk-usb-import@%k.service" in rule  # discs
    unit = (SYSTEMD / "kiosk-usb-import@.service").read_text()
    mount = next(line for line in unit.splitlines() if "/bin/mount " in line)
    # every file system is mounted read-only, whatever its type adds (owner, umask)
    assert "o=ro,nosuid,nodev,noexec;" in mount and "o=$o," in mount and '-o "$o"' in mount
    assert "kiosk ingest --source usb" in unit and "BindsTo=dev-%i.device" in unit
    if shutil.which("systemd-analyze"):
        copy = tmp_path / "kiosk-usb-import@.service"
        copy.write_text(unit.replace("/opt/kiosk/bin/kiosk", "/usr/bin/true"))
        import subprocess

        done = subprocess.run(["systemd-analyze", "verify", "--man=no", str(tmp_path / "kiosk-usb-import@sdb1.service")],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr


def _rot13(d: Path) -> None:
    (d / "bagit.txt").write_bytes(b"BagIt-Version: 1.0\nTag-File-Character-Encoding: rot13\n")


def test_a_bag_in_a_codec_that_is_no_text_encoding_is_rejected_and_the_import_goes_on(box, tmp_path):
    cfg, lib = box
    disk = _disk(tmp_path, 3)
    bad = make_bag(tmp_path, record={"id": "aaa-first"}, mutate=_rot13)
    shutil.move(str(bad), disk / "kiosk" / "0-first")  # sorted first on the disk
    outcomes = usb.import_folder(cfg, lib, disk)
    assert [(o.outcome, o.reason) for o in outcomes] == [("rejected", "bad_bag")] + [("published", None)] * 3
    record = usb.progress(cfg)
    assert record["state"] == "done" and record["counts"] == {"rejected": 1, "published": 3}
    assert "rot13" in record["rejected"][0]["detail"]


def test_anything_unforeseen_in_one_bag_is_that_bags_rejection(box, tmp_path, monkeypatch):
    from kiosk.library import package

    cfg, lib = box
    disk = _disk(tmp_path, 3)
    real = package.check_package

    def fails_for_item_01(bag, *a, **k):
        if bag.path.name == "item-01":
            raise RuntimeError("something nobody foresaw")
        return real(bag, *a, **k)

    monkeypatch.setattr(package, "check_package", fails_for_item_01)
    outcomes = usb.import_folder(cfg, lib, disk)
    assert [(o.outcome, o.reason) for o in outcomes] == [("published", None), ("rejected", "bad_bag"), ("published", None)]
    assert lib.summary()["items"] == 2 and lib.summary()["quarantined"] == 1
    assert usb.progress(cfg)["state"] == "done"


def test_a_fault_of_the_box_mid_import_is_recorded_as_not_done(box, tmp_path, monkeypatch):
    cfg, lib = box
    disk = _disk(tmp_path, 2)

    def broken(*a, **k):
        raise RuntimeError("the catalogue is gone")

    monkeypatch.setattr(lib, "ingest", broken)
    with pytest.raises(RuntimeError):
        usb.import_folder(cfg, lib, disk)
    record = usb.progress(cfg)
    assert record["state"] == "interrupted" and "the catalogue is gone" in record["error"]


def test_the_import_command_exits_apart_from_rejections_when_the_box_fails(box, tmp_path, monkeypatch, capsys, cfg_path):
    from kiosk import cli

    disk = _disk(tmp_path, 1)

    def broken(*a, **k):
        raise RuntimeError("the catalogue is gone")

    monkeypatch.setattr(usb, "import_folder", broken)
    status = cli.main(["ingest", "--source", "usb", "--config", str(cfg_path), str(disk)])
    assert status not in (0, 1)  # the unit accepts 1 (rejections) as success; a fault must show
    assert "Traceback" not in capsys.readouterr().err
    unit = (Path(__file__).parent.parent / "systemd" / "kiosk-usb-import@.service").read_text()
    assert f"SuccessExitStatus=1\n" in unit and str(status) not in unit.split("SuccessExitStatus=")[1].splitlines()[0]


def test_a_disk_of_unsigned_junk_is_imported_within_the_units_memory_limit(box, tmp_path, cfg_path):
    """The unit's MemoryMax is no promise unless the import keeps under it whatever the disk holds."""
    import re
    import subprocess
    import sys
    import tarfile

    cfg, _ = box
    unit = (Path(__file__).parent.parent / "systemd" / "kiosk-usb-import@.service").read_text()
    limit = int(re.search(r"^MemoryMax=(\d+)M$", unit, re.M).group(1)) << 20
    folder = tmp_path / "junkdisk" / "kiosk"
    folder.mkdir(parents=True)
    with tarfile.open(folder / "many.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
        for i in range(60_000):  # three times what a package may hold
            tar.addfile(tarfile.TarInfo(f"bag/data/{i}"))

    def fat(d: Path) -> None:
        (d / "manifest-md5.txt").write_text("".join(f"{'0' * 32}  data/{i:06d}{'x' * 700}\n" for i in range(9_000)))
        (d / "manifest-sha512.txt").write_text("".join(f"{'0' * 128}  data/{i:06d}{'x' * 700}\n" for i in range(9_000)))

    shutil.move(str(make_bag(tmp_path, mutate=fat)), folder / "fat")
    env = {**os.environ, "KIOSK_STORAGE_TRUST_DIR": str(cfg.path("storage.trust_dir"))}
    # VmHWM, the peak of this process's own memory since its exec (ru_maxrss would count
    # the forked test process it was before the exec)
    report = ("import runpy, sys\nsys.argv[0] = 'kiosk'\ntry:\n    runpy.run_module('kiosk.cli', run_name='__main__')\n"
              "finally:\n    print(next(x for x in open('/proc/self/status') if x.startswith('VmHWM')), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", report, "ingest", "--source", "usb", "--config", str(cfg_path),
                           str(tmp_path / "junkdisk")], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and done.stdout.count("rejected   bad_bag") == 2, done.stdout + done.stderr
    peak = int(re.search(r"VmHWM:\s+(\d+) kB", done.stderr).group(1)) * 1024
    assert peak < limit / 2, f"{peak >> 20} MiB"
