"""Summaries of large nodes kept for a few seconds in the database, and an index for a county's lists.

Counting a province of 700,000 points by status takes a full pass over an index (half a
second on two busy cores); the counts of a node that large are kept in `summaries` for
`summary.CACHE_S` and shared by every centre process, so they agree and the pass is made
once per period, not once per page. `points_county` gives a county's points longest
silent first without sorting them (the tree index orders them by township first).
"""

from yoyo import step


def apply(conn):
    cur = conn.cursor()
    cur.execute("CREATE TABLE summaries (node TEXT PRIMARY KEY, computed_at DOUBLE PRECISION NOT NULL, body TEXT NOT NULL)")
    if type(conn).__module__.startswith("psycopg"):
        cur.execute("CREATE INDEX points_county ON points (county, last_seen NULLS FIRST, id)")
    else:
        cur.execute("CREATE INDEX points_county ON points (county, last_seen, id)")


steps = [step(apply)]
