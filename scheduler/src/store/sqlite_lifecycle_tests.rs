//! Tests of schema migration, technician actions and escalation.

use chrono::Duration;
use floorwatch_protocol::{EventType, Id, Severity};

use super::*;
use crate::assign::AssignmentPolicy;
use crate::lifecycle::ActionError;
use crate::store::{DeliveryBody, TaskQuery};
use crate::task::TaskStatus;
use crate::test_support::{incident_event, opened_at};

fn ids(names: &[&str]) -> Vec<Id> {
    names.iter().map(|name| Id::parse(name).unwrap()).collect()
}

fn opened(store: &SqliteStore, roster: &Roster, incident: &str, severity: Severity) -> Outcome {
    let mut event = incident_event(EventType::IncidentOpened, incident, 1);
    event.data.severity = severity;
    let delivery = Delivery {
        webhook_id: format!("msg_{incident}"),
        received_at: opened_at(),
        body: DeliveryBody::Incident(Box::new(event)),
    };
    store.record_delivery(&delivery, roster, true).unwrap()
}

fn assignee(outcome: Outcome) -> String {
    match outcome {
        Outcome::Created { assignee, .. } => assignee,
        other => panic!("expected Created, got {other:?}"),
    }
}

fn open_temp() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("scheduler.db")).unwrap();
    (dir, store)
}

#[test]
fn version_1_database_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scheduler.db");
    {
        let connection = Connection::open(&path).unwrap();
        connection.execute_batch(MIGRATIONS[0]).unwrap();
        connection.pragma_update(None, "user_version", 1).unwrap();
        connection
            .execute(
                "INSERT INTO tasks (incident_id, site, sensor, metric, rule, value, threshold,
                     unit, severity, status, condition_cleared, assignee, opened_at,
                     created_at, updated_at, last_event_seq)
                 VALUES ('inc-old', 'plant-1', 'oven-1', 'temperature', 'too-hot', 31.5, 30.0,
                     '°C', 'warning', 'open', 0, 'alex', '2024-05-01T12:00:00.000000Z',
                     '2024-05-01T12:00:01.000000Z', '2024-05-01T12:00:01.000000Z', 1)",
                [],
            )
            .unwrap();
    }

    let store = SqliteStore::open(&path).unwrap();
    let version: i64 = store
        .lock()
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, MIGRATIONS.len() as i64);
    let detail = store.task(1).unwrap().expect("old task kept");
    assert_eq!(detail.task.incident_id, "inc-old");
    assert_eq!(
        detail.task.assigned_at.to_rfc3339(),
        "2024-05-01T12:00:01+00:00"
    );
    assert!(detail.window.is_empty());
    assert_eq!(detail.task.clear_threshold, None);
    let counts = store.count_tasks().unwrap();
    assert_eq!(
        counts.total, 1,
        "counts include tasks from before the migration"
    );
    assert_eq!(counts.open, 1);
    assert_eq!(counts.active, 1);
}

#[test]
fn actions_change_status_and_history() {
    let (_dir, store) = open_temp();
    let roster = Roster::simple(AssignmentPolicy::RoundRobin, ids(&["alex", "sam"]));
    opened(&store, &roster, "inc-1", Severity::Warning);
    let at = opened_at() + Duration::minutes(5);
    let outcome = store
        .apply_action(1, &Action::Acknowledge, "alex", &roster.ids(), at)
        .unwrap();
    let ActionOutcome::Applied(task) = outcome else {
        panic!("expected Applied, got {outcome:?}");
    };
    assert_eq!(task.status, TaskStatus::Acknowledged);

    let again = store
        .apply_action(1, &Action::Acknowledge, "alex", &roster.ids(), at)
        .unwrap();
    assert!(matches!(
        again,
        ActionOutcome::Rejected(ActionError::NotAllowed { .. })
    ));
    let missing = store
        .apply_action(9, &Action::Start, "alex", &roster.ids(), at)
        .unwrap();
    assert_eq!(missing, ActionOutcome::NotFound);

    let history = store.task(1).unwrap().unwrap().history;
    let last = history.last().unwrap();
    assert_eq!((last.actor.as_str(), last.at), ("alex", at));
    assert_eq!(history.len(), 3, "a rejected action leaves no history");
}

#[test]
fn least_loaded_counts_severity() {
    let (_dir, store) = open_temp();
    let roster = Roster::simple(AssignmentPolicy::LeastLoaded, ids(&["alex", "sam"]));
    assert_eq!(
        assignee(opened(&store, &roster, "inc-1", Severity::Critical)),
        "alex"
    );
    // alex carries 3, sam 0.
    assert_eq!(
        assignee(opened(&store, &roster, "inc-2", Severity::Warning)),
        "sam"
    );
    assert_eq!(
        assignee(opened(&store, &roster, "inc-3", Severity::Warning)),
        "sam"
    );
    // Now 3 against 2: sam again, until the loads are level.
    assert_eq!(
        assignee(opened(&store, &roster, "inc-4", Severity::Warning)),
        "sam"
    );
    store
        .apply_action(1, &Action::Complete, "alex", &roster.ids(), opened_at())
        .unwrap();
    // alex's critical task is done, so alex is idle.
    assert_eq!(
        assignee(opened(&store, &roster, "inc-5", Severity::Warning)),
        "alex"
    );
}

#[test]
fn unacknowledged_tasks_escalate() {
    let (_dir, store) = open_temp();
    let roster = Roster::simple(AssignmentPolicy::RoundRobin, ids(&["alex", "sam"]));
    opened(&store, &roster, "inc-1", Severity::Warning);
    opened(&store, &roster, "inc-2", Severity::Warning);
    store
        .apply_action(2, &Action::Acknowledge, "sam", &roster.ids(), opened_at())
        .unwrap();

    let after = Duration::minutes(10);
    let early = store
        .escalate(&roster, after, opened_at() + Duration::minutes(9))
        .unwrap();
    assert!(early.is_empty());
    let now = opened_at() + Duration::minutes(11);
    let escalated = store.escalate(&roster, after, now).unwrap();
    assert_eq!(
        escalated,
        [Escalation {
            task_id: 1,
            from: "alex".into(),
            to: "sam".into()
        }]
    );
    let detail = store.task(1).unwrap().unwrap();
    assert_eq!(detail.task.assignee, "sam");
    assert_eq!(detail.task.assigned_at, now);
    let last = detail.history.last().unwrap();
    assert_eq!(last.actor, "scheduler");
    assert!(
        last.change
            .starts_with("escalated from alex to sam: not acknowledged within 600 s"),
        "{}",
        last.change
    );
    assert!(
        store.escalate(&roster, after, now).unwrap().is_empty(),
        "clock restarted"
    );
    let listed = store.list_tasks(&TaskQuery::default()).unwrap();
    assert_eq!(listed.len(), 2);
}

#[test]
fn single_technician_escalation_notes_once() {
    let (_dir, store) = open_temp();
    let roster = Roster::simple(AssignmentPolicy::RoundRobin, ids(&["alex"]));
    opened(&store, &roster, "inc-1", Severity::Warning);
    let now = opened_at() + Duration::minutes(11);
    let escalated = store.escalate(&roster, Duration::minutes(10), now).unwrap();
    assert!(escalated.is_empty());
    let detail = store.task(1).unwrap().unwrap();
    assert_eq!(detail.task.assignee, "alex");
    let last = detail.history.last().unwrap();
    assert_eq!(
        last.change,
        "not acknowledged within 600 s; no other technician to escalate to"
    );
    store.escalate(&roster, Duration::minutes(10), now).unwrap();
    assert_eq!(
        store.task(1).unwrap().unwrap().history.len(),
        detail.history.len()
    );
}

#[test]
fn counts_follow_every_change() {
    let (_dir, store) = open_temp();
    let roster = Roster::simple(AssignmentPolicy::RoundRobin, ids(&["alex", "sam"]));
    for incident in ["inc-1", "inc-2", "inc-3"] {
        opened(&store, &roster, incident, Severity::Warning);
    }
    let resolved = Delivery {
        webhook_id: "msg_resolved".into(),
        received_at: opened_at(),
        body: DeliveryBody::Incident(Box::new(incident_event(
            EventType::IncidentResolved,
            "inc-2",
            2,
        ))),
    };
    store.record_delivery(&resolved, &roster, true).unwrap();
    let now = opened_at();
    store
        .apply_action(1, &Action::Start, "alex", &roster.ids(), now)
        .unwrap();
    store
        .apply_action(3, &Action::Complete, "alex", &roster.ids(), now)
        .unwrap();

    let counts = store.count_tasks().unwrap();
    assert_eq!(counts.total, 3);
    assert_eq!(counts.open, 1);
    assert_eq!(counts.in_progress, 1);
    assert_eq!(counts.completed, 1);
    assert_eq!(
        counts.active, 1,
        "inc-1 is active; inc-2 is cleared, inc-3 done"
    );
    let by_status = |status: TaskStatus| TaskQuery {
        status: Some(status),
        ..TaskQuery::default()
    };
    for status in TaskStatus::ALL {
        let matching = store.count_matching(&by_status(status)).unwrap();
        assert_eq!(matching, counts.by_status(status), "{status}");
    }
}

#[test]
fn batch_stores_each_delivery_once() {
    let (_dir, store) = open_temp();
    let roster = Roster::simple(AssignmentPolicy::RoundRobin, ids(&["alex", "sam"]));
    let delivery = |webhook_id: &str, incident: &str| Delivery {
        webhook_id: webhook_id.into(),
        received_at: opened_at(),
        body: DeliveryBody::Incident(Box::new(incident_event(
            EventType::IncidentOpened,
            incident,
            1,
        ))),
    };
    let batch = [
        delivery("msg_1", "inc-1"),
        delivery("msg_2", "inc-2"),
        delivery("msg_1", "inc-1"),
    ];
    let outcomes = store.record_deliveries(&batch, &roster, true).unwrap();
    let names: Vec<&str> = outcomes
        .iter()
        .map(|outcome| outcome.as_ref().unwrap().as_str())
        .collect();
    assert_eq!(names, ["created", "created", "duplicate"]);
    assert_eq!(store.count_tasks().unwrap().total, 2);
}
