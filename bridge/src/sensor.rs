//! Per-sensor state: duplicate and order checks, silence and fault
//! tracking, the recent readings window of each metric, and the state
//! machine of every rule. Pure, so the pipeline persists it as one JSON
//! document per sensor.
//!
//! A silent sensor, or a metric with an open fault, pauses its rules: no
//! reading is evaluated, so an open incident neither resolves nor sends
//! events, and reminders about it are held. The first reading after a
//! silence breaks every pending or recovering run ([`RuleState::interrupt`]).

mod slots;

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use floorwatch_protocol::{Event, IncidentData, Reading, WindowPoint};
use serde::{Deserialize, Serialize};

use crate::health::{check_value, silence_ended, silence_started, Episode, FaultState};
use crate::profile::Profile;
use crate::rules::{evaluate, reminder, Metric, OpenIncident, RuleState, Sample, Subject};

pub use slots::{PerMetric, RuleStates};

/// Readings kept per metric for the window sent with each event and for
/// the slope of rate rules.
pub const WINDOW_LEN: usize = 30;

/// The last [`WINDOW_LEN`] values of one metric, oldest first.
///
/// Stored in a vector of up to twice that length that drops its older half
/// when full, so adding a value copies about one value on average and the
/// recent values are always one contiguous slice. Only the recent values
/// are serialized and compared.
#[derive(Debug, Clone, Default)]
pub struct Window(Vec<WindowPoint>);

impl Window {
    /// Appends `point`, dropping values older than the last `WINDOW_LEN`.
    pub fn push(&mut self, point: WindowPoint) {
        if self.0.len() >= 2 * WINDOW_LEN {
            self.0.drain(..self.0.len() - WINDOW_LEN + 1);
        }
        self.0.push(point);
    }

    /// Returns the last `WINDOW_LEN` values, oldest first.
    pub fn recent(&self) -> &[WindowPoint] {
        &self.0[self.0.len().saturating_sub(WINDOW_LEN)..]
    }
}

impl PartialEq for Window {
    fn eq(&self, other: &Self) -> bool {
        self.recent() == other.recent()
    }
}

/// Stored form of one window point: `[nanoseconds since the Unix epoch,
/// value]`, or the event form `{"time": ..., "value": ...}` for a time
/// outside the range of 64-bit nanoseconds (and in state stored by earlier
/// versions). The sensor state is saved after every batch, and formatting
/// timestamps as text was most of the cost of saving it.
#[derive(Deserialize)]
#[serde(untagged)]
enum StoredPoint {
    Compact(i64, f64),
    Full(WindowPoint),
}

impl Serialize for Window {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let recent = self.recent();
        let mut seq = serializer.serialize_seq(Some(recent.len()))?;
        for point in recent {
            match point.time.timestamp_nanos_opt() {
                Some(nanos) => seq.serialize_element(&(nanos, point.value))?,
                None => seq.serialize_element(point)?,
            }
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let points = Vec::<StoredPoint>::deserialize(deserializer)?;
        let mut window = Window(Vec::with_capacity(2 * WINDOW_LEN));
        for point in points {
            window.push(match point {
                StoredPoint::Compact(nanos, value) => WindowPoint {
                    time: DateTime::from_timestamp_nanos(nanos),
                    value,
                },
                StoredPoint::Full(point) => point,
            });
        }
        Ok(window)
    }
}

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
///
/// Laid out for the per-reading path. Windows and fault counters are in
/// fixed per-metric slots and rule states in profile order. The rare open
/// silence and fault episodes are boxed, so the fields read on every
/// reading share a few cache lines.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SensorState {
    /// Sequence number of the newest reading that carried one.
    pub last_seq: Option<u64>,
    /// Sensor time of the newest evaluated reading.
    pub last_time: Option<DateTime<Utc>>,
    /// Recent values per metric, oldest first.
    #[serde(default)]
    pub windows: PerMetric<Window>,
    /// State per rule id.
    #[serde(default)]
    pub rules: RuleStates,
    /// The open silence episode, while the sensor is silent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silent: Option<Box<Episode>>,
    /// Fault tracking per metric.
    #[serde(default, skip_serializing_if = "PerMetric::is_default")]
    pub faults: PerMetric<FaultState>,
    /// Events of incidents opened during a silence or maintenance window,
    /// by rule id, held until the mute ends.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub held: BTreeMap<String, Vec<Event<IncidentData>>>,
    /// Bridge time at which the newest accepted reading arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_arrival: Option<DateTime<Utc>>,
}

impl SensorState {
    /// Processes one reading of this sensor through the rules and health
    /// checks of `profile`.
    ///
    /// A reading is a duplicate when its `seq` equals the last one, or is
    /// lower while its time is not newer (a redelivery). A lower `seq` with a
    /// newer time is taken as a restarted edge agent and processed.
    pub fn observe(
        &mut self,
        profile: &Profile,
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
        let subject = Subject {
            site: &reading.site,
            sensor: &reading.sensor,
        };
        let mut events = self.end_silence(profile, subject, reading.time, &mut new_incident_id);
        self.last_time = Some(reading.time);
        if !reading.quality.is_ok() {
            return Outcome::Evaluated(events);
        }

        for metric in Metric::ALL {
            let Some(value) = metric.value_of(reading) else {
                continue;
            };
            let point = WindowPoint {
                time: reading.time,
                value,
            };
            let faults = &mut self.faults[metric];
            let checked = check_value(
                &profile.health,
                metric,
                faults,
                subject,
                point,
                &mut new_incident_id,
            );
            events.extend(checked.events);
            for point in checked.healthy.into_iter().flatten() {
                self.evaluate(
                    profile,
                    metric,
                    subject,
                    point,
                    &mut new_incident_id,
                    &mut events,
                );
            }
        }
        Outcome::Evaluated(events)
    }

    /// Adds `point` to the window of `metric` and runs the metric's rules.
    fn evaluate(
        &mut self,
        profile: &Profile,
        metric: Metric,
        subject: Subject<'_>,
        point: WindowPoint,
        new_incident_id: &mut impl FnMut() -> String,
        events: &mut Vec<Event<IncidentData>>,
    ) {
        let window = &mut self.windows[metric];
        window.push(point);
        let window = window.recent();
        for (index, rule) in profile.rules.iter().enumerate() {
            if rule.metric != metric {
                continue;
            }
            let state = self.rules.entry(index, rule.id.as_str());
            let sample = Sample {
                value: point.value,
                time: point.time,
                window,
            };
            events.extend(evaluate(
                rule,
                state,
                subject,
                sample,
                &mut *new_incident_id,
            ));
        }
    }

    /// Closes the silence before a reading at `time`: the open episode, or
    /// a gap longer than the limit seen only now (a replay faster than the
    /// silence timer). Breaks the runs of every rule after a silence.
    fn end_silence(
        &mut self,
        profile: &Profile,
        subject: Subject<'_>,
        time: DateTime<Utc>,
        new_incident_id: &mut impl FnMut() -> String,
    ) -> Vec<Event<IncidentData>> {
        let mut events = Vec::new();
        let episode = match self.silent.take() {
            Some(episode) => Some(*episode),
            None => self.last_time.and_then(|last| {
                let (episode, event) =
                    silence_started(&profile.health, subject, last, time, &mut *new_incident_id)?;
                events.push(event);
                Some(episode)
            }),
        };
        if let Some(episode) = episode {
            events.push(silence_ended(episode, time));
            self.rules.values_mut().for_each(RuleState::interrupt);
        }
        events
    }

    /// Opens a silence episode when the sensor has been quiet past its
    /// limit at `clock`, and no reading of it arrived within the limit
    /// before `wall_now`, and returns its `sensor.silent` event.
    pub fn check_silence(
        &mut self,
        profile: &Profile,
        subject: Subject<'_>,
        clock: DateTime<Utc>,
        wall_now: DateTime<Utc>,
        new_incident_id: impl FnOnce() -> String,
    ) -> Option<Event<IncidentData>> {
        if self.silent.is_some() {
            return None;
        }
        // A sensor whose readings keep arriving is not silent, however old
        // their times: a replay of old data next to live sensors, or a
        // device whose clock runs behind.
        let limit = profile.health.silent_after?;
        if self
            .last_arrival
            .is_some_and(|arrived| wall_now - arrived <= limit)
        {
            return None;
        }
        let last = self.last_time?;
        let (episode, event) =
            silence_started(&profile.health, subject, last, clock, new_incident_id)?;
        self.silent = Some(Box::new(episode));
        Some(event)
    }

    /// Returns the reminders due at `clock` for the open incidents of this
    /// sensor. `delays` are the waits after opening before each reminder;
    /// the last one repeats. Held while the sensor is silent or the rule's
    /// metric has an open fault.
    pub fn due_reminders(
        &mut self,
        profile: &Profile,
        subject: Subject<'_>,
        clock: DateTime<Utc>,
        delays: &[TimeDelta],
    ) -> Vec<Event<IncidentData>> {
        let mut events = Vec::new();
        if delays.is_empty() || self.silent.is_some() {
            return events;
        }
        for rule in &profile.rules {
            let faulty = self.faults[rule.metric].fault.is_some();
            // A held incident has not been sent, so there is nothing to remind of.
            let held = self.held.contains_key(rule.id.as_str());
            let Some(incident) = self
                .rules
                .get_mut(rule.id.as_str())
                .and_then(|state| state.incident.as_mut())
            else {
                continue;
            };
            if faulty || held || clock < reminder_due(incident, delays) {
                continue;
            }
            let window = self.windows[rule.metric].recent();
            // NaN would serialize as null; see `withdrawn` for why the
            // window is not empty.
            let last = window.last().map_or(rule.threshold, |point| point.value);
            events.push(reminder(rule, incident, subject, clock, (last, window)));
        }
        events
    }
}

/// Returns when the next reminder about `incident` is due: the wait for
/// its number after the previous reminder (or the opening), the last wait
/// repeating. Counting from the previous reminder means that reminders held
/// during a silence are not sent in a burst afterwards.
pub fn reminder_due(incident: &OpenIncident, delays: &[TimeDelta]) -> DateTime<Utc> {
    let index = (incident.reminders_sent as usize).min(delays.len().saturating_sub(1));
    let delay = delays.get(index).copied().unwrap_or(TimeDelta::MAX / 2);
    incident.last_reminder_at.unwrap_or(incident.opened_at) + delay
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

    fn observe(state: &mut SensorState, reading: &Reading) -> Outcome {
        let profile = Profile::build(
            &default_rules(),
            &crate::config::HealthSettings::default(),
            std::iter::empty(),
        );
        state.observe(&profile, reading, || "inc_test".to_owned())
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
        assert_eq!(state.windows[Metric::Temperature].recent().len(), 1);
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
        assert_eq!(state.windows[Metric::Temperature].recent().len(), 1);
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
        let window = state.windows[Metric::Temperature].recent();
        assert_eq!(window.len(), WINDOW_LEN);
        assert_eq!(window[0].time, reading(None, 5, 0.0).time);
    }

    #[test]
    fn window_stored_form_round_trips() {
        let time: DateTime<Utc> = "2026-12-04T12:00:00.123456789Z".parse().unwrap();
        let mut window = Window::default();
        window.push(WindowPoint { time, value: 21.5 });
        let json = serde_json::to_string(&window).unwrap();
        assert_eq!(json, "[[1796385600123456789,21.5]]");
        assert_eq!(serde_json::from_str::<Window>(&json).unwrap(), window);
        let event_form = r#"[{"time":"2026-12-04T12:00:00.123456789Z","value":21.5}]"#;
        assert_eq!(serde_json::from_str::<Window>(event_form).unwrap(), window);
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
