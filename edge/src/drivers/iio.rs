//! DHT11/DHT22 through the Linux `dht11` IIO driver, which reads the sensor
//! in the kernel and exposes `in_temp_input` (m°C) and
//! `in_humidityrelative_input` (thousandths of %RH) under
//! `/sys/bus/iio/devices/iio:deviceN/`.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use floorwatch_protocol::{Id, Quality, Reading};

use super::{fault_reading, measured_reading, SensorModel};
use crate::sensor::Sensor;

/// Device directory used when the configuration names none.
pub const DEFAULT_IIO_DEVICE: &str = "/sys/bus/iio/devices/iio:device0";

/// Shortest period between two reads: DHT sensors respond at most every 2 s.
pub const DHT_MIN_INTERVAL: Duration = Duration::from_secs(2);

/// Reads after the first one when the kernel reports EIO or ETIMEDOUT.
pub const DEFAULT_RETRIES: u32 = 2;

const EIO: i32 = 5;
const ETIMEDOUT: i32 = 110;

/// A DHT11 or DHT22 read through the kernel's `dht11` IIO driver.
///
/// The kernel returns EIO when a frame fails its checksum and ETIMEDOUT
/// when the sensor does not respond; both are retried up to `retries` times,
/// `retry_delay` apart. A missing device directory reads as a timeout.
#[derive(Debug, Clone)]
pub struct DhtIioSensor {
    site: Id,
    sensor: Id,
    model: SensorModel,
    device: PathBuf,
    retries: u32,
    retry_delay: Duration,
}

impl DhtIioSensor {
    /// Creates a sensor reading the IIO device directory `device`, with
    /// [`DEFAULT_RETRIES`] retries [`DHT_MIN_INTERVAL`] apart.
    pub fn new(site: Id, sensor: Id, model: SensorModel, device: PathBuf) -> Self {
        Self {
            site,
            sensor,
            model,
            device,
            retries: DEFAULT_RETRIES,
            retry_delay: DHT_MIN_INTERVAL,
        }
    }

    /// Sets the number of retries and the wait before each.
    pub fn with_retries(mut self, retries: u32, retry_delay: Duration) -> Self {
        self.retries = retries;
        self.retry_delay = retry_delay;
        self
    }

    fn read_once(&self) -> Result<(f64, f64), io::Error> {
        let celsius = read_thousandths(&self.device.join("in_temp_input"))?;
        let humidity = read_thousandths(&self.device.join("in_humidityrelative_input"))?;
        Ok((celsius, humidity))
    }
}

/// Reads a sysfs attribute holding an integer in thousandths.
fn read_thousandths(path: &Path) -> Result<f64, io::Error> {
    let text = std::fs::read_to_string(path)?;
    let value: i64 = text.trim().parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} holds {:?}, not an integer", path.display(), text.trim()),
        )
    })?;
    Ok(value as f64 / 1000.0)
}

/// Maps a read error to the reading's quality and whether to retry.
fn classify(error: &io::Error) -> (Quality, bool) {
    match error.raw_os_error() {
        Some(EIO) => (Quality::Checksum, true),
        Some(ETIMEDOUT) => (Quality::Timeout, true),
        _ if error.kind() == io::ErrorKind::InvalidData => (Quality::Checksum, false),
        _ => (Quality::Timeout, false),
    }
}

impl Sensor for DhtIioSensor {
    fn site(&self) -> &Id {
        &self.site
    }

    fn sensor(&self) -> &Id {
        &self.sensor
    }

    fn sample(&mut self, now: DateTime<Utc>) -> Reading {
        let ids = (&self.site, &self.sensor);
        let mut attempt = 0;
        loop {
            let error = match self.read_once() {
                Ok((celsius, humidity)) => {
                    return measured_reading(ids, now, self.model, celsius, Some(humidity))
                }
                Err(error) => error,
            };
            let (quality, retry) = classify(&error);
            tracing::debug!(
                device = %self.device.display(),
                attempt,
                %error,
                "DHT read through IIO failed"
            );
            if !retry || attempt >= self.retries {
                return fault_reading(ids, now, quality);
            }
            attempt += 1;
            std::thread::sleep(self.retry_delay);
        }
    }

    fn min_interval(&self) -> Duration {
        DHT_MIN_INTERVAL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sensor(device: &Path, model: SensorModel) -> DhtIioSensor {
        DhtIioSensor::new(
            Id::parse("plant-1").unwrap(),
            Id::parse("room-1").unwrap(),
            model,
            device.to_owned(),
        )
        .with_retries(2, Duration::ZERO)
    }

    fn write_values(dir: &Path, temp: &str, humidity: &str) {
        std::fs::write(dir.join("in_temp_input"), temp).unwrap();
        std::fs::write(dir.join("in_humidityrelative_input"), humidity).unwrap();
    }

    #[test]
    fn reads_thousandths() {
        let dir = tempfile::tempdir().unwrap();
        write_values(dir.path(), "26900\n", "65800\n");
        let reading = sensor(dir.path(), SensorModel::Dht22).sample(Utc::now());
        assert_eq!(reading.quality, Quality::Ok);
        assert_eq!(reading.temperature_c, Some(26.9));
        assert_eq!(reading.humidity_pct, Some(65.8));
    }

    #[test]
    fn negative_temperature_reads() {
        let dir = tempfile::tempdir().unwrap();
        write_values(dir.path(), "-10100\n", "40000\n");
        let reading = sensor(dir.path(), SensorModel::Dht22).sample(Utc::now());
        assert_eq!(reading.temperature_c, Some(-10.1));
    }

    #[test]
    fn dht11_range_rejects_negative() {
        let dir = tempfile::tempdir().unwrap();
        write_values(dir.path(), "-1000\n", "40000\n");
        let reading = sensor(dir.path(), SensorModel::Dht11).sample(Utc::now());
        assert_eq!(reading.quality, Quality::OutOfRange);
        assert_eq!(reading.temperature_c, None);
    }

    #[test]
    fn missing_device_is_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let reading =
            sensor(&dir.path().join("iio:device9"), SensorModel::Dht22).sample(Utc::now());
        assert_eq!(reading.quality, Quality::Timeout);
        assert_eq!(reading.temperature_c, None);
    }

    #[test]
    fn garbled_value_is_checksum_fault() {
        let dir = tempfile::tempdir().unwrap();
        write_values(dir.path(), "abc\n", "40000\n");
        let reading = sensor(dir.path(), SensorModel::Dht22).sample(Utc::now());
        assert_eq!(reading.quality, Quality::Checksum);
    }

    #[test]
    fn kernel_errors_map_to_quality() {
        let eio = io::Error::from_raw_os_error(EIO);
        let timed_out = io::Error::from_raw_os_error(ETIMEDOUT);
        let missing = io::Error::from(io::ErrorKind::NotFound);
        assert_eq!(classify(&eio), (Quality::Checksum, true));
        assert_eq!(classify(&timed_out), (Quality::Timeout, true));
        assert_eq!(classify(&missing), (Quality::Timeout, false));
    }

    #[test]
    fn never_faster_than_two_seconds() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            sensor(dir.path(), SensorModel::Dht22).min_interval(),
            Duration::from_secs(2)
        );
    }
}
