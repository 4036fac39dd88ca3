"""Composing heartbeat reports and events: what a report carries, kept under 1 KiB gzipped.

The fields are listed in kiosk/wire.py. Health comes from the device layer's
snapshot (judged readings), content from Library.summary(), usage and
villagers' requests from the library's usage and wishes stores. Anything that
cannot be read is None or left out: a report is never held back because one
part of the box is broken.
"""

from __future__ import annotations

import ctypes
import gzip
import json
import logging
import sys
from typing import Any

from kiosk import clock, update
from kiosk.config import Config
from kiosk.library import pointkey

log = logging.getLogger(__name__)

MAX_REPORT_BYTES = 1000  # gzipped, with room under the 1 KiB every report must stay below
MAX_REQUEST_CHARS = 200

# Readings the centre charts and judges; the rest of a snapshot stays on the box.
HEALTH_FIELDS = (
    "temp_c", "throttled", "cpu_percent", "load1", "memory_percent", "disk_percent", "disk_free",
    "disk_total", "root_readonly", "display_restarts", "display_failed", "ext4_errors",
)
CONTENT_FIELDS = ("items", "bytes", "last_ingest", "quarantined", "free_bytes", "total_bytes")

_TIME_ERROR = 5  # adjtimex(2): the kernel's clock is not synchronised


def clock_synced() -> bool | None:
    """Whether the kernel's clock is synchronised (NTP), from adjtimex(2); None when unknown.

    Hand-written with ctypes: it is the call `timedatectl` itself makes, and it
    needs no D-Bus, no subprocess and no privilege (modes=0 only reads).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        buf = ctypes.create_string_buffer(512)  # larger than struct timex on every architecture
        state = ctypes.CDLL(None, use_errno=True).adjtimex(buf)
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != _TIME_ERROR


def _round(value: Any) -> Any:
    return round(value, 1) if isinstance(value, float) else value


def health(snapshot: dict[str, Any] | None) -> dict[str, Any]:
    """The compact health block of a report from a device health snapshot."""
    if not snapshot:
        return {}
    readings = snapshot.get("readings") or {}
    out = {k: _round(readings.get(k)) for k in HEALTH_FIELDS if readings.get(k) is not None}
    uv_now, uv_boot = readings.get("under_voltage_now"), readings.get("under_voltage_since_boot")
    if uv_now is not None or uv_boot is not None:
        out["under_voltage"] = bool(uv_now or uv_boot)
    out["status"] = snapshot.get("status")
    problems = [p.get("state") for p in snapshot.get("problems") or [] if p.get("state")]
    if problems:
        out["problems"] = problems[:8]
    return out


def content(summary: dict[str, Any] | None) -> dict[str, Any]:
    """The content block of a report from Library.summary()."""
    return {k: _round(summary[k]) for k in CONTENT_FIELDS if summary and summary.get(k) is not None}


def usage(totals: dict[str, Any] | None, until: float) -> dict[str, Any]:
    """The usage block: totals since the previous beat, with the span they cover."""
    if not totals:
        return {}
    out = {k: totals[k] for k in ("since", "opens", "plays", "seconds", "by_category", "top_items", "local") if k in totals}
    out["until"] = until
    return out


def base(cfg: Config, kind: str, snapshot: dict[str, Any] | None, synced: bool | None) -> dict[str, Any]:
    """The fields every report carries."""
    readings = (snapshot or {}).get("readings") or {}
    return {
        "v": 1,
        "kind": kind,
        "point_id": cfg.point.id,
        "seq": 0,  # set by the outbox
        "box_time": round(clock.now(), 3),
        "clock_synced": synced,
        "boot_id": readings.get("boot_id"),
        "uptime_s": _round(readings.get("uptime_s")),
        "software": _software(cfg),
    }


def _software(cfg: Config) -> dict[str, str]:
    """The running release and the update state (the centre shows them and halts a rollout on them)."""
    sw = update.status(cfg)
    return {"version": sw["version"], "state": sw["state"]}


def beat(cfg: Config, snapshot: dict[str, Any] | None, summary: dict[str, Any] | None,
         usage_block: dict[str, Any] | None, synced: bool | None) -> dict[str, Any]:
    """A routine heartbeat report (without requests; see `add_requests`)."""
    report = base(cfg, "beat", snapshot, synced)
    report["health"] = health(snapshot)
    report["content"] = content(summary)
    report["usage"] = usage_block or {}
    key = pointkey.public_key_text(cfg)
    if key:  # the centre checks this point's local packages against it
        report["point_key"] = key
    return report


def event(cfg: Config, name: str, detail: dict[str, Any], snapshot: dict[str, Any] | None, synced: bool | None) -> dict[str, Any]:
    """A report of something that just happened (a boot, under-voltage, a full disk...)."""
    report = base(cfg, "event", snapshot, synced)
    report["event"] = name
    report["detail"] = detail
    report["health"] = health(snapshot)
    return report


def gzipped_size(report: dict[str, Any]) -> int:
    """Bytes of the report alone once gzipped, as the wire carries it."""
    raw = json.dumps(report, separators=(",", ":"), ensure_ascii=False).encode()
    return len(gzip.compress(raw, compresslevel=6, mtime=0))


def add_requests(report: dict[str, Any], pending: list[dict[str, Any]]) -> list[int]:
    """Put as many waiting requests into `report` as fit under 1 KiB; return their ids.

    At least the oldest waiting request always goes (details of the beat give way,
    then the end of a very long text), so no request can be stuck behind its size.
    """
    carried: list[dict[str, Any]] = []
    for wish in pending:
        entry = {"id": int(wish["id"]), "at": _round(wish.get("ts")), "topic": wish.get("category") or "other",
                 "text": (wish.get("words") or "")[:MAX_REQUEST_CHARS]}
        report["requests"] = carried + [entry]
        if gzipped_size(report) > MAX_REPORT_BYTES and carried:
            break
        carried.append(entry)
        if gzipped_size(report) > MAX_REPORT_BYTES:  # the first one alone is too big
            shrink(report)
            while gzipped_size(report) > MAX_REPORT_BYTES and entry["text"]:
                entry["text"] = entry["text"][: len(entry["text"]) * 3 // 4]
            break
    report["requests"] = carried
    if not carried:
        report.pop("requests")
    return [c["id"] for c in carried]


def shrink(report: dict[str, Any]) -> dict[str, Any]:
    """Drop the least needed details until the report fits under 1 KiB."""
    steps = (
        lambda r: r.get("usage", {}).pop("top_items", None),
        lambda r: r.get("health", {}).pop("problems", None),
        lambda r: r["detail"].clear() if isinstance(r.get("detail"), dict) else None,
    )
    for step in steps:
        if gzipped_size(report) <= MAX_REPORT_BYTES:
            break
        step(report)
    return report


def conditions(snapshot: dict[str, Any] | None, cfg: Config) -> dict[str, dict[str, Any]]:
    """The event-worthy conditions now, each with its detail: under_voltage, disk_full, ..."""
    r = (snapshot or {}).get("readings") or {}
    found: dict[str, dict[str, Any]] = {}
    if r.get("under_voltage_now") or r.get("under_voltage_since_boot"):
        found["under_voltage"] = {"now": bool(r.get("under_voltage_now")), "throttled": r.get("throttled")}
    if r.get("temp_c") is not None and r["temp_c"] >= cfg.health.temp_fault_c:
        found["overheat"] = {"temp_c": _round(r["temp_c"])}
    if r.get("disk_percent") is not None and r["disk_percent"] >= cfg.health.disk_warning_percent:
        found["disk_full"] = {"disk_percent": _round(r["disk_percent"]), "disk_free": r.get("disk_free")}
    if r.get("root_readonly"):
        found["read_only_root"] = {}
    restarts_warning = getattr(cfg.health, "display_restarts_warning", 3)
    if r.get("display_failed") or (r.get("display_restarts") or 0) >= restarts_warning:
        found["display_restarts"] = {"restarts": r.get("display_restarts"), "failed": bool(r.get("display_failed"))}
    if (r.get("ext4_errors") or 0) > 0:
        found["fault"] = {"what": "sdcard", "ext4_errors": r.get("ext4_errors")}
    return found
