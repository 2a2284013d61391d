//! Webhook delivery end to end inside the bridge: readings go in through
//! `BridgeHandle::ingest`, signed requests come out at a recording receiver.

mod common;

use std::time::Duration;

use common::{config, send_readings, start, stop, wait_for, Receiver};
use floorwatch_bridge::{BridgeConfig, BridgeError, Store};
use floorwatch_protocol::EventType;

const EPISODE_OPEN: [f64; 4] = [25.0, 31.0, 31.5, 32.0];
const EPISODE_CLEAR: [f64; 3] = [28.0, 27.0, 26.0];

#[tokio::test]
async fn events_are_delivered_signed_and_in_order() {
    let receiver = Receiver::start(200).await;
    let dir = tempfile::tempdir().unwrap();
    let (handle, shutdown) = start(config(&dir, vec![receiver.endpoint()], &[10])).await;

    send_readings(&handle, "oven-1", 0, &EPISODE_OPEN).await;
    send_readings(&handle, "oven-1", 4, &EPISODE_CLEAR).await;
    wait_for("two deliveries", || {
        handle.stats().deliveries_succeeded == 2
    })
    .await;

    let deliveries = receiver.deliveries();
    assert_eq!(deliveries.len(), 2);
    for delivery in &deliveries {
        assert_eq!(delivery.verified, Ok(()));
        assert_eq!(delivery.content_type.as_deref(), Some("application/json"));
        assert!(delivery.webhook_id.as_deref().unwrap().starts_with("msg_"));
    }
    let (opened, resolved) = (deliveries[0].event(), deliveries[1].event());
    assert_eq!(opened.event_type, EventType::IncidentOpened);
    assert_eq!(resolved.event_type, EventType::IncidentResolved);
    assert_eq!(opened.data.incident_id, resolved.data.incident_id);
    assert!(opened.data.incident_id.starts_with("inc_"));
    assert_eq!((opened.data.seq, resolved.data.seq), (1, 2));
    assert_ne!(deliveries[0].webhook_id, deliveries[1].webhook_id);

    let stats = handle.stats();
    assert_eq!(stats.incidents_opened, 1);
    assert_eq!(stats.incidents_resolved, 1);
    assert_eq!(stats.events_written, 2);
    assert_eq!(stats.outbox_pending, 0);
    assert!(!stats.mqtt_connected);
    stop(handle, shutdown).await;
}

#[tokio::test]
async fn failed_attempt_is_retried_with_same_id() {
    let receiver = Receiver::start(200).await;
    receiver.script(&[500]);
    let dir = tempfile::tempdir().unwrap();
    let (handle, shutdown) = start(config(&dir, vec![receiver.endpoint()], &[20, 20])).await;

    send_readings(&handle, "oven-1", 0, &EPISODE_OPEN).await;
    wait_for("a delivery after a retry", || {
        handle.stats().deliveries_succeeded == 1
    })
    .await;

    let deliveries = receiver.deliveries();
    assert_eq!(deliveries.len(), 2);
    assert_eq!(deliveries[0].status, 500);
    assert_eq!(deliveries[1].status, 200);
    assert_eq!(deliveries[0].webhook_id, deliveries[1].webhook_id);
    assert_eq!(deliveries[0].body, deliveries[1].body);
    assert_eq!(deliveries[1].verified, Ok(()));
    assert_eq!(handle.stats().delivery_attempts_failed, 1);

    let event_id = deliveries[0].webhook_id.clone().unwrap();
    let store = Store::open(&dir.path().join("bridge.db")).unwrap();
    let attempts = store.attempts_of(&event_id).unwrap();
    let statuses: Vec<Option<u16>> = attempts
        .iter()
        .map(|(_, _, record)| record.status_code)
        .collect();
    assert_eq!(statuses, [Some(500), Some(200)]);
    assert_eq!(attempts[1].1, 2);
    stop(handle, shutdown).await;
}

#[tokio::test]
async fn redirect_counts_as_failure() {
    let receiver = Receiver::start(200).await;
    receiver.script(&[302]);
    let dir = tempfile::tempdir().unwrap();
    let (handle, shutdown) = start(config(&dir, vec![receiver.endpoint()], &[20])).await;

    send_readings(&handle, "oven-1", 0, &EPISODE_OPEN).await;
    wait_for("a delivery after the redirect", || {
        handle.stats().deliveries_succeeded == 1
    })
    .await;

    let deliveries = receiver.deliveries();
    assert_eq!(
        deliveries.len(),
        2,
        "the redirect target must not be requested"
    );
    assert_eq!(deliveries[0].status, 302);
    let event_id = deliveries[0].webhook_id.clone().unwrap();
    let store = Store::open(&dir.path().join("bridge.db")).unwrap();
    let attempts = store.attempts_of(&event_id).unwrap();
    let error = attempts[0].2.error.clone().unwrap();
    assert!(error.contains("redirect"), "{error}");
    stop(handle, shutdown).await;
}

#[tokio::test]
async fn exhausted_retries_make_dead_letter() {
    let receiver = Receiver::start(503).await;
    let dir = tempfile::tempdir().unwrap();
    let (handle, shutdown) = start(config(&dir, vec![receiver.endpoint()], &[10, 10])).await;

    send_readings(&handle, "oven-1", 0, &EPISODE_OPEN).await;
    wait_for("a dead letter", || handle.stats().dead_letters == 1).await;

    assert_eq!(receiver.deliveries().len(), 3);
    let stats = handle.stats();
    assert_eq!(stats.delivery_attempts_failed, 3);
    assert_eq!(stats.deliveries_succeeded, 0);
    assert_eq!(stats.outbox_pending, 0);
    let store = Store::open(&dir.path().join("bridge.db")).unwrap();
    let dead = store.dead_letters().unwrap();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].2.as_deref().unwrap().contains("503"));
    stop(handle, shutdown).await;
}

#[tokio::test]
async fn failing_incident_does_not_block_others() {
    let receiver = Receiver::start(200).await;
    receiver.fail_containing(Some("\"oven-1\""));
    let dir = tempfile::tempdir().unwrap();
    // oven-1's first retry waits a minute, far longer than this test.
    let (handle, shutdown) = start(config(&dir, vec![receiver.endpoint()], &[60_000])).await;

    send_readings(&handle, "oven-1", 0, &EPISODE_OPEN).await;
    send_readings(&handle, "oven-1", 4, &EPISODE_CLEAR).await;
    send_readings(&handle, "oven-2", 0, &EPISODE_OPEN).await;
    wait_for("oven-2 delivered", || {
        handle.stats().deliveries_succeeded == 1
    })
    .await;

    let deliveries = receiver.deliveries();
    let oven_1: Vec<_> = deliveries
        .iter()
        .filter(|delivery| delivery.event().data.sensor.as_str() == "oven-1")
        .collect();
    // Only oven-1's opened event was tried; its resolved event waits behind it.
    assert_eq!(oven_1.len(), 1);
    assert_eq!(oven_1[0].event().event_type, EventType::IncidentOpened);
    assert_eq!(handle.stats().outbox_pending, 2);
    stop(handle, shutdown).await;
}

#[tokio::test]
async fn loopback_endpoint_is_refused_without_allow_private() {
    let receiver = Receiver::start(200).await;
    let mut endpoint = receiver.endpoint();
    endpoint.allow_private = false;
    let dir = tempfile::tempdir().unwrap();
    let (handle, shutdown) = start(config(&dir, vec![endpoint], &[])).await;

    send_readings(&handle, "oven-1", 0, &EPISODE_OPEN).await;
    wait_for("a dead letter", || handle.stats().dead_letters == 1).await;

    assert!(receiver.deliveries().is_empty());
    let store = Store::open(&dir.path().join("bridge.db")).unwrap();
    let dead = store.dead_letters().unwrap();
    let error = dead[0].2.clone().unwrap();
    assert!(error.contains("loopback"), "{error}");
    stop(handle, shutdown).await;
}

#[tokio::test]
async fn outbox_survives_restart() {
    let receiver = Receiver::start(503).await;
    let dir = tempfile::tempdir().unwrap();
    let settings = config(&dir, vec![receiver.endpoint()], &[60_000]);
    let (handle, shutdown) = start(settings.clone()).await;
    send_readings(&handle, "oven-1", 0, &EPISODE_OPEN).await;
    wait_for("a failed attempt", || {
        handle.stats().delivery_attempts_failed == 1
    })
    .await;
    stop(handle, shutdown).await;

    // The retry is a minute away: the restarted bridge must still hold the
    // row, and a further breach must not open a second incident.
    receiver.set_status(200);
    let (handle, shutdown) = start(settings).await;
    assert_eq!(handle.stats().outbox_pending, 1);
    send_readings(&handle, "oven-1", 4, &[32.0]).await;
    assert_eq!(handle.stats().incidents_opened, 0);
    stop(handle, shutdown).await;
}

#[tokio::test]
async fn start_rejects_invalid_config_and_database() {
    let mut invalid = BridgeConfig::default();
    invalid.rules[0].clear_threshold = 35.0;
    let result = floorwatch_bridge::start(invalid, Default::default()).await;
    assert!(matches!(result, Err(BridgeError::Config(_))));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"").unwrap();
    let unopenable = BridgeConfig {
        database: file.join("bridge.db"),
        ..BridgeConfig::default()
    };
    let result = floorwatch_bridge::start(unopenable, Default::default()).await;
    assert!(
        matches!(result, Err(BridgeError::Store(_))),
        "{:?}",
        result.err()
    );
}

#[tokio::test]
async fn timed_out_attempt_is_recorded_and_retried() {
    let receiver = Receiver::start(200).await;
    // The receiver responds to requests about oven-1 after 3 s, past the
    // 1 s timeout.
    receiver.delay_containing("\"oven-1\"", Duration::from_secs(3));
    let mut endpoint = receiver.endpoint();
    endpoint.timeout_secs = 1;
    let dir = tempfile::tempdir().unwrap();
    let (handle, shutdown) = start(config(&dir, vec![endpoint], &[500, 500, 500])).await;

    send_readings(&handle, "oven-1", 0, &EPISODE_OPEN).await;
    send_readings(&handle, "oven-1", 4, &EPISODE_CLEAR).await;
    send_readings(&handle, "oven-2", 0, &EPISODE_OPEN).await;
    wait_for("the first attempt to time out", || {
        handle.stats().delivery_attempts_failed >= 1
    })
    .await;
    receiver.delay_containing("no request contains this", Duration::ZERO);
    wait_for("three deliveries", || {
        handle.stats().deliveries_succeeded == 3
    })
    .await;

    let deliveries = receiver.deliveries();
    let of_sensor = |sensor: &str| -> Vec<_> {
        deliveries
            .iter()
            .filter(|delivery| delivery.event().data.sensor.as_str() == sensor)
            .collect()
    };
    let (slow, other) = (of_sensor("oven-1"), of_sensor("oven-2"));
    assert_eq!(other.len(), 1, "oven-2 is delivered once");
    assert_eq!(other[0].status, 200);
    let opened_id = slow[0].webhook_id.clone().unwrap();
    let types: Vec<EventType> = slow.iter().map(|d| d.event().event_type).collect();
    assert_eq!(types.last(), Some(&EventType::IncidentResolved));
    assert!(
        types[..types.len() - 1]
            .iter()
            .all(|event_type| *event_type == EventType::IncidentOpened),
        "the resolved event was sent before the opened one was delivered: {types:?}"
    );
    assert!(slow[..slow.len() - 1]
        .iter()
        .all(|delivery| delivery.webhook_id.as_deref() == Some(opened_id.as_str())));

    let store = Store::open(&dir.path().join("bridge.db")).unwrap();
    let attempts = store.attempts_of(&opened_id).unwrap();
    assert!(attempts.len() >= 2, "{attempts:?}");
    let (failed, last) = attempts.split_at(attempts.len() - 1);
    for (_, _, record) in failed {
        assert_eq!(record.status_code, None, "a timeout has no status");
        let error = record.error.as_deref().unwrap_or_default();
        assert!(error.contains("timed out"), "{error}");
    }
    assert_eq!(last[0].2.status_code, Some(200));
    assert_eq!(last[0].1 as usize, attempts.len());
    assert_eq!(handle.stats().outbox_pending, 0);
    assert_eq!(handle.stats().dead_letters, 0);
    stop(handle, shutdown).await;
}
