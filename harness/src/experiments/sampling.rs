//! Candidate sets for retrieval (PAPER.md F.1, F.2): for query i of a pool of N pairs, the
//! candidates are k - 1 passages drawn uniformly without replacement from the pool without i,
//! and the true passage i at a uniformly random slot among the k.
//!
//! Each query draws from its own seeded stream, so a draw does not depend on the thread count,
//! the batch size or the order in which queries are visited.
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// One query's candidates (pool indices) and the slot of its true passage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draw {
    pub candidates: Vec<i64>,
    pub target: i64,
}

/// The stream of query `i` under (`seed`, `purpose`): purposes keep, e.g., epoch 3's training
/// draws apart from the evaluation draws of the same seed.
pub fn rng_for(seed: u64, purpose: u64, i: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ purpose.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    rng.set_stream(i);
    rng
}

/// `k` distinct values of `0..pool` other than `exclude`, uniformly: a partial Fisher-Yates
/// shuffle over `scratch` (the identity on `0..pool-1`), undone afterwards so it stays the
/// identity. O(k) per call.
fn distinct_excluding(rng: &mut ChaCha8Rng, pool: usize, exclude: usize, k: usize, scratch: &mut Vec<u32>) -> Vec<i64> {
    let m = pool - 1; // values 0..m stand for the pool without `exclude`
    if scratch.len() != m {
        *scratch = (0..m as u32).collect();
    }
    let mut swaps = Vec::with_capacity(k);
    for j in 0..k {
        let r = rng.random_range(j..m);
        scratch.swap(j, r);
        swaps.push(r);
    }
    let out = scratch[..k].iter().map(|&v| if (v as usize) < exclude { v as i64 } else { v as i64 + 1 }).collect();
    for (j, r) in swaps.into_iter().enumerate().rev() {
        scratch.swap(j, r);
    }
    out
}

/// Candidates for query `truth` of a pool of `pool` pairs: `k` slots, the true passage at a
/// uniformly random one. Needs `k <= pool`.
pub fn draw(rng: &mut ChaCha8Rng, pool: usize, truth: usize, k: usize, scratch: &mut Vec<u32>) -> Draw {
    assert!(k >= 1 && k <= pool, "k = {k} candidates from a pool of {pool}");
    let mut candidates = distinct_excluding(rng, pool, truth, k - 1, scratch);
    let target = rng.random_range(0..k);
    candidates.insert(target, truth as i64);
    Draw { candidates, target: target as i64 }
}

/// Draws for many queries in parallel: `queries[q]` is the pool index of query q's passage.
/// Returns the candidates flat (`[queries.len() * k]`, row-major) and the targets.
pub fn draw_many(seed: u64, purpose: u64, queries: &[usize], pool: usize, k: usize) -> (Vec<i64>, Vec<i64>) {
    let draws: Vec<Draw> = queries
        .par_iter()
        .map_init(Vec::new, |scratch, &i| draw(&mut rng_for(seed, purpose, i as u64), pool, i, k, scratch))
        .collect();
    let mut flat = Vec::with_capacity(queries.len() * k);
    let mut targets = Vec::with_capacity(queries.len());
    for d in draws {
        flat.extend(d.candidates);
        targets.push(d.target);
    }
    (flat, targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_distinct_and_hold_the_truth_once() {
        let mut scratch = Vec::new();
        for i in 0..200u64 {
            let truth = (i * 7 % 50) as usize;
            let d = draw(&mut rng_for(1, 2, i), 50, truth, 10, &mut scratch);
            assert_eq!(d.candidates.len(), 10);
            let set: std::collections::BTreeSet<_> = d.candidates.iter().collect();
            assert_eq!(set.len(), 10, "no candidate repeats: {:?}", d.candidates);
            assert!(d.candidates.iter().all(|c| (0..50).contains(c)));
            assert_eq!(d.candidates.iter().filter(|&&c| c == truth as i64).count(), 1, "the query sees its passage once");
            assert_eq!(d.candidates[d.target as usize], truth as i64);
        }
        // The whole pool: every passage exactly once.
        let d = draw(&mut rng_for(0, 0, 0), 5, 3, 5, &mut scratch);
        let mut sorted = d.candidates.clone();
        sorted.sort();
        assert_eq!(sorted, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn the_match_slot_and_the_negatives_are_uniform() {
        // Every query of a pool of 12, under 1,500 purposes (epochs): 18,000 draws of k = 8. Each
        // slot should hold the match 1/8 of the time and each other passage be a negative
        // (k-1)/(pool-1) = 7/11 of the time; bounds of 5 binomial standard deviations.
        let (pool, k, epochs) = (12usize, 8usize, 1500u64);
        let queries: Vec<usize> = (0..pool).collect();
        let (mut slot, mut negative) = (vec![0usize; k], vec![0usize; pool]);
        for e in 0..epochs {
            let (flat, targets) = draw_many(9, e, &queries, pool, k);
            targets.iter().for_each(|t| slot[*t as usize] += 1);
            for (q, row) in flat.chunks(k).enumerate() {
                row.iter().filter(|&&c| c as usize != q).for_each(|&c| negative[c as usize] += 1);
            }
        }
        let n = (pool as u64 * epochs) as f64;
        let p = 1.0 / k as f64;
        for c in slot {
            assert!((c as f64 - p * n).abs() < 5.0 * (n * p * (1.0 - p)).sqrt(), "slot count {c} vs {}", p * n);
        }
        let trials = (pool as u64 - 1) as f64 * epochs as f64; // draws in which a passage is not the match
        let q = (k - 1) as f64 / (pool - 1) as f64;
        for c in negative {
            assert!((c as f64 - q * trials).abs() < 5.0 * (trials * q * (1.0 - q)).sqrt(), "negative count {c} vs {}", q * trials);
        }
    }

    #[test]
    fn draws_do_not_depend_on_threads_or_order() {
        let queries: Vec<usize> = (0..300).collect();
        let a = draw_many(3, 7, &queries, 300, 16);
        let reversed: Vec<usize> = queries.iter().rev().copied().collect();
        let b = draw_many(3, 7, &reversed, 300, 16);
        let row = |flat: &Vec<i64>, r: usize| flat[r * 16..(r + 1) * 16].to_vec();
        assert_eq!(row(&a.0, 0), row(&b.0, 299));
        assert_eq!(a.1[5], b.1[294]);
        assert_ne!(draw_many(4, 7, &queries, 300, 16).0, a.0, "another seed, other draws");
        assert_ne!(draw_many(3, 8, &queries, 300, 16).0, a.0, "another purpose, other draws");
    }
}
