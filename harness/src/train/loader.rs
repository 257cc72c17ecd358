//! The training data order and the loader that follows it. The order is epochs of all training
//! rows, each shuffled (rand 0.9's Fisher-Yates with a ChaCha8 generator from the run's seed),
//! drawn one global batch at a time, a batch spanning two epochs when it must; it holds one
//! epoch's permutation (4 bytes a row) and is resumed from the generator's position before that
//! epoch's shuffle and the position in it. The loader is a thread that owns the order, tells the
//! kernel which rows the next batches read (so a shard larger than memory streams from the disk
//! many reads at once), gathers each global batch on the host and hands it over through a short
//! queue, so the step never waits for the disk. It runs no ATen kernel (its tensors are made
//! empty and written from Rust), so it starts no OpenMP team beside the training's; on a GPU the
//! trainer stages each batch in pinned memory and copies it without blocking.
use crate::data::rows::Rows;
use crate::data::DataError;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use tch::Tensor;

/// Mixed into the run's seed for the data order, so it differs from the init's stream.
pub const ORDER_SEED_XOR: u64 = 0x5eed_da7a;

/// Where an [`Order`] stands, as the resumable state holds it; the default is a fresh order's
/// (the generator at its start, no epoch drawn).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderState {
    /// The generator's word position before the current epoch's shuffle (now, before the first).
    pub epoch_word_pos: u128,
    /// Rows of the current epoch already drawn.
    pub pos: u64,
    /// Whether an epoch has been drawn.
    pub in_epoch: bool,
}

/// The data order: epochs of `n` rows, shuffled or in order, drawn `global` rows at a time.
pub struct Order {
    n: u64,
    global: usize,
    shuffle: bool,
    rng: ChaCha8Rng,
    /// The current epoch's permutation (`None` unshuffled: the identity).
    perm: Option<Vec<u32>>,
    pos: u64,
    epoch_word_pos: u128,
    in_epoch: bool,
}

impl Order {
    pub fn new(n: u64, global: usize, seed: u64, shuffle: bool) -> Result<Self, DataError> {
        if n > u32::MAX as u64 {
            return Err(DataError::Order(format!("{n} training rows are more than an epoch's permutation holds (4,294,967,295); use fewer documents")));
        }
        if n == 0 {
            return Err(DataError::Order("no training rows to draw batches from".into()));
        }
        let rng = ChaCha8Rng::seed_from_u64(seed ^ ORDER_SEED_XOR);
        let epoch_word_pos = rng.get_word_pos();
        Ok(Self { n, global, shuffle, rng, perm: None, pos: 0, epoch_word_pos, in_epoch: false })
    }

    /// The order at `state` (a resumed run's): the epoch's permutation drawn again.
    pub fn resume(n: u64, global: usize, seed: u64, shuffle: bool, state: OrderState) -> Result<Self, DataError> {
        let mut o = Self::new(n, global, seed, shuffle)?;
        o.rng.set_word_pos(state.epoch_word_pos);
        o.epoch_word_pos = state.epoch_word_pos;
        if state.in_epoch {
            o.draw_epoch();
            o.pos = state.pos;
        }
        Ok(o)
    }

    pub fn state(&self) -> OrderState {
        OrderState { epoch_word_pos: self.epoch_word_pos, pos: self.pos, in_epoch: self.in_epoch }
    }

    fn draw_epoch(&mut self) {
        self.epoch_word_pos = self.rng.get_word_pos();
        self.in_epoch = true;
        self.pos = 0;
        if self.shuffle {
            let mut p = self.perm.take().unwrap_or_default();
            p.clear();
            p.extend(0..self.n as u32);
            p.shuffle(&mut self.rng);
            self.perm = Some(p);
        }
    }

    /// The rows of the next global batch.
    pub fn next_batch(&mut self) -> Vec<i64> {
        let mut out = Vec::with_capacity(self.global);
        while out.len() < self.global {
            if !self.in_epoch || self.pos == self.n {
                self.draw_epoch();
            }
            let take = ((self.global - out.len()) as u64).min(self.n - self.pos);
            let (a, b) = (self.pos as usize, (self.pos + take) as usize);
            match &self.perm {
                Some(p) => out.extend(p[a..b].iter().map(|&i| i as i64)),
                None => out.extend(a as i64..b as i64),
            }
            self.pos += take;
        }
        out
    }
}

/// One global batch, gathered on the host.
pub struct Batch {
    pub idx: Vec<i64>,
    /// `[global, n_ctx]` int64 on the host.
    pub tokens: Tensor,
    pub labels: Tensor,
    /// Non-pad tokens of the batch.
    pub real_tokens: u64,
    /// The order after this batch.
    pub state: OrderState,
}

/// The loader thread and its queue.
pub struct Loader {
    rx: Option<Receiver<Result<Batch, DataError>>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

/// Batches gathered and waiting.
const QUEUE: usize = 2;
/// Rows whose reads are announced ahead of their gather, at least.
const AHEAD_ROWS: usize = 4096;

impl Loader {
    /// Starts gathering `batches` batches of `order` from `rows`.
    pub fn start(rows: Arc<dyn Rows>, mut order: Order, batches: u64) -> Self {
        let (tx, rx) = sync_channel(QUEUE);
        let ahead = AHEAD_ROWS.div_ceil(order.global.max(1)).max(1);
        let handle = std::thread::Builder::new()
            .name("harness-loader".into())
            .spawn(move || {
                let mut next: std::collections::VecDeque<(Vec<i64>, OrderState)> = Default::default();
                let mut drawn = 0u64;
                for _ in 0..batches {
                    while drawn < batches && next.len() <= ahead {
                        let idx = order.next_batch();
                        rows.will_need(&idx);
                        next.push_back((idx, order.state()));
                        drawn += 1;
                    }
                    let Some((idx, state)) = next.pop_front() else {
                        return;
                    };
                    let batch = rows.gather(&idx).map(|(tokens, labels)| {
                        let real_tokens = idx.iter().map(|&i| rows.real_tokens(i as u64)).sum();
                        Batch { idx, tokens, labels, real_tokens, state }
                    });
                    let failed = batch.is_err();
                    if tx.send(batch).is_err() || failed {
                        return;
                    }
                }
            })
            .expect("the loader thread starts");
        Self { rx: Some(rx), handle: Some(handle) }
    }

    /// The next batch, in order.
    pub fn next_batch(&mut self) -> Result<Batch, DataError> {
        let rx = self.rx.as_ref().expect("the loader runs until dropped");
        rx.recv().unwrap_or_else(|_| Err(DataError::Order("the loader stopped: more batches were asked than it was started for".into())))
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        // Closing the queue ends the thread at its next hand-over.
        self.rx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The order as the harness drew it before (one queue of whole epochs of i64 ids, extended
    /// while shorter than a batch): what [`Order`] must reproduce, id for id.
    fn reference(n: i64, global: usize, steps: usize, seed: u64, shuffle: bool) -> Vec<Vec<i64>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ ORDER_SEED_XOR);
        let mut order: Vec<i64> = Vec::new();
        (0..steps)
            .map(|_| {
                while order.len() < global {
                    let mut epoch: Vec<i64> = (0..n).collect();
                    if shuffle {
                        epoch.shuffle(&mut rng);
                    }
                    order.extend(epoch);
                }
                order.drain(..global).collect()
            })
            .collect()
    }

    #[test]
    fn the_order_is_the_reference_order_and_resumes_anywhere() {
        for (n, global, seed, shuffle) in [(10, 3, 0, true), (10, 10, 1, true), (7, 20, 2, true), (1000, 64, 3, true), (9, 4, 4, false), (3, 7, 5, false)] {
            let steps = 40;
            let want = reference(n, global, steps, seed, shuffle);
            let mut o = Order::new(n as u64, global, seed, shuffle).unwrap();
            assert_eq!(o.state(), OrderState::default(), "a fresh order is the default state");
            let mut states = vec![o.state()];
            let got: Vec<Vec<i64>> = (0..steps)
                .map(|_| {
                    let b = o.next_batch();
                    states.push(o.state());
                    b
                })
                .collect();
            assert_eq!(got, want, "n {n} global {global} shuffle {shuffle}");
            // Resumed from the state after any step, the rest of the order is the same.
            for (k, state) in states.iter().enumerate() {
                let mut r = Order::resume(n as u64, global, seed, shuffle, *state).unwrap();
                let rest: Vec<Vec<i64>> = (k..steps).map(|_| r.next_batch()).collect();
                assert_eq!(rest, want[k..], "resumed after step {k}");
            }
        }
    }

    #[test]
    fn the_loader_hands_over_the_order_with_its_rows() {
        use crate::data::rows::MemoryRows;
        let tokens = Tensor::arange(40, (tch::Kind::Int64, tch::Device::Cpu)).view([10, 4]);
        let labels = tokens.copy();
        let rows: Arc<dyn Rows> = Arc::new(MemoryRows::from(&crate::data::Encoded { tokens, labels }));
        let want = reference(10, 3, 12, 9, true);
        let mut loader = Loader::start(rows, Order::new(10, 3, 9, true).unwrap(), 12);
        for w in &want {
            let b = loader.next_batch().unwrap();
            assert_eq!(&b.idx, w);
            let first: Vec<i64> = Vec::try_from(b.tokens.select(1, 0)).unwrap();
            assert_eq!(first, w.iter().map(|i| i * 4).collect::<Vec<_>>());
            assert_eq!(b.real_tokens, 12);
        }
        assert!(loader.next_batch().is_err(), "no batch past the ones asked for");
        // Dropped mid-run, the thread ends.
        let rows: Arc<dyn Rows> = Arc::new(MemoryRows::from(&crate::data::Encoded {
            tokens: Tensor::zeros([4, 2], (tch::Kind::Int64, tch::Device::Cpu)),
            labels: Tensor::zeros([4, 2], (tch::Kind::Int64, tch::Device::Cpu)),
        }));
        drop(Loader::start(rows, Order::new(4, 2, 0, true).unwrap(), 1000));
    }
}
