//! `[bridge.http]`: the HTTP listener for ingest, metrics and delivery routes.

use std::net::SocketAddr;

use floorwatch_protocol::Id;
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// HTTP ingest settings.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Serve `POST /readings`, `POST /test-webhook`, `/metrics` and the
    /// delivery routes of `http_admin`.
    pub enabled: bool,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Site of `POST /test-webhook` bodies, which name only the sensor.
    pub default_site: String,
    /// Largest request body accepted, in bytes; larger ones get 413.
    pub max_body_bytes: usize,
    /// Bearer token the delivery and endpoint routes require. Without one
    /// they serve requests only on a loopback listener.
    pub admin_token: Option<String>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            default_site: "plant-1".to_owned(),
            max_body_bytes: 256 * 1024,
            admin_token: None,
        }
    }
}

impl HttpSettings {
    /// Checks the site id and the body limit.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Err(error) = Id::parse(&self.default_site) {
            return Err(ConfigError::new(
                "bridge.http.default_site",
                &self.default_site,
                error.to_string(),
            ));
        }
        if let Some(token) = &self.admin_token {
            if token.len() < 16 {
                return Err(ConfigError::new(
                    "bridge.http.admin_token",
                    "(hidden)",
                    "use at least 16 characters, such as the output of `floorwatch keys generate`",
                ));
            }
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::new(
                "bridge.http.max_body_bytes",
                self.max_body_bytes,
                "use at least 1024 bytes, such as 262144",
            ));
        }
        Ok(())
    }
}
