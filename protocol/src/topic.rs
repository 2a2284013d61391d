//! The MQTT topic layout.
//!
//! - `{prefix}/{site}/{sensor}/reading`: one reading, QoS 1, not retained.
//! - `{prefix}/{site}/{sensor}/incident`: current incident state, retained.
//! - `{prefix}/{site}/{sensor}/rejected`: a rejected payload and the reason.
//! - `{prefix}/{site}/agents/{agent}/status`: `online` or `offline`, retained.

use crate::id::Id;

/// Default topic prefix.
pub const DEFAULT_PREFIX: &str = "floorwatch";

/// Builds and parses topics under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    prefix: String,
}

impl Default for Topics {
    fn default() -> Self {
        Self::new(DEFAULT_PREFIX)
    }
}

impl Topics {
    /// Creates a layout under `prefix`, which may contain `/` but no
    /// wildcards; a trailing `/` is ignored.
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.trim_end_matches('/').to_owned(),
        }
    }

    /// Returns the prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Returns the topic a sensor's readings are published on.
    pub fn reading(&self, site: &Id, sensor: &Id) -> String {
        format!("{}/{site}/{sensor}/reading", self.prefix)
    }

    /// Returns the retained incident-state topic of a sensor.
    pub fn incident(&self, site: &Id, sensor: &Id) -> String {
        format!("{}/{site}/{sensor}/incident", self.prefix)
    }

    /// Returns the topic rejected payloads of a sensor are reported on.
    pub fn rejected(&self, site: &Id, sensor: &Id) -> String {
        format!("{}/{site}/{sensor}/rejected", self.prefix)
    }

    /// Returns the retained status topic of an edge agent.
    pub fn agent_status(&self, site: &Id, agent: &Id) -> String {
        format!("{}/{site}/agents/{agent}/status", self.prefix)
    }

    /// Returns the filter matching every reading topic.
    pub fn reading_filter(&self) -> String {
        format!("{}/+/+/reading", self.prefix)
    }

    /// Splits a reading topic into its site and sensor levels.
    ///
    /// Returns `None` when the topic is not a reading topic under this prefix.
    /// The levels are returned as raw strings so that a caller can report an
    /// invalid identifier with its value.
    pub fn parse_reading<'a>(&self, topic: &'a str) -> Option<(&'a str, &'a str)> {
        let rest = topic
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix('/')?;
        let mut levels = rest.split('/');
        let site = levels.next()?;
        let sensor = levels.next()?;
        let kind = levels.next()?;
        if kind != "reading" || levels.next().is_some() {
            return None;
        }
        Some((site, sensor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Id {
        Id::parse(s).unwrap()
    }

    #[test]
    fn builds_documented_topics() {
        let topics = Topics::default();
        let (site, sensor) = (id("plant-1"), id("oven-1"));
        assert_eq!(
            topics.reading(&site, &sensor),
            "floorwatch/plant-1/oven-1/reading"
        );
        assert_eq!(
            topics.incident(&site, &sensor),
            "floorwatch/plant-1/oven-1/incident"
        );
        assert_eq!(
            topics.agent_status(&site, &id("pi-3")),
            "floorwatch/plant-1/agents/pi-3/status"
        );
        assert_eq!(topics.reading_filter(), "floorwatch/+/+/reading");
    }

    #[test]
    fn parses_reading_topics_only() {
        let topics = Topics::new("acme/fw/");
        assert_eq!(
            topics.parse_reading("acme/fw/s1/t1/reading"),
            Some(("s1", "t1"))
        );
        assert_eq!(topics.parse_reading("acme/fw/s1/t1/incident"), None);
        assert_eq!(topics.parse_reading("acme/fw/s1/t1/reading/x"), None);
        assert_eq!(topics.parse_reading("other/s1/t1/reading"), None);
        assert_eq!(topics.parse_reading("acme/fwx/s1/t1/reading"), None);
    }
}
