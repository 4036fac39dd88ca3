"""Judging health: each signal ok / warning / fault, in plain words with the action.

Thresholds come from the config section `health`. Every state a signal can be
in is declared once in STATES with its Chinese and English sentence; the page,
`kiosk status`, docs/administrator.md and the heartbeat all use these.
Status is derived from the readings when asked, never stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from kiosk import clock
from kiosk.config import Config
from kiosk.device import Hardware, Readings

LEVELS = ("ok", "unknown", "warning", "fault")  # in rising order of concern
_RANK = {level: i for i, level in enumerate(LEVELS)}


@dataclass(frozen=True)
class State:
    """One state of one signal, with what the administrator should do."""

    id: str
    level: str
    zh: str
    en: str

    @property
    def signal(self) -> str:
        return self.id.split(".", 1)[0]


# The signals in the order the page shows them: (key, Chinese title, English title).
SIGNALS = (
    ("temperature", "温度", "Temperature"),
    ("power", "电源", "Power supply"),
    ("disk", "存储空间", "Storage space"),
    ("memory", "内存", "Memory"),
    ("sdcard", "存储卡错误", "SD card errors"),
    ("readonly", "存储卡写入", "SD card writable"),
    ("display", "触摸屏", "Touch screen"),
    ("uplink", "县中心联系", "County centre link"),
)

_STATES = (
    State("temperature.ok", "ok", "温度正常", "Temperature is normal"),
    State("temperature.warning", "warning", "温度偏高：请清理设备周围的杂物，保持通风，不要让太阳直晒",
          "Running hot: clear the space around the box, keep it ventilated and out of direct sun"),
    State("temperature.throttled", "warning", "设备太热，已自动降速：请改善通风，必要时加装散热风扇",
          "Too hot, the box has slowed itself down: improve ventilation, add a cooling fan if needed"),
    State("temperature.fault", "fault", "温度过高：请马上改善通风；如仍过热，请关机降温后再开",
          "Overheating: improve ventilation now; if it stays hot, shut down to cool and start again"),
    State("temperature.unknown", "unknown", "无法读取温度", "Temperature cannot be read"),
    State("power.ok", "ok", "电源正常", "Power supply is fine"),
    State("power.under_voltage_since_boot", "warning", "开机以来电源电压曾经不足：请检查电源线，最好换用 5V 3A 电源",
          "The voltage dropped since start-up: check the cable, better use a 5V 3A power supply"),
    State("power.under_voltage_now", "fault", "电源电压不足：请换用 5V 3A 电源",
          "Power supply voltage too low: use a 5V 3A power supply"),
    State("power.unknown", "unknown", "无法读取电源状态", "Power supply state cannot be read"),
    State("disk.ok", "ok", "存储空间充足", "Enough storage space"),
    State("disk.warning", "warning", "存储空间快满了：请点旁边的“删除不用的节目”",
          "Storage is nearly full: press \"Delete programmes\" beside this"),
    State("disk.fault", "fault", "存储空间已满，新节目收不进来：请马上删除不用的节目",
          "Storage is full, new programmes cannot arrive: delete programmes no longer needed now"),
    State("disk.unknown", "unknown", "无法读取存储空间", "Storage space cannot be read"),
    State("memory.ok", "ok", "内存正常", "Memory is fine"),
    State("memory.warning", "warning", "内存紧张：请点旁边的“重启设备”", "Memory is short: press \"Reboot\" beside this"),
    State("memory.unknown", "unknown", "无法读取内存", "Memory cannot be read"),
    State("sdcard.ok", "ok", "存储卡没有错误", "No SD card errors"),
    State("sdcard.errors", "fault", "存储卡出现错误，可能快坏了：请联系县中心更换存储卡",
          "The SD card reports errors and may be failing: ask the county centre for a new card"),
    State("sdcard.unknown", "unknown", "无法检查存储卡错误", "SD card errors cannot be checked"),
    State("readonly.ok", "ok", "存储卡可以正常写入", "The SD card is writable"),
    State("readonly.fault", "fault", "存储卡变成只读，新节目无法保存：请重启设备；仍然如此，请联系县中心更换存储卡",
          "The SD card became read-only, nothing new can be saved: reboot; if it stays so, ask for a new card"),
    State("readonly.unknown", "unknown", "无法检查存储卡是否只读", "Cannot tell whether the SD card is read-only"),
    State("display.ok", "ok", "触摸屏程序正常", "The touch screen is running"),
    State("display.restarting", "warning", "触摸屏程序反复重启：请点“重启屏幕”；仍不好，请重启设备",
          "The touch screen keeps restarting: press \"Restart screens\"; if that does not help, reboot"),
    State("display.failed", "fault", "触摸屏程序已停止：请点“重启屏幕”；仍黑屏，请重启设备",
          "The touch screen has stopped: press \"Restart screens\"; if it stays black, reboot"),
    State("display.unknown", "unknown", "没有检测到触摸屏程序", "No touch screen service found"),
    State("uplink.off", "ok", "本点不向县中心报告（没有设置县中心地址）",
          "This point does not report to the county centre (no centre address set)"),
    State("uplink.ok", "ok", "与县中心联系正常", "Reports reach the county centre"),
    State("uplink.starting", "ok", "正在联系县中心", "Contacting the county centre"),
    State("uplink.late", "warning", "很久没有联系上县中心：请检查网线或上网卡；节目照常可看，报告会在恢复后补发",
          "No contact with the county centre for a long time: check the line; programmes still work and reports catch up later"),
    State("uplink.unknown", "unknown", "无法得知与县中心的联系情况", "The link to the county centre cannot be checked"),
)
STATES: dict[str, State] = {s.id: s for s in _STATES}

ALL_WELL = State("overall.ok", "ok", "一切正常，不需要做什么", "All is well, nothing to do")


def pick(d: dict[str, Any], *names: str) -> Any:
    """The first of `names` that `d` has a value for (uplink_status keys are read leniently)."""
    for n in names:
        if d.get(n) is not None:
            return d[n]
    return None


def _temperature(r: Readings, cfg: Config) -> str:
    h = cfg.health
    if r.temp_c is not None and r.temp_c >= h.temp_fault_c:
        return "temperature.fault"
    if r.throttled_now and not r.under_voltage_now:
        return "temperature.throttled"
    if (r.temp_c is not None and r.temp_c >= h.temp_warning_c) or r.soft_temp_limit_now:
        return "temperature.warning"
    return "temperature.unknown" if r.temp_c is None else "temperature.ok"


def _power(r: Readings, cfg: Config) -> str:
    if r.under_voltage_now:
        return "power.under_voltage_now"
    if r.under_voltage_since_boot:
        return "power.under_voltage_since_boot"
    return "power.unknown" if r.under_voltage_now is None and r.under_voltage_since_boot is None else "power.ok"


def _disk(r: Readings, cfg: Config) -> str:
    if r.disk_percent is None:
        return "disk.unknown"
    if r.disk_percent >= cfg.health.disk_fault_percent:
        return "disk.fault"
    return "disk.warning" if r.disk_percent >= cfg.health.disk_warning_percent else "disk.ok"


def _memory(r: Readings, cfg: Config) -> str:
    if r.memory_percent is None:
        return "memory.unknown"
    return "memory.warning" if r.memory_percent >= cfg.health.memory_warning_percent else "memory.ok"


def _sdcard(r: Readings, cfg: Config) -> str:
    if r.ext4_errors is None:
        return "sdcard.unknown"
    return "sdcard.errors" if r.ext4_errors > 0 else "sdcard.ok"


def _readonly(r: Readings, cfg: Config) -> str:
    if r.root_readonly is None:
        return "readonly.unknown"
    return "readonly.fault" if r.root_readonly else "readonly.ok"


def _display(r: Readings, cfg: Config) -> str:
    if r.display_failed:
        return "display.failed"
    if r.display_restarts is None:
        return "display.unknown"
    return "display.restarting" if r.display_restarts >= cfg.health.display_restarts_warning else "display.ok"


def _uplink(r: Readings, cfg: Config, uplink: dict[str, Any] | None) -> str:
    if not cfg.centre.url:
        return "uplink.off"
    if not uplink:
        return "uplink.unknown"
    last = pick(uplink, "last_sent", "last_sent_at", "last_ack")
    late_after = cfg.health.uplink_warning_s
    if last is None:
        young = r.uptime_s is not None and r.uptime_s < late_after
        return "uplink.starting" if young else "uplink.late"
    return "uplink.late" if clock.now() - float(last) > late_after else "uplink.ok"


_JUDGES: dict[str, Callable[[Readings, Config], str]] = {
    "temperature": _temperature,
    "power": _power,
    "disk": _disk,
    "memory": _memory,
    "sdcard": _sdcard,
    "readonly": _readonly,
    "display": _display,
}


def _value(key: str, r: Readings, uplink: dict[str, Any] | None) -> str:
    """The figure shown on a signal's card, in local form."""
    if key == "temperature" and r.temp_c is not None:
        return f"{r.temp_c:.0f} °C"
    if key == "disk" and r.disk_percent is not None:
        free = f"，剩余 {r.disk_free / 2**30:.1f} GB" if r.disk_free is not None else ""
        return f"已用 {r.disk_percent:.0f}%{free}"
    if key == "memory" and r.memory_percent is not None:
        return f"已用 {r.memory_percent:.0f}%"
    if key == "sdcard" and r.ext4_errors is not None:
        return f"{r.ext4_errors} 个错误"
    if key == "display" and r.display_restarts is not None:
        return f"重启 {r.display_restarts} 次"
    if key == "uplink" and uplink:
        depth = pick(uplink, "outbox", "outbox_depth", "pending")
        return f"待发报告 {depth} 份" if depth is not None else ""
    return ""


def judge(readings: Readings, cfg: Config, uplink: dict[str, Any] | None = None) -> dict[str, State]:
    """The state of every signal, keyed by signal, in page order."""
    out = {key: STATES[fn(readings, cfg)] for key, fn in _JUDGES.items()}
    out["uplink"] = STATES[_uplink(readings, cfg, uplink)]
    return {key: out[key] for key, _, _ in SIGNALS}


def worst(states: dict[str, State]) -> str:
    """The overall level: fault, warning or ok (unknown readings do not raise an alarm)."""
    top = max((_RANK[s.level] for s in states.values()), default=0)
    return {3: "fault", 2: "warning"}.get(top, "ok")


def snapshot(hardware: Hardware, cfg: Config, uplink: dict[str, Any] | None = None) -> dict[str, Any]:
    """Health now, judged: used by GET /api/v1/health, `kiosk status` and heartbeats."""
    return assess(hardware.read(), cfg, uplink, hardware=hardware.name)


def assess(readings: Readings, cfg: Config, uplink: dict[str, Any] | None = None, hardware: str = "") -> dict[str, Any]:
    """Judge readings already taken (see snapshot())."""
    states = judge(readings, cfg, uplink)
    level = worst(states)
    problems = sorted((s for s in states.values() if s.level in ("warning", "fault")), key=lambda s: -_RANK[s.level])
    head = problems[0] if problems else ALL_WELL
    titles = {key: (zh, en) for key, zh, en in SIGNALS}
    return {
        "status": level,
        "state": head.id,
        "message": head.zh,
        "message_en": head.en,
        "problems": [{"signal": s.signal, "state": s.id, "level": s.level, "zh": s.zh, "en": s.en} for s in problems],
        "signals": {
            key: {
                "level": s.level, "state": s.id, "zh": s.zh, "en": s.en,
                "title": titles[key][0], "title_en": titles[key][1], "value": _value(key, readings, uplink),
            }
            for key, s in states.items()
        },
        "readings": readings.to_dict(),
        "hardware": hardware,
        "at": clock.now(),
    }


def led_state(snap: dict[str, Any], importing: bool = False) -> str:
    """What the status LED shows: a fault outranks an import, which outranks all-well."""
    if snap["status"] == "fault":
        return "fault"
    return "importing" if importing else "ok"
