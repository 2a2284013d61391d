//! HTTP ingest: `POST /readings` and `POST /test-webhook` on a port-0
//! listener, with the same validation as MQTT readings.

mod common;

use common::{config, start, stop};
use serde_json::Value;

async fn post(url: &str, body: String) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request is sent");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body is read");
    (
        status,
        serde_json::from_str(&text).expect("response is JSON"),
    )
}

fn reading(seq: u64, celsius: f64) -> String {
    let time = chrono::DateTime::parse_from_rfc3339("2026-12-04T12:00:00Z").unwrap()
        + chrono::TimeDelta::seconds(seq as i64 * 10);
    format!(
        r#"{{"site":"plant-1","sensor":"oven-1","seq":{seq},"time":"{}","temperature_c":{celsius}}}"#,
        time.to_rfc3339()
    )
}

#[tokio::test]
async fn http_readings_open_incident() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = config(&dir, Vec::new(), &[10]);
    settings.http.enabled = true;
    settings.http.listen = "127.0.0.1:0".parse().unwrap();
    let (handle, shutdown) = start(settings).await;
    let base = format!("http://{}", handle.http_addr().expect("HTTP ingest is on"));

    let (status, body) = post(&format!("{base}/readings"), reading(0, 31.0)).await;
    assert_eq!((status, body["accepted"].as_u64()), (200, Some(1)));
    let batch = format!("[{},{}]", reading(1, 31.0), reading(2, 31.5));
    let (status, body) = post(&format!("{base}/readings"), batch).await;
    assert_eq!((status, body["accepted"].as_u64()), (200, Some(2)));
    assert_eq!(handle.stats().incidents_opened, 1);

    let tutorial = r#"{"Temperature": 25.0, "name": "line-3"}"#.to_owned();
    let (status, _) = post(&format!("{base}/test-webhook"), tutorial).await;
    assert_eq!(status, 200);
    assert_eq!(handle.stats().readings_accepted, 4);
    stop(handle, shutdown).await;
}

#[tokio::test]
async fn http_rejections_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = config(&dir, Vec::new(), &[10]);
    settings.http.enabled = true;
    settings.http.listen = "127.0.0.1:0".parse().unwrap();
    settings.http.max_body_bytes = 2048;
    let (handle, shutdown) = start(settings).await;
    let base = format!("http://{}", handle.http_addr().unwrap());

    // (path, body, status, code, index)
    let cases: Vec<(&str, String, u16, &str, Option<u64>)> = vec![
        ("/readings", "{not json".into(), 400, "invalid_json", None),
        ("/readings", "42".into(), 422, "invalid_reading", None),
        ("/readings", "[]".into(), 422, "invalid_count", None),
        (
            "/readings",
            r#"{"sensor":"oven-1","temperature_c":20}"#.into(),
            422,
            "missing_field",
            Some(0),
        ),
        (
            "/readings",
            format!(
                r#"[{}, {{"site":"plant 1","sensor":"oven-1","temperature_c":20}}]"#,
                reading(0, 20.0)
            ),
            422,
            "invalid_topic_id",
            Some(1),
        ),
        (
            "/readings",
            r#"{"site":"plant-1","sensor":"oven-1"}"#.into(),
            422,
            "no_measurement",
            Some(0),
        ),
        (
            "/readings",
            format!("[{}]", vec![reading(0, 20.0); 40].join(",")),
            413,
            "too_large",
            None,
        ),
        (
            "/test-webhook",
            r#"{"Temperature": 25.0}"#.into(),
            422,
            "missing_field",
            None,
        ),
        (
            "/test-webhook",
            r#"{"Temperature": "warm", "name": "oven-1"}"#.into(),
            422,
            "invalid_json",
            None,
        ),
    ];
    for (path, body, status, code, index) in cases {
        let (got_status, got) = post(&format!("{base}{path}"), body.clone()).await;
        assert_eq!(got_status, status, "{path} {body}: {got}");
        assert_eq!(got["code"], code, "{path} {body}: {got}");
        assert!(
            got["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{got}"
        );
        assert_eq!(got["index"].as_u64(), index, "{path} {body}: {got}");
    }
    // Nothing from a rejected array is processed.
    assert_eq!(handle.stats().readings_accepted, 0);
    stop(handle, shutdown).await;
}

#[tokio::test]
async fn cross_site_requests_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = config(&dir, Vec::new(), &[10]);
    settings.http.enabled = true;
    settings.http.listen = "127.0.0.1:0".parse().unwrap();
    let (handle, shutdown) = start(settings).await;
    let addr = handle.http_addr().expect("HTTP ingest is on");
    let client = reqwest::Client::new();
    let send = |path: &str, headers: &[(&str, String)]| {
        let mut request = client
            .post(format!("http://{addr}{path}"))
            .header("content-type", "text/plain")
            .body(reading(0, 31.0));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        request.send()
    };

    // A page of another site posting through the visitor's browser.
    let from_elsewhere = [("origin", "http://evil.example".to_owned())];
    let response = send("/readings", &from_elsewhere).await.unwrap();
    assert_eq!(response.status(), 403);
    let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("cross-site"),
        "{body}"
    );
    let fetch_cross_site = [("sec-fetch-site", "cross-site".to_owned())];
    let response = send("/deliveries/replay?status=delivered", &fetch_cross_site)
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(handle.stats().readings_accepted, 0);

    // Clients that send no Origin, or the bridge's own origin, pass.
    let response = send("/readings", &[]).await.unwrap();
    assert_eq!(response.status(), 200);
    let own = [("origin", format!("http://{addr}"))];
    let response = send("/readings", &own).await.unwrap();
    assert_eq!(response.status(), 200);
    stop(handle, shutdown).await;
}
