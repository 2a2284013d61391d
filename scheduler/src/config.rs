//! The `[scheduler]` configuration section, its defaults and its validation.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use floorwatch_protocol::{Id, IdError, Secret, SecretError};
use serde::{Deserialize, Serialize};

use crate::assign::AssignmentPolicy;

/// Default maximum size of a webhook body: 256 KiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;

/// Smallest accepted `max_body_bytes`, so that an ordinary incident event
/// (about 1 KiB without its readings window) always fits.
pub const MIN_MAX_BODY_BYTES: usize = 4 * 1024;

/// Configuration of the scheduler (TOML section `[scheduler]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerConfig {
    /// Address the standalone command binds; `run` takes a listener instead.
    pub listen: SocketAddr,
    /// SQLite database file; its directory is created when missing.
    pub database: PathBuf,
    /// Webhook secrets (`whsec_` + base64). A delivery is accepted when it is
    /// signed with any of them, which allows rotation.
    pub secrets: Vec<String>,
    /// Maximum distance between `webhook-timestamp` and the local clock, in
    /// seconds.
    pub tolerance_secs: u64,
    /// Technician ids that tasks are assigned to.
    pub technicians: Vec<String>,
    /// Policy that picks the technician of a new task.
    pub assignment: AssignmentPolicy,
    /// Maximum webhook body size in bytes; larger bodies get 413.
    pub max_body_bytes: usize,
    /// When true, `incident.resolved` only marks the condition cleared and
    /// the task stays open until a technician completes it. When false, the
    /// task is completed on resolve.
    pub keep_open_on_resolve: bool,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            database: PathBuf::from("floorwatch-data/scheduler.db"),
            secrets: Vec::new(),
            tolerance_secs: 300,
            technicians: vec!["alex".to_owned(), "sam".to_owned()],
            assignment: AssignmentPolicy::RoundRobin,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            keep_open_on_resolve: true,
        }
    }
}

/// An invalid `[scheduler]` setting. Each message names the field, the value
/// (except for secrets) and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "scheduler.secrets is empty: add at least one webhook secret \
         (`floorwatch keys generate` makes one)"
    )]
    NoSecrets,
    #[error("scheduler.secrets[{index}] is invalid: {source}")]
    InvalidSecret { index: usize, source: SecretError },
    #[error("scheduler.technicians is empty: list at least one technician id")]
    NoTechnicians,
    #[error("scheduler.technicians[{index}] is invalid: {source}")]
    InvalidTechnician { index: usize, source: IdError },
    #[error("scheduler.technicians lists {name:?} twice: remove the duplicate")]
    DuplicateTechnician { name: String },
    #[error("scheduler.tolerance_secs is 0: use a positive number of seconds (default 300)")]
    ZeroTolerance,
    #[error(
        "scheduler.max_body_bytes is {value}: use at least {MIN_MAX_BODY_BYTES} \
         (default {DEFAULT_MAX_BODY_BYTES})"
    )]
    BodyLimitTooSmall { value: usize },
}

impl SchedulerConfig {
    /// Checks every field and returns the first problem found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.parse_secrets()?;
        self.parse_technicians()?;
        if self.tolerance_secs == 0 {
            return Err(ConfigError::ZeroTolerance);
        }
        if self.max_body_bytes < MIN_MAX_BODY_BYTES {
            return Err(ConfigError::BodyLimitTooSmall {
                value: self.max_body_bytes,
            });
        }
        Ok(())
    }

    /// Parses `secrets`, rejecting an empty list.
    pub fn parse_secrets(&self) -> Result<Vec<Secret>, ConfigError> {
        if self.secrets.is_empty() {
            return Err(ConfigError::NoSecrets);
        }
        self.secrets
            .iter()
            .enumerate()
            .map(|(index, text)| {
                Secret::parse(text).map_err(|source| ConfigError::InvalidSecret { index, source })
            })
            .collect()
    }

    /// Parses `technicians` as ids, rejecting an empty list and duplicates.
    pub fn parse_technicians(&self) -> Result<Vec<Id>, ConfigError> {
        if self.technicians.is_empty() {
            return Err(ConfigError::NoTechnicians);
        }
        let mut roster: Vec<Id> = Vec::with_capacity(self.technicians.len());
        for (index, name) in self.technicians.iter().enumerate() {
            let id = Id::parse(name)
                .map_err(|source| ConfigError::InvalidTechnician { index, source })?;
            if roster.contains(&id) {
                return Err(ConfigError::DuplicateTechnician { name: name.clone() });
            }
            roster.push(id);
        }
        Ok(roster)
    }

    /// Returns `tolerance_secs` as a duration.
    pub fn tolerance(&self) -> Duration {
        Duration::from_secs(self.tolerance_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> SchedulerConfig {
        SchedulerConfig {
            secrets: vec![Secret::generate().expose()],
            ..SchedulerConfig::default()
        }
    }

    #[test]
    fn defaults_and_secret_requirement() {
        let config = SchedulerConfig::default();
        assert_eq!(config.technicians, ["alex", "sam"]);
        assert_eq!(config.assignment, AssignmentPolicy::RoundRobin);
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert!(config.keep_open_on_resolve);
        assert_eq!(config.validate(), Err(ConfigError::NoSecrets));
        assert_eq!(valid().validate(), Ok(()));
    }

    #[test]
    fn toml_like_input_deserializes() {
        let json = r#"{"secrets": ["whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"],
                       "technicians": ["ana"], "assignment": "random"}"#;
        let config: SchedulerConfig = serde_json::from_str(json).unwrap();
        assert_eq!(config.assignment, AssignmentPolicy::Random);
        assert_eq!(config.tolerance_secs, 300);
        assert_eq!(config.validate(), Ok(()));
        assert!(serde_json::from_str::<SchedulerConfig>(r#"{"secret": []}"#).is_err());
    }

    #[test]
    fn invalid_technician_is_named() {
        let mut config = valid();
        config.technicians = vec!["alex".into(), "sam smith".into()];
        let error = config.validate().unwrap_err();
        assert!(matches!(
            error,
            ConfigError::InvalidTechnician { index: 1, .. }
        ));
        let message = error.to_string();
        assert!(message.contains("scheduler.technicians[1]"), "{message}");
        assert!(message.contains("\"sam smith\""), "{message}");
    }

    #[test]
    fn other_fields_are_checked() {
        let mut config = valid();
        config.technicians = vec!["alex".into(), "alex".into()];
        assert!(matches!(
            config.validate(),
            Err(ConfigError::DuplicateTechnician { .. })
        ));
        config.technicians.clear();
        assert_eq!(config.validate(), Err(ConfigError::NoTechnicians));

        let mut config = valid();
        config.secrets.push("whsec_!!".into());
        assert!(matches!(
            config.validate(),
            Err(ConfigError::InvalidSecret { index: 1, .. })
        ));

        let mut config = valid();
        config.tolerance_secs = 0;
        assert_eq!(config.validate(), Err(ConfigError::ZeroTolerance));
        config.tolerance_secs = 1;
        config.max_body_bytes = 10;
        assert_eq!(
            config.validate(),
            Err(ConfigError::BodyLimitTooSmall { value: 10 })
        );
    }

    #[test]
    fn secret_error_does_not_show_the_secret() {
        let mut config = valid();
        config.secrets = vec!["whsec_AAAA".into()];
        let message = config.validate().unwrap_err().to_string();
        assert!(!message.contains("AAAA"), "{message}");
    }
}
