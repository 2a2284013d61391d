//! Drivers for real sensors behind the [`Sensor`](crate::Sensor) trait, and
//! the physical ranges that separate a measurement from garbage.

pub mod dht_frame;
#[cfg(feature = "gpio")]
pub mod gpio;
pub mod iio;
pub mod w1;

use std::ops::RangeInclusive;

use chrono::{DateTime, Utc};
use floorwatch_protocol::{Id, Quality, Reading};
use serde::{Deserialize, Serialize};

/// Relative humidity every supported sensor can report, in %.
pub const HUMIDITY_RANGE_PCT: RangeInclusive<f64> = 0.0..=100.0;

/// A sensor part, which fixes the range of values it can measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SensorModel {
    /// DHT11: 0–50 °C, 1 °C resolution.
    Dht11,
    /// DHT22 (AM2302): −40–80 °C, 0.1 °C resolution.
    Dht22,
    /// DS18B20 on 1-Wire: −55–125 °C.
    Ds18b20,
}

impl SensorModel {
    /// Temperatures the part can measure, in °C, from its datasheet.
    pub fn temperature_range_c(self) -> RangeInclusive<f64> {
        match self {
            SensorModel::Dht11 => 0.0..=50.0,
            SensorModel::Dht22 => -40.0..=80.0,
            SensorModel::Ds18b20 => -55.0..=125.0,
        }
    }
}

/// Builds the reading of one measurement of a `model` sensor.
///
/// A value outside the part's range is not published: the reading carries
/// no values and [`Quality::OutOfRange`].
pub fn measured_reading(
    ids: (&Id, &Id),
    now: DateTime<Utc>,
    model: SensorModel,
    temperature_c: f64,
    humidity_pct: Option<f64>,
) -> Reading {
    let temperature_ok = model.temperature_range_c().contains(&temperature_c);
    let humidity_ok = humidity_pct.is_none_or(|pct| HUMIDITY_RANGE_PCT.contains(&pct));
    if !(temperature_ok && humidity_ok) {
        return fault_reading(ids, now, Quality::OutOfRange);
    }
    let mut reading = Reading::temperature(ids.0.clone(), ids.1.clone(), now, temperature_c);
    reading.humidity_pct = humidity_pct;
    reading
}

/// Builds a reading without values that records why the measurement failed.
pub fn fault_reading(ids: (&Id, &Id), now: DateTime<Utc>, quality: Quality) -> Reading {
    let mut reading = Reading::temperature(ids.0.clone(), ids.1.clone(), now, 0.0);
    reading.temperature_c = None;
    reading.quality = quality;
    reading
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (Id, Id) {
        (Id::parse("s").unwrap(), Id::parse("t").unwrap())
    }

    #[test]
    fn ranges_follow_datasheets() {
        let (site, sensor) = ids();
        let now = Utc::now();
        let cases = [
            (SensorModel::Dht11, -1.0, Quality::OutOfRange),
            (SensorModel::Dht11, 50.0, Quality::Ok),
            (SensorModel::Dht22, -40.0, Quality::Ok),
            (SensorModel::Dht22, 80.1, Quality::OutOfRange),
            (SensorModel::Ds18b20, -55.0, Quality::Ok),
            (SensorModel::Ds18b20, 125.5, Quality::OutOfRange),
        ];
        for (model, celsius, quality) in cases {
            let reading = measured_reading((&site, &sensor), now, model, celsius, None);
            assert_eq!(reading.quality, quality, "{model:?} {celsius}");
        }
    }

    #[test]
    fn humidity_out_of_range_drops_values() {
        let (site, sensor) = ids();
        let reading = measured_reading(
            (&site, &sensor),
            Utc::now(),
            SensorModel::Dht22,
            20.0,
            Some(100.5),
        );
        assert_eq!(reading.quality, Quality::OutOfRange);
        assert_eq!(reading.temperature_c, None);
        assert_eq!(reading.humidity_pct, None);
    }
}
