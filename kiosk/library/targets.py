"""Whether a package is meant for this point: its `targets` against the point's id and township.

The share of the fleet a `percent` reaches is chosen by a stable hash of the point id, so
a rollout widened from 10 to 30 percent keeps its first tenth and adds to it, and the
centre can say in advance which points a given percentage reaches.
"""

from __future__ import annotations

import hashlib

from kiosk.library.record import Targets


def bucket(point_id: str) -> int:
    """The point's bucket, 0 to 99: the first 8 bytes of SHA-256 of its id, big-endian, modulo 100."""
    digest = hashlib.sha256(point_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % 100


def is_target(targets: Targets | None, point_id: str, township: str) -> bool:
    """True when no targets are given, or a list names the point or its township, or its bucket is below percent."""
    if targets is None:
        return True
    if point_id in targets.points:
        return True
    if township and township in targets.townships:
        return True
    return bucket(point_id) < targets.percent
