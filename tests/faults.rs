//! Fault suite. The broker, the bridge and the scheduler run as separate
//! processes of the built binary under load from `floorwatch loadgen`.
//! Each test injects one fault: SIGKILL of the bridge, the scheduler or
//! mosquitto, a broker restart, a full disk under the bridge's database,
//! or a replay file with corrupt lines. Afterwards every incident the load opened must
//! have exactly one task, every rejected input must be counted, and the
//! processes must serve their probes again.
//!
//! Fault moments come from a seeded RNG; the seed is printed and
//! `FLOORWATCH_FAULTS_SEED=N` repeats it. `FLOORWATCH_FAULTS_LONG=1` runs
//! more rounds with longer load. docs/faults.md describes each case and what
//! it does not guarantee.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use common::faults::{
    assert_one_task_per_incident, finish_loadgen, spawn_loadgen, BrokerKind, ChildGuard, Cluster,
    Load, LoadSummary, LOADGEN_SITE,
};
use common::{wait_for, MqttClient};
use floorwatch_bridge::Store;
use floorwatch_edge::{AgentSensorConfig, EdgeConfig, Outbox, OutboxBounds, SensorKind};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Payload rejected with code `invalid_json`.
const INVALID_JSON: &[u8] = b"{broken";
/// Payload rejected with code `not_utf8`.
const NOT_UTF8: &[u8] = b"\xff\xfe";
/// Invalid payloads sent before a fault, and after recovery.
const BAD_BEFORE: u64 = 5;
const BAD_AFTER: u64 = 3;

fn long_form() -> bool {
    std::env::var("FLOORWATCH_FAULTS_LONG").is_ok_and(|value| value == "1")
}

/// Returns the RNG of one test, printing its seed.
fn seeded_rng(test: &str) -> StdRng {
    let seed = std::env::var("FLOORWATCH_FAULTS_SEED")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    println!("{test}: seed {seed} (FLOORWATCH_FAULTS_SEED={seed} repeats it)");
    StdRng::seed_from_u64(seed)
}

/// Faults per test and the load they run under.
fn rounds_and_load() -> (u32, Load) {
    if long_form() {
        let load = Load {
            rate: 400,
            sensors: 40,
            duration_secs: 40,
            grace_secs: 30,
        };
        (5, load)
    } else {
        let load = Load {
            rate: 300,
            sensors: 20,
            duration_secs: 8,
            grace_secs: 30,
        };
        (1, load)
    }
}

/// Returns `rounds` sorted moments, in seconds after the load starts,
/// spread over the publishing time with the first and last second kept
/// free.
fn fault_moments(rng: &mut StdRng, rounds: u32, load: Load) -> Vec<f64> {
    let span = f64::from(load.duration_secs) - 2.0;
    let slot = span / f64::from(rounds);
    (0..rounds)
        .map(|round| 1.0 + slot * f64::from(round) + rng.gen_range(0.0..slot * 0.8))
        .collect()
}

/// The fault plan of one test: a seeded schedule of fault moments under
/// a load, a pause after each fault, and the test's directory.
struct FaultPlan {
    load: Load,
    moments: Vec<f64>,
    /// Seconds to wait after each fault.
    pauses: Vec<f64>,
    dir: tempfile::TempDir,
    /// The bridge database, in `dir`.
    database: PathBuf,
}

impl FaultPlan {
    /// Draws the plan of `test` from its seeded RNG, with pauses in `pause`.
    fn new(test: &str, pause: std::ops::Range<f64>) -> FaultPlan {
        let mut rng = seeded_rng(test);
        let (rounds, load) = rounds_and_load();
        let moments = fault_moments(&mut rng, rounds, load);
        let pauses = (0..rounds).map(|_| rng.gen_range(pause.clone())).collect();
        let dir = test_dir();
        let database = dir.path().join("bridge.db");
        FaultPlan {
            load,
            moments,
            pauses,
            dir,
            database,
        }
    }

    /// Starts a cluster with its files in the plan's directory.
    async fn start_cluster(&self, kind: BrokerKind) -> Cluster {
        Cluster::start(self.dir.path(), kind, &self.database).await
    }
}

/// Creates the directory of one test. With `FLOORWATCH_FAULTS_KEEP=1` it
/// is kept after the test, with the logs of every process, and its path is
/// printed.
fn test_dir() -> tempfile::TempDir {
    let keep = std::env::var("FLOORWATCH_FAULTS_KEEP").is_ok_and(|value| value == "1");
    let dir = tempfile::Builder::new()
        .prefix("floorwatch-faults-")
        .disable_cleanup(keep)
        .tempdir()
        .unwrap();
    if keep {
        println!("files and logs kept in {}", dir.path().display());
    }
    dir
}

async fn sleep_secs(secs: f64) {
    tokio::time::sleep(Duration::from_secs_f64(secs.max(0.0))).await;
}

/// Publishes `count` copies of `payload` on the reading topic of `sensor`
/// at site `plant-1`.
async fn publish_bad(cluster: &Cluster, sensor: &str, payload: &[u8], count: u64) {
    let client = MqttClient::connect(&cluster.broker_url(), &format!("faults-{sensor}")).await;
    for _ in 0..count {
        client
            .publish(&format!("floorwatch/plant-1/{sensor}/reading"), payload)
            .await;
    }
    // The Disconnect is queued behind the publishes, so the broker gets
    // them first. The pause lets the event loop send them all before the
    // client is dropped.
    client
        .client
        .disconnect()
        .await
        .expect("Disconnect is queued");
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// Waits until the bridge process counts exactly `count` rejections with
/// `code`, and checks that no further ones arrive.
async fn assert_rejected(cluster: &Cluster, code: &str, count: u64) {
    let sample = format!("floorwatch_readings_rejected_total{{code=\"{code}\"}}");
    wait_for(&format!("{count} rejections {code}"), || async {
        let page = cluster.bridge_metrics().await?;
        (common::faults::metric_value(&page, &sample) >= count).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        cluster.bridge_metric(&sample).await,
        count,
        "rejections counted with code {code}"
    );
}

/// Asserts the end state after a run of loadgen: every expected incident
/// has exactly one task, no reading was rejected or left unacknowledged,
/// the outbox is empty and both services are ready.
async fn assert_every_incident_has_one_task(cluster: &Cluster, summary: &LoadSummary) {
    println!("loadgen summary: {}", summary.json);
    assert!(summary.expected > 0, "the load opened no incident");
    assert_eq!(summary.rejected, 0, "loadgen's readings were rejected");
    assert_eq!(
        summary.acked, summary.published,
        "readings published but never acknowledged by the broker"
    );
    cluster.wait_bridge_ready().await;
    cluster.wait_scheduler_ready().await;
    cluster.wait_outbox_empty().await;
    let tasks = cluster.wait_tasks(summary.expected as usize).await;
    assert_one_task_per_incident(&tasks);
    let load_tasks = tasks
        .iter()
        .filter(|task| task["site"] == LOADGEN_SITE)
        .count();
    assert_eq!(
        load_tasks as u64, summary.expected,
        "tasks in the scheduler against incidents the load opened"
    );
    assert_eq!(summary.lost, 0, "incidents without a task at loadgen's end");
    assert_eq!(summary.unexpected, 0, "tasks that match no opening reading");
    assert_eq!(summary.observed, summary.expected);
}

/// Runs loadgen and calls `fault` at each of the moments, then returns the
/// summary.
async fn run_with_faults<F>(
    cluster: &mut Cluster,
    load: Load,
    moments: &[f64],
    mut fault: F,
) -> LoadSummary
where
    F: AsyncFnMut(&mut Cluster, usize),
{
    let (loadgen, out) = spawn_loadgen(cluster, "loadgen", load);
    let started = tokio::time::Instant::now();
    for (round, moment) in moments.iter().enumerate() {
        let elapsed = started.elapsed().as_secs_f64();
        sleep_secs(moment - elapsed).await;
        println!(
            "round {round}: fault at {:.2} s",
            started.elapsed().as_secs_f64()
        );
        fault(cluster, round).await;
    }
    tokio::task::block_in_place(|| finish_loadgen(loadgen, &out, load))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_sigkill_under_load() {
    bridge_sigkill("bridge_sigkill_under_load", BrokerKind::Mosquitto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_sigkill_embedded_broker() {
    bridge_sigkill("bridge_sigkill_embedded_broker", BrokerKind::Embedded).await;
}

/// Kills the bridge with SIGKILL at random moments under load and starts
/// it again. The broker keeps the bridge's persistent session, so readings
/// the bridge had not acknowledged come back to the new process.
async fn bridge_sigkill(test: &str, kind: BrokerKind) {
    let plan = FaultPlan::new(test, 0.0..1.0);
    let mut cluster = plan.start_cluster(kind).await;

    publish_bad(&cluster, "bad-1", INVALID_JSON, BAD_BEFORE).await;
    assert_rejected(&cluster, "invalid_json", BAD_BEFORE).await;

    let summary = run_with_faults(
        &mut cluster,
        plan.load,
        &plan.moments,
        async |cluster, round| {
            cluster.kill_bridge();
            sleep_secs(plan.pauses[round]).await;
            cluster.start_bridge().await;
        },
    )
    .await;
    assert_every_incident_has_one_task(&cluster, &summary).await;
    let accepted = cluster
        .bridge_metric("floorwatch_readings_accepted_total")
        .await;
    println!("readings accepted by the last bridge process: {accepted}");

    // Counters live in the process: the restarted bridge counts what it
    // receives from now on, exactly once each.
    publish_bad(&cluster, "bad-2", NOT_UTF8, BAD_AFTER).await;
    assert_rejected(&cluster, "not_utf8", BAD_AFTER).await;
    drop(cluster);
}

/// Kills the edge agent (`floorwatch edge`) with SIGKILL at random moments
/// under load and starts it again. Its simulated sensor reads every 10 ms,
/// and the agent stores each reading in its outbox file before publishing
/// it, so every reading numbered before a kill must reach the bridge: the
/// bridge finds no gap in the sensor's `seq`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_sigkill_loses_no_reading() {
    let plan = FaultPlan::new("edge_sigkill_loses_no_reading", 0.0..0.5);
    let mut cluster = plan.start_cluster(BrokerKind::Mosquitto).await;

    let mut config = EdgeConfig {
        broker: format!("mqtt://{}", cluster.mqtt),
        client_id: "faults-edge".to_owned(),
        ..EdgeConfig::default()
    };
    config.outbox.path = plan.dir.path().join("edge-outbox.db");
    config.sensors = vec![AgentSensorConfig {
        kind: SensorKind::Simulated,
        id: "sim-1".to_owned(),
        interval_ms: 10,
        model: None,
        path: None,
        pin: None,
        seed: Some(7),
    }];
    let config_path = plan.dir.path().join("edge.toml");
    std::fs::write(&config_path, toml::to_string(&config).unwrap()).unwrap();
    let spawn_edge = |start: usize| {
        ChildGuard::spawn(
            "edge",
            env!("CARGO_BIN_EXE_floorwatch"),
            &["edge", "--config", &config_path.to_string_lossy()],
            &plan.dir.path().join(format!("edge-{start}.log")),
        )
    };
    let mut edge = spawn_edge(0);

    let summary = run_with_faults(&mut cluster, plan.load, &plan.moments, async |_, round| {
        edge.kill();
        sleep_secs(plan.pauses[round]).await;
        edge = spawn_edge(round + 1);
    })
    .await;
    assert_every_incident_has_one_task(&cluster, &summary).await;

    // A graceful stop sends what the outbox still holds.
    let status = edge.terminate();
    assert!(status.success(), "the edge agent stopped with {status}");
    let bounds = OutboxBounds {
        max_rows: u64::MAX,
        max_age: Duration::from_secs(u64::from(u32::MAX)),
    };
    let outbox = Outbox::open(&config.outbox.path, bounds).unwrap();
    let last_seq = outbox.last_seq(&config.site, "sim-1").unwrap();
    assert_eq!(outbox.depth(), 0, "readings left in the edge outbox");
    assert_eq!(outbox.dropped(), 0, "readings dropped by the edge outbox");
    drop(outbox);
    println!("the edge agent numbered {last_seq} readings");
    assert!(last_seq > 100, "too few readings taken: {last_seq}");

    wait_for("the edge sensor's last reading at the bridge", || async {
        let store = Store::open(&plan.database).ok()?;
        let states = store.load_sensor_states().ok()?;
        let (_, _, state) = states
            .into_iter()
            .find(|(_, sensor, _)| sensor == "sim-1")?;
        (state.last_seq == Some(last_seq)).then_some(())
    })
    .await;
    assert_eq!(
        cluster
            .bridge_metric("floorwatch_readings_missing_total")
            .await,
        0,
        "the bridge found gaps in the sequence numbers"
    );

    // The simulated sensor opens incidents of its own, at another site.
    cluster.wait_outbox_empty().await;
    let opened = "floorwatch_incident_events_total{type=\"incident.opened\"}";
    let incidents = cluster.bridge_metric(opened).await as usize;
    let tasks = cluster.wait_tasks(incidents).await;
    assert_one_task_per_incident(&tasks);
    assert_eq!(tasks.len(), incidents, "tasks against incidents opened");
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_sigkill_deliveries_retry() {
    let plan = FaultPlan::new("scheduler_sigkill_deliveries_retry", 2.0..4.0);
    let mut cluster = plan.start_cluster(BrokerKind::Embedded).await;

    publish_bad(&cluster, "bad-1", INVALID_JSON, BAD_BEFORE).await;
    assert_rejected(&cluster, "invalid_json", BAD_BEFORE).await;

    let failed = "floorwatch_delivery_attempts_total{outcome=\"failed\"}";
    let summary = run_with_faults(
        &mut cluster,
        plan.load,
        &plan.moments,
        async |cluster, round| {
            cluster.kill_scheduler();
            let failed_before = cluster.bridge_metric(failed).await;
            sleep_secs(plan.pauses[round]).await;
            let failed_during = cluster.bridge_metric(failed).await;
            println!(
                "round {round}: {} failed attempts while the scheduler was down",
                failed_during - failed_before
            );
            cluster.start_scheduler().await;
        },
    )
    .await;
    assert_every_incident_has_one_task(&cluster, &summary).await;
    assert!(
        cluster.bridge_metric(failed).await > 0,
        "no delivery failed while the scheduler was down"
    );
    assert_eq!(
        cluster.bridge_metric("floorwatch_dead_letters_total").await,
        0
    );

    // The bridge ran throughout, so its counters cover the whole test.
    publish_bad(&cluster, "bad-2", NOT_UTF8, BAD_AFTER).await;
    assert_rejected(&cluster, "not_utf8", BAD_AFTER).await;
    assert_rejected(&cluster, "invalid_json", BAD_BEFORE).await;
}

/// mosquitto with persistence, stopped with SIGTERM and started again.
/// Its sessions and queued messages survive, so the bridge's unacknowledged
/// readings come back.
///
/// NOTE: a long-form run once ended with one incident of 264 without a
/// task. The bridge saw one sensor's sequence jump by 17 at a restart, and
/// loadgen had a PubAck for every reading. Whether those readings were lost
/// in the broker or arrived after newer ones (the bridge drops readings
/// older than a sensor's newest) was not established, so the incidents of
/// the load under restarts are reported, not asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_graceful_restart_recovers() {
    let (plan, mut cluster, summary) = restart_broker_under_load(
        "mosquitto_graceful_restart_recovers",
        BrokerKind::Mosquitto,
        |broker| {
            let status = broker.terminate();
            assert!(status.success(), "mosquitto stopped with {status}");
            let log = broker.log_text();
            assert!(
                !log.contains("Error saving"),
                "mosquitto did not save its state:\n{log}"
            );
        },
    )
    .await;
    assert_eq!(
        summary.acked, summary.published,
        "readings published but never acknowledged by the broker"
    );
    assert_recovered_after_restarts(&mut cluster, &summary, plan.load).await;
}

/// SIGKILL gives mosquitto no chance to save its state, so it restarts
/// from its last saved copy, or none: the bridge's session and the
/// readings queued for it since then are gone, as with rumqttd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_sigkill_recovers() {
    let (plan, mut cluster, summary) = restart_broker_under_load(
        "mosquitto_sigkill_recovers",
        BrokerKind::Mosquitto,
        ChildGuard::kill,
    )
    .await;
    assert_recovered_after_restarts(&mut cluster, &summary, plan.load).await;
}

/// rumqttd keeps sessions and queued messages in memory only, so readings
/// in flight when it stops are lost, and so are readings a publisher still
/// holds: rumqttc drops them on a ConnAck without `session_present`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_broker_restart_recovers() {
    // `floorwatch broker` has no state to save, so SIGKILL loses what
    // SIGTERM would.
    let (plan, mut cluster, summary) = restart_broker_under_load(
        "embedded_broker_restart_recovers",
        BrokerKind::Embedded,
        ChildGuard::kill,
    )
    .await;
    assert_recovered_after_restarts(&mut cluster, &summary, plan.load).await;
}

/// Runs loadgen while the broker is stopped by `stop` at random moments
/// and started again 0 to 1 s later. Invalid payloads published before
/// the load are counted. Returns the plan and the cluster with the load's
/// summary.
async fn restart_broker_under_load(
    test: &str,
    kind: BrokerKind,
    stop: impl Fn(&mut ChildGuard),
) -> (FaultPlan, Cluster, LoadSummary) {
    let plan = FaultPlan::new(test, 0.0..1.0);
    let mut cluster = plan.start_cluster(kind).await;

    publish_bad(&cluster, "bad-1", INVALID_JSON, BAD_BEFORE).await;
    assert_rejected(&cluster, "invalid_json", BAD_BEFORE).await;

    // A shorter grace: incidents lost with the broker's memory never
    // arrive, and loadgen would wait for them the whole grace period.
    let during = Load {
        grace_secs: 10,
        ..plan.load
    };
    let summary = run_with_faults(
        &mut cluster,
        during,
        &plan.moments,
        async |cluster, round| {
            stop(cluster.broker.as_mut().expect("broker started"));
            sleep_secs(plan.pauses[round]).await;
            cluster.start_broker().await;
            cluster.wait_bridge_ready().await;
        },
    )
    .await;
    (plan, cluster, summary)
}

/// Checks what a broker restart guarantees: every incident the bridge
/// opened has exactly one task, and once the broker is back a clean run of
/// loadgen loses nothing. The incidents lost under the restarts are
/// printed.
async fn assert_recovered_after_restarts(cluster: &mut Cluster, summary: &LoadSummary, load: Load) {
    println!("loadgen summary during restarts: {}", summary.json);
    println!(
        "NOTE: {} of {} incidents without a task and {} tasks opened by another reading \
         under broker restarts (reported, not asserted)",
        summary.lost, summary.expected, summary.unexpected
    );
    assert_eq!(summary.rejected, 0, "loadgen's readings were rejected");
    cluster.wait_bridge_ready().await;
    cluster.wait_scheduler_ready().await;
    cluster.wait_outbox_empty().await;
    let opened = "floorwatch_incident_events_total{type=\"incident.opened\"}";
    let incidents = cluster.bridge_metric(opened).await as usize;
    let tasks = cluster.wait_tasks(incidents).await;
    assert_one_task_per_incident(&tasks);
    assert_eq!(
        tasks.len(),
        incidents,
        "tasks against incidents the bridge opened"
    );

    // After the restarts, a clean run loses nothing.
    let after = Load {
        duration_secs: 4,
        ..load
    };
    let (loadgen, out) = spawn_loadgen(cluster, "loadgen-after", after);
    let summary_after = tokio::task::block_in_place(|| finish_loadgen(loadgen, &out, after));
    println!("loadgen summary after the restarts: {}", summary_after.json);
    assert_eq!(summary_after.lost, 0, "incidents lost after the restarts");
    assert_eq!(summary_after.unexpected, 0);
    assert_eq!(summary_after.acked, summary_after.published);
    cluster.wait_outbox_empty().await;
    let incidents = cluster.bridge_metric(opened).await as usize;
    let tasks = cluster.wait_tasks(incidents).await;
    assert_one_task_per_incident(&tasks);
    assert_eq!(tasks.len(), incidents);

    // The bridge ran throughout, so its counters cover the whole test.
    assert_rejected(cluster, "invalid_json", BAD_BEFORE).await;
    publish_bad(cluster, "bad-2", NOT_UTF8, BAD_AFTER).await;
    assert_rejected(cluster, "not_utf8", BAD_AFTER).await;
}

/// A tmpfs mounted for one test, unmounted on drop.
struct TmpfsMount {
    path: PathBuf,
}

impl TmpfsMount {
    /// Mounts a tmpfs of `size` (such as `2m`) at `path`, or returns the
    /// reason it failed.
    fn mount(path: &Path, size: &str) -> Result<TmpfsMount, String> {
        std::fs::create_dir_all(path).map_err(|error| error.to_string())?;
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .map_err(|error| format!("mount did not run: {error}"))?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).trim().to_owned());
        }
        Ok(TmpfsMount {
            path: path.to_owned(),
        })
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let status = Command::new("umount").arg(&self.path).status();
        if !status.is_ok_and(|status| status.success()) {
            // A process of the test may still hold a file open.
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// Writes zeros to `path` until the file system reports it full.
fn fill_disk(path: &Path) -> u64 {
    use std::io::Write;
    let mut file = std::fs::File::create(path).expect("filler file is created");
    let chunk = vec![0u8; 16 * 1024];
    let mut written = 0;
    while file.write_all(&chunk).is_ok() {
        written += chunk.len() as u64;
    }
    let _ = file.sync_all();
    written
}

/// Publishes readings of `sensor` at `plant-1` with sequence numbers from
/// `first_seq`, ten seconds apart from a fixed start.
async fn publish_readings(client: &MqttClient, sensor: &str, first_seq: u64, values: &[f64]) {
    let start = "2026-12-04T12:00:00Z".parse::<DateTime<Utc>>().unwrap();
    publish_readings_from(
        client,
        sensor,
        first_seq,
        start,
        TimeDelta::seconds(10),
        values,
    )
    .await;
}

/// Publishes readings of `sensor` at `plant-1` with sequence numbers from
/// `first_seq`, the reading with `seq` N at `start + N * step`.
async fn publish_readings_from(
    client: &MqttClient,
    sensor: &str,
    first_seq: u64,
    start: DateTime<Utc>,
    step: TimeDelta,
    values: &[f64],
) {
    for (offset, celsius) in values.iter().enumerate() {
        let seq = first_seq + offset as u64;
        let time = start + step * seq as i32;
        let time = time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let payload = common::reading_json("plant-1", sensor, seq, &time, *celsius);
        client
            .publish(&format!("floorwatch/plant-1/{sensor}/reading"), payload)
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_keeps_unacknowledged_readings() {
    let dir = test_dir();
    let mount = match TmpfsMount::mount(&dir.path().join("tmpfs"), "2m") {
        Ok(mount) => mount,
        Err(reason) => {
            println!("NOTE: full_disk_keeps_unacknowledged_readings skipped: cannot mount a tmpfs ({reason}); run as root");
            return;
        }
    };
    let database = mount.path.join("bridge.db");
    let mut cluster = Cluster::start(dir.path(), BrokerKind::Mosquitto, &database).await;
    let client = MqttClient::connect(&cluster.broker_url(), "faults-full-disk").await;

    // Before the disk fills: tank-1 opens an incident.
    publish_readings(&client, "tank-1", 1, &[25.0, 31.0, 31.5, 32.0]).await;
    let tasks = cluster.wait_tasks(1).await;
    assert_eq!(tasks[0]["sensor"], "tank-1");
    cluster.wait_outbox_empty().await;

    let filler = mount.path.join("filler");
    let filled = fill_disk(&filler);
    println!("filled the tmpfs with {filled} bytes");

    // With the disk full: tank-1 resolves, tank-2 opens, and many new
    // sensors grow the database until a commit fails.
    publish_readings(&client, "tank-1", 5, &[25.0, 24.0, 24.0, 24.0]).await;
    publish_readings(&client, "tank-2", 1, &[25.0, 31.0, 31.5, 32.0]).await;
    let mut fill_sensors = 0;
    let bridge = cluster.bridge.as_ref().expect("bridge started");
    let reported = async {
        for round in 0..200 {
            if bridge.log_text().contains("disk is full") {
                return true;
            }
            for index in 0..20 {
                let sensor = format!("fill-{}", round * 20 + index);
                publish_readings(&client, &sensor, 1, &[24.0]).await;
                fill_sensors += 1;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bridge.log_text().contains("disk is full")
    }
    .await;
    assert!(
        reported,
        "the bridge never reported the full disk:\n{}",
        cluster.logs()
    );
    println!("published {fill_sensors} readings of new sensors before the failure");

    // The bridge keeps running and tries the failed batch again, leaving
    // its readings unacknowledged.
    let bridge = cluster.bridge.as_mut().expect("bridge started");
    let log = bridge.log_text();
    let report = log
        .lines()
        .find(|line| line.contains("database or disk is full"));
    let Some(report) = report else {
        panic!("the log does not name the cause:\n{log}");
    };
    println!("the bridge reported: {report}");
    assert!(
        report.contains("committing a batch failed"),
        "the report does not say what failed: {report}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(bridge.exited(), None, "the bridge stopped on a full disk");
    publish_bad(&cluster, "bad-1", INVALID_JSON, BAD_BEFORE).await;

    // Space returns: the same bridge process commits the batch and goes on.
    std::fs::remove_file(&filler).unwrap();
    cluster.wait_bridge_ready().await;
    cluster.wait_scheduler_ready().await;
    let tasks = cluster.wait_tasks(2).await;
    assert_one_task_per_incident(&tasks);
    assert_eq!(tasks.len(), 2, "tasks: {tasks:?}");
    wait_for("tank-1's task resolved", || async {
        let tasks = cluster.tasks().await?;
        let tank1 = tasks.iter().find(|task| task["sensor"] == "tank-1")?;
        (!tank1["resolved_at"].is_null()).then_some(())
    })
    .await;
    assert_rejected(&cluster, "invalid_json", BAD_BEFORE).await;

    // Every sensor's last reading is in the database.
    let expected_sensors = 2 + fill_sensors;
    wait_for("every sensor's state committed", || async {
        let store = Store::open(&database).ok()?;
        let states = store.load_sensor_states().ok()?;
        (states.len() == expected_sensors).then_some(())
    })
    .await;
    let store = Store::open(&database).unwrap();
    for (_, sensor, state) in store.load_sensor_states().unwrap() {
        let last = match sensor.as_str() {
            "tank-1" => 8,
            "tank-2" => 4,
            _ => 1,
        };
        assert_eq!(state.last_seq, Some(last), "last reading of {sensor}");
    }
    drop(store);
    // A batch tried again after a failed commit is counted once.
    assert_eq!(
        cluster
            .bridge_metric("floorwatch_readings_accepted_total")
            .await,
        (8 + 4 + fill_sensors) as u64,
        "readings accepted"
    );
    cluster.wait_outbox_empty().await;
    drop(client);
    drop(cluster);
    drop(mount);
}

/// Fills the disk under the bridge while the scheduler is down and a sensor
/// falls silent, with no readings arriving: the records of failed delivery
/// attempts and the timer tick's silence event cannot commit. The bridge
/// keeps running and, once space returns, records both and delivers the
/// incident once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_delays_attempt_records_and_ticks() {
    let dir = test_dir();
    let mount = match TmpfsMount::mount(&dir.path().join("tmpfs"), "2m") {
        Ok(mount) => mount,
        Err(reason) => {
            println!("NOTE: full_disk_delays_attempt_records_and_ticks skipped: cannot mount a tmpfs ({reason}); run as root");
            return;
        }
    };
    let database = mount.path.join("bridge.db");
    let mut cluster = Cluster::start_with(dir.path(), BrokerKind::Mosquitto, &database, |bridge| {
        // A sensor is silent three seconds after its last reading.
        bridge.health.expected_interval_secs = 1;
        bridge.health.silent_after_intervals = 3;
    })
    .await;
    let client = MqttClient::connect(&cluster.broker_url(), "faults-full-disk-records").await;

    // With the scheduler down, tank-1's incident.opened fails and waits
    // for its next attempt; each failed attempt is recorded.
    cluster.kill_scheduler();
    let start = Utc::now() - TimeDelta::seconds(1);
    let step = TimeDelta::milliseconds(100);
    publish_readings_from(&client, "tank-1", 1, start, step, &[25.0, 31.0, 31.5, 32.0]).await;
    let failed_attempts = "floorwatch_delivery_attempts_total{outcome=\"failed\"}";
    wait_for("a failed delivery attempt recorded", || async {
        let page = cluster.bridge_metrics().await?;
        (common::faults::metric_value(&page, failed_attempts) > 0).then_some(())
    })
    .await;

    let filler = mount.path.join("filler");
    let filled = fill_disk(&filler);
    println!("filled the tmpfs with {filled} bytes");

    // No reading arrives now, so ingest commits nothing. The next failed
    // attempt's record and tank-1's silence both need the disk.
    let bridge = cluster.bridge.as_mut().expect("bridge started");
    wait_for("both commits failing on the full disk", || async {
        let log = bridge.log_text();
        (log.contains("recording delivery attempts failed")
            && log.contains("committing the timer tick failed"))
        .then_some(())
    })
    .await;
    let log = bridge.log_text();
    for what in [
        "recording delivery attempts failed",
        "committing the timer tick failed",
    ] {
        let report = log.lines().find(|line| line.contains(what)).unwrap();
        println!("the bridge reported: {report}");
        assert!(
            report.contains("disk is full"),
            "the report does not name the cause: {report}"
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(bridge.exited(), None, "the bridge stopped on a full disk");
    let page = cluster.bridge_metrics().await.unwrap();
    assert_eq!(
        common::faults::metric_value(&page, "floorwatch_sensor_events_total{kind=\"silent\"}"),
        0,
        "a silence counted before its event was committed"
    );

    // Space and the scheduler return: the records commit, tank-1's silence
    // is reported, and its incident gets one task.
    std::fs::remove_file(&filler).unwrap();
    cluster.start_scheduler().await;
    wait_for("tank-1's silence committed", || async {
        let page = cluster.bridge_metrics().await?;
        let silent = "floorwatch_sensor_events_total{kind=\"silent\"}";
        (common::faults::metric_value(&page, silent) == 1).then_some(())
    })
    .await;
    cluster.wait_outbox_empty().await;
    let tasks = cluster.wait_tasks(1).await;
    assert_one_task_per_incident(&tasks);
    assert_eq!(tasks.len(), 1, "tasks: {tasks:?}");
    assert_eq!(tasks[0]["sensor"], "tank-1");
    let bridge = cluster.bridge.as_mut().expect("bridge started");
    let log = bridge.log_text();
    assert!(
        log.contains("recording delivery attempts works again"),
        "no recovery reported:\n{log}"
    );
    assert_eq!(bridge.exited(), None);

    // tank-1 reports again and resolves.
    publish_readings_from(&client, "tank-1", 5, Utc::now(), step, &[24.0, 24.0, 24.0]).await;
    wait_for("tank-1's task resolved", || async {
        let tasks = cluster.tasks().await?;
        (!tasks.first()?["resolved_at"].is_null()).then_some(())
    })
    .await;
    drop(client);
    drop(cluster);
    drop(mount);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_skips_corrupt_lines() {
    let dir = test_dir();
    let database = dir.path().join("bridge.db");
    let cluster = Cluster::start(dir.path(), BrokerKind::Embedded, &database).await;

    // Line 1 is the header; lines 4, 5, 8, 10 and 13 are corrupt. Line
    // 4 opens a quote it never closes, which must not swallow the lines
    // after it.
    let mut csv = b"timestamp,value\n".to_vec();
    let rows: [&[u8]; 15] = [
        b"2026-12-04 10:00:00,25.0",
        b"2026-12-04 10:00:10,25.5",
        b"2026-12-04 10:00:15,\"25.7",
        b"this line is not csv",
        b"2026-12-04 10:00:20,31.0",
        b"2026-12-04 10:00:30,31.5",
        b"2026-12-04 10:00:40,not-a-number",
        b"2026-12-04 10:00:50,32.0",
        b"\xff\xfe\x00,\xc3\x28",
        b"2026-12-04 10:01:00,25.0",
        b"2026-12-04 10:01:10,24.0",
        b"2026-13-45 99:99:99,24.0",
        b"2026-12-04 10:01:20,24.0",
        b"2026-12-04 10:01:30,24.0",
        b"2026-12-04 10:01:40,24.5",
    ];
    for row in rows {
        csv.extend_from_slice(row);
        csv.push(b'\n');
    }
    let file = dir.path().join("corrupt.csv");
    std::fs::write(&file, csv).unwrap();

    let log = dir.path().join("replay.log");
    let broker = format!("mqtt://{}", cluster.mqtt);
    let mut replay = ChildGuard::spawn(
        "replay",
        env!("CARGO_BIN_EXE_floorwatch"),
        &[
            "replay",
            &file.to_string_lossy(),
            "--broker",
            &broker,
            "--site",
            "plant-1",
            "--sensor",
            "replay-1",
            "--speed",
            "0",
        ],
        &log,
    );
    let status = replay
        .wait_exit_within(common::WAIT_LIMIT)
        .expect("replay ends");
    let output = replay.log_text();
    assert!(status.success(), "replay failed:\n{output}");
    assert!(
        output.contains("replayed 10 of 15 rows"),
        "summary line:\n{output}"
    );
    assert!(output.contains("(10 acknowledged, 5 invalid lines skipped)"));
    for line in [4, 5, 8, 10, 13] {
        assert!(
            output.contains(&format!("line={line} ")),
            "line {line} is not reported:\n{output}"
        );
    }
    assert_eq!(output.matches("skipped invalid replay line").count(), 5);

    // The valid rows after each corrupt line arrive: the episode in rows
    // 5 to 8 opens an incident and rows 10 to 13 resolve it.
    wait_for("10 readings accepted", || async {
        let page = cluster.bridge_metrics().await?;
        let accepted = common::faults::metric_value(&page, "floorwatch_readings_accepted_total");
        (accepted == 10).then_some(())
    })
    .await;
    let tasks = cluster.wait_tasks(1).await;
    assert_one_task_per_incident(&tasks);
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["sensor"], "replay-1");
    wait_for("the replayed incident resolved", || async {
        let tasks = cluster.tasks().await?;
        (!tasks[0]["resolved_at"].is_null()).then_some(())
    })
    .await;
    let page = cluster.bridge_metrics().await.unwrap();
    assert!(
        !page.contains("floorwatch_readings_rejected_total{"),
        "the bridge rejected replayed readings:\n{page}"
    );
}
