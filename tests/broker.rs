//! Pins the embedded broker behaviour the bridge relies on.

mod common;

use common::{free_addr, MqttClient};
use floorwatch::broker::EmbeddedBroker;
use floorwatch_protocol::BrokerUrl;

fn start_broker() -> BrokerUrl {
    let mut table = floorwatch::broker::load_config(None, None).unwrap();
    floorwatch::broker::set_listen(&mut table, free_addr()).unwrap();
    let broker = EmbeddedBroker::start(table, "--mqtt").unwrap();
    BrokerUrl {
        host: broker.addr().ip().to_string(),
        port: broker.addr().port(),
        tls: false,
    }
}

#[tokio::test]
async fn wildcard_subscriber_gets_new_topics() {
    let broker = start_broker();
    let mut bridge = MqttClient::connect(&broker, "test-bridge").await;
    bridge.subscribe("floorwatch/+/+/reading").await;
    let sensor = MqttClient::connect(&broker, "test-sensor").await;

    // The SubAck may still be in flight: publish until the first message
    // arrives, then check that a topic never seen before arrives as well.
    let mut first = None;
    for attempt in 0..100 {
        sensor
            .publish("floorwatch/site-a/first/reading", attempt.to_string())
            .await;
        if let Ok(Some(message)) = tokio::time::timeout(
            std::time::Duration::from_millis(100),
            bridge.incoming.recv(),
        )
        .await
        {
            first = Some(message);
            break;
        }
    }
    assert_eq!(first.unwrap().0, "floorwatch/site-a/first/reading");

    sensor
        .publish("floorwatch/site-b/brand-new/reading", "21.5")
        .await;
    loop {
        let (topic, payload) = bridge.recv().await;
        if topic == "floorwatch/site-b/brand-new/reading" {
            assert_eq!(payload, b"21.5");
            break;
        }
    }
}

#[test]
fn port_in_use_names_the_flag() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut table = floorwatch::broker::load_config(None, None).unwrap();
    floorwatch::broker::set_listen(&mut table, taken.local_addr().unwrap()).unwrap();
    let error = EmbeddedBroker::start(table, "--mqtt")
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("--mqtt"), "{error}");
}
