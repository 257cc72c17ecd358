//! Claim verdicts, one module for the paper tables and retrieval: a one-sided Welch test over
//! seeds that one side is better, the rule that names the verdict, and `claims.json` beside the
//! report, from which the report's counts and the reports index are taken.
use crate::stats::{self, Welch};
use serde::{Deserialize, Serialize};

/// Significance level of the one-sided tests.
pub const ALPHA: f64 = 0.05;

/// The rule, as every report states it.
pub fn rule() -> String {
    format!(
        "Rule: **reproduced** when p < {ALPHA}, **contradicted** when the reverse one-sided test has p < {ALPHA}, else \
         **inconclusive** (also when a side has fewer than 2 seeds, or neither has spread)."
    )
}

/// One tested claim, as `claims.json` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The report section it is in (`paper tables`, `retrieval`).
    pub section: String,
    /// What is claimed, in the suite's words or the section's.
    pub claim: String,
    /// The side claimed better, and the other.
    pub better: String,
    pub than: String,
    /// The metric and its view (`eval_loss (final)`, `top-1 at n = 32`).
    pub metric: String,
    pub mean_better: f64,
    pub mean_than: f64,
    pub seeds_better: usize,
    pub seeds_than: usize,
    pub t: Option<f64>,
    pub df: Option<f64>,
    /// p of the one-sided test that `better` is better.
    pub p: Option<f64>,
    /// `reproduced`, `contradicted` or `inconclusive`.
    pub verdict: String,
}

impl Verdict {
    /// Tests `better` against `than` over seeds (values `xa` and `xb`); for a metric where lower
    /// is better (losses, Hamming) the test is mean(than) > mean(better).
    #[allow(clippy::too_many_arguments)]
    pub fn test(section: &str, claim: &str, better: &str, than: &str, metric: &str, xa: &[f64], xb: &[f64], lower_is_better: bool) -> Self {
        let w: Option<Welch> = if lower_is_better { stats::welch_greater(xb, xa) } else { stats::welch_greater(xa, xb) };
        Verdict {
            section: section.into(),
            claim: claim.into(),
            better: better.into(),
            than: than.into(),
            metric: metric.into(),
            mean_better: stats::mean_sd(xa).0,
            mean_than: stats::mean_sd(xb).0,
            seeds_better: xa.len(),
            seeds_than: xb.len(),
            t: w.map(|w| w.t),
            df: w.map(|w| w.df),
            p: w.map(|w| w.p_greater),
            verdict: stats::verdict(w, ALPHA).into(),
        }
    }

    /// The t, df, p and verdict cells of a markdown table.
    pub fn cells(&self) -> [String; 4] {
        [
            self.t.map_or("—".into(), |t| format!("{t:.2}")),
            self.df.map_or("—".into(), |d| format!("{d:.1}")),
            self.p.map_or("—".into(), |p| format!("{p:.3}")),
            self.verdict.clone(),
        ]
    }
}

/// How many claims have each verdict.
pub fn tally(claims: &[Verdict]) -> serde_json::Value {
    let n = |v: &str| claims.iter().filter(|c| c.verdict == v).count();
    serde_json::json!({ "reproduced": n("reproduced"), "contradicted": n("contradicted"), "inconclusive": n("inconclusive") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_is_better_tests_the_other_way_and_cells_match_the_stats_columns() {
        let (low, high) = ([1.0, 1.1, 0.9], [2.0, 2.1, 1.9]);
        let loss = Verdict::test("t", "c", "a", "b", "eval_loss (final)", &low, &high, true);
        assert_eq!(loss.verdict, "reproduced");
        let acc = Verdict::test("t", "c", "a", "b", "top-1", &low, &high, false);
        assert_eq!(acc.verdict, "contradicted");
        let w = stats::welch_greater(&low, &high).unwrap();
        assert_eq!(acc.cells(), [format!("{:.2}", w.t), format!("{:.1}", w.df), format!("{:.3}", w.p_greater), "contradicted".into()]);
        let one = Verdict::test("t", "c", "a", "b", "top-1", &[1.0], &high, false);
        assert_eq!((one.verdict.as_str(), one.p), ("inconclusive", None));
        assert_eq!(tally(&[loss, acc, one]), serde_json::json!({ "reproduced": 1, "contradicted": 1, "inconclusive": 1 }));
    }
}
