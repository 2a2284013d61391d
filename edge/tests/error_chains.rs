//! Error messages as the CLI prints them: each error joined with its
//! `source()` chain by ": ", the way anyhow's `{:#}` does. Every cause must
//! appear once, so no error may repeat its source's message in its own.

use std::error::Error;
use std::time::Duration;

use floorwatch_edge::{
    build_sensors, read_replay_file, EdgeConfig, Outbox, OutboxBounds, ReplayOptions,
    SimulatedSensorConfig,
};
use floorwatch_protocol::Id;

/// Joins `error` and its sources with ": ".
fn chain(error: &(dyn Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut next = error.source();
    while let Some(source) = next {
        parts.push(source.to_string());
        next = source.source();
    }
    parts.join(": ")
}

/// Asserts that `cause` occurs exactly once in the printed chain of `error`.
fn assert_cause_once(error: &(dyn Error + 'static), cause: &str) {
    let printed = chain(error);
    assert_eq!(printed.matches(cause).count(), 1, "{printed}");
}

#[test]
fn invalid_sensor_id_reason_once() {
    let configs = [SimulatedSensorConfig::new("plant-1", "oven.1")];
    let error = build_sensors(&configs).unwrap_err();
    assert_cause_once(&error, "contains '.'");
    assert!(error
        .to_string()
        .starts_with("sensors[0].sensor is invalid"));
    assert!(
        error.to_string().contains("contains '.'"),
        "the message alone keeps the reason: {error}"
    );
}

#[test]
fn missing_config_file_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.toml");
    let error = EdgeConfig::load(Some(&path), Vec::new()).unwrap_err();
    assert_cause_once(&error, "No such file or directory");
    assert!(error.to_string().contains("edge.toml"), "{error}");
}

#[test]
fn missing_replay_file_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.csv");
    let site = Id::parse("plant-1").unwrap();
    let sensor = Id::parse("oven-1").unwrap();
    let error = read_replay_file(&ReplayOptions::new(&path, site, sensor)).unwrap_err();
    assert_cause_once(&error, "No such file or directory");
    assert!(error.to_string().contains("missing.csv"), "{error}");
}

#[test]
fn corrupt_outbox_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    std::fs::write(&path, vec![b'x'; 4096]).unwrap();
    let bounds = OutboxBounds {
        max_rows: 10,
        max_age: Duration::from_secs(60),
    };
    let Err(error) = Outbox::open(&path, bounds) else {
        panic!("a file of 'x' bytes opened as an outbox");
    };
    assert_cause_once(&error, "file is not a database");
    assert!(
        error.to_string().contains("file is not a database"),
        "the agent logs the message alone, so it keeps the cause: {error}"
    );
}
