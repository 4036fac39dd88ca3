"""The update state in plain words: `kiosk status --json`, the device page's software section, heartbeats."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kiosk import __version__
from kiosk.update import state as state_mod
from kiosk.update import status
from kiosk.update.words import OUTCOMES, STATES, view
from tests.test_admin import admin, app, box, client, hw  # noqa: F401 (fixtures)


def set_state(cfg, **fields):
    st = state_mod.load(cfg.data_dir)
    st.update(fields)
    state_mod.save(cfg.data_dir, st)


def test_every_update_state_has_plain_chinese_and_english_words():
    assert sorted(STATES) == sorted(state_mod.STATES)
    for s in STATES.values():
        assert s.zh and s.en and s.level in ("ok", "warning")
    for outcome in ("installing", "trying", "kept", "rolled_back", "failed", "interrupted"):
        assert all(OUTCOMES[outcome])


@pytest.mark.parametrize("state", state_mod.STATES)
def test_the_device_page_says_each_update_state(admin, box, state):  # noqa: F811
    cfg = box[0]
    set_state(cfg, state=state, last={"version": "9.1", "outcome": "rolled_back", "reason": "it crashed at start", "at": 0})
    page = admin.get("/admin/?open=software").get_data(as_text=True)
    assert f'data-state="{state}"' in page
    assert STATES[state].zh in page
    assert "it crashed at start" in page and "已换回原来的版本" in page


def test_status_json_and_the_command_line_give_version_state_and_last(admin, box):  # noqa: F811
    cfg = box[0]
    set_state(cfg, state="failed", last={"version": "9.1", "outcome": "failed", "reason": "No matching distribution", "at": 1})
    sw = admin.get("/admin/status.json").json["software"]
    assert (sw["version"], sw["state"], sw["last"]["outcome"]) == (__version__, "failed", "failed")
    done = subprocess.run([sys.executable, "-m", "kiosk.cli", "status", "--json", "--config", cfg.source],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)["software"]
    assert out["version"] == __version__ and out["state"] == "failed"
    assert out["last"] == {"version": "9.1", "outcome": "failed", "reason": "No matching distribution", "at": 1}


def test_a_box_that_never_updated_says_current_with_no_last_update(cfg):
    assert status(cfg)["state"] == "current" and status(cfg)["last"] is None
    assert view(status(cfg))["level"] == "ok"


def test_heartbeats_carry_the_software_version_and_state(cfg):
    from kiosk.uplink import report

    set_state(cfg, state="trying", target="9.1")
    beat = report.base(cfg, "beat", None, None)
    assert beat["software"] == {"version": "9.1", "state": "trying"}
