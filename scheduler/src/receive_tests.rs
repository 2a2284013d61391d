use floorwatch_protocol::EventType;
use poem::http::StatusCode;
use serde_json::{json, Value};

use super::*;
use crate::test_support::incident_event;

fn opened_json() -> Value {
    serde_json::to_value(incident_event(EventType::IncidentOpened, "inc-1", 1)).unwrap()
}

fn parse_value(value: &Value) -> Result<DeliveryBody, ApiError> {
    parse_body(&serde_json::to_vec(value).unwrap())
}

#[test]
fn incident_event_parses() {
    let body = parse_value(&opened_json()).unwrap();
    let DeliveryBody::Incident(event) = body else {
        panic!("expected an incident event");
    };
    assert_eq!(event.event_type, EventType::IncidentOpened);
    assert_eq!(event.data.incident_id, "inc-1");
}

#[test]
fn other_types_are_ignored() {
    for event_type in ["sensor.silent", "incident.acknowledged", "billing.paid"] {
        let body = parse_value(&json!({"type": event_type, "data": {"x": 1}})).unwrap();
        let DeliveryBody::Ignored { event_type: stored } = body else {
            panic!("{event_type} was not ignored");
        };
        assert_eq!(stored, event_type);
    }
}

#[test]
fn schema_errors_name_the_field() {
    let mut missing = opened_json();
    missing["data"].as_object_mut().unwrap().remove("seq");
    let error = parse_value(&missing).unwrap_err();
    assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error.code, "invalid_event");
    assert!(error.detail.contains("seq"), "{}", error.detail);

    let mut wrong = opened_json();
    wrong["data"]["value"] = json!("hot");
    let error = parse_value(&wrong).unwrap_err();
    assert!(error.detail.contains("data.value"), "{}", error.detail);

    let mut bad_id = opened_json();
    bad_id["data"]["sensor"] = json!("oven 1");
    let error = parse_value(&bad_id).unwrap_err();
    assert!(error.detail.contains("data.sensor"), "{}", error.detail);
}

#[test]
fn incident_id_and_seq_are_checked() {
    let mut empty = opened_json();
    empty["data"]["incident_id"] = json!("");
    let error = parse_value(&empty).unwrap_err();
    assert!(
        error.detail.contains("data.incident_id"),
        "{}",
        error.detail
    );

    let mut long = opened_json();
    long["data"]["incident_id"] = json!("x".repeat(MAX_INCIDENT_ID_CHARS + 1));
    assert!(parse_value(&long).is_err());

    let mut zero = opened_json();
    zero["data"]["seq"] = json!(0);
    let error = parse_value(&zero).unwrap_err();
    assert!(error.detail.contains("data.seq"), "{}", error.detail);
}

#[test]
fn malformed_json_and_missing_type() {
    let error = parse_body(b"{not json").unwrap_err();
    assert_eq!(error.status, StatusCode::BAD_REQUEST);
    assert_eq!(error.code, "invalid_json");

    let error = parse_value(&json!({"data": {}})).unwrap_err();
    assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(error.detail.contains("type"), "{}", error.detail);
}

#[test]
fn long_unit_and_reason_are_rejected() {
    let cases = [
        ("unit", "u".repeat(MAX_UNIT_CHARS + 1)),
        ("unit", "u".repeat(200_000)),
        ("unit", "°C\n".to_owned()),
        ("reason", "r".repeat(MAX_REASON_CHARS + 1)),
        ("reason", "too hot\u{7}".to_owned()),
    ];
    for (field, text) in cases {
        let mut event = opened_json();
        event["data"][field] = json!(text);
        let error = parse_value(&event).unwrap_err();
        assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        assert_eq!(error.code, "invalid_event", "{field}");
        let named = format!("field data.{field}");
        assert!(error.detail.contains(&named), "{}", error.detail);
        assert!(error.detail.len() < 200, "detail repeats the text");
    }
}

#[test]
fn units_up_to_the_limit_are_accepted() {
    for unit in ["°C", "%", "°C/min", "", &"u".repeat(MAX_UNIT_CHARS)] {
        let mut event = opened_json();
        event["data"]["unit"] = json!(unit);
        assert!(parse_value(&event).is_ok(), "unit {unit:?} rejected");
    }
}
