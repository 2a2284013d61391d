//! The MQTT publisher: sends readings at QoS 1 and counts a reading as
//! delivered only when the broker's PubAck for it arrives.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use floorwatch_protocol::{topic::DEFAULT_PREFIX, BrokerUrl, Reading, Topics};
use rumqttc::{AsyncClient, MqttOptions, QoS, Transport};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::event_loop;
use crate::tracker::{Outstanding, Tracker};

/// Default number of readings that may wait for their PubAck at once.
pub const DEFAULT_MAX_INFLIGHT: u16 = 100;

/// Keep-alive interval sent to the broker.
const KEEP_ALIVE: Duration = Duration::from_secs(30);

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
            .finish()
    }
}

/// Error in starting the publisher, publishing or confirming readings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
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
}

/// State shared by the publisher handles and the event loop task.
pub(crate) struct Shared {
    tracker: Mutex<Tracker>,
    progress: watch::Sender<Progress>,
    /// One permit per reading that may still be sent. A permit returns on
    /// the reading's PubAck.
    pub permits: Semaphore,
}

impl Shared {
    fn new(max_inflight: u16) -> Self {
        Self {
            tracker: Mutex::new(Tracker::default()),
            progress: watch::Sender::new(Progress::default()),
            permits: Semaphore::new(usize::from(max_inflight)),
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

    /// Marks the event loop as stopped and wakes every waiting publisher.
    pub fn stop(&self) {
        self.permits.close();
        self.progress
            .send_modify(|progress| progress.stopped = true);
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
        let Ok(permit) = self.shared.permits.acquire().await else {
            return Err(self.closed());
        };
        let topic = self.topics.reading(&reading.site, &reading.sensor);
        let item = Outstanding {
            topic: topic.clone(),
            seq: reading.seq,
        };

        // TODO: append the reading to a disk outbox here and delete it on its
        // PubAck, so that unacknowledged readings survive a restart of the
        // process and not only a reconnect.

        // Queue in the tracker and in the channel under one lock, so that
        // both see concurrent publishers in the same order. The channel
        // holds one more request than there are permits, so it is never
        // full here and `try_publish` fails only when the event loop is gone.
        let sent = self.shared.update(|tracker| {
            tracker.queue(item);
            let sent = self
                .client
                .try_publish(topic, QoS::AtLeastOnce, false, reading.to_json());
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
/// NOTE: unacknowledged readings live only in memory. They are lost when the
/// process stops, and `publish` waits while the broker is unreachable and
/// `max_inflight` readings are outstanding.
pub struct Publisher {
    handle: PublisherHandle,
    task: JoinHandle<()>,
    /// Stops the event loop task when the publisher is dropped.
    stop: DropGuard,
}

impl Publisher {
    /// Validates `config` and spawns the event loop task on the current Tokio
    /// runtime. The connection is made in the background, and readings
    /// published before it is up wait in the queue.
    pub fn connect(config: PublisherConfig) -> Result<Publisher, PublishError> {
        let options = mqtt_options(&config)?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| PublishError::NoRuntime)?;

        // One slot more than the permits leaves room for the DISCONNECT
        // request that `close` sends.
        let capacity = usize::from(config.max_inflight) + 1;
        let (client, eventloop) = AsyncClient::new(options, capacity);
        let shared = Arc::new(Shared::new(config.max_inflight));
        let broker = config.broker.to_string();
        let stop = CancellationToken::new();

        let task = runtime.spawn(event_loop::run(
            eventloop,
            Arc::clone(&shared),
            broker.clone(),
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
            mut task,
            stop,
        } = self;
        let mut joined = None;
        if handle.client.try_disconnect().is_ok() {
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

/// Builds the rumqttc options for MQTT 3.1.1 with a persistent session.
fn mqtt_options(config: &PublisherConfig) -> Result<MqttOptions, PublishError> {
    if config.client_id.is_empty() {
        return Err(PublishError::EmptyClientId);
    }
    if config.max_inflight == 0 {
        return Err(PublishError::ZeroInflight);
    }
    let prefix = config.topic_prefix.trim_end_matches('/');
    if prefix.is_empty() || prefix.contains(['+', '#']) {
        return Err(PublishError::InvalidTopicPrefix {
            prefix: config.topic_prefix.clone(),
        });
    }

    let broker = &config.broker;
    let mut options = MqttOptions::new(&config.client_id, &broker.host, broker.port);
    options
        .set_keep_alive(KEEP_ALIVE)
        .set_clean_session(false)
        .set_inflight(config.max_inflight);
    if let Some(username) = &config.username {
        let password = config.password.clone().unwrap_or_default();
        options.set_credentials(username, password);
    }
    if broker.tls {
        // NOTE: rumqttc 0.25 panics here when the platform's root
        // certificates cannot be loaded.
        options.set_transport(Transport::tls_with_default_config());
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> PublisherConfig {
        PublisherConfig::new("mqtt://127.0.0.1:1883".parse().unwrap(), "edge-1")
    }

    #[test]
    fn options_resume_session_and_limit_inflight() {
        let options = mqtt_options(&PublisherConfig {
            max_inflight: 7,
            ..config()
        })
        .unwrap();
        assert!(!options.clean_session());
        assert_eq!(options.inflight(), 7);
        assert_eq!(options.client_id(), "edge-1");
        assert_eq!(options.broker_address(), ("127.0.0.1".to_owned(), 1883));
    }

    #[test]
    fn options_reject_invalid_config() {
        let empty_id = PublisherConfig {
            client_id: String::new(),
            ..config()
        };
        assert_eq!(
            mqtt_options(&empty_id).unwrap_err(),
            PublishError::EmptyClientId
        );

        let zero = PublisherConfig {
            max_inflight: 0,
            ..config()
        };
        assert_eq!(mqtt_options(&zero).unwrap_err(), PublishError::ZeroInflight);

        for prefix in ["", "/", "plant/#", "a/+/b"] {
            let bad = PublisherConfig {
                topic_prefix: prefix.into(),
                ..config()
            };
            assert!(
                matches!(
                    mqtt_options(&bad),
                    Err(PublishError::InvalidTopicPrefix { .. })
                ),
                "{prefix:?} was accepted"
            );
        }
    }

    #[test]
    fn debug_redacts_password() {
        let config = PublisherConfig {
            username: Some("edge".into()),
            password: Some("hunter2".into()),
            ..config()
        };
        let text = format!("{config:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }

    #[test]
    fn connect_outside_runtime_is_an_error() {
        assert!(matches!(
            Publisher::connect(config()),
            Err(PublishError::NoRuntime)
        ));
    }
}
