use chrono::TimeDelta;

use super::*;

const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

struct Fixture {
    _dir: tempfile::TempDir,
    config: BridgeConfig,
    stats: Arc<Stats>,
    retained: RetainedIncidents,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = BridgeConfig {
            database: dir.path().join("bridge.db"),
            endpoints: vec![EndpointConfig::new("http://127.0.0.1:9/hooks", SECRET)],
            ..BridgeConfig::default()
        };
        Self {
            _dir: dir,
            config,
            stats: Arc::default(),
            retained: RetainedIncidents::default(),
        }
    }

    fn processor(&self) -> Processor {
        let store = Store::open(&self.config.database).unwrap();
        Processor::new(
            store,
            &self.config,
            Arc::clone(&self.stats),
            Arc::clone(&self.retained),
        )
        .unwrap()
    }
}

fn reading(seq: u64, celsius: f64) -> Inbound {
    let start: DateTime<Utc> = "2026-12-04T12:00:00Z".parse().unwrap();
    let time = start + TimeDelta::seconds(seq as i64 * 10);
    let payload = format!(
        r#"{{"v":1,"seq":{seq},"time":"{}","temperature_c":{celsius}}}"#,
        time.to_rfc3339()
    );
    Inbound {
        site: "plant-1".to_owned(),
        sensor: "oven-1".to_owned(),
        payload: payload.into_bytes(),
        received_at: Utc::now(),
    }
}

fn raw(site: &str, sensor: &str, payload: &str) -> Inbound {
    Inbound {
        site: site.to_owned(),
        sensor: sensor.to_owned(),
        payload: payload.as_bytes().to_vec(),
        received_at: Utc::now(),
    }
}

#[test]
fn episode_writes_outbox_and_retained_state() {
    let fixture = Fixture::new();
    let mut processor = fixture.processor();
    let batch: Vec<Inbound> = [25.0, 31.0, 31.5, 32.0]
        .iter()
        .enumerate()
        .map(|(seq, &value)| reading(seq as u64, value))
        .collect();
    let result = processor.process(&batch).unwrap();
    assert_eq!(result.outbox_rows, 1);
    assert_eq!(result.publications.len(), 1);
    let publication = &result.publications[0];
    assert_eq!(publication.topic, "floorwatch/plant-1/oven-1/incident");
    assert!(publication.retain);
    let data: IncidentData = serde_json::from_slice(&publication.payload).unwrap();
    assert_eq!(data.value, 32.0);

    let stats = fixture.stats.snapshot();
    assert_eq!(stats.readings_accepted, 4);
    assert_eq!(stats.incidents_opened, 1);
    assert_eq!(stats.events_written, 1);
    assert_eq!(stats.outbox_pending, 1);
    assert_eq!(fixture.retained.lock().unwrap().len(), 1);

    let batch: Vec<Inbound> = (4..7).map(|seq| reading(seq, 25.0)).collect();
    let result = processor.process(&batch).unwrap();
    assert_eq!(result.publications.len(), 1);
    assert!(result.publications[0].payload.is_empty());
    assert!(fixture.retained.lock().unwrap().is_empty());
    assert_eq!(fixture.stats.snapshot().incidents_resolved, 1);
}

#[test]
fn restart_neither_reopens_nor_loses_incident() {
    let fixture = Fixture::new();
    let batch: Vec<Inbound> = (0..3).map(|seq| reading(seq, 31.0)).collect();
    fixture.processor().process(&batch).unwrap();
    assert_eq!(fixture.stats.snapshot().incidents_opened, 1);

    let mut restarted = fixture.processor();
    assert_eq!(fixture.retained.lock().unwrap().len(), 1);
    let result = restarted.process(&[reading(3, 31.0)]).unwrap();
    assert_eq!(result.outbox_rows, 0);
    let batch: Vec<Inbound> = (4..7).map(|seq| reading(seq, 25.0)).collect();
    let result = restarted.process(&batch).unwrap();
    assert_eq!(result.outbox_rows, 1);
    assert_eq!(fixture.stats.snapshot().incidents_resolved, 1);
}

#[test]
fn duplicates_and_late_readings_are_counted() {
    let fixture = Fixture::new();
    let mut processor = fixture.processor();
    processor
        .process(&[reading(5, 25.0), reading(5, 25.0)])
        .unwrap();
    processor.process(&[reading(5, 25.0)]).unwrap();
    let mut late = reading(6, 25.0);
    late.payload = br#"{"seq":6,"time":"2026-12-04T11:00:00Z","temperature_c":40}"#.to_vec();
    processor.process(&[late]).unwrap();
    let stats = fixture.stats.snapshot();
    assert_eq!(stats.duplicates, 2);
    assert_eq!(stats.out_of_order, 1);
    assert_eq!(stats.readings_accepted, 4);
}

#[test]
fn rejections_are_reported_by_code() {
    let fixture = Fixture::new();
    let mut processor = fixture.processor();
    let batch = [
        raw("plant-1", "oven-1", "hot"),
        raw("plant-1", "oven-1", ""),
        raw("plant 1", "oven-1", "31"),
        raw("plant-1", "oven-1", "31.5"),
    ];
    let result = processor.process(&batch).unwrap();

    let stats = fixture.stats.snapshot();
    assert_eq!(stats.readings_rejected, 3);
    assert_eq!(stats.readings_accepted, 1);
    assert_eq!(stats.rejected_by_reason["invalid_json"], 1);
    assert_eq!(stats.rejected_by_reason["empty"], 1);
    assert_eq!(stats.rejected_by_reason["invalid_topic_id"], 1);

    // The invalid topic level cannot name a topic, so two reports remain.
    assert_eq!(result.publications.len(), 2);
    let report: serde_json::Value =
        serde_json::from_slice(&result.publications[0].payload).unwrap();
    assert_eq!(
        result.publications[0].topic,
        "floorwatch/plant-1/oven-1/rejected"
    );
    assert!(!result.publications[0].retain);
    assert_eq!(report["code"], "invalid_json");
    assert!(report["reason"].as_str().unwrap().contains("not a number"));
    assert!(report["received_at"].is_string());
}

#[test]
fn endpoints_get_only_subscribed_events() {
    let mut fixture = Fixture::new();
    let mut opened_only = EndpointConfig::new("http://127.0.0.1:9/opened", SECRET);
    opened_only.events = vec!["incident.opened".to_owned()];
    fixture.config.endpoints.push(opened_only);
    let mut processor = fixture.processor();
    let mut batch: Vec<Inbound> = (0..3).map(|seq| reading(seq, 31.0)).collect();
    batch.extend((3..6).map(|seq| reading(seq, 25.0)));
    let result = processor.process(&batch).unwrap();
    // Two events to the first endpoint, one to the second.
    assert_eq!(result.outbox_rows, 3);
}

#[test]
fn sequence_gaps_count_missing_readings() {
    let fixture = Fixture::new();
    let mut processor = fixture.processor();
    let batch = [
        reading(0, 25.0),
        reading(1, 25.0),
        reading(5, 25.0),
        reading(6, 25.0),
    ];
    processor.process(&batch).unwrap();
    assert_eq!(fixture.stats.snapshot().readings_missing, 3);

    processor.process(&[reading(6, 25.0)]).unwrap();
    let stats = fixture.stats.snapshot();
    assert_eq!(stats.readings_missing, 3, "a duplicate is no gap");
    assert_eq!(stats.duplicates, 1);
}

#[test]
fn sensors_past_limit_are_rejected() {
    let mut fixture = Fixture::new();
    fixture.config.max_sensors = 2;
    let mut processor = fixture.processor();
    let of_sensor = |sensor: &str, seq: u64| Inbound {
        sensor: sensor.to_owned(),
        ..reading(seq, 25.0)
    };
    let batch = [
        of_sensor("oven-1", 0),
        of_sensor("oven-2", 0),
        of_sensor("oven-3", 0),
    ];
    let result = processor.process(&batch).unwrap();
    processor.process(&[of_sensor("oven-1", 1)]).unwrap();

    let stats = fixture.stats.snapshot();
    assert_eq!(stats.readings_accepted, 3);
    assert_eq!(stats.rejected_by_reason.get("too_many_sensors"), Some(&1));
    let report = &result.publications[0];
    assert_eq!(report.topic, "floorwatch/plant-1/oven-3/rejected");
    let body: serde_json::Value = serde_json::from_slice(&report.payload).unwrap();
    assert_eq!(body["code"], "too_many_sensors");

    let mut restarted = fixture.processor();
    restarted.process(&[of_sensor("oven-4", 0)]).unwrap();
    assert_eq!(
        fixture
            .stats
            .snapshot()
            .rejected_by_reason
            .get("too_many_sensors"),
        Some(&2),
        "the limit counts sensors loaded from the database"
    );
}
