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
         **inconclusive** (also when neither side has spread). A side with one seed has no test: the claim is then \
         **{SAME}** or **{AGAINST}** by the two means alone (as the paper's own single runs are)."
    )
}

/// What a claims table's last column means, as every report states it.
pub const SEEDS_RULE: &str = "`seeds a side for a test`: how many seeds each side needs for this test to come out \
     reproduced with 80% power (alpha 0.05) if the true gap is the paper's, with the seed sd measured here where both \
     sides have 2 or more seeds, else the suite's `[tolerance] seed_sd`; rerun with `--set 'seeds=[...]'` (a seed list \
     keeps the runs already finished, a profile would rename them).";

/// The verdict of a claim with a side of one seed whose means point the paper's way.
pub const SAME: &str = "same direction (untested)";
/// ... and whose means point the other way.
pub const AGAINST: &str = "against the paper (untested)";

/// Every verdict, in the order reports count them, with its `claims.json` tally key.
pub const VERDICTS: [(&str, &str); 5] = [
    ("reproduced", "reproduced"),
    ("contradicted", "contradicted"),
    ("inconclusive", "inconclusive"),
    (SAME, "same_direction_untested"),
    (AGAINST, "against_untested"),
];

fn null_as_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// The verdict when a side has fewer than 2 seeds: the direction of the means, untested; no
/// direction (a tie, a side without values) is inconclusive.
fn direction(mean_better: f64, mean_than: f64, lower_is_better: bool) -> &'static str {
    let d = if lower_is_better { mean_than - mean_better } else { mean_better - mean_than };
    if !d.is_finite() || d == 0.0 {
        "inconclusive"
    } else if d > 0.0 {
        SAME
    } else {
        AGAINST
    }
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
    /// Means over seeds; JSON writes a NaN (a side without values) or an infinity (a side that
    /// diverged) as null, read back as NaN, so a report with such a claim is still read whole.
    #[serde(deserialize_with = "null_as_nan")]
    pub mean_better: f64,
    #[serde(deserialize_with = "null_as_nan")]
    pub mean_than: f64,
    pub seeds_better: usize,
    pub seeds_than: usize,
    pub t: Option<f64>,
    pub df: Option<f64>,
    /// p of the one-sided test that `better` is better.
    pub p: Option<f64>,
    /// One of [`VERDICTS`]: `reproduced`, `contradicted` or `inconclusive` from the test, or with
    /// a side of one seed [`SAME`] or [`AGAINST`].
    pub verdict: String,
    /// Seeds a side a Welch test needs to come out `reproduced` with [`stats::POWER`] at the
    /// paper's gap between the two cells ([`Verdict::plan_seeds`]); none where the paper gives no
    /// gap in the claimed direction or no seed sd is known.
    #[serde(default)]
    pub seeds_needed: Option<usize>,
    /// What `seeds_needed` assumed: the paper's gap and the sd, measured or the suite's.
    #[serde(default)]
    pub seeds_basis: Option<String>,
    /// The pooled sd of the two sides over seeds, where both have 2 or more.
    #[serde(skip)]
    measured_sd: Option<f64>,
}

impl Verdict {
    /// Tests `better` against `than` over seeds (values `xa` and `xb`); for a metric where lower
    /// is better (losses, Hamming) the test is mean(than) > mean(better).
    #[allow(clippy::too_many_arguments)]
    pub fn test(section: &str, claim: &str, better: &str, than: &str, metric: &str, xa: &[f64], xb: &[f64], lower_is_better: bool) -> Self {
        // A diverged seed is an infinite value on the bad side (`train.on_divergence =
        // "record"`): no test over seeds, but a side that diverged in every seed is worse than a
        // side that trained in every seed; anything else (both diverged, or some seeds of a
        // side) is inconclusive.
        let infinite = |x: &[f64]| x.iter().filter(|v| v.is_infinite()).count();
        if infinite(xa) + infinite(xb) > 0 {
            let (a_diverged, b_diverged) = (!xa.is_empty() && infinite(xa) == xa.len(), !xb.is_empty() && infinite(xb) == xb.len());
            let (a_trained, b_trained) = (!xa.is_empty() && infinite(xa) == 0, !xb.is_empty() && infinite(xb) == 0);
            let tested = xa.len() >= 2 && xb.len() >= 2;
            let verdict = match (a_trained && b_diverged, a_diverged && b_trained) {
                (true, _) if tested => "reproduced",
                (true, _) => SAME,
                (_, true) if tested => "contradicted",
                (_, true) => AGAINST,
                _ => "inconclusive",
            };
            let mean = |x: &[f64]| if infinite(x) > 0 { if lower_is_better { f64::INFINITY } else { f64::NEG_INFINITY } } else { stats::mean_sd(x).0 };
            return Verdict {
                section: section.into(),
                claim: claim.into(),
                better: better.into(),
                than: than.into(),
                metric: format!("{metric}; a side that diverged counts as worse than one that trained"),
                mean_better: mean(xa),
                mean_than: mean(xb),
                seeds_better: xa.len(),
                seeds_than: xb.len(),
                t: None,
                df: None,
                p: None,
                verdict: verdict.into(),
                seeds_needed: None,
                seeds_basis: None,
                measured_sd: None,
            };
        }
        let w: Option<Welch> = if lower_is_better { stats::welch_greater(xb, xa) } else { stats::welch_greater(xa, xb) };
        let (mean_better, mean_than) = (stats::mean_sd(xa).0, stats::mean_sd(xb).0);
        let verdict = if xa.len() < 2 || xb.len() < 2 {
            if xa.is_empty() || xb.is_empty() { "inconclusive" } else { direction(mean_better, mean_than, lower_is_better) }
        } else {
            stats::verdict(w, ALPHA)
        };
        Verdict {
            section: section.into(),
            claim: claim.into(),
            better: better.into(),
            than: than.into(),
            metric: metric.into(),
            mean_better,
            mean_than,
            seeds_better: xa.len(),
            seeds_than: xb.len(),
            t: w.map(|w| w.t),
            df: w.map(|w| w.df),
            p: w.map(|w| w.p_greater),
            verdict: verdict.into(),
            seeds_needed: None,
            seeds_basis: None,
            measured_sd: (xa.len() > 1 && xb.len() > 1).then(|| {
                let (sa, sb) = (stats::mean_sd(xa).1, stats::mean_sd(xb).1);
                (((xa.len() - 1) as f64 * sa * sa + (xb.len() - 1) as f64 * sb * sb) / (xa.len() + xb.len() - 2) as f64).sqrt()
            }),
        }
    }

    /// How many seeds a side the claim's test needs: at the paper's own gap (`paper` = the
    /// paper's (better, than) values; positive in the claimed direction when the paper's numbers
    /// agree with its claim) and the seed sd measured here where both sides have 2 or more seeds,
    /// else the suite's stated `seed_sd` for the metric's kind.
    pub fn plan_seeds(mut self, paper: Option<(f64, f64)>, stated_sd: Option<f64>, lower_is_better: bool) -> Self {
        let Some((pb, pt)) = paper.filter(|(a, b)| a.is_finite() && b.is_finite()) else { return self };
        let gap = if lower_is_better { pt - pb } else { pb - pt };
        let (sd, whose) = match (self.measured_sd.filter(|s| *s > 0.0), stated_sd) {
            (Some(sd), _) => (sd, "measured over our seeds"),
            (None, Some(sd)) => (sd, "the suite's seed_sd"),
            (None, None) => return self,
        };
        self.seeds_needed = stats::seeds_for_power(gap, sd, ALPHA, stats::POWER);
        self.seeds_basis = Some(if gap > 0.0 {
            format!("paper gap {gap:.3}, sd {sd:.3} ({whose})")
        } else {
            format!("the paper's numbers do not point the claimed way (gap {gap:+.3})")
        });
        self
    }

    /// The claims table's "seeds for a test" cell: `3 (paper gap 0.070, sd 0.026 (the suite's
    /// seed_sd))`, `> 1000`, or — without a gap and sd.
    pub fn seeds_cell(&self) -> String {
        match (&self.seeds_needed, &self.seeds_basis) {
            (Some(n), Some(b)) => format!("{n} ({b})"),
            (None, Some(b)) if b.starts_with("paper gap") => format!("> 1000 ({b})"),
            (None, Some(b)) => format!("— ({b})"),
            _ => "—".into(),
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
    VERDICTS.iter().map(|(v, key)| (key.to_string(), serde_json::Value::from(n(v)))).collect::<serde_json::Map<_, _>>().into()
}

/// The tally as a sentence: "2 reproduced, 0 contradicted, 1 inconclusive", and the one-seed
/// verdicts where there are any.
pub fn tally_text(tally: &serde_json::Value) -> String {
    let n = |key: &str| tally.get(key).and_then(serde_json::Value::as_u64).unwrap_or(0);
    let mut parts: Vec<String> = VERDICTS[..3].iter().map(|(v, key)| format!("{} {v}", n(key))).collect();
    for (v, key) in &VERDICTS[3..] {
        if n(key) > 0 {
            parts.push(format!("{} {v}", n(key)));
        }
    }
    parts.join(", ")
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
        let none = Verdict::test("t", "c", "a", "b", "top-1", &[], &high, false);
        assert_eq!((none.verdict.as_str(), none.p), ("inconclusive", None));
        let flat = Verdict::test("t", "c", "a", "b", "top-1", &[2.0, 2.0], &[2.0, 2.0], false);
        assert_eq!(flat.verdict, "inconclusive", "no spread on either side: no test");
        let tally = tally(&[loss, acc, none, flat]);
        assert_eq!(
            tally,
            serde_json::json!({ "reproduced": 1, "contradicted": 1, "inconclusive": 2, "same_direction_untested": 0, "against_untested": 0 })
        );
        assert_eq!(tally_text(&tally), "1 reproduced, 1 contradicted, 2 inconclusive");
    }

    #[test]
    fn a_side_of_one_seed_gives_the_direction_untested_never_a_test() {
        // The paper's own layout: one run a side. Lower CE is better.
        let same = Verdict::test("t", "flat beats expanded", "T5 flat", "T5 expanded", "test (final)", &[2.111], &[2.183], true);
        assert_eq!((same.verdict.as_str(), same.p, same.t), (SAME, None, None));
        let against = Verdict::test("t", "c", "a", "b", "test (final)", &[2.2], &[2.1], true);
        assert_eq!(against.verdict, AGAINST);
        // Higher accuracy is better; one seed against three is still untested.
        assert_eq!(Verdict::test("t", "c", "a", "b", "top-1", &[90.0], &[80.0, 81.0, 79.0], false).verdict, SAME);
        assert_eq!(Verdict::test("t", "c", "a", "b", "top-1", &[70.0, 71.0, 69.0], &[80.0], false).verdict, AGAINST);
        assert_eq!(Verdict::test("t", "c", "a", "b", "top-1", &[80.0], &[80.0], false).verdict, "inconclusive", "a tie has no direction");
        // A side that diverged in every seed is worse than one that trained in every seed.
        let inf = f64::INFINITY;
        assert_eq!(Verdict::test("t", "c", "a", "b", "eval", &[3.1], &[inf], true).verdict, SAME);
        assert_eq!(Verdict::test("t", "c", "a", "b", "eval", &[inf], &[3.1], true).verdict, AGAINST);
        assert_eq!(Verdict::test("t", "c", "a", "b", "eval", &[3.1, 3.2], &[inf, inf], true).verdict, "reproduced");
        assert_eq!(Verdict::test("t", "c", "a", "b", "eval", &[inf, inf], &[3.1, 3.2], true).verdict, "contradicted");
        assert_eq!(Verdict::test("t", "c", "a", "b", "eval", &[3.1, 3.2], &[inf, 3.0], true).verdict, "inconclusive", "some seeds diverged");
        assert_eq!(Verdict::test("t", "c", "a", "b", "eval", &[inf], &[inf], true).verdict, "inconclusive");
        assert_eq!(Verdict::test("t", "c", "a", "b", "top-1", &[50.0, 52.0], &[f64::NEG_INFINITY; 2], false).verdict, "reproduced");
        // Written and read back (the paper report reads claims.json): the infinite mean is null.
        let v = Verdict::test("t", "c", "a", "b", "eval", &[3.1], &[inf], true);
        let back: Vec<Verdict> = serde_json::from_str(&serde_json::to_string(&vec![v.clone()]).unwrap()).unwrap();
        assert_eq!((back[0].verdict.as_str(), back[0].mean_better), (SAME, 3.1));
        assert!(back[0].mean_than.is_nan());
        let tally = tally(&[same, against]);
        assert_eq!(tally_text(&tally), format!("0 reproduced, 0 contradicted, 0 inconclusive, 1 {SAME}, 1 {AGAINST}"));
        assert!(rule().contains(SAME) && rule().contains(AGAINST));
    }

    #[test]
    fn seeds_are_planned_from_the_papers_gap_and_the_sd_measured_or_stated() {
        // One seed a side: the suite's sd. Lower CE is better; the paper has 2.111 vs 2.183.
        let one = Verdict::test("t", "c", "a", "b", "test", &[2.11], &[2.18], true).plan_seeds(Some((2.111, 2.183)), Some(0.072), true);
        assert_eq!(one.seeds_needed, Some(14), "gap = sd: 14 a side");
        assert!(one.seeds_cell().starts_with("14 (paper gap 0.072, sd 0.072 (the suite's seed_sd))"), "{}", one.seeds_cell());
        // Three seeds a side: our pooled sd (here 0.01) replaces the stated one.
        let three = Verdict::test("t", "c", "a", "b", "test", &[2.10, 2.11, 2.12], &[2.17, 2.18, 2.19], true).plan_seeds(Some((2.111, 2.183)), Some(1.0), true);
        assert_eq!(three.seeds_needed, stats::seeds_for_power(0.072, 0.01, ALPHA, stats::POWER));
        assert!(three.seeds_basis.as_deref().unwrap().contains("measured"));
        // Higher is better; the paper's numbers point against the claim: nothing to plan.
        let against = Verdict::test("t", "c", "a", "b", "top-1", &[90.0], &[80.0], false).plan_seeds(Some((70.0, 80.0)), Some(1.0), false);
        assert_eq!(against.seeds_needed, None);
        assert!(against.seeds_cell().contains("do not point"), "{}", against.seeds_cell());
        // No paper number or no sd: no plan, and the JSON of an older report still reads.
        assert_eq!(Verdict::test("t", "c", "a", "b", "x", &[1.0], &[2.0], true).plan_seeds(None, Some(1.0), true).seeds_cell(), "—");
        assert_eq!(Verdict::test("t", "c", "a", "b", "x", &[1.0], &[2.0], true).plan_seeds(Some((1.0, 2.0)), None, true).seeds_cell(), "—");
        let mut old = serde_json::to_value(&one).unwrap();
        old.as_object_mut().unwrap().retain(|k, _| k != "seeds_needed" && k != "seeds_basis");
        assert_eq!(serde_json::from_value::<Verdict>(old).unwrap().seeds_needed, None);
    }
}
