"""`kiosk centre import` on a disk someone prepared: it follows no link, and one bad file stops nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kiosk import wire
from kiosk.centre import importer
from kiosk.centre.importer import import_dir
from kiosk.centre.store import Store
from tests.centre_helpers import db_url  # noqa: F401  (db_url is a fixture)
from tests.test_centre_import import export
from tests.test_malformed import tree_fingerprint


@pytest.fixture
def store(db_url: str):  # noqa: F811
    s = Store(db_url)
    yield s
    s.close()


def test_a_planted_link_at_the_ack_file_is_replaced_not_written_through(store: Store, tmp_path: Path) -> None:
    usb, victim = tmp_path / "usb", tmp_path / "precious.txt"
    victim.write_text("keep me")
    secret = store.enroll("p1")
    export(usb, "p1", secret, range(1, 4))
    (usb / "p1.ack").symlink_to(victim)
    (usb / ".p1.ack.tmp").symlink_to(victim)  # the temporary name the import used to write through
    before = tree_fingerprint(victim)
    result = import_dir(store, usb)
    assert result["stored"] == 3
    assert tree_fingerprint(victim) == before and victim.read_text() == "keep me"
    assert not (usb / "p1.ack").is_symlink()
    assert wire.decode_ack_file((usb / "p1.ack").read_bytes(), "p1", secret) == [1, 2, 3]


def test_an_import_folder_that_is_a_link_is_refused_and_nothing_is_written(store: Store, tmp_path: Path) -> None:
    real = tmp_path / "elsewhere"
    secret = store.enroll("p1")
    export(real, "p1", secret, range(1, 4))
    (tmp_path / "usb").symlink_to(real)
    before = tree_fingerprint(real)
    with pytest.raises(Exception, match="link"):
        import_dir(store, tmp_path / "usb")
    assert tree_fingerprint(real) == before and store.report_count() == 0


def test_export_files_that_are_links_fifos_or_huge_are_refused_and_the_rest_imported(store: Store, tmp_path: Path) -> None:
    usb = tmp_path / "usb"
    secret = store.enroll("p1")
    export(usb, "p1", secret, range(1, 4))
    export(tmp_path / "outside", "p1", secret, range(1001, 1004))
    (usb / "p1-000000001001.khb").symlink_to(tmp_path / "outside" / "p1-000000001001.khb")
    os.mkfifo(usb / "p1-000000002001.khb")
    with open(usb / "p1-000000003001.khb", "wb") as f:
        f.truncate(wire.MAX_BODY_BYTES + 64 * 1024)  # sparse: costs no disk, would cost memory
    (usb / "p1-000000004001.khb").mkdir()
    result = import_dir(store, usb)
    errors = sorted((r["file"], r["error"]) for r in result["refused"])
    assert errors == [(f"p1-00000000{n}001.khb", "not_export") for n in (1, 2, 3, 4)]
    assert store.seqs("p1") == [1, 2, 3]


def test_an_unforeseen_fault_in_one_file_refuses_that_file_and_the_import_goes_on(store: Store, tmp_path: Path, monkeypatch) -> None:
    usb = tmp_path / "usb"
    s1, s2 = store.enroll("p1"), store.enroll("p2")
    export(usb, "p1", s1, range(1, 4))
    export(usb, "p2", s2, range(1, 4))
    real = importer.ingest.receive

    def flaky(store, header, body, **kw):
        if "point=p1," in header:
            raise RuntimeError("something nobody foresaw")
        return real(store, header, body, **kw)

    monkeypatch.setattr(importer.ingest, "receive", flaky)
    result = import_dir(store, usb)
    assert [(r["file"], r["error"]) for r in result["refused"]] == [("p1-000000000001.khb", "failed")]
    assert "something nobody foresaw" in result["refused"][0]["detail"]
    assert store.seqs("p1") == [] and store.seqs("p2") == [1, 2, 3]
    assert (usb / "p2.ack").exists() and not (usb / "p1.ack").exists()
