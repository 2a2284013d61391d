//! The floorwatch edge agent: sensors and their drivers, the on-disk outbox
//! and the agent that drains it, CSV replay, and the MQTT publisher that
//! confirms every reading by its PubAck.

mod agent;
mod backoff;
mod config;
pub mod drivers;
mod event_loop;
mod options;
mod outbox;
mod publisher;
mod replay;
mod sensor;
mod simulate;
mod tracker;

pub use agent::config::{
    EdgeConfig, EdgeConfigError, OutboxConfig, TlsConfig, DEFAULT_EDGE_TOML, ENV_PREFIX,
};
pub use agent::sensors::{AgentSensorConfig, SensorKind};
pub use agent::{run_agent, run_agent_with_stats, AgentError, AgentStats};
pub use backoff::reconnect_delay;
pub use config::{
    build_sensors, default_simulated_sensors, SensorConfigError, SimulatedSensorConfig,
    DEFAULT_INTERVAL_MS,
};
pub use options::{TlsFiles, DEFAULT_CA_FILE, STATUS_OFFLINE, STATUS_ONLINE};
pub use outbox::{Outbox, OutboxBounds, OutboxEntry, OutboxError, Pushed};
pub use publisher::{PublishError, Publisher, PublisherConfig, DEFAULT_MAX_INFLIGHT};
pub use replay::{
    pacing_delay, parse_time, read_replay_file, replay, ReplayError, ReplayOptions, ReplaySummary,
    SkipReason, SkippedLine, Unit, UnitError, FLUSH_DEADLINE,
};
pub use sensor::{Sensor, SimulatedSensor, DEFAULT_BASE_C, DEFAULT_EXCURSION_PROBABILITY};
pub use simulate::{run_simulated, EdgeError};
