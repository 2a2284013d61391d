//! Webhook delivery: one worker per endpoint that sends due outbox rows as
//! signed POST requests, records every attempt, and schedules retries.
//!
//! `dispatch` runs a worker's loop: concurrency, rate limit, circuit
//! breaker, the disabled state and group commits of attempt records.
//! `queue` keeps the endpoint's pending rows in memory. This module makes
//! single attempts.

mod dispatch;
pub mod limits;
mod queue;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use floorwatch_protocol::webhook::{
    mixed_signature_header, Secret, SigningKey, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP,
};
use rand::Rng;
use reqwest::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{DeliverySettings, EndpointConfig};
use crate::guard::{self, GuardedResolver};
use crate::retry::{next_delay, parse_retry_after};
use crate::stats::Stats;
use crate::store::{AttemptRecord, FinishedAttempt, RowUpdate, Store};
use crate::BridgeError;
use queue::QueuedRow;

/// How long an attempt in flight may continue after shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Rows read from the outbox per query.
const ROWS_PER_QUERY: usize = 512;

/// Rows whose bodies a worker keeps in memory before it stops reading new
/// rows: about 4 MB at 1 KB a body.
///
/// NOTE: the other fields of every pending row read stay in memory, about
/// 200 bytes a row by estimate, so a backlog of 100,000 rows at a failing
/// endpoint costs about 20 MB.
const MAX_BODIES_HELD: usize = 4096;

/// Bytes of a response body kept in the delivery log.
const SNIPPET_BYTES: usize = 512;

/// A configured endpoint ready to send.
pub struct Endpoint {
    /// The configured URL, which is also the endpoint's key in the outbox.
    pub key: String,
    url: Url,
    secrets: Vec<Secret>,
    signing_keys: Vec<SigningKey>,
    allow_private: bool,
    client: reqwest::Client,
    /// Concurrency, rate and circuit breaker settings.
    limits: EndpointConfig,
}

impl Endpoint {
    /// Builds the HTTP client of a validated endpoint.
    pub fn new(config: &EndpointConfig) -> Result<Self, BridgeError> {
        let invalid = |detail: String| BridgeError::Endpoint {
            url: redact(&config.url),
            detail,
        };
        let url = Url::parse(&config.url).map_err(|error| invalid(error.to_string()))?;
        let secrets = config
            .parsed_secrets()
            .map_err(|error| invalid(error.to_string()))?;
        let signing_keys = config
            .parsed_signing_keys()
            .map_err(|error| invalid(error.to_string()))?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(config.timeout_secs))
            // A proxy would connect on our behalf and bypass the guard.
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver {
                allow_private: config.allow_private,
            }))
            .user_agent(concat!("floorwatch-bridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| invalid(error.to_string()))?;
        Ok(Self {
            key: config.url.clone(),
            url,
            secrets,
            signing_keys,
            allow_private: config.allow_private,
            client,
            limits: config.clone(),
        })
    }
}

/// Result of one [`Endpoint::send_signed`] request.
#[derive(Debug, Clone, Default)]
pub struct SendOutcome {
    /// HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// Reason the attempt failed; `None` after a 2xx.
    pub error: Option<String>,
    /// The receiver's `Retry-After`, when it sent one.
    pub retry_after: Option<Duration>,
}

impl SendOutcome {
    /// Returns true for a 2xx response.
    pub fn delivered(&self) -> bool {
        self.error.is_none()
            && self
                .status
                .is_some_and(|status| (200..300).contains(&status))
    }
}

impl Endpoint {
    /// Signs `body` as event `event_id` and POSTs it once, with the same
    /// headers, guard and timeout as the outbox workers. Used by outboxes
    /// other than SQLite, which keep their own attempt count.
    pub async fn send_signed(&self, event_id: &str, body: &[u8]) -> SendOutcome {
        let literal_ip = self.url.host_str().and_then(|host| {
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .ok()
        });
        if let Some(Err(error)) = literal_ip.map(|ip| guard::check(ip, self.allow_private)) {
            return SendOutcome {
                error: Some(error),
                ..SendOutcome::default()
            };
        }
        let timestamp = Utc::now().timestamp();
        let signature =
            mixed_signature_header(&self.secrets, &self.signing_keys, event_id, timestamp, body);
        let request = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(HEADER_ID, event_id)
            .header(HEADER_TIMESTAMP, timestamp.to_string())
            .header(HEADER_SIGNATURE, signature)
            .body(body.to_vec());
        let response = match request.send().await {
            Ok(response) => read_response(response).await,
            Err(error) => Response {
                error: Some(error_chain(&error)),
                ..Response::default()
            },
        };
        SendOutcome {
            status: response.status.map(|status| status.as_u16()),
            error: response.error,
            retry_after: response.retry_after,
        }
    }
}

/// Returns `url` without credentials, query or fragment, for logs.
pub fn redact(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) => {
            parsed.set_query(None);
            parsed.set_fragment(None);
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Err(_) => "<invalid URL>".to_owned(),
    }
}

/// The result of sending one request.
#[derive(Debug, Default)]
struct Response {
    status: Option<StatusCode>,
    error: Option<String>,
    snippet: Option<String>,
    retry_after: Option<Duration>,
}

/// Result of one attempt, as the dispatch loop uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Delivered,
    Failed,
    /// The receiver returned `410 Gone`, so the endpoint must be disabled.
    Gone,
    /// Cut short at shutdown and not recorded.
    Abandoned,
    /// The row was no longer pending when its body was read.
    Vanished,
}

/// A finished attempt, recorded later with others in one commit.
#[derive(Debug)]
struct Finished {
    ordering_key: String,
    outbox_id: i64,
    outcome: Outcome,
    /// The attempt record; `None` for an abandoned or vanished row.
    record: Option<FinishedAttempt>,
}

/// Delivers the outbox rows of one endpoint.
pub struct Worker {
    pub endpoint: Endpoint,
    /// Connection that records attempts. The worker opens a second one for
    /// reads, which in WAL mode do not wait for a commit.
    pub store: Arc<Mutex<Store>>,
    pub settings: DeliverySettings,
    pub stats: Arc<Stats>,
    pub wake: Arc<Notify>,
}

/// Runs `work` on a blocking thread with the store behind `store`.
async fn with_store<T: Send + 'static>(
    store: &Arc<Mutex<Store>>,
    work: impl FnOnce(&mut Store) -> T + Send + 'static,
) -> Result<T, BridgeError> {
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || {
        let mut store = store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        work(&mut store)
    })
    .await
    .map_err(|error| BridgeError::Task(format!("delivery store access: {error}")))
}

impl Worker {
    /// Makes one attempt at `row`, reading its body first when the queue
    /// dropped it, and returns what to record.
    async fn attempt(
        &self,
        reader: &Arc<Mutex<Store>>,
        mut row: QueuedRow,
        cancel: &CancellationToken,
    ) -> Result<Finished, BridgeError> {
        let ordering_key = row.ordering_key.clone();
        let outbox_id = row.id;
        let body = match row.body.take() {
            Some(body) => body,
            None => {
                let id = row.id;
                match with_store(reader, move |store| store.pending_body(id)).await?? {
                    Some(body) => body,
                    None => {
                        return Ok(Finished {
                            ordering_key,
                            outbox_id,
                            outcome: Outcome::Vanished,
                            record: None,
                        })
                    }
                }
            }
        };
        let attempt = row.attempts + 1;
        let attempted_at = Utc::now();
        let started = Instant::now();
        let grace = async {
            cancel.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        let response = tokio::select! {
            response = self.send(&row, body) => response,
            () = grace => {
                tracing::warn!(
                    endpoint = %redact(&self.endpoint.key),
                    event_id = %row.event_id,
                    attempt,
                    "abandoned an attempt at shutdown; it is retried on the next start"
                );
                return Ok(Finished {
                    ordering_key,
                    outbox_id,
                    outcome: Outcome::Abandoned,
                    record: None,
                });
            }
        };
        let record = AttemptRecord {
            attempted_at,
            status_code: response.status.map(|status| status.as_u16()),
            latency_ms: started.elapsed().as_millis() as u64,
            error: response.error.clone(),
            response_snippet: response.snippet.clone(),
        };
        self.stats.delivery_latency.observe(record.latency_ms);
        let update = self.decide(&row, &response);
        self.log_outcome(&row, &response, update);
        let outcome = match update {
            RowUpdate::Delivered => Outcome::Delivered,
            _ if response.status == Some(StatusCode::GONE) => Outcome::Gone,
            _ => Outcome::Failed,
        };
        Ok(Finished {
            ordering_key,
            outbox_id,
            outcome,
            record: Some(FinishedAttempt {
                outbox_id: row.id,
                event_id: row.event_id,
                attempt,
                record,
                update,
            }),
        })
    }

    /// Chooses what happens to the row after `response`.
    fn decide(&self, row: &QueuedRow, response: &Response) -> RowUpdate {
        if response.error.is_none() && response.status.is_some_and(|s| s.is_success()) {
            return RowUpdate::Delivered;
        }
        if response.status == Some(StatusCode::GONE) {
            // The row waits for the endpoint to be enabled again.
            return RowUpdate::Retry {
                next_attempt_at_ms: Utc::now().timestamp_millis(),
            };
        }
        let unit_random = rand::thread_rng().gen::<f64>();
        match next_delay(
            &self.settings,
            row.attempts + 1,
            response.retry_after,
            unit_random,
        ) {
            Some(delay) => {
                let delay = TimeDelta::from_std(delay).unwrap_or(TimeDelta::MAX);
                let at = Utc::now()
                    .checked_add_signed(delay)
                    .unwrap_or(chrono::DateTime::<Utc>::MAX_UTC);
                RowUpdate::Retry {
                    next_attempt_at_ms: at.timestamp_millis(),
                }
            }
            None => RowUpdate::Dead,
        }
    }

    fn log_outcome(&self, row: &QueuedRow, response: &Response, update: RowUpdate) {
        let endpoint = redact(&self.endpoint.key);
        let attempt = row.attempts + 1;
        let status = response.status.map(|status| status.as_u16());
        let error = response.error.as_deref().unwrap_or("");
        match update {
            RowUpdate::Delivered => tracing::info!(
                %endpoint, event_id = %row.event_id, event_type = %row.event_type, attempt, status,
                "delivered a webhook"
            ),
            RowUpdate::Retry { next_attempt_at_ms } => {
                let delay_ms = (next_attempt_at_ms - Utc::now().timestamp_millis()).max(0);
                tracing::warn!(
                    %endpoint, event_id = %row.event_id, attempt, status, delay_ms, error,
                    "webhook attempt failed, retrying"
                );
            }
            RowUpdate::Dead => tracing::error!(
                %endpoint, event_id = %row.event_id, attempt, status, error,
                "webhook delivery failed for the last time; the event is now a dead letter"
            ),
        }
    }

    /// Signs and sends `row`, unless the guard rejects the destination.
    async fn send(&self, row: &QueuedRow, body: Vec<u8>) -> Response {
        if let Some(error) = self.literal_host_rejection() {
            return Response {
                error: Some(error),
                ..Response::default()
            };
        }
        let timestamp = Utc::now().timestamp();
        let signature = mixed_signature_header(
            &self.endpoint.secrets,
            &self.endpoint.signing_keys,
            &row.event_id,
            timestamp,
            &body,
        );
        let request = self
            .endpoint
            .client
            .post(self.endpoint.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(HEADER_ID, &row.event_id)
            .header(HEADER_TIMESTAMP, timestamp.to_string())
            .header(HEADER_SIGNATURE, signature)
            .body(body);
        match request.send().await {
            Ok(response) => read_response(response).await,
            Err(error) => Response {
                error: Some(error_chain(&error)),
                ..Response::default()
            },
        }
    }

    /// Checks a URL whose host is an IP address, which the HTTP client
    /// connects to without asking the guarded resolver.
    fn literal_host_rejection(&self) -> Option<String> {
        let host = self.endpoint.url.host_str()?;
        let ip: IpAddr = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()?;
        guard::check(ip, self.endpoint.allow_private).err()
    }
}

async fn read_response(mut response: reqwest::Response) -> Response {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| parse_retry_after(value, Utc::now()));
    let error = if status.is_redirection() {
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("");
        Some(format!(
            "redirect {status} to {location:?} not followed: configure the final URL"
        ))
    } else if !status.is_success() {
        Some(format!("receiver returned {status}"))
    } else {
        None
    };
    let mut body = Vec::new();
    while body.len() < SNIPPET_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    body.truncate(SNIPPET_BYTES);
    let snippet = (!body.is_empty()).then(|| String::from_utf8_lossy(&body).into_owned());
    Response {
        status: Some(status),
        error,
        snippet,
        retry_after,
    }
}

/// Joins an error and its sources, since reqwest's own text omits causes.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
