//! DS18B20 temperature sensors through the Linux 1-Wire sysfs interface
//! (`w1-gpio` and `w1_therm`), read from
//! `/sys/bus/w1/devices/28-*/w1_slave`.
//!
//! The file contains two lines: the scratchpad bytes with `crc=XX YES` or
//! `crc=XX NO`, then the bytes again with `t=` and the temperature in m°C.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use floorwatch_protocol::{Id, Quality, Reading};

use super::{fault_reading, measured_reading, SensorModel};
use crate::sensor::Sensor;

/// Value the DS18B20 reports after power-on, before any conversion: 85 °C.
/// Reading it means the conversion did not run (often a power fault).
const POWER_ON_MILLI_C: i64 = 85_000;

/// A DS18B20 read through `w1_slave`.
#[derive(Debug, Clone)]
pub struct Ds18b20Sensor {
    site: Id,
    sensor: Id,
    path: PathBuf,
}

impl Ds18b20Sensor {
    /// Creates a sensor reading `path`, either a `w1_slave` file or the
    /// `28-*` device directory that contains it. The device need not exist
    /// yet: until it does, each sample is a timeout fault.
    pub fn new(site: Id, sensor: Id, path: PathBuf) -> Self {
        let path = if path.ends_with("w1_slave") {
            path
        } else {
            path.join("w1_slave")
        };
        Self { site, sensor, path }
    }
}

/// Result of parsing `w1_slave`: m°C, or the quality of the fault.
pub fn parse_w1_slave(text: &str) -> Result<i64, Quality> {
    let mut lines = text.lines();
    let crc_line = lines.next().ok_or(Quality::Timeout)?;
    if !crc_line.trim_end().ends_with("YES") {
        return Err(Quality::Checksum);
    }
    let value = lines
        .next()
        .and_then(|line| line.split_once("t="))
        .and_then(|(_, value)| value.trim().parse::<i64>().ok())
        .ok_or(Quality::Checksum)?;
    if value == POWER_ON_MILLI_C {
        return Err(Quality::Timeout);
    }
    Ok(value)
}

impl Sensor for Ds18b20Sensor {
    fn site(&self) -> &Id {
        &self.site
    }

    fn sensor(&self) -> &Id {
        &self.sensor
    }

    /// Reads once; the kernel runs the conversion (about 750 ms at 12 bits)
    /// inside the read, so this blocks for that long.
    fn sample(&mut self, now: DateTime<Utc>) -> Reading {
        let ids = (&self.site, &self.sensor);
        let parsed = match std::fs::read_to_string(&self.path) {
            Ok(text) => parse_w1_slave(&text),
            Err(error) => {
                tracing::debug!(path = %self.path.display(), %error, "DS18B20 read failed");
                Err(Quality::Timeout)
            }
        };
        match parsed {
            Ok(milli_c) => {
                let celsius = milli_c as f64 / 1000.0;
                measured_reading(ids, now, SensorModel::Ds18b20, celsius, None)
            }
            Err(quality) => fault_reading(ids, now, quality),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n\
                        72 01 4b 46 7f ff 0e 10 57 t=23125\n";

    fn sensor(path: PathBuf) -> Ds18b20Sensor {
        Ds18b20Sensor::new(Id::parse("s").unwrap(), Id::parse("t").unwrap(), path)
    }

    fn sample_file(text: &str) -> Reading {
        let dir = tempfile::tempdir().unwrap();
        let device = dir.path().join("28-00000a1b2c3d");
        std::fs::create_dir(&device).unwrap();
        std::fs::write(device.join("w1_slave"), text).unwrap();
        sensor(device).sample(Utc::now())
    }

    #[test]
    fn good_read_is_celsius() {
        let reading = sample_file(GOOD);
        assert_eq!(reading.quality, Quality::Ok);
        assert_eq!(reading.temperature_c, Some(23.125));
    }

    #[test]
    fn negative_read_is_celsius() {
        let reading = sample_file(
            "5e ff 4b 46 7f ff 02 10 2f : crc=2f YES\n5e ff 4b 46 7f ff 02 10 2f t=-10125\n",
        );
        assert_eq!(reading.temperature_c, Some(-10.125));
    }

    #[test]
    fn crc_no_is_checksum_fault() {
        let reading = sample_file(&GOOD.replace("YES", "NO"));
        assert_eq!(reading.quality, Quality::Checksum);
        assert_eq!(reading.temperature_c, None);
    }

    #[test]
    fn power_on_value_is_fault() {
        let reading = sample_file(
            "50 05 4b 46 7f ff 0c 10 1c : crc=1c YES\n50 05 4b 46 7f ff 0c 10 1c t=85000\n",
        );
        assert_eq!(reading.quality, Quality::Timeout);
        assert_eq!(reading.temperature_c, None);
    }

    #[test]
    fn missing_device_is_fault() {
        let dir = tempfile::tempdir().unwrap();
        let reading = sensor(dir.path().join("28-gone/w1_slave")).sample(Utc::now());
        assert_eq!(reading.quality, Quality::Timeout);
    }

    #[test]
    fn device_appearing_later_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let device = dir.path().join("28-00000a1b2c3d");
        let mut sensor = sensor(device.clone());
        assert_eq!(sensor.sample(Utc::now()).quality, Quality::Timeout);

        std::fs::create_dir(&device).unwrap();
        std::fs::write(device.join("w1_slave"), GOOD).unwrap();
        assert_eq!(sensor.sample(Utc::now()).temperature_c, Some(23.125));
    }

    #[test]
    fn out_of_range_value_is_flagged() {
        let reading = sample_file(&GOOD.replace("t=23125", "t=127000"));
        assert_eq!(reading.quality, Quality::OutOfRange);
    }

    #[test]
    fn empty_file_is_fault() {
        assert_eq!(parse_w1_slave(""), Err(Quality::Timeout));
    }
}
