//! Pure evaluation of silences and weekly maintenance windows: is an
//! incident of (site, sensor, rule) muted at a given time?
//!
//! Window times are local to the window's IANA time zone and are resolved
//! per occurrence, so "22:00 to 06:00 Europe/Berlin" covers those wall-clock
//! hours on both sides of a daylight-saving change (a night of 7 or 9 real
//! hours). A local time that occurs twice (autumn) means its first
//! occurrence. A local time that does not exist (spring) is moved forward by
//! the length of the gap, so 02:30 becomes 03:30 on the night clocks skip
//! an hour.

use chrono::{
    DateTime, Days, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeDelta, TimeZone, Utc, Weekday,
};
use chrono::{Datelike, LocalResult};
use chrono_tz::Tz;

use crate::config::{parse_clock_time, parse_weekday, BridgeConfig, SilenceConfig};

/// A maintenance window with its settings parsed.
#[derive(Debug, Clone, PartialEq)]
struct Window {
    name: String,
    site: Option<String>,
    sensor: Option<String>,
    rule: Option<String>,
    time_zone: Tz,
    days: Vec<Weekday>,
    start: NaiveTime,
    end: NaiveTime,
}

/// The silences and maintenance windows of a config.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mutes {
    silences: Vec<SilenceConfig>,
    windows: Vec<Window>,
}

impl Mutes {
    /// Builds the mutes of a validated config; entries that do not parse
    /// (which validation reports) are left out.
    pub fn new(config: &BridgeConfig) -> Self {
        let windows = config
            .maintenance
            .iter()
            .filter_map(|window| {
                Some(Window {
                    name: window.name.clone(),
                    site: window.site.clone(),
                    sensor: window.sensor.clone(),
                    rule: window.rule.clone(),
                    time_zone: window.time_zone.parse().ok()?,
                    days: window
                        .days
                        .iter()
                        .filter_map(|day| parse_weekday(day))
                        .collect(),
                    start: parse_clock_time(&window.start)?,
                    end: parse_clock_time(&window.end)?,
                })
            })
            .collect();
        Self {
            silences: config.silences.clone(),
            windows,
        }
    }

    /// Returns true when there is no silence and no window.
    pub fn is_empty(&self) -> bool {
        self.silences.is_empty() && self.windows.is_empty()
    }

    /// Returns what mutes incidents of `site`/`sensor`/`rule` at `at`: the
    /// reason of a silence or the name of a window.
    pub fn muted_by(
        &self,
        site: &str,
        sensor: &str,
        rule: &str,
        at: DateTime<Utc>,
    ) -> Option<String> {
        let silence = self.silences.iter().find(|silence| {
            silence.matchers().matches(site, sensor, rule)
                && silence.starts_at.is_none_or(|start| start <= at)
                && at < silence.expires_at
        });
        if let Some(silence) = silence {
            return Some(format!("silence by {}: {}", silence.author, silence.reason));
        }
        self.windows
            .iter()
            .find(|window| window.matches(site, sensor, rule) && window.occurrence(at).is_some())
            .map(|window| format!("maintenance window {}", window.name))
    }
}

impl Window {
    fn matches(&self, site: &str, sensor: &str, rule: &str) -> bool {
        let equal = |matcher: &Option<String>, value: &str| {
            matcher.as_deref().is_none_or(|expected| expected == value)
        };
        equal(&self.site, site) && equal(&self.sensor, sensor) && equal(&self.rule, rule)
    }

    /// Returns the occurrence (start, end) that contains `at`. A window is
    /// at most a day long, so it started on the local date of `at` or the
    /// day before.
    fn occurrence(&self, at: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let today = at.with_timezone(&self.time_zone).date_naive();
        [today.checked_sub_days(Days::new(1)), Some(today)]
            .into_iter()
            .flatten()
            .filter(|date| self.days.is_empty() || self.days.contains(&date.weekday()))
            .map(|date| self.occurrence_on(date))
            .find(|(start, end)| *start <= at && at < *end)
    }

    /// Returns the occurrence starting on local date `date`, in UTC.
    fn occurrence_on(&self, date: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
        let end_date = if self.end <= self.start {
            date.checked_add_days(Days::new(1)).unwrap_or(date)
        } else {
            date
        };
        let start = to_utc(self.time_zone, date.and_time(self.start));
        let end = to_utc(self.time_zone, end_date.and_time(self.end));
        (start, end)
    }
}

/// Resolves a local time: the first of two on an autumn change, and moved
/// forward by the length of the gap on a spring change.
pub fn to_utc(time_zone: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match time_zone.from_local_datetime(&local) {
        LocalResult::Single(time) => time.with_timezone(&Utc),
        LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        LocalResult::None => {
            // Gaps are at most a few hours; the offset in effect before the
            // gap, applied to the local time, lands after it by the gap.
            let before = local - TimeDelta::hours(6);
            let offset = time_zone
                .from_local_datetime(&before)
                .earliest()
                .map_or(0, |time| time.offset().fix().local_minus_utc());
            (local - TimeDelta::seconds(i64::from(offset))).and_utc()
        }
    }
}

#[cfg(test)]
#[path = "mutes_tests.rs"]
mod tests;
