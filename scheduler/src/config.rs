//! The `[scheduler]` configuration section, its defaults and its validation.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use floorwatch_protocol::{PublicKey, PublicKeyError, Secret, SecretError, Verifier};
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
    /// Ed25519 public keys (`whpk_` + base64) of senders that sign with
    /// Standard Webhooks `v1a`. A delivery is accepted when one of its `v1a`
    /// signatures verifies under any of them. The matching `whsk_` signing
    /// key stays with the sender.
    pub public_keys: Vec<String>,
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
            public_keys: Vec::new(),
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
    /// Neither `secrets` nor `public_keys` lists a key, so no delivery could
    /// be verified.
    #[error(
        "scheduler.secrets and scheduler.public_keys are both empty: add a \
         webhook secret (`floorwatch keys generate` makes one) or a v1a public \
         key (`floorwatch keys generate --v1a` makes a pair)"
    )]
    NoSecrets,
    /// The message includes `reason`, which says how to fix the secret, and
    /// `source()` returns `None` so that a chain printer shows it once.
    #[error("scheduler.secrets[{index}] is invalid: {reason}")]
    InvalidSecret { index: usize, reason: SecretError },
    /// `value` is shown only when it starts with `whpk_`, because any other
    /// text there might be a secret pasted into the wrong field.
    #[error("scheduler.public_keys[{index}]{} is invalid: {reason}", shown_value(.value))]
    InvalidPublicKey {
        index: usize,
        value: Option<String>,
        reason: PublicKeyError,
    },
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
        self.parse_public_keys()?;
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

    /// Parses `secrets`. The list may be empty only when `public_keys` is
    /// not.
    pub fn parse_secrets(&self) -> Result<Vec<Secret>, ConfigError> {
        if self.secrets.is_empty() && self.public_keys.is_empty() {
            return Err(ConfigError::NoSecrets);
        }
        self.secrets
            .iter()
            .enumerate()
            .map(|(index, text)| {
                Secret::parse(text).map_err(|reason| ConfigError::InvalidSecret { index, reason })
            })
            .collect()
    }

    /// Parses `public_keys`.
    pub fn parse_public_keys(&self) -> Result<Vec<PublicKey>, ConfigError> {
        self.public_keys
            .iter()
            .enumerate()
            .map(|(index, text)| {
                PublicKey::parse(text).map_err(|reason| ConfigError::InvalidPublicKey {
                    index,
                    value: public_key_value(text),
                    reason,
                })
            })
            .collect()
    }

    /// Builds the webhook verifier from `secrets`, `public_keys` and
    /// `tolerance_secs`.
    pub fn verifier(&self) -> Result<Verifier, ConfigError> {
        Ok(Verifier::with_public_keys(
            self.parse_secrets()?,
            self.parse_public_keys()?,
            self.tolerance(),
        ))
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

/// Returns an invalid `public_keys` entry for the error message when it
/// starts with `whpk_`, cut to 80 characters.
fn public_key_value(text: &str) -> Option<String> {
    let text = text.trim();
    text.starts_with("whpk_")
        .then(|| text.chars().take(80).collect())
}

/// Formats the optional value of [`ConfigError::InvalidPublicKey`].
fn shown_value(value: &Option<String>) -> String {
    value
        .as_ref()
        .map(|value| format!(" {value:?}"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use floorwatch_protocol::SigningKey;

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
    fn public_keys_alone_are_valid() {
        let signing_key = SigningKey::generate();
        let config = SchedulerConfig {
            public_keys: vec![signing_key.public_key().to_string()],
            ..SchedulerConfig::default()
        };
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.parse_secrets(), Ok(Vec::new()));
        assert_eq!(
            config.parse_public_keys(),
            Ok(vec![signing_key.public_key()])
        );
        assert!(config.verifier().is_ok());
    }

    #[test]
    fn invalid_public_key_names_field_value_and_fix() {
        let mut config = valid();
        config.public_keys = vec![
            SigningKey::generate().public_key().to_string(),
            "whpk_AAAA".into(),
        ];
        let error = config.validate().unwrap_err();
        assert!(matches!(
            error,
            ConfigError::InvalidPublicKey {
                index: 1,
                reason: PublicKeyError::BadLength { len: 3 },
                ..
            }
        ));
        let message = error.to_string();
        assert!(message.contains("scheduler.public_keys[1]"), "{message}");
        assert!(message.contains("\"whpk_AAAA\""), "{message}");
        assert!(message.contains("32 bytes"), "{message}");
    }

    #[test]
    fn signing_key_in_public_keys_is_not_shown() {
        let signing_key = SigningKey::generate().expose();
        let secret = Secret::generate().expose();
        for text in [signing_key, secret] {
            let mut config = valid();
            config.public_keys = vec![text.clone()];
            let error = config.validate().unwrap_err();
            assert!(matches!(
                error,
                ConfigError::InvalidPublicKey {
                    index: 0,
                    value: None,
                    reason: PublicKeyError::SecretGiven { .. },
                }
            ));
            let message = error.to_string();
            let encoded = text.split_once('_').unwrap().1;
            assert!(!message.contains(encoded), "{message}");
            assert!(message.contains("whpk_"), "{message}");
        }
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
