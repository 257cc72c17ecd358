//! The built-in profile `shapes`: every run of a suite at its paper shapes (model, context,
//! vocabulary, tokenizer pipeline, padding, packing, retrieval group and slot counts) on the CPU,
//! on the data at hand, for the fewest iterations each kind allows (two optimizer steps at
//! micro-batch 1, with an evaluation, a checkpoint and a resume point in between). Every suite
//! has it without declaring it (`harness run SUITE --profile shapes`); a suite that declares a
//! profile of that name uses its own. What a run at shapes measures is only that it runs, and how
//! much memory and time a step of that shape takes: no number of it is a result.
//!
//! The data at hand: the real slices in `../shared/data` (or `HARNESS_SHARED_DATA`), TinyStories
//! for the TinyStories suites and the FineWeb-Edu slice (paragraphs as documents) for FineWeb and
//! FineMath, else the embedded corpus. Query/passage pairs become the embedded corpus's (the
//! paper's summary sets are not at hand), and experiments whose inputs are files made elsewhere at
//! paper scale (e5-mistral's embeddings) are left out.
use super::*;

/// The built-in profile's name.
pub const SHAPES: &str = "shapes";

/// Optimizer steps of a training run at shapes: the first writes the resume point and a
/// checkpoint, the second resumes nothing but finishes the run.
pub const STEPS: u64 = 2;
/// Evaluation batches at each evaluation.
pub const EVAL_BATCHES: u64 = 2;
/// Pairs for the retrieval kinds: two InfoNCE groups of 32 to train on, 32 to test.
pub const TRAIN_PAIRS: usize = 64;
pub const TEST_PAIRS: usize = 32;

/// Where the real data slices are: `HARNESS_SHARED_DATA`, else `../shared/data` from the current
/// folder (the project root), as the suites' `ci` profiles name them.
pub fn shared_data() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HARNESS_SHARED_DATA") {
        return Some(PathBuf::from(p));
    }
    let p = PathBuf::from("../shared/data");
    p.join("tinystories/train-head-2MiB.txt").exists().then_some(p)
}

/// Experiments a run at shapes leaves out: those whose embeddings are a file made elsewhere.
pub(super) fn skipped(file: &SuiteFile) -> std::collections::BTreeSet<String> {
    let from_file = |t: &Option<Table>| t.as_ref().and_then(|t| t.get("source")).and_then(Value::as_str) == Some("file");
    file.experiments.iter().filter(|e| from_file(&e.embed)).map(|e| e.name.clone()).collect()
}

/// Which slice stands for a data set: FineWeb-Edu for FineWeb and FineMath (and any suite on
/// Llama 3's tokenizer), TinyStories otherwise.
fn fineweb_like(d: &DataConfig) -> bool {
    matches!(d.preset.as_deref(), Some("fineweb-edu-10bt" | "finemath-4plus"))
        || d.repo.as_deref().is_some_and(|r| r.contains("fineweb") || r.contains("finemath"))
        || (d.preset.is_none() && d.tokenizer == TokenizerKind::Llama3)
}

/// The run's data at hand, keeping what shapes a row: n_ctx, vocabulary, tokenizer pipeline,
/// padding, packing and the order.
pub fn data_at_hand(d: &mut DataConfig) {
    let fineweb = fineweb_like(d);
    // I.7's line reading keeps a few hundred lines of a slice this small (its batch i holds i
    // lines from line 1024 i): the slice's own lines train the tokenizer.
    if d.tokenizer == TokenizerKind::Llama {
        d.tokenizer_lines = TokenizerLines::All;
    }
    // The slice's own text trains the tokenizer, not another preset's.
    d.forget_source();
    d.eval_fraction = 0.1;
    d.stories_per_doc = 1;
    match shared_data() {
        Some(root) if fineweb => {
            d.source = DataSource::Text;
            d.path = Some(root.join("fineweb-edu/sample10BT-head-1Mchars.txt"));
            d.eval_path = None;
            d.marker = "\n".into();
            d.drop_unterminated = false;
        }
        Some(root) => {
            d.source = DataSource::Text;
            d.path = Some(root.join("tinystories/train-head-2MiB.txt"));
            d.eval_path = Some(root.join("tinystories/validation-first1000.txt"));
            d.marker = "<|endoftext|>".into();
            d.drop_unterminated = true;
        }
        None => {
            // Eight stories a document (about 1,000 tokens): long enough for windows and for
            // n_ctx 1024, as FineWeb's documents are.
            d.source = DataSource::Embedded;
            d.path = None;
            d.eval_path = None;
            d.n_stories = Some(1000);
            d.stories_per_doc = 8;
        }
    }
}

/// A training section at shapes: two steps of one row, evaluated after each on two batches, a
/// checkpoint after the first, fp32.
pub fn train_at_shapes(t: &mut TrainConfig) {
    t.steps = Some(STEPS);
    t.tokens = None;
    t.batch_size = 1;
    t.accumulate = 1;
    t.warmup_steps = 0;
    t.eval_every = 1;
    t.eval_batches = Some(EVAL_BATCHES);
    t.checkpoint_every = Some(1);
    t.precision = Precision::Fp32;
    t.max_minutes = None;
    t.stop_at = None;
}

/// Pairs at shapes: the embedded corpus's, enough for two groups and one test chunk, and at least
/// `per_split` in each split (a frozen retrieval run at the paper's n draws n - 1 distinct
/// passages per query from each).
pub fn pairs_at_shapes(p: &mut PairsConfig, per_split: usize) {
    let (train, test) = (TRAIN_PAIRS.max(per_split), TEST_PAIRS.max(per_split));
    p.source = PairsSource::Embedded;
    p.path = None;
    p.n_pairs = Some(train + test);
    p.test_pairs = Some(test);
}

/// What every run at shapes shares: the CPU, the data at hand, its pairs; then the kind's own.
pub(super) fn apply(c: &mut RunConfig, rules: &dyn KindRules, pairs_per_split: usize) {
    c.device = DeviceChoice::Cpu;
    if c.upstream.is_none() {
        if let Some(d) = c.data.as_mut() {
            data_at_hand(d);
        }
    }
    if let Some(p) = c.pairs.as_mut() {
        pairs_at_shapes(p, pairs_per_split);
    }
    rules.at_shapes(c);
}
