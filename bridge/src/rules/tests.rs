use chrono::TimeDelta;
use floorwatch_protocol::EventType;

use super::*;
use crate::config::default_rules;

fn rules() -> (Rule, Rule) {
    let defaults = default_rules();
    (
        Rule::from_config(&defaults[0]).unwrap(),
        Rule::from_config(&defaults[1]).unwrap(),
    )
}

fn time(index: usize) -> DateTime<Utc> {
    let start: DateTime<Utc> = "2026-12-04T12:00:00Z".parse().unwrap();
    start + TimeDelta::seconds(index as i64 * 10)
}

/// Runs `values` through `rule` from a fresh state and returns every event
/// with the index of the reading that caused it.
fn run(rule: &Rule, values: &[f64]) -> Vec<(usize, Event<IncidentData>)> {
    let (site, sensor) = (Id::parse("plant-1").unwrap(), Id::parse("oven-1").unwrap());
    let subject = Subject {
        site: &site,
        sensor: &sensor,
    };
    let mut state = RuleState::default();
    let mut window = Vec::new();
    let mut next_id = 0;
    let mut events = Vec::new();
    for (index, &value) in values.iter().enumerate() {
        window.push(WindowPoint {
            time: time(index),
            value,
        });
        let sample = Sample {
            value,
            time: time(index),
            window: &window,
        };
        let event = evaluate(rule, &mut state, subject, sample, || {
            next_id += 1;
            format!("inc_{next_id}")
        });
        events.extend(event.map(|event| (index, event)));
    }
    events
}

#[test]
fn one_episode_opens_and_resolves_once() {
    let (high, _) = rules();
    let values = [25.0, 31.0, 31.4, 32.0, 33.0, 31.0, 28.0, 27.5, 27.0, 26.0];
    let events = run(&high, &values);
    assert_eq!(events.len(), 2);

    let (opened_at, opened) = &events[0];
    assert_eq!(*opened_at, 3);
    assert_eq!(opened.event_type, EventType::IncidentOpened);
    assert_eq!(opened.data.seq, 1);
    assert_eq!(opened.data.first_breach_at, time(1));
    assert_eq!(opened.data.opened_at, time(3));
    assert_eq!(opened.data.value, 32.0);
    assert_eq!(opened.data.unit, "°C");
    assert_eq!(opened.data.resolved_at, None);
    assert_eq!(opened.data.window.len(), 4);
    assert_eq!(
        opened.data.reason,
        "temperature 32 °C above 30 °C for 3 consecutive readings"
    );

    let (resolved_at, resolved) = &events[1];
    assert_eq!(*resolved_at, 8);
    assert_eq!(resolved.event_type, EventType::IncidentResolved);
    assert_eq!(resolved.data.incident_id, opened.data.incident_id);
    assert_eq!(resolved.data.seq, 2);
    assert_eq!(resolved.data.opened_at, time(3));
    assert_eq!(resolved.data.resolved_at, Some(time(8)));
    assert_eq!(resolved.timestamp, time(8));
}

#[test]
fn flapping_inside_hysteresis_band_keeps_incident_open() {
    let (high, _) = rules();
    // After opening, values swing between 29.5 (inside the band) and 31.
    let mut values = vec![31.0, 31.0, 31.0];
    for _ in 0..10 {
        values.extend([29.5, 31.0, 29.2, 29.9]);
    }
    let events = run(&high, &values);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].1.event_type, EventType::IncidentOpened);
}

#[test]
fn interrupted_recovery_starts_counting_again() {
    let (high, _) = rules();
    let values = [31.0, 31.0, 31.0, 28.0, 28.0, 29.5, 28.0, 28.0, 28.0];
    let events = run(&high, &values);
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].0, 8);
}

#[test]
fn short_spike_does_not_open() {
    let (high, _) = rules();
    let events = run(&high, &[25.0, 35.0, 36.0, 25.0, 40.0, 25.0, 31.0, 31.0]);
    assert!(events.is_empty(), "{events:?}");
}

#[test]
fn threshold_itself_is_not_a_breach() {
    let (high, low) = rules();
    assert!(run(&high, &[30.0; 5]).is_empty());
    assert!(run(&low, &[20.0; 5]).is_empty());
}

#[test]
fn low_and_high_rules_are_independent() {
    let (high, low) = rules();
    let values = [19.0, 18.5, 18.0, 25.0, 21.5, 22.0, 31.0, 32.0, 33.0];
    let high_events = run(&high, &values);
    let low_events = run(&low, &values);

    assert_eq!(high_events.len(), 1);
    assert_eq!(high_events[0].0, 8);
    assert_eq!(low_events.len(), 2);
    assert_eq!(low_events[0].1.event_type, EventType::IncidentOpened);
    assert_eq!(low_events[0].1.data.rule.as_str(), "temperature-low");
    assert_eq!(
        low_events[1].1.data.reason,
        "temperature 22 °C back at or above the clear threshold 21 °C for 3 consecutive readings"
    );
}

#[test]
fn second_episode_gets_new_incident() {
    let (high, _) = rules();
    let mut values = vec![31.0, 31.0, 31.0, 28.0, 28.0, 28.0];
    values.extend_from_slice(&values.clone());
    let events = run(&high, &values);
    assert_eq!(events.len(), 4);
    assert_ne!(events[0].1.data.incident_id, events[2].1.data.incident_id);
    assert_eq!(events[2].1.data.seq, 1);
}

#[test]
fn single_reading_rule_opens_immediately() {
    let (mut high, _) = rules();
    high.consecutive = 1;
    high.clear_consecutive = 1;
    let events = run(&high, &[31.0, 28.0]);
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[0].1.data.reason,
        "temperature 31 °C above 30 °C for 1 reading"
    );
}
