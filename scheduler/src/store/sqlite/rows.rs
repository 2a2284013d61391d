//! Conversions between SQLite rows and values and the task types.

use chrono::{DateTime, SecondsFormat, Utc};
use floorwatch_protocol::{Condition, Severity};
use rusqlite::Row;

use crate::store::StoreError;
use crate::task::{Task, TaskStatus};

/// Columns of `tasks` in the order [`read_task_row`] reads them.
pub const TASK_COLUMNS: &str = "id, incident_id, site, sensor, metric, rule, value, threshold, \
     unit, severity, status, condition_cleared, assignee, opened_at, resolved_at, updated_at, \
     last_event_seq, rule_condition, clear_threshold, COALESCE(assigned_at, created_at)";

/// Reads one row selected with [`TASK_COLUMNS`]. The outer result carries
/// SQLite errors, the inner one invalid stored values.
pub fn read_task_row(row: &Row<'_>) -> rusqlite::Result<Result<Task, StoreError>> {
    let severity: String = row.get(9)?;
    let status: String = row.get(10)?;
    let opened_at: String = row.get(13)?;
    let resolved_at: Option<String> = row.get(14)?;
    let updated_at: String = row.get(15)?;
    let seq: i64 = row.get(16)?;
    let condition: String = row.get(17)?;
    let assigned_at: String = row.get(19)?;
    let (id, incident_id, site, sensor, metric, rule) = (
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    );
    let (value, threshold, unit, condition_cleared, assignee, clear_threshold) = (
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(11)?,
        row.get(12)?,
        row.get(18)?,
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
            condition: parse_condition(&condition)?,
            clear_threshold,
            status: parse_status(&status)?,
            condition_cleared,
            assignee,
            assigned_at: parse_time("tasks.assigned_at", &assigned_at)?,
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
pub fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub fn parse_time(column: &'static str, text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|_| StoreError::InvalidValue {
            column,
            value: text.to_owned(),
        })
}

pub fn parse_optional_time(
    column: &'static str,
    text: Option<String>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    text.map(|text| parse_time(column, &text)).transpose()
}

pub fn parse_status(text: &str) -> Result<TaskStatus, StoreError> {
    TaskStatus::parse(text).ok_or_else(|| StoreError::InvalidValue {
        column: "tasks.status",
        value: text.to_owned(),
    })
}

pub fn parse_severity(text: &str) -> Result<Severity, StoreError> {
    match text {
        "warning" => Ok(Severity::Warning),
        "critical" => Ok(Severity::Critical),
        _ => Err(StoreError::InvalidValue {
            column: "tasks.severity",
            value: text.to_owned(),
        }),
    }
}

/// Returns the stored name of a rule condition.
pub fn condition_name(condition: Condition) -> &'static str {
    match condition {
        Condition::Above => "above",
        Condition::Below => "below",
    }
}

fn parse_condition(text: &str) -> Result<Condition, StoreError> {
    match text {
        "above" => Ok(Condition::Above),
        "below" => Ok(Condition::Below),
        _ => Err(StoreError::InvalidValue {
            column: "tasks.rule_condition",
            value: text.to_owned(),
        }),
    }
}

/// Converts a sequence number for SQLite, whose integers are signed. Values
/// above `i64::MAX` are stored as `i64::MAX`.
pub fn seq_to_sql(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

pub fn seq_from_sql(seq: i64) -> Result<u64, StoreError> {
    u64::try_from(seq).map_err(|_| StoreError::InvalidValue {
        column: "tasks.last_event_seq",
        value: seq.to_string(),
    })
}
