//! The long-running edge agent behind `floorwatch edge`: sampling tasks
//! store every reading in the on-disk outbox, a sender task drains the
//! outbox to the broker, and a PubAck deletes the reading's row.
//!
//! Sampling never waits for the broker, so an outage only grows the outbox,
//! within its bounds. After a restart the stored readings are sent first, in
//! the order they were taken.

pub mod config;
mod sender;
pub mod sensors;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use floorwatch_protocol::{Reading, Topics};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use self::config::{EdgeConfig, EdgeConfigError};
use crate::outbox::{Outbox, OutboxError, Pushed};
use crate::publisher::{PublishError, Publisher};
use crate::sensor::Sensor;

/// Shortest time between two warnings about dropped readings.
const DROP_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// The outbox shared by the agent's tasks. Every operation is short, so a
/// blocking mutex used from `spawn_blocking` is enough.
pub(crate) type SharedOutbox = Arc<Mutex<Outbox>>;

/// Runs `operation` on the outbox on the blocking thread pool.
pub(crate) async fn with_outbox<R: Send + 'static>(
    outbox: &SharedOutbox,
    operation: impl FnOnce(&mut Outbox) -> R + Send + 'static,
) -> Result<R, AgentError> {
    let outbox = Arc::clone(outbox);
    tokio::task::spawn_blocking(move || {
        // The outbox's state is in SQLite, which a panic cannot leave half
        // written, so a poisoned lock is still usable.
        let mut outbox = outbox.lock().unwrap_or_else(PoisonError::into_inner);
        operation(&mut outbox)
    })
    .await
    .map_err(|source| AgentError::Task { source })
}

/// Counters of a running agent.
#[derive(Debug, Default)]
pub struct AgentStats {
    stored: AtomicU64,
    acked: AtomicU64,
    depth: AtomicU64,
    dropped: AtomicU64,
}

impl AgentStats {
    /// Readings stored in the outbox since the agent started.
    pub fn stored(&self) -> u64 {
        self.stored.load(Ordering::Relaxed)
    }

    /// Readings confirmed by a PubAck and deleted since the agent started.
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    /// Readings in the outbox now.
    pub fn depth(&self) -> u64 {
        self.depth.load(Ordering::Relaxed)
    }

    /// Readings dropped by the outbox bounds over the life of the file.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn record_outbox(&self, outbox: &Outbox) {
        self.depth.store(outbox.depth(), Ordering::Relaxed);
        self.dropped.store(outbox.dropped(), Ordering::Relaxed);
    }
}

/// Error that stopped the agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Config(#[from] EdgeConfigError),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("agent task failed")]
    Task { source: tokio::task::JoinError },
}

/// Runs the agent until `shutdown` is cancelled, then sends what it can
/// within `config.shutdown_timeout_ms` and leaves the rest in the outbox.
pub async fn run_agent(config: EdgeConfig, shutdown: CancellationToken) -> Result<(), AgentError> {
    run_agent_with_stats(config, shutdown, Arc::default()).await
}

/// Like [`run_agent`], and keeps `stats` up to date while it runs.
pub async fn run_agent_with_stats(
    config: EdgeConfig,
    shutdown: CancellationToken,
    stats: Arc<AgentStats>,
) -> Result<(), AgentError> {
    config.validate()?;
    let site = config.site_id()?;
    let sensors = sensors::build_agent_sensors(&config.sensors, &site)?;
    let outbox = open_outbox(&config, &stats)?;

    let (acked_tx, acked_rx) = mpsc::unbounded_channel();
    let publisher = Publisher::connect_with_acks(config.publisher_config()?, Some(acked_tx))?;
    let wake = Arc::new(Notify::new());
    let draining = CancellationToken::new();
    let mut sender = tokio::spawn(sender::send_stored(
        Arc::clone(&outbox),
        publisher.handle(),
        Arc::clone(&wake),
        draining.clone(),
    ));
    let deleter = tokio::spawn(sender::delete_acked(
        Arc::clone(&outbox),
        acked_rx,
        Arc::clone(&stats),
    ));

    let sampling = shutdown.child_token();
    let store = Store {
        outbox: Arc::clone(&outbox),
        topics: Topics::new(&config.topic_prefix),
        wake,
        stats: Arc::clone(&stats),
    };
    let mut tasks = spawn_sampling(sensors, &store, &sampling);

    // The sender ends early only on an error.
    let failure = tokio::select! {
        () = shutdown.cancelled() => None,
        joined = &mut sender => Some(flatten(joined)),
    };
    sampling.cancel();
    while tasks.join_next().await.is_some() {}

    let deadline = Instant::now() + config.shutdown_timeout();
    draining.cancel();
    let failure = match failure {
        Some(failure) => failure,
        None => match tokio::time::timeout_at(deadline, &mut sender).await {
            Ok(joined) => flatten(joined),
            Err(_) => {
                sender.abort();
                Ok(())
            }
        },
    };
    publisher
        .close(deadline.saturating_duration_since(Instant::now()))
        .await;
    if let Err(error) = deleter.await {
        tracing::error!(%error, "outbox deletion task failed");
    }
    tracing::info!(
        left_in_outbox = stats.depth(),
        acked = stats.acked(),
        "edge agent stopped"
    );
    failure
}

/// Opens the outbox and logs the start with the effective configuration.
fn open_outbox(config: &EdgeConfig, stats: &AgentStats) -> Result<SharedOutbox, AgentError> {
    let outbox = Outbox::open(&config.outbox.path, config.outbox_bounds())?;
    stats.record_outbox(&outbox);
    tracing::info!(
        ?config,
        stored = outbox.depth(),
        dropped = outbox.dropped(),
        "edge agent starting"
    );
    Ok(Arc::new(Mutex::new(outbox)))
}

/// Spawns one sampling task per sensor.
fn spawn_sampling(
    sensors: Vec<sensors::BuiltSensor>,
    store: &Store,
    stop: &CancellationToken,
) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    for (sensor, interval) in sensors {
        let store = Store {
            outbox: Arc::clone(&store.outbox),
            topics: store.topics.clone(),
            wake: Arc::clone(&store.wake),
            stats: Arc::clone(&store.stats),
        };
        tasks.spawn(sample_loop(sensor, interval, store, stop.clone()));
    }
    tasks
}

fn flatten(
    joined: Result<Result<(), AgentError>, tokio::task::JoinError>,
) -> Result<(), AgentError> {
    joined.map_err(|source| AgentError::Task { source })?
}

/// Outbox handles a sampling task stores its readings through.
struct Store {
    outbox: SharedOutbox,
    topics: Topics,
    wake: Arc<Notify>,
    stats: Arc<AgentStats>,
}

/// Samples `sensor` every `interval` (at least its minimum interval) on the
/// blocking pool and stores each reading, until `stop` is cancelled.
async fn sample_loop(
    mut sensor: Box<dyn Sensor>,
    interval: Duration,
    store: Store,
    stop: CancellationToken,
) {
    let interval = interval.max(sensor.min_interval());
    tracing::info!(sensor = %sensor.sensor(), interval_ms = interval.as_millis() as u64, "sensor started");
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut drop_log = DropLog::default();
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let now = Utc::now();
        let sampled = tokio::task::spawn_blocking(move || {
            let reading = sensor.sample(now);
            (sensor, reading)
        });
        let (returned, reading) = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            sampled = sampled => match sampled {
                Ok(sampled) => sampled,
                Err(error) => {
                    tracing::error!(%error, "sensor driver panicked; sampling stopped");
                    return;
                }
            },
        };
        sensor = returned;
        if !reading.quality.is_ok() {
            tracing::debug!(sensor = %reading.sensor, quality = ?reading.quality, "sensor fault");
        }

        store.save(reading, now, &mut drop_log).await;
    }
}

impl Store {
    /// Stores `reading` and wakes the sender. A reading that cannot be
    /// stored is logged and lost, and sampling goes on.
    async fn save(&self, mut reading: Reading, now: DateTime<Utc>, drop_log: &mut DropLog) {
        let topics = self.topics.clone();
        let stats = Arc::clone(&self.stats);
        let pushed = with_outbox(&self.outbox, move |outbox| {
            let pushed = outbox.push(&topics, &mut reading, now);
            stats.record_outbox(outbox);
            pushed
        })
        .await;
        let error = match pushed {
            Ok(Ok(pushed)) => {
                self.stats.stored.fetch_add(1, Ordering::Relaxed);
                drop_log.record(&pushed, &self.stats);
                self.wake.notify_one();
                return;
            }
            Ok(Err(error)) => error.to_string(),
            Err(error) => error.to_string(),
        };
        tracing::error!(%error, "failed to store a reading; it is lost");
    }
}

/// Warns about readings dropped by the outbox bounds at most once per
/// [`DROP_LOG_INTERVAL`], with the count since the last warning.
#[derive(Default)]
struct DropLog {
    last: Option<Instant>,
    unreported: u64,
}

impl DropLog {
    fn record(&mut self, pushed: &Pushed, stats: &AgentStats) {
        self.unreported += pushed.dropped;
        if self.unreported == 0 {
            return;
        }
        let now = Instant::now();
        if self.last.is_some_and(|last| now - last < DROP_LOG_INTERVAL) {
            return;
        }
        tracing::warn!(
            dropped = self.unreported,
            dropped_total = stats.dropped(),
            depth = stats.depth(),
            "outbox full: oldest readings dropped"
        );
        self.last = Some(now);
        self.unreported = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pushed(dropped: u64) -> Pushed {
        Pushed {
            id: 1,
            seq: 1,
            dropped,
        }
    }

    #[test]
    fn drop_log_reports_once_per_interval() {
        let stats = AgentStats::default();
        let mut log = DropLog::default();
        log.record(&pushed(0), &stats);
        assert!(log.last.is_none(), "logged without drops");

        log.record(&pushed(2), &stats);
        let first = log.last.expect("first drop is logged");
        assert_eq!(log.unreported, 0);

        log.record(&pushed(3), &stats);
        log.record(&pushed(1), &stats);
        assert_eq!(log.last, Some(first), "logged again within the interval");
        assert_eq!(log.unreported, 4);
    }
}
