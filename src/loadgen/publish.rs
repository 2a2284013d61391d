//! The MQTT side of a run: one connection per client, each driven on its
//! own task that counts PubAcks, errors and rejection reports, and one
//! publisher task per connection that sends its sensors' readings on the
//! pacing schedule.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, SubsecRound, Utc};
use floorwatch_protocol::{BrokerUrl, Id, Reading, Topics};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::oneshot;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::episodes::{Role, Signal};
use super::incidents::ExpectedIncident;
use super::pacing::Pacer;

/// Time allowed for the broker's ConnAck.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Wait before polling again after a connection error.
const RETRY_DELAY: Duration = Duration::from_millis(100);
/// Publishes a client may queue before `publish` waits for the connection.
const REQUEST_CAPACITY: usize = 1000;

/// Counters shared by the publishers and the connections.
#[derive(Debug, Default)]
pub struct Counters {
    /// Readings handed to a connection.
    pub published: AtomicU64,
    /// PubAcks received.
    pub acked: AtomicU64,
    /// Publishes that failed and connection errors.
    pub errors: AtomicU64,
    /// Reports received on the site's `rejected` topics.
    pub rejected: AtomicU64,
}

impl Counters {
    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// One MQTT connection and the task that drives it.
pub struct Connection {
    pub client: AsyncClient,
    driver: tokio::task::JoinHandle<()>,
}

impl Connection {
    /// Connects to `broker` with a persistent session and waits for the
    /// ConnAck.
    /// With `rejected_filter`, the connection also subscribes to it and
    /// counts the messages it receives as rejections.
    pub async fn open(
        broker: &BrokerUrl,
        client_id: &str,
        counters: Arc<Counters>,
        rejected_filter: Option<String>,
        stop: CancellationToken,
    ) -> anyhow::Result<Self> {
        if broker.tls {
            anyhow::bail!("loadgen does not support mqtts://: pass --broker mqtt://HOST:PORT");
        }
        let mut options = MqttOptions::new(client_id, &broker.host, broker.port);
        options.set_keep_alive(Duration::from_secs(30));
        // A persistent session: on a ConnAck without `session_present`,
        // rumqttc drops the readings not yet acknowledged and those still
        // queued in its request channel. With a broker that keeps sessions
        // across a restart (mosquitto with persistence), they are sent
        // again instead. The session stays in the broker after the run.
        options.set_clean_session(false);
        let (client, event_loop) = AsyncClient::new(options, REQUEST_CAPACITY);
        let (connected_tx, connected_rx) = oneshot::channel();
        let driver = tokio::spawn(drive(event_loop, counters, connected_tx, stop));
        let connected = tokio::time::timeout(CONNECT_TIMEOUT, connected_rx).await;
        let failure = match connected {
            Ok(Ok(Ok(()))) => None,
            Ok(Ok(Err(error))) => Some(error),
            Ok(Err(_)) => Some("the connection task ended".to_owned()),
            Err(_) => Some(format!("no ConnAck within {CONNECT_TIMEOUT:?}")),
        };
        if let Some(error) = failure {
            driver.abort();
            anyhow::bail!("cannot connect to the MQTT broker {broker}: {error}; pass --broker URL");
        }
        if let Some(filter) = rejected_filter {
            client
                .subscribe(filter, QoS::AtMostOnce)
                .await
                .context("cannot subscribe to the rejected topics")?;
        }
        Ok(Self { client, driver })
    }

    /// Sends a Disconnect and waits up to `timeout` for the driver to end.
    pub async fn close(self, timeout: Duration) {
        let _ = self.client.disconnect().await;
        let mut driver = self.driver;
        if tokio::time::timeout(timeout, &mut driver).await.is_err() {
            driver.abort();
        }
    }
}

/// Polls `event_loop` until the Disconnect is sent or `stop` is cancelled.
/// Before the first ConnAck, an error ends the task and is reported on
/// `connected_tx`. Later errors are counted and the poll is retried, which
/// makes rumqttc reconnect.
async fn drive(
    mut event_loop: EventLoop,
    counters: Arc<Counters>,
    connected_tx: oneshot::Sender<Result<(), String>>,
    stop: CancellationToken,
) {
    let mut connected_tx = Some(connected_tx);
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => return,
            event = event_loop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                if let Some(tx) = connected_tx.take() {
                    let _ = tx.send(Ok(()));
                }
            }
            Ok(Event::Incoming(Packet::PubAck(_))) => Counters::bump(&counters.acked),
            Ok(Event::Incoming(Packet::Publish(publish)))
                if publish.topic.ends_with("/rejected") =>
            {
                Counters::bump(&counters.rejected);
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(error) => {
                if let Some(tx) = connected_tx.take() {
                    let _ = tx.send(Err(error.to_string()));
                    return;
                }
                Counters::bump(&counters.errors);
                tracing::warn!(%error, "MQTT connection error; reconnecting");
                tokio::time::sleep(RETRY_DELAY).await;
            }
        }
    }
}

/// A synthetic sensor of one publisher.
pub struct SensorSource {
    pub id: Id,
    pub topic: String,
    pub signal: Signal,
    seq: u64,
    /// Index in the expected incidents of the episode in progress.
    open_incident: Option<usize>,
}

impl SensorSource {
    /// Creates sensor `id` of `site`, publishing on the reading topic.
    pub fn new(site: &Id, id: Id, signal: Signal) -> Self {
        Self {
            topic: Topics::default().reading(site, &id),
            id,
            signal,
            seq: 0,
            open_incident: None,
        }
    }
}

/// Sends the readings of some sensors over one connection.
pub struct Publisher {
    pub client: AsyncClient,
    pub site: Id,
    pub sensors: Vec<SensorSource>,
    pub pacer: Pacer,
    pub counters: Arc<Counters>,
    pub expected: Arc<Mutex<Vec<ExpectedIncident>>>,
}

/// Error of a publish still waiting for the connection at the deadline.
#[derive(Debug, PartialEq, Eq)]
struct Stalled;

impl Publisher {
    /// Publishes on the schedule from `start`, then finishes the episodes
    /// in progress so their incidents resolve. Stops early when `stop` is
    /// cancelled, or when a publish is still waiting at `deadline`.
    pub async fn run(mut self, start: Instant, deadline: Instant, stop: CancellationToken) {
        if self.sensors.is_empty() {
            return;
        }
        let mut interval = tokio::time::interval_at(start, self.pacer.tick());
        interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let total = self.pacer.total();
        let mut sent = 0;
        while sent < total {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = interval.tick() => {}
            }
            let due = self.pacer.due_by(start.elapsed());
            while sent < due {
                let index = (sent % self.sensors.len() as u64) as usize;
                if self.publish_next(index, deadline).await.is_err() {
                    return;
                }
                sent += 1;
            }
        }
        for index in 0..self.sensors.len() {
            for _ in 0..self.sensors[index].signal.readings_to_finish() {
                if stop.is_cancelled() || self.publish_next(index, deadline).await.is_err() {
                    return;
                }
            }
        }
    }

    /// Publishes the next reading of sensor `index` and records the
    /// incident it should open or resolve.
    async fn publish_next(&mut self, index: usize, deadline: Instant) -> Result<(), Stalled> {
        let time = Utc::now().trunc_subsecs(6);
        let sensor = &mut self.sensors[index];
        let sample = sensor.signal.next_sample();
        sensor.seq += 1;
        let mut reading =
            Reading::temperature(self.site.clone(), sensor.id.clone(), time, sample.celsius);
        reading.seq = Some(sensor.seq);
        // A reading of ids, a time and numbers always serializes.
        let payload = serde_json::to_vec(&reading).unwrap_or_default();
        let publish = self
            .client
            .publish(&sensor.topic, QoS::AtLeastOnce, false, payload);
        match tokio::time::timeout_at(deadline, publish).await {
            Ok(Ok(())) => {
                Counters::bump(&self.counters.published);
                self.record(index, sample.role, time);
                Ok(())
            }
            Ok(Err(error)) => {
                Counters::bump(&self.counters.errors);
                tracing::warn!(%error, sensor = %sensor.id, "publish failed");
                Ok(())
            }
            Err(_) => {
                Counters::bump(&self.counters.errors);
                tracing::warn!(sensor = %sensor.id, "publish still waiting at the deadline");
                Err(Stalled)
            }
        }
    }

    fn record(&mut self, index: usize, role: Role, time: DateTime<Utc>) {
        if !matches!(role, Role::Opening | Role::Resolving) {
            return;
        }
        let sensor = &mut self.sensors[index];
        let mut expected = self
            .expected
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if role == Role::Opening {
            sensor.open_incident = Some(expected.len());
            expected.push(ExpectedIncident {
                sensor: sensor.id.to_string(),
                opened_at: time,
                resolve_published: false,
            });
        } else if let Some(incident) = sensor.open_incident.take() {
            expected[incident].resolve_published = true;
        }
    }
}
