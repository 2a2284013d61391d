//! The rule engine: one state machine per (site, sensor, rule) that turns a
//! stream of readings into incidents, with no I/O and no clock of its own.
//!
//! States: normal → pending (breaches seen, fewer than `consecutive` or for
//! less than `for_secs`) → firing (incident opened) → recovering (cleared
//! readings seen, fewer than `clear_consecutive` or for less than
//! `clear_for_secs`) → normal (incident resolved). A breach is a value
//! strictly past `threshold`; a cleared value is one at or past
//! `clear_threshold` on the normal side. Values between the two keep the
//! current state, which is the hysteresis band. While firing, a value past
//! `critical_threshold` escalates the incident to critical and a value back
//! at `critical_clear_threshold` de-escalates it, each with one
//! `incident.updated` event. Durations are measured on reading timestamps.

mod event;
mod slope;

use chrono::{DateTime, TimeDelta, Utc};
use floorwatch_protocol::{Condition, Event, Id, IncidentData, Reading, Severity, WindowPoint};
use serde::{Deserialize, Serialize};

use crate::config::{RuleConfig, RuleKind};

pub use event::{reminder, withdrawn};
pub use slope::least_squares_slope;

/// A measured quantity a rule can watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Temperature,
    Humidity,
}

impl Metric {
    /// Both metrics, in a stable order.
    pub const ALL: [Metric; 2] = [Metric::Temperature, Metric::Humidity];

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

    /// Returns the metric name as an id.
    pub fn id(self) -> Id {
        // Both names are fixed lowercase words, which are valid ids.
        Id::parse(self.as_str()).expect("metric names are valid ids")
    }
}

/// A validated rule, after the overrides of its sensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: Id,
    pub metric: Metric,
    pub kind: RuleKind,
    pub condition: Condition,
    pub threshold: f64,
    pub clear_threshold: f64,
    pub consecutive: u32,
    pub clear_consecutive: u32,
    pub for_duration: TimeDelta,
    pub clear_for_duration: TimeDelta,
    pub severity: Severity,
    /// Critical raise and clear values, when the rule has a critical level.
    pub critical: Option<(f64, f64)>,
    pub window: TimeDelta,
    pub min_samples: u32,
}

/// The fields that decide whether a rule keeps its state across a reload:
/// the state carries over only when id, metric, kind and condition are equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleIdentity {
    pub id: String,
    pub metric: Metric,
    pub kind: RuleKind,
    pub condition: Condition,
}

impl Rule {
    /// Builds a rule from its config entry, or returns `None` when the entry
    /// has an invalid id or metric (which `BridgeConfig::validate` reports).
    pub fn from_config(config: &RuleConfig) -> Option<Self> {
        let hysteresis = config.threshold - config.clear_threshold;
        let critical = config.critical_threshold.map(|raise| {
            let clear = config
                .critical_clear_threshold
                .unwrap_or(raise - hysteresis);
            (raise, clear)
        });
        Some(Self {
            id: Id::parse(&config.id).ok()?,
            metric: Metric::parse(&config.metric)?,
            kind: config.kind,
            condition: config.condition,
            threshold: config.threshold,
            clear_threshold: config.clear_threshold,
            consecutive: config.consecutive.max(1),
            clear_consecutive: config.clear_consecutive.max(1),
            for_duration: seconds(config.for_secs),
            clear_for_duration: seconds(config.clear_for_secs),
            severity: config.severity,
            critical,
            window: seconds(config.window_secs),
            min_samples: config.min_samples.max(2),
        })
    }

    /// Returns the identity of the rule's configuration.
    pub fn identity(config: &RuleConfig) -> RuleIdentity {
        RuleIdentity {
            id: config.id.clone(),
            metric: Metric::parse(&config.metric).unwrap_or(Metric::Temperature),
            kind: config.kind,
            condition: config.condition,
        }
    }

    /// Returns true when `value` is strictly past `limit` on the abnormal side.
    fn is_past(&self, value: f64, limit: f64) -> bool {
        match self.condition {
            Condition::Above => value > limit,
            Condition::Below => value < limit,
        }
    }

    /// Returns true when `value` is at `limit` or on its normal side.
    fn is_back(&self, value: f64, limit: f64) -> bool {
        !self.is_past(value, limit)
    }

    /// Returns the value the rule compares: the reading, or the slope of the
    /// window for a rate rule (`None` while the window is too short).
    fn observed(&self, sample: Sample<'_>) -> Option<f64> {
        match self.kind {
            RuleKind::Threshold => Some(sample.value),
            RuleKind::Rate => least_squares_slope(sample.window, sample.time, self.window)
                .filter(|slope| slope.samples >= self.min_samples as usize)
                // Rounded so that reasons read 3 °C/min, not 2.9999999999999996.
                .map(|slope| (slope.per_minute * 1e6).round() / 1e6),
        }
    }

    /// Returns the unit of the compared value.
    pub fn unit(&self) -> String {
        match self.kind {
            RuleKind::Threshold => self.metric.unit().to_owned(),
            RuleKind::Rate => format!("{}/min", self.metric.unit()),
        }
    }
}

fn seconds(secs: u64) -> TimeDelta {
    TimeDelta::seconds(
        i64::try_from(secs)
            .unwrap_or(i64::MAX / 1000)
            .min(i64::MAX / 1000),
    )
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
    /// True while the incident is escalated to critical.
    #[serde(default)]
    pub escalated: bool,
    /// Reminders sent so far.
    #[serde(default)]
    pub reminders_sent: u32,
    /// Time of the latest reminder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reminder_at: Option<DateTime<Utc>>,
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
    /// Time of the first cleared reading of the current recovery.
    #[serde(default)]
    pub first_clear_at: Option<DateTime<Utc>>,
    pub incident: Option<OpenIncident>,
}

impl RuleState {
    /// Breaks the current run after a gap in the readings (a silent sensor):
    /// a pending rule starts over and a recovering one goes back to firing,
    /// so a run never counts readings from both sides of the gap.
    pub fn interrupt(&mut self) {
        match self.phase {
            Phase::Normal | Phase::Firing => {}
            Phase::Pending => *self = RuleState::default(),
            Phase::Recovering => {
                self.phase = Phase::Firing;
                self.clears = 0;
                self.first_clear_at = None;
            }
        }
    }
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
/// that opens, escalates, de-escalates or resolves an incident.
/// `new_incident_id` is called only when an incident opens.
pub fn evaluate(
    rule: &Rule,
    state: &mut RuleState,
    subject: Subject<'_>,
    sample: Sample<'_>,
    new_incident_id: impl FnOnce() -> String,
) -> Option<Event<IncidentData>> {
    let value = rule.observed(sample)?;
    let breach = rule.is_past(value, rule.threshold);
    let cleared = rule.is_back(value, rule.clear_threshold);
    match state.phase {
        Phase::Normal | Phase::Pending if breach => {
            if state.phase == Phase::Normal {
                state.breaches = 0;
                state.first_breach_at = Some(sample.time);
            }
            state.breaches += 1;
            state.phase = Phase::Pending;
            let since = state.first_breach_at.unwrap_or(sample.time);
            if state.breaches >= rule.consecutive && sample.time - since >= rule.for_duration {
                let incident_id = new_incident_id();
                return Some(event::open(
                    rule,
                    state,
                    subject,
                    sample,
                    value,
                    incident_id,
                ));
            }
            None
        }
        // Every way into normal resets the state, so only pending has a
        // run to drop; skipping the reset in normal keeps this path cheap.
        Phase::Normal => None,
        Phase::Pending => {
            *state = RuleState::default();
            None
        }
        Phase::Firing | Phase::Recovering if cleared => {
            if state.phase == Phase::Firing {
                state.clears = 0;
                state.first_clear_at = Some(sample.time);
            }
            state.clears += 1;
            state.phase = Phase::Recovering;
            let since = state.first_clear_at.unwrap_or(sample.time);
            if state.clears >= rule.clear_consecutive
                && sample.time - since >= rule.clear_for_duration
            {
                return event::resolve(rule, state, subject, sample, value);
            }
            // No de-escalation while recovering: the resolution follows.
            None
        }
        Phase::Firing | Phase::Recovering => {
            state.clears = 0;
            state.first_clear_at = None;
            state.phase = Phase::Firing;
            change_severity(rule, state, subject, sample, value)
        }
    }
}

/// Escalates or de-escalates the open incident when `value` crosses the
/// critical level, and returns the `incident.updated` event.
fn change_severity(
    rule: &Rule,
    state: &mut RuleState,
    subject: Subject<'_>,
    sample: Sample<'_>,
    value: f64,
) -> Option<Event<IncidentData>> {
    let (raise, clear) = rule.critical?;
    let incident = state.incident.as_mut()?;
    let escalated = if incident.escalated {
        !rule.is_back(value, clear)
    } else {
        rule.is_past(value, raise)
    };
    if escalated == incident.escalated {
        return None;
    }
    incident.escalated = escalated;
    Some(event::severity_changed(
        rule, incident, subject, sample, value,
    ))
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;

#[cfg(test)]
#[path = "semantics_tests.rs"]
mod semantics_tests;
