//! The timer tick: silence, reminders and the release of held incidents,
//! judged on the pipeline's clock and committed like a batch.

use chrono::{DateTime, TimeDelta, Utc};
use floorwatch_protocol::Id;

use super::{new_incident_id, BatchResult, Processor};
use crate::profile::Profile;
use crate::rules::Subject;
use crate::sensor::SensorState;
use crate::store::{BatchWrite, StoreError};

impl Processor {
    /// Opens silence episodes and sends the reminders due at the clock of
    /// wall time `wall_now`, and commits them in one transaction. Does
    /// nothing before the first reading, when the clock is unknown.
    pub fn tick(&mut self, wall_now: DateTime<Utc>) -> Result<BatchResult, StoreError> {
        let Some(clock) = self.clock.now(wall_now) else {
            return Ok(BatchResult::default());
        };
        let mut write = BatchWrite::default();
        for ((site, sensor), state) in &self.sensors {
            let profile = self.profiles.get(site, sensor);
            if !needs_tick(state, &profile, clock, &self.reminder_delays) {
                continue;
            }
            // Keys come from validated readings, so they parse.
            let (Ok(site), Ok(sensor)) = (Id::parse(site), Id::parse(sensor)) else {
                continue;
            };
            let subject = Subject {
                site: &site,
                sensor: &sensor,
            };
            let mut next = state.clone();
            let silent = next.check_silence(&profile, subject, clock, wall_now, new_incident_id);
            let reminders = next.due_reminders(&profile, subject, clock, &self.reminder_delays);
            let mut entries: Vec<_> = silent
                .map(|event| self.new_event(event))
                .into_iter()
                .collect();
            entries.extend(self.release_held(&mut next, reminders, clock));
            if next == *state {
                continue;
            }
            write.events.extend(entries);
            write.sensors.push((site, sensor, next));
        }
        if write.sensors.is_empty() {
            return Ok(BatchResult::default());
        }
        self.store.write_batch(&write, wall_now)?;
        Ok(self.after_commit(write, Vec::new()))
    }
}

/// Returns true when a sensor may change at `clock`: its silence is due,
/// or it has an open incident and reminders are configured.
fn needs_tick(
    state: &SensorState,
    profile: &Profile,
    clock: DateTime<Utc>,
    delays: &[TimeDelta],
) -> bool {
    let silence_due = state.silent.is_none()
        && profile
            .health
            .silent_after
            .zip(state.last_time)
            .is_some_and(|(limit, last)| clock > last + limit);
    let reminder_possible =
        !delays.is_empty() && state.rules.values().any(|rule| rule.incident.is_some());
    silence_due || reminder_possible || !state.held.is_empty()
}
