-- Schema version 2: what the task page and the technician actions need.
-- Existing rows get defaults: tasks created before version 2 show no
-- readings window, and their assignment time is their creation time.

ALTER TABLE tasks ADD COLUMN rule_condition TEXT NOT NULL DEFAULT 'above';
ALTER TABLE tasks ADD COLUMN clear_threshold REAL;
-- The readings window of the latest event that carried one, as JSON.
ALTER TABLE tasks ADD COLUMN readings TEXT NOT NULL DEFAULT '[]';
ALTER TABLE tasks ADD COLUMN assigned_at TEXT;
UPDATE tasks SET assigned_at = created_at;

CREATE INDEX tasks_by_site ON tasks (site, opened_at);
CREATE INDEX tasks_by_sensor ON tasks (sensor, opened_at);
CREATE INDEX tasks_by_assignee ON tasks (assignee, status);
CREATE INDEX tasks_by_severity ON tasks (severity, opened_at);
CREATE INDEX deliveries_by_task ON deliveries (task_id, received_at);

-- Number of tasks per status and condition, kept by triggers, so that the
-- page header and the metrics do not scan every task. Every combination
-- has a row, so the triggers only update.
CREATE TABLE task_counts (
    status            TEXT    NOT NULL,
    condition_cleared INTEGER NOT NULL,
    n                 INTEGER NOT NULL,
    PRIMARY KEY (status, condition_cleared)
);

INSERT INTO task_counts (status, condition_cleared, n)
SELECT s.status, c.cleared,
       (SELECT COUNT(*) FROM tasks t
        WHERE t.status = s.status AND t.condition_cleared = c.cleared)
FROM (SELECT 'open' AS status UNION ALL SELECT 'acknowledged'
      UNION ALL SELECT 'in_progress' UNION ALL SELECT 'completed') AS s,
     (SELECT 0 AS cleared UNION ALL SELECT 1) AS c;

CREATE TRIGGER task_counts_insert AFTER INSERT ON tasks BEGIN
    UPDATE task_counts SET n = n + 1
    WHERE status = NEW.status AND condition_cleared = NEW.condition_cleared;
END;

CREATE TRIGGER task_counts_update AFTER UPDATE OF status, condition_cleared ON tasks BEGIN
    UPDATE task_counts SET n = n - 1
    WHERE status = OLD.status AND condition_cleared = OLD.condition_cleared;
    UPDATE task_counts SET n = n + 1
    WHERE status = NEW.status AND condition_cleared = NEW.condition_cleared;
END;

CREATE TRIGGER task_counts_delete AFTER DELETE ON tasks BEGIN
    UPDATE task_counts SET n = n - 1
    WHERE status = OLD.status AND condition_cleared = OLD.condition_cleared;
END;
