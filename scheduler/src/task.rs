//! Maintenance tasks and how incident events change them.
//!
//! [`plan_change`] is the pure core: given an incident event and the stored
//! state of its task (if any), it decides whether to create the task, update
//! it, or ignore a stale event. The store applies the decision in one
//! transaction.

use std::fmt;

use chrono::{DateTime, Utc};
use floorwatch_protocol::{Condition, EventType, IncidentData, Severity};
use serde::Serialize;

use crate::display::format_reading;

/// Actor recorded in the history for changes made by incident events.
pub const ACTOR_BRIDGE: &str = "bridge";

/// Actor recorded in the history for escalations.
pub const ACTOR_SCHEDULER: &str = "scheduler";

/// Lifecycle state of a task: `open → acknowledged → in_progress →
/// completed`. The technician actions in [`crate::lifecycle`] move a task
/// along; `incident.resolved` completes it when so configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Waiting for a technician.
    Open,
    /// A technician has seen the task and owns it.
    Acknowledged,
    /// A technician is working on it.
    InProgress,
    /// Finished; no further work expected.
    Completed,
}

impl TaskStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [TaskStatus; 4] = [
        TaskStatus::Open,
        TaskStatus::Acknowledged,
        TaskStatus::InProgress,
        TaskStatus::Completed,
    ];

    /// Returns the wire and database name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Open => "open",
            TaskStatus::Acknowledged => "acknowledged",
            TaskStatus::InProgress => "in_progress",
            TaskStatus::Completed => "completed",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == name)
    }

    /// Returns true until the task is completed.
    pub fn is_active(self) -> bool {
        self != TaskStatus::Completed
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A maintenance task (work order) for one incident.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Task {
    /// Database id of the task.
    pub id: i64,
    /// The incident this task is for; unique among tasks.
    pub incident_id: String,
    pub site: String,
    pub sensor: String,
    pub metric: String,
    pub rule: String,
    /// The reading of the latest applied event.
    pub value: f64,
    pub threshold: f64,
    /// Unit of `value` and `threshold`, as sent by the bridge (untrusted).
    pub unit: String,
    pub severity: Severity,
    /// `above` or `below`: which side of `threshold` is abnormal.
    pub condition: Condition,
    /// Value the reading must return past for the incident to resolve.
    pub clear_threshold: Option<f64>,
    pub status: TaskStatus,
    /// True once `incident.resolved` has been applied.
    pub condition_cleared: bool,
    /// Technician id.
    pub assignee: String,
    /// When the current assignee got the task; escalation counts from here.
    pub assigned_at: DateTime<Utc>,
    /// When the incident opened.
    pub opened_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    /// `seq` of the latest applied event; older events are ignored.
    pub last_event_seq: u64,
}

/// One line of a task's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEntry {
    pub at: DateTime<Utc>,
    /// `bridge` for incident events, otherwise a technician id.
    pub actor: String,
    /// Description of the change, in words.
    pub change: String,
}

/// The stored state of a task that [`plan_change`] needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TaskState {
    /// Database id of the task.
    pub id: i64,
    pub status: TaskStatus,
    pub condition_cleared: bool,
    pub resolved_at: Option<DateTime<Utc>>,
    pub last_event_seq: u64,
    /// The reading that opened or last escalated the incident.
    pub value: f64,
}

/// The mutable fields of a task after an event is applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Effect {
    pub status: TaskStatus,
    pub condition_cleared: bool,
    pub resolved_at: Option<DateTime<Utc>>,
    pub value: f64,
    pub severity: Severity,
    pub last_event_seq: u64,
    /// History text describing the change.
    pub change: String,
}

/// The decision of [`plan_change`] for one incident event.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// No task exists yet: create one from the event data with this effect.
    Create(Effect),
    /// Update the existing task `task_id`.
    Update { task_id: i64, effect: Effect },
    /// Task `task_id` already reflects an event with this `seq` or a later
    /// one.
    Stale { task_id: i64, last_event_seq: u64 },
}

/// Decides what `event_type` with `data` does to the task in `current`.
///
/// Events are ordered by `data.seq`: an event whose `seq` is not above the
/// task's `last_event_seq` is stale. Any incident event creates the missing
/// task, so a `resolved` arriving before `opened` yields a cleared task.
/// `timestamp` is the event time, used when `data.resolved_at` is absent.
pub fn plan_change(
    event_type: EventType,
    data: &IncidentData,
    timestamp: DateTime<Utc>,
    current: Option<&TaskState>,
    keep_open_on_resolve: bool,
) -> Change {
    if let Some(state) = current {
        if data.seq <= state.last_event_seq {
            return Change::Stale {
                task_id: state.id,
                last_event_seq: state.last_event_seq,
            };
        }
    }

    let mut effect = Effect {
        status: current.map_or(TaskStatus::Open, |state| state.status),
        condition_cleared: current.is_some_and(|state| state.condition_cleared),
        resolved_at: current.and_then(|state| state.resolved_at),
        value: data.value,
        severity: data.severity,
        last_event_seq: data.seq,
        change: describe(event_type, data),
    };
    if event_type == EventType::IncidentResolved {
        // The task keeps the reading that made it, not the one that cleared
        // it: a cold-room task should not show the recovered temperature.
        if let Some(state) = current {
            effect.value = state.value;
        }
        effect.condition_cleared = true;
        effect.resolved_at = Some(data.resolved_at.unwrap_or(timestamp));
        if !keep_open_on_resolve {
            effect.status = TaskStatus::Completed;
        }
    }

    match current {
        None => Change::Create(effect),
        Some(state) => Change::Update {
            task_id: state.id,
            effect,
        },
    }
}

/// Returns the history text for one applied event.
fn describe(event_type: EventType, data: &IncidentData) -> String {
    let reading = format!(
        "{} {} (threshold {}), severity {}",
        data.metric,
        format_reading(data.value, &data.unit),
        format_reading(data.threshold, &data.unit),
        data.severity.as_str()
    );
    match event_type {
        EventType::IncidentResolved => {
            format!(
                "{event_type} seq {}: condition cleared, {reading}",
                data.seq
            )
        }
        _ => format!("{event_type} seq {}: {reading}", data.seq),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::test_support::incident_event;

    fn data(seq: u64, value: f64, severity: Severity) -> IncidentData {
        let mut data = incident_event(EventType::IncidentOpened, "inc-1", seq).data;
        data.value = value;
        data.severity = severity;
        data
    }

    fn state(seq: u64) -> TaskState {
        TaskState {
            id: 9,
            status: TaskStatus::Open,
            condition_cleared: false,
            resolved_at: None,
            last_event_seq: seq,
            value: 31.5,
        }
    }

    fn effect(change: Change) -> Effect {
        match change {
            Change::Create(effect) | Change::Update { effect, .. } => effect,
            Change::Stale { .. } => panic!("unexpected stale change"),
        }
    }

    #[test]
    fn opened_creates_open_task() {
        let event = data(1, 31.5, Severity::Warning);
        let change = plan_change(EventType::IncidentOpened, &event, Utc::now(), None, true);
        let Change::Create(effect) = change else {
            panic!("expected Create, got {change:?}");
        };
        assert_eq!(effect.status, TaskStatus::Open);
        assert!(!effect.condition_cleared);
        assert_eq!(effect.value, 31.5);
        assert_eq!(effect.last_event_seq, 1);
        assert!(effect.change.contains("31.5 °C"), "{}", effect.change);
    }

    #[test]
    fn updated_changes_value_and_severity() {
        let event = data(2, 35.0, Severity::Critical);
        let change = plan_change(
            EventType::IncidentUpdated,
            &event,
            Utc::now(),
            Some(&state(1)),
            true,
        );
        let Change::Update { task_id: 9, effect } = change else {
            panic!("expected Update, got {change:?}");
        };
        assert_eq!(effect.value, 35.0);
        assert_eq!(effect.severity, Severity::Critical);
        assert_eq!(effect.last_event_seq, 2);
    }

    #[test]
    fn resolved_clears_and_keeps_open() {
        let mut event = data(3, 28.0, Severity::Warning);
        let resolved = Utc.with_ymd_and_hms(2024, 5, 1, 13, 0, 0).unwrap();
        event.resolved_at = Some(resolved);
        let change = plan_change(
            EventType::IncidentResolved,
            &event,
            Utc::now(),
            Some(&state(2)),
            true,
        );
        let effect = effect(change);
        assert!(effect.condition_cleared);
        assert_eq!(effect.resolved_at, Some(resolved));
        assert_eq!(effect.status, TaskStatus::Open);
        assert_eq!(effect.value, 31.5, "keeps the reading that opened the task");
    }

    #[test]
    fn resolved_completes_when_configured() {
        let event = data(3, 28.0, Severity::Warning);
        let at = Utc.with_ymd_and_hms(2024, 5, 2, 0, 0, 0).unwrap();
        let change = plan_change(
            EventType::IncidentResolved,
            &event,
            at,
            Some(&state(2)),
            false,
        );
        let effect = effect(change);
        assert_eq!(effect.status, TaskStatus::Completed);
        assert_eq!(effect.resolved_at, Some(at), "falls back to the event time");
    }

    #[test]
    fn stale_and_repeated_seq_are_ignored() {
        for seq in [1, 2] {
            let event = data(seq, 31.0, Severity::Warning);
            let change = plan_change(
                EventType::IncidentOpened,
                &event,
                Utc::now(),
                Some(&state(2)),
                true,
            );
            let expected = Change::Stale {
                task_id: 9,
                last_event_seq: 2,
            };
            assert_eq!(change, expected);
        }
    }

    #[test]
    fn resolved_before_opened_creates_cleared_task() {
        let event = data(3, 28.0, Severity::Warning);
        let first = plan_change(EventType::IncidentResolved, &event, Utc::now(), None, true);
        let Change::Create(created) = first else {
            panic!("expected Create, got {first:?}");
        };
        assert!(created.condition_cleared);
        let stored = TaskState {
            id: 4,
            status: created.status,
            condition_cleared: created.condition_cleared,
            resolved_at: created.resolved_at,
            last_event_seq: created.last_event_seq,
            value: created.value,
        };
        let late = data(1, 31.0, Severity::Warning);
        let second = plan_change(
            EventType::IncidentOpened,
            &late,
            Utc::now(),
            Some(&stored),
            true,
        );
        let expected = Change::Stale {
            task_id: 4,
            last_event_seq: 3,
        };
        assert_eq!(second, expected);
    }

    #[test]
    fn status_names_round_trip() {
        for status in TaskStatus::ALL {
            assert_eq!(TaskStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(TaskStatus::parse("done"), None);
    }
}
