"""The screens' words: plain Chinese first (zh-CN), English second.

A small in-code catalogue rather than gettext: the screens have a few dozen
phrases, and keeping both languages side by side keeps them in step.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Flask, current_app, g, request

LANGUAGES = ("zh-CN", "en")
COOKIE = "lang"

MESSAGES: dict[str, tuple[str, str]] = {
    # key: (zh-CN, en)
    "app_title": ("村村通 · 文化信息", "Village Library"),
    "home": ("首页", "Home"),
    "back": ("返回", "Back"),
    "search": ("找一找", "Search"),
    "wish": ("我想看", "Request"),
    "read_aloud": ("读一读", "Read aloud"),
    "play": ("播放", "Play"),
    "open": ("打开", "Open"),
    "read": ("阅读", "Read"),
    "view_pictures": ("看图片", "View pictures"),
    "new_arrivals": ("新到内容", "New arrivals"),
    "items_count": ("{n} 个", "{n} items"),
    "newest": ("最新：{title}", "Newest: {title}"),
    "new_badge": ("新", "New"),
    "nothing_here": ("这里还没有内容。", "Nothing here yet."),
    "more": ("更多", "More"),
    "previous": ("上一页", "Previous"),
    "next": ("下一页", "Next"),
    "prev_picture": ("上一张", "Previous"),
    "next_picture": ("下一张", "Next"),
    "picture_n_of_m": ("{n} / {m}", "{n} / {m}"),
    "search_hint": ("用下面的字母打拼音或拼音首字母，例如 yz 找“养猪”。", "Type pinyin or its initials below, e.g. yz finds 养猪."),
    "search_none": ("没有找到，换个词试试。", "Nothing found; try another word."),
    "clear": ("清空", "Clear"),
    "delete": ("删除", "Delete"),
    "space": ("空格", "Space"),
    "wish_intro": ("想看什么内容？先选一个类别，再点下面的词或自己打字。", "What would you like to see? Pick a topic, then tap words or type."),
    "wish_topic": ("1. 选类别", "1. Pick a topic"),
    "wish_words": ("2. 点常见的词，或打拼音", "2. Tap a word, or type pinyin"),
    "wish_send": ("告诉我们", "Send"),
    "wish_chosen": ("您想看：", "You asked for:"),
    "wish_thanks": ("收到了！我们会把您的愿望告诉县里。", "Thank you! We will pass your wish to the county centre."),
    "candidates_hint": ("打拼音，这里出汉字", "Type pinyin; the characters show here"),
    "wish_type_here": ("打拼音，例如 yangzhu", "Type pinyin, e.g. yangzhu"),
    "wish_pick_hanzi": ("有几个字母认不出来，请在字母下面点选要的字。", "Some letters are not pinyin; please pick the words shown under the letters."),
    "wish_empty": ("请先选类别或点一个词。", "Please pick a topic or a word first."),
    "wish_full": ("今天的愿望太多了，暂时收不下，请过几天再来。", "Too many requests are waiting; please try again in a few days."),
    "wish_expired": ("页面放得太久了，请再点一次。", "This page was open too long; please try again."),
    "calm_title": ("请稍等", "One moment"),
    "calm_text": ("这一页暂时打不开，过一会儿会自动再试。", "This page cannot be shown right now; it will try again by itself."),
    "not_found_title": ("没有这一页", "Page not found"),
    "not_found_text": ("这一页没有找到，可能已经下架了。点下面回首页。", "This page was not found; it may have been taken off. Go back home below."),
    "notice_close": ("知道了", "OK"),
    "touch_to_start": ("点一下屏幕开始", "Touch the screen to start"),
    "language": ("English", "中文"),
    "video_back10": ("后退10秒", "Back 10 s"),
    "video_fwd10": ("前进10秒", "Forward 10 s"),
    "video_pause": ("暂停", "Pause"),
    "video_fullscreen": ("全屏", "Full screen"),
    "video_seek": ("拖动到想看的地方", "Drag to where you want to watch"),
    "volume_down": ("小声", "Quieter"),
    "volume_up": ("大声", "Louder"),
    "volume_level": ("音量 {n}%", "Volume {n}%"),
    "resume_from": ("从 {t} 接着播放", "Continuing from {t}"),
    "from_start": ("从头播放", "From the start"),
    "tap_to_play": ("点这里播放", "Tap to play"),
    "published": ("上架：{date}", "Added: {date}"),
    "size": ("大小：{size}", "Size: {size}"),
    "file_open": ("打开文件", "Open file"),
    "loading": ("正在加载…", "Loading…"),
    "speaking": ("正在朗读…", "Reading aloud…"),
    "stop_reading": ("停止朗读", "Stop reading"),
    "speech_unavailable": ("朗读暂时不可用", "Read aloud is not available"),
    "page_n_of_m": ("第 {n} / {m} 页", "Page {n} of {m}"),
    "bigger": ("放大", "Bigger"),
    "smaller": ("缩小", "Smaller"),
    "pdf_failed": ("这份文件打不开，请告诉管理员。", "This document cannot be shown; please tell the administrator."),
}

CATEGORY_NAMES: dict[str, tuple[str, str]] = {
    "agriculture": ("农业科技", "Farming"),
    "health": ("卫生健康", "Health"),
    "law": ("法律常识", "Law"),
    "culture": ("文化戏曲", "Culture & opera"),
    "children": ("少儿天地", "Children"),
    "lectures": ("讲座课堂", "Lectures"),
    "local": ("本地资讯", "Local news"),
    "other": ("其他", "Other"),
}


def current_language() -> str:
    """The language of this request: ?lang=, then the cookie, then web.language."""
    lang = request.args.get("lang") or request.cookies.get(COOKIE) or current_app.config["KIOSK"].web.language
    return lang if lang in LANGUAGES else LANGUAGES[0]


def t(key: str, **kw: Any) -> str:
    """The phrase `key` in the request's language, with {placeholders} filled."""
    pair = MESSAGES.get(key)
    if pair is None:
        return key
    text = pair[1] if _lang() == "en" else pair[0]
    return text.format(**kw) if kw else text


def category_name(slug: str) -> str:
    """A category's name in the request's language."""
    pair = CATEGORY_NAMES.get(slug) or CATEGORY_NAMES["other"]
    return pair[1] if _lang() == "en" else pair[0]


def format_date(ts: float) -> str:
    """A date in local form: 2026年3月5日 or 5 Mar 2026."""
    if not ts:
        return ""
    tm = time.localtime(ts)
    if _lang() == "en":
        return time.strftime("%d %b %Y", tm).lstrip("0")
    return f"{tm.tm_year}年{tm.tm_mon}月{tm.tm_mday}日"


def format_size(n: int) -> str:
    """A size in plain units (KB, MB, GB)."""
    units = ("B", "KB", "MB", "GB", "TB")
    size = float(n)
    for unit in units:
        if size < 1024 or unit == units[-1]:
            return f"{size:.0f} {unit}" if unit in ("B", "KB") else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _lang() -> str:
    if "lang" not in g:
        g.lang = current_language()
    return g.lang


def init_app(app: Flask) -> None:
    """Make t(), category_name() and the language available to every template."""

    @app.context_processor
    def _inject() -> dict[str, Any]:
        lang = _lang()
        return {
            "t": t,
            "category_name": category_name,
            "format_date": format_date,
            "format_size": format_size,
            "lang": lang,
            "other_lang": "en" if lang == "zh-CN" else "zh-CN",
        }
