//! The temperatures each synthetic sensor reports. Normal sensors stay
//! between the rules' thresholds. Breaching sensors repeat a cycle: normal
//! readings, a run above the high threshold long enough to open an
//! incident, then a run back below the clear threshold long enough to
//! resolve it.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Centre of the normal band, in °C: between the default rules' clear
/// thresholds (21 °C and 29 °C), so normal readings never breach.
const NORMAL_CENTRE_C: f64 = 24.0;
/// Half width of the normal band, in °C.
const NORMAL_SPREAD_C: f64 = 1.5;
/// Lowest breaching value, in °C: above the default high threshold of 30 °C.
const HOT_MIN_C: f64 = 31.0;
/// Width of the breaching band above [`HOT_MIN_C`], in °C.
const HOT_SPREAD_C: f64 = 2.0;

/// Expected effect of a reading on the rule of its sensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Inside the normal band.
    Normal,
    /// Above the high threshold, but not the reading that opens the incident.
    Breach,
    /// The breaching reading that completes the consecutive run and so
    /// should open the incident.
    Opening,
    /// Back below the clear threshold, not yet the resolving reading.
    Clear,
    /// The cleared reading that completes the run and so should resolve
    /// the incident.
    Resolving,
}

/// One generated temperature and its expected effect.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Temperature in °C, rounded to 0.01.
    pub celsius: f64,
    pub role: Role,
}

/// Shape of a breaching sensor's cycle, in readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cycle {
    /// Consecutive readings the rule needs to open, and to resolve.
    pub consecutive: u64,
    /// Readings in one whole cycle, at least [`Cycle::episode_len`] plus
    /// the lead-in.
    pub len: u64,
}

impl Cycle {
    /// Creates the cycle of a sensor that publishes `readings_per_sec` and
    /// should start one episode every `episode_secs`, for a rule that needs
    /// `consecutive` readings to open and to resolve.
    pub fn new(consecutive: u32, readings_per_sec: f64, episode_secs: f64) -> Self {
        let consecutive = u64::from(consecutive.max(1));
        let shortest = 3 * (consecutive + 1);
        let wanted = (readings_per_sec * episode_secs).round();
        let len = if wanted.is_finite() && wanted > shortest as f64 {
            wanted as u64
        } else {
            shortest
        };
        Self { consecutive, len }
    }

    /// Normal readings at the start of each cycle, so the rule is back in
    /// its normal state before the next breach.
    fn lead(&self) -> u64 {
        self.consecutive + 1
    }

    /// Breaching readings, and cleared readings, in one episode: one more
    /// than the rule needs, so one late or lost reading does not stop the
    /// transition.
    fn run(&self) -> u64 {
        self.consecutive + 1
    }

    /// Readings from the first breaching reading to the last cleared one.
    pub fn episode_len(&self) -> u64 {
        2 * self.run()
    }

    /// Returns the role of the reading at `position` within the cycle.
    pub fn role_at(&self, position: u64) -> Role {
        let position = position % self.len;
        let hot_start = self.lead();
        let clear_start = hot_start + self.run();
        let clear_end = clear_start + self.run();
        if position < hot_start || position >= clear_end {
            Role::Normal
        } else if position < clear_start {
            if position - hot_start + 1 == self.consecutive {
                Role::Opening
            } else {
                Role::Breach
            }
        } else if position - clear_start + 1 == self.consecutive {
            Role::Resolving
        } else {
            Role::Clear
        }
    }

    /// Returns how many more readings finish the episode in progress when
    /// the next reading is at `position`; 0 outside an episode.
    pub fn readings_to_finish(&self, position: u64) -> u64 {
        let position = position % self.len;
        let hot_start = self.lead();
        let clear_end = hot_start + self.episode_len();
        if position > hot_start && position < clear_end {
            clear_end - position
        } else {
            0
        }
    }
}

/// The temperature source of one synthetic sensor.
#[derive(Debug)]
pub struct Signal {
    /// `None` for a sensor that never breaches.
    cycle: Option<Cycle>,
    position: u64,
    rng: StdRng,
}

impl Signal {
    /// Creates a signal seeded with `seed`, so a run is repeatable; `cycle`
    /// is `None` for a sensor that stays normal.
    pub fn new(cycle: Option<Cycle>, seed: u64) -> Self {
        Self {
            cycle,
            position: 0,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Generates the next reading.
    pub fn next_sample(&mut self) -> Sample {
        let role = match self.cycle {
            Some(cycle) => cycle.role_at(self.position),
            None => Role::Normal,
        };
        self.position += 1;
        let celsius = match role {
            Role::Breach | Role::Opening => HOT_MIN_C + self.rng.gen_range(0.0..HOT_SPREAD_C),
            Role::Normal | Role::Clear | Role::Resolving => {
                NORMAL_CENTRE_C + self.rng.gen_range(-NORMAL_SPREAD_C..NORMAL_SPREAD_C)
            }
        };
        Sample {
            celsius: (celsius * 100.0).round() / 100.0,
            role,
        }
    }

    /// Returns how many more readings end the episode in progress, so the
    /// incident it opened also resolves; 0 outside an episode.
    pub fn readings_to_finish(&self) -> u64 {
        self.cycle
            .map_or(0, |cycle| cycle.readings_to_finish(self.position))
    }
}

/// Returns how many of `sensors` breach for a share `breach_share` (0 to 1),
/// rounded to the nearest sensor but at least one when the share is above 0.
pub fn breaching_count(sensors: u32, breach_share: f64) -> u32 {
    if breach_share <= 0.0 {
        return 0;
    }
    let count = (f64::from(sensors) * breach_share).round() as u32;
    count.clamp(1, sensors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(cycle: Cycle) -> Vec<Role> {
        (0..cycle.len)
            .map(|position| cycle.role_at(position))
            .collect()
    }

    #[test]
    fn cycle_opens_then_resolves() {
        let cycle = Cycle::new(3, 10.0, 1.2);
        assert_eq!(cycle.len, 12);
        use Role::*;
        assert_eq!(
            roles(cycle),
            [
                Normal, Normal, Normal, Normal, Breach, Breach, Opening, Breach, Clear, Clear,
                Resolving, Clear
            ]
        );
    }

    #[test]
    fn cycle_is_never_shorter_than_an_episode() {
        let cycle = Cycle::new(3, 1.0, 1.0);
        assert_eq!(cycle.len, 12);
        let cycle = Cycle::new(5, 500.0, 1.0);
        assert_eq!(cycle.len, 500);
        assert_eq!(
            roles(cycle).iter().filter(|r| **r == Role::Opening).count(),
            1
        );
    }

    #[test]
    fn opening_is_the_consecutive_breach() {
        for consecutive in 1..6 {
            let cycle = Cycle::new(consecutive, 100.0, 1.0);
            let roles = roles(cycle);
            let first_hot = roles.iter().position(|r| *r != Role::Normal).unwrap();
            let opening = roles.iter().position(|r| *r == Role::Opening).unwrap();
            assert_eq!(opening - first_hot + 1, consecutive as usize);
            let first_clear = roles
                .iter()
                .position(|r| matches!(r, Role::Clear | Role::Resolving))
                .unwrap();
            let resolving = roles.iter().position(|r| *r == Role::Resolving).unwrap();
            assert!(resolving > opening);
            assert_eq!(resolving - first_clear + 1, consecutive as usize);
        }
    }

    #[test]
    fn values_match_their_roles() {
        let mut signal = Signal::new(Some(Cycle::new(3, 10.0, 1.0)), 7);
        for _ in 0..1000 {
            let sample = signal.next_sample();
            match sample.role {
                Role::Breach | Role::Opening => assert!(sample.celsius > 30.0, "{sample:?}"),
                _ => {
                    assert!(sample.celsius > 21.0, "{sample:?}");
                    assert!(sample.celsius < 29.0, "{sample:?}");
                }
            }
        }
    }

    #[test]
    fn normal_sensor_never_breaches() {
        let mut signal = Signal::new(None, 1);
        for _ in 0..1000 {
            let sample = signal.next_sample();
            assert_eq!(sample.role, Role::Normal);
            assert!(sample.celsius > 21.0, "{sample:?}");
            assert!(sample.celsius < 29.0, "{sample:?}");
        }
        assert_eq!(signal.readings_to_finish(), 0);
    }

    #[test]
    fn finishing_ends_after_the_resolving_reading() {
        let cycle = Cycle::new(3, 10.0, 1.2);
        let mut signal = Signal::new(Some(cycle), 3);
        for _ in 0..5 {
            signal.next_sample();
        }
        // One breaching reading sent; three more and four cleared remain.
        assert_eq!(signal.readings_to_finish(), 7);
        let rest: Vec<Role> = (0..7).map(|_| signal.next_sample().role).collect();
        assert!(rest.contains(&Role::Opening));
        assert!(rest.contains(&Role::Resolving));
        assert_eq!(signal.readings_to_finish(), 0);
    }

    #[test]
    fn finishing_is_zero_before_the_first_breach() {
        let cycle = Cycle::new(3, 10.0, 1.2);
        assert_eq!(cycle.readings_to_finish(0), 0);
        assert_eq!(cycle.readings_to_finish(4), 0);
        assert_eq!(cycle.readings_to_finish(12 + 11), 1);
    }

    #[test]
    fn same_seed_gives_same_values() {
        let cycle = Some(Cycle::new(3, 10.0, 1.0));
        let mut first = Signal::new(cycle, 42);
        let mut second = Signal::new(cycle, 42);
        for _ in 0..50 {
            assert_eq!(first.next_sample(), second.next_sample());
        }
    }

    #[test]
    fn breaching_count_rounds_with_a_floor_of_one() {
        assert_eq!(breaching_count(100, 0.05), 5);
        assert_eq!(breaching_count(20, 0.2), 4);
        assert_eq!(breaching_count(10, 0.01), 1);
        assert_eq!(breaching_count(10, 0.0), 0);
        assert_eq!(breaching_count(10, 1.0), 10);
    }
}
