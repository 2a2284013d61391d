//! `source` and `[bridge.nats]`: where the bridge reads readings from, and
//! the NATS JetStream settings used when that is `nats`.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Origin of the readings the bridge consumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// An MQTT subscription with a persistent session, `[bridge.mqtt]`.
    #[default]
    Mqtt,
    /// Durable pull consumers on a NATS JetStream stream, `[bridge.nats]`.
    Nats,
}

impl Source {
    /// Returns the name used in the config file and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Mqtt => "mqtt",
            Source::Nats => "nats",
        }
    }
}

/// NATS JetStream settings of a bridge with `source = "nats"`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsSettings {
    /// Server URLs, such as `nats://127.0.0.1:4222`; the client connects to
    /// one of them and learns the rest of the cluster from it.
    pub servers: Vec<String>,
    /// Name of this bridge instance, unique in the cluster. It owns the
    /// partition leases it holds and names the connection.
    pub instance: String,
    /// Partitions of the sensors; each is consumed by one instance at a
    /// time. Above 1, the servers must map reading subjects to partition
    /// subjects (see docs/scale-out.md).
    pub partitions: u32,
    /// Replicas of the streams and buckets the bridge creates: 1 on a
    /// single server, 3 on a three-node cluster.
    pub replicas: usize,
    /// Lifetime of a partition lease, in seconds. A partition whose owner
    /// stops renewing is taken over after at most this long.
    pub lease_ttl_secs: u64,
    /// How long the bridge keeps trying to reach the servers at start, in
    /// seconds, before it stops with an error.
    pub connect_timeout_secs: u64,
    /// Time the servers wait for the acknowledgement of a delivered message
    /// before delivering it again, in seconds.
    pub ack_wait_secs: u64,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl Default for NatsSettings {
    fn default() -> Self {
        Self {
            servers: vec!["nats://127.0.0.1:4222".to_owned()],
            instance: "floorwatch-bridge".to_owned(),
            partitions: 1,
            replicas: 1,
            lease_ttl_secs: 10,
            connect_timeout_secs: 60,
            ack_wait_secs: 30,
            username: None,
            password: None,
        }
    }
}

/// Largest number of partitions; each costs a consumer, a lease and a
/// state record.
pub const MAX_PARTITIONS: u32 = 1024;

impl NatsSettings {
    /// Checks every field; `topic_prefix` is `bridge.mqtt.topic_prefix`,
    /// which becomes the first subject tokens.
    pub fn validate(&self, topic_prefix: &str) -> Result<(), ConfigError> {
        if self.servers.is_empty() {
            return Err(ConfigError::new(
                "bridge.nats.servers",
                &self.servers,
                "list at least one server, such as \"nats://127.0.0.1:4222\"",
            ));
        }
        for (index, server) in self.servers.iter().enumerate() {
            if let Err(error) = server.parse::<async_nats::ServerAddr>() {
                return Err(ConfigError::new(
                    format!("bridge.nats.servers[{index}]"),
                    server,
                    format!("{error}: use e.g. \"nats://127.0.0.1:4222\""),
                ));
            }
        }
        let valid_token = |text: &str| {
            !text.is_empty()
                && text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if !valid_token(&self.instance) {
            return Err(ConfigError::new(
                "bridge.nats.instance",
                &self.instance,
                "use letters, digits, '-' and '_' only, unique per bridge, such as \"bridge-1\"",
            ));
        }
        if !(1..=MAX_PARTITIONS).contains(&self.partitions) {
            return Err(ConfigError::new(
                "bridge.nats.partitions",
                self.partitions,
                format!("use 1 to {MAX_PARTITIONS} partitions, such as 8"),
            ));
        }
        if !(1..=5).contains(&self.replicas) {
            return Err(ConfigError::new(
                "bridge.nats.replicas",
                self.replicas,
                "use 1 to 5 replicas (JetStream's limit), such as 3 on a three-node cluster",
            ));
        }
        if self.lease_ttl_secs < 3 {
            return Err(ConfigError::new(
                "bridge.nats.lease_ttl_secs",
                self.lease_ttl_secs,
                "use at least 3 seconds, such as 10",
            ));
        }
        if self.connect_timeout_secs == 0 || self.ack_wait_secs == 0 {
            return Err(ConfigError::new(
                "bridge.nats.ack_wait_secs",
                self.ack_wait_secs,
                "set connect_timeout_secs and ack_wait_secs to at least 1 second",
            ));
        }
        if self.password.is_some() && self.username.is_none() {
            return Err(ConfigError::new(
                "bridge.nats.username",
                "",
                "a password is set without a username: set both or neither",
            ));
        }
        let prefix = topic_prefix.trim_end_matches('/');
        if prefix.split('/').any(|level| !valid_token(level)) {
            return Err(ConfigError::new(
                "bridge.mqtt.topic_prefix",
                topic_prefix,
                "with source = \"nats\" every topic level becomes a subject token: use \
                 letters, digits, '-' and '_' only, such as \"floorwatch\"",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BridgeConfig;

    fn nats_config() -> BridgeConfig {
        BridgeConfig {
            source: Source::Nats,
            ..BridgeConfig::default()
        }
    }

    #[test]
    fn nats_defaults_are_valid() {
        assert_eq!(nats_config().validate(), Ok(()));
    }

    #[test]
    fn invalid_nats_fields_are_named() {
        type Change = fn(&mut BridgeConfig);
        let cases: [(Change, &str); 6] = [
            (|c| c.nats.servers.clear(), "bridge.nats.servers"),
            (
                |c| c.nats.instance = "bridge.1".into(),
                "bridge.nats.instance",
            ),
            (|c| c.nats.partitions = 0, "bridge.nats.partitions"),
            (|c| c.nats.replicas = 7, "bridge.nats.replicas"),
            (|c| c.nats.lease_ttl_secs = 1, "bridge.nats.lease_ttl_secs"),
            (
                |c| c.mqtt.topic_prefix = "plant.floorwatch".into(),
                "bridge.mqtt.topic_prefix",
            ),
        ];
        for (change, field) in cases {
            let mut config = nats_config();
            change(&mut config);
            let error = config.validate().expect_err(field);
            assert_eq!(error.field, field);
        }
    }

    #[test]
    fn nats_fields_are_ignored_with_mqtt_source() {
        let mut config = BridgeConfig::default();
        config.nats.partitions = 0;
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn source_parses_from_toml() {
        let config: BridgeConfig =
            toml::from_str("source = \"nats\"\n[nats]\npartitions = 8\n").unwrap();
        assert_eq!(config.source, Source::Nats);
        assert_eq!(config.nats.partitions, 8);
        assert_eq!(config.nats.servers, NatsSettings::default().servers);
    }
}
