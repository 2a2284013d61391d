//! The MQTT publisher: sends readings at QoS 1 and counts a reading as
//! delivered only when the broker's PubAck for it arrives.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use floorwatch_protocol::{topic::DEFAULT_PREFIX, BrokerUrl, Reading, Topics};
use rumqttc::{AsyncClient, QoS};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::event_loop::{self, StatusPublisher};
use crate::options::{mqtt_options, TlsFiles, STATUS_OFFLINE};
use crate::outbox::OutboxEntry;
use crate::tracker::{Outstanding, Tracker};

/// Default number of readings that may wait for their PubAck at once.
pub const DEFAULT_MAX_INFLIGHT: u16 = 100;

/// Connection settings of a [`Publisher`].
#[derive(Clone)]
pub struct PublisherConfig {
    /// Broker address.
    pub broker: BrokerUrl,
    /// MQTT client id. It must stay the same across restarts because the
    /// broker keeps the session, and with it unacknowledged readings, under
    /// this id.
    pub client_id: String,
    /// Topic prefix, `floorwatch` by default. Readings go to
    /// `{prefix}/{site}/{sensor}/reading`.
    pub topic_prefix: String,
    /// User name sent in CONNECT, if any.
    pub username: Option<String>,
    /// Password sent in CONNECT, if any. It is sent only with `username`.
    pub password: Option<String>,
    /// Readings that may be unacknowledged at once. `publish` waits while
    /// this many are outstanding.
    pub max_inflight: u16,
    /// Retained agent status topic. When set, the publisher sets a retained
    /// `offline` last will on it, publishes a retained `online` after every
    /// ConnAck and a retained `offline` when closed.
    pub status_topic: Option<String>,
    /// TLS files, used when the broker URL is `mqtts://`.
    pub tls: TlsFiles,
}

impl PublisherConfig {
    /// Creates a configuration with the default prefix, no credentials and
    /// [`DEFAULT_MAX_INFLIGHT`].
    pub fn new(broker: BrokerUrl, client_id: impl Into<String>) -> Self {
        Self {
            broker,
            client_id: client_id.into(),
            topic_prefix: DEFAULT_PREFIX.to_owned(),
            username: None,
            password: None,
            max_inflight: DEFAULT_MAX_INFLIGHT,
            status_topic: None,
            tls: TlsFiles::default(),
        }
    }
}

impl fmt::Debug for PublisherConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublisherConfig")
            .field("broker", &self.broker.to_string())
            .field("client_id", &self.client_id)
            .field("topic_prefix", &self.topic_prefix)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("max_inflight", &self.max_inflight)
            .field("status_topic", &self.status_topic)
            .field("tls", &self.tls)
            .finish()
    }
}

/// Error in starting the publisher, publishing or confirming readings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error("TLS file {path} is invalid: {reason}: set a readable PEM file in the TLS settings")]
    TlsFile {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("TLS client_cert and client_key must be set together: set both or neither")]
    TlsClientAuthIncomplete,
    #[error("MQTT client id is empty: set a client id that stays the same across restarts")]
    EmptyClientId,
    #[error("max_inflight is 0: allow at least 1 unacknowledged reading")]
    ZeroInflight,
    #[error(
        "topic prefix {prefix:?} is invalid: use a non-empty prefix without '+' or '#' \
         (default {DEFAULT_PREFIX:?})"
    )]
    InvalidTopicPrefix { prefix: String },
    #[error("no Tokio runtime is running: call Publisher::connect from inside a runtime")]
    NoRuntime,
    #[error("publisher for {broker} is closed: its MQTT event loop has stopped")]
    Closed { broker: String },
    #[error(
        "{unconfirmed} readings sent to {broker} were not confirmed by a PubAck within {deadline:?}"
    )]
    Unconfirmed {
        broker: String,
        unconfirmed: usize,
        deadline: Duration,
    },
}

/// Counters published by the tracker after every change.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Progress {
    pub outstanding: usize,
    pub acked: u64,
    /// True once the event loop has stopped, so no more PubAcks will arrive.
    pub stopped: bool,
    /// True between a ConnAck and the next connection failure.
    pub connected: bool,
}

/// State shared by the publisher handles and the event loop task.
pub(crate) struct Shared {
    tracker: Mutex<Tracker>,
    progress: watch::Sender<Progress>,
    /// One permit per reading that may still be sent. A permit returns on
    /// the reading's PubAck.
    pub permits: Semaphore,
    /// Receives the outbox row id of every acknowledged outbox reading.
    acked_tx: Option<mpsc::UnboundedSender<i64>>,
}

impl Shared {
    fn new(max_inflight: u16, acked_tx: Option<mpsc::UnboundedSender<i64>>) -> Self {
        Self {
            tracker: Mutex::new(Tracker::default()),
            progress: watch::Sender::new(Progress::default()),
            permits: Semaphore::new(usize::from(max_inflight)),
            acked_tx,
        }
    }

    /// Reports an acknowledged outbox row to the agent, which deletes it.
    pub fn report_acked(&self, item: &Outstanding) {
        if let (Some(id), Some(acked_tx)) = (item.outbox_id, &self.acked_tx) {
            // A closed receiver means the agent is gone; the row stays in
            // the outbox and is sent again after the next start.
            let _ = acked_tx.send(id);
        }
    }

    /// Runs `change` on the tracker and publishes the new counters.
    pub fn update<R>(&self, change: impl FnOnce(&mut Tracker) -> R) -> R {
        // No code that runs under this lock panics, so the tracker inside a
        // poisoned lock is still consistent.
        let mut tracker = self.tracker.lock().unwrap_or_else(PoisonError::into_inner);
        let result = change(&mut tracker);
        let (outstanding, acked) = (tracker.outstanding(), tracker.acked());
        self.progress.send_modify(|progress| {
            progress.outstanding = outstanding;
            progress.acked = acked;
        });
        result
    }

    /// Records whether the connection is up.
    pub fn set_connected(&self, connected: bool) {
        self.progress.send_if_modified(|progress| {
            std::mem::replace(&mut progress.connected, connected) != connected
        });
    }

    /// Marks the event loop as stopped and wakes every waiting publisher.
    pub fn stop(&self) {
        self.permits.close();
        self.progress.send_modify(|progress| {
            progress.stopped = true;
            progress.connected = false;
        });
    }
}

/// A cloneable sending side of a [`Publisher`], for sampling tasks.
#[derive(Clone)]
pub(crate) struct PublisherHandle {
    client: AsyncClient,
    topics: Topics,
    shared: Arc<Shared>,
    broker: String,
}

impl PublisherHandle {
    pub async fn publish(&self, reading: &Reading) -> Result<(), PublishError> {
        let topic = self.topics.reading(&reading.site, &reading.sensor);
        let item = Outstanding {
            topic: topic.clone(),
            seq: reading.seq,
            outbox_id: None,
        };
        self.send(item, reading.to_json()).await
    }

    /// Publishes a stored outbox reading; its row id is reported on the
    /// acknowledgement channel when its PubAck arrives.
    pub async fn publish_entry(&self, entry: &OutboxEntry) -> Result<(), PublishError> {
        let item = Outstanding {
            topic: entry.topic.clone(),
            seq: None,
            outbox_id: Some(entry.id),
        };
        self.send(item, entry.payload.clone()).await
    }

    async fn send(&self, item: Outstanding, payload: Vec<u8>) -> Result<(), PublishError> {
        let Ok(permit) = self.shared.permits.acquire().await else {
            return Err(self.closed());
        };
        let topic = item.topic.clone();

        // Queue in the tracker and in the channel under one lock, so that
        // both see concurrent publishers in the same order. The channel
        // holds one more request than there are permits, so it is never
        // full here and `try_publish` fails only when the event loop is gone.
        let sent = self.shared.update(|tracker| {
            tracker.queue(item);
            let sent = self
                .client
                .try_publish(topic, QoS::AtLeastOnce, false, payload);
            if sent.is_err() {
                tracker.unqueue_last();
            }
            sent
        });
        match sent {
            Ok(()) => {
                permit.forget();
                Ok(())
            }
            Err(_) => Err(self.closed()),
        }
    }

    pub fn acked(&self) -> u64 {
        self.shared.progress.borrow().acked
    }

    /// Waits until the broker has accepted the connection, or the event loop
    /// has stopped.
    pub async fn wait_connected(&self) {
        let mut progress_rx = self.shared.progress.subscribe();
        // `shared` owns the sender, so the channel cannot close here.
        let _ = progress_rx
            .wait_for(|progress| progress.connected || progress.stopped)
            .await;
    }

    pub async fn flush(&self, deadline: Duration) -> Result<(), PublishError> {
        let mut progress_rx = self.shared.progress.subscribe();
        let settled = |progress: &Progress| progress.outstanding == 0 || progress.stopped;
        // The sender lives in `shared`, which this handle keeps alive, so
        // `wait_for` cannot fail with a closed channel.
        let _ = timeout(deadline, progress_rx.wait_for(settled)).await;

        let unconfirmed = progress_rx.borrow().outstanding;
        if unconfirmed == 0 {
            return Ok(());
        }
        Err(PublishError::Unconfirmed {
            broker: self.broker.clone(),
            unconfirmed,
            deadline,
        })
    }

    fn closed(&self) -> PublishError {
        PublishError::Closed {
            broker: self.broker.clone(),
        }
    }
}

/// An MQTT connection that publishes readings at QoS 1 and tracks their
/// PubAcks.
///
/// A background task polls the rumqttc event loop, reconnects with capped
/// exponential backoff and jitter, and resumes the MQTT session
/// (`clean_session = false`), so rumqttc sends unacknowledged readings again
/// after a reconnect. When the broker has lost the session, the task sends
/// them again as new messages, so a subscriber may see a reading twice.
///
/// NOTE: readings passed to `publish` live only in memory. They are lost
/// when the process stops, and `publish` waits while the broker is
/// unreachable and `max_inflight` readings are outstanding. The edge agent
/// ([`crate::Agent`]) puts an on-disk outbox in front of the publisher.
pub struct Publisher {
    handle: PublisherHandle,
    status: Option<StatusPublisher>,
    task: JoinHandle<()>,
    /// Stops the event loop task when the publisher is dropped.
    stop: DropGuard,
}

impl Publisher {
    /// Validates `config` and spawns the event loop task on the current Tokio
    /// runtime. The connection is made in the background, and readings
    /// published before it is up wait in the queue.
    pub fn connect(config: PublisherConfig) -> Result<Publisher, PublishError> {
        Self::connect_with_acks(config, None)
    }

    /// Like [`Publisher::connect`], and sends the outbox row id of every
    /// acknowledged [`PublisherHandle::publish_entry`] reading to `acked_tx`.
    pub(crate) fn connect_with_acks(
        config: PublisherConfig,
        acked_tx: Option<mpsc::UnboundedSender<i64>>,
    ) -> Result<Publisher, PublishError> {
        let options = mqtt_options(&config)?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| PublishError::NoRuntime)?;

        // Slots beyond the permits leave room for the DISCONNECT request and
        // the status messages, which take no permit.
        let capacity = usize::from(config.max_inflight) + 3;
        let (client, eventloop) = AsyncClient::new(options, capacity);
        let shared = Arc::new(Shared::new(config.max_inflight, acked_tx));
        let broker = config.broker.to_string();
        let stop = CancellationToken::new();
        let status = config.status_topic.clone().map(|topic| StatusPublisher {
            client: client.clone(),
            topic,
        });

        let task = runtime.spawn(event_loop::run(
            eventloop,
            Arc::clone(&shared),
            broker.clone(),
            status.clone(),
            stop.clone(),
        ));
        let handle = PublisherHandle {
            client,
            topics: Topics::new(&config.topic_prefix),
            shared,
            broker,
        };
        Ok(Publisher {
            handle,
            status,
            task,
            stop: stop.drop_guard(),
        })
    }

    /// Publishes `reading` at QoS 1 on its reading topic.
    ///
    /// Returns once the reading is queued for the event loop, not when it is
    /// acknowledged: use [`Publisher::acked`] or [`Publisher::flush`] for
    /// that. Waits while `max_inflight` readings are unacknowledged, which
    /// slows a replay down to the rate the broker confirms.
    pub async fn publish(&self, reading: &Reading) -> Result<(), PublishError> {
        self.handle.publish(reading).await
    }

    /// Returns the number of readings confirmed by a PubAck so far.
    pub fn acked(&self) -> u64 {
        self.handle.acked()
    }

    /// Waits until every reading published so far is acknowledged, and
    /// fails with the number still unconfirmed after `deadline`.
    pub async fn flush(&self, deadline: Duration) -> Result<(), PublishError> {
        self.handle.flush(deadline).await
    }

    /// Flushes within `deadline`, then disconnects and stops the event loop.
    /// Readings still unconfirmed are logged and dropped.
    pub async fn close(self, deadline: Duration) {
        let started = Instant::now();
        if let Err(error) = self.flush(deadline).await {
            tracing::warn!(%error, "closing MQTT publisher with unconfirmed readings");
        }

        let Publisher {
            handle,
            status,
            mut task,
            stop,
        } = self;
        // Without a connection the event loop would not take the DISCONNECT
        // before the deadline, so the task is stopped at once.
        let connected = handle.shared.progress.borrow().connected;
        if let (true, Some(status)) = (connected, &status) {
            status.publish(STATUS_OFFLINE);
        }
        let mut joined = None;
        if connected && handle.client.try_disconnect().is_ok() {
            let remaining = deadline.saturating_sub(started.elapsed());
            joined = timeout(remaining, &mut task).await.ok();
        }
        drop(stop);
        let joined = match joined {
            Some(joined) => joined,
            None => task.await,
        };
        if let Err(error) = joined {
            tracing::error!(%error, broker = %handle.broker, "MQTT event loop task failed");
        }
    }

    pub(crate) fn handle(&self) -> PublisherHandle {
        self.handle.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_password() {
        let config = PublisherConfig {
            username: Some("edge".into()),
            password: Some("hunter2".into()),
            ..PublisherConfig::new("mqtt://127.0.0.1:1883".parse().unwrap(), "edge-1")
        };
        let text = format!("{config:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }
}
