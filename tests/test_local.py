"""Local content on the box: `kiosk local add` makes a package signed by the point, on the screens at once."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk.errors import KioskError
from kiosk.library import Library, local
from kiosk.library.mediacheck import MediaRefused
from kiosk.library.pointkey import ensure_key, key_path
from tests.packages import make_bag, make_key, trust_dir
from tests.test_malformed import store_fingerprint

SAMPLES = Path(__file__).resolve().parents[1] / "kiosk" / "sample_content"
VIDEO = SAMPLES / "pig-farming-video" / "data" / "video.mp4"
PICTURE = SAMPLES / "pig-farming-video" / "data" / "poster.jpg"
PDF = SAMPLES / "hypertension-care" / "data" / "guide.pdf"


@pytest.fixture
def lib(cfg):
    library = Library(cfg)
    yield library
    library.close()


def test_added_video_is_on_the_screens_at_once_under_a_local_id(cfg, lib):
    made = local.add(cfg, lib, [VIDEO, PICTURE], "村里的豫剧团", description="春节演出")
    assert made == {"id": "local.test-point.1", "version": 1}
    item = lib.item("local.test-point.1")
    assert item.title == "村里的豫剧团" and item.category == "local"
    assert item.main_file.media_type == "video/mp4" and item.poster
    assert local.status(cfg)["counts"]["pending"] == 1
    second = local.add(cfg, lib, [PDF], "村规民约", category="law")
    assert second["id"] == "local.test-point.2" and lib.item(second["id"]).category == "law"


def test_the_point_key_is_made_once_and_kept(cfg):
    first = ensure_key(cfg)
    data = first.read_bytes()
    assert ensure_key(cfg) == key_path(cfg) and key_path(cfg).read_bytes() == data


def refused_and_nothing_stored(cfg, lib, files, title="标题", **kw) -> str:
    def state():
        return store_fingerprint(lib), local.status(cfg), sorted((cfg.data_dir / "local").rglob("*"))

    before = state()
    with pytest.raises(KioskError) as e:
        local.add(cfg, lib, files, title, **kw)
    assert state() == before
    return str(e.value)


def test_a_file_that_is_not_video_picture_audio_or_pdf_is_refused(cfg, lib, tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("这不是视频")
    assert "不是视频、图片、音频或 PDF" in refused_and_nothing_stored(cfg, lib, [text])


def test_a_video_that_does_not_play_is_refused_with_a_plain_reason(cfg, lib, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(VIDEO.read_bytes()[:3000])
    assert "无法播放" in refused_and_nothing_stored(cfg, lib, [broken])


def test_a_file_over_the_cap_is_refused(cfg, lib, tmp_path):
    small = cfg.replace(uplink__upload_max_mb=1)
    big = tmp_path / "big.pdf"
    big.write_bytes(b"%PDF-1.4\n" + b"0" * (2 << 20))
    assert "太大" in refused_and_nothing_stored(small, lib, [big])


def test_the_same_files_twice_are_a_duplicate(cfg, lib):
    local.add(cfg, lib, [PDF], "健康手册")
    assert "已经添加过" in refused_and_nothing_stored(cfg, lib, [PDF], "又一次")


def test_a_title_is_needed(cfg, lib):
    assert "标题" in refused_and_nothing_stored(cfg, lib, [PDF], "  ")


def test_the_point_key_is_trusted_for_its_own_local_ids_only(cfg, lib, tmp_path):
    key = ensure_key(cfg)
    # the point's key signing a package that is not one of its local ones
    other = make_bag(tmp_path, {"a.txt": b"x"}, {"id": "county-news", "version": 1, "title": "x", "main": "a.txt"}, key=key)
    assert lib.ingest(other).reason == "untrusted"
    # another point's local id
    theirs = make_bag(tmp_path, {"a.txt": b"x"}, {"id": "local.other-point.1", "version": 1, "title": "x", "main": "a.txt"}, key=key)
    assert lib.ingest(theirs).reason == "untrusted"
    # our local id signed by a key that is not ours
    stranger = make_key(tmp_path / "stranger.pem")
    forged = make_bag(tmp_path, {"a.txt": b"x"}, {"id": "local.test-point.9", "version": 1, "title": "x", "main": "a.txt"}, key=stranger)
    assert lib.ingest(forged).reason == "untrusted"
    mine = make_bag(tmp_path, {"a.txt": b"x"}, {"id": "local.test-point.9", "version": 1, "title": "x", "main": "a.txt"}, key=key)
    assert lib.ingest(mine).outcome == "published"


def test_kiosk_local_add_prints_id_and_version_and_status_lists_it(cfg_path):
    run = [sys.executable, "-m", "kiosk.cli", "--config", str(cfg_path)]
    out = subprocess.run([*run, "local", "add", str(VIDEO), "--title", "修路了", "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"id": "local.test-point.1", "version": 1}
    status = subprocess.run([*run, "status", "--json"], capture_output=True, text=True, timeout=120)
    mine = json.loads(status.stdout)["local"]
    assert mine["counts"]["pending"] == 1 and mine["items"][0]["title"] == "修路了"
    bad = subprocess.run([*run, "local", "add", str(cfg_path), "--title", "x", "--json"], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "不是视频" in bad.stderr and "Traceback" not in bad.stderr
