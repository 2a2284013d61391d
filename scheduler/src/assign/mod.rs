//! Technician assignment: which technician a new or escalated task goes to.
//!
//! [`Roster::choose`] is a pure function of the roster, the task's site and
//! metric, the time, each technician's open work, a persisted rotation
//! cursor and a random number generator, so every policy is tested without
//! a store.

mod roster;
mod rota;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use floorwatch_protocol::{Id, Severity};
use rand::Rng;
use serde::{Deserialize, Serialize};

pub use roster::{parse_roster, RosterError, ShiftConfig, TechnicianConfig, TechnicianDetail};
pub use rota::Shift;

/// Policy that picks the technician of a new task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssignmentPolicy {
    /// Each new task goes to the next technician of the roster in turn. The
    /// cursor is stored with the tasks, so a restart continues the rotation.
    #[default]
    RoundRobin,
    /// The technician with the least open work, weighted by severity
    /// ([`severity_weight`]); ties go round robin.
    LeastLoaded,
    /// Round robin among the technicians whose rota covers the current
    /// time; the whole roster when nobody is on shift.
    OnShift,
    /// A technician picked uniformly at random.
    Random,
}

impl AssignmentPolicy {
    /// Returns the policy name used in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            AssignmentPolicy::RoundRobin => "round_robin",
            AssignmentPolicy::LeastLoaded => "least_loaded",
            AssignmentPolicy::OnShift => "on_shift",
            AssignmentPolicy::Random => "random",
        }
    }
}

/// Weight of one active task in the least-loaded policy: critical 3,
/// warning 1.
pub fn severity_weight(severity: Severity) -> u64 {
    match severity {
        Severity::Critical => 3,
        Severity::Warning => 1,
    }
}

/// A technician and the tasks they may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Technician {
    pub id: Id,
    /// Sites this technician covers; every site when empty.
    pub sites: Vec<Id>,
    /// Metrics this technician is qualified for, such as `temperature`;
    /// every metric when empty.
    pub skills: Vec<Id>,
}

impl Technician {
    /// Creates a technician who covers every site and metric.
    pub fn anywhere(id: Id) -> Self {
        Self {
            id,
            sites: Vec::new(),
            skills: Vec::new(),
        }
    }

    fn matches(&self, site: &str, metric: &str) -> bool {
        let site_ok = self.sites.is_empty() || self.sites.iter().any(|s| s.as_str() == site);
        let skill_ok = self.skills.is_empty() || self.skills.iter().any(|s| s.as_str() == metric);
        site_ok && skill_ok
    }
}

/// The technicians, their rota and the policy that assigns tasks to them.
#[derive(Debug, Clone)]
pub struct Roster {
    /// Policy that picks the technician of a new task.
    pub policy: AssignmentPolicy,
    /// Technicians in configuration order; never empty after validation.
    pub technicians: Vec<Technician>,
    /// Shifts, used by [`AssignmentPolicy::OnShift`].
    pub rota: Vec<Shift>,
}

/// The task and the moment that [`Roster::choose`] assigns for.
#[derive(Debug, Clone)]
pub struct AssignRequest<'a> {
    pub site: &'a str,
    pub metric: &'a str,
    pub now: DateTime<Utc>,
    /// The cursor stored by the previous assignment (0 at first).
    pub cursor: u64,
    /// Weighted active work per technician id; absent means none.
    pub load: &'a HashMap<String, u64>,
    /// A technician who must not be chosen, such as the one an escalation
    /// takes the task from.
    pub exclude: Option<&'a str>,
}

/// The result of one assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The chosen technician.
    pub technician: Id,
    /// The rotation cursor to store for the next assignment.
    pub next_cursor: u64,
    /// The policy and any fallback used, for the task history.
    pub reason: String,
}

impl Roster {
    /// Creates a roster of technicians who cover every site and metric,
    /// with no rota.
    pub fn simple(policy: AssignmentPolicy, ids: Vec<Id>) -> Self {
        Self {
            policy,
            technicians: ids.into_iter().map(Technician::anywhere).collect(),
            rota: Vec::new(),
        }
    }

    /// Returns the technician ids in roster order.
    pub fn ids(&self) -> Vec<Id> {
        self.technicians.iter().map(|t| t.id.clone()).collect()
    }

    /// Chooses a technician for `request`, or returns `None` when no
    /// technician other than `request.exclude` exists.
    ///
    /// Site and skill lists filter the candidates first; when nobody
    /// matches, every technician is a candidate and the reason says so.
    pub fn choose<R: Rng + ?Sized>(
        &self,
        request: &AssignRequest<'_>,
        rng: &mut R,
    ) -> Option<Assignment> {
        let (candidates, notes) = self.candidates(request)?;
        let len = self.technicians.len() as u64;
        let index = match self.policy {
            AssignmentPolicy::RoundRobin | AssignmentPolicy::OnShift => {
                next_in_rotation(&candidates, request.cursor % len, len)
            }
            AssignmentPolicy::LeastLoaded => self.least_loaded(&candidates, request),
            AssignmentPolicy::Random => candidates[rng.gen_range(0..candidates.len())],
        };
        let next_cursor = match self.policy {
            AssignmentPolicy::Random => request.cursor,
            _ => (index as u64 + 1) % len,
        };
        let mut reason = self.policy.as_str().to_owned();
        if !notes.is_empty() {
            reason = format!("{reason}; {}", notes.join("; "));
        }
        Some(Assignment {
            technician: self.technicians[index].id.clone(),
            next_cursor,
            reason,
        })
    }

    /// Returns the roster indices that may take the task, with notes on
    /// the filters that matched nobody, or `None` when only
    /// `request.exclude` is on the roster.
    fn candidates(&self, request: &AssignRequest<'_>) -> Option<(Vec<usize>, Vec<&'static str>)> {
        let allowed: Vec<usize> = (0..self.technicians.len())
            .filter(|&i| Some(self.technicians[i].id.as_str()) != request.exclude)
            .collect();
        if allowed.is_empty() {
            return None;
        }
        let mut notes = Vec::new();
        let mut candidates: Vec<usize> = allowed
            .iter()
            .copied()
            .filter(|&i| self.technicians[i].matches(request.site, request.metric))
            .collect();
        if candidates.is_empty() {
            notes.push("no technician covers this site and metric");
            candidates = allowed;
        }
        if self.policy == AssignmentPolicy::OnShift {
            let on_shift: Vec<usize> = candidates
                .iter()
                .copied()
                .filter(|&i| self.is_on_shift(&self.technicians[i].id, request.now))
                .collect();
            if on_shift.is_empty() {
                notes.push("nobody on shift");
            } else {
                candidates = on_shift;
            }
        }
        Some((candidates, notes))
    }

    /// Returns true when a shift of `technician` covers `now`.
    pub fn is_on_shift(&self, technician: &Id, now: DateTime<Utc>) -> bool {
        self.rota
            .iter()
            .any(|shift| &shift.technician == technician && shift.covers(now))
    }

    fn least_loaded(&self, candidates: &[usize], request: &AssignRequest<'_>) -> usize {
        let load_of = |i: usize| {
            let id = self.technicians[i].id.as_str();
            request.load.get(id).copied().unwrap_or(0)
        };
        let lightest = candidates.iter().map(|&i| load_of(i)).min().unwrap_or(0);
        let lightest: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&i| load_of(i) == lightest)
            .collect();
        let len = self.technicians.len() as u64;
        next_in_rotation(&lightest, request.cursor % len, len)
    }
}

/// Returns the first of `candidates` (roster indices, ascending, not empty)
/// at or after `start`, wrapping around a roster of `len`.
fn next_in_rotation(candidates: &[usize], start: u64, len: u64) -> usize {
    (0..len)
        .map(|step| ((start + step) % len) as usize)
        .find(|index| candidates.contains(index))
        .unwrap_or(candidates[0])
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
