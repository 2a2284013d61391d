//! MQTT broker addresses as users write them: `mqtt://host:port`,
//! `mqtts://host:port`, `tcp://host:port` or plain `host:port`.

use std::fmt;
use std::str::FromStr;

/// Default port of plain MQTT.
pub const DEFAULT_PORT: u16 = 1883;
/// Default port of MQTT over TLS.
pub const DEFAULT_TLS_PORT: u16 = 8883;

/// A parsed broker address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub host: String,
    pub port: u16,
    /// True for `mqtts://`.
    pub tls: bool,
}

/// Why a broker address was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid broker address {value:?}: {reason} (expected e.g. mqtt://127.0.0.1:1883)")]
pub struct BrokerUrlError {
    value: String,
    reason: &'static str,
}

impl FromStr for BrokerUrl {
    type Err = BrokerUrlError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let error = |reason| BrokerUrlError {
            value: value.to_owned(),
            reason,
        };
        let (rest, tls) = if let Some(rest) = value.strip_prefix("mqtts://") {
            (rest, true)
        } else if let Some(rest) = value
            .strip_prefix("mqtt://")
            .or_else(|| value.strip_prefix("tcp://"))
        {
            (rest, false)
        } else if value.contains("://") {
            return Err(error("unsupported scheme, use mqtt:// or mqtts://"));
        } else {
            (value, false)
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('@') {
            return Err(error("paths and credentials do not belong in the address"));
        }
        let default_port = if tls { DEFAULT_TLS_PORT } else { DEFAULT_PORT };
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(':') => {
                let port = port
                    .parse()
                    .map_err(|_| error("port is not a number from 1 to 65535"))?;
                (host, port)
            }
            _ => (rest, default_port),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(error("host is missing"));
        }
        if port == 0 {
            return Err(error("port 0 cannot be connected to"));
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            tls,
        })
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<BrokerUrl, BrokerUrlError> {
        s.parse()
    }

    #[test]
    fn parses_common_forms() {
        let local = BrokerUrl {
            host: "127.0.0.1".into(),
            port: 1883,
            tls: false,
        };
        assert_eq!(parse("mqtt://127.0.0.1:1883"), Ok(local.clone()));
        assert_eq!(parse("tcp://127.0.0.1:1883/"), Ok(local.clone()));
        assert_eq!(parse("127.0.0.1"), Ok(local.clone()));
        assert_eq!(parse("mqtts://broker.example").unwrap().port, 8883);
        assert_eq!(parse("[::1]:1884").unwrap().host, "::1");
        assert_eq!(local.to_string(), "mqtt://127.0.0.1:1883");
    }

    #[test]
    fn rejects_bad_addresses() {
        for bad in [
            "http://h:1",
            "mqtt://:1883",
            "mqtt://h:x",
            "mqtt://h:0",
            "mqtt://u@h",
            "mqtt://h/x",
        ] {
            let error = parse(bad).unwrap_err().to_string();
            assert!(error.contains(bad), "{error}");
        }
    }
}
