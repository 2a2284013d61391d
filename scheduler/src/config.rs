//! The `[scheduler]` configuration section, its defaults and its validation.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use floorwatch_protocol::{Secret, SecretError};
use serde::{Deserialize, Serialize};

use crate::assign::{
    parse_roster, AssignmentPolicy, Roster, RosterError, ShiftConfig, TechnicianConfig,
};
use crate::auth::{ApiTokenConfig, AuthConfigError, UserConfig};

/// Default maximum size of a webhook body: 256 KiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;

/// Smallest accepted `max_body_bytes`, so that an ordinary incident event
/// (about 1 KiB without its readings window) always fits.
pub const MIN_MAX_BODY_BYTES: usize = 4 * 1024;

/// Default lifetime of a browser session: 12 hours.
pub const DEFAULT_SESSION_TTL_SECS: u64 = 12 * 3600;

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
    /// Technicians that tasks are assigned to: ids, or tables with `name`,
    /// `sites` and `skills`.
    pub technicians: Vec<TechnicianConfig>,
    /// Weekly shifts, used by the `on_shift` policy.
    pub rota: Vec<ShiftConfig>,
    /// Policy that picks the technician of a new task.
    pub assignment: AssignmentPolicy,
    /// An open task not acknowledged within this many seconds goes to the
    /// next candidate; 0 turns escalation off.
    pub escalate_after_secs: u64,
    /// Maximum webhook body size in bytes; larger bodies get 413.
    pub max_body_bytes: usize,
    /// When true, `incident.resolved` only marks the condition cleared and
    /// the task stays open until a technician completes it. When false, the
    /// task is completed on resolve.
    pub keep_open_on_resolve: bool,
    /// People who sign in on the operator page to act on tasks.
    pub users: Vec<UserConfig>,
    /// Bearer tokens for programs that act on tasks through the API.
    pub api_tokens: Vec<ApiTokenConfig>,
    /// Marks the session cookie `Secure`; set it when the page is served
    /// over HTTPS (by a proxy in front).
    pub cookie_secure: bool,
    /// Lifetime of a browser session, in seconds.
    pub session_ttl_secs: u64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            database: PathBuf::from("floorwatch-data/scheduler.db"),
            secrets: Vec::new(),
            tolerance_secs: 300,
            technicians: vec!["alex".into(), "sam".into()],
            rota: Vec::new(),
            assignment: AssignmentPolicy::RoundRobin,
            escalate_after_secs: 0,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            keep_open_on_resolve: true,
            users: Vec::new(),
            api_tokens: Vec::new(),
            cookie_secure: false,
            session_ttl_secs: DEFAULT_SESSION_TTL_SECS,
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
    #[error(transparent)]
    Roster(#[from] RosterError),
    #[error(transparent)]
    Auth(#[from] AuthConfigError),
    #[error("scheduler.tolerance_secs is 0: use a positive number of seconds (default 300)")]
    ZeroTolerance,
    #[error(
        "scheduler.session_ttl_secs is 0: use a positive number of seconds \
         (default {DEFAULT_SESSION_TTL_SECS})"
    )]
    ZeroSessionTtl,
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
        self.roster()?;
        crate::auth::Auth::new(
            &self.users,
            &self.api_tokens,
            crate::auth::Sessions::new(chrono::Duration::zero()),
            self.cookie_secure,
        )?;
        if self.tolerance_secs == 0 {
            return Err(ConfigError::ZeroTolerance);
        }
        if self.session_ttl_secs == 0 {
            return Err(ConfigError::ZeroSessionTtl);
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

    /// Parses `technicians`, `rota` and `assignment` into a roster.
    pub fn roster(&self) -> Result<Roster, ConfigError> {
        Ok(parse_roster(
            self.assignment,
            &self.technicians,
            &self.rota,
        )?)
    }

    /// Returns `tolerance_secs` as a duration.
    pub fn tolerance(&self) -> Duration {
        Duration::from_secs(self.tolerance_secs)
    }

    /// Returns `escalate_after_secs` as a duration, or `None` when
    /// escalation is off.
    pub fn escalate_after(&self) -> Option<Duration> {
        (self.escalate_after_secs > 0).then(|| Duration::from_secs(self.escalate_after_secs))
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
        assert_eq!(config.technicians, ["alex".into(), "sam".into()]);
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
            ConfigError::Roster(RosterError::InvalidId { index: 1, .. })
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
            Err(ConfigError::Roster(RosterError::DuplicateTechnician { .. }))
        ));
        config.technicians.clear();
        assert_eq!(
            config.validate(),
            Err(ConfigError::Roster(RosterError::NoTechnicians))
        );

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
        config.session_ttl_secs = 0;
        assert_eq!(config.validate(), Err(ConfigError::ZeroSessionTtl));
        config.session_ttl_secs = 1;
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

    #[test]
    fn full_section_parses_from_toml() {
        let text = r#"
            secrets = ["whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"]
            assignment = "least_loaded"
            escalate_after_secs = 600
            cookie_secure = true

            [[technicians]]
            name = "alex"
            sites = ["plant-1"]

            [[technicians]]
            name = "sam"

            [[rota]]
            technician = "sam"
            timezone = "Europe/Berlin"
            days = ["mon", "tue"]
            start = "08:00"
            end = "16:00"

            [[api_tokens]]
            name = "mes"
            token = "0123456789abcdef0123456789abcdef"
        "#;
        let config: SchedulerConfig = toml::from_str(text).unwrap();
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.assignment, AssignmentPolicy::LeastLoaded);
        assert_eq!(config.escalate_after(), Some(Duration::from_secs(600)));
        assert_eq!(config.roster().unwrap().rota.len(), 1);
        assert_eq!(SchedulerConfig::default().escalate_after(), None);
    }
}
