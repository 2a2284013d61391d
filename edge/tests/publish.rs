//! Publishing through an embedded rumqttd broker: CSV replay, pacing and the
//! simulated sensors, checked by a subscriber on the reading topics.

mod support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use floorwatch_edge::{
    replay, run_simulated, ReplayOptions, SimulatedSensorConfig, Unit, FLUSH_DEADLINE,
};
use floorwatch_protocol::Id;
use tokio_util::sync::CancellationToken;

use support::{connect_publisher, rows, start_broker, write_csv, Subscriber, WAIT};

const READING_FILTER: &str = "floorwatch/+/+/reading";

fn start_time() -> DateTime<Utc> {
    "2013-12-02T21:15:00Z".parse().unwrap()
}

fn replay_options(path: std::path::PathBuf, speed: f64) -> ReplayOptions {
    ReplayOptions {
        unit: Unit::Fahrenheit,
        speed,
        ..ReplayOptions::new(
            path,
            Id::parse("plant-1").unwrap(),
            Id::parse("oven-1").unwrap(),
        )
    }
}

#[tokio::test]
async fn replay_delivers_every_row_in_order() {
    let addr = start_broker();
    let mut subscriber = Subscriber::connect(addr, "test-subscriber", READING_FILTER).await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_csv(
        dir.path(),
        "machine.csv",
        &rows(start_time(), chrono::Duration::minutes(5), 200),
    );
    // Ten in flight makes rumqttc reuse every packet id many times.
    let publisher = connect_publisher(addr, "edge-replay", 10);

    let summary = replay(
        replay_options(path, 0.0),
        &publisher,
        CancellationToken::new(),
    )
    .await
    .unwrap();

    assert_eq!(summary.rows, 200);
    assert_eq!(summary.published, 200);
    assert_eq!(summary.acked, 200);
    assert_eq!(summary.skipped, 0);
    assert_eq!(summary.first_time, Some(start_time()));
    assert_eq!(
        summary.last_time,
        Some(start_time() + chrono::Duration::minutes(5 * 199))
    );
    assert_eq!(publisher.acked(), 200);

    let received = subscriber.receive(200).await;
    let seqs: Vec<_> = received.iter().map(|item| item.reading.seq).collect();
    let expected: Vec<_> = (1..=200).map(Some).collect();
    assert_eq!(seqs, expected);
    assert!(received
        .iter()
        .all(|item| item.topic == "floorwatch/plant-1/oven-1/reading"));

    let first = &received[0].reading;
    assert_eq!(first.time, start_time());
    let celsius = first.temperature_c.unwrap();
    assert!(
        (celsius - (70.0 - 32.0) * 5.0 / 9.0).abs() < 1e-9,
        "{celsius}"
    );

    let extra = subscriber.drain(Duration::from_millis(200)).await;
    assert!(extra.is_empty(), "{} readings arrived twice", extra.len());
    publisher.close(FLUSH_DEADLINE).await;
}

#[tokio::test]
async fn replay_paces_by_recorded_gaps() {
    let addr = start_broker();
    let mut subscriber = Subscriber::connect(addr, "test-subscriber", READING_FILTER).await;
    let dir = tempfile::tempdir().unwrap();
    // Eleven rows one minute apart span 600 s; at 1200x that is 0.5 s.
    let path = write_csv(
        dir.path(),
        "paced.csv",
        &rows(start_time(), chrono::Duration::minutes(1), 11),
    );
    let publisher = connect_publisher(addr, "edge-paced", 100);

    let started = std::time::Instant::now();
    let summary = replay(
        replay_options(path, 1200.0),
        &publisher,
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let elapsed = started.elapsed();

    assert_eq!(summary.acked, 11);
    assert!(elapsed >= Duration::from_millis(500), "took {elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    assert_eq!(subscriber.receive(11).await.len(), 11);
    publisher.close(FLUSH_DEADLINE).await;
}

#[tokio::test]
async fn replay_stops_on_cancel() {
    let addr = start_broker();
    let dir = tempfile::tempdir().unwrap();
    // At real time the second row would come a minute later.
    let path = write_csv(
        dir.path(),
        "slow.csv",
        &rows(start_time(), chrono::Duration::minutes(1), 3),
    );
    let publisher = connect_publisher(addr, "edge-cancel", 100);
    let shutdown = CancellationToken::new();

    let cancel = shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        cancel.cancel();
    });
    let summary = tokio::time::timeout(
        WAIT,
        replay(replay_options(path, 1.0), &publisher, shutdown),
    )
    .await
    .expect("replay returned after cancel")
    .unwrap();

    assert_eq!(summary.rows, 3);
    assert_eq!(summary.published, 1);
    publisher.close(FLUSH_DEADLINE).await;
}

#[tokio::test]
async fn simulated_sensors_publish_until_cancelled() {
    let addr = start_broker();
    let mut subscriber = Subscriber::connect(addr, "test-subscriber", READING_FILTER).await;
    let publisher = connect_publisher(addr, "edge-simulated", 100);
    let sensors: Vec<_> = ["oven-1", "line-3"]
        .into_iter()
        .map(|sensor| SimulatedSensorConfig {
            interval_ms: 20,
            seed: Some(1),
            ..SimulatedSensorConfig::new("plant-1", sensor)
        })
        .collect();
    let shutdown = CancellationToken::new();

    let received = {
        let running = run_simulated(sensors, &publisher, shutdown.clone());
        tokio::pin!(running);
        let received = tokio::select! {
            received = subscriber.receive(20) => received,
            result = &mut running => panic!("sampling ended early: {result:?}"),
        };
        shutdown.cancel();
        tokio::time::timeout(WAIT, running)
            .await
            .expect("sampling stopped after cancel")
            .unwrap();
        received
    };

    for sensor in ["oven-1", "line-3"] {
        let topic = format!("floorwatch/plant-1/{sensor}/reading");
        let seqs: Vec<u64> = received
            .iter()
            .filter(|item| item.topic == topic)
            .filter_map(|item| item.reading.seq)
            .collect();
        assert!(seqs.len() >= 2, "{sensor}: {seqs:?}");
        assert_eq!(seqs[0], 1, "{sensor}: {seqs:?}");
        assert!(
            seqs.windows(2).all(|pair| pair[1] == pair[0] + 1),
            "{sensor}: {seqs:?}"
        );
    }
    publisher.flush(WAIT).await.unwrap();
    publisher.close(FLUSH_DEADLINE).await;
}
