//! Holding the events of incidents that open during a silence or a
//! maintenance window, and sending them if the incident is still open when
//! the mute ends.
//!
//! Evaluation goes on while muted: a held incident is recorded in the
//! database and on the retained MQTT topic, but its events get no outbox
//! rows. Its later events are held with it, so the receiver gets every
//! incident starting with its `incident.opened`. An incident that resolves while
//! still held is never sent. Events of incidents that were sent before the
//! mute began are sent as usual, except reminders, which are skipped.

use chrono::{DateTime, Utc};
use floorwatch_protocol::{Event, EventType, IncidentData};

use super::Processor;
use crate::sensor::SensorState;
use crate::stats::bump;
use crate::store::NewEvent;

impl Processor {
    /// Turns the events of one sensor into outbox entries, holding those
    /// that a silence or window mutes.
    pub(super) fn route_events(
        &self,
        state: &mut SensorState,
        events: Vec<Event<IncidentData>>,
    ) -> Vec<NewEvent> {
        events
            .into_iter()
            .map(|event| {
                if self.hold(state, &event) {
                    bump(&self.stats.events_held);
                    self.held_event(event)
                } else {
                    self.new_event(event)
                }
            })
            .collect()
    }

    /// Returns true when `event` must be held, and records it in `state`.
    /// NOTE: `sensor.*` events are never held; mutes cover incidents only.
    fn hold(&self, state: &mut SensorState, event: &Event<IncidentData>) -> bool {
        if !event.event_type.matches("incident.*") {
            return false;
        }
        let data = &event.data;
        let rule = data.rule.as_str();
        let already_held = state.held.contains_key(rule);
        let muted = || {
            self.mutes
                .muted_by(
                    data.site.as_str(),
                    data.sensor.as_str(),
                    rule,
                    event.timestamp,
                )
                .is_some()
        };
        let opens_muted = event.event_type == EventType::IncidentOpened && muted();
        if !already_held && !opens_muted {
            return false;
        }
        if event.event_type == EventType::IncidentResolved {
            state.held.remove(rule);
        } else {
            state
                .held
                .entry(rule.to_owned())
                .or_default()
                .push(event.clone());
        }
        true
    }

    /// Returns the outbox entry of a held event: stored, sent nowhere.
    fn held_event(&self, event: Event<IncidentData>) -> NewEvent {
        let mut new_event = self.new_event(event);
        new_event.endpoints.clear();
        new_event
    }

    /// Releases the held incidents of `state` whose mute has ended at
    /// `clock`, and drops reminders that a mute covers. Returns the entries
    /// to commit.
    pub(super) fn release_held(
        &self,
        state: &mut SensorState,
        reminders: Vec<Event<IncidentData>>,
        clock: DateTime<Utc>,
    ) -> Vec<NewEvent> {
        let muted = |data: &IncidentData| {
            self.mutes
                .muted_by(
                    data.site.as_str(),
                    data.sensor.as_str(),
                    data.rule.as_str(),
                    clock,
                )
                .is_some()
        };
        let mut entries = Vec::new();
        let ended: Vec<String> = state
            .held
            .iter()
            .filter(|(_, events)| events.first().is_some_and(|event| !muted(&event.data)))
            .map(|(rule, _)| rule.clone())
            .collect();
        for rule in ended {
            for event in state.held.remove(&rule).unwrap_or_default() {
                bump(&self.stats.events_released);
                entries.push(self.new_event(event));
            }
        }
        for reminder in reminders {
            if !muted(&reminder.data) {
                entries.push(self.new_event(reminder));
            }
        }
        entries
    }
}
