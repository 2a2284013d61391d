//! End-to-end tests of the OpenAPI document, the metrics, listing filters
//! and pages, and the task page.

mod common;

use common::{body, incident_event, TestScheduler};
use floorwatch_protocol::Secret;
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

async fn get_json(scheduler: &TestScheduler, path: &str) -> Value {
    let response = scheduler
        .client
        .get(scheduler.url(path))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

#[tokio::test]
async fn every_documented_path_responds() {
    let (_dir, scheduler) = start().await;
    let opened = body(&incident_event("incident.opened", "inc-1", 1));
    scheduler.deliver("msg_1", &opened).await;

    let document = get_json(&scheduler, "/api/v1/openapi.json").await;
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() >= 9, "documented paths: {}", paths.len());
    for (template, operations) in paths {
        let path = template.replace("{id}", "1");
        for method in operations.as_object().unwrap().keys() {
            let request = match method.as_str() {
                "get" => scheduler.client.get(scheduler.url(&path)),
                "post" => scheduler.client.post(scheduler.url(&path)),
                other => panic!("undocumented method {other}"),
            };
            let status = request.send().await.unwrap().status().as_u16();
            // Without credentials an action returns 403 (actions disabled).
            // A 404 or 405 would mean the route is missing.
            let expected: &[u16] = if method == "post" { &[403] } else { &[200] };
            assert!(
                expected.contains(&status),
                "{method} {path} answered {status}"
            );
            let documented = &operations[method]["responses"][status.to_string()];
            assert!(
                documented.is_object(),
                "{method} {path}: {status} not documented"
            );
        }
    }
    scheduler.stop().await;
}

#[tokio::test]
async fn metrics_count_webhooks_and_tasks() {
    let (_dir, scheduler) = start().await;
    let opened = body(&incident_event("incident.opened", "inc-1", 1));
    scheduler.deliver("msg_1", &opened).await;
    scheduler.deliver("msg_1", &opened).await;
    let unsigned = scheduler
        .post_raw("/webhooks", "msg_2", 0, "v1,AAAA", opened.clone())
        .await;
    assert_eq!(unsigned.status(), 401);

    let response = scheduler
        .client
        .get(scheduler.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    let outcome =
        |name: &str| format!("floorwatch_scheduler_webhooks_received_total{{outcome=\"{name}\"}}");
    assert!(
        text.contains(&format!("{} 1\n", outcome("created"))),
        "{text}"
    );
    assert!(
        text.contains(&format!("{} 1\n", outcome("duplicate"))),
        "{text}"
    );
    assert!(
        text.contains(&format!("{} 1\n", outcome("unauthorized"))),
        "{text}"
    );
    assert!(
        text.contains("floorwatch_scheduler_tasks{status=\"open\"} 1\n"),
        "{text}"
    );
    scheduler.stop().await;
}

#[tokio::test]
async fn listing_filters_sorts_and_pages() {
    let (_dir, scheduler) = start().await;
    let cases = [
        ("inc-1", "plant-a", "warning"),
        ("inc-2", "plant-b", "critical"),
        ("inc-3", "plant-a", "warning"),
    ];
    for (index, (incident, site, severity)) in cases.iter().enumerate() {
        let mut event = incident_event("incident.opened", incident, 1);
        event["data"]["site"] = json!(site);
        event["data"]["severity"] = json!(severity);
        event["data"]["opened_at"] = json!(format!("2024-05-01T12:0{index}:00Z"));
        scheduler
            .deliver(&format!("msg_{index}"), &body(&event))
            .await;
    }
    let ids = |list: &Value| -> Vec<String> {
        list["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|task| task["incident_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let site_a = get_json(&scheduler, "/api/v1/tasks?site=plant-a").await;
    assert_eq!(ids(&site_a), ["inc-3", "inc-1"]);
    assert_eq!(site_a["total"], 2);
    let by_severity = get_json(&scheduler, "/api/v1/tasks?sort=severity").await;
    assert_eq!(ids(&by_severity), ["inc-2", "inc-3", "inc-1"]);
    let second = get_json(&scheduler, "/api/v1/tasks?limit=2&page=2&order=asc").await;
    assert_eq!(ids(&second), ["inc-3"]);
    assert_eq!(second["total"], 3);
    let sam = get_json(&scheduler, "/api/v1/tasks?assignee=sam").await;
    assert_eq!(ids(&sam), ["inc-2"]);

    let page = scheduler
        .client
        .get(scheduler.url("/?limit=2"))
        .send()
        .await
        .unwrap();
    let html = page.text().await.unwrap();
    assert!(html.contains("Page 1 of 2 (3 matching)"), "{html}");
    assert!(html.contains("rel=\"next\""));
    assert!(!html.contains("rel=\"prev\""));
    scheduler.stop().await;
}

#[tokio::test]
async fn task_page_draws_chart_and_escapes() {
    let (_dir, scheduler) = start().await;
    let mut event = incident_event("incident.opened", "inc-<b>", 1);
    event["data"]["unit"] = json!("<script>x");
    event["data"]["window"] = json!([
        {"time": "2024-05-01T11:59:00Z", "value": 29.0},
        {"time": "2024-05-01T11:59:30Z", "value": 30.5},
        {"time": "2024-05-01T12:00:00Z", "value": 31.5},
    ]);
    scheduler.deliver("msg_1", &body(&event)).await;

    let response = scheduler
        .client
        .get(scheduler.url("/tasks/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(!html.contains("<script>x"), "unescaped unit");
    assert!(!html.contains("inc-<b>"), "unescaped incident id");
    assert!(
        html.contains("<polyline class=\"reading\""),
        "no readings line"
    );
    assert_eq!(html.matches("<circle class=\"dot\"").count(), 3);
    assert!(
        html.contains("<line class=\"threshold\""),
        "no threshold line"
    );
    assert!(html.contains("<line class=\"clear\""), "no clear line");
    assert!(html.contains("<code>msg_1</code>"), "delivery missing");
    assert!(html.contains("Sign in") || html.contains("disabled"));

    let detail = get_json(&scheduler, "/api/v1/tasks/1").await;
    assert_eq!(detail["window"].as_array().unwrap().len(), 3);
    assert_eq!(detail["deliveries"][0]["outcome"], "created");
    assert_eq!(detail["clear_threshold"], 29.0);

    let missing = scheduler
        .client
        .get(scheduler.url("/tasks/7"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    scheduler.stop().await;
}

#[tokio::test]
async fn concurrent_deliveries_are_all_stored() {
    let (_dir, scheduler) = start().await;
    let scheduler = std::sync::Arc::new(scheduler);
    let mut sends = Vec::new();
    for index in 0..60 {
        let scheduler = std::sync::Arc::clone(&scheduler);
        sends.push(tokio::spawn(async move {
            // Every third delivery repeats the previous webhook id.
            let id = index - usize::from(index % 3 == 2);
            let event = body(&incident_event("incident.opened", &format!("inc-{id}"), 1));
            let response = scheduler.deliver(&format!("msg_{id}"), &event).await;
            assert_eq!(response.status(), 200);
        }));
    }
    for send in sends {
        send.await.unwrap();
    }
    let listed = get_json(&scheduler, "/api/v1/tasks?limit=1").await;
    assert_eq!(listed["total"], 40);
    let Ok(scheduler) = std::sync::Arc::try_unwrap(scheduler) else {
        panic!("scheduler still shared");
    };
    scheduler.stop().await;
}
