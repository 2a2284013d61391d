//! Percentiles of a set of latency samples, by the nearest-rank method.

use serde::Serialize;

/// Summary of a set of samples, in their unit (milliseconds for latency).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Distribution {
    pub count: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Distribution {
    /// Summarises `samples`; `None` when there are none. Samples that are
    /// not finite are ignored.
    pub fn of(samples: &[f64]) -> Option<Self> {
        let mut sorted: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
        sorted.sort_by(f64::total_cmp);
        let max = *sorted.last()?;
        let mean = sorted.iter().sum::<f64>() / sorted.len() as f64;
        Some(Self {
            count: sorted.len(),
            p50: nearest_rank(&sorted, 0.50)?,
            p90: nearest_rank(&sorted, 0.90)?,
            p99: nearest_rank(&sorted, 0.99)?,
            max,
            mean,
        })
    }
}

/// Returns the `quantile` (0 to 1) of `sorted` by the nearest-rank method:
/// the smallest sample with at least that share of samples at or below it.
/// `None` for an empty slice.
pub fn nearest_rank(sorted: &[f64], quantile: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (quantile.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_of_one_to_hundred() {
        let sorted: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(nearest_rank(&sorted, 0.50), Some(50.0));
        assert_eq!(nearest_rank(&sorted, 0.90), Some(90.0));
        assert_eq!(nearest_rank(&sorted, 0.99), Some(99.0));
        assert_eq!(nearest_rank(&sorted, 1.0), Some(100.0));
        assert_eq!(nearest_rank(&sorted, 0.0), Some(1.0));
    }

    #[test]
    fn nearest_rank_of_few_samples() {
        let sorted = [3.0, 7.0, 9.0];
        assert_eq!(nearest_rank(&sorted, 0.50), Some(7.0));
        assert_eq!(nearest_rank(&sorted, 0.99), Some(9.0));
        assert_eq!(nearest_rank(&[4.5], 0.5), Some(4.5));
        assert_eq!(nearest_rank(&[], 0.5), None);
    }

    #[test]
    fn distribution_sorts_its_input() {
        let distribution = Distribution::of(&[5.0, 1.0, 4.0, 2.0, 3.0]).unwrap();
        assert_eq!(distribution.count, 5);
        assert_eq!(distribution.p50, 3.0);
        assert_eq!(distribution.p90, 5.0);
        assert_eq!(distribution.max, 5.0);
        assert_eq!(distribution.mean, 3.0);
    }

    #[test]
    fn distribution_ignores_non_finite_samples() {
        let distribution = Distribution::of(&[f64::NAN, 2.0, f64::INFINITY]).unwrap();
        assert_eq!(distribution.count, 1);
        assert_eq!(distribution.max, 2.0);
        assert_eq!(Distribution::of(&[]), None);
        assert_eq!(Distribution::of(&[f64::NAN]), None);
    }
}
