//! The incident events a rule sends: opened, updated (severity change or
//! reminder) and resolved, with their reasons in words.

use chrono::{DateTime, TimeDelta, Utc};
use floorwatch_protocol::{Condition, Event, EventType, IncidentData, Severity, WindowPoint};

use super::{Phase, Rule, RuleState, Sample, Subject};
use crate::config::RuleKind;

use super::OpenIncident;

/// Opens an incident: moves `state` to firing and returns `incident.opened`.
pub(super) fn open(
    rule: &Rule,
    state: &mut RuleState,
    subject: Subject<'_>,
    sample: Sample<'_>,
    value: f64,
    incident_id: String,
) -> Event<IncidentData> {
    let first_breach_at = state.first_breach_at.unwrap_or(sample.time);
    let escalated = rule
        .critical
        .is_some_and(|(raise, _)| rule.is_past(value, raise));
    let incident = OpenIncident {
        incident_id,
        first_breach_at,
        opened_at: sample.time,
        last_event_seq: 1,
        escalated,
        reminders_sent: 0,
        last_reminder_at: None,
    };
    let reason = format!(
        "{} {} {} {} {}",
        observed_phrase(rule, value),
        condition_word(rule.condition),
        amount(rule, rule.threshold),
        run_phrase(rule.consecutive, rule.for_duration),
        if escalated {
            "(critical level passed)"
        } else {
            ""
        },
    );
    let event = incident_event(
        EventType::IncidentOpened,
        rule,
        &incident,
        subject,
        sample,
        value,
        reason.trim_end().to_owned(),
    );
    *state = RuleState {
        phase: Phase::Firing,
        incident: Some(incident),
        ..RuleState::default()
    };
    event
}

/// Resolves the open incident, resets `state` and returns `incident.resolved`.
pub(super) fn resolve(
    rule: &Rule,
    state: &mut RuleState,
    subject: Subject<'_>,
    sample: Sample<'_>,
    value: f64,
) -> Option<Event<IncidentData>> {
    let mut incident = state.incident.take()?;
    incident.last_event_seq += 1;
    let reason = format!(
        "{} back {} the clear threshold {} {}",
        observed_phrase(rule, value),
        normal_side(rule.condition),
        amount(rule, rule.clear_threshold),
        run_phrase(rule.clear_consecutive, rule.clear_for_duration),
    );
    let mut event = incident_event(
        EventType::IncidentResolved,
        rule,
        &incident,
        subject,
        sample,
        value,
        reason,
    );
    event.data.resolved_at = Some(sample.time);
    *state = RuleState::default();
    Some(event)
}

/// Returns `incident.updated` for an incident whose `escalated` flag was
/// just changed.
pub(super) fn severity_changed(
    rule: &Rule,
    incident: &mut OpenIncident,
    subject: Subject<'_>,
    sample: Sample<'_>,
    value: f64,
) -> Event<IncidentData> {
    incident.last_event_seq += 1;
    let (raise, clear) = rule.critical.unwrap_or((rule.threshold, rule.threshold));
    let reason = if incident.escalated {
        format!(
            "{} {} the critical threshold {}: severity is critical",
            observed_phrase(rule, value),
            condition_word(rule.condition),
            amount(rule, raise),
        )
    } else {
        format!(
            "{} back {} the critical clear threshold {}: severity is {}",
            observed_phrase(rule, value),
            normal_side(rule.condition),
            amount(rule, clear),
            rule.severity.as_str(),
        )
    };
    incident_event(
        EventType::IncidentUpdated,
        rule,
        incident,
        subject,
        sample,
        value,
        reason,
    )
}

/// Returns the `incident.updated` reminder of an incident still open at
/// `now`, and counts it in `incident`. `last` is the latest value and
/// window of the rule's metric.
pub fn reminder(
    rule: &Rule,
    incident: &mut OpenIncident,
    subject: Subject<'_>,
    now: DateTime<Utc>,
    last: (f64, &[WindowPoint]),
) -> Event<IncidentData> {
    incident.last_event_seq += 1;
    incident.reminders_sent += 1;
    incident.last_reminder_at = Some(now);
    let open_for = (now - incident.opened_at).max(TimeDelta::zero());
    let reason = format!(
        "reminder: the incident has been open for {} min",
        open_for.num_minutes()
    );
    let sample = Sample {
        value: last.0,
        time: now,
        window: last.1,
    };
    incident_event(
        EventType::IncidentUpdated,
        rule,
        incident,
        subject,
        sample,
        last.0,
        reason,
    )
}

fn incident_event(
    event_type: EventType,
    rule: &Rule,
    incident: &OpenIncident,
    subject: Subject<'_>,
    sample: Sample<'_>,
    value: f64,
    reason: String,
) -> Event<IncidentData> {
    let severity = if incident.escalated {
        Severity::Critical
    } else {
        rule.severity
    };
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
        value,
        unit: rule.unit(),
        severity,
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

/// Returns "temperature 32 °C" or "temperature change 2.5 °C/min".
fn observed_phrase(rule: &Rule, value: f64) -> String {
    match rule.kind {
        RuleKind::Threshold => format!("{} {}", rule.metric.as_str(), amount(rule, value)),
        RuleKind::Rate => format!("{} change {}", rule.metric.as_str(), amount(rule, value)),
    }
}

fn amount(rule: &Rule, value: f64) -> String {
    format!("{value} {}", rule.unit())
}

fn condition_word(condition: Condition) -> &'static str {
    match condition {
        Condition::Above => "above",
        Condition::Below => "below",
    }
}

fn normal_side(condition: Condition) -> &'static str {
    match condition {
        Condition::Above => "at or below",
        Condition::Below => "at or above",
    }
}

/// Returns "for 3 consecutive readings", with the duration when one is set.
fn run_phrase(count: u32, duration: TimeDelta) -> String {
    let readings = if count == 1 {
        "for 1 reading".to_owned()
    } else {
        format!("for {count} consecutive readings")
    };
    if duration > TimeDelta::zero() {
        format!("{readings} over at least {} s", duration.num_seconds())
    } else {
        readings
    }
}

/// Returns the `incident.resolved` event of an incident whose rule was
/// removed, changed or disabled by a configuration reload.
pub fn withdrawn(
    rule: &Rule,
    mut incident: OpenIncident,
    subject: Subject<'_>,
    time: DateTime<Utc>,
    window: &[WindowPoint],
) -> Event<IncidentData> {
    incident.last_event_seq += 1;
    // A rule only opens after evaluating a reading, so the window of its
    // metric is never empty here; the threshold stands in all the same,
    // because NaN would serialize as null and fail to parse downstream.
    let value = window.last().map_or(rule.threshold, |point| point.value);
    let sample = Sample {
        value,
        time,
        window,
    };
    let reason = format!(
        "rule {} was removed, changed or disabled by a configuration reload",
        rule.id
    );
    let mut event = incident_event(
        EventType::IncidentResolved,
        rule,
        &incident,
        subject,
        sample,
        value,
        reason,
    );
    event.data.resolved_at = Some(time);
    event
}
