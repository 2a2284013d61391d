//! Configuration of the roster: technicians (a plain name or a table with
//! sites and skills) and rota shifts, parsed into a [`Roster`].

use chrono::{NaiveTime, Weekday};
use chrono_tz::Tz;
use floorwatch_protocol::Id;
use serde::{Deserialize, Serialize};

use super::{AssignmentPolicy, Roster, Shift, Technician};

/// One entry of `technicians`: `"alex"` or
/// `{ name = "alex", sites = ["plant-1"], skills = ["temperature"] }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum TechnicianConfig {
    /// A technician who covers every site and metric.
    Name(String),
    /// A technician limited to some sites or metrics.
    Detail(TechnicianDetail),
}

/// A technician with the sites and metrics they cover.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TechnicianDetail {
    pub name: String,
    /// Site ids; every site when empty.
    #[serde(default)]
    pub sites: Vec<String>,
    /// Metric ids such as `temperature`; every metric when empty.
    #[serde(default)]
    pub skills: Vec<String>,
}

impl TechnicianConfig {
    /// Returns the technician's name.
    pub fn name(&self) -> &str {
        match self {
            TechnicianConfig::Name(name) => name,
            TechnicianConfig::Detail(detail) => &detail.name,
        }
    }
}

impl From<&str> for TechnicianConfig {
    fn from(name: &str) -> Self {
        TechnicianConfig::Name(name.to_owned())
    }
}

/// One `[[scheduler.rota]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShiftConfig {
    pub technician: String,
    /// IANA time zone name, such as `Europe/Berlin`.
    pub timezone: String,
    /// `mon` … `sun`.
    pub days: Vec<String>,
    /// Local `HH:MM`.
    pub start: String,
    /// Local `HH:MM`; at or before `start` means the next day.
    pub end: String,
}

/// An invalid technician or rota entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RosterError {
    #[error("scheduler.technicians is empty: list at least one technician id")]
    NoTechnicians,
    #[error("scheduler.technicians[{index}] has an invalid {field} {value:?}: use letters, digits, `-` or `_`")]
    InvalidId {
        index: usize,
        field: &'static str,
        value: String,
    },
    #[error("scheduler.technicians lists {name:?} twice: remove the duplicate")]
    DuplicateTechnician { name: String },
    #[error("scheduler.rota[{index}].technician {name:?} is not in scheduler.technicians")]
    UnknownTechnician { index: usize, name: String },
    #[error("scheduler.rota[{index}].timezone {value:?} is not an IANA time zone such as \"Europe/Berlin\"")]
    InvalidTimezone { index: usize, value: String },
    #[error(
        "scheduler.rota[{index}].days contains {value:?}: use mon, tue, wed, thu, fri, sat or sun"
    )]
    InvalidDay { index: usize, value: String },
    #[error("scheduler.rota[{index}].{field} is {value:?}: use a 24-hour HH:MM time")]
    InvalidTime {
        index: usize,
        field: &'static str,
        value: String,
    },
    #[error("scheduler.rota[{index}] starts and ends at {value}: give a shift of non-zero length")]
    EmptyShift { index: usize, value: String },
    #[error("scheduler.assignment is on_shift but scheduler.rota is empty: add [[scheduler.rota]] entries")]
    NoRota,
}

/// Parses technicians and shifts into a roster using `policy`.
pub fn parse_roster(
    policy: AssignmentPolicy,
    technicians: &[TechnicianConfig],
    rota: &[ShiftConfig],
) -> Result<Roster, RosterError> {
    if technicians.is_empty() {
        return Err(RosterError::NoTechnicians);
    }
    let mut parsed: Vec<Technician> = Vec::with_capacity(technicians.len());
    for (index, entry) in technicians.iter().enumerate() {
        let technician = parse_technician(index, entry)?;
        if parsed.iter().any(|other| other.id == technician.id) {
            return Err(RosterError::DuplicateTechnician {
                name: entry.name().to_owned(),
            });
        }
        parsed.push(technician);
    }
    let shifts = rota
        .iter()
        .enumerate()
        .map(|(index, entry)| parse_shift(index, entry, &parsed))
        .collect::<Result<Vec<_>, _>>()?;
    if policy == AssignmentPolicy::OnShift && shifts.is_empty() {
        return Err(RosterError::NoRota);
    }
    Ok(Roster {
        policy,
        technicians: parsed,
        rota: shifts,
    })
}

fn parse_technician(index: usize, entry: &TechnicianConfig) -> Result<Technician, RosterError> {
    let id = |field: &'static str, value: &str| {
        Id::parse(value).map_err(|_| RosterError::InvalidId {
            index,
            field,
            value: value.to_owned(),
        })
    };
    match entry {
        TechnicianConfig::Name(name) => Ok(Technician::anywhere(id("name", name)?)),
        TechnicianConfig::Detail(detail) => Ok(Technician {
            id: id("name", &detail.name)?,
            sites: detail
                .sites
                .iter()
                .map(|site| id("site", site))
                .collect::<Result<_, _>>()?,
            skills: detail
                .skills
                .iter()
                .map(|skill| id("skill", skill))
                .collect::<Result<_, _>>()?,
        }),
    }
}

fn parse_shift(
    index: usize,
    entry: &ShiftConfig,
    technicians: &[Technician],
) -> Result<Shift, RosterError> {
    let technician = technicians
        .iter()
        .find(|t| t.id.as_str() == entry.technician)
        .ok_or_else(|| RosterError::UnknownTechnician {
            index,
            name: entry.technician.clone(),
        })?
        .id
        .clone();
    let timezone: Tz = entry
        .timezone
        .parse()
        .map_err(|_| RosterError::InvalidTimezone {
            index,
            value: entry.timezone.clone(),
        })?;
    let days = entry
        .days
        .iter()
        .map(|day| {
            parse_day(day).ok_or_else(|| RosterError::InvalidDay {
                index,
                value: day.clone(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let time = |field: &'static str, value: &str| {
        NaiveTime::parse_from_str(value, "%H:%M").map_err(|_| RosterError::InvalidTime {
            index,
            field,
            value: value.to_owned(),
        })
    };
    let start = time("start", &entry.start)?;
    let end = time("end", &entry.end)?;
    if start == end {
        return Err(RosterError::EmptyShift {
            index,
            value: entry.start.clone(),
        });
    }
    Ok(Shift {
        technician,
        timezone,
        days,
        start,
        end,
    })
}

fn parse_day(name: &str) -> Option<Weekday> {
    let days = [
        ("mon", Weekday::Mon),
        ("tue", Weekday::Tue),
        ("wed", Weekday::Wed),
        ("thu", Weekday::Thu),
        ("fri", Weekday::Fri),
        ("sat", Weekday::Sat),
        ("sun", Weekday::Sun),
    ];
    let lower = name.to_ascii_lowercase();
    days.iter()
        .find(|(short, _)| *short == lower)
        .map(|(_, day)| *day)
}
