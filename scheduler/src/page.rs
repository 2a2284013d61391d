//! The operator page (`GET /`): the task table with filters, sorting and
//! pagination, rendered on the server with tera. Every value from sensors
//! or the bridge is escaped by tera's autoescape, which is on for templates
//! whose names end in `.html`.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use poem::http::StatusCode;
use poem::web::{Data, Html, Query};
use poem::{handler, Request};
use serde::Serialize;
use tera::{Context, Tera};

use crate::display::format_reading;
use crate::error::ApiError;
use crate::listing::ListParams;
use crate::server::AppState;
use crate::store::{SortKey, TaskCounts, TaskQuery};
use crate::task::{Task, TaskStatus};

/// The compiled page templates.
#[derive(Debug)]
pub struct Page {
    tera: Tera,
}

impl Page {
    /// Compiles the embedded templates.
    pub fn new() -> Result<Self, tera::Error> {
        let mut tera = Tera::default();
        tera.add_raw_templates([
            ("layout.html", include_str!("templates/layout.html")),
            ("index.html", include_str!("templates/index.html")),
            ("task.html", include_str!("templates/task.html")),
            ("login.html", include_str!("templates/login.html")),
            ("message.html", include_str!("templates/message.html")),
        ])?;
        Ok(Self { tera })
    }

    /// Renders `template` with `context`. A failure is logged and becomes
    /// 500 `render_error`.
    pub fn render(&self, template: &str, context: &Context) -> Result<String, ApiError> {
        self.tera.render(template, context).map_err(|error| {
            tracing::error!(template, error = ?error, "page failed to render");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "render_error",
                "the page failed to render",
            )
        })
    }
}

/// The session behind a page request, for the sign-in status and the forms.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Viewer {
    pub user: Option<String>,
    /// The session's CSRF token, repeated in every form.
    pub csrf: Option<String>,
    pub actions_enabled: bool,
    pub has_users: bool,
}

impl Viewer {
    /// Describes the session of `request`, if any.
    pub fn of(state: &AppState, request: &Request) -> Self {
        let session = state.auth.session(request);
        Self {
            user: session.as_ref().and_then(|s| s.user.clone()),
            csrf: session.map(|s| s.csrf),
            actions_enabled: state.auth.actions_enabled(),
            has_users: state.auth.has_users(),
        }
    }
}

/// One table row, with every value already formatted as text.
#[derive(Debug, Serialize)]
pub struct TaskRow<'a> {
    pub id: i64,
    pub opened_at: String,
    pub opened_at_iso: String,
    /// Value with at most two decimals and its shortened unit, such as
    /// `31.5 °C`.
    pub reading: String,
    pub sensor: &'a str,
    pub site: &'a str,
    pub assignee: &'a str,
    pub status: &'static str,
    pub severity: &'static str,
    /// `active` or `cleared`.
    pub condition: &'static str,
}

impl<'a> TaskRow<'a> {
    /// Formats `task` for the table.
    pub fn new(task: &'a Task) -> Self {
        Self {
            id: task.id,
            opened_at: format_time(task.opened_at),
            opened_at_iso: task.opened_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            reading: format_reading(task.value, &task.unit),
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
pub fn format_time(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A link of the status navigation.
#[derive(Debug, Serialize)]
struct StatusLink {
    label: &'static str,
    href: String,
    current: bool,
}

/// Previous and next page links.
#[derive(Debug, Serialize)]
struct Pages {
    current: usize,
    count: usize,
    matching: u64,
    prev: Option<String>,
    next: Option<String>,
}

/// Renders the task table for `tasks`, one page of the `matching` tasks
/// selected by `params`.
pub fn index_context(
    params: &ListParams,
    query: &TaskQuery,
    tasks: &[Task],
    matching: u64,
    counts: &TaskCounts,
    viewer: &Viewer,
    now: DateTime<Utc>,
) -> Context {
    let rows: Vec<TaskRow<'_>> = tasks.iter().map(TaskRow::new).collect();
    let mut context = Context::new();
    context.insert("tasks", &rows);
    context.insert("counts", counts);
    context.insert("viewer", viewer);
    context.insert("rendered_at", &format_time(now));
    context.insert("filter", &filter_values(query));
    context.insert("status_links", &status_links(params, query));
    let sort_link = |key: SortKey| {
        let descending = !(query.sort == key && query.descending);
        let order = if descending { "desc" } else { "asc" };
        link(&ListParams {
            sort: Some(key.as_str().to_owned()),
            order: Some(order.to_owned()),
            page: None,
            ..params.clone()
        })
    };
    let sort_links = serde_json::json!({
        "opened_at": sort_link(SortKey::OpenedAt),
        "severity": sort_link(SortKey::Severity),
    });
    context.insert("sort_links", &sort_links);
    context.insert("pages", &pages(params, query, matching));
    context
}

fn filter_values(query: &TaskQuery) -> serde_json::Value {
    serde_json::json!({
        "status": query.status.map(TaskStatus::as_str).unwrap_or_default(),
        "site": query.site.clone().unwrap_or_default(),
        "sensor": query.sensor.clone().unwrap_or_default(),
        "assignee": query.assignee.clone().unwrap_or_default(),
        "sort": query.sort.as_str(),
        "order": if query.descending { "desc" } else { "asc" },
        "limit": query.limit,
    })
}

fn status_links(params: &ListParams, query: &TaskQuery) -> Vec<StatusLink> {
    let all = std::iter::once(("All", None));
    let each = TaskStatus::ALL.into_iter().map(|status| {
        let label = match status {
            TaskStatus::Open => "Open",
            TaskStatus::Acknowledged => "Acknowledged",
            TaskStatus::InProgress => "In progress",
            TaskStatus::Completed => "Completed",
        };
        (label, Some(status))
    });
    all.chain(each)
        .map(|(label, status)| StatusLink {
            label,
            href: link(&ListParams {
                status: status.map(|s| s.as_str().to_owned()),
                page: None,
                ..params.clone()
            }),
            current: query.status == status,
        })
        .collect()
}

fn pages(params: &ListParams, query: &TaskQuery, matching: u64) -> Pages {
    let size = query.limit.max(1);
    let current = query.offset / size + 1;
    let count = (matching as usize).div_ceil(size).max(1);
    let to_page = |page: usize| {
        link(&ListParams {
            page: Some(page.to_string()),
            ..params.clone()
        })
    };
    Pages {
        current,
        count,
        matching,
        prev: (current > 1).then(|| to_page(current - 1)),
        next: (current < count).then(|| to_page(current + 1)),
    }
}

/// Builds `/?…` from the non-empty parameters, percent-encoded.
fn link(params: &ListParams) -> String {
    let pairs = [
        ("status", &params.status),
        ("site", &params.site),
        ("sensor", &params.sensor),
        ("assignee", &params.assignee),
        ("sort", &params.sort),
        ("order", &params.order),
        ("limit", &params.limit),
        ("page", &params.page),
    ];
    let query: Vec<String> = pairs
        .iter()
        .filter_map(|(key, value)| {
            let value = value.as_deref().map(str::trim).filter(|v| !v.is_empty())?;
            Some(format!("{key}={}", percent_encode(value)))
        })
        .collect();
    if query.is_empty() {
        "/".to_owned()
    } else {
        format!("/?{}", query.join("&"))
    }
}

/// Percent-encodes everything but the unreserved characters of RFC 3986.
pub fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Serves the operator page (`GET /`).
#[handler]
pub async fn operator_page(
    request: &Request,
    Query(params): Query<ListParams>,
    Data(state): Data<&Arc<AppState>>,
) -> poem::Result<Html<String>> {
    let query = params.to_query()?;
    let listed = query.clone();
    let (tasks, matching, counts) = state
        .run_store(move |store| {
            let tasks = store.list_tasks(&listed)?;
            Ok((tasks, store.count_matching(&listed)?, store.count_tasks()?))
        })
        .await?;
    let viewer = Viewer::of(state, request);
    let context = index_context(
        &params,
        &query,
        &tasks,
        matching,
        &counts,
        &viewer,
        Utc::now(),
    );
    Ok(Html(state.page.render("index.html", &context)?))
}

#[cfg(test)]
#[path = "page_tests.rs"]
mod tests;
