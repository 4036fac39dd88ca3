"""The touch screens for villagers, at /: topics, lists, items, players, search, wishes.

Server-rendered and light (first paint within a second on a Pi); JavaScript
only where touch needs it. A page that fails shows a calm note that retries,
never a traceback. The kiosk's own screen (loopback) gets idle return and the
"我想看" form; phones on the local network browse the same pages read-only.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import threading
from collections import OrderedDict
from functools import wraps
from typing import Any, Callable
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, make_response, redirect, render_template, request, send_file, url_for

from kiosk import clock
from kiosk.errors import NotFound
from kiosk.library import hanzi
from kiosk.library.model import CATEGORIES
from kiosk.web import guard, i18n, speech
from kiosk.web.speech import SpeechUnavailable

log = logging.getLogger(__name__)

bp = Blueprint("screens", __name__)

MAX_PAGE = 100_000
# A path on this box: one leading slash (not "//" or "/\\", which browsers take for another
# host), and no control character or backslash anywhere.
_OWN_PAGE = re.compile(r"/(?![/\\])[^\x00-\x1f\x7f\\]*")

TOPICS = CATEGORIES + ("other",)
PAGE_SIZE = 24
NEW_DAYS = 7

# Words a villager can tap on the "我想看" page, by topic, with their full pinyin and
# initials for the on-screen keyboard. Written out here (made once with pypinyin) so the
# running box never loads pypinyin, which costs about 50 MB of memory.
WISH_WORDS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "agriculture": (
        ("养猪", "yangzhu", "yz"), ("养鸡", "yangji", "yj"), ("养牛", "yangniu", "yn"), ("玉米", "yumi", "ym"),
        ("小麦", "xiaomai", "xm"), ("水稻", "shuidao", "sd"), ("果树", "guoshu", "gs"), ("蔬菜大棚", "shucaidapeng", "scdp"),
        ("病虫害", "bingchonghai", "bch"), ("化肥", "huafei", "hf"), ("农机", "nongji", "nj"), ("天气", "tianqi", "tq"),
    ),
    "health": (
        ("高血压", "gaoxueya", "gxy"), ("糖尿病", "tangniaobing", "tnb"), ("老人保健", "laorenbaojian", "lrbj"), ("儿童疫苗", "ertongyimiao", "etym"),
        ("急救", "jijiu", "jj"), ("养生", "yangsheng", "ys"), ("医保", "yibao", "yb"), ("妇幼", "fuyou", "fy"),
    ),
    "law": (
        ("土地承包", "tudichengbao", "tdcb"), ("婚姻家庭", "hunyinjiating", "hyjt"), ("劳动工资", "laodonggongzi", "ldgz"), ("防诈骗", "fangzhapian", "fzp"),
        ("交通安全", "jiaotonganquan", "jtaq"), ("继承", "jicheng", "jc"), ("宅基地", "zhaijidi", "zjd"),
    ),
    "culture": (
        ("豫剧", "yuju", "yj"), ("黄梅戏", "huangmeixi", "hmx"), ("京剧", "jingju", "jj"), ("秦腔", "qinqiang", "qq"),
        ("相声", "xiangsheng", "xs"), ("电影", "dianying", "dy"), ("广场舞", "guangchangwu", "gcw"), ("书法", "shufa", "sf"),
    ),
    "children": (
        ("动画片", "donghuapian", "dhp"), ("儿歌", "erge", "eg"), ("安全教育", "anquanjiaoyu", "aqjy"), ("故事", "gushi", "gs"),
        ("科普", "kepu", "kp"), ("学习", "xuexi", "xx"),
    ),
    "lectures": (
        ("种植技术", "zhongzhijishu", "zzjs"), ("电商", "dianshang", "ds"), ("创业", "chuangye", "cy"), ("健康讲座", "jiankangjiangzuo", "jkjz"),
        ("政策解读", "zhengcejiedu", "zcjd"),
    ),
    "local": (
        ("乡村新闻", "xiangcunxinwen", "xcxw"), ("通知", "tongzhi", "tz"), ("集市", "jishi", "js"), ("招工", "zhaogong", "zg"),
    ),
    "other": (
        ("天气预报", "tianqiyubao", "tqyb"), ("新闻", "xinwen", "xw"), ("手艺", "shouyi", "sy"), ("旅游", "lvyou", "ly"),
    ),
}


def _part(name: str) -> Any:
    return current_app.extensions["kiosk"][name]


def on_kiosk_screen() -> bool:
    """True for the box's own touchscreen (a browser on the loopback), False for phones."""
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False


def file_for(item: Any, path: str | None) -> Any:
    """The FileEntry of `path` in `item`, or None."""
    if not path:
        return None
    return next((f for f in item.files if f.path == path), None)


def poster_url(item: Any) -> str | None:
    """The URL of an item's poster, if it has one."""
    f = file_for(item, item.poster)
    if f is None and item.main_file is not None and item.main_file.media_type.startswith("image/"):
        f = item.main_file
    return f.url(item.id, item.version) if f else None


def item_kind(item: Any) -> str:
    """video, audio, pdf, article, pictures or file: how the screens open it."""
    main = item.main_file
    mt = (main.media_type if main else "").lower()
    path = (item.main or "").lower()
    if mt.startswith("video/") or path.endswith((".mp4", ".webm", ".m4v")):
        return "video"
    if mt.startswith("audio/") or path.endswith((".mp3", ".m4a", ".ogg", ".wav")):
        return "audio"
    if mt == "application/pdf" or path.endswith(".pdf"):
        return "pdf"
    if mt.startswith("text/html") or path.endswith((".html", ".htm")):
        return "article"
    if mt.startswith("image/") or path.endswith((".jpg", ".jpeg", ".png", ".webp")):
        return "pictures"
    return "file"


def pictures_of(item: Any) -> list[Any]:
    """The images of a picture set, in path order, the poster left out unless alone."""
    images = sorted((f for f in item.files if f.media_type.startswith("image/")), key=lambda f: f.path)
    without_poster = [f for f in images if f.path != item.poster or f.path == item.main]
    return without_poster or images


def is_new(item: Any) -> bool:
    """Published within the last week."""
    return bool(item.published_at) and clock.now() - item.published_at < NEW_DAYS * 86400


def _render(template: str, **kw: Any) -> Any:
    cfg = _part("config")
    kiosk = on_kiosk_screen()
    kw.setdefault("topics_nav", TOPICS)
    return render_template(
        template,
        point_name=cfg.point.name,
        kiosk_screen=kiosk,
        idle_s=cfg.web.idle_return_s if kiosk else 0,
        item_kind=item_kind,
        poster_url=poster_url,
        is_new=is_new,
        **kw,
    )


def attract_slides(library: Any, arrivals: list[Any]) -> list[Any]:
    """What the attract loop shows: the newest local notices (from the county), then new arrivals."""
    notices = library.items(category="local", limit=3)
    seen = {it.id for it in notices}
    return notices + [it for it in arrivals if it.id not in seen]


def calm_error(code: int) -> Any:
    """A calm page instead of an error: says so plainly and retries by itself."""
    try:
        html = render_template("calm.html", code=code, retry_s=10 if code >= 500 else 0, kiosk_screen=on_kiosk_screen(), idle_s=0)
    except Exception:  # even the template failed: plain words, still no traceback
        html = '<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="10"><p style="font-size:28px">请稍等，马上再试。</p>'
    return html, code


class PageCache:
    """Rendered pages of pure reads (home, topics, search), kept until the catalogue changes.

    With 100,000 items a topic page costs a few milliseconds of queries and
    templating; a villager's next tap usually asks for a page already made. The key
    holds the catalogue's generation (any publish, recall or eviction changes it)
    and the hour (the "新" badges age), so a cached page is never stale.
    """

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._pages: OrderedDict[tuple[Any, ...], str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> str | None:
        with self._lock:
            html = self._pages.get(key)
            if html is not None:
                self._pages.move_to_end(key)
            return html

    def put(self, key: tuple[Any, ...], html: str) -> None:
        with self._lock:
            self._pages[key] = html
            while len(self._pages) > self.size:
                self._pages.popitem(last=False)


def _page_cache() -> PageCache:
    """This app's page cache (one per app: two boxes in one process never share pages)."""
    ext = current_app.extensions["kiosk"]
    cache = ext.get("pages")
    if cache is None:
        cache = ext.setdefault("pages", PageCache())
    return cache


def _generation() -> Any:
    """The catalogue's change counter, or None when the library cannot say (then nothing is cached)."""
    library = _part("library")
    fn = getattr(library, "generation", None) or getattr(getattr(library, "catalogue", None), "generation", None)
    try:
        return fn() if fn else None
    except Exception:
        return None


def cached_page(view: Callable[..., Any]) -> Callable[..., Any]:
    """Serve a pure-read page from PageCache when the catalogue has not changed."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        gen = _generation()
        if gen is None:
            return view(*args, **kwargs)
        key = (request.full_path, i18n.current_language(), on_kiosk_screen(), gen, int(clock.now() // 3600))
        pages = _page_cache()
        html = pages.get(key)
        if html is None:
            html = view(*args, **kwargs)
            if not isinstance(html, str):
                return html
            pages.put(key, html)
        return html

    return wrapper


def _item_or_404(item_id: str) -> Any:
    try:
        return _part("library").item(item_id)
    except NotFound:
        abort(404)


def _note_open(item: Any) -> None:
    """Record an open for usage and for eviction order; never fail the page for it."""
    try:
        _part("library").mark_opened(item.id)
    except Exception as e:
        log.warning("event=mark_opened_failed id=%s error=%r", item.id, e)
    usage = _part("usage")
    if usage is not None:
        try:
            usage.record(item.id, item.category, "open")
        except Exception as e:
            log.warning("event=usage_failed id=%s error=%r", item.id, e)


@bp.get("/")
@cached_page
def home() -> Any:
    """Big topic tiles with counts and what is new, then the newest arrivals."""
    library = _part("library")
    tiles = []
    for cat in library.categories():
        newest = library.items(category=cat["slug"], limit=1)
        tiles.append({"slug": cat["slug"], "count": cat["count"], "newest": newest[0] if newest else None})
    order = {slug: i for i, slug in enumerate(TOPICS)}
    tiles.sort(key=lambda t: order.get(t["slug"], len(order)))
    arrivals = library.items(limit=8)
    return _render("home.html", tiles=tiles, arrivals=arrivals, slides=attract_slides(library, arrivals))


@bp.get("/topic/<slug>")
@cached_page
def topic(slug: str) -> Any:
    """One topic's items, newest first, with posters."""
    if slug not in TOPICS:
        abort(404)
    page = max(1, request.args.get("page", 1, type=int) or 1)
    if page > MAX_PAGE:
        abort(404)  # far past the last page (a huge number would overflow the catalogue's integers)
    found = _part("library").items(category=slug, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    return _render("topic.html", slug=slug, items=found[:PAGE_SIZE], page=page, has_next=len(found) > PAGE_SIZE)


@bp.get("/item/<item_id>")
def item(item_id: str) -> Any:
    """An item: poster, title, description, read aloud, and the button that opens it."""
    it = _item_or_404(item_id)
    _note_open(it)
    main = it.main_file
    return _render("item.html", item=it, kind=item_kind(it), main=main, main_url=main.url(it.id, it.version) if main else None)


@bp.get("/play/<item_id>")
def play(item_id: str) -> Any:
    """The full-screen player for a video or audio item."""
    it = _item_or_404(item_id)
    if item_kind(it) not in ("video", "audio") or it.main_file is None:
        return redirect(url_for("screens.item", item_id=it.id))
    return _render("play.html", item=it, kind=item_kind(it), src=it.main_file.url(it.id, it.version), poster=poster_url(it))


@bp.get("/read/<item_id>")
def read(item_id: str) -> Any:
    """A document: a PDF in the browser's own viewer, or an HTML article in large type."""
    it = _item_or_404(item_id)
    kind = item_kind(it)
    if kind not in ("pdf", "article") or it.main_file is None:
        return redirect(url_for("screens.item", item_id=it.id))
    return _render("read.html", item=it, kind=kind, src=it.main_file.url(it.id, it.version))


@bp.get("/pictures/<item_id>")
def pictures(item_id: str) -> Any:
    """A picture set, one picture at a time, with big previous and next buttons."""
    it = _item_or_404(item_id)
    images = pictures_of(it)
    if not images:
        return redirect(url_for("screens.item", item_id=it.id))
    urls = [f.url(it.id, it.version) for f in images]
    return _render("pictures.html", item=it, urls=urls)


@bp.get("/search")
@cached_page
def search() -> Any:
    """Search with the on-screen keyboard; results come as you type (and server-side for ?q=)."""
    q = (request.args.get("q") or "").strip()[:64]
    results = _part("library").items(q=q, limit=PAGE_SIZE) if q else []
    names = {slug: i18n.category_name(slug) for slug in TOPICS}
    return _render("search.html", q=q, results=results, category_names=names)


@bp.get("/wish")
def wish() -> Any:
    """The "我想看" page: pick a topic, tap or type words."""
    if not on_kiosk_screen():
        return redirect(url_for("screens.home"))
    words = [{"w": w, "t": slug, "p": full, "i": initials} for slug, ws in WISH_WORDS.items() for w, full, initials in ws]
    return _render("wish.html", words=words, wish_topics=TOPICS, token=guard.page_token("wish"), chosen=request.args.get("topic", ""))


def _wish_and_catalogue_words(letters: str, limit: int) -> list[tuple[str, str]]:
    """The words a request is most likely made of: the catalogue's, then those the 我想看 page suggests."""
    found = _part("library").words(letters, limit)
    found += [(w, full) for ws in WISH_WORDS.values() for w, full, initials in ws
              if full.startswith(letters) or initials.startswith(letters)]
    return sorted(found, key=lambda wp: wp[1] != letters)[:limit]  # a whole match first, as the catalogue ranks


@bp.post("/wish")
def wish_send() -> Any:
    """Store a villager's request; thank them; never an admin action."""
    if not on_kiosk_screen() or not guard.same_origin():
        abort(403)
    if not guard.token_ok("wish", request.form.get("token")):
        return _render("wish_done.html", ok=False, message=i18n.t("wish_expired")), 400
    category = request.form.get("category", "")
    if category not in TOPICS:
        category = "other"
    words = hanzi.to_hanzi(request.form.get("words", "")[:200], _wish_and_catalogue_words)
    if words is None:  # letters that are no pinyin: the villager picks from the candidates instead
        return _render("wish_done.html", ok=False, message=i18n.t("wish_pick_hanzi")), 400
    store = _part("wishes")
    if store is None:
        return calm_error(503)
    try:
        store.add(category, words)
    except ValueError:
        empty = not words.strip() and category == "other"
        return _render("wish_done.html", ok=False, message=i18n.t("wish_empty" if empty else "wish_full")), 400
    return _render("wish_done.html", ok=True, message=i18n.t("wish_thanks"), category=category, words=words)


@bp.get("/attract")
@cached_page
def attract() -> Any:
    """The idle screen: notices and new arrivals, one after another, until someone touches it."""
    library = _part("library")
    return _render("attract.html", slides=attract_slides(library, library.items(limit=12)))


@bp.get("/speak/<item_id>")
def speak(item_id: str) -> Any:
    """How 读一读 reads an item: its recorded narration, or the number of spoken parts to play in turn."""
    it = _item_or_404(item_id)
    recorded = file_for(it, it.narration)
    if recorded is not None:
        return {"narration": recorded.url(it.id, it.version), "parts": 0}
    if _part("speech") is None:
        abort(503)
    return {"narration": None, "parts": len(speech.parts(speech.item_text(_part("library"), it)))}


@bp.get("/speak/<item_id>/<int:part>")
def speak_part(item_id: str, part: int) -> Any:
    """One part of an item's title, description and article read aloud (WAV), made on the box and cached."""
    it = _item_or_404(item_id)
    speaker = _part("speech")
    if speaker is None:
        abort(503)
    texts = speech.parts(speech.item_text(_part("library"), it))
    if not 0 <= part < len(texts):
        abort(404)
    try:
        path = speaker.wav(texts[part], it.language or "zh-CN")
    except SpeechUnavailable:
        abort(503)
    return send_file(path, mimetype="audio/wav", conditional=True, max_age=86400)


@bp.get("/sw.js")
def service_worker() -> Any:
    """The kiosk's service worker, served from / so that it may look after every page."""
    resp = current_app.send_static_file("sw.js")
    resp.headers["Cache-Control"] = "no-cache"
    resp.headers["Content-Type"] = "text/javascript; charset=utf-8"
    return resp


@bp.get("/idle")
def idle() -> Any:
    """Where the idle timer sends the screen: home, in the box's own language, for the next villager."""
    resp = make_response(redirect(url_for("screens.home")))
    resp.delete_cookie(i18n.COOKIE)
    return resp


@bp.get("/lang/<code>")
def set_language(code: str) -> Any:
    """Switch the screens' language and go back where the villager was."""
    if code not in i18n.LANGUAGES:
        abort(404)
    nxt = request.args.get("next") or "/"
    parts = urlsplit(nxt)
    if parts.scheme or parts.netloc or not _OWN_PAGE.fullmatch(nxt):
        nxt = "/"  # only our own pages: never an open redirect, never a control character in a header
    resp = make_response(redirect(nxt))
    resp.set_cookie(i18n.COOKIE, code, max_age=365 * 86400, samesite="Lax")
    return resp
