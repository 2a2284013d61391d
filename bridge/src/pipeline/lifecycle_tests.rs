//! The incident lifecycle through the processor and its database: silence
//! and the timer tick, restarts in the middle of a run, replayed gaps,
//! reminders and config reload.

use chrono::TimeDelta;
use floorwatch_protocol::Condition;

use super::*;
use crate::config::{OverrideConfig, RuleConfig};

const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

struct Fixture {
    _dir: tempfile::TempDir,
    config: BridgeConfig,
    stats: Arc<Stats>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut endpoint = EndpointConfig::new("http://127.0.0.1:9/hooks", SECRET);
        endpoint.events = vec!["*".to_owned()];
        let config = BridgeConfig {
            database: dir.path().join("bridge.db"),
            endpoints: vec![endpoint],
            ..BridgeConfig::default()
        };
        Self {
            _dir: dir,
            config,
            stats: Arc::default(),
        }
    }

    fn processor(&self) -> Processor {
        let store = Store::open(&self.config.database).unwrap();
        let retained = RetainedIncidents::default();
        Processor::new(store, &self.config, Arc::clone(&self.stats), retained).unwrap()
    }
}

fn start() -> DateTime<Utc> {
    "2026-03-02T08:00:00Z".parse().unwrap()
}

/// Builds a live reading `second` after the start, arriving at its own time.
fn reading(seq: u64, second: i64, celsius: f64) -> Inbound {
    let time = start() + TimeDelta::seconds(second);
    let payload = format!(
        r#"{{"seq":{seq},"time":"{}","temperature_c":{celsius}}}"#,
        time.to_rfc3339()
    );
    Inbound {
        site: "plant-1".to_owned(),
        sensor: "oven-1".to_owned(),
        payload: payload.into_bytes(),
        received_at: time,
    }
}

fn types(result: &BatchResult) -> Vec<EventType> {
    result.events.iter().map(|event| event.event_type).collect()
}

fn process(processor: &mut Processor, readings: &[(i64, f64)], first_seq: u64) -> BatchResult {
    let batch: Vec<Inbound> = readings
        .iter()
        .enumerate()
        .map(|(index, &(second, celsius))| reading(first_seq + index as u64, second, celsius))
        .collect();
    processor.process(&batch).unwrap()
}

#[test]
fn silent_sensor_holds_incident_without_pages() {
    let mut fixture = Fixture::new();
    fixture.config.reminders.after_secs = vec![60];
    let mut processor = fixture.processor();
    let opened = process(&mut processor, &[(0, 31.0), (10, 31.0), (20, 31.0)], 0);
    assert_eq!(types(&opened), [EventType::IncidentOpened]);

    // 60 s after opening a reminder is due; the sensor is still reporting.
    let wall = start() + TimeDelta::seconds(81);
    let reminder = processor.tick(wall).unwrap();
    assert_eq!(types(&reminder), [EventType::IncidentUpdated]);
    assert!(reminder.events[0].data.reason.starts_with("reminder"));

    // Silent 5 × 60 s after the last reading: one sensor.silent, no resolve.
    let silent_at = start() + TimeDelta::seconds(20 + 301);
    let silent = processor.tick(silent_at).unwrap();
    assert_eq!(types(&silent), [EventType::SensorSilent]);
    for minutes in [10, 60, 600] {
        let later = silent_at + TimeDelta::minutes(minutes);
        let held = processor.tick(later).unwrap();
        assert!(held.events.is_empty(), "{minutes} min: {:?}", types(&held));
    }

    // Readings return below the clear threshold: the silence clears first,
    // then the same incident resolves after three cleared readings.
    let back = 20 + 301 + 36_000;
    let resumed = process(
        &mut processor,
        &[(back, 25.0), (back + 10, 25.0), (back + 20, 25.0)],
        3,
    );
    assert_eq!(
        types(&resumed),
        [EventType::SensorSilentCleared, EventType::IncidentResolved]
    );
    let incident_id = &opened.events[0].data.incident_id;
    assert_eq!(&resumed.events[1].data.incident_id, incident_id);
    assert_eq!(resumed.events[1].data.seq, 3);
    let stats = fixture.stats.snapshot();
    assert_eq!(stats.incidents_opened, 1);
    assert_eq!(stats.sensors_silent, 1);
}

#[test]
fn faulty_readings_hold_incident() {
    let fixture = Fixture::new();
    let mut processor = fixture.processor();
    process(&mut processor, &[(0, 31.0), (10, 31.0), (20, 31.0)], 0);
    // A disconnected DS18B20 reads -127 °C: a fault, not a recovery.
    let faulty = process(
        &mut processor,
        &[(30, -127.0), (40, -127.0), (50, -127.0), (60, -127.0)],
        3,
    );
    assert_eq!(types(&faulty), [EventType::SensorFault]);
    let back = process(&mut processor, &[(70, 31.5)], 7);
    assert_eq!(types(&back), [EventType::SensorFaultCleared]);
    assert_eq!(fixture.stats.snapshot().incidents_resolved, 0);
}

#[test]
fn restart_in_pending_period_keeps_the_run() {
    let mut fixture = Fixture::new();
    fixture.config.rules[0].consecutive = 1;
    fixture.config.rules[0].for_secs = 60;
    let first = process(&mut fixture.processor(), &[(0, 31.0), (30, 31.0)], 0);
    assert!(first.events.is_empty());

    // A new processor on the same database, as after SIGKILL.
    let mut restarted = fixture.processor();
    let early = process(&mut restarted, &[(50, 31.0)], 2);
    assert!(early.events.is_empty(), "{:?}", types(&early));
    let opened = process(&mut restarted, &[(60, 31.0)], 3);
    assert_eq!(types(&opened), [EventType::IncidentOpened]);
    assert_eq!(opened.events[0].data.first_breach_at, start());

    let mut again = fixture.processor();
    let held = process(&mut again, &[(70, 31.0)], 4);
    assert!(held.events.is_empty(), "restart reopened the incident");
}

#[test]
fn replayed_gap_is_a_silence() {
    let fixture = Fixture::new();
    let mut processor = fixture.processor();
    let result = process(&mut processor, &[(0, 25.0), (10, 25.0), (1_000, 25.0)], 0);
    assert_eq!(
        types(&result),
        [EventType::SensorSilent, EventType::SensorSilentCleared]
    );
    assert_eq!(
        result.events[0].timestamp,
        start() + TimeDelta::seconds(310)
    );
    assert_eq!(
        result.events[1].timestamp,
        start() + TimeDelta::seconds(1_000)
    );
}

#[test]
fn replay_clock_does_not_silence_old_readings() {
    let fixture = Fixture::new();
    let mut processor = fixture.processor();
    let mut old = reading(0, 0, 25.0);
    old.received_at = start() + TimeDelta::days(4_000);
    processor.process(&[old]).unwrap();
    let wall = start() + TimeDelta::days(4_000) + TimeDelta::seconds(5);
    assert!(processor.tick(wall).unwrap().events.is_empty());
    let later = wall + TimeDelta::seconds(400);
    assert_eq!(
        types(&processor.tick(later).unwrap()),
        [EventType::SensorSilent]
    );
}

#[test]
fn old_readings_that_keep_arriving_are_not_silent() {
    let fixture = Fixture::new();
    let mut processor = fixture.processor();
    // A live sensor sets the clock to the present, while oven-1 replays
    // readings a year old, one every 10 s of bridge time.
    let now = start() + TimeDelta::days(365);
    let mut live = reading(1, 0, 25.0);
    live.sensor = "live-1".to_owned();
    live.payload = format!(
        r#"{{"seq":1,"time":"{}","temperature_c":25.0}}"#,
        now.to_rfc3339()
    )
    .into_bytes();
    live.received_at = now;
    processor.process(&[live]).unwrap();
    for step in 0..40 {
        let arrived = now + TimeDelta::seconds(10 * step);
        let mut old = reading(step as u64 + 1, 10 * step, 25.0);
        old.received_at = arrived;
        processor.process(&[old]).unwrap();
        let tick = processor.tick(arrived + TimeDelta::seconds(5)).unwrap();
        let oven_silent = tick.events.iter().any(|event| {
            event.event_type == EventType::SensorSilent && event.data.sensor.as_str() == "oven-1"
        });
        assert!(!oven_silent, "oven-1 silent at step {step}");
    }

    // Once its readings stop arriving, oven-1 falls silent like any other.
    let stopped = now + TimeDelta::seconds(390 + 301);
    let tick = processor.tick(stopped).unwrap();
    let silent: Vec<_> = tick
        .events
        .iter()
        .filter(|event| event.event_type == EventType::SensorSilent)
        .map(|event| event.data.sensor.as_str().to_owned())
        .collect();
    assert!(silent.contains(&"oven-1".to_owned()), "{silent:?}");
}

#[test]
fn reload_keeps_state_of_unchanged_rules() {
    let fixture = Fixture::new();
    let mut processor = fixture.processor();
    process(&mut processor, &[(0, 31.0), (10, 31.0), (20, 31.0)], 0);
    process(&mut processor, &[(0, 19.0), (10, 19.0)], 3);

    // Thresholds change but identities stay: the open incident and the
    // pending low run survive.
    let mut next = fixture.config.clone();
    next.rules[0].threshold = 32.0;
    next.rules[0].clear_threshold = 30.0;
    next.overrides.push(OverrideConfig {
        site: "plant-1".into(),
        rule: Some("temperature-low".into()),
        consecutive: Some(4),
        ..OverrideConfig::default()
    });
    next.validate().unwrap();
    let reloaded = processor.reload(&next, start()).unwrap();
    assert!(reloaded.events.is_empty());
    let still_open = process(&mut processor, &[(30, 30.5), (40, 30.5), (50, 30.5)], 5);
    assert!(still_open.events.is_empty(), "{:?}", types(&still_open));
}

#[test]
fn reload_resolves_incident_of_changed_rule() {
    let fixture = Fixture::new();
    let mut processor = fixture.processor();
    let opened = process(&mut processor, &[(0, 31.0), (10, 31.0), (20, 31.0)], 0);

    let mut next = fixture.config.clone();
    next.rules[0] = RuleConfig::threshold("temperature-high", Condition::Below, 10.0, 11.0);
    next.validate().unwrap();
    let reloaded = processor.reload(&next, start()).unwrap();
    assert_eq!(types(&reloaded), [EventType::IncidentResolved]);
    let resolved = &reloaded.events[0].data;
    assert_eq!(resolved.incident_id, opened.events[0].data.incident_id);
    assert!(resolved.reason.contains("reload"), "{}", resolved.reason);

    let restarted = fixture.processor();
    assert_eq!(restarted.store.open_incidents().unwrap().len(), 0);
}

fn silenced(fixture: &mut Fixture, expires_second: i64) {
    fixture.config.silences = vec![crate::config::SilenceConfig {
        site: Some("plant-1".into()),
        sensor: None,
        rule: Some("temperature-high".into()),
        starts_at: None,
        expires_at: start() + TimeDelta::seconds(expires_second),
        author: "sam".into(),
        reason: "oven door repair".into(),
    }];
    fixture.config.validate().unwrap();
}

#[test]
fn incident_open_after_silence_is_sent_then() {
    let mut fixture = Fixture::new();
    silenced(&mut fixture, 600);
    let mut processor = fixture.processor();
    let opened = process(&mut processor, &[(0, 31.0), (10, 31.0), (20, 31.0)], 0);
    assert_eq!(types(&opened), [EventType::IncidentOpened]);
    assert_eq!(opened.outbox_rows, 0, "a muted incident was sent");
    let escalated = process(&mut processor, &[(30, 31.0)], 3);
    assert!(escalated.events.is_empty());

    // Readings continue, so the sensor is not silent when the mute ends.
    process(&mut processor, &[(300, 31.0), (590, 31.0)], 4);
    let during = processor.tick(start() + TimeDelta::seconds(599)).unwrap();
    assert_eq!(during.outbox_rows, 0);
    let after = processor.tick(start() + TimeDelta::seconds(601)).unwrap();
    assert_eq!(types(&after), [EventType::IncidentOpened]);
    assert_eq!(after.outbox_rows, 1);
    assert_eq!(
        after.events[0].data.incident_id,
        opened.events[0].data.incident_id
    );
    let stats = fixture.stats.snapshot();
    assert_eq!((stats.events_held, stats.events_released), (1, 1));
}

#[test]
fn incident_resolved_inside_silence_is_never_sent() {
    let mut fixture = Fixture::new();
    silenced(&mut fixture, 600);
    let mut processor = fixture.processor();
    let readings = [
        (0, 31.0),
        (10, 31.0),
        (20, 31.0),
        (30, 25.0),
        (40, 25.0),
        (50, 25.0),
    ];
    let episode = process(&mut processor, &readings, 0);
    assert_eq!(
        types(&episode),
        [EventType::IncidentOpened, EventType::IncidentResolved]
    );
    assert_eq!(episode.outbox_rows, 0);
    process(&mut processor, &[(300, 25.0), (590, 25.0)], 6);
    let after = processor.tick(start() + TimeDelta::seconds(601)).unwrap();
    assert!(after.events.is_empty(), "{:?}", types(&after));
    // Another rule is not covered by the silence.
    let low = process(&mut processor, &[(600, 19.0), (610, 19.0), (620, 19.0)], 8);
    assert_eq!(low.outbox_rows, 1);
}

#[test]
fn reminders_follow_backoff_list() {
    let mut fixture = Fixture::new();
    fixture.config.reminders.after_secs = vec![60, 300];
    fixture.config.health.expected_interval_secs = 0;
    let mut processor = fixture.processor();
    process(&mut processor, &[(0, 31.0), (10, 31.0), (20, 31.0)], 0);

    // (seconds after the start, reminders expected at that tick)
    let ticks = [
        (79, 0),
        (80, 1),
        (81, 0),
        (379, 0),
        (380, 1),
        (680, 1),
        (681, 0),
    ];
    for (second, expected) in ticks {
        let result = processor
            .tick(start() + TimeDelta::seconds(second))
            .unwrap();
        assert_eq!(result.events.len(), expected, "tick at {second} s");
    }
    let stats = fixture.stats.snapshot();
    assert_eq!(stats.incidents_updated, 3);
}
