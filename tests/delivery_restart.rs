//! A `floorwatch bridge` process killed with SIGKILL while deliveries are
//! pending, then started again on the same database: every event arrives,
//! and the only duplicates are retries carrying the same `webhook-id`.

mod common;
#[path = "../bridge/tests/common/mod.rs"]
mod receiver;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{free_addr, reading_json, MqttClient};
use floorwatch::broker::EmbeddedBroker;
use floorwatch_bridge::{BridgeConfig, DeliveryFilter, DeliveryStatus, Store};
use floorwatch_protocol::BrokerUrl;
use receiver::Receiver;

const SENSORS: usize = 6;

fn spawn_bridge(config_file: &Path, log_file: &Path) -> Child {
    let log = std::fs::File::create(log_file).expect("log file is created");
    Command::new(env!("CARGO_BIN_EXE_floorwatch"))
        .args(["bridge", "--config"])
        .arg(config_file)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("floorwatch bridge starts")
}

fn count_outbox_rows(database: &Path, status: Option<DeliveryStatus>) -> usize {
    let Ok(store) = Store::open(database) else {
        return 0;
    };
    let filter = DeliveryFilter {
        status,
        limit: 1000,
        ..DeliveryFilter::default()
    };
    store.list_deliveries(&filter).map_or(0, |rows| rows.len())
}

async fn publish_episodes(broker: &BrokerUrl) {
    let client = MqttClient::connect(broker, "restart-test-publisher").await;
    for sensor in 0..SENSORS {
        for (seq, celsius) in [25.0, 31.0, 31.5, 32.0].into_iter().enumerate() {
            let time = format!("2026-12-04T12:00:{:02}Z", seq * 10);
            let payload = reading_json(
                "plant-1",
                &format!("oven-{sensor}"),
                seq as u64,
                &time,
                celsius,
            );
            client
                .publish(
                    &format!("floorwatch/plant-1/oven-{sensor}/reading"),
                    payload,
                )
                .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_bridge_delivers_everything_after_restart() {
    let mut table = floorwatch::broker::load_config(None, None).unwrap();
    floorwatch::broker::set_listen(&mut table, free_addr()).unwrap();
    let broker = EmbeddedBroker::start(table, "--mqtt").unwrap();
    let broker_url = BrokerUrl {
        host: broker.addr().ip().to_string(),
        port: broker.addr().port(),
        tls: false,
    };

    // Slow responses and one request at a time keep rows pending at the kill.
    let receiver = Receiver::start(200).await;
    receiver.delay_containing("\"plant-1\"", Duration::from_millis(400));
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("bridge.db");
    let mut endpoint = receiver.endpoint();
    endpoint.max_concurrency = 1;
    let mut config = BridgeConfig {
        database: database.clone(),
        endpoints: vec![endpoint],
        ..BridgeConfig::default()
    };
    config.mqtt.url = format!("mqtt://{}:{}", broker_url.host, broker_url.port);
    config.delivery.retry_schedule_ms = vec![200; 5];
    config.http.enabled = true;
    config.http.listen = free_addr();
    let config_file = dir.path().join("bridge.toml");
    std::fs::write(&config_file, toml::to_string(&config).unwrap()).unwrap();

    let mut bridge = spawn_bridge(&config_file, &dir.path().join("first.log"));
    // Readings published before the subscription would be lost.
    let metrics = format!("http://{}/metrics", config.http.listen);
    common::wait_for("the bridge's reading subscription", || async {
        let page = reqwest::get(&metrics).await.ok()?.text().await.ok()?;
        page.contains("floorwatch_mqtt_subscribed 1\n")
            .then_some(())
    })
    .await;
    publish_episodes(&broker_url).await;
    common::wait_for("every event in the outbox", || async {
        (count_outbox_rows(&database, None) == SENSORS).then_some(())
    })
    .await;
    common::wait_for("two requests at the receiver", || async {
        (receiver.deliveries().len() >= 2).then_some(())
    })
    .await;
    bridge.kill().expect("SIGKILL is sent");
    bridge.wait().expect("the killed bridge is reaped");
    let before_restart = receiver.deliveries().len();
    assert!(
        before_restart < SENSORS,
        "everything was sent before the kill"
    );

    receiver.delay_containing("\"plant-1\"", Duration::ZERO);
    let mut bridge = spawn_bridge(&config_file, &dir.path().join("second.log"));
    let all_delivered = || async {
        let ids: std::collections::BTreeSet<_> = receiver
            .deliveries()
            .into_iter()
            .filter(|delivery| delivery.status == 200)
            .filter_map(|delivery| delivery.webhook_id)
            .collect();
        (ids.len() == SENSORS).then_some(())
    };
    common::wait_for("every event delivered after the restart", all_delivered).await;
    // The receiver records a request before the bridge records its answer.
    common::wait_for("every outbox row marked delivered", || async {
        (count_outbox_rows(&database, Some(DeliveryStatus::Delivered)) == SENSORS).then_some(())
    })
    .await;
    bridge.kill().expect("SIGKILL is sent");
    bridge.wait().expect("the bridge is reaped");

    let mut bodies: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for delivery in receiver.deliveries() {
        assert_eq!(delivery.verified, Ok(()));
        let id = delivery.webhook_id.clone().expect("webhook-id is set");
        let body = bodies.entry(id).or_insert_with(|| delivery.body.clone());
        assert_eq!(
            *body, delivery.body,
            "a repeated webhook-id carried another body"
        );
    }
    assert_eq!(bodies.len(), SENSORS, "each event has one webhook-id");
    let incidents: std::collections::BTreeSet<_> = receiver
        .deliveries()
        .iter()
        .map(|delivery| delivery.event().data.incident_id)
        .collect();
    assert_eq!(incidents.len(), SENSORS);

    check_cli(&database, bodies.keys().next().expect("an event id"));
}

/// Runs `floorwatch deliveries` against the database the bridge left.
fn check_cli(database: &Path, event_id: &str) {
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_floorwatch"))
            .arg("deliveries")
            .arg("--database")
            .arg(database)
            .args(args)
            .output()
            .expect("floorwatch deliveries runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output.status.success(), stdout, stderr)
    };

    let (ok, stdout, stderr) = run(&["list", "--status", "delivered"]);
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout.lines().count(),
        SENSORS + 1,
        "header and one line per event:\n{stdout}"
    );
    let (ok, stdout, stderr) = run(&["attempts", event_id]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("attempt 1 at "), "{stdout}");
    assert!(stdout.contains("status 200"), "{stdout}");
    let (ok, _, stderr) = run(&["replay", "--dead"]);
    assert!(!ok, "nothing is dead, so replay must fail");
    assert!(stderr.contains("no dead letter matched"), "{stderr}");
    let (ok, _, stderr) = run(&["enable", "http://127.0.0.1:9/hooks"]);
    assert!(!ok);
    assert!(stderr.contains("is not disabled"), "{stderr}");
}
