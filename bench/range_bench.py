"""20 parallel Range readers of one video: the box's server against nginx on the same file.

    .venv/bin/python bench/range_bench.py [--readers 20] [--mb 64]

The video is published through a real signed package into a real store; the box
serves it as `kiosk run` does (waitress on loopback) and Debian's nginx (nginx-light),
started here on a free loopback port with its own configuration in a temporary
folder, serves the very same file. Each reader starts at its own offset, reads to the
end with an open-ended Range and wraps round to where it began (as a player that
seeks does), timing the longest gap between chunks. Prints throughput of both, their
ratio, and the longest gap (a stall is a gap over 2 s).
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kiosk import config as config_mod  # noqa: E402
from kiosk.box import Box  # noqa: E402
from kiosk.library import Library  # noqa: E402
from kiosk.library.package import build_package  # noqa: E402
from kiosk.library.signing import generate_key  # noqa: E402

CHUNK = 256 * 1024
STALL_S = 2.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_range(port: int, path: str, start: int, end: int | None, gaps: list[float]) -> int:
    """GET one Range and read it in chunks; append the longest gap between chunks; return bytes read."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    rng = f"bytes={start}-" if end is None else f"bytes={start}-{end}"
    conn.request("GET", path, headers={"Range": rng})
    resp = conn.getresponse()
    assert resp.status == 206, resp.status
    got, longest, last = 0, 0.0, time.perf_counter()
    while chunk := resp.read(CHUNK):
        now = time.perf_counter()
        longest = max(longest, now - last)
        last = now
        got += len(chunk)
    conn.close()
    gaps.append(longest)
    return got


def run_readers(port: int, path: str, size: int, readers: int, seed: int = 7) -> tuple[float, float, int]:
    """(seconds, longest gap, bytes) for `readers` threads each reading the whole file from its own offset."""
    rnd = random.Random(seed)
    starts = [rnd.randrange(0, size) for _ in range(readers)]
    gaps: list[float] = []
    totals: list[int] = []
    barrier = threading.Barrier(readers + 1)

    def reader(start: int) -> None:
        barrier.wait()
        n = read_range(port, path, start, None, gaps)
        if start:
            n += read_range(port, path, 0, start - 1, gaps)
        totals.append(n)

    threads = [threading.Thread(target=reader, args=(s,)) for s in starts]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    assert all(n == size for n in totals), "a reader did not get the whole file"
    return elapsed, max(gaps), sum(totals)


def start_nginx(root: Path, work: Path) -> tuple[subprocess.Popen, int]:
    """Debian's nginx serving `root` on a free loopback port, configured in `work`."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port()
    for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (work / d).mkdir(parents=True, exist_ok=True)
    conf = work / "nginx.conf"
    # As root, nginx's workers would drop to "nobody", who cannot read a private temp folder.
    user = "user root;" if os.geteuid() == 0 else ""
    conf.write_text(f"""
{user}
worker_processes auto;
daemon off;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 512; }}
http {{
  access_log off;
  client_body_temp_path {work}/body; proxy_temp_path {work}/proxy; fastcgi_temp_path {work}/fastcgi;
  uwsgi_temp_path {work}/uwsgi; scgi_temp_path {work}/scgi;
  types {{ video/mp4 mp4; }}
  sendfile on;
  server {{ listen 127.0.0.1:{port}; root {root}; }}
}}
""", encoding="utf-8")
    proc = subprocess.Popen([nginx, "-p", str(work), "-c", str(conf), "-e", str(work / "error.log")])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("nginx did not start; see " + str(work / "error.log"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readers", type=int, default=20)
    ap.add_argument("--mb", type=int, default=64, help="size of the video file")
    ap.add_argument("--rounds", type=int, default=3, help="runs of each server (best is kept)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="range-bench-") as tmp:
        work = Path(tmp)
        cfg = config_mod.load(None, env={
            "KIOSK_STORAGE_DATA_DIR": str(work / "data"), "KIOSK_STORAGE_MIN_FREE_PERCENT": "0",
            "KIOSK_WEB_HOST": "127.0.0.1", "KIOSK_WEB_PORT": "0", "KIOSK_HARDWARE_BACKEND": "fake",
        })
        src = work / "src"
        (src / "data").mkdir(parents=True)
        size = args.mb * 1024 * 1024
        with open(src / "data" / "video.mp4", "wb") as f:
            for _ in range(args.mb):
                f.write(os.urandom(1024 * 1024))
        (src / "kiosk.json").write_text(
            '{"id": "bench-video", "version": 1, "title": "测试视频", "description": "", "category": "other", "main": "video.mp4"}',
            encoding="utf-8",
        )
        key = work / "key.pem"
        generate_key(key)
        trust = cfg.path("storage.trust_dir")
        trust.mkdir(parents=True)
        (trust / "bench.pub").write_bytes(key.with_name("key.pem.pub").read_bytes())
        library = Library(cfg)
        outcome = library.ingest(build_package(src, key, work / "video.tar"))
        assert outcome.outcome == "published", outcome
        disk_path, _ = library.media_path("bench-video", 1, "video.mp4")
        box = Box(cfg, library=library, with_scheduler=False).start()
        nginx, nginx_port = start_nginx(disk_path.parent, work / "nginx")
        try:
            results = {}
            for name, port, path in (("kiosk (waitress)", box.port, "/media/bench-video/1/video.mp4"),
                                     ("nginx", nginx_port, "/video.mp4")):
                runs = [run_readers(port, path, size, args.readers) for _ in range(args.rounds)]
                best = min(runs, key=lambda r: r[0])
                results[name] = (best[0], max(r[1] for r in runs), best[2])
            print(f"range bench: {args.readers} parallel readers of one {args.mb} MiB video, whole file each, "
                  f"best of {args.rounds}")
            for name, (secs, gap, total) in results.items():
                print(f"{name:<18} {total / secs / 1e6:8.0f} MB/s   longest gap {gap * 1000:6.0f} ms"
                      f"   stalls (> {STALL_S:.0f} s): {'yes' if gap > STALL_S else 'none'}")
            ratio = results["kiosk (waitress)"][0] / results["nginx"][0]
            print(f"nginx throughput / kiosk throughput = {ratio:.2f} (target <= 2)")
        finally:
            nginx.terminate()
            nginx.wait(10)
            box.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
