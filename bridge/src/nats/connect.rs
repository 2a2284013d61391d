//! The connection to the NATS servers: a first connection retried with
//! capped backoff for `connect_timeout_secs`, then the client's own
//! reconnects, logged as they happen.

use std::time::Duration;

use async_nats::{Client, ConnectOptions, Event, ServerAddr};
use rand::Rng;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::NatsSettings;
use crate::mqtt::reconnect_delay;
use crate::BridgeError;

/// Time one connection attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to one of `settings.servers`. While none answers, retries with
/// the MQTT reconnect backoff (0.5 s doubling to 30 s) and gives up with an
/// error naming the servers once `connect_timeout_secs` has passed.
pub async fn connect(
    settings: &NatsSettings,
    cancel: &CancellationToken,
) -> Result<Client, BridgeError> {
    let servers: Vec<ServerAddr> = settings
        .servers
        .iter()
        .filter_map(|server| server.parse().ok())
        .collect();
    let timeout = Duration::from_secs(settings.connect_timeout_secs);
    let deadline = Instant::now() + timeout;
    let mut failures = 0u32;
    loop {
        let error = match options(settings).connect(servers.clone()).await {
            Ok(client) => return Ok(client),
            Err(error) => error,
        };
        failures = failures.saturating_add(1);
        let delay = reconnect_delay(failures, rand::thread_rng().gen());
        if Instant::now() + delay > deadline {
            return Err(BridgeError::Nats {
                action: "connection",
                detail: format!(
                    "no server of {:?} accepted a connection within {} s ({failures} attempts, \
                     last error: {error}): check bridge.nats.servers and that nats-server runs \
                     with JetStream enabled",
                    settings.servers,
                    timeout.as_secs()
                ),
            });
        }
        tracing::warn!(
            servers = ?settings.servers,
            %error,
            attempt = failures,
            delay_ms = delay.as_millis() as u64,
            "cannot connect to NATS, retrying"
        );
        tokio::select! {
            () = cancel.cancelled() => return Err(BridgeError::Stopped),
            () = tokio::time::sleep(delay) => {}
        }
    }
}

fn options(settings: &NatsSettings) -> ConnectOptions {
    let mut options = ConnectOptions::new()
        .name(format!("floorwatch-bridge/{}", settings.instance))
        .connection_timeout(ATTEMPT_TIMEOUT)
        .max_reconnects(None)
        .event_callback(|event| async move {
            match event {
                Event::Connected => tracing::info!("connected to NATS"),
                Event::Disconnected => tracing::warn!("disconnected from NATS, reconnecting"),
                Event::ServerError(error) => tracing::warn!(%error, "NATS server error"),
                Event::ClientError(error) => tracing::warn!(%error, "NATS client error"),
                other => tracing::debug!(event = %other, "NATS connection event"),
            }
        });
    if let Some(username) = &settings.username {
        options = options.user_and_password(
            username.clone(),
            settings.password.clone().unwrap_or_default(),
        );
    }
    options
}
