//! `edge.toml`: the configuration of `floorwatch edge`, layered as the
//! embedded defaults, then a file, then `FLOORWATCH_EDGE_*` environment
//! variables, and validated before anything starts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use floorwatch_protocol::{BrokerUrl, Id};
use serde::{Deserialize, Serialize};

use super::sensors::AgentSensorConfig;
use crate::options::TlsFiles;
use crate::outbox::OutboxBounds;
use crate::publisher::{PublishError, PublisherConfig};

/// The commented default configuration, as shipped.
pub const DEFAULT_EDGE_TOML: &str = include_str!("../../edge.toml");

/// Prefix of the environment variables that override keys.
pub const ENV_PREFIX: &str = "FLOORWATCH_EDGE_";

/// Environment variables and the key each one sets.
const ENV_KEYS: &[(&str, &str)] = &[
    ("BROKER", "broker"),
    ("CLIENT_ID", "client_id"),
    ("AGENT", "agent"),
    ("SITE", "site"),
    ("TOPIC_PREFIX", "topic_prefix"),
    ("USERNAME", "username"),
    ("PASSWORD", "password"),
    ("MAX_INFLIGHT", "max_inflight"),
    ("SHUTDOWN_TIMEOUT_MS", "shutdown_timeout_ms"),
    ("TLS_CA_FILE", "tls.ca_file"),
    ("TLS_CLIENT_CERT", "tls.client_cert"),
    ("TLS_CLIENT_KEY", "tls.client_key"),
    ("OUTBOX_PATH", "outbox.path"),
    ("OUTBOX_MAX_ROWS", "outbox.max_rows"),
    ("OUTBOX_MAX_AGE_SECS", "outbox.max_age_secs"),
];

/// Keys that take whole numbers; the other variables are strings.
const NUMERIC_KEYS: &[&str] = &[
    "max_inflight",
    "shutdown_timeout_ms",
    "outbox.max_rows",
    "outbox.max_age_secs",
];

/// Configuration of the edge agent. See `edge/edge.toml` for each key.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfig {
    /// Broker URL, `mqtt://` or `mqtts://`.
    pub broker: String,
    /// MQTT client id, stable across restarts.
    pub client_id: String,
    /// Agent id in the status topic.
    pub agent: String,
    /// Site id of every reading.
    pub site: String,
    /// First topic level(s).
    pub topic_prefix: String,
    /// Broker user name.
    #[serde(default)]
    pub username: Option<String>,
    /// Broker password, sent only with `username`.
    #[serde(default)]
    pub password: Option<String>,
    /// Readings that may wait for their PubAck at once.
    pub max_inflight: u16,
    /// Time given at shutdown to send stored readings, in milliseconds.
    pub shutdown_timeout_ms: u64,
    /// TLS files for `mqtts://`.
    #[serde(default)]
    pub tls: TlsConfig,
    /// Outbox file and bounds.
    pub outbox: OutboxConfig,
    /// Sensors to sample.
    #[serde(default)]
    pub sensors: Vec<AgentSensorConfig>,
}

/// The `[tls]` table.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA bundle (PEM).
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    pub client_cert: Option<PathBuf>,
    /// Private key (PEM) of `client_cert`.
    pub client_key: Option<PathBuf>,
}

/// The `[outbox]` table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// SQLite file.
    pub path: PathBuf,
    /// Most readings kept.
    pub max_rows: u64,
    /// Oldest reading kept, in seconds.
    pub max_age_secs: u64,
}

impl std::fmt::Debug for EdgeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeConfig")
            .field("broker", &self.broker)
            .field("client_id", &self.client_id)
            .field("agent", &self.agent)
            .field("site", &self.site)
            .field("topic_prefix", &self.topic_prefix)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("max_inflight", &self.max_inflight)
            .field("shutdown_timeout_ms", &self.shutdown_timeout_ms)
            .field("tls", &self.tls)
            .field("outbox", &self.outbox)
            .field("sensors", &self.sensors)
            .finish()
    }
}

/// Error in loading or validating the edge configuration.
#[derive(Debug, thiserror::Error)]
pub enum EdgeConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid TOML in {origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("{ENV_PREFIX}{name} is not a known setting: use one of {known}")]
    UnknownEnv { name: String, known: String },
    #[error(transparent)]
    Connection(PublishError),
    #[error("{field} is missing: {fix}")]
    Missing { field: String, fix: String },
    #[error("{field} = {value:?} is invalid: {fix}")]
    Invalid {
        field: String,
        value: String,
        fix: String,
    },
}

/// Builds an [`EdgeConfigError::Invalid`].
pub(crate) fn invalid(
    field: impl Into<String>,
    value: impl ToString,
    fix: &str,
) -> EdgeConfigError {
    EdgeConfigError::Invalid {
        field: field.into(),
        value: value.to_string(),
        fix: fix.to_owned(),
    }
}

/// Builds an [`EdgeConfigError::Missing`].
pub(crate) fn missing(field: impl Into<String>, fix: &str) -> EdgeConfigError {
    EdgeConfigError::Missing {
        field: field.into(),
        fix: fix.to_owned(),
    }
}

impl Default for EdgeConfig {
    fn default() -> Self {
        // The embedded file is checked by the `defaults_parse_and_validate`
        // test, so parsing it cannot fail in a built binary.
        parse_table(default_table(), "embedded defaults").expect("embedded edge.toml is valid")
    }
}

fn default_table() -> toml::Table {
    toml::from_str(DEFAULT_EDGE_TOML).expect("embedded edge.toml parses")
}

fn parse_table(table: toml::Table, origin: &str) -> Result<EdgeConfig, EdgeConfigError> {
    table
        .try_into()
        .map_err(|error: toml::de::Error| EdgeConfigError::Parse {
            origin: origin.to_owned(),
            message: error.message().to_owned(),
        })
}

impl EdgeConfig {
    /// Loads the defaults, merges `path` over them when given, applies the
    /// `FLOORWATCH_EDGE_*` entries of `env` and validates the result.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, EdgeConfigError> {
        let mut table = default_table();
        let origin = match path {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| EdgeConfigError::Read {
                        path: path.to_owned(),
                        source,
                    })?;
                let file: toml::Table =
                    toml::from_str(&text).map_err(|error| EdgeConfigError::Parse {
                        origin: path.display().to_string(),
                        message: error.message().to_owned(),
                    })?;
                merge(&mut table, file);
                path.display().to_string()
            }
            None => "embedded defaults".to_owned(),
        };
        apply_env(&mut table, env)?;
        let config = parse_table(table, &origin)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every field and names the field, the value and the fix.
    pub fn validate(&self) -> Result<(), EdgeConfigError> {
        let publisher = self.publisher_config()?;
        // Reads the TLS files, so that a missing one fails the check.
        crate::options::mqtt_options(&publisher).map_err(EdgeConfigError::Connection)?;
        self.site_id()?;
        if self.outbox.max_rows == 0 {
            return Err(invalid("outbox.max_rows", 0, "keep at least 1 reading"));
        }
        if self.outbox.max_age_secs == 0 {
            return Err(invalid(
                "outbox.max_age_secs",
                0,
                "keep readings at least 1 second",
            ));
        }
        super::sensors::build_agent_sensors(&self.sensors, &self.site_id()?)?;
        Ok(())
    }

    /// Returns the parsed broker URL.
    pub fn broker_url(&self) -> Result<BrokerUrl, EdgeConfigError> {
        self.broker
            .parse()
            .map_err(|error: floorwatch_protocol::broker_url::BrokerUrlError| {
                invalid("broker", &self.broker, &error.to_string())
            })
    }

    /// Returns the parsed site id.
    pub fn site_id(&self) -> Result<Id, EdgeConfigError> {
        Id::parse(&self.site).map_err(|error| invalid("site", &self.site, &error.to_string()))
    }

    /// Returns the outbox bounds.
    pub fn outbox_bounds(&self) -> OutboxBounds {
        OutboxBounds {
            max_rows: self.outbox.max_rows,
            max_age: Duration::from_secs(self.outbox.max_age_secs),
        }
    }

    /// Returns the shutdown deadline.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.shutdown_timeout_ms)
    }

    /// Builds the publisher settings, with the agent's status topic.
    pub fn publisher_config(&self) -> Result<PublisherConfig, EdgeConfigError> {
        if self.client_id.is_empty() {
            return Err(invalid(
                "client_id",
                "",
                "set an id that stays the same across restarts",
            ));
        }
        if self.max_inflight == 0 {
            return Err(invalid("max_inflight", 0, "allow at least 1"));
        }
        let prefix = self.topic_prefix.trim_end_matches('/');
        if prefix.is_empty() || prefix.contains(['+', '#']) {
            return Err(invalid(
                "topic_prefix",
                &self.topic_prefix,
                "use a non-empty prefix without '+' or '#'",
            ));
        }
        let agent = Id::parse(&self.agent)
            .map_err(|error| invalid("agent", &self.agent, &error.to_string()))?;
        let tls = TlsFiles {
            ca_file: self.tls.ca_file.clone(),
            client_cert: self.tls.client_cert.clone(),
            client_key: self.tls.client_key.clone(),
        };
        if tls.client_cert.is_some() != tls.client_key.is_some() {
            return Err(invalid(
                "tls.client_cert",
                format!("{:?}", tls.client_cert),
                "set tls.client_cert and tls.client_key together",
            ));
        }
        let topics = floorwatch_protocol::Topics::new(&self.topic_prefix);
        Ok(PublisherConfig {
            topic_prefix: self.topic_prefix.clone(),
            username: self.username.clone(),
            password: self.password.clone(),
            max_inflight: self.max_inflight,
            status_topic: Some(topics.agent_status(&self.site_id()?, &agent)),
            tls,
            ..PublisherConfig::new(self.broker_url()?, self.client_id.clone())
        })
    }
}

/// Merges `overlay` into `base` key by key; arrays and values replace.
fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base)), toml::Value::Table(overlay)) => merge(base, overlay),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Sets the key of every `FLOORWATCH_EDGE_*` variable in `env`. Numbers are
/// stored as integers when they parse as one.
fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), EdgeConfigError> {
    for (name, value) in env {
        let Some(suffix) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let Some((_, key)) = ENV_KEYS.iter().find(|(env, _)| *env == suffix) else {
            let known: Vec<_> = ENV_KEYS.iter().map(|(env, _)| *env).collect();
            return Err(EdgeConfigError::UnknownEnv {
                name: suffix.to_owned(),
                known: known.join(", "),
            });
        };
        let value = if NUMERIC_KEYS.contains(key) {
            let number = value
                .parse::<i64>()
                .map_err(|_| invalid(name.clone(), &value, "set a whole number"))?;
            toml::Value::Integer(number)
        } else {
            toml::Value::String(value)
        };
        set_key(table, key, value);
    }
    Ok(())
}

/// Sets a dotted `key` such as `outbox.path`, creating missing tables.
fn set_key(table: &mut toml::Table, key: &str, value: toml::Value) {
    match key.split_once('.') {
        Some((head, rest)) => {
            let entry = table
                .entry(head)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(inner) = entry {
                set_key(inner, rest, value);
            }
        }
        None => {
            table.insert(key.to_owned(), value);
        }
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
