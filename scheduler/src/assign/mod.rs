//! Technician assignment: which technician a new task goes to.
//!
//! The policies are pure functions of the roster, a persisted rotation
//! cursor and a random number generator, so they are tested without a store.

use floorwatch_protocol::Id;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Policy that picks the technician of a new task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssignmentPolicy {
    /// Each new task goes to the next technician of the roster in turn. The
    /// cursor is stored with the tasks, so a restart continues the rotation.
    #[default]
    RoundRobin,
    /// Each new task goes to a technician picked uniformly at random.
    Random,
}

/// The result of one assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The chosen technician.
    pub technician: Id,
    /// The rotation cursor to store for the next assignment.
    pub next_cursor: u64,
}

impl AssignmentPolicy {
    /// Returns the policy name used in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            AssignmentPolicy::RoundRobin => "round_robin",
            AssignmentPolicy::Random => "random",
        }
    }

    /// Chooses a technician from `roster`, or returns `None` when the roster
    /// is empty. `cursor` is the value stored by the previous assignment
    /// (0 at first).
    pub fn choose<R: Rng + ?Sized>(
        self,
        roster: &[Id],
        cursor: u64,
        rng: &mut R,
    ) -> Option<Assignment> {
        if roster.is_empty() {
            return None;
        }
        let len = roster.len() as u64;
        let (index, next_cursor) = match self {
            AssignmentPolicy::RoundRobin => (cursor % len, cursor.wrapping_add(1) % len),
            AssignmentPolicy::Random => (rng.gen_range(0..len), cursor),
        };
        // `index < len`, and `len` came from a `usize`, so the cast is lossless.
        let technician = roster[index as usize].clone();
        Some(Assignment {
            technician,
            next_cursor,
        })
    }
}

/// The technicians and the policy that assigns tasks to them.
#[derive(Debug, Clone)]
pub struct Roster {
    /// Policy that picks the technician of a new task.
    pub policy: AssignmentPolicy,
    /// Technicians in configuration order; never empty after validation.
    pub technicians: Vec<Id>,
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    fn roster(names: &[&str]) -> Vec<Id> {
        names.iter().map(|name| Id::parse(name).unwrap()).collect()
    }

    fn run(policy: AssignmentPolicy, roster: &[Id], start: u64, count: usize) -> Vec<String> {
        let mut rng = StdRng::seed_from_u64(7);
        let mut cursor = start;
        let mut chosen = Vec::new();
        for _ in 0..count {
            let assignment = policy.choose(roster, cursor, &mut rng).unwrap();
            cursor = assignment.next_cursor;
            chosen.push(assignment.technician.to_string());
        }
        chosen
    }

    #[test]
    fn round_robin_alternates() {
        let two = roster(&["alex", "sam"]);
        let chosen = run(AssignmentPolicy::RoundRobin, &two, 0, 5);
        assert_eq!(chosen, ["alex", "sam", "alex", "sam", "alex"]);
    }

    #[test]
    fn round_robin_continues_from_cursor() {
        let three = roster(&["a", "b", "c"]);
        assert_eq!(
            run(AssignmentPolicy::RoundRobin, &three, 2, 3),
            ["c", "a", "b"]
        );
    }

    #[test]
    fn round_robin_survives_shorter_roster() {
        // A cursor stored with a longer roster must still pick a valid index.
        let two = roster(&["alex", "sam"]);
        assert_eq!(
            run(AssignmentPolicy::RoundRobin, &two, 7, 2),
            ["sam", "alex"]
        );
        assert_eq!(
            run(AssignmentPolicy::RoundRobin, &two, u64::MAX, 2),
            ["sam", "alex"]
        );
    }

    #[test]
    fn random_picks_members_and_keeps_cursor() {
        let two = roster(&["alex", "sam"]);
        let mut rng = StdRng::seed_from_u64(1);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..64 {
            let assignment = AssignmentPolicy::Random.choose(&two, 5, &mut rng).unwrap();
            assert_eq!(assignment.next_cursor, 5);
            assert!(two.contains(&assignment.technician));
            seen.insert(assignment.technician);
        }
        assert_eq!(
            seen.len(),
            2,
            "64 random picks should reach both technicians"
        );
    }

    #[test]
    fn empty_roster_assigns_nobody() {
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(AssignmentPolicy::RoundRobin.choose(&[], 0, &mut rng), None);
        assert_eq!(AssignmentPolicy::Random.choose(&[], 0, &mut rng), None);
    }

    #[test]
    fn policy_names_parse() {
        let policy: AssignmentPolicy = serde_json::from_str("\"round_robin\"").unwrap();
        assert_eq!(policy, AssignmentPolicy::RoundRobin);
        assert_eq!(AssignmentPolicy::Random.as_str(), "random");
        assert!(serde_json::from_str::<AssignmentPolicy>("\"least_loaded\"").is_err());
    }
}
