"""Power cuts: SIGKILL a real `kiosk ingest` at random instants, at least 200 times.

    .venv/bin/python bench/powercut.py [--kills 200] [--seed 1]

Each round checks what tests/test_powercut.py checks (catalogue integrity, nothing
unverified visible, old state or new state, a clean ingest afterwards) and the run
prints how the kills fell: before the new version became visible ("old"), after it
("new"), or after the process had already finished ("finished"), and by the phase of
the work each hit (hashing, staging, publishing, committing, ...).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.test_powercut import run_kills  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="powercut-"))
    t = time.monotonic()
    try:
        outcomes, phases = run_kills(tmp, args.kills, args.seed)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{sum(outcomes.values())} kills in {time.monotonic() - t:.0f} s, every check passed")
    for what in ("old", "new", "finished"):
        print(f"  {what:<9} {outcomes.get(what, 0)}")
    print("by the phase the kill hit:")
    for phase, n in sorted(phases.items(), key=lambda kv: -kv[1]):
        print(f"  {phase:<11} {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
