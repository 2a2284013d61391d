//! The publisher across connection failures: a broker that is not up yet, a
//! connection cut before the PubAcks arrive, and a broker that lost the
//! session.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use floorwatch_edge::{PublishError, Publisher, FLUSH_DEADLINE};
use floorwatch_protocol::{Id, Reading};

use support::proxy::Proxy;
use support::{connect_publisher, free_port, start_broker, Subscriber, WAIT};

const READING_FILTER: &str = "floorwatch/+/+/reading";

fn reading(seq: u64) -> Reading {
    let time: DateTime<Utc> = "2026-12-04T12:00:00Z".parse().unwrap();
    let mut reading = Reading::temperature(
        Id::parse("plant-1").unwrap(),
        Id::parse("oven-1").unwrap(),
        time,
        25.0,
    );
    reading.seq = Some(seq);
    reading
}

async fn publish_seqs(publisher: &Publisher, seqs: std::ops::RangeInclusive<u64>) {
    for seq in seqs {
        publisher.publish(&reading(seq)).await.unwrap();
    }
}

fn seqs(received: &[support::Received]) -> Vec<u64> {
    received
        .iter()
        .filter_map(|item| item.reading.seq)
        .collect()
}

/// Publishes 1..=5 through a proxy that swallows the PubAcks, and waits
/// until the subscriber has them, so that all five are unacknowledged.
async fn publish_unacknowledged(proxy: &Proxy, publisher: &Publisher, subscriber: &mut Subscriber) {
    // Wait for the connection first, so the ConnAck is not swallowed.
    publish_seqs(publisher, 0..=0).await;
    publisher.flush(WAIT).await.unwrap();
    subscriber.receive(1).await;

    proxy.swallow_replies(true);
    publish_seqs(publisher, 1..=5).await;
    assert_eq!(seqs(&subscriber.receive(5).await), [1, 2, 3, 4, 5]);
    let unconfirmed = publisher.flush(Duration::from_millis(200)).await;
    assert!(
        matches!(
            unconfirmed,
            Err(PublishError::Unconfirmed { unconfirmed: 5, .. })
        ),
        "{unconfirmed:?}"
    );
    assert_eq!(publisher.acked(), 1);
}

#[tokio::test]
async fn readings_wait_for_broker_to_come_up() {
    let broker = start_broker();
    let mut subscriber = Subscriber::connect(broker, "test-subscriber", READING_FILTER).await;
    let proxy_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let publisher = connect_publisher(proxy_addr, "edge-late", 100);

    publish_seqs(&publisher, 1..=5).await;
    // Let a few connection attempts fail before the broker is reachable.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(publisher.acked(), 0);
    let _proxy = Proxy::start(proxy_addr, broker).await;

    publisher.flush(WAIT).await.unwrap();
    assert_eq!(publisher.acked(), 5);
    assert_eq!(seqs(&subscriber.receive(5).await), [1, 2, 3, 4, 5]);
    publisher.close(FLUSH_DEADLINE).await;
}

#[tokio::test]
async fn resumed_session_confirms_unacknowledged_readings() {
    let broker = start_broker();
    let mut subscriber = Subscriber::connect(broker, "test-subscriber", READING_FILTER).await;
    let proxy = Proxy::start(SocketAddr::from(([127, 0, 0, 1], 0)), broker).await;
    let publisher = connect_publisher(proxy.addr, "edge-resume", 100);
    publish_unacknowledged(&proxy, &publisher, &mut subscriber).await;

    proxy.swallow_replies(false);
    proxy.cut();
    publisher.flush(WAIT).await.unwrap();
    assert_eq!(publisher.acked(), 6);

    // Later readings still bind to the right packet ids.
    publish_seqs(&publisher, 6..=8).await;
    publisher.flush(WAIT).await.unwrap();
    assert_eq!(publisher.acked(), 9);
    let after = seqs(&subscriber.drain(Duration::from_millis(300)).await);
    assert!(after.ends_with(&[6, 7, 8]), "{after:?}");
    publisher.close(FLUSH_DEADLINE).await;
}

#[tokio::test]
async fn lost_session_sends_readings_again() {
    let first_broker = start_broker();
    let mut first = Subscriber::connect(first_broker, "test-subscriber", READING_FILTER).await;
    let proxy = Proxy::start(SocketAddr::from(([127, 0, 0, 1], 0)), first_broker).await;
    let publisher = connect_publisher(proxy.addr, "edge-lost", 100);
    publish_unacknowledged(&proxy, &publisher, &mut first).await;

    // A second broker plays the first one after a restart, because it has
    // no session for the publisher.
    let second_broker = start_broker();
    let mut second = Subscriber::connect(second_broker, "test-subscriber", READING_FILTER).await;
    proxy.redirect(second_broker);
    proxy.swallow_replies(false);
    proxy.cut();

    assert_eq!(seqs(&second.receive(5).await), [1, 2, 3, 4, 5]);
    publisher.flush(WAIT).await.unwrap();
    assert_eq!(publisher.acked(), 6);

    publish_seqs(&publisher, 6..=6).await;
    assert_eq!(seqs(&second.receive(1).await), [6]);
    publisher.flush(WAIT).await.unwrap();
    assert_eq!(publisher.acked(), 7);
    publisher.close(FLUSH_DEADLINE).await;
}
