//! Order statistics of a handful of samples.
//!
//! Benchmarks on a shared two-core machine are noisy, so the report shows the spread (min, median,
//! p90, max) rather than a mean that one stalled run can drag anywhere.

/// The summary of one side of one metric.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Summary {
    /// How many samples.
    pub n: usize,
    /// Smallest sample.
    pub min: f64,
    /// Middle sample; the mean of the two middle ones for an even count.
    pub median: f64,
    /// Nearest-rank 90th percentile: the smallest sample at least 90% of the samples do not
    /// exceed (no interpolation, so it is always a value that was measured).
    pub p90: f64,
    /// Largest sample.
    pub max: f64,
}

/// Summarizes `samples`; `None` when there are none.
pub fn summarize(samples: &[f64]) -> Option<Summary> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median =
        if n % 2 == 1 { sorted[n / 2] } else { f64::midpoint(sorted[n / 2 - 1], sorted[n / 2]) };
    // Nearest rank: ceil(0.9 n), 1-based. Integer arithmetic avoids 0.9 * 10 = 9.000000000000002.
    let rank = (9 * n).div_ceil(10);
    Some(Summary { n, min: sorted[0], median, p90: sorted[rank - 1], max: sorted[n - 1] })
}

/// Picket's median over Sentinel's; `None` when either side is missing or Sentinel's is zero.
pub fn ratio(picket: Option<&Summary>, sentinel: Option<&Summary>) -> Option<f64> {
    let (p, s) = (picket?, sentinel?);
    (s.median != 0.0).then(|| p.median / s.median)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_even_and_single() {
        let s = summarize(&[5.0, 1.0, 3.0]).unwrap();
        assert_eq!(s, Summary { n: 3, min: 1.0, median: 3.0, p90: 5.0, max: 5.0 });
        let s = summarize(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!((s.median, s.p90), (2.5, 4.0));
        let s = summarize(&[7.0]).unwrap();
        assert_eq!((s.min, s.median, s.p90, s.max), (7.0, 7.0, 7.0, 7.0));
        assert_eq!(summarize(&[]), None);
    }

    #[test]
    fn p90_is_nearest_rank() {
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(summarize(&ten).unwrap().p90, 9.0);
        let twenty: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(summarize(&twenty).unwrap().p90, 18.0);
        let five: Vec<f64> = (1..=5).map(f64::from).collect();
        assert_eq!(summarize(&five).unwrap().p90, 5.0);
    }

    #[test]
    fn ratio_of_medians() {
        let p = summarize(&[1.0, 2.0, 3.0]).unwrap();
        let s = summarize(&[4.0]).unwrap();
        assert_eq!(ratio(Some(&p), Some(&s)), Some(0.5));
        assert_eq!(ratio(Some(&p), None), None);
        let zero = summarize(&[0.0]).unwrap();
        assert_eq!(ratio(Some(&p), Some(&zero)), None);
    }
}
