"""The launcher and the update state at every instant a power cut can strike, without building real releases.

A release here is a folder with bin/kiosk and the .complete mark, as install.py leaves it;
the end-to-end test (test_update_e2e.py) runs real ones.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kiosk import __version__
from kiosk import config as config_mod
from kiosk.update import launch, release_path, state as state_mod, status
from kiosk.update.install import complete
from kiosk.update.switch import begin_trial, keep, set_link
from kiosk.update.state import COMPLETE_MARK


@pytest.fixture
def ucfg(tmp_path: Path) -> config_mod.Config:
    base = tmp_path / "base"
    fake_release(base)
    return config_mod.Config({s.name: s.default for s in config_mod.SETTINGS}).replace(
        storage__data_dir=str(tmp_path / "data"), update__base_release=str(base))


def fake_release(folder: Path, done: bool = True) -> Path:
    (folder / "bin").mkdir(parents=True)
    (folder / "bin" / "kiosk").write_text("#!/bin/sh\n")
    if done:
        (folder / COMPLETE_MARK).write_text("x\n")
    return folder


def installed(cfg: config_mod.Config, version: str, done: bool = True) -> Path:
    return fake_release(release_path(cfg, version), done)


def current_link(cfg: config_mod.Config) -> str:
    return os.readlink(cfg.path("update.releases_dir") / "current")


def test_a_box_that_never_updated_runs_its_base_release(ucfg):
    assert launch.decide(ucfg) == Path(ucfg.update.base_release)
    assert current_link(ucfg) == ucfg.update.base_release
    assert status(ucfg)["version"] == __version__ and status(ucfg)["state"] == "current"


def test_a_power_cut_during_install_runs_the_old_release_and_removes_the_debris(ucfg):
    st = state_mod.load(ucfg.data_dir)
    st.update(state="installing", target="9.1")
    state_mod.save(ucfg.data_dir, st)
    debris = installed(ucfg, "9.1", done=False)
    assert launch.decide(ucfg) == Path(ucfg.update.base_release)
    assert not debris.exists()
    st = state_mod.load(ucfg.data_dir)
    assert st["state"] == "current" and st["interrupted"] == {"9.1": 1} and "9.1" not in st["refused"]
    assert st["last"]["outcome"] == "interrupted"


def test_an_install_cut_off_three_times_is_given_up(ucfg):
    for _ in range(3):
        st = state_mod.load(ucfg.data_dir)
        st.update(state="installing", target="9.1")
        state_mod.save(ucfg.data_dir, st)
        launch.decide(ucfg)
    st = state_mod.load(ucfg.data_dir)
    assert st["state"] == "failed" and "9.1" in st["refused"]


def test_a_power_cut_after_the_trial_was_written_starts_the_new_release_once(ucfg):
    new = installed(ucfg, "9.1")
    begin_trial(ucfg.data_dir, "9.1")
    assert launch.decide(ucfg) == new
    assert current_link(ucfg) == str(new)
    st = state_mod.load(ucfg.data_dir)
    assert st["trial"]["starts"] == 1 and st["trial"]["boot"] == state_mod.boot_id()
    assert status(ucfg)["version"] == "9.1" and status(ucfg)["state"] == "trying"


def test_a_release_started_again_in_the_same_boot_during_its_trial_is_rolled_back(ucfg):
    installed(ucfg, "9.1")
    begin_trial(ucfg.data_dir, "9.1")
    launch.decide(ucfg)  # its first start; it crashes
    assert launch.decide(ucfg) == Path(ucfg.update.base_release)
    sw = status(ucfg)
    assert (sw["version"], sw["state"]) == (__version__, "rolled_back")
    assert sw["last"]["version"] == "9.1" and "stopped during its trial" in sw["last"]["reason"]
    assert current_link(ucfg) == ucfg.update.base_release


def test_a_trial_cut_off_by_power_gets_one_more_boot_then_is_left(ucfg, monkeypatch):
    new = installed(ucfg, "9.1")
    begin_trial(ucfg.data_dir, "9.1")
    monkeypatch.setattr(state_mod, "boot_id", lambda: "boot-1")
    assert launch.decide(ucfg) == new
    monkeypatch.setattr(state_mod, "boot_id", lambda: "boot-2")  # the power came back
    assert launch.decide(ucfg) == new
    monkeypatch.setattr(state_mod, "boot_id", lambda: "boot-3")
    assert launch.decide(ucfg) == Path(ucfg.update.base_release)
    assert "cut off 2 times" in status(ucfg)["last"]["reason"]


def test_a_kept_release_runs_from_then_on_and_the_one_before_stays_for_the_way_back(ucfg):
    old = installed(ucfg, "9.1")
    begin_trial(ucfg.data_dir, "9.1")
    launch.decide(ucfg)
    assert keep(ucfg.data_dir, "9.1")
    new = installed(ucfg, "9.2")
    begin_trial(ucfg.data_dir, "9.2")
    launch.decide(ucfg)
    assert keep(ucfg.data_dir, "9.2")
    assert launch.decide(ucfg) == new
    assert old.exists() and state_mod.load(ucfg.data_dir)["previous"] == "9.1"
    assert not keep(ucfg.data_dir, "9.2")  # no longer on trial: nothing to keep


def test_a_rolled_back_release_is_not_offered_again_but_a_higher_one_is(ucfg):
    from kiosk.library.record import Software
    from kiosk.update import offer, platform_tag

    installed(ucfg, "9.1")
    begin_trial(ucfg.data_dir, "9.1")
    launch.decide(ucfg)
    launch.decide(ucfg)  # rolled back
    assert "given up" in offer(ucfg, Software("app", "9.1", (platform_tag(),)))
    assert offer(ucfg, Software("app", "9.2", (platform_tag(),))) is None


def test_a_state_file_cut_mid_write_leaves_the_old_one(ucfg):
    installed(ucfg, "9.1")
    begin_trial(ucfg.data_dir, "9.1")
    launch.decide(ucfg)
    keep(ucfg.data_dir, "9.1")
    (state_mod.update_dir(ucfg.data_dir) / "state.json.tmp").write_text('{"release": "9.')  # torn temporary
    assert launch.decide(ucfg) == release_path(ucfg, "9.1")


def test_a_kept_release_whose_folder_is_gone_falls_back_to_the_base(ucfg):
    new = installed(ucfg, "9.1")
    begin_trial(ucfg.data_dir, "9.1")
    launch.decide(ucfg)
    keep(ucfg.data_dir, "9.1")
    (new / COMPLETE_MARK).unlink()
    assert launch.decide(ucfg) == Path(ucfg.update.base_release)
    assert status(ucfg)["state"] == "failed"


def test_a_current_link_left_half_switched_is_repaired_from_the_state(ucfg):
    installed(ucfg, "9.1")
    releases = ucfg.path("update.releases_dir")
    set_link(releases, releases / "9.1")  # the link moved, the state did not (power cut between)
    (releases / "current.new").symlink_to("nowhere")  # and a temporary link left over
    assert launch.decide(ucfg) == Path(ucfg.update.base_release)
    assert current_link(ucfg) == ucfg.update.base_release
    assert not (releases / "9.1").exists()  # not named by the state: removed


def test_an_unreadable_state_file_means_the_base_release(ucfg):
    folder = state_mod.update_dir(ucfg.data_dir)
    folder.mkdir(parents=True)
    (folder / "state.json").write_text("{not json")
    assert launch.decide(ucfg) == Path(ucfg.update.base_release)
    assert json.loads((folder / "state.json").read_text())["state"] == "current"
    assert complete(Path(ucfg.update.base_release))
