"""Realistic traffic from simulated points: history with outages, live rounds, backfills.

`kiosk centre simulate --points N [--days D] [--rounds R] --url URL` enrols the points
directly in the centre's store (the simulator runs beside the centre, with its
configuration), then talks to the centre only through its HTTP API, signed as a box
signs, so everything the centre does with a real box is exercised.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import requests

from kiosk import clock, wire
from kiosk.centre.store import Store

log = logging.getLogger(__name__)

TOWNSHIPS = ("城关镇", "东风乡", "红旗镇", "青山乡", "河口镇", "石桥乡", "新华镇", "柳树乡")
VILLAGES = ("王家村", "李庄", "张湾", "刘家坪", "陈家沟", "杨树村", "黄土岭", "赵家堡", "周庄", "吴家寨", "孙家台", "马兰村")
CATEGORIES = ("agriculture", "health", "law", "culture", "children", "lectures", "local")
ASKS = (
    ("agriculture", "想看养猪防疫的视频"), ("agriculture", "玉米病虫害怎么防治"), ("health", "老年人高血压怎么吃药"),
    ("law", "土地承包合同纠纷怎么办"), ("culture", "想看豫剧《花木兰》"), ("children", "给孩子看的安全教育动画"),
    ("lectures", "电商卖农产品的讲座"), ("local", "本县的乡村振兴政策"), ("agriculture", "果树冬季修剪技术"),
)


@dataclass
class SimPoint:
    """One simulated box: its secret, next sequence number and slowly drifting health."""

    id: str
    secret: str
    seq: int
    temp: float
    disk: float
    dead: bool = False  # stops reporting for good (shows offline)
    silent: bool = False  # enrolled but never reports (shows never)
    outage_rounds: int = 0  # live rounds still to skip; the backlog is sent when it ends
    backlog: list[dict[str, Any]] = field(default_factory=list)

    def report(self, at: float, rnd: random.Random) -> dict[str, Any]:
        """One heartbeat as a box writes it (see kiosk/wire.py)."""
        self.temp = min(82.0, max(35.0, self.temp + rnd.uniform(-1.5, 1.5)))
        self.disk = min(99.0, max(5.0, self.disk + rnd.uniform(-0.05, 0.08)))
        by_cat: dict[str, dict[str, float]] = {}
        for cat in rnd.sample(CATEGORIES, rnd.randint(0, 3)):
            opens = rnd.randint(1, 6)
            by_cat[cat] = {"opens": opens, "plays": rnd.randint(0, opens), "seconds": round(rnd.uniform(10, 900), 1)}
        report: dict[str, Any] = {
            "v": 1, "kind": "beat", "point_id": self.id, "seq": self.seq, "box_time": at, "clock_synced": True,
            "boot_id": f"{self.id}-boot", "uptime_s": 3600.0, "software": {"version": "0.1.0", "state": "current"},
            "health": {"temp_c": round(self.temp, 1), "throttled": False, "under_voltage": False,
                       "cpu_percent": round(rnd.uniform(2, 40), 1), "load1": round(rnd.uniform(0.05, 1.5), 2),
                       "memory_percent": round(rnd.uniform(30, 70), 1), "disk_percent": round(self.disk, 1),
                       "root_readonly": False, "display_restarts": 0},
            "content": {"items": 120 + self.seq % 7, "bytes": 40_000_000_000, "quarantined": 0},
            "usage": {"opens": sum(int(c["opens"]) for c in by_cat.values()),
                      "plays": sum(int(c["plays"]) for c in by_cat.values()), "by_category": by_cat},
        }
        if rnd.random() < 0.02:
            topic, text = rnd.choice(ASKS)
            report["requests"] = [{"id": self.seq, "at": at, "topic": topic, "text": text}]
        if rnd.random() < 0.003:
            report.update(kind="event", event=rnd.choice(("boot", "under_voltage", "overheat")))
        self.seq += 1
        return report


def enroll_points(store: Store, n: int, prefix: str = "sim", seed: int = 1) -> list[SimPoint]:
    """Enrol N simulated points across the townships (a new secret each time)."""
    rnd = random.Random(seed)
    points = []
    for i in range(1, n + 1):
        pid = f"{prefix}-{i:04d}"
        township = TOWNSHIPS[(i - 1) % len(TOWNSHIPS)]
        name = f"{township}{VILLAGES[(i - 1) // len(TOWNSHIPS) % len(VILLAGES)]}服务点"
        secret = store.enroll(pid, name=name, township=township)
        last = store.point(pid)["last_seq"] or 0
        p = SimPoint(pid, secret, last + 1, rnd.uniform(45, 60), rnd.uniform(20, 70))
        # about one point in twenty has died, one in fifty was never switched on
        p.dead = n >= 10 and i % 20 == 7
        p.silent = n >= 10 and i % 50 == 13
        points.append(p)
    return points


def send(session: requests.Session, url: str, point: SimPoint, reports: list[dict[str, Any]], batch: int = 200) -> int:
    """POST reports in signed batches, oldest first; return how many the centre acknowledged."""
    acked = 0
    for i in range(0, len(reports), batch):
        body = wire.encode_batch(reports[i : i + batch])
        ts = int(clock.now())
        headers = {
            "Authorization": wire.authorization(point.id, point.secret, "POST", wire.HEARTBEATS_PATH, ts, body),
            "Content-Type": wire.CONTENT_TYPE, "Content-Encoding": wire.CONTENT_ENCODING,
        }
        r = session.post(url.rstrip("/") + wire.HEARTBEATS_PATH, data=body, headers=headers, timeout=60)
        while r.status_code == 503 and r.headers.get("Retry-After", "").isdigit():
            time.sleep(int(r.headers["Retry-After"]))  # the centre is catching up: as a box does
            r = session.post(url.rstrip("/") + wire.HEARTBEATS_PATH, data=body, headers=headers, timeout=60)
        if r.status_code != 200:
            raise RuntimeError(f"{point.id}: centre answered {r.status_code} {r.text[:200]}")
        acked += len(r.json()["acked"])
    return acked


def history(point: SimPoint, days: float, step_s: float, now: float, rnd: random.Random) -> list[dict[str, Any]]:
    """The reports of the last `days` days, with an outage of a day or two for some points."""
    start = now - days * 86400
    outage = None
    if rnd.random() < 0.15 and days >= 3:
        o = rnd.uniform(start, now - 86400)
        outage = (o, o + rnd.uniform(0.5, 2) * 86400)
    out = []
    t = start + rnd.uniform(0, step_s)
    while t < now - step_s:
        if not outage or not outage[0] <= t < outage[1]:
            out.append(point.report(t, rnd))
        t += step_s
    return out


def run(store: Store, url: str, n: int, days: float = 0, rounds: int = 0, interval_s: float = 5.0,
        step_s: float = 300.0, stop: threading.Event | None = None, seed: int = 1,
        say: Callable[[str], None] | None = None, workers: int = 2) -> dict[str, Any]:
    """Enrol N points, backfill `days` of history, then send `rounds` live rounds (0: until stopped).

    Returns counts (points, sent, acked, rounds) and the ids that reported in the last round.
    """
    rnd = random.Random(seed)
    stop = stop or threading.Event()
    points = enroll_points(store, n, seed=seed)
    talking = [p for p in points if not p.silent]
    totals: dict[str, Any] = {"points": n, "sent": 0, "acked": 0, "rounds": 0, "last_round": []}
    session = requests.Session()
    lock = threading.Lock()

    def deliver(p: SimPoint, reports: list[dict[str, Any]]) -> None:
        acked = send(session, url, p, reports)
        with lock:
            totals["sent"] += len(reports)
            totals["acked"] += acked

    # two senders at a time: what the centre admits at once, so none is told to come back later
    with ThreadPoolExecutor(max_workers=workers) as pool:
        if days > 0:
            now = clock.now()
            list(pool.map(lambda p: deliver(p, history(p, days, step_s, now, random.Random(rnd.random()))), talking))
            if say:
                say(f"history sent: {totals['sent']} reports from {len(talking)} points")
        r = 0
        while not stop.is_set() and (rounds == 0 or r < rounds):
            now = clock.now()
            jobs = []
            for p in talking:
                if p.dead:
                    continue
                if p.outage_rounds == 0 and rnd.random() < 0.01:
                    p.outage_rounds = rnd.randint(2, 6)  # the line drops for a while
                report = p.report(now, rnd)
                if p.outage_rounds > 0:
                    p.outage_rounds -= 1
                    p.backlog.append(report)
                    continue
                batch, p.backlog = p.backlog + [report], []  # back online: the backlog goes too
                jobs.append((p, batch))
            list(pool.map(lambda job: deliver(*job), jobs))
            totals["last_round"] = [p.id for p, _ in jobs]
            r += 1
            totals["rounds"] = r
            if say:
                say(f"round {r}: {totals['sent']} reports sent, {totals['acked']} acknowledged")
            if rounds == 0 or r < rounds:
                stop.wait(interval_s)
    session.close()
    return totals


def wait_until_up(url: str, timeout_s: float = 20.0) -> None:
    """Wait for the centre's /healthz (used when it was just started)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if requests.get(url.rstrip("/") + "/healthz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the centre at {url} does not answer")
        time.sleep(0.2)


# --- a province at once: bulk fill, then live reports from a sample -----------------------

POINTS_PER_COUNTY = 7000  # 700,000 terminals in about a hundred counties
TOWNSHIPS_PER_COUNTY = 15


def tree_place(i: int, per_county: int = POINTS_PER_COUNTY) -> tuple[str, str, str]:
    """(point id, county, township) of the i-th point of a simulated province (i from 0)."""
    county, rest = divmod(i, per_county)
    township = rest % TOWNSHIPS_PER_COUNTY
    return f"p{county:03d}-{township:02d}-{rest:04d}", f"县{county + 1:03d}", f"乡{township + 1:02d}"


def fill_province(store: Store, n: int, days: int = 30, now: float | None = None, seed: int = 1,
                  per_county: int = POINTS_PER_COUNTY, say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Enrol N points across counties and townships and give them `days` of daily roll-ups, in bulk.

    Written straight into the database (COPY on PostgreSQL): a province of 700,000 points
    would take hours through the HTTP API. Most points are online, some late, offline or
    never seen, so every status and filter has something to show.
    """
    import secrets as secrets_mod

    now = clock.now() if now is None else now
    rnd = random.Random(seed)
    t0 = time.monotonic()
    late_after = 2 * 300

    def points() -> Any:
        for i in range(n):
            pid, county, township = tree_place(i, per_county)
            roll = rnd.random()
            seen = (None if roll < 0.01 else now - rnd.uniform(3600, 20 * 86400) if roll < 0.06
                    else now - rnd.uniform(late_after, 900) if roll < 0.10 else now - rnd.uniform(0, late_after))
            health = f'{{"temp_c":{rnd.uniform(40, 70):.1f},"disk_percent":{rnd.uniform(20, 90):.1f}}}'
            yield (pid, f"{township}第{i % per_county + 1}服务点", county, township, secrets_mod.token_hex(32),
                   now - (days + 5) * 86400, seen, None if seen is None else 100, None if seen is None else 100,
                   None if seen is None else health, "0.1.0")

    cols = ("id", "name", "county", "township", "secret", "enrolled_at", "last_seen", "last_seq", "max_seq",
            "last_health", "software")
    enrolled = store.db.copy_rows("points", cols, points())
    if say:
        say(f"enrolled {enrolled} points in {time.monotonic() - t0:.0f} s")
    offset = time.localtime(now).tm_gmtoff
    today = int((now + offset) // 86400)

    t1 = time.monotonic()
    rolled = 0
    if days > 0:
        # made by the database itself: 21 million rows for a province do not pass through Python
        with store.db.transaction() as cur:
            cur.execute(
                "INSERT INTO point_days (point, day, reports, hours, temp_max, disk_max, memory_max, load_max) "
                "WITH RECURSIVE d(day) AS (SELECT CAST(? AS INTEGER) UNION ALL SELECT day + 1 FROM d WHERE day < ?) "
                "SELECT p.id, d.day, 288, ?, 58.5, 61.0, 55.0, 0.8 FROM points p, d WHERE p.enrolled_at <= ? "
                "ON CONFLICT (point, day) DO NOTHING",
                (today - days, today - 1, (1 << 24) - 1, now - days * 86400),
            )
            rolled = cur.rowcount
    if say:
        say(f"wrote {rolled} daily roll-ups in {time.monotonic() - t1:.0f} s")
    store.db.vacuum("points")  # statistics for the planner, and the visibility map for index-only counts
    return {"points": enrolled, "days": rolled, "seconds": round(time.monotonic() - t0, 1)}


def sample(store: Store, n: int, seed: int = 1) -> list[SimPoint]:
    """N enrolled points picked at random, ready to report (their secrets and next sequence numbers)."""
    rows = store.db.query("SELECT id, secret, max_seq FROM points ORDER BY random() LIMIT ?", (n,))
    rnd = random.Random(seed)
    return [SimPoint(r[0], r[1], (r[2] or 0) + 1, rnd.uniform(45, 60), rnd.uniform(20, 70)) for r in rows]


def drive(url: str, points: list[SimPoint], rounds: int, per_request: int = 1, workers: int = 8,
          stop: threading.Event | None = None, say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Send `rounds` rounds: each point posts `per_request` new reports in one signed request, `workers` at once.

    Returns reports sent and acknowledged, requests made and the seconds it took.
    """
    stop = stop or threading.Event()
    totals = {"reports": 0, "acked": 0, "requests": 0}
    lock = threading.Lock()
    local = threading.local()
    rnd = random.Random(7)

    def one(p: SimPoint) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        now = clock.now()
        reports = [p.report(now - (per_request - 1 - k) * 300, rnd) for k in range(per_request)]
        acked = send(session, url, p, reports, batch=per_request)
        with lock:
            totals["reports"] += len(reports)
            totals["acked"] += acked
            totals["requests"] += 1

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for r in range(rounds):
            if stop.is_set():
                break
            list(pool.map(one, points))
            if say:
                say(f"round {r + 1}: {totals['reports']} reports, {totals['acked']} acknowledged")
    totals["seconds"] = round(time.monotonic() - t0, 2)
    return totals
