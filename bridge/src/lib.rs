//! floorwatch bridge: ingests readings from MQTT or NATS JetStream (see
//! [`nats`]), evaluates threshold rules, turns each abnormal episode into one
//! incident, and delivers its events as signed webhooks with retries from a
//! durable outbox: SQLite, or a JetStream stream with NATS.
//!
//! [`start`] spawns the tasks and returns a [`BridgeHandle`]; [`run`] is
//! `start` followed by [`BridgeHandle::wait`].

pub mod config;
pub mod delivery;
pub mod guard;
pub mod health;
pub mod http;
pub mod http_admin;
mod ingest;
pub mod metrics;
pub mod mqtt;
pub mod mutes;
pub mod nats;
pub mod pipeline;
pub mod profile;
pub mod reload;
pub mod retry;
pub mod rules;
pub mod sensor;
pub mod stats;
pub mod store;

use std::future::Future;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use floorwatch_protocol::{BrokerUrl, Topics};
use rumqttc::AsyncClient;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{
    AckMode, BridgeConfig, ConfigError, DeliverySettings, EndpointConfig, HealthSettings,
    HttpSettings, MqttSettings, OverrideConfig, ReminderSettings, RuleConfig, RuleKind,
};
pub use reload::{watch_config_file, Reloader};
pub use stats::StatsSnapshot;
pub use store::{DeliveryFilter, DeliveryStatus, DeliverySummary, Store, StoreError};

use crate::delivery::{redact, Endpoint, Worker};
use crate::ingest::Queued;
use crate::mqtt::MqttLoop;
use crate::pipeline::{Inbound, Processor, RetainedIncidents};
use crate::stats::Stats;

/// Payloads waiting for ingest before MQTT reading pauses.
/// Requests (acks, publications) queued for the MQTT event loop. Larger than
/// the ingest queue plus one batch, so that acknowledging a committed batch
/// never waits on a full channel while the event loop waits on ingest.
const REQUEST_CAPACITY: usize = QUEUE_CAPACITY + 2 * ingest::MAX_BATCH + 64;

const QUEUE_CAPACITY: usize = 4096;

/// Error that kept the bridge from starting or stopped it.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot set up webhook endpoint {url}: {detail}")]
    Endpoint { url: String, detail: String },
    #[error("HTTP ingest on {addr} failed: {detail} (set bridge.http.listen to a free address)")]
    Http {
        addr: std::net::SocketAddr,
        detail: String,
    },
    #[error("NATS {action} failed: {detail}")]
    Nats {
        action: &'static str,
        detail: String,
    },
    #[error("a bridge task failed: {0}")]
    Task(String),
    #[error("the bridge has stopped: the payload was not processed")]
    Stopped,
}

/// A running bridge.
pub struct BridgeHandle {
    stats: Arc<Stats>,
    queue_tx: mpsc::Sender<Queued>,
    reloader: Reloader,
    http_addr: Option<std::net::SocketAddr>,
    tasks: Vec<JoinHandle<Result<(), BridgeError>>>,
}

impl BridgeHandle {
    /// Validates `config` and applies its rules, health checks, overrides
    /// and reminders; see [`Reloader::reload`].
    pub async fn reload(&self, config: BridgeConfig) -> Result<(), BridgeError> {
        self.reloader.reload(config).await
    }

    /// Returns the bound address of HTTP ingest, when it is enabled.
    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        self.http_addr
    }

    /// Returns a handle that reloads the config from another task.
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// Returns a copy of the counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Processes one payload as if it arrived on the reading topic of
    /// `site`/`sensor`, and returns once its batch is committed.
    pub async fn ingest(
        &self,
        site: &str,
        sensor: &str,
        payload: &[u8],
    ) -> Result<(), BridgeError> {
        let (done_tx, done_rx) = oneshot::channel();
        let queued = Queued {
            inbound: Inbound {
                site: site.to_owned(),
                sensor: sensor.to_owned(),
                payload: payload.to_vec(),
                received_at: Utc::now(),
            },
            ack: None,
            done: Some(done_tx),
        };
        self.queue_tx
            .send(queued)
            .await
            .map_err(|_| BridgeError::Stopped)?;
        done_rx.await.map_err(|_| BridgeError::Stopped)
    }

    /// Waits until every task has stopped, after `shutdown` is cancelled or
    /// a task failed, and returns the first failure.
    pub async fn wait(self) -> Result<(), BridgeError> {
        drop(self.queue_tx);
        let mut first_error = None;
        for task in self.tasks {
            let result = task
                .await
                .unwrap_or_else(|error| Err(BridgeError::Task(error.to_string())));
            if let Err(error) = result {
                tracing::error!(%error, "bridge task failed");
                first_error.get_or_insert(error);
            }
        }
        tracing::info!("bridge stopped");
        first_error.map_or(Ok(()), Err)
    }
}

/// Runs the bridge until `shutdown` is cancelled.
pub async fn run(config: BridgeConfig, shutdown: CancellationToken) -> Result<(), BridgeError> {
    start(config, shutdown).await?.wait().await
}

/// Validates `config`, opens the database, and starts ingest, MQTT and one
/// delivery worker per endpoint.
///
/// Returns once the subscription is queued, without waiting for the broker:
/// the MQTT task connects and reconnects with backoff in the background.
pub async fn start(
    config: BridgeConfig,
    shutdown: CancellationToken,
) -> Result<BridgeHandle, BridgeError> {
    config.validate()?;
    tracing::info!(config = %redacted_config(&config), "bridge starting");
    if config.source == config::Source::Nats {
        return nats::start(config, shutdown).await;
    }
    tracing::info!(source = "mqtt", broker = %redact(&config.mqtt.url), "reading from MQTT");
    let broker: BrokerUrl = config.mqtt.url.parse().map_err(|error| ConfigError {
        field: "bridge.mqtt.url".to_owned(),
        value: config.mqtt.url.clone(),
        fix: format!("{error}"),
    })?;

    let stats = Arc::new(Stats::default());
    let retained = RetainedIncidents::default();
    let processor = open_processor(&config, &stats, &retained).await?;
    let workers = build_workers(&config, &stats).await?;
    let wakers = workers
        .iter()
        .map(|worker| Arc::clone(&worker.wake))
        .collect();

    let topics = Topics::new(&config.mqtt.topic_prefix);
    // The event loop subscribes on every ConnAck; subscribing here as well
    // would make rumqttd deliver each message once per subscription.
    let (client, eventloop) =
        AsyncClient::new(mqtt::options(&config.mqtt, &broker), REQUEST_CAPACITY);
    let (queue_tx, queue_rx) = mpsc::channel(QUEUE_CAPACITY);
    let (control_tx, control_rx) = mpsc::channel(4);
    let reloader = Reloader {
        control_tx,
        current: Arc::new(Mutex::new(config.clone())),
        stats: Arc::clone(&stats),
    };

    let cancel = shutdown.child_token();
    let mqtt_loop = MqttLoop {
        eventloop,
        client: client.clone(),
        topics,
        queue_tx: queue_tx.clone(),
        stats: Arc::clone(&stats),
        retained,
        ack: config.mqtt.ack,
    };
    let ingest = ingest::Ingest {
        queue_rx,
        control_rx,
        processor,
        client,
        wakers,
    };
    let ingest = ingest::run(ingest, cancel.clone());
    // Bound before any task starts, so a taken port stops nothing running.
    let http = match config.http.enabled {
        true => {
            let admin = admin_state(&config, &stats, &workers).await?;
            Some(http::start(&config.http, queue_tx.clone(), admin, cancel.clone()).await?)
        }
        false => None,
    };
    let mut tasks = spawn_tasks(&cancel, ingest, mqtt_loop, workers);
    let http_addr = http.map(|(addr, serve)| {
        tasks.push(spawn_task(&cancel, serve));
        addr
    });
    Ok(BridgeHandle {
        stats,
        queue_tx,
        reloader,
        http_addr,
        tasks,
    })
}

/// Spawns ingest, the MQTT loop and the delivery workers. The MQTT loop
/// disconnects only after ingest has finished, so the last acknowledgements
/// are sent.
fn spawn_tasks(
    cancel: &CancellationToken,
    ingest: impl Future<Output = Result<(), BridgeError>> + Send + 'static,
    mqtt_loop: MqttLoop,
    workers: Vec<Worker>,
) -> Vec<JoinHandle<Result<(), BridgeError>>> {
    let ingest_done = CancellationToken::new();
    let ingest_finished = ingest_done.clone();
    let mut tasks = vec![spawn_task(cancel, async move {
        let result = ingest.await;
        ingest_finished.cancel();
        result
    })];
    let mqtt_cancel = cancel.clone();
    tasks.push(spawn_task(cancel, async move {
        mqtt_loop.run(mqtt_cancel, ingest_done).await;
        Ok(())
    }));
    for worker in workers {
        tasks.push(spawn_task(cancel, worker.run(cancel.clone())));
    }
    tasks
}

/// Spawns a task that stops the whole bridge when it fails.
fn spawn_task(
    cancel: &CancellationToken,
    task: impl Future<Output = Result<(), BridgeError>> + Send + 'static,
) -> JoinHandle<Result<(), BridgeError>> {
    let cancel = cancel.clone();
    tokio::spawn(async move {
        let result = task.await;
        if result.is_err() {
            cancel.cancel();
        }
        result
    })
}

async fn open_processor(
    config: &BridgeConfig,
    stats: &Arc<Stats>,
    retained: &RetainedIncidents,
) -> Result<Processor, BridgeError> {
    let config = config.clone();
    let stats = Arc::clone(stats);
    let retained = Arc::clone(retained);
    tokio::task::spawn_blocking(move || {
        let store = Store::open(&config.database)?;
        let pending = store.count_pending()?;
        stats
            .outbox_pending
            .store(pending, std::sync::atomic::Ordering::Relaxed);
        Ok(Processor::new(store, &config, stats, retained)?)
    })
    .await
    .map_err(|error| BridgeError::Task(format!("opening the database: {error}")))?
}

async fn build_workers(
    config: &BridgeConfig,
    stats: &Arc<Stats>,
) -> Result<Vec<Worker>, BridgeError> {
    let mut workers = Vec::new();
    for endpoint_config in config.endpoints.iter().filter(|e| e.enabled) {
        let endpoint = Endpoint::new(endpoint_config)?;
        let path = config.database.clone();
        let store = tokio::task::spawn_blocking(move || Store::open(&path))
            .await
            .map_err(|error| BridgeError::Task(format!("opening the database: {error}")))??;
        workers.push(Worker {
            endpoint,
            store: Arc::new(Mutex::new(store)),
            settings: config.delivery.clone(),
            stats: Arc::clone(stats),
            wake: Arc::new(Notify::new()),
        });
    }
    Ok(workers)
}

/// Opens the database connection of the operator routes.
async fn admin_state(
    config: &BridgeConfig,
    stats: &Arc<Stats>,
    workers: &[Worker],
) -> Result<http_admin::AdminState, BridgeError> {
    let path = config.database.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&path))
        .await
        .map_err(|error| BridgeError::Task(format!("opening the database: {error}")))??;
    Ok(http_admin::AdminState {
        store: Arc::new(Mutex::new(store)),
        stats: Arc::clone(stats),
        wakers: workers
            .iter()
            .map(|worker| Arc::clone(&worker.wake))
            .collect(),
    })
}

/// Returns the config as JSON with passwords, secrets and URL query strings
/// removed, for the start log.
fn redacted_config(config: &BridgeConfig) -> serde_json::Value {
    let hidden = || "<redacted>".to_owned();
    let mut config = config.clone();
    config.mqtt.password = config.mqtt.password.as_ref().map(|_| hidden());
    config.nats.password = config.nats.password.as_ref().map(|_| hidden());
    for endpoint in &mut config.endpoints {
        endpoint.url = redact(&endpoint.url);
        endpoint.secret = endpoint.secret.as_ref().map(|_| hidden());
        endpoint
            .secrets
            .iter_mut()
            .for_each(|secret| *secret = hidden());
    }
    serde_json::to_value(&config).unwrap_or_default()
}
