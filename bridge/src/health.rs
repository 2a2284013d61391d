//! Sensor health, pure: silence (no reading for `silent_after_intervals` ×
//! `expected_interval_secs`) and faults (a value outside the physical
//! range, the same value `stuck_count` times, a lone spike). Each episode is
//! one `sensor.silent` or `sensor.fault` event and one `.cleared` event with
//! the same `incident_id`. Both use [`IncidentData`], with the fields
//! described in docs/rules.md.

use chrono::{DateTime, TimeDelta, Utc};
use floorwatch_protocol::{Condition, Event, EventType, Id, IncidentData, Severity, WindowPoint};
use serde::{Deserialize, Serialize};

use crate::config::{HealthSettings, MetricHealth};
use crate::rules::{Metric, Subject};

/// Rule id of silence events.
pub const SILENT_RULE: &str = "sensor-silent";
/// Rule id of fault events.
pub const FAULT_RULE: &str = "sensor-fault";

/// Health checks of one sensor, after its overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// Time without readings after which the sensor is silent; `None` is off.
    pub silent_after: Option<TimeDelta>,
    pub stuck_count: u32,
    pub temperature: MetricHealth,
    pub humidity: MetricHealth,
}

impl Health {
    /// Builds the checks from settings already validated.
    pub fn from_settings(settings: &HealthSettings) -> Self {
        let interval = i64::try_from(settings.expected_interval_secs).unwrap_or(i64::MAX / 1000);
        let limit = interval.saturating_mul(i64::from(settings.silent_after_intervals));
        Self {
            silent_after: (limit > 0).then(|| TimeDelta::seconds(limit.min(i64::MAX / 1000))),
            stuck_count: settings.stuck_count,
            temperature: settings.temperature,
            humidity: settings.humidity,
        }
    }

    fn limits(&self, metric: Metric) -> MetricHealth {
        match metric {
            Metric::Temperature => self.temperature,
            Metric::Humidity => self.humidity,
        }
    }
}

/// Kind of a sensor fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    Range,
    Stuck,
    Spike,
}

/// An open silence or fault episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    pub incident_id: String,
    /// Time of the last good reading before the episode.
    pub since: DateTime<Utc>,
    pub opened_at: DateTime<Utc>,
    /// The data of the opening event, repeated in the cleared event.
    pub data: IncidentData,
}

impl Episode {
    fn open(event: &Event<IncidentData>) -> Self {
        Self {
            incident_id: event.data.incident_id.clone(),
            since: event.data.first_breach_at,
            opened_at: event.data.opened_at,
            data: event.data.clone(),
        }
    }

    /// Returns the `.cleared` event of this episode at `time`.
    fn clear(
        self,
        event_type: EventType,
        time: DateTime<Utc>,
        reason: String,
    ) -> Event<IncidentData> {
        let mut data = self.data;
        data.seq += 1;
        data.resolved_at = Some(time);
        data.reason = reason;
        Event {
            event_type,
            timestamp: time,
            data,
        }
    }
}

/// Fault tracking of one metric of one sensor.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FaultState {
    /// The open fault, if any.
    /// Boxed: open faults are rare, and this keeps the counters read on
    /// every reading close together.
    pub fault: Option<Box<(FaultKind, Episode)>>,
    /// Last value in range, for the stuck and spike checks.
    pub last_value: Option<f64>,
    /// Identical values in a row, ending with `last_value`.
    pub repeats: u32,
    /// A reading that jumped by more than `spike_delta`, held until the next
    /// reading shows whether it was a lone spike.
    pub suspect: Option<WindowPoint>,
}

/// Result of checking one value.
#[derive(Debug, Default, PartialEq)]
pub struct Checked {
    /// Values the rules should evaluate, oldest first: none while the value
    /// is faulty or held as a suspect, two when a held jump is confirmed.
    /// An array, because this runs for every reading and rarely has two.
    pub healthy: [Option<WindowPoint>; 2],
    pub events: Vec<Event<IncidentData>>,
}

/// Checks one value of `metric` and updates `state`.
pub fn check_value(
    health: &Health,
    metric: Metric,
    state: &mut FaultState,
    subject: Subject<'_>,
    point: WindowPoint,
    new_id: &mut dyn FnMut() -> String,
) -> Checked {
    let limits = health.limits(metric);
    let mut checked = Checked::default();
    if let Some(fault) = range_fault(limits, metric, point) {
        state.suspect = None;
        open_fault(state, subject, metric, point, fault, new_id, &mut checked);
        return checked;
    }

    let released = match check_spike(limits, metric, state, subject, point, new_id) {
        Spike::Lone(events) => {
            checked.events.extend(events);
            None
        }
        Spike::Continue { before, hold: true } => {
            checked.healthy = [before, None];
            return checked;
        }
        Spike::Continue {
            before,
            hold: false,
        } => before,
    };

    if let Some(fault) = stuck_fault(health.stuck_count, metric, state, point) {
        checked.healthy = [released, None];
        open_fault(state, subject, metric, point, fault, new_id, &mut checked);
        return checked;
    }

    if let Some((_, episode)) = state.fault.take().map(|fault| *fault) {
        let reason = format!(
            "{} reads {} {} again, a plausible value",
            metric.as_str(),
            point.value,
            metric.unit()
        );
        checked
            .events
            .push(episode.clear(EventType::SensorFaultCleared, point.time, reason));
    }
    checked.healthy = [released, Some(point)];
    checked
}

/// Returns the fault of a value outside the physical range.
fn range_fault(limits: MetricHealth, metric: Metric, point: WindowPoint) -> Option<Fault> {
    if (limits.min..=limits.max).contains(&point.value) {
        return None;
    }
    let (condition, bound) = if point.value > limits.max {
        (Condition::Above, limits.max)
    } else {
        (Condition::Below, limits.min)
    };
    let reason = format!(
        "{} {} {} is outside the sensor's range {} to {}",
        metric.as_str(),
        point.value,
        metric.unit(),
        limits.min,
        limits.max
    );
    Some(Fault {
        kind: FaultKind::Range,
        condition,
        threshold: bound,
        value: point.value,
        unit: metric.unit().to_owned(),
        reason,
    })
}

/// Counts repeats of the value and returns the fault once `stuck_count`
/// identical values arrived in a row (0 turns the check off).
fn stuck_fault(
    stuck_count: u32,
    metric: Metric,
    state: &mut FaultState,
    point: WindowPoint,
) -> Option<Fault> {
    if state.last_value == Some(point.value) {
        state.repeats += 1;
    } else {
        state.repeats = 1;
    }
    state.last_value = Some(point.value);
    if stuck_count == 0 || state.repeats < stuck_count {
        return None;
    }
    Some(Fault {
        kind: FaultKind::Stuck,
        condition: Condition::Above,
        threshold: f64::from(stuck_count),
        value: f64::from(state.repeats),
        unit: "readings".to_owned(),
        reason: format!(
            "{} stuck at {} {} for {} readings",
            metric.as_str(),
            point.value,
            metric.unit(),
            state.repeats
        ),
    })
}

/// Description of a fault being opened.
struct Fault {
    kind: FaultKind,
    condition: Condition,
    threshold: f64,
    value: f64,
    unit: String,
    reason: String,
}

fn open_fault(
    state: &mut FaultState,
    subject: Subject<'_>,
    metric: Metric,
    point: WindowPoint,
    fault: Fault,
    new_id: &mut dyn FnMut() -> String,
    checked: &mut Checked,
) {
    if state.fault.is_some() {
        return;
    }
    let event = fault_event(subject, metric, point, &fault, new_id());
    state.fault = Some(Box::new((fault.kind, Episode::open(&event))));
    checked.events.push(event);
}

fn fault_event(
    subject: Subject<'_>,
    metric: Metric,
    point: WindowPoint,
    fault: &Fault,
    incident_id: String,
) -> Event<IncidentData> {
    let data = IncidentData {
        incident_id,
        seq: 1,
        site: subject.site.clone(),
        sensor: subject.sensor.clone(),
        metric: metric.id(),
        rule: rule_id(FAULT_RULE),
        condition: fault.condition,
        threshold: fault.threshold,
        clear_threshold: fault.threshold,
        value: fault.value,
        unit: fault.unit.clone(),
        severity: Severity::Warning,
        first_breach_at: point.time,
        opened_at: point.time,
        resolved_at: None,
        reason: fault.reason.clone(),
        window: vec![point],
    };
    Event {
        event_type: EventType::SensorFault,
        timestamp: point.time,
        data,
    }
}

enum Spike {
    /// The held value was a lone spike: its fault events.
    Lone(Vec<Event<IncidentData>>),
    /// `before` is a value to evaluate ahead of the current one (a confirmed
    /// jump); `hold` keeps the current value back as a new suspect.
    Continue {
        before: Option<WindowPoint>,
        hold: bool,
    },
}

fn check_spike(
    limits: MetricHealth,
    metric: Metric,
    state: &mut FaultState,
    subject: Subject<'_>,
    point: WindowPoint,
    new_id: &mut dyn FnMut() -> String,
) -> Spike {
    let delta = limits.spike_delta;
    let pass = Spike::Continue {
        before: None,
        hold: false,
    };
    if delta <= 0.0 {
        return pass;
    }
    let Some(previous) = state.last_value else {
        return pass;
    };
    let Some(suspect) = state.suspect.take() else {
        let hold = (point.value - previous).abs() > delta;
        if hold {
            state.suspect = Some(point);
        }
        return Spike::Continue { before: None, hold };
    };
    if (point.value - previous).abs() <= delta && (point.value - suspect.value).abs() > delta {
        let fault = Fault {
            kind: FaultKind::Spike,
            condition: Condition::Above,
            threshold: delta,
            value: (suspect.value - previous).abs(),
            unit: metric.unit().to_owned(),
            reason: format!(
                "{} spiked to {} {} for one reading between {} and {}",
                metric.as_str(),
                suspect.value,
                metric.unit(),
                previous,
                point.value
            ),
        };
        let opened = fault_event(subject, metric, suspect, &fault, new_id());
        let cleared = Episode::open(&opened).clear(
            EventType::SensorFaultCleared,
            point.time,
            format!(
                "the next reading, {} {}, is back in line",
                point.value,
                metric.unit()
            ),
        );
        return Spike::Lone(vec![opened, cleared]);
    }
    state.last_value = Some(suspect.value);
    state.repeats = 1;
    let hold = (point.value - suspect.value).abs() > delta;
    if hold {
        state.suspect = Some(point);
    }
    Spike::Continue {
        before: Some(suspect),
        hold,
    }
}

/// Opens a silence episode for a sensor last heard at `last_time`, when the
/// silence limit has passed by `clock`. The event time is the moment the
/// limit passed, so a replay gives the same events as live operation.
pub fn silence_started(
    health: &Health,
    subject: Subject<'_>,
    last_time: DateTime<Utc>,
    clock: DateTime<Utc>,
    new_id: impl FnOnce() -> String,
) -> Option<(Episode, Event<IncidentData>)> {
    let limit = health.silent_after?;
    let silent_at = last_time + limit;
    if clock <= silent_at {
        return None;
    }
    let data = IncidentData {
        incident_id: new_id(),
        seq: 1,
        site: subject.site.clone(),
        sensor: subject.sensor.clone(),
        metric: rule_id("reading_interval"),
        rule: rule_id(SILENT_RULE),
        condition: Condition::Above,
        threshold: limit.num_seconds() as f64,
        clear_threshold: limit.num_seconds() as f64,
        value: limit.num_seconds() as f64,
        unit: "s".to_owned(),
        severity: Severity::Warning,
        first_breach_at: last_time,
        opened_at: silent_at,
        resolved_at: None,
        reason: format!(
            "no reading for {} s since {}",
            limit.num_seconds(),
            last_time.to_rfc3339()
        ),
        window: Vec::new(),
    };
    let event = Event {
        event_type: EventType::SensorSilent,
        timestamp: silent_at,
        data,
    };
    Some((Episode::open(&event), event))
}

/// Returns the `sensor.silent.cleared` event of `episode` for a reading at
/// `time`.
pub fn silence_ended(episode: Episode, time: DateTime<Utc>) -> Event<IncidentData> {
    let gap = (time - episode.since).num_seconds();
    let mut event = episode.clear(
        EventType::SensorSilentCleared,
        time,
        format!("readings resumed after {gap} s"),
    );
    event.data.value = gap as f64;
    event
}

fn rule_id(name: &str) -> Id {
    // The names passed in are fixed ids.
    Id::parse(name).expect("fixed rule names are valid ids")
}

#[cfg(test)]
#[path = "health_tests.rs"]
mod tests;
