"""Screens with 100,000 items: p95 server time of home, a topic page and search, each against
serving a static file of the same size from the same server; and first contentful paint of home.

    .venv/bin/python bench/web_bench.py [--items 100000] [--rounds 200] [--no-browser]

The catalogue is filled directly through Catalogue.put (the real search index), the
same-size files are published through a real signed package, and the box runs as
`kiosk run` does (waitress on loopback). Times are taken by a keep-alive client on the
loopback, so both sides of each ratio pay the same transport cost.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.catalogue_bench import WORDS  # noqa: E402
from bench.catalogue_bench import fill as fill_catalogue  # noqa: E402
from kiosk import config as config_mod  # noqa: E402
from kiosk.box import Box  # noqa: E402
from kiosk.library import Library  # noqa: E402
from kiosk.library.model import CATEGORIES  # noqa: E402
from kiosk.library.package import build_package  # noqa: E402
from kiosk.library.signing import generate_key  # noqa: E402

PAGES = {
    "home": "/",
    "topic page": "/topic/agriculture",
    "topic page 10": "/topic/health?page=10",
    "search page (yz)": "/search?q=yz",
    "search API (养猪)": "/api/v1/items?q=%E5%85%BB%E7%8C%AA&limit=24",
    "search API (yumi)": "/api/v1/items?q=yumi&limit=24",
    "search API (yz)": "/api/v1/items?q=yz&limit=24",
}


def cold_urls(kind: str, n: int, seed: int = 3) -> list[str]:
    """`n` different URLs of one kind, so that no request is answered from the page cache."""
    rnd = random.Random(seed)
    if kind == "topic":
        pairs = [(c, p) for c in CATEGORIES for p in range(1, 1 + max(1, n // len(CATEGORIES)) + 1)]
        rnd.shuffle(pairs)
        return [f"/topic/{c}?page={p}" for c, p in pairs[:n]]
    words = list(WORDS)
    queries: list[str] = []
    while len(queries) < n:
        w = rnd.choice(words)
        from pypinyin import Style, lazy_pinyin

        form = rnd.choice(("hanzi", "initials", "full"))
        q = w if form == "hanzi" else "".join(lazy_pinyin(w, style=Style.FIRST_LETTER if form == "initials" else Style.NORMAL))
        queries.append(f"/search?q={q}&n={len(queries)}")  # n makes every URL distinct
    return queries


def fill(library: Library, n: int, seed: int = 1) -> None:
    """Put `n` plausible items into the open library's catalogue."""
    fill_catalogue(library.catalogue, n, seed)


def publish_same_size_files(library: Library, cfg: config_mod.Config, work: Path, sizes: dict[str, int]) -> dict[str, str]:
    """A signed package holding one file of each page's size; returns page name -> its media URL."""
    key = work / "key.pem"
    generate_key(key)
    trust = cfg.path("storage.trust_dir")
    trust.mkdir(parents=True, exist_ok=True)
    (trust / "bench.pub").write_bytes(key.with_name("key.pem.pub").read_bytes())
    src = work / "pad"
    (src / "data").mkdir(parents=True)
    names = {}
    for i, (page, size) in enumerate(sizes.items()):
        name = f"pad{i}.html"
        (src / "data" / name).write_bytes(b"x" * size)
        names[page] = name
    (src / "kiosk.json").write_text(
        '{"id": "zz-bench-pad", "version": 1, "title": "bench", "description": "", "category": "other", "main": "pad0.html"}',
        encoding="utf-8",
    )
    out = build_package(src, key, work / "pad.tar")
    outcome = library.ingest(out)
    assert outcome.outcome == "published", outcome
    return {page: f"/media/zz-bench-pad/1/{name}" for page, name in names.items()}


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[18]


def time_pair(session: requests.Session, pages: list[str], static: str) -> tuple[list[float], list[float]]:
    """Seconds per GET of each page and of the static file, interleaved so both meet the same load."""
    def one(url: str) -> float:
        t0 = time.perf_counter()
        r = session.get(url)
        _ = r.content
        assert r.status_code == 200, (url, r.status_code)
        return time.perf_counter() - t0

    for _ in range(3):
        one(pages[0])
        one(static)
    page_t, static_t = [], []
    for url in pages:
        page_t.append(one(url))
        static_t.append(one(static))
    return page_t, static_t


def first_contentful_paint(url: str, sizes: list[tuple[int, int]], runs: int = 5) -> dict[str, float]:
    """Median FCP of `url` in Debian's Chromium, a fresh context (cold cache) per run."""
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"]
    out = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        for w, h in sizes:
            fcps = []
            for _ in range(runs):
                ctx = browser.new_context(viewport={"width": w, "height": h})
                page = ctx.new_page()
                page.goto(url)
                page.wait_for_function("performance.getEntriesByName('first-contentful-paint').length > 0")
                fcps.append(page.evaluate("performance.getEntriesByName('first-contentful-paint')[0].startTime"))
                ctx.close()
            out[f"{w}x{h}"] = statistics.median(fcps)
        browser.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--no-browser", action="store_true", help="skip the first-paint figure")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="web-bench-") as tmp:
        work = Path(tmp)
        cfg = config_mod.load(None, env={
            "KIOSK_STORAGE_DATA_DIR": str(work / "data"), "KIOSK_STORAGE_MIN_FREE_PERCENT": "0",
            "KIOSK_WEB_HOST": "127.0.0.1", "KIOSK_WEB_PORT": "0", "KIOSK_HARDWARE_BACKEND": "fake",
        })
        library = Library(cfg)
        fill(library, args.items)
        box = Box(cfg, library=library, with_scheduler=False).start()
        try:
            base = box.url.rstrip("/")
            session = requests.Session()
            sizes = {name: len(session.get(base + path).content) for name, path in PAGES.items()}
            statics = publish_same_size_files(library, cfg, work, sizes)
            print(f"web bench: {args.items:,} items, {args.rounds} keep-alive GETs each, page and static file interleaved, p95 over loopback")
            print(f"{'page':<22}{'bytes':>8}{'p95 ms':>9}{'static p95 ms':>15}{'ratio':>8}")
            for name, path in PAGES.items():
                pt, st = time_pair(session, [base + path] * args.rounds, base + statics[name])
                page_t, static_t = p95(pt), p95(st)
                print(f"{name:<22}{sizes[name]:>8}{page_t * 1000:>9.1f}{static_t * 1000:>15.1f}{page_t / static_t:>8.2f}")
            print("(pages repeat, so home, topic and search pages come from the page cache after the first)")
            print("cold pages: every request a different page, none from the page cache")
            for name, kind, size_of in (("topic pages", "topic", "topic page"), ("search pages", "search", "search page (yz)")):
                pt, st = time_pair(session, [base + u for u in cold_urls(kind, args.rounds)], base + statics[size_of])
                page_t, static_t = p95(pt), p95(st)
                print(f"{name + ' (cold)':<22}{sizes[size_of]:>8}{page_t * 1000:>9.1f}{static_t * 1000:>15.1f}{page_t / static_t:>8.2f}")
            print("targets: p95 <= 50 ms and ratio <= 3")
            if not args.no_browser:
                fcp = first_contentful_paint(box.url, [(800, 480), (1280, 800), (480, 800)])
                for size, ms in fcp.items():
                    print(f"first contentful paint of home at {size}: {ms:.0f} ms (median of 5, cold cache; target <= 1000 ms)")
        finally:
            box.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
