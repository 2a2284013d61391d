//! The combined configuration file of `floorwatch up --config FILE`, with
//! sections `[broker]`, `[bridge]`, `[scheduler]` and `[[sensors]]`, each
//! taking the same keys as that component's own file.

use std::path::Path;

use anyhow::Context;
use floorwatch_bridge::BridgeConfig;
use floorwatch_edge::SimulatedSensorConfig;
use floorwatch_scheduler::SchedulerConfig;
use serde::Deserialize;

/// Everything `floorwatch up` can be configured with.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpConfig {
    /// rumqttd keys merged over the embedded `broker.toml`.
    pub broker: Option<toml::Table>,
    pub bridge: BridgeConfig,
    pub scheduler: SchedulerConfig,
    /// Simulated sensors; empty means the built-in three.
    pub sensors: Vec<SimulatedSensorConfig>,
}

/// Reads and parses a TOML file into `T`, naming the file in errors.
pub fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

impl UpConfig {
    /// Loads and validates a combined configuration file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let config: Self = read_toml(path)?;
        config
            .validate()
            .with_context(|| format!("invalid config file {}", path.display()))?;
        Ok(config)
    }

    /// Checks every section, naming the field and the fix on error.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.bridge.validate().context("in [bridge]")?;
        // `up` adds the secret it shares with the bridge, so the section may
        // list none of its own.
        let mut scheduler = self.scheduler.clone();
        scheduler
            .secrets
            .push(floorwatch_protocol::Secret::generate().expose());
        scheduler.validate().context("in [scheduler]")?;
        floorwatch_edge::build_sensors(&self.sensors)?;
        let broker = crate::broker::load_config(None, self.broker.as_ref())?;
        crate::broker::parse_config(broker).context("in [broker]")?;
        Ok(())
    }
}

/// Validates `path` as a combined, bridge, scheduler, broker or edge file,
/// according to `kind`.
pub fn check(path: &Path, kind: ConfigKind) -> anyhow::Result<()> {
    match kind {
        ConfigKind::Up => UpConfig::load(path).map(drop),
        ConfigKind::Bridge => {
            let config: BridgeConfig = read_toml(path)?;
            Ok(config.validate()?)
        }
        ConfigKind::Scheduler => {
            let config: SchedulerConfig = read_toml(path)?;
            Ok(config.validate()?)
        }
        ConfigKind::Edge => {
            floorwatch_edge::EdgeConfig::load(Some(path), crate::commands::utf8_env())?;
            Ok(())
        }
        ConfigKind::Broker => {
            let table = crate::broker::load_config(Some(path), None)?;
            crate::broker::parse_config(table)
                .with_context(|| format!("invalid broker config {}", path.display()))?;
            Ok(())
        }
    }
}

/// Component a configuration file is for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ConfigKind {
    /// A combined file for `floorwatch up`.
    Up,
    Bridge,
    Scheduler,
    Broker,
    /// An `edge.toml` for `floorwatch edge`; `FLOORWATCH_EDGE_*` variables
    /// apply as they would when the agent starts.
    Edge,
}
