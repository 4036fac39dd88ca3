"""Uploads to publish are bounded: the zip, what it unpacks to and how many files it holds.
A refused upload publishes nothing and leaves nothing behind."""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from pathlib import Path

import pytest

from kiosk.centre import publish
from tests.centre_helpers import centre_config, page_csrf, staff_centre, staff_login
from tests.test_centre_publish import SAMPLE, zipped
from tests.test_malformed import tree_fingerprint


@pytest.fixture
def centre(cfg_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where an upload is unpacked
    cfg = centre_config(cfg_path, str(tmp_path / "centre.sqlite"), KIOSK_CENTRE_MAX_UPLOAD_MB="2",
                        KIOSK_CENTRE_MAX_UNPACKED_MB="8")
    for app, _store in staff_centre(cfg):
        client = app.test_client()
        staff_login(client)
        client.token = page_csrf(client, "/publish")
        yield client, app.extensions["centre"]["publisher"], scratch


def with_extra(members: dict[str, bytes] | None = None, count: int = 0) -> bytes:
    """The sample package as a zip, plus extra members."""
    buf = io.BytesIO(zipped(SAMPLE))
    with zipfile.ZipFile(buf, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in (members or {}).items():
            zf.writestr(f"data/{name}", data)
        for n in range(count):
            zf.writestr(f"data/many/{n}.txt", b"")
    return buf.getvalue()


def offer(centre, data: bytes, status: int, words: str) -> None:
    """Upload a bad zip and check that it is refused and changes nothing else."""
    client, publisher, scratch = centre
    before = publisher.packages(), tree_fingerprint(publisher.dir) if publisher.dir.exists() else None
    r = client.post("/publish", data={"csrf_token": client.token, "package": (io.BytesIO(data), "p.zip")})
    assert r.status_code == status
    assert words in r.get_data(as_text=True) and "没有发布" in r.get_data(as_text=True)
    assert (publisher.packages(), tree_fingerprint(publisher.dir) if publisher.dir.exists() else None) == before
    assert os.listdir(scratch) == []  # nothing unpacked is left behind


def test_a_zip_that_unpacks_past_the_cap_is_refused(centre) -> None:
    bomb = with_extra({"zeros.bin": b"\0" * (20 << 20)})  # 20 MB of zeros: a zip of some 20 KB
    assert len(bomb) < 200_000
    offer(centre, bomb, 400, "max_unpacked_mb")


def test_a_zip_of_too_many_files_is_refused(centre) -> None:
    offer(centre, with_extra(count=publish.MAX_ZIP_MEMBERS + 1), 400, "at most")


def test_an_upload_over_the_size_cap_is_refused_before_it_is_read(centre) -> None:
    offer(centre, with_extra({"noise.bin": os.urandom(3 << 20)}), 413, "max_upload_mb")


def test_a_zip_whose_declared_sizes_lie_is_still_counted_as_written(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("data/a.bin", b"x" * 4096)
    raw = bytearray(buf.getvalue())
    # lower the size the central directory declares to 16 bytes; the data stays 4 KiB
    cd = raw.rindex(b"PK\x01\x02")
    raw[cd + 24 : cd + 28] = (16).to_bytes(4, "little")
    (tmp_path / "lie.zip").write_bytes(bytes(raw))
    from kiosk.errors import KioskError

    with pytest.raises(KioskError):
        publish._safe_unzip(tmp_path / "lie.zip", tmp_path / "out", max_bytes=1024)
    assert sum(f.stat().st_size for f in (tmp_path / "out").rglob("*") if f.is_file()) <= 1024


def test_a_zip_within_the_caps_is_published(centre) -> None:
    client, publisher, _scratch = centre
    r = client.post("/publish", data={"csrf_token": client.token, "package": (io.BytesIO(with_extra({"x.txt": b"x"})), "p.zip")})
    assert r.status_code == 200 and [p["id"] for p in publisher.packages()] == ["sample-water-safety"]
