"""The satellite spool: 100 bags (1 GiB in all) dropped at once, and carousel repeats.

    .venv/bin/python bench/spool_bench.py [--bags 100] [--total-mib 1024] [--repeat-mib 100] [--keep DIR]

1. Builds signed bags with the publisher's own tool (kiosk.library.package), in a
   folder on the same file system as the box's data folder.
2. Times `openssl dgst -sha256` over every payload file (the floor: one read and one
   hash of each byte), page cache warm.
3. Moves all bags into the spool at once and runs the spool watcher until every one
   is published; prints the time against openssl's.
4. Publishes one bag of --repeat-mib, then drops it again 10 times, as the broadcast
   carousel does, and prints the CPU the watcher spent on the repeats against the CPU
   openssl needs to hash that payload once.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kiosk import config as config_mod  # noqa: E402
from kiosk.library import Library, pinyin, spool  # noqa: E402
from kiosk.library.package import build_package  # noqa: E402
from kiosk.library.signing import generate_key  # noqa: E402

MiB = 1 << 20


def make_bag(work: Path, key: Path, item_id: str, size: int) -> Path:
    """A signed folder bag with one payload file of `size` random bytes."""
    src = work / "src" / item_id
    (src / "data").mkdir(parents=True)
    with open(src / "data" / "film.mp4", "wb") as f:
        left = size
        while left:
            n = min(left, 8 * MiB)
            f.write(os.urandom(n))
            left -= n
    record = {"id": item_id, "version": 1, "title": f"节目 {item_id}", "description": "测试", "category": "lectures", "main": "film.mp4"}
    (src / "kiosk.json").write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
    out = build_package(src, key, work / "ready" / item_id)
    shutil.rmtree(src)
    return out


def openssl_seconds(files: list[Path]) -> tuple[float, float]:
    """Wall and CPU seconds of `openssl dgst -sha256` over the files."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(["openssl", "dgst", "-sha256", *map(str, files)], check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bags", type=int, default=100)
    ap.add_argument("--total-mib", type=int, default=1024)
    ap.add_argument("--repeat-mib", type=int, default=100)
    ap.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (default: a temporary folder, removed)")
    args = ap.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="spool-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        data = work / "data"
        data.mkdir()
        key = work / "publisher.pem"
        pub = generate_key(key)
        (data / "trust").mkdir()
        shutil.copy(pub, data / "trust" / "publisher.pub")
        cfg = config_mod.load(None, env={"KIOSK_STORAGE_DATA_DIR": str(data), "KIOSK_STORAGE_MIN_FREE_PERCENT": "0"})
        spool_dir = cfg.path("storage.spool_dir")
        spool_dir.mkdir()

        size = args.total_mib * MiB // args.bags
        t0 = time.perf_counter()
        bags = [make_bag(work, key, f"item-{i:03d}", size) for i in range(args.bags)]
        print(f"built {len(bags)} bags of {size / MiB:.1f} MiB in {time.perf_counter() - t0:.1f} s")
        payload = [b / "data" / "film.mp4" for b in bags]
        openssl_seconds(payload)  # warm the page cache, as the spool's files would be
        ssl_wall, ssl_cpu = openssl_seconds(payload)

        pinyin.use_child_process()  # as `kiosk run`, whose spool watcher this is
        lib = Library(cfg)
        try:
            for b in bags:
                os.rename(b, spool_dir / b.name)
            t0, c0 = time.perf_counter(), cpu()
            published = 0
            while published < args.bags:
                published += sum(1 for o in spool.scan(cfg, lib) if o.outcome == "published")
            wall, used = time.perf_counter() - t0, cpu() - c0
            print(f"{args.bags} bags, {args.total_mib} MiB, dropped in the spool: all published in {wall:.2f} s (CPU {used:.2f} s)")
            print(f"openssl dgst -sha256 of the same files: {ssl_wall:.2f} s (CPU {ssl_cpu:.2f} s)")
            print(f"ratio spool / openssl: {wall / ssl_wall:.2f}")

            big = make_bag(work, key, "carousel", args.repeat_mib * MiB)
            _, one_hash_cpu = openssl_seconds([big / "data" / "film.mp4"])
            shutil.copytree(big, spool_dir / "carousel-0")
            assert [o.outcome for o in spool.scan(cfg, lib)] == ["published"]
            spent, wall_spent = 0.0, 0.0
            for turn in range(1, 11):
                shutil.copytree(big, spool_dir / f"carousel-{turn}")  # the receiver's work, not timed
                t0, c0 = time.perf_counter(), cpu()
                outcomes = spool.scan(cfg, lib)
                spent += cpu() - c0
                wall_spent += time.perf_counter() - t0
                assert [o.outcome for o in outcomes] == ["unchanged"], outcomes
            print(f"10 carousel repeats of a published {args.repeat_mib} MiB bag: CPU {spent * 1000:.0f} ms in all "
                  f"({spent * 100:.1f} ms each, wall {wall_spent * 100:.1f} ms each)")
            print(f"openssl CPU to hash that payload once: {one_hash_cpu * 1000:.0f} ms; "
                  f"ratio 10 repeats / one hash: {spent / one_hash_cpu:.3f}")
        finally:
            lib.close()
            pinyin.use_child_process(False)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
