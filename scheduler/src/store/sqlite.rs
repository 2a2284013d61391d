//! SQLite backend of [`TaskStore`]: WAL journal, `user_version` migrations,
//! one connection behind a mutex.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, SecondsFormat, Utc};
use floorwatch_protocol::{Event, IncidentData, Severity};
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction, TransactionBehavior};

use super::{
    Delivery, DeliveryBody, Outcome, StoreError, TaskCounts, TaskDetail, TaskQuery, TaskStore,
    MAX_LIST_LIMIT,
};
use crate::assign::Roster;
use crate::task::{
    plan_change, Change, Effect, HistoryEntry, Task, TaskState, TaskStatus, ACTOR_BRIDGE,
};

/// Schema migrations. `user_version` is the number applied so far.
const MIGRATIONS: [&str; 1] = [include_str!("schema_v1.sql")];

/// How long a seen `webhook-id` is kept. Senders retry for about a day, and
/// a replay after pruning still changes nothing, because the task keeps
/// `last_event_seq` and ignores events that are not newer.
pub const DELIVERY_RETENTION: chrono::Duration = chrono::Duration::days(30);

/// Columns of `tasks` in the order [`read_task_row`] reads them.
const TASK_COLUMNS: &str = "id, incident_id, site, sensor, metric, rule, value, threshold, \
     unit, severity, status, condition_cleared, assignee, opened_at, resolved_at, updated_at, \
     last_event_seq";

/// A task store in one SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    connection: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (or creates) the database at `path`, creating its directory,
    /// and applies pending migrations.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let open_error = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut connection = Connection::open(path).map_err(open_error)?;
        configure(&connection).map_err(open_error)?;
        migrate(&mut connection, path)?;
        prune_deliveries(&connection, Utc::now() - DELIVERY_RETENTION)?;
        Ok(Self {
            connection: Mutex::new(connection),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while the lock was held leaves no open transaction behind
        // (a dropped `Transaction` rolls back), so the connection is usable.
        self.connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Sets the journal mode and durability. `synchronous = FULL` makes a commit
/// reach the disk before the delivery is acknowledged with 2xx.
fn configure(connection: &Connection) -> rusqlite::Result<()> {
    connection.busy_timeout(std::time::Duration::from_secs(5))?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "FULL")?;
    connection.pragma_update(None, "foreign_keys", true)?;
    Ok(())
}

fn migrate(connection: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let supported = MIGRATIONS.len() as i64;
    let found: i64 = connection.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if found > supported {
        return Err(StoreError::SchemaTooNew {
            path: PathBuf::from(path),
            found,
            supported,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = connection.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// Deletes delivery records received before `before`.
fn prune_deliveries(connection: &Connection, before: DateTime<Utc>) -> Result<(), StoreError> {
    let pruned = connection.execute(
        "DELETE FROM deliveries WHERE received_at < ?1",
        [format_time(before)],
    )?;
    if pruned > 0 {
        tracing::info!(pruned, "old delivery records deleted");
    }
    Ok(())
}

impl TaskStore for SqliteStore {
    fn record_delivery(
        &self,
        delivery: &Delivery,
        roster: &Roster,
        keep_open_on_resolve: bool,
    ) -> Result<Outcome, StoreError> {
        let mut connection = self.lock();
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;

        let inserted = tx.execute(
            "INSERT INTO deliveries (webhook_id, event_type, received_at, outcome)
             VALUES (?1, ?2, ?3, 'pending') ON CONFLICT (webhook_id) DO NOTHING",
            params![
                delivery.webhook_id,
                delivery.body.event_type(),
                format_time(delivery.received_at)
            ],
        )?;
        if inserted == 0 {
            return Ok(Outcome::Duplicate);
        }

        let outcome = match &delivery.body {
            DeliveryBody::Ignored { .. } => Outcome::Ignored,
            DeliveryBody::Incident(event) => {
                apply_incident(&tx, event, delivery, roster, keep_open_on_resolve)?
            }
        };
        tx.execute(
            "UPDATE deliveries SET outcome = ?1, task_id = ?2 WHERE webhook_id = ?3",
            params![outcome.as_str(), outcome.task_id(), delivery.webhook_id],
        )?;
        tx.commit()?;
        Ok(outcome)
    }

    fn list_tasks(&self, query: &TaskQuery) -> Result<Vec<Task>, StoreError> {
        let connection = self.lock();
        let limit = query.limit.min(MAX_LIST_LIMIT) as i64;
        let status = query.status.map(TaskStatus::as_str);
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE (?1 IS NULL OR status = ?1)
             ORDER BY opened_at DESC, id DESC LIMIT ?2"
        );
        let mut statement = connection.prepare_cached(&sql)?;
        let rows = statement.query_map(params![status, limit], read_task_row)?;
        rows.map(|row| row?).collect()
    }

    fn task(&self, id: i64) -> Result<Option<TaskDetail>, StoreError> {
        let connection = self.lock();
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1");
        let task = connection
            .query_row(&sql, [id], read_task_row)
            .optional()?
            .transpose()?;
        let Some(task) = task else {
            return Ok(None);
        };
        let mut statement = connection.prepare_cached(
            "SELECT at, actor, change FROM task_history WHERE task_id = ?1 ORDER BY id",
        )?;
        let history = statement
            .query_map([id], |row| {
                Ok((row.get::<_, String>(0)?, row.get(1)?, row.get(2)?))
            })?
            .map(|row| {
                let (at, actor, change) = row?;
                Ok(HistoryEntry {
                    at: parse_time("task_history.at", &at)?,
                    actor,
                    change,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Some(TaskDetail { task, history }))
    }

    fn count_tasks(&self) -> Result<TaskCounts, StoreError> {
        let connection = self.lock();
        let counts = connection.query_row(
            "SELECT COUNT(*),
                    COUNT(*) FILTER (WHERE status = 'open'),
                    COUNT(*) FILTER (WHERE status = 'completed'),
                    COUNT(*) FILTER (WHERE status = 'open' AND NOT condition_cleared)
             FROM tasks",
            [],
            |row| {
                Ok(TaskCounts {
                    total: row.get(0)?,
                    open: row.get(1)?,
                    completed: row.get(2)?,
                    active: row.get(3)?,
                })
            },
        )?;
        Ok(counts)
    }

    fn ping(&self) -> Result<(), StoreError> {
        let connection = self.lock();
        connection.query_row("SELECT 1", [], |_| Ok(()))?;
        Ok(())
    }
}

/// Applies one incident event to its task inside `tx`.
fn apply_incident(
    tx: &Transaction<'_>,
    event: &Event<IncidentData>,
    delivery: &Delivery,
    roster: &Roster,
    keep_open_on_resolve: bool,
) -> Result<Outcome, StoreError> {
    let data = &event.data;
    let current = load_state(tx, &data.incident_id)?;
    let change = plan_change(
        event.event_type,
        data,
        event.timestamp,
        current.as_ref(),
        keep_open_on_resolve,
    );
    let now = delivery.received_at;

    match change {
        Change::Stale {
            task_id,
            last_event_seq,
        } => Ok(Outcome::Stale {
            task_id,
            last_event_seq,
        }),
        Change::Update { task_id, effect } => {
            update_task(tx, task_id, &effect, now)?;
            add_history(tx, task_id, now, ACTOR_BRIDGE, &effect.change)?;
            Ok(Outcome::Updated { task_id })
        }
        Change::Create(effect) => {
            let assignee = assign(tx, roster)?;
            let task_id = insert_task(tx, data, &effect, &assignee, now)?;
            add_history(tx, task_id, now, ACTOR_BRIDGE, &effect.change)?;
            let note = format!("assigned to {assignee} ({})", roster.policy.as_str());
            add_history(tx, task_id, now, ACTOR_BRIDGE, &note)?;
            Ok(Outcome::Created { task_id, assignee })
        }
    }
}

fn load_state(tx: &Transaction<'_>, incident_id: &str) -> Result<Option<TaskState>, StoreError> {
    let row = tx
        .query_row(
            "SELECT id, status, condition_cleared, resolved_at, last_event_seq, value
             FROM tasks WHERE incident_id = ?1",
            [incident_id],
            |row| {
                let id: i64 = row.get(0)?;
                let status: String = row.get(1)?;
                let cleared: bool = row.get(2)?;
                let resolved_at: Option<String> = row.get(3)?;
                let seq: i64 = row.get(4)?;
                let value: f64 = row.get(5)?;
                Ok((id, status, cleared, resolved_at, seq, value))
            },
        )
        .optional()?;
    let Some((id, status, condition_cleared, resolved_at, seq, value)) = row else {
        return Ok(None);
    };
    let state = TaskState {
        id,
        status: parse_status(&status)?,
        condition_cleared,
        resolved_at: parse_optional_time("tasks.resolved_at", resolved_at)?,
        last_event_seq: seq_from_sql(seq)?,
        value,
    };
    Ok(Some(state))
}

/// Picks the technician for a new task and stores the advanced cursor.
fn assign(tx: &Transaction<'_>, roster: &Roster) -> Result<String, StoreError> {
    let cursor: i64 = tx
        .query_row(
            "SELECT next FROM assignment_cursor WHERE id = 1",
            [],
            |row| row.get(0),
        )
        .optional()?
        .unwrap_or(0);
    let assignment = roster
        .policy
        .choose(&roster.technicians, cursor as u64, &mut rand::thread_rng())
        .ok_or(StoreError::EmptyRoster)?;
    tx.execute(
        "INSERT INTO assignment_cursor (id, next) VALUES (1, ?1)
         ON CONFLICT (id) DO UPDATE SET next = excluded.next",
        [assignment.next_cursor as i64],
    )?;
    Ok(assignment.technician.to_string())
}

fn insert_task(
    tx: &Transaction<'_>,
    data: &IncidentData,
    effect: &Effect,
    assignee: &str,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    tx.execute(
        "INSERT INTO tasks (incident_id, site, sensor, metric, rule, value, threshold, unit,
             severity, status, condition_cleared, assignee, opened_at, resolved_at,
             created_at, updated_at, last_event_seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15, ?16)",
        params![
            data.incident_id,
            data.site.as_str(),
            data.sensor.as_str(),
            data.metric.as_str(),
            data.rule.as_str(),
            effect.value,
            data.threshold,
            data.unit,
            effect.severity.as_str(),
            effect.status.as_str(),
            effect.condition_cleared,
            assignee,
            format_time(data.opened_at),
            effect.resolved_at.map(format_time),
            format_time(now),
            seq_to_sql(effect.last_event_seq),
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

fn update_task(
    tx: &Transaction<'_>,
    task_id: i64,
    effect: &Effect,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE tasks SET value = ?1, severity = ?2, status = ?3, condition_cleared = ?4,
             resolved_at = ?5, updated_at = ?6, last_event_seq = ?7
         WHERE id = ?8",
        params![
            effect.value,
            effect.severity.as_str(),
            effect.status.as_str(),
            effect.condition_cleared,
            effect.resolved_at.map(format_time),
            format_time(now),
            seq_to_sql(effect.last_event_seq),
            task_id,
        ],
    )?;
    Ok(())
}

fn add_history(
    tx: &Transaction<'_>,
    task_id: i64,
    at: DateTime<Utc>,
    actor: &str,
    change: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO task_history (task_id, at, actor, change) VALUES (?1, ?2, ?3, ?4)",
        params![task_id, format_time(at), actor, change],
    )?;
    Ok(())
}

/// Reads one row selected with [`TASK_COLUMNS`]. The outer result carries
/// SQLite errors, the inner one invalid stored values.
fn read_task_row(row: &Row<'_>) -> rusqlite::Result<Result<Task, StoreError>> {
    let severity: String = row.get(9)?;
    let status: String = row.get(10)?;
    let opened_at: String = row.get(13)?;
    let resolved_at: Option<String> = row.get(14)?;
    let updated_at: String = row.get(15)?;
    let seq: i64 = row.get(16)?;
    let (id, incident_id, site, sensor, metric, rule) = (
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    );
    let (value, threshold, unit, condition_cleared, assignee) = (
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(11)?,
        row.get(12)?,
    );

    let decoded = (|| {
        Ok(Task {
            id,
            incident_id,
            site,
            sensor,
            metric,
            rule,
            value,
            threshold,
            unit,
            severity: parse_severity(&severity)?,
            status: parse_status(&status)?,
            condition_cleared,
            assignee,
            opened_at: parse_time("tasks.opened_at", &opened_at)?,
            resolved_at: parse_optional_time("tasks.resolved_at", resolved_at)?,
            updated_at: parse_time("tasks.updated_at", &updated_at)?,
            last_event_seq: seq_from_sql(seq)?,
        })
    })();
    Ok(decoded)
}

/// Formats a time so that text order is time order: RFC 3339, UTC, with a
/// fixed number of fraction digits.
fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_time(column: &'static str, text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|_| StoreError::InvalidValue {
            column,
            value: text.to_owned(),
        })
}

fn parse_optional_time(
    column: &'static str,
    text: Option<String>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    text.map(|text| parse_time(column, &text)).transpose()
}

fn parse_status(text: &str) -> Result<TaskStatus, StoreError> {
    TaskStatus::parse(text).ok_or_else(|| StoreError::InvalidValue {
        column: "tasks.status",
        value: text.to_owned(),
    })
}

fn parse_severity(text: &str) -> Result<Severity, StoreError> {
    match text {
        "warning" => Ok(Severity::Warning),
        "critical" => Ok(Severity::Critical),
        _ => Err(StoreError::InvalidValue {
            column: "tasks.severity",
            value: text.to_owned(),
        }),
    }
}

/// Converts a sequence number for SQLite, whose integers are signed. Values
/// above `i64::MAX` are stored as `i64::MAX`.
fn seq_to_sql(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

fn seq_from_sql(seq: i64) -> Result<u64, StoreError> {
    u64::try_from(seq).map_err(|_| StoreError::InvalidValue {
        column: "tasks.last_event_seq",
        value: seq.to_string(),
    })
}

#[cfg(test)]
#[path = "sqlite_tests.rs"]
mod tests;
