//! The floorwatch edge agent: sensors, the sampling loop, CSV replay and the
//! MQTT publisher that confirms every reading by its PubAck.

mod backoff;
mod config;
mod event_loop;
mod publisher;
mod replay;
mod sensor;
mod simulate;
mod tracker;

pub use backoff::reconnect_delay;
pub use config::{
    build_sensors, default_simulated_sensors, SensorConfigError, SimulatedSensorConfig,
    DEFAULT_INTERVAL_MS,
};
pub use publisher::{PublishError, Publisher, PublisherConfig, DEFAULT_MAX_INFLIGHT};
pub use replay::{
    pacing_delay, parse_time, read_replay_file, replay, ReplayError, ReplayOptions, ReplaySummary,
    SkipReason, SkippedLine, Unit, UnitError, FLUSH_DEADLINE,
};
pub use sensor::{Sensor, SimulatedSensor, DEFAULT_BASE_C, DEFAULT_EXCURSION_PROBABILITY};
pub use simulate::{run_simulated, EdgeError};
