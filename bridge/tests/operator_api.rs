//! Operator routes on the bridge's HTTP listener: `/metrics`, the delivery
//! list and log, replay and enabling an endpoint.

mod common;

use common::{config, send_readings, start, stop, wait_for, Receiver};
use serde_json::Value;

const EPISODE_OPEN: [f64; 4] = [25.0, 31.0, 31.5, 32.0];

async fn request(method: reqwest::Method, url: &str, body: Option<Value>) -> (u16, String) {
    let mut request = reqwest::Client::new().request(method, url);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.expect("request is sent");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body is read"))
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("response is JSON")
}

#[tokio::test]
async fn dead_letter_listed_replayed_and_measured() {
    let receiver = Receiver::start(503).await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = config(&dir, vec![receiver.endpoint()], &[10]);
    settings.http.enabled = true;
    settings.http.listen = "127.0.0.1:0".parse().unwrap();
    let (handle, shutdown) = start(settings).await;
    let base = format!(
        "http://{}",
        handle.http_addr().expect("HTTP listener is on")
    );

    send_readings(&handle, "oven-1", 0, &EPISODE_OPEN).await;
    wait_for("a dead letter", || handle.stats().dead_letters == 1).await;

    let (status, text) = request(
        reqwest::Method::GET,
        &format!("{base}/deliveries?status=dead"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let listed = json(&text);
    let rows = listed["deliveries"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["attempts"], 2);
    assert_eq!(rows[0]["last_status_code"], 503);
    let event_id = rows[0]["event_id"].as_str().unwrap().to_owned();

    let url = format!("{base}/deliveries/{event_id}/attempts");
    let (status, text) = request(reqwest::Method::GET, &url, None).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(json(&text)["attempts"].as_array().unwrap().len(), 2);

    let (status, text) = request(reqwest::Method::GET, &format!("{base}/metrics"), None).await;
    assert_eq!(status, 200);
    assert!(text.contains("floorwatch_dead_letters_total 1\n"), "{text}");
    assert!(
        text.contains("floorwatch_delivery_latency_seconds_count 2\n"),
        "{text}"
    );
    assert!(text.contains("floorwatch_outbox_pending 0\n"), "{text}");
    assert!(
        text.contains("floorwatch_incident_events_total{type=\"incident.opened\"} 1\n"),
        "{text}"
    );

    receiver.set_status(200);
    let url = format!("{base}/deliveries/{event_id}/replay");
    let (status, text) = request(reqwest::Method::POST, &url, None).await;
    assert_eq!(
        (status, json(&text)["queued"].as_u64()),
        (200, Some(1)),
        "{text}"
    );
    wait_for("the replayed delivery", || {
        handle.stats().deliveries_succeeded == 1
    })
    .await;
    let (status, _) = request(reqwest::Method::POST, &url, None).await;
    assert_eq!(status, 404, "a delivered event is no dead letter");

    let body = serde_json::json!({"url": receiver.url});
    let url = format!("{base}/endpoints/enable");
    let (status, text) = request(reqwest::Method::POST, &url, Some(body)).await;
    assert_eq!(status, 404, "the endpoint was never disabled: {text}");
    let (status, _) = request(
        reqwest::Method::GET,
        &format!("{base}/deliveries?status=lost"),
        None,
    )
    .await;
    assert_eq!(status, 400);
    let (status, text) = request(
        reqwest::Method::GET,
        &format!("{base}/deliveries?limit=ten"),
        None,
    )
    .await;
    assert_eq!(status, 400);
    assert!(text.contains(r#"limit \"ten\""#), "{text}");
    stop(handle, shutdown).await;
}

#[tokio::test]
async fn admin_token_guards_delivery_routes() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = config(&dir, Vec::new(), &[10]);
    settings.http.enabled = true;
    settings.http.listen = "127.0.0.1:0".parse().unwrap();
    settings.http.admin_token = Some("test-token-0123456789".to_owned());
    let (handle, shutdown) = start(settings).await;
    let base = format!(
        "http://{}",
        handle.http_addr().expect("HTTP listener is on")
    );
    let client = reqwest::Client::new();

    let anonymous = client
        .get(format!("{base}/deliveries"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let wrong = client
        .post(format!("{base}/deliveries/replay"))
        .bearer_auth("test-token-9876543210")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let allowed = client
        .get(format!("{base}/deliveries"))
        .bearer_auth("test-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status().as_u16(), 200);
    let metrics = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(metrics.status().as_u16(), 200);
    stop(handle, shutdown).await;
}
