//! floorwatch scheduler: receives signed incident webhooks, turns each
//! incident into one maintenance task, assigns a technician, stores tasks in
//! SQLite, and serves an operator page and a JSON API.
//!
//! Routes: `POST /webhooks` (alias `POST /schedule-maintenance`);
//! the JSON API `GET /api/v1/tasks`, `GET /api/v1/tasks/:id`,
//! `POST /api/v1/tasks/:id/{acknowledge,start,reassign,complete}` and
//! `GET /api/v1/openapi.json`; the pages `GET /`, `GET /tasks/:id`,
//! `GET|POST /login`, `POST /logout`, `POST /tasks/:id/:action`;
//! `GET /events` (server-sent events), `GET /metrics`, `GET /healthz`,
//! `GET /readyz`.

mod actions;
mod api;
pub mod assign;
pub mod auth;
mod chart;
pub mod config;
mod display;
pub mod error;
mod escalate;
mod forms;
pub mod lifecycle;
mod listing;
mod live;
mod methods;
mod metrics;
mod openapi;
mod page;
mod receive;
mod server;
pub mod store;
pub mod task;
mod task_page;
mod writer;

#[cfg(test)]
mod test_support;

pub use assign::{AssignmentPolicy, Roster};
pub use auth::hash_password;
pub use config::{ConfigError, SchedulerConfig};
pub use error::{ApiError, SchedulerError};
pub use server::{run, start, SchedulerHandle};
pub use store::{SqliteStore, StoreError, TaskStore};
pub use task::{Task, TaskStatus};
