//! Deliveries that fail verification are rejected with 401 over real HTTP
//! and create no task; a replayed delivery creates no second task.

mod common;

use common::Pipeline;
use floorwatch::config::UpConfig;
use floorwatch_protocol::webhook::{
    signature_header, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP,
};
use floorwatch_protocol::Secret;
use serde_json::json;

fn opened_event(incident_id: &str) -> Vec<u8> {
    json!({
        "type": "incident.opened",
        "timestamp": "2026-12-01T08:03:00Z",
        "data": {
            "incident_id": incident_id, "seq": 1, "site": "plant-1", "sensor": "oven-9",
            "metric": "temperature", "rule": "temperature-high", "condition": "above",
            "threshold": 30.0, "clear_threshold": 29.0, "value": 31.5, "unit": "°C",
            "severity": "warning", "first_breach_at": "2026-12-01T08:01:00Z",
            "opened_at": "2026-12-01T08:03:00Z",
            "reason": "temperature 31.5 °C above 30 °C for 3 consecutive readings",
            "window": []
        }
    })
    .to_string()
    .into_bytes()
}

async fn post(
    pipeline: &Pipeline,
    id: &str,
    timestamp: i64,
    signature: &str,
    body: Vec<u8>,
) -> reqwest::StatusCode {
    reqwest::Client::new()
        .post(format!("http://{}/webhooks", pipeline.http))
        .header("content-type", "application/json")
        .header(HEADER_ID, id)
        .header(HEADER_TIMESTAMP, timestamp.to_string())
        .header(HEADER_SIGNATURE, signature)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unverified_deliveries_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::start(UpConfig::default(), dir.path()).await;
    let now = chrono::Utc::now().timestamp();
    let body = opened_event("inc_test_1");
    let good = signature_header(std::slice::from_ref(&pipeline.secret), "msg_1", now, &body);

    let mut tampered = body.clone();
    let at = tampered.iter().position(|b| *b == b'9').unwrap();
    tampered[at] = b'8';
    assert_eq!(post(&pipeline, "msg_1", now, &good, tampered).await, 401);

    let wrong = signature_header(&[Secret::generate()], "msg_1", now, &body);
    assert_eq!(
        post(&pipeline, "msg_1", now, &wrong, body.clone()).await,
        401
    );

    let old = now - 600;
    let stale = signature_header(std::slice::from_ref(&pipeline.secret), "msg_1", old, &body);
    assert_eq!(
        post(&pipeline, "msg_1", old, &stale, body.clone()).await,
        401
    );

    assert!(pipeline.tasks().await.is_empty());

    assert!(post(&pipeline, "msg_1", now, &good, body.clone())
        .await
        .is_success());
    assert!(post(&pipeline, "msg_1", now, &good, body.clone())
        .await
        .is_success());
    let tasks = pipeline.tasks().await;
    assert_eq!(tasks.len(), 1, "a replayed delivery creates no second task");
    assert_eq!(tasks[0]["incident_id"], "inc_test_1");
    pipeline.stop().await;
}
