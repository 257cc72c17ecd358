//! A run's documents, split into training and evaluation (PAPER.md B), read as streams: nothing
//! here holds a split's text. Opening a corpus resolves its files (downloading a Hugging Face
//! file only when the run needs its documents), hashes each file for the manifest, and scans the
//! documents once to count and hash each split; the tokenizer's training and the encoding then
//! stream the documents again. Only the embedded generator's stories, which are few by
//! construction, live in memory.
use super::{columnar, embedded, hub, text, DataError};
use crate::artifacts::{sha256_bytes, Inputs};
use crate::suite::{DataConfig, DataSource};
use std::path::PathBuf;

/// A stream of documents; an error ends it.
pub type Docs<'a> = Box<dyn Iterator<Item = Result<String, DataError>> + Send + 'a>;

const EMBEDDED_DEFAULT_STORIES: usize = 2000;

/// What the scan found of one split.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitInfo {
    pub docs: usize,
    /// UTF-8 bytes of the documents (after trimming).
    pub bytes: u64,
    /// sha256 of the documents joined by NUL ([`super::shards::TextHash`]).
    pub text_sha256: String,
}

/// Stories of a run, split, with where they came from.
pub struct Corpus {
    pub train: SplitInfo,
    pub eval: SplitInfo,
    /// "synthetic" (embedded) or "real" (files).
    pub label: &'static str,
    /// Input name -> sha256 (files read, or the generator's parameters).
    pub inputs: Inputs,
    source: Source,
}

enum Source {
    Memory { train: Vec<String>, eval: Vec<String> },
    Files { train: Part, eval: Part },
}

/// How one file's documents are read.
#[derive(Debug, Clone)]
enum Format {
    Text { marker: String, drop_unterminated: bool },
    Jsonl { column: String },
    Parquet { column: String },
}

/// One file of documents, and the setting that names it (for errors).
#[derive(Debug, Clone)]
struct DocFile {
    path: PathBuf,
    format: Format,
    setting: Option<&'static str>,
}

impl DocFile {
    /// By the source's kind (local files) or by the file's extension (downloaded files).
    fn new(cfg: &DataConfig, path: PathBuf, setting: Option<&'static str>) -> Self {
        let column = cfg.text_column.clone().unwrap_or_else(|| "text".into());
        let name = path.to_string_lossy().to_lowercase();
        let format = match cfg.source {
            DataSource::Jsonl => Format::Jsonl { column },
            DataSource::Parquet => Format::Parquet { column },
            DataSource::Hf if name.ends_with(".parquet") => Format::Parquet { column },
            DataSource::Hf if name.ends_with(".jsonl") || name.ends_with(".json") => Format::Jsonl { column },
            _ => Format::Text { marker: cfg.marker.clone(), drop_unterminated: cfg.drop_unterminated },
        };
        Self { path, format, setting }
    }

    fn wrap(&self, e: DataError) -> DataError {
        match self.setting {
            Some(key) => DataError::Setting { key, error: Box::new(e) },
            None => e,
        }
    }

    fn open(&self) -> Docs<'static> {
        let opened: Result<Docs<'static>, DataError> = match &self.format {
            Format::Text { marker, drop_unterminated } => text::Stories::open(&self.path, marker, *drop_unterminated).map(|s| Box::new(s) as Docs),
            Format::Jsonl { column } => columnar::Column::open(&self.path, columnar::Format::Jsonl, column).map(|s| Box::new(s) as Docs),
            Format::Parquet { column } => columnar::Column::open(&self.path, columnar::Format::Parquet, column).map(|s| Box::new(s) as Docs),
        };
        let this = self.clone();
        match opened {
            Ok(docs) => Box::new(docs.map(move |d| d.map_err(|e| this.wrap(e)))),
            Err(e) => Box::new(std::iter::once(Err(self.wrap(e)))),
        }
    }
}

/// The documents `skip..skip + take` of a list of files read in order.
#[derive(Debug, Clone)]
struct Part {
    files: Vec<DocFile>,
    skip: usize,
    take: Option<usize>,
}

impl Part {
    fn stream(&self) -> Docs<'_> {
        let all = self.files.iter().flat_map(|f| f.open());
        Box::new(skip_ok(all, self.skip).take(self.take.unwrap_or(usize::MAX)))
    }
}

/// Skips `n` documents, passing errors on (an error in the skipped part still ends the stream).
fn skip_ok<I: Iterator<Item = Result<String, DataError>>>(mut it: I, mut n: usize) -> impl Iterator<Item = Result<String, DataError>> {
    std::iter::from_fn(move || loop {
        match it.next()? {
            Ok(_) if n > 0 => n -= 1,
            other => return Some(other),
        }
    })
}

/// The files a split reads, resolved lazily: local files, or a Hugging Face repo's files,
/// fetched (and hashed) only when the scan needs their documents.
enum Files<'a> {
    Local(Vec<DocFile>),
    Hub { cfg: &'a DataConfig, repo: &'a str, revision: &'a str, names: Vec<String> },
}

impl Files<'_> {
    /// Scans documents in order, file by file, passing each to `each` with its index; a file is
    /// opened (fetched) only while fewer than `need` documents were seen before it, and read
    /// whole. Returns the files read and the documents seen.
    fn scan(&self, need: Option<usize>, inputs: &mut Inputs, mut each: impl FnMut(usize, &str)) -> Result<(Vec<DocFile>, usize), DataError> {
        let mut used = Vec::new();
        let mut n = 0usize;
        let count = match self {
            Files::Local(files) => files.len(),
            Files::Hub { names, .. } => names.len(),
        };
        for i in 0..count {
            if need.is_some_and(|k| n >= k) {
                break;
            }
            let file = match self {
                Files::Local(files) => files[i].clone(),
                Files::Hub { cfg, repo, revision, names } => {
                    let (path, hash) = hub::fetch(repo, revision, &names[i], &cfg.sha256)?;
                    inputs.named(format!("hf://datasets/{repo}@{revision}/{}", names[i]), hash);
                    DocFile::new(cfg, path, None)
                }
            };
            for d in file.open() {
                each(n, &d?);
                n += 1;
            }
            used.push(file);
        }
        Ok((used, n))
    }
}

/// A running [`SplitInfo`] over the documents in `range`.
struct Hashing {
    range: std::ops::Range<usize>,
    hash: super::shards::TextHash,
}

impl Hashing {
    fn new(start: usize, take: Option<usize>) -> Self {
        Self { range: start..take.map_or(usize::MAX, |t| start.saturating_add(t)), hash: Default::default() }
    }

    fn offer(&mut self, i: usize, doc: &str) {
        if self.range.contains(&i) {
            self.hash.push(doc);
        }
    }

    fn info(self) -> SplitInfo {
        SplitInfo { docs: self.hash.docs(), bytes: self.hash.bytes(), text_sha256: self.hash.finish() }
    }
}

fn info_of(docs: &[String]) -> SplitInfo {
    let mut h = Hashing::new(0, None);
    docs.iter().enumerate().for_each(|(i, d)| h.offer(i, d));
    h.info()
}

impl Corpus {
    /// Resolves the files, hashes them and scans the splits (PAPER.md B's split rules: an
    /// evaluation file, else the first `eval_rows` documents, else the last `eval_fraction`).
    pub fn open(cfg: &DataConfig) -> Result<Self, DataError> {
        let mut inputs = Inputs::default();
        let corpus = match cfg.source {
            DataSource::Embedded => {
                let n = cfg.n_stories.unwrap_or(EMBEDDED_DEFAULT_STORIES);
                let k = cfg.stories_per_doc.max(1);
                let generated = embedded::generate(n * k, cfg.corpus_seed).into_iter().map(|r| r.story);
                let stories: Vec<String> = if k == 1 { generated.collect() } else { generated.collect::<Vec<_>>().chunks(k).map(|c| c.join("\n")).collect() };
                let name = match k {
                    1 => format!("embedded(n={n}, seed={})", cfg.corpus_seed),
                    _ => format!("embedded(n={n}, seed={}, stories_per_doc={k})", cfg.corpus_seed),
                };
                inputs.named(name, sha256_bytes(stories.join("\n").as_bytes()));
                let (train, mut eval) = hold_out(stories, cfg.eval_fraction);
                if let Some(k) = cfg.eval_stories {
                    eval.truncate(k);
                }
                Self { train: info_of(&train), eval: info_of(&eval), label: "synthetic", inputs, source: Source::Memory { train, eval } }
            }
            _ => Self::open_files(cfg, inputs)?,
        };
        if corpus.train.docs == 0 {
            return Err(DataError::TooFew { what: "training split".into(), n: 0, need: 1 });
        }
        Ok(corpus)
    }

    fn open_files(cfg: &DataConfig, mut inputs: Inputs) -> Result<Self, DataError> {
        let repo = cfg.repo.as_deref().unwrap_or_default();
        let revision = cfg.revision.as_deref().unwrap_or("main");
        let local = |key: &'static str, p: &PathBuf, inputs: &mut Inputs| -> Result<Files<'_>, DataError> {
            let hash =
                crate::artifacts::sha256_file(p).map_err(|error| DataError::Setting { key, error: Box::new(DataError::Read { path: p.clone(), error }) })?;
            inputs.file(p, hash);
            Ok(Files::Local(vec![DocFile::new(cfg, p.clone(), Some(key))]))
        };
        let (train_files, eval_files) = match cfg.source {
            DataSource::Hf => {
                let names = hub::resolve(repo, revision, &cfg.files)?;
                let eval = if cfg.eval_files.is_empty() {
                    None
                } else {
                    Some(Files::Hub { cfg, repo, revision, names: hub::resolve(repo, revision, &cfg.eval_files)? })
                };
                (Files::Hub { cfg, repo, revision, names }, eval)
            }
            _ => {
                let path = cfg.path.as_ref().expect("validated: file sources have a path");
                let train = local("data.path", path, &mut inputs)?;
                let eval = match &cfg.eval_path {
                    Some(p) => Some(local("data.eval_path", p, &mut inputs)?),
                    None => None,
                };
                (train, eval)
            }
        };
        let (train, eval, source) = match (eval_files, cfg.eval_rows) {
            // An evaluation file: each split is its files' documents.
            (Some(eval_files), _) => {
                let mut t = Hashing::new(0, cfg.n_stories);
                let (tf, _) = train_files.scan(cfg.n_stories, &mut inputs, |i, d| t.offer(i, d))?;
                let mut e = Hashing::new(0, cfg.eval_stories);
                let (ef, _) = eval_files.scan(cfg.eval_stories, &mut inputs, |i, d| e.offer(i, d))?;
                let parts = (Part { files: tf, skip: 0, take: cfg.n_stories }, Part { files: ef, skip: 0, take: cfg.eval_stories });
                (t.info(), e.info(), parts)
            }
            // The first `eval_rows` documents evaluate, the rest train (B.2, B.3).
            (None, Some(k)) => {
                let eval_take = Some(cfg.eval_stories.map_or(k, |e| e.min(k)));
                let (mut t, mut e) = (Hashing::new(k, cfg.n_stories), Hashing::new(0, eval_take));
                let need = cfg.n_stories.map(|n| n + k);
                let (files, _) = train_files.scan(need, &mut inputs, |i, d| {
                    t.offer(i, d);
                    e.offer(i, d);
                })?;
                let parts = (Part { files: files.clone(), skip: k, take: cfg.n_stories }, Part { files, skip: 0, take: eval_take });
                (t.info(), e.info(), parts)
            }
            // The last `eval_fraction` evaluates: count first, then hash.
            (None, None) => {
                let (files, n) = train_files.scan(cfg.n_stories, &mut inputs, |_, _| {})?;
                let n_eval = (((n as f64) * cfg.eval_fraction).round() as usize).min(n);
                let cut = n - n_eval;
                let train_take = Some(cfg.n_stories.map_or(cut, |s| s.min(cut)));
                let (mut t, mut e) = (Hashing::new(0, train_take), Hashing::new(cut, cfg.eval_stories));
                let (_, again) = Files::Local(files.clone()).scan(None, &mut Inputs::default(), |i, d| {
                    t.offer(i, d);
                    e.offer(i, d);
                })?;
                if again != n {
                    return Err(DataError::Columnar {
                        path: files.first().map(|f| f.path.clone()).unwrap_or_default(),
                        message: format!("held {n} documents, then {again} when read again: the file changed while the run read it; run it again"),
                    });
                }
                let parts = (Part { files: files.clone(), skip: 0, take: train_take }, Part { files, skip: cut, take: cfg.eval_stories });
                (t.info(), e.info(), parts)
            }
        };
        Ok(Self { train, eval, label: "real", inputs, source: Source::Files { train: source.0, eval: source.1 } })
    }

    /// Documents already in memory (benchmarks, tests), with their hashes.
    pub fn in_memory(train: Vec<String>, eval: Vec<String>, label: &'static str) -> Self {
        Self { train: info_of(&train), eval: info_of(&eval), label, inputs: Inputs::default(), source: Source::Memory { train, eval } }
    }

    /// The training documents, streamed again from their files.
    pub fn train_docs(&self) -> Docs<'_> {
        match &self.source {
            Source::Memory { train, .. } => Box::new(train.iter().map(|d| Ok(d.clone()))),
            Source::Files { train, .. } => train.stream(),
        }
    }

    /// The evaluation documents, streamed again from their files.
    pub fn eval_docs(&self) -> Docs<'_> {
        match &self.source {
            Source::Memory { eval, .. } => Box::new(eval.iter().map(|d| Ok(d.clone()))),
            Source::Files { eval, .. } => eval.stream(),
        }
    }

    /// The training documents in memory: for small corpora only (tests, the tokenizer command's
    /// statistics on a slice).
    pub fn train_in_memory(&self) -> Result<Vec<String>, DataError> {
        self.train_docs().collect()
    }

    /// The first `n` evaluation documents (prompts).
    pub fn eval_head(&self, n: usize) -> Result<Vec<String>, DataError> {
        self.eval_docs().take(n).collect()
    }
}

/// The last `fraction` of the stories become the evaluation split.
fn hold_out(mut stories: Vec<String>, fraction: f64) -> (Vec<String>, Vec<String>) {
    let n_eval = ((stories.len() as f64) * fraction).round() as usize;
    let eval = stories.split_off(stories.len() - n_eval.min(stories.len()));
    (stories, eval)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> DataConfig {
        let mut c: DataConfig = toml::from_str(&format!("n_ctx = 16\n{extra}")).unwrap();
        c.normalize().unwrap();
        c
    }

    fn docs(c: &Corpus) -> (Vec<String>, Vec<String>) {
        (c.train_docs().collect::<Result<_, _>>().unwrap(), c.eval_docs().collect::<Result<_, _>>().unwrap())
    }

    /// The split rules as the harness applied them when it read whole files into memory.
    fn reference(all: &[String], cfg: &DataConfig) -> (Vec<String>, Vec<String>) {
        let (mut train, mut eval) = match cfg.eval_rows {
            Some(k) => (all[k.min(all.len())..].to_vec(), all[..k.min(all.len())].to_vec()),
            None => hold_out(all.to_vec(), cfg.eval_fraction),
        };
        if let Some(n) = cfg.n_stories {
            train.truncate(n);
        }
        if let Some(n) = cfg.eval_stories {
            eval.truncate(n);
        }
        (train, eval)
    }

    #[test]
    fn streamed_splits_are_the_split_rules_and_their_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let stories: Vec<String> = (0..57).map(|i| format!("Story {i} went to the park.")).collect();
        let path = dir.path().join("s.txt");
        std::fs::write(&path, stories.iter().map(|s| format!("{s}\n<|endoftext|>\n")).collect::<String>()).unwrap();
        let file = format!("source = \"text\"\npath = {:?}\n", path.to_str().unwrap());
        for extra in [
            "",
            "eval_fraction = 0.2",
            "n_stories = 10",
            "n_stories = 10\neval_stories = 3",
            "eval_rows = 5",
            "eval_rows = 5\nn_stories = 7\neval_stories = 2",
            "eval_rows = 500",
        ] {
            let c = cfg(&format!("{file}{extra}"));
            let want = reference(&stories, &c);
            let corpus = match Corpus::open(&c) {
                Ok(corpus) => corpus,
                Err(e) => {
                    assert!(want.0.is_empty(), "{extra}: {e}");
                    continue;
                }
            };
            assert_eq!(docs(&corpus), want, "{extra}");
            assert_eq!(corpus.train, info_of(&want.0), "{extra}");
            assert_eq!(corpus.eval, info_of(&want.1), "{extra}");
            assert_eq!(corpus.train.text_sha256, super::super::shards::TextHash::of(&want.0));
        }
        // An evaluation file: each split is its own file.
        let ev = dir.path().join("e.txt");
        std::fs::write(&ev, "Eval one.<|endoftext|>Eval two.<|endoftext|>").unwrap();
        let corpus = Corpus::open(&cfg(&format!("{file}eval_path = {:?}\nn_stories = 4", ev.to_str().unwrap()))).unwrap();
        assert_eq!(docs(&corpus), (stories[..4].to_vec(), vec!["Eval one.".to_string(), "Eval two.".to_string()]));
        assert_eq!(corpus.inputs.all().len(), 2, "both files are hashed into the inputs");
    }

    #[test]
    fn errors_name_the_setting_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.txt");
        std::fs::write(&path, b"Good story.<|endoftext|>\xff\xfe<|endoftext|>").unwrap();
        let e = Corpus::open(&cfg(&format!("source = \"text\"\npath = {:?}\n", path.to_str().unwrap()))).err().unwrap().to_string();
        assert!(e.contains("bad.txt") && e.contains("UTF-8") && e.contains("data.path"), "{e}");
        let missing = dir.path().join("none.txt");
        let e = Corpus::open(&cfg(&format!("source = \"text\"\npath = {:?}\n", missing.to_str().unwrap()))).err().unwrap().to_string();
        assert!(e.contains("none.txt") && e.contains("data.path"), "{e}");
    }
}
