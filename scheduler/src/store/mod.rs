//! Task storage behind the [`TaskStore`] trait, with SQLite as the embedded
//! backend.
//!
//! The trait is synchronous: callers on the async runtime run it through
//! `tokio::task::spawn_blocking`, which also suits a blocking PostgreSQL
//! client for a future backend.

mod sqlite;

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use floorwatch_protocol::{Event, Id, IncidentData, WindowPoint};
use serde::Serialize;

pub use sqlite::SqliteStore;

use crate::assign::Roster;
use crate::lifecycle::{Action, ActionError};
use crate::task::{HistoryEntry, Task, TaskStatus};

/// Default number of tasks a listing returns.
pub const DEFAULT_LIST_LIMIT: usize = 100;
/// Maximum number of tasks a listing returns.
pub const MAX_LIST_LIMIT: usize = 1000;

/// One verified webhook delivery.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The `webhook-id` header: the idempotency key.
    pub webhook_id: String,
    pub received_at: DateTime<Utc>,
    pub body: DeliveryBody,
}

/// The parsed body of a delivery.
#[derive(Debug, Clone)]
pub enum DeliveryBody {
    /// An `incident.opened`, `incident.updated` or `incident.resolved` event.
    Incident(Box<Event<IncidentData>>),
    /// An event type the scheduler does not act on; it is only recorded.
    Ignored { event_type: String },
}

impl DeliveryBody {
    /// Returns the event type name.
    pub fn event_type(&self) -> &str {
        match self {
            DeliveryBody::Incident(event) => event.event_type.as_str(),
            DeliveryBody::Ignored { event_type } => event_type,
        }
    }
}

/// The effect of recording a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The `webhook-id` was seen before; nothing changed.
    Duplicate,
    /// The event type is not acted on; the delivery was recorded.
    Ignored,
    /// A new task was created and assigned.
    Created { task_id: i64, assignee: String },
    /// The task of the incident was changed.
    Updated { task_id: i64 },
    /// The task already reflects a newer event; nothing changed.
    Stale { task_id: i64, last_event_seq: u64 },
}

impl Outcome {
    /// Returns the outcome name stored with the delivery and sent in
    /// responses.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Duplicate => "duplicate",
            Outcome::Ignored => "ignored",
            Outcome::Created { .. } => "created",
            Outcome::Updated { .. } => "updated",
            Outcome::Stale { .. } => "stale",
        }
    }

    /// Returns the task the delivery concerned, if any.
    pub fn task_id(&self) -> Option<i64> {
        match self {
            Outcome::Created { task_id, .. }
            | Outcome::Updated { task_id }
            | Outcome::Stale { task_id, .. } => Some(*task_id),
            Outcome::Duplicate | Outcome::Ignored => None,
        }
    }
}

/// Sort order of a task listing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortKey {
    /// By the incident's opening time.
    #[default]
    OpenedAt,
    /// Critical before warning, then newest first.
    Severity,
}

impl SortKey {
    /// Returns the name used in query strings.
    pub fn as_str(self) -> &'static str {
        match self {
            SortKey::OpenedAt => "opened_at",
            SortKey::Severity => "severity",
        }
    }

    /// Parses a query-string name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "opened_at" => Some(SortKey::OpenedAt),
            "severity" => Some(SortKey::Severity),
            _ => None,
        }
    }
}

/// Filters, order and page of a task listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskQuery {
    /// Only tasks with this status; all when `None`.
    pub status: Option<TaskStatus>,
    pub site: Option<String>,
    pub sensor: Option<String>,
    pub assignee: Option<String>,
    pub sort: SortKey,
    /// Largest first when true.
    pub descending: bool,
    /// Maximum number of tasks, at most [`MAX_LIST_LIMIT`].
    pub limit: usize,
    /// Number of matching tasks to skip.
    pub offset: usize,
}

impl Default for TaskQuery {
    fn default() -> Self {
        Self {
            status: None,
            site: None,
            sensor: None,
            assignee: None,
            sort: SortKey::OpenedAt,
            descending: true,
            limit: DEFAULT_LIST_LIMIT,
            offset: 0,
        }
    }
}

/// Number of tasks by state, for the page header and the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TaskCounts {
    pub total: u64,
    pub open: u64,
    pub acknowledged: u64,
    pub in_progress: u64,
    pub completed: u64,
    /// Tasks not completed whose condition is still active.
    pub active: u64,
}

impl TaskCounts {
    /// Returns the number of tasks with `status`.
    pub fn by_status(&self, status: TaskStatus) -> u64 {
        match status {
            TaskStatus::Open => self.open,
            TaskStatus::Acknowledged => self.acknowledged,
            TaskStatus::InProgress => self.in_progress,
            TaskStatus::Completed => self.completed,
        }
    }
}

/// One recorded webhook delivery of a task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryRecord {
    pub webhook_id: String,
    pub event_type: String,
    pub received_at: DateTime<Utc>,
    /// `created`, `updated` or `stale`.
    pub outcome: String,
}

/// A task with its history, readings window and deliveries, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskDetail {
    #[serde(flatten)]
    pub task: Task,
    pub history: Vec<HistoryEntry>,
    /// Readings of the latest event that carried a window.
    pub window: Vec<WindowPoint>,
    pub deliveries: Vec<DeliveryRecord>,
}

/// The result of a technician action.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionOutcome {
    /// The task does not exist.
    NotFound,
    /// The action does not apply to the task's state; nothing changed.
    Rejected(ActionError),
    /// The task after the change.
    Applied(Box<Task>),
}

/// A task that escalation gave to another technician.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalation {
    pub task_id: i64,
    pub from: String,
    pub to: String,
}

/// A storage failure.
///
/// The server logs these errors with `Display` only, so each message
/// includes the underlying I/O or SQLite error and `source()` returns
/// `None`, which keeps a chain printer from showing that error twice.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("failed to create database directory {path}: {error}")]
    CreateDir {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("failed to open database {path}: {error}")]
    Open {
        path: PathBuf,
        error: rusqlite::Error,
    },
    #[error(
        "database {path} has schema version {found}, newer than the supported \
         {supported}: upgrade floorwatch or use another database file"
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("database query failed: {0}")]
    Sqlite(rusqlite::Error),
    #[error("database column {column} contains invalid value {value:?}")]
    InvalidValue { column: &'static str, value: String },
    #[error("no technician to assign: the roster is empty")]
    EmptyRoster,
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        StoreError::Sqlite(error)
    }
}

/// Storage of tasks, their history, seen deliveries and the assignment
/// cursor.
pub trait TaskStore: Send + Sync {
    /// Records a delivery and applies its effect in one transaction.
    ///
    /// A `webhook_id` that was recorded before returns
    /// [`Outcome::Duplicate`] and changes nothing. A new task is assigned
    /// with `roster`, and `keep_open_on_resolve` decides whether a resolved
    /// incident completes its task.
    fn record_delivery(
        &self,
        delivery: &Delivery,
        roster: &Roster,
        keep_open_on_resolve: bool,
    ) -> Result<Outcome, StoreError>;

    /// Records several deliveries in one transaction, so that they share
    /// one disk flush, and returns one result per delivery in order.
    ///
    /// A delivery that fails is rolled back alone. The outer error means
    /// the commit failed and none of them was stored.
    fn record_deliveries(
        &self,
        deliveries: &[Delivery],
        roster: &Roster,
        keep_open_on_resolve: bool,
    ) -> Result<Vec<Result<Outcome, StoreError>>, StoreError> {
        Ok(deliveries
            .iter()
            .map(|delivery| self.record_delivery(delivery, roster, keep_open_on_resolve))
            .collect())
    }

    /// Lists the tasks matching `query` in its order.
    fn list_tasks(&self, query: &TaskQuery) -> Result<Vec<Task>, StoreError>;

    /// Counts the tasks matching the filters of `query`, ignoring its page.
    fn count_matching(&self, query: &TaskQuery) -> Result<u64, StoreError>;

    /// Returns one task with its history, or `None` when it does not exist.
    fn task(&self, id: i64) -> Result<Option<TaskDetail>, StoreError>;

    /// Counts tasks by state.
    fn count_tasks(&self) -> Result<TaskCounts, StoreError>;

    /// Applies a technician action by `actor` and records it in the
    /// history. A reassignment must name a member of `roster`.
    fn apply_action(
        &self,
        task_id: i64,
        action: &Action,
        actor: &str,
        roster: &[Id],
        now: DateTime<Utc>,
    ) -> Result<ActionOutcome, StoreError>;

    /// Gives open tasks whose assignee has not acknowledged them within
    /// `after` to the next candidate of `roster`.
    fn escalate(
        &self,
        roster: &Roster,
        after: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<Escalation>, StoreError>;

    /// Runs a trivial query to check that the database responds.
    fn ping(&self) -> Result<(), StoreError>;
}
