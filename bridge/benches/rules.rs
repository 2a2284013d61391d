//! Rule evaluation per reading over 10,000 sensors: the pure per-sensor
//! step (`SensorState::observe`) with the default rules and health checks,
//! without parsing, SQLite or I/O.
//!
//! Run with `cargo bench -p floorwatch-bridge --bench rules`.

use std::hint::black_box;

use chrono::{DateTime, TimeDelta, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use floorwatch_bridge::config::{default_rules, HealthSettings};
use floorwatch_bridge::profile::Profile;
use floorwatch_bridge::sensor::{Outcome, SensorState};
use floorwatch_protocol::{Id, Reading};

const SENSORS: usize = 10_000;

/// Sensors with their state and a reading that is reused, only its time
/// and value changing from round to round.
struct Fleet {
    profile: Profile,
    sensors: Vec<(SensorState, Reading)>,
    round: i64,
    start: DateTime<Utc>,
}

impl Fleet {
    fn new() -> Self {
        let profile = Profile::build(
            &default_rules(),
            &HealthSettings::default(),
            std::iter::empty(),
        );
        let start: DateTime<Utc> = "2026-12-04T12:00:00Z".parse().expect("valid time");
        let site = Id::parse("plant-1").expect("valid id");
        let sensors = (0..SENSORS)
            .map(|index| {
                let sensor = Id::parse(&format!("sensor-{index}")).expect("valid id");
                let reading = Reading::temperature(site.clone(), sensor, start, 25.0);
                (SensorState::default(), reading)
            })
            .collect();
        Self {
            profile,
            sensors,
            round: 0,
            start,
        }
    }

    /// Feeds one reading to every sensor and returns the events raised.
    /// Values follow a slow wave per sensor that crosses both default
    /// thresholds, so incidents open and resolve during the run.
    fn round(&mut self) -> usize {
        self.round += 1;
        let time = self.start + TimeDelta::seconds(self.round * 10);
        let mut events = 0;
        for (index, (state, reading)) in self.sensors.iter_mut().enumerate() {
            let phase = (self.round as f64 / 40.0) + index as f64 * 0.618;
            reading.time = time;
            reading.temperature_c = Some(25.0 + 7.0 * phase.sin());
            if let Outcome::Evaluated(raised) =
                state.observe(&self.profile, reading, || String::from("inc_bench"))
            {
                events += raised.len();
            }
        }
        events
    }
}

fn rule_evaluation(c: &mut Criterion) {
    let mut fleet = Fleet::new();
    let mut group = c.benchmark_group("rules");
    group.throughput(Throughput::Elements(SENSORS as u64));
    group.bench_function("observe_10000_sensors", |b| {
        b.iter(|| black_box(fleet.round()));
    });
    group.finish();
}

criterion_group!(benches, rule_evaluation);
criterion_main!(benches);
