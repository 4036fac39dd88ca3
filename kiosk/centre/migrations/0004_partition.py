"""PostgreSQL: reports partitioned by day of receipt, so old days are dropped whole.

Raw reports are kept `centre.report_retention_days` (then their partition is dropped in
one statement, after its days were rolled up into `point_days`); a partition per day
(UTC) keeps each index small enough to stay in memory at 2,333 reports a second. A
partitioned table cannot hold a unique key without the partition column, so (point, seq)
is no longer a key: the store checks for a report already stored itself (store.py). The
existing rows are copied into the new table, one partition per day they cover; SQLite
keeps its single table (retention deletes rows there).
"""

from yoyo import step

COLUMNS = """
    point TEXT NOT NULL,
    seq BIGINT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    box_time DOUBLE PRECISION,
    at DOUBLE PRECISION NOT NULL,
    kind TEXT NOT NULL,
    event TEXT,
    detail TEXT,
    boot_id TEXT,
    temp_c DOUBLE PRECISION,
    disk_percent DOUBLE PRECISION,
    memory_percent DOUBLE PRECISION,
    load1 DOUBLE PRECISION,
    health TEXT,
    content TEXT,
    usage TEXT
"""
DAY = 86400


def apply(conn):
    cur = conn.cursor()
    # the highest sequence number stored per point, so a usual batch needs no look-up (store.py)
    cur.execute("ALTER TABLE points ADD COLUMN max_seq BIGINT")
    cur.execute("UPDATE points SET max_seq = (SELECT MAX(seq) FROM reports WHERE reports.point = points.id)")
    if not type(conn).__module__.startswith("psycopg"):
        return
    cur.execute("ALTER TABLE reports RENAME TO reports_unpartitioned")
    for old in ("reports_pkey", "reports_point_at", "reports_received"):
        cur.execute(f"ALTER INDEX IF EXISTS {old} RENAME TO {old}_unpartitioned")
    cur.execute(f"CREATE TABLE reports ({COLUMNS}) PARTITION BY RANGE (received_at)")
    cur.execute("CREATE TABLE reports_default PARTITION OF reports DEFAULT")
    cur.execute("CREATE INDEX reports_point_seq ON reports (point, seq)")
    cur.execute("SELECT FLOOR(MIN(received_at) / %s), FLOOR(MAX(received_at) / %s) FROM reports_unpartitioned", (DAY, DAY))
    first, last = cur.fetchone()
    if first is not None:
        for day in range(int(first), int(last) + 1):
            cur.execute(f"CREATE TABLE reports_d{day} PARTITION OF reports FOR VALUES FROM ({day * DAY}) TO ({(day + 1) * DAY})")
    cur.execute("INSERT INTO reports SELECT point, seq, received_at, box_time, at, kind, event, detail, boot_id, temp_c, "
                "disk_percent, memory_percent, load1, health, content, usage FROM reports_unpartitioned")
    cur.execute("DROP TABLE reports_unpartitioned")


steps = [step(apply)]
