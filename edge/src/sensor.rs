//! The `Sensor` trait that every temperature source implements, and the
//! simulated sensor that `floorwatch up` runs when no hardware is attached.

use std::ops::RangeInclusive;
use std::time::Duration;

use chrono::{DateTime, Utc};
use floorwatch_protocol::{Id, Reading};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A source of readings for one sensor.
///
/// Each call to [`Sensor::sample`] takes one measurement and returns it as a
/// reading whose `seq` is one more than the previous reading's, starting at 1.
/// A failed measurement is still a reading, with `temperature_c` set to `None`
/// and a [`Quality`](floorwatch_protocol::Quality) that records why, so that
/// the bridge can tell a faulty sensor from a silent one.
///
/// NOTE: `sample` is synchronous. A driver that blocks on hardware for more
/// than a few milliseconds should be sampled from `spawn_blocking`.
pub trait Sensor: Send {
    /// Site the sensor belongs to.
    fn site(&self) -> &Id;

    /// Identifier of the sensor within its site.
    fn sensor(&self) -> &Id;

    /// Takes one measurement, stamped with `now` as the sensor time.
    fn sample(&mut self, now: DateTime<Utc>) -> Reading;

    /// Shortest period at which the hardware can be read; the sampling loop
    /// never samples faster than this. DHT11/DHT22 sensors need 2 s.
    fn min_interval(&self) -> Duration {
        Duration::ZERO
    }
}

/// Default temperature the simulated sensor wanders around, in °C.
pub const DEFAULT_BASE_C: f64 = 25.0;

/// Default probability that a sample starts an excursion: about one sample in
/// 120, so a sensor sampled every 2 s leaves the normal band every 4 minutes
/// on average.
pub const DEFAULT_EXCURSION_PROBABILITY: f64 = 1.0 / 120.0;

/// Largest random change of one normal sample, in °C.
const NOISE_C: f64 = 1.0;

/// Fraction of the distance to the base (or excursion target) that one sample
/// closes. By estimate, the pull keeps the random walk within ±4 °C of the
/// base (three standard deviations).
const PULL_NORMAL: f64 = 0.1;
const PULL_EXCURSION: f64 = 0.3;

/// Targets of excursions: cold ones below the 20 °C threshold of the
/// tutorial, hot ones above its 30 °C threshold.
const COLD_TARGET_C: RangeInclusive<f64> = 14.0..=18.0;
const HOT_TARGET_C: RangeInclusive<f64> = 32.0..=36.0;

/// Number of samples an excursion lasts before the value drifts back.
const EXCURSION_SAMPLES: RangeInclusive<u32> = 10..=30;

/// An excursion in progress: the value is pulled towards `target_c` for
/// `remaining` more samples.
#[derive(Debug, Clone, Copy)]
struct Excursion {
    target_c: f64,
    remaining: u32,
}

/// A simulated temperature sensor: a random walk around a base temperature
/// that now and then drifts below 20 °C or above 30 °C for 10 to 30 samples
/// and then returns.
///
/// The random generator is seeded, so the same seed gives the same series.
#[derive(Debug, Clone)]
pub struct SimulatedSensor {
    site: Id,
    sensor: Id,
    rng: StdRng,
    base_c: f64,
    excursion_probability: f64,
    temperature_c: f64,
    excursion: Option<Excursion>,
    seq: u64,
}

impl SimulatedSensor {
    /// Creates a sensor starting at [`DEFAULT_BASE_C`] with
    /// [`DEFAULT_EXCURSION_PROBABILITY`].
    pub fn new(site: Id, sensor: Id, seed: u64) -> Self {
        Self {
            site,
            sensor,
            rng: StdRng::seed_from_u64(seed),
            base_c: DEFAULT_BASE_C,
            excursion_probability: DEFAULT_EXCURSION_PROBABILITY,
            temperature_c: DEFAULT_BASE_C,
            excursion: None,
            seq: 0,
        }
    }

    /// Sets the temperature the walk returns to, in °C, and restarts the
    /// walk there.
    pub fn with_base_c(mut self, base_c: f64) -> Self {
        self.base_c = base_c;
        self.temperature_c = base_c;
        self
    }

    /// Sets the probability that a normal sample starts an excursion. Values
    /// at or below 0 disable excursions, and values at or above 1 start one
    /// after every excursion ends.
    pub fn with_excursion_probability(mut self, probability: f64) -> Self {
        self.excursion_probability = probability;
        self
    }

    /// Advances the walk by one sample and returns the new temperature.
    fn step(&mut self) -> f64 {
        match self.excursion {
            Some(mut excursion) => {
                let noise = self.rng.gen_range(-NOISE_C..=NOISE_C) / 2.0;
                self.temperature_c += (excursion.target_c - self.temperature_c) * PULL_EXCURSION;
                self.temperature_c += noise;
                excursion.remaining -= 1;
                self.excursion = (excursion.remaining > 0).then_some(excursion);
            }
            None => {
                let noise = self.rng.gen_range(-NOISE_C..=NOISE_C);
                self.temperature_c += (self.base_c - self.temperature_c) * PULL_NORMAL;
                self.temperature_c += noise;
                if self.rng.gen::<f64>() < self.excursion_probability {
                    self.excursion = Some(self.start_excursion());
                }
            }
        }
        self.temperature_c
    }

    fn start_excursion(&mut self) -> Excursion {
        let target_c = if self.rng.gen_bool(0.5) {
            self.rng.gen_range(COLD_TARGET_C)
        } else {
            self.rng.gen_range(HOT_TARGET_C)
        };
        Excursion {
            target_c,
            remaining: self.rng.gen_range(EXCURSION_SAMPLES),
        }
    }
}

impl Sensor for SimulatedSensor {
    fn site(&self) -> &Id {
        &self.site
    }

    fn sensor(&self) -> &Id {
        &self.sensor
    }

    fn sample(&mut self, now: DateTime<Utc>) -> Reading {
        let celsius = self.step();
        self.seq += 1;

        // Round to 0.01 °C to keep payloads short.
        let rounded = (celsius * 100.0).round() / 100.0;
        let mut reading =
            Reading::temperature(self.site.clone(), self.sensor.clone(), now, rounded);
        reading.seq = Some(self.seq);
        reading
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sensor(seed: u64) -> SimulatedSensor {
        SimulatedSensor::new(
            Id::parse("plant-1").unwrap(),
            Id::parse("oven-1").unwrap(),
            seed,
        )
    }

    fn series(sensor: &mut SimulatedSensor, count: usize) -> Vec<f64> {
        let now = Utc::now();
        (0..count)
            .map(|_| sensor.sample(now).temperature_c.unwrap())
            .collect()
    }

    #[test]
    fn simulated_series_has_cold_and_hot_excursions() {
        let values = series(&mut sensor(7), 2000);
        let cold = values.iter().filter(|v| **v < 20.0).count();
        let hot = values.iter().filter(|v| **v > 30.0).count();
        let normal = values.iter().filter(|v| (21.0..=29.0).contains(*v)).count();

        assert!(cold > 0, "no value below 20 °C in 2000 samples");
        assert!(hot > 0, "no value above 30 °C in 2000 samples");
        assert!(
            normal * 10 >= values.len() * 7,
            "only {normal} of 2000 values within 21–29 °C"
        );
    }

    #[test]
    fn simulated_series_depends_only_on_seed() {
        assert_eq!(series(&mut sensor(3), 200), series(&mut sensor(3), 200));
        assert_ne!(series(&mut sensor(3), 200), series(&mut sensor(4), 200));
    }

    #[test]
    fn simulated_seq_increments_from_one() {
        let mut sensor = sensor(1);
        let now = Utc::now();
        let seqs: Vec<_> = (0..5).map(|_| sensor.sample(now).seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5].map(Some));
    }

    #[test]
    fn simulated_reading_carries_ids_and_time() {
        let mut sensor = sensor(1);
        let now: DateTime<Utc> = "2026-12-04T12:00:00Z".parse().unwrap();
        let reading = sensor.sample(now);
        assert_eq!(reading.site.as_str(), "plant-1");
        assert_eq!(reading.sensor.as_str(), "oven-1");
        assert_eq!(reading.time, now);
        assert!(reading.quality.is_ok());
    }

    #[test]
    fn zero_probability_never_leaves_normal_band() {
        let mut sensor = sensor(11).with_excursion_probability(0.0);
        let values = series(&mut sensor, 5000);
        assert!(values.iter().all(|v| (19.0..=31.0).contains(v)));
    }

    #[test]
    fn base_moves_the_walk() {
        let mut sensor = sensor(5).with_base_c(-18.0).with_excursion_probability(0.0);
        let values = series(&mut sensor, 500);
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        assert!((mean + 18.0).abs() < 1.0, "mean {mean}");
    }
}
