"""A large local video up to a real county centre over a slow line that keeps dropping.

Makes a playable video of --mb megabytes (the sample video looped with ffmpeg's stream
copy), starts `kiosk centre run` (SQLite), adds the video with `kiosk local add`, then runs
a box process that uploads it (the box's own `kiosk.uplink.upload.run`, started again at once
whenever the line drops, as the scheduler would at its next interval). Between them
sits a TCP relay on loopback that throttles both directions to --mbit and cuts every
connection every --cut seconds. Prints: whether the upload completed and the centre's
copy matches, seconds taken, bytes the box sent / file size (target <= 1.1), cuts, and
the box process's resident memory during the upload (peak and median).

    .venv/bin/python bench/upload_bench.py [--mb 200] [--mbit 16] [--cut 30]

DESIGN's case is 200 MB at 1 Mbit/s (about half an hour); the defaults run it at
16 Mbit/s to stay short, and `--mb 16 --mbit 1` shows the real rate with a smaller file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SAMPLE = ROOT / "kiosk" / "sample_content" / "pig-farming-video" / "data" / "video.mp4"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThrottlingRelay:
    """A loopback TCP relay: each direction limited to `rate` bytes/s, every connection cut every `cut_s`."""

    def __init__(self, target_port: int, rate: float, cut_s: float) -> None:
        self.target = ("127.0.0.1", target_port)
        self.rate, self.cut_s = rate, cut_s
        self.up = self.down = self.cuts = 0
        self.lock = threading.Lock()
        self.live: list[socket.socket] = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()
        threading.Thread(target=self._cutter, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            with self.lock:
                self.live += [client, server]
            threading.Thread(target=self._pump, args=(client, server, "up"), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, "down"), daemon=True).start()

    def _cutter(self) -> None:
        while True:
            time.sleep(self.cut_s)
            with self.lock:
                live, self.live = self.live, []
            if live:
                self.cuts += 1
            for s in live:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _pump(self, src: socket.socket, dst: socket.socket, direction: str) -> None:
        # paced in 4 KiB steps: the bytes a cut loses are the ones in flight, as on a real line
        free_at = time.monotonic()  # when the line is free again: no credit for idle time, no bursts
        try:
            while data := src.recv(4096):
                free_at = max(free_at, time.monotonic()) + len(data) / self.rate
                wait = free_at - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
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


def make_video(out: Path, mb: int) -> None:
    """A playable MP4 of about `mb` MB: the sample looped, stream-copied (no encoding)."""
    loops = max(1, int(mb * 2**20 / SAMPLE.stat().st_size))
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", str(loops - 1), "-i", str(SAMPLE), "-c", "copy", str(out)],
                   check=True, timeout=600)


def box_main(config_path: str) -> int:
    """The box's uplink process: send a heartbeat (its key), upload until done."""
    from kiosk import config
    from kiosk.device.fake import FakeHardware
    from kiosk.library import Library
    from kiosk.uplink import heartbeat_job, upload

    cfg = config.load(config_path, env={})
    lib = Library(cfg)
    while heartbeat_job(cfg, lib, FakeHardware(), sleep=lambda s: None)["acked"] == 0:
        time.sleep(0.5)  # a cut may take the first beat too
    runs = 0
    started = time.time()
    while True:
        runs += 1
        result = upload.run(cfg)
        if result["done"]:
            break
        time.sleep(0.2)
    print(json.dumps({"done": result["done"], "runs": runs, "seconds": time.time() - started}), flush=True)
    lib.close()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--mbit", type=float, default=16.0, help="line rate each way, Mbit/s")
    parser.add_argument("--cut", type=float, default=30.0, help="seconds between connection cuts")
    parser.add_argument("--box", nargs=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.box:
        return box_main(*args.box)
    if not shutil.which("ffmpeg"):
        print("ffmpeg is needed (Debian package ffmpeg)", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="kiosk-upload-") as tmp:
        root = Path(tmp)
        video = root / "big.mp4"
        make_video(video, args.mb)
        size = video.stat().st_size
        port = free_port()
        centre_cfg = root / "centre.toml"
        centre_cfg.write_text(f'[storage]\ndata_dir = "{root / "centre"}"\n[centre]\nhost = "127.0.0.1"\nport = {port}\n'
                              f'[uplink]\nupload_max_mb = {args.mb * 2}\n', encoding="utf-8")
        env = {**os.environ, "KIOSK_CONFIG": ""}
        secret = json.loads(subprocess.run([sys.executable, "-m", "kiosk.cli", "centre", "enroll", "bench-point", "--json",
                                            "--config", str(centre_cfg)], capture_output=True, text=True, env=env, check=True).stdout)["secret"]
        centre = subprocess.Popen([sys.executable, "-m", "kiosk.cli", "centre", "run", "--config", str(centre_cfg)],
                                  stdout=subprocess.DEVNULL, stderr=open(root / "centre.log", "wb"), env=env)
        box = None
        try:
            from kiosk.centre.simulate import wait_until_up

            wait_until_up(f"http://127.0.0.1:{port}")
            relay = ThrottlingRelay(port, args.mbit * 1e6 / 8, args.cut)
            box_cfg = root / "box.toml"
            box_cfg.write_text(f'[point]\nid = "bench-point"\n[storage]\ndata_dir = "{root / "box"}"\nmin_free_percent = 0\n'
                               f'[hardware]\nbackend = "fake"\n[centre]\nurl = "http://127.0.0.1:{relay.port}"\nsecret = "{secret}"\n'
                               f'reconnect_delay_s = 0\n[uplink]\nupload_daily_mb = {args.mb * 4}\nupload_max_mb = {args.mb * 2}\n',
                               encoding="utf-8")
            added = json.loads(subprocess.run([sys.executable, "-m", "kiosk.cli", "--config", str(box_cfg), "local", "add", str(video),
                                               "--title", "村里的大视频", "--json"], capture_output=True, text=True, env=env,
                                              check=True, timeout=1800).stdout)
            up_before = relay.up
            box = subprocess.Popen([sys.executable, __file__, "--box", str(box_cfg)], stdout=subprocess.PIPE,
                                   stderr=open(root / "box.log", "wb"), text=True, env=env)
            proc = psutil.Process(box.pid)
            rss: list[int] = []
            while box.poll() is None:
                try:
                    rss.append(proc.memory_info().rss)
                except psutil.NoSuchProcess:
                    break
                time.sleep(0.5)
            line = box.stdout.read().strip().splitlines()
            done = json.loads(line[-1]) if line else {}
            sent = relay.up - up_before
            tar = root / "centre" / "uploads" / f"{added['id']}.tar"
            outgoing = size  # the package is the video plus a few KiB of tag files
            ok = bool(done.get("done")) and tar.exists()
            if tar.exists():
                outgoing = tar.stat().st_size
            print(f"upload of a {size / 2**20:.0f} MB video ({outgoing / 2**20:.1f} MB package) at {args.mbit:g} Mbit/s, "
                  f"connection cut every {args.cut:g} s")
            print(f"  completed and the centre holds it for review: {ok}")
            print(f"  seconds: {done.get('seconds', float('nan')):.0f} (the line alone: {outgoing * 8 / (args.mbit * 1e6):.0f})")
            print(f"  connections cut: {relay.cuts}; upload rounds started: {done.get('runs')}")
            print(f"  bytes the box sent / package size: {sent / outgoing:.3f} (target <= 1.1; HTTP headers and JSON included)")
            if rss:
                print(f"  box process resident memory during the upload: peak {max(rss) / 2**20:.1f} MiB, "
                      f"median {statistics.median(rss) / 2**20:.1f} MiB ({len(rss)} samples)")
            return 0 if ok and sent / outgoing <= 1.1 else 1
        finally:
            if box is not None and box.poll() is None:
                box.terminate()
            centre.terminate()
            centre.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
