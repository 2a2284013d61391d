//! The retained `…/{site}/{sensor}/incident` message of each sensor: the
//! most severe of its open incidents, so that resolving one of two open
//! incidents does not blank the topic while the other is still open.

use std::collections::HashMap;

use floorwatch_protocol::{EventType, IncidentData};

/// Open incidents by incident topic.
#[derive(Debug, Default)]
pub struct OpenIncidents {
    by_topic: HashMap<String, Vec<IncidentData>>,
}

impl OpenIncidents {
    /// Applies an incident event and returns the new retained payload of
    /// `topic`: the incident to show, or empty when none is open. Returns
    /// `None` for event types that do not concern incidents.
    pub fn apply(
        &mut self,
        topic: String,
        event_type: EventType,
        data: &IncidentData,
    ) -> Option<Vec<u8>> {
        let open = self.by_topic.entry(topic.clone()).or_default();
        open.retain(|incident| incident.incident_id != data.incident_id);
        match event_type {
            EventType::IncidentOpened | EventType::IncidentUpdated => open.push(data.clone()),
            EventType::IncidentResolved => {}
            _ => return None,
        }
        let most_severe = open
            .iter()
            .max_by_key(|incident| (incident.severity, incident.opened_at));
        // Serializing plain data with string keys cannot fail.
        let payload = most_severe.map_or_else(Vec::new, |incident| {
            serde_json::to_vec(incident).expect("incident serializes")
        });
        if open.is_empty() {
            self.by_topic.remove(&topic);
        }
        Some(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use floorwatch_protocol::Severity;

    fn incident(id: &str, severity: Severity, opened_minute: u32) -> IncidentData {
        let opened = format!("2026-12-04T12:{opened_minute:02}:00Z");
        serde_json::from_value(serde_json::json!({
            "incident_id": id, "seq": 1, "site": "plant-1", "sensor": "oven-1",
            "metric": "temperature", "rule": "r", "condition": "above",
            "threshold": 30.0, "clear_threshold": 29.0, "value": 31.5, "unit": "°C",
            "severity": severity, "first_breach_at": opened, "opened_at": opened,
            "reason": "test", "window": []
        }))
        .expect("incident data")
    }

    fn shown_id(payload: &[u8]) -> String {
        let data: IncidentData = serde_json::from_slice(payload).expect("incident payload");
        data.incident_id
    }

    #[test]
    fn resolving_one_keeps_the_other() {
        let mut open = OpenIncidents::default();
        let topic = "floorwatch/plant-1/oven-1/incident".to_owned();
        let high = incident("inc_high", Severity::Warning, 0);
        let humid = incident("inc_humid", Severity::Critical, 1);
        open.apply(topic.clone(), EventType::IncidentOpened, &high);
        let both = open
            .apply(topic.clone(), EventType::IncidentOpened, &humid)
            .unwrap();
        assert_eq!(shown_id(&both), "inc_humid", "the critical one is shown");

        let left = open
            .apply(topic.clone(), EventType::IncidentResolved, &humid)
            .unwrap();
        assert_eq!(shown_id(&left), "inc_high");
        let none = open
            .apply(topic.clone(), EventType::IncidentResolved, &high)
            .unwrap();
        assert!(none.is_empty());
        assert!(open.apply(topic, EventType::SensorSilent, &high).is_none());
    }

    #[test]
    fn equal_severity_shows_newest() {
        let mut open = OpenIncidents::default();
        let topic = "t".to_owned();
        let opened = EventType::IncidentOpened;
        open.apply(
            topic.clone(),
            opened,
            &incident("inc_old", Severity::Warning, 0),
        );
        open.apply(
            topic.clone(),
            opened,
            &incident("inc_new", Severity::Warning, 5),
        );
        let updated = incident("inc_old", Severity::Warning, 0);
        let payload = open
            .apply(topic, EventType::IncidentUpdated, &updated)
            .unwrap();
        assert_eq!(shown_id(&payload), "inc_new");
    }
}
