//! Technician actions and escalation inside a store transaction.

use chrono::{DateTime, Duration, Utc};
use floorwatch_protocol::Id;
use rusqlite::{params, Connection, OptionalExtension};

use super::incident::{add_history, choose};
use super::rows::{format_time, parse_status, read_task_row, TASK_COLUMNS};
use crate::assign::Roster;
use crate::lifecycle::{plan_action, Action};
use crate::store::{ActionOutcome, Escalation, StoreError};
use crate::task::{Task, TaskStatus, ACTOR_SCHEDULER};

/// Applies `action` by `actor` to task `task_id`.
pub fn apply_action(
    tx: &Connection,
    task_id: i64,
    action: &Action,
    actor: &str,
    roster: &[Id],
    now: DateTime<Utc>,
) -> Result<ActionOutcome, StoreError> {
    let row = tx
        .query_row(
            "SELECT status, assignee FROM tasks WHERE id = ?1",
            [task_id],
            |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)),
        )
        .optional()?;
    let Some((status, assignee)) = row else {
        return Ok(ActionOutcome::NotFound);
    };
    let effect = match plan_action(action, parse_status(&status)?, &assignee, roster) {
        Ok(effect) => effect,
        Err(error) => return Ok(ActionOutcome::Rejected(error)),
    };

    let now_text = format_time(now);
    tx.execute(
        "UPDATE tasks SET status = ?1, updated_at = ?2 WHERE id = ?3",
        params![effect.status.as_str(), now_text, task_id],
    )?;
    if let Some(new_assignee) = &effect.assignee {
        tx.execute(
            "UPDATE tasks SET assignee = ?1, assigned_at = ?2 WHERE id = ?3",
            params![new_assignee, now_text, task_id],
        )?;
    }
    add_history(tx, task_id, now, actor, &effect.change)?;
    Ok(ActionOutcome::Applied(Box::new(read_task(tx, task_id)?)))
}

fn read_task(tx: &Connection, task_id: i64) -> Result<Task, StoreError> {
    let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1");
    tx.query_row(&sql, [task_id], read_task_row)?
}

/// Gives every open task assigned before `now - after` to another
/// candidate, and records each change.
///
/// A task with no other candidate stays with its assignee. Its assignment
/// time is reset, so the note repeats once per `after`, not on every tick.
pub fn escalate(
    tx: &Connection,
    roster: &Roster,
    after: Duration,
    now: DateTime<Utc>,
) -> Result<Vec<Escalation>, StoreError> {
    let cutoff = format_time(now - after);
    let overdue: Vec<(i64, String, String, String)> = {
        let mut statement = tx.prepare_cached(
            "SELECT id, assignee, site, metric FROM tasks
             WHERE status = ?1 AND COALESCE(assigned_at, created_at) < ?2
             ORDER BY id",
        )?;
        let rows = statement.query_map(params![TaskStatus::Open.as_str(), cutoff], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })?;
        rows.collect::<Result<_, _>>()?
    };

    let waited = after.num_seconds();
    let mut escalations = Vec::new();
    for (task_id, from, site, metric) in overdue {
        let chosen = choose(tx, roster, &site, &metric, now, Some(&from))?;
        let to = chosen.as_ref().map(|a| a.technician.to_string());
        let change = match &chosen {
            Some(assignment) => format!(
                "escalated from {from} to {}: not acknowledged within {waited} s ({})",
                assignment.technician, assignment.reason
            ),
            None => {
                format!("not acknowledged within {waited} s; no other technician to escalate to")
            }
        };
        tx.execute(
            "UPDATE tasks SET assignee = ?1, assigned_at = ?2, updated_at = ?2 WHERE id = ?3",
            params![to.as_deref().unwrap_or(&from), format_time(now), task_id],
        )?;
        add_history(tx, task_id, now, ACTOR_SCHEDULER, &change)?;
        if let Some(to) = to {
            escalations.push(Escalation { task_id, from, to });
        }
    }
    Ok(escalations)
}
