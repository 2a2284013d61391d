//! The task that polls the rumqttc event loop for a [`Publisher`]: it feeds
//! packet events to the tracker, sleeps between reconnection attempts and
//! resends unacknowledged readings when the broker has lost the session.
//!
//! [`Publisher`]: crate::Publisher

use std::collections::VecDeque;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rumqttc::{AsyncClient, ConnAck, Event, EventLoop, Outgoing, Packet, QoS, Request};
use tokio_util::sync::CancellationToken;

use crate::backoff::reconnect_delay;
use crate::options::STATUS_ONLINE;
use crate::publisher::Shared;
use crate::tracker::Sent;

/// Publishes the retained agent status.
#[derive(Clone)]
pub(crate) struct StatusPublisher {
    pub client: AsyncClient,
    pub topic: String,
}

impl StatusPublisher {
    /// Queues `status` as a retained QoS 0 message. QoS 0 keeps status
    /// messages out of the PubAck tracker; a lost `online` is followed by
    /// the `offline` will and a new `online` on the next connection.
    pub fn publish(&self, status: &'static str) {
        let queued = self
            .client
            .try_publish(&self.topic, QoS::AtMostOnce, true, status);
        if let Err(error) = queued {
            tracing::warn!(topic = %self.topic, status, %error, "failed to queue the agent status");
        }
    }
}

/// Polls `eventloop` until the publisher disconnects or `stop` is cancelled.
pub(crate) async fn run(
    mut eventloop: EventLoop,
    shared: Arc<Shared>,
    broker: String,
    status: Option<StatusPublisher>,
    stop: CancellationToken,
) {
    let mut driver = Driver {
        shared,
        broker,
        status,
        failures: 0,
        stash: VecDeque::new(),
        rng: StdRng::from_entropy(),
    };
    loop {
        let polled = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            polled = eventloop.poll() => polled,
        };
        let event = match polled {
            Ok(event) => event,
            Err(error) => {
                driver.shared.set_connected(false);
                driver.stash_pending(&mut eventloop);
                let delay = driver.next_delay(&error);
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(delay) => continue,
                }
            }
        };
        match event {
            Event::Incoming(Packet::ConnAck(connack)) => {
                driver.on_connack(&mut eventloop, &connack)
            }
            Event::Incoming(Packet::PubAck(puback)) => driver.on_puback(puback.pkid),
            Event::Outgoing(Outgoing::Publish(pkid)) if pkid != 0 => driver.on_sent(pkid),
            Event::Outgoing(Outgoing::Disconnect) => break,
            _ => {}
        }
    }
    driver.shared.stop();
    tracing::debug!(broker = %driver.broker, "MQTT event loop stopped");
}

/// State of the polling task between events.
struct Driver {
    shared: Arc<Shared>,
    broker: String,
    status: Option<StatusPublisher>,
    /// Consecutive failed polls since the last ConnAck.
    failures: u32,
    /// Requests rumqttc kept from the broken connection, held back until the
    /// ConnAck shows whether the broker kept the session.
    stash: VecDeque<Request>,
    rng: StdRng,
}

impl Driver {
    /// Takes the requests rumqttc saved for the next connection.
    ///
    /// rumqttc drops them on a ConnAck without `session_present` before the
    /// caller sees that ConnAck, so they are kept here until then.
    fn stash_pending(&mut self, eventloop: &mut EventLoop) {
        self.stash.extend(eventloop.pending.drain(..));
    }

    /// Counts a failed poll, logs it and returns how long to wait.
    fn next_delay(&mut self, error: &rumqttc::ConnectionError) -> std::time::Duration {
        self.failures = self.failures.saturating_add(1);
        let delay = reconnect_delay(self.failures, self.rng.gen_range(-1.0..=1.0));
        let unacknowledged = self.shared.update(|tracker| tracker.outstanding());
        if let rumqttc::ConnectionError::ConnectionRefused(code) = error {
            tracing::error!(
                broker = %self.broker,
                attempt = self.failures,
                ?code,
                "MQTT broker rejected the connection: check the username, password and client id"
            );
        }
        tracing::warn!(
            broker = %self.broker,
            attempt = self.failures,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            unacknowledged,
            %error,
            "MQTT connection failed, reconnecting"
        );
        delay
    }

    fn on_connack(&mut self, eventloop: &mut EventLoop, connack: &ConnAck) {
        self.failures = 0;
        self.shared.set_connected(true);
        let mut resent = 0;
        if !connack.session_present {
            resent = self
                .shared
                .update(|tracker| tracker.requeue_lost(&mut self.stash));
        }
        if resent > 0 {
            tracing::warn!(
                broker = %self.broker,
                resent,
                "MQTT broker did not keep the session, sending unacknowledged readings again"
            );
        }

        // Stashed requests are older than anything rumqttc queued since, so
        // they go first.
        let newer = std::mem::take(&mut eventloop.pending);
        eventloop.pending = self.stash.drain(..).chain(newer).collect();
        tracing::info!(
            broker = %self.broker,
            session_present = connack.session_present,
            pending = eventloop.pending.len(),
            "connected to MQTT broker"
        );
        if let Some(status) = &self.status {
            status.publish(STATUS_ONLINE);
        }
    }

    fn on_sent(&mut self, pkid: u16) {
        if self.shared.update(|tracker| tracker.on_sent(pkid)) == Sent::Unknown {
            tracing::warn!(broker = %self.broker, pkid, "MQTT publish sent that no reading was queued for");
        }
    }

    fn on_puback(&mut self, pkid: u16) {
        match self.shared.update(|tracker| tracker.on_acked(pkid)) {
            Some(item) => {
                self.shared.permits.add_permits(1);
                self.shared.report_acked(&item);
                tracing::trace!(topic = %item.topic, seq = item.seq, pkid, "reading acknowledged");
            }
            None => {
                tracing::warn!(broker = %self.broker, pkid, "PubAck for a packet id no reading was sent with");
            }
        }
    }
}
