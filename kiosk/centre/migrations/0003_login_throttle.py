"""The staff login limiter's counters (kiosk/centre/throttle.py), kept in the database so
every centre process counts the same attempts."""

from yoyo import step

steps = [
    step(
        "CREATE TABLE login_throttle (key TEXT PRIMARY KEY, fails INTEGER NOT NULL, "
        "last_at DOUBLE PRECISION NOT NULL, wait_until DOUBLE PRECISION NOT NULL)",
        "DROP TABLE login_throttle",
    )
]
