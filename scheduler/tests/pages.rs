//! End-to-end tests of the operator page, the JSON API, live updates and
//! the probes.

mod common;

use common::{body, incident_event, TestScheduler};
use floorwatch_protocol::Secret;
use floorwatch_scheduler::{SchedulerConfig, SchedulerError};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

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

#[tokio::test]
async fn empty_page_says_so() {
    let (_dir, scheduler) = start().await;
    let page = scheduler.page().await;
    assert!(page.contains("No maintenance tasks yet"));
    scheduler.stop().await;
}

#[tokio::test]
async fn page_escapes_untrusted_text() {
    let (_dir, scheduler) = start().await;
    let script = "<script>alert(";
    let mut event = incident_event("incident.opened", "inc-1", 1);
    event["data"]["unit"] = json!(script);
    assert_eq!(
        scheduler.deliver("msg_1", &body(&event)).await.status(),
        200
    );

    let page = scheduler.page().await;
    assert!(!page.contains(script), "unescaped script on page");
    assert!(page.contains("31.5 &lt;script&gt;alert("));
    scheduler.stop().await;
}

#[tokio::test]
async fn api_filters_and_reports_errors() {
    let (_dir, scheduler) = start().await;
    for (index, incident) in ["inc-1", "inc-2"].iter().enumerate() {
        let event = body(&incident_event("incident.opened", incident, 1));
        scheduler.deliver(&format!("msg_{index}"), &event).await;
    }
    let resolved = body(&incident_event("incident.resolved", "inc-1", 2));
    scheduler.deliver("msg_r", &resolved).await;

    let get = |path: &str| scheduler.client.get(scheduler.url(path)).send();
    let listed: Value = get("/api/v1/tasks?status=open&limit=1")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["tasks"].as_array().unwrap().len(), 1);

    let response = get("/api/v1/tasks?status=done").await.unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["code"], "invalid_query");

    for missing in ["/api/v1/tasks/999", "/api/v1/tasks/abc"] {
        let response = get(missing).await.unwrap();
        assert_eq!(response.status(), 404, "{missing}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["code"], "task_not_found");
    }
    scheduler.stop().await;
}

#[tokio::test]
async fn probes_answer() {
    let (_dir, scheduler) = start().await;
    let health = scheduler
        .client
        .get(scheduler.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "ok");
    let ready = scheduler
        .client
        .get(scheduler.url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    scheduler.stop().await;
}

#[tokio::test]
async fn events_stream_announces_changes() {
    let (_dir, scheduler) = start().await;
    let mut stream = scheduler
        .client
        .get(scheduler.url("/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);

    let event = body(&incident_event("incident.opened", "inc-1", 1));
    assert_eq!(scheduler.deliver("msg_1", &event).await.status(), 200);

    let mut received = String::new();
    let deadline = std::time::Duration::from_secs(5);
    while !received.contains("event: task") {
        let chunk = tokio::time::timeout(deadline, stream.chunk())
            .await
            .expect("an SSE event within 5 s")
            .unwrap()
            .expect("stream stays open");
        received.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(received.contains("data: 1"), "{received}");

    // An open stream must not hold up shutdown.
    scheduler.stop().await;
}

#[tokio::test]
async fn start_reports_bad_config_and_database() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let no_secret = SchedulerConfig::default();
    let error = floorwatch_scheduler::start(no_secret, listener, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(error, SchedulerError::Config(_)), "{error}");

    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = SchedulerConfig {
        database: dir.path().to_path_buf(),
        secrets: vec![Secret::generate().expose()],
        ..SchedulerConfig::default()
    };
    let error = floorwatch_scheduler::start(config, listener, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(error, SchedulerError::Store(_)), "{error}");
}

#[tokio::test]
async fn page_rounds_values_api_keeps_them() {
    let (_dir, scheduler) = start().await;
    let mut event = incident_event("incident.opened", "inc-1", 1);
    event["data"]["value"] = json!(10.88060276111111);
    assert_eq!(
        scheduler.deliver("msg_1", &body(&event)).await.status(),
        200
    );

    let page = scheduler.page().await;
    assert!(page.contains(">10.88 °C</td>"), "rounded reading missing");
    assert!(!page.contains("10.8806"), "unrounded reading on page");
    assert!(page.contains("<strong>1</strong> task:"), "singular count");
    let tasks = scheduler.tasks().await;
    assert_eq!(tasks[0]["value"], json!(10.88060276111111));

    let second = body(&incident_event("incident.opened", "inc-2", 1));
    scheduler.deliver("msg_2", &second).await;
    assert!(scheduler.page().await.contains("<strong>2</strong> tasks:"));
    scheduler.stop().await;
}

#[tokio::test]
async fn oversized_unit_and_reason_get_422() {
    let (_dir, scheduler) = start().await;
    let cases = [
        ("unit", "u".repeat(17)),
        ("unit", "u".repeat(200_000)),
        ("reason", "r".repeat(1001)),
    ];
    for (index, (field, text)) in cases.into_iter().enumerate() {
        let mut event = incident_event("incident.opened", "inc-1", 1);
        event["data"][field] = json!(text);
        let response = scheduler
            .deliver(&format!("msg_{index}"), &body(&event))
            .await;
        assert_eq!(response.status(), 422, "{field}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["code"], "invalid_event");
        let detail = error["detail"].as_str().unwrap();
        assert!(detail.contains(&format!("data.{field}")), "{detail}");
    }
    assert!(scheduler.tasks().await.is_empty());
    scheduler.stop().await;
}

#[tokio::test]
async fn api_errors_are_json() {
    let (_dir, scheduler) = start().await;
    let cases = [
        (
            "GET",
            "/api/v1/tasks?status=open&status=completed",
            400,
            "invalid_query",
        ),
        ("GET", "/api/v1/tasks?limit=1&limit=2", 400, "invalid_query"),
        ("GET", "/api/v1/tasks?status=done", 400, "invalid_query"),
        ("GET", "/api/v1/nothing", 404, "route_not_found"),
        (
            "GET",
            "/api/v1/tasks/1/acknowledge",
            405,
            "method_not_allowed",
        ),
        ("POST", "/api/v1/tasks", 405, "method_not_allowed"),
        ("GET", "/api/v1/tasks/999", 404, "task_not_found"),
    ];
    for (method, path, status, code) in cases {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = scheduler
            .client
            .request(method.clone(), scheduler.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{method} {path}");
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("application/json"),
            "{method} {path}: {content_type}"
        );
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["code"], code, "{method} {path}");
        assert!(error["detail"].is_string(), "{method} {path}: {error}");
    }
    scheduler.stop().await;
}
