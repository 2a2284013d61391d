//! Fixtures shared by the unit tests of this crate.

use chrono::{DateTime, Duration, TimeZone, Utc};
use floorwatch_protocol::{Condition, Event, EventType, Id, IncidentData, Severity};

/// Opening time of every fixture incident.
pub fn opened_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap()
}

/// Returns an `incident.*` event for sensor `oven-1` reading 31.5 °C against
/// a 30 °C threshold.
pub fn incident_event(event_type: EventType, incident_id: &str, seq: u64) -> Event<IncidentData> {
    let resolved = event_type == EventType::IncidentResolved;
    let data = IncidentData {
        incident_id: incident_id.to_owned(),
        seq,
        site: Id::parse("plant-a").unwrap(),
        sensor: Id::parse("oven-1").unwrap(),
        metric: Id::parse("temperature").unwrap(),
        rule: Id::parse("too-hot").unwrap(),
        condition: Condition::Above,
        threshold: 30.0,
        clear_threshold: 29.0,
        value: if resolved { 28.5 } else { 31.5 },
        unit: "°C".to_owned(),
        severity: Severity::Warning,
        first_breach_at: opened_at(),
        opened_at: opened_at(),
        resolved_at: resolved.then(|| opened_at() + Duration::minutes(30)),
        reason: "temperature above 30 °C".to_owned(),
        window: Vec::new(),
    };
    Event {
        event_type,
        timestamp: opened_at() + Duration::minutes(seq as i64),
        data,
    }
}
