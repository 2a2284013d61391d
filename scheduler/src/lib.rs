//! floorwatch scheduler: receives signed incident webhooks, turns each
//! incident into one maintenance task, assigns a technician, stores tasks in
//! SQLite, and serves an operator page and a JSON API.
//!
//! Routes: `POST /webhooks` (alias `POST /schedule-maintenance`),
//! `GET /api/v1/tasks`, `GET /api/v1/tasks/:id`, `GET /` (operator page),
//! `GET /events` (server-sent events), `GET /healthz`, `GET /readyz`.

mod api;
pub mod assign;
pub mod config;
pub mod error;
mod live;
mod page;
mod receive;
mod server;
pub mod store;
pub mod task;

#[cfg(test)]
mod test_support;

pub use assign::{AssignmentPolicy, Roster};
pub use config::{ConfigError, SchedulerConfig};
pub use error::{ApiError, SchedulerError};
pub use server::{run, start, SchedulerHandle};
pub use store::{SqliteStore, StoreError, TaskStore};
pub use task::{Task, TaskStatus};
