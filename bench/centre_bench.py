"""Centre figures: reports stored per second through the real HTTP endpoint, and a reconnect storm.

    .venv/bin/python bench/centre_bench.py [--db sqlite|postgres|both] [--reports N]
        [--storm-points 250] [--storm-days 7] [--no-storm]

For each backend it starts `kiosk centre run` (waitress) on the loopback, enrols points
directly in its store, and then talks HTTP only, signed as a box signs:

1. throughput: N reports in gzip batches of 200 from 8 client threads; prints reports
   stored per second (wall clock) and per CPU second of the centre process;
2. storm: 250 points come back after 7 days at once, each sending its backlog oldest
   first in batches (2,016 reports a point at 5-minute beats); a staff member keeps
   reloading the dashboard meanwhile. Prints the drain time, that every report was stored
   exactly once, and the dashboard's p50/p95.

The client runs on the same machine (2 cores), so its own gzip and HTTP work is
counted against the centre: the figures are a floor. The load average at the start is
printed because other work on the machine changes them.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kiosk import wire  # noqa: E402
from kiosk.centre.simulate import SimPoint, wait_until_up  # noqa: E402
from kiosk.centre.store import Store  # noqa: E402

PG_URL = os.environ.get("KIOSK_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
BATCH = 200
_local = threading.local()
BUSY: list[int] = []  # 503 answers received (list.append is atomic)


def session() -> requests.Session:
    s = getattr(_local, "s", None)
    if s is None:
        s = _local.s = requests.Session()
    return s


def post(url: str, point: SimPoint, body: bytes) -> dict[str, Any]:
    ts = int(time.time())
    headers = {"Authorization": wire.authorization(point.id, point.secret, "POST", wire.HEARTBEATS_PATH, ts, body),
               "Content-Type": wire.CONTENT_TYPE, "Content-Encoding": wire.CONTENT_ENCODING}
    r = session().post(url + wire.HEARTBEATS_PATH, data=body, headers=headers, timeout=120)
    while r.status_code == 503:  # busy: wait as long as asked, as a box does
        BUSY.append(1)
        time.sleep(float(r.headers.get("Retry-After", "1")))
        r = session().post(url + wire.HEARTBEATS_PATH, data=body, headers=headers, timeout=120)
    if r.status_code != 200:
        raise RuntimeError(f"{point.id}: {r.status_code} {r.text[:200]}")
    return r.json()


class Centre:
    def __init__(self, root: Path, db: str) -> None:
        self.root, self.db = root, db
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = root / "centre.toml"
        self.config.write_text(
            f'[storage]\ndata_dir = "{root / "data"}"\n[centre]\ndb = "{db}"\nhost = "127.0.0.1"\n'
            f'port = {self.port}\nheartbeat_interval_s = 300\noffline_after_s = 900\n[web]\nthreads = 8\n',
            encoding="utf-8")
        self.store = Store(db)
        self.store.set_user("bench", "bench password")

    def __enter__(self) -> "Centre":
        self.proc = subprocess.Popen([sys.executable, "-m", "kiosk.cli", "centre", "run", "--config", str(self.config)],
                                     cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(self.root / "centre.log", "wb"))
        wait_until_up(self.url)
        self.ps = psutil.Process(self.proc.pid)
        return self

    def cpu(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system

    def __exit__(self, *exc: Any) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.store.close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def points(store: Store, prefix: str, n: int) -> list[SimPoint]:
    rnd = random.Random(7)
    return [SimPoint(f"{prefix}-{i:04d}", store.enroll(f"{prefix}-{i:04d}", township=f"乡镇{i % 12}"), 1,
                     rnd.uniform(45, 60), rnd.uniform(20, 70)) for i in range(1, n + 1)]


def backlog_bodies(p: SimPoint, n: int, start: float, step: float, rnd: random.Random) -> list[bytes]:
    reports = [p.report(start + i * step, rnd) for i in range(n)]
    return [wire.encode_batch(reports[i : i + BATCH]) for i in range(0, n, BATCH)]


def throughput(c: Centre, total: int, clients: int = 8) -> None:
    pts = points(c.store, "tp", 50)
    rnd = random.Random(1)
    per = total // len(pts)
    jobs = [(p, body) for p in pts for body in backlog_bodies(p, per, time.time() - per * 300, 300, rnd)]
    random.Random(2).shuffle(jobs)  # batches of a point may arrive in any order; each is stored once
    BUSY.clear()
    cpu0, t0 = c.cpu(), time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        stored = sum(a["stored"] for a in pool.map(lambda j: post(c.url, *j), jobs))
    wall, cpu = time.perf_counter() - t0, c.cpu() - cpu0
    print(f"  throughput: {stored} reports in {len(jobs)} batches of {min(BATCH, per)}, {clients} clients: "
          f"{stored / wall:,.0f} reports/s stored (wall), {stored / cpu:,.0f} per CPU second of the centre, "
          f"{len(BUSY)} 'busy, retry' answers")


def storm(c: Centre, n_points: int, days: float) -> None:
    per = int(days * 86400 / 300)
    pts = points(c.store, "storm", n_points)
    rnd = random.Random(3)
    t_gen = time.perf_counter()
    bodies = {p.id: backlog_bodies(p, per, time.time() - days * 86400, 300, rnd) for p in pts}
    size = sum(len(b) for bs in bodies.values() for b in bs)
    print(f"  storm: {n_points} points x {per} reports ({days:g} days), {size / 1e6:.1f} MB gzip on the wire, "
          f"made in {time.perf_counter() - t_gen:.0f} s")
    latencies: list[float] = []
    failures: list[int] = []
    done = threading.Event()

    def staff() -> requests.Session:
        s = requests.Session()
        page = s.get(c.url + "/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        s.post(c.url + "/login", data={"username": "bench", "password": "bench password", "csrf_token": token})
        return s

    quiet = []
    s = staff()
    for _ in range(30):
        t = time.perf_counter()
        s.get(c.url + "/")
        quiet.append(time.perf_counter() - t)
    quiet.sort()
    print(f"  storm: dashboard ({n_points + 50} points) before the storm: p50 {statistics.median(quiet) * 1000:.0f} ms, "
          f"p95 {quiet[int(0.95 * (len(quiet) - 1))] * 1000:.0f} ms")

    def dashboard() -> None:
        s = staff()
        while not done.is_set():
            t = time.perf_counter()
            r = s.get(c.url + "/")
            latencies.append(time.perf_counter() - t)
            if r.status_code != 200 or "storm-0001" not in r.text:
                failures.append(r.status_code)
            done.wait(0.5)

    def box(p: SimPoint) -> int:
        time.sleep(random.uniform(0, 5))  # boxes wait a random moment after the line returns
        return sum(post(c.url, p, body)["stored"] for body in bodies[p.id])

    watcher = threading.Thread(target=dashboard)
    watcher.start()
    BUSY.clear()
    cpu0, t0 = c.cpu(), time.perf_counter()
    with ThreadPoolExecutor(64) as pool:
        stored = sum(pool.map(box, pts))
    wall = time.perf_counter() - t0
    done.set()
    watcher.join()
    # a lost acknowledgement: every box sends its newest batch again
    with ThreadPoolExecutor(16) as pool:
        again = sum(pool.map(lambda p: post(c.url, p, bodies[p.id][-1])["stored"], pts))
    rows = c.store.db.one("SELECT COUNT(*), COUNT(DISTINCT point) FROM reports WHERE point LIKE 'storm-%'")
    complete = all(c.store.seqs(p.id) == list(range(1, per + 1)) for p in pts[:: max(1, n_points // 25)])
    lat = sorted(latencies)
    p95 = lat[int(0.95 * (len(lat) - 1))] if lat else float("nan")
    print(f"  storm: drained in {wall:.0f} s ({stored / wall:,.0f} reports/s), {c.cpu() - cpu0:.0f} CPU s in the centre, "
          f"{len(BUSY)} 'busy, retry' answers")
    print(f"  storm: stored {rows[0]:,} of {n_points * per:,} expected from {rows[1]} points; resent batches stored {again} new; "
          f"sampled points complete and in order: {complete}")
    print(f"  storm: dashboard during the storm: {len(lat)} loads, p50 {statistics.median(lat) * 1000:.0f} ms, "
          f"p95 {p95 * 1000:.0f} ms, {len(failures)} failed {sorted(set(failures))}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    ap.add_argument("--reports", type=int, default=100_000)
    ap.add_argument("--storm-points", type=int, default=250)
    ap.add_argument("--storm-days", type=float, default=7)
    ap.add_argument("--no-storm", action="store_true")
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for backend in (("sqlite", "postgres") if args.db == "both" else (args.db,)):
        with tempfile.TemporaryDirectory() as tmp:
            schema = f"bench_{os.getpid()}"
            db = str(Path(tmp) / "centre.sqlite") if backend == "sqlite" else f"{PG_URL}?schema={schema}"
            print(f"{backend}:")
            try:
                with Centre(Path(tmp), db) as c:
                    throughput(c, args.reports)
                    if not args.no_storm:
                        storm(c, args.storm_points, args.storm_days)
            finally:
                if backend == "postgres":
                    import psycopg

                    with psycopg.connect(PG_URL, autocommit=True) as conn:
                        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    return 0


if __name__ == "__main__":
    sys.exit(main())
