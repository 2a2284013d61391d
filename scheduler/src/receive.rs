//! The webhook receiver: size limit, signature check, event parsing, and
//! recording the delivery in the task store.

use std::sync::Arc;

use chrono::Utc;
use floorwatch_protocol::webhook::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use floorwatch_protocol::{Event, EventType, IncidentData, VerifyError};
use poem::error::ReadBodyError;
use poem::http::StatusCode;
use poem::web::{Data, Json};
use poem::{handler, Body, Request};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::server::AppState;
use crate::store::{Delivery, DeliveryBody, Outcome};

/// Maximum length of an `incident_id`, in characters.
pub const MAX_INCIDENT_ID_CHARS: usize = 128;

/// Maximum length of a `unit`, in characters. The bridge sends units such
/// as `°C`, `%` or `°C/min`, and the page shows at most this many.
pub const MAX_UNIT_CHARS: usize = 16;

/// Maximum length of a `reason`, in characters. The bridge's reasons are one
/// sentence of about 100 characters.
pub const MAX_REASON_CHARS: usize = 1000;

/// Maximum length of a `webhook-id`, in bytes. Standard Webhooks sets no
/// maximum, so this is a chosen bound with room for UUIDs and prefixed ids.
pub const MAX_WEBHOOK_ID_BYTES: usize = 256;

/// Maximum length of an ignored event type kept in the delivery record.
const MAX_STORED_TYPE_CHARS: usize = 100;

/// The JSON response to an accepted delivery.
#[derive(Debug, Serialize)]
struct Accepted {
    /// `created`, `updated`, `stale`, `duplicate` or `ignored`.
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    task_id: Option<i64>,
}

/// Only the `type` of an envelope, read before the full parse so that
/// unknown event types can be accepted without a schema.
#[derive(Deserialize)]
struct EnvelopeType {
    #[serde(rename = "type")]
    event_type: String,
}

/// Receives one webhook delivery (`POST /webhooks`, `POST
/// /schedule-maintenance`) and counts its outcome for the metrics.
#[handler]
pub async fn receive_webhook(
    request: &Request,
    body: Body,
    Data(state): Data<&Arc<AppState>>,
) -> poem::Result<Json<serde_json::Value>> {
    let result = receive(request, body, state).await;
    let outcome = match &result {
        Ok((_, outcome)) => outcome.as_str(),
        Err(error) if error.status() == StatusCode::UNAUTHORIZED => "unauthorized",
        Err(error) if error.status().is_server_error() => "storage_error",
        Err(_) => "invalid",
    };
    state.metrics.count_webhook(outcome);
    result.map(|(accepted, _)| accepted)
}

async fn receive(
    request: &Request,
    body: Body,
    state: &Arc<AppState>,
) -> poem::Result<(Json<serde_json::Value>, Outcome)> {
    let bytes = body
        .into_bytes_limit(state.max_body_bytes)
        .await
        .map_err(|error| {
            tracing::warn!(%error, limit = state.max_body_bytes, "webhook rejected: body not read");
            body_error(error, state.max_body_bytes)
        })?;

    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
    };
    let webhook_id = header(HEADER_ID);
    let now = Utc::now();
    let verified = state.verifier.verify(
        webhook_id,
        header(HEADER_TIMESTAMP),
        header(HEADER_SIGNATURE),
        &bytes,
        now.timestamp(),
    );
    if let Err(error) = verified {
        // TODO: rate-limit these warnings, because a misconfigured sender
        // retrying with a wrong secret logs one line per attempt.
        tracing::warn!(webhook_id, %error, "webhook rejected: verification failed");
        return Err(verify_error(&error).into());
    }
    // `verify` succeeded, so the id header is present.
    let webhook_id = webhook_id.unwrap_or_default().to_owned();
    if webhook_id.len() > MAX_WEBHOOK_ID_BYTES {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_header",
            format!("header {HEADER_ID} is longer than {MAX_WEBHOOK_ID_BYTES} bytes"),
        )
        .into());
    }

    let body = parse_body(&bytes).inspect_err(|error| {
        tracing::warn!(%webhook_id, detail = %error.detail, "webhook rejected: invalid event");
    })?;
    let delivery = Delivery {
        webhook_id,
        received_at: now,
        body,
    };
    let outcome = record(state, &delivery).await?;
    let accepted = Json(serde_json::json!(Accepted {
        outcome: outcome.as_str(),
        task_id: outcome.task_id(),
    }));
    Ok((accepted, outcome))
}

/// Stores the delivery, then logs and announces what changed.
async fn record(state: &Arc<AppState>, delivery: &Delivery) -> Result<Outcome, ApiError> {
    let webhook_id = delivery.webhook_id.as_str();
    let event_type = delivery.body.event_type().to_owned();
    let incident_id = match &delivery.body {
        DeliveryBody::Incident(event) => Some(event.data.incident_id.clone()),
        DeliveryBody::Ignored { .. } => None,
    };

    let outcome = state
        .writer
        .record(delivery.clone())
        .await
        .inspect_err(|_| tracing::error!(webhook_id, "webhook not stored: task store failed"))?;

    match &outcome {
        Outcome::Created { task_id, assignee } => {
            tracing::info!(webhook_id, incident_id, task_id, assignee, "task created");
        }
        other => tracing::info!(
            webhook_id,
            incident_id,
            event_type,
            task_id = other.task_id(),
            outcome = other.as_str(),
            "webhook accepted"
        ),
    }
    if let Some(task_id) = outcome.task_id() {
        if matches!(outcome, Outcome::Created { .. } | Outcome::Updated { .. }) {
            state.live.announce(task_id);
        }
    }
    Ok(outcome)
}

fn body_error(error: ReadBodyError, limit: usize) -> ApiError {
    match error {
        ReadBodyError::PayloadTooLarge => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than the limit of {limit} bytes"),
        ),
        other => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("failed to read the body: {other}"),
        ),
    }
}

fn verify_error(error: &VerifyError) -> ApiError {
    let code = match error {
        VerifyError::MissingHeader(_) => "missing_header",
        VerifyError::InvalidTimestamp(_) => "invalid_timestamp",
        VerifyError::TimestampTooOld { .. } => "timestamp_too_old",
        VerifyError::TimestampTooNew { .. } => "timestamp_too_new",
        VerifyError::NoMatchingSignature => "invalid_signature",
    };
    ApiError::new(StatusCode::UNAUTHORIZED, code, error.to_string())
}

/// Parses a verified body.
///
/// Malformed JSON gives 400 `invalid_json`. A body without a string `type`,
/// or an `incident.opened`, `incident.updated` or `incident.resolved` event
/// whose data does not match the schema or exceeds a length limit (such as
/// [`MAX_UNIT_CHARS`] for `unit`), gives 422 `invalid_event` naming the
/// field. Other event types are returned as [`DeliveryBody::Ignored`].
pub fn parse_body(bytes: &[u8]) -> Result<DeliveryBody, ApiError> {
    let envelope: EnvelopeType = serde_json::from_slice(bytes).map_err(|error| {
        if error.is_data() {
            invalid_event(format!("field type: {error}"))
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("the body is not valid JSON: {error}"),
            )
        }
    })?;

    let handled = [
        EventType::IncidentOpened,
        EventType::IncidentUpdated,
        EventType::IncidentResolved,
    ];
    match EventType::parse(&envelope.event_type) {
        Some(event_type) if handled.contains(&event_type) => {}
        _ => {
            let event_type = envelope
                .event_type
                .chars()
                .take(MAX_STORED_TYPE_CHARS)
                .collect();
            return Ok(DeliveryBody::Ignored { event_type });
        }
    }

    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let event: Event<IncidentData> =
        serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
            let path = error.path().to_string();
            if path == "." {
                invalid_event(error.inner().to_string())
            } else {
                invalid_event(format!("field {path}: {}", error.inner()))
            }
        })?;
    check_incident(&event.data)?;
    Ok(DeliveryBody::Incident(Box::new(event)))
}

/// Checks the constraints that the schema alone does not express.
fn check_incident(data: &IncidentData) -> Result<(), ApiError> {
    let id = &data.incident_id;
    if id.is_empty() || id.chars().count() > MAX_INCIDENT_ID_CHARS {
        return Err(invalid_event(format!(
            "field data.incident_id must be 1 to {MAX_INCIDENT_ID_CHARS} characters long"
        )));
    }
    if id.chars().any(char::is_control) {
        return Err(invalid_event(
            "field data.incident_id must not contain control characters",
        ));
    }
    if data.seq == 0 {
        return Err(invalid_event("field data.seq must be 1 or more"));
    }
    check_text("data.unit", &data.unit, MAX_UNIT_CHARS)?;
    check_text("data.reason", &data.reason, MAX_REASON_CHARS)?;
    Ok(())
}

/// Rejects a free-text `field` longer than `max_chars` characters or with
/// control characters.
fn check_text(field: &str, text: &str, max_chars: usize) -> Result<(), ApiError> {
    let chars = text.chars().count();
    if chars > max_chars {
        return Err(invalid_event(format!(
            "field {field} is {chars} characters long: send at most {max_chars}"
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(invalid_event(format!(
            "field {field} must not contain control characters"
        )));
    }
    Ok(())
}

fn invalid_event(detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_event", detail)
}

#[cfg(test)]
#[path = "receive_tests.rs"]
mod tests;
