//! Watches the scheduler for the run's tasks. The scheduler sends one
//! server-sent `task` event with the task id per change on `GET /events`,
//! and the task of each event is fetched from `GET /api/v1/tasks/ID`.
//! A full listing of the site's tasks (`GET /api/v1/tasks?site=...`) runs
//! every 10 seconds as a fallback, after a burst of events that the
//! scheduler reports as lagged (id 0), and every 100 ms when `/events` is
//! missing. Its cost grows with the tasks of the run, so a soak of many
//! thousand tasks would otherwise measure loadgen's listings.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use reqwest::Url;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::incidents::{SeenTask, TaskView};

/// Largest page of `GET /api/v1/tasks`, the scheduler's maximum.
const PAGE_SIZE: usize = 1000;
/// Pages read by one listing at most, newest first.
const MAX_PAGES: usize = 100;
/// Time limit of one API request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Interval of full listings while server-sent events arrive.
const LIST_INTERVAL_WITH_EVENTS: Duration = Duration::from_secs(10);
/// Interval of full listings without server-sent events.
const LIST_INTERVAL_POLLING: Duration = Duration::from_millis(100);
/// Wait before reconnecting to `/events` after a failed connection.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// Body of `GET /api/v1/tasks`.
#[derive(Deserialize)]
struct TaskPage {
    tasks: Vec<TaskView>,
}

/// The tasks of one site seen so far, and how they were found.
pub struct Watcher {
    http: reqwest::Client,
    api: String,
    site: String,
    since: DateTime<Utc>,
    tasks: Mutex<HashMap<i64, SeenTask>>,
    events_connected: AtomicBool,
    /// True once the `/events` stream has been connected.
    events_used: AtomicBool,
    /// Requests to the API that failed.
    errors: AtomicU64,
}

impl Watcher {
    /// Creates a watcher of the tasks of `site` opened at or after `since`
    /// and checks that a listing request to `api` succeeds.
    pub async fn connect(api: &Url, site: &str, since: DateTime<Utc>) -> anyhow::Result<Self> {
        // No proxy from the environment: the requests go to `api` only.
        let http = reqwest::Client::builder().no_proxy().build()?;
        let watcher = Self {
            http,
            api: api.as_str().trim_end_matches('/').to_owned(),
            site: site.to_owned(),
            since,
            tasks: Mutex::new(HashMap::new()),
            events_connected: AtomicBool::new(false),
            events_used: AtomicBool::new(false),
            errors: AtomicU64::new(0),
        };
        watcher.list_page(1).await.with_context(|| {
            format!("the scheduler API at {api} is not reachable: pass --api URL of the scheduler")
        })?;
        Ok(watcher)
    }

    /// Returns a copy of every task seen, by task id.
    pub fn tasks(&self) -> HashMap<i64, SeenTask> {
        self.lock().clone()
    }

    /// Returns true while the `/events` stream is connected.
    pub fn events_connected(&self) -> bool {
        self.events_connected.load(Ordering::Relaxed)
    }

    /// Returns true when the `/events` stream was connected at some time.
    pub fn events_used(&self) -> bool {
        self.events_used.load(Ordering::Relaxed)
    }

    /// Returns the number of failed API requests.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, SeenTask>> {
        self.tasks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stores `task` if it belongs to the run, keeping the time it was first
    /// seen.
    fn record(&self, task: TaskView, observed_at: DateTime<Utc>) {
        if task.site != self.site || task.opened_at < self.since {
            return;
        }
        let mut tasks = self.lock();
        match tasks.get_mut(&task.id) {
            Some(seen) => seen.task = task,
            None => {
                tasks.insert(task.id, SeenTask { task, observed_at });
            }
        }
    }

    /// Follows events and lists tasks until `stop` is cancelled.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let (ids_tx, mut ids_rx) = mpsc::unbounded_channel();
        let events = tokio::spawn(Arc::clone(&self).follow_events(ids_tx, stop.clone()));
        let mut next_listing = Instant::now();
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                Some((task_id, observed_at)) = ids_rx.recv() => {
                    self.on_event(task_id, observed_at).await;
                }
                _ = tokio::time::sleep_until(next_listing) => {
                    self.refresh().await;
                    let interval = if self.events_connected() {
                        LIST_INTERVAL_WITH_EVENTS
                    } else {
                        LIST_INTERVAL_POLLING
                    };
                    next_listing = Instant::now() + interval;
                }
            }
        }
        let _ = events.await;
    }

    /// Fetches a task announced by an event, new or changed (such as
    /// resolved), or lists all after a lag.
    async fn on_event(&self, task_id: i64, observed_at: DateTime<Utc>) {
        if task_id == 0 {
            self.refresh().await;
            return;
        }
        let url = format!("{}/api/v1/tasks/{task_id}", self.api);
        match self.get_json::<TaskView>(&url, &[]).await {
            Ok(task) => self.record(task, observed_at),
            Err(error) => self.count_error("fetching a task failed", &error),
        }
    }

    /// Lists every task of the site opened since the start of the run.
    pub async fn refresh(&self) {
        for page in 1..=MAX_PAGES {
            let tasks = match self.list_page(page).await {
                Ok(tasks) => tasks,
                Err(error) => {
                    self.count_error("listing tasks failed", &error);
                    return;
                }
            };
            let observed_at = Utc::now();
            let last_page = tasks.len() < PAGE_SIZE
                || tasks.last().is_some_and(|task| task.opened_at < self.since);
            for task in tasks {
                self.record(task, observed_at);
            }
            if last_page {
                return;
            }
        }
    }

    /// Returns one page of the site's tasks, newest first.
    async fn list_page(&self, page: usize) -> anyhow::Result<Vec<TaskView>> {
        let url = format!("{}/api/v1/tasks", self.api);
        let query = [
            ("site", self.site.clone()),
            ("sort", "opened_at".to_owned()),
            ("order", "desc".to_owned()),
            ("limit", PAGE_SIZE.to_string()),
            ("page", page.to_string()),
        ];
        Ok(self.get_json::<TaskPage>(&url, &query).await?.tasks)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<T> {
        let response = self
            .http
            .get(url)
            .query(query)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await?
            .error_for_status()?;
        Ok(response.json().await?)
    }

    fn count_error(&self, message: &'static str, error: &anyhow::Error) {
        let count = self.errors.fetch_add(1, Ordering::Relaxed) + 1;
        // The first error and then every hundredth, so a stopped scheduler
        // does not flood the log.
        if count == 1 || count.is_multiple_of(100) {
            tracing::warn!(api = %self.api, count, error = %format!("{error:#}"), "{message}");
        }
    }

    /// Reads `/events` and sends each task id with its arrival time, until
    /// `stop` is cancelled. Returns early when the scheduler has no
    /// `/events`, leaving the listings to poll.
    async fn follow_events(
        self: Arc<Self>,
        ids_tx: mpsc::UnboundedSender<(i64, DateTime<Utc>)>,
        stop: CancellationToken,
    ) {
        let url = format!("{}/events", self.api);
        while !stop.is_cancelled() {
            let request = self.http.get(&url).header("accept", "text/event-stream");
            let response = tokio::select! {
                _ = stop.cancelled() => return,
                response = request.send() => response,
            };
            match response {
                Ok(response) if response.status().is_success() => {
                    self.events_connected.store(true, Ordering::Relaxed);
                    self.events_used.store(true, Ordering::Relaxed);
                    read_events(response, &ids_tx, &stop).await;
                    self.events_connected.store(false, Ordering::Relaxed);
                }
                Ok(response) => {
                    tracing::info!(
                        status = response.status().as_u16(),
                        url,
                        "the scheduler has no event stream; polling the task list"
                    );
                    return;
                }
                Err(error) => self.count_error("connecting to /events failed", &error.into()),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(RECONNECT_DELAY) => {}
            }
        }
    }
}

/// Forwards the task ids of one `/events` response until it ends or `stop`
/// is cancelled.
async fn read_events(
    mut response: reqwest::Response,
    ids_tx: &mpsc::UnboundedSender<(i64, DateTime<Utc>)>,
    stop: &CancellationToken,
) {
    let mut parser = EventParser::default();
    loop {
        let chunk = tokio::select! {
            _ = stop.cancelled() => return,
            chunk = response.chunk() => chunk,
        };
        let Ok(Some(bytes)) = chunk else {
            return;
        };
        let observed_at = Utc::now();
        for task_id in parser.push(&bytes) {
            let _ = ids_tx.send((task_id, observed_at));
        }
    }
}

/// Incremental parser of the `task` events of a server-sent event stream.
#[derive(Debug, Default)]
pub struct EventParser {
    buffer: Vec<u8>,
    event_type: String,
    data: String,
}

impl EventParser {
    /// Adds received bytes and returns the task ids of the events they
    /// complete. An event whose data is not a number is skipped.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<i64> {
        self.buffer.extend_from_slice(bytes);
        let mut ids = Vec::new();
        while let Some(end) = self.buffer.iter().position(|byte| *byte == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if (self.event_type.is_empty() || self.event_type == "task")
                    && !self.data.is_empty()
                {
                    if let Ok(task_id) = self.data.trim().parse() {
                        ids.push(task_id);
                    }
                }
                self.event_type.clear();
                self.data.clear();
            } else if let Some(value) = line.strip_prefix("event:") {
                self.event_type = value.trim().to_owned();
            } else if let Some(value) = line.strip_prefix("data:") {
                self.data.push_str(value.trim());
            }
        }
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_returns_task_ids() {
        let mut parser = EventParser::default();
        let ids = parser.push(b"event: task\ndata: 12\n\nevent: task\ndata: 0\n\n");
        assert_eq!(ids, [12, 0]);
    }

    #[test]
    fn parser_joins_split_chunks() {
        let mut parser = EventParser::default();
        assert!(parser.push(b"event: ta").is_empty());
        assert!(parser.push(b"sk\r\ndata: 4").is_empty());
        assert_eq!(parser.push(b"2\r\n\r\n"), [42]);
    }

    #[test]
    fn parser_skips_comments_and_other_events() {
        let mut parser = EventParser::default();
        let ids = parser.push(b": keep-alive\n\nevent: other\ndata: 5\n\ndata: 6\n\ndata: x\n\n");
        assert_eq!(ids, [6]);
    }
}
