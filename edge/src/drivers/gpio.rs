//! DHT11/DHT22 on a Raspberry Pi GPIO pin through rppal (cargo feature
//! `gpio`): the start signal is sent from user space and the frame is
//! decoded from the kernel's edge timestamps by [`super::dht_frame`].
//!
//! NOTE: switching the pin from output to input with an edge request takes
//! user-space time, so the sensor's first edges can be missed and the read
//! then fails with a timeout. The kernel's `dht11` IIO driver (kind
//! `dht_iio`) does not have this problem and is the better choice where the
//! overlay is available. This path has not been run on hardware.

use std::time::Duration;

use chrono::{DateTime, Utc};
use floorwatch_protocol::{Id, Quality, Reading};
use rppal::gpio::{Gpio, Trigger};

use super::dht_frame::{decode_pulses, frame_values, pulses_from_edges, FrameError};
use super::iio::DHT_MIN_INTERVAL;
use super::{fault_reading, measured_reading, SensorModel};
use crate::sensor::Sensor;

/// Edges in a full response: 4 for the 80 µs low and high, 80 for 40 bits,
/// and a few to spare.
const MAX_EDGES: usize = 90;

/// A gap without edges this long ends the frame.
const EDGE_TIMEOUT: Duration = Duration::from_millis(5);

/// A DHT11 or DHT22 read by bit-banging one BCM GPIO pin.
pub struct DhtGpioSensor {
    site: Id,
    sensor: Id,
    model: SensorModel,
    pin: u8,
    gpio: Option<Gpio>,
}

impl DhtGpioSensor {
    /// Creates a sensor on BCM pin `pin`. The GPIO device is opened on the
    /// first sample, so building the sensor works on any machine.
    pub fn new(site: Id, sensor: Id, model: SensorModel, pin: u8) -> Self {
        Self {
            site,
            sensor,
            model,
            pin,
            gpio: None,
        }
    }

    /// Length of the host's start signal: at least 18 ms for DHT11, and
    /// 1–10 ms for DHT22.
    fn start_signal(&self) -> Duration {
        match self.model {
            SensorModel::Dht11 => Duration::from_millis(18),
            _ => Duration::from_millis(2),
        }
    }

    /// Sends the start signal and records the edges of the response.
    fn capture(&mut self) -> Result<Vec<(Duration, bool)>, rppal::gpio::Error> {
        if self.gpio.is_none() {
            self.gpio = Some(Gpio::new()?);
        }
        let Some(gpio) = &self.gpio else {
            return Ok(Vec::new());
        };
        let mut output = gpio.get(self.pin)?.into_output_low();
        output.set_reset_on_drop(false);
        std::thread::sleep(self.start_signal());
        drop(output);

        let mut input = gpio.get(self.pin)?.into_input_pullup();
        input.set_interrupt(Trigger::Both, None)?;
        let mut edges = Vec::with_capacity(MAX_EDGES);
        while edges.len() < MAX_EDGES {
            match input.poll_interrupt(false, Some(EDGE_TIMEOUT))? {
                Some(event) => edges.push((event.timestamp, event.trigger == Trigger::RisingEdge)),
                None => break,
            }
        }
        input.clear_interrupt()?;
        Ok(edges)
    }
}

impl Sensor for DhtGpioSensor {
    fn site(&self) -> &Id {
        &self.site
    }

    fn sensor(&self) -> &Id {
        &self.sensor
    }

    fn sample(&mut self, now: DateTime<Utc>) -> Reading {
        let edges = match self.capture() {
            Ok(edges) => edges,
            Err(error) => {
                tracing::warn!(pin = self.pin, %error, "GPIO access failed");
                return fault_reading((&self.site, &self.sensor), now, Quality::Timeout);
            }
        };
        let ids = (&self.site, &self.sensor);
        match decode_pulses(&pulses_from_edges(&edges)) {
            Ok(bytes) => {
                let (celsius, humidity) = frame_values(bytes, self.model);
                measured_reading(ids, now, self.model, celsius, Some(humidity))
            }
            Err(FrameError::Checksum { .. }) => fault_reading(ids, now, Quality::Checksum),
            Err(error) => {
                tracing::debug!(pin = self.pin, %error, "DHT frame incomplete");
                fault_reading(ids, now, Quality::Timeout)
            }
        }
    }

    fn min_interval(&self) -> Duration {
        DHT_MIN_INTERVAL
    }
}
