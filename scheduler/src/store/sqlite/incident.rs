//! Applying incident events to tasks, and choosing assignees, inside a
//! store transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use floorwatch_protocol::{Event, IncidentData};
use rusqlite::{params, Connection, OptionalExtension};

use super::rows::{
    condition_name, format_time, parse_optional_time, parse_severity, parse_status, seq_from_sql,
    seq_to_sql,
};
use crate::assign::{severity_weight, AssignRequest, Assignment, AssignmentPolicy, Roster};
use crate::store::{Delivery, Outcome, StoreError};
use crate::task::{plan_change, Change, Effect, TaskState, ACTOR_BRIDGE};

/// Applies one incident event to its task inside `tx`.
pub fn apply_incident(
    tx: &Connection,
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
            update_task(tx, task_id, data, &effect, now)?;
            add_history(tx, task_id, now, ACTOR_BRIDGE, &effect.change)?;
            Ok(Outcome::Updated { task_id })
        }
        Change::Create(effect) => {
            let assignment = choose(
                tx,
                roster,
                data.site.as_str(),
                data.metric.as_str(),
                now,
                None,
            )?
            .ok_or(StoreError::EmptyRoster)?;
            let assignee = assignment.technician.to_string();
            let task_id = insert_task(tx, data, &effect, &assignee, now)?;
            add_history(tx, task_id, now, ACTOR_BRIDGE, &effect.change)?;
            let note = format!("assigned to {assignee} ({})", assignment.reason);
            add_history(tx, task_id, now, ACTOR_BRIDGE, &note)?;
            Ok(Outcome::Created { task_id, assignee })
        }
    }
}

fn load_state(tx: &Connection, incident_id: &str) -> Result<Option<TaskState>, StoreError> {
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

/// Chooses a technician with `roster` and stores the advanced cursor.
/// Returns `None` when nobody but `exclude` is on the roster.
pub fn choose(
    tx: &Connection,
    roster: &Roster,
    site: &str,
    metric: &str,
    now: DateTime<Utc>,
    exclude: Option<&str>,
) -> Result<Option<Assignment>, StoreError> {
    let cursor: i64 = tx
        .query_row(
            "SELECT next FROM assignment_cursor WHERE id = 1",
            [],
            |row| row.get(0),
        )
        .optional()?
        .unwrap_or(0);
    // Only the least-loaded policy reads the load, and computing it reads
    // every active task, so other policies skip it.
    let load = if roster.policy == AssignmentPolicy::LeastLoaded {
        active_load(tx)?
    } else {
        HashMap::new()
    };
    let request = AssignRequest {
        site,
        metric,
        now,
        cursor: u64::try_from(cursor).unwrap_or(0),
        load: &load,
        exclude,
    };
    let Some(assignment) = roster.choose(&request, &mut rand::thread_rng()) else {
        return Ok(None);
    };
    tx.execute(
        "INSERT INTO assignment_cursor (id, next) VALUES (1, ?1)
         ON CONFLICT (id) DO UPDATE SET next = excluded.next",
        [seq_to_sql(assignment.next_cursor)],
    )?;
    Ok(Some(assignment))
}

/// Returns the active work of each technician, weighted by severity.
fn active_load(tx: &Connection) -> Result<HashMap<String, u64>, StoreError> {
    let mut statement = tx.prepare_cached(
        "SELECT assignee, severity, COUNT(*) FROM tasks
         WHERE status != 'completed' GROUP BY assignee, severity",
    )?;
    let mut load = HashMap::new();
    let rows = statement.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (assignee, severity, count) = row?;
        let weight = severity_weight(parse_severity(&severity)?);
        *load.entry(assignee).or_insert(0) += weight * count.unsigned_abs();
    }
    Ok(load)
}

fn insert_task(
    tx: &Connection,
    data: &IncidentData,
    effect: &Effect,
    assignee: &str,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    tx.execute(
        "INSERT INTO tasks (incident_id, site, sensor, metric, rule, value, threshold, unit,
             severity, status, condition_cleared, assignee, opened_at, resolved_at,
             created_at, updated_at, last_event_seq, rule_condition, clear_threshold,
             readings, assigned_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15, ?16,
             ?17, ?18, ?19, ?15)",
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
            condition_name(data.condition),
            data.clear_threshold,
            window_json(data),
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

fn update_task(
    tx: &Connection,
    task_id: i64,
    data: &IncidentData,
    effect: &Effect,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    // An event without a window keeps the stored one.
    let readings = (!data.window.is_empty()).then(|| window_json(data));
    tx.execute(
        "UPDATE tasks SET value = ?1, severity = ?2, status = ?3, condition_cleared = ?4,
             resolved_at = ?5, updated_at = ?6, last_event_seq = ?7,
             readings = COALESCE(?8, readings)
         WHERE id = ?9",
        params![
            effect.value,
            effect.severity.as_str(),
            effect.status.as_str(),
            effect.condition_cleared,
            effect.resolved_at.map(format_time),
            format_time(now),
            seq_to_sql(effect.last_event_seq),
            readings,
            task_id,
        ],
    )?;
    Ok(())
}

fn window_json(data: &IncidentData) -> String {
    // The window was parsed from JSON, so its values are finite, and
    // serde_json fails to serialize only non-finite floats. An empty list
    // is the fallback.
    serde_json::to_string(&data.window).unwrap_or_else(|_| "[]".to_owned())
}

/// Appends one line to a task's history.
pub fn add_history(
    tx: &Connection,
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
