//! One owned partition: its state record loaded from the state bucket into
//! a [`Processor`] on a scratch SQLite file, its readings pulled in stream
//! order from its durable consumer, and its outbox subjects delivered.
//!
//! A batch is committed in three steps. The processor commits to the
//! scratch file. The partition record (sensor states, the stream sequence
//! of the newest reading and the batch's events) replaces the previous
//! revision in the state bucket. The events are stored in the outbox
//! stream. Only then are the readings acknowledged. An instance that dies
//! after the record write leaves the events in the record, and the next
//! owner stores them again; the outbox stream drops the duplicates by
//! their message id.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, PullConsumer};
use async_nats::jetstream::stream::Stream;
use async_nats::jetstream::{kv, Context, Message};
use chrono::{DateTime, Utc};
use floorwatch_protocol::Id;
use futures::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::gate::EndpointGate;
use super::outbox::{self, Deliverer};
use super::record::{self, OutboxEntry, PartitionRecord, SensorStates, WriteError};
use super::streams;
use super::subjects::{topic_to_subject, Subjects};
use crate::config::{BridgeConfig, DeliverySettings};
use crate::delivery::Endpoint;
use crate::ingest::{Control, MAX_BATCH};
use crate::pipeline::{BatchResult, Inbound, Processor, RetainedIncidents};
use crate::stats::Stats;
use crate::store::{AttemptRecord, BatchWrite, RowUpdate, Store, StoreError};
use crate::BridgeError;

/// Time between two timer ticks (silence and reminders).
const TICK_INTERVAL: Duration = Duration::from_secs(1);

/// Wait before pulling again after the message stream failed.
const RESUBSCRIBE_DELAY: Duration = Duration::from_secs(1);

/// Attempts at a record write or an outbox store before the partition is
/// given up, and the wait between them.
const WRITE_ATTEMPTS: u32 = 5;
const WRITE_RETRY_DELAY: Duration = Duration::from_secs(1);

/// Connections, streams and settings shared by the partitions of one
/// instance.
#[derive(Clone)]
pub struct Shared {
    /// The running config, updated by reloads; a partition taken over later
    /// starts with the newest one.
    pub config: Arc<Mutex<BridgeConfig>>,
    pub instance: String,
    pub client: async_nats::Client,
    pub js: Context,
    pub readings: Stream,
    pub outbox: Stream,
    pub state: kv::Store,
    pub subjects: Subjects,
    pub stats: Arc<Stats>,
    /// Enabled endpoints.
    pub endpoints: Vec<OutboxEndpoint>,
    pub delivery: DeliverySettings,
    /// Directory of the scratch SQLite files.
    pub scratch_dir: PathBuf,
}

/// An enabled endpoint and the state its deliverers share.
#[derive(Clone)]
pub struct OutboxEndpoint {
    /// Index in `bridge.endpoints`, which names the outbox subject.
    pub index: usize,
    pub endpoint: Arc<Endpoint>,
    pub timeout: Duration,
    pub gate: Arc<EndpointGate>,
}

/// Reason a partition loop ended.
#[derive(Debug)]
pub enum PartitionEnd {
    /// Cancelled: released or shutting down.
    Stopped,
    /// Another instance wrote the partition's record.
    Fenced,
    Failed(BridgeError),
}

/// Takes partition `index` over and runs it until `cancel` fires, another
/// instance writes its record, or NATS fails for longer than the retries.
pub async fn run(
    shared: Shared,
    index: u32,
    control_rx: mpsc::Receiver<Control>,
    cancel: CancellationToken,
) -> PartitionEnd {
    let mut partition = match open(&shared, index, control_rx).await {
        Ok(partition) => partition,
        Err(end) => return end,
    };
    let delivery = cancel.child_token();
    let mut deliverers = JoinSet::new();
    for target in &shared.endpoints {
        let deliverer = Deliverer {
            index,
            endpoint_index: target.index,
            endpoint: Arc::clone(&target.endpoint),
            gate: Arc::clone(&target.gate),
            timeout: target.timeout,
            settings: shared.delivery.clone(),
            stream: shared.outbox.clone(),
            js: shared.js.clone(),
            stats: Arc::clone(&shared.stats),
        };
        deliverers.spawn(deliverer.run(delivery.clone()));
    }
    let end = partition.run(&cancel).await;
    delivery.cancel();
    while deliverers.join_next().await.is_some() {}
    end
}

/// Loads the record, fences out the previous owner, stores its pending
/// events and rebuilds the processor.
async fn open(
    shared: &Shared,
    index: u32,
    control_rx: mpsc::Receiver<Control>,
) -> Result<PartitionLoop, PartitionEnd> {
    let loaded = record::load(&shared.state, index)
        .await
        .map_err(PartitionEnd::Failed)?;
    let mut fenced = loaded.record.clone();
    fenced.owner = shared.instance.clone();
    // Writing the record at once makes any write of the previous owner,
    // which names the older revision, fail.
    let revision = match record::write(&shared.state, index, &fenced, loaded.revision).await {
        Ok(revision) => revision,
        Err(WriteError::Fenced { .. }) => return Err(PartitionEnd::Fenced),
        Err(error) => return Err(PartitionEnd::Failed(write_failed(error))),
    };
    outbox::store(&shared.js, index, &fenced.pending)
        .await
        .map_err(PartitionEnd::Failed)?;

    let config = shared
        .config
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    let path = scratch_path(&shared.scratch_dir, &shared.instance, index);
    let stats = Arc::clone(&shared.stats);
    let sensors = fenced.sensors;
    let pipeline =
        tokio::task::spawn_blocking(move || open_scratch(&path, sensors, &config, stats))
            .await
            .map_err(|error| PartitionEnd::Failed(BridgeError::Task(error.to_string())))?
            .map_err(|error| PartitionEnd::Failed(error.into()))?;
    let nats = shared
        .config
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .nats
        .clone();
    let consumer = streams::partition_consumer(
        &shared.readings,
        &shared.subjects,
        &nats,
        index,
        Some(fenced.committed_seq),
    )
    .await
    .map_err(PartitionEnd::Failed)?;
    tracing::info!(
        partition = index,
        committed_seq = fenced.committed_seq,
        previous_owner = %loaded.record.owner,
        sensors = pipeline.sensor_count,
        "took partition over"
    );
    Ok(PartitionLoop {
        index,
        shared: shared.clone(),
        consumer,
        pipeline: Some(pipeline),
        control_rx,
        revision,
        committed_seq: fenced.committed_seq,
    })
}

fn write_failed(error: WriteError) -> BridgeError {
    BridgeError::Nats {
        action: "writing a partition record",
        detail: error.to_string(),
    }
}

/// Returns the scratch database of partition `index`, next to the
/// configured database.
fn scratch_path(dir: &Path, instance: &str, index: u32) -> PathBuf {
    dir.join(format!("{instance}-partition-{index}.db"))
}

/// The processor of a partition and a second connection to its scratch
/// file, which moves to a blocking thread for each batch.
struct Pipeline {
    processor: Processor,
    reader: Store,
    endpoints: Vec<(usize, String)>,
    sensor_count: usize,
}

/// Creates the scratch file anew with the sensor states of the record.
fn open_scratch(
    path: &Path,
    sensors: SensorStates,
    config: &BridgeConfig,
    stats: Arc<Stats>,
) -> Result<Pipeline, StoreError> {
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(file));
    }
    let mut store = Store::open(path)?;
    let sensor_count = sensors.len();
    let write = BatchWrite {
        sensors: sensors
            .into_iter()
            .filter_map(|(site, sensor, state)| {
                Some((Id::parse(&site).ok()?, Id::parse(&sensor).ok()?, state))
            })
            .collect(),
        events: Vec::new(),
    };
    store.write_batch(&write, Utc::now())?;
    let processor = Processor::new(store, config, stats, RetainedIncidents::default())?;
    let endpoints = config
        .endpoints
        .iter()
        .enumerate()
        .filter(|(_, endpoint)| endpoint.enabled)
        .map(|(index, endpoint)| (index, endpoint.url.clone()))
        .collect();
    Ok(Pipeline {
        processor,
        reader: Store::open(path)?,
        endpoints,
        sensor_count,
    })
}

impl Pipeline {
    /// Moves the events the processor put in the scratch outbox into
    /// outbox entries, oldest first per incident, and returns them with the
    /// state of every sensor.
    fn take_commit(
        &mut self,
        stats: &Stats,
    ) -> Result<(Vec<OutboxEntry>, SensorStates), StoreError> {
        let mut entries = Vec::new();
        for (index, url) in &self.endpoints {
            loop {
                let rows = self.reader.pending_heads(url, 4096)?;
                if rows.is_empty() {
                    break;
                }
                for row in rows {
                    entries.push(OutboxEntry {
                        event_id: row.event_id.clone(),
                        endpoint: *index,
                        event_type: row.event_type.clone(),
                        body: String::from_utf8_lossy(&row.body).into_owned(),
                    });
                    let moved = AttemptRecord {
                        attempted_at: Utc::now(),
                        status_code: None,
                        latency_ms: 0,
                        error: None,
                        response_snippet: Some("moved to the NATS outbox stream".to_owned()),
                    };
                    self.reader
                        .record_attempt(&row, url, &moved, RowUpdate::Delivered)?;
                }
            }
        }
        stats.outbox_done(entries.len() as u64);
        Ok((entries, self.reader.load_sensor_states()?))
    }
}

/// The ingest loop of one owned partition.
struct PartitionLoop {
    index: u32,
    shared: Shared,
    consumer: PullConsumer,
    /// `None` only while a batch runs on a blocking thread.
    pipeline: Option<Pipeline>,
    control_rx: mpsc::Receiver<Control>,
    /// Revision of the partition record this instance wrote last.
    revision: u64,
    /// Stream sequence of the newest committed reading.
    committed_seq: u64,
}

impl PartitionLoop {
    /// Runs batches, ticks and reloads until `cancel` fires or the
    /// partition is lost. The batch in progress when `cancel` fires is
    /// committed and acknowledged.
    async fn run(&mut self, cancel: &CancellationToken) -> PartitionEnd {
        match self.run_inner(cancel).await {
            Ok(()) => PartitionEnd::Stopped,
            Err(end) => end,
        }
    }

    async fn run_inner(&mut self, cancel: &CancellationToken) -> Result<(), PartitionEnd> {
        let mut ticker = tokio::time::interval(TICK_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut messages = None;
        loop {
            let stream = match &mut messages {
                Some(stream) => stream,
                None => match subscribe(&self.consumer, self.index, cancel).await {
                    Some(stream) => messages.insert(stream),
                    None => return Ok(()),
                },
            };
            let first = tokio::select! {
                biased;
                () = cancel.cancelled() => return Ok(()),
                Some(control) = self.control_rx.recv() => {
                    self.reload(control).await?;
                    continue;
                }
                _ = ticker.tick() => {
                    let result = self.blocking(|p| p.processor.tick(Utc::now())).await?;
                    let result = result.map_err(|error| PartitionEnd::Failed(error.into()))?;
                    if !result.events.is_empty() {
                        self.persist(self.committed_seq).await?;
                    }
                    publish(&self.shared.client, result);
                    continue;
                }
                next = stream.next() => next,
            };
            let mut batch = match first {
                Some(Ok(message)) => vec![message],
                Some(Err(error)) => {
                    tracing::warn!(partition = self.index, %error, "pulling readings failed, pulling again");
                    messages = None;
                    continue;
                }
                None => {
                    messages = None;
                    continue;
                }
            };
            // Whatever has already arrived joins the batch; `next()` is
            // cancel-safe, so a poll that finds nothing loses no message.
            while batch.len() < MAX_BATCH {
                match stream.next().now_or_never() {
                    Some(Some(Ok(message))) => batch.push(message),
                    _ => break,
                }
            }
            self.commit(batch).await?;
        }
    }

    /// Processes and commits `batch`, then acknowledges its messages.
    async fn commit(&mut self, batch: Vec<Message>) -> Result<(), PartitionEnd> {
        let mut inbound = Vec::with_capacity(batch.len());
        let mut newest = self.committed_seq;
        for message in &batch {
            let Ok(info) = message.info() else { continue };
            // A reading delivered again after its batch was committed, by
            // the ack wait running out or by a takeover, is skipped.
            if info.stream_sequence <= self.committed_seq {
                continue;
            }
            newest = newest.max(info.stream_sequence);
            match self.shared.subjects.parse_reading(message.subject.as_str()) {
                Some((site, sensor)) => inbound.push(Inbound {
                    site: site.to_owned(),
                    sensor: sensor.to_owned(),
                    payload: message.payload.to_vec(),
                    received_at: received_at(message),
                }),
                None => {
                    self.shared.stats.reject("unexpected_topic");
                    tracing::debug!(subject = %message.subject, "ignored a message outside the reading subjects");
                }
            }
        }
        if newest > self.committed_seq {
            let result = self
                .blocking(move |p| p.processor.process(&inbound))
                .await?;
            let result = result.map_err(|error| PartitionEnd::Failed(error.into()))?;
            self.persist(newest).await?;
            publish(&self.shared.client, result);
        }
        for message in &batch {
            // A lost acknowledgement makes the consumer deliver the reading
            // again after ack_wait, and the sequence check above skips it.
            if let Err(error) = message.ack().await {
                tracing::warn!(partition = self.index, %error, "could not acknowledge a reading");
            }
        }
        Ok(())
    }

    /// Writes the partition record with what the processor committed and
    /// `newest` as the committed stream sequence, then stores the events in
    /// the outbox stream.
    ///
    /// TODO: the record holds every sensor of the partition, so each write
    /// grows with the partition rather than with the batch, and a partition
    /// must fit in the servers' `max_payload`. One key per sensor with a
    /// commit marker would remove both limits.
    async fn persist(&mut self, newest: u64) -> Result<(), PartitionEnd> {
        let stats = Arc::clone(&self.shared.stats);
        let taken = self.blocking(move |p| p.take_commit(&stats)).await?;
        let (pending, sensors) = taken.map_err(|error| PartitionEnd::Failed(error.into()))?;
        let record = PartitionRecord {
            owner: self.shared.instance.clone(),
            committed_seq: newest,
            sensors,
            pending,
        };
        let mut attempt = 0;
        self.revision = loop {
            attempt += 1;
            match record::write(&self.shared.state, self.index, &record, self.revision).await {
                Ok(revision) => break revision,
                Err(WriteError::Fenced { .. }) => return Err(PartitionEnd::Fenced),
                Err(error) if attempt >= WRITE_ATTEMPTS => {
                    return Err(PartitionEnd::Failed(write_failed(error)))
                }
                Err(error) => {
                    tracing::warn!(partition = self.index, %error, attempt, "writing the partition record failed, retrying");
                    tokio::time::sleep(WRITE_RETRY_DELAY).await;
                }
            }
        };
        self.committed_seq = newest;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match outbox::store(&self.shared.js, self.index, &record.pending).await {
                Ok(()) => return Ok(()),
                Err(error) if attempt >= WRITE_ATTEMPTS => return Err(PartitionEnd::Failed(error)),
                Err(error) => {
                    tracing::warn!(partition = self.index, %error, attempt, "storing events in the outbox failed, retrying");
                    tokio::time::sleep(WRITE_RETRY_DELAY).await;
                }
            }
        }
    }

    async fn reload(&mut self, control: Control) -> Result<(), PartitionEnd> {
        let Control::Reload { config, done } = control;
        let result = self
            .blocking(move |p| p.processor.reload(&config, Utc::now()))
            .await?;
        match result {
            Ok(batch) => {
                let persisted = self.persist(self.committed_seq).await;
                publish(&self.shared.client, batch);
                let _ = done.send(Ok(()));
                persisted
            }
            Err(error) => {
                let _ = done.send(Err(error.into()));
                Ok(())
            }
        }
    }

    /// Runs `work` on a blocking thread with the pipeline, which moves
    /// there and back.
    async fn blocking<T: Send + 'static>(
        &mut self,
        work: impl FnOnce(&mut Pipeline) -> T + Send + 'static,
    ) -> Result<T, PartitionEnd> {
        let failed = |detail: String| PartitionEnd::Failed(BridgeError::Task(detail));
        let mut pipeline = self
            .pipeline
            .take()
            .ok_or_else(|| failed("a previous batch panicked".to_owned()))?;
        let (pipeline, result) = tokio::task::spawn_blocking(move || {
            let result = work(&mut pipeline);
            (pipeline, result)
        })
        .await
        .map_err(|error| failed(format!("ingest batch: {error}")))?;
        self.pipeline = Some(pipeline);
        Ok(result)
    }
}

/// Opens the message stream of `consumer`, retrying until it works or
/// `cancel` fires.
async fn subscribe(
    consumer: &PullConsumer,
    index: u32,
    cancel: &CancellationToken,
) -> Option<pull::Stream> {
    loop {
        match consumer.messages().await {
            Ok(stream) => return Some(stream),
            Err(error) => {
                tracing::warn!(partition = index, %error, "cannot pull readings, retrying")
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return None,
            () = tokio::time::sleep(RESUBSCRIBE_DELAY) => {}
        }
    }
}

/// Returns the time the server stored the message, or now when the
/// message carries no JetStream metadata.
fn received_at(message: &Message) -> DateTime<Utc> {
    message
        .info()
        .ok()
        .and_then(|info| i64::try_from(info.published.unix_timestamp_nanos()).ok())
        .map(DateTime::from_timestamp_nanos)
        .unwrap_or_else(Utc::now)
}

/// Publishes the incident-state and rejection messages of a batch on core
/// NATS, where MQTT clients of the same servers receive them.
///
/// NOTE: core NATS keeps no retained messages, so an MQTT client that
/// subscribes later does not receive the current incident state, unlike
/// with `source = "mqtt"`.
fn publish(client: &async_nats::Client, result: BatchResult) {
    for publication in result.publications {
        let subject = topic_to_subject(&publication.topic);
        let client = client.clone();
        let payload = publication.payload;
        tokio::spawn(async move {
            if let Err(error) = client.publish(subject.clone(), payload.into()).await {
                tracing::debug!(%subject, %error, "could not publish on NATS");
            }
        });
    }
}
