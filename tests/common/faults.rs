//! Helpers of the fault suite (`tests/faults.rs`): the broker, bridge and
//! scheduler as child processes of the built binary, killed on drop, and
//! the HTTP probes the scenarios assert on.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use floorwatch_bridge::{BridgeConfig, EndpointConfig};
use floorwatch_protocol::{BrokerUrl, Secret};
use floorwatch_scheduler::SchedulerConfig;
use serde_json::Value;

use super::{free_addr, wait_for, WAIT_LIMIT};

/// Path of the mosquitto binary used for the persistent-broker cases.
pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// Time limit of one HTTP request to the bridge or the scheduler.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Site of the readings that loadgen publishes.
pub const LOADGEN_SITE: &str = "loadgen";

/// A child process that is killed with SIGKILL and reaped on drop.
pub struct ChildGuard {
    pub name: String,
    child: Option<Child>,
    pub log: PathBuf,
}

impl ChildGuard {
    /// Starts `program args` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, program: &str, args: &[&str], log: &Path) -> ChildGuard {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file opens");
        let child = Command::new(program)
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file handle"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|error| panic!("{name} ({program}) failed to start: {error}"));
        ChildGuard {
            name: name.to_owned(),
            child: Some(child),
            log: log.to_owned(),
        }
    }

    /// Returns the process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("child is running").id()
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits up to [`WAIT_LIMIT`] for the process to end.
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self.pid().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM to {} failed", self.name);
        self.wait_exit_within(WAIT_LIMIT)
            .unwrap_or_else(|| panic!("{} did not stop within {WAIT_LIMIT:?}", self.name))
    }

    /// Waits up to `limit` for the process to end by itself.
    pub fn wait_exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        let child = self.child.as_mut()?;
        while std::time::Instant::now() < deadline {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Returns the exit status when the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().expect("try_wait")?;
        self.child = None;
        Some(status)
    }

    /// Returns the log written so far.
    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Which MQTT broker a cluster runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    /// `floorwatch broker` (rumqttd, sessions in memory only).
    Embedded,
    /// mosquitto with persistence to the cluster's directory.
    Mosquitto,
}

/// Broker, bridge and scheduler as separate processes on loopback ports,
/// with their files in one directory.
pub struct Cluster {
    pub dir: PathBuf,
    pub kind: BrokerKind,
    pub mqtt: SocketAddr,
    pub bridge_http: SocketAddr,
    pub bridge_config: PathBuf,
    pub bridge_db: PathBuf,
    pub scheduler_http: SocketAddr,
    pub scheduler_config: PathBuf,
    pub broker: Option<ChildGuard>,
    pub bridge: Option<ChildGuard>,
    pub scheduler: Option<ChildGuard>,
    starts: u32,
    http: reqwest::Client,
}

impl Cluster {
    /// Writes the configuration files into `dir`, with the bridge database
    /// at `bridge_db`, and starts the three processes.
    pub async fn start(dir: &Path, kind: BrokerKind, bridge_db: &Path) -> Cluster {
        Cluster::start_with(dir, kind, bridge_db, |_| {}).await
    }

    /// Like [`Cluster::start`], with the bridge's configuration changed by
    /// `adjust` before it is written.
    pub async fn start_with(
        dir: &Path,
        kind: BrokerKind,
        bridge_db: &Path,
        adjust: impl FnOnce(&mut BridgeConfig),
    ) -> Cluster {
        let secret = Secret::generate();
        let mqtt = free_addr();
        let bridge_http = free_addr();
        let scheduler_http = free_addr();

        let scheduler = SchedulerConfig {
            listen: scheduler_http,
            database: dir.join("scheduler.db"),
            secrets: vec![secret.expose().to_string()],
            ..SchedulerConfig::default()
        };
        let scheduler_config = dir.join("scheduler.toml");
        std::fs::write(&scheduler_config, toml::to_string(&scheduler).unwrap()).unwrap();

        let mut endpoint = EndpointConfig::new(
            &format!("http://{scheduler_http}/webhooks"),
            &secret.expose(),
        );
        endpoint.allow_private = true;
        // Short pauses, so that deliveries resume within seconds of the
        // scheduler's return instead of after the default 30 s.
        endpoint.breaker_cooldown_ms = 300;
        endpoint.breaker_max_cooldown_ms = 1000;
        let mut bridge = BridgeConfig {
            database: bridge_db.to_owned(),
            endpoints: vec![endpoint],
            ..BridgeConfig::default()
        };
        bridge.mqtt.url = format!("mqtt://{mqtt}");
        // 200 retries 300 ms apart: no event becomes a dead letter during
        // an outage of the few seconds the scenarios cause.
        bridge.delivery.retry_schedule_ms = vec![300; 200];
        bridge.http.enabled = true;
        bridge.http.listen = bridge_http;
        adjust(&mut bridge);
        let bridge_config = dir.join("bridge.toml");
        std::fs::write(&bridge_config, toml::to_string(&bridge).unwrap()).unwrap();

        let mut cluster = Cluster {
            dir: dir.to_owned(),
            kind,
            mqtt,
            bridge_http,
            bridge_config,
            bridge_db: bridge_db.to_owned(),
            scheduler_http,
            scheduler_config,
            broker: None,
            bridge: None,
            scheduler: None,
            starts: 0,
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(HTTP_TIMEOUT)
                .build()
                .unwrap(),
        };
        cluster.start_broker().await;
        cluster.start_scheduler().await;
        cluster.start_bridge().await;
        cluster
    }

    /// Returns the broker's URL.
    pub fn broker_url(&self) -> BrokerUrl {
        BrokerUrl {
            host: self.mqtt.ip().to_string(),
            port: self.mqtt.port(),
            tls: false,
        }
    }

    fn next_log(&mut self, name: &str) -> PathBuf {
        self.starts += 1;
        self.dir.join(format!("{:02}-{name}.log", self.starts))
    }

    /// Starts the broker and waits until it accepts TCP connections.
    pub async fn start_broker(&mut self) {
        let log = self.next_log("broker");
        let guard = match self.kind {
            BrokerKind::Embedded => {
                let config = self.dir.join("broker.toml");
                std::fs::write(&config, format!("[v4.1]\nlisten = \"{}\"\n", self.mqtt)).unwrap();
                let config = config.to_string_lossy().into_owned();
                ChildGuard::spawn(
                    "broker",
                    env!("CARGO_BIN_EXE_floorwatch"),
                    &["broker", "--config", &config],
                    &log,
                )
            }
            BrokerKind::Mosquitto => {
                let config = self.dir.join("mosquitto.conf");
                let store = self.dir.join("mosquitto");
                std::fs::create_dir_all(&store).unwrap();
                // Persistence keeps the bridge's session and its queued and
                // unacknowledged messages across a graceful restart. No
                // queue limit: the default of 1,000 messages would drop
                // readings while the bridge is down. Run as root, mosquitto
                // switches to the user `mosquitto`, which cannot write to the
                // test's directory, so `user` keeps the current user.
                let text = format!(
                    "listener {port} 127.0.0.1\n\
                     user root\n\
                     allow_anonymous true\n\
                     persistence true\n\
                     persistence_location {store}/\n\
                     max_queued_messages 0\n\
                     log_dest stdout\n",
                    port = self.mqtt.port(),
                    store = store.display(),
                );
                std::fs::write(&config, text).unwrap();
                let config = config.to_string_lossy().into_owned();
                ChildGuard::spawn("mosquitto", MOSQUITTO, &["-c", &config], &log)
            }
        };
        self.broker = Some(guard);
        let addr = self.mqtt;
        wait_for("the broker's listener", || async move {
            tokio::net::TcpStream::connect(addr).await.ok().map(drop)
        })
        .await;
    }

    /// Starts the scheduler and waits until `/readyz` returns 200.
    pub async fn start_scheduler(&mut self) {
        let log = self.next_log("scheduler");
        let config = self.scheduler_config.to_string_lossy().into_owned();
        self.scheduler = Some(ChildGuard::spawn(
            "scheduler",
            env!("CARGO_BIN_EXE_floorwatch"),
            &["scheduler", "--config", &config],
            &log,
        ));
        self.wait_scheduler_ready().await;
    }

    /// Starts the bridge and waits until it is subscribed to the readings.
    pub async fn start_bridge(&mut self) {
        let log = self.next_log("bridge");
        let config = self.bridge_config.to_string_lossy().into_owned();
        self.bridge = Some(ChildGuard::spawn(
            "bridge",
            env!("CARGO_BIN_EXE_floorwatch"),
            &["bridge", "--config", &config],
            &log,
        ));
        self.wait_bridge_ready().await;
    }

    /// Waits until the scheduler's `/healthz` and `/readyz` return 200.
    pub async fn wait_scheduler_ready(&self) {
        wait_for("the scheduler's /healthz and /readyz", || async {
            for path in ["/healthz", "/readyz"] {
                let url = format!("http://{}{path}", self.scheduler_http);
                let response = self.http.get(url).send().await.ok()?;
                response.status().is_success().then_some(())?;
            }
            Some(())
        })
        .await;
    }

    /// Waits until the bridge serves `/metrics` and reports its reading
    /// subscription acknowledged by the broker.
    pub async fn wait_bridge_ready(&self) {
        wait_for("the bridge's reading subscription", || async {
            let page = self.bridge_metrics().await?;
            page.contains("floorwatch_mqtt_subscribed 1\n")
                .then_some(())
        })
        .await;
    }

    /// Returns the bridge's `/metrics` page, or `None` when it does not
    /// respond.
    pub async fn bridge_metrics(&self) -> Option<String> {
        let url = format!("http://{}/metrics", self.bridge_http);
        let response = self.http.get(url).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.text().await.ok()
    }

    /// Returns one sample of the bridge's metrics, 0 when it is absent.
    pub async fn bridge_metric(&self, sample: &str) -> u64 {
        let page = self
            .bridge_metrics()
            .await
            .expect("bridge /metrics answers");
        metric_value(&page, sample)
    }

    /// Waits until the bridge's outbox has no pending row.
    pub async fn wait_outbox_empty(&self) {
        wait_for("an empty bridge outbox", || async {
            let page = self.bridge_metrics().await?;
            (metric_value(&page, "floorwatch_outbox_pending") == 0).then_some(())
        })
        .await;
    }

    /// Returns every task from `GET /api/v1/tasks`, newest first.
    pub async fn tasks(&self) -> Option<Vec<Value>> {
        let mut tasks = Vec::new();
        for page in 1.. {
            let url = format!(
                "http://{}/api/v1/tasks?limit=1000&page={page}",
                self.scheduler_http
            );
            let body: Value = self.http.get(url).send().await.ok()?.json().await.ok()?;
            let batch = body["tasks"].as_array()?.clone();
            let done = batch.len() < 1000;
            tasks.extend(batch);
            if done {
                break;
            }
        }
        Some(tasks)
    }

    /// Waits until the scheduler lists at least `count` tasks, and returns
    /// them.
    pub async fn wait_tasks(&self, count: usize) -> Vec<Value> {
        wait_for(&format!("{count} tasks in the scheduler"), || async {
            let tasks = self.tasks().await?;
            (tasks.len() >= count).then_some(tasks)
        })
        .await
    }

    /// Sends SIGKILL to the bridge.
    pub fn kill_bridge(&mut self) {
        self.bridge.as_mut().expect("bridge started").kill();
    }

    /// Sends SIGKILL to the scheduler.
    pub fn kill_scheduler(&mut self) {
        self.scheduler.as_mut().expect("scheduler started").kill();
    }

    /// Returns the text of every log file of this cluster, for failures.
    pub fn logs(&self) -> String {
        let mut names: Vec<_> = std::fs::read_dir(&self.dir)
            .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        names.retain(|path| path.extension().is_some_and(|ext| ext == "log"));
        names.sort();
        let mut text = String::new();
        for path in names {
            let body =
                String::from_utf8_lossy(&std::fs::read(&path).unwrap_or_default()).into_owned();
            let tail: Vec<&str> = body.lines().rev().take(40).collect();
            text += &format!("--- {} (last 40 lines)\n", path.display());
            for line in tail.into_iter().rev() {
                text += line;
                text.push('\n');
            }
        }
        text
    }
}

/// Returns the value of `sample` (a metric name with its labels) on a
/// Prometheus text page, 0 when the page has no such line.
pub fn metric_value(page: &str, sample: &str) -> u64 {
    page.lines()
        .filter_map(|line| line.strip_prefix(sample))
        .filter_map(|rest| rest.strip_prefix(' '))
        .find_map(|value| value.trim().parse::<f64>().ok())
        .map_or(0, |value| value as u64)
}

/// Asserts that no incident has two tasks: incident ids are unique, and so
/// are the (sensor, opening time) pairs of the episodes.
pub fn assert_one_task_per_incident(tasks: &[Value]) {
    let mut by_incident: BTreeMap<String, usize> = BTreeMap::new();
    let mut episodes = BTreeSet::new();
    for task in tasks {
        let incident = task["incident_id"]
            .as_str()
            .expect("task has an incident_id");
        *by_incident.entry(incident.to_owned()).or_default() += 1;
        let episode = (
            task["site"].to_string(),
            task["sensor"].to_string(),
            task["opened_at"].to_string(),
        );
        assert!(
            episodes.insert(episode.clone()),
            "two tasks for the episode {episode:?}"
        );
    }
    let repeated: Vec<_> = by_incident.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.is_empty(),
        "incidents with several tasks: {repeated:?}"
    );
}

/// Loadgen's JSON summary, with the figures the scenarios assert on.
#[derive(Debug)]
pub struct LoadSummary {
    pub published: u64,
    pub acked: u64,
    pub rejected: u64,
    pub expected: u64,
    pub observed: u64,
    pub lost: u64,
    pub unexpected: u64,
    pub json: Value,
}

impl LoadSummary {
    /// Reads the summary loadgen wrote to `path`.
    pub fn read(path: &Path) -> LoadSummary {
        let text = std::fs::read_to_string(path).expect("loadgen wrote its summary");
        let json: Value = serde_json::from_str(&text).expect("summary is JSON");
        let number = |pointer: &str| {
            json.pointer(pointer)
                .and_then(Value::as_u64)
                .unwrap_or_else(|| panic!("summary has no {pointer}: {text}"))
        };
        LoadSummary {
            published: number("/readings/published"),
            acked: number("/readings/acked"),
            rejected: number("/readings/rejected"),
            expected: number("/incidents/expected"),
            observed: number("/incidents/observed"),
            lost: number("/incidents/lost"),
            unexpected: number("/incidents/unexpected"),
            json,
        }
    }
}

/// Settings of one loadgen run.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub rate: u32,
    pub sensors: u32,
    pub duration_secs: u32,
    /// Time loadgen waits for PubAcks and tasks after publishing, at most 30.
    pub grace_secs: u32,
}

/// Starts `floorwatch loadgen` against the cluster; its summary goes to
/// `DIR/NAME.json`. 20 % of the sensors breach, one episode a second.
pub fn spawn_loadgen(cluster: &mut Cluster, name: &str, load: Load) -> (ChildGuard, PathBuf) {
    let out = cluster.dir.join(format!("{name}.json"));
    let log = cluster.next_log(name);
    let args = [
        "loadgen".to_owned(),
        "--broker".to_owned(),
        format!("mqtt://{}", cluster.mqtt),
        "--api".to_owned(),
        format!("http://{}", cluster.scheduler_http),
        "--site".to_owned(),
        LOADGEN_SITE.to_owned(),
        "--rate".to_owned(),
        load.rate.to_string(),
        "--sensors".to_owned(),
        load.sensors.to_string(),
        "--clients".to_owned(),
        "2".to_owned(),
        "--breach-share".to_owned(),
        "0.2".to_owned(),
        "--duration".to_owned(),
        load.duration_secs.to_string(),
        "--grace".to_owned(),
        load.grace_secs.to_string(),
        "--out".to_owned(),
        out.to_string_lossy().into_owned(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let guard = ChildGuard::spawn(name, env!("CARGO_BIN_EXE_floorwatch"), &args, &log);
    (guard, out)
}

/// Waits for loadgen to end (its publishing time plus at most 30 s of
/// grace) and returns its summary.
pub fn finish_loadgen(mut guard: ChildGuard, out: &Path, load: Load) -> LoadSummary {
    let limit = Duration::from_secs(u64::from(load.duration_secs)) + WAIT_LIMIT;
    let status = guard
        .wait_exit_within(limit)
        .unwrap_or_else(|| panic!("loadgen did not end within {limit:?}"));
    assert!(status.success(), "loadgen failed:\n{}", guard.log_text());
    LoadSummary::read(out)
}
