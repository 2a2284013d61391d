//! Scale-out on NATS JetStream (`source = "nats"`): edge agents publish
//! MQTT to the MQTT listener of nats-server, a stream captures the reading
//! subjects, and bridge instances share the sensors by partition. Each
//! partition has one owner at a time, which holds a lease in a key-value
//! bucket. The owner pulls the partition's readings through a durable
//! consumer with explicit acknowledgements, keeps its incident state in the
//! state bucket, and delivers its webhook events from a work-queue stream.
//!
//! The rules and incidents are the same as with MQTT: each partition drives
//! a [`crate::pipeline::Processor`]. docs/scale-out.md describes the
//! topology and what happens on each failure.

mod connect;
pub mod gate;
pub mod lease;
pub mod outbox;
mod partition;
pub mod record;
pub mod streams;
pub mod subjects;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use floorwatch_protocol::Id;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::config::BridgeConfig;
use crate::delivery::Endpoint;
use crate::ingest::{Control, Queued};
use crate::stats::Stats;
use crate::{BridgeError, BridgeHandle, Reloader};

pub use connect::connect;
use gate::EndpointGate;
use lease::{Leases, Registry};
use partition::{OutboxEndpoint, Shared};
use subjects::Subjects;

/// Payloads of `POST /readings` and [`BridgeHandle::ingest`] waiting to be
/// published into the readings stream.
const QUEUE_CAPACITY: usize = 1024;

/// Connects to NATS, opens the streams and buckets, and starts the lease
/// loop (which runs the partitions it owns), the reload fan-out and HTTP
/// ingest.
///
/// While no server accepts a connection, retries for `bridge.nats.connect_timeout_secs`
/// and then returns [`BridgeError::Nats`].
pub async fn start(
    config: BridgeConfig,
    shutdown: CancellationToken,
) -> Result<BridgeHandle, BridgeError> {
    let settings = &config.nats;
    let client = connect(settings, &shutdown).await?;
    let info = client.server_info();
    tracing::info!(
        source = "nats",
        cluster = info.cluster.as_deref().unwrap_or("none (single server)"),
        server = %info.server_name,
        version = %info.version,
        instance = %settings.instance,
        partitions = settings.partitions,
        "reading from NATS JetStream"
    );
    if !info.jetstream {
        return Err(BridgeError::Nats {
            action: "checking JetStream",
            detail: format!(
                "server {} has JetStream disabled: start nats-server with -js or a jetstream block",
                info.server_name
            ),
        });
    }
    let js = jetstream::new(client.clone());
    let subjects = Subjects::new(&config.mqtt.topic_prefix, settings.partitions);
    let opened = open_streams(&js, &subjects, &config, &shutdown).await?;

    let stats = Arc::new(Stats::default());
    let mut endpoints = Vec::new();
    for (index, endpoint) in config.endpoints.iter().enumerate() {
        if endpoint.enabled {
            let gate = EndpointGate::new(
                endpoint,
                &settings.instance,
                opened.endpoints.clone(),
                Arc::clone(&stats),
            );
            endpoints.push(OutboxEndpoint {
                index,
                endpoint: Arc::new(Endpoint::new(endpoint)?),
                timeout: Duration::from_secs(endpoint.timeout_secs),
                gate: Arc::new(gate),
            });
        }
    }
    let scratch_dir = config
        .database
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .map_or_else(|| std::path::PathBuf::from("."), std::path::Path::to_owned);
    std::fs::create_dir_all(&scratch_dir).map_err(|error| BridgeError::Nats {
        action: "preparing the scratch directory",
        detail: format!("{}: {error}", scratch_dir.display()),
    })?;

    let (queue_tx, queue_rx) = mpsc::channel(QUEUE_CAPACITY);
    let (control_tx, control_rx) = mpsc::channel(4);
    let current = Arc::new(Mutex::new(config.clone()));
    let reloader = Reloader {
        control_tx,
        current: Arc::clone(&current),
        stats: Arc::clone(&stats),
    };
    let registry = Registry::default();
    let shared = Shared {
        config: current,
        instance: settings.instance.clone(),
        client: client.clone(),
        js: js.clone(),
        readings: opened.readings,
        outbox: opened.outbox,
        state: opened.state,
        subjects: subjects.clone(),
        stats: Arc::clone(&stats),
        endpoints,
        delivery: config.delivery.clone(),
        scratch_dir,
    };
    let gates: Vec<Arc<EndpointGate>> = shared
        .endpoints
        .iter()
        .map(|target| Arc::clone(&target.gate))
        .collect();
    for gate in &gates {
        gate.load().await;
    }
    let lease_loop = Leases {
        bucket: opened.leases,
        shared,
        partitions: settings.partitions,
        ttl: Duration::from_secs(settings.lease_ttl_secs),
        registry: Arc::clone(&registry),
    };

    let cancel = shutdown.child_token();
    // TODO: the delivery routes of HTTP ingest read the SQLite outbox,
    // which stays empty with source = "nats"; the outbox and dead letters
    // are in the streams FLOORWATCH_OUTBOX and FLOORWATCH_DEAD_LETTERS.
    let http = match config.http.enabled {
        true => {
            let admin = crate::admin_state(&config, &stats, &[]).await?;
            Some(crate::http::start(&config.http, queue_tx.clone(), admin, cancel.clone()).await?)
        }
        false => None,
    };
    let mut tasks = vec![crate::spawn_task(&cancel, lease_loop.run(cancel.clone()))];
    for gate in gates {
        tasks.push(crate::spawn_task(&cancel, gate.watch(cancel.clone())));
    }
    tasks.push(crate::spawn_task(
        &cancel,
        forward_queued(queue_rx, js, subjects, Arc::clone(&stats), cancel.clone()),
    ));
    tasks.push(crate::spawn_task(
        &cancel,
        fan_out_reloads(control_rx, registry, cancel.clone()),
    ));
    let http_addr = http.map(|(addr, serve)| {
        tasks.push(crate::spawn_task(&cancel, serve));
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

/// Minimum attempts at opening the streams and buckets. Instances starting
/// together race to create them, and a cluster that is still forming rejects
/// replicated streams ("no suitable peers for placement"). Attempts go on
/// until `bridge.nats.connect_timeout_secs` has passed as well.
const SETUP_ATTEMPTS: u32 = 10;

/// The streams and buckets a bridge instance uses.
struct Opened {
    readings: jetstream::stream::Stream,
    outbox: jetstream::stream::Stream,
    state: jetstream::kv::Store,
    leases: jetstream::kv::Store,
    /// Keys of the endpoints disabled by `410 Gone`.
    endpoints: jetstream::kv::Store,
}

/// Opens the readings, outbox and dead-letter streams and the state, lease
/// and endpoint buckets, creating what is missing, with retries.
async fn open_streams(
    js: &jetstream::Context,
    subjects: &Subjects,
    config: &BridgeConfig,
    shutdown: &CancellationToken,
) -> Result<Opened, BridgeError> {
    let settings = &config.nats;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(settings.connect_timeout_secs);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let opened = async {
            let readings = streams::readings(js, subjects, settings).await?;
            let outbox = outbox::streams(js, settings).await?;
            let state = record::bucket(js, settings).await?;
            let leases = lease::bucket(js, settings).await?;
            let endpoints = gate::bucket(js, settings).await?;
            Ok::<_, BridgeError>(Opened {
                readings,
                outbox,
                state,
                leases,
                endpoints,
            })
        }
        .await;
        let error = match opened {
            Ok(opened) => return Ok(opened),
            Err(error) if attempt >= SETUP_ATTEMPTS && tokio::time::Instant::now() >= deadline => {
                return Err(error)
            }
            Err(error) => error,
        };
        tracing::warn!(%error, attempt, "cannot open the JetStream streams, retrying");
        tokio::select! {
            () = shutdown.cancelled() => return Err(BridgeError::Stopped),
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Passes each reload to every running partition and returns the first
/// failure to the reloader. A partition taken over later starts with the reloaded
/// config, which the reloader stores.
async fn fan_out_reloads(
    mut control_rx: mpsc::Receiver<Control>,
    registry: Registry,
    cancel: CancellationToken,
) -> Result<(), BridgeError> {
    loop {
        let control = tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            control = control_rx.recv() => match control {
                Some(control) => control,
                None => return Ok(()),
            },
        };
        let Control::Reload { config, done } = control;
        let partitions: Vec<mpsc::Sender<Control>> = registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .values()
            .cloned()
            .collect();
        let mut result = Ok(());
        for partition in partitions {
            let (partition_done, applied) = oneshot::channel();
            let control = Control::Reload {
                config: config.clone(),
                done: partition_done,
            };
            if partition.send(control).await.is_err() {
                continue;
            }
            if let Ok(Err(error)) = applied.await {
                result = result.and(Err(error));
            }
        }
        let _ = done.send(result);
    }
}

/// Publishes payloads of HTTP ingest and [`BridgeHandle::ingest`] into the
/// readings stream, so they reach the partition that owns their sensor,
/// and signals the caller once the stream has stored them.
///
/// NOTE: with `source = "nats"` the caller's wait ends when the reading is
/// stored in the stream, before the partition loop commits it.
async fn forward_queued(
    mut queue_rx: mpsc::Receiver<Queued>,
    js: jetstream::Context,
    subjects: Subjects,
    stats: Arc<Stats>,
    cancel: CancellationToken,
) -> Result<(), BridgeError> {
    loop {
        let queued = tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            queued = queue_rx.recv() => match queued {
                Some(queued) => queued,
                None => return Ok(()),
            },
        };
        let inbound = &queued.inbound;
        if Id::parse(&inbound.site).is_err() || Id::parse(&inbound.sensor).is_err() {
            stats.reject("unexpected_topic");
            tracing::warn!(
                site = %inbound.site.escape_debug(),
                sensor = %inbound.sensor.escape_debug(),
                "rejected a reading whose site or sensor is not a valid id"
            );
            continue;
        }
        let subject = subjects.reading(&inbound.site, &inbound.sensor);
        let stored = match js.publish(subject, inbound.payload.clone().into()).await {
            Ok(ack) => ack.await.map(drop).map_err(|error| error.to_string()),
            Err(error) => Err(error.to_string()),
        };
        match stored {
            Ok(()) => {
                if let Some(done) = queued.done {
                    let _ = done.send(());
                }
            }
            Err(error) => tracing::warn!(%error, "could not store a reading in the stream"),
        }
    }
}
