//! A NATS cluster for the scale-out tests: `nats-server` processes with
//! JetStream and the MQTT listener on free loopback ports, their stores in a
//! temporary directory, each node killed when the cluster is dropped.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use floorwatch_bridge::BridgeConfig;
use floorwatch_protocol::{BrokerUrl, Reading, Secret};
use floorwatch_scheduler::SchedulerHandle;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{free_addr, wait_for, WAIT_LIMIT};

/// Finds `nats-server` on `PATH`, then in `/usr/sbin` (Debian's place).
pub fn nats_server_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file())
        .expect("nats-server not found on PATH or in /usr/sbin: apt-get install nats-server")
}

/// One server of the cluster.
struct Node {
    name: String,
    client: SocketAddr,
    mqtt: SocketAddr,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// A cluster of `nats-server` processes.
pub struct NatsCluster {
    nodes: Vec<Node>,
    pub partitions: u32,
    dir: tempfile::TempDir,
}

impl NatsCluster {
    /// Starts `size` servers in one cluster, with the subject mapping for
    /// `partitions` partitions when there is more than one, and waits until
    /// each accepts connections.
    pub fn start(size: usize, partitions: u32) -> Self {
        let dir = tempfile::tempdir().expect("create the cluster directory");
        let routes: Vec<SocketAddr> = (0..size).map(|_| free_addr()).collect();
        let mut nodes = Vec::new();
        for (index, route) in routes.iter().enumerate() {
            let name = format!("n{}", index + 1);
            let client = free_addr();
            let mqtt = free_addr();
            let config = dir.path().join(format!("{name}.conf"));
            let text = node_config(&name, client, mqtt, *route, &routes, partitions, dir.path());
            std::fs::write(&config, text).expect("write the node config");
            let log = dir.path().join(format!("{name}.log"));
            nodes.push(Node {
                name,
                client,
                mqtt,
                config,
                log,
                child: None,
            });
        }
        let mut cluster = Self {
            nodes,
            partitions,
            dir,
        };
        for index in 0..size {
            cluster.spawn(index);
        }
        for index in 0..size {
            cluster.wait_accepting(index);
        }
        cluster
    }

    /// Returns the `nats://` URL of every node.
    pub fn client_urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| format!("nats://{}", node.client))
            .collect()
    }

    /// Returns the MQTT listener of node `index`.
    pub fn mqtt_url(&self, index: usize) -> BrokerUrl {
        let addr = self.nodes[index].mqtt;
        BrokerUrl {
            host: addr.ip().to_string(),
            port: addr.port(),
            tls: false,
        }
    }

    /// Kills node `index` with SIGKILL and waits for it to exit.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.nodes[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `index` again with its config and store.
    pub fn restart(&mut self, index: usize) {
        self.spawn(index);
        self.wait_accepting(index);
    }

    /// Returns the logs of every node, for failure messages.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|node| {
                let text = std::fs::read_to_string(&node.log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                format!("--- {} ---\n{}\n", node.name, tail.join("\n"))
            })
            .collect()
    }

    /// Returns the temporary directory holding configs, logs and stores.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Waits until JetStream responds to API requests through `client`, which
    /// needs an elected meta leader in a cluster.
    pub async fn wait_jetstream(&self) {
        let client = self.connect().await;
        // A raw request, because async-nats 0.52 cannot parse the account
        // info of nats-server 2.9. A response without an error means the
        // meta leader is elected.
        wait_for("JetStream to elect a meta leader", || async {
            let request = client.request("$JS.API.INFO", "".into());
            let response = tokio::time::timeout(Duration::from_secs(2), request).await;
            let payload = response.ok()?.ok()?.payload;
            let body: Value = serde_json::from_slice(&payload).ok()?;
            body.get("error").is_none().then_some(())
        })
        .await;
    }

    /// Connects a NATS client to any node.
    pub async fn connect(&self) -> async_nats::Client {
        let servers: Vec<async_nats::ServerAddr> = self
            .client_urls()
            .iter()
            .map(|url| url.parse().expect("server URL"))
            .collect();
        tokio::time::timeout(WAIT_LIMIT, async_nats::connect(servers))
            .await
            .expect("connect to the cluster in time")
            .expect("connect to the cluster")
    }

    fn spawn(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("open the node log");
        let child = Command::new(nats_server_binary())
            .arg("-c")
            .arg(&node.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn nats-server");
        node.child = Some(child);
    }

    fn wait_accepting(&mut self, index: usize) {
        let deadline = Instant::now() + WAIT_LIMIT;
        let addr = self.nodes[index].client;
        while TcpStream::connect(addr).is_err() {
            let exited = self.nodes[index]
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            if let Some(status) = exited {
                panic!("nats-server {index} exited with {status}:\n{}", self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "nats-server {index} did not accept connections on {addr} within {WAIT_LIMIT:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for index in 0..self.nodes.len() {
            self.kill(index);
        }
    }
}

/// Returns the config text of one node. The server names, the cluster name
/// and JetStream are what nats-server 2.9 needs for its MQTT listener in a
/// cluster.
fn node_config(
    name: &str,
    client: SocketAddr,
    mqtt: SocketAddr,
    route: SocketAddr,
    routes: &[SocketAddr],
    partitions: u32,
    dir: &Path,
) -> String {
    let mut text = format!(
        "server_name: {name}\nlisten: {client}\n\
         jetstream {{ store_dir: \"{store}\", max_memory_store: 64MB, max_file_store: 1GB }}\n\
         mqtt {{ listen: {mqtt} }}\n",
        store = dir.join(name).display(),
    );
    if routes.len() > 1 {
        let routes: Vec<String> = routes
            .iter()
            .map(|addr| format!("\"nats-route://{addr}\""))
            .collect();
        text.push_str(&format!(
            "cluster {{ name: floorwatch-test, listen: {route}, routes: [{}] }}\n",
            routes.join(", ")
        ));
    }
    if partitions > 1 {
        let subjects = floorwatch_bridge::nats::subjects::Subjects::new("floorwatch", partitions);
        let (from, to) = subjects.server_mapping();
        text.push_str(&format!("mappings = {{ \"{from}\": \"{to}\" }}\n"));
    }
    text
}

/// A scheduler started in-process on a free port, receiving the webhooks.
pub struct TestScheduler {
    pub addr: SocketAddr,
    pub secret: Secret,
    pub handle: SchedulerHandle,
    pub shutdown: CancellationToken,
}

impl TestScheduler {
    /// Starts the scheduler with its database in `data_dir`.
    pub async fn start(data_dir: &Path) -> Self {
        let secret = Secret::generate();
        let shutdown = CancellationToken::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = floorwatch::up::scheduler_config(Default::default(), data_dir, &secret);
        let handle = floorwatch_scheduler::start(config, listener, shutdown.child_token())
            .await
            .expect("start the scheduler");
        Self {
            addr,
            secret,
            handle,
            shutdown,
        }
    }

    /// Returns the webhook URL.
    pub fn webhook_url(&self) -> String {
        format!("http://{}/webhooks", self.addr)
    }

    /// Returns the tasks from `GET /api/v1/tasks`.
    pub async fn tasks(&self) -> Vec<Value> {
        let url = format!("http://{}/api/v1/tasks?limit=1000", self.addr);
        let body: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
        body["tasks"].as_array().expect("tasks array").clone()
    }

    /// Waits until the scheduler stores at least `count` tasks.
    pub async fn wait_for_tasks(&self, count: usize) -> Vec<Value> {
        wait_for(&format!("{count} tasks"), || async {
            let tasks = self.tasks().await;
            (tasks.len() >= count).then_some(tasks)
        })
        .await
    }
}

/// Returns a bridge config reading from `cluster` and delivering to
/// `webhook_url` signed with `secret`, with its database in `data_dir`.
pub fn bridge_config(
    cluster: &NatsCluster,
    instance: &str,
    data_dir: &Path,
    webhook_url: &str,
    secret: &Secret,
) -> BridgeConfig {
    let mut config = BridgeConfig {
        source: floorwatch_bridge::config::Source::Nats,
        database: data_dir.join(format!("{instance}.db")),
        ..BridgeConfig::default()
    };
    config.nats.servers = cluster.client_urls();
    config.nats.instance = instance.to_owned();
    config.nats.partitions = cluster.partitions;
    config.nats.replicas = cluster.nodes.len().min(3);
    config.nats.connect_timeout_secs = 30;
    let mut endpoint = floorwatch_bridge::EndpointConfig::new(webhook_url, &secret.expose());
    endpoint.allow_private = true;
    config.endpoints.push(endpoint);
    // Retries within seconds, so that the events of a test that stops the
    // receiver for a while arrive soon after it is back.
    config.delivery.retry_schedule_ms = vec![200, 500, 1000, 1000, 1000, 1000, 1000, 1000];
    config
}

/// Returns a reading at minute `minute` after 08:00 on a fixed day.
pub fn reading(site: &str, sensor: &str, seq: u64, minute: u32, celsius: f64) -> Reading {
    let time = format!("2026-12-01T{:02}:{:02}:00Z", 8 + minute / 60, minute % 60);
    Reading {
        version: 1,
        site: site.parse().unwrap(),
        sensor: sensor.parse().unwrap(),
        seq: Some(seq),
        time: time.parse().unwrap(),
        temperature_c: Some(celsius),
        humidity_pct: None,
        quality: Default::default(),
    }
}

/// Requests a [`Recorder`] received, and its failure switches.
#[derive(Default)]
pub struct RecorderState {
    /// `webhook-id` and parsed body of each verified request, in arrival
    /// order, repeats included.
    pub events: std::sync::Mutex<Vec<(String, Value)>>,
    /// Arrival time of each entry of `events`.
    pub arrivals: std::sync::Mutex<Vec<Instant>>,
    /// Flag that makes every request get 503 while set.
    pub failing: std::sync::atomic::AtomicBool,
    /// Count of requests that got 503.
    pub rejected: std::sync::atomic::AtomicU64,
    /// Flag that makes every request get 410 Gone while set.
    pub returns_gone: std::sync::atomic::AtomicBool,
    /// Count of requests that got 410.
    pub gone_answers: std::sync::atomic::AtomicU64,
}

/// A webhook receiver that verifies each signature and records the events,
/// or returns 503 while it is switched to failing and 410 while it is
/// switched to gone.
pub struct Recorder {
    pub addr: SocketAddr,
    pub secret: Secret,
    pub state: std::sync::Arc<RecorderState>,
    task: tokio::task::JoinHandle<()>,
}

#[poem::handler]
async fn record_webhook(
    request: &poem::Request,
    body: Vec<u8>,
    state: poem::web::Data<&(std::sync::Arc<RecorderState>, Secret)>,
) -> poem::http::StatusCode {
    use std::sync::atomic::Ordering;
    let (state, secret) = *state;
    if state.returns_gone.load(Ordering::SeqCst) {
        state.gone_answers.fetch_add(1, Ordering::SeqCst);
        return poem::http::StatusCode::GONE;
    }
    if state.failing.load(Ordering::SeqCst) {
        state.rejected.fetch_add(1, Ordering::SeqCst);
        return poem::http::StatusCode::SERVICE_UNAVAILABLE;
    }
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    let now = chrono::Utc::now().timestamp();
    let verifier =
        floorwatch_protocol::webhook::Verifier::new(vec![secret.clone()], Duration::from_secs(300));
    let verified = verifier.verify(
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
        &body,
        now,
    );
    if verified.is_err() {
        return poem::http::StatusCode::UNAUTHORIZED;
    }
    let id = header("webhook-id").unwrap_or_default().to_owned();
    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut events = state.events.lock().unwrap();
    events.push((id, event));
    state.arrivals.lock().unwrap().push(Instant::now());
    drop(events);
    poem::http::StatusCode::NO_CONTENT
}

impl Recorder {
    /// Starts the receiver on a free loopback port.
    pub async fn start() -> Self {
        use poem::EndpointExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let secret = Secret::generate();
        let state = std::sync::Arc::new(RecorderState::default());
        let app = poem::Route::new()
            .at("/hook", poem::post(record_webhook))
            .data((std::sync::Arc::clone(&state), secret.clone()));
        let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).unwrap();
        let task = tokio::spawn(async move {
            let _ = poem::Server::new_with_acceptor(acceptor).run(app).await;
        });
        Self {
            addr,
            secret,
            state,
            task,
        }
    }

    /// Returns the webhook URL.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Returns the events received so far, each `webhook-id` once, in the
    /// order of first arrival.
    pub fn distinct_events(&self) -> Vec<Value> {
        let events = self.state.events.lock().unwrap();
        let mut seen = std::collections::HashSet::new();
        events
            .iter()
            .filter(|(id, _)| seen.insert(id.clone()))
            .map(|(_, event)| event.clone())
            .collect()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Checks that the events of each incident arrived in order: event
/// sequence numbers rise from 1 without a gap, `incident.opened` first and
/// `incident.resolved` last. Returns the incident ids.
pub fn assert_incidents_in_order(events: &[Value]) -> Vec<String> {
    let mut by_incident: std::collections::BTreeMap<String, Vec<&Value>> = Default::default();
    for event in events {
        let id = event["data"]["incident_id"].as_str().expect("incident id");
        by_incident.entry(id.to_owned()).or_default().push(event);
    }
    for (id, events) in &by_incident {
        let seqs: Vec<u64> = events
            .iter()
            .map(|event| event["data"]["seq"].as_u64().expect("event seq"))
            .collect();
        let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
        assert_eq!(seqs, expected, "events of {id} out of order");
        assert_eq!(events[0]["type"], "incident.opened", "first event of {id}");
        assert_eq!(
            events[events.len() - 1]["type"],
            "incident.resolved",
            "last event of {id}"
        );
    }
    by_incident.into_keys().collect()
}

/// A bridge running as a child process of the built `floorwatch` binary,
/// killed with SIGKILL when dropped.
pub struct BridgeProcess {
    pub instance: String,
    child: Option<Child>,
    log: PathBuf,
}

impl BridgeProcess {
    /// Writes `config` to `dir` and runs `floorwatch bridge --config FILE`.
    pub fn spawn(config: &BridgeConfig, dir: &Path) -> Self {
        let instance = config.nats.instance.clone();
        let path = dir.join(format!("{instance}.toml"));
        std::fs::write(&path, toml::to_string(config).expect("config to TOML"))
            .expect("write the bridge config");
        let log = dir.join(format!("{instance}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_floorwatch"))
            .arg("bridge")
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("create the bridge log"))
            .spawn()
            .expect("spawn floorwatch bridge");
        Self {
            instance,
            child: Some(child),
            log,
        }
    }

    /// Kills the process with SIGKILL, so it commits and releases nothing.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Returns the process's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for BridgeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Returns the owner of each partition lease in the cluster's lease
/// bucket, by partition.
pub async fn lease_owners(cluster: &NatsCluster) -> std::collections::BTreeMap<u32, String> {
    let client = cluster.connect().await;
    let js = async_nats::jetstream::new(client);
    let mut owners = std::collections::BTreeMap::new();
    let bucket = tokio::time::timeout(WAIT_LIMIT, js.get_key_value("floorwatch_leases")).await;
    let Ok(Ok(bucket)) = bucket else {
        return owners;
    };
    for partition in 0..cluster.partitions {
        let key = format!("lease.{partition}");
        let owner = tokio::time::timeout(Duration::from_secs(5), bucket.get(key)).await;
        if let Ok(Ok(Some(owner))) = owner {
            owners.insert(partition, String::from_utf8_lossy(&owner).into_owned());
        }
    }
    owners
}

/// Returns the JSON answer of `$JS.API.STREAM.INFO.{stream}`, or `None`
/// when no answer or an error came back, as while the stream elects a
/// leader. A raw request, because async-nats 0.52 parses not every answer
/// of nats-server 2.9.
pub async fn stream_info(client: &async_nats::Client, stream: &str) -> Option<Value> {
    let request = client.request(format!("$JS.API.STREAM.INFO.{stream}"), "".into());
    let response = tokio::time::timeout(Duration::from_secs(2), request).await;
    let payload = response.ok()?.ok()?.payload;
    let body: Value = serde_json::from_slice(&payload).ok()?;
    body.get("error").is_none().then_some(body)
}

/// Waits until each of `streams` has an elected leader.
pub async fn wait_stream_leaders(client: &async_nats::Client, streams: &[&str]) {
    for stream in streams {
        wait_for(&format!("a leader of stream {stream}"), || async {
            let info = stream_info(client, stream).await?;
            info["cluster"]["leader"].as_str().map(drop)
        })
        .await;
    }
}

/// Returns the message count of `stream`.
pub async fn stream_messages(client: &async_nats::Client, stream: &str) -> Option<u64> {
    stream_info(client, stream).await?["state"]["messages"].as_u64()
}

/// Returns a bridge configuration for `cluster` whose only endpoint is
/// `recorder`.
pub fn recorder_config(
    cluster: &NatsCluster,
    instance: &str,
    dir: &Path,
    recorder: &Recorder,
) -> BridgeConfig {
    let mut config = bridge_config(cluster, instance, dir, "http://unused", &recorder.secret);
    let mut endpoint =
        floorwatch_bridge::EndpointConfig::new(&recorder.url(), &recorder.secret.expose());
    endpoint.allow_private = true;
    config.endpoints = vec![endpoint];
    config
}

/// Starts a bridge with `config` and returns it with its shutdown token.
pub async fn start_bridge(
    config: BridgeConfig,
) -> (
    floorwatch_bridge::BridgeHandle,
    tokio_util::sync::CancellationToken,
) {
    let shutdown = tokio_util::sync::CancellationToken::new();
    let bridge = floorwatch_bridge::start(config, shutdown.child_token())
        .await
        .expect("bridge starts");
    (bridge, shutdown)
}
