"""The device page's words for the content channels: the satellite spool and the telecom sync.

Pure functions from the channels' status dicts (kiosk.library.spool.status, and the
sync part of the uplink status the runner hands to the app) to what the page says;
docs/administrator.md lists every sentence.
"""

from __future__ import annotations

from typing import Any

from kiosk import clock
from kiosk.device.health import State

DAY = 86400

# Every state the two channel sections can be in, with its plain words and what to do
# (docs/administrator.md lists them). A state at level warning or fault counts in the
# overall state at the top of the page.
_STATES = (
    State("spool.idle", "ok", "现在没有正在接收的卫星节目包。", "No package is arriving by satellite now."),
    State("spool.arriving", "ok", "卫星正在送来节目包，收齐后会自动上架，不用管。",
          "Packages are arriving by satellite; each is published by itself once complete. Nothing to do."),
    State("spool.taking", "ok", "正在上架一个收齐的节目包，请稍等。", "A complete package is being published now."),
    State("spool.abandoned", "ok", "下面这些节目包过了规定时间还没收齐，已经移到“被拒收的节目包”里，没有删除。"
          "一般不用管：卫星会重播，下次收齐就会自动上架。如果经常出现，请打电话告诉县中心。",
          "These packages were still incomplete after the time allowed and were moved to quarantine, not deleted. "
          "Usually nothing to do: the satellite repeats its programmes and a complete copy is published by itself. "
          "If it keeps happening, call the county centre."),
    State("spool.abandoned_often", "warning", "最近 7 天有好几个节目包没收齐：请打电话告诉县中心，可能要检查卫星天线或接收器。",
          "Several packages arrived incomplete in the last 7 days: call the county centre; the dish or receiver may need a look."),
    State("sync.off", "ok", "没有开启网络下载节目（没有设置县中心地址，或者已关闭）。",
          "Downloading programmes over the line is off (no county centre set, or switched off)."),
    State("sync.never", "ok", "还没有查看过县中心的节目目录，设备会定时自动查看。",
          "The centre's list has not been read yet; the box looks at regular times by itself."),
    State("sync.ok", "ok", "网络下载正常，不用管。", "Downloading over the line works; nothing to do."),
    State("sync.no_index", "ok", "县中心还没有发布节目目录，有了以后会自动下载，不用管。",
          "The county centre has no programme list yet; downloads start by themselves once it has one."),
    State("sync.waiting", "ok", "还有节目包等着下载，会在下载时段内自动下载，下了一半的会接着下载。",
          "Packages wait to be downloaded; this happens by itself within the download hours, and half-done downloads continue."),
    State("sync.budget_spent", "ok", "今天的下载流量已经用完，明天会接着下载，已经下载的部分不会丢。",
          "Today's download allowance is used up; downloading continues tomorrow and nothing downloaded is lost."),
    State("sync.outside_window", "ok", "现在不在下载时段，到时间会自动下载。", "Outside the download hours; downloading starts by itself when they come."),
    State("sync.late", "warning", "很久没有看到县中心的节目目录：请检查网线或上网卡；卫星和U盘送来的节目不受影响。",
          "The centre's list has not been read for a long time: check the line or the mobile data card; satellite and USB programmes are not affected."),
    State("sync.line_down", "warning", "网络下载连不上县中心：请检查网线或上网卡是否插好、有没有欠费；设备会自动再试。卫星和U盘送来的节目不受影响。",
          "Downloading cannot reach the county centre: check that the line or mobile data card is connected and paid for; the box tries again by itself. Satellite and USB programmes are not affected."),
    State("sync.centre_error", "warning", "县中心的服务器出了问题，网络下载暂停，设备会自动再试。如果一天以上都这样，请打电话告诉县中心。",
          "The county centre's server has a problem; downloading waits and the box tries again by itself. If it lasts more than a day, call the county centre."),
    State("sync.untrusted_index", "warning", "县中心的节目目录签名不对，设备不信任它，所以没有从网络下载任何节目。"
          "请打电话告诉县中心：设备上可能缺少县中心的发布密钥，要请技术员装上。",
          "The county centre's programme list has a signature this box does not trust, so nothing is downloaded over the line. "
          "Call the county centre: the box may lack the centre's publisher key, which a technician must install."),
    State("sync.bad_index", "warning", "县中心的节目目录内容有错，设备读不懂，所以没有从网络下载节目。请打电话告诉县中心。",
          "The county centre's programme list is malformed, so nothing is downloaded over the line. Call the county centre."),
    State("sync.stale_index", "warning", "县中心的节目目录比设备上次用的还旧，为了安全没有采用。如果一直这样，请打电话告诉县中心。",
          "The centre's list was older than the one used last time, so for safety it was not used. If it keeps happening, call the county centre."),
    State("sync.failed", "warning", "上一次查看县中心的节目目录没有成功，设备会自动再试。如果一直这样，请打电话告诉县中心。",
          "The last look at the centre's list failed; the box tries again by itself. If it keeps happening, call the county centre."),
    State("sync.refused", "warning", "有一个从网络下载的节目包没有通过检查，没有上架（原因见下面）。一般不用管；反复出现请告诉县中心。",
          "A package downloaded over the line did not pass the checks and was not published (reason below). "
          "Usually nothing to do; tell the county centre if it keeps happening."),
)
CHANNEL_STATES: dict[str, State] = {s.id: s for s in _STATES}
CHANNEL_WORDS: dict[str, tuple[str, str]] = {s.id: (s.zh, s.en) for s in _STATES}
FAILURE_STATES = {"line_down", "centre_error", "untrusted_index", "bad_index", "failed"}
REFUSED_SHOWN_S = 7 * DAY  # a refused download counts as a problem for a week, then is history
ABANDONED_OFTEN = 3  # this many given up on within 7 days is more than a bad night of weather
SYNC_LATE_RUNS = 3  # no finished look at the index for this many sync intervals: the line is down
_SKIPPED_WORDS = {
    None: ("查看了目录", "read the list"),
    "window": ("不在下载时段", "outside the download hours"),
    "budget": ("今天流量已用完", "allowance used up"),
    "no_index": ("县中心还没有节目目录", "the centre has no list yet"),
    "stale_index": ("目录比上次旧，没有采用", "list older than the last, not used"),
    "disabled": ("没有开启", "off"),
}


def spool_view(st: dict[str, Any] | None) -> dict[str, Any] | None:
    """The satellite spool's arrivals and give-ups, with a sentence for each part; None if unreadable."""
    if st is None:
        return None
    st = dict(st)
    week_ago = clock.now() - 7 * DAY
    recent_abandoned = [a for a in st.get("abandoned") or [] if (a.get("at") or 0) >= week_ago]
    st["states"] = [s for s, on in (
        ("spool.taking", bool(st.get("taking"))),
        ("spool.arriving", bool(st.get("waiting"))),
        ("spool.idle", not st.get("taking") and not st.get("waiting")),
        ("spool.abandoned", bool(st.get("abandoned"))),
        ("spool.abandoned_often", len(recent_abandoned) >= ABANDONED_OFTEN),
    ) if on]
    st["abandoned_week"] = len(recent_abandoned)
    return st


def window_words(window: str) -> tuple[str, str]:
    """The download hours in plain words (Chinese, English)."""
    window = (window or "").strip()
    if not window:
        return "全天都可以下载", "any time"
    start, end = window.split("-")
    return f"每天 {int(start)} 点到 {int(end)} 点", f"daily {int(start):02d}:00-{int(end):02d}:00"


def sync_view(sync: dict[str, Any] | None) -> dict[str, Any] | None:
    """The content sync's status (passed in by the uplink part) with the states that fit it.

    Every state shown is a true cause, and none contradicts another: a look that failed
    says why it failed (never "not looked yet" as well), and a silent line is "late" only
    when no failure explains it.
    """
    if not isinstance(sync, dict):
        return None
    view = dict(sync)
    run = sync.get("last_run") if isinstance(sync.get("last_run"), dict) else {}
    view["window_zh"], view["window_en"] = window_words(sync.get("window", ""))
    view["skipped_zh"], view["skipped_en"] = _SKIPPED_WORDS.get(run.get("skipped"), (str(run.get("skipped")), str(run.get("skipped"))))
    budget, used = sync.get("budget_bytes") or 0, sync.get("used_bytes") or 0
    view["used_percent"] = min(100, round(used * 100 / budget)) if budget else 0
    err = sync.get("last_error") if isinstance(sync.get("last_error"), dict) else None
    code = (err or {}).get("code")
    failure = err if code in FAILURE_STATES else None
    refused = err if err and err.get("id") and clock.now() - (err.get("at") or 0) <= REFUSED_SHOWN_S else None
    view["failure"], view["refused"] = failure, refused
    states: list[str] = []
    if not sync.get("enabled"):
        states.append("sync.off")
    else:
        if failure:
            states.append(f"sync.{code}")
        elif code == "stale_index":
            states.append("sync.stale_index")
        elif not run:
            states.append("sync.never")
        elif clock.now() - (run.get("at") or 0) > SYNC_LATE_RUNS * (sync.get("interval_s") or 3600):
            states.append("sync.late")
        elif run.get("skipped") == "no_index":
            states.append("sync.no_index")
        if refused:
            states.append("sync.refused")
        if budget and used >= budget:
            states.append("sync.budget_spent")
        elif not sync.get("in_window", True):
            states.append("sync.outside_window")
        if sync.get("pending") or sync.get("partial_files"):
            states.append("sync.waiting")
        if not states:
            states.append("sync.ok")
    view["states"] = states
    return view


def problems(*views: dict[str, Any] | None) -> list[State]:
    """The channel states that need the administrator (warning or fault), for the top of the page."""
    found = [CHANNEL_STATES[s] for v in views if v for s in v.get("states", ())]
    return [s for s in found if s.level in ("warning", "fault")]
