"""The periodic jobs themselves: plain functions of a scheduler Context.

Each does one pass of its work and returns; the scheduler calls them on an
interval and tests call them directly. Long ones look at `ctx.stop` between
units of work so that SIGTERM ends them at a safe point.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kiosk.scheduler import Context

log = logging.getLogger(__name__)


def spool_scan(ctx: "Context") -> list[Any]:
    """Take complete bags from the satellite spool; quarantine abandoned ones."""
    from kiosk.library import spool

    return spool.scan(ctx.cfg, ctx.library, stop=ctx.stop)


def housekeeping(ctx: "Context") -> dict[str, list[str]]:
    """Hide expired items, then evict whole packages until enough disk is free."""
    expired = ctx.library.expire()
    evicted = [] if ctx.stop.is_set() else ctx.library.evict()
    if expired or evicted:
        log.info("job=housekeeping expired=%s evicted=%s", ",".join(expired) or "-", ",".join(evicted) or "-")
    return {"expired": expired, "evicted": evicted}


def health_sample(ctx: "Context") -> Any:
    """Record one health sample in the device's history."""
    history = _optional("kiosk.device.history")
    if history is None or ctx.hardware is None:
        return None
    return history.sample(ctx.cfg, ctx.hardware)


def heartbeat(ctx: "Context") -> Any:
    """Write a heartbeat report to the outbox and send what the outbox holds."""
    if not ctx.cfg.centre.url:
        return None
    uplink = _optional("kiosk.uplink")
    if uplink is None or not hasattr(uplink, "heartbeat_job"):
        return None
    return uplink.heartbeat_job(ctx.cfg, ctx.library, ctx.hardware)


def telecom_sync(ctx: "Context") -> Any:
    """Fetch what the centre's signed index lists and the box lacks, within budget and window."""
    from kiosk.uplink import sync

    return sync.run(ctx.cfg, ctx.library, stop=ctx.stop)


def _optional(module: str) -> Any:
    """Import a part another engineer builds; None only while it does not exist at all."""
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and module.startswith(e.name):
            log.debug("job module=%s event=absent", module)
            return None
        raise
