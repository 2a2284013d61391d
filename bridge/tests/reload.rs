//! Config reload of a running bridge: `BridgeHandle::reload` keeps the
//! state of unchanged rules and rejects an invalid config, and the file
//! watcher reloads when the file changes.

mod common;

use common::{config, send_readings, start, stop, wait_for, Receiver};
use floorwatch_bridge::{watch_config_file, BridgeConfig, BridgeError};
use floorwatch_protocol::EventType;

#[tokio::test]
async fn reload_keeps_open_incident() {
    let receiver = Receiver::start(200).await;
    let dir = tempfile::tempdir().unwrap();
    let base = config(&dir, vec![receiver.endpoint()], &[10]);
    let (handle, shutdown) = start(base.clone()).await;
    send_readings(&handle, "oven-1", 0, &[31.0, 31.0, 31.0]).await;

    // Same identity, new thresholds: 30.5 °C now clears the incident.
    let mut next = base.clone();
    next.rules[0].threshold = 32.0;
    next.rules[0].clear_threshold = 31.0;
    handle.reload(next).await.unwrap();
    send_readings(&handle, "oven-1", 3, &[30.5, 30.5, 30.5]).await;

    wait_for("two deliveries", || {
        handle.stats().deliveries_succeeded == 2
    })
    .await;
    let deliveries = receiver.deliveries();
    let (opened, resolved) = (deliveries[0].event(), deliveries[1].event());
    assert_eq!(opened.event_type, EventType::IncidentOpened);
    assert_eq!(resolved.event_type, EventType::IncidentResolved);
    assert_eq!(opened.data.incident_id, resolved.data.incident_id);
    assert_eq!(resolved.data.clear_threshold, 31.0);
    let stats = handle.stats();
    assert_eq!(stats.incidents_opened, 1);
    assert_eq!(stats.config_reloads, 1);
    stop(handle, shutdown).await;
}

#[tokio::test]
async fn invalid_reload_keeps_running_config() {
    let dir = tempfile::tempdir().unwrap();
    let base = config(&dir, Vec::new(), &[10]);
    let (handle, shutdown) = start(base.clone()).await;

    let mut invalid = base.clone();
    invalid.rules[0].clear_threshold = 35.0;
    let error = match handle.reload(invalid).await {
        Err(BridgeError::Config(error)) => error,
        other => panic!("expected a config error, got {other:?}"),
    };
    assert_eq!(error.field, "bridge.rules[0].clear_threshold");
    assert!(error.fix.contains("at or below 30"), "{}", error.fix);
    assert_eq!(handle.stats().config_reloads, 0);

    // The running rules still open an incident at 31 °C.
    send_readings(&handle, "oven-1", 0, &[31.0, 31.0, 31.0]).await;
    assert_eq!(handle.stats().incidents_opened, 1);
    stop(handle, shutdown).await;
}

#[tokio::test]
async fn changed_file_is_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let base = config(&dir, Vec::new(), &[10]);
    let (handle, shutdown) = start(base.clone()).await;
    let path = dir.path().join("bridge.toml");
    std::fs::write(&path, "").unwrap();
    let load = |path: &std::path::Path| {
        let text = std::fs::read_to_string(path).map_err(|error| error.to_string())?;
        toml::from_str::<BridgeConfig>(&text).map_err(|error| error.to_string())
    };
    let watch = watch_config_file(path.clone(), load, handle.reloader(), shutdown.clone());
    tokio::spawn(watch);

    // An invalid file is logged and skipped; a valid one is applied.
    std::fs::write(&path, "[[bridge.rules]]\nid = \"x\"").unwrap();
    wait_for("the rejection of the invalid file", || {
        handle.stats().config_reloads_rejected == 1
    })
    .await;
    std::fs::write(
        &path,
        "[[rules]]\nid = \"too-hot\"\ncondition = \"above\"\nthreshold = 40.0\n\
         clear_threshold = 39.0\nconsecutive = 1\n",
    )
    .unwrap();
    wait_for("the reload of the changed file", || {
        handle.stats().config_reloads == 1
    })
    .await;
    send_readings(&handle, "oven-1", 0, &[35.0, 35.0, 41.0]).await;
    assert_eq!(handle.stats().incidents_opened, 1);
    stop(handle, shutdown).await;
}
