//! Tests of `edge.toml` loading: defaults, file merging, environment
//! overrides and validation messages.

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

fn load_text(text: &str, vars: &[(&str, &str)]) -> Result<EdgeConfig, EdgeConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.toml");
    std::fs::write(&path, text).unwrap();
    EdgeConfig::load(Some(&path), env(vars))
}

fn invalid_field(error: EdgeConfigError) -> String {
    match error {
        EdgeConfigError::Invalid { field, .. } | EdgeConfigError::Missing { field, .. } => field,
        other => panic!("expected an invalid field, got {other}"),
    }
}

#[test]
fn defaults_parse_and_validate() {
    let config = EdgeConfig::load(None, env(&[])).unwrap();
    assert_eq!(config.broker, "mqtt://127.0.0.1:1883");
    assert_eq!(config.outbox.max_rows, 1_000_000);
    assert_eq!(config.sensors.len(), 1);
    let publisher = config.publisher_config().unwrap();
    assert_eq!(
        publisher.status_topic.as_deref(),
        Some("floorwatch/plant-1/agents/edge-1/status")
    );
}

#[test]
fn file_overrides_keys_and_replaces_sensors() {
    let config = load_text(
        r#"
        site = "plant-2"
        [outbox]
        max_rows = 10
        [[sensors]]
        kind = "ds18b20"
        id = "freezer-1"
        interval_ms = 1000
        path = "/sys/bus/w1/devices/28-00000a1b2c3d"
        "#,
        &[],
    )
    .unwrap();
    assert_eq!(config.site, "plant-2");
    assert_eq!(config.outbox.max_rows, 10);
    assert_eq!(config.outbox.max_age_secs, 604_800);
    assert_eq!(config.sensors.len(), 1);
    assert_eq!(config.sensors[0].id, "freezer-1");
}

#[test]
fn environment_overrides_file() {
    let config = load_text(
        "site = \"plant-2\"\n",
        &[
            ("FLOORWATCH_EDGE_SITE", "plant-3"),
            ("FLOORWATCH_EDGE_OUTBOX_MAX_ROWS", "42"),
            ("FLOORWATCH_EDGE_CLIENT_ID", "1234"),
            ("FLOORWATCH_EDGE_TLS_CA_FILE", "/etc/ca.pem"),
            ("OTHER_VARIABLE", "ignored"),
        ],
    )
    .unwrap();
    assert_eq!(config.site, "plant-3");
    assert_eq!(config.outbox.max_rows, 42);
    assert_eq!(config.client_id, "1234");
    assert_eq!(
        config.tls.ca_file.as_deref(),
        Some(Path::new("/etc/ca.pem"))
    );
}

#[test]
fn unknown_environment_variable_is_named() {
    let error = load_text("", &[("FLOORWATCH_EDGE_BROKR", "x")]).unwrap_err();
    assert!(
        error.to_string().contains("FLOORWATCH_EDGE_BROKR"),
        "{error}"
    );
}

#[test]
fn non_numeric_environment_value_is_named() {
    let error = load_text("", &[("FLOORWATCH_EDGE_OUTBOX_MAX_ROWS", "many")]).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("FLOORWATCH_EDGE_OUTBOX_MAX_ROWS"),
        "{message}"
    );
    assert!(message.contains("many"), "{message}");
}

#[test]
fn unknown_key_is_rejected() {
    let error = load_text("brokr = \"mqtt://x\"\n", &[]).unwrap_err();
    assert!(error.to_string().contains("brokr"), "{error}");
}

#[test]
fn invalid_values_name_field() {
    let cases = [
        ("broker = \"http://x\"\n", "broker"),
        ("site = \"plant 1\"\n", "site"),
        ("agent = \"\"\n", "agent"),
        ("client_id = \"\"\n", "client_id"),
        ("topic_prefix = \"a/#\"\n", "topic_prefix"),
        ("[outbox]\nmax_rows = 0\n", "outbox.max_rows"),
        ("[outbox]\nmax_age_secs = 0\n", "outbox.max_age_secs"),
        ("[tls]\nclient_cert = \"/c.pem\"\n", "tls.client_cert"),
    ];
    for (text, field) in cases {
        let error = load_text(text, &[]).unwrap_err();
        assert_eq!(invalid_field(error), field, "{text}");
    }
}

#[test]
fn sensor_entries_are_checked_per_kind() {
    let cases = [
        (
            "kind = \"ds18b20\"\nid = \"a\"\ninterval_ms = 1000\n",
            "sensors[0].path",
        ),
        (
            "kind = \"dht_iio\"\nid = \"a\"\ninterval_ms = 2000\n",
            "sensors[0].model",
        ),
        (
            "kind = \"dht_iio\"\nid = \"a\"\ninterval_ms = 500\nmodel = \"dht22\"\n",
            "sensors[0].interval_ms",
        ),
        (
            "kind = \"simulated\"\nid = \"a\"\ninterval_ms = 500\npin = 4\n",
            "sensors[0].pin",
        ),
        (
            "kind = \"simulated\"\nid = \"a.b\"\ninterval_ms = 500\n",
            "sensors[0].id",
        ),
        (
            "kind = \"simulated\"\nid = \"a\"\ninterval_ms = 0\n",
            "sensors[0].interval_ms",
        ),
    ];
    for (entry, field) in cases {
        let error = load_text(&format!("[[sensors]]\n{entry}"), &[]).unwrap_err();
        assert_eq!(invalid_field(error), field, "{entry}");
    }
}

#[test]
fn duplicate_sensor_ids_are_rejected() {
    let entry = "[[sensors]]\nkind = \"simulated\"\nid = \"a\"\ninterval_ms = 500\n";
    let error = load_text(&format!("{entry}{entry}"), &[]).unwrap_err();
    assert_eq!(invalid_field(error), "sensors[1].id");
}

#[cfg(not(feature = "gpio"))]
#[test]
fn gpio_kind_needs_the_feature() {
    let entry = "[[sensors]]\nkind = \"dht_gpio\"\nid = \"a\"\ninterval_ms = 2000\nmodel = \"dht22\"\npin = 4\n";
    let error = load_text(entry, &[]).unwrap_err();
    assert!(error.to_string().contains("--features"), "{error}");
}

#[test]
fn debug_redacts_password() {
    let config = load_text("username = \"edge\"\npassword = \"hunter2\"\n", &[]).unwrap();
    let text = format!("{config:?}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn missing_tls_file_fails_validation() {
    let error = load_text(
        "broker = \"mqtts://127.0.0.1:8883\"\n[tls]\nca_file = \"/nonexistent/ca.pem\"\n",
        &[],
    )
    .unwrap_err();
    assert!(matches!(error, EdgeConfigError::Connection(_)), "{error}");
    assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
}
