//! `floorwatch up`: the embedded broker, the bridge, the scheduler and
//! simulated sensors (or a replay) in one process, stopped by Ctrl-C.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use floorwatch_bridge::{AckMode, BridgeConfig, EndpointConfig};
use floorwatch_edge::{Publisher, PublisherConfig, SimulatedSensorConfig, Unit};
use floorwatch_protocol::{BrokerUrl, Id, Secret};
use floorwatch_scheduler::SchedulerConfig;
use tokio_util::sync::CancellationToken;

use crate::commands::{cancel_on_signal, ReplayArgs, PUBLISH_FLUSH_TIMEOUT};
use crate::config::UpConfig;

/// Time given to the bridge and the scheduler to drain on shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Time the sensors wait for the bridge's subscription before publishing.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Arguments of `floorwatch up`.
#[derive(clap::Args)]
pub struct UpArgs {
    /// Address of the operator page and the JSON API.
    #[arg(long, env = "FLOORWATCH_HTTP", default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// Address of the embedded MQTT broker.
    #[arg(long, env = "FLOORWATCH_MQTT", default_value = "127.0.0.1:1883")]
    pub mqtt: SocketAddr,
    /// Directory for the databases and the generated webhook secret.
    #[arg(long, env = "FLOORWATCH_DATA_DIR", default_value = "floorwatch-data")]
    pub data_dir: PathBuf,
    /// Combined configuration file with [broker], [bridge], [scheduler] and
    /// [[sensors]] sections; built-in defaults when absent.
    #[arg(long, env = "FLOORWATCH_CONFIG")]
    pub config: Option<PathBuf>,
    /// Replay this CSV file as one sensor instead of simulating sensors.
    #[arg(long)]
    pub replay: Option<PathBuf>,
    /// Replay speed: 1 is real time, 20000 is 20,000 times faster, 0 is as
    /// fast as the broker acknowledges.
    #[arg(long, default_value_t = 1.0, requires = "replay")]
    pub speed: f64,
    /// Unit of the replayed values; Fahrenheit is converted to °C.
    #[arg(long, default_value = "celsius", requires = "replay")]
    pub unit: Unit,
    /// Name of the replayed file's value column.
    #[arg(long, default_value = "value", requires = "replay")]
    pub column: String,
    /// Site id of the replayed sensor.
    #[arg(long, default_value = "plant-1", requires = "replay")]
    pub site: Id,
    /// Sensor id of the replayed readings (default: the file name).
    #[arg(long, requires = "replay")]
    pub sensor: Option<Id>,
    /// Start no simulated sensors.
    #[arg(long)]
    pub no_simulate: bool,
}

/// Runs the whole pipeline until SIGINT or SIGTERM.
pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => UpConfig::load(path)?,
        None => UpConfig::default(),
    };
    std::fs::create_dir_all(&args.data_dir).with_context(|| {
        format!(
            "cannot create data directory {}: pass --data-dir DIR",
            args.data_dir.display()
        )
    })?;
    let secret = crate::secret::load_or_create(&args.data_dir)?;

    let http = tokio::net::TcpListener::bind(args.http).await.map_err(|error| {
        anyhow::anyhow!(
            "cannot serve the operator page on {}: {error}; pass --http 127.0.0.1:PORT with a free port",
            args.http
        )
    })?;
    let http_addr = http.local_addr()?;

    let mut broker_table = crate::broker::load_config(None, config.broker.as_ref())?;
    crate::broker::set_listen(&mut broker_table, args.mqtt)?;
    let broker = crate::broker::EmbeddedBroker::start(broker_table, "--mqtt")?;
    let broker_url = BrokerUrl {
        host: broker.addr().ip().to_string(),
        port: broker.addr().port(),
        tls: false,
    };

    let shutdown = CancellationToken::new();
    cancel_on_signal(&shutdown);

    let scheduler_config = scheduler_config(config.scheduler, &args.data_dir, &secret);
    let scheduler_db = scheduler_config.database.clone();
    let scheduler =
        floorwatch_scheduler::start(scheduler_config, http, shutdown.child_token()).await?;

    let bridge_config = bridge_config(
        config.bridge,
        &args.data_dir,
        &broker_url,
        http_addr,
        &secret,
    );
    let bridge_db = bridge_config.database.clone();
    let bridge = floorwatch_bridge::start(bridge_config, shutdown.child_token()).await?;
    watch_bridge_rules(&args, &bridge, (&broker_url, http_addr, &secret), &shutdown);
    wait_for_subscription(&bridge).await;

    let sensors = sensors(&args, config.sensors);
    let publisher = Publisher::connect(PublisherConfig::new(
        broker_url.clone(),
        "floorwatch-up-sensors",
    ))?;

    println!("floorwatch is up");
    println!("  operator page  http://{http_addr}/");
    println!("  tasks API      http://{http_addr}/api/v1/tasks");
    println!("  MQTT broker    {broker_url}  (readings: floorwatch/SITE/SENSOR/reading)");
    println!(
        "  data           {}",
        data_summary(&args.data_dir, &bridge_db, &scheduler_db)
    );
    println!("Press Ctrl-C to stop.");

    let source = run_source(&args, sensors, &publisher, shutdown.clone());
    tokio::select! {
        result = source => result?,
        _ = shutdown.cancelled() => {}
    }
    shutdown.cancelled().await;

    publisher.close(PUBLISH_FLUSH_TIMEOUT).await;
    let stats = bridge.stats();
    drain("bridge", bridge.wait()).await;
    drain("scheduler", scheduler.wait()).await;
    println!(
        "stopped: {} readings accepted, {} rejected, {} incidents opened, {} resolved, {} deliveries",
        stats.readings_accepted,
        stats.readings_rejected,
        stats.incidents_opened,
        stats.incidents_resolved,
        stats.deliveries_succeeded
    );
    Ok(())
}

/// Describes where the data lives: the data directory, or the database
/// paths when the config file moved them elsewhere.
fn data_summary(data_dir: &Path, bridge_db: &Path, scheduler_db: &Path) -> String {
    if bridge_db.starts_with(data_dir) && scheduler_db.starts_with(data_dir) {
        data_dir.display().to_string()
    } else {
        format!(
            "{} (bridge {}, scheduler {})",
            data_dir.display(),
            bridge_db.display(),
            scheduler_db.display()
        )
    }
}

/// Publishes the replay or the simulated sensors. A finished replay leaves
/// the rest running until shutdown.
async fn run_source(
    args: &UpArgs,
    sensors: Vec<SimulatedSensorConfig>,
    publisher: &Publisher,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    if let Some(file) = &args.replay {
        let replay_args = ReplayArgs {
            file: file.clone(),
            broker: "mqtt://127.0.0.1".parse()?,
            site: args.site.clone(),
            sensor: args.sensor.clone(),
            speed: args.speed,
            unit: args.unit,
            time_column: "timestamp".into(),
            column: args.column.clone(),
        };
        let options = replay_args.options(true)?;
        let summary = floorwatch_edge::replay(options, publisher, shutdown.clone()).await?;
        println!(
            "replay finished: {} readings published, {} acknowledged, {} invalid lines skipped; \
             the page keeps running until Ctrl-C",
            summary.published, summary.acked, summary.skipped
        );
    }
    if !sensors.is_empty() {
        floorwatch_edge::run_simulated(sensors, publisher, shutdown).await?;
    }
    Ok(())
}

/// Chooses the simulated sensors: none with `--no-simulate` or `--replay`,
/// else those configured, else the built-in three.
fn sensors(args: &UpArgs, configured: Vec<SimulatedSensorConfig>) -> Vec<SimulatedSensorConfig> {
    if args.no_simulate || args.replay.is_some() {
        Vec::new()
    } else if configured.is_empty() {
        floorwatch_edge::default_simulated_sensors()
    } else {
        configured
    }
}

/// Points the scheduler at the data directory and the shared secret.
pub fn scheduler_config(
    mut config: SchedulerConfig,
    data_dir: &Path,
    secret: &Secret,
) -> SchedulerConfig {
    if config.database == SchedulerConfig::default().database {
        config.database = data_dir.join("scheduler.db");
    }
    config.secrets.insert(0, secret.expose());
    config
}

/// Points the bridge at the embedded broker, the data directory and the
/// scheduler, keeping any extra endpoints from the config file.
pub fn bridge_config(
    mut config: BridgeConfig,
    data_dir: &Path,
    broker: &BrokerUrl,
    scheduler: SocketAddr,
    secret: &Secret,
) -> BridgeConfig {
    if config.database == BridgeConfig::default().database {
        config.database = data_dir.join("bridge.db");
    }
    config.mqtt.url = broker.to_string();
    // The embedded broker keeps its queue in this process's memory, so
    // acknowledging after the commit would protect nothing (see `AckMode`).
    config.mqtt.ack = AckMode::OnReceipt;
    let mut endpoint =
        EndpointConfig::new(&format!("http://{scheduler}/webhooks"), &secret.expose());
    // The scheduler of `up` listens on loopback, which the guard refuses
    // unless the endpoint is allowed explicitly.
    endpoint.allow_private = true;
    config.endpoints.insert(0, endpoint);
    config
}

/// Reloads the bridge's rules from the `--config` file on SIGHUP and when
/// the file changes, when a file was given. `targets` are the broker, the
/// scheduler address and the secret that `bridge_config` fills in, so the
/// reloaded config matches the running one outside the rule settings.
fn watch_bridge_rules(
    args: &UpArgs,
    bridge: &floorwatch_bridge::BridgeHandle,
    targets: (&BrokerUrl, SocketAddr, &Secret),
    shutdown: &CancellationToken,
) {
    let Some(path) = args.config.clone() else {
        return;
    };
    let (broker, scheduler, secret) = (targets.0.clone(), targets.1, targets.2.clone());
    let data_dir = args.data_dir.clone();
    let load = move |path: &Path| {
        let config = UpConfig::load(path).map_err(|error| format!("{error:#}"))?;
        Ok(bridge_config(
            config.bridge,
            &data_dir,
            &broker,
            scheduler,
            &secret,
        ))
    };
    let watch =
        floorwatch_bridge::watch_config_file(path, load, bridge.reloader(), shutdown.child_token());
    tokio::spawn(watch);
}

/// Waits until the bridge's reading subscription is acknowledged, so that the
/// first simulated readings are not published to a topic nobody receives.
pub async fn wait_for_subscription(bridge: &floorwatch_bridge::BridgeHandle) {
    let deadline = tokio::time::Instant::now() + SUBSCRIBE_TIMEOUT;
    while !bridge.stats().mqtt_subscribed {
        if tokio::time::Instant::now() > deadline {
            tracing::warn!(
                timeout_ms = SUBSCRIBE_TIMEOUT.as_millis() as u64,
                "bridge has not subscribed yet; starting sensors anyway"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn drain<E: std::fmt::Display>(
    name: &str,
    task: impl std::future::Future<Output = Result<(), E>>,
) {
    match tokio::time::timeout(DRAIN_TIMEOUT, task).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::error!(component = name, %error, "stopped with an error"),
        Err(_) => tracing::warn!(component = name, "did not stop within the drain timeout"),
    }
}
