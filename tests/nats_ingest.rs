//! Ingest through NATS JetStream: an edge publisher sends MQTT to the MQTT
//! listener of a three-node nats-server cluster, the readings stream
//! captures them, and a bridge with `source = "nats"` turns them into
//! incidents, webhooks and one scheduler task per episode.

mod common;

use std::time::Duration;

use common::nats::{bridge_config, reading, NatsCluster, TestScheduler};
use common::{init_logging, wait_for};
use floorwatch_bridge::BridgeError;
use floorwatch_edge::{Publisher, PublisherConfig};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_readings_reach_bridge_through_jetstream() {
    init_logging();
    let cluster = NatsCluster::start(3, 1);
    cluster.wait_jetstream().await;
    let dir = tempfile::tempdir().unwrap();
    let scheduler = TestScheduler::start(dir.path()).await;
    let config = bridge_config(
        &cluster,
        "bridge-1",
        dir.path(),
        &scheduler.webhook_url(),
        &scheduler.secret,
    );
    let shutdown = CancellationToken::new();
    let bridge = floorwatch_bridge::start(config, shutdown.child_token())
        .await
        .expect("bridge starts against the cluster");

    // The edge publisher talks to another node than the bridge may have
    // picked, so readings cross the cluster.
    let publisher = Publisher::connect(PublisherConfig::new(cluster.mqtt_url(1), "edge-1"))
        .expect("edge publisher");
    let episode = [25.0, 31.0, 32.5, 33.0, 34.0, 33.5, 28.0, 27.5, 27.0, 26.0];
    let values: Vec<f64> = episode.iter().chain(episode.iter()).copied().collect();
    for (index, celsius) in values.iter().enumerate() {
        let reading = reading(
            "plant-1",
            "oven-1",
            index as u64 + 1,
            index as u32,
            *celsius,
        );
        publisher.publish(&reading).await.unwrap();
    }
    publisher
        .flush(Duration::from_secs(30))
        .await
        .expect("every reading acknowledged by the MQTT listener");

    let tasks = scheduler.wait_for_tasks(2).await;
    assert_eq!(tasks.len(), 2, "one task per episode: {tasks:#?}");
    assert_ne!(tasks[0]["incident_id"], tasks[1]["incident_id"]);
    for task in &tasks {
        assert_eq!(task["site"], "plant-1");
        assert_eq!(task["sensor"], "oven-1");
    }
    wait_for("every reading accepted and delivered", || async {
        let stats = bridge.stats();
        (stats.readings_accepted == values.len() as u64 && stats.deliveries_succeeded == 4)
            .then_some(())
    })
    .await;
    let stats = bridge.stats();
    assert_eq!(stats.incidents_opened, 2);
    assert_eq!(stats.incidents_resolved, 2);
    assert_eq!(stats.readings_rejected, 0);
    assert_eq!(stats.duplicates, 0);

    publisher.close(Duration::from_secs(5)).await;
    shutdown.cancel();
    bridge.wait().await.unwrap();
    scheduler.shutdown.cancel();
    scheduler.handle.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_cluster_is_an_error() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let mut config = floorwatch_bridge::BridgeConfig {
        source: floorwatch_bridge::config::Source::Nats,
        database: dir.path().join("bridge.db"),
        ..Default::default()
    };
    // Nothing listens on a port that was free a moment ago.
    config.nats.servers = vec![format!("nats://{}", common::free_addr())];
    config.nats.connect_timeout_secs = 2;
    let started = floorwatch_bridge::start(config, CancellationToken::new()).await;
    let Err(error) = started else {
        panic!("the bridge started without a NATS server");
    };
    assert!(
        matches!(error, BridgeError::Nats { .. }),
        "unexpected error: {error}"
    );
    let message = error.to_string();
    assert!(message.contains("bridge.nats.servers"), "{message}");
    assert!(message.contains("attempts"), "{message}");
}
