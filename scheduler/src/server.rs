//! Startup, routes and graceful shutdown of the scheduler's HTTP server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use floorwatch_protocol::Verifier;
use poem::listener::TcpAcceptor;
use poem::{EndpointExt, Route, Server};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::actions::api_action;
use crate::api::{get_task, healthz, list_tasks, readyz};
use crate::assign::Roster;
use crate::auth::{Auth, Sessions};
use crate::config::SchedulerConfig;
use crate::error::{json_error, ApiError, SchedulerError};
use crate::escalate::escalation_loop;
use crate::forms::{form_action, login, login_page, logout};
use crate::live::{task_events, Live};
use crate::methods::{get, post};
use crate::metrics::{serve_metrics, Metrics};
use crate::openapi::{openapi, served_document};
use crate::page::{operator_page, Page};
use crate::receive::receive_webhook;
use crate::store::{SqliteStore, StoreError, TaskStore};
use crate::task_page::task_page;
use crate::writer::DeliveryWriter;

/// Time that in-flight requests get to finish after shutdown is requested.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// State shared by all request handlers.
pub(crate) struct AppState {
    pub store: Arc<dyn TaskStore>,
    pub verifier: Verifier,
    pub roster: Roster,
    pub max_body_bytes: usize,
    pub page: Page,
    pub live: Live,
    pub auth: Auth,
    pub metrics: Metrics,
    /// The OpenAPI document as `GET /api/v1/openapi.json` serves it.
    pub openapi: String,
    /// Queue of the group-commit writer that stores webhook deliveries.
    pub writer: DeliveryWriter,
    /// Cancelled on shutdown; ends the server-sent event streams.
    pub shutdown: CancellationToken,
}

impl AppState {
    /// Runs `operation` on the store in the blocking thread pool. A failure
    /// is logged here and becomes 500 `storage_error`.
    pub async fn run_store<T, F>(&self, operation: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn TaskStore) -> Result<T, StoreError> + Send + 'static,
    {
        let store = Arc::clone(&self.store);
        match tokio::task::spawn_blocking(move || operation(store.as_ref())).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                tracing::error!(%error, "task store operation failed");
                Err(ApiError::storage())
            }
            Err(error) => {
                tracing::error!(%error, "task store operation panicked");
                Err(ApiError::storage())
            }
        }
    }
}

/// A running scheduler.
#[derive(Debug)]
pub struct SchedulerHandle {
    local_addr: SocketAddr,
    server: JoinHandle<Result<(), SchedulerError>>,
}

impl SchedulerHandle {
    /// Returns the address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits until the server has stopped after shutdown was requested.
    pub async fn wait(self) -> Result<(), SchedulerError> {
        self.server.await?
    }
}

/// Validates `config`, opens the task store and serves HTTP on `listener`
/// until `shutdown` is cancelled.
///
/// Returns once the server accepts connections; configuration and database
/// errors are returned here rather than from [`SchedulerHandle::wait`].
pub async fn start(
    config: SchedulerConfig,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> Result<SchedulerHandle, SchedulerError> {
    config.validate()?;
    let local_addr = listener.local_addr().map_err(SchedulerError::Listener)?;
    let path = config.database.clone();
    let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path)).await??;
    let state = Arc::new(app_state(&config, Arc::new(store), shutdown.clone())?);
    tracing::info!(
        %local_addr,
        database = %config.database.display(),
        technicians = ?state.roster.ids().iter().map(ToString::to_string).collect::<Vec<_>>(),
        assignment = config.assignment.as_str(),
        shifts = state.roster.rota.len(),
        escalate_after_secs = config.escalate_after_secs,
        users = config.users.len(),
        api_tokens = config.api_tokens.len(),
        secrets = config.secrets.len(),
        tolerance_secs = config.tolerance_secs,
        max_body_bytes = config.max_body_bytes,
        keep_open_on_resolve = config.keep_open_on_resolve,
        "scheduler starting"
    );
    if let Some(after) = config.escalate_after() {
        tokio::spawn(escalation_loop(Arc::clone(&state), after));
    }
    let acceptor = TcpAcceptor::from_tokio(listener).map_err(SchedulerError::Listener)?;
    let server = tokio::spawn(serve(acceptor, routes(state), shutdown));
    tracing::info!(%local_addr, "scheduler ready");
    Ok(SchedulerHandle { local_addr, server })
}

/// Builds the shared state from a validated `config` and starts the
/// delivery writer.
fn app_state(
    config: &SchedulerConfig,
    store: Arc<dyn TaskStore>,
    shutdown: CancellationToken,
) -> Result<AppState, SchedulerError> {
    let roster: Roster = config.roster()?;
    let ttl_secs = i64::try_from(config.session_ttl_secs).unwrap_or(i64::MAX / 1000);
    let sessions = Sessions::new(chrono::Duration::seconds(ttl_secs));
    let auth = Auth::new(
        &config.users,
        &config.api_tokens,
        sessions,
        config.cookie_secure,
    )
    .map_err(crate::config::ConfigError::from)?;
    let writer = DeliveryWriter::spawn(
        Arc::clone(&store),
        roster.clone(),
        config.keep_open_on_resolve,
    );
    let openapi_document = served_document(&roster.ids());
    Ok(AppState {
        store,
        verifier: config.verifier()?,
        roster,
        max_body_bytes: config.max_body_bytes,
        page: Page::new().map_err(SchedulerError::Template)?,
        live: Live::default(),
        auth,
        metrics: Metrics::default(),
        openapi: openapi_document,
        writer,
        shutdown,
    })
}

/// Starts the scheduler and waits until it stops: [`start`] followed by
/// [`SchedulerHandle::wait`].
pub async fn run(
    config: SchedulerConfig,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> Result<(), SchedulerError> {
    start(config, listener, shutdown).await?.wait().await
}

async fn serve(
    acceptor: TcpAcceptor,
    app: impl poem::Endpoint + 'static,
    shutdown: CancellationToken,
) -> Result<(), SchedulerError> {
    let signal = shutdown.clone().cancelled_owned();
    Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(app, signal, Some(SHUTDOWN_GRACE))
        .await
        .map_err(SchedulerError::Serve)?;
    tracing::info!("scheduler stopped");
    Ok(())
}

fn routes(state: Arc<AppState>) -> impl poem::Endpoint + 'static {
    // Every error under /api/v1, including a query string that does not
    // parse and an unknown path, is sent as JSON `{"code", "detail"}`.
    let api = Route::new()
        .at("/tasks", get(list_tasks))
        .at("/tasks/:id", get(get_task))
        .at("/tasks/:id/:action", post(api_action))
        .at("/openapi.json", get(openapi))
        .catch_all_error(json_error);
    Route::new()
        .at("/", get(operator_page))
        .at("/webhooks", post(receive_webhook))
        .at("/schedule-maintenance", post(receive_webhook))
        .at("/tasks/:id", get(task_page))
        .at("/tasks/:id/:action", post(form_action))
        .at("/login", get(login_page).post(login))
        .at("/logout", post(logout))
        .nest("/api/v1", api)
        .at("/events", get(task_events))
        .at("/metrics", get(serve_metrics))
        .at("/healthz", get(healthz))
        .at("/readyz", get(readyz))
        .data(state)
}
