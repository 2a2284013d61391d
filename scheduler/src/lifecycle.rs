//! Technician actions on a task and the status changes they make.
//!
//! [`plan_action`] is pure: it checks an action against the task's status
//! and the roster and returns the new status and assignee, which the store
//! writes together with a history entry in one transaction.

use floorwatch_protocol::Id;
use serde::Serialize;

use crate::task::TaskStatus;

/// An action a signed-in user or an API client performs on a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `open → acknowledged`: the assignee has seen the task.
    Acknowledge,
    /// `open | acknowledged → in_progress`: work has started.
    Start,
    /// Gives the task to another roster technician; the status is kept.
    Reassign { assignee: Id },
    /// Any active status `→ completed`.
    Complete,
}

impl Action {
    /// Returns the action name used in routes and history.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Acknowledge => "acknowledge",
            Action::Start => "start",
            Action::Reassign { .. } => "reassign",
            Action::Complete => "complete",
        }
    }
}

/// The change an allowed action makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionEffect {
    pub status: TaskStatus,
    /// The new assignee, when the action changes it.
    pub assignee: Option<String>,
    /// History text describing the change.
    pub change: String,
}

/// The reason an action was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub enum ActionError {
    #[error("cannot {action} a task that is {status}")]
    NotAllowed {
        action: &'static str,
        status: TaskStatus,
    },
    #[error("{name:?} is not a technician of the roster")]
    UnknownTechnician { name: String },
    #[error("the task is already assigned to {name}")]
    SameAssignee { name: String },
}

/// Checks `action` against a task in `status` assigned to `assignee` and
/// returns its effect. A reassignment must name another member of
/// `roster`.
pub fn plan_action(
    action: &Action,
    status: TaskStatus,
    assignee: &str,
    roster: &[Id],
) -> Result<ActionEffect, ActionError> {
    let not_allowed = || ActionError::NotAllowed {
        action: action.name(),
        status,
    };
    let moved = |to: TaskStatus| ActionEffect {
        status: to,
        assignee: None,
        change: format!("status {} → {}", status.as_str(), to.as_str()),
    };
    match action {
        Action::Acknowledge if status == TaskStatus::Open => Ok(moved(TaskStatus::Acknowledged)),
        Action::Start if matches!(status, TaskStatus::Open | TaskStatus::Acknowledged) => {
            Ok(moved(TaskStatus::InProgress))
        }
        Action::Complete if status.is_active() => Ok(moved(TaskStatus::Completed)),
        Action::Reassign { assignee: to } if status.is_active() => {
            if !roster.contains(to) {
                return Err(ActionError::UnknownTechnician {
                    name: to.to_string(),
                });
            }
            if to.as_str() == assignee {
                return Err(ActionError::SameAssignee {
                    name: to.to_string(),
                });
            }
            Ok(ActionEffect {
                status,
                assignee: Some(to.to_string()),
                change: format!("reassigned from {assignee} to {to}"),
            })
        }
        _ => Err(not_allowed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roster() -> Vec<Id> {
        ["alex", "sam"]
            .map(|name| Id::parse(name).unwrap())
            .to_vec()
    }

    fn id(name: &str) -> Id {
        Id::parse(name).unwrap()
    }

    #[test]
    fn lifecycle_moves_forward() {
        let steps = [
            (
                Action::Acknowledge,
                TaskStatus::Open,
                TaskStatus::Acknowledged,
            ),
            (
                Action::Start,
                TaskStatus::Acknowledged,
                TaskStatus::InProgress,
            ),
            (Action::Start, TaskStatus::Open, TaskStatus::InProgress),
            (
                Action::Complete,
                TaskStatus::InProgress,
                TaskStatus::Completed,
            ),
            (Action::Complete, TaskStatus::Open, TaskStatus::Completed),
        ];
        for (action, from, to) in steps {
            let effect = plan_action(&action, from, "alex", &roster()).unwrap();
            assert_eq!(effect.status, to, "{action:?} from {from}");
            assert_eq!(effect.assignee, None);
            let expected = format!("status {from} → {to}");
            assert_eq!(effect.change, expected);
        }
    }

    #[test]
    fn backward_and_repeated_steps_are_rejected() {
        let rejected = [
            (Action::Acknowledge, TaskStatus::Acknowledged),
            (Action::Acknowledge, TaskStatus::InProgress),
            (Action::Start, TaskStatus::InProgress),
            (Action::Complete, TaskStatus::Completed),
            (
                Action::Reassign {
                    assignee: id("sam"),
                },
                TaskStatus::Completed,
            ),
        ];
        for (action, from) in rejected {
            let error = plan_action(&action, from, "alex", &roster()).unwrap_err();
            assert!(
                matches!(error, ActionError::NotAllowed { status, .. } if status == from),
                "{action:?} from {from}: {error}"
            );
        }
    }

    #[test]
    fn reassign_checks_the_roster() {
        let to_sam = Action::Reassign {
            assignee: id("sam"),
        };
        let effect = plan_action(&to_sam, TaskStatus::InProgress, "alex", &roster()).unwrap();
        assert_eq!(effect.status, TaskStatus::InProgress);
        assert_eq!(effect.assignee.as_deref(), Some("sam"));
        assert_eq!(effect.change, "reassigned from alex to sam");

        let error = plan_action(&to_sam, TaskStatus::Open, "sam", &roster()).unwrap_err();
        assert!(matches!(error, ActionError::SameAssignee { .. }));

        let to_kim = Action::Reassign {
            assignee: id("kim"),
        };
        let error = plan_action(&to_kim, TaskStatus::Open, "alex", &roster()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "\"kim\" is not a technician of the roster"
        );
    }
}
