-- Schema version 1 of the scheduler database.
-- Times are RFC 3339 text in UTC with microseconds, so text order is time order.

CREATE TABLE tasks (
    id                INTEGER PRIMARY KEY,
    incident_id       TEXT    NOT NULL UNIQUE,
    site              TEXT    NOT NULL,
    sensor            TEXT    NOT NULL,
    metric            TEXT    NOT NULL,
    rule              TEXT    NOT NULL,
    value             REAL    NOT NULL,
    threshold         REAL    NOT NULL,
    unit              TEXT    NOT NULL,
    severity          TEXT    NOT NULL,
    status            TEXT    NOT NULL,
    condition_cleared INTEGER NOT NULL,
    assignee          TEXT    NOT NULL,
    opened_at         TEXT    NOT NULL,
    resolved_at       TEXT,
    created_at        TEXT    NOT NULL,
    updated_at        TEXT    NOT NULL,
    last_event_seq    INTEGER NOT NULL
);

CREATE INDEX tasks_by_opened_at ON tasks (opened_at);
CREATE INDEX tasks_by_status ON tasks (status, opened_at);

CREATE TABLE task_history (
    id      INTEGER PRIMARY KEY,
    task_id INTEGER NOT NULL REFERENCES tasks (id),
    at      TEXT    NOT NULL,
    actor   TEXT    NOT NULL,
    change  TEXT    NOT NULL
);

CREATE INDEX task_history_by_task ON task_history (task_id, id);

-- Every accepted delivery, keyed by its webhook-id (the idempotency key).
CREATE TABLE deliveries (
    webhook_id  TEXT PRIMARY KEY,
    event_type  TEXT NOT NULL,
    received_at TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    task_id     INTEGER REFERENCES tasks (id)
);

-- Round-robin position, so that a restart continues the rotation.
CREATE TABLE assignment_cursor (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    next INTEGER NOT NULL
);
