"""Publishing at the centre: signed packages and recalls, the signed index, Range downloads."""

from __future__ import annotations

import base64
import io
import json
import re
import zipfile
from pathlib import Path

import pytest

from kiosk.centre.app import create_centre_app
from kiosk.library.package import verify_package
from tests.centre_helpers import centre_config

SAMPLE = Path(__file__).resolve().parent.parent / "kiosk" / "sample_content" / "child-water-safety"


@pytest.fixture
def centre(cfg_path: Path, tmp_path: Path):
    app = create_centre_app(centre_config(cfg_path, str(tmp_path / "centre.sqlite")))
    store = app.extensions["centre"]["store"]
    store.set_user("staff", "good password")
    yield app, app.extensions["centre"]["publisher"]
    store.close()


def trust(publisher, tmp_path: Path) -> Path:
    folder = tmp_path / "trust"
    folder.mkdir(exist_ok=True)
    (folder / "centre.pub").write_text(publisher.public_key_pem())
    return folder


def verified_index(client, publisher) -> dict:
    data = client.get("/api/v1/packages/index.json").data
    sig = client.get("/api/v1/packages/index.json.sig").data
    from kiosk.library.signing import load_private_key

    load_private_key(publisher.key_path()).public_key().verify(base64.b64decode(sig), data)
    return json.loads(data)


def test_a_published_package_is_in_the_signed_index_and_a_box_would_accept_it(centre, tmp_path: Path) -> None:
    app, publisher = centre
    entry = publisher.publish(SAMPLE, user="staff")
    client = app.test_client()
    index = verified_index(client, publisher)
    [p] = index["packages"]
    assert (p["id"], p["version"], p["size"]) == ("sample-water-safety", 1, entry["size"])
    assert p["path"] == "/api/v1/packages/sample-water-safety-1.tar"
    tar = client.get(p["path"]).data
    assert len(tar) == p["size"]
    (tmp_path / "got.tar").write_bytes(tar)
    assert verify_package(tmp_path / "got.tar", trust(publisher, tmp_path)).id == "sample-water-safety"


def test_package_files_are_served_with_http_range(centre) -> None:
    app, publisher = centre
    publisher.publish(SAMPLE)
    client = app.test_client()
    whole = client.get("/api/v1/packages/sample-water-safety-1.tar").data
    part = client.get("/api/v1/packages/sample-water-safety-1.tar", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.data == whole[100:200]
    assert client.get("/api/v1/packages/nothing-1.tar").status_code == 404
    assert client.get("/api/v1/packages/..%2Fcentre.sqlite").status_code == 404


def test_publishing_the_same_version_twice_is_refused(centre) -> None:
    _app, publisher = centre
    publisher.publish(SAMPLE)
    from kiosk.errors import KioskError

    with pytest.raises(KioskError, match="already published"):
        publisher.publish(SAMPLE)


def test_a_recall_is_signed_and_takes_the_withdrawn_package_out_of_the_index(centre, tmp_path: Path) -> None:
    app, publisher = centre
    publisher.publish(SAMPLE)
    recall = publisher.withdraw(["sample-water-safety"], user="staff")
    index = verified_index(app.test_client(), publisher)
    assert [p["id"] for p in index["packages"]] == [recall["id"]]
    (tmp_path / "r.tar").write_bytes(app.test_client().get(index["packages"][0]["path"]).data)
    record = verify_package(tmp_path / "r.tar", trust(publisher, tmp_path))
    assert list(record.withdraws) == ["sample-water-safety"]


def zipped(folder: Path, evil: bool = False) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in folder.rglob("*"):
            if f.is_file():
                zf.write(f, f.relative_to(folder).as_posix())
        if evil:
            zf.writestr("../../escape.txt", "x")
    return buf.getvalue()


def test_staff_publish_a_zip_from_the_page_and_an_unsafe_zip_is_refused(centre) -> None:
    app, publisher = centre
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    client.post("/login", data={"username": "staff", "password": "good password", "csrf_token": token})
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/publish").get_data(as_text=True)).group(1)
    bad = client.post("/publish", data={"csrf_token": token, "package": (io.BytesIO(zipped(SAMPLE, evil=True)), "p.zip")})
    assert bad.status_code == 400 and publisher.packages() == []
    ok = client.post("/publish", data={"csrf_token": token, "package": (io.BytesIO(zipped(SAMPLE)), "p.zip")})
    assert ok.status_code == 200 and "已发布" in ok.get_data(as_text=True)
    assert [p["id"] for p in publisher.packages()] == ["sample-water-safety"]
    no_csrf = client.post("/publish", data={"package": (io.BytesIO(zipped(SAMPLE)), "p.zip")})
    assert no_csrf.status_code == 400
