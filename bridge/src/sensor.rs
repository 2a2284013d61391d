//! Per-sensor state: duplicate and order checks, the recent readings window
//! of each metric, and the state machine of every rule. Pure, so the
//! pipeline persists it as one JSON document per sensor.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Utc};
use floorwatch_protocol::{Event, IncidentData, Reading, WindowPoint};
use serde::{Deserialize, Serialize};

use crate::rules::{evaluate, Metric, Rule, RuleState, Sample, Subject};

/// Readings kept per metric for the window sent with each event.
pub const WINDOW_LEN: usize = 30;

/// Result of processing one reading.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Same sequence number as a reading already processed.
    Duplicate,
    /// Older than the newest evaluated reading of the sensor; not evaluated.
    OutOfOrder,
    /// Evaluated by every rule; the events of any transitions.
    Evaluated(Vec<Event<IncidentData>>),
}

/// Persisted state of one sensor.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SensorState {
    /// Sequence number of the newest reading that carried one.
    pub last_seq: Option<u64>,
    /// Sensor time of the newest evaluated reading.
    pub last_time: Option<DateTime<Utc>>,
    /// Recent values per metric, oldest first.
    #[serde(default)]
    pub windows: BTreeMap<Metric, VecDeque<WindowPoint>>,
    /// State per rule id.
    #[serde(default)]
    pub rules: BTreeMap<String, RuleState>,
}

impl SensorState {
    /// Processes one reading of this sensor through `rules`.
    ///
    /// A reading is a duplicate when its `seq` equals the last one, or is
    /// lower while its time is not newer (a redelivery). A lower `seq` with a
    /// newer time is taken as a restarted edge agent and processed.
    pub fn observe(
        &mut self,
        rules: &[Rule],
        reading: &Reading,
        mut new_incident_id: impl FnMut() -> String,
    ) -> Outcome {
        let not_newer = self.last_time.is_some_and(|last| reading.time <= last);
        if let (Some(seq), Some(last_seq)) = (reading.seq, self.last_seq) {
            if seq == last_seq || (seq < last_seq && not_newer) {
                return Outcome::Duplicate;
            }
        }
        if reading.seq.is_some() {
            self.last_seq = reading.seq;
        }
        if self.last_time.is_some_and(|last| reading.time < last) {
            return Outcome::OutOfOrder;
        }
        self.last_time = Some(reading.time);
        if !reading.quality.is_ok() {
            return Outcome::Evaluated(Vec::new());
        }

        let mut events = Vec::new();
        for metric in [Metric::Temperature, Metric::Humidity] {
            let Some(value) = metric.value_of(reading) else {
                continue;
            };
            let window = self.windows.entry(metric).or_default();
            if window.len() == WINDOW_LEN {
                window.pop_front();
            }
            window.push_back(WindowPoint {
                time: reading.time,
                value,
            });
            let window = window.make_contiguous();
            let subject = Subject {
                site: &reading.site,
                sensor: &reading.sensor,
            };
            for rule in rules.iter().filter(|rule| rule.metric == metric) {
                let state = self.rules.entry(rule.id.to_string()).or_default();
                let sample = Sample {
                    value,
                    time: reading.time,
                    window,
                };
                events.extend(evaluate(rule, state, subject, sample, &mut new_incident_id));
            }
        }
        Outcome::Evaluated(events)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use floorwatch_protocol::Id;

    use super::*;
    use crate::config::default_rules;

    fn reading(seq: Option<u64>, second: i64, celsius: f64) -> Reading {
        let start: DateTime<Utc> = "2026-12-04T12:00:00Z".parse().unwrap();
        let mut reading = Reading::temperature(
            Id::parse("plant-1").unwrap(),
            Id::parse("oven-1").unwrap(),
            start + TimeDelta::seconds(second),
            celsius,
        );
        reading.seq = seq;
        reading
    }

    fn rules() -> Vec<Rule> {
        default_rules()
            .iter()
            .map(|config| Rule::from_config(config).unwrap())
            .collect()
    }

    fn observe(state: &mut SensorState, reading: &Reading) -> Outcome {
        state.observe(&rules(), reading, || "inc_test".to_owned())
    }

    #[test]
    fn repeated_seq_is_duplicate() {
        let mut state = SensorState::default();
        assert_eq!(
            observe(&mut state, &reading(Some(1), 0, 25.0)),
            Outcome::Evaluated(vec![])
        );
        assert_eq!(
            observe(&mut state, &reading(Some(1), 0, 25.0)),
            Outcome::Duplicate
        );
        assert_eq!(state.windows[&Metric::Temperature].len(), 1);
    }

    #[test]
    fn older_reading_is_out_of_order() {
        let mut state = SensorState::default();
        observe(&mut state, &reading(None, 10, 25.0));
        assert_eq!(
            observe(&mut state, &reading(None, 5, 35.0)),
            Outcome::OutOfOrder
        );
        assert_eq!(state.last_time, Some(reading(None, 10, 0.0).time));
        assert_eq!(state.windows[&Metric::Temperature].len(), 1);
    }

    #[test]
    fn restarted_sequence_with_newer_time_is_processed() {
        let mut state = SensorState::default();
        observe(&mut state, &reading(Some(500), 10, 25.0));
        assert_eq!(
            observe(&mut state, &reading(Some(1), 20, 25.0)),
            Outcome::Evaluated(vec![])
        );
        assert_eq!(state.last_seq, Some(1));
    }

    #[test]
    fn window_keeps_latest_readings() {
        let mut state = SensorState::default();
        for second in 0..(WINDOW_LEN as i64 + 5) {
            observe(&mut state, &reading(Some(second as u64), second, 25.0));
        }
        let window = &state.windows[&Metric::Temperature];
        assert_eq!(window.len(), WINDOW_LEN);
        assert_eq!(window[0].time, reading(None, 5, 0.0).time);
    }

    #[test]
    fn state_survives_json_round_trip_mid_incident() {
        let mut state = SensorState::default();
        for second in 0..3 {
            observe(&mut state, &reading(Some(second), second as i64, 31.0));
        }
        let restored: SensorState =
            serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
        assert_eq!(restored, state);
        let mut restored = restored;
        let Outcome::Evaluated(events) = observe(&mut restored, &reading(Some(3), 3, 31.0)) else {
            panic!("reading was not evaluated");
        };
        assert!(
            events.is_empty(),
            "restart reopened the incident: {events:?}"
        );
    }
}
