//! Per-endpoint delivery controls against the recording receiver: `410
//! Gone`, the circuit breaker, concurrency, the rate limit and replay of
//! dead letters.

mod common;

use std::time::Duration;

use common::{config, send_readings, start, stop, wait_for, Receiver};
use floorwatch_bridge::Store;
use floorwatch_protocol::EventType;

const EPISODE_OPEN: [f64; 4] = [25.0, 31.0, 31.5, 32.0];
const EPISODE_CLEAR: [f64; 3] = [28.0, 27.0, 26.0];

/// Gives a running bridge time to send anything it still would.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn gone_disables_endpoint_across_restart() {
    let receiver = Receiver::start(200).await;
    receiver.script(&[410]);
    let dir = tempfile::tempdir().unwrap();
    let settings = config(&dir, vec![receiver.endpoint()], &[10, 10]);
    let (handle, shutdown) = start(settings.clone()).await;

    send_readings(&handle, "oven-1", 0, &EPISODE_OPEN).await;
    wait_for("the endpoint disabled", || {
        handle.stats().endpoints_disabled == 1
    })
    .await;
    settle().await;
    assert_eq!(receiver.deliveries().len(), 1);
    assert_eq!(handle.stats().outbox_pending, 1);
    stop(handle, shutdown).await;

    let (handle, shutdown) = start(settings).await;
    wait_for("the endpoint still disabled after a restart", || {
        handle.stats().endpoints_disabled == 1
    })
    .await;
    settle().await;
    assert_eq!(
        receiver.deliveries().len(),
        1,
        "a disabled endpoint got a request"
    );

    let mut store = Store::open(&dir.path().join("bridge.db")).unwrap();
    assert!(store.enable_endpoint(&receiver.url).unwrap());
    wait_for("the delivery after enabling", || {
        handle.stats().deliveries_succeeded == 1
    })
    .await;
    let deliveries = receiver.deliveries();
    assert_eq!(deliveries[1].status, 200);
    assert_eq!(deliveries[0].webhook_id, deliveries[1].webhook_id);
    assert_eq!(handle.stats().endpoints_disabled, 0);
    stop(handle, shutdown).await;
}

/// Returns `receiver`'s endpoint with a breaker that opens after two
/// failures and cools down for 300 ms, doubling up to 5 s.
fn quick_breaker(receiver: &Receiver) -> floorwatch_bridge::EndpointConfig {
    let mut endpoint = receiver.endpoint();
    endpoint.breaker_failures = 2;
    endpoint.breaker_cooldown_ms = 300;
    endpoint.breaker_max_cooldown_ms = 5_000;
    endpoint
}

#[tokio::test]
async fn breaker_opens_then_probes() {
    let receiver = Receiver::start(200).await;
    receiver.script(&[500, 500, 500]);
    let endpoint = quick_breaker(&receiver);
    let dir = tempfile::tempdir().unwrap();
    let (handle, shutdown) = start(config(&dir, vec![endpoint], &[10; 6])).await;

    send_readings(&handle, "oven-1", 0, &EPISODE_OPEN).await;
    wait_for("a delivery after two probes", || {
        handle.stats().deliveries_succeeded == 1
    })
    .await;

    let deliveries = receiver.deliveries();
    let statuses: Vec<u16> = deliveries.iter().map(|delivery| delivery.status).collect();
    assert_eq!(statuses, [500, 500, 500, 200]);
    let gap = |index: usize| deliveries[index].received_at - deliveries[index - 1].received_at;
    // Retries are 10 ms apart; only the breaker explains longer gaps.
    assert!(
        gap(2) >= Duration::from_millis(280),
        "first cool-down {:?}",
        gap(2)
    );
    assert!(
        gap(3) >= Duration::from_millis(580),
        "doubled cool-down {:?}",
        gap(3)
    );
    stop(handle, shutdown).await;
}

#[tokio::test]
async fn gone_on_a_probe_then_enable_delivers() {
    let receiver = Receiver::start(200).await;
    // Two failures open the breaker, and its probe gets the 410.
    receiver.script(&[500, 500, 410]);
    let endpoint = quick_breaker(&receiver);
    let dir = tempfile::tempdir().unwrap();
    let (handle, shutdown) = start(config(&dir, vec![endpoint], &[10; 6])).await;

    send_readings(&handle, "oven-1", 0, &EPISODE_OPEN).await;
    wait_for("the endpoint disabled by the probe", || {
        handle.stats().endpoints_disabled == 1
    })
    .await;
    let mut store = Store::open(&dir.path().join("bridge.db")).unwrap();
    assert!(store.enable_endpoint(&receiver.url).unwrap());
    wait_for("the delivery after enabling", || {
        handle.stats().deliveries_succeeded == 1
    })
    .await;
    let statuses: Vec<u16> = receiver
        .deliveries()
        .iter()
        .map(|delivery| delivery.status)
        .collect();
    assert_eq!(statuses, [500, 500, 410, 200]);
    stop(handle, shutdown).await;
}

#[tokio::test]
async fn concurrency_keeps_incident_order() {
    let receiver = Receiver::start(200).await;
    let delay = Duration::from_millis(1_000);
    receiver.delay_containing("\"oven-1\"", delay);
    let dir = tempfile::tempdir().unwrap();
    let (handle, shutdown) = start(config(&dir, vec![receiver.endpoint()], &[10])).await;

    send_readings(&handle, "oven-1", 0, &EPISODE_OPEN).await;
    send_readings(&handle, "oven-1", 4, &EPISODE_CLEAR).await;
    send_readings(&handle, "oven-2", 0, &EPISODE_OPEN).await;
    send_readings(&handle, "oven-2", 4, &EPISODE_CLEAR).await;
    wait_for("four deliveries", || {
        handle.stats().deliveries_succeeded == 4
    })
    .await;

    let deliveries = receiver.deliveries();
    let of_sensor = |sensor: &str| -> Vec<_> {
        deliveries
            .iter()
            .filter(|delivery| delivery.event().data.sensor.as_str() == sensor)
            .collect()
    };
    let (slow, fast) = (of_sensor("oven-1"), of_sensor("oven-2"));
    assert_eq!(slow.len(), 2);
    assert_eq!(fast.len(), 2);
    assert_eq!(slow[0].event().event_type, EventType::IncidentOpened);
    assert_eq!(slow[1].event().event_type, EventType::IncidentResolved);
    assert_eq!(fast[1].event().event_type, EventType::IncidentResolved);
    assert!(
        slow[1].received_at >= slow[0].received_at + delay,
        "oven-1's resolved event was sent before its opened event was answered"
    );
    assert!(
        fast[1].received_at < slow[0].received_at + delay,
        "oven-2 waited for the slow oven-1 request"
    );
    stop(handle, shutdown).await;
}

#[tokio::test]
async fn rate_limit_spaces_requests() {
    let receiver = Receiver::start(200).await;
    let mut endpoint = receiver.endpoint();
    endpoint.rate_limit_per_sec = Some(5.0);
    endpoint.max_concurrency = 16;
    let dir = tempfile::tempdir().unwrap();
    let (handle, shutdown) = start(config(&dir, vec![endpoint], &[10])).await;

    for index in 0..12 {
        send_readings(&handle, &format!("oven-{index}"), 0, &EPISODE_OPEN).await;
    }
    wait_for("twelve deliveries", || {
        handle.stats().deliveries_succeeded == 12
    })
    .await;

    let deliveries = receiver.deliveries();
    assert_eq!(deliveries.len(), 12);
    let first = deliveries[0].received_at;
    let early = deliveries
        .iter()
        .filter(|delivery| delivery.received_at < first + Duration::from_millis(500))
        .count();
    // A burst of 5, then one every 200 ms: 7 in the first half second.
    assert!(early <= 8, "{early} requests in the first 500 ms");
    let span = deliveries[11].received_at - first;
    assert!(
        span >= Duration::from_millis(1_100),
        "12 requests in {span:?}"
    );
    stop(handle, shutdown).await;
}

#[tokio::test]
async fn replayed_dead_letter_keeps_webhook_id() {
    let receiver = Receiver::start(503).await;
    let dir = tempfile::tempdir().unwrap();
    let (handle, shutdown) = start(config(&dir, vec![receiver.endpoint()], &[10])).await;

    send_readings(&handle, "oven-1", 0, &EPISODE_OPEN).await;
    wait_for("a dead letter", || handle.stats().dead_letters == 1).await;
    receiver.set_status(200);
    let event_id = receiver.deliveries()[0].webhook_id.clone().unwrap();

    let mut store = Store::open(&dir.path().join("bridge.db")).unwrap();
    assert_eq!(store.replay_event(&event_id, None).unwrap(), 1);
    assert_eq!(store.replay_event(&event_id, None).unwrap(), 0);
    wait_for("the replayed delivery", || {
        handle.stats().deliveries_succeeded == 1
    })
    .await;

    let deliveries = receiver.deliveries();
    assert_eq!(deliveries.len(), 3);
    assert_eq!(deliveries[2].webhook_id.as_deref(), Some(event_id.as_str()));
    assert_eq!(deliveries[2].verified, Ok(()));
    let attempts = store.attempts_of(&event_id).unwrap();
    let numbers: Vec<u32> = attempts.iter().map(|(_, number, _)| *number).collect();
    assert_eq!(numbers, [1, 2, 1], "replay restarts the attempt count");
    stop(handle, shutdown).await;
}
