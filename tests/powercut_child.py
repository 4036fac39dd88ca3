"""`kiosk ingest` for the power-cut test, telling which phase of the work it is in.

Runs the real command with a few library functions wrapped (nothing else changes):
each phase writes its name to $KIOSK_PHASE_FILE as it starts, so the test knows where
its SIGKILL landed. $KIOSK_PHASE_HOLD names a phase in which to linger for a moment,
in the middle of its work, so that a kill can be aimed at a phase that otherwise
lasts only milliseconds:

    hashing     after the first payload file was read and hashed (copied, unless in place)
    staging     after the first staged file was fsync'd, before the rest
    publishing  after the rename into the store, before the catalogue knows of it
    committing  inside the catalogue transaction, before its commit
    cleaning    committed; after the old version's folder went, before the process ends
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kiosk import cli  # noqa: E402
from kiosk.library import catalogue, ingest, store  # noqa: E402

PHASE_FILE = os.environ["KIOSK_PHASE_FILE"]
HOLD = os.environ.get("KIOSK_PHASE_HOLD", "")
HOLD_S = 0.5
_seen: set[str] = set()


def mark(phase: str) -> None:
    """Write the phase (a killed process's page cache survives: no fsync needed)."""
    with open(PHASE_FILE, "w") as f:
        f.write(phase)


def linger(phase: str) -> None:
    if HOLD == phase and phase not in _seen:
        _seen.add(phase)
        time.sleep(HOLD_S)


def starting(phase: str, fn: Callable[..., Any], then_linger: bool = True) -> Callable[..., Any]:
    def wrapped(*a: Any, **k: Any) -> Any:
        if phase not in _seen:
            mark(phase)
        result = fn(*a, **k)
        if then_linger:
            linger(phase)
        return result
    return wrapped


ingest.hash_copy = starting("hashing", ingest.hash_copy)
ingest.hash_copy_span = starting("hashing", ingest.hash_copy_span)
ingest.fsync_file = starting("staging", ingest.fsync_file)
store.Store.publish = starting("publishing", store.Store.publish)  # type: ignore[method-assign]
catalogue.Catalogue.put = starting("committing", catalogue.Catalogue.put)  # type: ignore[method-assign]
store.Store.remove = starting("cleaning", store.Store.remove)  # type: ignore[method-assign]

if __name__ == "__main__":
    code = cli.main(sys.argv[1:])
    mark("finished")
    sys.exit(code)
