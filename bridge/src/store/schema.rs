//! The SQLite schema of the bridge and its migrations, applied in order and
//! tracked in `PRAGMA user_version`.

/// Migrations; entry `n` moves the schema from version `n` to `n + 1`.
pub const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE sensor_state (
    site        TEXT NOT NULL,
    sensor      TEXT NOT NULL,
    -- JSON of SensorState: last seq and time, windows, rule states.
    state       TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (site, sensor)
);

CREATE TABLE incidents (
    incident_id     TEXT PRIMARY KEY,
    site            TEXT NOT NULL,
    sensor          TEXT NOT NULL,
    metric          TEXT NOT NULL,
    rule            TEXT NOT NULL,
    severity        TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('open', 'resolved')),
    first_breach_at TEXT NOT NULL,
    opened_at       TEXT NOT NULL,
    resolved_at     TEXT,
    last_event_seq  INTEGER NOT NULL,
    -- JSON of the IncidentData of the latest event.
    data            TEXT NOT NULL
);
CREATE INDEX incidents_by_sensor ON incidents (site, sensor, status);

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT NOT NULL,
    endpoint        TEXT NOT NULL,
    -- Events with the same key are delivered in id order.
    ordering_key    TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    -- The exact bytes that are signed and sent.
    body            BLOB NOT NULL,
    created_at      TEXT NOT NULL,
    -- Unix time in milliseconds.
    next_attempt_at INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'dead')),
    last_error      TEXT,
    UNIQUE (event_id, endpoint)
);
CREATE INDEX outbox_pending ON outbox (endpoint, status, ordering_key, id);

CREATE TABLE delivery_attempts (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    outbox_id        INTEGER NOT NULL REFERENCES outbox (id),
    event_id         TEXT NOT NULL,
    endpoint         TEXT NOT NULL,
    attempt          INTEGER NOT NULL,
    attempted_at     TEXT NOT NULL,
    status_code      INTEGER,
    latency_ms       INTEGER NOT NULL,
    error            TEXT,
    response_snippet TEXT
);
CREATE INDEX delivery_attempts_by_event ON delivery_attempts (event_id);
"#,
    r#"
-- Endpoints disabled by a 410 Gone answer, until an operator enables them.
CREATE TABLE endpoint_state (
    endpoint        TEXT PRIMARY KEY,
    disabled_at     TEXT NOT NULL,
    disabled_reason TEXT NOT NULL
);
"#,
];
