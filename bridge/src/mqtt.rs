//! The MQTT side of ingest: connection options, the event loop with capped
//! reconnect backoff, and routing of reading messages to the ingest queue.
//!
//! NOTE: by default messages are acknowledged manually after their batch is
//! committed, and the session is persistent (`clean_session = false`), so a
//! message the bridge received but did not commit is delivered again by the
//! broker. `mqtt.ack = "on_receipt"` (used by `floorwatch up` with its
//! embedded broker) lets rumqttc acknowledge on arrival instead.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use floorwatch_protocol::{BrokerUrl, Topics};
use rand::Rng;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, Transport};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{AckMode, MqttSettings};
use crate::ingest::Queued;
use crate::pipeline::{Inbound, RetainedIncidents};
use crate::stats::Stats;

/// Largest incoming packet accepted: the largest remaining length MQTT 3.1.1
/// can encode, so every payload reaches the parser and is rejected there.
/// With a lower limit, rumqttc closes the connection on a larger packet
/// before it can be acknowledged, and the broker delivers it again on every
/// reconnect of the persistent session, which stops all ingest.
///
/// NOTE: rumqttc reads the whole packet into memory. Only the broker's own
/// payload limit bounds what a client can make the bridge hold: it is
/// `max_payload_size` in broker.toml, and `message_size_limit` in Mosquitto
/// 2.0, whose default 0 accepts any size.
const MAX_INCOMING_PACKET: usize = 268_435_455;

/// Largest outgoing packet (incident state with its readings window).
const MAX_OUTGOING_PACKET: usize = 256 * 1024;

/// Maximum wait for ingest to finish its batch at shutdown.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(5);

/// First and maximum wait between reconnect attempts.
const BACKOFF_BASE: Duration = Duration::from_millis(500);
const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// Builds client options from settings already checked by `validate`.
pub fn options(settings: &MqttSettings, url: &BrokerUrl) -> MqttOptions {
    let mut options = MqttOptions::new(&settings.client_id, &url.host, url.port);
    options
        .set_clean_session(false)
        .set_manual_acks(settings.ack == AckMode::AfterCommit)
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(MAX_INCOMING_PACKET, MAX_OUTGOING_PACKET)
        .set_request_channel_capacity(4096);
    if let Some(username) = &settings.username {
        options.set_credentials(username, settings.password.clone().unwrap_or_default());
    }
    if url.tls {
        options.set_transport(Transport::tls_with_default_config());
    }
    options
}

/// Returns the wait before reconnect attempt `failures` (from 1): doubling
/// from 0.5 s up to 30 s, with ±20 % jitter from `unit_random` in `[0, 1)`.
pub fn reconnect_delay(failures: u32, unit_random: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    let delay = BACKOFF_BASE.saturating_mul(1 << doublings).min(BACKOFF_CAP);
    delay.mul_f64(0.8 + 0.4 * unit_random)
}

/// Everything the event loop task needs.
pub struct MqttLoop {
    pub eventloop: EventLoop,
    pub client: AsyncClient,
    pub topics: Topics,
    pub queue_tx: mpsc::Sender<Queued>,
    pub stats: Arc<Stats>,
    pub retained: RetainedIncidents,
    pub ack: AckMode,
}

impl MqttLoop {
    /// Polls the connection until `cancel` fires, reconnecting with backoff,
    /// then keeps polling until `ingest_done` fires (at most a few seconds)
    /// so the acknowledgements of the last batch reach the broker.
    pub async fn run(mut self, cancel: CancellationToken, ingest_done: CancellationToken) {
        let mut failures = 0u32;
        loop {
            let polled = tokio::select! {
                () = cancel.cancelled() => break,
                polled = self.eventloop.poll() => polled,
            };
            match polled {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    failures = 0;
                    self.on_connected(ack.session_present);
                }
                Ok(Event::Incoming(Packet::Publish(message))) => {
                    let Some(queued) = self.route(message) else {
                        continue;
                    };
                    // NOTE: while ingest's queue is full (a commit failing
                    // on a full disk), this wait stops polling, so no
                    // PINGREQ goes out and the broker drops the connection
                    // after the keep-alive. A full data directory for 60 s
                    // under `up` recovered with nothing lost, but one run
                    // with the whole root file system full stayed stalled
                    // after space returned, for a reason not found.
                    if self.queue_tx.send(queued).await.is_err() {
                        tracing::debug!("ingest has stopped; the message stays with the broker");
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => self.check_suback(&ack),
                Ok(_) => {}
                Err(error) => {
                    self.stats.mqtt_connected.store(false, Ordering::Relaxed);
                    self.stats.mqtt_subscribed.store(false, Ordering::Relaxed);
                    failures = failures.saturating_add(1);
                    let delay = reconnect_delay(failures, rand::thread_rng().gen());
                    tracing::warn!(
                        %error,
                        attempt = failures,
                        delay_ms = delay.as_millis() as u64,
                        "MQTT connection failed, reconnecting"
                    );
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        self.disconnect(ingest_done).await;
    }

    fn check_suback(&self, ack: &rumqttc::SubAck) {
        let rejected = ack
            .return_codes
            .iter()
            .any(|code| matches!(code, rumqttc::SubscribeReasonCode::Failure));
        self.stats
            .mqtt_subscribed
            .store(!rejected, Ordering::Relaxed);
        if rejected {
            tracing::error!(
                filter = %self.topics.reading_filter(),
                "broker rejected the reading subscription: check its ACLs"
            );
        }
    }

    fn on_connected(&self, session_present: bool) {
        self.stats.mqtt_connected.store(true, Ordering::Relaxed);
        let filter = self.topics.reading_filter();
        tracing::info!(%filter, session_present, "connected to the MQTT broker");
        // Subscribe on every connection: the broker may have lost the session.
        if let Err(error) = self.client.try_subscribe(&filter, QoS::AtLeastOnce) {
            tracing::warn!(%error, %filter, "could not queue the subscription");
        }
        // The broker may have restarted and lost retained messages.
        let retained = self
            .retained
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (topic, payload) in retained.iter() {
            if let Err(error) =
                self.client
                    .try_publish(topic, QoS::AtLeastOnce, true, payload.clone())
            {
                tracing::debug!(%topic, %error, "could not queue the incident state");
            }
        }
    }

    /// Turns a message into a queued payload, or acknowledges and counts a
    /// message outside the reading topics.
    fn route(&self, message: rumqttc::Publish) -> Option<Queued> {
        let Some((site, sensor)) = self.topics.parse_reading(&message.topic) else {
            self.stats.reject("unexpected_topic");
            tracing::debug!(topic = %message.topic.escape_debug(), "ignored a message outside the reading topics");
            let _ = self.client.try_ack(&message);
            return None;
        };
        let inbound = Inbound {
            site: site.to_owned(),
            sensor: sensor.to_owned(),
            payload: message.payload.to_vec(),
            received_at: Utc::now(),
        };
        // With acknowledgements on receipt, rumqttc has already sent this one.
        let ack = (self.ack == AckMode::AfterCommit).then_some(message);
        Some(Queued {
            inbound,
            ack,
            done: None,
        })
    }

    /// Waits for ingest to finish, then sends DISCONNECT. Messages arriving
    /// meanwhile are left unacknowledged, so the broker delivers them again.
    async fn disconnect(mut self, ingest_done: CancellationToken) {
        let drain = async {
            loop {
                tokio::select! {
                    () = ingest_done.cancelled() => break,
                    polled = self.eventloop.poll() => if polled.is_err() { break },
                }
            }
        };
        let _ = tokio::time::timeout(SHUTDOWN_DRAIN, drain).await;
        self.stats.mqtt_connected.store(false, Ordering::Relaxed);
        self.stats.mqtt_subscribed.store(false, Ordering::Relaxed);
        if self.client.try_disconnect().is_err() {
            return;
        }
        let flush = async {
            loop {
                match self.eventloop.poll().await {
                    Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), flush).await;
        tracing::info!("disconnected from the MQTT broker");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_cap_with_jitter() {
        assert_eq!(reconnect_delay(1, 0.5), Duration::from_millis(500));
        assert_eq!(reconnect_delay(2, 0.5), Duration::from_secs(1));
        assert_eq!(reconnect_delay(7, 0.5), Duration::from_secs(30));
        assert_eq!(reconnect_delay(1_000, 0.5), Duration::from_secs(30));
        assert_eq!(reconnect_delay(1, 0.0), Duration::from_millis(400));
        assert!(reconnect_delay(7, 0.999) <= Duration::from_secs(36));
    }

    #[test]
    fn options_use_persistent_session_and_large_packets() {
        let settings = MqttSettings::default();
        let url: BrokerUrl = settings.url.parse().unwrap();
        let options = options(&settings, &url);
        assert!(!options.clean_session());
        assert!(options.manual_acks());
        assert_eq!(options.max_packet_size(), MAX_INCOMING_PACKET);
        assert_eq!(options.client_id(), "floorwatch-bridge");
    }
}
