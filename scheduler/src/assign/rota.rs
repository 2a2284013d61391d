//! Shifts of the rota: weekly working hours of a technician in an IANA time
//! zone, compared on local wall-clock time so that daylight saving changes
//! move the shift with the clock.

use chrono::{DateTime, Datelike, NaiveTime, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use floorwatch_protocol::Id;

/// One weekly shift of a technician.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shift {
    pub technician: Id,
    pub timezone: Tz,
    /// Days the shift starts on.
    pub days: Vec<Weekday>,
    /// Local start time, inclusive.
    pub start: NaiveTime,
    /// Local end time, exclusive. An end at or before `start` ends on the
    /// next day, so `22:00`–`06:00` is a night shift.
    pub end: NaiveTime,
}

impl Shift {
    /// Returns true when the shift covers the instant `now`.
    ///
    /// NOTE: on the day clocks go forward, a shift starting inside the
    /// skipped hour begins at the first local time after it. On the day
    /// they go back, the repeated hour is covered twice.
    pub fn covers(&self, now: DateTime<Utc>) -> bool {
        let local = now.with_timezone(&self.timezone);
        let time = NaiveTime::from_hms_opt(local.hour(), local.minute(), local.second())
            .unwrap_or(NaiveTime::MIN);
        let day = local.weekday();
        if self.start < self.end {
            self.days.contains(&day) && self.start <= time && time < self.end
        } else {
            let started_today = self.days.contains(&day) && time >= self.start;
            let started_yesterday = self.days.contains(&day.pred()) && time < self.end;
            started_today || started_yesterday
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn shift(days: &[Weekday], start: &str, end: &str) -> Shift {
        Shift {
            technician: Id::parse("alex").unwrap(),
            timezone: chrono_tz::Europe::Berlin,
            days: days.to_vec(),
            start: NaiveTime::parse_from_str(start, "%H:%M").unwrap(),
            end: NaiveTime::parse_from_str(end, "%H:%M").unwrap(),
        }
    }

    fn utc(day: u32, month: u32, hour: u32, minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, month, day, hour, minute, 0)
            .unwrap()
    }

    #[test]
    fn day_shift_follows_spring_forward() {
        // Berlin moves from UTC+1 to UTC+2 on Sunday 2026-03-29 at 02:00.
        let sunday = shift(&[Weekday::Sat, Weekday::Sun], "08:00", "16:00");
        // Saturday, UTC+1: 07:30 UTC is 08:30 local.
        assert!(sunday.covers(utc(28, 3, 7, 30)));
        assert!(!sunday.covers(utc(28, 3, 6, 30)));
        // Sunday, UTC+2: 06:30 UTC is 08:30 local, 07:30 local a day earlier.
        assert!(sunday.covers(utc(29, 3, 6, 30)));
        assert!(!sunday.covers(utc(29, 3, 5, 30)));
        // 14:30 UTC is 16:30 local: the shift has ended one hour earlier in UTC.
        assert!(!sunday.covers(utc(29, 3, 14, 30)));
        assert!(sunday.covers(utc(29, 3, 13, 59)));
    }

    #[test]
    fn night_shift_across_skipped_hour() {
        let night = shift(&[Weekday::Sat], "22:00", "06:00");
        // 00:30 UTC on Sunday is 01:30 CET; 01:30 UTC is 03:30 CEST.
        assert!(night.covers(utc(29, 3, 0, 30)));
        assert!(night.covers(utc(29, 3, 1, 30)));
        // 04:00 UTC is 06:00 CEST: the night shift ends after 7 real hours.
        assert!(night.covers(utc(29, 3, 3, 59)));
        assert!(!night.covers(utc(29, 3, 4, 0)));
        // Saturday 21:00 UTC is 22:00 CET.
        assert!(night.covers(utc(28, 3, 21, 0)));
        assert!(!night.covers(utc(28, 3, 20, 59)));
    }

    #[test]
    fn day_shift_follows_fall_back() {
        // Berlin returns from UTC+2 to UTC+1 on Sunday 2026-10-25 at 03:00.
        let weekend = shift(&[Weekday::Sat, Weekday::Sun], "08:00", "16:00");
        // Saturday, UTC+2: 06:30 UTC is 08:30 local.
        assert!(weekend.covers(utc(24, 10, 6, 30)));
        // Sunday, UTC+1: 06:30 UTC is 07:30 local, 07:30 UTC is 08:30.
        assert!(!weekend.covers(utc(25, 10, 6, 30)));
        assert!(weekend.covers(utc(25, 10, 7, 30)));
        assert!(weekend.covers(utc(25, 10, 14, 59)));
        assert!(!weekend.covers(utc(25, 10, 15, 0)));
    }

    #[test]
    fn repeated_hour_is_covered_twice() {
        let early = shift(&[Weekday::Sun], "02:00", "03:00");
        // 02:30 local happens at 00:30 UTC (CEST) and again at 01:30 UTC (CET).
        assert!(early.covers(utc(25, 10, 0, 30)));
        assert!(early.covers(utc(25, 10, 1, 30)));
        assert!(!early.covers(utc(25, 10, 2, 0)));
    }

    #[test]
    fn other_days_are_off() {
        let weekdays = shift(&[Weekday::Mon, Weekday::Fri], "08:00", "16:00");
        // 2026-03-31 is a Tuesday.
        assert!(!weekdays.covers(utc(31, 3, 8, 0)));
        // 2026-03-30 is a Monday; 08:00 UTC is 10:00 CEST.
        assert!(weekdays.covers(utc(30, 3, 8, 0)));
    }
}
