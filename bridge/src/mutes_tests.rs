use crate::config::MaintenanceConfig;

use super::*;

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn window(days: &[&str], start: &str, end: &str) -> MaintenanceConfig {
    MaintenanceConfig {
        name: "night-shift".into(),
        site: Some("plant-1".into()),
        sensor: None,
        rule: None,
        time_zone: "Europe/Berlin".into(),
        days: days.iter().map(|day| (*day).to_owned()).collect(),
        start: start.into(),
        end: end.into(),
    }
}

fn mutes(windows: Vec<MaintenanceConfig>) -> Mutes {
    let config = BridgeConfig {
        maintenance: windows,
        ..BridgeConfig::default()
    };
    config.validate().unwrap();
    Mutes::new(&config)
}

#[test]
fn maintenance_windows_across_dst_table() {
    // (window, instant in UTC, muted)
    let cases = [
        // Winter time, UTC+1: 22:00-06:00 local is 21:00-05:00 UTC.
        (window(&[], "22:00", "06:00"), "2026-01-15T20:59:00Z", false),
        (window(&[], "22:00", "06:00"), "2026-01-15T21:00:00Z", true),
        (window(&[], "22:00", "06:00"), "2026-01-16T04:59:00Z", true),
        (window(&[], "22:00", "06:00"), "2026-01-16T05:00:00Z", false),
        // Spring change on 2026-03-29 (02:00 CET becomes 03:00 CEST): the
        // night starts at 21:00 UTC and ends at 04:00 UTC, 7 real hours.
        (window(&[], "22:00", "06:00"), "2026-03-28T21:00:00Z", true),
        (window(&[], "22:00", "06:00"), "2026-03-29T03:59:00Z", true),
        (window(&[], "22:00", "06:00"), "2026-03-29T04:00:00Z", false),
        // A start inside the skipped hour moves forward by the gap:
        // 02:30 becomes 03:30 CEST, 01:30 UTC.
        (window(&[], "02:30", "04:30"), "2026-03-29T01:29:00Z", false),
        (window(&[], "02:30", "04:30"), "2026-03-29T01:30:00Z", true),
        (window(&[], "02:30", "04:30"), "2026-03-29T02:29:00Z", true),
        (window(&[], "02:30", "04:30"), "2026-03-29T02:30:00Z", false),
        // Autumn change on 2026-10-25 (03:00 CEST becomes 02:00 CET): the
        // night runs from 20:00 UTC to 05:00 UTC, 9 real hours.
        (window(&[], "22:00", "06:00"), "2026-10-24T19:59:00Z", false),
        (window(&[], "22:00", "06:00"), "2026-10-24T20:00:00Z", true),
        (window(&[], "22:00", "06:00"), "2026-10-25T04:59:00Z", true),
        (window(&[], "22:00", "06:00"), "2026-10-25T05:00:00Z", false),
        // 02:30 happens twice; the window starts at the first, 00:30 UTC,
        // and ends at 03:00 CET, 02:00 UTC.
        (window(&[], "02:30", "03:00"), "2026-10-25T00:29:00Z", false),
        (window(&[], "02:30", "03:00"), "2026-10-25T00:30:00Z", true),
        (window(&[], "02:30", "03:00"), "2026-10-25T01:45:00Z", true),
        (window(&[], "02:30", "03:00"), "2026-10-25T02:00:00Z", false),
        // Days name the day the window starts: Saturday night reaches
        // into Sunday, Friday night is not covered.
        (
            window(&["sat"], "22:00", "06:00"),
            "2026-03-01T03:00:00Z",
            true,
        ),
        (
            window(&["sat"], "22:00", "06:00"),
            "2026-02-28T03:00:00Z",
            false,
        ),
    ];
    for (window, instant, expected) in cases {
        let label = format!(
            "{}-{} {:?} at {instant}",
            window.start, window.end, window.days
        );
        let mutes = mutes(vec![window]);
        let muted = mutes.muted_by("plant-1", "oven-1", "temperature-high", at(instant));
        assert_eq!(muted.is_some(), expected, "{label}");
    }
}

#[test]
fn window_matches_only_its_site() {
    let mutes = mutes(vec![window(&[], "00:00", "23:59")]);
    let noon = at("2026-06-01T10:00:00Z");
    assert!(mutes.muted_by("plant-1", "oven-1", "r", noon).is_some());
    assert!(mutes.muted_by("plant-2", "oven-1", "r", noon).is_none());
}

#[test]
fn silence_covers_its_matchers_until_expiry() {
    let config = BridgeConfig {
        silences: vec![SilenceConfig {
            site: Some("plant-1".into()),
            sensor: Some("oven-1".into()),
            rule: None,
            starts_at: Some(at("2026-12-04T08:00:00Z")),
            expires_at: at("2026-12-04T12:00:00Z"),
            author: "alex".into(),
            reason: "replacing the door seal".into(),
        }],
        ..BridgeConfig::default()
    };
    config.validate().unwrap();
    let mutes = Mutes::new(&config);
    // (site, sensor, instant, muted)
    let cases = [
        ("plant-1", "oven-1", "2026-12-04T07:59:59Z", false),
        ("plant-1", "oven-1", "2026-12-04T08:00:00Z", true),
        ("plant-1", "oven-2", "2026-12-04T09:00:00Z", false),
        ("plant-1", "oven-1", "2026-12-04T11:59:59Z", true),
        ("plant-1", "oven-1", "2026-12-04T12:00:00Z", false),
    ];
    for (site, sensor, instant, expected) in cases {
        let muted = mutes.muted_by(site, sensor, "temperature-high", at(instant));
        assert_eq!(muted.is_some(), expected, "{site}/{sensor} at {instant}");
    }
    let reason = mutes
        .muted_by("plant-1", "oven-1", "x", at("2026-12-04T09:00:00Z"))
        .unwrap();
    assert_eq!(reason, "silence by alex: replacing the door seal");
}

#[test]
fn invalid_window_fields_are_named() {
    let cases = [
        (
            MaintenanceConfig {
                time_zone: "Europe/Atlantis".into(),
                ..window(&[], "22:00", "06:00")
            },
            "bridge.maintenance[0].time_zone",
        ),
        (window(&[], "25:00", "06:00"), "bridge.maintenance[0].start"),
        (
            window(&["funday"], "22:00", "06:00"),
            "bridge.maintenance[0].days[0]",
        ),
    ];
    for (window, field) in cases {
        let config = BridgeConfig {
            maintenance: vec![window],
            ..BridgeConfig::default()
        };
        assert_eq!(config.validate().unwrap_err().field, field);
    }
}
