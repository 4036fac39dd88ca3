"""`kiosk uplink export DIR`: the outbox onto a USB disk as signed wire-format batch files."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiosk import cli, wire
from kiosk.config import Config
from kiosk.errors import KioskError
from kiosk.uplink import export_outbox, status
from kiosk.uplink.outbox import Outbox

SECRET = "usb-secret"


@pytest.fixture
def box(cfg: Config) -> Config:
    return cfg.replace(centre__secret=SECRET)


def fill(cfg: Config, n: int) -> list[int]:
    with Outbox.of(cfg) as ob:
        return ob.add([{"v": 1, "kind": "beat", "point_id": cfg.point.id, "box_time": 1_800_000_000.0 + i} for i in range(n)])


def read_folder(folder: Path) -> dict[int, dict]:
    """Check every file as the centre's import must, and return the reports by seq."""
    found: dict[int, dict] = {}
    for path in sorted(folder.glob(f"*{wire.EXPORT_SUFFIX}")):
        header, body = wire.read_export_file(path.read_bytes())
        point, ts, sig = wire.parse_authorization(header)
        wire.check_signature(SECRET, "POST", wire.HEARTBEATS_PATH, ts, body, sig)
        for r in wire.decode_batch(body):
            assert r["point_id"] == point
            found[r["seq"]] = r
    return found


def test_export_writes_every_waiting_report_as_signed_batches_the_centre_can_check(box: Config, tmp_path: Path) -> None:
    seqs = fill(box, 2500)
    usb = tmp_path / "usb"
    summary = export_outbox(box, usb)
    found = read_folder(usb)
    assert set(seqs) <= set(found)
    assert summary["reports"] == len(found) and summary["files_written"] == len(list(usb.iterdir())) == 3
    assert status(box)["outbox"] == len(found)  # nothing leaves the outbox by export alone


def test_exporting_twice_writes_the_same_bytes(box: Config, tmp_path: Path) -> None:
    fill(box, 10)
    export_outbox(box, tmp_path / "usb")
    before = {p.name: p.read_bytes() for p in (tmp_path / "usb").iterdir()}
    again = export_outbox(box, tmp_path / "usb")
    assert again["files_unchanged"] == len(before) and again["files_written"] == 0
    assert {p.name: p.read_bytes() for p in (tmp_path / "usb").iterdir()} == before


def test_a_signed_ack_file_from_the_centre_removes_those_reports_and_a_forged_one_does_not(box: Config, tmp_path: Path) -> None:
    seqs = fill(box, 10)
    usb = tmp_path / "usb"
    export_outbox(box, usb)
    (usb / f"{box.point.id}.ack").write_bytes(wire.encode_ack_file(box.point.id, "someone-else", seqs, 1_800_000_100))
    export_outbox(box, usb)
    assert status(box)["outbox"] >= 10
    (usb / f"{box.point.id}.ack").write_bytes(wire.encode_ack_file(box.point.id, SECRET, seqs[:6], 1_800_000_100))
    summary = export_outbox(box, usb)
    assert summary["acknowledged_by_file"] == 6
    with Outbox.of(box) as ob:
        left = {r["seq"] for r in ob.oldest(limit=100)}
    assert not left & set(seqs[:6]) and set(seqs[6:]) <= left
    assert set(seqs) <= set(read_folder(usb))  # the disk keeps what it had: nothing is lost on the way


def test_export_without_the_points_secret_says_so_and_writes_nothing(cfg: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fill(cfg, 3)
    cfg_file = Path(cfg.source)
    rc = cli.main(["uplink", "export", str(tmp_path / "usb"), "--config", str(cfg_file)])
    assert rc == 2 and "centre.secret" in capsys.readouterr().err
    assert not (tmp_path / "usb").exists()


def test_export_to_a_disk_that_is_not_mounted_says_so(box: Config, tmp_path: Path) -> None:
    from kiosk.errors import KioskError

    with pytest.raises(KioskError, match="does not exist"):
        export_outbox(box, tmp_path / "no-such-disk" / "kiosk")


def test_the_export_command_prints_what_it_wrote(cfg_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIOSK_CENTRE_SECRET", SECRET)
    rc = cli.main(["uplink", "export", str(tmp_path / "usb"), "--config", str(cfg_path), "--json"])
    out = capsys.readouterr().out
    assert rc == 0 and '"reports": 2' in out  # a fresh boot event and beat went along
    assert len(read_folder(tmp_path / "usb")) == 2


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim.txt"
    victim.write_text("the box's own file\n")
    return victim


def test_export_writes_through_no_link_planted_at_a_file_name(box: Config, tmp_path: Path) -> None:
    fill(box, 3)
    usb = tmp_path / "usb"
    usb.mkdir()
    victim = _victim(tmp_path)
    name = wire.export_name(box.point.id, 1)
    (usb / name).symlink_to(victim)
    (usb / f".{name}.tmp").symlink_to(victim)  # the temporary name an earlier version used
    export_outbox(box, usb)
    assert victim.read_text() == "the box's own file\n"
    assert not (usb / name).is_symlink() and {1, 2, 3} <= set(read_folder(usb))


def test_export_refuses_a_folder_that_is_a_link(box: Config, tmp_path: Path) -> None:
    fill(box, 3)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "usb").symlink_to(elsewhere)
    with pytest.raises(KioskError):
        export_outbox(box, tmp_path / "usb")
    assert list(elsewhere.iterdir()) == []
