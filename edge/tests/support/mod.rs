//! Helpers for the edge integration tests: an embedded rumqttd broker on a
//! free loopback port, a subscriber that records readings, CSV files and
//! bounded waiting.

#![allow(dead_code)]

pub mod brokers;
pub mod proxy;

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use floorwatch_edge::{Publisher, PublisherConfig};
use floorwatch_protocol::Reading;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::{mpsc, oneshot};

/// How long a test waits for a condition before it fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// Returns a loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    listener.local_addr().expect("read the bound port").port()
}

/// Starts rumqttd 0.20 with one MQTT 3.1.1 server on `127.0.0.1:port` and
/// waits until it accepts connections.
///
/// `Broker::start` blocks and rumqttd has no shutdown, so the broker runs on
/// its own thread until the test process exits.
pub fn start_broker_on(port: u16) -> SocketAddr {
    let config = format!(
        r#"
        id = 0
        [router]
        max_connections = 100
        max_outgoing_packet_count = 200
        max_segment_size = 10485760
        max_segment_count = 10

        [v4.1]
        name = "v4-1"
        listen = "127.0.0.1:{port}"
        next_connection_delay_ms = 1
            [v4.1.connections]
            connection_timeout_ms = 60000
            max_payload_size = 20480
            max_inflight_count = 100
            dynamic_filters = true
        "#
    );
    let config: rumqttd::Config = toml::from_str(&config).expect("rumqttd config parses");
    std::thread::Builder::new()
        .name(format!("rumqttd-{port}"))
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(error) = broker.start() {
                eprintln!("rumqttd on port {port} stopped: {error}");
            }
        })
        .expect("spawn the broker thread");

    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = std::time::Instant::now() + WAIT;
    while TcpStream::connect(addr).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "broker did not accept connections on {addr} within {WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    addr
}

/// Starts a broker on a free loopback port.
pub fn start_broker() -> SocketAddr {
    start_broker_on(free_port())
}

/// Connects a publisher to the broker at `addr`.
pub fn connect_publisher(addr: SocketAddr, client_id: &str, max_inflight: u16) -> Publisher {
    let broker = format!("mqtt://{addr}")
        .parse()
        .expect("broker address parses");
    let config = PublisherConfig {
        max_inflight,
        ..PublisherConfig::new(broker, client_id)
    };
    Publisher::connect(config).expect("publisher starts")
}

/// A reading received by the [`Subscriber`], with its topic.
#[derive(Debug, Clone)]
pub struct Received {
    pub topic: String,
    pub reading: Reading,
}

/// An MQTT client subscribed to one filter that records every reading.
pub struct Subscriber {
    received_rx: mpsc::UnboundedReceiver<Received>,
    client: AsyncClient,
}

impl Subscriber {
    /// Connects to `addr`, subscribes to `filter` at QoS 1 and waits for the
    /// SubAck.
    pub async fn connect(addr: SocketAddr, client_id: &str, filter: &str) -> Self {
        Self::connect_with(addr, client_id, filter, true).await
    }

    /// Like [`Subscriber::connect`] with a persistent session, which a
    /// broker with persistence keeps across its restarts, so that readings
    /// published while the subscriber reconnects are queued for it.
    pub async fn connect_persistent(addr: SocketAddr, client_id: &str, filter: &str) -> Self {
        Self::connect_with(addr, client_id, filter, false).await
    }

    async fn connect_with(addr: SocketAddr, client_id: &str, filter: &str, clean: bool) -> Self {
        let mut options = MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
        options.set_clean_session(clean);
        let (client, mut eventloop) = AsyncClient::new(options, 10);

        let (received_tx, received_rx) = mpsc::unbounded_channel();
        let (subscribed_tx, subscribed_rx) = oneshot::channel();
        let task_client = client.clone();
        let task_filter = filter.to_owned();
        tokio::spawn(async move {
            let mut subscribed_tx = Some(subscribed_tx);
            loop {
                match eventloop.poll().await {
                    // Subscribe on every connection, because a broker that
                    // restarted without persistence forgot the subscription.
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = task_client.try_subscribe(&task_filter, QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(tx) = subscribed_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        let reading = serde_json::from_slice(&publish.payload)
                            .expect("received payload is a canonical reading");
                        let received = Received {
                            topic: publish.topic.clone(),
                            reading,
                        };
                        if received_tx.send(received).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });

        tokio::time::timeout(WAIT, subscribed_rx)
            .await
            .unwrap_or_else(|_| panic!("no SubAck for {filter} within {WAIT:?}"))
            .expect("subscriber task ended before the SubAck");
        Self {
            received_rx,
            client,
        }
    }

    /// Waits until `count` readings have arrived and returns them in order.
    pub async fn receive(&mut self, count: usize) -> Vec<Received> {
        let mut received = Vec::with_capacity(count);
        let collect = async {
            while received.len() < count {
                match self.received_rx.recv().await {
                    Some(item) => received.push(item),
                    None => break,
                }
            }
        };
        if tokio::time::timeout(WAIT, collect).await.is_err() {
            panic!(
                "received {} of {count} readings within {WAIT:?}",
                received.len()
            );
        }
        received
    }

    /// Collects readings until `done` holds for all received so far, or
    /// panics after `limit` naming `what` it waited for.
    pub async fn receive_until(
        &mut self,
        what: &str,
        limit: Duration,
        mut done: impl FnMut(&[Received]) -> bool,
    ) -> Vec<Received> {
        let mut received = Vec::new();
        let collect = async {
            while !done(&received) {
                match self.received_rx.recv().await {
                    Some(item) => received.push(item),
                    None => break,
                }
            }
        };
        if tokio::time::timeout(limit, collect).await.is_err() {
            panic!(
                "timed out after {limit:?} waiting for {what}; received seqs {:?}",
                seqs(&received)
            );
        }
        received
    }

    /// Returns the readings that arrive within `quiet` of each other.
    pub async fn drain(&mut self, quiet: Duration) -> Vec<Received> {
        let mut received = Vec::new();
        while let Ok(Some(item)) = tokio::time::timeout(quiet, self.received_rx.recv()).await {
            received.push(item);
        }
        received
    }

    pub async fn disconnect(self) {
        let _ = self.client.disconnect().await;
    }
}

/// Writes a NAB-style CSV (`timestamp,value`, naive times) with one row per
/// entry of `rows` and returns its path.
pub fn write_csv(dir: &Path, name: &str, rows: &[(DateTime<Utc>, f64)]) -> PathBuf {
    let mut text = String::from("timestamp,value\n");
    for (time, value) in rows {
        writeln!(text, "{},{value}", time.format("%Y-%m-%d %H:%M:%S")).expect("write to string");
    }
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write the CSV file");
    path
}

/// Returns `count` rows starting at `start`, `gap` apart, with values
/// 70.0, 70.5, 71.0, ...
pub fn rows(
    start: DateTime<Utc>,
    gap: chrono::Duration,
    count: usize,
) -> Vec<(DateTime<Utc>, f64)> {
    (0..count)
        .map(|index| {
            let offset = gap * i32::try_from(index).expect("row count fits in i32");
            (start + offset, 70.0 + index as f64 / 2.0)
        })
        .collect()
}

/// Returns the sequence numbers of `received`, in arrival order.
pub fn seqs(received: &[Received]) -> Vec<u64> {
    received
        .iter()
        .filter_map(|item| item.reading.seq)
        .collect()
}

/// Returns `seqs` without repeats, keeping each first arrival, because
/// at-least-once delivery may repeat a reading after a reconnect.
pub fn first_arrivals(seqs: &[u64]) -> Vec<u64> {
    let mut seen = std::collections::HashSet::new();
    seqs.iter()
        .copied()
        .filter(|seq| seen.insert(*seq))
        .collect()
}

/// Connects to `addr`, subscribes to `topic` and returns the retained
/// message's payload, or panics after [`WAIT`].
pub async fn retained_payload(addr: SocketAddr, client_id: &str, topic: &str) -> String {
    let options = MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    client
        .subscribe(topic, QoS::AtLeastOnce)
        .await
        .expect("queue the subscription");
    let wait = async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    return String::from_utf8_lossy(&publish.payload).into_owned()
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .unwrap_or_else(|_| panic!("no retained message on {topic} within {WAIT:?}"))
}

/// Polls `condition` every 20 ms until it holds, or panics after `limit`
/// naming `what` it waited for.
pub async fn wait_until(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
