use chrono::Duration;
use floorwatch_protocol::{EventType, Id};

use floorwatch_protocol::Severity;

use super::*;
use crate::assign::AssignmentPolicy;
use crate::store::{DeliveryBody, TaskQuery};
use crate::task::TaskStatus;
use crate::test_support::{incident_event, opened_at};

fn roster() -> Roster {
    Roster::simple(
        AssignmentPolicy::RoundRobin,
        vec![Id::parse("alex").unwrap(), Id::parse("sam").unwrap()],
    )
}

fn delivery(webhook_id: &str, event_type: EventType, incident_id: &str, seq: u64) -> Delivery {
    Delivery {
        webhook_id: webhook_id.to_owned(),
        received_at: opened_at() + Duration::seconds(seq as i64),
        body: DeliveryBody::Incident(Box::new(incident_event(event_type, incident_id, seq))),
    }
}

fn record(store: &SqliteStore, delivery: &Delivery) -> Outcome {
    store.record_delivery(delivery, &roster(), true).unwrap()
}

fn open_temp() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("data/scheduler.db")).unwrap();
    (dir, store)
}

fn all_tasks(store: &SqliteStore) -> Vec<Task> {
    store.list_tasks(&TaskQuery::default()).unwrap()
}

#[test]
fn opened_creates_assigned_task_with_history() {
    let (_dir, store) = open_temp();
    let outcome = record(
        &store,
        &delivery("msg_1", EventType::IncidentOpened, "inc-1", 1),
    );
    let Outcome::Created { task_id, assignee } = outcome else {
        panic!("expected Created, got {outcome:?}");
    };
    assert_eq!(assignee, "alex");

    let detail = store.task(task_id).unwrap().expect("task exists");
    assert_eq!(detail.task.incident_id, "inc-1");
    assert_eq!(detail.task.sensor, "oven-1");
    assert_eq!(detail.task.value, 31.5);
    assert_eq!(detail.task.status, TaskStatus::Open);
    assert!(!detail.task.condition_cleared);
    assert_eq!(detail.task.opened_at, opened_at());
    assert_eq!(detail.history.len(), 2);
    assert_eq!(detail.history[1].change, "assigned to alex (round_robin)");
    assert!(store.task(task_id + 1).unwrap().is_none());
    assert!(store.ping().is_ok());
}

#[test]
fn repeated_webhook_id_changes_nothing() {
    let (_dir, store) = open_temp();
    let first = delivery("msg_1", EventType::IncidentOpened, "inc-1", 1);
    assert!(matches!(record(&store, &first), Outcome::Created { .. }));
    assert_eq!(record(&store, &first), Outcome::Duplicate);

    let again = delivery("msg_2", EventType::IncidentOpened, "inc-1", 1);
    assert!(matches!(record(&store, &again), Outcome::Stale { .. }));
    assert_eq!(all_tasks(&store).len(), 1);
}

#[test]
fn resolve_then_late_open_keeps_one_cleared_task() {
    let (_dir, store) = open_temp();
    let resolved = delivery("msg_3", EventType::IncidentResolved, "inc-1", 3);
    assert!(matches!(record(&store, &resolved), Outcome::Created { .. }));
    let opened = delivery("msg_1", EventType::IncidentOpened, "inc-1", 1);
    assert!(matches!(
        record(&store, &opened),
        Outcome::Stale {
            last_event_seq: 3,
            ..
        }
    ));

    let tasks = all_tasks(&store);
    assert_eq!(tasks.len(), 1);
    assert!(tasks[0].condition_cleared);
    assert_eq!(tasks[0].status, TaskStatus::Open);
    assert!(tasks[0].resolved_at.is_some());
}

#[test]
fn update_and_resolve_change_the_task() {
    let (_dir, store) = open_temp();
    record(
        &store,
        &delivery("msg_1", EventType::IncidentOpened, "inc-1", 1),
    );
    let mut update = delivery("msg_2", EventType::IncidentUpdated, "inc-1", 2);
    if let DeliveryBody::Incident(event) = &mut update.body {
        event.data.value = 36.0;
        event.data.severity = Severity::Critical;
    }
    assert!(matches!(record(&store, &update), Outcome::Updated { .. }));
    let task = &all_tasks(&store)[0];
    assert_eq!(task.value, 36.0);
    assert_eq!(task.severity, Severity::Critical);

    let resolved = delivery("msg_3", EventType::IncidentResolved, "inc-1", 3);
    let outcome = store.record_delivery(&resolved, &roster(), false).unwrap();
    assert!(matches!(outcome, Outcome::Updated { .. }));
    let detail = store.task(task.id).unwrap().unwrap();
    assert!(detail.task.condition_cleared);
    assert_eq!(detail.task.status, TaskStatus::Completed);
    assert_eq!(detail.task.last_event_seq, 3);
    assert_eq!(detail.history.len(), 4);
}

#[test]
fn ignored_types_are_recorded_once() {
    let (_dir, store) = open_temp();
    let silent = Delivery {
        webhook_id: "msg_9".into(),
        received_at: opened_at(),
        body: DeliveryBody::Ignored {
            event_type: "sensor.silent".into(),
        },
    };
    assert_eq!(record(&store, &silent), Outcome::Ignored);
    assert_eq!(record(&store, &silent), Outcome::Duplicate);
    assert!(all_tasks(&store).is_empty());
}

#[test]
fn round_robin_continues_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scheduler.db");
    let mut assignees = Vec::new();
    for (run, incidents) in [(0, ["inc-1", "inc-2"]), (1, ["inc-3", "inc-4"])] {
        let store = SqliteStore::open(&path).unwrap();
        for (index, incident) in incidents.iter().enumerate() {
            let id = format!("msg_{run}_{index}");
            match record(
                &store,
                &delivery(&id, EventType::IncidentOpened, incident, 1),
            ) {
                Outcome::Created { assignee, .. } => assignees.push(assignee),
                other => panic!("expected Created, got {other:?}"),
            }
        }
    }
    assert_eq!(assignees, ["alex", "sam", "alex", "sam"]);
    assert_eq!(all_tasks(&SqliteStore::open(&path).unwrap()).len(), 4);
}

#[test]
fn listing_filters_orders_and_limits() {
    let (_dir, store) = open_temp();
    for (index, incident) in ["inc-1", "inc-2", "inc-3"].iter().enumerate() {
        let mut opened = delivery(
            &format!("msg_{index}"),
            EventType::IncidentOpened,
            incident,
            1,
        );
        if let DeliveryBody::Incident(event) = &mut opened.body {
            event.data.opened_at = opened_at() + Duration::hours(index as i64);
        }
        record(&store, &opened);
    }
    let resolved = delivery("msg_r", EventType::IncidentResolved, "inc-2", 2);
    store.record_delivery(&resolved, &roster(), false).unwrap();

    let newest_first: Vec<_> = all_tasks(&store)
        .into_iter()
        .map(|t| t.incident_id)
        .collect();
    assert_eq!(newest_first, ["inc-3", "inc-2", "inc-1"]);

    let open = TaskQuery {
        status: Some(TaskStatus::Open),
        limit: 1,
        ..TaskQuery::default()
    };
    let listed = store.list_tasks(&open).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].incident_id, "inc-3");

    let counts = store.count_tasks().unwrap();
    assert_eq!(counts.total, 3);
    assert_eq!(counts.open, 2);
    assert_eq!(counts.completed, 1);
    assert_eq!(counts.active, 2);
}

#[test]
fn newer_schema_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scheduler.db");
    let connection = Connection::open(&path).unwrap();
    connection.pragma_update(None, "user_version", 99).unwrap();
    drop(connection);
    let error = SqliteStore::open(&path).unwrap_err();
    assert!(
        matches!(error, StoreError::SchemaTooNew { found: 99, .. }),
        "{error}"
    );
}

#[test]
fn unopenable_path_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let error = SqliteStore::open(dir.path()).unwrap_err();
    assert!(matches!(error, StoreError::Open { .. }), "{error}");
}

#[test]
fn old_delivery_records_are_pruned_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scheduler.db");
    let mut old = delivery("msg_old", EventType::IncidentOpened, "inc-1", 1);
    old.received_at = Utc::now() - DELIVERY_RETENTION - Duration::days(1);
    let recent = Delivery {
        webhook_id: "msg_new".into(),
        received_at: Utc::now(),
        body: DeliveryBody::Ignored {
            event_type: "sensor.silent".into(),
        },
    };
    {
        let store = SqliteStore::open(&path).unwrap();
        assert!(matches!(record(&store, &old), Outcome::Created { .. }));
        assert_eq!(record(&store, &recent), Outcome::Ignored);
    }

    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(record(&store, &recent), Outcome::Duplicate);
    // The pruned id is new again, but the task ignores the old event.
    assert!(matches!(record(&store, &old), Outcome::Stale { .. }));
    assert_eq!(all_tasks(&store).len(), 1);
}
