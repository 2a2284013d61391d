//! The incidents a run expects, the tasks the scheduler reports, and how
//! the two are matched into end-to-end latencies and a lost count.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::percentile::Distribution;

/// An incident that a published reading should have opened.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedIncident {
    pub sensor: String,
    /// `time` of the opening reading, which is also when it was published.
    pub opened_at: DateTime<Utc>,
    /// True once the reading that should resolve the incident was published.
    pub resolve_published: bool,
}

/// The fields of a scheduler task that loadgen reads; the others are
/// ignored.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TaskView {
    pub id: i64,
    pub site: String,
    pub sensor: String,
    /// Sensor time of the reading that opened the incident.
    pub opened_at: DateTime<Utc>,
    /// When the current assignee got the task. Without an escalation or a
    /// reassignment this is when the scheduler received the webhook that
    /// created the task.
    #[serde(default)]
    pub assigned_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub resolved_at: Option<DateTime<Utc>>,
}

/// A task and when loadgen first saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeenTask {
    pub task: TaskView,
    pub observed_at: DateTime<Utc>,
}

/// Result of matching expected incidents with tasks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentReport {
    /// Incidents whose opening reading was published.
    pub expected: usize,
    /// Expected incidents that have a task.
    pub observed: usize,
    /// Expected incidents without a task at the end of the grace period.
    pub lost: usize,
    /// Expected incidents whose resolving reading was published.
    pub resolve_expected: usize,
    /// Of those, tasks the scheduler shows as resolved.
    pub resolved: usize,
    /// Tasks of the run's site, opened during the run, that match no
    /// expected incident.
    pub unexpected: usize,
    /// From publishing the opening reading to the scheduler receiving the
    /// webhook that created the task (the task's `assigned_at`), in ms.
    pub latency_created_ms: Option<Distribution>,
    /// From publishing the opening reading to loadgen first seeing the task
    /// through the API, in ms.
    pub latency_observed_ms: Option<Distribution>,
}

/// Matches `expected` incidents with `tasks` by sensor and opening time.
/// The scheduler stores times in microseconds, and loadgen publishes times
/// rounded to microseconds, so the match is exact.
pub fn match_tasks(expected: &[ExpectedIncident], tasks: &[SeenTask]) -> IncidentReport {
    let mut by_key: HashMap<(&str, DateTime<Utc>), &SeenTask> = tasks
        .iter()
        .map(|seen| ((seen.task.sensor.as_str(), seen.task.opened_at), seen))
        .collect();
    let mut created = Vec::new();
    let mut observed = Vec::new();
    let mut found = 0;
    let mut resolved = 0;
    for incident in expected {
        let Some(seen) = by_key.remove(&(incident.sensor.as_str(), incident.opened_at)) else {
            continue;
        };
        found += 1;
        if incident.resolve_published && seen.task.resolved_at.is_some() {
            resolved += 1;
        }
        if let Some(assigned_at) = seen.task.assigned_at {
            created.push(millis(assigned_at - incident.opened_at));
        }
        observed.push(millis(seen.observed_at - incident.opened_at));
    }
    IncidentReport {
        expected: expected.len(),
        observed: found,
        lost: expected.len() - found,
        resolve_expected: expected.iter().filter(|i| i.resolve_published).count(),
        resolved,
        unexpected: by_key.len(),
        latency_created_ms: Distribution::of(&created),
        latency_observed_ms: Distribution::of(&observed),
    }
}

/// Returns true when every expected incident has a task, resolved when
/// its resolving reading was published.
pub fn all_arrived(expected: &[ExpectedIncident], tasks: &HashMap<i64, SeenTask>) -> bool {
    let by_key: HashMap<(&str, DateTime<Utc>), &TaskView> = tasks
        .values()
        .map(|seen| ((seen.task.sensor.as_str(), seen.task.opened_at), &seen.task))
        .collect();
    expected.iter().all(|incident| {
        by_key
            .get(&(incident.sensor.as_str(), incident.opened_at))
            .is_some_and(|task| !incident.resolve_published || task.resolved_at.is_some())
    })
}

fn millis(delta: chrono::TimeDelta) -> f64 {
    delta
        .num_microseconds()
        .map_or(f64::INFINITY, |us| us as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(millis: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_796_000_000_000 + millis).unwrap()
    }

    fn expected(sensor: &str, opened: i64, resolve_published: bool) -> ExpectedIncident {
        ExpectedIncident {
            sensor: sensor.into(),
            opened_at: at(opened),
            resolve_published,
        }
    }

    fn seen(id: i64, sensor: &str, opened: i64, assigned: i64, observed: i64) -> SeenTask {
        SeenTask {
            task: TaskView {
                id,
                site: "loadgen".into(),
                sensor: sensor.into(),
                opened_at: at(opened),
                assigned_at: Some(at(assigned)),
                resolved_at: None,
            },
            observed_at: at(observed),
        }
    }

    #[test]
    fn matched_tasks_give_latencies() {
        let expected = [expected("lg-1", 0, false), expected("lg-2", 100, false)];
        let tasks = [seen(1, "lg-1", 0, 4, 20), seen(2, "lg-2", 100, 106, 130)];
        let report = match_tasks(&expected, &tasks);
        assert_eq!(report.expected, 2);
        assert_eq!(report.observed, 2);
        assert_eq!(report.lost, 0);
        assert_eq!(report.unexpected, 0);
        let created = report.latency_created_ms.unwrap();
        assert_eq!(created.p50, 4.0);
        assert_eq!(created.max, 6.0);
        assert_eq!(report.latency_observed_ms.unwrap().max, 30.0);
    }

    #[test]
    fn missing_task_is_lost() {
        let expected = [expected("lg-1", 0, false), expected("lg-1", 500, false)];
        let report = match_tasks(&expected, &[seen(1, "lg-1", 500, 503, 510)]);
        assert_eq!(report.observed, 1);
        assert_eq!(report.lost, 1);
        assert_eq!(report.latency_created_ms.unwrap().count, 1);
    }

    #[test]
    fn task_of_another_reading_is_unexpected() {
        let expected = [expected("lg-1", 0, false)];
        let report = match_tasks(&expected, &[seen(1, "lg-1", 1, 5, 9)]);
        assert_eq!(report.lost, 1);
        assert_eq!(report.unexpected, 1);
        assert_eq!(report.latency_created_ms, None);
    }

    #[test]
    fn resolution_counts_only_when_expected() {
        let expected = [expected("lg-1", 0, true), expected("lg-2", 0, true)];
        let mut resolved = seen(1, "lg-1", 0, 3, 9);
        resolved.task.resolved_at = Some(at(50));
        let tasks = [resolved, seen(2, "lg-2", 0, 3, 9)];
        let report = match_tasks(&expected, &tasks);
        assert_eq!(report.resolve_expected, 2);
        assert_eq!(report.resolved, 1);
        let map: HashMap<i64, SeenTask> = tasks.iter().map(|t| (t.task.id, t.clone())).collect();
        assert!(!all_arrived(&expected, &map));
        assert!(all_arrived(&expected[..1], &map));
    }

    #[test]
    fn task_without_assigned_at_has_only_observed_latency() {
        let mut task = seen(1, "lg-1", 0, 0, 12);
        task.task.assigned_at = None;
        let report = match_tasks(&[expected("lg-1", 0, false)], &[task]);
        assert_eq!(report.latency_created_ms, None);
        assert_eq!(report.latency_observed_ms.unwrap().p50, 12.0);
    }

    #[test]
    fn task_json_of_the_api_parses() {
        let json = r#"{"id":3,"incident_id":"01J","site":"loadgen","sensor":"lg-0001",
            "metric":"temperature","opened_at":"2026-12-04T10:00:00.123456Z",
            "assigned_at":"2026-12-04T10:00:00.130001Z","resolved_at":null,"status":"open"}"#;
        let task: TaskView = serde_json::from_str(json).unwrap();
        assert_eq!(task.id, 3);
        assert_eq!(task.opened_at.timestamp_subsec_micros(), 123_456);
        assert_eq!(task.resolved_at, None);
        let latency = task.assigned_at.unwrap() - task.opened_at;
        assert_eq!(latency.num_microseconds(), Some(6545));
    }
}
