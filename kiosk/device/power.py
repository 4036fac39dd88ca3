"""Restart the screens, reboot, shut down: through one narrow privileged helper.

The web server never runs as root. admin.power_command (default
/usr/lib/kiosk/kiosk-power) is the only way up: it takes exactly one of ACTIONS
and asks systemd to start kiosk-power@ACTION.service, which the appliance's
polkit rule allows the kiosk user for exactly those three instances.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
from typing import Callable, Sequence

from kiosk.config import Config
from kiosk.errors import KioskError

log = logging.getLogger(__name__)

ACTIONS = ("restart-screens", "reboot", "shutdown")

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


class PowerError(KioskError, RuntimeError):
    """The privileged helper refused or failed."""


def _run(argv: Sequence[str]) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)


def command(cfg: Config, action: str) -> list[str]:
    """The argv that performs `action`."""
    if action not in ACTIONS:
        raise PowerError(f"unknown power action {action!r}; known: {', '.join(ACTIONS)}")
    base = shlex.split(cfg.admin.power_command)
    if not base:
        raise PowerError("admin.power_command is empty")
    return [*base, action]


def perform(cfg: Config, action: str, run: Runner = _run) -> None:
    """Ask the helper to restart the screens, reboot or shut down; PowerError when it fails."""
    argv = command(cfg, action)
    log.warning("event=power action=%s", action)
    try:
        done = run(argv)
    except (OSError, subprocess.SubprocessError) as e:
        raise PowerError(f"the power helper could not be started: {e}") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout or "").strip()[:200]
        log.error("event=power_failed action=%s code=%d detail=%r", action, done.returncode, detail)
        raise PowerError(f"the power helper failed (exit {done.returncode}): {detail}")
