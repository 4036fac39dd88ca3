"""A point's reported facts in plain Chinese: each field's label and how its value is written.

Every field is data here (label, English label, format), so a page never shows a raw key,
a Unix timestamp, `None` or `False`. A value that is missing, or of a type a field cannot
have (rows stored before reports were checked at the door), is written "—".
"""

from __future__ import annotations

import json
import math
import time
from typing import Any, Callable, Iterator

DASH = "—"


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def size(v: Any) -> str:
    """Bytes in the units people read: 18.0 GB, 512 MB."""
    n = _number(v)
    if n is None or n < 0:
        return DASH
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


def _shown(v: Any, template: str) -> str:
    """The number in `template`, or "—" when there is none."""
    n = _number(v)
    return DASH if n is None else template.format(n)


def percent(v: Any) -> str:
    return _shown(v, "{:.0f}%")


def celsius(v: Any) -> str:
    return _shown(v, "{:.0f} °C")


def decimal(v: Any) -> str:
    return _shown(v, "{:.2f}")


def times(v: Any) -> str:
    return _shown(v, "{:.0f} 次")


def pieces(v: Any) -> str:
    return _shown(v, "{:.0f} 个")


def yes_no(v: Any) -> str:
    """是 / 否 for a flag; vcgencmd's throttling bits count as yes when any is set."""
    if isinstance(v, bool):
        return "是" if v else "否"
    if isinstance(v, int):
        return "否" if v == 0 else f"是 (0x{v:x})"
    return DASH


def moment(v: Any) -> str:
    """A Unix time as local date and time."""
    n = _number(v)
    if n is None or not 0 < n < 2**34:
        return DASH
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(n))


def duration(v: Any) -> str:
    """Seconds as days, hours and minutes: 3 天 4 小时."""
    n = _number(v)
    if n is None or n < 0:
        return DASH
    days, rest = divmod(int(n), 86400)
    hours, rest = divmod(rest, 3600)
    if days:
        return f"{days} 天 {hours} 小时"
    return f"{hours} 小时 {rest // 60} 分钟" if hours else f"{rest // 60} 分钟"


HEALTH_STATUS_ZH = {"ok": "正常", "warning": "需要注意", "fault": "故障"}


def health_status(v: Any) -> str:
    return HEALTH_STATUS_ZH.get(v, DASH) if isinstance(v, str) else DASH


def words(v: Any) -> str:
    if isinstance(v, list) and v:
        return "、".join(str(x) for x in v)
    return DASH


Field = tuple[str, str, str, Callable[[Any], str]]  # key, 中文, English, format

HEALTH: tuple[Field, ...] = (
    ("status", "总体状况", "overall", health_status),
    ("problems", "发现的问题", "problems", words),
    ("temp_c", "CPU 温度", "CPU temperature", celsius),
    ("throttled", "因过热或供电降速", "throttled", yes_no),
    ("under_voltage", "供电电压不足", "under-voltage", yes_no),
    ("cpu_percent", "CPU 使用", "CPU use", percent),
    ("load1", "负载（1 分钟）", "load, 1 min", decimal),
    ("memory_percent", "内存使用", "memory used", percent),
    ("disk_percent", "磁盘使用", "disk used", percent),
    ("disk_free", "磁盘剩余", "disk free", size),
    ("disk_total", "磁盘容量", "disk size", size),
    ("root_readonly", "系统盘只读", "system disk read-only", yes_no),
    ("ext4_errors", "文件系统错误", "file system errors", times),
    ("display_restarts", "屏幕程序重启", "screen restarts", times),
    ("display_failed", "屏幕程序故障", "screen failed", yes_no),
)

CONTENT: tuple[Field, ...] = (
    ("items", "节目数量", "items", pieces),
    ("bytes", "节目占用", "items' size", size),
    ("last_ingest", "最近一次收到内容", "last content received", moment),
    ("quarantined", "隔离的内容包", "packages in quarantine", pieces),
    ("free_bytes", "内容盘剩余", "store free", size),
    ("total_bytes", "内容盘容量", "store size", size),
)


# Keys of events' details (kiosk/uplink/report.py) that are not health or content readings.
DETAIL: tuple[Field, ...] = (
    ("previous_boot_id", "上次开机编号", "previous boot", lambda v: str(v) if v else DASH),
    ("uptime_s", "开机后运行", "up for", duration),
    ("now", "现在仍然", "still now", yes_no),
    ("restarts", "重启次数", "restarts", times),
    ("failed", "已停止", "failed", yes_no),
    ("what", "部位", "what", lambda v: {"sdcard": "存储卡"}.get(v, str(v)) if v is not None else DASH),
)


def _json_text(v: Any) -> str:
    return DASH if v is None else json.dumps(v, ensure_ascii=False)


def fact(block: Any, key: str) -> Any:
    """One value of a reported block, or None (a block stored unchecked may not be an object)."""
    return block.get(key) if isinstance(block, dict) else None


def rows(block: Any, fields: tuple[Field, ...]) -> Iterator[tuple[str, str, str]]:
    """(中文 label, English label, written value) for every field, "—" where unknown."""
    block = block if isinstance(block, dict) else {}
    for key, zh, en, fmt in fields:
        yield zh, en, fmt(block.get(key))


def detail(value: Any) -> str:
    """An event's detail of any JSON shape as one line: "温度: 81; 剩余: 2.0 GB" or the JSON itself."""
    if value is None or value == {} or value == []:
        return DASH
    if isinstance(value, dict):
        labels = {key: (zh, fmt) for key, zh, _en, fmt in HEALTH + CONTENT + DETAIL}
        parts = []
        for k, v in value.items():
            zh, fmt = labels.get(str(k), (str(k), None))
            if fmt is None:
                fmt = yes_no if isinstance(v, bool) else str if isinstance(v, str) else _json_text
            parts.append(f"{zh}: {fmt(v)}")
        return "; ".join(parts)
    if isinstance(value, str):
        return value
    return _json_text(value)
