"""Each point's software update state (current, installing, trying, rolled_back, failed), beside its version.

Heartbeats carry `software: {"version", "state"}`; the version already had its column.
"""

from yoyo import step

steps = [
    step("ALTER TABLE points ADD COLUMN software_state TEXT NOT NULL DEFAULT ''"),
]
