//! Task storage behind the [`TaskStore`] trait, with SQLite as the embedded
//! backend.
//!
//! The trait is synchronous: callers on the async runtime run it through
//! `tokio::task::spawn_blocking`, which also suits a blocking PostgreSQL
//! client for a future backend.

mod sqlite;

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use floorwatch_protocol::{Event, IncidentData};
use serde::Serialize;

pub use sqlite::SqliteStore;

use crate::assign::Roster;
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

/// Filter and limit of a task listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskQuery {
    /// Only tasks with this status; all when `None`.
    pub status: Option<TaskStatus>,
    /// Maximum number of tasks, at most [`MAX_LIST_LIMIT`].
    pub limit: usize,
}

impl Default for TaskQuery {
    fn default() -> Self {
        Self {
            status: None,
            limit: DEFAULT_LIST_LIMIT,
        }
    }
}

/// Number of tasks by state, for the page header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TaskCounts {
    pub total: u64,
    pub open: u64,
    pub completed: u64,
    /// Open tasks whose condition is still active.
    pub active: u64,
}

/// A task with its history, oldest entry first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskDetail {
    #[serde(flatten)]
    pub task: Task,
    pub history: Vec<HistoryEntry>,
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("failed to create database directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to open database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
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
    Sqlite(#[from] rusqlite::Error),
    #[error("database column {column} contains invalid value {value:?}")]
    InvalidValue { column: &'static str, value: String },
    #[error("no technician to assign: the roster is empty")]
    EmptyRoster,
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

    /// Lists tasks, newest `opened_at` first.
    fn list_tasks(&self, query: &TaskQuery) -> Result<Vec<Task>, StoreError>;

    /// Returns one task with its history, or `None` when it does not exist.
    fn task(&self, id: i64) -> Result<Option<TaskDetail>, StoreError>;

    /// Counts tasks by state.
    fn count_tasks(&self) -> Result<TaskCounts, StoreError>;

    /// Runs a trivial query to check that the database responds.
    fn ping(&self) -> Result<(), StoreError>;
}
