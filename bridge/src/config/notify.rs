//! Notification settings: reminders about incidents left open,
//! `[bridge.reminders]`.

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Reminders about open incidents.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReminderSettings {
    /// Waits before each reminder, in seconds, each counted from the one
    /// before (the first from the opening); the last wait repeats. Empty
    /// sends no reminders. Reminders are held while the sensor is silent or
    /// faulty; one held reminder is sent when it reports again, and the
    /// next a full wait later.
    pub after_secs: Vec<u64>,
}

impl ReminderSettings {
    /// Returns the waits as durations.
    pub fn delays(&self) -> Vec<TimeDelta> {
        self.after_secs
            .iter()
            .map(|secs| TimeDelta::seconds(i64::try_from(*secs).unwrap_or(i64::MAX / 1000)))
            .collect()
    }

    /// Checks every wait.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (index, secs) in self.after_secs.iter().enumerate() {
            if *secs == 0 || *secs > 365 * 86_400 {
                return Err(ConfigError::new(
                    format!("bridge.reminders.after_secs[{index}]"),
                    secs,
                    "use a wait from 1 second to 1 year, such as 3600",
                ));
            }
        }
        Ok(())
    }
}
