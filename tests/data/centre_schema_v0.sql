-- The centre database schema as made before versioned migrations (Field Kiosk 0.1).
-- Tests open a database made with it to prove that it upgrades in place.
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS points (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    township TEXT NOT NULL DEFAULT '',
    secret TEXT NOT NULL,
    enrolled_at DOUBLE PRECISION NOT NULL,
    last_seen DOUBLE PRECISION,
    last_seq BIGINT,
    last_box_time DOUBLE PRECISION,
    last_health TEXT,
    last_content TEXT,
    software TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS reports (
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
    usage TEXT,
    PRIMARY KEY (point, seq)
);
CREATE INDEX IF NOT EXISTS reports_point_at ON reports (point, at);
CREATE INDEX IF NOT EXISTS reports_received ON reports (received_at);
CREATE TABLE IF NOT EXISTS plays (
    point TEXT NOT NULL,
    seq BIGINT NOT NULL,
    category TEXT NOT NULL,
    month TEXT NOT NULL,
    opens INTEGER NOT NULL,
    plays INTEGER NOT NULL,
    PRIMARY KEY (point, seq, category)
);
CREATE INDEX IF NOT EXISTS plays_month ON plays (month);
CREATE TABLE IF NOT EXISTS requests (
    point TEXT NOT NULL,
    rid TEXT NOT NULL,
    seq BIGINT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    month TEXT NOT NULL,
    topic TEXT NOT NULL DEFAULT '',
    text TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (point, rid)
);
CREATE INDEX IF NOT EXISTS requests_month ON requests (month);
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS api_tokens (
    token_sha256 TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    last_used DOUBLE PRECISION
);
CREATE TABLE IF NOT EXISTS packages (
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    size BIGINT NOT NULL,
    tagmanifest_sha256 TEXT NOT NULL,
    file TEXT NOT NULL,
    withdraws TEXT NOT NULL DEFAULT '',
    published_at DOUBLE PRECISION NOT NULL,
    published_by TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (id, version)
);
