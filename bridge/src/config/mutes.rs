//! Silences (`[[bridge.silences]]`) and recurring maintenance windows
//! (`[[bridge.maintenance]]`): times in which new incidents are evaluated
//! and recorded but not sent.

use chrono::{DateTime, NaiveTime, Utc, Weekday};
use floorwatch_protocol::Id;
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Site, sensor and rule matchers of a silence or window; `None` matches all.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Matchers<'a> {
    pub site: Option<&'a str>,
    pub sensor: Option<&'a str>,
    pub rule: Option<&'a str>,
}

impl Matchers<'_> {
    /// Returns true when every set matcher equals its value.
    pub fn matches(&self, site: &str, sensor: &str, rule: &str) -> bool {
        let equal =
            |matcher: Option<&str>, value: &str| matcher.is_none_or(|expected| expected == value);
        equal(self.site, site) && equal(self.sensor, sensor) && equal(self.rule, rule)
    }

    fn validate(&self, path: &str) -> Result<(), ConfigError> {
        for (name, value) in [
            ("site", self.site),
            ("sensor", self.sensor),
            ("rule", self.rule),
        ] {
            if let Some(value) = value {
                Id::parse(value).map_err(|error| {
                    ConfigError::new(format!("{path}.{name}"), value, error.to_string())
                })?;
            }
        }
        Ok(())
    }
}

/// A one-off silence, such as during a repair.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceConfig {
    /// Site matched; absent matches every site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// Sensor matched; absent matches every sensor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensor: Option<String>,
    /// Rule matched; absent matches every rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Start; absent means it is already in effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<DateTime<Utc>>,
    /// End, RFC 3339, such as `2026-12-05T08:00:00Z`.
    pub expires_at: DateTime<Utc>,
    /// Person who set the silence.
    pub author: String,
    /// Reason for the silence, in words.
    pub reason: String,
}

/// A weekly maintenance window in a local time zone.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceConfig {
    /// Name shown in logs.
    pub name: String,
    /// Site matched; absent matches every site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// Sensor matched; absent matches every sensor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensor: Option<String>,
    /// Rule matched; absent matches every rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// IANA time zone of `start` and `end`, such as `Europe/Berlin`.
    pub time_zone: String,
    /// Days on which the window starts, such as `["sat", "sun"]`; empty
    /// means every day.
    #[serde(default)]
    pub days: Vec<String>,
    /// Local start time, `HH:MM`.
    pub start: String,
    /// Local end time, `HH:MM`; at or before `start` means the next day.
    pub end: String,
}

impl SilenceConfig {
    /// Returns the site, sensor and rule matchers.
    pub fn matchers(&self) -> Matchers<'_> {
        Matchers {
            site: self.site.as_deref(),
            sensor: self.sensor.as_deref(),
            rule: self.rule.as_deref(),
        }
    }
}

impl MaintenanceConfig {
    /// Returns the site, sensor and rule matchers.
    pub fn matchers(&self) -> Matchers<'_> {
        Matchers {
            site: self.site.as_deref(),
            sensor: self.sensor.as_deref(),
            rule: self.rule.as_deref(),
        }
    }
}

/// Parses a `HH:MM` local time.
pub fn parse_clock_time(text: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(text, "%H:%M").ok()
}

/// Parses a weekday as written in config: `mon` to `sun`, or full names.
pub fn parse_weekday(text: &str) -> Option<Weekday> {
    text.parse().ok()
}

/// Checks silences and maintenance windows.
pub fn validate_mutes(
    silences: &[SilenceConfig],
    maintenance: &[MaintenanceConfig],
) -> Result<(), ConfigError> {
    for (index, silence) in silences.iter().enumerate() {
        let path = format!("bridge.silences[{index}]");
        silence.matchers().validate(&path)?;
        if silence
            .starts_at
            .is_some_and(|start| start >= silence.expires_at)
        {
            return Err(ConfigError::new(
                format!("{path}.expires_at"),
                silence.expires_at.to_rfc3339(),
                "set expires_at after starts_at",
            ));
        }
        for (name, value) in [("author", &silence.author), ("reason", &silence.reason)] {
            if value.trim().is_empty() {
                return Err(ConfigError::new(
                    format!("{path}.{name}"),
                    value,
                    "say who set the silence and why, so that others can judge it",
                ));
            }
        }
    }
    for (index, window) in maintenance.iter().enumerate() {
        validate_window(&format!("bridge.maintenance[{index}]"), window)?;
    }
    Ok(())
}

fn validate_window(path: &str, window: &MaintenanceConfig) -> Result<(), ConfigError> {
    window.matchers().validate(path)?;
    if window.time_zone.parse::<chrono_tz::Tz>().is_err() {
        return Err(ConfigError::new(
            format!("{path}.time_zone"),
            &window.time_zone,
            "use an IANA time zone name, such as \"Europe/Berlin\" or \"UTC\"",
        ));
    }
    for (name, value) in [("start", &window.start), ("end", &window.end)] {
        if parse_clock_time(value).is_none() {
            return Err(ConfigError::new(
                format!("{path}.{name}"),
                value,
                "use a 24-hour local time HH:MM, such as \"22:00\"",
            ));
        }
    }
    for (day_index, day) in window.days.iter().enumerate() {
        if parse_weekday(day).is_none() {
            return Err(ConfigError::new(
                format!("{path}.days[{day_index}]"),
                day,
                "use mon, tue, wed, thu, fri, sat or sun",
            ));
        }
    }
    Ok(())
}
