//! End-to-end tests of the webhook receiver over real HTTP.

mod common;

use chrono::Utc;
use common::{body, incident_event, TestScheduler};
use floorwatch_protocol::webhook::signature_header;
use floorwatch_protocol::{Secret, SigningKey};
use serde_json::{json, Value};

async fn start() -> (tempfile::TempDir, TestScheduler) {
    let dir = tempfile::tempdir().unwrap();
    let scheduler = TestScheduler::start(
        &dir.path().join("scheduler.db"),
        &Secret::generate(),
        |_| {},
    )
    .await;
    (dir, scheduler)
}

async fn error_code(response: reqwest::Response) -> String {
    let error: Value = response.json().await.unwrap();
    assert!(error["detail"].is_string(), "error without detail: {error}");
    error["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn signed_opened_event_creates_task() {
    let (_dir, scheduler) = start().await;
    let response = scheduler
        .deliver(
            "msg_1",
            &body(&incident_event("incident.opened", "inc-1", 1)),
        )
        .await;
    assert_eq!(response.status(), 200);
    let accepted: Value = response.json().await.unwrap();
    assert_eq!(accepted["outcome"], "created");

    let tasks = scheduler.tasks().await;
    assert_eq!(tasks.len(), 1);
    let task = &tasks[0];
    assert_eq!(task["incident_id"], "inc-1");
    assert_eq!(task["sensor"], "oven-1");
    assert_eq!(task["site"], "plant-a");
    assert_eq!(task["value"], 31.5);
    assert_eq!(task["status"], "open");
    assert_eq!(task["condition_cleared"], false);
    assert_eq!(task["assignee"], "alex");
    assert_eq!(task["opened_at"], "2024-05-01T12:00:00Z");

    let url = scheduler.url(&format!("/api/v1/tasks/{}", task["id"]));
    let detail: Value = scheduler
        .client
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail["incident_id"], "inc-1");
    assert_eq!(detail["history"].as_array().unwrap().len(), 2);

    let page = scheduler.page().await;
    assert!(page.contains("<td>oven-1</td>"), "sensor not on page");
    assert!(page.contains("31.5 °C"), "temperature not on page");
    assert!(page.contains("<td>alex</td>"), "assignee not on page");
    scheduler.stop().await;
}

#[tokio::test]
async fn alias_path_receives_events() {
    let (_dir, scheduler) = start().await;
    let payload = body(&incident_event("incident.opened", "inc-1", 1));
    let now = Utc::now().timestamp();
    let signature = signature_header(
        std::slice::from_ref(&scheduler.secret),
        "msg_1",
        now,
        &payload,
    );
    let response = scheduler
        .post_raw("/schedule-maintenance", "msg_1", now, &signature, payload)
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(scheduler.tasks().await.len(), 1);
    scheduler.stop().await;
}

#[tokio::test]
async fn invalid_deliveries_are_rejected() {
    let (_dir, scheduler) = start().await;
    let payload = body(&incident_event("incident.opened", "inc-1", 1));
    let now = Utc::now().timestamp();
    let sign = |secret: &Secret, timestamp: i64| {
        signature_header(std::slice::from_ref(secret), "msg_1", timestamp, &payload)
    };

    let mut tampered = payload.clone();
    let position = tampered.iter().position(|byte| *byte == b'5').unwrap();
    tampered[position] = b'9';
    let good = sign(&scheduler.secret, now);
    let response = scheduler
        .post_raw("/webhooks", "msg_1", now, &good, tampered)
        .await;
    assert_eq!(response.status(), 401);
    assert_eq!(error_code(response).await, "invalid_signature");

    let wrong = sign(&Secret::generate(), now);
    let response = scheduler
        .post_raw("/webhooks", "msg_1", now, &wrong, payload.clone())
        .await;
    assert_eq!(response.status(), 401);
    assert_eq!(error_code(response).await, "invalid_signature");

    let old = now - 600;
    let stale = sign(&scheduler.secret, old);
    let response = scheduler
        .post_raw("/webhooks", "msg_1", old, &stale, payload.clone())
        .await;
    assert_eq!(response.status(), 401);
    assert_eq!(error_code(response).await, "timestamp_too_old");

    let response = scheduler
        .client
        .post(scheduler.url("/webhooks"))
        .body(payload.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(error_code(response).await, "missing_header");

    assert!(scheduler.tasks().await.is_empty());
    scheduler.stop().await;
}

#[tokio::test]
async fn v1a_delivery_needs_configured_public_key() {
    let signing_key = SigningKey::generate();
    let payload = body(&incident_event("incident.opened", "inc-1", 1));
    let now = Utc::now().timestamp();
    let signature = signing_key.sign_v1a("msg_1", now, &payload);

    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("scheduler.db");
    let without_key = TestScheduler::start(&database, &Secret::generate(), |_| {}).await;
    let response = without_key
        .post_raw("/webhooks", "msg_1", now, &signature, payload.clone())
        .await;
    assert_eq!(response.status(), 401);
    assert_eq!(error_code(response).await, "invalid_signature");
    assert!(without_key.tasks().await.is_empty());
    without_key.stop().await;

    let public_key = signing_key.public_key().to_string();
    let with_key = TestScheduler::start(&database, &Secret::generate(), |config| {
        config.secrets.clear();
        config.public_keys = vec![public_key];
    })
    .await;
    let response = with_key
        .post_raw("/webhooks", "msg_1", now, &signature, payload.clone())
        .await;
    assert_eq!(response.status(), 200);
    let accepted: Value = response.json().await.unwrap();
    assert_eq!(accepted["outcome"], "created");
    assert_eq!(with_key.tasks().await.len(), 1);
    with_key.stop().await;
}

#[tokio::test]
async fn oversized_body_gets_413() {
    let dir = tempfile::tempdir().unwrap();
    let secret = Secret::generate();
    let scheduler = TestScheduler::start(&dir.path().join("s.db"), &secret, |config| {
        config.max_body_bytes = 8 * 1024;
    })
    .await;
    let mut event = incident_event("incident.opened", "inc-1", 1);
    event["data"]["reason"] = json!("x".repeat(9 * 1024));
    let response = scheduler.deliver("msg_1", &body(&event)).await;
    assert_eq!(response.status(), 413);
    assert_eq!(error_code(response).await, "payload_too_large");
    assert!(scheduler.tasks().await.is_empty());
    scheduler.stop().await;
}

#[tokio::test]
async fn replays_and_second_open_keep_one_task() {
    let (_dir, scheduler) = start().await;
    let opened = body(&incident_event("incident.opened", "inc-1", 1));
    for expected in ["created", "duplicate", "duplicate"] {
        let response = scheduler.deliver("msg_1", &opened).await;
        assert_eq!(response.status(), 200);
        let accepted: Value = response.json().await.unwrap();
        assert_eq!(accepted["outcome"], expected);
    }
    let response = scheduler.deliver("msg_2", &opened).await;
    assert_eq!(response.status(), 200);
    let accepted: Value = response.json().await.unwrap();
    assert_eq!(accepted["outcome"], "stale");
    assert_eq!(scheduler.tasks().await.len(), 1);
    scheduler.stop().await;
}

#[tokio::test]
async fn resolve_clears_but_keeps_task_open() {
    let (_dir, scheduler) = start().await;
    let opened = body(&incident_event("incident.opened", "inc-1", 1));
    let resolved = body(&incident_event("incident.resolved", "inc-1", 2));
    assert_eq!(scheduler.deliver("msg_1", &opened).await.status(), 200);
    assert_eq!(scheduler.deliver("msg_2", &resolved).await.status(), 200);

    let tasks = scheduler.tasks().await;
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["condition_cleared"], true);
    assert_eq!(tasks[0]["status"], "open");
    assert_eq!(tasks[0]["resolved_at"], "2024-05-01T12:30:00Z");
    assert!(scheduler.page().await.contains(">cleared</span>"));
    scheduler.stop().await;
}

#[tokio::test]
async fn resolve_before_open_keeps_one_cleared_task() {
    let (_dir, scheduler) = start().await;
    let resolved = body(&incident_event("incident.resolved", "inc-1", 3));
    let opened = body(&incident_event("incident.opened", "inc-1", 1));
    assert_eq!(scheduler.deliver("msg_3", &resolved).await.status(), 200);
    assert_eq!(scheduler.deliver("msg_1", &opened).await.status(), 200);

    let tasks = scheduler.tasks().await;
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["condition_cleared"], true);
    assert_eq!(tasks[0]["status"], "open");
    scheduler.stop().await;
}

#[tokio::test]
async fn resolve_completes_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let scheduler = TestScheduler::start(&dir.path().join("s.db"), &Secret::generate(), |config| {
        config.keep_open_on_resolve = false;
    })
    .await;
    let opened = body(&incident_event("incident.opened", "inc-1", 1));
    let resolved = body(&incident_event("incident.resolved", "inc-1", 2));
    scheduler.deliver("msg_1", &opened).await;
    scheduler.deliver("msg_2", &resolved).await;
    let tasks = scheduler.tasks().await;
    assert_eq!(tasks[0]["status"], "completed");
    scheduler.stop().await;
}

#[tokio::test]
async fn round_robin_continues_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("scheduler.db");
    let secret = Secret::generate();
    for run in 0..2 {
        let scheduler = TestScheduler::start(&database, &secret, |_| {}).await;
        for index in 0..2 {
            let incident = format!("inc-{run}-{index}");
            let event = body(&incident_event("incident.opened", &incident, 1));
            let response = scheduler.deliver(&format!("msg_{incident}"), &event).await;
            assert_eq!(response.status(), 200);
        }
        scheduler.stop().await;
    }

    let scheduler = TestScheduler::start(&database, &secret, |_| {}).await;
    let mut tasks = scheduler.tasks().await;
    tasks.reverse();
    let assignees: Vec<&str> = tasks
        .iter()
        .map(|t| t["assignee"].as_str().unwrap())
        .collect();
    assert_eq!(assignees, ["alex", "sam", "alex", "sam"]);
    scheduler.stop().await;
}

#[tokio::test]
async fn schema_errors_and_unknown_types() {
    let (_dir, scheduler) = start().await;
    let mut missing = incident_event("incident.opened", "inc-1", 1);
    missing["data"].as_object_mut().unwrap().remove("severity");
    let response = scheduler.deliver("msg_1", &body(&missing)).await;
    assert_eq!(response.status(), 422);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["code"], "invalid_event");
    assert!(
        error["detail"].as_str().unwrap().contains("severity"),
        "{error}"
    );

    let response = scheduler.deliver("msg_2", b"{oops").await;
    assert_eq!(response.status(), 400);
    assert_eq!(error_code(response).await, "invalid_json");

    let other = json!({"type": "sensor.silent", "timestamp": Utc::now(), "data": {}});
    let response = scheduler.deliver("msg_3", &body(&other)).await;
    assert_eq!(response.status(), 200);
    let accepted: Value = response.json().await.unwrap();
    assert_eq!(accepted["outcome"], "ignored");
    assert!(scheduler.tasks().await.is_empty());
    scheduler.stop().await;
}
