"""The periodic jobs themselves: plain functions of a scheduler Context.

Each does one pass of its work and returns; the scheduler calls them on an
interval and tests call them directly. Long ones look at `ctx.stop` between
units of work so that SIGTERM ends them at a safe point.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from kiosk import uplink
from kiosk.device import history
from kiosk.library import spool
from kiosk.library.model import Outcome
from kiosk.uplink import sync, upload

if TYPE_CHECKING:
    from kiosk.scheduler import Context

log = logging.getLogger(__name__)


def spool_scan(ctx: "Context") -> list[Outcome]:
    """Take complete bags from the satellite spool; quarantine abandoned ones."""
    return spool.scan(ctx.cfg, ctx.library, stop=ctx.stop)


def housekeeping(ctx: "Context") -> dict[str, list[str]]:
    """Hide expired items, then evict whole packages until enough disk is free."""
    expired = ctx.library.expire()
    evicted = [] if ctx.stop.is_set() else ctx.library.evict()
    if expired or evicted:
        log.info("job=housekeeping expired=%s evicted=%s", ",".join(expired) or "-", ",".join(evicted) or "-")
    return {"expired": expired, "evicted": evicted}


def health_sample(ctx: "Context") -> dict[str, Any] | None:
    """Record one health sample (and set the status LED); an event for the centre wakes the heartbeat."""
    if ctx.hardware is None:
        return None
    snap = history.sample(ctx.cfg, ctx.hardware)
    if uplink.news_for_centre(ctx.cfg, snap):  # under-voltage, a full disk ...: report now, not in 5 minutes
        ctx.wake("heartbeat")
    return snap


def heartbeat(ctx: "Context") -> Any:
    """Write a heartbeat report to the outbox and send what the outbox holds."""
    return uplink.heartbeat_job(ctx.cfg, ctx.library, ctx.hardware, stop=ctx.stop)


def telecom_sync(ctx: "Context") -> sync.Result:
    """Fetch what the centre's signed index lists and the box lacks, within budget and window."""
    return sync.run(ctx.cfg, ctx.library, stop=ctx.stop)


def local_upload(ctx: "Context") -> dict[str, Any]:
    """Send local content to the centre, resuming where it stopped, within budget and window."""
    return upload.run(ctx.cfg, stop=ctx.stop)


def software_update(ctx: "Context") -> str | None:
    """Install a received application release beside the running one and switch to it."""
    from kiosk.update import apply

    if ctx.stop.is_set():
        return None
    return apply.step(ctx.cfg, ctx.library, ctx.switch)
