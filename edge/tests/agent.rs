//! The edge agent against real brokers: delivery and status on rumqttd,
//! mosquitto and nats-server, a broker outage, the outbox bound and
//! rejected credentials.

mod support;

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use floorwatch_edge::{
    run_agent_with_stats, AgentError, AgentSensorConfig, AgentStats, EdgeConfig, SensorKind,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use support::brokers::{BrokerKind, ExternalBroker};
use support::proxy::Proxy;
use support::{
    first_arrivals, free_port, retained_payload, seqs, start_broker, wait_until, Subscriber, WAIT,
};

const READING_FILTER: &str = "floorwatch/+/+/reading";
const STATUS_TOPIC: &str = "floorwatch/plant-1/agents/edge-test/status";

/// An agent with one simulated sensor sampled every `interval_ms`.
fn agent_config(broker: SocketAddr, dir: &Path, client_id: &str, interval_ms: u64) -> EdgeConfig {
    let mut config = EdgeConfig {
        broker: format!("mqtt://{broker}"),
        client_id: client_id.to_owned(),
        agent: "edge-test".to_owned(),
        ..EdgeConfig::default()
    };
    config.outbox.path = dir.join("outbox.db");
    config.sensors = vec![AgentSensorConfig {
        kind: SensorKind::Simulated,
        id: "sim-1".to_owned(),
        interval_ms,
        model: None,
        path: None,
        pin: None,
        seed: Some(1),
    }];
    config
}

/// An agent running in this process.
struct RunningAgent {
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), AgentError>>,
    stats: Arc<AgentStats>,
}

impl RunningAgent {
    fn start(config: EdgeConfig) -> Self {
        let shutdown = CancellationToken::new();
        let stats = Arc::new(AgentStats::default());
        let task = tokio::spawn(run_agent_with_stats(
            config,
            shutdown.clone(),
            Arc::clone(&stats),
        ));
        Self {
            shutdown,
            task,
            stats,
        }
    }

    /// Shuts the agent down gracefully and returns its counters.
    async fn stop(self) -> Arc<AgentStats> {
        self.shutdown.cancel();
        let result = tokio::time::timeout(WAIT, self.task)
            .await
            .expect("agent stopped within the wait")
            .expect("agent task did not panic");
        result.expect("agent ran without error");
        self.stats
    }
}

/// Checks ordered delivery and the retained status on the broker at `addr`.
async fn check_delivery(addr: SocketAddr, client_id: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut subscriber = Subscriber::connect(addr, "test-subscriber", READING_FILTER).await;
    let agent = RunningAgent::start(agent_config(addr, dir.path(), client_id, 20));

    let received = subscriber.receive(10).await;
    assert_eq!(seqs(&received), (1..=10).collect::<Vec<_>>());
    assert_eq!(received[0].topic, "floorwatch/plant-1/sim-1/reading");
    assert_eq!(
        retained_payload(addr, "status-online", STATUS_TOPIC).await,
        "online"
    );

    let stats = agent.stop().await;
    assert_eq!(stats.depth(), 0, "readings left in the outbox");
    assert_eq!(stats.acked(), stats.stored());
    assert_eq!(
        retained_payload(addr, "status-offline", STATUS_TOPIC).await,
        "offline"
    );
}

#[tokio::test]
async fn agent_delivers_to_rumqttd() {
    check_delivery(start_broker(), "edge-rumqttd").await;
}

#[tokio::test]
async fn agent_delivers_to_mosquitto() {
    let broker = ExternalBroker::start(BrokerKind::Mosquitto);
    check_delivery(broker.addr, "edge-mosquitto").await;
}

#[tokio::test]
async fn agent_delivers_to_nats() {
    let broker = ExternalBroker::start(BrokerKind::Nats);
    check_delivery(broker.addr, "edge-nats").await;
}

/// Stops the broker until the agent has stored `stored_offline` readings,
/// starts it again and checks that every reading arrives, in order.
async fn check_outage(kind: BrokerKind, client_id: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = ExternalBroker::start(kind);
    let mut subscriber =
        Subscriber::connect_persistent(broker.addr, "outage-subscriber", READING_FILTER).await;
    let agent = RunningAgent::start(agent_config(broker.addr, dir.path(), client_id, 20));
    let mut received = subscriber.receive(5).await;

    broker.stop();
    let stats = Arc::clone(&agent.stats);
    wait_until("30 readings stored while the broker is down", WAIT, || {
        stats.depth() >= 30
    })
    .await;
    broker.resume();
    wait_until("the outbox to drain after the outage", WAIT * 2, || {
        stats.depth() < 5
    })
    .await;

    let stats = agent.stop().await;
    let total = stats.stored();
    let expected: Vec<u64> = (1..=total).collect();
    received.extend(
        subscriber
            .receive_until("every stored reading", WAIT * 2, |items| {
                first_arrivals(&seqs(items)).len() as u64 + 5 >= total
            })
            .await,
    );
    assert_eq!(
        first_arrivals(&seqs(&received)),
        expected,
        "{}",
        broker.log()
    );
    assert_eq!(stats.depth(), 0);
    assert_eq!(stats.dropped(), 0);
}

#[tokio::test]
async fn mosquitto_outage_loses_no_reading() {
    check_outage(BrokerKind::Mosquitto, "edge-outage-mosquitto").await;
}

#[tokio::test]
async fn nats_outage_loses_no_reading() {
    check_outage(BrokerKind::Nats, "edge-outage-nats").await;
}

#[tokio::test]
async fn outbox_bound_drops_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker();
    let mut subscriber = Subscriber::connect(broker, "test-subscriber", READING_FILTER).await;
    let proxy_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut config = agent_config(proxy_addr, dir.path(), "edge-bound", 10);
    config.outbox.max_rows = 5;
    let agent = RunningAgent::start(config);

    let stats = Arc::clone(&agent.stats);
    wait_until("20 readings dropped by the bound", WAIT, || {
        stats.dropped() >= 20
    })
    .await;
    assert!(stats.depth() <= 5, "depth {} over the bound", stats.depth());
    let _proxy = Proxy::start(proxy_addr, broker).await;
    wait_until("readings acknowledged after the outage", WAIT, || {
        stats.acked() >= 5
    })
    .await;

    let stats = agent.stop().await;
    let (dropped, total) = (stats.dropped(), stats.stored());
    let received = subscriber
        .receive_until("the newest reading", WAIT, |items| {
            seqs(items).contains(&total)
        })
        .await;

    // The kept readings are the newest ones without a gap. A row whose
    // reading was sent but not yet acknowledged can also be dropped by the
    // bound, so the drop count may exceed the readings that never arrived.
    let arrived = first_arrivals(&seqs(&received));
    let oldest = arrived[0];
    assert_eq!(arrived, (oldest..=total).collect::<Vec<_>>());
    assert!(oldest > 20, "oldest delivered seq {oldest} was not dropped");
    assert!(
        oldest - 1 <= dropped,
        "{} lost but {dropped} counted",
        oldest - 1
    );
}

/// A log buffer for a tracing subscriber.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn rejected_credentials_back_off() {
    let log = LogBuffer::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let dir = tempfile::tempdir().unwrap();
    let broker = ExternalBroker::start_mosquitto_with_password("edge", "right-password");
    let proxy = Proxy::start(SocketAddr::from(([127, 0, 0, 1], 0)), broker.addr).await;
    let mut config = agent_config(proxy.addr, dir.path(), "edge-auth", 100);
    config.username = Some("edge".to_owned());
    config.password = Some("wrong-password".to_owned());
    config.shutdown_timeout_ms = 500;
    let agent = RunningAgent::start(config);

    // Delays of 0.1, 0.2, 0.4, 0.8 and 1.6 s (±20 %) allow about five
    // attempts in 3 s; a loop without backoff would make hundreds.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let attempts = proxy.connections();
    assert!(
        (3..=8).contains(&attempts),
        "{attempts} connection attempts in 3 s"
    );
    assert_eq!(agent.stats.acked(), 0);
    assert!(agent.stats.depth() > 0, "readings are kept while rejected");

    let text = String::from_utf8_lossy(&log.0.lock().unwrap()).into_owned();
    assert!(
        text.contains("MQTT broker rejected the connection"),
        "no rejection in the log:\n{text}"
    );
    assert!(!text.contains("wrong-password"), "password logged:\n{text}");
    agent.stop().await;
}
