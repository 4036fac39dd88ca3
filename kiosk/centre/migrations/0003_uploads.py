"""Local content from the points: each point's own public key, and the uploads staff review.

`point_keys` holds the Ed25519 key a point's heartbeats carry (its local packages must be
signed by it); `uploads` one row per local package a point sends up, through
`receiving`, `pending` (for review), then `approved` or `rejected` with the reason.
"""

from yoyo import step

steps = [
    step("CREATE TABLE point_keys (point TEXT PRIMARY KEY, key TEXT NOT NULL, seen_at DOUBLE PRECISION NOT NULL)"),
    step(
        "CREATE TABLE uploads ("
        "id TEXT PRIMARY KEY, version INTEGER NOT NULL, point TEXT NOT NULL, state TEXT NOT NULL, "
        "size BIGINT NOT NULL, sha256 TEXT NOT NULL, received BIGINT NOT NULL DEFAULT 0, "
        "last_sig TEXT NOT NULL DEFAULT '', title TEXT NOT NULL DEFAULT '', category TEXT NOT NULL DEFAULT '', "
        "description TEXT NOT NULL DEFAULT '', created_at DOUBLE PRECISION NOT NULL, completed_at DOUBLE PRECISION, "
        "decided_at DOUBLE PRECISION, decided_by TEXT NOT NULL DEFAULT '', reason TEXT NOT NULL DEFAULT '', "
        "townships TEXT NOT NULL DEFAULT '')"
    ),
    step("CREATE INDEX uploads_point ON uploads (point, state)"),
]
