//! The whole pipeline in one process: readings published over MQTT to the
//! embedded broker become incidents in the bridge, signed webhooks, and
//! exactly one maintenance task per episode in the scheduler.

mod common;

use common::{reading_json, wait_for, Pipeline};
use floorwatch::config::UpConfig;

/// Minutes after 08:00 on a fixed day, as RFC 3339.
fn at(minute: u32) -> String {
    format!("2026-12-01T{:02}:{:02}:00Z", 8 + minute / 60, minute % 60)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_task_per_episode() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::start(UpConfig::default(), dir.path()).await;
    let sensor = pipeline.mqtt_client("test-sensor").await;
    let topic = "floorwatch/plant-1/oven-1/reading";

    // Two episodes above 30 °C, each held for more than three readings and
    // each cleared by three readings at or below 29 °C.
    let episode = [25.0, 31.0, 32.5, 33.0, 34.0, 33.5, 28.0, 27.5, 27.0, 26.0];
    let values: Vec<f64> = episode.iter().chain(episode.iter()).copied().collect();
    for (index, celsius) in values.iter().enumerate() {
        let seq = index as u64 + 1;
        let payload = reading_json("plant-1", "oven-1", seq, &at(index as u32), *celsius);
        sensor.publish(topic, payload).await;
    }

    pipeline.wait_until_idle(values.len() as u64).await;
    let tasks = pipeline.wait_for_tasks(2).await;
    assert_eq!(tasks.len(), 2, "one task per episode: {tasks:#?}");
    assert_ne!(tasks[0]["incident_id"], tasks[1]["incident_id"]);
    for task in &tasks {
        assert_eq!(task["sensor"], "oven-1");
        assert_eq!(task["site"], "plant-1");
        assert_eq!(task["metric"], "temperature");
        assert_eq!(task["status"], "open");
        assert!(task["assignee"].is_string(), "{task}");
    }
    let assignees: Vec<&str> = tasks
        .iter()
        .map(|t| t["assignee"].as_str().unwrap())
        .collect();
    assert_ne!(
        assignees[0], assignees[1],
        "round robin over two technicians"
    );

    let stats = pipeline.bridge.stats();
    assert_eq!(stats.incidents_opened, 2);
    assert_eq!(stats.incidents_resolved, 2);
    assert_eq!(stats.deliveries_succeeded, 4, "opened and resolved of each");
    assert_eq!(stats.readings_rejected, 0);

    let cleared = wait_for("both tasks marked cleared", || async {
        let tasks = pipeline.tasks().await;
        tasks
            .iter()
            .all(|t| t["condition_cleared"] == true)
            .then_some(tasks)
    })
    .await;
    assert_eq!(cleared.len(), 2);
    for task in &cleared {
        assert_eq!(task["value"], 33.0, "the reading that opened the incident");
    }
    pipeline.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tutorial_and_bare_payloads_open_incident() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::start(UpConfig::default(), dir.path()).await;
    let mut watcher = pipeline.mqtt_client("test-watcher").await;
    watcher.subscribe("floorwatch/+/+/rejected").await;
    let sensor = pipeline.mqtt_client("test-tutorial").await;
    let topic = "floorwatch/plant-1/freezer-2/reading";

    sensor.publish(topic, "31.5").await;
    sensor
        .publish(topic, r#"{"Temperature": 32, "name": "freezer-2"}"#)
        .await;
    sensor.publish(topic, "{not json").await;
    sensor.publish(topic, " 33.25 ").await;

    let tasks = pipeline.wait_for_tasks(1).await;
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["sensor"], "freezer-2");
    assert_eq!(tasks[0]["value"], 33.25);

    let (rejected_topic, reason) = watcher.recv().await;
    assert_eq!(rejected_topic, "floorwatch/plant-1/freezer-2/rejected");
    let reason: serde_json::Value = serde_json::from_slice(&reason).unwrap();
    assert!(
        reason["reason"]
            .as_str()
            .unwrap()
            .contains("not a number or a JSON reading"),
        "{reason}"
    );

    let stats = pipeline.bridge.stats();
    assert_eq!(stats.readings_accepted, 3);
    assert_eq!(stats.readings_rejected, 1);
    assert_eq!(stats.rejected_by_reason.values().sum::<u64>(), 1);
    pipeline.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_payloads_keep_connection() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::start(UpConfig::default(), dir.path()).await;
    let sensor = pipeline.mqtt_client("test-hostile").await;
    let topic = "floorwatch/plant-1/line-3/reading";

    let hostile: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"\xff\xfe\x00".to_vec(),
        b"NaN".to_vec(),
        b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[".to_vec(),
        br#"{"temperature_c": 1e999}"#.to_vec(),
        vec![b'7'; 40_000],
    ];
    for payload in &hostile {
        sensor.publish(topic, payload.clone()).await;
    }
    for (seq, celsius) in [35.0, 36.0, 37.0].into_iter().enumerate() {
        let payload = reading_json(
            "plant-1",
            "line-3",
            seq as u64 + 1,
            &at(seq as u32),
            celsius,
        );
        sensor.publish(topic, payload).await;
    }
    // A malformed identifier in the topic is rejected too.
    sensor
        .publish("floorwatch/plant 1/line-3/reading", "25")
        .await;

    let tasks = pipeline.wait_for_tasks(1).await;
    assert_eq!(tasks[0]["sensor"], "line-3");
    let stats = wait_for("every hostile payload counted", || async {
        let stats = pipeline.bridge.stats();
        (stats.readings_rejected as usize == hostile.len() + 1).then_some(stats)
    })
    .await;
    assert_eq!(stats.readings_accepted, 3);
    assert!(stats.mqtt_connected);
    pipeline.stop().await;
}
