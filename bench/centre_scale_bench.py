"""Centre at province scale on PostgreSQL: page times at every level, reports per second with two processes.

    .venv/bin/python bench/centre_scale_bench.py [--points 700000] [--days 30] [--reuse SCHEMA]
        [--samples 40] [--live 400] [--rounds 3] [--migrate-points 100]

1. fills a schema of its own with a province (`kiosk centre simulate --province`: points in
   counties of 7,000 and townships, and `--days` of daily roll-ups), unless --reuse names one;
2. starts two `kiosk centre run` processes on it and times, from a client on the same
   machine, the dashboard (/), GET /api/v1/summary and a paged GET /api/v1/points (100 rows)
   at the province, a county and a township: p50 and p95 of --samples requests each;
3. sends live reports from --live points through both processes at once, one report per
   request and then in batches of 50, and prints reports stored per second and CPU seconds
   per report of the two centre processes plus every PostgreSQL process (from psutil);
4. times the upgrade of a county database made before migrations with 30 days of reports
   (--migrate-points points every 5 minutes) on PostgreSQL.

The load average at the start is printed: other work on the machine changes every figure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import psycopg
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kiosk.centre import simulate  # noqa: E402
from kiosk.centre.store import Store  # noqa: E402

PG_URL = os.environ.get("KIOSK_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_centre(root: Path, db: str) -> tuple[subprocess.Popen, str, Path]:
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = root / "centre.toml"
    config.write_text(f'[storage]\ndata_dir = "{root / "data"}"\n[centre]\ndb = "{db}"\nhost = "127.0.0.1"\n'
                      f'port = {port}\n[web]\nthreads = 16\nsecret_key = "bench"\n', encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "kiosk.cli", "centre", "run", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=open(root / "centre.log", "wb"))
    url = f"http://127.0.0.1:{port}"
    simulate.wait_until_up(url, 120)
    return proc, url, config


def timed(session: requests.Session, url: str, n: int) -> tuple[float, float, int]:
    times = []
    size = 0
    for _ in range(n):
        t = time.perf_counter()
        r = session.get(url, timeout=60)
        times.append(time.perf_counter() - t)
        assert r.status_code == 200, (url, r.status_code, r.text[:200])
        size = len(r.content)
    times.sort()
    return statistics.median(times) * 1000, times[max(0, int(len(times) * 0.95) - 1)] * 1000, size


def login(url: str, user: str, password: str) -> requests.Session:
    import re

    s = requests.Session()
    page = s.get(url + "/login", timeout=30).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = s.post(url + "/login", data={"username": user, "password": password, "csrf_token": token}, timeout=30)
    assert r.status_code in (200, 302)
    return s


def postgres_cpu() -> float:
    total = 0.0
    for p in psutil.process_iter(["name"]):
        if p.info["name"] and p.info["name"].startswith("postgres"):
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
    return total


def cpu(procs: list[subprocess.Popen]) -> float:
    return sum(sum(psutil.Process(p.pid).cpu_times()[:2]) for p in procs)


def pages(urls: list[str], store: Store, samples: int) -> None:
    total = int(store.db.one("SELECT COUNT(*) FROM points")[0])
    _, county, township = simulate.tree_place(total // 2)  # a county and township in the middle of the tree
    store.set_user("bench-sheng", "bench password", "province")
    token = store.new_token("bench", "province")
    staff = login(urls[0], "bench-sheng", "bench password")
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"
    levels = {"province": "", "county": f"county={county}", "township": f"county={county}&township={township}"}
    print("| level | page | p50 ms | p95 ms | bytes |")
    print("| --- | --- | --- | --- | --- |")
    for level, q in levels.items():
        for name, session, path in (("dashboard /", staff, "/?" + q), ("GET /api/v1/summary", api, "/api/v1/summary?" + q),
                                    ("GET /api/v1/points, 100 a page", api, f"/api/v1/points?per_page=100&{q}"),
                                    ("points, page 5, offline", api, f"/api/v1/points?per_page=100&page=5&status=offline&{q}")):
            timed(session, urls[0] + path, 2)  # warm
            p50, p95, size = timed(session, urls[0] + path, samples)
            print(f"| {level} | {name} | {p50:.0f} | {p95:.0f} | {size} |", flush=True)


def throughput(urls: list[str], procs: list[subprocess.Popen], store: Store, live: int, rounds: int) -> None:
    points = simulate.sample(store, live)
    half = len(points) // 2
    print("| mode | reports | requests | seconds | reports/s | CPU ms per report (centres + PostgreSQL) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for mode, per_request, n_rounds in (("one report per request", 1, rounds), ("batches of 50", 50, 1)):
        c0, p0, t0 = cpu(procs), postgres_cpu(), time.monotonic()
        results: list[dict[str, Any]] = []
        threads = [threading.Thread(target=lambda u=u, ps=ps: results.append(
            simulate.drive(u, ps, n_rounds, per_request=per_request, workers=4))) for u, ps in
            ((urls[0], points[:half]), (urls[1], points[half:]))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - t0
        acked = sum(r["acked"] for r in results)
        used = (cpu(procs) - c0) + (postgres_cpu() - p0)
        print(f"| {mode} | {acked} | {sum(r['requests'] for r in results)} | {wall:.1f} | {acked / wall:.0f} | "
              f"{used / max(1, acked) * 1000:.2f} |", flush=True)


def migration(points: int) -> None:
    """An old county database (the schema before migrations) with 30 days of reports, upgraded."""
    old = (ROOT / "tests" / "data" / "centre_schema_v0.sql").read_text(encoding="utf-8")
    schema = f"bench_mig_{uuid.uuid4().hex[:8]}"
    now = time.time()
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'SET search_path TO "{schema}"')
        for statement in old.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("INSERT INTO points (id, township, secret, enrolled_at) SELECT 'm' || i, '乡' || (i %% 15), "
                     "md5(i::text), %s FROM generate_series(1, %s) i", (now - 40 * 86400, points))
        conn.execute("INSERT INTO reports (point, seq, received_at, at, kind, temp_c, disk_percent, health, content, usage) "
                     "SELECT 'm' || i, s, %s + s * 300, %s + s * 300, 'beat', 50, 40, "
                     "'{\"temp_c\":50.0,\"disk_percent\":40.0,\"memory_percent\":30.0,\"load1\":0.2}', "
                     "'{\"items\":120,\"bytes\":40000000000}', '{\"opens\":2,\"plays\":1}' "
                     "FROM generate_series(1, %s) i, generate_series(1, 8640) s", (now - 30 * 86400, now - 30 * 86400, points))
        rows = conn.execute("SELECT COUNT(*) FROM reports").fetchone()[0]
    t = time.monotonic()
    Store(f"{PG_URL}?schema={schema}").close()
    took = time.monotonic() - t
    print(f"migration of a county database ({points} points, {rows} reports over 30 days) on PostgreSQL: {took:.1f} s")
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=700_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--reuse", default="", help="an already filled schema (kept afterwards)")
    ap.add_argument("--keep", action="store_true", help="keep the schema it fills (its name is printed)")
    ap.add_argument("--samples", type=int, default=40)
    ap.add_argument("--live", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--migrate-points", type=int, default=100)
    ap.add_argument("--skip", default="", help="comma list of steps to leave out: pages,throughput,migration")
    args = ap.parse_args()
    skip = set(args.skip.split(","))
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
    schema = args.reuse or f"bench_{uuid.uuid4().hex[:8]}"
    print(f"schema: {schema}")
    db = f"{PG_URL}?schema={schema}"
    store = Store(db)
    procs: list[subprocess.Popen] = []
    try:
        if not args.reuse:
            done = simulate.fill_province(store, args.points, days=args.days, say=print)
            print(f"filled {done['points']} points and {done['days']} daily roll-ups in {done['seconds']} s")
        with tempfile.TemporaryDirectory() as tmp:
            urls = []
            for name in ("a", "b"):
                proc, url, _ = start_centre(Path(tmp) / name, db)
                procs.append(proc)
                urls.append(url)
            if "pages" not in skip:
                pages(urls, store, args.samples)
            if "throughput" not in skip:
                throughput(urls, procs, store, args.live, args.rounds)
            for p in procs:
                p.terminate()
                p.wait(30)
        if "migration" not in skip:
            migration(args.migrate_points)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        store.close()
        if not args.reuse and not args.keep:
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    return 0


if __name__ == "__main__":
    sys.exit(main())
