//! The single-component commands: `broker`, `edge`, `bridge`, `scheduler`
//! and `replay`, plus the shutdown signal they share with `up`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use floorwatch_bridge::BridgeConfig;
use floorwatch_edge::{Publisher, PublisherConfig, ReplayOptions, SimulatedSensorConfig, Unit};
use floorwatch_protocol::{BrokerUrl, Id};
use floorwatch_scheduler::SchedulerConfig;
use tokio_util::sync::CancellationToken;

use crate::config::read_toml;

/// Time given to publishers to have their last readings acknowledged.
pub const PUBLISH_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// A `--config FILE` argument.
#[derive(clap::Args)]
pub struct ConfigArg {
    /// Configuration file (TOML); built-in defaults when absent.
    #[arg(long)]
    config: Option<PathBuf>,
}

/// Arguments of `floorwatch replay`.
#[derive(clap::Args)]
pub struct ReplayArgs {
    /// CSV file with a time column and a value column.
    pub file: PathBuf,
    /// MQTT broker to publish to.
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    pub broker: BrokerUrl,
    /// Site id the readings are published under.
    #[arg(long, default_value = "plant-1")]
    pub site: Id,
    /// Sensor id the readings are published as (default: the file name).
    #[arg(long)]
    pub sensor: Option<Id>,
    /// Replay speed: 1 is real time, 20000 is 20,000 times faster, 0 is as
    /// fast as the broker acknowledges.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Unit of the value column; Fahrenheit is converted to °C.
    #[arg(long, default_value = "celsius")]
    pub unit: Unit,
    /// Name of the time column.
    #[arg(long, default_value = "timestamp")]
    pub time_column: String,
    /// Name of the value column.
    #[arg(long, default_value = "value")]
    pub column: String,
}

impl ReplayArgs {
    /// Builds replay options; `progress` shows a progress bar.
    pub fn options(&self, progress: bool) -> anyhow::Result<ReplayOptions> {
        let sensor = match &self.sensor {
            Some(sensor) => sensor.clone(),
            None => sensor_from_file_name(&self.file)?,
        };
        if !(self.speed >= 0.0 && self.speed.is_finite()) {
            anyhow::bail!(
                "--speed {} is invalid: use 0 (as fast as possible) or a positive factor",
                self.speed
            );
        }
        Ok(ReplayOptions {
            path: self.file.clone(),
            site: self.site.clone(),
            sensor,
            unit: self.unit,
            time_column: self.time_column.clone(),
            value_column: self.column.clone(),
            speed: self.speed,
            progress,
        })
    }
}

fn sensor_from_file_name(path: &std::path::Path) -> anyhow::Result<Id> {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    Id::parse(stem).with_context(|| {
        format!("cannot use the file name {stem:?} as the sensor id: pass --sensor ID")
    })
}

/// Resolves when SIGINT (Ctrl-C) or SIGTERM arrives.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Cancels `token` on SIGINT or SIGTERM.
pub fn cancel_on_signal(token: &CancellationToken) {
    let token = token.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        token.cancel();
    });
}

/// Runs the embedded broker until Ctrl-C.
pub fn broker(args: ConfigArg) -> anyhow::Result<()> {
    let table = crate::broker::load_config(args.config.as_deref(), None)?;
    let broker = crate::broker::EmbeddedBroker::start(table, "[v4.1] listen in the config")?;
    tracing::info!(addr = %broker.addr(), "MQTT broker ready");
    crate::runtime()?.block_on(shutdown_signal());
    Ok(())
}

/// Runs the bridge alone.
pub async fn bridge(args: ConfigArg) -> anyhow::Result<()> {
    let config: BridgeConfig = match &args.config {
        Some(path) => read_toml(path)?,
        None => BridgeConfig::default(),
    };
    config.validate()?;
    let shutdown = CancellationToken::new();
    cancel_on_signal(&shutdown);
    let bridge = floorwatch_bridge::start(config, shutdown.clone()).await?;
    // Rules, health checks, overrides and reminders reload on SIGHUP and
    // when the file changes; an invalid file is logged and ignored.
    if let Some(path) = args.config {
        let load = |path: &std::path::Path| {
            read_toml::<BridgeConfig>(path).map_err(|error| format!("{error:#}"))
        };
        let watch = floorwatch_bridge::watch_config_file(path, load, bridge.reloader(), shutdown);
        tokio::spawn(watch);
    }
    bridge.wait().await?;
    Ok(())
}

/// Runs the scheduler alone on its configured `listen` address.
pub async fn scheduler(args: ConfigArg) -> anyhow::Result<()> {
    let config: SchedulerConfig = match &args.config {
        Some(path) => read_toml(path)?,
        None => SchedulerConfig::default(),
    };
    config.validate()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}: set `listen` in the scheduler config to a free address",
                config.listen
            )
        })?;
    let shutdown = CancellationToken::new();
    cancel_on_signal(&shutdown);
    floorwatch_scheduler::run(config, listener, shutdown).await?;
    Ok(())
}

/// Runs the edge agent: loads `edge.toml` (defaults, then `--config`, then
/// `FLOORWATCH_EDGE_*` variables), samples its sensors into the on-disk
/// outbox and sends the outbox to the broker until SIGINT or SIGTERM.
pub async fn edge(args: ConfigArg) -> anyhow::Result<()> {
    let config = floorwatch_edge::EdgeConfig::load(args.config.as_deref(), utf8_env())?;
    let shutdown = CancellationToken::new();
    cancel_on_signal(&shutdown);
    floorwatch_edge::run_agent(config, shutdown).await?;
    Ok(())
}

/// Returns the environment variables whose names and values are UTF-8.
pub fn utf8_env() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
}

/// Replays a CSV file to a broker and prints a summary.
pub async fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let options = args.options(true)?;
    let client_id = format!("floorwatch-replay-{}", options.sensor);
    let publisher = Publisher::connect(PublisherConfig::new(args.broker.clone(), client_id))?;
    let shutdown = CancellationToken::new();
    cancel_on_signal(&shutdown);
    let summary = floorwatch_edge::replay(options, &publisher, shutdown.clone()).await?;
    publisher.close(PUBLISH_FLUSH_TIMEOUT).await;
    println!(
        "replayed {} of {} rows to {} ({} acknowledged, {} invalid lines skipped)",
        summary.published, summary.rows, args.broker, summary.acked, summary.skipped
    );
    if shutdown.is_cancelled() {
        anyhow::bail!(
            "replay interrupted after {} of {} rows",
            summary.published,
            summary.rows
        );
    }
    Ok(())
}

/// Prints the default configuration of `up` as TOML.
pub fn print_default_config() -> anyhow::Result<()> {
    #[derive(serde::Serialize)]
    struct Defaults {
        bridge: BridgeConfig,
        scheduler: SchedulerConfig,
        sensors: Vec<SimulatedSensorConfig>,
    }
    let defaults = Defaults {
        bridge: BridgeConfig::default(),
        scheduler: SchedulerConfig::default(),
        sensors: floorwatch_edge::default_simulated_sensors(),
    };
    println!("# [broker]: keys of broker.toml, merged over these defaults:");
    for line in crate::broker::DEFAULT_BROKER_TOML.lines() {
        println!("#   {line}");
    }
    println!();
    print!("{}", toml::to_string_pretty(&defaults)?);
    Ok(())
}
