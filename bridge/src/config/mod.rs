//! The `[bridge]` section of a floorwatch config file: MQTT connection,
//! database path, rules, webhook endpoints and the retry schedule, with the
//! product's defaults and a validation pass that names field, value and fix.

use std::path::PathBuf;

use floorwatch_protocol::webhook::SigningKey;
use floorwatch_protocol::{BrokerUrl, EventType, Secret};
use serde::{Deserialize, Serialize};

mod http;
mod mutes;
mod nats;
mod notify;
mod rules;

pub use http::HttpSettings;
pub use mutes::{parse_clock_time, parse_weekday, MaintenanceConfig, Matchers, SilenceConfig};
pub use nats::{NatsSettings, Source, MAX_PARTITIONS};
pub use notify::ReminderSettings;

pub use rules::{
    default_rules, validate_rule, HealthSettings, MetricHealth, OverrideConfig, RuleConfig,
    RuleKind,
};

/// Configuration of the bridge. Every field has a default, so an empty
/// `[bridge]` section runs the product's scenario.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BridgeConfig {
    /// Source of readings: `mqtt` (default) or `nats`.
    pub source: Source,
    /// Broker connection, `[bridge.mqtt]`.
    pub mqtt: MqttSettings,
    /// NATS JetStream connection and partitions, `[bridge.nats]`, used when
    /// `source` is `nats`.
    pub nats: NatsSettings,
    /// SQLite file holding rule state, incidents, the outbox and the
    /// delivery log. Its directory is created when missing.
    pub database: PathBuf,
    /// Threshold and rate rules, `[[bridge.rules]]`.
    pub rules: Vec<RuleConfig>,
    /// Silence and fault checks, `[bridge.health]`.
    pub health: HealthSettings,
    /// Per-site and per-sensor changes, `[[bridge.overrides]]`.
    pub overrides: Vec<OverrideConfig>,
    /// Reminders about open incidents, `[bridge.reminders]`.
    pub reminders: ReminderSettings,
    /// HTTP ingest, `[bridge.http]`.
    pub http: HttpSettings,
    /// One-off silences, `[[bridge.silences]]`.
    pub silences: Vec<SilenceConfig>,
    /// Weekly maintenance windows, `[[bridge.maintenance]]`.
    pub maintenance: Vec<MaintenanceConfig>,
    /// Webhook destinations, `[[bridge.endpoints]]`.
    pub endpoints: Vec<EndpointConfig>,
    /// Retry schedule, `[bridge.delivery]`.
    pub delivery: DeliverySettings,
    /// Sensors whose state the bridge keeps in memory; readings of further
    /// new sensors are rejected with code `too_many_sensors`. Each sensor
    /// costs a few kilobytes (its reading window and rule states).
    pub max_sensors: usize,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        Self {
            source: Source::default(),
            mqtt: MqttSettings::default(),
            nats: NatsSettings::default(),
            database: PathBuf::from("floorwatch-data/bridge.db"),
            rules: default_rules(),
            health: HealthSettings::default(),
            overrides: Vec::new(),
            reminders: ReminderSettings::default(),
            http: HttpSettings::default(),
            silences: Vec::new(),
            maintenance: Vec::new(),
            endpoints: Vec::new(),
            delivery: DeliverySettings::default(),
            max_sensors: 50_000,
        }
    }
}

/// Broker connection settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttSettings {
    /// Broker address, such as `mqtt://127.0.0.1:1883` or `mqtts://host`.
    pub url: String,
    /// Client id; stable so that the broker keeps the persistent session.
    pub client_id: String,
    /// First topic level(s) of every floorwatch topic.
    pub topic_prefix: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// When the bridge acknowledges a reading to the broker.
    pub ack: AckMode,
}

impl Default for MqttSettings {
    fn default() -> Self {
        Self {
            url: "mqtt://127.0.0.1:1883".to_owned(),
            client_id: "floorwatch-bridge".to_owned(),
            topic_prefix: floorwatch_protocol::topic::DEFAULT_PREFIX.to_owned(),
            username: None,
            password: None,
            ack: AckMode::AfterCommit,
        }
    }
}

/// When the bridge sends the PUBACK of a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AckMode {
    /// After the reading's batch is committed: a reading the bridge lost in
    /// a crash is delivered again by a broker that keeps its sessions.
    #[default]
    AfterCommit,
    /// As soon as the reading arrives, several per write. Only for a broker
    /// in the bridge's own process (`floorwatch up`): that broker's queue
    /// dies with the process, so waiting for the commit protects nothing,
    /// while one PUBACK write per reading costs CPU on both sides.
    OnReceipt,
}

/// One webhook destination.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// `http://` or `https://` URL that receives a POST per event.
    pub url: String,
    /// Signing secret, `whsec_` + base64.
    #[serde(default)]
    pub secret: Option<String>,
    /// More signing secrets, for rotation; every one signs each delivery.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Ed25519 signing keys, `whsk_` + base64: each adds a Standard Webhooks
    /// `v1a` signature to every delivery, which receivers check with the
    /// matching `whpk_` public key.
    #[serde(default)]
    pub signing_keys: Vec<String>,
    /// Event type patterns, such as `incident.*` or `incident.opened`.
    #[serde(default = "default_events")]
    pub events: Vec<String>,
    /// Timeout of one attempt, in seconds.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Allows private, loopback and link-local destinations.
    #[serde(default)]
    pub allow_private: bool,
    /// Sends to this endpoint. When false, no events are queued for it and
    /// no worker runs; a `410 Gone` disables it in the database instead.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// Events of different incidents sent at the same time. Events of one
    /// incident are always sent one after another, in order.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
    /// Maximum requests per second (token bucket with a burst of one
    /// second's worth). No limit when unset.
    #[serde(default)]
    pub rate_limit_per_sec: Option<f64>,
    /// Consecutive failed attempts that open the circuit breaker.
    #[serde(default = "default_breaker_failures")]
    pub breaker_failures: u32,
    /// First pause of an open circuit breaker, in milliseconds; doubled
    /// after each failed probe up to `breaker_max_cooldown_ms`.
    #[serde(default = "default_breaker_cooldown_ms")]
    pub breaker_cooldown_ms: u64,
    /// Maximum pause of an open circuit breaker, in milliseconds.
    #[serde(default = "default_breaker_max_cooldown_ms")]
    pub breaker_max_cooldown_ms: u64,
}

fn default_events() -> Vec<String> {
    vec!["incident.*".to_owned()]
}

fn default_timeout_secs() -> u64 {
    15
}

fn default_enabled() -> bool {
    true
}

fn default_max_concurrency() -> usize {
    4
}

fn default_breaker_failures() -> u32 {
    5
}

fn default_breaker_cooldown_ms() -> u64 {
    30_000
}

fn default_breaker_max_cooldown_ms() -> u64 {
    3_600_000
}

impl EndpointConfig {
    /// Creates an endpoint with one secret and the defaults.
    pub fn new(url: &str, secret: &str) -> Self {
        Self {
            url: url.to_owned(),
            secret: Some(secret.to_owned()),
            secrets: Vec::new(),
            signing_keys: Vec::new(),
            events: default_events(),
            timeout_secs: default_timeout_secs(),
            allow_private: false,
            enabled: default_enabled(),
            max_concurrency: default_max_concurrency(),
            rate_limit_per_sec: None,
            breaker_failures: default_breaker_failures(),
            breaker_cooldown_ms: default_breaker_cooldown_ms(),
            breaker_max_cooldown_ms: default_breaker_max_cooldown_ms(),
        }
    }

    /// Parses every configured secret, `secret` first.
    pub fn parsed_secrets(&self) -> Result<Vec<Secret>, floorwatch_protocol::SecretError> {
        self.secret
            .iter()
            .chain(&self.secrets)
            .map(|text| Secret::parse(text))
            .collect()
    }

    /// Parses every configured `v1a` signing key.
    pub fn parsed_signing_keys(
        &self,
    ) -> Result<Vec<SigningKey>, floorwatch_protocol::webhook::SigningKeyError> {
        self.signing_keys
            .iter()
            .map(|text| SigningKey::parse(text))
            .collect()
    }
}

/// Retry schedule of webhook deliveries.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliverySettings {
    /// Delay before each retry, in milliseconds. An event gets one attempt
    /// more than the schedule has entries, then becomes a dead letter.
    pub retry_schedule_ms: Vec<u64>,
    /// Random spread applied to each delay, as a fraction: 0.1 is ±10 %.
    pub jitter: f64,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        // 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: about 28 hours in total.
        const SECOND: u64 = 1000;
        const HOUR: u64 = 3600 * SECOND;
        Self {
            retry_schedule_ms: vec![
                5 * SECOND,
                300 * SECOND,
                1800 * SECOND,
                2 * HOUR,
                5 * HOUR,
                10 * HOUR,
                10 * HOUR,
            ],
            jitter: 0.1,
        }
    }
}

/// An invalid configuration value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid {field} = {value}: {fix}")]
pub struct ConfigError {
    /// Path of the field, such as `bridge.rules[1].clear_threshold`.
    pub field: String,
    /// The offending value as written in TOML.
    pub value: String,
    /// Description of the problem and its fix.
    pub fix: String,
}

impl ConfigError {
    fn new(field: impl Into<String>, value: impl std::fmt::Debug, fix: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            value: format!("{value:?}"),
            fix: fix.into(),
        }
    }
}

impl BridgeConfig {
    /// Checks every field and returns the first invalid one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_mqtt()?;
        if self.source == Source::Nats {
            self.nats.validate(&self.mqtt.topic_prefix)?;
        }
        if self.database.as_os_str().is_empty() {
            return Err(ConfigError::new(
                "bridge.database",
                "",
                "set a path for the SQLite file, such as \"floorwatch-data/bridge.db\"",
            ));
        }
        for (index, rule) in self.rules.iter().enumerate() {
            validate_rule(&format!("bridge.rules[{index}]"), rule)?;
            if self.rules[..index].iter().any(|other| other.id == rule.id) {
                return Err(ConfigError::new(
                    format!("bridge.rules[{index}].id"),
                    &rule.id,
                    "another rule has this id: give each rule its own id",
                ));
            }
        }
        rules::validate_health("bridge.health", &self.health)?;
        for (index, entry) in self.overrides.iter().enumerate() {
            rules::validate_override(
                &format!("bridge.overrides[{index}]"),
                entry,
                &self.rules,
                &self.health,
            )?;
        }
        self.reminders.validate()?;
        self.http.validate()?;
        mutes::validate_mutes(&self.silences, &self.maintenance)?;
        for (index, endpoint) in self.endpoints.iter().enumerate() {
            validate_endpoint(&format!("bridge.endpoints[{index}]"), endpoint)?;
            if self.endpoints[..index]
                .iter()
                .any(|other| other.url == endpoint.url)
            {
                return Err(ConfigError::new(
                    format!("bridge.endpoints[{index}].url"),
                    &endpoint.url,
                    "another endpoint has this URL: merge their event patterns into one endpoint",
                ));
            }
        }
        if self.max_sensors == 0 {
            return Err(ConfigError::new(
                "bridge.max_sensors",
                self.max_sensors,
                "use at least 1 sensor, such as 50000",
            ));
        }
        self.validate_delivery()
    }

    fn validate_mqtt(&self) -> Result<(), ConfigError> {
        let mqtt = &self.mqtt;
        if let Err(error) = mqtt.url.parse::<BrokerUrl>() {
            return Err(ConfigError::new(
                "bridge.mqtt.url",
                &mqtt.url,
                error.to_string(),
            ));
        }
        if mqtt.client_id.is_empty() {
            return Err(ConfigError::new(
                "bridge.mqtt.client_id",
                &mqtt.client_id,
                "set a stable client id, such as \"floorwatch-bridge\"",
            ));
        }
        let prefix = mqtt.topic_prefix.trim_end_matches('/');
        if prefix.is_empty() || prefix.contains(['+', '#']) || prefix.starts_with('/') {
            return Err(ConfigError::new(
                "bridge.mqtt.topic_prefix",
                &mqtt.topic_prefix,
                "use one or more topic levels without wildcards or a leading '/', \
                 such as \"floorwatch\"",
            ));
        }
        if mqtt.password.is_some() && mqtt.username.is_none() {
            return Err(ConfigError::new(
                "bridge.mqtt.username",
                "",
                "a password is set without a username: set both or neither",
            ));
        }
        Ok(())
    }

    fn validate_delivery(&self) -> Result<(), ConfigError> {
        let jitter = self.delivery.jitter;
        if !(0.0..1.0).contains(&jitter) {
            return Err(ConfigError::new(
                "bridge.delivery.jitter",
                jitter,
                "use a fraction from 0.0 (no jitter) to below 1.0, such as 0.1",
            ));
        }
        Ok(())
    }
}

fn validate_endpoint(path: &str, endpoint: &EndpointConfig) -> Result<(), ConfigError> {
    let url_error = |fix: &str| ConfigError::new(format!("{path}.url"), &endpoint.url, fix);
    let url = reqwest::Url::parse(&endpoint.url)
        .map_err(|error| url_error(&format!("{error}: use e.g. \"https://host/webhooks\"")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(url_error("use an http:// or https:// URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(url_error("the URL has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(url_error(
            "credentials in the URL would be sent in clear: remove them and rely on the signature",
        ));
    }

    if endpoint.secret.is_none() && endpoint.secrets.is_empty() && endpoint.signing_keys.is_empty()
    {
        return Err(ConfigError::new(
            format!("{path}.secret"),
            "",
            "every endpoint needs a signing secret or key: create one with \
             `floorwatch keys generate` (or `--v1a` for a signing key)",
        ));
    }
    for (index, key) in endpoint.signing_keys.iter().enumerate() {
        SigningKey::parse(key).map_err(|error| {
            ConfigError::new(
                format!("{path}.signing_keys[{index}]"),
                "<redacted>",
                error.to_string(),
            )
        })?;
    }
    if let Some(secret) = &endpoint.secret {
        Secret::parse(secret).map_err(|error| {
            ConfigError::new(format!("{path}.secret"), "<redacted>", error.to_string())
        })?;
    }
    for (index, secret) in endpoint.secrets.iter().enumerate() {
        Secret::parse(secret).map_err(|error| {
            ConfigError::new(
                format!("{path}.secrets[{index}]"),
                "<redacted>",
                error.to_string(),
            )
        })?;
    }

    if endpoint.events.is_empty() {
        return Err(ConfigError::new(
            format!("{path}.events"),
            &endpoint.events,
            "list at least one event type pattern, such as \"incident.*\"",
        ));
    }
    for (index, pattern) in endpoint.events.iter().enumerate() {
        if !EventType::ALL.iter().any(|t| t.matches(pattern)) {
            return Err(ConfigError::new(
                format!("{path}.events[{index}]"),
                pattern,
                "the pattern matches no event type: use e.g. \"incident.*\", \
                 \"incident.opened\" or \"*\"",
            ));
        }
    }
    if endpoint.timeout_secs == 0 {
        return Err(ConfigError::new(
            format!("{path}.timeout_secs"),
            endpoint.timeout_secs,
            "use a timeout of at least 1 second",
        ));
    }
    validate_endpoint_limits(path, endpoint)
}

fn validate_endpoint_limits(path: &str, endpoint: &EndpointConfig) -> Result<(), ConfigError> {
    if !(1..=256).contains(&endpoint.max_concurrency) {
        return Err(ConfigError::new(
            format!("{path}.max_concurrency"),
            endpoint.max_concurrency,
            "use 1 to 256 requests in parallel, such as 4",
        ));
    }
    if let Some(rate) = endpoint.rate_limit_per_sec {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(ConfigError::new(
                format!("{path}.rate_limit_per_sec"),
                rate,
                "use a positive number of requests per second, or remove the key for no limit",
            ));
        }
    }
    if endpoint.breaker_failures == 0 {
        return Err(ConfigError::new(
            format!("{path}.breaker_failures"),
            endpoint.breaker_failures,
            "use at least 1 consecutive failure, such as 5",
        ));
    }
    if endpoint.breaker_cooldown_ms == 0
        || endpoint.breaker_max_cooldown_ms < endpoint.breaker_cooldown_ms
    {
        return Err(ConfigError::new(
            format!("{path}.breaker_max_cooldown_ms"),
            endpoint.breaker_max_cooldown_ms,
            "set breaker_cooldown_ms above 0 and breaker_max_cooldown_ms at least as long",
        ));
    }
    Ok(())
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
