//! Table-driven cases for each rule setting: durations, severity levels and
//! rate of change.

use chrono::TimeDelta;
use floorwatch_protocol::EventType;

use super::*;

/// One case: a rule, readings 10 s apart, and the expected events as
/// (reading index, type, severity).
struct Case {
    name: &'static str,
    rule: RuleConfig,
    values: &'static [f64],
    expected: &'static [(usize, EventType, Severity)],
}

const OPENED: EventType = EventType::IncidentOpened;
const UPDATED: EventType = EventType::IncidentUpdated;
const RESOLVED: EventType = EventType::IncidentResolved;
const WARNING: Severity = Severity::Warning;
const CRITICAL: Severity = Severity::Critical;

fn high(change: impl FnOnce(&mut RuleConfig)) -> RuleConfig {
    let mut rule = RuleConfig::threshold("temperature-high", Condition::Above, 30.0, 29.0);
    change(&mut rule);
    rule
}

fn time(index: usize) -> DateTime<Utc> {
    let start: DateTime<Utc> = "2026-12-04T12:00:00Z".parse().unwrap();
    start + TimeDelta::seconds(index as i64 * 10)
}

fn run(rule: &Rule, values: &[f64]) -> Vec<(usize, Event<IncidentData>)> {
    let (site, sensor) = (Id::parse("plant-1").unwrap(), Id::parse("oven-1").unwrap());
    let subject = Subject {
        site: &site,
        sensor: &sensor,
    };
    let mut state = RuleState::default();
    let mut window = Vec::new();
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
        let event = evaluate(rule, &mut state, subject, sample, || format!("inc_{index}"));
        events.extend(event.map(|event| (index, event)));
    }
    events
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "oscillating around the threshold opens one incident",
            rule: high(|_| {}),
            values: &[
                29.5, 30.5, 31.0, 30.5, 29.5, 30.5, 29.8, 30.2, 29.5, 30.5, 28.0, 28.0, 28.0,
            ],
            expected: &[(3, OPENED, WARNING), (12, RESOLVED, WARNING)],
        },
        Case {
            name: "oscillating across threshold never reaching consecutive",
            rule: high(|_| {}),
            values: &[31.0, 31.0, 29.0, 31.0, 31.0, 28.0, 31.0, 31.0, 29.5],
            expected: &[],
        },
        Case {
            name: "for_secs delays the opening past consecutive",
            rule: high(|rule| {
                rule.consecutive = 1;
                rule.for_secs = 30;
            }),
            values: &[31.0, 31.0, 31.0, 31.0, 31.0],
            expected: &[(3, OPENED, WARNING)],
        },
        Case {
            name: "for_secs restarts after a cleared reading",
            rule: high(|rule| {
                rule.consecutive = 1;
                rule.for_secs = 30;
            }),
            values: &[31.0, 31.0, 31.0, 25.0, 31.0, 31.0, 31.0, 31.0],
            expected: &[(7, OPENED, WARNING)],
        },
        Case {
            name: "clear_for_secs holds the resolution",
            rule: high(|rule| {
                rule.consecutive = 1;
                rule.clear_consecutive = 1;
                rule.clear_for_secs = 20;
            }),
            values: &[31.0, 28.0, 28.0, 28.0, 28.0],
            expected: &[(0, OPENED, WARNING), (3, RESOLVED, WARNING)],
        },
        Case {
            name: "critical level escalates and de-escalates one incident",
            rule: high(|rule| {
                rule.critical_threshold = Some(35.0);
                rule.critical_clear_threshold = Some(33.0);
            }),
            values: &[
                31.0, 31.0, 31.0, 36.0, 34.0, 36.0, 32.5, 34.0, 28.0, 28.0, 28.0,
            ],
            expected: &[
                (2, OPENED, WARNING),
                (3, UPDATED, CRITICAL),
                (6, UPDATED, WARNING),
                (10, RESOLVED, WARNING),
            ],
        },
        Case {
            name: "opening past the critical level starts critical",
            rule: high(|rule| rule.critical_threshold = Some(35.0)),
            values: &[36.0, 37.0, 38.0, 28.0, 28.0, 28.0],
            expected: &[(2, OPENED, CRITICAL), (5, RESOLVED, CRITICAL)],
        },
        Case {
            name: "rate rule opens on a steep rise only",
            rule: RuleConfig {
                kind: RuleKind::Rate,
                window_secs: 30,
                min_samples: 3,
                consecutive: 2,
                clear_consecutive: 2,
                ..RuleConfig::threshold("temperature-rising", Condition::Above, 2.0, 1.0)
            },
            // 0.1 °C per 10 s is 0.6 °C/min; 0.5 °C per 10 s is 3 °C/min.
            values: &[
                20.0, 20.1, 20.2, 20.3, 20.8, 21.3, 21.8, 22.3, 22.3, 22.3, 22.3, 22.3,
            ],
            expected: &[(6, OPENED, WARNING), (10, RESOLVED, WARNING)],
        },
        Case {
            name: "rate rule waits for min_samples",
            rule: RuleConfig {
                kind: RuleKind::Rate,
                window_secs: 600,
                min_samples: 5,
                consecutive: 1,
                ..RuleConfig::threshold("temperature-falling", Condition::Below, -2.0, -1.0)
            },
            values: &[30.0, 29.0, 28.0, 27.0, 26.0],
            expected: &[(4, OPENED, WARNING)],
        },
    ]
}

#[test]
fn rule_semantics_table() {
    for case in cases() {
        crate::config::validate_rule("case", &case.rule).unwrap();
        let rule = Rule::from_config(&case.rule).unwrap();
        let events = run(&rule, case.values);
        let got: Vec<(usize, EventType, Severity)> = events
            .iter()
            .map(|(index, event)| (*index, event.event_type, event.data.severity))
            .collect();
        assert_eq!(got, case.expected, "{}", case.name);
        let ids: std::collections::BTreeSet<&str> = events
            .iter()
            .map(|(_, event)| event.data.incident_id.as_str())
            .collect();
        assert!(
            ids.len() <= 1,
            "{}: more than one incident {ids:?}",
            case.name
        );
        for (position, (_, event)) in events.iter().enumerate() {
            assert_eq!(event.data.seq, position as u64 + 1, "{}", case.name);
        }
    }
}

#[test]
fn rate_event_reports_slope_unit() {
    let rule = Rule::from_config(&RuleConfig {
        kind: RuleKind::Rate,
        window_secs: 60,
        consecutive: 1,
        ..RuleConfig::threshold("temperature-rising", Condition::Above, 2.0, 1.0)
    })
    .unwrap();
    let events = run(&rule, &[20.0, 20.5, 21.0]);
    let (_, opened) = &events[0];
    assert_eq!(opened.data.unit, "°C/min");
    assert!(
        (opened.data.value - 3.0).abs() < 1e-9,
        "{}",
        opened.data.value
    );
    assert!(
        opened
            .data
            .reason
            .starts_with("temperature change 3 °C/min above 2 °C/min"),
        "{}",
        opened.data.reason
    );
}

#[test]
fn interrupt_breaks_pending_and_recovering_runs() {
    let rule = Rule::from_config(&high(|_| {})).unwrap();
    let (site, sensor) = (Id::parse("plant-1").unwrap(), Id::parse("oven-1").unwrap());
    let subject = Subject {
        site: &site,
        sensor: &sensor,
    };
    let mut state = RuleState::default();
    let feed = |state: &mut RuleState, index: usize, value: f64| {
        let window = [WindowPoint {
            time: time(index),
            value,
        }];
        let sample = Sample {
            value,
            time: time(index),
            window: &window,
        };
        evaluate(&rule, state, subject, sample, || "inc_1".to_owned())
    };
    feed(&mut state, 0, 31.0);
    feed(&mut state, 1, 31.0);
    state.interrupt();
    assert_eq!(state, RuleState::default());
    assert!(feed(&mut state, 2, 31.0).is_none());
    assert!(feed(&mut state, 3, 31.0).is_none());
    assert!(feed(&mut state, 4, 31.0).is_some());
    feed(&mut state, 5, 28.0);
    feed(&mut state, 6, 28.0);
    state.interrupt();
    assert_eq!(state.phase, Phase::Firing);
    assert!(feed(&mut state, 7, 28.0).is_none());
    assert!(feed(&mut state, 8, 28.0).is_none());
    let resolved = feed(&mut state, 9, 28.0).unwrap();
    assert_eq!(resolved.event_type, RESOLVED);
}
