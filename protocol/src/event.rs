//! The webhook event envelope and the data of incident events.
//!
//! Bodies follow the Standard Webhooks envelope `{type, timestamp, data}`.
//! Every event about one incident carries the same `incident_id`, and `seq`
//! orders the events of that incident.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::Id;

/// Event types the bridge sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "incident.opened")]
    IncidentOpened,
    #[serde(rename = "incident.updated")]
    IncidentUpdated,
    #[serde(rename = "incident.resolved")]
    IncidentResolved,
    #[serde(rename = "sensor.silent")]
    SensorSilent,
    #[serde(rename = "sensor.silent.cleared")]
    SensorSilentCleared,
    #[serde(rename = "sensor.fault")]
    SensorFault,
    #[serde(rename = "sensor.fault.cleared")]
    SensorFaultCleared,
}

impl EventType {
    /// Every event type, in a stable order.
    pub const ALL: [EventType; 7] = [
        EventType::IncidentOpened,
        EventType::IncidentUpdated,
        EventType::IncidentResolved,
        EventType::SensorSilent,
        EventType::SensorSilentCleared,
        EventType::SensorFault,
        EventType::SensorFaultCleared,
    ];

    /// Returns the wire name, such as `incident.opened`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::IncidentOpened => "incident.opened",
            EventType::IncidentUpdated => "incident.updated",
            EventType::IncidentResolved => "incident.resolved",
            EventType::SensorSilent => "sensor.silent",
            EventType::SensorSilentCleared => "sensor.silent.cleared",
            EventType::SensorFault => "sensor.fault",
            EventType::SensorFaultCleared => "sensor.fault.cleared",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// Returns true when `pattern` selects this type. A pattern is an exact
    /// name, `*`, or a prefix followed by `.*` (`incident.*`).
    pub fn matches(self, pattern: &str) -> bool {
        let name = self.as_str();
        if pattern == "*" || pattern == name {
            return true;
        }
        match pattern.strip_suffix(".*") {
            Some(prefix) => name
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('.')),
            None => false,
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Standard Webhooks envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event<T> {
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When the event happened (not when it was sent).
    pub timestamp: DateTime<Utc>,
    pub data: T,
}

/// Direction of a threshold condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    Above,
    Below,
}

/// Severity of an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    /// Returns the wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One point of the readings window that led to an event.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WindowPoint {
    pub time: DateTime<Utc>,
    pub value: f64,
}

/// The `data` of `incident.*` events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentData {
    /// Stable for the whole episode; the receiver's key for one task.
    pub incident_id: String,
    /// Position of this event among the events of the incident, from 1.
    pub seq: u64,
    pub site: Id,
    pub sensor: Id,
    /// Measured quantity, such as `temperature`.
    pub metric: Id,
    pub rule: Id,
    pub condition: Condition,
    /// Value whose crossing raises the incident.
    pub threshold: f64,
    /// Value the reading must return past for the incident to resolve.
    pub clear_threshold: f64,
    /// The reading that caused this event.
    pub value: f64,
    /// Unit of `value` and the thresholds, such as `°C`.
    pub unit: String,
    pub severity: Severity,
    /// Time of the first reading past the threshold.
    pub first_breach_at: DateTime<Utc>,
    pub opened_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<DateTime<Utc>>,
    /// Why the event was sent, in words.
    pub reason: String,
    /// Recent readings of the sensor, oldest first.
    #[serde(default)]
    pub window: Vec<WindowPoint>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
        }
    }

    #[test]
    fn patterns_select_types() {
        assert!(EventType::IncidentOpened.matches("incident.*"));
        assert!(EventType::IncidentOpened.matches("*"));
        assert!(EventType::SensorSilent.matches("sensor.silent"));
        assert!(EventType::SensorSilentCleared.matches("sensor.silent.*"));
        assert!(!EventType::SensorSilent.matches("sensor.silent.*"));
        assert!(!EventType::SensorFault.matches("incident.*"));
        assert!(!EventType::IncidentOpened.matches("incident"));
        assert!(!EventType::IncidentOpened.matches("inc.*"));
    }
}
