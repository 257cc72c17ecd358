//! Rows of n_ctx tokens, the unit a model trains and is evaluated on (PAPER.md B.1, B.2), read by
//! index from a token shard: `truncate` makes one row of each document (its first n_ctx ids,
//! padded on the padding side), `windows` cuts each document into floor(len / n_ctx) windows, the
//! remainder dropped. Rows are an index over the shard's documents, never materialized: a batch
//! is gathered when it is asked for, and its labels are derived in the gather (the ids, pads set
//! to [`IGNORE`]).
use super::shards::Shard;
use super::{DataError, Encoded, IGNORE};
use crate::suite::{Packing, PaddingSide};
use std::sync::Arc;
use tch::{Kind, Tensor};

/// Rows a trainer draws batches from: a count, the real tokens of each, and a gather. Shared with
/// the loader's thread, hence `Send + Sync`.
pub trait Rows: Send + Sync {
    fn len(&self) -> u64;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn n_ctx(&self) -> i64;

    /// Non-pad tokens of row `row`.
    fn real_tokens(&self, row: u64) -> u64;

    /// Rows `idx` as `[idx.len(), n_ctx]` int64 tokens and labels on the host.
    fn gather(&self, idx: &[i64]) -> Result<(Tensor, Tensor), DataError>;

    /// Rows `idx` will be gathered soon: start reading them (a hint; nothing by default).
    fn will_need(&self, _idx: &[i64]) {}

    /// Where the rows are read from, for the manifest.
    fn describe(&self) -> String;
}

/// A shard's documents seen as rows of one context length, padding side and packing.
pub struct TokenRows {
    shard: Arc<Shard>,
    n_ctx: usize,
    packing: Packing,
    side: PaddingSide,
    pad_id: i64,
    rows: u64,
    /// `windows`: the rows before document `b * BLOCK`, to find a row's document by bisection.
    block_rows: Vec<u64>,
}

/// Documents per entry of the windows' row index.
const BLOCK: usize = 64;

impl TokenRows {
    pub fn new(shard: Arc<Shard>, n_ctx: i64, packing: Packing, side: PaddingSide, pad_id: i64) -> Self {
        let l = n_ctx as usize;
        let (rows, block_rows) = match packing {
            Packing::Truncate => (shard.docs() as u64, Vec::new()),
            Packing::Windows => {
                let mut block_rows = Vec::with_capacity(shard.docs() / BLOCK + 1);
                let mut rows = 0u64;
                for d in 0..shard.docs() {
                    if d % BLOCK == 0 {
                        block_rows.push(rows);
                    }
                    rows += (shard.doc_len(d) as usize / l) as u64;
                }
                (rows, block_rows)
            }
        };
        Self { shard, n_ctx: l, packing, side, pad_id, rows, block_rows }
    }

    pub fn shard(&self) -> &Shard {
        &self.shard
    }

    /// Row `row` as (first id in the shard, ids).
    fn span(&self, row: u64) -> (u64, usize) {
        match self.packing {
            Packing::Truncate => {
                let d = row as usize;
                (self.shard.doc_offset(d), (self.shard.doc_len(d) as usize).min(self.n_ctx))
            }
            Packing::Windows => {
                let b = self.block_rows.partition_point(|&r| r <= row) - 1;
                let mut before = self.block_rows[b];
                let mut d = b * BLOCK;
                loop {
                    let w = (self.shard.doc_len(d) as usize / self.n_ctx) as u64;
                    if row < before + w {
                        return (self.shard.doc_offset(d) + (row - before) * self.n_ctx as u64, self.n_ctx);
                    }
                    before += w;
                    d += 1;
                }
            }
        }
    }

    fn check(&self, idx: &[i64]) -> Result<(), DataError> {
        match idx.iter().find(|&&i| i < 0 || i as u64 >= self.rows) {
            Some(i) => Err(DataError::Shard { path: self.shard.path.clone(), message: format!("row {i} asked of {} rows", self.rows) }),
            None => Ok(()),
        }
    }
}

impl Rows for TokenRows {
    fn len(&self) -> u64 {
        self.rows
    }

    fn n_ctx(&self) -> i64 {
        self.n_ctx as i64
    }

    fn real_tokens(&self, row: u64) -> u64 {
        self.span(row).1 as u64
    }

    fn gather(&self, idx: &[i64]) -> Result<(Tensor, Tensor), DataError> {
        self.check(idx)?;
        let l = self.n_ctx;
        let shape = [idx.len() as i64, l as i64];
        let (mut ids, mut scratch) = (vec![0u32; l], Vec::new());
        let mut spans = Vec::with_capacity(idx.len());
        let tokens = host_i64(shape, |tokens| {
            tokens.fill(self.pad_id);
            for (r, &row) in idx.iter().enumerate() {
                let (start, len) = self.span(row as u64);
                self.shard.read(start, &mut ids[..len], &mut scratch).map_err(|error| DataError::Read { path: self.shard.path.clone(), error })?;
                let at = r * l
                    + match self.side {
                        PaddingSide::Right => 0,
                        PaddingSide::Left => l - len,
                    };
                for (t, &id) in tokens[at..at + len].iter_mut().zip(&ids[..len]) {
                    *t = id as i64;
                }
                spans.push(at..at + len);
            }
            Ok(())
        })?;
        // Labels are the ids where the row has text, IGNORE over the pads.
        let labels = host_i64(shape, |labels| {
            labels.fill(IGNORE);
            // SAFETY: `tokens` was just made here, is contiguous int64 of the same shape, and
            // nothing writes it while it is read.
            let src = unsafe { host_slice(&tokens) };
            for span in spans {
                labels[span.clone()].copy_from_slice(&src[span]);
            }
            Ok(())
        })?;
        Ok((tokens, labels))
    }

    fn will_need(&self, idx: &[i64]) {
        for &row in idx.iter().filter(|&&i| i >= 0 && (i as u64) < self.rows) {
            let (start, len) = self.span(row as u64);
            self.shard.will_need(start, len);
        }
    }

    fn describe(&self) -> String {
        let how = match self.packing {
            Packing::Truncate => "one row a document",
            Packing::Windows => "windows",
        };
        format!("{} rows of {} ({how}) read from the token shard {} ({})", self.rows, self.n_ctx, short(&self.shard.key), self.shard.describe())
    }
}

fn short(key: &str) -> &str {
    key.get(..12).unwrap_or("in memory")
}

/// Tokens and labels already in memory (tests, small inputs), as rows.
pub struct MemoryRows {
    tokens: Vec<i64>,
    labels: Vec<i64>,
    n_ctx: usize,
}

impl From<&Encoded> for MemoryRows {
    fn from(e: &Encoded) -> Self {
        let n_ctx = e.tokens.size()[1] as usize;
        let flat = |t: &Tensor| Vec::<i64>::try_from(t.to_kind(Kind::Int64).reshape([-1])).expect("int64 rows");
        Self { tokens: flat(&e.tokens), labels: flat(&e.labels), n_ctx }
    }
}

impl Rows for MemoryRows {
    fn len(&self) -> u64 {
        (self.tokens.len() / self.n_ctx.max(1)) as u64
    }

    fn n_ctx(&self) -> i64 {
        self.n_ctx as i64
    }

    fn real_tokens(&self, row: u64) -> u64 {
        let r = row as usize * self.n_ctx;
        self.labels[r..r + self.n_ctx].iter().filter(|&&x| x != IGNORE).count() as u64
    }

    fn gather(&self, idx: &[i64]) -> Result<(Tensor, Tensor), DataError> {
        let l = self.n_ctx;
        let shape = [idx.len() as i64, l as i64];
        let pick = |v: &[i64]| {
            host_i64(shape, |out| {
                for (o, &i) in out.chunks_exact_mut(l.max(1)).zip(idx) {
                    o.copy_from_slice(&v[i as usize * l..(i as usize + 1) * l]);
                }
                Ok(())
            })
        };
        Ok((pick(&self.tokens)?, pick(&self.labels)?))
    }

    fn describe(&self) -> String {
        format!("{} rows of {} in memory", self.len(), self.n_ctx)
    }
}

/// A new `[rows, cols]` int64 host tensor, written by `fill`. Made with `Tensor::empty` and
/// filled from Rust: no ATen kernel runs, so the loader's thread never starts an OpenMP team of
/// its own (`Tensor::from_slice` fills zeros with a parallel kernel first, whose idle workers
/// would spin beside the training threads).
fn host_i64(shape: [i64; 2], fill: impl FnOnce(&mut [i64]) -> Result<(), DataError>) -> Result<Tensor, DataError> {
    let t = Tensor::empty(shape, (Kind::Int64, tch::Device::Cpu));
    // SAFETY: `t` is a fresh contiguous CPU int64 tensor that nothing else references yet.
    fill(unsafe { host_slice_mut(&t) })?;
    Ok(t)
}

/// The elements of a contiguous CPU int64 tensor.
///
/// # Safety
/// `t` must be contiguous int64 on the CPU, and nothing may write it while the slice lives.
unsafe fn host_slice(t: &Tensor) -> &[i64] {
    let n = t.numel();
    if n == 0 {
        return &[];
    }
    std::slice::from_raw_parts(t.data_ptr() as *const i64, n)
}

/// As [`host_slice`], writable.
///
/// # Safety
/// `t` must be contiguous int64 on the CPU, and nothing else may read or write it while the
/// slice lives.
#[allow(clippy::mut_from_ref)]
unsafe fn host_slice_mut(t: &Tensor) -> &mut [i64] {
    let n = t.numel();
    if n == 0 {
        return &mut [];
    }
    std::slice::from_raw_parts_mut(t.data_ptr() as *mut i64, n)
}

/// Every row of `rows` at once, as one [`Encoded`] (prompts and other small inputs).
pub fn all(rows: &dyn Rows) -> Result<Encoded, DataError> {
    let idx: Vec<i64> = (0..rows.len() as i64).collect();
    let (tokens, labels) = rows.gather(&idx)?;
    Ok(Encoded { tokens, labels })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::shards::encode_in_memory;
    use crate::data::{Corpus, Tok};
    use crate::suite::DataConfig;

    fn setup(dir: &std::path::Path) -> (Tok, Vec<String>) {
        let cfg: DataConfig = toml::from_str("source = \"embedded\"\nn_ctx = 16\nvocab_size = 300\nn_stories = 200").unwrap();
        let corpus = Corpus::open(&cfg).unwrap();
        (Tok::for_run(&cfg, &corpus, dir).unwrap(), corpus.train_in_memory().unwrap())
    }

    /// The rows as the harness built them before shards held whole documents (one flat
    /// `[n, n_ctx]` array cut at encoding time): the reference the gather must equal.
    fn materialized(tok: &Tok, docs: &[String], n_ctx: usize, side: PaddingSide, packing: Packing) -> (Vec<i64>, Vec<i64>) {
        let (mut tokens, mut labels) = (Vec::new(), Vec::new());
        let mut push = |ids: &[u32]| {
            let mut t = vec![tok.pad_id; n_ctx];
            let mut y = vec![IGNORE; n_ctx];
            let start = if side == PaddingSide::Left { n_ctx - ids.len() } else { 0 };
            for (k, &id) in ids.iter().enumerate() {
                t[start + k] = id as i64;
                y[start + k] = id as i64;
            }
            tokens.extend(t);
            labels.extend(y);
        };
        for d in docs {
            let ids = tok.tokenizer.encode(d.as_str(), false).unwrap().get_ids().to_vec();
            match packing {
                Packing::Truncate => push(&ids[..ids.len().min(n_ctx)]),
                Packing::Windows => ids.chunks_exact(n_ctx).for_each(&mut push),
            }
        }
        (tokens, labels)
    }

    #[test]
    fn gathered_rows_equal_the_materialized_rows_in_any_order() {
        let dir = tempfile::tempdir().unwrap();
        let (tok, docs) = setup(dir.path());
        // Documents of every length around the context lengths, across several index blocks.
        let docs: Vec<String> = (0..300).map(|i| docs[i % docs.len()].split(' ').take(1 + i % 90).collect::<Vec<_>>().join(" ")).collect();
        let text = crate::data::shards::TextHash::of(&docs);
        let (on_disk, _) = crate::data::shards::encode_cached(&tok, &text, || docs.iter().map(|d| Ok(d.clone())), &dir.path().join("tokens")).unwrap();
        let shards = [Arc::new(on_disk), Arc::new(encode_in_memory(&tok, &docs).unwrap())];
        for shard in shards {
            for (n_ctx, packing) in [(16, Packing::Truncate), (7, Packing::Windows), (64, Packing::Windows), (2, Packing::Windows)] {
                for side in [PaddingSide::Left, PaddingSide::Right] {
                    let rows = TokenRows::new(shard.clone(), n_ctx as i64, packing, side, tok.pad_id);
                    let (t, y) = materialized(&tok, &docs, n_ctx, side, packing);
                    assert_eq!(rows.len() as usize, t.len() / n_ctx, "{n_ctx} {packing:?}");
                    // Rows in a scrambled order, one repeated.
                    let n = rows.len() as i64;
                    let idx: Vec<i64> = (0..n).map(|i| (i * 37 + 11) % n).chain([0, n - 1, 0]).collect();
                    let (gt, gy) = rows.gather(&idx).unwrap();
                    let (gt, gy) = (Vec::<i64>::try_from(gt.reshape([-1])).unwrap(), Vec::<i64>::try_from(gy.reshape([-1])).unwrap());
                    for (r, &i) in idx.iter().enumerate() {
                        let (a, b) = (r * n_ctx, i as usize * n_ctx);
                        assert_eq!(gt[a..a + n_ctx], t[b..b + n_ctx], "tokens of row {i} at {n_ctx} {packing:?} {side:?}");
                        assert_eq!(gy[a..a + n_ctx], y[b..b + n_ctx], "labels of row {i}");
                        assert_eq!(rows.real_tokens(i as u64) as usize, y[b..b + n_ctx].iter().filter(|&&x| x != IGNORE).count());
                    }
                    assert!(rows.gather(&[n]).is_err(), "a row past the end is an error, not a panic");
                }
            }
        }
    }
}
