//! The operator page (`GET /`): the task table rendered on the server with
//! tera. Every value from sensors or the bridge is escaped by tera's
//! autoescape, which is on for templates whose names end in `.html`.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use poem::handler;
use poem::web::{Data, Html, Query};
use serde::{Deserialize, Serialize};
use tera::{Context, Tera};

use crate::error::ApiError;
use crate::server::AppState;
use crate::store::{TaskCounts, TaskQuery, DEFAULT_LIST_LIMIT};
use crate::task::{Task, TaskStatus};

const INDEX: &str = "index.html";

/// The compiled page templates.
#[derive(Debug)]
pub struct Page {
    tera: Tera,
}

/// One table row, with every value already formatted as text.
#[derive(Debug, Serialize)]
struct TaskRow<'a> {
    opened_at: String,
    opened_at_iso: String,
    /// Value with its unit, such as `31.5 °C`.
    reading: String,
    sensor: &'a str,
    site: &'a str,
    assignee: &'a str,
    status: &'static str,
    severity: &'static str,
    /// `active` or `cleared`.
    condition: &'static str,
}

impl<'a> TaskRow<'a> {
    fn new(task: &'a Task) -> Self {
        Self {
            opened_at: format_time(task.opened_at),
            opened_at_iso: task.opened_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            reading: format!("{} {}", task.value, task.unit),
            sensor: &task.sensor,
            site: &task.site,
            assignee: &task.assignee,
            status: task.status.as_str(),
            severity: task.severity.as_str(),
            condition: if task.condition_cleared {
                "cleared"
            } else {
                "active"
            },
        }
    }
}

/// Formats a time for people: `2024-05-01 12:00:00 UTC`. tera's date
/// filters are not compiled in, so times are formatted here.
fn format_time(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

impl Page {
    /// Compiles the embedded templates.
    pub fn new() -> Result<Self, tera::Error> {
        let mut tera = Tera::default();
        tera.add_raw_template(INDEX, include_str!("templates/index.html"))?;
        Ok(Self { tera })
    }

    /// Renders the page for `tasks` (already ordered) and `counts`.
    /// `filter` marks the selected status link; `now` is shown as the time
    /// of the snapshot.
    pub fn render(
        &self,
        tasks: &[Task],
        counts: &TaskCounts,
        filter: Option<TaskStatus>,
        now: DateTime<Utc>,
    ) -> Result<String, tera::Error> {
        let rows: Vec<TaskRow<'_>> = tasks.iter().map(TaskRow::new).collect();
        let mut context = Context::new();
        context.insert("tasks", &rows);
        context.insert("counts", counts);
        context.insert("filter", &filter.map(TaskStatus::as_str));
        context.insert("rendered_at", &format_time(now));
        self.tera.render(INDEX, &context)
    }
}

/// Query parameters of the operator page.
#[derive(Debug, Default, Deserialize)]
pub struct PageParams {
    /// `open` or `completed`; any other value shows all tasks.
    status: Option<String>,
}

/// Serves the operator page (`GET /`), showing the newest
/// [`DEFAULT_LIST_LIMIT`] tasks.
///
/// TODO: add pagination; tasks past the limit are counted in the header but
/// not listed.
#[handler]
pub async fn operator_page(
    Query(params): Query<PageParams>,
    Data(state): Data<&Arc<AppState>>,
) -> poem::Result<Html<String>> {
    let filter = params.status.as_deref().and_then(TaskStatus::parse);
    let query = TaskQuery {
        status: filter,
        limit: DEFAULT_LIST_LIMIT,
    };
    let (tasks, counts) = state
        .run_store(move |store| Ok((store.list_tasks(&query)?, store.count_tasks()?)))
        .await?;
    let html = state
        .page
        .render(&tasks, &counts, filter, Utc::now())
        .map_err(|error| {
            tracing::error!(%error, "operator page failed to render");
            ApiError::new(
                poem::http::StatusCode::INTERNAL_SERVER_ERROR,
                "render_error",
                "the page failed to render",
            )
        })?;
    Ok(Html(html))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use floorwatch_protocol::Severity;

    use super::*;

    fn task(sensor: &str, unit: &str) -> Task {
        let opened_at = Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap();
        Task {
            id: 1,
            incident_id: "inc-1".into(),
            site: "plant-a".into(),
            sensor: sensor.into(),
            metric: "temperature".into(),
            rule: "too-hot".into(),
            value: 31.5,
            threshold: 30.0,
            unit: unit.into(),
            severity: Severity::Critical,
            status: TaskStatus::Open,
            condition_cleared: true,
            assignee: "alex".into(),
            opened_at,
            resolved_at: None,
            updated_at: opened_at,
            last_event_seq: 1,
        }
    }

    fn render(tasks: &[Task]) -> String {
        let counts = TaskCounts {
            total: tasks.len() as u64,
            ..TaskCounts::default()
        };
        Page::new()
            .unwrap()
            .render(tasks, &counts, None, Utc::now())
            .unwrap()
    }

    #[test]
    fn rows_show_time_reading_sensor() {
        let html = render(&[task("oven-1", "°C")]);
        assert!(html.contains("2024-05-01 12:00:00 UTC"), "time missing");
        assert!(html.contains("31.5 °C"), "temperature missing");
        assert!(html.contains("<td>oven-1</td>"), "sensor missing");
        assert!(html.contains("<td>alex</td>"), "assignee missing");
        assert!(html.contains(">cleared</span>"), "condition missing");
        assert!(!html.contains("No maintenance tasks yet"));
    }

    #[test]
    fn empty_state_is_shown() {
        let html = render(&[]);
        assert!(html.contains("No maintenance tasks yet"));
        assert!(!html.contains("<tbody>"));
    }

    #[test]
    fn untrusted_text_is_escaped() {
        let script = "<script>alert(1)</script>";
        let html = render(&[task(script, script)]);
        assert!(!html.contains(script), "raw script tag in page");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2F;script&gt;"));
    }
}
