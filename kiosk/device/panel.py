"""The front panel: a status LED and a shutdown button, through gpiozero.

LED: steady = all well, slow blink = importing, fast blink = fault.
Button: held for 3 s -> clean shutdown; a short press does nothing (so a
villager leaning on it cannot switch the box off).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from gpiozero import LED, Button

log = logging.getLogger(__name__)

# (on_time, off_time) in seconds; None means steady on.
PATTERNS: dict[str, tuple[float, float] | None] = {
    "ok": None,
    "importing": (1.0, 1.0),
    "fault": (0.15, 0.15),
}


class Panel:
    """Drives the status LED and watches the shutdown button."""

    def __init__(
        self,
        led_pin: int,
        button_pin: int,
        *,
        pin_factory: Any = None,
        hold_s: float = 3.0,
        patterns: dict[str, tuple[float, float] | None] | None = None,
    ) -> None:
        self.patterns = dict(PATTERNS if patterns is None else patterns)
        self.led = LED(led_pin, pin_factory=pin_factory)
        # pull_up: the button shorts the pin to ground; hold_time is gpiozero's own timer.
        self.button = Button(button_pin, pull_up=True, hold_time=hold_s, pin_factory=pin_factory)
        self.state: str | None = None
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self.button.when_held = self._held
        self.show("ok")

    def show(self, state: str) -> None:
        """Set the LED pattern for `state` (ok, importing, fault); a repeat changes nothing."""
        if state not in self.patterns:
            raise ValueError(f"unknown LED state {state!r}")
        with self._lock:
            if state == self.state:
                return  # restarting a blink would make the LED stutter on every sample
            self.state = state
            pattern = self.patterns[state]
            if pattern is None:
                self.led.on()
            else:
                self.led.blink(on_time=pattern[0], off_time=pattern[1], background=True)
        log.info("event=led state=%s", state)

    def on_shutdown(self, callback: Callable[[], None]) -> None:
        """Call `callback` when the button has been held for the hold time."""
        self._callbacks.append(callback)

    def _held(self) -> None:
        log.warning("event=shutdown_button_held")
        for cb in list(self._callbacks):
            try:
                cb()
            except Exception:  # a failing helper must not kill gpiozero's thread
                log.exception("event=shutdown_callback_failed")

    def close(self) -> None:
        """Release the pins."""
        self.button.close()
        self.led.close()
