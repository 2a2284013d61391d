use floorwatch_protocol::EventType;

use super::*;

const FAULT: EventType = EventType::SensorFault;
const CLEARED: EventType = EventType::SensorFaultCleared;

fn time(index: usize) -> DateTime<Utc> {
    let start: DateTime<Utc> = "2026-12-04T12:00:00Z".parse().unwrap();
    start + TimeDelta::seconds(index as i64 * 10)
}

fn health(stuck_count: u32, spike_delta: f64) -> Health {
    let mut settings = HealthSettings {
        stuck_count,
        ..HealthSettings::default()
    };
    settings.temperature.spike_delta = spike_delta;
    Health::from_settings(&settings)
}

/// Runs `values` through the temperature checks and returns the fault
/// events as (index, type) and the values passed on to the rules.
fn run(health: &Health, values: &[f64]) -> (Vec<(usize, EventType)>, Vec<f64>) {
    let (site, sensor) = (Id::parse("plant-1").unwrap(), Id::parse("oven-1").unwrap());
    let subject = Subject {
        site: &site,
        sensor: &sensor,
    };
    let mut state = FaultState::default();
    let mut next = 0;
    let mut new_id = move || {
        next += 1;
        format!("inc_{next}")
    };
    let (mut events, mut healthy) = (Vec::new(), Vec::new());
    for (index, &value) in values.iter().enumerate() {
        let point = WindowPoint {
            time: time(index),
            value,
        };
        let checked = check_value(
            health,
            Metric::Temperature,
            &mut state,
            subject,
            point,
            &mut new_id,
        );
        events.extend(checked.events.iter().map(|event| (index, event.event_type)));
        healthy.extend(checked.healthy.iter().flatten().map(|point| point.value));
    }
    (events, healthy)
}

/// (name, health, values, expected events, values evaluated)
type FaultCase = (
    &'static str,
    Health,
    Vec<f64>,
    Vec<(usize, EventType)>,
    Vec<f64>,
);

#[test]
fn fault_checks_table() {
    let cases: Vec<FaultCase> = vec![
        (
            "plausible values pass",
            health(0, 0.0),
            vec![20.0, 21.0, 22.0],
            vec![],
            vec![20.0, 21.0, 22.0],
        ),
        (
            "value above the range is a fault until a plausible one",
            health(0, 0.0),
            vec![20.0, 850.0, 850.0, 21.0],
            vec![(1, FAULT), (3, CLEARED)],
            vec![20.0, 21.0],
        ),
        (
            "value below the range is a fault",
            health(0, 0.0),
            vec![-127.0, 20.0],
            vec![(0, FAULT), (1, CLEARED)],
            vec![20.0],
        ),
        (
            "stuck value is a fault until it changes",
            health(4, 0.0),
            vec![20.0, 21.5, 21.5, 21.5, 21.5, 21.5, 21.6],
            vec![(4, FAULT), (6, CLEARED)],
            vec![20.0, 21.5, 21.5, 21.5, 21.6],
        ),
        (
            "lone spike is a fault and is not evaluated",
            health(0, 5.0),
            vec![20.0, 20.1, 45.0, 20.2, 20.3],
            vec![(3, FAULT), (3, CLEARED)],
            vec![20.0, 20.1, 20.2, 20.3],
        ),
        (
            "confirmed jump is evaluated one reading late",
            health(0, 5.0),
            vec![20.0, 31.0, 31.2, 31.1],
            vec![],
            vec![20.0, 31.0, 31.2, 31.1],
        ),
        (
            "spike check off passes the spike",
            health(0, 0.0),
            vec![20.0, 45.0, 20.2],
            vec![],
            vec![20.0, 45.0, 20.2],
        ),
    ];
    for (name, health, values, expected_events, expected_healthy) in cases {
        let (events, healthy) = run(&health, &values);
        assert_eq!(events, expected_events, "{name}");
        assert_eq!(healthy, expected_healthy, "{name}");
    }
}

#[test]
fn fault_episode_keeps_its_incident_id() {
    let (site, sensor) = (Id::parse("plant-1").unwrap(), Id::parse("oven-1").unwrap());
    let subject = Subject {
        site: &site,
        sensor: &sensor,
    };
    let mut state = FaultState::default();
    let health = health(0, 0.0);
    let mut new_id = || "inc_fault".to_owned();

    let mut events = Vec::new();
    for (index, value) in [900.0, 20.0].into_iter().enumerate() {
        let point = WindowPoint {
            time: time(index),
            value,
        };
        let checked = check_value(
            &health,
            Metric::Temperature,
            &mut state,
            subject,
            point,
            &mut new_id,
        );
        events.extend(checked.events);
    }

    assert_eq!(events.len(), 2);
    assert_eq!(events[0].data.rule.as_str(), FAULT_RULE);
    assert_eq!(events[0].data.condition, Condition::Above);
    assert_eq!(events[0].data.threshold, 125.0);
    assert_eq!(events[1].data.incident_id, "inc_fault");
    assert_eq!(events[1].data.seq, 2);
    assert_eq!(events[1].data.resolved_at, Some(time(1)));
}

#[test]
fn silence_starts_after_limit() {
    let (site, sensor) = (Id::parse("plant-1").unwrap(), Id::parse("oven-1").unwrap());
    let subject = Subject {
        site: &site,
        sensor: &sensor,
    };
    // Default: 5 intervals of 60 s.
    let health = Health::from_settings(&HealthSettings::default());
    let last = time(0);
    let new_id = || "inc_silent".to_owned();
    let at_limit = last + TimeDelta::seconds(300);
    assert!(silence_started(&health, subject, last, at_limit, new_id).is_none());
    let after = at_limit + TimeDelta::seconds(1);
    let (episode, event) = silence_started(&health, subject, last, after, new_id).unwrap();
    assert_eq!(event.event_type, EventType::SensorSilent);
    assert_eq!(event.timestamp, at_limit);
    assert_eq!(event.data.threshold, 300.0);

    let cleared = silence_ended(episode, last + TimeDelta::seconds(400));
    assert_eq!(cleared.event_type, EventType::SensorSilentCleared);
    assert_eq!(cleared.data.incident_id, "inc_silent");
    assert_eq!(cleared.data.value, 400.0);

    let off = Health::from_settings(&HealthSettings {
        expected_interval_secs: 0,
        ..HealthSettings::default()
    });
    let much_later = last + TimeDelta::days(30);
    assert!(silence_started(&off, subject, last, much_later, new_id).is_none());
}
