"""Catalogue of 100,000 items: p95 time of a category page and of searches.

    .venv/bin/python bench/catalogue_bench.py [--items 100000] [--keep DIR]

Builds the catalogue directly in SQLite (through Catalogue.put, so the search index
is the real one), then times the calls the web server makes for a category page and
for searches (hanzi, pinyin initials, full pinyin, English), and prints p95 per kind.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kiosk.library.catalogue import Catalogue  # noqa: E402
from kiosk.library.model import CATEGORIES, FileEntry  # noqa: E402

WORDS = (
    "养猪 玉米 小麦 水稻 果树 蔬菜 大棚 施肥 病虫害 防治 技术 科学 冬季 春季 农机 合作社 电商 法律 婚姻 继承 "
    "土地 承包 健康 高血压 糖尿病 儿童 故事 戏曲 秦腔 广场舞 讲座 村史 养鸡 养牛 养羊 养鱼 茶叶 苹果 葡萄 中药材 "
    "育苗 灌溉 节水 保险 医保 防疫 疫苗 营养 安全 消防 反诈 普法 识字 算术 手工 剪纸 刺绣 民歌 书法 历史"
).split()
ENGLISH = "farming pig corn wheat rice health law story lecture safety water seed".split()


def build(path: Path, n: int, seed: int = 1) -> Catalogue:
    """A catalogue of `n` plausible items (a tenth in a category the screens file under "other")."""
    cat = Catalogue(path)
    fill(cat, n, seed, categories=(*CATEGORIES, "fishing"), priorities=range(10))
    print(f"file {path.stat().st_size / 1e6:.0f} MB", file=sys.stderr)
    return cat


def fill(cat: Catalogue, n: int, seed: int = 1, categories: tuple[str, ...] = CATEGORIES,
         priorities: range = range(5, 6)) -> None:
    """Put `n` plausible items into a catalogue through the real indexing code."""
    rnd = random.Random(seed)
    t0 = time.perf_counter()
    batch = 2000
    for start in range(0, n, batch):
        with cat.write() as db:
            for i in range(start, min(n, start + batch)):
                title = "".join(rnd.sample(WORDS, rnd.randint(2, 4))) + f"第{rnd.randint(1, 30)}讲"
                if rnd.random() < 0.1:
                    title += " " + rnd.choice(ENGLISH)
                desc = "，".join("".join(rnd.sample(WORDS, rnd.randint(2, 4))) for _ in range(rnd.randint(2, 6))) + "。"
                rec = SimpleNamespace(
                    id=f"item-{i:06d}", version=1, title=title, description=desc,
                    category=rnd.choice(categories), language="zh-CN",
                    tags=tuple(rnd.sample(WORDS, 2)), main="video.mp4", poster="poster.jpg",
                    priority=rnd.choice(priorities), expires=None,
                )
                files = [FileEntry("video.mp4", 50_000_000, "0" * 64, "video/mp4"), FileEntry("poster.jpg", 40_000, "1" * 64, "image/jpeg")]
                cat.put(db, rec, files, 1_700_000_000 + i)
        print(f"\rfilling {min(n, start + batch):,}/{n:,} items", end="", file=sys.stderr)
    print(f"\nfilled in {time.perf_counter() - t0:.0f} s", file=sys.stderr)


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[18] if len(samples) >= 20 else max(samples)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--keep", metavar="DIR", help="keep (or reuse) the catalogue in DIR")
    args = ap.parse_args()
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="catalogue-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "catalogue.sqlite"
    try:
        cat = Catalogue(path) if path.exists() else build(path, args.items)
        kinds = {
            "category page": [lambda c=c: cat.listing(c, 24, 0) for c in (*CATEGORIES, "other")],
            "category page 10": [lambda c=c: cat.listing(c, 24, 240) for c in CATEGORIES],
            "categories": [lambda: cat.categories()],
            "categories uncached": [lambda: cat._categories()],
            "search hanzi": [lambda q=q: cat.search(q, None, 24, 0) for q in ("养猪", "玉米", "高血压", "防治", "技术", "猪")],
            "search initials": [lambda q=q: cat.search(q, None, 24, 0) for q in ("yz", "ym", "gxy", "fz", "j")],
            "search pinyin": [lambda q=q: cat.search(q, None, 24, 0) for q in ("yumi", "yangzhu", "gaoxueya", "jishu")],
            "search english": [lambda q=q: cat.search(q, None, 24, 0) for q in ("farming", "pig", "health law")],
            "search in category": [lambda q=q: cat.search(q, "agriculture", 24, 0) for q in ("养猪", "yz")],
        }
        for calls in kinds.values():  # warm the page cache, as a running box has it
            for call in calls:
                call()
        print(f"catalogue of {args.items:,} items, p95 of {args.rounds} rounds (ms)")
        worst = 0.0
        for kind, calls in kinds.items():
            samples = []
            for _ in range(args.rounds):
                for call in calls:
                    t = time.perf_counter()
                    call()
                    samples.append((time.perf_counter() - t) * 1000)
            worst = max(worst, p95(samples))
            print(f"  {kind:<20} p95 {p95(samples):7.1f}   median {statistics.median(samples):6.1f}")
        print(f"worst p95 {worst:.1f} ms (target <= 50 ms)")
        cat.close()
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
