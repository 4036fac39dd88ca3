"""The telecom sync's states on the device page: each from the table, its true cause, counted at the top."""

from __future__ import annotations

from typing import Any

import pytest

from kiosk import clock, uplink
from kiosk.device.fake import FakeHardware
from kiosk.library import Library
from kiosk.uplink import sync
from kiosk.web import create_app
from kiosk.web.channels import CHANNEL_STATES
from tests.packages import make_key, trust_dir
from tests.test_admin import DOCS, log_in
from tests.test_admin_channels import _section
from tests.test_sync import NOON, Centre, _pkg

HOUR = 3600.0


def status(**over: Any) -> dict[str, Any]:
    """A sync status as kiosk.uplink.sync.status() gives it: on, looked an hour ago, nothing waiting."""
    base = {"enabled": True, "window": "", "in_window": True, "interval_s": 3600, "budget_bytes": 100 << 20,
            "used_bytes": 0, "last_run": {"at": NOON - HOUR, "skipped": None, "pending": 0}, "index_generated": 1,
            "pending": 0, "partial": [], "partial_files": [], "last_error": None}
    base.update(over)
    return base


def failure(code: str) -> dict[str, Any]:
    return {"at": NOON - 60, "since": NOON - 2 * HOUR, "code": code, "id": None, "version": None, "detail": "x"}


SYNC_SETUPS: dict[str, dict[str, Any]] = {
    "sync.off": status(enabled=False),
    "sync.never": status(last_run=None),
    "sync.ok": status(),
    "sync.no_index": status(last_run={"at": NOON - HOUR, "skipped": "no_index", "pending": 0}),
    "sync.waiting": status(pending=2),
    "sync.budget_spent": status(used_bytes=100 << 20),
    "sync.outside_window": status(window="22-06", in_window=False),
    "sync.late": status(last_run={"at": NOON - 4 * HOUR, "skipped": None, "pending": 0}),
    "sync.line_down": status(last_error=failure("line_down")),
    "sync.centre_error": status(last_error=failure("centre_error")),
    "sync.untrusted_index": status(last_error=failure("untrusted_index")),
    "sync.bad_index": status(last_error=failure("bad_index")),
    "sync.failed": status(last_error=failure("failed")),
    "sync.stale_index": status(last_run={"at": NOON - 60, "skipped": "stale_index", "pending": 0},
                               last_error={"at": NOON - 60, "code": "stale_index", "id": None, "version": None, "detail": "x"}),
    "sync.refused": status(last_error={"at": NOON - HOUR, "code": "bad_signature", "id": "maize", "version": 2, "detail": "x"}),
}
SYNC_STATES = sorted(s for s in CHANNEL_STATES if s.startswith("sync."))


@pytest.fixture
def lib(cfg):
    library = Library(cfg)
    yield library
    library.close()


def page_with(cfg, lib, sync_status: dict[str, Any] | None) -> str:
    app = create_app(cfg.replace(centre__url="http://centre.example"), FakeHardware(), library=lib, start_jobs=False,
                     uplink_status=lambda: {"last_sent": clock.now() - 60, "outbox": 0, "sync": sync_status})
    client = app.test_client()
    log_in(client, cfg)
    return client.get("/admin/").text


def test_every_sync_state_has_a_setup_here():
    assert sorted(SYNC_SETUPS) == SYNC_STATES


@pytest.mark.parametrize("state_id", SYNC_STATES)
def test_each_sync_state_renders_its_words_and_a_problem_counts_at_the_top(cfg, lib, state_id):
    state = CHANNEL_STATES[state_id]
    docs = DOCS.read_text(encoding="utf-8")
    assert f"`{state_id}`" in docs and state.zh in docs and state.en in docs
    with clock.use(clock.FrozenClock(NOON)):
        page = page_with(cfg, lib, SYNC_SETUPS[state_id])
    section = _section(page, "sync")
    assert f'data-state="{state_id}"' in section and state.zh in section
    glance = page[page.index('id="glance"'):page.index('<section id="health">')]
    if state.level == "ok":
        assert 'data-status="ok"' in glance and state.zh not in glance
    else:
        assert f'data-status="{state.level}"' in glance and state.zh in glance
        assert "<details open>" in section  # a section with a problem opens by itself
    # the sync never says two things that cannot both be true
    said = {s for s in SYNC_STATES if f'data-state="{s}"' in section}
    causes = said & {"sync.never", "sync.late", "sync.line_down", "sync.centre_error", "sync.untrusted_index",
                     "sync.bad_index", "sync.stale_index", "sync.failed", "sync.ok", "sync.off", "sync.no_index"}
    assert len(causes) <= 1, said


def test_an_index_signed_by_an_unknown_key_is_said_plainly_and_turns_the_top_amber(cfg, lib, tmp_path):
    centre = Centre(make_key(tmp_path / "strange" / "other.pem"))
    try:
        box = cfg.replace(storage__trust_dir=str(trust_dir(tmp_path)), centre__url=centre.url, sync__timeout_s=5.0)
        centre.publish([_pkg(tmp_path, "maize")])
        with clock.use(clock.FrozenClock(NOON)):
            with pytest.raises(sync.IndexUntrusted):
                sync.run(box, lib)
            app = create_app(box, FakeHardware(), library=lib, start_jobs=False,
                             uplink_status=lambda: {"last_sent": clock.now(), "outbox": 0, "sync": sync.status(box)})
            client = app.test_client()
            log_in(client, box)
            page = client.get("/admin/").text
            glance = client.get("/admin/status.json").json["glance"]
    finally:
        centre.close()
    section = _section(page, "sync")
    words = CHANNEL_STATES["sync.untrusted_index"]
    assert words.zh in section
    for other in ("sync.never", "sync.failed", "sync.stale_index", "sync.late", "sync.ok"):
        assert CHANNEL_STATES[other].zh not in section, other
    assert "目录比上次旧" not in page and "Error" not in section
    top = page[page.index('id="glance"'):page.index('<section id="health">')]
    assert 'data-status="warning"' in top and words.zh in top and "一切正常" not in top
    assert glance["status"] == "warning" and glance["state"] == "sync.untrusted_index"


def test_a_failing_line_is_line_down_and_a_broken_centre_is_centre_error(cfg, lib, tmp_path):
    import requests

    assert sync.failure_code(requests.ConnectionError("refused")) == "line_down"
    assert sync.failure_code(requests.Timeout("slow")) == "line_down"
    r = requests.Response()
    r.status_code = 500
    assert sync.failure_code(requests.HTTPError(response=r)) == "centre_error"
    assert sync.failure_code(sync.IndexMalformed("bad")) == "bad_index"
    assert sync.failure_code(RuntimeError("?")) == "failed"
