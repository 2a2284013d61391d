//! SQLite backend of [`TaskStore`]: WAL journal, `user_version` migrations,
//! one connection behind a mutex.

mod action;
mod incident;
mod query;
mod rows;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use floorwatch_protocol::Id;
use rusqlite::{params, Connection, TransactionBehavior};

use self::rows::format_time;
use super::{
    ActionOutcome, Delivery, DeliveryBody, Escalation, Outcome, StoreError, TaskCounts, TaskDetail,
    TaskQuery, TaskStore,
};
use crate::assign::Roster;
use crate::lifecycle::Action;
use crate::task::Task;

/// Schema migrations. `user_version` is the number applied so far. Each
/// step runs in its own transaction, and open applies the missing ones.
const MIGRATIONS: [&str; 2] = [include_str!("schema_v1.sql"), include_str!("schema_v2.sql")];

/// How long a seen `webhook-id` is kept. Senders retry for about a day, and
/// a replay after pruning still changes nothing, because the task keeps
/// `last_event_seq` and ignores events that are not newer.
pub const DELIVERY_RETENTION: chrono::Duration = chrono::Duration::days(30);

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
            std::fs::create_dir_all(dir).map_err(|error| StoreError::CreateDir {
                path: dir.to_path_buf(),
                error,
            })?;
        }
        let open_error = |error| StoreError::Open {
            path: path.to_path_buf(),
            error,
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

/// Records one delivery inside `tx` and applies its effect.
fn record_in(
    tx: &Connection,
    delivery: &Delivery,
    roster: &Roster,
    keep_open_on_resolve: bool,
) -> Result<Outcome, StoreError> {
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
            incident::apply_incident(tx, event, delivery, roster, keep_open_on_resolve)?
        }
    };
    tx.execute(
        "UPDATE deliveries SET outcome = ?1, task_id = ?2 WHERE webhook_id = ?3",
        params![outcome.as_str(), outcome.task_id(), delivery.webhook_id],
    )?;
    Ok(outcome)
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
        let outcome = record_in(&tx, delivery, roster, keep_open_on_resolve)?;
        tx.commit()?;
        Ok(outcome)
    }

    fn record_deliveries(
        &self,
        deliveries: &[Delivery],
        roster: &Roster,
        keep_open_on_resolve: bool,
    ) -> Result<Vec<Result<Outcome, StoreError>>, StoreError> {
        let mut connection = self.lock();
        let mut tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut outcomes = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            // A savepoint per delivery, so that one failing delivery is
            // rolled back alone and the others still commit.
            let savepoint = tx.savepoint()?;
            match record_in(&savepoint, delivery, roster, keep_open_on_resolve) {
                Ok(outcome) => {
                    savepoint.commit()?;
                    outcomes.push(Ok(outcome));
                }
                Err(error) => {
                    drop(savepoint);
                    outcomes.push(Err(error));
                }
            }
        }
        tx.commit()?;
        Ok(outcomes)
    }

    fn list_tasks(&self, query: &TaskQuery) -> Result<Vec<Task>, StoreError> {
        query::list_tasks(&self.lock(), query)
    }

    fn count_matching(&self, query: &TaskQuery) -> Result<u64, StoreError> {
        query::count_matching(&self.lock(), query)
    }

    fn task(&self, id: i64) -> Result<Option<TaskDetail>, StoreError> {
        query::task_detail(&self.lock(), id)
    }

    fn count_tasks(&self) -> Result<TaskCounts, StoreError> {
        query::count_tasks(&self.lock())
    }

    fn apply_action(
        &self,
        task_id: i64,
        action: &Action,
        actor: &str,
        roster: &[Id],
        now: DateTime<Utc>,
    ) -> Result<ActionOutcome, StoreError> {
        let mut connection = self.lock();
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let outcome = action::apply_action(&tx, task_id, action, actor, roster, now)?;
        if matches!(outcome, ActionOutcome::Applied(_)) {
            tx.commit()?;
        }
        Ok(outcome)
    }

    fn escalate(
        &self,
        roster: &Roster,
        after: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<Escalation>, StoreError> {
        let mut connection = self.lock();
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let escalations = action::escalate(&tx, roster, after, now)?;
        tx.commit()?;
        Ok(escalations)
    }

    fn ping(&self) -> Result<(), StoreError> {
        let connection = self.lock();
        connection.query_row("SELECT 1", [], |_| Ok(()))?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "sqlite_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "sqlite_lifecycle_tests.rs"]
mod lifecycle_tests;
