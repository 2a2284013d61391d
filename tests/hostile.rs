//! Hostile input against the running pipeline: oversized, malformed and
//! non-finite MQTT payloads, a flood of sensor ids, oversized HTTP bodies,
//! slow clients and header floods. Each case checks the exact outcome: the
//! input is rejected and counted under its code, other clients keep being
//! served, and readings accepted before it are still there afterwards.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::{reading_json, wait_for, Pipeline};
use floorwatch::config::UpConfig;
use floorwatch_protocol::webhook::{
    signature_header, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP,
};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bridge HTTP ingest's default body limit, `bridge.http.max_body_bytes`.
const BRIDGE_BODY_LIMIT: usize = 256 * 1024;

/// The scheduler's default webhook body limit, `scheduler.max_body_bytes`.
const SCHEDULER_BODY_LIMIT: usize = 256 * 1024;

/// Returns a config with HTTP ingest on a free port and, when set, the
/// embedded broker's payload limit raised to `broker_payload_limit` bytes so
/// that large payloads reach the bridge.
fn config(broker_payload_limit: Option<usize>) -> UpConfig {
    let mut config = UpConfig::default();
    config.bridge.http.enabled = true;
    config.bridge.http.listen = "127.0.0.1:0".parse().unwrap();
    if let Some(limit) = broker_payload_limit {
        let table = format!("[v4.1.connections]\nmax_payload_size = {limit}\n");
        config.broker = Some(toml::from_str(&table).unwrap());
    }
    config
}

/// Returns the time `minute` minutes after 08:00 on a fixed past day.
fn at(minute: u32) -> String {
    format!("2026-12-01T{:02}:{:02}:00Z", 8 + minute / 60, minute % 60)
}

/// Waits until the bridge has accepted `accepted` and rejected `rejected`
/// payloads in total, and returns the rejections by code.
async fn wait_for_counts(
    pipeline: &Pipeline,
    accepted: u64,
    rejected: u64,
) -> BTreeMap<String, u64> {
    wait_for(
        &format!("{accepted} readings accepted and {rejected} rejected"),
        || async {
            let stats = pipeline.bridge.stats();
            (stats.readings_accepted >= accepted && stats.readings_rejected >= rejected)
                .then_some(stats)
        },
    )
    .await;
    let stats = pipeline.bridge.stats();
    assert_eq!(stats.readings_accepted, accepted, "{stats:#?}");
    assert_eq!(stats.readings_rejected, rejected, "{stats:#?}");
    stats.rejected_by_reason
}

/// Returns the resident set size of this test process in bytes.
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line");
    kib * 1024
}

/// Returns every non-finite spelling in every accepted payload form, with
/// the code it is rejected with. JSON has no NaN or infinity literal, and
/// serde_json rejects a number that overflows f64, so the object forms fail
/// as JSON.
fn non_finite_payloads() -> Vec<(String, &'static str)> {
    let mut cases = Vec::new();
    for bare in [
        "NaN",
        "nan",
        "inf",
        "-inf",
        "+inf",
        "infinity",
        "-Infinity",
        "1e999",
        "-1e999",
    ] {
        cases.push((bare.to_owned(), "not_finite"));
    }
    for value in ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"] {
        cases.push((
            format!(r#"{{"Temperature": {value}, "name": "hostile-1"}}"#),
            "invalid_json",
        ));
        cases.push((
            format!(
                r#"{{"v":1,"site":"plant-1","sensor":"hostile-1","seq":9,"temperature_c":{value}}}"#
            ),
            "invalid_json",
        ));
        cases.push((format!(r#"{{"humidity_pct":{value}}}"#), "invalid_json"));
    }
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_hostile_payloads_are_counted_by_code() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::start(config(Some(2 * 1024 * 1024)), dir.path()).await;
    let mut watcher = pipeline.mqtt_client("hostile-watcher").await;
    watcher
        .subscribe("floorwatch/plant-1/hostile-1/rejected")
        .await;
    let sensor = pipeline.mqtt_client("hostile-sensor").await;
    let topic = "floorwatch/plant-1/hostile-1/reading";

    sensor
        .publish(topic, reading_json("plant-1", "hostile-1", 1, &at(0), 25.0))
        .await;
    wait_for_counts(&pipeline, 1, 0).await;

    let mut cases: Vec<(Vec<u8>, &str)> = vec![
        (b"3\xff1".to_vec(), "not_utf8"),
        (b"{\"temperature_c\": \"\xc0\xaf\"}".to_vec(), "not_utf8"),
        (vec![b'7'; 1_000_000], "too_large"),
        ("[".repeat(100_000).into_bytes(), "too_large"),
        // Under the 16 KiB limit, so serde_json's depth limit stops it.
        ("[".repeat(16_000).into_bytes(), "invalid_json"),
        (
            format!("{}{}", "{\"a\":".repeat(2_500), "}".repeat(2_500)).into_bytes(),
            "invalid_json",
        ),
        (Vec::new(), "empty"),
        (b" \n\t ".to_vec(), "empty"),
    ];
    for (payload, code) in non_finite_payloads() {
        cases.push((payload.into_bytes(), code));
    }
    for (payload, _) in &cases {
        sensor.publish(topic, payload.clone()).await;
    }
    // Topic levels that are not valid ids are counted, but no `rejected`
    // topic can be built from them.
    let invalid_levels = ["a".repeat(65), "\u{f6}fen".to_owned(), "oven 1".to_owned()];
    for level in &invalid_levels {
        let topic = format!("floorwatch/plant-1/{level}/reading");
        sensor.publish(&topic, "25.0").await;
    }
    sensor
        .publish(topic, reading_json("plant-1", "hostile-1", 2, &at(1), 26.0))
        .await;

    let rejected = (cases.len() + invalid_levels.len()) as u64;
    let by_code = wait_for_counts(&pipeline, 2, rejected).await;
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for (_, code) in &cases {
        *expected.entry((*code).to_owned()).or_default() += 1;
    }
    expected.insert("invalid_topic_id".to_owned(), invalid_levels.len() as u64);
    assert_eq!(by_code, expected);

    // Each rejection is reported on the sensor's `rejected` topic, in order.
    for (payload, code) in &cases {
        let (topic, report) = watcher.recv().await;
        assert_eq!(topic, "floorwatch/plant-1/hostile-1/rejected");
        let report: Value = serde_json::from_slice(&report).unwrap();
        let payload_start = String::from_utf8_lossy(&payload[..payload.len().min(60)]).into_owned();
        assert_eq!(report["code"], *code, "payload {payload_start:?}: {report}");
        assert!(report["reason"].as_str().is_some_and(|r| !r.is_empty()));
    }
    assert!(pipeline.bridge.stats().mqtt_connected);
    pipeline.stop().await;
}

/// Connects an MQTT client whose event loop the test polls itself, so that
/// the test observes the connection closing.
async fn connect_raw(pipeline: &Pipeline, client_id: &str) -> (AsyncClient, rumqttc::EventLoop) {
    let mut options = MqttOptions::new(
        client_id,
        pipeline.broker.host.clone(),
        pipeline.broker.port,
    );
    options.set_max_packet_size(4 * 1024 * 1024, 4 * 1024 * 1024);
    let (client, mut event_loop) = AsyncClient::new(options, 10);
    loop {
        match event_loop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => break,
            Ok(_) => {}
            Err(error) => panic!("MQTT connection failed: {error}"),
        }
    }
    (client, event_loop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_limit_closes_only_the_sender() {
    let dir = tempfile::tempdir().unwrap();
    // The default broker.toml limits payloads to 64 KiB.
    let pipeline = Pipeline::start(config(None), dir.path()).await;
    let neighbour = pipeline.mqtt_client("hostile-neighbour").await;
    let topic = "floorwatch/plant-1/hostile-2/reading";
    neighbour
        .publish(topic, reading_json("plant-1", "hostile-2", 1, &at(0), 25.0))
        .await;
    wait_for_counts(&pipeline, 1, 0).await;

    let (client, mut event_loop) = connect_raw(&pipeline, "hostile-megabyte").await;
    client
        .publish(topic, QoS::AtLeastOnce, false, vec![b'7'; 1_000_000])
        .await
        .unwrap();
    let closed = tokio::time::timeout(common::WAIT_LIMIT, async {
        loop {
            match event_loop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => return false,
                Ok(_) => {}
                Err(_) => return true,
            }
        }
    })
    .await
    .expect("the broker answers the oversized publish");
    assert!(closed, "the broker acknowledged a payload over its limit");

    neighbour
        .publish(topic, reading_json("plant-1", "hostile-2", 2, &at(1), 26.0))
        .await;
    wait_for_counts(&pipeline, 2, 0).await;
    assert!(pipeline.bridge.stats().mqtt_connected);
    pipeline.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sensor_id_flood_is_bounded_by_max_sensors() {
    const SENSORS: u64 = 10_000;
    const MAX_SENSORS: u64 = 4_000;
    const CHUNK: u64 = 250;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(None);
    config.bridge.max_sensors = MAX_SENSORS as usize;
    let pipeline = Pipeline::start(config, dir.path()).await;
    let flooder = pipeline.mqtt_client("hostile-flooder").await;
    let before = resident_bytes();

    // One client, one reading per sensor id. Publishing in chunks keeps the
    // bridge within the broker's queue for a slow subscriber, so that every
    // reading is counted.
    for chunk in 0..SENSORS / CHUNK {
        for index in chunk * CHUNK..(chunk + 1) * CHUNK {
            let sensor = format!("flood-{index}");
            let topic = format!("floorwatch/plant-1/{sensor}/reading");
            let payload = reading_json("plant-1", &sensor, 1, &at(0), 25.0);
            flooder.publish(&topic, payload).await;
        }
        let processed = (chunk + 1) * CHUNK;
        wait_for(&format!("{processed} readings processed"), || async {
            let stats = pipeline.bridge.stats();
            (stats.readings_accepted + stats.readings_rejected >= processed).then_some(())
        })
        .await;
    }
    let by_code = wait_for_counts(&pipeline, MAX_SENSORS, SENSORS - MAX_SENSORS).await;
    assert_eq!(
        by_code,
        BTreeMap::from([("too_many_sensors".to_owned(), SENSORS - MAX_SENSORS)])
    );

    // A sensor tracked before the flood is still served.
    flooder
        .publish(
            "floorwatch/plant-1/flood-0/reading",
            reading_json("plant-1", "flood-0", 2, &at(1), 26.0),
        )
        .await;
    wait_for_counts(&pipeline, MAX_SENSORS + 1, SENSORS - MAX_SENSORS).await;
    assert!(pipeline.bridge.stats().mqtt_connected);

    // A coarse guard against state that grows per rejected id: the whole
    // test process, broker included, stays far below this.
    let grown = resident_bytes().saturating_sub(before);
    assert!(
        grown < 512 * 1024 * 1024,
        "resident memory grew by {grown} bytes"
    );
    pipeline.stop().await;
}

/// Sends `request` on a new connection and returns the status code of the
/// response, or `None` when the server closed the connection without one.
async fn raw_status(addr: SocketAddr, request: Vec<u8>) -> Option<u16> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // The server may respond and close before it has read everything, so
    // write and read at the same time and ignore a failed write.
    let write = tokio::spawn(async move {
        let _ = writer.write_all(&request).await;
        let _ = writer.shutdown().await;
    });
    let mut response = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match reader.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => {
                response.extend_from_slice(&buffer[..read]);
                if response.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
        }
    }
    write.abort();
    let head = String::from_utf8_lossy(&response);
    head.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
}

/// POSTs `body` as JSON and returns the status and the JSON response.
async fn post_json(url: &str, body: Vec<u8>) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request is sent");
    let status = response.status().as_u16();
    let value = response.json().await.unwrap_or(Value::Null);
    (status, value)
}

fn http_reading(seq: u64, celsius: f64) -> Vec<u8> {
    reading_json("plant-1", "hostile-http", seq, &at(seq as u32), celsius).into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_ingest_rejects_oversized_and_nested_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::start(config(None), dir.path()).await;
    let addr = pipeline.bridge.http_addr().expect("HTTP ingest is on");
    let url = format!("http://{addr}/readings");

    let (status, body) = post_json(&url, http_reading(1, 25.0)).await;
    assert_eq!((status, body["accepted"].as_u64()), (200, Some(1)));

    // Over the limit with a Content-Length, and chunked without one.
    let (status, body) = post_json(&url, vec![b' '; BRIDGE_BODY_LIMIT + 1]).await;
    assert_eq!((status, body["code"].as_str()), (413, Some("too_large")));
    let mut chunked =
        format!("POST /readings HTTP/1.1\r\nhost: {addr}\r\ntransfer-encoding: chunked\r\n\r\n")
            .into_bytes();
    for _ in 0..40 {
        chunked.extend_from_slice(b"4000\r\n");
        chunked.extend_from_slice(&[b' '; 0x4000]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(raw_status(addr, chunked).await, Some(413));

    // Within the limit but nested past serde_json's depth limit.
    let (status, body) = post_json(&url, "[".repeat(100_000).into_bytes()).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_json")));
    let nested = format!(
        r#"{{"site":"plant-1","sensor":"hostile-http","temperature_c":{}1{}}}"#,
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    let (status, body) = post_json(&url, nested.into_bytes()).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_json")));

    // Non-finite values in a reading.
    for value in ["NaN", "Infinity", "1e999"] {
        let reading =
            format!(r#"{{"site":"plant-1","sensor":"hostile-http","temperature_c":{value}}}"#);
        let (status, body) = post_json(&url, reading.into_bytes()).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid_json")),
            "{value}"
        );
    }

    let (status, body) = post_json(&url, http_reading(2, 26.0)).await;
    assert_eq!((status, body["accepted"].as_u64()), (200, Some(1)));
    let stats = pipeline.bridge.stats();
    assert_eq!(stats.readings_accepted, 2);
    assert_eq!(stats.readings_rejected, 0, "HTTP errors go to the client");
    pipeline.stop().await;
}

/// Returns the body of an `incident.opened` event for `incident_id`.
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

/// POSTs a webhook signed with the pipeline's secret and returns the status
/// and the JSON response.
async fn deliver(pipeline: &Pipeline, id: &str, body: Vec<u8>) -> (u16, Value) {
    let now = chrono::Utc::now().timestamp();
    let signature = signature_header(std::slice::from_ref(&pipeline.secret), id, now, &body);
    let response = reqwest::Client::new()
        .post(format!("http://{}/webhooks", pipeline.http))
        .header("content-type", "application/json")
        .header(HEADER_ID, id)
        .header(HEADER_TIMESTAMP, now.to_string())
        .header(HEADER_SIGNATURE, signature)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Returns the value of one sample line of the scheduler's `/metrics`.
async fn scheduler_metric(pipeline: &Pipeline, sample: &str) -> u64 {
    let text = reqwest::get(format!("http://{}/metrics", pipeline.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(sample))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sample {sample} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_rejects_oversized_and_nested_webhooks() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::start(config(None), dir.path()).await;
    let invalid = "floorwatch_scheduler_webhooks_received_total{outcome=\"invalid\"}";
    let unauthorized = "floorwatch_scheduler_webhooks_received_total{outcome=\"unauthorized\"}";

    let (status, body) = deliver(&pipeline, "msg_hostile_1", opened_event("inc_hostile_1")).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("created")));

    // Signed, but over the body limit: rejected before verification.
    let (status, body) = deliver(
        &pipeline,
        "msg_hostile_2",
        vec![b' '; SCHEDULER_BODY_LIMIT + 1],
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    // Signed and within the limit, but not an event object: serde_json
    // stops at the first '[' instead of descending.
    let nested = "[".repeat(200_000).into_bytes();
    let (status, body) = deliver(&pipeline, "msg_hostile_3", nested).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("invalid_event"))
    );
    // An object with an unknown field nested 100,000 deep: serde_json skips
    // it without recursing, so the event fails on its missing fields.
    let nested = format!(
        r#"{{"type":"incident.opened","extra":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let (status, body) = deliver(&pipeline, "msg_hostile_4", nested.into_bytes()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("invalid_event")),
        "{body}"
    );
    // A flood of signature entries, none valid.
    let entries = vec!["v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="; 1_000].join(" ");
    let response = reqwest::Client::new()
        .post(format!("http://{}/webhooks", pipeline.http))
        .header(HEADER_ID, "msg_hostile_5")
        .header(HEADER_TIMESTAMP, chrono::Utc::now().timestamp().to_string())
        .header(HEADER_SIGNATURE, entries)
        .body(opened_event("inc_hostile_5"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    assert_eq!(scheduler_metric(&pipeline, invalid).await, 3);
    assert_eq!(scheduler_metric(&pipeline, unauthorized).await, 1);
    let (status, body) = deliver(&pipeline, "msg_hostile_6", opened_event("inc_hostile_6")).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("created")));
    let tasks = pipeline.tasks().await;
    let incidents: Vec<&str> = tasks
        .iter()
        .filter_map(|task| task["incident_id"].as_str())
        .collect();
    assert_eq!(incidents.len(), 2, "{tasks:#?}");
    assert!(incidents.contains(&"inc_hostile_1"));
    assert!(incidents.contains(&"inc_hostile_6"));
    pipeline.stop().await;
}

/// Opens a connection that sends the start of a request one byte at a time,
/// then stalls. With `body` the headers are complete and only the body is
/// missing; without it the headers stop halfway.
async fn stalled_client(addr: SocketAddr, path: &str, body: bool) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = if body {
        format!(
            "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
             content-length: 1000\r\n\r\n{{\"site\":"
        )
    } else {
        format!("POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-ty")
    };
    for byte in head.as_bytes() {
        stream.write_all(&[*byte]).await.unwrap();
        stream.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_do_not_block_others() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::start(config(None), dir.path()).await;
    let ingest = pipeline.bridge.http_addr().expect("HTTP ingest is on");
    let readings = format!("http://{ingest}/readings");

    let (status, _) = post_json(&readings, http_reading(1, 25.0)).await;
    assert_eq!(status, 200);

    // Stalled requests on both servers, a few of each kind, held open while
    // other clients are served.
    let mut stalled = Vec::new();
    for body in [false, true] {
        for _ in 0..3 {
            stalled.push(stalled_client(ingest, "/readings", body).await);
            stalled.push(stalled_client(pipeline.http, "/webhooks", body).await);
        }
    }
    // Many more that sent nothing after connecting.
    for _ in 0..200 {
        stalled.push(TcpStream::connect(ingest).await.unwrap());
        stalled.push(TcpStream::connect(pipeline.http).await.unwrap());
    }

    let (status, body) = post_json(&readings, http_reading(2, 26.0)).await;
    assert_eq!((status, body["accepted"].as_u64()), (200, Some(1)));
    let (status, body) = deliver(&pipeline, "msg_slow_1", opened_event("inc_slow_1")).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("created")));
    assert_eq!(pipeline.tasks().await.len(), 1);

    drop(stalled);
    let (status, _) = post_json(&readings, http_reading(3, 27.0)).await;
    assert_eq!(status, 200);
    assert_eq!(pipeline.bridge.stats().readings_accepted, 3);
    pipeline.stop().await;
}

/// Builds a request with `count` extra headers of `value_len` bytes each.
fn header_flood(addr: SocketAddr, path: &str, count: usize, value_len: usize) -> Vec<u8> {
    let mut request = format!("POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 0\r\n");
    let value = "x".repeat(value_len);
    for index in 0..count {
        request.push_str(&format!("x-flood-{index}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_floods_get_431_and_servers_keep_serving() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::start(config(None), dir.path()).await;
    let ingest = pipeline.bridge.http_addr().expect("HTTP ingest is on");
    let readings = format!("http://{ingest}/readings");
    let (status, _) = post_json(&readings, http_reading(1, 25.0)).await;
    assert_eq!(status, 200);

    for (addr, path) in [(ingest, "/readings"), (pipeline.http, "/webhooks")] {
        // (headers, bytes per value)
        for (count, value_len) in [(5_000, 8), (1, 1024 * 1024)] {
            let status = raw_status(addr, header_flood(addr, path, count, value_len)).await;
            assert_eq!(
                status,
                Some(431),
                "{path}: {count} headers of {value_len} bytes"
            );
        }
    }

    let (status, body) = post_json(&readings, http_reading(2, 26.0)).await;
    assert_eq!((status, body["accepted"].as_u64()), (200, Some(1)));
    let (status, body) = deliver(&pipeline, "msg_flood_1", opened_event("inc_flood_1")).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("created")));
    assert_eq!(pipeline.bridge.stats().readings_accepted, 2);
    pipeline.stop().await;
}

/// Polls an MQTT event loop until the broker acknowledges `count`
/// publishes, failing the test if the connection closes first.
async fn wait_for_pubacks(event_loop: &mut rumqttc::EventLoop, count: usize) {
    let mut acknowledged = 0;
    while acknowledged < count {
        let event = tokio::time::timeout(common::WAIT_LIMIT, event_loop.poll())
            .await
            .expect("a PubAck in time");
        match event {
            Ok(Event::Incoming(Packet::PubAck(_))) => acknowledged += 1,
            Ok(_) => {}
            Err(error) => panic!("the publisher's connection failed: {error}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_over_a_mebibyte_does_not_stop_ingest() {
    let dir = tempfile::tempdir().unwrap();
    // A broker that forwards large payloads, as Mosquitto does by default.
    let pipeline = Pipeline::start(config(Some(4 * 1024 * 1024)), dir.path()).await;
    let (client, mut event_loop) = connect_raw(&pipeline, "hostile-large").await;
    let topic = "floorwatch/plant-1/hostile-3/reading";
    let payloads = [
        reading_json("plant-1", "hostile-3", 1, &at(0), 25.0).into_bytes(),
        vec![b'7'; 3 * 1024 * 1024],
        reading_json("plant-1", "hostile-3", 2, &at(1), 26.0).into_bytes(),
    ];
    for payload in payloads {
        client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }
    wait_for_pubacks(&mut event_loop, 3).await;

    let by_code = wait_for_counts(&pipeline, 2, 1).await;
    assert_eq!(by_code, BTreeMap::from([("too_large".to_owned(), 1)]));
    assert!(pipeline.bridge.stats().mqtt_connected);
    pipeline.stop().await;
}
