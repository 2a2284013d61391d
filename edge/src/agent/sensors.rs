//! The `[[sensors]]` entries of `edge.toml` and the drivers they build.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use floorwatch_protocol::Id;
use serde::{Deserialize, Serialize};

use super::config::{invalid, missing, EdgeConfigError};
use crate::drivers::iio::{DhtIioSensor, DEFAULT_IIO_DEVICE, DHT_MIN_INTERVAL};
use crate::drivers::w1::Ds18b20Sensor;
use crate::drivers::SensorModel;
use crate::sensor::{Sensor, SimulatedSensor};

/// Driver that produces a sensor's readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SensorKind {
    /// A random walk, for trying the pipeline without hardware.
    Simulated,
    /// DHT11/DHT22 through the kernel's `dht11` IIO driver.
    DhtIio,
    /// DS18B20 through 1-Wire sysfs.
    Ds18b20,
    /// DHT11/DHT22 on a GPIO pin, decoded in user space (feature `gpio`).
    DhtGpio,
}

/// One `[[sensors]]` entry of `edge.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSensorConfig {
    /// Driver.
    pub kind: SensorKind,
    /// Sensor id within the site.
    pub id: String,
    /// Sampling period in milliseconds.
    pub interval_ms: u64,
    /// `dht11` or `dht22`, for the DHT kinds.
    #[serde(default)]
    pub model: Option<SensorModel>,
    /// IIO device directory (`dht_iio`) or 1-Wire device (`ds18b20`).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// BCM GPIO number (`dht_gpio`).
    #[serde(default)]
    pub pin: Option<u8>,
    /// Seed of the random walk (`simulated`).
    #[serde(default)]
    pub seed: Option<u64>,
}

/// A built sensor with its sampling period.
pub type BuiltSensor = (Box<dyn Sensor>, Duration);

/// Validates every entry and builds its driver. Opening GPIO happens on the
/// first sample, so this works on any machine.
pub fn build_agent_sensors(
    configs: &[AgentSensorConfig],
    site: &Id,
) -> Result<Vec<BuiltSensor>, EdgeConfigError> {
    if configs.is_empty() {
        return Err(invalid(
            "sensors",
            "[]",
            "add at least one [[sensors]] entry",
        ));
    }
    let mut seen = HashSet::new();
    let mut built = Vec::with_capacity(configs.len());
    for (index, config) in configs.iter().enumerate() {
        if !seen.insert(config.id.as_str()) {
            return Err(invalid(
                format!("sensors[{index}].id"),
                &config.id,
                "give each sensor a different id",
            ));
        }
        built.push(config.build(index, site)?);
    }
    Ok(built)
}

impl AgentSensorConfig {
    fn build(&self, index: usize, site: &Id) -> Result<BuiltSensor, EdgeConfigError> {
        let field = |name: &str| format!("sensors[{index}].{name}");
        let id = Id::parse(&self.id).map_err(|e| invalid(field("id"), &self.id, &e.to_string()))?;
        if self.interval_ms == 0 {
            return Err(invalid(
                field("interval_ms"),
                0,
                "set a period of at least 1 ms",
            ));
        }
        let interval = Duration::from_millis(self.interval_ms);
        self.reject_unused(index)?;

        let sensor: Box<dyn Sensor> = match self.kind {
            SensorKind::Simulated => {
                let seed = self.seed.unwrap_or_else(rand::random);
                Box::new(SimulatedSensor::new(site.clone(), id, seed))
            }
            SensorKind::DhtIio => {
                let model = self.dht_model(index, interval)?;
                let device = self
                    .path
                    .clone()
                    .unwrap_or(PathBuf::from(DEFAULT_IIO_DEVICE));
                Box::new(DhtIioSensor::new(site.clone(), id, model, device))
            }
            SensorKind::Ds18b20 => {
                let path = self.path.clone().ok_or_else(|| {
                    missing(
                        field("path"),
                        "set the device, such as /sys/bus/w1/devices/28-00000a1b2c3d",
                    )
                })?;
                Box::new(Ds18b20Sensor::new(site.clone(), id, path))
            }
            SensorKind::DhtGpio => self.gpio_sensor(index, site, id, interval)?,
        };
        Ok((sensor, interval))
    }

    /// Rejects keys the kind does not read, so a misplaced key is noticed.
    fn reject_unused(&self, index: usize) -> Result<(), EdgeConfigError> {
        let (model, path, pin, seed) = match self.kind {
            SensorKind::Simulated => (false, false, false, true),
            SensorKind::DhtIio => (true, true, false, false),
            SensorKind::Ds18b20 => (false, true, false, false),
            SensorKind::DhtGpio => (true, false, true, false),
        };
        let unused = [
            ("model", self.model.is_some() && !model),
            ("path", self.path.is_some() && !path),
            ("pin", self.pin.is_some() && !pin),
            ("seed", self.seed.is_some() && !seed),
        ];
        match unused.iter().find(|(_, set)| *set) {
            Some((key, _)) => Err(invalid(
                format!("sensors[{index}].{key}"),
                "set",
                &format!("remove it: kind {:?} does not use it", self.kind),
            )),
            None => Ok(()),
        }
    }

    fn dht_model(&self, index: usize, interval: Duration) -> Result<SensorModel, EdgeConfigError> {
        let field = format!("sensors[{index}].model");
        let model = match self.model {
            Some(model @ (SensorModel::Dht11 | SensorModel::Dht22)) => model,
            Some(other) => {
                return Err(invalid(
                    field,
                    format!("{other:?}").to_lowercase(),
                    "set model = \"dht22\" or \"dht11\"",
                ))
            }
            None => return Err(missing(field, "set model = \"dht22\" or \"dht11\"")),
        };
        if interval < DHT_MIN_INTERVAL {
            return Err(invalid(
                format!("sensors[{index}].interval_ms"),
                self.interval_ms,
                "DHT sensors respond at most every 2 s: set at least 2000",
            ));
        }
        Ok(model)
    }

    #[cfg(feature = "gpio")]
    fn gpio_sensor(
        &self,
        index: usize,
        site: &Id,
        id: Id,
        interval: Duration,
    ) -> Result<Box<dyn Sensor>, EdgeConfigError> {
        let model = self.dht_model(index, interval)?;
        let pin = self.pin.ok_or_else(|| {
            missing(
                format!("sensors[{index}].pin"),
                "set the BCM GPIO number, such as 4",
            )
        })?;
        Ok(Box::new(crate::drivers::gpio::DhtGpioSensor::new(
            site.clone(),
            id,
            model,
            pin,
        )))
    }

    #[cfg(not(feature = "gpio"))]
    fn gpio_sensor(
        &self,
        index: usize,
        _site: &Id,
        _id: Id,
        _interval: Duration,
    ) -> Result<Box<dyn Sensor>, EdgeConfigError> {
        Err(invalid(
            format!("sensors[{index}].kind"),
            "dht_gpio",
            "this build has no GPIO support: rebuild with `--features floorwatch-edge/gpio` \
             or use kind = \"dht_iio\"",
        ))
    }
}
