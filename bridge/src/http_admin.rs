//! Operator routes on the bridge's HTTP listener: `/metrics`, the delivery
//! list and log, replay of one event or of every matching row, and enabling
//! endpoints.
//!
//! Every route but `/metrics` requires `Authorization: Bearer TOKEN` when
//! `bridge.http.admin_token` is set. Without a token they serve requests only
//! on a loopback listener and return 403 elsewhere, because they replay
//! events and enable endpoints.

use std::sync::{Arc, Mutex};

use chrono::Utc;
use poem::http::StatusCode;
use poem::web::{Data, Json, Path, Query};
use poem::{get, handler, post, Endpoint, EndpointExt, IntoResponse, Response, Route};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Notify;

use crate::metrics::{self, OutboxGauge};
use crate::stats::Stats;
use crate::store::{DeliveryFilter, DeliveryStatus, Store, StoreError};

/// Default and maximum rows of `GET /deliveries`.
const LIST_LIMIT: (usize, usize) = (50, 1000);

/// Shared state of the operator routes.
#[derive(Clone)]
pub struct AdminState {
    pub store: Arc<Mutex<Store>>,
    pub stats: Arc<Stats>,
    /// Wake the delivery workers after a replay or an enable.
    pub wakers: Vec<Arc<Notify>>,
}

/// Access rule of the delivery and endpoint routes.
#[derive(Debug, Clone)]
pub enum Access {
    /// Requests that carry this bearer token.
    Token(Arc<str>),
    /// Anyone: the listener is on loopback and no token is set.
    Loopback,
    /// No one: the listener is reachable from elsewhere and no token is set.
    Closed,
}

impl Access {
    /// Chooses the access rule for a listener on `listen`.
    pub fn new(token: Option<&str>, listen: std::net::SocketAddr) -> Self {
        match token {
            Some(token) => Access::Token(Arc::from(token)),
            None if listen.ip().is_loopback() => Access::Loopback,
            None => Access::Closed,
        }
    }

    /// Returns the error response for a request with `header` as its
    /// `Authorization`, or `None` when it may proceed.
    fn refuse(&self, header: Option<&str>) -> Option<Response> {
        let (status, message) = match self {
            Access::Loopback => return None,
            Access::Closed => (
                StatusCode::FORBIDDEN,
                "the delivery routes answer only on loopback unless bridge.http.admin_token is set",
            ),
            Access::Token(token) => {
                let given = header.and_then(|value| value.strip_prefix("Bearer "));
                if given.is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes())) {
                    return None;
                }
                (
                    StatusCode::UNAUTHORIZED,
                    "send the bridge's admin token as `Authorization: Bearer TOKEN`",
                )
            }
        };
        Some((status, Json(json!({ "error": message }))).into_response())
    }
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Returns the operator routes, to be nested at the root.
pub fn routes(access: Access) -> Route {
    let guard = move |endpoint: poem::endpoint::BoxEndpoint<'static>| {
        let access = access.clone();
        endpoint.around(move |inner, request: poem::Request| {
            let refused = access.refuse(
                request
                    .headers()
                    .get(poem::http::header::AUTHORIZATION)
                    .and_then(|value| value.to_str().ok()),
            );
            async move {
                match refused {
                    Some(response) => Ok(response),
                    None => inner.call(request).await,
                }
            }
        })
    };
    Route::new()
        .at("/metrics", get(get_metrics))
        .at("/deliveries", guard(get(list_deliveries).boxed()))
        .at(
            "/deliveries/:id/attempts",
            guard(get(list_attempts).boxed()),
        )
        .at("/deliveries/replay", guard(post(replay_matching).boxed()))
        .at("/deliveries/:id/replay", guard(post(replay).boxed()))
        .at("/endpoints/enable", guard(post(enable_endpoint).boxed()))
}

async fn with_store<T: Send + 'static>(
    state: &AdminState,
    work: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Response> {
    let store = Arc::clone(&state.store);
    let result = tokio::task::spawn_blocking(move || {
        let mut store = store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        work(&mut store)
    })
    .await;
    match result {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => {
            tracing::error!(%error, "operator request failed on the database");
            Err(api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "database_error",
                "see the bridge log",
            ))
        }
        Err(error) => {
            tracing::error!(%error, "operator request task failed");
            Err(api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "see the bridge log",
            ))
        }
    }
}

fn api_error(status: StatusCode, code: &str, detail: &str) -> Response {
    (status, Json(json!({"code": code, "detail": detail}))).into_response()
}

fn wake(state: &AdminState) {
    state.wakers.iter().for_each(|waker| waker.notify_one());
}

#[handler]
async fn get_metrics(state: Data<&AdminState>) -> Response {
    let depth = match with_store(&state, |store| store.outbox_depth()).await {
        Ok(depth) => depth,
        Err(response) => return response,
    };
    let (pending, oldest) = depth;
    let age_ms = oldest.map_or(0, |at| (Utc::now() - at).num_milliseconds().max(0));
    let outbox = OutboxGauge {
        pending,
        oldest_pending_age_secs: age_ms as f64 / 1000.0,
    };
    let page = metrics::render(
        &state.stats.snapshot(),
        &state.stats.delivery_latency.snapshot(),
        outbox,
    );
    Response::builder()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(page)
}

/// Query of `GET /deliveries`.
#[derive(Debug, Deserialize)]
struct ListQuery {
    endpoint: Option<String>,
    incident: Option<String>,
    status: Option<String>,
    /// Parsed in the handler, so that a bad value gets an error naming it.
    limit: Option<String>,
}

#[handler]
async fn list_deliveries(query: Query<ListQuery>, state: Data<&AdminState>) -> Response {
    let status = match query.status.as_deref().map(DeliveryStatus::parse) {
        None => None,
        Some(Some(status)) => Some(status),
        Some(None) => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "invalid_status",
                "status must be pending, delivered or dead",
            )
        }
    };
    let limit = match query.limit.as_deref().map(str::parse::<usize>) {
        None => LIST_LIMIT.0,
        Some(Ok(limit)) => limit.min(LIST_LIMIT.1),
        Some(Err(_)) => {
            let value = query.limit.as_deref().unwrap_or_default();
            return api_error(
                StatusCode::BAD_REQUEST,
                "invalid_limit",
                &format!(
                    "limit {value:?} is not a whole number: use 1 to {}",
                    LIST_LIMIT.1
                ),
            );
        }
    };
    let filter = DeliveryFilter {
        endpoint: query.endpoint.clone(),
        incident: query.incident.clone(),
        status,
        limit,
    };
    match with_store(&state, move |store| store.list_deliveries(&filter)).await {
        Ok(rows) => Json(json!({"deliveries": rows})).into_response(),
        Err(response) => response,
    }
}

#[handler]
async fn list_attempts(Path(event_id): Path<String>, state: Data<&AdminState>) -> Response {
    let attempts = match with_store(&state, move |store| store.attempts_of(&event_id)).await {
        Ok(attempts) => attempts,
        Err(response) => return response,
    };
    let attempts: Vec<_> = attempts
        .into_iter()
        .map(|(endpoint, attempt, record)| {
            json!({
                "endpoint": endpoint,
                "attempt": attempt,
                "attempted_at": record.attempted_at.to_rfc3339(),
                "status_code": record.status_code,
                "latency_ms": record.latency_ms,
                "error": record.error,
                "response_snippet": record.response_snippet,
            })
        })
        .collect();
    Json(json!({"attempts": attempts})).into_response()
}

/// Optional endpoint filter of `POST /deliveries/:id/replay`.
#[derive(Debug, Deserialize)]
struct ReplayQuery {
    endpoint: Option<String>,
}

#[handler]
async fn replay(
    Path(event_id): Path<String>,
    query: Query<ReplayQuery>,
    state: Data<&AdminState>,
) -> Response {
    let endpoint = query.endpoint.clone();
    let replay = move |store: &mut Store| store.replay_event(&event_id, endpoint.as_deref());
    match with_store(&state, replay).await {
        Ok(0) => api_error(
            StatusCode::NOT_FOUND,
            "no_dead_letter",
            "no dead letter has this event id",
        ),
        Ok(queued) => {
            wake(&state);
            Json(json!({"queued": queued})).into_response()
        }
        Err(response) => response,
    }
}

/// Filter of `POST /deliveries/replay`.
#[derive(Debug, Deserialize)]
struct ReplayMatchingQuery {
    endpoint: Option<String>,
    incident: Option<String>,
    status: Option<String>,
}

/// Queues again every dead letter (the default) or delivered event that
/// matches the filter. Replaying delivered events needs an endpoint or an
/// incident, so that one request cannot resend the whole history.
#[handler]
async fn replay_matching(query: Query<ReplayMatchingQuery>, state: Data<&AdminState>) -> Response {
    let status = match query.status.as_deref().map(DeliveryStatus::parse) {
        None => DeliveryStatus::Dead,
        Some(Some(status @ (DeliveryStatus::Dead | DeliveryStatus::Delivered))) => status,
        Some(_) => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "invalid_status",
                "status must be dead or delivered; pending rows are already queued",
            )
        }
    };
    let Query(ReplayMatchingQuery {
        endpoint, incident, ..
    }) = query;
    if status == DeliveryStatus::Delivered && endpoint.is_none() && incident.is_none() {
        return api_error(
            StatusCode::BAD_REQUEST,
            "filter_required",
            "replaying delivered events needs an endpoint or an incident",
        );
    }
    let queue_again = move |store: &mut Store| {
        store.replay_matching(status, endpoint.as_deref(), incident.as_deref())
    };
    match with_store(&state, queue_again).await {
        Ok(0) => api_error(
            StatusCode::NOT_FOUND,
            "no_match",
            "no delivery matches the filter",
        ),
        Ok(queued) => {
            wake(&state);
            Json(json!({"queued": queued})).into_response()
        }
        Err(response) => response,
    }
}

/// Body of `POST /endpoints/enable`.
#[derive(Debug, Deserialize)]
struct EnableBody {
    url: String,
}

#[handler]
async fn enable_endpoint(body: Json<EnableBody>, state: Data<&AdminState>) -> Response {
    let url = body.url.clone();
    match with_store(&state, move |store| store.enable_endpoint(&url)).await {
        Ok(true) => {
            wake(&state);
            Json(json!({"enabled": body.url})).into_response()
        }
        Ok(false) => api_error(
            StatusCode::NOT_FOUND,
            "not_disabled",
            "this endpoint is not disabled",
        ),
        Err(response) => response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(access: &Access, header: Option<&str>) -> Option<StatusCode> {
        access.refuse(header).map(|response| response.status())
    }

    #[test]
    fn loopback_without_token_is_open() {
        let access = Access::new(None, "127.0.0.1:8081".parse().unwrap());
        assert_eq!(status(&access, None), None);
    }

    #[test]
    fn public_listener_without_token_is_closed() {
        let access = Access::new(None, "0.0.0.0:8081".parse().unwrap());
        assert_eq!(status(&access, None), Some(StatusCode::FORBIDDEN));
        assert_eq!(
            status(&access, Some("Bearer anything")),
            Some(StatusCode::FORBIDDEN)
        );
    }

    #[test]
    fn token_must_match_exactly() {
        let access = Access::new(Some("0123456789abcdef"), "0.0.0.0:8081".parse().unwrap());
        assert_eq!(status(&access, Some("Bearer 0123456789abcdef")), None);
        assert_eq!(status(&access, None), Some(StatusCode::UNAUTHORIZED));
        assert_eq!(
            status(&access, Some("Bearer 0123456789abcdeF")),
            Some(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            status(&access, Some("0123456789abcdef")),
            Some(StatusCode::UNAUTHORIZED)
        );
    }
}
