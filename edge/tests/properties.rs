//! Property tests of the DHT frame decoder, which reads whatever levels the
//! data line shows. The `dht_frame` fuzz target in `fuzz/` checks the same
//! properties with coverage guidance.

use std::time::Duration;

use floorwatch_edge::drivers::dht_frame::{
    decode_pulses, frame_values, pulses_from_edges, FrameError, Pulse,
};
use floorwatch_edge::drivers::SensorModel;
use proptest::prelude::*;

fn pulse(high: bool, micros: u64) -> Pulse {
    Pulse {
        high,
        duration: Duration::from_micros(micros),
    }
}

/// Returns the pulses a sensor sends for `bytes`: the host's release of the line,
/// the 80 µs response low and high, 40 bits and the final low.
fn pulses_for(bytes: &[u8; 5]) -> Vec<Pulse> {
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

fn checksum(data: &[u8; 4]) -> u8 {
    data.iter().fold(0u8, |sum, byte| sum.wrapping_add(*byte))
}

fn frame(data: [u8; 4]) -> [u8; 5] {
    [data[0], data[1], data[2], data[3], checksum(&data)]
}

fn any_pulse() -> impl Strategy<Value = Pulse> {
    (any::<bool>(), 0u64..200).prop_map(|(high, micros)| pulse(high, micros))
}

fn any_model() -> impl Strategy<Value = SensorModel> {
    prop_oneof![
        Just(SensorModel::Dht11),
        Just(SensorModel::Dht22),
        Just(SensorModel::Ds18b20)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn decode_never_panics(pulses in proptest::collection::vec(any_pulse(), 0..120)) {
        if let Ok(bytes) = decode_pulses(&pulses) {
            let data = [bytes[0], bytes[1], bytes[2], bytes[3]];
            prop_assert_eq!(bytes[4], checksum(&data));
        }
    }

    #[test]
    fn edges_never_panic(edges in proptest::collection::vec((0u64..10_000, any::<bool>()), 0..100)) {
        let edges: Vec<(Duration, bool)> = edges
            .into_iter()
            .map(|(micros, high)| (Duration::from_micros(micros), high))
            .collect();
        let pulses = pulses_from_edges(&edges);
        prop_assert_eq!(pulses.len(), edges.len().saturating_sub(1));
        let _ = decode_pulses(&pulses);
    }

    #[test]
    fn valid_frame_round_trips(data in any::<[u8; 4]>(), model in any_model()) {
        let bytes = frame(data);
        prop_assert_eq!(decode_pulses(&pulses_for(&bytes)), Ok(bytes));
        let (celsius, humidity) = frame_values(bytes, model);
        prop_assert!(celsius.is_finite(), "{}", celsius);
        prop_assert!(humidity.is_finite(), "{}", humidity);
    }

    #[test]
    fn wrong_checksum_is_rejected(data in any::<[u8; 4]>(), wrong in any::<u8>()) {
        let expected = checksum(&data);
        prop_assume!(wrong != expected);
        let bytes = [data[0], data[1], data[2], data[3], wrong];
        prop_assert_eq!(
            decode_pulses(&pulses_for(&bytes)),
            Err(FrameError::Checksum { found: wrong, expected })
        );
    }

    #[test]
    fn flipped_bit_is_rejected(data in any::<[u8; 4]>(), bit in 0usize..40) {
        let mut bytes = frame(data);
        bytes[bit / 8] ^= 0x80 >> (bit % 8);
        let result = decode_pulses(&pulses_for(&bytes));
        prop_assert!(
            matches!(result, Err(FrameError::Checksum { .. })),
            "bit {} flipped gave {:?}",
            bit,
            result
        );
    }

    #[test]
    fn truncated_frame_is_rejected(data in any::<[u8; 4]>(), keep in 0usize..83) {
        let mut pulses = pulses_for(&frame(data));
        pulses.truncate(keep);
        prop_assert!(decode_pulses(&pulses).is_err());
    }
}
