//! `floorwatch deliveries replay` by filter against the database of a
//! running bridge: dead letters of one incident, delivered events of one
//! incident, and every dead letter.

#[path = "../bridge/tests/common/mod.rs"]
mod bridge;

use std::path::Path;
use std::process::Command;

use bridge::{config, send_readings, start, stop, wait_for, Receiver};

const EPISODE_OPEN: [f64; 4] = [25.0, 31.0, 31.5, 32.0];

/// Runs `floorwatch deliveries --database DATABASE replay ARGS` and returns
/// whether it succeeded, with its output and error output.
fn replay(database: &Path, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_floorwatch"))
        .arg("deliveries")
        .arg("--database")
        .arg(database)
        .arg("replay")
        .args(args)
        .output()
        .expect("floorwatch deliveries runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.success(), stdout, stderr)
}

#[tokio::test]
async fn replay_by_incident_and_status() {
    let receiver = Receiver::start(503).await;
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("bridge.db");
    let (handle, shutdown) = start(config(&dir, vec![receiver.endpoint()], &[10])).await;
    send_readings(&handle, "oven-1", 0, &EPISODE_OPEN).await;
    send_readings(&handle, "oven-2", 0, &EPISODE_OPEN).await;
    wait_for("two dead letters", || handle.stats().dead_letters == 2).await;
    receiver.set_status(200);
    let oven_1 = receiver
        .deliveries()
        .into_iter()
        .find(|delivery| delivery.event().data.sensor.as_str() == "oven-1")
        .expect("oven-1 was attempted");
    let incident = oven_1.event().data.incident_id;
    let delivered = || {
        receiver
            .deliveries()
            .into_iter()
            .filter(|delivery| delivery.status == 200)
            .map(|delivery| delivery.event().data.sensor.as_str().to_owned())
            .collect::<Vec<_>>()
    };

    let (ok, stdout, stderr) = replay(&database, &["--dead", "--incident", &incident]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("queued 1 dead letter"), "{stdout}");
    wait_for("oven-1 replayed", || {
        handle.stats().deliveries_succeeded == 1
    })
    .await;
    assert_eq!(delivered(), ["oven-1"]);

    let (ok, stdout, stderr) = replay(
        &database,
        &["--status", "delivered", "--incident", &incident],
    );
    assert!(ok, "{stderr}");
    assert!(stdout.contains("queued 1 delivered event"), "{stdout}");
    wait_for("oven-1 sent again", || {
        handle.stats().deliveries_succeeded == 2
    })
    .await;
    assert_eq!(delivered(), ["oven-1", "oven-1"]);
    let resent = receiver.deliveries().last().cloned().unwrap();
    assert_eq!(resent.webhook_id, oven_1.webhook_id);

    let (ok, _, stderr) = replay(&database, &["--status", "delivered"]);
    assert!(!ok, "delivered events need a filter");
    assert!(
        stderr.contains("needs --endpoint or --incident"),
        "{stderr}"
    );

    let (ok, stdout, stderr) = replay(&database, &["--dead"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("queued 1 dead letter"), "{stdout}");
    wait_for("oven-2 replayed", || {
        handle.stats().deliveries_succeeded == 3
    })
    .await;
    assert_eq!(delivered(), ["oven-1", "oven-1", "oven-2"]);
    let (ok, _, stderr) = replay(&database, &["--dead"]);
    assert!(!ok, "nothing is dead any more");
    assert!(stderr.contains("no dead letter matched"), "{stderr}");
    stop(handle, shutdown).await;
}
