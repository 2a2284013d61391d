//! Read queries: filtered and sorted task listings, counts and the detail
//! of one task.

use floorwatch_protocol::WindowPoint;
use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, OptionalExtension};

use super::rows::{parse_status, parse_time, read_task_row, TASK_COLUMNS};
use crate::store::{
    DeliveryRecord, SortKey, StoreError, TaskCounts, TaskDetail, TaskQuery, MAX_LIST_LIMIT,
};
use crate::task::{HistoryEntry, Task, TaskStatus};

/// Returns the `WHERE` clause for the filters present in `query` and its
/// parameters. Only present filters are named, so that SQLite can use the
/// matching index and the unfiltered count takes its fast path.
fn filter(query: &TaskQuery) -> (String, Vec<Value>) {
    let columns = [
        (
            "status",
            query.status.map(|status| status.as_str().to_owned()),
        ),
        ("site", query.site.clone()),
        ("sensor", query.sensor.clone()),
        ("assignee", query.assignee.clone()),
    ];
    let mut conditions = Vec::new();
    let mut values = Vec::new();
    for (column, value) in columns {
        if let Some(value) = value {
            values.push(Value::Text(value));
            conditions.push(format!("{column} = ?{}", values.len()));
        }
    }
    if conditions.is_empty() {
        return (String::new(), values);
    }
    (format!("WHERE {}", conditions.join(" AND ")), values)
}

pub fn list_tasks(connection: &Connection, query: &TaskQuery) -> Result<Vec<Task>, StoreError> {
    let limit = query.limit.min(MAX_LIST_LIMIT) as i64;
    let offset = i64::try_from(query.offset).unwrap_or(i64::MAX);
    let direction = if query.descending { "DESC" } else { "ASC" };
    let order = match query.sort {
        SortKey::OpenedAt => format!("opened_at {direction}, id {direction}"),
        SortKey::Severity => format!(
            "CASE severity WHEN 'critical' THEN 2 ELSE 1 END {direction}, \
             opened_at DESC, id DESC"
        ),
    };
    let (condition, mut values) = filter(query);
    let sql = format!(
        "SELECT {TASK_COLUMNS} FROM tasks {condition} ORDER BY {order} LIMIT ?{} OFFSET ?{}",
        values.len() + 1,
        values.len() + 2
    );
    values.push(Value::Integer(limit));
    values.push(Value::Integer(offset));
    let mut statement = connection.prepare_cached(&sql)?;
    let rows = statement.query_map(params_from_iter(values), read_task_row)?;
    rows.map(|row| row?).collect()
}

pub fn count_matching(connection: &Connection, query: &TaskQuery) -> Result<u64, StoreError> {
    let (condition, values) = filter(query);
    let sql = format!("SELECT COUNT(*) FROM tasks {condition}");
    let mut statement = connection.prepare_cached(&sql)?;
    let count = statement.query_row(params_from_iter(values), |row| row.get(0))?;
    Ok(count)
}

pub fn count_tasks(connection: &Connection) -> Result<TaskCounts, StoreError> {
    let mut statement =
        connection.prepare_cached("SELECT status, condition_cleared, n FROM task_counts")?;
    let rows = statement.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, bool>(1)?,
            row.get::<_, i64>(2)?,
        ))
    })?;
    let mut counts = TaskCounts::default();
    for row in rows {
        let (status, cleared, n) = row?;
        let n = n.unsigned_abs();
        let status = parse_status(&status)?;
        counts.total += n;
        if status.is_active() && !cleared {
            counts.active += n;
        }
        match status {
            TaskStatus::Open => counts.open += n,
            TaskStatus::Acknowledged => counts.acknowledged += n,
            TaskStatus::InProgress => counts.in_progress += n,
            TaskStatus::Completed => counts.completed += n,
        }
    }
    Ok(counts)
}

pub fn task_detail(connection: &Connection, id: i64) -> Result<Option<TaskDetail>, StoreError> {
    let sql = format!("SELECT {TASK_COLUMNS}, readings FROM tasks WHERE id = ?1");
    let row = connection
        .query_row(&sql, [id], |row| {
            let readings: String = row.get(20)?;
            Ok((read_task_row(row)?, readings))
        })
        .optional()?;
    let Some((task, readings)) = row else {
        return Ok(None);
    };
    let task = task?;
    let window: Vec<WindowPoint> =
        serde_json::from_str(&readings).map_err(|_| StoreError::InvalidValue {
            column: "tasks.readings",
            value: readings.chars().take(80).collect(),
        })?;
    Ok(Some(TaskDetail {
        task,
        history: history(connection, id)?,
        window,
        deliveries: deliveries(connection, id)?,
    }))
}

fn history(connection: &Connection, id: i64) -> Result<Vec<HistoryEntry>, StoreError> {
    let mut statement = connection.prepare_cached(
        "SELECT at, actor, change FROM task_history WHERE task_id = ?1 ORDER BY id",
    )?;
    let rows = statement.query_map([id], |row| {
        Ok((row.get::<_, String>(0)?, row.get(1)?, row.get(2)?))
    })?;
    rows.map(|row| {
        let (at, actor, change) = row?;
        Ok(HistoryEntry {
            at: parse_time("task_history.at", &at)?,
            actor,
            change,
        })
    })
    .collect()
}

fn deliveries(connection: &Connection, id: i64) -> Result<Vec<DeliveryRecord>, StoreError> {
    let mut statement = connection.prepare_cached(
        "SELECT webhook_id, event_type, received_at, outcome FROM deliveries
         WHERE task_id = ?1 ORDER BY received_at, webhook_id",
    )?;
    let rows = statement.query_map([id], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get(1)?,
            row.get::<_, String>(2)?,
            row.get(3)?,
        ))
    })?;
    rows.map(|row| {
        let (webhook_id, event_type, received_at, outcome) = row?;
        Ok(DeliveryRecord {
            webhook_id,
            event_type,
            received_at: parse_time("deliveries.received_at", &received_at)?,
            outcome,
        })
    })
    .collect()
}
