//! Translation of a [`PublisherConfig`] into rumqttc options: the persistent
//! session, credentials, the agent's last will and TLS files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rumqttc::{LastWill, MqttOptions, QoS, Transport};

use crate::publisher::{PublishError, PublisherConfig};

/// Keep-alive interval sent to the broker.
const KEEP_ALIVE: Duration = Duration::from_secs(30);

/// CA bundle used for `mqtts://` brokers when no `ca_file` is set: the
/// system bundle of Debian and Raspberry Pi OS (package `ca-certificates`).
pub const DEFAULT_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Payload of the retained agent status while connected.
pub const STATUS_ONLINE: &str = "online";

/// Payload of the retained agent status after a disconnect, also the last
/// will.
pub const STATUS_OFFLINE: &str = "offline";

/// TLS files of an `mqtts://` connection, all PEM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA certificates that sign the broker's certificate;
    /// [`DEFAULT_CA_FILE`] when absent.
    pub ca_file: Option<PathBuf>,
    /// Client certificate for mutual TLS; needs `client_key`.
    pub client_cert: Option<PathBuf>,
    /// Private key of `client_cert`.
    pub client_key: Option<PathBuf>,
}

/// Builds the rumqttc options for MQTT 3.1.1 with a persistent session.
pub(crate) fn mqtt_options(config: &PublisherConfig) -> Result<MqttOptions, PublishError> {
    if config.client_id.is_empty() {
        return Err(PublishError::EmptyClientId);
    }
    if config.max_inflight == 0 {
        return Err(PublishError::ZeroInflight);
    }
    let prefix = config.topic_prefix.trim_end_matches('/');
    if prefix.is_empty() || prefix.contains(['+', '#']) {
        return Err(PublishError::InvalidTopicPrefix {
            prefix: config.topic_prefix.clone(),
        });
    }

    let broker = &config.broker;
    let mut options = MqttOptions::new(&config.client_id, &broker.host, broker.port);
    options
        .set_keep_alive(KEEP_ALIVE)
        .set_clean_session(false)
        .set_inflight(config.max_inflight);
    if let Some(username) = &config.username {
        let password = config.password.clone().unwrap_or_default();
        options.set_credentials(username, password);
    }
    if let Some(topic) = &config.status_topic {
        options.set_last_will(LastWill::new(topic, STATUS_OFFLINE, QoS::AtLeastOnce, true));
    }
    if broker.tls {
        options.set_transport(tls_transport(&config.tls)?);
    }
    Ok(options)
}

/// Reads the TLS files up front, so that a missing or invalid file is an
/// error naming it rather than a failure inside the event loop.
///
/// rumqttc's `tls_with_default_config` panics when the platform's roots
/// cannot be loaded (rumqttc 0.25), so the CA bundle is always a file.
fn tls_transport(files: &TlsFiles) -> Result<Transport, PublishError> {
    let ca_path = files
        .ca_file
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CA_FILE));
    let ca = read_pem(&ca_path, "CERTIFICATE")?;
    let client_auth = match (&files.client_cert, &files.client_key) {
        (Some(cert), Some(key)) => Some((read_pem(cert, "CERTIFICATE")?, read_pem(key, "KEY")?)),
        (None, None) => None,
        _ => return Err(PublishError::TlsClientAuthIncomplete),
    };
    Ok(Transport::tls(ca, client_auth, None))
}

/// Reads a PEM file and checks that it contains a block whose label ends
/// with `label` (`CERTIFICATE`, or `KEY` for any private key format).
fn read_pem(path: &Path, label: &str) -> Result<Vec<u8>, PublishError> {
    let tls_error = |reason: String| PublishError::TlsFile {
        path: path.to_owned(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|error| tls_error(error.to_string()))?;
    let text = String::from_utf8_lossy(&bytes);
    let has_block = text.lines().any(|line| {
        line.strip_prefix("-----BEGIN ")
            .and_then(|rest| rest.strip_suffix("-----"))
            .is_some_and(|found| found.ends_with(label))
    });
    if !has_block {
        return Err(tls_error(format!("no PEM block ending in {label} found")));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publisher::Publisher;

    fn config() -> PublisherConfig {
        PublisherConfig::new("mqtt://127.0.0.1:1883".parse().unwrap(), "edge-1")
    }

    #[test]
    fn options_resume_session_and_limit_inflight() {
        let options = mqtt_options(&PublisherConfig {
            max_inflight: 7,
            ..config()
        })
        .unwrap();
        assert!(!options.clean_session());
        assert_eq!(options.inflight(), 7);
        assert_eq!(options.client_id(), "edge-1");
        assert_eq!(options.broker_address(), ("127.0.0.1".to_owned(), 1883));
        assert!(options.last_will().is_none());
    }

    #[test]
    fn status_topic_sets_retained_offline_will() {
        let options = mqtt_options(&PublisherConfig {
            status_topic: Some("floorwatch/plant-1/agents/pi-1/status".into()),
            ..config()
        })
        .unwrap();
        let will = options.last_will().unwrap();
        assert_eq!(will.topic, "floorwatch/plant-1/agents/pi-1/status");
        assert_eq!(&will.message[..], b"offline");
        assert!(will.retain);
    }

    #[test]
    fn options_reject_invalid_config() {
        let empty_id = PublisherConfig {
            client_id: String::new(),
            ..config()
        };
        assert_eq!(
            mqtt_options(&empty_id).unwrap_err(),
            PublishError::EmptyClientId
        );

        let zero = PublisherConfig {
            max_inflight: 0,
            ..config()
        };
        assert_eq!(mqtt_options(&zero).unwrap_err(), PublishError::ZeroInflight);

        for prefix in ["", "/", "plant/#", "a/+/b"] {
            let bad = PublisherConfig {
                topic_prefix: prefix.into(),
                ..config()
            };
            assert!(
                matches!(
                    mqtt_options(&bad),
                    Err(PublishError::InvalidTopicPrefix { .. })
                ),
                "{prefix:?} was accepted"
            );
        }
    }

    fn tls_config(files: TlsFiles) -> PublisherConfig {
        PublisherConfig {
            tls: files,
            ..PublisherConfig::new("mqtts://127.0.0.1:8883".parse().unwrap(), "edge-1")
        }
    }

    #[test]
    fn missing_ca_file_is_error_naming_it() {
        let error = mqtt_options(&tls_config(TlsFiles {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..TlsFiles::default()
        }))
        .unwrap_err();
        assert!(matches!(error, PublishError::TlsFile { .. }), "{error:?}");
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
    }

    #[test]
    fn ca_file_without_certificate_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        let error = mqtt_options(&tls_config(TlsFiles {
            ca_file: Some(path.clone()),
            ..TlsFiles::default()
        }))
        .unwrap_err();
        assert!(error.to_string().contains("no PEM block"), "{error}");
    }

    #[test]
    fn valid_pem_files_build_tls_transport() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let key = dir.path().join("client.key");
        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        std::fs::write(
            &key,
            "-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let options = mqtt_options(&tls_config(TlsFiles {
            ca_file: Some(ca.clone()),
            client_cert: Some(ca.clone()),
            client_key: Some(key),
        }))
        .unwrap();
        assert!(matches!(options.transport(), Transport::Tls(_)));

        let half = tls_config(TlsFiles {
            ca_file: Some(ca.clone()),
            client_cert: Some(ca),
            client_key: None,
        });
        assert_eq!(
            mqtt_options(&half).unwrap_err(),
            PublishError::TlsClientAuthIncomplete
        );
    }

    #[test]
    fn connect_outside_runtime_is_an_error() {
        assert!(matches!(
            Publisher::connect(config()),
            Err(PublishError::NoRuntime)
        ));
    }
}
