"""A point's status, derived when asked from the centre's own receive time (never stored).

- `never`: nothing has ever arrived from the point.
- `online`: the last report arrived within two heartbeat intervals (one missed beat is normal
  on a rural line).
- `late`: more than two heartbeat intervals, but less than `centre.offline_after_s`.
- `offline`: nothing has arrived for `centre.offline_after_s`.

The box's clock is never used: a Pi has no real-time clock.

Alerts: a point that is offline raises an alert, except during the first offline period
after the centre itself started. While the centre was down nothing could arrive, so every
point would look offline the moment it comes back; the grace gives them one
`offline_after_s` to report again.
"""

from __future__ import annotations

from dataclasses import dataclass

STATUSES = ("never", "online", "late", "offline")
COLOURS = {"never": "#8a8a8a", "online": "#1e8e3e", "late": "#e8a100", "offline": "#c5221f"}
LABELS_ZH = {"never": "从未联系", "online": "在线", "late": "迟到", "offline": "离线"}
# A point's software update state, as its heartbeats report it (kiosk/update/state.py).
SOFTWARE_ZH = {"current": "正常", "installing": "安装中", "trying": "试运行", "rolled_back": "已退回旧版", "failed": "没装上"}
SOFTWARE_EN = {"current": "current", "installing": "installing", "trying": "on trial", "rolled_back": "rolled back",
               "failed": "install failed"}
EVENTS_ZH = {
    "boot": "开机", "under_voltage": "供电电压不足", "overheat": "过热", "disk_full": "磁盘快满",
    "read_only_root": "系统盘只读", "display_restarts": "屏幕反复重启", "fault": "故障",
}
LABELS_EN = {"never": "never seen", "online": "online", "late": "late", "offline": "offline"}


@dataclass(frozen=True)
class Rules:
    """The thresholds status is judged by, and when the centre started."""

    heartbeat_interval_s: float
    offline_after_s: float
    started_at: float

    @property
    def late_after_s(self) -> float:
        """A point is late after two intervals (never later than offline)."""
        return min(2 * self.heartbeat_interval_s, self.offline_after_s)

    def cutoffs(self, now: float) -> tuple[float, float]:
        """(late, offline): a point last seen at or before these moments is late, or offline.

        The database counts and filters by the same two moments (see summary.py), so a
        page and a count never disagree about a point on the edge.
        """
        return now - self.late_after_s, now - self.offline_after_s

    def status(self, last_seen: float | None, now: float) -> str:
        """never, online, late or offline."""
        if last_seen is None:
            return "never"
        late, offline = self.cutoffs(now)
        if last_seen <= offline:
            return "offline"
        if last_seen <= late:
            return "late"
        return "online"

    def in_grace(self, now: float) -> bool:
        """True during the first offline period after the centre started (no alerts)."""
        return now - self.started_at < self.offline_after_s

    def alert(self, last_seen: float | None, now: float) -> bool:
        """True when an offline point should raise an alert."""
        return self.status(last_seen, now) == "offline" and not self.in_grace(now)
