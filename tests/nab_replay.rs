//! Replays the real NAB machine-temperature data set through MQTT with the
//! rule of `examples/nab-machine.toml` and checks the incidents against the
//! labelled failure windows shipped beside the data.

mod common;

use std::path::Path;

use chrono::{DateTime, NaiveDateTime, Utc};
use common::Pipeline;
use floorwatch::config::UpConfig;
use floorwatch_edge::{Publisher, PublisherConfig, ReplayOptions, Unit};
use floorwatch_protocol::Id;
use tokio_util::sync::CancellationToken;

const DATA: &str = "examples/data/machine_temperature_system_failure.csv";
const LABELS: &str = "examples/data/machine_temperature_labels.json";
const RULES: &str = "examples/nab-machine.toml";
/// Rows in the file; docs/nab-replay.md gives the same figures.
const ROWS: u64 = 22_695;
/// Incidents the `machine-cold` rule opens over the whole file.
const EXPECTED_INCIDENTS: usize = 7;

fn naive_utc(text: &str) -> DateTime<Utc> {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .unwrap()
        .and_utc()
}

fn labelled_windows() -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let labels: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(LABELS).unwrap()).unwrap();
    labels["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                naive_utc(w["start"].as_str().unwrap()),
                naive_utc(w["end"].as_str().unwrap()),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nab_replay_matches_failure_windows() {
    let dir = tempfile::tempdir().unwrap();
    let config = UpConfig::load(Path::new(RULES)).unwrap();
    let pipeline = Pipeline::start(config, dir.path()).await;

    let publisher = Publisher::connect(PublisherConfig::new(
        pipeline.broker.clone(),
        "test-nab-replay",
    ))
    .unwrap();
    let options = ReplayOptions {
        path: DATA.into(),
        site: Id::parse("nab").unwrap(),
        sensor: Id::parse("machine-1").unwrap(),
        unit: Unit::Fahrenheit,
        time_column: "timestamp".into(),
        value_column: "value".into(),
        speed: 0.0,
        progress: false,
    };
    let summary = floorwatch_edge::replay(options, &publisher, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(summary.rows, ROWS);
    assert_eq!(summary.acked, ROWS);
    assert_eq!(summary.skipped, 0);

    common::wait_for("every replayed reading evaluated", || async {
        let stats = pipeline.bridge.stats();
        let seen = stats.readings_accepted + stats.readings_rejected;
        (seen >= ROWS && stats.outbox_pending == 0).then_some(())
    })
    .await;
    let stats = pipeline.bridge.stats();
    assert_eq!(stats.readings_rejected, 0);
    // After 2014-01-07 02:55 the file's clock goes back to 02:00: the eleven
    // readings before 02:55 come later than a newer one.
    assert_eq!(stats.out_of_order, 11, "{stats:?}");
    let tasks = pipeline.wait_for_tasks(EXPECTED_INCIDENTS).await;
    assert_eq!(tasks.len(), EXPECTED_INCIDENTS, "{tasks:#?}");
    assert_eq!(stats.incidents_opened as usize, EXPECTED_INCIDENTS);

    let episodes: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)> = tasks
        .iter()
        .map(|task| {
            let opened = task["opened_at"].as_str().unwrap().parse().unwrap();
            let resolved = task["resolved_at"].as_str().map(|t| t.parse().unwrap());
            (opened, resolved)
        })
        .collect();
    for (start, end) in labelled_windows() {
        let overlapped = episodes
            .iter()
            .any(|(opened, resolved)| *opened <= end && resolved.is_none_or(|r| r >= start));
        assert!(
            overlapped,
            "no incident overlaps the failure window {start} to {end}"
        );
    }
    pipeline.stop().await;
}
