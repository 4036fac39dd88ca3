"""The one clock every part asks for the time, so tests can set it."""

from __future__ import annotations

import contextlib
import time
from typing import Iterator


class SystemClock:
    """Wall and monotonic time from the operating system."""

    def now(self) -> float:
        """Seconds since the epoch (may be wrong on a box without a real-time clock)."""
        return time.time()

    def monotonic(self) -> float:
        """Seconds from an arbitrary start; never goes backwards."""
        return time.monotonic()


class FrozenClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._mono = 1000.0

    def now(self) -> float:
        """The set wall time."""
        return self._now

    def monotonic(self) -> float:
        """The set monotonic time."""
        return self._mono

    def advance(self, seconds: float) -> None:
        """Move both times forward."""
        self._now += seconds
        self._mono += seconds

    def set(self, wall: float) -> None:
        """Jump the wall time (as an unsynchronised Pi clock does); monotonic is kept."""
        self._now = wall


_clock: SystemClock | FrozenClock = SystemClock()


def now() -> float:
    """Wall time from the current clock."""
    return _clock.now()


def monotonic() -> float:
    """Monotonic time from the current clock."""
    return _clock.monotonic()


@contextlib.contextmanager
def use(clock: SystemClock | FrozenClock) -> Iterator[SystemClock | FrozenClock]:
    """Install `clock` for the duration of a with-block (tests)."""
    global _clock
    previous, _clock = _clock, clock
    try:
        yield clock
    finally:
        _clock = previous
