//! The data path's memory does not grow with the corpus: the same CLM run on a corpus 12 times
//! larger peaks at the same resident memory (docs/data.md, "Memory"). Each run is its own
//! process, so its manifest's `peak_rss` (VmHWM) is that run's alone.
mod common;
use common::*;
use std::path::Path;

/// A marker-separated corpus of about `mib` MiB: the embedded stories, each made distinct by a
/// number, so the text (and its hash) grows with the size.
fn corpus(path: &Path, mib: usize) -> usize {
    let stories: Vec<String> = harness::data::embedded::generate(500, 11).into_iter().map(|r| r.story).collect();
    let mut text = String::new();
    let mut n = 0;
    while text.len() < mib << 20 {
        text.push_str(&format!("{} Story number {n}.\n<|endoftext|>\n", stories[n % stories.len()]));
        n += 1;
    }
    std::fs::write(path, text).unwrap();
    n
}

fn peak_mib(m: &serde_json::Value) -> f64 {
    let s = m["execution"]["peak_rss"].as_str().unwrap_or_else(|| panic!("no peak_rss in {m}"));
    s.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn peak_memory_is_flat_across_corpus_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let (small, big) = (dir.path().join("small.txt"), dir.path().join("big.txt"));
    let docs = (corpus(&small, 4), corpus(&big, 48));
    let eval = dir.path().join("eval.txt");
    corpus(&eval, 1);
    // One tokenizer for both, trained once on the small corpus (as `harness data tokenizer` would).
    let tok = dir.path().join("tok.json");
    let out =
        harness(dir.path(), &["data", "tokenizer", "--kind", "bpe", "--input", small.to_str().unwrap(), "--vocab", "512", "--out", tok.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut peaks = vec![];
    for (name, path) in [("small", &small), ("big", &big)] {
        let suite = format!(
            "schema = 1\nname = \"scale-{name}\"\ndescription = \"memory by corpus size\"\n[defaults]\nseeds = [0]\ndevice = \"cpu\"\n\
             [defaults.data]\nsource = \"text\"\npath = {:?}\neval_path = {:?}\ntokenizer_path = {:?}\nvocab_size = 512\nn_ctx = 32\npacking = \"windows\"\n\
             [defaults.train]\nsteps = 4\nbatch_size = 16\nwarmup_steps = 0\neval_every = 4\neval_batches = 2\n\
             [[experiment]]\nname = \"clm\"\nkind = \"clm\"\nmodel = {{ kind = \"masked_mixer\", d_model = 16, n_layers = 1 }}\n",
            path.to_str().unwrap(),
            eval.to_str().unwrap(),
            tok.to_str().unwrap()
        );
        let file = write_suite(dir.path(), &format!("{name}.toml"), &suite);
        let out = harness(dir.path(), &["run", file.to_str().unwrap(), "-q"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let m = &manifest(&dir.path().join("results"), &format!("scale-{name}"))[0];
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run_dir(&dir.path().join("results"), &format!("scale-{name}"), m).join("summary.json")).unwrap())
                .unwrap();
        peaks.push((peak_mib(m), summary["train_stories"].as_u64().unwrap(), summary["train_rows"].as_u64().unwrap()));
    }
    let ((small_peak, small_docs, small_rows), (big_peak, big_docs, big_rows)) = (peaks[0], peaks[1]);
    assert_eq!((small_docs, big_docs), (docs.0 as u64, docs.1 as u64), "each run read its whole corpus");
    assert!(big_rows > 10 * small_rows, "the big corpus has {big_rows} rows against {small_rows}");
    // 44 MiB more text: held whole, with int64 tokens and labels of every row, it would add about
    // 44 MiB of text and 16 bytes a token (over 150 MiB); streamed, only the order (4 bytes a row)
    // and the document lengths grow.
    let grown = big_peak - small_peak;
    assert!(grown < 24.0, "peak RSS grew {grown:.1} MiB ({small_peak:.1} -> {big_peak:.1}) for 44 MiB more text");
}
