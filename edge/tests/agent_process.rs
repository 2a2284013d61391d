//! The edge agent as a separate process, killed with SIGKILL while the
//! broker is down and started again: every reading it took before the kill
//! must still arrive.
//!
//! The agent runs in this test binary itself: `child_agent` is an ignored
//! test that the parent test starts with `--ignored --exact`.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use floorwatch_edge::{run_agent, AgentSensorConfig, EdgeConfig, Outbox, OutboxBounds, SensorKind};
use tokio_util::sync::CancellationToken;

use support::brokers::{BrokerKind, ExternalBroker};
use support::{first_arrivals, seqs, wait_until, Subscriber, WAIT};

/// Environment variable that holds the child agent's config file.
const CHILD_CONFIG: &str = "FLOORWATCH_EDGE_TEST_CHILD_CONFIG";

const READING_FILTER: &str = "floorwatch/+/+/reading";

#[test]
#[ignore = "runs only as the child process of agent_survives_sigkill"]
fn child_agent() {
    let path = std::env::var_os(CHILD_CONFIG).expect("CHILD_CONFIG set by the parent test");
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let config = EdgeConfig::load(Some(Path::new(&path)), std::iter::empty()).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let on_term = shutdown.clone();
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
        tokio::spawn(async move {
            term.recv().await;
            on_term.cancel();
        });
        run_agent(config, shutdown).await.unwrap();
    });
}

/// A child agent process, killed when dropped.
struct ChildAgent(Child);

impl ChildAgent {
    fn spawn(config: &Path, log: &Path) -> Self {
        let log = std::fs::File::create(log).unwrap();
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["child_agent", "--exact", "--ignored", "--nocapture"])
            .env(CHILD_CONFIG, config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn the child agent");
        Self(child)
    }

    /// Sends SIGKILL and waits for the process to end.
    fn kill(&mut self) {
        self.0.kill().expect("SIGKILL the child agent");
        self.0.wait().expect("reap the child agent");
    }

    /// Sends SIGTERM and returns whether the agent exited successfully
    /// within the wait.
    async fn terminate(&mut self) -> bool {
        let pid = self.0.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid} failed");
        let mut status = None;
        wait_until("the child agent to exit after SIGTERM", WAIT, || {
            status = self.0.try_wait().unwrap();
            status.is_some()
        })
        .await;
        status.is_some_and(|status| status.success())
    }
}

impl Drop for ChildAgent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn write_config(broker: SocketAddr, dir: &Path) -> (PathBuf, PathBuf) {
    let mut config = EdgeConfig {
        broker: format!("mqtt://{broker}"),
        client_id: "edge-killed".to_owned(),
        ..EdgeConfig::default()
    };
    config.outbox.path = dir.join("outbox.db");
    config.sensors = vec![AgentSensorConfig {
        kind: SensorKind::Simulated,
        id: "sim-1".to_owned(),
        interval_ms: 20,
        model: None,
        path: None,
        pin: None,
        seed: Some(3),
    }];
    let path = dir.join("edge.toml");
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
    (path, config.outbox.path)
}

/// Returns the last sequence number the agent stored, reading the outbox
/// file the way the agent does.
fn last_stored_seq(outbox: &Path) -> u64 {
    let bounds = OutboxBounds {
        max_rows: u64::MAX,
        max_age: Duration::from_secs(u64::from(u32::MAX)),
    };
    Outbox::open(outbox, bounds)
        .and_then(|outbox| outbox.last_seq("plant-1", "sim-1"))
        .unwrap_or(0)
}

#[tokio::test]
async fn agent_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = ExternalBroker::start(BrokerKind::Mosquitto);
    let mut subscriber =
        Subscriber::connect_persistent(broker.addr, "kill-subscriber", READING_FILTER).await;
    let (config, outbox) = write_config(broker.addr, dir.path());
    let mut agent = ChildAgent::spawn(&config, &dir.path().join("first.log"));
    let mut received = subscriber.receive(10).await;

    // Readings taken during the outage exist only in the outbox file.
    broker.stop();
    wait_until("40 readings stored", WAIT, || {
        last_stored_seq(&outbox) >= 40
    })
    .await;
    agent.kill();
    let taken = last_stored_seq(&outbox);

    broker.resume();
    let mut restarted = ChildAgent::spawn(&config, &dir.path().join("second.log"));
    let earlier = seqs(&received);
    let later = subscriber
        .receive_until("every reading taken before the kill", WAIT * 2, |items| {
            let mut all = seqs(items);
            all.extend(&earlier);
            (1..=taken).all(|seq| all.contains(&seq))
        })
        .await;
    received.extend(later);
    let before_kill: Vec<u64> = first_arrivals(&seqs(&received))
        .into_iter()
        .filter(|seq| *seq <= taken)
        .collect();
    assert_eq!(before_kill, (1..=taken).collect::<Vec<_>>());

    assert!(restarted.terminate().await, "agent failed after SIGTERM");
    received.extend(subscriber.drain(Duration::from_millis(300)).await);
    let newest = seqs(&received).into_iter().max().unwrap_or(0);
    assert!(
        newest > taken,
        "no reading numbered after the kill: newest {newest}, taken {taken}"
    );
}
