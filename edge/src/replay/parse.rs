//! Parsing of replay CSV files into readings: column lookup, timestamps,
//! units, and the lines that are skipped with the reason.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader};
#[cfg(test)]
use std::path::Path;
use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, Utc};
use csv::ByteRecord;
use floorwatch_protocol::Reading;
use serde::{Deserialize, Serialize};

use super::{ReplayError, ReplayOptions};

/// Unit of the temperatures in a replay file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// Degrees Celsius, published unchanged.
    #[default]
    Celsius,
    /// Degrees Fahrenheit, converted to °C before publishing.
    Fahrenheit,
}

impl Unit {
    /// Converts `value`, given in this unit, to degrees Celsius.
    pub fn to_celsius(self, value: f64) -> f64 {
        match self {
            Unit::Celsius => value,
            Unit::Fahrenheit => (value - 32.0) * 5.0 / 9.0,
        }
    }
}

/// A unit name that is not `celsius`, `c`, `fahrenheit` or `f`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unit {value:?} is not supported: use celsius (c) or fahrenheit (f)")]
pub struct UnitError {
    value: String,
}

impl FromStr for Unit {
    type Err = UnitError;

    /// Parses `celsius`, `c`, `fahrenheit` or `f`, ignoring case.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim().to_ascii_lowercase().as_str() {
            "celsius" | "c" => Ok(Unit::Celsius),
            "fahrenheit" | "f" => Ok(Unit::Fahrenheit),
            _ => Err(UnitError {
                value: value.to_owned(),
            }),
        }
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unit::Celsius => "celsius",
            Unit::Fahrenheit => "fahrenheit",
        })
    }
}

/// Reason a line of a replay file was skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkipReason {
    #[error("the line has no {column:?} field")]
    MissingField { column: String },
    #[error(
        "time {value:?} is not a date and time (expected e.g. 2013-12-02 21:15:00 \
         or 2013-12-02T21:15:00Z)"
    )]
    InvalidTime { value: String },
    #[error("value {value:?} is not a finite number")]
    InvalidValue { value: String },
    #[error("the line opens a quoted field it does not close: close each quote on its line")]
    UnbalancedQuote,
}

/// A line of a replay file that produced no reading.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct SkippedLine {
    /// 1-based line number in the file, where the header is line 1.
    pub line: u64,
    /// Data row number, counted like the `seq` of readings.
    pub row: u64,
    pub reason: SkipReason,
}

/// Reads the whole replay file named in `opts`.
///
/// Returns the readings in file order and the lines that were skipped.
/// Each reading carries the time of its row, taken as UTC when it has no
/// offset, and the temperature converted to °C. Its `seq` is the 1-based
/// number of its data row, counting skipped rows too, so that `seq` points
/// back into the file. Fails when the file cannot be read or its header lacks
/// the time or value column.
pub fn read_replay_file(
    opts: &ReplayOptions,
) -> Result<(Vec<Reading>, Vec<SkippedLine>), ReplayError> {
    let file = File::open(&opts.path).map_err(|source| ReplayError::Open {
        path: opts.path.clone(),
        source,
    })?;
    read_rows(BufReader::new(file), opts)
}

fn read_rows(
    mut input: impl io::Read,
    opts: &ReplayOptions,
) -> Result<(Vec<Reading>, Vec<SkippedLine>), ReplayError> {
    // Each line is parsed on its own, so an unclosed quote cannot swallow
    // the lines after it into one field, as a CSV reader over the whole
    // file would.
    let read_error = |line: u64, source: csv::Error| ReplayError::Read {
        path: opts.path.clone(),
        line: Some(line),
        source,
    };
    let mut text = Vec::new();
    input
        .read_to_end(&mut text)
        .map_err(|source| read_error(1, source.into()))?;
    let mut record = ByteRecord::new();
    let mut columns = None;
    let mut readings = Vec::new();
    let mut skipped = Vec::new();
    let mut row = 0;
    for (index, content) in lines(&text).enumerate() {
        let line = index as u64 + 1;
        if content.is_empty() {
            continue;
        }
        let Some(columns) = &columns else {
            parse_line(content, &mut record).map_err(|source| read_error(line, source))?;
            columns = Some(Columns::find(&record, opts)?);
            continue;
        };
        row += 1;
        let parsed = if has_unbalanced_quote(content) {
            Err(SkipReason::UnbalancedQuote)
        } else {
            parse_line(content, &mut record).map_err(|source| read_error(line, source))?;
            columns.reading(&record, row, opts)
        };
        match parsed {
            Ok(reading) => readings.push(reading),
            Err(reason) => skipped.push(SkippedLine { line, row, reason }),
        }
    }
    if columns.is_none() {
        // An empty file has neither column.
        Columns::find(&ByteRecord::new(), opts)?;
    }
    Ok((readings, skipped))
}

/// Splits `text` into lines ended by `\n`, `\r\n` or a lone `\r` (files
/// saved on classic Mac OS), without their endings.
fn lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest
            .iter()
            .position(|byte| *byte == b'\n' || *byte == b'\r')
            .unwrap_or(rest.len());
        let line = &rest[..end];
        let ending = match rest.get(end..end + 2) {
            Some(b"\r\n") => 2,
            _ => usize::from(end < rest.len()),
        };
        rest = &rest[end + ending..];
        Some(line)
    })
}

/// Returns true when `line` has an odd number of `"`, so a quoted field
/// does not close on it. A doubled `""` inside a quoted field counts twice.
fn has_unbalanced_quote(line: &[u8]) -> bool {
    line.iter().filter(|&&byte| byte == b'"').count() % 2 == 1
}

/// Parses one line of CSV into `record`.
fn parse_line(line: &[u8], record: &mut ByteRecord) -> Result<(), csv::Error> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .buffer_capacity(line.len().max(64))
        .from_reader(line);
    if !reader.read_byte_record(record)? {
        record.clear();
    }
    Ok(())
}

/// Positions of the time and value columns in a row.
struct Columns {
    time: usize,
    value: usize,
}

impl Columns {
    fn find(header: &ByteRecord, opts: &ReplayOptions) -> Result<Self, ReplayError> {
        let names: Vec<String> = header
            .iter()
            .enumerate()
            .map(|(index, name)| {
                let name = String::from_utf8_lossy(name);
                // A file saved by a spreadsheet may start with a UTF-8 BOM.
                let name = if index == 0 {
                    name.trim_start_matches('\u{feff}')
                } else {
                    &name
                };
                name.trim().to_owned()
            })
            .collect();
        let position = |column: &str| {
            names
                .iter()
                .position(|name| name == column)
                .ok_or_else(|| ReplayError::MissingColumn {
                    path: opts.path.clone(),
                    column: column.to_owned(),
                    found: names.clone(),
                })
        };
        Ok(Self {
            time: position(&opts.time_column)?,
            value: position(&opts.value_column)?,
        })
    }

    fn reading(
        &self,
        record: &ByteRecord,
        row: u64,
        opts: &ReplayOptions,
    ) -> Result<Reading, SkipReason> {
        let time_text = field(record, self.time, &opts.time_column)?;
        let value_text = field(record, self.value, &opts.value_column)?;
        let time = parse_time(&time_text).ok_or_else(|| SkipReason::InvalidTime {
            value: time_text.clone().into_owned(),
        })?;
        let value = value_text
            .parse::<f64>()
            .ok()
            .filter(|value| value.is_finite())
            .ok_or_else(|| SkipReason::InvalidValue {
                value: value_text.clone().into_owned(),
            })?;

        let celsius = opts.unit.to_celsius(value);
        let mut reading =
            Reading::temperature(opts.site.clone(), opts.sensor.clone(), time, celsius);
        reading.seq = Some(row);
        Ok(reading)
    }
}

/// Returns the text of field `index`, which must be present and not empty.
fn field<'a>(
    record: &'a ByteRecord,
    index: usize,
    column: &str,
) -> Result<std::borrow::Cow<'a, str>, SkipReason> {
    match record.get(index) {
        Some(bytes) if !bytes.is_empty() => Ok(String::from_utf8_lossy(bytes)),
        _ => Err(SkipReason::MissingField {
            column: column.to_owned(),
        }),
    }
}

/// Parses an RFC 3339 time, or a time without offset (`2013-12-02 21:15:00`,
/// optionally with `T` and fractional seconds) taken as UTC.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
        .into_iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|naive| naive.and_utc())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use floorwatch_protocol::Id;

    use super::*;

    fn options(path: &Path) -> ReplayOptions {
        ReplayOptions::new(
            path,
            Id::parse("plant-1").unwrap(),
            Id::parse("oven-1").unwrap(),
        )
    }

    fn write_csv(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file
    }

    #[test]
    fn fahrenheit_converts_to_celsius() {
        assert_eq!(Unit::Fahrenheit.to_celsius(212.0), 100.0);
        assert_eq!(Unit::Fahrenheit.to_celsius(32.0), 0.0);
        assert_eq!(Unit::Fahrenheit.to_celsius(-40.0), -40.0);
        assert_eq!(Unit::Celsius.to_celsius(21.5), 21.5);
    }

    #[test]
    fn unit_parses_names_and_letters() {
        for (text, unit) in [
            ("celsius", Unit::Celsius),
            ("C", Unit::Celsius),
            ("Fahrenheit", Unit::Fahrenheit),
            ("f", Unit::Fahrenheit),
        ] {
            assert_eq!(text.parse::<Unit>(), Ok(unit), "{text}");
        }
        let error = "kelvin".parse::<Unit>().unwrap_err().to_string();
        assert!(error.contains("\"kelvin\""), "{error}");
        assert_eq!(
            serde_json::from_str::<Unit>("\"fahrenheit\"").unwrap(),
            Unit::Fahrenheit
        );
    }

    #[test]
    fn parses_nab_rows_as_utc_celsius() {
        let file =
            write_csv("timestamp,value\n2013-12-02 21:15:00,212\n2013-12-02 21:20:00,32.0\n");
        let opts = ReplayOptions {
            unit: Unit::Fahrenheit,
            ..options(file.path())
        };
        let (readings, skipped) = read_replay_file(&opts).unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!(readings.len(), 2);
        assert_eq!(readings[0].temperature_c, Some(100.0));
        assert_eq!(readings[1].temperature_c, Some(0.0));
        assert_eq!(
            readings[0].time,
            "2013-12-02T21:15:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(readings[0].seq, Some(1));
        assert_eq!(readings[1].seq, Some(2));
        assert_eq!(readings[0].site.as_str(), "plant-1");
        assert_eq!(readings[0].sensor.as_str(), "oven-1");
    }

    #[test]
    fn bad_lines_are_skipped_with_line_numbers() {
        let file = write_csv(
            "timestamp,value\n\
             2013-12-02 21:15:00,20.5\n\
             yesterday,21.0\n\
             2013-12-02 21:25:00,warm\n\
             2013-12-02 21:30:00\n\
             2013-12-02 21:35:00,NaN\n\
             2013-12-02 21:40:00,22.5\n",
        );
        let (readings, skipped) = read_replay_file(&options(file.path())).unwrap();

        let seqs: Vec<_> = readings.iter().map(|reading| reading.seq).collect();
        assert_eq!(seqs, [Some(1), Some(6)]);
        let lines: Vec<_> = skipped.iter().map(|line| (line.line, line.row)).collect();
        assert_eq!(lines, [(3, 2), (4, 3), (5, 4), (6, 5)]);
        assert!(matches!(skipped[0].reason, SkipReason::InvalidTime { .. }));
        assert!(matches!(skipped[1].reason, SkipReason::InvalidValue { .. }));
        assert!(matches!(skipped[2].reason, SkipReason::MissingField { .. }));
        assert!(matches!(skipped[3].reason, SkipReason::InvalidValue { .. }));
        let message = skipped[0].to_string();
        assert!(message.starts_with("line 3:"), "{message}");
        assert!(message.contains("\"yesterday\""), "{message}");
    }

    #[test]
    fn unclosed_quote_skips_only_its_line() {
        let file = write_csv(
            "timestamp,value\r\n\
             2013-12-02 21:15:00,20.5\r\n\
             2013-12-02 21:20:00,\"21.0\r\n\
             \r\n\
             \"2013-12-02 21:25:00\",\"22.0\"\r\n\
             2013-12-02 21:30:00,23.0 \"\"\r\n\
             2013-12-02 21:35:00,24.5",
        );
        let (readings, skipped) = read_replay_file(&options(file.path())).unwrap();

        let values: Vec<_> = readings
            .iter()
            .map(|reading| (reading.seq, reading.temperature_c))
            .collect();
        assert_eq!(
            values,
            [
                (Some(1), Some(20.5)),
                (Some(3), Some(22.0)),
                (Some(5), Some(24.5))
            ]
        );
        let lines: Vec<_> = skipped
            .iter()
            .map(|line| (line.line, line.row, line.reason.clone()))
            .collect();
        assert_eq!(lines[0], (3, 2, SkipReason::UnbalancedQuote));
        assert_eq!(lines[1].0, 6);
        assert!(matches!(lines[1].2, SkipReason::InvalidValue { .. }));
        assert_eq!(lines.len(), 2);
        assert!(skipped[0].to_string().contains("does not close"));
    }

    #[test]
    fn classic_mac_line_endings_split_rows() {
        let file =
            write_csv("timestamp,value\r2013-12-02 21:15:00,20.5\r\r2013-12-02 21:20:00,21.5\r");
        let (readings, skipped) = read_replay_file(&options(file.path())).unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        let values: Vec<_> = readings.iter().map(|r| r.temperature_c).collect();
        assert_eq!(values, [Some(20.5), Some(21.5)]);
        assert_eq!(readings[1].seq, Some(2));
    }

    #[test]
    fn lines_split_on_every_ending() {
        let split: Vec<&[u8]> = lines(b"a\nb\r\nc\rd").collect();
        assert_eq!(split, [&b"a"[..], b"b", b"c", b"d"]);
        let split: Vec<&[u8]> = lines(b"a\r\n\r\nb\n").collect();
        assert_eq!(split, [&b"a"[..], b"", b"b"]);
        assert_eq!(lines(b"").count(), 0);
    }

    #[test]
    fn quoted_header_and_binary_header_read_clearly() {
        let file = write_csv("\"timestamp,value\n2013-12-02 21:15:00,20.5\n");
        let message = read_replay_file(&options(file.path()))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains(r#"columns found: "timestamp,value""#),
            "{message}"
        );

        let garbage: String = (0..2000)
            .map(|index| if index % 50 == 0 { ',' } else { 'x' })
            .collect();
        let file = write_csv(&format!("{garbage}\n"));
        let message = read_replay_file(&options(file.path()))
            .unwrap_err()
            .to_string();
        assert!(message.contains("and 21 more"), "{message}");
        assert!(
            message.len() < 1200,
            "{} characters: {message}",
            message.len()
        );
    }

    #[test]
    fn empty_file_names_the_missing_column() {
        let file = write_csv("");
        let error = read_replay_file(&options(file.path())).unwrap_err();
        assert!(
            matches!(error, ReplayError::MissingColumn { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn missing_column_names_column_and_header() {
        let file = write_csv("time,temp\n2013-12-02 21:15:00,20.5\n");
        let error = read_replay_file(&options(file.path())).unwrap_err();
        let ReplayError::MissingColumn { column, found, .. } = &error else {
            panic!("expected a missing column, got {error:?}");
        };
        assert_eq!(column, "timestamp");
        assert_eq!(found, &["time", "temp"]);
        let message = error.to_string();
        assert!(message.contains("\"timestamp\""), "{message}");
        assert!(message.contains(r#""time", "temp""#), "{message}");
    }

    #[test]
    fn custom_columns_and_bom_are_accepted() {
        let file = write_csv("\u{feff}id,when,temp\n7,2013-12-02T21:15:00Z,20.5\n");
        let opts = ReplayOptions {
            time_column: "when".into(),
            value_column: "temp".into(),
            ..options(file.path())
        };
        let (readings, _) = read_replay_file(&opts).unwrap();
        assert_eq!(readings[0].temperature_c, Some(20.5));
    }

    #[test]
    fn unreadable_file_names_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.csv");
        let error = read_replay_file(&options(&path)).unwrap_err();
        assert!(matches!(error, ReplayError::Open { .. }), "{error:?}");
        assert!(error.to_string().contains("missing.csv"), "{error}");
    }

    #[test]
    fn time_formats() {
        let utc = |text: &str| text.parse::<DateTime<Utc>>().unwrap();
        assert_eq!(
            parse_time("2013-12-02 21:15:00"),
            Some(utc("2013-12-02T21:15:00Z"))
        );
        assert_eq!(
            parse_time("2013-12-02T21:15:00.250"),
            Some(utc("2013-12-02T21:15:00.250Z"))
        );
        assert_eq!(
            parse_time("2013-12-02T22:15:00+01:00"),
            Some(utc("2013-12-02T21:15:00Z"))
        );
        assert_eq!(parse_time("2013-12-02"), None);
        assert_eq!(parse_time("2013-13-02 21:15:00"), None);
    }
}
