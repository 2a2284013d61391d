//! Counters of the running bridge, shared by its tasks and read through
//! `BridgeHandle::stats`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;

/// A copy of the bridge's counters at one moment.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StatsSnapshot {
    /// Payloads parsed into readings, including duplicates and late ones.
    pub readings_accepted: u64,
    /// Payloads that did not parse, or arrived on an invalid topic.
    pub readings_rejected: u64,
    /// Rejections by stable code, such as `invalid_json`.
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Readings ignored because their sequence number was already seen.
    pub duplicates: u64,
    /// Readings older than the sensor's newest one, not evaluated.
    pub out_of_order: u64,
    /// Readings never received, judged by jumps in a sensor's `seq`.
    pub readings_missing: u64,
    pub incidents_opened: u64,
    /// `incident.updated` events: severity changes and reminders.
    pub incidents_updated: u64,
    pub incidents_resolved: u64,
    /// `sensor.silent` events.
    pub sensors_silent: u64,
    /// `sensor.fault` events.
    pub sensor_faults: u64,
    /// `sensor.silent.cleared` and `sensor.fault.cleared` events.
    pub sensor_events_cleared: u64,
    /// Incident events held by a silence or maintenance window.
    pub events_held: u64,
    /// Held events sent when their mute ended.
    pub events_released: u64,
    /// Configuration reloads applied.
    pub config_reloads: u64,
    /// Configuration files the watcher could not load or validate.
    pub config_reloads_rejected: u64,
    /// Events committed to the outbox (one per event, not per endpoint).
    pub events_written: u64,
    pub deliveries_succeeded: u64,
    pub delivery_attempts_failed: u64,
    /// Outbox rows that exhausted their retries.
    pub dead_letters: u64,
    /// Outbox rows waiting for delivery.
    pub outbox_pending: u64,
    /// Endpoints disabled by a `410 Gone` and not yet enabled again.
    pub endpoints_disabled: u64,
    pub mqtt_connected: bool,
    /// True once the broker acknowledged the reading subscription on the
    /// current connection; readings published before that may be lost.
    pub mqtt_subscribed: bool,
}

/// Live counters. Each is updated on its own, so a snapshot taken while the
/// bridge works may mix two moments.
#[derive(Debug, Default)]
pub struct Stats {
    pub readings_accepted: AtomicU64,
    pub readings_rejected: AtomicU64,
    rejected_by_reason: Mutex<BTreeMap<String, u64>>,
    pub duplicates: AtomicU64,
    pub out_of_order: AtomicU64,
    pub readings_missing: AtomicU64,
    pub incidents_opened: AtomicU64,
    pub incidents_updated: AtomicU64,
    pub incidents_resolved: AtomicU64,
    pub sensors_silent: AtomicU64,
    pub sensor_faults: AtomicU64,
    pub sensor_events_cleared: AtomicU64,
    pub events_held: AtomicU64,
    pub events_released: AtomicU64,
    pub config_reloads: AtomicU64,
    pub config_reloads_rejected: AtomicU64,
    pub events_written: AtomicU64,
    pub deliveries_succeeded: AtomicU64,
    pub delivery_attempts_failed: AtomicU64,
    pub dead_letters: AtomicU64,
    pub outbox_pending: AtomicU64,
    pub endpoints_disabled: AtomicU64,
    /// Latency of delivery attempts that got a response or an error.
    pub delivery_latency: LatencyHistogram,
    pub mqtt_connected: AtomicBool,
    pub mqtt_subscribed: AtomicBool,
}

/// Upper bounds, in milliseconds, of the delivery latency buckets.
pub const LATENCY_BUCKETS_MS: [u64; 11] = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 15000];

/// A histogram of latencies with the buckets of [`LATENCY_BUCKETS_MS`]
/// and one more for anything slower.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    counts: [AtomicU64; LATENCY_BUCKETS_MS.len() + 1],
    sum_ms: AtomicU64,
}

impl LatencyHistogram {
    /// Records one latency.
    pub fn observe(&self, latency_ms: u64) {
        let index = LATENCY_BUCKETS_MS
            .iter()
            .position(|bound| latency_ms <= *bound)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        bump(&self.counts[index]);
        self.sum_ms.fetch_add(latency_ms, Ordering::Relaxed);
    }

    /// Returns the count of each bucket (not cumulative) and the sum in
    /// milliseconds.
    pub fn snapshot(&self) -> (Vec<u64>, u64) {
        let counts = self
            .counts
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .collect();
        (counts, self.sum_ms.load(Ordering::Relaxed))
    }
}

/// Adds one to `counter`.
pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Stats {
    /// Counts one rejected payload under `code`.
    pub fn reject(&self, code: &str) {
        bump(&self.readings_rejected);
        let mut reasons = self
            .rejected_by_reason
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *reasons.entry(code.to_owned()).or_default() += 1;
    }

    /// Subtracts `count` from the pending outbox rows, stopping at zero.
    pub fn outbox_done(&self, count: u64) {
        let _ = self
            .outbox_pending
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |pending| {
                Some(pending.saturating_sub(count))
            });
    }

    /// Counts one endpoint fewer as disabled, stopping at zero.
    pub fn endpoint_enabled(&self) {
        let _ =
            self.endpoints_disabled
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |count| {
                    Some(count.saturating_sub(1))
                });
    }

    /// Copies every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let rejected_by_reason = self
            .rejected_by_reason
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        StatsSnapshot {
            readings_accepted: load(&self.readings_accepted),
            readings_rejected: load(&self.readings_rejected),
            rejected_by_reason,
            duplicates: load(&self.duplicates),
            out_of_order: load(&self.out_of_order),
            readings_missing: load(&self.readings_missing),
            incidents_opened: load(&self.incidents_opened),
            incidents_updated: load(&self.incidents_updated),
            incidents_resolved: load(&self.incidents_resolved),
            sensors_silent: load(&self.sensors_silent),
            sensor_faults: load(&self.sensor_faults),
            sensor_events_cleared: load(&self.sensor_events_cleared),
            events_held: load(&self.events_held),
            events_released: load(&self.events_released),
            config_reloads: load(&self.config_reloads),
            config_reloads_rejected: load(&self.config_reloads_rejected),
            events_written: load(&self.events_written),
            deliveries_succeeded: load(&self.deliveries_succeeded),
            delivery_attempts_failed: load(&self.delivery_attempts_failed),
            dead_letters: load(&self.dead_letters),
            outbox_pending: load(&self.outbox_pending),
            endpoints_disabled: load(&self.endpoints_disabled),
            mqtt_connected: self.mqtt_connected.load(Ordering::Relaxed),
            mqtt_subscribed: self.mqtt_subscribed.load(Ordering::Relaxed),
        }
    }
}
