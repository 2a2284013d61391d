//! The `[[sensors]]` entries of the `up` and `edge` configuration, and the
//! checks that run on them before any sensor starts.

use std::collections::HashMap;
use std::time::Duration;

use floorwatch_protocol::{Id, IdError};
use serde::{Deserialize, Serialize};

use crate::sensor::SimulatedSensor;

/// Sampling period used when an entry sets no `interval_ms`.
pub const DEFAULT_INTERVAL_MS: u64 = 5000;

/// One `[[sensors]]` entry: a simulated sensor and how often to sample it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatedSensorConfig {
    /// Site identifier, `[A-Za-z0-9_-]{1,64}`.
    pub site: String,
    /// Sensor identifier within the site, `[A-Za-z0-9_-]{1,64}`.
    pub sensor: String,
    /// Sampling period in milliseconds, at least 1.
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    /// Seed of the random walk. A random seed is used when absent.
    #[serde(default)]
    pub seed: Option<u64>,
}

fn default_interval_ms() -> u64 {
    DEFAULT_INTERVAL_MS
}

/// Error in a `[[sensors]]` entry. `index` is the entry's 0-based position
/// in the list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SensorConfigError {
    /// The message includes `reason`, which says how to fix the id, and
    /// `source()` returns `None` so that a chain printer shows it once.
    #[error("sensors[{index}].{field} is invalid: {reason}")]
    InvalidId {
        index: usize,
        field: &'static str,
        reason: IdError,
    },
    #[error(
        "sensors[{index}].interval_ms is 0: set the sampling period in milliseconds, at least 1"
    )]
    ZeroInterval { index: usize },
    #[error(
        "sensors[{index}] repeats site {site:?} sensor {sensor:?} of sensors[{first}]: \
         give each sensor of a site a different id"
    )]
    Duplicate {
        index: usize,
        first: usize,
        site: String,
        sensor: String,
    },
}

impl SimulatedSensorConfig {
    /// Creates an entry with the default interval and a random seed.
    pub fn new(site: &str, sensor: &str) -> Self {
        Self {
            site: site.to_owned(),
            sensor: sensor.to_owned(),
            interval_ms: DEFAULT_INTERVAL_MS,
            seed: None,
        }
    }

    /// Returns the sampling period.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }

    /// Validates the entry at position `index` and builds its sensor.
    pub fn build(&self, index: usize) -> Result<SimulatedSensor, SensorConfigError> {
        let invalid_id = |field| {
            move |reason| SensorConfigError::InvalidId {
                index,
                field,
                reason,
            }
        };
        let site = Id::parse(&self.site).map_err(invalid_id("site"))?;
        let sensor = Id::parse(&self.sensor).map_err(invalid_id("sensor"))?;
        if self.interval_ms == 0 {
            return Err(SensorConfigError::ZeroInterval { index });
        }

        let seed = self.seed.unwrap_or_else(rand::random);
        Ok(SimulatedSensor::new(site, sensor, seed))
    }
}

/// Validates every entry and builds the sensors, in order, each with its
/// sampling period. Rejects two entries with the same site and sensor,
/// because their sequence numbers would collide on one topic.
pub fn build_sensors(
    configs: &[SimulatedSensorConfig],
) -> Result<Vec<(SimulatedSensor, Duration)>, SensorConfigError> {
    let mut first_index: HashMap<(&str, &str), usize> = HashMap::with_capacity(configs.len());
    let mut sensors = Vec::with_capacity(configs.len());
    for (index, config) in configs.iter().enumerate() {
        let sensor = config.build(index)?;
        let key = (config.site.as_str(), config.sensor.as_str());
        if let Some(&first) = first_index.get(&key) {
            return Err(SensorConfigError::Duplicate {
                index,
                first,
                site: config.site.clone(),
                sensor: config.sensor.clone(),
            });
        }
        first_index.insert(key, index);
        sensors.push((sensor, config.interval()));
    }
    Ok(sensors)
}

/// Returns the sensors `floorwatch up` simulates when the configuration lists none:
/// `oven-1`, `freezer-1` and `line-3` at site `plant-1`, sampled every 2 s.
pub fn default_simulated_sensors() -> Vec<SimulatedSensorConfig> {
    ["oven-1", "freezer-1", "line-3"]
        .into_iter()
        .map(|sensor| SimulatedSensorConfig {
            interval_ms: 2000,
            ..SimulatedSensorConfig::new("plant-1", sensor)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sensor::Sensor;

    #[derive(Deserialize)]
    struct File {
        sensors: Vec<SimulatedSensorConfig>,
    }

    fn parse(text: &str) -> Result<Vec<SimulatedSensorConfig>, serde_json::Error> {
        serde_json::from_str::<File>(text).map(|file| file.sensors)
    }

    #[test]
    fn entry_defaults_interval_and_seed() {
        let sensors = parse(r#"{"sensors": [{"site": "s", "sensor": "t"}]}"#).unwrap();
        assert_eq!(sensors[0].interval_ms, DEFAULT_INTERVAL_MS);
        assert_eq!(sensors[0].seed, None);
    }

    #[test]
    fn entry_rejects_unknown_fields() {
        let error = parse(r#"{"sensors": [{"site": "s", "sensor": "t", "speed": 2}]}"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("speed"), "{error}");
    }

    #[test]
    fn invalid_id_names_field_and_value() {
        let configs = vec![
            SimulatedSensorConfig::new("plant-1", "oven-1"),
            SimulatedSensorConfig::new("plant-1", "line.3"),
        ];
        let error = build_sensors(&configs).unwrap_err();
        assert!(matches!(
            error,
            SensorConfigError::InvalidId {
                index: 1,
                field: "sensor",
                ..
            }
        ));
        let message = error.to_string();
        assert!(message.contains("sensors[1].sensor"), "{message}");
        assert!(message.contains("\"line.3\""), "{message}");
    }

    #[test]
    fn zero_interval_is_rejected() {
        let config = SimulatedSensorConfig {
            interval_ms: 0,
            ..SimulatedSensorConfig::new("s", "t")
        };
        let error = config.build(4).unwrap_err();
        assert_eq!(error, SensorConfigError::ZeroInterval { index: 4 });
        assert!(error.to_string().contains("sensors[4].interval_ms"));
    }

    #[test]
    fn duplicate_sensor_is_rejected() {
        let configs = vec![
            SimulatedSensorConfig::new("s", "a"),
            SimulatedSensorConfig::new("s", "b"),
            SimulatedSensorConfig::new("s", "a"),
        ];
        let error = build_sensors(&configs).unwrap_err();
        assert!(matches!(
            error,
            SensorConfigError::Duplicate {
                index: 2,
                first: 0,
                ..
            }
        ));
    }

    #[test]
    fn defaults_are_three_plant_sensors() {
        let defaults = default_simulated_sensors();
        let sensors = build_sensors(&defaults).unwrap();
        let names: Vec<_> = sensors.iter().map(|(s, _)| s.sensor().as_str()).collect();
        assert_eq!(names, ["oven-1", "freezer-1", "line-3"]);
        assert!(sensors.iter().all(|(s, _)| s.site().as_str() == "plant-1"));
        assert!(sensors
            .iter()
            .all(|(_, interval)| *interval == Duration::from_millis(2000)));
    }

    #[test]
    fn fixed_seed_builds_same_series() {
        let config = SimulatedSensorConfig {
            seed: Some(9),
            ..SimulatedSensorConfig::new("s", "t")
        };
        let now = chrono::Utc::now();
        let mut first = config.build(0).unwrap();
        let mut second = config.build(0).unwrap();
        for _ in 0..50 {
            assert_eq!(first.sample(now), second.sample(now));
        }
    }
}
