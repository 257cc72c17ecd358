//! The statistics every table and measurement uses: mean and sample standard deviation over
//! seeds, the median of timings, and for claims of the form "A scores higher than B" over seeds
//! Welch's t-test, one-sided, with the verdict rule every report states.
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Mean and sample standard deviation (n - 1); the deviation of one value is 0, and an empty
/// slice gives a NaN mean (no data is not zero).
pub fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let sd = if xs.len() > 1 { (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() } else { 0.0 };
    (mean, sd)
}

/// The median: the middle value, or the mean of the middle two; `None` when empty.
pub fn median(mut xs: Vec<f64>) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(|a, b| a.total_cmp(b));
    let n = xs.len();
    Some(if n % 2 == 1 { xs[n / 2] } else { 0.5 * (xs[n / 2 - 1] + xs[n / 2]) })
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Welch {
    pub t: f64,
    /// Welch-Satterthwaite degrees of freedom.
    pub df: f64,
    /// P(T >= t) under "no difference": small when A is larger than B.
    pub p_greater: f64,
}

/// Welch's t-test of mean(a) > mean(b). `None` with fewer than 2 values on a side, or when
/// both sides have zero variance (the t statistic is undefined).
pub fn welch_greater(a: &[f64], b: &[f64]) -> Option<Welch> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let (ma, va) = mean_var(a);
    let (mb, vb) = mean_var(b);
    let (sa, sb) = (va / a.len() as f64, vb / b.len() as f64);
    let se2 = sa + sb;
    if se2 <= 0.0 {
        return None;
    }
    let t = (ma - mb) / se2.sqrt();
    let df = se2 * se2 / (sa * sa / (a.len() as f64 - 1.0) + sb * sb / (b.len() as f64 - 1.0));
    let dist = StudentsT::new(0.0, 1.0, df).ok()?;
    Some(Welch { t, df, p_greater: 1.0 - dist.cdf(t) })
}

fn mean_var(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    (m, x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0))
}

/// The rule: "A > B" is reproduced when the one-sided p < `alpha`, contradicted when the
/// reverse test has p < `alpha`, else inconclusive (also when the test is undefined).
pub fn verdict(w: Option<Welch>, alpha: f64) -> &'static str {
    match w {
        Some(w) if w.p_greater < alpha => "reproduced",
        Some(w) if 1.0 - w.p_greater < alpha => "contradicted",
        _ => "inconclusive",
    }
}

/// Power a claim's test is planned for: the chance that `reproduced` comes out when the true gap
/// is the one assumed.
pub const POWER: f64 = 0.8;

/// Seeds a side (equal on both sides) for a one-sided Welch test at `alpha` to reach `power`
/// when the true means differ by `gap` in the claimed direction and each side's seed-to-seed sd
/// is `sd`: the smallest n (2 to 1,000) with P(T_{2n-2} > t_crit - gap / (sd sqrt(2/n))) >= power,
/// the shifted-t approximation of the noncentral t (it gives G*Power's 14 a side at gap = sd and
/// 21 at gap = 0.8 sd). `None` when the gap is not positive (nothing to detect), the sd is not
/// positive or finite, or more than 1,000 seeds would be needed.
pub fn seeds_for_power(gap: f64, sd: f64, alpha: f64, power: f64) -> Option<usize> {
    if !(gap.is_finite() && gap > 0.0 && sd.is_finite() && sd > 0.0) {
        return None;
    }
    (2..=1000usize).find(|&n| {
        let df = 2.0 * (n as f64 - 1.0);
        let Ok(t) = StudentsT::new(0.0, 1.0, df) else { return false };
        let shift = gap / (sd * (2.0 / n as f64).sqrt());
        1.0 - t.cdf(t.inverse_cdf(1.0 - alpha) - shift) >= power
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_sd_and_median_follow_their_definitions() {
        assert_eq!(mean_sd(&[1.0, 3.0]), (2.0, 2f64.sqrt()));
        assert_eq!(mean_sd(&[5.0]), (5.0, 0.0));
        assert!(mean_sd(&[]).0.is_nan());
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }

    #[test]
    fn matches_a_hand_computed_welch_test() {
        // a = [5, 6, 7], b = [1, 2, 3]: means 6 and 2, variances 1 and 1; se = sqrt(2/3);
        // t = 4 / 0.8165 = 4.899; df = (2/3)^2 / (2 * (1/3)^2 / 2) = 4. P(T_4 >= 4.899) = 0.00401.
        let w = welch_greater(&[5.0, 6.0, 7.0], &[1.0, 2.0, 3.0]).unwrap();
        assert!((w.t - 4.898979).abs() < 1e-5, "{w:?}");
        assert!((w.df - 4.0).abs() < 1e-9, "{w:?}");
        assert!((w.p_greater - 0.004007).abs() < 2e-5, "{w:?}");
        assert_eq!(verdict(Some(w), 0.05), "reproduced");
        let r = welch_greater(&[1.0, 2.0, 3.0], &[5.0, 6.0, 7.0]);
        assert_eq!(verdict(r, 0.05), "contradicted");
        let close = welch_greater(&[1.0, 2.0, 3.0], &[1.5, 2.5, 2.0]);
        assert_eq!(verdict(close, 0.05), "inconclusive");
        assert_eq!(welch_greater(&[1.0, 1.0], &[1.0, 1.0]), None, "no variance, no test");
        assert_eq!(verdict(None, 0.05), "inconclusive");
    }

    #[test]
    fn seeds_for_power_matches_the_textbook_sample_sizes() {
        // One-sided two-sample t-test, alpha 0.05, power 0.8 (G*Power): d = 1 needs 14 a side,
        // d = 0.8 needs 21, d = 0.5 needs 51; a large effect still needs 2 (a test needs spread).
        assert_eq!(seeds_for_power(1.0, 1.0, 0.05, POWER), Some(14));
        assert_eq!(seeds_for_power(0.08, 0.1, 0.05, POWER), Some(21));
        assert_eq!(seeds_for_power(0.5, 1.0, 0.05, POWER), Some(51));
        assert_eq!(seeds_for_power(50.0, 1.0, 0.05, POWER), Some(2));
        assert!(seeds_for_power(2.0, 1.0, 0.05, POWER).unwrap() < seeds_for_power(1.0, 1.0, 0.05, POWER).unwrap());
        assert_eq!(seeds_for_power(-0.1, 1.0, 0.05, POWER), None, "the paper's numbers point the other way");
        assert_eq!(seeds_for_power(0.1, 0.0, 0.05, POWER), None);
        assert_eq!(seeds_for_power(1e-6, 1.0, 0.05, POWER), None, "over 1,000 seeds");
    }
}
