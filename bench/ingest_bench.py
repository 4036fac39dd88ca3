"""Ingest of a 1 GiB bag against the tools' floor, as two ratios.

    .venv/bin/python bench/ingest_bench.py [--mib 1024] [--files 8] [--rounds 3] [--dir DIR]

1. from another folder (as from a USB disk):  ingest / (openssl dgst -sha256 + cp + sync)
2. from the spool on the store's file system:  ingest / openssl dgst -sha256

Both sides read warm files (the bag is read once beforehand, so both find it in the page
cache), write to the same file system, and are timed in the same run, alternately, the
median of --rounds taken. The ingest fsyncs every file it writes; the baseline's `sync`
flushes what `cp` wrote.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kiosk import config  # noqa: E402
from kiosk.library import Library  # noqa: E402
from tests.packages import make_key, record_bytes, sign, trust_key  # noqa: E402

CHUNK = 1 << 20


def build_bag(folder: Path, key: Path, mib: int, files: int) -> list[Path]:
    """A signed bag of `files` random files totalling `mib` MiB; returns the payload files."""
    data = folder / "data"
    data.mkdir(parents=True)
    per = (mib << 20) // files
    lines, paths = [], []
    for i in range(files):
        p = data / f"part{i}.mp4"
        h = hashlib.sha256()
        with open(p, "wb") as f:
            for _ in range(per // CHUNK):
                block = os.urandom(CHUNK)
                h.update(block)
                f.write(block)
        lines.append(f"{h.hexdigest()}  data/{p.name}\n")
        paths.append(p)
    tags = {
        "bagit.txt": b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n",
        "bag-info.txt": f"Payload-Oxum: {per * files}.{files}\n".encode(),
        "manifest-sha256.txt": "".join(lines).encode(),
        "kiosk.json": record_bytes({"id": "big-lesson", "title": "大文件", "main": "part0.mp4"}),
    }
    for name, blob in tags.items():
        (folder / name).write_bytes(blob)
    tagmanifest = "".join(f"{hashlib.sha256(b).hexdigest()}  {n}\n" for n, b in tags.items()).encode()
    (folder / "tagmanifest-sha256.txt").write_bytes(tagmanifest)
    (folder / "signature.ed25519").write_bytes(sign(key, tagmanifest))
    return paths


def warm(paths: list[Path]) -> None:
    """Read files once so that both sides find them in the page cache."""
    for p in paths:
        with open(p, "rb") as f:
            while f.read(8 << 20):
                pass


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", help="work folder (default: a temporary one); needs 4x the bag's size free")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ingest-bench-", dir=args.dir))
    try:
        key = make_key(work / "keys" / "publisher.pem")
        trust_key(key, work / "trust")
        usb = work / "usb" / "bag"
        print(f"building a {args.mib} MiB bag of {args.files} files ...", file=sys.stderr)
        payload = build_bag(usb, key, args.mib, args.files)
        data = work / "data"
        cfg = config.load(None, env={"KIOSK_STORAGE_DATA_DIR": str(data), "KIOSK_STORAGE_TRUST_DIR": str(work / "trust"),
                                     "KIOSK_STORAGE_MIN_FREE_PERCENT": "0", "KIOSK_STORAGE_MAX_PACKAGE_MB": str(args.mib * 2)})
        lib = Library(cfg)
        copy_ratios, spool_ratios = [], []
        for r in range(args.rounds):
            # 1. from another folder: ours, then openssl + cp + sync
            run(["sync"])
            warm(payload)
            ours = timed(lambda: lib.ingest(usb, source="usb"))
            assert lib.item("big-lesson"), "the bag was not published"
            lib.delete("big-lesson")
            run(["sync"])
            dest = work / "cp-dest"
            warm(payload)
            base = timed(lambda: (run(["openssl", "dgst", "-sha256", *map(str, payload)]),
                                  run(["cp", "-r", str(usb / "data"), str(dest)]), run(["sync"])))
            shutil.rmtree(dest)
            copy_ratios.append(ours / base)
            print(f"round {r + 1}: from a folder  ingest {ours:6.2f} s   openssl+cp+sync {base:6.2f} s   ratio {ours / base:.2f}", file=sys.stderr)
            # 2. from the spool on the store's file system: ours, then openssl alone
            spool = cfg.path("storage.spool_dir") / "big"
            spool.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(usb, spool)
            run(["sync"])
            spooled = sorted((spool / "data").iterdir())
            warm(spooled)
            base = timed(lambda: run(["openssl", "dgst", "-sha256", *map(str, spooled)]))
            ours = timed(lambda: lib.ingest(spool, source="spool"))
            assert not spool.exists() and lib.item("big-lesson"), "the spool bag was not published by rename"
            lib.delete("big-lesson")
            spool_ratios.append(ours / base)
            print(f"round {r + 1}: from the spool ingest {ours:6.2f} s   openssl dgst    {base:6.2f} s   ratio {ours / base:.2f}", file=sys.stderr)
        lib.close()
        print(f"ingest of a {args.mib} MiB bag ({args.files} files), median of {args.rounds} rounds:")
        print(f"  from another folder / (openssl dgst -sha256 + cp + sync): {statistics.median(copy_ratios):.2f}  (target <= 1.2)")
        print(f"  from the spool, same file system / openssl dgst -sha256:  {statistics.median(spool_ratios):.2f}  (target <= 1.2)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
