//! Test helpers: a scheduler on 127.0.0.1:0 with its database in a temporary
//! directory, and signed webhook deliveries.

// Each test binary uses a different subset of the helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;

use chrono::{Duration, TimeZone, Utc};
use floorwatch_protocol::webhook::{
    signature_header, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP,
};
use floorwatch_protocol::Secret;
use floorwatch_scheduler::{SchedulerConfig, SchedulerHandle};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// A running scheduler and an HTTP client for it.
pub struct TestScheduler {
    pub addr: SocketAddr,
    pub secret: Secret,
    pub client: reqwest::Client,
    shutdown: CancellationToken,
    handle: SchedulerHandle,
}

impl TestScheduler {
    /// Starts a scheduler on `database` with the default roster (alex, sam),
    /// trusting `secret`. `adjust` may change the config before start.
    pub async fn start(
        database: &Path,
        secret: &Secret,
        adjust: impl FnOnce(&mut SchedulerConfig),
    ) -> Self {
        let mut config = SchedulerConfig {
            database: database.to_path_buf(),
            secrets: vec![secret.expose()],
            ..SchedulerConfig::default()
        };
        adjust(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let shutdown = CancellationToken::new();
        let handle = floorwatch_scheduler::start(config, listener, shutdown.clone())
            .await
            .expect("scheduler starts");
        Self {
            addr: handle.local_addr(),
            secret: secret.clone(),
            client: reqwest::Client::new(),
            shutdown,
            handle,
        }
    }

    /// Returns the absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Posts `body` to `/webhooks`, signed with the scheduler's secret and
    /// the current time.
    pub async fn deliver(&self, webhook_id: &str, body: &[u8]) -> reqwest::Response {
        let timestamp = Utc::now().timestamp();
        let signature = signature_header(
            std::slice::from_ref(&self.secret),
            webhook_id,
            timestamp,
            body,
        );
        self.post_raw(
            "/webhooks",
            webhook_id,
            timestamp,
            &signature,
            body.to_vec(),
        )
        .await
    }

    /// Posts `body` to `path` with the given Standard Webhooks headers.
    pub async fn post_raw(
        &self,
        path: &str,
        webhook_id: &str,
        timestamp: i64,
        signature: &str,
        body: Vec<u8>,
    ) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header(HEADER_ID, webhook_id)
            .header(HEADER_TIMESTAMP, timestamp.to_string())
            .header(HEADER_SIGNATURE, signature)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Returns the `tasks` array of `GET /api/v1/tasks`.
    pub async fn tasks(&self) -> Vec<Value> {
        let response = self
            .client
            .get(self.url("/api/v1/tasks"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["tasks"].as_array().expect("tasks is an array").clone()
    }

    /// Returns the operator page.
    pub async fn page(&self) -> String {
        let response = self.client.get(self.url("/")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    /// Requests shutdown and waits until the server has stopped.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let stopped = tokio::time::timeout(std::time::Duration::from_secs(5), self.handle.wait());
        stopped
            .await
            .expect("scheduler stops within 5 s")
            .expect("scheduler stops without error");
    }
}

/// A signed-in browser session: its cookie and CSRF token.
pub struct BrowserSession {
    pub cookie: String,
    pub csrf: String,
}

/// Returns `name=value` of the first `Set-Cookie` header of `response`.
pub fn set_cookie(response: &reqwest::Response) -> Option<String> {
    let header = response.headers().get("set-cookie")?.to_str().ok()?;
    header.split(';').next().map(str::to_owned)
}

/// Returns the value of the first hidden `csrf_token` field in `html`.
pub fn csrf_token(html: &str) -> Option<String> {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

impl TestScheduler {
    /// Returns a client that does not follow redirects, so tests see 303.
    pub fn raw_client() -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    /// Signs in through the login form and returns the response of the
    /// form post together with the session it started, if any.
    pub async fn login(
        &self,
        name: &str,
        password: &str,
    ) -> (reqwest::Response, Option<BrowserSession>) {
        let client = Self::raw_client();
        let form_page = client.get(self.url("/login")).send().await.unwrap();
        assert_eq!(form_page.status(), 200);
        let cookie = set_cookie(&form_page).expect("login page starts a session");
        let csrf = csrf_token(&form_page.text().await.unwrap()).expect("login form has a token");
        let response = client
            .post(self.url("/login"))
            .header("cookie", &cookie)
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("name", name),
                ("password", password),
                ("next", "/"),
            ])
            .send()
            .await
            .unwrap();
        let Some(cookie) = set_cookie(&response) else {
            return (response, None);
        };
        let page = client
            .get(self.url("/"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let csrf = csrf_token(&page).expect("signed-in page has a sign-out form");
        (response, Some(BrowserSession { cookie, csrf }))
    }
}

/// Returns the JSON body of an incident event for sensor `oven-1` reading
/// 31.5 °C (28.5 °C when resolved) against a 30 °C threshold.
pub fn incident_event(event_type: &str, incident_id: &str, seq: u64) -> Value {
    let opened_at = Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap();
    let resolved = event_type == "incident.resolved";
    let mut data = json!({
        "incident_id": incident_id,
        "seq": seq,
        "site": "plant-a",
        "sensor": "oven-1",
        "metric": "temperature",
        "rule": "too-hot",
        "condition": "above",
        "threshold": 30.0,
        "clear_threshold": 29.0,
        "value": if resolved { 28.5 } else { 31.5 },
        "unit": "°C",
        "severity": "warning",
        "first_breach_at": opened_at,
        "opened_at": opened_at,
        "reason": "temperature above 30 °C",
        "window": [{"time": opened_at, "value": 31.5}],
    });
    if resolved {
        data["resolved_at"] = json!(opened_at + Duration::minutes(30));
    }
    json!({
        "type": event_type,
        "timestamp": opened_at + Duration::seconds(seq as i64),
        "data": data,
    })
}

/// Serializes `value` as a request body.
pub fn body(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}
