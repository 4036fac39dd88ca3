"""Heartbeats to the county centre: compose a report, keep it in the outbox, send what waits.

`heartbeat_job(cfg, library, hardware)` is the scheduler's periodic job. Each run
writes the events that happened (a new boot, under-voltage, a nearly full disk,
a read-only root, the display restarting in a loop) and one routine beat into
the outbox, then sends the outbox when centre.url is set. `status(cfg)` is what
the device page shows; `report_event()` lets other parts of the box record an
event at once. See docs/uplink.md.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any, Callable

from kiosk import __version__, clock
from kiosk.config import Config
from kiosk.uplink import report
from kiosk.uplink.client import CentreClient, Round, drain
from kiosk.uplink.outbox import Outbox, outbox_path

log = logging.getLogger(__name__)

THIN_EVERY_S = 3600.0

# The backlog being sent right now, for the device page's progress (this process only).
_sending: dict[str, Any] = {}

__all__ = ["heartbeat_job", "status", "report_event", "news_for_centre", "export_outbox", "write_reports", "Outbox", "CentreClient", "drain"]


def _snapshot(cfg: Config, hardware: Any, uplink: dict[str, Any] | None) -> dict[str, Any] | None:
    """The device layer's judged health, or None when the hardware cannot be read."""
    if hardware is None:
        return None
    try:
        from kiosk.device import health

        return health.snapshot(hardware, cfg, uplink)
    except Exception as e:  # a broken sensor must not silence the heartbeat
        log.warning("event=heartbeat_health_failed error=%r", e)
        return None


def _summary(library: Any) -> dict[str, Any] | None:
    try:
        return library.summary() if library is not None else None
    except Exception as e:
        log.warning("event=heartbeat_content_failed error=%r", e)
        return None


def _usage(cfg: Config, since: float) -> dict[str, Any] | None:
    try:
        from kiosk.library.usage import Usage

        u = Usage(cfg)
        try:
            return u.since(since)
        finally:
            u.close()
    except Exception as e:
        log.warning("event=heartbeat_usage_failed error=%r", e)
        return None


def _wishes(cfg: Config) -> Any:
    try:
        from kiosk.library.wishes import Wishes

        return Wishes(cfg)
    except Exception as e:
        log.warning("event=heartbeat_wishes_failed error=%r", e)
        return None


def write_reports(cfg: Config, box: Outbox, library: Any, hardware: Any) -> list[int]:
    """Compose this round's events and beat and store them in the outbox; return their seqs."""
    now = clock.now()
    snap = _snapshot(cfg, hardware, _status_of(cfg, box))
    synced = report.clock_synced()
    readings = (snap or {}).get("readings") or {}
    reports: list[dict[str, Any]] = []

    boot_id = readings.get("boot_id")
    previous = box.state("conditions", {}) or {}
    if boot_id and boot_id != box.state("boot_id"):
        reports.append(report.event(cfg, "boot", {"previous_boot_id": box.state("boot_id"), "uptime_s": readings.get("uptime_s")}, snap, synced))
        previous = {}  # conditions are reported afresh after every boot
    current = report.conditions(snap, cfg)
    for name, detail in current.items():
        if name not in previous:
            reports.append(report.event(cfg, name, {**detail, "active": True}, snap, synced))
    for name in previous:
        if name not in current:
            reports.append(report.event(cfg, name, {"active": False}, snap, synced))

    since = box.state("usage_since") or 0.0
    since = min(float(since), now)  # a clock that went back must not hide new plays
    beat = report.beat(cfg, snap, _summary(library), report.usage(_usage(cfg, since), now), synced)
    wishes = _wishes(cfg)
    carried: dict[int, list[int]] = {}
    if wishes is not None:
        try:
            riding = box.carried_ids()
            pending = [w for w in wishes.pending(limit=len(riding) + 50) if w["id"] not in riding]
            ids = report.add_requests(beat, pending)
            if ids:
                carried[len(reports)] = ids
        finally:
            wishes.close()
    report.shrink(beat)
    reports.append(beat)
    return box.add(reports, state={"boot_id": boot_id, "conditions": current, "usage_since": now, "last_report_at": now},
                   carried=carried)


def _mark_requests_sent(cfg: Config, box: Outbox) -> int:
    """Requests whose report the centre acknowledged are marked sent (safe to repeat after a crash)."""
    done = box.acknowledged_requests()
    if not done:
        return 0
    wishes = _wishes(cfg)
    if wishes is None:
        return 0
    try:
        wishes.mark_sent(done)
    finally:
        wishes.close()
    box.forget_carried(done)
    return len(done)


def heartbeat_job(
    cfg: Config,
    library: Any,
    hardware: Any,
    *,
    client: CentreClient | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rand: Callable[[], float] = random.random,
    stop: Any = None,
) -> dict[str, Any]:
    """Write this round's reports into the outbox and send what waits (when centre.url is set)."""
    with Outbox.of(cfg) as box:
        seqs = write_reports(cfg, box, library, hardware)
        box.release_held(__version__)
        last_thin = box.state("last_thin") or 0.0
        if not 0 <= clock.now() - float(last_thin) < THIN_EVERY_S:
            box.thin()
            box.set_state(last_thin=clock.now())
        rnd = Round(stopped="no uplink")
        if cfg.centre.url:
            def progress(done: int, total: int) -> None:
                _sending.update(done=done, total=total, at=clock.now())

            try:
                rnd = drain(cfg, box, newest=seqs, client=client, sleep=sleep, rand=rand, stop=stop, progress=progress)
            finally:
                _sending.clear()
        _mark_requests_sent(cfg, box)
        depth = box.depth()
    if rnd.uploads:
        from kiosk.library.local import LocalBook

        with LocalBook(cfg) as book:
            book.apply_decisions(rnd.uploads)
    log.info("job=heartbeat written=%d sent=%d acked=%d outbox=%d", len(seqs), rnd.sent, rnd.acked, depth)
    return {"written": seqs, "sent": rnd.sent, "acked": rnd.acked, "outbox": depth, "stopped": rnd.stopped}


def export_outbox(cfg: Config, folder: Any, library: Any = None, hardware: Any = None,
                  progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """`kiosk uplink export DIR`: a fresh beat if the last is old, then every waiting report to DIR."""
    from pathlib import Path

    from kiosk.uplink.export import export

    def compose(box: Outbox) -> None:
        last = box.state("last_report_at")
        if last is None or not 0 <= clock.now() - float(last) < cfg.centre.heartbeat_interval_s:
            write_reports(cfg, box, library, hardware)

    from kiosk.uplink.export import export_local

    summary = export(cfg, Path(folder), compose=compose, progress=progress)
    with Outbox.of(cfg) as box:
        _mark_requests_sent(cfg, box)
    summary.update(export_local(cfg, Path(folder)))
    return summary


def news_for_centre(cfg: Config, snapshot: dict[str, Any] | None) -> bool:
    """Whether this health snapshot holds an event the outbox has not recorded (a boot, a new condition)."""
    if snapshot is None or not outbox_path(cfg).exists():
        return False
    readings = snapshot.get("readings") or {}
    with Outbox.of(cfg) as box:
        if readings.get("boot_id") and readings["boot_id"] != box.state("boot_id"):
            return True
        known = box.state("conditions", {}) or {}
    return any(name not in known for name in report.conditions(snapshot, cfg))


def report_event(cfg: Config, name: str, detail: dict[str, Any] | None = None, hardware: Any = None) -> int:
    """Record an event in the outbox now; the next heartbeat sends it. Returns its seq."""
    snap = _snapshot(cfg, hardware, None)
    with Outbox.of(cfg) as box:
        (seq,) = box.add([report.event(cfg, name, detail or {}, snap, report.clock_synced())])
    log.info("event=uplink_event_recorded name=%s seq=%d", name, seq)
    return seq


def _status_of(cfg: Config, box: Outbox) -> dict[str, Any]:
    state = box.state
    held = box.held()
    error = state("last_error") or (f"the centre refused {held} report(s) as malformed; kept aside" if held else None)
    return {
        "enabled": bool(cfg.centre.url),
        "outbox": box.depth(),
        "held": held,
        "last_report_seq": state("last_report_seq"),
        "last_report_at": state("last_report_at"),
        "last_sent": state("last_sent"),
        "last_acked_seq": state("last_acked_seq"),
        "last_error": error,
        "last_error_at": state("last_error_at"),
        "failures": state("failures", 0),
        "next_attempt": state("next_attempt"),
        "centre_offset_s": state("centre_offset_s"),
        "last_export": state("last_export"),
        "sending": dict(_sending) or None,  # {"done", "total"} while a backlog is being sent
    }


def _sync_status(cfg: Config) -> dict[str, Any] | None:
    """The telecom content sync's state for the device page, or None when it cannot be read."""
    try:
        from kiosk.uplink import sync

        return sync.status(cfg)
    except Exception as e:  # the sync's trouble must not hide the heartbeat's status
        log.warning("event=sync_status_failed error=%r", e)
        return None


def status(cfg: Config) -> dict[str, Any]:
    """The uplink for the device page: last report, last sent, last acknowledged, outbox depth, last error,
    and under "sync" the content sync (last look at the index, downloads waiting, budget used today)."""
    if not outbox_path(cfg).exists():
        out = {"enabled": bool(cfg.centre.url), "outbox": 0, "held": 0, "last_report_seq": None, "last_report_at": None,
               "last_sent": None, "last_acked_seq": None, "last_error": None, "last_error_at": None,
               "failures": 0, "next_attempt": None, "centre_offset_s": None, "last_export": None, "sending": None}
    else:
        with Outbox.of(cfg) as box:
            out = _status_of(cfg, box)
    out["sync"] = _sync_status(cfg)
    try:
        from kiosk.uplink import upload

        out["upload"] = upload.status(cfg)
    except Exception as e:  # the upload's trouble must not hide the heartbeat's status
        log.warning("event=upload_status_failed error=%r", e)
        out["upload"] = None
    return out
