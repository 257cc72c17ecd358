//! Top-1 retrieval accuracy vs n, the F.2 protocol (`retrieval_benchmark.py`), the same for every
//! embedding source: L2-normalised test embeddings; for each query, n - 1 distinct random test
//! passages other than its own plus its own at a random slot; correct when its own passage has
//! the largest dot product. n counts the query slot, as in T1 (candidates = n - 1).
//!
//! Scores come from one matrix product per chunk of queries against every test passage, then a
//! gather of each query's candidates: 20,000 queries at n = 8192 is 20,000 x 20,000 dot products.
use super::sampling::draw_many;
use super::{Experiment, RunContext, RunOutput};
use crate::suite::kind::{need_upstream, section_or_default};
use crate::suite::{ExperimentKind, Invalid, KindRules, RunConfig};
use anyhow::Result;
use serde::Serialize;
use tch::{Device, Kind, Tensor};

/// One n of the evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub n: i64,
    /// Percent of queries whose own passage scored highest.
    pub top1: f64,
    pub queries: i64,
    /// 100 / (n - 1): what random embeddings score.
    pub chance: f64,
}

/// Top-1 (%) of `queries` against `passages` (`[N, d]` each, row i matching row i) at `n`
/// samples per comparison; the draws are seeded by `seed`. Needs n <= N.
pub fn top1(queries: &Tensor, passages: &Tensor, n: i64, seed: u64, chunk: i64, device: Device) -> f64 {
    let pool = queries.size()[0];
    let q = normalize(queries).to_device(device);
    let p = normalize(passages).to_device(device);
    let k = (n - 1) as usize; // candidates
    let mut correct = 0i64;
    tch::no_grad(|| {
        let mut start = 0;
        while start < pool {
            let len = chunk.min(pool - start);
            let ids: Vec<usize> = (start as usize..(start + len) as usize).collect();
            let (flat, targets) = draw_many(seed, n as u64, &ids, pool as usize, k);
            let cand = Tensor::from_slice(&flat).view([len, k as i64]).to_device(device);
            let target = Tensor::from_slice(&targets).to_device(device);
            let scores = q.narrow(0, start, len).matmul(&p.tr()); // [len, N]
            let picked = scores.gather(1, &cand, false).argmax(1, false); // [len]
            correct += picked.eq_tensor(&target).sum(Kind::Int64).int64_value(&[]);
            start += len;
        }
    });
    100.0 * correct as f64 / pool as f64
}

/// How candidates are drawn, for the manifest (the reference's overwrite of a random slot).
pub const SAMPLING: &str = "per query: n - 2 other passages of the split drawn uniformly without replacement, \
     then the match at a uniformly random candidate slot (the reference draws n - 1 and overwrites one)";

fn normalize(x: &Tensor) -> Tensor {
    let x = x.to_kind(Kind::Float);
    let norm = x.norm_scalaropt_dim(2, [1i64].as_slice(), true).clamp_min(1e-12);
    x / norm
}

pub struct RetrievalEval;

impl KindRules for RetrievalEval {
    fn kind(&self) -> ExperimentKind {
        ExperimentKind::RetrievalEval
    }

    fn sections(&self) -> &'static [&'static str] {
        &["retrieval_eval", "device", "cpu_kernels"]
    }

    fn producers(&self) -> &'static [ExperimentKind] {
        &[ExperimentKind::Embed]
    }

    fn validate(&self, c: &mut RunConfig) -> Result<(), Invalid> {
        need_upstream(c)?;
        let r = section_or_default(&mut c.retrieval_eval, "retrieval_eval")?;
        if r.n.is_empty() || r.n.iter().any(|n| *n < 2) {
            return Err(Invalid::new("retrieval_eval.n", format!("needs values >= 2 (the query slot plus candidates), got {:?}", r.n)));
        }
        r.n.sort_unstable();
        r.n.dedup();
        if r.chunk < 1 {
            return Err(Invalid::new("retrieval_eval.chunk", "must be at least 1"));
        }
        Ok(())
    }

    /// The sample sizes the test split holds (the smallest of the paper's when none does).
    fn at_shapes(&self, c: &mut RunConfig) {
        if let Some(e) = c.retrieval_eval.as_mut() {
            let held = crate::suite::shapes::TEST_PAIRS as i64;
            let first = e.n.iter().copied().min().unwrap_or(held).min(held);
            e.n.retain(|&n| n <= held);
            if e.n.is_empty() {
                e.n.push(first);
            }
        }
    }
}

impl Experiment for RetrievalEval {
    fn run(&self, ctx: &RunContext) -> Result<RunOutput> {
        run(ctx)
    }

    fn report(&self) -> Option<&'static dyn crate::report::Section> {
        Some(&crate::report::retrieval::Retrieval)
    }
}


fn run(ctx: &RunContext) -> Result<RunOutput> {
    let cfg = &ctx.run.config;
    let ev = cfg.retrieval_eval.as_ref().expect("validated: retrieval_eval has its section");
    let mut out = RunOutput::default();
    let emb = super::embed::from_producer(ctx, &mut out)?;
    let (q, p) = &emb.test;
    let pool = q.size()[0];
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for &n in &ev.n {
        if n > pool {
            skipped.push(n); // n - 1 distinct others need a pool of at least n
            continue;
        }
        let acc = top1(q, p, n, cfg.seed, ev.chunk, ctx.device);
        rows.push(Row { n, top1: acc, queries: pool, chance: 100.0 / (n - 1) as f64 });
    }
    anyhow::ensure!(
        !rows.is_empty(),
        "retrieval_eval.n = {:?}: every n is larger than the {pool} test pairs (a query needs n - 1 other passages): nothing would be measured; lower n or give more test pairs",
        ev.n
    );
    ctx.dir.write_json("retrieval_eval.json", &rows)?;
    let s = &mut out.summary;
    s.insert("test_pairs".into(), pool.into());
    for r in &rows {
        s.insert(format!("top1@{}", r.n), r.top1.into());
    }
    if !skipped.is_empty() {
        s.insert("skipped_n".into(), serde_json::to_value(&skipped)?);
        out.execution.insert("skipped".into(), format!("n = {skipped:?}: larger than the test pool of {pool} pairs"));
    }
    out.execution.insert("device".into(), crate::device::describe(ctx.device));
    out.execution.insert("candidates".into(), SAMPLING.into());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_embeddings_score_100_at_every_n() {
        tch::manual_seed(0);
        let x = Tensor::randn([300, 16], (Kind::Float, Device::Cpu));
        for n in [2, 4, 32, 300] {
            assert_eq!(top1(&x, &x, n, 1, 64, Device::Cpu), 100.0, "n = {n}");
        }
        // Scale does not matter: the embeddings are normalised.
        assert_eq!(top1(&x, &(&x * 5.0), 32, 1, 64, Device::Cpu), 100.0);
    }

    #[test]
    fn random_embeddings_score_chance_within_a_binomial_bound() {
        tch::manual_seed(1);
        let (pool, d) = (4000i64, 32);
        let q = Tensor::randn([pool, d], (Kind::Float, Device::Cpu));
        let p = Tensor::randn([pool, d], (Kind::Float, Device::Cpu));
        for n in [2i64, 4, 8, 32] {
            let chance = 1.0 / (n - 1) as f64;
            let sd = (chance * (1.0 - chance) / pool as f64).sqrt();
            let got = top1(&q, &p, n, 7, 500, Device::Cpu) / 100.0;
            assert!((got - chance).abs() <= 5.0 * sd + 1e-12, "n = {n}: {got} vs chance {chance} (sd {sd})");
        }
    }

    #[test]
    fn chunking_and_seed_behave() {
        tch::manual_seed(2);
        let q = Tensor::randn([257, 8], (Kind::Float, Device::Cpu));
        let p = &q + Tensor::randn([257, 8], (Kind::Float, Device::Cpu)) * 0.8;
        let a = top1(&q, &p, 16, 3, 1000, Device::Cpu);
        assert_eq!(a, top1(&q, &p, 16, 3, 10, Device::Cpu), "the chunk size changes nothing");
        assert!(a > 30.0 && a < 100.0, "{a}");
        // Harder with more candidates.
        assert!(top1(&q, &p, 256, 3, 64, Device::Cpu) < a);
    }
}
