//! Helpers shared by the end-to-end tests: free loopback ports, the whole
//! pipeline started in-process, an MQTT client and bounded waits.

#![allow(dead_code)]

pub mod faults;
pub mod nats;

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use floorwatch::broker::EmbeddedBroker;
use floorwatch::config::UpConfig;
use floorwatch_bridge::BridgeHandle;
use floorwatch_protocol::{BrokerUrl, Secret};
use floorwatch_scheduler::SchedulerHandle;
use rumqttc::{AsyncClient, EventLoop, MqttOptions, QoS};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// Upper bound of every wait on a condition.
pub const WAIT_LIMIT: Duration = Duration::from_secs(60);

/// Returns a loopback address with a port that was free a moment ago.
pub fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address")
}

/// Polls `check` until it returns `Some`, failing the test with `what` after
/// [`WAIT_LIMIT`].
pub async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {WAIT_LIMIT:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Sends logs to the test harness, which shows them for failing tests.
/// `RUST_LOG` sets the filter; the default is `warn`.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// Broker, scheduler and bridge wired as `floorwatch up` wires them.
pub struct Pipeline {
    pub broker: BrokerUrl,
    pub http: SocketAddr,
    pub secret: Secret,
    pub bridge: BridgeHandle,
    pub scheduler: SchedulerHandle,
    pub shutdown: CancellationToken,
}

impl Pipeline {
    /// Starts the pipeline with `config` and its databases in `data_dir`.
    pub async fn start(config: UpConfig, data_dir: &Path) -> Pipeline {
        init_logging();
        let mut table = floorwatch::broker::load_config(None, config.broker.as_ref()).unwrap();
        floorwatch::broker::set_listen(&mut table, free_addr()).unwrap();
        let broker = EmbeddedBroker::start(table, "--mqtt").unwrap();
        let broker = BrokerUrl {
            host: broker.addr().ip().to_string(),
            port: broker.addr().port(),
            tls: false,
        };

        let secret = Secret::generate();
        let shutdown = CancellationToken::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = listener.local_addr().unwrap();
        let scheduler_config =
            floorwatch::up::scheduler_config(config.scheduler, data_dir, &secret);
        let scheduler =
            floorwatch_scheduler::start(scheduler_config, listener, shutdown.child_token())
                .await
                .unwrap();
        let bridge_config =
            floorwatch::up::bridge_config(config.bridge, data_dir, &broker, http, &secret);
        let bridge = floorwatch_bridge::start(bridge_config, shutdown.child_token())
            .await
            .unwrap();
        wait_for("the bridge's reading subscription", || async {
            bridge.stats().mqtt_subscribed.then_some(())
        })
        .await;
        Pipeline {
            broker,
            http,
            secret,
            bridge,
            scheduler,
            shutdown,
        }
    }

    /// Returns the scheduler's tasks from `GET /api/v1/tasks`.
    pub async fn tasks(&self) -> Vec<Value> {
        let url = format!("http://{}/api/v1/tasks?limit=1000", self.http);
        let body: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
        body["tasks"].as_array().expect("tasks array").clone()
    }

    /// Waits until the scheduler stores `count` tasks and returns them.
    pub async fn wait_for_tasks(&self, count: usize) -> Vec<Value> {
        wait_for(&format!("{count} tasks"), || async {
            let tasks = self.tasks().await;
            (tasks.len() >= count).then_some(tasks)
        })
        .await
    }

    /// Waits until the bridge has accepted `count` readings and delivered
    /// everything in its outbox.
    pub async fn wait_until_idle(&self, accepted: u64) {
        wait_for(
            &format!("{accepted} readings accepted and an empty outbox"),
            || async {
                let stats = self.bridge.stats();
                (stats.readings_accepted >= accepted && stats.outbox_pending == 0).then_some(())
            },
        )
        .await
    }

    /// Connects an MQTT client to the embedded broker.
    pub async fn mqtt_client(&self, client_id: &str) -> MqttClient {
        MqttClient::connect(&self.broker, client_id).await
    }

    /// Stops the bridge and the scheduler.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.bridge.wait().await.unwrap();
        self.scheduler.wait().await.unwrap();
    }
}

/// An MQTT client whose event loop runs on its own task and forwards
/// incoming publishes to a channel.
pub struct MqttClient {
    pub client: AsyncClient,
    pub incoming: tokio::sync::mpsc::UnboundedReceiver<(String, Vec<u8>)>,
}

impl MqttClient {
    /// Connects with a clean session and waits for the ConnAck.
    pub async fn connect(broker: &BrokerUrl, client_id: &str) -> MqttClient {
        let mut options = MqttOptions::new(client_id, broker.host.clone(), broker.port);
        options.set_keep_alive(Duration::from_secs(30));
        options.set_max_packet_size(1024 * 1024, 1024 * 1024);
        let (client, event_loop) = AsyncClient::new(options, 1000);
        let (incoming_tx, incoming) = tokio::sync::mpsc::unbounded_channel();
        let (connected_tx, connected_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(drive(event_loop, incoming_tx, connected_tx));
        tokio::time::timeout(WAIT_LIMIT, connected_rx)
            .await
            .expect("MQTT ConnAck in time")
            .expect("MQTT event loop alive");
        MqttClient { client, incoming }
    }

    /// Publishes `payload` with QoS 1.
    pub async fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }

    /// Subscribes with QoS 1; the SubAck is awaited by the next `recv`.
    pub async fn subscribe(&self, filter: &str) {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .unwrap();
    }

    /// Receives the next publish, failing after [`WAIT_LIMIT`].
    pub async fn recv(&mut self) -> (String, Vec<u8>) {
        tokio::time::timeout(WAIT_LIMIT, self.incoming.recv())
            .await
            .expect("an MQTT message in time")
            .expect("MQTT event loop alive")
    }
}

async fn drive(
    mut event_loop: EventLoop,
    incoming_tx: tokio::sync::mpsc::UnboundedSender<(String, Vec<u8>)>,
    connected_tx: tokio::sync::oneshot::Sender<()>,
) {
    let mut connected_tx = Some(connected_tx);
    loop {
        match event_loop.poll().await {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                if let Some(tx) = connected_tx.take() {
                    let _ = tx.send(());
                }
            }
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(publish))) => {
                let _ = incoming_tx.send((publish.topic, publish.payload.to_vec()));
            }
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Returns a canonical reading payload.
pub fn reading_json(site: &str, sensor: &str, seq: u64, time: &str, celsius: f64) -> String {
    serde_json::json!({
        "v": 1, "site": site, "sensor": sensor, "seq": seq, "time": time,
        "temperature_c": celsius,
    })
    .to_string()
}
