//! A pure decoder of DHT11/DHT22 frames from the levels of the data line,
//! so that the GPIO driver's timing logic is tested without hardware.
//!
//! After the host's start signal the sensor responds with an 80 µs low and an
//! 80 µs high, then sends 40 bits, most significant first. Each bit is a
//! 50 µs low followed by a high of 26–28 µs (0) or 70 µs (1). The fifth byte
//! is the low byte of the sum of the first four.

use std::time::Duration;

use super::SensorModel;

/// A low that lasts at least this long is the sensor's 80 µs response; the
/// lows before each bit last about 50 µs.
const RESPONSE_LOW_MIN: Duration = Duration::from_micros(65);

/// A bit's high that lasts longer than this is a 1.
const ONE_HIGH_MIN: Duration = Duration::from_micros(48);

/// Bits in a frame.
const FRAME_BITS: usize = 40;

/// One level of the data line between two edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pulse {
    /// True for a high level.
    pub high: bool,
    /// Time between the edge that started the level and the next edge.
    pub duration: Duration,
}

/// Reason a frame could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("no 80 µs response from the sensor")]
    NoResponse,
    #[error("frame has {found} of 40 bits")]
    MissingEdges { found: usize },
    #[error("frame has {found} bits, more than 40")]
    ExtraEdges { found: usize },
    #[error("checksum {found:#04x} does not match the sum {expected:#04x}")]
    Checksum { found: u8, expected: u8 },
}

/// Turns edge timestamps into pulses. `edges` holds, in time order, the
/// time of each edge and the level after it. The level after the last edge
/// has no known duration, so it is left out.
pub fn pulses_from_edges(edges: &[(Duration, bool)]) -> Vec<Pulse> {
    edges
        .windows(2)
        .map(|pair| Pulse {
            high: pair[0].1,
            duration: pair[1].0.saturating_sub(pair[0].0),
        })
        .collect()
}

/// Decodes the five bytes of a frame and checks its checksum.
pub fn decode_pulses(pulses: &[Pulse]) -> Result<[u8; 5], FrameError> {
    let response = pulses
        .iter()
        .position(|pulse| !pulse.high && pulse.duration >= RESPONSE_LOW_MIN)
        .ok_or(FrameError::NoResponse)?;
    // Skip the response low and the response high that follows it.
    let bits: Vec<bool> = pulses[response + 1..]
        .iter()
        .filter(|pulse| pulse.high)
        .skip(1)
        .map(|pulse| pulse.duration > ONE_HIGH_MIN)
        .collect();
    if bits.len() < FRAME_BITS {
        return Err(FrameError::MissingEdges { found: bits.len() });
    }
    if bits.len() > FRAME_BITS {
        return Err(FrameError::ExtraEdges { found: bits.len() });
    }

    let mut bytes = [0u8; 5];
    for (index, bit) in bits.iter().enumerate() {
        bytes[index / 8] = (bytes[index / 8] << 1) | u8::from(*bit);
    }
    let expected = bytes[..4]
        .iter()
        .fold(0u8, |sum, byte| sum.wrapping_add(*byte));
    if bytes[4] != expected {
        return Err(FrameError::Checksum {
            found: bytes[4],
            expected,
        });
    }
    Ok(bytes)
}

/// Converts a checked frame to (temperature °C, relative humidity %).
///
/// DHT22 sends tenths as 16-bit big-endian values, and a negative
/// temperature sets the top bit of the magnitude (sign-magnitude, not two's
/// complement). DHT11 sends an integer byte and a tenths byte each; newer
/// DHT11 parts mark a negative temperature with the top bit of the tenths.
pub fn frame_values(bytes: [u8; 5], model: SensorModel) -> (f64, f64) {
    match model {
        SensorModel::Dht11 => {
            let humidity = f64::from(bytes[0]) + f64::from(bytes[1]) / 10.0;
            let magnitude = f64::from(bytes[2]) + f64::from(bytes[3] & 0x7f) / 10.0;
            let sign = if bytes[3] & 0x80 != 0 { -1.0 } else { 1.0 };
            (sign * magnitude, humidity)
        }
        SensorModel::Dht22 | SensorModel::Ds18b20 => {
            let humidity = f64::from(u16::from_be_bytes([bytes[0], bytes[1]])) / 10.0;
            let magnitude = f64::from(u16::from_be_bytes([bytes[2] & 0x7f, bytes[3]])) / 10.0;
            let sign = if bytes[2] & 0x80 != 0 { -1.0 } else { 1.0 };
            (sign * magnitude, humidity)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pulse(high: bool, micros: u64) -> Pulse {
        Pulse {
            high,
            duration: Duration::from_micros(micros),
        }
    }

    /// Builds the pulses a sensor sends for `bytes`, starting with the
    /// host's release of the line.
    fn pulses_for(bytes: &[u8]) -> Vec<Pulse> {
        let mut pulses = vec![pulse(true, 30), pulse(false, 80), pulse(true, 80)];
        for byte in bytes {
            for shift in (0..8).rev() {
                pulses.push(pulse(false, 50));
                let one = (byte >> shift) & 1 == 1;
                pulses.push(pulse(true, if one { 70 } else { 27 }));
            }
        }
        pulses.push(pulse(false, 50));
        pulses
    }

    #[test]
    fn datasheet_frame_decodes() {
        let bytes = decode_pulses(&pulses_for(&[0x02, 0x92, 0x01, 0x0D, 0xA2])).unwrap();
        assert_eq!(bytes, [0x02, 0x92, 0x01, 0x0D, 0xA2]);
        let (celsius, humidity) = frame_values(bytes, SensorModel::Dht22);
        assert!((celsius - 26.9).abs() < 1e-9, "{celsius}");
        assert!((humidity - 65.8).abs() < 1e-9, "{humidity}");
    }

    #[test]
    fn dht22_negative_is_sign_magnitude() {
        // 0x8065 is -10.1 °C in sign-magnitude; as two's complement it
        // would be -3276.3 °C.
        let frame = [0x02, 0x8C, 0x80, 0x65, 0x73];
        let bytes = decode_pulses(&pulses_for(&frame)).unwrap();
        let (celsius, humidity) = frame_values(bytes, SensorModel::Dht22);
        assert!((celsius + 10.1).abs() < 1e-9, "{celsius}");
        assert!((humidity - 65.2).abs() < 1e-9, "{humidity}");
    }

    #[test]
    fn dht11_frame_decodes() {
        let frame = [0x28, 0x00, 0x19, 0x05, 0x46];
        let bytes = decode_pulses(&pulses_for(&frame)).unwrap();
        let (celsius, humidity) = frame_values(bytes, SensorModel::Dht11);
        assert!((celsius - 25.5).abs() < 1e-9, "{celsius}");
        assert!((humidity - 40.0).abs() < 1e-9, "{humidity}");
    }

    #[test]
    fn bad_checksum_is_rejected() {
        let error = decode_pulses(&pulses_for(&[0x02, 0x92, 0x01, 0x0D, 0xA3])).unwrap_err();
        assert_eq!(
            error,
            FrameError::Checksum {
                found: 0xA3,
                expected: 0xA2
            }
        );
    }

    #[test]
    fn missing_edges_are_rejected() {
        let mut pulses = pulses_for(&[0x02, 0x92, 0x01, 0x0D, 0xA2]);
        pulses.truncate(pulses.len() - 5);
        assert_eq!(
            decode_pulses(&pulses).unwrap_err(),
            FrameError::MissingEdges { found: 38 }
        );
    }

    #[test]
    fn extra_edges_are_rejected() {
        let mut pulses = pulses_for(&[0x02, 0x92, 0x01, 0x0D, 0xA2]);
        pulses.push(pulse(true, 27));
        pulses.push(pulse(false, 50));
        assert_eq!(
            decode_pulses(&pulses).unwrap_err(),
            FrameError::ExtraEdges { found: 41 }
        );
    }

    #[test]
    fn silent_line_has_no_response() {
        let pulses = [pulse(true, 30), pulse(false, 40)];
        assert_eq!(decode_pulses(&pulses).unwrap_err(), FrameError::NoResponse);
    }

    #[test]
    fn edges_become_pulses() {
        let micros = Duration::from_micros;
        let edges = [(micros(0), false), (micros(80), true), (micros(160), false)];
        assert_eq!(
            pulses_from_edges(&edges),
            [pulse(false, 80), pulse(true, 80)]
        );
    }
}
