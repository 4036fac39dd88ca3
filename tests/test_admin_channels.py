"""The device page's channel sections: the satellite spool and the telecom line's content sync."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kiosk import clock, uplink
from kiosk.device.fake import FakeHardware
from kiosk.library import Library, spool
from kiosk.uplink import sync
from kiosk.web import create_app
from kiosk.web.admin import CHANNEL_WORDS, fmt_size
from tests.conftest import free_port
from tests.packages import default_key, make_bag, trust_dir
from tests.test_admin import DOCS, log_in
from tests.test_sync import NOON, Centre, _pkg


@pytest.fixture
def box(cfg, tmp_path):
    c = cfg.replace(storage__trust_dir=str(trust_dir(tmp_path)), storage__spool_settle_s=5.0, storage__spool_stale_s=600.0)
    lib = Library(c)
    yield c, lib
    lib.close()


@pytest.fixture
def centre(tmp_path):
    c = Centre(default_key(tmp_path))
    yield c
    c.close()


def _page(cfg, lib, logged_in: bool = True) -> str:
    """The device page as the administrator sees it, with the real uplink status behind it."""
    app = create_app(cfg, FakeHardware(), library=lib, start_jobs=False, uplink_status=lambda: uplink.status(cfg))
    client = app.test_client()
    if logged_in:
        log_in(client, cfg)
    return client.get("/admin/").text


def _section(page: str, name: str) -> str:
    start = page.index(f'<section id="{name}">')
    return page[start:page.index("</section>", start)]


def _half_bag(cfg, tmp_path: Path, name: str) -> None:
    """A bag in the spool whose second file the carousel has not sent (yet)."""
    bag = make_bag(tmp_path, files={"a.mp4": b"a" * 1000, "b.mp4": b"b" * 1000}, record={"id": name, "main": "a.mp4"})
    target = cfg.path("storage.spool_dir") / name
    shutil.copytree(bag, target)
    (target / "data" / "b.mp4").unlink()


@pytest.fixture
def spool_with_an_arriving_and_an_abandoned_bag(box, tmp_path):
    cfg, lib = box
    cfg.path("storage.spool_dir").mkdir(parents=True, exist_ok=True)
    frozen = clock.FrozenClock(NOON)
    with clock.use(frozen):
        _half_bag(cfg, tmp_path, "never-finished")
        assert spool.scan(cfg, lib) == []
        frozen.advance(cfg.storage.spool_stale_s + 1)
        [given_up] = spool.scan(cfg, lib)
        assert given_up.rejected
        _half_bag(cfg, tmp_path, "arriving-now")
        assert spool.scan(cfg, lib) == []
        frozen.advance(120)
        yield cfg, lib


def test_the_spool_shows_a_bag_arriving_and_a_bag_given_up_on_with_what_to_do(spool_with_an_arriving_and_an_abandoned_bag):
    cfg, lib = spool_with_an_arriving_and_an_abandoned_bag
    section = _section(_page(cfg, lib), "spool")
    arriving, waiting = section.index("arriving-now"), section.index('id="spool-waiting"')
    assert CHANNEL_WORDS["spool.arriving"][0] in section and waiting < arriving
    assert "2 分钟" in section[arriving:]  # how long it has been arriving
    [w] = spool.status(cfg)["waiting"]
    assert f"{w['listed'] - 1} / {w['listed']} 个文件" in section[arriving:]  # one file still missing
    abandoned = section[section.index('id="spool-abandoned"'):]
    assert CHANNEL_WORDS["spool.abandoned"][0] in abandoned and "never-finished" in abandoned
    assert "spool.abandoned_often" not in section  # once is weather, not a fault
    assert "spool.idle" not in section


def test_status_json_carries_the_spool_and_the_sync(spool_with_an_arriving_and_an_abandoned_bag):
    cfg, lib = spool_with_an_arriving_and_an_abandoned_bag
    app = create_app(cfg, FakeHardware(), library=lib, start_jobs=False, uplink_status=lambda: uplink.status(cfg))
    client = app.test_client()
    log_in(client, cfg)
    data = client.get("/admin/status.json").json
    assert [w["name"] for w in data["spool"]["waiting"]] == ["arriving-now"]
    assert data["spool"]["abandoned"][0]["name"] == "never-finished"
    assert data["uplink"]["sync"]["enabled"] is False and data["uplink"]["sync"]["used_bytes"] == 0


def test_bags_given_up_on_again_and_again_ask_to_call_the_county_centre(box, tmp_path):
    cfg, lib = box
    cfg.path("storage.spool_dir").mkdir(parents=True, exist_ok=True)
    with clock.use(clock.FrozenClock(NOON)) as frozen:
        for n in range(3):
            _half_bag(cfg, tmp_path, f"broken-{n}")
            spool.scan(cfg, lib)
            frozen.advance(cfg.storage.spool_stale_s + 1)
            assert len(spool.scan(cfg, lib)) == 1
        section = _section(_page(cfg, lib), "spool")
    assert CHANNEL_WORDS["spool.abandoned_often"][0] in section and "（3 个）" in section
    assert CHANNEL_WORDS["spool.idle"][0] in section  # nothing arriving now


def test_the_bag_being_published_shows_its_progress(box, tmp_path):
    cfg, lib = box
    bag = make_bag(tmp_path, record={"id": "maize"})
    shutil.copytree(bag, cfg.path("storage.spool_dir") / "maize-bag")
    pages: list[str] = []

    class Watching:
        """The real library; the device page is read while it publishes."""

        def ingest(self, path, source, progress=None):
            def peek(done: int, total: int, label: str) -> None:
                progress(done, total, label)
                if not pages:
                    pages.append(_section(_page(cfg, lib), "spool"))

            return lib.ingest(path, source=source, progress=peek)

        def __getattr__(self, name):
            return getattr(lib, name)

    [outcome] = spool.scan(cfg, Watching())
    assert outcome.outcome == "published"
    [section] = pages
    assert CHANNEL_WORDS["spool.taking"][0] in section and 'id="spool-taking"' in section and "<progress" in section
    assert CHANNEL_WORDS["spool.taking"][0] not in _section(_page(cfg, lib), "spool")


def test_the_sync_shows_budget_used_today_and_the_download_left_half_done(box, centre, tmp_path):
    cfg, lib = box
    cfg = cfg.replace(centre__url=centre.url, sync__daily_budget_mb=1, sync__timeout_s=5.0)
    centre.publish([_pkg(tmp_path, f"film-{i}", size=400_000) for i in range(4)])
    with clock.use(clock.FrozenClock(NOON)):
        assert sync.run(cfg, lib).skipped == "budget"
        used = sync.status(cfg)["used_bytes"]
        section = _section(_page(cfg, lib), "sync")
    assert CHANNEL_WORDS["sync.budget_spent"][0] in section and CHANNEL_WORDS["sync.waiting"][0] in section
    assert f"{fmt_size(used)} / 1.0 MB" in section
    partial = section[section.index('id="sync-partial"'):]
    assert "film-" in partial and "v1" in partial
    assert "sync.late" not in section and "sync.off" not in section


def test_a_refused_download_is_the_last_problem_and_a_silent_line_asks_to_check_it(box, centre, tmp_path):
    cfg, lib = box
    cfg = cfg.replace(centre__url=centre.url, sync__timeout_s=5.0, sync__interval_s=3600)
    centre.publish([_pkg(tmp_path, "maize")], tamper=True)
    with clock.use(clock.FrozenClock(NOON)) as frozen:
        assert [o.reason for o in sync.run(cfg, lib).outcomes] == ["bad_hash"]
        section = _section(_page(cfg, lib), "sync")
        assert CHANNEL_WORDS["sync.refused"][0] in section and "maize v1" in section[section.index('id="sync-error"'):]
        assert "sync.late" not in section
        frozen.advance(4 * 3600)  # three intervals without a finished look at the index
        assert CHANNEL_WORDS["sync.late"][0] in _section(_page(cfg, lib), "sync")


def test_a_look_that_fails_because_the_line_is_down_is_shown_until_a_later_look_succeeds(box, centre, tmp_path):
    cfg, lib = box
    down = cfg.replace(centre__url=f"http://127.0.0.1:{free_port()}", sync__timeout_s=2.0)
    with clock.use(clock.FrozenClock(NOON)) as frozen:
        with pytest.raises(Exception):
            sync.run(down, lib)
        section = _section(_page(down, lib), "sync")
        assert CHANNEL_WORDS["sync.line_down"][0] in section  # the true cause, said once
        assert CHANNEL_WORDS["sync.never"][0] not in section and CHANNEL_WORDS["sync.failed"][0] not in section
        frozen.advance(60)
        centre.publish([_pkg(tmp_path, "maize")])
        up = cfg.replace(centre__url=centre.url, sync__timeout_s=5.0)
        assert [o.outcome for o in sync.run(up, lib).outcomes] == ["published"]
        assert CHANNEL_WORDS["sync.line_down"][0] not in _section(_page(up, lib), "sync")


def test_without_a_centre_the_sync_says_it_is_off(box):
    cfg, lib = box
    section = _section(_page(cfg, lib), "sync")
    assert CHANNEL_WORDS["sync.off"][0] in section and "sync.budget_spent" not in section


def test_without_login_neither_the_spool_nor_the_sync_is_shown(spool_with_an_arriving_and_an_abandoned_bag):
    cfg, lib = spool_with_an_arriving_and_an_abandoned_bag
    app = create_app(cfg, FakeHardware(), library=lib, start_jobs=False, uplink_status=lambda: uplink.status(cfg))
    client = app.test_client()
    r = client.get("/admin/")
    assert r.status_code == 401
    for secret in ("arriving-now", "never-finished", CHANNEL_WORDS["spool.abandoned"][0], CHANNEL_WORDS["sync.off"][0], 'id="sync"'):
        assert secret not in r.text
    assert client.get("/admin/status.json").status_code == 401


def test_every_channel_sentence_is_in_the_administrators_guide():
    docs = DOCS.read_text(encoding="utf-8")
    for state, (zh, en) in CHANNEL_WORDS.items():
        assert f"`{state}`" in docs and zh in docs and en in docs, state
