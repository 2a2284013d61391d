//! Send limits of the NATS outbox against a real nats-server: `410 Gone`
//! disables an endpoint for every partition and across a restart, a
//! failing receiver opens the circuit breaker, and the rate limit spaces
//! deliveries.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::nats::{
    assert_incidents_in_order, reading, recorder_config, start_bridge, stream_messages,
    NatsCluster, Recorder,
};
use common::{init_logging, wait_for, WAIT_LIMIT};
use floorwatch_bridge::nats::gate::{disabled_key, ENDPOINTS_BUCKET};
use floorwatch_bridge::BridgeHandle;
use floorwatch_edge::{Publisher, PublisherConfig};

/// Temperatures of one episode: three breaching readings open an incident
/// and three clearing readings resolve it.
const EPISODE: [f64; 10] = [25.0, 31.0, 32.5, 33.0, 34.0, 33.5, 28.0, 27.5, 27.0, 26.0];

/// Publishes one episode of each sensor and waits for the MQTT listener's
/// acknowledgements.
async fn publish_episode(cluster: &NatsCluster, sensors: &[&str]) {
    let publisher = Publisher::connect(PublisherConfig::new(cluster.mqtt_url(0), "edge-1"))
        .expect("edge publisher");
    for (index, celsius) in EPISODE.iter().enumerate() {
        for sensor in sensors {
            let reading = reading("plant-1", sensor, index as u64 + 1, index as u32, *celsius);
            publisher.publish(&reading).await.unwrap();
        }
    }
    publisher
        .flush(Duration::from_secs(30))
        .await
        .expect("readings acknowledged");
    publisher.close(Duration::from_secs(5)).await;
}

/// Waits for `bridge`'s `floorwatch_endpoints_disabled` gauge to be `count`.
async fn wait_disabled_gauge(bridge: &BridgeHandle, count: u64) {
    wait_for(&format!("{count} disabled endpoints"), || async {
        (bridge.stats().endpoints_disabled == count).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_disables_until_key_deleted() {
    init_logging();
    let cluster = NatsCluster::start(1, 2);
    cluster.wait_jetstream().await;
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::start().await;
    recorder.state.returns_gone.store(true, Ordering::SeqCst);
    let (bridge, shutdown) =
        start_bridge(recorder_config(&cluster, "bridge-1", dir.path(), &recorder)).await;
    let client = cluster.connect().await;

    // The server's hash spreads four sensors over the two partitions, so
    // both deliverers most likely hold events (the test does not check).
    let sensors = ["oven-1", "oven-2", "oven-3", "oven-4"];
    let expected = 2 * sensors.len() as u64;
    publish_episode(&cluster, &sensors).await;
    wait_disabled_gauge(&bridge, 1).await;
    let js = async_nats::jetstream::new(client.clone());
    let bucket = js.get_key_value(ENDPOINTS_BUCKET).await.unwrap();
    let key = disabled_key(&recorder.url());
    let stored = wait_for("the disabled key", || async {
        bucket.get(key.clone()).await.ok().flatten()
    })
    .await;
    let stored: serde_json::Value = serde_json::from_slice(&stored).unwrap();
    assert_eq!(stored["reason"], "receiver returned 410 Gone");
    assert_eq!(stored["instance"], "bridge-1");

    // Every event reaches the outbox, and none is sent after the first
    // 410s: at most one per partition was in flight when it arrived.
    wait_for("every event in the outbox", || async {
        (stream_messages(&client, "FLOORWATCH_OUTBOX").await? == expected).then_some(())
    })
    .await;
    let answered = recorder.state.gone_answers.load(Ordering::SeqCst);
    assert!((1..=2).contains(&answered), "410 answers: {answered}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        recorder.state.gone_answers.load(Ordering::SeqCst),
        answered,
        "no request after the endpoint was disabled"
    );
    assert_eq!(
        stream_messages(&client, "FLOORWATCH_OUTBOX").await,
        Some(expected),
        "no event left the outbox"
    );
    assert_eq!(
        stream_messages(&client, "FLOORWATCH_DEAD_LETTERS").await,
        Some(0)
    );
    assert_eq!(bridge.stats().dead_letters, 0);
    shutdown.cancel();
    bridge.wait().await.unwrap();

    // The receiver is back, but the key disables the next bridge as well.
    recorder.state.returns_gone.store(false, Ordering::SeqCst);
    let (bridge, shutdown) =
        start_bridge(recorder_config(&cluster, "bridge-2", dir.path(), &recorder)).await;
    wait_disabled_gauge(&bridge, 1).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        recorder.distinct_events().is_empty(),
        "nothing sent while the key exists"
    );

    // Deleting the key enables the endpoint, and every event arrives.
    tokio::time::timeout(WAIT_LIMIT, bucket.delete(&key))
        .await
        .expect("delete in time")
        .expect("delete the disabled key");
    let events = wait_for("every event delivered", || async {
        let events = recorder.distinct_events();
        (events.len() as u64 >= expected).then_some(events)
    })
    .await;
    assert_eq!(events.len() as u64, expected);
    assert_incidents_in_order(&events);
    wait_disabled_gauge(&bridge, 0).await;
    assert_eq!(bridge.stats().dead_letters, 0);
    assert_eq!(
        stream_messages(&client, "FLOORWATCH_DEAD_LETTERS").await,
        Some(0)
    );
    shutdown.cancel();
    bridge.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_receiver_opens_breaker() {
    init_logging();
    let cluster = NatsCluster::start(1, 1);
    cluster.wait_jetstream().await;
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::start().await;
    recorder.state.failing.store(true, Ordering::SeqCst);
    let mut config = recorder_config(&cluster, "bridge-1", dir.path(), &recorder);
    config.endpoints[0].breaker_failures = 2;
    config.endpoints[0].breaker_cooldown_ms = 5_000;
    config.endpoints[0].breaker_max_cooldown_ms = 5_000;
    // Four attempts: two failures, a failed probe and a successful probe
    // use them all, so a cool-down that counted as an attempt would make
    // the event a dead letter.
    config.delivery.retry_schedule_ms = vec![100, 100, 100];
    let (bridge, shutdown) = start_bridge(config).await;

    publish_episode(&cluster, &["oven-1"]).await;
    wait_for("two refused attempts", || async {
        (recorder.state.rejected.load(Ordering::SeqCst) >= 2).then_some(())
    })
    .await;
    // The breaker is open for 5 s; without it the 100 ms retries would
    // have made about 20 more attempts in this time.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        recorder.state.rejected.load(Ordering::SeqCst),
        2,
        "no attempt during the cool-down"
    );
    wait_for("the probe after the cool-down", || async {
        (recorder.state.rejected.load(Ordering::SeqCst) >= 3).then_some(())
    })
    .await;
    recorder.state.failing.store(false, Ordering::SeqCst);

    let events = wait_for("both events delivered", || async {
        let events = recorder.distinct_events();
        (events.len() >= 2).then_some(events)
    })
    .await;
    assert_incidents_in_order(&events);
    assert_eq!(
        recorder.state.rejected.load(Ordering::SeqCst),
        3,
        "one failed probe, then the next probe succeeded"
    );
    assert_eq!(bridge.stats().dead_letters, 0);
    assert_eq!(bridge.stats().delivery_attempts_failed, 3);
    shutdown.cancel();
    bridge.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_spaces_deliveries() {
    init_logging();
    let cluster = NatsCluster::start(1, 2);
    cluster.wait_jetstream().await;
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::start().await;
    let mut config = recorder_config(&cluster, "bridge-1", dir.path(), &recorder);
    // One token at a time, shared by the deliverers of both partitions.
    config.endpoints[0].rate_limit_per_sec = Some(1.0);
    let (bridge, shutdown) = start_bridge(config).await;

    let sensors = ["oven-1", "oven-2", "oven-3", "oven-4"];
    publish_episode(&cluster, &sensors).await;
    let events = wait_for("every event delivered", || async {
        let events = recorder.distinct_events();
        (events.len() >= 2 * sensors.len()).then_some(events)
    })
    .await;
    assert_incidents_in_order(&events);
    let arrivals = recorder.state.arrivals.lock().unwrap().clone();
    assert_eq!(arrivals.len(), 2 * sensors.len(), "no repeats");
    // Sends are at least 1 s apart; the margin covers the spread of the
    // request latency.
    for pair in arrivals.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(800),
            "deliveries {gap:?} apart, arrivals {arrivals:?}"
        );
    }
    shutdown.cancel();
    bridge.wait().await.unwrap();
}
