//! Compact containers for the per-sensor state that every reading touches:
//! one value per metric in a fixed array, and the rule states in a small
//! vector kept in the profile's rule order. Both serialize as the maps the
//! state was stored as before, so stored state stays readable.

use std::collections::BTreeMap;
use std::ops::{Index, IndexMut};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::rules::{Metric, RuleState};

/// One `T` per metric, indexed by [`Metric`].
///
/// Serialized as a map from metric name to value that leaves out values
/// equal to `T::default()`, which is what a metric never seen has.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PerMetric<T>([T; 2]);

impl<T> PerMetric<T> {
    fn slot(metric: Metric) -> usize {
        match metric {
            Metric::Temperature => 0,
            Metric::Humidity => 1,
        }
    }
}

impl<T: Default + PartialEq> PerMetric<T> {
    /// Returns true when every metric has its default value.
    pub fn is_default(&self) -> bool {
        self.0.iter().all(|value| *value == T::default())
    }

    /// Returns the value of `metric` unless it is the default.
    pub fn get(&self, metric: Metric) -> Option<&T> {
        let value = &self[metric];
        (*value != T::default()).then_some(value)
    }
}

impl<T> Index<Metric> for PerMetric<T> {
    type Output = T;

    fn index(&self, metric: Metric) -> &T {
        &self.0[Self::slot(metric)]
    }
}

impl<T> IndexMut<Metric> for PerMetric<T> {
    fn index_mut(&mut self, metric: Metric) -> &mut T {
        &mut self.0[Self::slot(metric)]
    }
}

impl<T: Serialize + Default + PartialEq> Serialize for PerMetric<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let present: BTreeMap<Metric, &T> = Metric::ALL
            .into_iter()
            .filter_map(|metric| self.get(metric).map(|value| (metric, value)))
            .collect();
        present.serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for PerMetric<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut slots = PerMetric::<T>::default();
        for (metric, value) in BTreeMap::<Metric, T>::deserialize(deserializer)? {
            slots[metric] = value;
        }
        Ok(slots)
    }
}

/// The state of each rule of a sensor, by rule id.
///
/// Kept in the order the rules were first evaluated, which is the
/// profile's order, so the lookup of the rule at position `i` of the
/// profile usually compares one id. Serialized as a map from rule id.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RuleStates(Vec<(String, RuleState)>);

impl RuleStates {
    /// Returns the state of rule `id`, looking first at position `hint`.
    pub fn get_mut_hinted(&mut self, hint: usize, id: &str) -> Option<&mut RuleState> {
        let index = match self.0.get(hint) {
            Some((key, _)) if key == id => hint,
            _ => self.0.iter().position(|(key, _)| key == id)?,
        };
        Some(&mut self.0[index].1)
    }

    /// Returns the state of rule `id`, inserting a default one if it has
    /// none; `hint` is where the rule usually sits.
    pub fn entry(&mut self, hint: usize, id: &str) -> &mut RuleState {
        let index = match self.0.get(hint) {
            Some((key, _)) if key == id => hint,
            _ => match self.0.iter().position(|(key, _)| key == id) {
                Some(index) => index,
                None => {
                    self.0.push((id.to_owned(), RuleState::default()));
                    self.0.len() - 1
                }
            },
        };
        &mut self.0[index].1
    }

    /// Returns the state of rule `id`.
    pub fn get(&self, id: &str) -> Option<&RuleState> {
        self.0
            .iter()
            .find_map(|(key, state)| (key == id).then_some(state))
    }

    /// Returns the state of rule `id`, mutably.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut RuleState> {
        self.0
            .iter_mut()
            .find_map(|(key, state)| (key == id).then_some(state))
    }

    /// Removes and returns the state of rule `id`.
    pub fn remove(&mut self, id: &str) -> Option<RuleState> {
        let index = self.0.iter().position(|(key, _)| key == id)?;
        Some(self.0.remove(index).1)
    }

    /// Rule ids with a state.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(key, _)| key.as_str())
    }

    /// Returns every rule state.
    pub fn values(&self) -> impl Iterator<Item = &RuleState> {
        self.0.iter().map(|(_, state)| state)
    }

    /// Returns every rule state, mutably.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut RuleState> {
        self.0.iter_mut().map(|(_, state)| state)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for RuleStates {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let sorted: BTreeMap<&str, &RuleState> = self
            .0
            .iter()
            .map(|(key, state)| (key.as_str(), state))
            .collect();
        sorted.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RuleStates {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, RuleState>::deserialize(deserializer)?;
        Ok(Self(map.into_iter().collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Phase;

    #[test]
    fn per_metric_serializes_only_values_seen() {
        let mut values = PerMetric::<Option<u32>>::default();
        assert_eq!(serde_json::to_string(&values).unwrap(), "{}");
        values[Metric::Humidity] = Some(3);
        let json = serde_json::to_string(&values).unwrap();
        assert_eq!(json, r#"{"humidity":3}"#);
        let back: PerMetric<Option<u32>> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, values);
        assert!(back.get(Metric::Temperature).is_none());
    }

    #[test]
    fn rule_states_read_stored_map() {
        let stored = r#"{"temperature-high":{"phase":"firing","breaches":0,"clears":0,
            "first_breach_at":null,"incident":null},
            "temperature-low":{"phase":"normal","breaches":0,"clears":0,
            "first_breach_at":null,"incident":null}}"#;
        let mut states: RuleStates = serde_json::from_str(stored).unwrap();
        assert_eq!(states.len(), 2);
        // A wrong hint falls back to a search.
        assert_eq!(
            states.get_mut_hinted(1, "temperature-high").unwrap().phase,
            Phase::Firing
        );
        assert!(states.get_mut_hinted(0, "humidity-high").is_none());
        states.entry(0, "humidity-high").breaches = 2;
        assert_eq!(states.get("humidity-high").unwrap().breaches, 2);
        let again: RuleStates =
            serde_json::from_str(&serde_json::to_string(&states).unwrap()).unwrap();
        assert_eq!(again.get("humidity-high"), states.get("humidity-high"));
        assert_eq!(again.remove_for_test("temperature-low"), 2);
    }

    impl RuleStates {
        fn remove_for_test(mut self, id: &str) -> usize {
            self.remove(id);
            self.len()
        }
    }
}
