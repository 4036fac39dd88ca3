"""Power cuts: SIGKILL a real `kiosk ingest` at random instants, then check what is left.

Each round starts from a box holding version 1 of an item and ingests version 2 (a
few megabytes, from a "USB" folder or from the spool on the store's file system),
killing the process at a random instant. Then, before anything repairs it:

- the catalogue passes PRAGMA integrity_check;
- every item the catalogue shows is complete and matches its manifest (nothing
  half-received or unverified is visible), and it is version 1 or version 2;

and after opening the library (its crash recovery) the package ingests cleanly.
bench/powercut.py runs the same rounds at least 200 times.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from kiosk import config
from kiosk.library import Library
from tests.packages import make_bag, trust_dir

ROOT = Path(__file__).resolve().parent.parent


def _cfg(box: Path, trust: Path) -> Path:
    path = box / "kiosk.toml"
    path.write_text(f'[storage]\ndata_dir = "{box / "data"}"\ntrust_dir = "{trust}"\nmin_free_percent = 0\n', encoding="utf-8")
    return path


def visible_state(data: Path) -> set[tuple[str, int]]:
    """What the screens could show, read straight from the catalogue; asserts it is sound."""
    db_path = data / "catalogue.sqlite"
    if not db_path.exists():
        return set()
    db = sqlite3.connect(db_path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        rows = db.execute("SELECT n, id, version FROM items WHERE kind = 'item'").fetchall()
        for n, item_id, version in rows:
            folder = data / "store" / f"{item_id}@{version}"
            files = db.execute("SELECT path, size, sha256 FROM files WHERE n = ?", (n,)).fetchall()
            assert files, f"{item_id} v{version} has no files"
            for path, size, sha in files:
                blob = (folder / "data" / path).read_bytes()
                assert len(blob) == size and hashlib.sha256(blob).hexdigest() == sha, f"{item_id} v{version} {path}"
        return {(item_id, version) for _, item_id, version in rows}
    finally:
        db.close()


class Rig:
    """A template box with version 1, and version 2 to ingest."""

    def __init__(self, tmp: Path, megabytes: int = 16) -> None:
        self.tmp = tmp
        self.trust = trust_dir(tmp)
        rnd = random.Random(7)
        v1 = make_bag(tmp, files={"video.mp4": b"v1" * 1000}, record={"id": "lesson", "title": "养猪第一版"})
        files = {f"part{i}.mp4": rnd.randbytes((megabytes << 20) // 4) for i in range(4)}
        self.v2 = make_bag(tmp, files=files, record={"id": "lesson", "version": 2, "title": "养猪第二版", "main": "part0.mp4"})
        self.template = tmp / "template"
        self.template.mkdir()
        cfg_path = _cfg(self.template, self.trust)
        lib = Library(config.load(cfg_path, env={}))
        assert lib.ingest(v1).outcome == "published"
        lib.close()

    def box(self, n: int) -> tuple[Path, Path]:
        """A fresh copy of the template box; returns (config, data folder)."""
        box = self.tmp / f"box{n}"
        shutil.copytree(self.template / "data", box / "data")
        return _cfg(box, self.trust), box / "data"

    def command(self, cfg_path: Path, source: Path, spool: bool) -> list[str]:
        cmd = [sys.executable, "-m", "kiosk.cli", "ingest", str(source), "--config", str(cfg_path)]
        return cmd + (["--source", "spool"] if spool else [])

    def run(self, cfg_path: Path, data: Path, spool: bool, kill_after: float | None) -> tuple[Path, int | None]:
        source = self.v2
        if spool:
            source = data / "spool" / "incoming"
            shutil.copytree(self.v2, source)
        proc = subprocess.Popen(self.command(cfg_path, source, spool), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if kill_after is not None:
            time.sleep(kill_after)
            proc.send_signal(signal.SIGKILL)
        return source, proc.wait(timeout=120)

    def calibrate(self) -> float:
        """Seconds a whole `kiosk ingest` of version 2 takes here."""
        cfg_path, data = self.box(0)
        t = time.monotonic()
        _, rc = self.run(cfg_path, data, spool=False, kill_after=None)
        assert rc == 0
        return time.monotonic() - t

    def round(self, n: int, duration: float, rnd: random.Random) -> str:
        """One kill and its checks; returns "old", "new" or "finished"."""
        cfg_path, data = self.box(n)
        spool = n % 2 == 0
        source, rc = self.run(cfg_path, data, spool, kill_after=rnd.uniform(0.25, 1.0) * duration)
        state = visible_state(data)
        assert state in ({("lesson", 1)}, {("lesson", 2)}), state
        lib = Library(config.load(cfg_path, env={}))
        try:
            assert not list(lib.store.staging.iterdir())
            if spool and not source.exists():
                # the spool bag was published by rename (or taken): version 2 must be there
                assert lib.item("lesson").version == 2
            else:
                outcome = lib.ingest(source, source="spool" if spool else "cli")
                assert outcome.outcome in ("published", "unchanged"), outcome
            assert lib.item("lesson").version == 2
            assert visible_state(data) == {("lesson", 2)}
            assert sorted(p.name for p in (data / "store").iterdir()) == ["lesson@2"]
        finally:
            lib.close()
        shutil.rmtree(data.parent)
        return "finished" if rc == 0 else ("new" if state == {("lesson", 2)} else "old")


def run_kills(tmp: Path, kills: int, seed: int = 1) -> Counter[str]:
    """`kills` rounds; the count of rounds by what the kill left."""
    rig = Rig(tmp)
    duration = rig.calibrate()
    rnd = random.Random(seed)
    return Counter(rig.round(n, duration, rnd) for n in range(1, kills + 1))


@pytest.mark.slow
def test_a_power_cut_at_any_instant_leaves_the_old_state_or_the_new_one(tmp_path: Path) -> None:
    outcomes = run_kills(tmp_path, kills=int(os.environ.get("KIOSK_POWERCUT_KILLS", "40")))
    assert sum(outcomes.values()) >= 40 or "KIOSK_POWERCUT_KILLS" in os.environ
