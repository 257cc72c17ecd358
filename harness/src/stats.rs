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
}

