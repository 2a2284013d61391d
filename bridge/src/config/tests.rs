use floorwatch_protocol::Condition;

use super::*;

const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

fn with_endpoint(endpoint: EndpointConfig) -> BridgeConfig {
    BridgeConfig {
        endpoints: vec![endpoint],
        ..BridgeConfig::default()
    }
}

fn error_of(config: &BridgeConfig) -> ConfigError {
    config.validate().expect_err("config should be invalid")
}

#[test]
fn defaults_are_valid_and_match_scenario() {
    let config = BridgeConfig::default();
    assert_eq!(config.validate(), Ok(()));
    let high = &config.rules[0];
    assert_eq!(high.id, "temperature-high");
    assert_eq!(high.condition, Condition::Above);
    assert_eq!((high.threshold, high.clear_threshold), (30.0, 29.0));
    let low = &config.rules[1];
    assert_eq!(low.id, "temperature-low");
    assert_eq!((low.threshold, low.clear_threshold), (20.0, 21.0));
    let total: u64 = config.delivery.retry_schedule_ms.iter().sum();
    assert!(total > 24 * 3600 * 1000, "schedule spans {total} ms");
}

#[test]
fn above_rule_clearing_above_threshold_is_named() {
    let mut config = BridgeConfig::default();
    config.rules[0].clear_threshold = 31.0;
    let error = error_of(&config);
    assert_eq!(error.field, "bridge.rules[0].clear_threshold");
    assert_eq!(error.value, "31.0");
    let message = error.to_string();
    assert!(message.contains("at or below 30"), "{message}");
}

#[test]
fn below_rule_clearing_below_threshold_is_named() {
    let mut config = BridgeConfig::default();
    config.rules[1].clear_threshold = 19.0;
    assert_eq!(error_of(&config).field, "bridge.rules[1].clear_threshold");
}

/// Changes one field of a rule to an invalid value.
type RuleChange = fn(&mut RuleConfig);

#[test]
fn invalid_rule_fields_are_named() {
    let cases: [(RuleChange, &str); 5] = [
        (|r| r.id = "high temp".into(), "bridge.rules[0].id"),
        (|r| r.metric = "pressure".into(), "bridge.rules[0].metric"),
        (|r| r.consecutive = 0, "bridge.rules[0].consecutive"),
        (
            |r| r.clear_consecutive = 0,
            "bridge.rules[0].clear_consecutive",
        ),
        (|r| r.threshold = f64::NAN, "bridge.rules[0].threshold"),
    ];
    for (change, field) in cases {
        let mut config = BridgeConfig::default();
        change(&mut config.rules[0]);
        assert_eq!(error_of(&config).field, field);
    }
}

#[test]
fn duplicate_rule_id_is_named() {
    let mut config = BridgeConfig::default();
    config.rules[1].id = config.rules[0].id.clone();
    assert_eq!(error_of(&config).field, "bridge.rules[1].id");
}

#[test]
fn bad_endpoint_url_is_named() {
    for url in ["not a url", "ftp://host/x", "https://user:pw@host/x"] {
        let error = error_of(&with_endpoint(EndpointConfig::new(url, SECRET)));
        assert_eq!(error.field, "bridge.endpoints[0].url", "{url}");
        assert!(error.value.contains(url), "{error}");
    }
}

#[test]
fn bad_or_missing_secret_is_named_without_value() {
    let error = error_of(&with_endpoint(EndpointConfig::new(
        "https://h/x",
        "whsec_!!notbase64",
    )));
    assert_eq!(error.field, "bridge.endpoints[0].secret");
    assert!(!error.to_string().contains("notbase64"), "{error}");

    let mut endpoint = EndpointConfig::new("https://h/x", SECRET);
    endpoint.secret = None;
    assert_eq!(
        error_of(&with_endpoint(endpoint.clone())).field,
        "bridge.endpoints[0].secret"
    );
    endpoint.secrets = vec![SECRET.into(), "whsec_AAAA".into()];
    assert_eq!(
        error_of(&with_endpoint(endpoint)).field,
        "bridge.endpoints[0].secrets[1]"
    );
}

#[test]
fn empty_or_unknown_events_are_named() {
    let mut endpoint = EndpointConfig::new("https://h/x", SECRET);
    endpoint.events.clear();
    assert_eq!(
        error_of(&with_endpoint(endpoint.clone())).field,
        "bridge.endpoints[0].events"
    );
    endpoint.events = vec!["incident.*".into(), "incidents.*".into()];
    assert_eq!(
        error_of(&with_endpoint(endpoint)).field,
        "bridge.endpoints[0].events[1]"
    );
}

#[test]
fn mqtt_and_delivery_fields_are_checked() {
    let mut config = BridgeConfig::default();
    config.mqtt.url = "http://broker".into();
    assert_eq!(error_of(&config).field, "bridge.mqtt.url");

    let mut config = BridgeConfig::default();
    config.mqtt.topic_prefix = "plant/#".into();
    assert_eq!(error_of(&config).field, "bridge.mqtt.topic_prefix");

    let mut config = BridgeConfig::default();
    config.delivery.jitter = 1.5;
    assert_eq!(error_of(&config).field, "bridge.delivery.jitter");
}

#[test]
fn rotation_secrets_are_unioned() {
    let mut endpoint = EndpointConfig::new("https://h/x", SECRET);
    endpoint.secrets = vec![Secret::generate().expose()];
    assert_eq!(endpoint.parsed_secrets().unwrap().len(), 2);
}

/// A field name and the change that makes it invalid.
type EndpointCase = (&'static str, fn(&mut EndpointConfig));

#[test]
fn endpoint_limits_are_checked() {
    let cases: [EndpointCase; 5] = [
        ("max_concurrency", |endpoint| endpoint.max_concurrency = 0),
        ("rate_limit_per_sec", |endpoint| {
            endpoint.rate_limit_per_sec = Some(-1.0)
        }),
        ("rate_limit_per_sec", |endpoint| {
            endpoint.rate_limit_per_sec = Some(f64::NAN)
        }),
        ("breaker_failures", |endpoint| endpoint.breaker_failures = 0),
        ("breaker_max_cooldown_ms", |endpoint| {
            endpoint.breaker_max_cooldown_ms = endpoint.breaker_cooldown_ms - 1
        }),
    ];
    for (field, change) in cases {
        let mut endpoint = EndpointConfig::new("https://h/x", SECRET);
        change(&mut endpoint);
        let error = error_of(&with_endpoint(endpoint));
        assert_eq!(error.field, format!("bridge.endpoints[0].{field}"));
    }

    let mut endpoint = EndpointConfig::new("https://h/x", SECRET);
    endpoint.rate_limit_per_sec = Some(0.5);
    assert_eq!(with_endpoint(endpoint).validate(), Ok(()));
}

#[test]
fn zero_max_sensors_is_named() {
    let config = BridgeConfig {
        max_sensors: 0,
        ..BridgeConfig::default()
    };
    assert_eq!(error_of(&config).field, "bridge.max_sensors");
}

#[test]
fn endpoint_toml_defaults_and_keys() {
    let endpoint: EndpointConfig = toml::from_str(&format!(
        "url = \"https://h/x\"\nsecret = \"{SECRET}\"\nrate_limit_per_sec = 10.0\nenabled = false"
    ))
    .unwrap();
    assert!(!endpoint.enabled);
    assert_eq!(endpoint.rate_limit_per_sec, Some(10.0));
    assert_eq!(endpoint.max_concurrency, 4);
    assert_eq!(endpoint.breaker_failures, 5);
    assert_eq!(endpoint.breaker_cooldown_ms, 30_000);
    assert_eq!(endpoint.breaker_max_cooldown_ms, 3_600_000);
}

#[test]
fn signing_key_alone_is_enough_and_checked() {
    let mut endpoint = EndpointConfig::new("https://h/x", SECRET);
    endpoint.secret = None;
    endpoint.signing_keys = vec![floorwatch_protocol::SigningKey::generate().expose()];
    assert_eq!(with_endpoint(endpoint.clone()).validate(), Ok(()));

    endpoint.signing_keys = vec!["whsk_not-base64!".into()];
    let error = error_of(&with_endpoint(endpoint));
    assert_eq!(error.field, "bridge.endpoints[0].signing_keys[0]");
    assert!(error.value.contains("<redacted>"), "{}", error.value);
    assert!(!error.value.contains("not-base64"), "{}", error.value);
}
