//! HTTP ingest for devices that can only POST: `POST /readings` takes one
//! canonical reading, or an array of them, each naming its site and sensor;
//! `POST /test-webhook` takes the Node-RED tutorial's
//! `{"Temperature": 31.5, "name": "oven-1"}` for the configured default
//! site. Payloads go through the same parser as MQTT readings, and the
//! response comes after the readings are committed.
//!
//! The same listener serves the operator routes of [`crate::http_admin`].

use std::net::SocketAddr;

use chrono::Utc;
use floorwatch_protocol::{parse_payload, Rejection};
use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::Data;
use poem::{handler, post, Body, Endpoint, EndpointExt, IntoResponse, Response, Route, Server};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::config::HttpSettings;
use crate::http_admin::AdminState;
use crate::ingest::Queued;
use crate::pipeline::{rejection_code, Inbound};
use crate::BridgeError;

/// Largest number of readings in one `POST /readings` array.
pub const MAX_READINGS_PER_REQUEST: usize = 1000;

/// What the handlers share.
#[derive(Clone)]
struct HttpState {
    queue_tx: mpsc::Sender<Queued>,
    default_site: String,
    max_body_bytes: usize,
}

/// An error response `{"code": ..., "detail": ...}`, with the index of the
/// offending reading in an array.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
    index: Option<usize>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            index: None,
        }
    }

    fn rejected(rejection: &Rejection) -> Self {
        let detail = match rejection {
            Rejection::InvalidTopicId {
                kind,
                level,
                source,
            } => {
                format!("{kind} {level:?} is not a valid id: {source}")
            }
            other => other.to_string(),
        };
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            rejection_code(rejection),
            detail,
        )
    }

    fn into_response(self) -> Response {
        let mut body = json!({"code": self.code, "detail": self.detail});
        if let Some(index) = self.index {
            body["index"] = json!(index);
        }
        (self.status, poem::web::Json(body)).into_response()
    }
}

/// Binds `settings.listen` and serves ingest and the operator routes until
/// `shutdown` fires. Returns the bound address and the server task.
pub async fn start(
    settings: &HttpSettings,
    queue_tx: mpsc::Sender<Queued>,
    admin: AdminState,
    shutdown: CancellationToken,
) -> Result<
    (
        SocketAddr,
        impl std::future::Future<Output = Result<(), BridgeError>>,
    ),
    BridgeError,
> {
    let listen = settings.listen;
    let acceptor = TcpListener::bind(listen)
        .into_acceptor()
        .await
        .map_err(|error| BridgeError::Http {
            addr: listen,
            detail: error.to_string(),
        })?;
    let addr = acceptor
        .local_addr()
        .first()
        .and_then(|addr| addr.as_socket_addr().copied())
        .unwrap_or(listen);
    let state = HttpState {
        queue_tx,
        default_site: settings.default_site.clone(),
        max_body_bytes: settings.max_body_bytes,
    };
    let app = Route::new()
        .at("/readings", post(post_readings))
        .at("/test-webhook", post(post_test_webhook))
        .nest(
            "/",
            crate::http_admin::routes(crate::http_admin::Access::new(
                settings.admin_token.as_deref(),
                listen,
            )),
        )
        .data(state)
        .data(admin)
        .around(|inner, request: poem::Request| async move {
            match cross_site_refusal(&request) {
                Some(response) => Ok(response),
                None => inner.call(request).await,
            }
        });
    tracing::info!(%addr, "HTTP ingest ready");
    let serve = async move {
        Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(app, shutdown.cancelled_owned(), None)
            .await
            .map_err(|error| BridgeError::Http {
                addr,
                detail: error.to_string(),
            })
    };
    Ok((addr, serve))
}

/// Returns a 403 response for a request that a browser sent on behalf of
/// another site: an `Origin` header naming another host than `Host`, or
/// `Sec-Fetch-Site` other than `same-origin` and `none`. Sensors, scripts
/// and curl send neither header. Without this check, a web page open in a
/// browser on the bridge's machine could post readings or replay
/// deliveries through a loopback listener that needs no token.
fn cross_site_refusal(request: &poem::Request) -> Option<Response> {
    let header = |name| {
        request
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap_or("?"))
    };
    let origin_is_host = match (
        header(poem::http::header::ORIGIN),
        header(poem::http::header::HOST),
    ) {
        (None, _) => true,
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host)),
        (Some(_), None) => false,
    };
    let fetch_site_ok = matches!(
        header(poem::http::HeaderName::from_static("sec-fetch-site")),
        None | Some("same-origin" | "none")
    );
    if origin_is_host && fetch_site_ok {
        return None;
    }
    tracing::warn!(
        origin = ?header(poem::http::header::ORIGIN),
        path = %request.uri().path(),
        "rejected a cross-site request"
    );
    let message = "cross-site request rejected: the bridge accepts requests from sensors, \
                   scripts and its own origin, not from pages of other sites";
    Some(
        (
            StatusCode::FORBIDDEN,
            poem::web::Json(json!({ "error": message })),
        )
            .into_response(),
    )
}

#[handler]
async fn post_readings(body: Body, state: Data<&HttpState>) -> Response {
    match readings(body, &state).await {
        Ok(count) => (StatusCode::OK, poem::web::Json(json!({"accepted": count}))).into_response(),
        Err(error) => error.into_response(),
    }
}

#[handler]
async fn post_test_webhook(body: Body, state: Data<&HttpState>) -> Response {
    match test_webhook(body, &state).await {
        Ok(count) => (StatusCode::OK, poem::web::Json(json!({"accepted": count}))).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn readings(body: Body, state: &HttpState) -> Result<usize, ApiError> {
    let value = read_json(body, state.max_body_bytes).await?;
    let items = match value {
        Value::Array(items) => items,
        item @ Value::Object(_) => vec![item],
        _ => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_reading",
                "send a JSON reading object, or an array of them",
            ))
        }
    };
    if items.is_empty() || items.len() > MAX_READINGS_PER_REQUEST {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_count",
            format!(
                "the array has {} readings: send 1 to {MAX_READINGS_PER_REQUEST}",
                items.len()
            ),
        ));
    }
    let mut inbound = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let with_index = |mut error: ApiError| {
            error.index = Some(index);
            error
        };
        let site = string_field(item, "site").map_err(with_index)?;
        let sensor = string_field(item, "sensor").map_err(with_index)?;
        let payload = item.to_string().into_bytes();
        inbound.push(validated(site, sensor, payload).map_err(with_index)?);
    }
    let count = inbound.len();
    enqueue(state, inbound).await?;
    Ok(count)
}

async fn test_webhook(body: Body, state: &HttpState) -> Result<usize, ApiError> {
    let value = read_json(body, state.max_body_bytes).await?;
    let sensor = string_field(&value, "name")?;
    let payload = value.to_string().into_bytes();
    let inbound = validated(&state.default_site, sensor, payload)?;
    enqueue(state, vec![inbound]).await?;
    Ok(1)
}

async fn read_json(body: Body, limit: usize) -> Result<Value, ApiError> {
    let bytes = body.into_bytes_limit(limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body is over {limit} bytes: send fewer readings per request"),
        )
    })?;
    serde_json::from_slice(&bytes).map_err(|error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not valid JSON: {error}"),
        )
    })
}

fn string_field<'a>(item: &'a Value, name: &str) -> Result<&'a str, ApiError> {
    item.get(name).and_then(Value::as_str).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_field",
            format!("the reading has no string field {name:?}: add it"),
        )
    })
}

/// Checks a payload with the MQTT parser and returns it ready to queue.
fn validated(site: &str, sensor: &str, payload: Vec<u8>) -> Result<Inbound, ApiError> {
    let received_at = Utc::now();
    parse_payload(site, sensor, &payload, received_at)
        .map_err(|rejection| ApiError::rejected(&rejection))?;
    Ok(Inbound {
        site: site.to_owned(),
        sensor: sensor.to_owned(),
        payload,
        received_at,
    })
}

/// Queues the readings and waits until their batches are committed.
async fn enqueue(state: &HttpState, inbound: Vec<Inbound>) -> Result<(), ApiError> {
    let stopped = || {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "stopping",
            "the bridge is stopping: retry later",
        )
    };
    let mut waits = Vec::with_capacity(inbound.len());
    for inbound in inbound {
        let (done_tx, done_rx) = oneshot::channel();
        let queued = Queued {
            inbound,
            ack: None,
            done: Some(done_tx),
        };
        state.queue_tx.send(queued).await.map_err(|_| stopped())?;
        waits.push(done_rx);
    }
    for done in waits {
        done.await.map_err(|_| stopped())?;
    }
    Ok(())
}
