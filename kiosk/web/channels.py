"""The device page's words for the content channels: the satellite spool and the telecom sync.

Pure functions from the channels' status dicts (kiosk.library.spool.status, and the
sync part of the uplink status the runner hands to the app) to what the page says;
docs/administrator.md lists every sentence.
"""

from __future__ import annotations

from typing import Any

from kiosk import clock

DAY = 86400

# Every sentence the two channel sections can say, by state (docs/administrator.md lists them).
CHANNEL_WORDS: dict[str, tuple[str, str]] = {
    "spool.idle": ("现在没有正在接收的卫星节目包。", "No package is arriving by satellite now."),
    "spool.arriving": ("卫星正在送来节目包，收齐后会自动上架，不用管。",
                       "Packages are arriving by satellite; each is published by itself once complete. Nothing to do."),
    "spool.taking": ("正在上架一个收齐的节目包，请稍等。", "A complete package is being published now."),
    "spool.abandoned": ("下面这些节目包过了规定时间还没收齐，已经移到“被拒收的节目包”里，没有删除。"
                        "一般不用管：卫星会重播，下次收齐就会自动上架。如果经常出现，请打电话告诉县中心。",
                        "These packages were still incomplete after the time allowed and were moved to quarantine, not deleted. "
                        "Usually nothing to do: the satellite repeats its programmes and a complete copy is published by itself. "
                        "If it keeps happening, call the county centre."),
    "spool.abandoned_often": ("最近 7 天有好几个节目包没收齐：请打电话告诉县中心，可能要检查卫星天线或接收器。",
                              "Several packages arrived incomplete in the last 7 days: call the county centre; the dish or receiver may need a look."),
    "sync.off": ("没有开启网络下载节目（没有设置县中心地址，或者已关闭）。",
                 "Downloading programmes over the line is off (no county centre set, or switched off)."),
    "sync.never": ("还没有查看过县中心的节目目录，设备会定时自动查看。", "The centre's list has not been read yet; the box looks at regular times by itself."),
    "sync.ok": ("网络下载正常，不用管。", "Downloading over the line works; nothing to do."),
    "sync.waiting": ("还有节目包等着下载，会在下载时段内自动下载，下了一半的会接着下载。",
                     "Packages wait to be downloaded; this happens by itself within the download hours, and half-done downloads continue."),
    "sync.budget_spent": ("今天的下载流量已经用完，明天会接着下载，已经下载的部分不会丢。",
                          "Today's download allowance is used up; downloading continues tomorrow and nothing downloaded is lost."),
    "sync.outside_window": ("现在不在下载时段，到时间会自动下载。", "Outside the download hours; downloading starts by itself when they come."),
    "sync.late": ("很久没有看到县中心的节目目录：请检查网线或上网卡；卫星和U盘送来的节目不受影响。",
                  "The centre's list has not been read for a long time: check the line or the mobile data card; satellite and USB programmes are not affected."),
    "sync.stale_index": ("县中心的节目目录比上次的还旧，没有采用。如果一直这样，请告诉县中心。",
                         "The centre's list was older than the last one, so it was not used. If it keeps happening, tell the county centre."),
    "sync.failed": ("上一次连县中心没有成功，过一会儿会自动再试。如果一直这样，请检查网线或上网卡。",
                    "The last look at the centre failed; it will try again by itself. If it keeps happening, check the line or the mobile data card."),
    "sync.refused": ("有一个下载的节目包没有通过检查，没有上架。一般不用管；反复出现请告诉县中心。",
                     "A downloaded package did not pass the checks and was not published. Usually nothing to do; tell the county centre if it keeps happening."),
}
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
    """The content sync's status (passed in by the uplink part) with the sentences that fit it."""
    if not isinstance(sync, dict):
        return None
    view = dict(sync)
    run = sync.get("last_run") or {}
    view["window_zh"], view["window_en"] = window_words(sync.get("window", ""))
    view["skipped_zh"], view["skipped_en"] = _SKIPPED_WORDS.get(run.get("skipped"), (str(run.get("skipped")), str(run.get("skipped"))))
    budget, used = sync.get("budget_bytes") or 0, sync.get("used_bytes") or 0
    view["used_percent"] = min(100, round(used * 100 / budget)) if budget else 0
    states: list[str] = []
    if not sync.get("enabled"):
        states.append("sync.off")
    else:
        late_after = SYNC_LATE_RUNS * (sync.get("interval_s") or 3600)
        if not run:
            states.append("sync.never")
        elif clock.now() - (run.get("at") or 0) > late_after:
            states.append("sync.late")
        if budget and used >= budget:
            states.append("sync.budget_spent")
        elif not sync.get("in_window", True):
            states.append("sync.outside_window")
        if sync.get("pending") or sync.get("partial_files"):
            states.append("sync.waiting")
        if not states:
            states.append("sync.ok")
    err = sync.get("last_error")
    if err:
        code = err.get("code")
        states.append("sync.stale_index" if code == "stale_index" else "sync.failed" if code == "failed" else "sync.refused")
    view["states"] = states
    return view
