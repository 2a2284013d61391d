//! Layered settings: the rules and health checks that apply to one sensor,
//! built from the defaults, then the overrides of its site, then the
//! overrides of the sensor itself, each layer in file order.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::config::{BridgeConfig, HealthSettings, OverrideConfig, RuleConfig};
use crate::health::Health;
use crate::rules::Rule;

/// The effective rules and health checks of one sensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Enabled rules, in config order.
    pub rules: Vec<Rule>,
    pub health: Health,
}

impl Profile {
    /// Builds the profile that `overrides` (already filtered and ordered)
    /// make of the base settings.
    pub fn build<'a>(
        rules: &[RuleConfig],
        health: &HealthSettings,
        overrides: impl Iterator<Item = &'a OverrideConfig> + Clone,
    ) -> Self {
        let mut merged_health = health.clone();
        for entry in overrides.clone() {
            entry.apply_to_health(&mut merged_health);
        }
        let rules = rules
            .iter()
            .filter_map(|config| {
                let mut config = config.clone();
                for entry in overrides.clone() {
                    entry.apply_to_rule(&mut config);
                }
                config.enabled.then(|| Rule::from_config(&config)).flatten()
            })
            .collect();
        Self {
            rules,
            health: Health::from_settings(&merged_health),
        }
    }
}

/// Profiles of every sensor, built on first use and cached.
#[derive(Debug)]
pub struct Profiles {
    rules: Vec<RuleConfig>,
    health: HealthSettings,
    overrides: Vec<OverrideConfig>,
    sites_with_overrides: HashSet<String>,
    base: Arc<Profile>,
    cache: HashMap<(String, String), Arc<Profile>>,
}

impl Profiles {
    /// Creates the profiles of a validated config.
    pub fn new(config: &BridgeConfig) -> Self {
        let base = Profile::build(&config.rules, &config.health, std::iter::empty());
        Self {
            rules: config.rules.clone(),
            health: config.health.clone(),
            overrides: config.overrides.clone(),
            sites_with_overrides: config.overrides.iter().map(|o| o.site.clone()).collect(),
            base: Arc::new(base),
            cache: HashMap::new(),
        }
    }

    /// Returns the profile of `site`/`sensor`.
    pub fn get(&mut self, site: &str, sensor: &str) -> Arc<Profile> {
        if !self.sites_with_overrides.contains(site) {
            return Arc::clone(&self.base);
        }
        let key = (site.to_owned(), sensor.to_owned());
        if let Some(profile) = self.cache.get(&key) {
            return Arc::clone(profile);
        }
        let matching = self
            .overrides
            .iter()
            .filter(|entry| entry.matches(site, sensor));
        let site_wide = matching.clone().filter(|entry| entry.sensor.is_none());
        let own = matching.filter(|entry| entry.sensor.is_some());
        let profile = Arc::new(Profile::build(
            &self.rules,
            &self.health,
            site_wide.chain(own),
        ));
        self.cache.insert(key, Arc::clone(&profile));
        profile
    }
}

#[cfg(test)]
mod tests {
    use floorwatch_protocol::Condition;

    use super::*;

    fn config() -> BridgeConfig {
        let mut config = BridgeConfig::default();
        let site_wide = OverrideConfig {
            site: "plant-1".into(),
            rule: Some("temperature-high".into()),
            threshold: Some(40.0),
            clear_threshold: Some(38.0),
            ..OverrideConfig::default()
        };
        let sensor = OverrideConfig {
            site: "plant-1".into(),
            sensor: Some("freezer-1".into()),
            rule: Some("temperature-high".into()),
            threshold: Some(-15.0),
            clear_threshold: Some(-16.0),
            expected_interval_secs: Some(10),
            ..OverrideConfig::default()
        };
        let disable = OverrideConfig {
            site: "plant-1".into(),
            sensor: Some("freezer-1".into()),
            rule: Some("temperature-low".into()),
            enabled: Some(false),
            ..OverrideConfig::default()
        };
        // The sensor entry comes first in the file but still wins.
        config.overrides = vec![sensor, site_wide, disable];
        config.validate().unwrap();
        config
    }

    #[test]
    fn layers_apply_defaults_then_site_then_sensor() {
        let mut profiles = Profiles::new(&config());
        let cases = [
            ("plant-2", "oven-1", 30.0, 2),
            ("plant-1", "oven-1", 40.0, 2),
            ("plant-1", "freezer-1", -15.0, 1),
        ];
        for (site, sensor, threshold, rule_count) in cases {
            let profile = profiles.get(site, sensor);
            let high = &profile.rules[0];
            assert_eq!(high.condition, Condition::Above, "{site}/{sensor}");
            assert_eq!(high.threshold, threshold, "{site}/{sensor}");
            assert_eq!(profile.rules.len(), rule_count, "{site}/{sensor}");
        }
    }

    #[test]
    fn sensor_override_changes_silence_limit() {
        let mut profiles = Profiles::new(&config());
        let freezer = profiles.get("plant-1", "freezer-1");
        assert_eq!(
            freezer.health.silent_after,
            Some(chrono::TimeDelta::seconds(50))
        );
        let oven = profiles.get("plant-1", "oven-1");
        assert_eq!(
            oven.health.silent_after,
            Some(chrono::TimeDelta::seconds(300))
        );
    }
}
