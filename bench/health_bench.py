"""Health sampling cost: CPU per sample, and SQLite writes and bytes per hour of history.

    .venv/bin/python bench/health_bench.py [--samples 200]

1. CPU per sample of `history.sample()` with PiHardware on this machine (real psutil,
   sysfs and the `systemctl show` call for the display; `vcgencmd` where present), the
   judging and the history included; the cost of child processes is given apart.
2. One simulated hour (60 samples a minute apart, on a frozen clock) into a history that
   already holds 7 days of minutes and 90 days of hours, as a box has after months:
   transactions (commits), bytes written by the process (/proc/self/io wchar), growth of
   the database and its WAL.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kiosk import clock  # noqa: E402
from kiosk import config as config_mod  # noqa: E402
from kiosk.device import history  # noqa: E402
from kiosk.device.fake import FakeHardware  # noqa: E402
from kiosk.device.pi import PiHardware  # noqa: E402


def wchar() -> int:
    """Bytes this process has passed to write() so far."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0


def files_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=200)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="health-bench-"))
    cfg = config_mod.load(None, env={"KIOSK_STORAGE_DATA_DIR": str(work)})

    # 1. CPU per sample on this machine's real readings
    hw = PiHardware(work)
    store = history.HistoryStore(work / "cpu.sqlite")
    history.sample(cfg, hw, store)  # warm: imports, first psutil call
    t0, c0, wall0 = time.process_time(), os.times(), time.perf_counter()
    for _ in range(args.samples):
        history.sample(cfg, hw, store)
    own_ms = (time.process_time() - t0) / args.samples * 1000
    c1 = os.times()
    child_ms = ((c1.children_user + c1.children_system) - (c0.children_user + c0.children_system)) / args.samples * 1000
    wall_ms = (time.perf_counter() - wall0) / args.samples * 1000
    store.close()
    fake_store = history.HistoryStore(work / "fake.sqlite")
    fake = FakeHardware()
    t0 = time.process_time()
    for _ in range(args.samples):
        history.sample(cfg, fake, fake_store)
    judge_ms = (time.process_time() - t0) / args.samples * 1000
    fake_store.close()

    # 2. one hour into a full history
    path = work / "hour.sqlite"
    start = 1_800_000_000.0
    with clock.use(clock.FrozenClock(start - 90 * 86400)) as frozen:
        filler = history.HistoryStore(path, flush_every=1440)
        row = history.row_of(fake.read())
        while frozen.now() < start:
            filler.add(row)
            frozen.advance(60)
        filler.close()
        counts = history.HistoryStore(path).counts()
        s = history.HistoryStore(path)
        size0, w0 = files_size(path), wchar()
        for _ in range(60):
            history.sample(cfg, fake, s)
            frozen.advance(60)
        writes, bytes_hour, growth = s.writes, wchar() - w0, files_size(path) - size0
        s.close()

    print(f"health sample, PiHardware on this machine: {own_ms:.2f} ms CPU in-process + {child_ms:.2f} ms in child "
          f"processes (systemctl/vcgencmd) per sample; {wall_ms:.1f} ms wall")
    print(f"health sample, judging + history only (FakeHardware): {judge_ms:.3f} ms CPU per sample")
    interval = cfg.health.sample_interval_s
    print(f"at one sample per {interval} s: {(own_ms + child_ms) / (interval * 10):.4f} % of one core")
    print(f"history held before the hour: {counts['minute']} minute rows, {counts['hour']} hour rows")
    print(f"one hour of samples: {writes} SQLite transactions, {bytes_hour / 1024:.1f} KiB written by the process, "
          f"files grew {growth / 1024:.1f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
