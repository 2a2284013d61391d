//! The task page (`GET /tasks/:id`): details, the action forms, the
//! readings chart with its thresholds, the history and the deliveries.

use std::sync::Arc;

use floorwatch_protocol::Condition;
use poem::web::{Data, Html, Path};
use poem::{handler, Request};
use serde::Serialize;
use tera::Context;

use crate::chart;
use crate::display::{format_reading, shorten, MAX_HISTORY_CHARS};
use crate::error::ApiError;
use crate::page::{format_time, TaskRow, Viewer};
use crate::server::AppState;
use crate::store::TaskDetail;
use crate::task::TaskStatus;

/// The task's fields formatted for the page.
#[derive(Debug, Serialize)]
struct TaskView<'a> {
    #[serde(flatten)]
    row: TaskRow<'a>,
    incident_id: &'a str,
    metric: &'a str,
    rule: &'a str,
    threshold: String,
    /// `above` or `below`.
    condition_text: &'static str,
    assigned_at: String,
    resolved_at: Option<String>,
}

#[derive(Debug, Serialize)]
struct HistoryView<'a> {
    at: String,
    actor: &'a str,
    /// The stored text, shortened to [`MAX_HISTORY_CHARS`].
    change: String,
}

#[derive(Debug, Serialize)]
struct DeliveryView<'a> {
    received_at: String,
    event_type: &'a str,
    webhook_id: &'a str,
    outcome: &'a str,
}

/// Returns the status actions offered for a task in `status`; reassign is
/// offered separately while the task is active.
fn actions_for(status: TaskStatus) -> &'static [&'static str] {
    match status {
        TaskStatus::Open => &["acknowledge", "start", "complete"],
        TaskStatus::Acknowledged => &["start", "complete"],
        TaskStatus::InProgress => &["complete"],
        TaskStatus::Completed => &[],
    }
}

/// Builds the page context for `detail`; `error` is shown above the
/// details after a rejected action.
pub fn task_context(
    detail: &TaskDetail,
    technicians: &[String],
    viewer: &Viewer,
    error: Option<&str>,
) -> Context {
    let task = &detail.task;
    let view = TaskView {
        row: TaskRow::new(task),
        incident_id: &task.incident_id,
        metric: &task.metric,
        rule: &task.rule,
        threshold: format_reading(task.threshold, &task.unit),
        condition_text: match task.condition {
            Condition::Above => "above",
            Condition::Below => "below",
        },
        assigned_at: format_time(task.assigned_at),
        resolved_at: task.resolved_at.map(format_time),
    };
    let history: Vec<HistoryView<'_>> = detail
        .history
        .iter()
        .map(|entry| HistoryView {
            at: format_time(entry.at),
            actor: &entry.actor,
            change: shorten(&entry.change, MAX_HISTORY_CHARS),
        })
        .collect();
    let deliveries: Vec<DeliveryView<'_>> = detail
        .deliveries
        .iter()
        .map(|delivery| DeliveryView {
            received_at: format_time(delivery.received_at),
            event_type: &delivery.event_type,
            webhook_id: &delivery.webhook_id,
            outcome: &delivery.outcome,
        })
        .collect();
    let chart = chart::layout(
        &detail.window,
        task.threshold,
        task.clear_threshold,
        &task.unit,
    );

    let mut context = Context::new();
    context.insert("task", &view);
    context.insert("history", &history);
    context.insert("deliveries", &deliveries);
    context.insert("chart", &chart);
    context.insert("actions", actions_for(task.status));
    context.insert("technicians", technicians);
    context.insert("viewer", viewer);
    context.insert("error", &error);
    context
}

/// Loads task `id` for the page, or returns 404 `task_not_found`.
pub async fn load(state: &AppState, id: &str) -> Result<TaskDetail, ApiError> {
    let task_id: i64 = id.parse().map_err(|_| ApiError::task_not_found(id))?;
    state
        .run_store(move |store| store.task(task_id))
        .await?
        .ok_or_else(|| ApiError::task_not_found(id))
}

/// Serves the task page (`GET /tasks/:id`).
#[handler]
pub async fn task_page(
    request: &Request,
    Path(id): Path<String>,
    Data(state): Data<&Arc<AppState>>,
) -> poem::Result<Html<String>> {
    let detail = load(state, &id).await?;
    let technicians: Vec<String> = state.roster.ids().iter().map(ToString::to_string).collect();
    let viewer = Viewer::of(state, request);
    let context = task_context(&detail, &technicians, &viewer, None);
    Ok(Html(state.page.render("task.html", &context)?))
}
