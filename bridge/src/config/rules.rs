//! Rule settings: `[[bridge.rules]]`, the sensor health checks of
//! `[bridge.health]`, and the `[[bridge.overrides]]` that change both for
//! one site or one sensor, with their validation.

use floorwatch_protocol::{Condition, Id, Severity};
use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::rules::Metric;

/// What a rule compares with its thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// The reading's value.
    #[default]
    Threshold,
    /// The least-squares slope of the recent readings, in units per minute.
    Rate,
}

/// One rule with hysteresis. Every key added after the first release has a
/// default, so files written for the first release still load.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Rule identifier, part of every incident it raises.
    pub id: String,
    /// Measured quantity: `temperature` (°C) or `humidity` (%).
    #[serde(default = "default_metric")]
    pub metric: String,
    /// `threshold` compares readings, `rate` compares their slope per minute.
    #[serde(default)]
    pub kind: RuleKind,
    pub condition: Condition,
    /// Value a reading must pass (strictly) to count as a breach.
    pub threshold: f64,
    /// Value a reading must return to (inclusive) to count towards resolving.
    pub clear_threshold: f64,
    /// Consecutive breaching readings that open an incident.
    #[serde(default = "default_consecutive")]
    pub consecutive: u32,
    /// Consecutive cleared readings that resolve an incident.
    #[serde(default = "default_consecutive")]
    pub clear_consecutive: u32,
    /// Seconds from the first breach of a run to the reading that may open
    /// the incident; both this and `consecutive` must be met.
    #[serde(default)]
    pub for_secs: u64,
    /// Seconds from the first cleared reading of a run to the reading that
    /// may resolve the incident; both this and `clear_consecutive` must be met.
    #[serde(default)]
    pub clear_for_secs: u64,
    /// Severity of the incident while it is below the critical level.
    #[serde(default = "default_severity")]
    pub severity: Severity,
    /// A value past this escalates the open incident to critical.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical_threshold: Option<f64>,
    /// A value back at or past this de-escalates a critical incident.
    /// Default: `critical_threshold` moved by the rule's own hysteresis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical_clear_threshold: Option<f64>,
    /// Rate rules: readings younger than this many seconds form the slope.
    #[serde(default = "default_window_secs")]
    pub window_secs: u64,
    /// Rate rules: fewest readings in the window for a slope to count.
    #[serde(default = "default_min_samples")]
    pub min_samples: u32,
    /// `false` turns the rule off; an override can turn it on for a sensor.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
}

fn default_metric() -> String {
    "temperature".to_owned()
}

fn default_consecutive() -> u32 {
    3
}

fn default_severity() -> Severity {
    Severity::Warning
}

fn default_window_secs() -> u64 {
    300
}

fn default_min_samples() -> u32 {
    3
}

fn default_enabled() -> bool {
    true
}

impl RuleConfig {
    /// Creates a threshold rule on temperature with every other key at its
    /// default.
    pub fn threshold(id: &str, condition: Condition, threshold: f64, clear_threshold: f64) -> Self {
        Self {
            id: id.to_owned(),
            metric: default_metric(),
            kind: RuleKind::Threshold,
            condition,
            threshold,
            clear_threshold,
            consecutive: default_consecutive(),
            clear_consecutive: default_consecutive(),
            for_secs: 0,
            clear_for_secs: 0,
            severity: default_severity(),
            critical_threshold: None,
            critical_clear_threshold: None,
            window_secs: default_window_secs(),
            min_samples: default_min_samples(),
            enabled: true,
        }
    }
}

/// Returns the two rules of the product's scenario: below 20 °C or above 30 °C is
/// abnormal, with one degree of hysteresis.
pub fn default_rules() -> Vec<RuleConfig> {
    vec![
        RuleConfig::threshold("temperature-high", Condition::Above, 30.0, 29.0),
        RuleConfig::threshold("temperature-low", Condition::Below, 20.0, 21.0),
    ]
}

/// Physical range and spike limit of one metric.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricHealth {
    /// Lowest value the sensor can report; a lower one is a fault.
    pub min: f64,
    /// Highest value the sensor can report; a higher one is a fault.
    pub max: f64,
    /// A lone reading this far from both neighbours is a spike; 0 is off.
    #[serde(default)]
    pub spike_delta: f64,
}

/// Silence and fault checks of every sensor, `[bridge.health]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthSettings {
    /// Time between two readings of a sensor, in seconds; 0 turns the
    /// silence check off.
    pub expected_interval_secs: u64,
    /// A sensor is silent after this many expected intervals without a
    /// reading.
    pub silent_after_intervals: u32,
    /// This many identical values in a row are a stuck sensor; 0 is off.
    pub stuck_count: u32,
    /// Range and spike limit of temperatures, in °C.
    pub temperature: MetricHealth,
    /// Range and spike limit of relative humidity, in %.
    pub humidity: MetricHealth,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            expected_interval_secs: 60,
            silent_after_intervals: 5,
            stuck_count: 0,
            // The range of a DS18B20, the widest of the supported sensors.
            temperature: MetricHealth {
                min: -55.0,
                max: 125.0,
                spike_delta: 0.0,
            },
            humidity: MetricHealth {
                min: 0.0,
                max: 100.0,
                spike_delta: 0.0,
            },
        }
    }
}

/// Changes to the rules and health checks of one site or one sensor,
/// `[[bridge.overrides]]`. Unset keys keep the value of the layer below.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideConfig {
    /// Site the override applies to.
    pub site: String,
    /// Sensor of `site`; absent applies to every sensor of the site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensor: Option<String>,
    /// Rule whose keys change; required for every rule key below.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear_threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical_threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical_clear_threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear_consecutive: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear_for_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_interval_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silent_after_intervals: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stuck_count: Option<u32>,
}

impl OverrideConfig {
    /// Returns true when the override applies to `site`/`sensor`.
    pub fn matches(&self, site: &str, sensor: &str) -> bool {
        self.site == site && self.sensor.as_deref().is_none_or(|own| own == sensor)
    }

    /// Returns true when the override sets a key of a rule.
    fn changes_rule(&self) -> bool {
        self.enabled.is_some()
            || self.threshold.is_some()
            || self.clear_threshold.is_some()
            || self.critical_threshold.is_some()
            || self.critical_clear_threshold.is_some()
            || self.consecutive.is_some()
            || self.clear_consecutive.is_some()
            || self.for_secs.is_some()
            || self.clear_for_secs.is_some()
            || self.severity.is_some()
    }

    /// Applies the rule keys to `rule` when the override names it.
    pub fn apply_to_rule(&self, rule: &mut RuleConfig) {
        if self.rule.as_deref() != Some(rule.id.as_str()) {
            return;
        }
        let set = |target: &mut f64, value: Option<f64>| *target = value.unwrap_or(*target);
        set(&mut rule.threshold, self.threshold);
        set(&mut rule.clear_threshold, self.clear_threshold);
        rule.critical_threshold = self.critical_threshold.or(rule.critical_threshold);
        rule.critical_clear_threshold = self
            .critical_clear_threshold
            .or(rule.critical_clear_threshold);
        rule.consecutive = self.consecutive.unwrap_or(rule.consecutive);
        rule.clear_consecutive = self.clear_consecutive.unwrap_or(rule.clear_consecutive);
        rule.for_secs = self.for_secs.unwrap_or(rule.for_secs);
        rule.clear_for_secs = self.clear_for_secs.unwrap_or(rule.clear_for_secs);
        rule.severity = self.severity.unwrap_or(rule.severity);
        rule.enabled = self.enabled.unwrap_or(rule.enabled);
    }

    /// Applies the health keys to `health`.
    pub fn apply_to_health(&self, health: &mut HealthSettings) {
        health.expected_interval_secs = self
            .expected_interval_secs
            .unwrap_or(health.expected_interval_secs);
        health.silent_after_intervals = self
            .silent_after_intervals
            .unwrap_or(health.silent_after_intervals);
        health.stuck_count = self.stuck_count.unwrap_or(health.stuck_count);
    }
}

/// Checks one rule, naming fields under `path`.
pub fn validate_rule(path: &str, rule: &RuleConfig) -> Result<(), ConfigError> {
    if let Err(error) = Id::parse(&rule.id) {
        return Err(ConfigError::new(
            format!("{path}.id"),
            &rule.id,
            error.to_string(),
        ));
    }
    if Metric::parse(&rule.metric).is_none() {
        return Err(ConfigError::new(
            format!("{path}.metric"),
            &rule.metric,
            "use \"temperature\" or \"humidity\"",
        ));
    }
    validate_thresholds(path, rule)?;
    for (name, value) in [
        ("consecutive", rule.consecutive),
        ("clear_consecutive", rule.clear_consecutive),
    ] {
        if value == 0 {
            return Err(ConfigError::new(
                format!("{path}.{name}"),
                value,
                "use a count of at least 1 reading",
            ));
        }
    }
    if rule.kind == RuleKind::Rate {
        if rule.window_secs == 0 {
            return Err(ConfigError::new(
                format!("{path}.window_secs"),
                rule.window_secs,
                "a rate rule needs a window of at least 1 second, such as 300",
            ));
        }
        if rule.min_samples < 2 {
            return Err(ConfigError::new(
                format!("{path}.min_samples"),
                rule.min_samples,
                "a slope needs at least 2 readings: use 2 or more",
            ));
        }
    }
    Ok(())
}

fn validate_thresholds(path: &str, rule: &RuleConfig) -> Result<(), ConfigError> {
    for (name, value) in [
        ("threshold", Some(rule.threshold)),
        ("clear_threshold", Some(rule.clear_threshold)),
        ("critical_threshold", rule.critical_threshold),
        ("critical_clear_threshold", rule.critical_clear_threshold),
    ] {
        if value.is_some_and(|value| !value.is_finite()) {
            return Err(ConfigError::new(
                format!("{path}.{name}"),
                value,
                "use a finite number",
            ));
        }
    }
    check_order(
        &format!("{path}.clear_threshold"),
        rule.condition,
        rule.threshold,
        rule.clear_threshold,
        "clear_threshold",
    )?;
    let Some(critical) = rule.critical_threshold else {
        if rule.critical_clear_threshold.is_some() {
            return Err(ConfigError::new(
                format!("{path}.critical_clear_threshold"),
                rule.critical_clear_threshold,
                "set critical_threshold too, or remove critical_clear_threshold",
            ));
        }
        return Ok(());
    };
    check_order(
        &format!("{path}.critical_threshold"),
        rule.condition,
        critical,
        rule.threshold,
        "threshold",
    )?;
    if let Some(critical_clear) = rule.critical_clear_threshold {
        check_order(
            &format!("{path}.critical_clear_threshold"),
            rule.condition,
            critical,
            critical_clear,
            "critical_clear_threshold",
        )?;
    }
    Ok(())
}

/// Checks that `inner` lies on the normal side of `outer` (or on it).
fn check_order(
    field: &str,
    condition: Condition,
    outer: f64,
    inner: f64,
    inner_name: &str,
) -> Result<(), ConfigError> {
    let misordered = match condition {
        Condition::Above => inner > outer,
        Condition::Below => inner < outer,
    };
    if !misordered {
        return Ok(());
    }
    let (word, side) = match condition {
        Condition::Above => ("above", "at or below"),
        Condition::Below => ("below", "at or above"),
    };
    let value = if field.ends_with(inner_name) {
        inner
    } else {
        outer
    };
    Err(ConfigError::new(
        field,
        value,
        format!(
            "a rule that fires {word} {outer} must have {inner_name} {side} it: \
             set {inner_name} {side} {outer}"
        ),
    ))
}

/// Checks `[bridge.health]`.
pub fn validate_health(path: &str, health: &HealthSettings) -> Result<(), ConfigError> {
    if health.expected_interval_secs > 0 && health.silent_after_intervals == 0 {
        return Err(ConfigError::new(
            format!("{path}.silent_after_intervals"),
            health.silent_after_intervals,
            "use at least 1 interval, or set expected_interval_secs = 0 to turn silence off",
        ));
    }
    for (name, metric) in [
        ("temperature", health.temperature),
        ("humidity", health.humidity),
    ] {
        let finite = metric.min.is_finite() && metric.max.is_finite();
        if !finite || metric.min >= metric.max {
            return Err(ConfigError::new(
                format!("{path}.{name}.max"),
                metric.max,
                format!("use finite numbers with max above min ({})", metric.min),
            ));
        }
        if !(metric.spike_delta.is_finite() && metric.spike_delta >= 0.0) {
            return Err(ConfigError::new(
                format!("{path}.{name}.spike_delta"),
                metric.spike_delta,
                "use 0 (off) or a positive jump, such as 10.0",
            ));
        }
    }
    Ok(())
}

/// Checks one override against the rules it changes.
pub fn validate_override(
    path: &str,
    entry: &OverrideConfig,
    rules: &[RuleConfig],
    health: &HealthSettings,
) -> Result<(), ConfigError> {
    if let Err(error) = Id::parse(&entry.site) {
        return Err(ConfigError::new(
            format!("{path}.site"),
            &entry.site,
            error.to_string(),
        ));
    }
    if let Some(sensor) = &entry.sensor {
        Id::parse(sensor).map_err(|error| {
            ConfigError::new(format!("{path}.sensor"), sensor, error.to_string())
        })?;
    }
    match &entry.rule {
        Some(id) => {
            let Some(base) = rules.iter().find(|rule| &rule.id == id) else {
                return Err(ConfigError::new(
                    format!("{path}.rule"),
                    id,
                    "no [[bridge.rules]] entry has this id: use the id of a configured rule",
                ));
            };
            let mut merged = base.clone();
            entry.apply_to_rule(&mut merged);
            validate_rule(path, &merged)?;
        }
        None if entry.changes_rule() => {
            return Err(ConfigError::new(
                format!("{path}.rule"),
                "",
                "the override changes rule keys: name the rule with rule = \"ID\"",
            ));
        }
        None => {}
    }
    let mut merged = health.clone();
    entry.apply_to_health(&mut merged);
    validate_health(path, &merged)
}
