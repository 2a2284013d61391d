//! Config reload inside the pipeline: swap the rules, overrides, health
//! checks, reminders, silences and maintenance windows, keeping the state of every rule whose identity
//! (id, metric, kind, condition) did not change.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use floorwatch_protocol::Id;

use super::{BatchResult, Processor};
use crate::config::BridgeConfig;
use crate::mutes::Mutes;
use crate::profile::{Profile, Profiles};
use crate::rules::{withdrawn, Rule, RuleIdentity, Subject};
use crate::sensor::SensorState;
use crate::store::{BatchWrite, StoreError};

impl Processor {
    /// Applies the rule settings of `config`, which the caller validated.
    ///
    /// A rule that was removed, changed identity or is now disabled for a
    /// sensor loses its state there. An incident it had open is resolved
    /// with a reason saying so, because no later event could resolve it. Everything is committed in one transaction before
    /// the new settings take effect.
    pub fn reload(
        &mut self,
        config: &BridgeConfig,
        wall_now: DateTime<Utc>,
    ) -> Result<BatchResult, StoreError> {
        let old_identities: HashMap<String, RuleIdentity> = self
            .rule_configs
            .iter()
            .map(|rule| (rule.id.clone(), Rule::identity(rule)))
            .collect();
        let new_identities: HashMap<String, RuleIdentity> = config
            .rules
            .iter()
            .map(|rule| (rule.id.clone(), Rule::identity(rule)))
            .collect();
        let mut profiles = Profiles::new(config);

        let mut write = BatchWrite::default();
        for ((site, sensor), state) in &self.sensors {
            let new_profile = profiles.get(site, sensor);
            let keep = |id: &str| {
                old_identities.get(id) == new_identities.get(id)
                    && new_profile.rules.iter().any(|rule| rule.id.as_str() == id)
            };
            if state.rules.keys().all(&keep) {
                continue;
            }
            let (Ok(site), Ok(sensor)) = (Id::parse(site), Id::parse(sensor)) else {
                continue;
            };
            let old_profile = self.profiles.get(site.as_str(), sensor.as_str());
            let mut next = state.clone();
            let subject = Subject {
                site: &site,
                sensor: &sensor,
            };
            let time = state.last_time.unwrap_or(wall_now);
            let events = drop_rules(&mut next, &old_profile, subject, time, keep);
            // A held incident resolves held, so the receiver never hears of it.
            write.events.extend(self.route_events(&mut next, events));
            write.sensors.push((site, sensor, next));
        }
        self.store.write_batch(&write, wall_now)?;

        self.rule_configs = config.rules.clone();
        self.profiles = profiles;
        self.reminder_delays = config.reminders.delays();
        self.mutes = Mutes::new(config);
        Ok(self.after_commit(write, Vec::new()))
    }
}

/// Removes the states of the rules `keep` rejects and returns the events
/// resolving their open incidents.
fn drop_rules(
    state: &mut SensorState,
    old_profile: &Profile,
    subject: Subject<'_>,
    time: DateTime<Utc>,
    keep: impl Fn(&str) -> bool,
) -> Vec<floorwatch_protocol::Event<floorwatch_protocol::IncidentData>> {
    let dropped: Vec<String> = state
        .rules
        .keys()
        .filter(|id| !keep(id))
        .map(str::to_owned)
        .collect();
    let mut events = Vec::new();
    for id in dropped {
        let incident = state.rules.remove(&id).and_then(|rule| rule.incident);
        let rule = old_profile.rules.iter().find(|rule| rule.id.as_str() == id);
        let (Some(incident), Some(rule)) = (incident, rule) else {
            continue;
        };
        let window = state.windows[rule.metric].recent().to_vec();
        events.push(withdrawn(rule, incident, subject, time, &window));
    }
    events
}
