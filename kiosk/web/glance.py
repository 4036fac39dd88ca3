"""The one-glance state at the top of the device page: every problem in plain words, with its button beside it.

The health signals (kiosk.device.health) and the channels (kiosk.web.channels) each
judge their own states; this joins their problems into one overall level and puts the
action that each sentence names right next to it, so the administrator never has to
look for the button further down.
"""

from __future__ import annotations

from typing import Any

from kiosk.device.health import ALL_WELL, LEVELS, State

# The button each state's advice names: a power action (a confirm page) or a section to open.
ACTIONS: dict[str, str] = {
    "memory.warning": "reboot",
    "readonly.fault": "reboot",
    "display.restarting": "restart-screens",
    "display.failed": "restart-screens",
    "disk.warning": "items",
    "disk.fault": "items",
    "temperature.fault": "shutdown",
}
ACTION_WORDS: dict[str, tuple[str, str]] = {
    "reboot": ("重启设备", "Reboot"),
    "restart-screens": ("重启屏幕", "Restart screens"),
    "shutdown": ("关机", "Shut down"),
    "items": ("删除不用的节目", "Delete programmes"),
}
_RANK = {level: i for i, level in enumerate(LEVELS)}


def glance(snap: dict[str, Any], channel_problems: list[State]) -> dict[str, Any]:
    """The overall level, the head sentence and every problem with its action (None when it needs no button)."""
    found = [{"state": p["state"], "level": p["level"], "zh": p["zh"], "en": p["en"]} for p in snap.get("problems", [])]
    found += [{"state": s.id, "level": s.level, "zh": s.zh, "en": s.en} for s in channel_problems]
    found.sort(key=lambda p: -_RANK[p["level"]])
    for p in found:
        p["action"] = ACTIONS.get(p["state"])
    level = found[0]["level"] if found else "ok"
    head = found[0] if found else {"state": ALL_WELL.id, "zh": ALL_WELL.zh, "en": ALL_WELL.en}
    return {"status": level, "state": head["state"], "message": head["zh"], "message_en": head["en"], "problems": found}
