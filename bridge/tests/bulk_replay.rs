//! `POST /deliveries/replay` on the bridge's HTTP listener: replay of every
//! dead letter or delivered event that matches an endpoint, incident and
//! status filter.

mod common;

use common::{config, send_readings, start, stop, wait_for, Receiver};
use floorwatch_bridge::{BridgeHandle, Store};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const EPISODE_OPEN: [f64; 4] = [25.0, 31.0, 31.5, 32.0];

/// Sends `POST {base}{path}` and returns the status and the JSON body.
async fn post(base: &str, path: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .send()
        .await
        .expect("request is sent");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body is read");
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, body)
}

/// Returns `text` with the characters a query value must not contain
/// escaped.
fn query_value(text: &str) -> String {
    text.replace(':', "%3A").replace('/', "%2F")
}

/// Two failing receivers, a bridge with its HTTP listener, and one dead
/// letter per endpoint for each of oven-1 and oven-2.
struct Setup {
    first: Receiver,
    second: Receiver,
    handle: BridgeHandle,
    shutdown: CancellationToken,
    base: String,
    dir: tempfile::TempDir,
}

async fn four_dead_letters() -> Setup {
    let (first, second) = (Receiver::start(503).await, Receiver::start(503).await);
    let dir = tempfile::tempdir().unwrap();
    let endpoints = vec![first.endpoint(), second.endpoint()];
    let mut settings = config(&dir, endpoints, &[10]);
    settings.http.enabled = true;
    settings.http.listen = "127.0.0.1:0".parse().unwrap();
    let (handle, shutdown) = start(settings).await;
    let base = format!(
        "http://{}",
        handle.http_addr().expect("HTTP listener is on")
    );
    send_readings(&handle, "oven-1", 0, &EPISODE_OPEN).await;
    send_readings(&handle, "oven-2", 0, &EPISODE_OPEN).await;
    wait_for("four dead letters", || handle.stats().dead_letters == 4).await;
    Setup {
        first,
        second,
        handle,
        shutdown,
        base,
        dir,
    }
}

/// Returns the sensors of the successful requests `receiver` got.
fn delivered_sensors(receiver: &Receiver) -> Vec<String> {
    receiver
        .deliveries()
        .iter()
        .filter(|delivery| delivery.status == 200)
        .map(|delivery| delivery.event().data.sensor.as_str().to_owned())
        .collect()
}

#[tokio::test]
async fn replay_by_endpoint_and_incident() {
    let setup = four_dead_letters().await;
    let (base, handle) = (&setup.base, &setup.handle);
    let incident = setup.first.deliveries()[0].event().data.incident_id;
    let sensor = setup.first.deliveries()[0].event().data.sensor;
    setup.first.set_status(200);

    let filter = format!(
        "/deliveries/replay?endpoint={}&incident={incident}",
        query_value(&setup.first.url)
    );
    let (status, body) = post(base, &filter).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["queued"], 1);
    wait_for("one replayed delivery", || {
        handle.stats().deliveries_succeeded == 1
    })
    .await;
    assert_eq!(delivered_sensors(&setup.first), [sensor.as_str()]);
    assert!(delivered_sensors(&setup.second).is_empty());

    let filter = format!(
        "/deliveries/replay?endpoint={}",
        query_value(&setup.first.url)
    );
    let (status, body) = post(base, &filter).await;
    assert_eq!((status, body["queued"].as_u64()), (200, Some(1)), "{body}");
    wait_for("the endpoint's other dead letter", || {
        handle.stats().deliveries_succeeded == 2
    })
    .await;
    assert_eq!(delivered_sensors(&setup.first).len(), 2);
    assert!(delivered_sensors(&setup.second).is_empty());

    let (status, body) = post(base, &filter).await;
    assert_eq!(status, 404, "nothing dead is left at the endpoint: {body}");
    assert_eq!(body["code"], "no_match");
    stop(setup.handle, setup.shutdown).await;
}

#[tokio::test]
async fn replay_all_dead_then_delivered() {
    let setup = four_dead_letters().await;
    let (base, handle) = (&setup.base, &setup.handle);
    setup.first.set_status(200);
    setup.second.set_status(200);

    let (status, body) = post(base, "/deliveries/replay").await;
    assert_eq!((status, body["queued"].as_u64()), (200, Some(4)), "{body}");
    wait_for("every dead letter delivered", || {
        handle.stats().deliveries_succeeded == 4
    })
    .await;
    assert_eq!(delivered_sensors(&setup.first).len(), 2);
    assert_eq!(delivered_sensors(&setup.second).len(), 2);
    let (status, _) = post(base, "/deliveries/replay?status=dead").await;
    assert_eq!(status, 404);

    // Delivered events of one incident go out again to both endpoints,
    // with the webhook-id they had.
    let first_request = setup.first.deliveries()[0].clone();
    let incident = first_request.event().data.incident_id;
    let path = format!("/deliveries/replay?status=delivered&incident={incident}");
    let (status, body) = post(base, &path).await;
    assert_eq!((status, body["queued"].as_u64()), (200, Some(2)), "{body}");
    wait_for("the delivered events sent again", || {
        handle.stats().deliveries_succeeded == 6
    })
    .await;
    for receiver in [&setup.first, &setup.second] {
        let resent = receiver.deliveries().last().cloned().unwrap();
        assert_eq!(resent.event().data.incident_id, incident);
        assert_eq!(resent.verified, Ok(()));
    }
    let resent = setup.first.deliveries().last().cloned().unwrap();
    assert_eq!(resent.webhook_id, first_request.webhook_id);

    let event_id = first_request.webhook_id.unwrap();
    let store = Store::open(&setup.dir.path().join("bridge.db")).unwrap();
    let numbers: Vec<u32> = store
        .attempts_of(&event_id)
        .unwrap()
        .iter()
        .filter(|(endpoint, _, _)| *endpoint == setup.first.url)
        .map(|(_, number, _)| *number)
        .collect();
    assert_eq!(numbers, [1, 2, 1, 1], "each replay restarts the count");
    stop(setup.handle, setup.shutdown).await;
}

#[tokio::test]
async fn replay_rejects_unsafe_filters() {
    let setup = four_dead_letters().await;
    let base = &setup.base;

    let (status, body) = post(base, "/deliveries/replay?status=pending").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "invalid_status");
    let (status, body) = post(base, "/deliveries/replay?status=lost").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = post(base, "/deliveries/replay?status=delivered").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "filter_required");
    let (status, body) = post(base, "/deliveries/replay?incident=inc_unknown").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(setup.handle.stats().dead_letters, 4);
    assert_eq!(setup.handle.stats().outbox_pending, 0);
    stop(setup.handle, setup.shutdown).await;
}
