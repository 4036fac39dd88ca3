"""A 30-day heartbeat backlog (8,640 reports) drained to a real county centre on loopback.

Starts `kiosk centre run` (SQLite) as a process, enrols a point, fills the box's
outbox with a month of realistic beats (every 5 minutes, with health, content
and usage), then lets the box's uplink drain it through a byte-counting TCP
relay, so "bytes on the wire" is every byte both ways at the HTTP level.
Prints the figures DESIGN.md names: seconds and bytes for the drain (targets
<= 60 s, <= 2 MB) and the compressed size of one report (target < 1 KiB).

    .venv/bin/python bench/backlog_bench.py [--reports 8640]

The random pause a box takes after reconnecting (centre.reconnect_delay_s,
0-60 s, there to spread a county's points) is set to 0 here and stated apart.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kiosk import clock, config  # noqa: E402
from kiosk.centre.simulate import wait_until_up  # noqa: E402
from kiosk.device import health  # noqa: E402
from kiosk.device.fake import FakeHardware  # noqa: E402
from kiosk.uplink import report  # noqa: E402
from kiosk.uplink.client import drain  # noqa: E402
from kiosk.uplink.outbox import Outbox  # noqa: E402

CATEGORIES = ("agriculture", "health", "law", "culture", "children", "lectures", "local")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CountingRelay:
    """A TCP relay on loopback that counts every byte in both directions."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.up = self.down = self.connections = 0
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._pump, args=(client, server, "up"), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, "down"), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, direction: str) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
                with self.lock:
                    setattr(self, direction, getattr(self, direction) + len(data))
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def month_of_beats(cfg: config.Config, n: int, start: float) -> list[dict]:
    """n beats five minutes apart, with readings and usage that vary as a real box's do."""
    rng = random.Random(7)
    hw = FakeHardware()
    out = []
    for i in range(n):
        t = start + 300 * i
        hw.set(temp_c=round(45 + 10 * rng.random(), 1), cpu_percent=round(2 + 20 * rng.random(), 1),
               load1=round(rng.random(), 2), memory_percent=round(30 + 10 * rng.random(), 1),
               disk_percent=round(40 + i / n * 5, 1), disk_free=int((18 - i / n) * 2**30), uptime_s=float(300 * i + 60))
        with clock.use(clock.FrozenClock(t)):
            snap = health.snapshot(hw, cfg, {"last_sent": t - 300, "outbox": i})
            cats = rng.sample(CATEGORIES, rng.randint(0, 3))
            by_cat = {c: {"opens": rng.randint(0, 4), "plays": rng.randint(0, 3), "seconds": round(rng.random() * 900, 1)} for c in cats}
            usage = {"since": t - 300, "opens": sum(c["opens"] for c in by_cat.values()), "plays": sum(c["plays"] for c in by_cat.values()),
                     "seconds": round(sum(c["seconds"] for c in by_cat.values()), 1), "by_category": by_cat,
                     "top_items": [{"id": f"{c}-item-{rng.randint(1, 40)}", "count": 1} for c in cats]}
            summary = {"items": 120 + i // 288, "bytes": 8_000_000_000 + i * 1000, "last_ingest": t - 3600, "quarantined": 1,
                       "free_bytes": int((18 - i / n) * 2**30), "total_bytes": 30 * 2**30}
            beat = report.beat(cfg, snap, summary, report.usage(usage, t), False)
        out.append(beat)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=8640)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="kiosk-backlog-") as tmp:
        root = Path(tmp)
        port = free_port()
        centre_cfg = root / "centre.toml"
        centre_cfg.write_text(f'[storage]\ndata_dir = "{root / "centre"}"\n[centre]\nhost = "127.0.0.1"\nport = {port}\n', encoding="utf-8")
        env = {**os.environ, "KIOSK_CONFIG": ""}
        proc = subprocess.Popen([sys.executable, "-m", "kiosk.cli", "centre", "run", "--config", str(centre_cfg)],
                                stdout=subprocess.DEVNULL, stderr=open(root / "centre.log", "wb"), env=env)
        try:
            wait_until_up(f"http://127.0.0.1:{port}")
            out = subprocess.run([sys.executable, "-m", "kiosk.cli", "centre", "enroll", "bench-point", "--json", "--config", str(centre_cfg)],
                                 capture_output=True, text=True, check=True, env=env)
            secret = json.loads(out.stdout)["secret"]
            relay = CountingRelay(port)
            (root / "box").mkdir()
            cfg = config.load(env={"KIOSK_STORAGE_DATA_DIR": str(root / "box"), "KIOSK_POINT_ID": "bench-point",
                                   "KIOSK_CENTRE_URL": f"http://127.0.0.1:{relay.port}", "KIOSK_CENTRE_SECRET": secret,
                                   "KIOSK_CENTRE_RECONNECT_DELAY_S": "0"})

            start = time.time() - 30 * 86400
            beats = month_of_beats(cfg, args.reports, start)
            sizes = [report.gzipped_size(b) for b in beats]
            with Outbox.of(cfg) as ob:
                ob.add(beats)
                t0 = time.perf_counter()
                rnd = drain(cfg, ob, budget_s=3600)
                seconds = time.perf_counter() - t0
                left = ob.depth()
            time.sleep(0.2)  # let the relay count the last answer
            with sqlite3.connect(f"file:{root / 'centre' / 'centre.sqlite'}?mode=ro", uri=True) as db:
                stored, distinct = db.execute("SELECT count(*), count(DISTINCT seq) FROM reports WHERE point = 'bench-point'").fetchone()

            # What a real box sends after a month: routine beats older than 14 days thinned first.
            cfg2 = cfg.replace(storage__data_dir=str(root / "box2"))
            with Outbox.of(cfg2) as ob2:
                ob2.add(month_of_beats(cfg2, args.reports, start))
                ob2.thin(now=start + args.reports * 300)
                thinned_to = ob2.depth()
        finally:
            proc.terminate()
            proc.wait(timeout=15)

    wire_bytes = relay.up + relay.down
    print(f"backlog: {args.reports} reports (30 days at 5 min), centre: kiosk centre run, SQLite, loopback")
    print(f"drained in {seconds:.1f} s (target <= 60 s); {args.reports / seconds:.0f} reports/s; batches of {cfg.centre.batch_size}, "
          f"one request at a time, {relay.connections} connection(s)")
    print(f"bytes on the wire: {wire_bytes / 1e6:.2f} MB (up {relay.up / 1e6:.2f} MB, down {relay.down / 1e6:.2f} MB) (target <= 2 MB); "
          f"{wire_bytes / args.reports:.0f} B per report")
    print(f"one report gzipped alone: median {statistics.median(sizes):.0f} B, max {max(sizes)} B (target < 1024 B)")
    print(f"stored at the centre: {stored} rows, {distinct} distinct seqs; outbox left: {left}; acked {rnd.acked}")
    print(f"with the box's thinning (older than 14 days: one beat an hour) the same month is {thinned_to} reports")
    print(f"not included: the random pause after reconnecting, 0 to centre.reconnect_delay_s = "
          f"{config.load(env={}).centre.reconnect_delay_s:.0f} s")
    ok = seconds <= 60 and wire_bytes <= 2e6 and max(sizes) < 1024 and stored == distinct == args.reports and left == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
