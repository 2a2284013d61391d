use chrono::TimeDelta;
use floorwatch_protocol::{Condition, Severity};

use super::*;

fn incident_event(event_type: EventType, incident_id: &str, seq: u64) -> Event<IncidentData> {
    let time: DateTime<Utc> = "2026-12-04T12:00:00Z".parse().unwrap();
    let id = |text: &str| Id::parse(text).unwrap();
    Event {
        event_type,
        timestamp: time,
        data: IncidentData {
            incident_id: incident_id.to_owned(),
            seq,
            site: id("plant-1"),
            sensor: id("oven-1"),
            metric: id("temperature"),
            rule: id("temperature-high"),
            condition: Condition::Above,
            threshold: 30.0,
            clear_threshold: 29.0,
            value: 31.0,
            unit: "°C".to_owned(),
            severity: Severity::Warning,
            first_breach_at: time,
            opened_at: time,
            resolved_at: (event_type == EventType::IncidentResolved).then_some(time),
            reason: "test".to_owned(),
            window: Vec::new(),
        },
    }
}

fn new_event(event_type: EventType, incident_id: &str, seq: u64, event_id: &str) -> NewEvent {
    NewEvent {
        event_id: event_id.to_owned(),
        event: incident_event(event_type, incident_id, seq),
        body: format!("{{\"id\":\"{event_id}\"}}").into_bytes(),
        endpoints: vec!["http://a/".to_owned()],
    }
}

fn open_temp() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("nested/bridge.db")).unwrap();
    (dir, store)
}

#[test]
fn reopening_keeps_schema_and_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bridge.db");
    let mut store = Store::open(&path).unwrap();
    let batch = BatchWrite {
        sensors: vec![(
            Id::parse("plant-1").unwrap(),
            Id::parse("oven-1").unwrap(),
            SensorState {
                last_seq: Some(9),
                ..SensorState::default()
            },
        )],
        events: vec![new_event(EventType::IncidentOpened, "inc_1", 1, "msg_1")],
    };
    store.write_batch(&batch, Utc::now()).unwrap();
    drop(store);

    let store = Store::open(&path).unwrap();
    let states = store.load_sensor_states().unwrap();
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].2.last_seq, Some(9));
    assert_eq!(store.count_pending().unwrap(), 1);
    assert_eq!(store.open_incidents().unwrap().len(), 1);
}

#[test]
fn resolve_updates_incident() {
    let (_dir, mut store) = open_temp();
    let opened = new_event(EventType::IncidentOpened, "inc_1", 1, "msg_1");
    let resolved = new_event(EventType::IncidentResolved, "inc_1", 2, "msg_2");
    store
        .write_batch(
            &BatchWrite {
                sensors: vec![],
                events: vec![opened, resolved],
            },
            Utc::now(),
        )
        .unwrap();
    let (data, open) = store.incident("inc_1").unwrap().unwrap();
    assert!(!open);
    assert_eq!(data.seq, 2);
    assert!(store.open_incidents().unwrap().is_empty());
}

#[test]
fn newer_schema_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bridge.db");
    drop(Store::open(&path).unwrap());
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    assert!(matches!(
        Store::open(&path),
        Err(StoreError::TooNew { found: 99, .. })
    ));
}

#[test]
fn heads_keep_incident_order_and_let_others_pass() {
    let (_dir, mut store) = open_temp();
    let events = vec![
        new_event(EventType::IncidentOpened, "inc_a", 1, "msg_a1"),
        new_event(EventType::IncidentResolved, "inc_a", 2, "msg_a2"),
        new_event(EventType::IncidentOpened, "inc_b", 1, "msg_b1"),
    ];
    let now = Utc::now();
    store
        .write_batch(
            &BatchWrite {
                sensors: vec![],
                events,
            },
            now,
        )
        .unwrap();

    let heads = store.pending_heads("http://a/", 10).unwrap();
    let ids: Vec<&str> = heads.iter().map(|row| row.event_id.as_str()).collect();
    assert_eq!(ids, ["msg_a1", "msg_b1"]);

    // inc_a's head fails and waits; inc_b still goes first, and msg_a2 stays
    // behind msg_a1.
    let later = (now + TimeDelta::hours(1)).timestamp_millis();
    let record = AttemptRecord {
        attempted_at: now,
        status_code: Some(500),
        latency_ms: 3,
        error: Some("receiver returned 500".to_owned()),
        response_snippet: None,
    };
    store
        .record_attempt(
            &heads[0],
            "http://a/",
            &record,
            RowUpdate::Retry {
                next_attempt_at_ms: later,
            },
        )
        .unwrap();
    let heads = store.pending_heads("http://a/", 10).unwrap();
    let ids: Vec<&str> = heads.iter().map(|row| row.event_id.as_str()).collect();
    assert_eq!(ids, ["msg_b1", "msg_a1"]);
    assert_eq!(heads[1].attempts, 1);
    assert_eq!(heads[1].next_attempt_at_ms, later);

    let logged = store.attempts_of("msg_a1").unwrap();
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].1, 1);
    assert_eq!(logged[0].2.status_code, Some(500));
}

#[test]
fn dead_rows_leave_pending() {
    let (_dir, mut store) = open_temp();
    let events = vec![new_event(EventType::IncidentOpened, "inc_a", 1, "msg_a1")];
    store
        .write_batch(
            &BatchWrite {
                sensors: vec![],
                events,
            },
            Utc::now(),
        )
        .unwrap();
    let head = store.pending_heads("http://a/", 10).unwrap().remove(0);
    let record = AttemptRecord {
        attempted_at: Utc::now(),
        status_code: None,
        latency_ms: 1,
        error: Some("connection refused".to_owned()),
        response_snippet: None,
    };
    store
        .record_attempt(&head, "http://a/", &record, RowUpdate::Dead)
        .unwrap();
    assert_eq!(store.count_pending().unwrap(), 0);
    let dead = store.dead_letters().unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].1, "msg_a1");
    assert_eq!(dead[0].2.as_deref(), Some("connection refused"));
}
