//! The ingest pipeline, run on a blocking thread: parse each payload, drop
//! duplicates, run the rules and health checks, and commit sensor state,
//! incidents and outbox rows of a whole batch in one transaction. The timer
//! tick (silence, reminders) and config reload commit the same way.

mod clock;
mod mute;
mod reload;
mod retained;
mod tick;
mod warn;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, SecondsFormat, Utc};
use floorwatch_protocol::{parse_payload, Event, EventType, Id, IncidentData, Rejection, Topics};
use serde_json::json;
use uuid::Uuid;

use crate::config::{BridgeConfig, EndpointConfig, RuleConfig};
use crate::mutes::Mutes;
use crate::profile::Profiles;
use crate::sensor::{Outcome, SensorState};
use crate::stats::{bump, Stats};
use crate::store::{BatchWrite, NewEvent, Store, StoreError};

/// A payload received on a reading topic.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// Site level of the topic, not yet validated.
    pub site: String,
    /// Sensor level of the topic, not yet validated.
    pub sensor: String,
    pub payload: Vec<u8>,
    pub received_at: DateTime<Utc>,
}

/// An MQTT message for the caller to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Publication {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

/// Output of a committed batch.
#[derive(Debug, Clone, Default)]
pub struct BatchResult {
    pub publications: Vec<Publication>,
    /// Outbox rows committed, over all endpoints.
    pub outbox_rows: u64,
    /// Events committed, in order.
    pub events: Vec<Event<IncidentData>>,
}

/// Retained incident messages of the incidents now open, by topic, so they
/// can be published again after the broker restarts.
pub type RetainedIncidents = Arc<Mutex<BTreeMap<String, Vec<u8>>>>;

/// Returns the stable code of a rejection, used in stats and on the
/// `rejected` topic.
pub fn rejection_code(rejection: &Rejection) -> &'static str {
    rejection.code()
}

/// The state and database of the ingest side.
pub struct Processor {
    store: Store,
    rule_configs: Vec<RuleConfig>,
    profiles: Profiles,
    reminder_delays: Vec<chrono::TimeDelta>,
    clock: clock::ReadingClock,
    mutes: Mutes,
    endpoints: Vec<EndpointConfig>,
    topics: Topics,
    sensors: HashMap<(String, String), SensorState>,
    stats: Arc<Stats>,
    retained: RetainedIncidents,
    open_incidents: retained::OpenIncidents,
    warnings: warn::Warnings,
    max_sensors: usize,
    /// Counts of the batch in progress, added to `stats` once it commits.
    tally: Tally,
}

/// Per-reading counts of one batch. A batch whose commit fails is processed
/// again, so its counts reach [`Stats`] only after the commit.
#[derive(Debug, Default)]
struct Tally {
    accepted: u64,
    duplicates: u64,
    out_of_order: u64,
    missing: u64,
    /// Rejection codes, one per rejected payload.
    rejected: Vec<&'static str>,
}

impl Processor {
    /// Creates the processor and loads every sensor's state from `store`.
    pub fn new(
        store: Store,
        config: &BridgeConfig,
        stats: Arc<Stats>,
        retained: RetainedIncidents,
    ) -> Result<Self, StoreError> {
        let sensors: HashMap<(String, String), SensorState> = store
            .load_sensor_states()?
            .into_iter()
            .map(|(site, sensor, state)| ((site, sensor), state))
            .collect();
        let topics = Topics::new(&config.mqtt.topic_prefix);
        let mut open_incidents = retained::OpenIncidents::default();
        let mut open = BTreeMap::new();
        for incident in store.open_incidents()? {
            let topic = topics.incident(&incident.site, &incident.sensor);
            let payload = open_incidents.apply(topic.clone(), EventType::IncidentOpened, &incident);
            open.insert(topic, payload.unwrap_or_default());
        }
        *retained
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = open;
        Ok(Self {
            store,
            rule_configs: config.rules.clone(),
            profiles: Profiles::new(config),
            reminder_delays: config.reminders.delays(),
            clock: clock::ReadingClock::starting_from(&sensors, Utc::now()),
            mutes: Mutes::new(config),
            endpoints: config.endpoints.clone(),
            topics,
            sensors,
            stats,
            retained,
            open_incidents,
            warnings: warn::Warnings::default(),
            tally: Tally::default(),
            max_sensors: config.max_sensors,
        })
    }

    /// Processes a batch and commits its effects in one transaction.
    pub fn process(&mut self, batch: &[Inbound]) -> Result<BatchResult, StoreError> {
        // Counts left by an attempt whose commit failed.
        self.tally = Tally::default();
        let mut touched: BTreeMap<(Id, Id), SensorState> = BTreeMap::new();
        let mut write = BatchWrite::default();
        let mut publications = Vec::new();
        let mut new_sensors = 0;
        for inbound in batch {
            let reading = match parse_payload(
                &inbound.site,
                &inbound.sensor,
                &inbound.payload,
                inbound.received_at,
            ) {
                Ok(reading) => reading,
                Err(rejection) => {
                    publications.extend(self.reject(inbound, &rejection));
                    continue;
                }
            };
            let key = (reading.site.clone(), reading.sensor.clone());
            let stored = (reading.site.to_string(), reading.sensor.to_string());
            let known = touched.contains_key(&key) || self.sensors.contains_key(&stored);
            if !known && self.sensors.len() + new_sensors >= self.max_sensors {
                publications.extend(self.reject_sensor_limit(inbound));
                continue;
            }
            new_sensors += usize::from(!known);
            self.tally.accepted += 1;

            let state = touched
                .entry(key)
                .or_insert_with(|| self.sensors.get(&stored).cloned().unwrap_or_default());
            let previous_seq = state.last_seq;
            state.last_arrival = Some(inbound.received_at);
            self.clock.observe(reading.time, inbound.received_at);
            let profile = self
                .profiles
                .get(reading.site.as_str(), reading.sensor.as_str());
            match state.observe(&profile, &reading, new_incident_id) {
                Outcome::Duplicate => self.tally.duplicates += 1,
                Outcome::OutOfOrder => self.tally.out_of_order += 1,
                Outcome::Evaluated(events) => {
                    self.count_gap(&reading, previous_seq);
                    write.events.extend(self.route_events(state, events));
                }
            }
        }

        write.sensors = touched
            .into_iter()
            .map(|((site, sensor), state)| (site, sensor, state))
            .collect();
        self.store.write_batch(&write, Utc::now())?;
        Ok(self.after_commit(write, publications))
    }

    /// Applies a committed batch to memory and counters.
    fn after_commit(
        &mut self,
        mut write: BatchWrite,
        mut publications: Vec<Publication>,
    ) -> BatchResult {
        let tally = std::mem::take(&mut self.tally);
        let stats = &self.stats;
        stats
            .readings_accepted
            .fetch_add(tally.accepted, Ordering::Relaxed);
        stats
            .duplicates
            .fetch_add(tally.duplicates, Ordering::Relaxed);
        stats
            .out_of_order
            .fetch_add(tally.out_of_order, Ordering::Relaxed);
        stats
            .readings_missing
            .fetch_add(tally.missing, Ordering::Relaxed);
        tally.rejected.iter().for_each(|code| stats.reject(code));

        let mut outbox_rows = 0;
        for new_event in &write.events {
            outbox_rows += new_event.endpoints.len() as u64;
            bump(&self.stats.events_written);
            publications.extend(self.incident_publication(&new_event.event));
        }
        self.stats
            .outbox_pending
            .fetch_add(outbox_rows, Ordering::Relaxed);
        for (site, sensor, state) in std::mem::take(&mut write.sensors) {
            self.sensors
                .insert((site.to_string(), sensor.to_string()), state);
        }
        BatchResult {
            publications,
            outbox_rows,
            events: write.events.into_iter().map(|new| new.event).collect(),
        }
    }

    fn new_event(&self, event: Event<IncidentData>) -> NewEvent {
        let endpoints = self
            .endpoints
            .iter()
            .filter(|endpoint| endpoint.enabled)
            .filter(|endpoint| endpoint.events.iter().any(|p| event.event_type.matches(p)))
            .map(|endpoint| endpoint.url.clone())
            .collect();
        // Serializing plain data with string keys cannot fail.
        let body = serde_json::to_vec(&event).expect("event serializes");
        NewEvent {
            event_id: format!("msg_{}", Uuid::now_v7().simple()),
            event,
            body,
            endpoints,
        }
    }

    /// Counts the event and, for `incident.*` events, builds the retained
    /// incident-state message: the most severe open incident of the sensor,
    /// or an empty payload once none is open.
    fn incident_publication(&mut self, event: &Event<IncidentData>) -> Option<Publication> {
        let data = &event.data;
        let counter = match event.event_type {
            EventType::IncidentOpened => &self.stats.incidents_opened,
            EventType::IncidentUpdated => &self.stats.incidents_updated,
            EventType::IncidentResolved => &self.stats.incidents_resolved,
            EventType::SensorSilent => &self.stats.sensors_silent,
            EventType::SensorFault => &self.stats.sensor_faults,
            EventType::SensorSilentCleared | EventType::SensorFaultCleared => {
                &self.stats.sensor_events_cleared
            }
        };
        bump(counter);
        tracing::info!(
            event_type = event.event_type.as_str(),
            incident_id = %data.incident_id,
            site = %data.site,
            sensor = %data.sensor,
            rule = %data.rule,
            value = data.value,
            "incident changed"
        );
        let topic = self.topics.incident(&data.site, &data.sensor);
        let payload = self
            .open_incidents
            .apply(topic.clone(), event.event_type, data)?;
        let mut retained = self
            .retained
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match payload.is_empty() {
            true => retained.remove(&topic),
            false => retained.insert(topic.clone(), payload.clone()),
        };
        Some(Publication {
            topic,
            payload,
            retain: true,
        })
    }

    /// Counts and logs a rejected payload, and returns the report to publish
    /// on the sensor's `rejected` topic when the topic levels are valid ids.
    fn reject(&mut self, inbound: &Inbound, rejection: &Rejection) -> Option<Publication> {
        let code = rejection_code(rejection);
        self.tally.rejected.push(code);
        self.warnings.rejected(inbound, code, rejection);
        let site = Id::parse(&inbound.site).ok()?;
        let sensor = Id::parse(&inbound.sensor).ok()?;
        let report = json!({
            "reason": rejection.to_string(),
            "code": code,
            "received_at": inbound.received_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        });
        Some(Publication {
            topic: self.topics.rejected(&site, &sensor),
            payload: report.to_string().into_bytes(),
            retain: false,
        })
    }
}

fn new_incident_id() -> String {
    format!("inc_{}", Uuid::now_v7().simple())
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod lifecycle_tests;
