//! Query/passage pairs for retrieval (PAPER.md B.1, F): read from JSONL or parquet in the form
//! the paper's generated summaries come in, or derived from stories. Derived pairs are not the
//! paper's data and are labelled "derived" wherever they are used.
use super::{columnar, DataError};
use rand::seq::IndexedRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Pair {
    pub query: String,
    pub passage: String,
}

/// Pairs from `path` (`.parquet`, else JSON lines), the query and passage in the named fields.
/// Every row must hold both, non-empty: a row without one is an error naming it, never skipped
/// (skipping one column's cell would pair every later query with the next row's passage).
pub fn read_pairs(path: &Path, query: &str, passage: &str) -> Result<Vec<Pair>, DataError> {
    let is_parquet = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
    let rows: Vec<(Option<String>, Option<String>)> = if is_parquet {
        columnar::read_columns(path, &[query, passage])?.into_iter().map(|mut r| (r.remove(0), r.remove(0))).collect()
    } else {
        let text = crate::artifacts::read_regular_string(path).map_err(|e| DataError::Read { path: path.into(), error: e })?;
        let mut rows = Vec::new();
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let row: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| DataError::Columnar { path: path.into(), message: format!("line {}: not JSON: {e}", i + 1) })?;
            let field = |name: &str| {
                row.get(name).and_then(|v| v.as_str()).map(String::from).ok_or_else(|| DataError::PairField {
                    path: path.into(),
                    line: i + 1,
                    field: name.into(),
                })
            };
            rows.push((Some(field(query)?), Some(field(passage)?)));
        }
        rows
    };
    if rows.is_empty() {
        return Err(DataError::Empty { path: path.into() });
    }
    let empty: Vec<usize> = rows
        .iter()
        .enumerate()
        .filter(|(_, (q, p))| !(q.as_deref().is_some_and(|s| !s.trim().is_empty()) && p.as_deref().is_some_and(|s| !s.trim().is_empty())))
        .map(|(i, _)| i)
        .collect();
    if !empty.is_empty() {
        return Err(DataError::Columnar {
            path: path.into(),
            message: format!(
                "{} of {} rows have an empty or missing `{query}` or `{passage}` (rows {:?}{}, counted from 0): every pair needs both; drop or redo those rows",
                empty.len(),
                rows.len(),
                &empty[..empty.len().min(8)],
                if empty.len() > 8 { ", ..." } else { "" }
            ),
        });
    }
    Ok(rows.into_iter().map(|(q, p)| Pair { query: q.expect("checked"), passage: p.expect("checked") }).collect())
}

/// The most duplicated pairs, and test pairs also in training, a pairs file may hold (a share of
/// its pairs, of its test pairs): above it the set is refused, at or below it the counts are
/// reported with the run.
pub const PAIR_DEFECT_LIMIT: f64 = 0.01;

/// Pairs that repeat an earlier pair word for word, and test pairs that occur in training.
fn defects(train: &[Pair], test: &[Pair]) -> (usize, usize) {
    let mut seen = std::collections::HashSet::new();
    let duplicates = train.iter().chain(test).filter(|p| !seen.insert((&p.query, &p.passage))).count();
    let in_train: std::collections::HashSet<(&String, &String)> = train.iter().map(|p| (&p.query, &p.passage)).collect();
    (duplicates, test.iter().filter(|p| in_train.contains(&(&p.query, &p.passage))).count())
}

/// One sentence of each story as the query, the story without it as the passage (seeded).
/// Stories of fewer than two sentences give no pair.
pub fn derived_pairs(stories: &[String], seed: u64) -> Vec<Pair> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    stories
        .iter()
        .filter_map(|s| {
            let sentences: Vec<&str> = s.split_inclusive(['.', '!', '?']).map(str::trim).filter(|x| !x.is_empty()).collect();
            if sentences.len() < 2 {
                return None;
            }
            let k = *(0..sentences.len()).collect::<Vec<_>>().choose(&mut rng)?;
            let passage = sentences.iter().enumerate().filter(|(i, _)| *i != k).map(|(_, x)| *x).collect::<Vec<_>>().join(" ");
            Some(Pair { query: sentences[k].to_string(), passage })
        })
        .collect()
}

/// A pairs set split into train and test (the last `test_fraction` / `test_pairs`, as the
/// paper's 180k/20k), with its provenance.
#[derive(Debug, Clone)]
pub struct PairSplit {
    pub train: Vec<Pair>,
    pub test: Vec<Pair>,
    /// "synthetic" (embedded summaries), "derived" (sentence vs rest of story) or "file".
    pub label: &'static str,
    /// Input name -> sha256.
    pub inputs: crate::artifacts::Inputs,
    /// For a pairs file: (pairs repeating an earlier pair, test pairs also in training).
    pub defects: Option<(usize, usize)>,
}

/// The pairs a suite's `[pairs]` names.
pub fn load(cfg: &crate::suite::PairsConfig) -> Result<PairSplit, DataError> {
    use crate::suite::PairsSource;
    let mut inputs = crate::artifacts::Inputs::default();
    let hash = |p: &Path| crate::artifacts::sha256_file(p).map_err(|e| DataError::Read { path: p.into(), error: e });
    let (mut pairs, label) = match cfg.source {
        PairsSource::Embedded => {
            let n = cfg.n_pairs.unwrap_or(2000);
            let pairs: Vec<Pair> =
                super::embedded::generate(n, cfg.seed).into_iter().map(|r| Pair { query: r.summary, passage: r.story }).collect();
            let text: String = pairs.iter().map(|p| format!("{}\n{}\n", p.query, p.passage)).collect();
            inputs.named(format!("embedded pairs(n={n}, seed={})", cfg.seed), crate::artifacts::sha256_bytes(text.as_bytes()));
            (pairs, "synthetic")
        }
        PairsSource::Derived => {
            let path = cfg.path.as_deref().expect("validated: derived pairs have a path");
            let stories = super::text::read_stories(path, &cfg.marker, true)?;
            inputs.file(path, hash(path)?);
            let derived = derived_pairs(&stories, cfg.seed);
            // A pair is one sentence against the rest of its story: more pairs cannot come from
            // stories of one sentence, so say that rather than "raise n_pairs".
            if derived.len() < 4 {
                return Err(DataError::Columnar {
                    path: path.into(),
                    message: format!(
                        "{} of its {} stories give a derived pair (one sentence against the rest of the story needs two sentences or more): \
                         give stories of several sentences in pairs.path, or a pairs file (pairs.source = \"file\")",
                        derived.len(),
                        stories.len()
                    ),
                });
            }
            (derived, "derived")
        }
        PairsSource::File => {
            let path = cfg.path.as_deref().expect("validated: file pairs have a path");
            inputs.file(path, hash(path)?);
            (read_pairs(path, &cfg.query_field, &cfg.passage_field)?, "file")
        }
    };
    if let Some(n) = cfg.n_pairs {
        pairs.truncate(n);
    }
    let n_test = cfg.test_pairs.unwrap_or(((pairs.len() as f64) * cfg.test_fraction).round() as usize);
    if n_test < 2 || n_test + 2 > pairs.len() {
        return Err(DataError::TooFewPairs { n: pairs.len(), test: n_test });
    }
    let test = pairs.split_off(pairs.len() - n_test);
    let defects = (cfg.source == PairsSource::File).then(|| defects(&pairs, &test));
    if let (Some((dup, leak)), Some(path)) = (defects, cfg.path.as_deref()) {
        let n = pairs.len() + test.len();
        if dup as f64 > PAIR_DEFECT_LIMIT * n as f64 || leak as f64 > PAIR_DEFECT_LIMIT * test.len() as f64 {
            return Err(DataError::Columnar {
                path: path.into(),
                message: format!(
                    "{dup} of {n} pairs repeat an earlier pair and {leak} of the {} test pairs also occur in training; more than {}% \
                     of either makes the retrieval figures meaningless: deduplicate the set",
                    test.len(),
                    PAIR_DEFECT_LIMIT * 100.0
                ),
            });
        }
    }
    Ok(PairSplit { train: pairs, test, label, inputs, defects })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pairs_and_names_missing_fields() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pairs.jsonl");
        std::fs::write(&p, "{\"summary\": \"s1\", \"text\": \"t1\"}\n\n{\"summary\": \"s2\", \"text\": \"t2\"}\n").unwrap();
        let pairs = read_pairs(&p, "summary", "text").unwrap();
        assert_eq!(pairs[1], Pair { query: "s2".into(), passage: "t2".into() });
        std::fs::write(&p, "{\"summary\": \"s1\", \"text\": \"t1\"}\n{\"summary\": \"s2\"}\n").unwrap();
        let e = read_pairs(&p, "summary", "text").unwrap_err().to_string();
        assert!(e.contains("pairs.jsonl") && e.contains("line 2") && e.contains("`text`"), "{e}");
    }

    #[test]
    fn derived_pairs_split_a_story_and_are_seeded() {
        let stories = vec!["Tom ran. Mia sang! The end?".to_string(), "One sentence only.".to_string()];
        let a = derived_pairs(&stories, 1);
        assert_eq!(a.len(), 1);
        let joined = format!("{} {}", a[0].query, a[0].passage);
        for s in ["Tom ran.", "Mia sang!", "The end?"] {
            assert!(joined.contains(s));
        }
        assert!(!a[0].passage.contains(&a[0].query));
        assert_eq!(a, derived_pairs(&stories, 1));
    }
}
