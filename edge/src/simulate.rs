//! The sampling loop: one task per sensor that samples on its interval and
//! publishes each reading.

use std::time::Duration;

use chrono::Utc;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::config::{build_sensors, SensorConfigError, SimulatedSensorConfig};
use crate::publisher::{PublishError, Publisher, PublisherHandle};
use crate::sensor::Sensor;

/// Error that stopped the sampling loop before it was cancelled.
///
/// The loop logs these errors with `Display` only, so each message includes
/// its cause and no variant reports it again as `source()`.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error(transparent)]
    Config(#[from] SensorConfigError),
    #[error("failed to publish a reading of site {site} sensor {sensor}: {error}")]
    Publish {
        site: String,
        sensor: String,
        error: PublishError,
    },
    #[error("sampling task failed: {error}")]
    Task { error: tokio::task::JoinError },
}

/// Samples the simulated sensors in `sensors` and publishes their readings
/// until `shutdown` is cancelled.
///
/// Every entry is validated before any sensor starts. Each sensor runs in its
/// own task. A tick that comes late (publishing waited for PubAcks) delays
/// the following ticks instead of bursting. When one task fails, the others
/// are stopped and its error is returned.
pub async fn run_simulated(
    sensors: Vec<SimulatedSensorConfig>,
    publisher: &Publisher,
    shutdown: CancellationToken,
) -> Result<(), EdgeError> {
    let sensors = build_sensors(&sensors)?;
    let stop = shutdown.child_token();
    let mut tasks = JoinSet::new();
    for (sensor, interval) in sensors {
        tracing::info!(
            site = %sensor.site(),
            sensor = %sensor.sensor(),
            interval_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
            "simulated sensor started"
        );
        tasks.spawn(sample_loop(
            Box::new(sensor),
            interval,
            publisher.handle(),
            stop.clone(),
        ));
    }

    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let result = joined.map_err(|error| EdgeError::Task { error });
        if let Err(error) = result.and_then(|sampled| sampled) {
            tracing::error!(%error, "sampling stopped");
            stop.cancel();
            first_error.get_or_insert(error);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Samples `sensor` every `interval` (or its minimum interval, if longer)
/// and publishes each reading until `stop` is cancelled.
async fn sample_loop(
    mut sensor: Box<dyn Sensor>,
    interval: Duration,
    publisher: PublisherHandle,
    stop: CancellationToken,
) -> Result<(), EdgeError> {
    let mut ticks = tokio::time::interval(interval.max(sensor.min_interval()));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => return Ok(()),
            _ = ticks.tick() => {}
        }
        let reading = sensor.sample(Utc::now());
        let published = tokio::select! {
            biased;
            () = stop.cancelled() => return Ok(()),
            published = publisher.publish(&reading) => published,
        };
        published.map_err(|error| EdgeError::Publish {
            site: sensor.site().to_string(),
            sensor: sensor.sensor().to_string(),
            error,
        })?;
        tracing::trace!(
            site = %reading.site,
            sensor = %reading.sensor,
            seq = reading.seq,
            temperature_c = reading.temperature_c,
            "reading published"
        );
    }
}
