"""The plain words for software update states and outcomes: the device page and `kiosk status` read them here.

One table, like kiosk/device/health.py's STATES: each state with its level, its Chinese
and English sentence (what it means, and what to do when there is something to do).
docs/administrator.md lists them; a test renders every one.
"""

from __future__ import annotations

from typing import Any

from kiosk.device.health import State

_STATES = (
    State("software.current", "ok", "软件是最新收到的版本，运行正常，不用管。",
          "The software runs the newest release received; nothing to do."),
    State("software.installing", "ok", "正在安装新版软件，装好后会自动切换，屏幕会黑几秒钟，不用管。",
          "A new software release is being installed; the box switches to it by itself and the screens go dark for a few seconds. Nothing to do."),
    State("software.trying", "ok", "刚换上新版软件，正在试运行；如果不正常，会自动换回原来的版本，不用管。",
          "A new software release is on trial; if it is not healthy, the box goes back to the one before by itself. Nothing to do."),
    State("software.rolled_back", "warning", "新版软件试运行不正常，已经自动换回原来的版本，节目照常播放。请打电话告诉县中心（原因见下面）。",
          "A new software release was not healthy and the box went back to the one before by itself; programmes play as usual. Call the county centre (the reason is below)."),
    State("software.failed", "warning", "新版软件没有装上，还在用原来的版本，节目照常播放。请打电话告诉县中心（原因见下面）。",
          "A new software release could not be installed; the box still runs the one before and programmes play as usual. Call the county centre (the reason is below)."),
)
STATES: dict[str, State] = {s.id.split(".", 1)[1]: s for s in _STATES}

# The last update's outcome, as the page names it.
OUTCOMES = {
    "installing": ("安装中", "installing"),
    "trying": ("试运行中", "on trial"),
    "kept": ("已换上", "kept"),
    "rolled_back": ("已换回原来的版本", "rolled back"),
    "failed": ("没有装上", "install failed"),
    "interrupted": ("安装被打断（停电或重启），会重新安装", "interrupted (power cut or restart); it installs again"),
}


def view(status: dict[str, Any]) -> dict[str, Any]:
    """The device page's software section from kiosk.update.status()."""
    state = STATES.get(status.get("state") or "", STATES["current"])
    last = status.get("last") or None
    words = OUTCOMES.get((last or {}).get("outcome") or "", ("", ""))
    return {
        "version": status.get("version"),
        "state": state.id.split(".", 1)[1],
        "level": state.level,
        "zh": state.zh,
        "en": state.en,
        "last": last,
        "last_zh": words[0],
        "last_en": words[1],
    }
