//! The bad-input matrix: suites, overrides, data files, checkpoints, tampered results and CLI
//! arguments, each through the real binary without RUST_BACKTRACE. Every case must exit non-zero
//! (or, for tampering, redo the work and say why), name the key or file, print no panic or
//! libtorch frames, and leave the finished result made at the start untouched.
mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The finished run's folder, file by file (manifest included), for the "intact" check.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().display().to_string(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// The binary with a time limit: a hang is a failure of its own, not a stuck test.
fn harness_within(dir: &Path, args: &[String], limit: std::time::Duration) -> (std::process::Output, bool) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_harness"))
        .current_dir(dir)
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .env_remove("HF_HUB_OFFLINE")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let mut hung = false;
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            hung = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    (child.wait_with_output().unwrap(), hung)
}

struct Case {
    name: String,
    args: Vec<String>,
    /// Substrings the output (stderr and stdout) must hold.
    needles: Vec<String>,
}

fn case(name: &str, args: &[&str], needles: &[&str]) -> Case {
    Case {
        name: name.into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        needles: needles.iter().map(|s| s.to_string()).collect(),
    }
}

const PANIC_TEXT: &[&str] = &["panicked", "RUST_BACKTRACE", "stack backtrace", "Exception raised from", "frame #", "called `Option::unwrap()`", "called `Result::unwrap()`"];

struct Env {
    root: PathBuf,
    base: String,
}

impl Env {
    /// The tiny mixer suite with `edits` applied (find, replace), written as `name`.
    fn suite(&self, name: &str, edits: &[(&str, &str)]) -> String {
        let mut text = self.base.clone();
        for (from, to) in edits {
            assert!(text.contains(from), "{from} not in the base suite");
            text = text.replacen(from, to, 1);
        }
        write_suite(&self.root, name, &text).display().to_string()
    }

    fn train(&self, name: &str, extra: &str) -> String {
        self.suite(name, &[("eval_every = 10", &format!("eval_every = 10\n{extra}"))])
    }

    fn data(&self, name: &str, extra: &str) -> String {
        self.suite(name, &[("n_ctx = 24", &format!("n_ctx = 24\n{extra}"))])
    }

    fn text_source(&self, name: &str, path: &str) -> String {
        self.suite(name, &[("source = \"embedded\"", &format!("source = \"text\"\npath = \"{path}\""))])
    }

    fn file(&self, name: &str, bytes: &[u8]) -> String {
        std::fs::write(self.root.join(name), bytes).unwrap();
        name.into()
    }
}

const REPRESENTATION: &str = r#"
[[experiment]]
name = "inv"
kind = "representation"
representation = { steps = 5, n_prompts = 2 }
model = { kind = "masked_mixer", d_model = 16, n_layers = 1 }
"#;

#[test]
fn every_bad_input_is_a_clear_error_and_earlier_results_stay() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let env = Env { root: root.clone(), base: tiny_mixer_only() };
    let good = env.suite("good.toml", &[]);
    let out = harness(&root, &["run", &good, "-q"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let results = root.join("results");
    let m = &manifest(&results, "tiny")[0];
    let finished = run_dir(&results, "tiny", m);
    let before = snapshot(&finished);
    let model = finished.join("model.safetensors").display().to_string();

    // Files for the data and checkpoint cases.
    let stories: String = (0..40).map(|i| format!("Tom had {i} red balls and a dog.\n<|endoftext|>\n")).collect();
    env.file("stories.txt", stories.as_bytes());
    env.file("empty.txt", b"");
    env.file("binary.txt", &[0xff, 0xfe, 0x00, 0x41, 0x80, 0x81]);
    env.file("nomarker.txt", b"one long story without the separator");
    env.file("bad.jsonl", b"{\"text\": \"one\"}\n{\"text\": \"two\"}\n{\"text\": oops}\n");
    env.file("nocol.jsonl", b"{\"story\": \"one\"}\n{\"story\": \"two\"}\n");
    env.file("numbers.jsonl", b"{\"text\": 1}\n{\"text\": 2}\n");
    env.file("garbage.parquet", b"PAR1 this is not parquet");
    env.file("garbage.safetensors", b"not a checkpoint at all");
    let bytes = std::fs::read(&model).unwrap();
    env.file("truncated.safetensors", &bytes[..bytes.len() / 2]);
    env.file("tok.json", b"{\"version\": \"1.0\", \"model\": 12}");
    std::fs::create_dir(root.join("adir")).unwrap();
    // Pairs and embeddings made elsewhere: a parquet with an empty cell, a JSON-lines file with an
    // empty query, one with a fifth of its pairs repeated, embeddings with a NaN row.
    {
        use polars::prelude::*;
        let q: Vec<Option<&str>> = (0..12).map(|i| if i == 3 { None } else { Some("a summary") }).collect();
        let p: Vec<String> = (0..12).map(|i| format!("passage {i}")).collect();
        let mut df = DataFrame::new(12, vec![Column::new("query".into(), &q), Column::new("passage".into(), &p)]).unwrap();
        ParquetWriter::new(std::fs::File::create(root.join("gappy.parquet")).unwrap()).finish(&mut df).unwrap();
    }
    let pairs_jsonl = |rows: &[(String, String)]| rows.iter().map(|(q, p)| serde_json::json!({"query": q, "passage": p}).to_string() + "\n").collect::<String>();
    let mut rows: Vec<(String, String)> = (0..20).map(|i| (format!("summary {i}"), format!("passage {i}"))).collect();
    rows[7].0 = String::new();
    env.file("emptyq.jsonl", pairs_jsonl(&rows).as_bytes());
    rows[7].0 = "summary 7".into();
    for i in 10..14 {
        rows[i] = rows[i - 10].clone();
    }
    env.file("dups.jsonl", pairs_jsonl(&rows).as_bytes());
    let nan = tch::Tensor::ones([6, 8], (tch::Kind::Float, tch::Device::Cpu));
    let _ = nan.get(2).get(5).fill_(f64::NAN);
    tch::Tensor::write_safetensors(&[("query", &nan), ("passage", &nan.ones_like())], root.join("nan.safetensors")).unwrap();
    let pairs_suite = |name: &str, pairs: &str| {
        let text = format!(
            "{}\n[[experiment]]\nname = \"e\"\nkind = \"embed\"\nmodel = {{ kind = \"masked_mixer\", d_model = 16, n_layers = 1 }}\nembed = {{ source = \"untrained\" }}\n[experiment.pairs]\nsource = \"file\"\npath = \"{pairs}\"\nquery_field = \"query\"\npassage_field = \"passage\"\ntest_pairs = 5\n",
            env.base
        );
        write_suite(&root, name, &text).display().to_string()
    };
    env.file("onesentence.txt", (0..30).map(|i| format!("Tom had {i} red balls\n<|endoftext|>\n")).collect::<String>().as_bytes());
    let derived_suite = write_suite(
        &root,
        "derived.toml",
        &format!(
            "{}\n[[experiment]]\nname = \"e\"\nkind = \"embed\"\nmodel = {{ kind = \"masked_mixer\", d_model = 16, n_layers = 1 }}\nembed = {{ source = \"untrained\" }}\n[experiment.pairs]\nsource = \"derived\"\npath = \"onesentence.txt\"\n",
            env.base
        ),
    )
    .display()
    .to_string();
    let e5_like = |name: &str, eval: &str| {
        let ones = tch::Tensor::randn([6, 8], (tch::Kind::Float, tch::Device::Cpu));
        tch::Tensor::write_safetensors(&[("query", &ones), ("passage", &ones)], root.join("ok.safetensors")).unwrap();
        let text = format!(
            "{}\n[[experiment]]\nname = \"e5\"\nkind = \"embed\"\nembed = {{ source = \"file\", file = \"ok.safetensors\" }}\n[experiment.pairs]\nsource = \"embedded\"\nn_pairs = 20\ntest_pairs = 6\n[[experiment]]\nname = \"ev\"\nkind = \"retrieval_eval\"\nfrom = \"e5\"\n{eval}\n",
            env.base
        );
        write_suite(&root, name, &text).display().to_string()
    };
    let e5_suite = {
        let text = format!(
            "{}\n[[experiment]]\nname = \"e5\"\nkind = \"embed\"\nembed = {{ source = \"file\", file = \"nan.safetensors\" }}\n[experiment.pairs]\nsource = \"embedded\"\nn_pairs = 20\ntest_pairs = 6\n[[experiment]]\nname = \"ev\"\nkind = \"retrieval_eval\"\nfrom = \"e5\"\nretrieval_eval = {{ n = [2, 4] }}\n",
            env.base
        );
        write_suite(&root, "nan.toml", &text).display().to_string()
    };
    // A passages file for the summarize cases, and a file no command of the harness wrote.
    let out = harness(&root, &["data", "pairs", "export", "--set", "tinystories", "--input", "stories.txt", "--count", "5", "--out", "passages.jsonl"]);
    assert!(out.status.success(), "{}", stderr(&out));
    env.file("notes.txt", b"my own notes\nsecond line\n");
    {
        // The passages with row 1's text edited after the export (its hash left as it was).
        let text = std::fs::read_to_string(root.join("passages.jsonl")).unwrap();
        let mut rows: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        rows[1]["passage"] = serde_json::Value::String("An edited passage.".into());
        env.file("edited.jsonl", rows.iter().map(|r| r.to_string() + "\n").collect::<String>().as_bytes());
    }
    std::fs::create_dir(root.join("areport")).unwrap();
    env.file("areport/README.md", b"# Suite tiny\n\nA report someone wrote.\n");
    let self_claim = write_suite(
        &root,
        "selfclaim.toml",
        &format!(
            "{}\n[[table]]\nid = \"X\"\ncaption = \"x\"\nentries = [\"a\"]\nmetrics = [\"eval\"]\npaper = {{ eval = [nan] }}\n[[claim]]\ntext = \"a beats itself\"\nbetter = \"X a\"\nthan = \"X a\"\nmetric = \"eval\"\n",
            env.base.replacen("kind = \"clm\"", "kind = \"clm\"\ncells = { X = [\"a\"] }", 1)
        ),
    )
    .display()
    .to_string();
    // A table whose metric names a summary key no run has; a profile, a second experiment and a
    // `where` that set a bad value, each after the same key elsewhere in the file (the error
    // must point at the line that set it); a throughput run with a vocabulary no machine holds.
    let no_key = write_suite(
        &root,
        "nokey.toml",
        &format!(
            "{}\n[[table]]\nid = \"X\"\ncaption = \"x\"\nentries = [\"a\"]\nmetrics = [\"acc=accuracy_top9\"]\n",
            env.base.replacen("kind = \"clm\"", "kind = \"clm\"\ncells = { X = [\"a\"] }", 1)
        ),
    )
    .display()
    .to_string();
    let base_lines = env.base.lines().count();
    let bad_profile = write_suite(&root, "prof.toml", &format!("{}\n[profile.small]\ndescription = \"smaller\"\ntrain = {{ steps = 30, batch_size = 0 }}\n", env.base.trim_end()))
        .display()
        .to_string();
    let bad_second = write_suite(
        &root,
        "second.toml",
        &format!(
            "{}\n[[experiment]]\nname = \"clm2\"\nkind = \"clm\"\nmodel = {{ kind = \"masked_mixer\", d_model = 16, n_layers = 1 }}\ntrain = {{ steps = 30, batch_size = 8, lr = -1.0 }}\n",
            env.base.trim_end()
        ),
    )
    .display()
    .to_string();
    let bad_where = write_suite(
        &root,
        "where.toml",
        &format!(
            "{}\n[[experiment]]\nname = \"emb\"\nkind = \"embed\"\nfrom = \"clm\"\nwhere = {{ \"data.n_ctx\" = 64 }}\n[experiment.pairs]\nsource = \"embedded\"\nn_pairs = 20\ntest_pairs = 6\n",
            env.base.trim_end()
        ),
    )
    .display()
    .to_string();
    let huge_vocab = write_suite(
        &root,
        "vocab.toml",
        "schema = 1\nname = \"tp\"\ndescription = \"d\"\n[[experiment]]\nname = \"tp\"\nkind = \"throughput\"\nmodel = { kind = \"masked_mixer\", d_model = 64, n_layers = 1 }\nthroughput = { vocab_size = 100000000000, n_ctx = 64, batch_size = 4, sides = \"harness\", rounds = 1, steps = 1, warmup = 0 }\n",
    )
    .display()
    .to_string();
    let fifo = root.join("fifo.txt");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    // A checkpoint with the right names and shapes but bytes (u8) instead of floats, and one with
    // other key names.
    {
        let named = tch::Tensor::read_safetensors(&model).unwrap();
        let u8s: Vec<(String, tch::Tensor)> = named.iter().map(|(k, t)| (k.clone(), t.to_kind(tch::Kind::Uint8))).collect();
        tch::Tensor::write_safetensors(&u8s, root.join("u8.safetensors")).unwrap();
        let renamed: Vec<(String, tch::Tensor)> = named.iter().map(|(k, t)| (format!("other.{k}"), t.shallow_clone())).collect();
        tch::Tensor::write_safetensors(&renamed, root.join("renamed.safetensors")).unwrap();
    }
    let with_repr = {
        let text = format!("{}{REPRESENTATION}", env.base);
        write_suite(&root, "repr.toml", &text).display().to_string()
    };

    let s = |name: &str, edits: &[(&str, &str)]| env.suite(name, edits);
    let mut cases: Vec<Case> = vec![
        // The suite file itself.
        case("missing suite", &["run", "nope.toml"], &["nope.toml", "cannot read"]),
        case("suite is an empty folder", &["run", "adir"], &["adir", "a folder with no suite (*.toml) in it"]),
        case("report of an empty folder", &["report", "adir"], &["adir", "a folder with no suite (*.toml) in it"]),
        case("suite is a FIFO", &["plan", "fifo.txt"], &["fifo.txt", "not a regular file"]),
        case("syntax error", &["plan", &s("syntax.toml", &[("steps = 30", "steps = = 30")])], &["syntax.toml:12"]),
        case("unknown top-level key", &["plan", &s("top.toml", &[("schema = 1", "schema = 1\ncolour = 3")])], &["top.toml", "colour"]),
        case("unsupported schema", &["plan", &s("schema.toml", &[("schema = 1", "schema = 7")])], &["schema.toml", "schema"]),
        case("unknown train key", &["plan", &env.train("tk.toml", "stepz = 3")], &["tk.toml", "stepz"]),
        case("wrong type", &["plan", &s("type.toml", &[("steps = 30", "steps = \"ten\"")])], &["type.toml", "steps"]),
        case("unknown experiment kind", &["plan", &s("kind.toml", &[("kind = \"clm\"", "kind = \"gan\"")])], &["kind.toml", "gan"]),
        case("unknown model kind", &["plan", &s("mk.toml", &[("kind = \"masked_mixer\"", "kind = \"rnn\"")])], &["mk.toml", "rnn"]),
        case("no experiments", &["plan", &env.file("noexp.toml", b"schema = 1\nname = \"x\"\ndescription = \"none\"\nexperiment = []\n")], &["noexp.toml", "experiment"]),
        case("from an unknown experiment", &["plan", &s("from.toml", &[("kind = \"clm\"", "kind = \"clm\"\nfrom = \"ghost\"")])], &["from.toml", "ghost"]),
        // Ranges.
        case("n_ctx 0", &["plan", &s("ctx0.toml", &[("n_ctx = 24", "n_ctx = 0")])], &["ctx0.toml:10", "data.n_ctx", "at least 2"]),
        case("n_ctx huge", &["run", &s("ctxbig.toml", &[("n_ctx = 24", "n_ctx = 1000000")]), "-q"], &["memory", "GiB", "data.n_ctx"]),
        case("d_model 0", &["plan", &s("d0.toml", &[("d_model = 16", "d_model = 0")])], &["d0.toml", "model.d_model"]),
        case(
            "position channel on a parallel mixer",
            &["plan", &s("posp.toml", &[("d_model = 16", "d_model = 16, parallel = 2, position_channel = \"every_block\"")])],
            &["posp.toml", "model.position_channel", "flat causal mixer"],
        ),
        case(
            "bidirectional transfixer",
            &["plan", &s("bitf.toml", &[("kind = \"masked_mixer\", d_model = 16", "kind = \"transfixer\", n_heads = 2, bidirectional = true, d_model = 16")])],
            &["bitf.toml", "model.bidirectional", "kind = \"llama\""],
        ),
        case("vocab too small", &["plan", &s("v.toml", &[("vocab_size = 300", "vocab_size = 10")])], &["v.toml", "data.vocab_size"]),
        case("eval_fraction 1.5", &["plan", &env.data("ef.toml", "eval_fraction = 1.5")], &["ef.toml", "data.eval_fraction"]),
        case("checkpoint_every 0", &["plan", &env.train("ck0.toml", "checkpoint_every = 0")], &["ck0.toml", "train.checkpoint_every", "at least 1"]),
        case("eval_every 0", &["plan", &s("ev0.toml", &[("eval_every = 10", "eval_every = 0")])], &["ev0.toml", "train.eval_every"]),
        case("eval_batches 0", &["plan", &env.train("eb0.toml", "eval_batches = 0")], &["eb0.toml", "train.eval_batches", "at least 1"]),
        case("batch_size 0", &["plan", &s("b0.toml", &[("batch_size = 8", "batch_size = 0")])], &["b0.toml", "train.batch_size"]),
        case("negative lr", &["plan", &s("lr.toml", &[("lr = 3e-3", "lr = -1.0")])], &["lr.toml", "train.lr"]),
        case("beta1 1.5", &["run", &env.train("beta1.toml", "beta1 = 1.5"), "-q"], &["beta1.toml", "train.beta1", "[0, 1)"]),
        case("beta2 1.0", &["plan", &env.train("beta2.toml", "beta2 = 1.0")], &["beta2.toml", "train.beta2", "[0, 1)"]),
        case("negative weight decay", &["run", &env.train("wd.toml", "weight_decay = -0.1"), "-q"], &["wd.toml", "train.weight_decay", ">= 0"]),
        case("negative eps", &["plan", &env.train("eps.toml", "eps = -1e-8")], &["eps.toml", "train.eps"]),
        case("negative grad_clip", &["plan", &env.train("clip.toml", "grad_clip = -1.0")], &["clip.toml", "train.grad_clip"]),
        case("stop_at 0", &["plan", &env.train("stop.toml", "stop_at = 0")], &["stop.toml", "train.stop_at"]),
        case("accumulate 0", &["plan", &env.train("acc.toml", "accumulate = 0")], &["acc.toml", "train.accumulate"]),
        case("max_minutes 0", &["plan", &env.train("mm.toml", "max_minutes = 0.0")], &["mm.toml", "train.max_minutes"]),
        case("no budget", &["plan", &s("nob.toml", &[("steps = 30\n", "")])], &["nob.toml", "train.steps"]),
        case("empty seeds", &["plan", &s("seeds.toml", &[("seeds = [0]", "seeds = []")])], &["seeds.toml", "seeds", "at least one"]),
        case("duplicate seeds", &["plan", &s("dup.toml", &[("seeds = [0]", "seeds = [0, 0]")])], &["dup.toml", "seeds", "twice"]),
        case("negative seed", &["plan", &s("neg.toml", &[("seeds = [0]", "seeds = [-1]")])], &["neg.toml", "seeds"]),
        case("unknown device", &["plan", &s("dev.toml", &[("seeds = [0]", "seeds = [0]\ndevice = \"tpu\"")])], &["dev.toml", "tpu"]),
        case("fp16-amp on cpu", &["plan", &env.train("amp.toml", "precision = \"fp16-amp\"")], &["amp.toml", "train.precision"]),
        case(
            "frozen retrieval in fp16-amp on cpu",
            &["plan", &env.file("rfamp.toml", include_str!("fixtures/retrieval.toml").replacen("warmup_steps = 1\n", "warmup_steps = 1\nprecision = \"fp16-amp\"\n", 1).as_bytes())],
            &["rfamp.toml", "retrieval_frozen.precision", "cuda"],
        ),
        case("top_k above the vocabulary", &["plan", &with_repr, "--set", "representation.top_k=100000"], &["--set representation.top_k=100000", "vocabulary"]),
        case("depth above the model", &["plan", &with_repr, "--set", "representation.depth=9"], &["--set representation.depth=9", "1 block"]),
        case("eval split of zero stories", &["run", &s("zero.toml", &[("n_stories = 150", "n_stories = 5\neval_fraction = 0.05")]), "-q"], &["data.eval_fraction", "evaluation split", "0 of 5"]),
        // --set and command-line arguments.
        case("--set without =", &["plan", &good, "--set", "train.steps"], &["--set train.steps", "key=value"]),
        case("--set unknown section", &["plan", &good, "--set", "trian.steps=3"], &["--set trian.steps=3", "trian"]),
        case("--set unknown key", &["plan", &good, "--set", "train.stepz=3"], &["--set train.stepz=3", "stepz"]),
        case("--set wrong type", &["plan", &good, "--set", "train.steps=\"x\""], &["--set train.steps", "steps"]),
        case("--set out of range", &["plan", &good, "--set", "train.steps=0"], &["--set train.steps=0", "0 steps"]),
        case("--set bad seeds", &["plan", &good, "--set", "seeds=zero"], &["--set seeds", "list of seeds"]),
        case("unknown profile", &["plan", &good, "--profile", "huge"], &["--profile", "huge"]),
        case("--only unknown", &["run", &good, "--only", "ghost"], &["--only", "ghost"]),
        case("unknown flag", &["run", &good, "--fast"], &["--fast"]),
        case("--resume-every 0", &["run", &good, "-q", "--resume-every", "0"], &["--resume-every", "positive"]),
        case("--resume-every-steps 0", &["run", &good, "-q", "--resume-every-steps", "0"], &["--resume-every-steps"]),
        case("slurm flags without --emit", &["plan", &good, "--throttle", "2"], &["--throttle", "--emit"]),
        // Commands that would measure nothing.
        case("--only empty", &["run", &good, "-q", "--only", ""], &["--only", "selects nothing"]),
        case("--only a 3-character id", &["run", &good, "-q", "--only", "abc"], &["--only", "at least 6 characters"]),
        case("a profile that skips everything", &["plan", &write_suite(&root, "skipall.toml", &format!("{}\n[profile.none]\nskip = [\"clm\"]\n", env.base)).display().to_string(), "--profile", "none"], &["skipall.toml", "profile.none.skip", "no run"]),
        case("from = []", &["plan", &s("fromnone.toml", &[("kind = \"clm\"", "kind = \"clm\"\nfrom = []")])], &["fromnone.toml", "from = []"]),
        case("every n above the test pool", &["run", &e5_like("bign.toml", "retrieval_eval = { n = [50, 64] }"), "-q"], &["retrieval_eval.n", "larger than the 6 test pairs"]),
        case("slurm partition with a newline", &["plan", &good, "--emit", "slurm", "--out", "sl1", "--partition", "gpu\nrm -rf ~"], &["slurm.partition", "--partition", "letters"]),
        case("slurm time not a time", &["plan", &good, "--emit", "slurm", "--out", "sl2", "--time", "banana"], &["slurm.time", "HH:MM:SS"]),
        case("slurm throttle 0", &["plan", &good, "--emit", "slurm", "--out", "sl3", "--throttle", "0"], &["slurm.throttle", "at least 1"]),
        case("a table metric no run has", &["run", &no_key, "-q"], &["nokey.toml", "table X metric `acc`", "accuracy_top9", "eval_loss"]),
        case("throughput vocabulary beyond memory", &["run", &huge_vocab, "-q"], &["memory", "throughput.vocab_size = 100000000000"]),
        case("a profile sets a bad value", &["plan", &bad_profile, "--profile", "small"], &[&format!("prof.toml:{}", base_lines + 3), "train.batch_size", "profile `small`"]),
        case("a second experiment sets a bad value", &["plan", &bad_second], &[&format!("second.toml:{}", base_lines + 5), "train.lr", "clm2"]),
        case("where selects no run", &["plan", &bad_where], &[&format!("where.toml:{}", base_lines + 5), "where.data.n_ctx", "no run of `clm`"]),
        case("status of a missing suite", &["status", "nope.toml"], &["nope.toml", "cannot read"]),
        case("unknown command", &["fly"], &["fly"]),
        case("results is a file", &["run", &good, "-q", "--results", "stories.txt"], &["stories.txt", "--results"]),
        case("missing baseline", &["check", &good, "--baseline", "nobase.toml"], &["nobase.toml"]),
        case("malformed baseline", &["check", &good, "--baseline", &env.file("badbase.toml", b"runs = 3")], &["badbase.toml"]),
        case("verify a missing report", &["report", &good, "--verify", "noreport"], &["noreport"]),
        case("bench data missing file", &["bench", "data", "--file", "none.txt"], &["none.txt", "--file"]),
        case("pairs export missing input", &["data", "pairs", "export", "--set", "tinystories", "--input", "none.txt", "--count", "3", "--out", "o.jsonl"], &["none.txt", "pairs export"]),
        case("pairs export without tokenizer", &["data", "pairs", "export", "--set", "fineweb", "--input", "stories.txt", "--count", "3", "--out", "o.jsonl"], &["--tokenizer", "512 tokens"]),
        // Outputs that would overwrite what the command did not write, or its own input.
        case("compare into someone's report folder", &["compare", "results", "--out", "areport"], &["--out areport", "README.md", "did not write"]),
        case("a claim compares a cell with itself", &["plan", &self_claim], &["selfclaim.toml", "a beats itself", "the same cell"]),
        case("from names its own experiment", &["plan", &s("selffrom.toml", &[("kind = \"clm\"", "kind = \"clm\"\nfrom = \"clm\"")])], &["selffrom.toml", "`clm` names itself"]),
        case("experiment name with a table separator", &["plan", &s("pipe.toml", &[("name = \"clm\"", "name = \"c|lm\"")])], &["pipe.toml", "\"c|lm\"", "use letters"]),
        case("experiment named failed", &["plan", &s("fname.toml", &[("name = \"clm\"", "name = \"failed\"")])], &["fname.toml", "`failed` is taken"]),
        case("reproduces an item PAPER.md has not", &["plan", &s("t99.toml", &[("name = \"tiny\"", "name = \"tiny\"\nreproduces = [\"T99\"]")])], &["t99.toml", "\"T99\" is not a PAPER.md item"]),
        case("pairs summarize into its input", &["data", "pairs", "summarize", "--passages", "passages.jsonl", "--out", "passages.jsonl", "--endpoint", "http://127.0.0.1:9"], &["--out passages.jsonl is an input"]),
        case("pairs summarize into a parquet file", &["data", "pairs", "summarize", "--passages", "passages.jsonl", "--out", "gappy.parquet", "--endpoint", "http://127.0.0.1:9"], &["gappy.parquet is not a summaries file"]),
        case("pairs summarize into a foreign file", &["data", "pairs", "summarize", "--passages", "passages.jsonl", "--out", "notes.txt", "--endpoint", "http://127.0.0.1:9"], &["notes.txt line 1", "not a summaries file"]),
        case("pairs export over a foreign file", &["data", "pairs", "export", "--set", "tinystories", "--input", "stories.txt", "--count", "3", "--out", "notes.txt"], &["notes.txt", "--replace"]),
        case("pairs export into its input", &["data", "pairs", "export", "--set", "tinystories", "--input", "stories.txt", "--count", "3", "--out", "stories.txt"], &["--out stories.txt is an input"]),
        case("pairs join over a foreign file", &["data", "pairs", "join", "--passages", "passages.jsonl", "--summaries", "notes.txt", "--test-pairs", "2", "--out", "notes.txt"], &["--out notes.txt is an input"]),
        case("pairs export of one input twice", &["data", "pairs", "export", "--set", "tinystories", "--input", "stories.txt", "--input", "./stories.txt", "--count", "3", "--out", "twice.jsonl"], &["same file", "give each file once"]),
        case("pairs join over an edited passage", &["data", "pairs", "join", "--passages", "edited.jsonl", "--summaries", "notes.txt", "--test-pairs", "1", "--out", "e.parquet"], &["edited.jsonl line 2 (row 1)", "no longer matches its passage_sha256"]),
        case("pairs join reads a FIFO", &["data", "pairs", "join", "--passages", "fifo.txt", "--summaries", "notes.txt", "--test-pairs", "2", "--out", "j.parquet"], &["fifo.txt", "not a regular file"]),
        case("pairs summarize at a negative rate", &["data", "pairs", "summarize", "--passages", "passages.jsonl", "--out", "s.jsonl", "--endpoint", "http://127.0.0.1:9", "--rate", "-1"], &["--rate", "0 or more"]),
        case("pairs summarize with no time for a request", &["data", "pairs", "summarize", "--passages", "passages.jsonl", "--out", "s.jsonl", "--endpoint", "http://127.0.0.1:9", "--timeout-s", "0"], &["--timeout-s", "'0'"]),
        case("compare one folder twice", &["compare", "results", "results"], &["give each results folder once"]),
        case("eval report inside a finished run", &["eval", "--data", "stories.txt", &finished.display().to_string(), "--out", &finished.join("ev").display().to_string()], &["--out", "inside the run folder", "fail its verification"]),
        case("export inside a finished run", &["export", "hf", &finished.display().to_string(), "--out", &finished.join("hf").display().to_string()], &["--out", "inside the run folder"]),
        case("pairs export inside a finished run", &["data", "pairs", "export", "--set", "tinystories", "--input", "stories.txt", "--count", "3", "--out", &finished.join("p.jsonl").display().to_string()], &["--out", "inside the run folder"]),
        case("eval on texts of one token", &["eval", "--data", &env.file("one.txt", b"a\n<|endoftext|>\nb\n<|endoftext|>\n"), &finished.display().to_string()], &["one.txt", "no token to score"]),
        case(
            "eval on rows that mostly lack the field",
            &["eval", "--data", &env.file("lack.jsonl", b"{\"text\": \"Tom had a red ball.\"}\n{\"story\": \"x\"}\n{\"story\": \"y\"}\n{\"text\": null}\n"), &finished.display().to_string()],
            &["lack.jsonl", "absent or null in 3 of 4 rows", "lines 2, 3, 4"],
        ),
        // External pairs and embeddings, checked on read.
        case("derived pairs from stories of one sentence", &["run", &derived_suite, "-q"], &["onesentence.txt", "0 of its 30 stories give a derived pair", "several sentences"]),
        case("pairs parquet with an empty cell", &["run", &pairs_suite("gappy.toml", "gappy.parquet"), "-q"], &["gappy.parquet", "1 of 12 rows", "rows [3]"]),
        case("pairs with an empty query", &["run", &pairs_suite("emptyq.toml", "emptyq.jsonl"), "-q"], &["emptyq.jsonl", "rows [7]"]),
        case("pairs mostly duplicated", &["run", &pairs_suite("dups.toml", "dups.jsonl"), "-q"], &["dups.jsonl", "4 of 20 pairs repeat", "deduplicate"]),
        case("embeddings with NaN", &["run", &e5_suite, "-q"], &["nan.safetensors", "1 of the 6 test queries hold NaN"]),
        case("pairs summarize without export", &["data", "pairs", "summarize", "--passages", "stories.txt", "--out", "o.jsonl", "--endpoint", "http://127.0.0.1:9"], &["stories.txt.meta.json", "pairs export"]),
        // Data files (the run fails and says why; the suite goes on).
        case("data file missing", &["run", &env.text_source("dmiss.toml", "no/such.txt"), "-q"], &["no/such.txt", "cannot read"]),
        case("data path is a folder", &["run", &env.text_source("ddir.toml", "adir"), "-q"], &["adir", "not a regular file"]),
        case("data path is a FIFO", &["run", &env.text_source("dfifo.toml", "fifo.txt"), "-q"], &["fifo.txt", "not a regular file"]),
        case("empty data file", &["run", &env.text_source("dempty.toml", "empty.txt"), "-q"], &["empty.txt", "empty"]),
        case("binary data file", &["run", &env.text_source("dbin.toml", "binary.txt"), "-q"], &["binary.txt", "UTF-8"]),
        case("no marker", &["run", &env.text_source("dnom.toml", "nomarker.txt"), "-q"], &["nomarker.txt", "<|endoftext|>"]),
        case(
            "jsonl syntax error",
            &["run", &s("jl.toml", &[("source = \"embedded\"", "source = \"jsonl\"\npath = \"bad.jsonl\"")]), "-q"],
            &["bad.jsonl", "line 3"],
        ),
        case(
            "jsonl without the column",
            &["run", &s("jc.toml", &[("source = \"embedded\"", "source = \"jsonl\"\npath = \"nocol.jsonl\"")]), "-q"],
            &["nocol.jsonl", "text", "story"],
        ),
        case(
            "jsonl numbers",
            &["run", &s("jn.toml", &[("source = \"embedded\"", "source = \"jsonl\"\npath = \"numbers.jsonl\"")]), "-q"],
            &["numbers.jsonl", "not text"],
        ),
        case(
            "garbage parquet",
            &["run", &s("pq.toml", &[("source = \"embedded\"", "source = \"parquet\"\npath = \"garbage.parquet\"")]), "-q"],
            &["garbage.parquet"],
        ),
        case("tokenizer missing", &["run", &env.data("tm.toml", "tokenizer_path = \"none.json\""), "-q"], &["none.json", "data.tokenizer_path"]),
        case("tokenizer garbage", &["run", &env.data("tg.toml", "tokenizer_path = \"tok.json\""), "-q"], &["tok.json", "data.tokenizer_path"]),
        case("tokenizer kind unknown", &["run", &env.data("tkind.toml", "tokenizer = \"sentencepiece\""), "-q"], &["data.tokenizer", "llama3"]),
        case("tokenizer path and kind", &["run", &env.data("tpk.toml", "tokenizer = \"llama\"\ntokenizer_path = \"tok.json\""), "-q"], &["data.tokenizer_path", "remove"]),
        case("tokenizer base for bpe", &["run", &env.data("tbb.toml", "tokenizer_base = \"tok.json\""), "-q"], &["data.tokenizer_base", "llama"]),
        case("tokenizer lines for bpe", &["plan", &env.data("tlb.toml", "tokenizer_lines = \"paper\"")], &["tlb.toml", "data.tokenizer_lines", "llama"]),
        case("first_2m for llama3", &["plan", &env.data("tl3.toml", "tokenizer = \"llama3\"\ntokenizer_lines = \"first_2m\"")], &["tl3.toml", "data.tokenizer_lines", "whole split"]),
        case("tokenizer lines beside a file", &["plan", &env.data("tlf.toml", "tokenizer_lines = \"paper\"\ntokenizer_path = \"tok.json\"")], &["data.tokenizer_lines", "remove one"]),
        case("tokenizer base missing", &["run", &env.data("tbm.toml", "tokenizer = \"llama\"\ntokenizer_base = \"none.json\""), "-q"], &["none.json", "data.tokenizer_base"]),
        case("tokenizer base garbage", &["run", &env.data("tbg.toml", "tokenizer = \"llama\"\ntokenizer_base = \"tok.json\""), "-q"], &["tok.json", "data.tokenizer_base"]),
        case("llama3 vocabulary too small", &["run", &env.data("l3v.toml", "tokenizer = \"llama3\""), "-q"], &["data.vocab_size", "512"]),
        // Checkpoints.
        case("init_from missing", &["run", &good, "-q", "--set", "init_from=\"none.safetensors\""], &["none.safetensors", "init_from"]),
        case("init_from garbage", &["run", &good, "-q", "--set", "init_from=\"garbage.safetensors\""], &["garbage.safetensors", "init_from"]),
        case("init_from truncated", &["run", &good, "-q", "--set", "init_from=\"truncated.safetensors\""], &["truncated.safetensors", "init_from"]),
        case("init_from u8", &["run", &good, "-q", "--set", "init_from=\"u8.safetensors\""], &["u8.safetensors", "Uint8", "float"]),
        case("init_from wrong keys", &["run", &good, "-q", "--set", "init_from=\"renamed.safetensors\""], &["renamed.safetensors", "wte.weight"]),
        case("init_from wrong shape", &["run", &good, "-q", "--set", &format!("init_from=\"{model}\""), "--set", "model.d_model=8"], &["init_from", "[300, 16] vs model [300, 8]"]),
        case("init_from a folder", &["run", &good, "-q", "--set", "init_from=\"adir\""], &["adir", "not a regular file"]),
    ];
    let n_cases = cases.len();
    let mut failures = Vec::new();
    for c in cases.drain(..) {
        let (out, hung) = harness_within(&root, &c.args, std::time::Duration::from_secs(60));
        let text = format!("{}{}", stderr(&out), String::from_utf8_lossy(&out.stdout));
        let mut problems = vec![];
        if hung {
            problems.push("still running after 60 s (killed)".to_string());
        }
        if out.status.success() {
            problems.push("exited 0".to_string());
        }
        for n in &c.needles {
            if !text.contains(n.as_str()) {
                problems.push(format!("no `{n}`"));
            }
        }
        for p in PANIC_TEXT {
            if text.contains(p) {
                problems.push(format!("shows `{p}`"));
            }
        }
        if snapshot(&finished) != before {
            problems.push("changed the finished run".into());
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {}\n    args: {:?}\n    output: {}", c.name, problems.join("; "), c.args, text.trim().replace('\n', "\n            ")));
        }
    }
    assert!(n_cases >= 60, "{n_cases} cases");
    assert!(failures.is_empty(), "{} of {n_cases} cases failed:\n{}", failures.len(), failures.join("\n"));
}
