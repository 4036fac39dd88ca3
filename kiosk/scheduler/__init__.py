"""The box's periodic jobs on APScheduler 3.x: a registry, backoff, start and stop.

Each job is a plain function of a `Context`; tests call them directly. The
scheduler only decides when they run: every job on an interval taken from a
setting, coalesced, one instance at a time, with jitter so they do not all
wake together. A job that raises is logged and retried less often
(exponential, capped by scheduler.backoff_max_s) until it succeeds again.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from apscheduler.schedulers.background import BackgroundScheduler

from kiosk import clock
from kiosk.config import Config

log = logging.getLogger(__name__)


@dataclass
class Context:
    """What every job is given: configuration, the library, the hardware, and a stop flag."""

    cfg: Config
    library: Any = None
    hardware: Any = None
    stop: threading.Event = field(default_factory=threading.Event)
    # wake(job_id): run that job soon instead of at its next interval (set by the Runner)
    wake: Callable[[str], None] = lambda job_id: None
    # switch(): a new release is installed; the box stops and hands over to it (set by the box)
    switch: Callable[[], None] = lambda: None


@dataclass(frozen=True)
class Job:
    """One periodic job: its id, the function, and the setting that holds its interval."""

    id: str
    func: Callable[[Context], Any]
    interval: str
    first_delay_s: float = 1.0

    def interval_s(self, cfg: Config) -> float:
        """Seconds between runs, from the job's setting."""
        return float(cfg[self.interval])


@dataclass
class JobState:
    """What the device page can show of a job: last run, last error, failures in a row."""

    runs: int = 0
    failures: int = 0
    last_run: float | None = None
    last_ok: float | None = None
    last_error: str | None = None
    retry_at: float | None = None  # monotonic; runs before it are skipped

    def to_json(self) -> dict[str, Any]:
        """The state as the device page shows it."""
        return {
            "runs": self.runs,
            "failures": self.failures,
            "last_run": self.last_run,
            "last_ok": self.last_ok,
            "last_error": self.last_error,
        }


def registry() -> tuple[Job, ...]:
    """Every periodic job of the box."""
    from kiosk.scheduler import jobs  # jobs imports the parts; keep this module light

    return (
        Job("spool_scan", jobs.spool_scan, "storage.spool_scan_s", first_delay_s=1.0),
        Job("housekeeping", jobs.housekeeping, "storage.housekeeping_interval_s", first_delay_s=60.0),
        Job("health_sample", jobs.health_sample, "health.sample_interval_s", first_delay_s=2.0),
        Job("heartbeat", jobs.heartbeat, "centre.heartbeat_interval_s", first_delay_s=10.0),
        Job("telecom_sync", jobs.telecom_sync, "sync.interval_s", first_delay_s=30.0),
        Job("local_upload", jobs.local_upload, "uplink.upload_interval_s", first_delay_s=20.0),
        Job("software_update", jobs.software_update, "update.check_interval_s", first_delay_s=15.0),
    )


def run_guarded(job: Job, ctx: Context, state: JobState) -> bool:
    """Run a job once unless it is backing off; log and count a failure. True when it ran and succeeded."""
    if ctx.stop.is_set():
        return False
    if state.retry_at is not None and clock.monotonic() < state.retry_at:
        return False
    state.runs += 1
    state.last_run = clock.now()
    try:
        job.func(ctx)
    except Exception as e:  # a job must never take the scheduler down
        state.failures += 1
        state.last_error = f"{type(e).__name__}: {e}"
        delay = backoff_delay(job.interval_s(ctx.cfg), state.failures, ctx.cfg.scheduler.backoff_max_s)
        state.retry_at = clock.monotonic() + delay
        log.exception("job=%s event=failed failures=%d retry_in_s=%.0f", job.id, state.failures, delay)
        return False
    if state.failures:
        log.info("job=%s event=recovered after_failures=%d", job.id, state.failures)
    state.failures = 0
    state.retry_at = None
    state.last_error = None
    state.last_ok = clock.now()
    return True


def backoff_delay(interval_s: float, failures: int, cap_s: float) -> float:
    """Seconds to wait after `failures` failures in a row: doubling from the interval, capped."""
    if failures <= 0:
        return 0.0
    return min(interval_s * 2 ** (failures - 1), max(cap_s, interval_s))


class Runner:
    """The running scheduler; `shutdown()` stops it and waits for running jobs to end."""

    def __init__(self, ctx: Context, jobs: tuple[Job, ...]) -> None:
        self.ctx = ctx
        self.jobs = {j.id: j for j in jobs}
        self.states = {j.id: JobState() for j in jobs}
        # APScheduler says "Running job ..." at INFO on every run: every 3 s for the spool,
        # which would fill the journal of a box that runs for years; our jobs log what matters
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        self._scheduler = BackgroundScheduler(
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            daemon=True,
        )
        jitter = max(0, int(ctx.cfg.scheduler.jitter_s))
        start = datetime.now().astimezone()
        for job in jobs:
            interval = job.interval_s(ctx.cfg)
            self._scheduler.add_job(
                run_guarded,
                "interval",
                args=(job, ctx, self.states[job.id]),
                id=job.id,
                name=job.id,
                seconds=interval,
                # jitter never larger than a fraction of a short interval (the spool scan)
                jitter=min(jitter, int(interval / 4)) or None,
                next_run_time=start + timedelta(seconds=min(job.first_delay_s, interval)),
            )
        self._stopped = False
        ctx.wake = self.wake

    def wake(self, job_id: str) -> None:
        """Run a job now, in the scheduler's threads (a run under way is not doubled)."""
        if not self._stopped:
            self._scheduler.modify_job(job_id, next_run_time=datetime.now().astimezone())

    def start(self) -> "Runner":
        """Start running jobs in the background."""
        self._scheduler.start()
        log.info("event=scheduler_started jobs=%s", ",".join(self.jobs))
        return self

    def run_now(self, job_id: str) -> bool:
        """Run one job at once in this thread (the device page's "check now", tests)."""
        return run_guarded(self.jobs[job_id], self.ctx, self.states[job_id])

    def status(self) -> dict[str, dict[str, Any]]:
        """Each job's last run, last error and failures in a row."""
        return {job_id: state.to_json() for job_id, state in self.states.items()}

    def shutdown(self, wait: bool = True) -> None:
        """Ask running jobs to stop at their next safe point, then stop the scheduler."""
        if self._stopped:
            return
        self._stopped = True
        self.ctx.stop.set()
        self._scheduler.shutdown(wait=wait)
        log.info("event=scheduler_stopped")


def start(cfg: Config, library: Any, hardware: Any = None, jobs: tuple[Job, ...] | None = None,
          switch: Callable[[], None] | None = None) -> Runner:
    """Start the box's periodic jobs; call `.shutdown()` on the result to stop them."""
    ctx = Context(cfg=cfg, library=library, hardware=hardware)
    if switch is not None:
        ctx.switch = switch
    return Runner(ctx, registry() if jobs is None else jobs).start()
