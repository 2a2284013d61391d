//! Helpers shared by the bridge's integration tests: a recording webhook
//! receiver on a port-0 listener, a bridge on a temporary database, and a
//! bounded polling helper.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use floorwatch_bridge::{BridgeConfig, BridgeHandle, DeliverySettings, EndpointConfig};
use floorwatch_protocol::webhook::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use floorwatch_protocol::{Event, IncidentData, Secret, Verifier, VerifyError};
use poem::http::StatusCode;
use poem::listener::TcpAcceptor;
use poem::web::Data;
use poem::{handler, post, EndpointExt, Request, Response, Route, Server};
use tokio_util::sync::CancellationToken;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub webhook_id: Option<String>,
    pub timestamp: Option<String>,
    pub signature: Option<String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    pub verified: Result<(), VerifyError>,
    /// Status the receiver returned.
    pub status: u16,
    /// When the request arrived, before any configured delay.
    pub received_at: std::time::Instant,
}

impl Delivery {
    /// Parses the body as an incident event.
    pub fn event(&self) -> Event<IncidentData> {
        serde_json::from_slice(&self.body).expect("body is an incident event")
    }
}

struct ReceiverState {
    verifier: Verifier,
    default_status: AtomicU16,
    /// Statuses returned before the default, one per request.
    script: Mutex<VecDeque<u16>>,
    /// Requests whose body contains this text get status 500.
    fail_containing: Mutex<Option<String>>,
    /// Requests whose body contains this text are answered after the delay.
    delay_containing: Mutex<Option<(String, Duration)>>,
    deliveries: Mutex<Vec<Delivery>>,
}

/// A webhook receiver that records every request and verifies signatures.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    pub secret: Secret,
    state: Arc<ReceiverState>,
}

#[handler]
async fn receive(request: &Request, body: Vec<u8>, state: Data<&Arc<ReceiverState>>) -> Response {
    let received_at = std::time::Instant::now();
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let (webhook_id, timestamp) = (header(HEADER_ID), header(HEADER_TIMESTAMP));
    let signature = header(HEADER_SIGNATURE);
    let verified = state.verifier.verify(
        webhook_id.as_deref(),
        timestamp.as_deref(),
        signature.as_deref(),
        &body,
        chrono::Utc::now().timestamp(),
    );
    let fail_text = state.fail_containing.lock().unwrap().clone();
    let scripted = state.script.lock().unwrap().pop_front();
    let status = match (fail_text, scripted) {
        (Some(text), _) if String::from_utf8_lossy(&body).contains(&text) => 500,
        (_, Some(status)) => status,
        _ => state.default_status.load(Ordering::SeqCst),
    };
    let delay = state
        .delay_containing
        .lock()
        .unwrap()
        .clone()
        .filter(|(text, _)| String::from_utf8_lossy(&body).contains(text))
        .map(|(_, delay)| delay);
    state.deliveries.lock().unwrap().push(Delivery {
        webhook_id,
        timestamp,
        signature,
        content_type: header("content-type"),
        body,
        verified,
        status,
        received_at,
    });
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header("location", "http://127.0.0.1:9/elsewhere")
        .body("recorded")
}

impl Receiver {
    /// Starts a receiver on `127.0.0.1:0` answering `default_status`.
    pub async fn start(default_status: u16) -> Self {
        let secret = Secret::generate();
        let state = Arc::new(ReceiverState {
            verifier: Verifier::new(vec![secret.clone()], Duration::from_secs(300)),
            default_status: AtomicU16::new(default_status),
            script: Mutex::new(VecDeque::new()),
            fail_containing: Mutex::new(None),
            delay_containing: Mutex::new(None),
            deliveries: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = TcpAcceptor::from_tokio(listener).unwrap();
        let app = Route::new()
            .at("/hooks", post(receive))
            .data(Arc::clone(&state));
        tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
        Self {
            url: format!("http://{addr}/hooks"),
            secret,
            state,
        }
    }

    /// Answers the next requests with `statuses`, then the default again.
    pub fn script(&self, statuses: &[u16]) {
        self.state.script.lock().unwrap().extend(statuses);
    }

    /// Changes the status returned once the script is used up.
    pub fn set_status(&self, status: u16) {
        self.state.default_status.store(status, Ordering::SeqCst);
    }

    /// Answers 500 to every request whose body contains `text`.
    pub fn fail_containing(&self, text: Option<&str>) {
        *self.state.fail_containing.lock().unwrap() = text.map(str::to_owned);
    }

    /// Answers every request whose body contains `text` after `delay`.
    pub fn delay_containing(&self, text: &str, delay: Duration) {
        *self.state.delay_containing.lock().unwrap() = Some((text.to_owned(), delay));
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.state.deliveries.lock().unwrap().clone()
    }

    /// Returns an endpoint config pointing here, with loopback allowed.
    pub fn endpoint(&self) -> EndpointConfig {
        let mut endpoint = EndpointConfig::new(&self.url, &self.secret.expose());
        endpoint.allow_private = true;
        endpoint.timeout_secs = 5;
        endpoint
    }
}

/// Returns a config with a temporary database, an unreachable broker on loopback,
/// `endpoints` and a retry schedule in milliseconds.
pub fn config(
    dir: &tempfile::TempDir,
    endpoints: Vec<EndpointConfig>,
    schedule_ms: &[u64],
) -> BridgeConfig {
    let mut config = BridgeConfig {
        database: dir.path().join("bridge.db"),
        endpoints,
        delivery: DeliverySettings {
            retry_schedule_ms: schedule_ms.to_vec(),
            jitter: 0.0,
        },
        ..BridgeConfig::default()
    };
    // Nothing listens on port 1; the bridge keeps retrying in the background.
    config.mqtt.url = "mqtt://127.0.0.1:1".to_owned();
    config
}

/// Starts a bridge and returns it with its shutdown token.
pub async fn start(config: BridgeConfig) -> (BridgeHandle, CancellationToken) {
    let shutdown = CancellationToken::new();
    let handle = floorwatch_bridge::start(config, shutdown.clone())
        .await
        .expect("bridge starts");
    (handle, shutdown)
}

/// Sends `values` as canonical readings with sequence numbers from
/// `first_seq`, ten seconds apart in sensor time.
pub async fn send_readings(handle: &BridgeHandle, sensor: &str, first_seq: u64, values: &[f64]) {
    let start: chrono::DateTime<chrono::Utc> = "2026-12-04T12:00:00Z".parse().unwrap();
    for (offset, value) in values.iter().enumerate() {
        let seq = first_seq + offset as u64;
        let time = start + chrono::TimeDelta::seconds(seq as i64 * 10);
        let payload = format!(
            r#"{{"v":1,"seq":{seq},"time":"{}","temperature_c":{value}}}"#,
            time.to_rfc3339()
        );
        handle
            .ingest("plant-1", sensor, payload.as_bytes())
            .await
            .expect("reading is ingested");
    }
}

/// Polls `condition` every 10 ms for up to 10 s and panics naming `what`.
pub async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after 10 s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Cancels the bridge and waits, bounded, for it to stop.
pub async fn stop(handle: BridgeHandle, shutdown: CancellationToken) {
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), handle.wait())
        .await
        .expect("bridge stops within 10 s")
        .expect("bridge stops without error");
}
