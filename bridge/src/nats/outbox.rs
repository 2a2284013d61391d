//! The webhook outbox as a JetStream work-queue stream: one subject per
//! (partition, endpoint), each message stored with its `webhook-id` as
//! `Nats-Msg-Id` so that a copy stored again within the duplicate window is
//! dropped. The owner of a partition delivers its subjects one message at
//! a time, so the events of one incident arrive in order. A failed attempt
//! is negatively acknowledged with the retry schedule's delay. After the
//! last attempt the message moves to the dead-letter stream.
//!
//! Each send passes the endpoint's [`EndpointGate`]: the rate limit, the
//! circuit breaker and the disabled state after `410 Gone`. The attempt
//! number is the stream's delivery count of the message, which grows each
//! time the consumer hands the message out again. So a deliverer that the
//! gate stops does not pull, and a message already pulled is held with
//! in-progress acknowledgements rather than negatively acknowledged, so
//! the wait costs it no attempt.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::header::{HeaderMap, NATS_MESSAGE_ID};
use async_nats::jetstream::consumer::{pull, AckPolicy, PullConsumer};
use async_nats::jetstream::message::AckKind;
use async_nats::jetstream::stream::{Config, RetentionPolicy, StorageType, Stream};
use async_nats::jetstream::{Context, Message};
use futures::StreamExt;
use rand::Rng;
use tokio_util::sync::CancellationToken;

use super::gate::{Attempt, EndpointGate, Ticket};
use super::record::OutboxEntry;
use crate::config::{DeliverySettings, NatsSettings};
use crate::delivery::{redact, Endpoint};
use crate::retry::next_delay;
use crate::stats::{bump, Stats};
use crate::BridgeError;

/// Work-queue stream of webhook events waiting for delivery.
pub const OUTBOX_STREAM: &str = "FLOORWATCH_OUTBOX";

/// Stream of events whose last attempt failed.
pub const DEAD_LETTER_STREAM: &str = "FLOORWATCH_DEAD_LETTERS";

/// Header carrying the `webhook-id` of an event.
const HEADER_EVENT_ID: &str = "Floorwatch-Event-Id";
/// Header carrying the event type.
const HEADER_EVENT_TYPE: &str = "Floorwatch-Event-Type";
/// Header of a dead letter with the last error.
const HEADER_LAST_ERROR: &str = "Floorwatch-Last-Error";

/// Window in which the outbox stream drops a message whose `Nats-Msg-Id`
/// it has stored before.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(600);

/// Wait of one pull for the next outbox message.
const FETCH_EXPIRY: Duration = Duration::from_secs(5);

/// Time beyond the endpoint's timeout before the stream delivers an
/// unacknowledged message again, to the same or another instance. An
/// attempt ends within the timeout, so this covers only the signing and
/// the acknowledgement.
const ACK_WAIT_MARGIN: Duration = Duration::from_secs(5);

/// Time between two in-progress acknowledgements of a message held while
/// the gate stops sending. It must stay below the ack wait, which is at
/// least [`ACK_WAIT_MARGIN`] plus one second.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(2);

/// Next step of a deliverer after an attempt.
enum Next {
    /// Pull the next message.
    Pull,
    /// Wait, then pull: the message stays pending for this long.
    Wait(Duration),
    /// Keep the message and send it again once the gate allows.
    Hold,
}

/// Returns the subject of partition `index` and endpoint `endpoint`.
pub fn subject(index: u32, endpoint: usize) -> String {
    format!("floorwatch-outbox.{index}.{endpoint}")
}

fn dead_letter_subject(index: u32, endpoint: usize) -> String {
    format!("floorwatch-dead.{index}.{endpoint}")
}

fn nats_error(action: &'static str, error: impl std::fmt::Display) -> BridgeError {
    BridgeError::Nats {
        action,
        detail: error.to_string(),
    }
}

/// Opens the outbox and dead-letter streams, creating them when missing.
pub async fn streams(js: &Context, settings: &NatsSettings) -> Result<Stream, BridgeError> {
    let outbox = Config {
        name: OUTBOX_STREAM.to_owned(),
        subjects: vec!["floorwatch-outbox.*.*".to_owned()],
        retention: RetentionPolicy::WorkQueue,
        storage: StorageType::File,
        num_replicas: settings.replicas,
        duplicate_window: DUPLICATE_WINDOW,
        ..Config::default()
    };
    let stream = js
        .get_or_create_stream(outbox)
        .await
        .map_err(|error| nats_error("opening the outbox stream", error))?;
    let dead = Config {
        name: DEAD_LETTER_STREAM.to_owned(),
        subjects: vec!["floorwatch-dead.*.*".to_owned()],
        retention: RetentionPolicy::Limits,
        storage: StorageType::File,
        num_replicas: settings.replicas,
        ..Config::default()
    };
    js.get_or_create_stream(dead)
        .await
        .map_err(|error| nats_error("opening the dead-letter stream", error))?;
    Ok(stream)
}

/// Stores `entries` of partition `index` in the outbox stream, in order,
/// and waits until the stream has stored each one.
pub async fn store(js: &Context, index: u32, entries: &[OutboxEntry]) -> Result<(), BridgeError> {
    let mut acks = Vec::with_capacity(entries.len());
    for entry in entries {
        let mut headers = HeaderMap::new();
        headers.insert(
            NATS_MESSAGE_ID,
            format!("{}.{}", entry.event_id, entry.endpoint).as_str(),
        );
        headers.insert(HEADER_EVENT_ID, entry.event_id.as_str());
        headers.insert(HEADER_EVENT_TYPE, entry.event_type.as_str());
        let ack = js
            .publish_with_headers(
                subject(index, entry.endpoint),
                headers,
                entry.body.clone().into_bytes().into(),
            )
            .await
            .map_err(|error| nats_error("storing an event in the outbox", error))?;
        acks.push(ack);
    }
    for ack in acks {
        ack.await
            .map_err(|error| nats_error("storing an event in the outbox", error))?;
    }
    Ok(())
}

/// Delivers the outbox subject of one partition and endpoint.
///
/// NOTE: unlike the SQLite outbox workers, this records no attempts in the
/// delivery log, and `max_concurrency` does not apply: each deliverer
/// sends one message at a time.
pub struct Deliverer {
    pub index: u32,
    pub endpoint_index: usize,
    pub endpoint: Arc<Endpoint>,
    /// Send limits shared with the deliverers of the other partitions.
    pub gate: Arc<EndpointGate>,
    pub timeout: Duration,
    pub settings: DeliverySettings,
    pub stream: Stream,
    pub js: Context,
    pub stats: Arc<Stats>,
}

impl Deliverer {
    /// Sends the subject's messages one at a time until `cancel` fires.
    pub async fn run(self, cancel: CancellationToken) {
        let consumer = loop {
            match self.consumer().await {
                Ok(consumer) => break consumer,
                Err(error) => {
                    tracing::warn!(partition = self.index, %error, "cannot open the outbox consumer, retrying")
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        };
        loop {
            // Waiting before the pull keeps the delivery count of the next
            // message unchanged while the endpoint is paused.
            if !self.gate.wait_ready(&cancel).await {
                return;
            }
            let message = tokio::select! {
                () = cancel.cancelled() => return,
                message = next_message(&consumer) => message,
            };
            let Some(message) = message else { continue };
            let next = loop {
                let Some(ticket) = self.admit_holding(&message, &cancel).await else {
                    // Stopping: hand the message back at once.
                    let _ = message.ack_with(AckKind::Nak(None)).await;
                    return;
                };
                match self.attempt(&message, ticket).await {
                    Next::Hold => continue,
                    next => break next,
                }
            };
            if let Next::Wait(wait) = next {
                // The message stays pending for `wait`, and the consumer
                // hands out nothing else meanwhile (one message in flight),
                // so later events of the incident stay behind it.
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
    }

    /// Waits until the gate allows sending `message`, sending in-progress
    /// acknowledgements meanwhile so that the stream neither hands it out
    /// again nor counts a delivery. Returns `None` when `cancel` fired.
    async fn admit_holding(
        &self,
        message: &Message,
        cancel: &CancellationToken,
    ) -> Option<Ticket<'_>> {
        let mut progress_at = Instant::now() + PROGRESS_INTERVAL;
        loop {
            let wait = match self.gate.admit() {
                Ok(ticket) => return Some(ticket),
                Err(wait) => wait,
            };
            let wait = wait.min(progress_at.saturating_duration_since(Instant::now()));
            tokio::select! {
                () = cancel.cancelled() => return None,
                () = self.gate.changed_or(wait) => {}
            }
            if Instant::now() >= progress_at {
                if let Err(error) = message.ack_with(AckKind::Progress).await {
                    tracing::debug!(partition = self.index, %error, "could not extend the ack wait of a held event");
                }
                progress_at = Instant::now() + PROGRESS_INTERVAL;
            }
        }
    }

    async fn consumer(&self) -> Result<PullConsumer, BridgeError> {
        let name = format!("floorwatch-out-{}-{}", self.index, self.endpoint_index);
        let config = pull::Config {
            durable_name: Some(name.clone()),
            filter_subject: subject(self.index, self.endpoint_index),
            ack_policy: AckPolicy::Explicit,
            ack_wait: self.timeout + ACK_WAIT_MARGIN,
            max_ack_pending: 1,
            ..pull::Config::default()
        };
        self.stream
            .get_or_create_consumer(&name, config)
            .await
            .map_err(|error| nats_error("creating an outbox consumer", error))
    }

    /// Makes one attempt at `message` with `ticket`, settles the message
    /// and returns what to do next.
    async fn attempt(&self, message: &Message, ticket: Ticket<'_>) -> Next {
        let header = |name: &str| {
            message
                .headers
                .as_ref()
                .and_then(|headers| headers.get(name))
                .map(|value| value.as_str().to_owned())
                .unwrap_or_default()
        };
        let event_id = header(HEADER_EVENT_ID);
        let attempt = message
            .info()
            .map(|info| info.delivered)
            .unwrap_or(1)
            .max(1) as u32;
        let outcome = self.endpoint.send_signed(&event_id, &message.payload).await;
        let endpoint = redact(&self.endpoint.key);
        if outcome.delivered() {
            ticket.settle(Attempt::Delivered);
            bump(&self.stats.deliveries_succeeded);
            tracing::info!(%endpoint, %event_id, event_type = %header(HEADER_EVENT_TYPE), attempt, "delivered a webhook");
            if let Err(error) = message.double_ack().await {
                // The stream delivers the message again after ack_wait; the
                // receiver drops the repeat by its webhook-id.
                tracing::warn!(%endpoint, %event_id, %error, "could not acknowledge a delivered event");
            }
            return Next::Pull;
        }
        bump(&self.stats.delivery_attempts_failed);
        let error = outcome.error.clone().unwrap_or_default();
        if outcome.status == Some(410) {
            // The gate logs the disabled endpoint. Like a row of the SQLite
            // outbox, the event is neither retried on the schedule nor
            // dead-lettered: it waits for the endpoint to be enabled.
            ticket.settle(Attempt::Gone);
            tracing::warn!(%endpoint, %event_id, attempt, "webhook attempt returned 410 Gone; holding the event until the endpoint is enabled");
            return Next::Hold;
        }
        ticket.settle(Attempt::Failed);
        let unit_random = rand::thread_rng().gen::<f64>();
        match next_delay(&self.settings, attempt, outcome.retry_after, unit_random) {
            Some(delay) => {
                tracing::warn!(
                    %endpoint, %event_id, attempt, status = outcome.status, %error,
                    delay_ms = delay.as_millis() as u64,
                    "webhook attempt failed, retrying"
                );
                if let Err(error) = message.ack_with(AckKind::Nak(Some(delay))).await {
                    tracing::warn!(%endpoint, %event_id, %error, "could not schedule a retry");
                }
                Next::Wait(delay)
            }
            None => {
                tracing::error!(
                    %endpoint, %event_id, attempt, status = outcome.status, %error,
                    "webhook delivery failed for the last time; the event is now a dead letter"
                );
                match self.dead_letter(message, &error).await {
                    Some(wait) => Next::Wait(wait),
                    None => Next::Pull,
                }
            }
        }
    }

    /// Moves `message` to the dead-letter stream, then removes it from the
    /// outbox. Returns a wait when the dead-letter stream did not store it,
    /// so the message stays and is tried again.
    async fn dead_letter(&self, message: &Message, error: &str) -> Option<Duration> {
        let mut headers = message.headers.clone().unwrap_or_default();
        headers.insert(HEADER_LAST_ERROR, error.replace(['\r', '\n'], " ").as_str());
        let stored = match self
            .js
            .publish_with_headers(
                dead_letter_subject(self.index, self.endpoint_index),
                headers,
                message.payload.clone(),
            )
            .await
        {
            Ok(ack) => ack.await.map(drop).map_err(|error| error.to_string()),
            Err(error) => Err(error.to_string()),
        };
        if let Err(error) = stored {
            tracing::warn!(%error, "could not store a dead letter, keeping the event in the outbox");
            let delay = Duration::from_secs(5);
            let _ = message.ack_with(AckKind::Nak(Some(delay))).await;
            return Some(delay);
        }
        bump(&self.stats.dead_letters);
        if let Err(error) = message.ack_with(AckKind::Term).await {
            tracing::warn!(%error, "could not remove a dead letter from the outbox");
        }
        None
    }
}

/// Pulls the next message, or `None` when the pull expired or failed.
async fn next_message(consumer: &PullConsumer) -> Option<Message> {
    let batch = consumer
        .fetch()
        .max_messages(1)
        .expires(FETCH_EXPIRY)
        .messages()
        .await;
    let mut batch = match batch {
        Ok(batch) => batch,
        Err(error) => {
            tracing::debug!(%error, "pulling from the outbox failed");
            tokio::time::sleep(Duration::from_secs(1)).await;
            return None;
        }
    };
    match batch.next().await {
        Some(Ok(message)) => Some(message),
        Some(Err(error)) => {
            tracing::debug!(%error, "pulling from the outbox failed");
            None
        }
        None => None,
    }
}
