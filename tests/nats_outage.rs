//! Failures around a bridge reading from NATS: a server of the cluster
//! killed and restarted while readings flow, a webhook receiver that is
//! down for a while, and events that become dead letters.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::nats::{
    assert_incidents_in_order, reading, recorder_config, start_bridge, stream_info,
    wait_stream_leaders, NatsCluster, Recorder,
};
use common::{init_logging, wait_for};
use floorwatch_edge::{Publisher, PublisherConfig};

/// Temperatures of one episode: three breaching readings open an incident
/// and three clearing readings resolve it.
const EPISODE: [f64; 10] = [25.0, 31.0, 32.5, 33.0, 34.0, 33.5, 28.0, 27.5, 27.0, 26.0];

/// Streams whose leaders must be elected before readings are published:
/// the MQTT listener of nats-server 2.9 acknowledges a QoS 1 message
/// without waiting for a stream to store it.
const STREAMS: [&str; 4] = [
    "FLOORWATCH_READINGS",
    "FLOORWATCH_OUTBOX",
    "KV_floorwatch_state",
    "KV_floorwatch_leases",
];

/// Publishes episode `episode` (from 0) of each sensor and waits for the
/// MQTT listener's acknowledgements.
async fn publish_episode(publisher: &Publisher, sensors: &[&str], episode: usize) {
    for (offset, celsius) in EPISODE.iter().enumerate() {
        let index = episode * EPISODE.len() + offset;
        for sensor in sensors {
            let reading = reading("plant-1", sensor, index as u64 + 1, index as u32, *celsius);
            publisher.publish(&reading).await.unwrap();
        }
    }
    publisher
        .flush(Duration::from_secs(30))
        .await
        .expect("readings acknowledged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_restart_and_receiver_outage() {
    init_logging();
    let mut cluster = NatsCluster::start(3, 2);
    cluster.wait_jetstream().await;
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::start().await;
    recorder.state.failing.store(true, Ordering::SeqCst);
    let mut config = recorder_config(&cluster, "bridge-1", dir.path(), &recorder);
    config.nats.lease_ttl_secs = 3;
    let (bridge, shutdown) = start_bridge(config).await;
    let client = cluster.connect().await;
    wait_stream_leaders(&client, &STREAMS).await;

    let sensors = ["oven-1", "oven-2", "oven-3", "oven-4"];
    let publisher = Publisher::connect(PublisherConfig::new(cluster.mqtt_url(0), "edge-1"))
        .expect("edge publisher");

    // The receiver returns 503 until it has rejected three attempts, and
    // then 204, so the retries deliver everything, in order.
    publish_episode(&publisher, &sensors, 0).await;
    wait_for("three refused attempts", || async {
        (recorder.state.rejected.load(Ordering::SeqCst) >= 3).then_some(())
    })
    .await;
    recorder.state.failing.store(false, Ordering::SeqCst);
    wait_for("the first episode delivered", || async {
        (recorder.distinct_events().len() >= 2 * sensors.len()).then_some(())
    })
    .await;

    // One server down: the streams keep a quorum of two.
    cluster.kill(2);
    wait_stream_leaders(&client, &STREAMS).await;
    publish_episode(&publisher, &sensors, 1).await;
    cluster.restart(2);
    wait_stream_leaders(&client, &STREAMS).await;
    publish_episode(&publisher, &sensors, 2).await;

    let expected = 3 * 2 * sensors.len();
    let events = wait_for("every event delivered", || async {
        let events = recorder.distinct_events();
        (events.len() >= expected).then_some(events)
    })
    .await;
    let incidents = assert_incidents_in_order(&events);
    assert_eq!(
        incidents.len(),
        3 * sensors.len(),
        "one incident per episode"
    );
    assert_eq!(events.len(), expected, "opened and resolved of each");
    let stats = bridge.stats();
    assert_eq!(stats.incidents_opened, 3 * sensors.len() as u64);
    // QoS 1 is at least once: a reading stored twice is counted as a
    // duplicate and changes nothing.
    assert_eq!(
        stats.readings_accepted - stats.duplicates,
        (3 * EPISODE.len() * sensors.len()) as u64
    );
    assert_eq!(stats.dead_letters, 0);

    publisher.close(Duration::from_secs(5)).await;
    shutdown.cancel();
    bridge.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_events_become_dead_letters() {
    init_logging();
    let cluster = NatsCluster::start(1, 1);
    cluster.wait_jetstream().await;
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::start().await;
    recorder.state.failing.store(true, Ordering::SeqCst);
    let mut config = recorder_config(&cluster, "bridge-1", dir.path(), &recorder);
    config.delivery.retry_schedule_ms = vec![100, 100];
    let (bridge, shutdown) = start_bridge(config).await;

    let publisher = Publisher::connect(PublisherConfig::new(cluster.mqtt_url(0), "edge-1"))
        .expect("edge publisher");
    publish_episode(&publisher, &["oven-1"], 0).await;

    let client = cluster.connect().await;
    let dead = wait_for("two dead letters", || async {
        let info = stream_info(&client, "FLOORWATCH_DEAD_LETTERS").await?;
        let messages = info["state"]["messages"].as_u64()?;
        (messages >= 2).then_some(messages)
    })
    .await;
    assert_eq!(dead, 2, "opened and resolved");
    // Three attempts each: the first and one per scheduled retry.
    assert_eq!(recorder.state.rejected.load(Ordering::SeqCst), 6);
    let outbox = stream_info(&client, "FLOORWATCH_OUTBOX").await.unwrap();
    assert_eq!(outbox["state"]["messages"], 0, "the work queue is empty");
    let js = async_nats::jetstream::new(client.clone());
    let stream = js.get_stream("FLOORWATCH_DEAD_LETTERS").await.unwrap();
    let first = stream.get_raw_message(1).await.unwrap();
    let error = first.headers.get("Floorwatch-Last-Error").unwrap();
    assert!(
        error.as_str().contains("503"),
        "last error: {}",
        error.as_str()
    );
    let body: serde_json::Value = serde_json::from_slice(&first.payload).unwrap();
    assert_eq!(body["type"], "incident.opened");
    assert_eq!(bridge.stats().dead_letters, 2);

    publisher.close(Duration::from_secs(5)).await;
    shutdown.cancel();
    bridge.wait().await.unwrap();
}
