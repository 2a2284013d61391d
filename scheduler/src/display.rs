//! Formatting of numbers and untrusted text for the HTML pages. The JSON API
//! sends the stored values unchanged.

use crate::receive::MAX_UNIT_CHARS;

/// Maximum length of a history line shown on a page, in characters.
pub const MAX_HISTORY_CHARS: usize = 300;

/// Smallest magnitude shown in scientific notation, so that a value such as
/// 1e300 does not become a 300-digit number.
const SCIENTIFIC_NOTATION_MIN: f64 = 1e9;

/// Formats `value` with at most two decimals and no trailing zeros:
/// `10.88060276` is `10.88`, `30.0` is `30`, and `-0.001` is `0`. Values of
/// 1e9 or more in magnitude use scientific notation (`1.23e12`).
pub fn format_value(value: f64) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    if value.abs() >= SCIENTIFIC_NOTATION_MIN {
        return format!("{value:.2e}");
    }
    let fixed = format!("{value:.2}");
    let trimmed = fixed.trim_end_matches('0').trim_end_matches('.');
    if trimmed == "-0" {
        "0".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// Formats `value` followed by `unit`, with the unit shortened by
/// [`shorten`] to [`MAX_UNIT_CHARS`]: the receiver rejects longer units, but
/// tasks stored before that check may have one.
pub fn format_reading(value: f64, unit: &str) -> String {
    let unit = shorten(unit, MAX_UNIT_CHARS);
    format!("{} {unit}", format_value(value))
        .trim_end()
        .to_owned()
}

/// Returns `text` unchanged when it has at most `max_chars` characters,
/// otherwise its first `max_chars - 1` characters followed by `…`.
pub fn shorten(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let mut shortened: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    shortened.push('…');
    shortened
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_have_at_most_two_decimals() {
        let cases = [
            (10.88060276111111, "10.88"),
            (31.5, "31.5"),
            (30.0, "30"),
            (-4.005, "-4"),
            (-4.256, "-4.26"),
            (-0.001, "0"),
            (0.0, "0"),
            (999_999_999.994, "999999999.99"),
        ];
        for (value, expected) in cases {
            assert_eq!(format_value(value), expected, "{value}");
        }
    }

    #[test]
    fn huge_values_use_scientific_notation() {
        assert_eq!(format_value(1e300), "1.00e300");
        assert_eq!(format_value(-1.234e12), "-1.23e12");
        assert_eq!(format_value(f64::INFINITY), "inf");
    }

    #[test]
    fn readings_shorten_the_unit() {
        assert_eq!(format_reading(10.8806, "°C"), "10.88 °C");
        assert_eq!(format_reading(12.0, ""), "12");
        let long = "u".repeat(200_000);
        let shown = format_reading(1.0, &long);
        assert_eq!(shown.chars().count(), 2 + MAX_UNIT_CHARS);
        assert!(shown.ends_with('…'), "{shown}");
    }

    #[test]
    fn shorten_keeps_short_text() {
        assert_eq!(shorten("oven-1", 6), "oven-1");
        assert_eq!(shorten("oven-12", 6), "oven-…");
        assert_eq!(shorten("°°°°", 2), "°…");
    }
}
