"""The whole box idle with 100,000 items: resident memory of all its processes and CPU over 60 s.

    .venv/bin/python bench/idle_bench.py [--items 100000] [--seconds 60] [--keep DIR] [--backend fake]

Fills a catalogue with 100,000 items (bench/web_bench.py's filler: the real catalogue
and search index), starts `kiosk run` as a separate process exactly as systemd would
(waitress, scheduler with every job, hardware, health sampling), opens the home page and
the device page's login once, lets it settle, then watches the process and all its
children for `--seconds`: the largest sum of resident memory (RSS, and PSS which does
not count shared pages twice) and the CPU they used, as a share of one core.
Targets (DESIGN.md): <= 80 MB resident, <= 1 % of one core.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.web_bench import fill  # noqa: E402
from kiosk import config as config_mod  # noqa: E402
from kiosk.library import Library  # noqa: E402
from tests.conftest import free_port  # noqa: E402


def tree(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def memory(procs: list[psutil.Process]) -> tuple[int, int]:
    rss = pss = 0
    for p in procs:
        try:
            info = p.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
    return rss, pss


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--settle", type=float, default=20.0, help="seconds after start-up before measuring")
    ap.add_argument("--keep", metavar="DIR", help="keep (or reuse) the box's data folder in DIR")
    ap.add_argument("--backend", default="fake", help="hardware.backend for the box (auto on a Pi)")
    args = ap.parse_args()

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="idle-bench-"))
    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = work / "kiosk.toml"
    conf.write_text(
        f'[storage]\ndata_dir = "{data}"\n[web]\nhost = "127.0.0.1"\nport = {port}\n'
        f'[hardware]\nbackend = "{args.backend}"\n',
        encoding="utf-8",
    )
    cfg = config_mod.load(conf, env={})
    lib = Library(cfg)
    have = lib.summary()["items"]
    if have < args.items:
        fill(lib, args.items)
    # The library reconciles catalogue and store at start-up (the store wins), so every
    # filled row gets its store folder, as a published package has.
    for row in lib.catalogue.rows():
        lib.store.dir(row["id"], row["version"]).mkdir(parents=True, exist_ok=True)
    items = lib.summary()["items"]
    lib.close()

    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK_")}
    box = subprocess.Popen([sys.executable, "-m", "kiosk.cli", "run", "--config", str(conf)], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if requests.get(url + "/healthz", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        else:
            print("the box did not start", file=sys.stderr)
            return 1
        requests.get(url + "/", timeout=30)
        requests.get(url + "/admin/login", timeout=30)
        time.sleep(args.settle)
        proc = psutil.Process(box.pid)
        procs = tree(proc)
        c0, t0 = cpu_seconds(procs), time.monotonic()
        peak_rss = peak_pss = 0
        while time.monotonic() - t0 < args.seconds:
            procs = tree(proc)
            rss, pss = memory(procs)
            peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
            time.sleep(1.0)
        used = cpu_seconds(tree(proc)) - c0
        span = time.monotonic() - t0
        count = len(tree(proc))
    finally:
        box.send_signal(signal.SIGTERM)
        code = box.wait(timeout=30)

    print(f"box idle with {items:,} items, {count} process(es), over {span:.0f} s:")
    print(f"  resident memory, all processes: peak RSS {peak_rss / 2**20:.1f} MiB, peak PSS {peak_pss / 2**20:.1f} MiB (target <= 80 MB)")
    print(f"  CPU: {used:.2f} s in {span:.0f} s = {100 * used / span:.2f} % of one core (target <= 1 %)")
    print(f"  stopped on SIGTERM with exit code {code}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
