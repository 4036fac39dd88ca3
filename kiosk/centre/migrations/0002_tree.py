"""The tree and scopes: points belong to a county, staff and tokens carry a scope.

Also a row per centre process start (the alert grace is read from the database, so every
process agrees), daily roll-ups of reports (kept when raw reports are not), and the
indexes the summaries count with. Existing staff and tokens keep seeing everything
(`province`); existing points get the configured county when the centre opens them.
"""

from yoyo import step

STATEMENTS = (
    "ALTER TABLE points ADD COLUMN county TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE users ADD COLUMN scope TEXT NOT NULL DEFAULT 'province'",
    "ALTER TABLE api_tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'province'",
    "CREATE TABLE centre_starts (started_at DOUBLE PRECISION NOT NULL, host TEXT NOT NULL DEFAULT '', "
    "pid INTEGER NOT NULL DEFAULT 0)",
    "CREATE INDEX centre_starts_at ON centre_starts (started_at)",
    # one row per point and local day (days since 1970-01-01 in the centre's time zone)
    "CREATE TABLE point_days (point TEXT NOT NULL, day INTEGER NOT NULL, reports INTEGER NOT NULL, "
    "hours INTEGER NOT NULL, temp_max DOUBLE PRECISION, disk_max DOUBLE PRECISION, "
    "memory_max DOUBLE PRECISION, load_max DOUBLE PRECISION, PRIMARY KEY (point, day))",
    "CREATE INDEX point_days_day ON point_days (day)",
)


# Point lists are ordered longest silent first (never seen, then oldest last report), so
# these indexes give a page of them without sorting; SQLite puts NULL first by itself.
INDEXES_PG = (
    "CREATE INDEX points_tree ON points (county, township, last_seen NULLS FIRST, id)",
    "CREATE INDEX points_seen ON points (last_seen NULLS FIRST, id)",
)
INDEXES_SQLITE = (
    "CREATE INDEX points_tree ON points (county, township, last_seen, id)",
    "CREATE INDEX points_seen ON points (last_seen, id)",
)


def apply(conn):
    cur = conn.cursor()
    pg = type(conn).__module__.startswith("psycopg")
    for statement in STATEMENTS + (INDEXES_PG if pg else INDEXES_SQLITE):
        cur.execute(statement)
    # the start recorded before this migration keeps its grace
    cur.execute("INSERT INTO centre_starts (started_at) SELECT CAST(value AS DOUBLE PRECISION) FROM meta "
                "WHERE key = 'started_at'")


steps = [step(apply)]
