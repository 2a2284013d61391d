//! Feeds arbitrary line levels to the DHT frame decoder, either as pulses
//! (level and duration) or as edge timestamps. A decoded frame must pass
//! its checksum and convert to finite values for every sensor model.

#![no_main]

use std::time::Duration;

use floorwatch_edge::drivers::dht_frame::{decode_pulses, frame_values, pulses_from_edges, Pulse};
use floorwatch_edge::drivers::SensorModel;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    let pulses: Vec<Pulse> = if mode & 1 == 0 {
        // Two bytes per pulse: the level, then the duration in µs.
        data.chunks_exact(2)
            .map(|pair| Pulse {
                high: pair[0] & 1 == 1,
                duration: Duration::from_micros(u64::from(pair[1])),
            })
            .collect()
    } else {
        // Three bytes per edge: the level after it, then its time in µs
        // (big-endian), which need not increase.
        let edges: Vec<(Duration, bool)> = data
            .chunks_exact(3)
            .map(|edge| {
                let micros = u16::from_be_bytes([edge[1], edge[2]]);
                (Duration::from_micros(u64::from(micros)), edge[0] & 1 == 1)
            })
            .collect();
        let pulses = pulses_from_edges(&edges);
        assert_eq!(pulses.len(), edges.len().saturating_sub(1));
        pulses
    };
    if let Ok(bytes) = decode_pulses(&pulses) {
        let sum = bytes[..4]
            .iter()
            .fold(0u8, |sum, byte| sum.wrapping_add(*byte));
        assert_eq!(bytes[4], sum, "a frame with a wrong checksum was accepted");
        for model in [SensorModel::Dht11, SensorModel::Dht22, SensorModel::Ds18b20] {
            let (celsius, humidity) = frame_values(bytes, model);
            assert!(celsius.is_finite(), "{model:?}: {celsius}");
            assert!(humidity.is_finite(), "{model:?}: {humidity}");
        }
    }
});
