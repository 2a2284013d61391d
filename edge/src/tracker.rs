//! Bookkeeping that matches each published reading to the PubAck that
//! confirms it.
//!
//! rumqttc assigns packet ids inside its event loop and reports only
//! `Outgoing::Publish(pkid)` and `Incoming::PubAck(pkid)`, not which request a
//! packet id belongs to. The event loop takes new publish requests from its
//! channel in FIFO order. So the tracker keeps the readings that are queued
//! but not yet sent in the same order, and binds each newly reported packet
//! id to the oldest of them. A packet id that is already bound is a
//! retransmission of the same reading.

use std::collections::{HashMap, VecDeque};

use rumqttc::{QoS, Request};

/// A reading handed to the MQTT client and not yet confirmed by a PubAck.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outstanding {
    /// Topic the reading was published on.
    pub topic: String,
    /// Sequence number of the reading, when it has one.
    pub seq: Option<u64>,
    /// Outbox row of the reading, for the agent's outbox-backed path.
    pub outbox_id: Option<i64>,
}

/// Meaning of an `Outgoing::Publish(pkid)` event to the tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sent {
    /// The oldest queued reading was sent with this packet id.
    First,
    /// A reading already bound to this packet id was sent again.
    Retransmitted,
    /// No reading was queued: the event does not belong to the tracker.
    Unknown,
}

/// Readings queued for the event loop and readings sent but not acknowledged.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    /// Queued in the request channel, oldest first, without a packet id yet.
    unsent: VecDeque<Outstanding>,
    /// Sent with a packet id and waiting for its PubAck.
    inflight: HashMap<u16, Outstanding>,
    /// Readings confirmed by a PubAck since the tracker was created.
    acked: u64,
}

impl Tracker {
    /// Records a reading that is about to enter the request channel.
    pub fn queue(&mut self, item: Outstanding) {
        self.unsent.push_back(item);
    }

    /// Removes the most recently queued reading, for a request that could
    /// not enter the channel after all.
    pub fn unqueue_last(&mut self) -> Option<Outstanding> {
        self.unsent.pop_back()
    }

    /// Handles `Outgoing::Publish(pkid)` for a QoS 1 publish.
    pub fn on_sent(&mut self, pkid: u16) -> Sent {
        if self.inflight.contains_key(&pkid) {
            return Sent::Retransmitted;
        }
        match self.unsent.pop_front() {
            Some(item) => {
                self.inflight.insert(pkid, item);
                Sent::First
            }
            None => Sent::Unknown,
        }
    }

    /// Handles `Incoming::PubAck(pkid)` and returns the confirmed reading, or
    /// `None` when no reading was waiting on that packet id.
    pub fn on_acked(&mut self, pkid: u16) -> Option<Outstanding> {
        let item = self.inflight.remove(&pkid)?;
        self.acked += 1;
        Some(item)
    }

    /// Prepares the requests rumqttc kept from a broken connection for a
    /// broker that did not keep the session, and returns how many readings
    /// will be sent again as new messages.
    ///
    /// `pending` is rumqttc's pending queue in sending order. Sent readings
    /// get packet id 0, so that rumqttc assigns fresh ones, and move back
    /// into the unsent queue in the order of `pending`. A publish whose packet
    /// id the tracker does not know is left unchanged.
    pub fn requeue_lost(&mut self, pending: &mut VecDeque<Request>) -> usize {
        let mut front = Vec::new();
        let mut resent = 0;
        for request in pending.iter_mut() {
            let Request::Publish(publish) = request else {
                continue;
            };
            if publish.qos == QoS::AtMostOnce {
                continue;
            }
            if publish.pkid == 0 {
                front.extend(self.unsent.pop_front());
            } else if let Some(item) = self.inflight.remove(&publish.pkid) {
                publish.pkid = 0;
                front.push(item);
                resent += 1;
            }
        }
        for item in front.into_iter().rev() {
            self.unsent.push_front(item);
        }
        resent
    }

    /// Number of readings queued or sent and not yet acknowledged.
    pub fn outstanding(&self) -> usize {
        self.unsent.len() + self.inflight.len()
    }

    /// Number of readings confirmed by a PubAck.
    pub fn acked(&self) -> u64 {
        self.acked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::Publish;

    fn item(seq: u64) -> Outstanding {
        Outstanding {
            topic: "floorwatch/s/t/reading".into(),
            seq: Some(seq),
            outbox_id: None,
        }
    }

    fn publish(pkid: u16) -> Request {
        let mut publish = Publish::new("floorwatch/s/t/reading", QoS::AtLeastOnce, "1");
        publish.pkid = pkid;
        Request::Publish(publish)
    }

    fn pkids(pending: &VecDeque<Request>) -> Vec<u16> {
        pending
            .iter()
            .filter_map(|request| match request {
                Request::Publish(publish) => Some(publish.pkid),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn binds_packet_ids_in_queue_order() {
        let mut tracker = Tracker::default();
        for seq in 1..=3 {
            tracker.queue(item(seq));
        }
        assert_eq!(tracker.on_sent(7), Sent::First);
        assert_eq!(tracker.on_sent(8), Sent::First);
        assert_eq!(tracker.outstanding(), 3);

        assert_eq!(tracker.on_acked(8), Some(item(2)));
        assert_eq!(tracker.on_acked(7), Some(item(1)));
        assert_eq!(tracker.acked(), 2);
        assert_eq!(tracker.outstanding(), 1);
    }

    #[test]
    fn retransmission_keeps_binding() {
        let mut tracker = Tracker::default();
        tracker.queue(item(1));
        tracker.queue(item(2));
        assert_eq!(tracker.on_sent(1), Sent::First);
        assert_eq!(tracker.on_sent(1), Sent::Retransmitted);
        assert_eq!(tracker.on_sent(2), Sent::First);
        assert_eq!(tracker.on_acked(1), Some(item(1)));
        assert_eq!(tracker.on_acked(2), Some(item(2)));
    }

    #[test]
    fn reused_packet_id_binds_next_reading() {
        let mut tracker = Tracker::default();
        tracker.queue(item(1));
        tracker.queue(item(2));
        tracker.on_sent(1);
        assert_eq!(tracker.on_acked(1), Some(item(1)));
        assert_eq!(tracker.on_sent(1), Sent::First);
        assert_eq!(tracker.on_acked(1), Some(item(2)));
    }

    #[test]
    fn unknown_events_change_nothing() {
        let mut tracker = Tracker::default();
        assert_eq!(tracker.on_sent(3), Sent::Unknown);
        assert_eq!(tracker.on_acked(3), None);
        assert_eq!(tracker.acked(), 0);
        assert_eq!(tracker.outstanding(), 0);
    }

    #[test]
    fn unqueue_last_removes_newest() {
        let mut tracker = Tracker::default();
        tracker.queue(item(1));
        tracker.queue(item(2));
        assert_eq!(tracker.unqueue_last(), Some(item(2)));
        tracker.on_sent(1);
        assert_eq!(tracker.on_acked(1), Some(item(1)));
    }

    #[test]
    fn lost_session_requeues_in_pending_order() {
        let mut tracker = Tracker::default();
        for seq in 1..=5 {
            tracker.queue(item(seq));
        }
        tracker.on_sent(1); // seq 1
        tracker.on_sent(2); // seq 2
        tracker.on_sent(3); // seq 3
        tracker.on_acked(1);

        // A partial resend left seq 3's request unsent at the head, then
        // rumqttc appended the inflight seq 2 and the channel's seq 4 and 5.
        let mut pending: VecDeque<Request> =
            [publish(3), publish(2), publish(0), publish(0)].into();
        assert_eq!(tracker.requeue_lost(&mut pending), 2);
        assert_eq!(pkids(&pending), [0, 0, 0, 0]);
        assert_eq!(tracker.outstanding(), 4);

        for pkid in 10..14 {
            assert_eq!(tracker.on_sent(pkid), Sent::First);
        }
        let order: Vec<_> = (10..14)
            .map(|pkid| tracker.on_acked(pkid).and_then(|item| item.seq))
            .collect();
        assert_eq!(order, [Some(3), Some(2), Some(4), Some(5)]);
    }

    #[test]
    fn lost_session_leaves_unknown_packet_ids() {
        let mut tracker = Tracker::default();
        let mut pending: VecDeque<Request> = [publish(9)].into();
        assert_eq!(tracker.requeue_lost(&mut pending), 0);
        assert_eq!(pkids(&pending), [9]);
    }
}
