//! Making a paper summary set (PAPER.md B.1-B.3) in three steps, each resumable or cheap to redo:
//! `export` the passages (which rows, how they are cut), `summarize` them (data::summarize, one
//! shard per server), `join` the shards' summaries with the passages into the pairs file the
//! `[pairs] source = "file"` reader takes.
use super::summarize::{passage_sha256, PromptSet, Sampling, Summary};
use crate::artifacts::{sha256_bytes, sha256_file, write_atomic, write_atomic_with};
use anyhow::{bail, Context, Result};
use polars::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One exported passage: its row in the data set (0 = the file's first document), the passage
/// as the pairs hold it, and the text the summariser is given.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Passage {
    pub row: usize,
    pub passage: String,
    pub prompt_text: String,
    pub passage_sha256: String,
}

/// What the passages are cut from and how.
pub struct Export<'a> {
    pub inputs: &'a [PathBuf],
    pub text_column: &'a str,
    pub marker: &'a str,
    pub prompts: PromptSet,
    /// Required where the set cuts passages to tokens (FineWeb, FineMath): the paper's tokenizer.
    pub tokenizer: Option<&'a tokenizers::Tokenizer>,
    pub skip: usize,
    pub count: usize,
}

/// Writes `count` passages after the first `skip` documents of the inputs (read in order, as one
/// stream) to `out` as JSON lines, with `<out>.meta.json`. Returns how many were written.
pub fn export(e: &Export, out: &Path, replace: bool) -> Result<usize> {
    anyhow::ensure!(e.count > 0, "--count must be at least 1");
    let inputs: Vec<&Path> = e.inputs.iter().map(PathBuf::as_path).collect();
    for (i, a) in inputs.iter().enumerate() {
        if let Some(b) = inputs[..i].iter().find(|b| a.canonicalize().ok().is_some_and(|a| b.canonicalize().ok() == Some(a))) {
            bail!("--input {} and --input {} are the same file: its passages would be exported twice; give each file once", b.display(), a.display());
        }
    }
    guard_output(out, &inputs, |p| read_passages(p).is_ok(), replace)?;
    let cut = match (e.prompts.passage_tokens(), e.tokenizer) {
        (Some(n), Some(tok)) => Some((n, tok)),
        (Some(_), None) => bail!(
            "the {} set cuts each passage to its first 512 tokens of the paper's tokenizer: give --tokenizer <tokenizer.json> (`harness data tokenizer --kind llama3`)",
            e.prompts.name()
        ),
        (None, _) => None,
    };
    let mut docs = e.inputs.iter().map(|p| super::stream_file(p, e.text_column, e.marker, true).with_context(|| format!("{}", p.display())));
    let mut lines = String::new();
    let (mut row, mut written) = (0usize, 0usize);
    'files: for file in &mut docs {
        for doc in file? {
            let doc = doc?;
            if row >= e.skip {
                let passage = match cut {
                    Some((n, tok)) => {
                        let enc = tok.encode(doc.as_str(), false).map_err(|err| anyhow::anyhow!("tokenizing row {row}: {err}"))?;
                        let ids = &enc.get_ids()[..enc.len().min(n)];
                        tok.decode(ids, false).map_err(|err| anyhow::anyhow!("decoding row {row}: {err}"))?
                    }
                    None => doc,
                };
                let p = Passage { row, prompt_text: e.prompts.prompt_text(&passage), passage_sha256: passage_sha256(&passage), passage };
                lines.push_str(&serde_json::to_string(&p)?);
                lines.push('\n');
                written += 1;
                if written == e.count {
                    break 'files;
                }
            }
            row += 1;
        }
    }
    if written < e.count {
        bail!("the inputs hold {row} documents: {} after skipping {} are fewer than --count {}", written, e.skip, e.count);
    }
    write_atomic(out, lines.as_bytes()).with_context(|| format!("writing {}", out.display()))?;
    let inputs: Vec<_> = e.inputs.iter().map(|p| serde_json::json!({"path": p, "bytes": std::fs::metadata(p).map(|m| m.len()).ok()})).collect();
    let meta = serde_json::json!({
        "inputs": inputs, "prompt_set": e.prompts, "skip": e.skip, "count": e.count,
        "passage_tokens": e.prompts.passage_tokens(),
        "tokenizer_sha256": e.tokenizer.map(|t| sha256_bytes(t.to_string(false).unwrap_or_default().as_bytes())),
        "output_sha256": sha256_file(out)?,
    });
    write_atomic(&super::summarize::sidecar(out), serde_json::to_string_pretty(&meta)?.as_bytes())?;
    Ok(written)
}

pub fn read_passages(path: &Path) -> Result<Vec<Passage>> {
    let text = crate::artifacts::read_regular_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            let p: Passage = serde_json::from_str(l).with_context(|| format!("{} line {}: not a passage written by `harness data pairs export`", path.display(), i + 1))?;
            // The text is what its hash says: a passage edited after the export would be joined
            // with a summary of the old text.
            if passage_sha256(&p.passage) != p.passage_sha256 {
                bail!(
                    "{} line {} (row {}): the passage no longer matches its passage_sha256 (edited after `data pairs export`?): export the passages again; summarize then redoes the changed rows",
                    path.display(),
                    i + 1,
                    p.row
                );
            }
            Ok(p)
        })
        .collect()
}

/// Counts a user checks a set by.
#[derive(Debug, Serialize, PartialEq)]
pub struct SetStats {
    pub pairs: usize,
    pub train: usize,
    pub test: usize,
    pub empty_summaries: usize,
    /// Summaries that are word for word another row's.
    pub duplicate_summaries: usize,
    /// Summary length in words: min, 10th, 50th, 90th percentile, max.
    pub summary_words: [usize; 5],
}

/// Joins the passages with the summaries of every shard into `out` (parquet: query, passage,
/// row, split, pair_sha256, model, prompt_set, sampling), with `<out>.provenance.json`. Every
/// passage must have exactly one summary, made from that passage by one model with one prompt
/// set and one sampling.
pub fn join(passages: &Path, summaries: &[PathBuf], test_pairs: usize, out: &Path, replace: bool) -> Result<SetStats> {
    let inputs: Vec<&Path> = std::iter::once(passages).chain(summaries.iter().map(PathBuf::as_path)).collect();
    guard_output(out, &inputs, |p| provenance_path(p).exists(), replace)?;
    let ps = read_passages(passages)?;
    let mut by_row: BTreeMap<usize, (Summary, &Path)> = BTreeMap::new();
    let mut doubled = Vec::new();
    for file in summaries {
        let text = crate::artifacts::read_regular_string(file).with_context(|| format!("reading {}", file.display()))?;
        for (i, l) in text.lines().enumerate() {
            let s: Summary = serde_json::from_str(l).with_context(|| format!("{} line {}: not a summary written by `harness data pairs summarize`", file.display(), i + 1))?;
            if let Some((_, first)) = by_row.get(&s.row) {
                doubled.push(format!("row {} in {} and {}", s.row, first.display(), file.display()));
            }
            by_row.insert(s.row, (s, file));
        }
    }
    if !doubled.is_empty() {
        bail!("{} rows have two summaries (shards overlap?): {}", doubled.len(), doubled.iter().take(5).cloned().collect::<Vec<_>>().join("; "));
    }
    let missing: Vec<usize> = ps.iter().filter(|p| !by_row.contains_key(&p.row)).map(|p| p.row).collect();
    if !missing.is_empty() {
        bail!(
            "{} of {} passages have no summary (rows {:?}{}): summarize them (a shard not run or not finished?) and join again",
            missing.len(),
            ps.len(),
            &missing[..missing.len().min(8)],
            if missing.len() > 8 { ", ..." } else { "" }
        );
    }
    let rows: std::collections::BTreeSet<usize> = ps.iter().map(|p| p.row).collect();
    if let Some(extra) = by_row.keys().find(|r| !rows.contains(r)) {
        bail!("a summary for row {extra}, which {} does not hold: these summaries belong to another export", passages.display());
    }
    let mut settings: Option<(String, PromptSet, Sampling)> = None;
    for p in &ps {
        let (s, file) = &by_row[&p.row];
        if s.passage_sha256 != p.passage_sha256 {
            bail!("{}: row {}'s summary was made from another passage than {} holds (sha256 differs): summarize again", file.display(), p.row, passages.display());
        }
        let this = (s.model.clone(), s.prompts, s.sampling.clone());
        match &settings {
            None => settings = Some(this),
            Some(first) if *first != this => bail!(
                "{}: row {} was summarised by {:?} with {:?} and {:?}; earlier rows by {:?} with {:?} and {:?}: one set, one summariser",
                file.display(),
                p.row,
                this.0,
                this.1,
                this.2,
                first.0,
                first.1,
                first.2
            ),
            _ => {}
        }
    }
    let (model, prompts, sampling) = settings.context("no passages")?;
    anyhow::ensure!(test_pairs < ps.len(), "--test-pairs {test_pairs} leaves no training pairs of {}", ps.len());
    let n = ps.len();
    let queries: Vec<&str> = ps.iter().map(|p| by_row[&p.row].0.summary.as_str()).collect();
    let split: Vec<&str> = (0..n).map(|i| if i + test_pairs >= n { "test" } else { "train" }).collect();
    let pair_sha: Vec<String> = ps.iter().zip(&queries).map(|(p, q)| sha256_bytes(format!("{q}\0{}", p.passage).as_bytes())).collect();
    let sampling_json = serde_json::to_string(&sampling)?;
    let mut df = DataFrame::new(n, vec![
        Column::new("query".into(), &queries),
        Column::new("passage".into(), ps.iter().map(|p| p.passage.as_str()).collect::<Vec<_>>()),
        Column::new("row".into(), ps.iter().map(|p| p.row as u64).collect::<Vec<_>>()),
        Column::new("split".into(), &split),
        Column::new("pair_sha256".into(), &pair_sha),
        Column::new("model".into(), vec![model.as_str(); n]),
        Column::new("prompt_set".into(), vec![prompts.name(); n]),
        Column::new("sampling".into(), vec![sampling_json.as_str(); n]),
    ])?;
    write_atomic_with(out, |tmp| -> Result<()> {
        ParquetWriter::new(std::fs::File::create(tmp)?).finish(&mut df)?;
        Ok(())
    })
    .with_context(|| format!("writing {}", out.display()))?;
    let mut words: Vec<usize> = queries.iter().map(|q| q.split_whitespace().count()).collect();
    words.sort_unstable();
    let pct = |f: f64| words[((words.len() - 1) as f64 * f).round() as usize];
    let mut seen = std::collections::HashSet::new();
    let stats = SetStats {
        pairs: n,
        train: n - test_pairs,
        test: test_pairs,
        empty_summaries: queries.iter().filter(|q| q.trim().is_empty()).count(),
        duplicate_summaries: queries.iter().filter(|q| !seen.insert(**q)).count(),
        summary_words: [pct(0.0), pct(0.1), pct(0.5), pct(0.9), pct(1.0)],
    };
    let files: Result<Vec<_>> =
        summaries.iter().map(|f| Ok(serde_json::json!({"path": f, "sha256": sha256_file(f)?}))).collect();
    let provenance = serde_json::json!({
        "passages": {"path": passages, "sha256": sha256_file(passages)?},
        "summaries": files?, "model": model, "prompt_set": prompts, "prompt_source": prompts.source(),
        "system": super::summarize::SYSTEM, "user_template": prompts.user("{text}"), "sampling": sampling,
        "test_pairs": test_pairs, "split": "the last test_pairs rows are the test split ([pairs] test_pairs)",
        "stats": stats, "output_sha256": sha256_file(out)?,
    });
    write_atomic(&provenance_path(out), serde_json::to_string_pretty(&provenance)?.as_bytes())?;
    Ok(stats)
}

/// Refuses `out` when it is one of `inputs`, or when it exists and holds something this command
/// did not write (`ours` says whether it did), unless `replace`.
pub fn guard_output(out: &Path, inputs: &[&Path], ours: impl Fn(&Path) -> bool, replace: bool) -> Result<()> {
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    crate::artifacts::refuse_inside_run(out, "--out")?;
    if let Some(input) = inputs.iter().find(|i| same(out, i)) {
        bail!("--out {} is an input of this command ({}): write elsewhere", out.display(), input.display());
    }
    if out.exists() && !replace && !ours(out) {
        bail!("--out {} exists and was not written by this command: choose another path, or pass --replace to overwrite it", out.display());
    }
    Ok(())
}

/// `<out>.provenance.json`.
pub fn provenance_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".provenance.json");
    out.with_file_name(name)
}
