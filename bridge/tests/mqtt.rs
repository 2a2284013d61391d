//! MQTT ingest against an embedded rumqttd broker: readings published by a
//! client become incidents, rejections are reported on the `rejected` topic,
//! and the incident state is retained on the `incident` topic.

mod common;

use std::net::TcpListener;
use std::time::Duration;

use common::{config, start, stop, wait_for, Receiver};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

/// Starts rumqttd on a free loopback port and returns the port.
///
/// NOTE: rumqttd 0.20 cannot bind port 0 and report it, so this takes a free
/// port from the OS and releases it first; another process could take it in
/// between.
fn start_broker() -> u16 {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = format!(
        r#"
        id = 0
        [router]
        id = 0
        max_connections = 100
        max_outgoing_packet_count = 200
        max_segment_size = 1048576
        max_segment_count = 2
        [v4.1]
        name = "v4-1"
        listen = "127.0.0.1:{port}"
        next_connection_delay_ms = 1
        [v4.1.connections]
        connection_timeout_ms = 60000
        max_payload_size = 65536
        max_inflight_count = 100
        dynamic_filters = true
        "#
    );
    let config: rumqttd::Config = toml::from_str(&text).unwrap();
    std::thread::spawn(move || {
        let mut broker = rumqttd::Broker::new(config);
        broker.start().unwrap();
    });
    port
}

/// Connects a test client subscribed to everything under `floorwatch/`
/// and forwards every received publish as (topic, payload, retain).
async fn observer(
    port: u16,
) -> (
    AsyncClient,
    mpsc::UnboundedReceiver<(String, Vec<u8>, bool)>,
) {
    let options = MqttOptions::new("test-observer", "127.0.0.1", port);
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    client
        .subscribe("floorwatch/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let (message_tx, message_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(message))) => {
                    let entry = (
                        message.topic.clone(),
                        message.payload.to_vec(),
                        message.retain,
                    );
                    if message_tx.send(entry).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    (client, message_rx)
}

/// Receives messages until one on `topic` arrives, for up to 10 s.
async fn next_on(
    messages: &mut mpsc::UnboundedReceiver<(String, Vec<u8>, bool)>,
    topic: &str,
) -> (Vec<u8>, bool) {
    let wait = async {
        loop {
            let (received, payload, retain) = messages.recv().await.expect("observer is running");
            if received == topic {
                return (payload, retain);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .unwrap_or_else(|_| panic!("timed out after 10 s waiting for a message on {topic}"))
}

#[tokio::test]
async fn mqtt_readings_open_incident_and_report_rejections() {
    let port = start_broker();
    let receiver = Receiver::start(200).await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = config(&dir, vec![receiver.endpoint()], &[10]);
    settings.mqtt.url = format!("mqtt://127.0.0.1:{port}");
    let (handle, shutdown) = start(settings).await;
    wait_for("the bridge to connect", || handle.stats().mqtt_connected).await;

    let (client, mut messages) = observer(port).await;
    // The bridge subscribes on connect; a first accepted reading proves the
    // subscription is active before the test goes on.
    let reading_topic = "floorwatch/plant-1/oven-1/reading";
    client
        .publish(reading_topic, QoS::AtLeastOnce, false, "25")
        .await
        .unwrap();
    wait_for("the first reading", || {
        handle.stats().readings_accepted >= 1
    })
    .await;

    client
        .publish(reading_topic, QoS::AtLeastOnce, false, "hot")
        .await
        .unwrap();
    let (payload, retain) = next_on(&mut messages, "floorwatch/plant-1/oven-1/rejected").await;
    let report: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(report["code"], "invalid_json");
    assert!(!retain);

    for value in ["31", "31.5", "32"] {
        client
            .publish(reading_topic, QoS::AtLeastOnce, false, value)
            .await
            .unwrap();
    }
    let (payload, _) = next_on(&mut messages, "floorwatch/plant-1/oven-1/incident").await;
    let incident: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(incident["rule"], "temperature-high");
    assert_eq!(incident["value"], 32.0);
    wait_for("the webhook", || handle.stats().deliveries_succeeded == 1).await;

    let stats = handle.stats();
    assert_eq!(stats.readings_accepted, 4);
    assert_eq!(stats.rejected_by_reason["invalid_json"], 1);
    assert_eq!(stats.incidents_opened, 1);
    stop(handle, shutdown).await;
}
