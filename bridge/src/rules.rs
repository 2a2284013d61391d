//! The rule engine: one state machine per (site, sensor, rule) that turns a
//! stream of readings into incidents, with no I/O and no clock of its own.
//!
//! States: normal → pending (breaches seen, fewer than `consecutive`) →
//! firing (incident opened) → recovering (cleared readings seen, fewer than
//! `clear_consecutive`) → normal (incident resolved). A breach is a value
//! strictly past `threshold`; a cleared value is one at or past
//! `clear_threshold` on the normal side. Values between the two keep the
//! current state, which is the hysteresis band.

use chrono::{DateTime, Utc};
use floorwatch_protocol::{
    Condition, Event, EventType, Id, IncidentData, Reading, Severity, WindowPoint,
};
use serde::{Deserialize, Serialize};

use crate::config::RuleConfig;

/// A measured quantity a rule can watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Temperature,
    Humidity,
}

impl Metric {
    /// Parses a metric name as written in config.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "temperature" => Some(Metric::Temperature),
            "humidity" => Some(Metric::Humidity),
            _ => None,
        }
    }

    /// Returns the name used in config and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Temperature => "temperature",
            Metric::Humidity => "humidity",
        }
    }

    /// Returns the unit of the values of this metric.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::Temperature => "°C",
            Metric::Humidity => "%",
        }
    }

    /// Returns the value of this metric in `reading`, if it carries one.
    pub fn value_of(self, reading: &Reading) -> Option<f64> {
        match self {
            Metric::Temperature => reading.temperature_c,
            Metric::Humidity => reading.humidity_pct,
        }
    }

    fn id(self) -> Id {
        // Both names are fixed lowercase words, which are valid ids.
        Id::parse(self.as_str()).expect("metric names are valid ids")
    }
}

/// A validated threshold rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: Id,
    pub metric: Metric,
    pub condition: Condition,
    pub threshold: f64,
    pub clear_threshold: f64,
    pub consecutive: u32,
    pub clear_consecutive: u32,
    pub severity: Severity,
}

impl Rule {
    /// Builds a rule from its config entry, or returns `None` when the entry
    /// has an invalid id or metric (which `BridgeConfig::validate` reports).
    pub fn from_config(config: &RuleConfig) -> Option<Self> {
        Some(Self {
            id: Id::parse(&config.id).ok()?,
            metric: Metric::parse(&config.metric)?,
            condition: config.condition,
            threshold: config.threshold,
            clear_threshold: config.clear_threshold,
            consecutive: config.consecutive.max(1),
            clear_consecutive: config.clear_consecutive.max(1),
            severity: config.severity,
        })
    }

    fn is_breach(&self, value: f64) -> bool {
        match self.condition {
            Condition::Above => value > self.threshold,
            Condition::Below => value < self.threshold,
        }
    }

    fn is_cleared(&self, value: f64) -> bool {
        match self.condition {
            Condition::Above => value <= self.clear_threshold,
            Condition::Below => value >= self.clear_threshold,
        }
    }
}

/// Phase of one rule's state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    #[default]
    Normal,
    Pending,
    Firing,
    Recovering,
}

/// The open incident of a firing or recovering rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenIncident {
    pub incident_id: String,
    pub first_breach_at: DateTime<Utc>,
    pub opened_at: DateTime<Utc>,
    /// `seq` of the last event sent about this incident.
    pub last_event_seq: u64,
}

/// Persisted state of one rule for one sensor.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RuleState {
    pub phase: Phase,
    /// Consecutive breaching readings while pending.
    pub breaches: u32,
    /// Consecutive cleared readings while recovering.
    pub clears: u32,
    /// Time of the first breach of the current run.
    pub first_breach_at: Option<DateTime<Utc>>,
    pub incident: Option<OpenIncident>,
}

/// The sensor a reading belongs to.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub site: &'a Id,
    pub sensor: &'a Id,
}

/// One value of the rule's metric, with the recent window including it.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    pub value: f64,
    pub time: DateTime<Utc>,
    pub window: &'a [WindowPoint],
}

/// Advances `state` by one sample and returns the event of a transition
/// that opens or resolves an incident. `new_incident_id` is called only
/// when an incident opens.
pub fn evaluate(
    rule: &Rule,
    state: &mut RuleState,
    subject: Subject<'_>,
    sample: Sample<'_>,
    new_incident_id: impl FnOnce() -> String,
) -> Option<Event<IncidentData>> {
    let breach = rule.is_breach(sample.value);
    let cleared = rule.is_cleared(sample.value);
    match state.phase {
        Phase::Normal | Phase::Pending if breach => {
            if state.phase == Phase::Normal {
                state.breaches = 0;
                state.first_breach_at = Some(sample.time);
            }
            state.breaches += 1;
            state.phase = Phase::Pending;
            if state.breaches >= rule.consecutive {
                return Some(open(rule, state, subject, sample, new_incident_id()));
            }
            None
        }
        Phase::Normal | Phase::Pending => {
            *state = RuleState::default();
            None
        }
        Phase::Firing | Phase::Recovering if cleared => {
            state.clears += 1;
            state.phase = Phase::Recovering;
            if state.clears >= rule.clear_consecutive {
                return resolve(rule, state, subject, sample);
            }
            None
        }
        Phase::Firing | Phase::Recovering => {
            state.clears = 0;
            state.phase = Phase::Firing;
            None
        }
    }
}

fn open(
    rule: &Rule,
    state: &mut RuleState,
    subject: Subject<'_>,
    sample: Sample<'_>,
    incident_id: String,
) -> Event<IncidentData> {
    let first_breach_at = state.first_breach_at.unwrap_or(sample.time);
    let incident = OpenIncident {
        incident_id,
        first_breach_at,
        opened_at: sample.time,
        last_event_seq: 1,
    };
    let reason = format!(
        "{} {} {unit} {} {} {unit} for {}",
        rule.metric.as_str(),
        sample.value,
        condition_word(rule.condition),
        rule.threshold,
        readings_phrase(rule.consecutive),
        unit = rule.metric.unit(),
    );
    let event = incident_event(
        EventType::IncidentOpened,
        rule,
        &incident,
        subject,
        sample,
        reason,
    );
    *state = RuleState {
        phase: Phase::Firing,
        incident: Some(incident),
        ..RuleState::default()
    };
    event
}

fn resolve(
    rule: &Rule,
    state: &mut RuleState,
    subject: Subject<'_>,
    sample: Sample<'_>,
) -> Option<Event<IncidentData>> {
    let mut incident = state.incident.take()?;
    incident.last_event_seq += 1;
    let side = match rule.condition {
        Condition::Above => "at or below",
        Condition::Below => "at or above",
    };
    let reason = format!(
        "{} {} {unit} back {side} the clear threshold {} {unit} for {}",
        rule.metric.as_str(),
        sample.value,
        rule.clear_threshold,
        readings_phrase(rule.clear_consecutive),
        unit = rule.metric.unit(),
    );
    let mut event = incident_event(
        EventType::IncidentResolved,
        rule,
        &incident,
        subject,
        sample,
        reason,
    );
    event.data.resolved_at = Some(sample.time);
    *state = RuleState::default();
    Some(event)
}

fn incident_event(
    event_type: EventType,
    rule: &Rule,
    incident: &OpenIncident,
    subject: Subject<'_>,
    sample: Sample<'_>,
    reason: String,
) -> Event<IncidentData> {
    let data = IncidentData {
        incident_id: incident.incident_id.clone(),
        seq: incident.last_event_seq,
        site: subject.site.clone(),
        sensor: subject.sensor.clone(),
        metric: rule.metric.id(),
        rule: rule.id.clone(),
        condition: rule.condition,
        threshold: rule.threshold,
        clear_threshold: rule.clear_threshold,
        value: sample.value,
        unit: rule.metric.unit().to_owned(),
        severity: rule.severity,
        first_breach_at: incident.first_breach_at,
        opened_at: incident.opened_at,
        resolved_at: None,
        reason,
        window: sample.window.to_vec(),
    };
    Event {
        event_type,
        timestamp: sample.time,
        data,
    }
}

fn condition_word(condition: Condition) -> &'static str {
    match condition {
        Condition::Above => "above",
        Condition::Below => "below",
    }
}

fn readings_phrase(count: u32) -> String {
    if count == 1 {
        "1 reading".to_owned()
    } else {
        format!("{count} consecutive readings")
    }
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
