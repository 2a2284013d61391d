use std::collections::{HashMap, HashSet};

use chrono::TimeZone;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::*;

fn ids(names: &[&str]) -> Vec<Id> {
    names.iter().map(|name| Id::parse(name).unwrap()).collect()
}

fn monday_noon() -> DateTime<Utc> {
    // 2026-03-30 is a Monday; 10:00 UTC is 12:00 in Berlin.
    Utc.with_ymd_and_hms(2026, 3, 30, 10, 0, 0).unwrap()
}

fn request<'a>(load: &'a HashMap<String, u64>, cursor: u64) -> AssignRequest<'a> {
    AssignRequest {
        site: "plant-1",
        metric: "temperature",
        now: monday_noon(),
        cursor,
        load,
        exclude: None,
    }
}

fn run(roster: &Roster, start: u64, count: usize) -> Vec<String> {
    let load = HashMap::new();
    let mut rng = StdRng::seed_from_u64(7);
    let mut cursor = start;
    let mut chosen = Vec::new();
    for _ in 0..count {
        let assignment = roster.choose(&request(&load, cursor), &mut rng).unwrap();
        cursor = assignment.next_cursor;
        chosen.push(assignment.technician.to_string());
    }
    chosen
}

#[test]
fn round_robin_alternates_and_continues() {
    let two = Roster::simple(AssignmentPolicy::RoundRobin, ids(&["alex", "sam"]));
    assert_eq!(run(&two, 0, 5), ["alex", "sam", "alex", "sam", "alex"]);
    let three = Roster::simple(AssignmentPolicy::RoundRobin, ids(&["a", "b", "c"]));
    assert_eq!(run(&three, 2, 3), ["c", "a", "b"]);
}

#[test]
fn round_robin_survives_shorter_roster() {
    // A cursor stored with a longer roster must still pick a valid index.
    let two = Roster::simple(AssignmentPolicy::RoundRobin, ids(&["alex", "sam"]));
    assert_eq!(run(&two, 7, 2), ["sam", "alex"]);
    assert_eq!(run(&two, u64::MAX, 2), ["sam", "alex"]);
}

#[test]
fn random_picks_members_and_keeps_cursor() {
    let two = Roster::simple(AssignmentPolicy::Random, ids(&["alex", "sam"]));
    let load = HashMap::new();
    let mut rng = StdRng::seed_from_u64(1);
    let mut seen = HashSet::new();
    for _ in 0..64 {
        let assignment = two.choose(&request(&load, 5), &mut rng).unwrap();
        assert_eq!(assignment.next_cursor, 5);
        seen.insert(assignment.technician.to_string());
    }
    assert_eq!(seen.len(), 2, "64 random picks should reach both");
}

#[test]
fn least_loaded_weighs_open_work() {
    let three = Roster::simple(AssignmentPolicy::LeastLoaded, ids(&["a", "b", "c"]));
    let load: HashMap<String, u64> = [
        ("a".to_owned(), severity_weight(Severity::Critical)),
        ("b".to_owned(), 2 * severity_weight(Severity::Warning)),
        ("c".to_owned(), 2),
    ]
    .into();
    let mut rng = StdRng::seed_from_u64(1);
    // b and c tie at 2; the rotation from cursor 0 reaches b first.
    let first = three.choose(&request(&load, 0), &mut rng).unwrap();
    assert_eq!(first.technician.as_str(), "b");
    assert_eq!(first.next_cursor, 2);
    // From cursor 2 the tie goes to c.
    let second = three.choose(&request(&load, 2), &mut rng).unwrap();
    assert_eq!(second.technician.as_str(), "c");
    assert_eq!(second.reason, "least_loaded");
}

#[test]
fn site_and_skill_filter_candidates() {
    let mut roster = Roster::simple(AssignmentPolicy::RoundRobin, ids(&["alex", "sam", "kim"]));
    roster.technicians[0].sites = ids(&["plant-2"]);
    roster.technicians[1].skills = ids(&["humidity"]);
    assert_eq!(run(&roster, 0, 3), ["kim", "kim", "kim"]);

    roster.technicians[2].sites = ids(&["plant-9"]);
    let load = HashMap::new();
    let mut rng = StdRng::seed_from_u64(1);
    let fallback = roster.choose(&request(&load, 0), &mut rng).unwrap();
    assert_eq!(fallback.technician.as_str(), "alex");
    assert_eq!(
        fallback.reason,
        "round_robin; no technician covers this site and metric"
    );
}

#[test]
fn on_shift_prefers_technicians_on_shift() {
    let mut roster = Roster::simple(AssignmentPolicy::OnShift, ids(&["alex", "sam"]));
    let shift = |name: &str, start: &str, end: &str| Shift {
        technician: Id::parse(name).unwrap(),
        timezone: chrono_tz::Europe::Berlin,
        days: vec![chrono::Weekday::Mon],
        start: chrono::NaiveTime::parse_from_str(start, "%H:%M").unwrap(),
        end: chrono::NaiveTime::parse_from_str(end, "%H:%M").unwrap(),
    };
    roster.rota = vec![
        shift("alex", "00:00", "08:00"),
        shift("sam", "08:00", "16:00"),
    ];
    assert_eq!(run(&roster, 0, 2), ["sam", "sam"]);

    let load = HashMap::new();
    let mut evening = request(&load, 0);
    evening.now = monday_noon() + chrono::Duration::hours(8);
    let mut rng = StdRng::seed_from_u64(1);
    let nobody = roster.choose(&evening, &mut rng).unwrap();
    assert_eq!(nobody.technician.as_str(), "alex");
    assert_eq!(nobody.reason, "on_shift; nobody on shift");
}

#[test]
fn exclude_skips_a_technician() {
    let two = Roster::simple(AssignmentPolicy::RoundRobin, ids(&["alex", "sam"]));
    let load = HashMap::new();
    let mut escalation = request(&load, 0);
    escalation.exclude = Some("alex");
    let mut rng = StdRng::seed_from_u64(1);
    let chosen = two.choose(&escalation, &mut rng).unwrap();
    assert_eq!(chosen.technician.as_str(), "sam");

    let one = Roster::simple(AssignmentPolicy::RoundRobin, ids(&["alex"]));
    assert_eq!(one.choose(&escalation, &mut rng), None);
}

#[test]
fn roster_config_parses_both_shapes() {
    let text = r#"
        technicians = ["alex", { name = "sam", sites = ["plant-1"], skills = ["temperature"] }]
        [[rota]]
        technician = "sam"
        timezone = "Europe/Berlin"
        days = ["mon", "Tue"]
        start = "22:00"
        end = "06:00"
    "#;
    #[derive(serde::Deserialize)]
    struct Section {
        technicians: Vec<TechnicianConfig>,
        rota: Vec<ShiftConfig>,
    }
    let section: Section = toml::from_str(text).unwrap();
    let roster = parse_roster(
        AssignmentPolicy::OnShift,
        &section.technicians,
        &section.rota,
    )
    .unwrap();
    assert_eq!(roster.ids(), ids(&["alex", "sam"]));
    assert_eq!(roster.technicians[1].sites, ids(&["plant-1"]));
    assert_eq!(
        roster.rota[0].days,
        [chrono::Weekday::Mon, chrono::Weekday::Tue]
    );
}

#[test]
fn roster_config_errors_name_the_field() {
    let names: Vec<TechnicianConfig> = vec!["alex".into()];
    let shift = ShiftConfig {
        technician: "alex".into(),
        timezone: "Europe/Berlin".into(),
        days: vec!["mon".into()],
        start: "08:00".into(),
        end: "16:00".into(),
    };
    let cases = [
        (
            ShiftConfig {
                timezone: "Mars/Base".into(),
                ..shift.clone()
            },
            "timezone",
        ),
        (
            ShiftConfig {
                days: vec!["monday".into()],
                ..shift.clone()
            },
            "days",
        ),
        (
            ShiftConfig {
                start: "8am".into(),
                ..shift.clone()
            },
            "start",
        ),
        (
            ShiftConfig {
                technician: "kim".into(),
                ..shift.clone()
            },
            "technician",
        ),
        (
            ShiftConfig {
                end: "08:00".into(),
                ..shift.clone()
            },
            "non-zero",
        ),
    ];
    for (entry, expected) in cases {
        let error = parse_roster(AssignmentPolicy::RoundRobin, &names, &[entry]).unwrap_err();
        let message = error.to_string();
        assert!(message.contains(expected), "{message}");
    }
    let error = parse_roster(AssignmentPolicy::OnShift, &names, &[]).unwrap_err();
    assert_eq!(error, RosterError::NoRota);
    let twice: Vec<TechnicianConfig> = vec!["alex".into(), "alex".into()];
    let error = parse_roster(AssignmentPolicy::RoundRobin, &twice, &[]).unwrap_err();
    assert!(matches!(error, RosterError::DuplicateTechnician { .. }));
}
