//! The paper's tokenizers (PAPER.md B.1, B.2): a base tokenizer's pipeline, retrained on the
//! run's text the way Hugging Face's `train_new_from_iterator` retrains it.
//!
//! - `llama`: `openlm-research/open_llama_3b` as transformers 4.42 converts it into a
//!   `LlamaTokenizerFast` (SentencePiece-style BPE: `▁` for spaces, no pre-tokenizer, byte
//!   fallback, `<unk>` = 0, `<s>` = 1, `</s>` = 2), retrained to 4096 on lines of TinyStories.
//!   Its training lines are stripped of their newline, as the reference's trainer strips them,
//!   so `\n` is not in the vocabulary and encodes as `<unk>` (PAPER.md I.8).
//! - `llama3`: `meta-llama/Meta-Llama-3-8B` (byte-level BPE with Llama 3's split regex and 256
//!   special tokens), retrained to 8000 on FineWeb-edu documents; FineMath reuses it.
//!
//! The base files cannot be downloaded here, so their pipelines are written out below from the
//! published `tokenizer.json`s; `data.tokenizer_base` takes any `tokenizer.json` instead.
use serde_json::{json, Value};
use tokenizers::models::bpe::BpeTrainerBuilder;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

/// Llama 3's pre-tokenizer split (its `tokenizer.json`, `pre_tokenizer.pretokenizers[0]`).
pub const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// `open_llama_3b`'s tokenizer as `LlamaTokenizerFast` builds it from the SentencePiece model
/// (transformers 4.42 `LlamaConverter`, legacy mode, the vocabulary emptied for retraining).
pub fn llama_base() -> Value {
    let special = |id: u32, content: &str| {
        json!({"id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true})
    };
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [special(0, "<unk>"), special(1, "<s>"), special(2, "</s>")],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}
        ]},
        "pre_tokenizer": null,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [
                {"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}
            ],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}
        },
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}
        ]},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": "<unk>", "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
            "vocab": {}, "merges": []
        }
    })
}

/// `Meta-Llama-3-8B`'s `tokenizer.json` with its vocabulary emptied: 256 special tokens
/// (ids 128000-128255 there), the split regex, byte-level BPE.
pub fn llama3_base() -> Value {
    let named: [(u32, &str); 5] =
        [(0, "<|begin_of_text|>"), (1, "<|end_of_text|>"), (6, "<|start_header_id|>"), (7, "<|end_header_id|>"), (9, "<|eot_id|>")];
    let mut reserved = 0;
    let added: Vec<Value> = (0..256u32)
        .map(|i| {
            let content = match named.iter().find(|(k, _)| *k == i) {
                Some((_, name)) => name.to_string(),
                None => {
                    reserved += 1;
                    format!("<|reserved_special_token_{}|>", reserved - 1)
                }
            };
            json!({"id": 128000 + i, "content": content, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_SPLIT}, "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}
        ]},
        "post_processor": {"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
            {"type": "TemplateProcessing",
             "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [
                {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}
             ],
             "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [128000], "tokens": ["<|begin_of_text|>"]}}}
        ]},
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": true,
            "vocab": {}, "merges": []
        }
    })
}

/// Which byte-level pre-tokenizers give the trainer the 256-byte initial alphabet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alphabet {
    /// transformers up to 4.44, the paper's (the author's fork is 4.42): only a top-level
    /// `ByteLevel`. Llama 3's sits inside a `Sequence`, so the retrained vocabulary holds only
    /// the bytes its training text used, and a byte it never saw is dropped when encoding.
    PaperEra,
    /// transformers 4.45 and later (huggingface/transformers#33556): a `ByteLevel` anywhere.
    Current,
}

/// Retrains `base` (a `tokenizer.json`) on `texts` to `vocab_size` as transformers'
/// `PreTrainedTokenizerFast.train_new_from_iterator` does: the added tokens and the
/// post-processor are set aside, the BPE vocabulary and merges emptied, the special added tokens
/// become the trainer's special tokens (ids 0.. in their order), a byte-level pre-tokenizer gives
/// the trainer its 256-byte initial alphabet (per `alphabet`), and the post-processor comes back
/// with its top-level special-token ids updated (transformers leaves those nested in a
/// `Sequence` as they were, huggingface/transformers#30752, and so does this). Returns the new
/// `tokenizer.json`.
pub fn retrain<S: AsRef<str> + Send>(
    base: &Value,
    texts: impl Iterator<Item = S> + Send,
    vocab_size: usize,
    alphabet: Alphabet,
) -> Result<String, String> {
    let mut json = base.clone();
    let obj = json.as_object_mut().ok_or("the base is not a JSON object")?;
    let added = obj.remove("added_tokens").unwrap_or(Value::Array(vec![]));
    let post = obj.remove("post_processor").unwrap_or(Value::Null);
    let model = obj.get_mut("model").and_then(Value::as_object_mut).ok_or("the base has no model")?;
    if model.get("type").and_then(Value::as_str) != Some("BPE") {
        return Err(format!("retraining takes a BPE model; the base's is {}", model.get("type").unwrap_or(&Value::Null)));
    }
    model.insert("vocab".into(), json!({}));
    model.insert("merges".into(), json!([]));
    let prefix = model.get("continuing_subword_prefix").and_then(Value::as_str).map(String::from);
    let suffix = model.get("end_of_word_suffix").and_then(Value::as_str).map(String::from);
    let specials: Vec<AddedToken> = added
        .as_array()
        .ok_or("added_tokens is not a list")?
        .iter()
        .filter(|t| t.get("special").and_then(Value::as_bool) == Some(true))
        .map(|t| {
            let flag = |k: &str, default: bool| t.get(k).and_then(Value::as_bool).unwrap_or(default);
            let content = t.get("content").and_then(Value::as_str).unwrap_or_default().to_string();
            AddedToken::from(content, true)
                .single_word(flag("single_word", false))
                .lstrip(flag("lstrip", false))
                .rstrip(flag("rstrip", false))
                .normalized(flag("normalized", false))
        })
        .collect();
    let byte_level = {
        let pre = json.get("pre_tokenizer").unwrap_or(&Value::Null);
        let is = |p: &Value| p.get("type").and_then(Value::as_str) == Some("ByteLevel");
        is(pre) || (alphabet == Alphabet::Current && pre.get("pretokenizers").and_then(Value::as_array).is_some_and(|ps| ps.iter().any(is)))
    };
    let mut tok: Tokenizer = json.to_string().parse().map_err(|e: tokenizers::Error| format!("the base does not load: {e}"))?;
    let mut builder = BpeTrainerBuilder::new().vocab_size(vocab_size).special_tokens(specials).show_progress(false);
    if byte_level {
        builder = builder.initial_alphabet(ByteLevel::alphabet().into_iter().collect());
    }
    if let Some(p) = prefix {
        builder = builder.continuing_subword_prefix(p);
    }
    if let Some(s) = suffix {
        builder = builder.end_of_word_suffix(s);
    }
    let mut trainer: tokenizers::models::TrainerWrapper = builder.build().into();
    tok.train(&mut trainer, texts).map_err(|e| e.to_string())?;
    let mut trained: Value = serde_json::from_str(&tok.to_string(false).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let mut post = post;
    if let Some(map) = post.get_mut("special_tokens").and_then(Value::as_object_mut) {
        for entry in map.values_mut() {
            let tokens: Vec<String> =
                entry.get("tokens").and_then(Value::as_array).into_iter().flatten().filter_map(|t| t.as_str().map(String::from)).collect();
            let ids: Vec<Value> = tokens.iter().map(|t| tok.token_to_id(t).map_or(Value::Null, Value::from)).collect();
            entry["ids"] = Value::Array(ids);
        }
    }
    for key in ["cls", "sep"] {
        if let Some(pair) = post.get_mut(key).and_then(Value::as_array_mut) {
            if let Some(id) = pair.first().and_then(Value::as_str).and_then(|t| tok.token_to_id(t)) {
                pair[1] = id.into();
            }
        }
    }
    trained["post_processor"] = post;
    // Key order as Hugging Face writes it, so the file reads like theirs.
    let out: Tokenizer = trained.to_string().parse().map_err(|e: tokenizers::Error| format!("the retrained tokenizer does not load: {e}"))?;
    out.to_string(false).map_err(|e| e.to_string())
}

/// The reference's TinyStories tokenizer text: the file's lines, each stripped of surrounding
/// whitespace as Python's `str.strip` does (`pc/tinystories_tokenizer_trainer.py`), with the
/// story marker between stories as `TinyStories-train.txt` has it.
pub fn reference_lines<'a>(stories: impl Iterator<Item = String> + Send + 'a, marker: Option<&'a str>) -> impl Iterator<Item = String> + Send + 'a {
    stories.flat_map(move |s| s.split('\n').map(|l| l.trim().to_string()).chain(marker.map(String::from)).collect::<Vec<_>>())
}

/// How many lines the paper's TinyStories tokenizer script keeps (`truncation_index`), and its
/// batch size.
pub const PAPER_LINES: usize = 2_000_000;
pub const PAPER_BATCH: usize = 1024;

/// The lines `tinystories_tokenizer_trainer.py` hands `train_new_from_iterator` (PAPER.md I.7), in
/// its order: of the first `truncation` lines (N of them), for i in 0..N / bs, batch i is
/// `lines[i*bs : i*(bs+1)]`, the i lines from line bs i (fewer at the end of the file). Lines are
/// skipped, and repeated where batches overlap (i > bs). Streamed: it holds one batch's span.
pub fn paper_line_batches<'a>(lines: impl Iterator<Item = String> + Send + 'a, truncation: usize, bs: usize) -> impl Iterator<Item = String> + Send + 'a {
    let mut lines = lines.take(truncation);
    let mut buf = std::collections::VecDeque::new();
    let (mut base, mut read, mut ended, mut i) = (0usize, 0usize, false, 0usize);
    let mut out = Vec::new().into_iter();
    std::iter::from_fn(move || loop {
        if let Some(l) = out.next() {
            return Some(l);
        }
        // Batch i exists when line bs (i + 1) - 1 does (i < N / bs); it ends at bs i + i.
        while read < bs * i + i.max(bs) && !ended {
            match lines.next() {
                Some(l) => {
                    buf.push_back(l);
                    read += 1;
                }
                None => ended = true,
            }
        }
        if read < bs * (i + 1) {
            return None;
        }
        let (start, end) = (bs * i, (bs * i + i).min(read));
        let batch: Vec<String> = buf.range(start - base..end - base).cloned().collect();
        i += 1;
        while base < bs * i && !buf.is_empty() {
            buf.pop_front();
            base += 1;
        }
        out = batch.into_iter();
    })
}

/// Tokens and characters of `texts` under `tok` (no special tokens added), and how many of
/// the tokens are its unknown token.
pub struct Stats {
    pub chars: u64,
    pub tokens: u64,
    pub unk: u64,
}

pub fn stats(tok: &Tokenizer, texts: impl Iterator<Item = String>) -> Result<Stats, String> {
    let unk = tok.token_to_id("<unk>");
    let mut s = Stats { chars: 0, tokens: 0, unk: 0 };
    let mut texts = texts.peekable();
    while texts.peek().is_some() {
        let chunk: Vec<String> = texts.by_ref().take(256).collect();
        let encs = tok.encode_batch(chunk.clone(), false).map_err(|e| e.to_string())?;
        for (t, e) in chunk.iter().zip(&encs) {
            s.chars += t.chars().count() as u64;
            s.tokens += e.get_ids().len() as u64;
            s.unk += e.get_ids().iter().filter(|&&i| Some(i) == unk).count() as u64;
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stories() -> Vec<String> {
        crate::data::embedded::generate(300, 0).into_iter().map(|r| r.story).collect()
    }

    #[test]
    fn llama_keeps_the_paper_quirks() {
        let s = stories();
        let json = retrain(&llama_base(), reference_lines(s.iter().cloned(), Some("<|endoftext|>")), 600, Alphabet::PaperEra).unwrap();
        let tok: Tokenizer = json.parse().unwrap();
        assert_eq!(tok.get_vocab_size(true), 600);
        for (id, name) in ["<unk>", "<s>", "</s>"].iter().enumerate() {
            assert_eq!(tok.token_to_id(name), Some(id as u32), "{name}");
        }
        // Newline never reaches the vocabulary: it is <unk> (PAPER.md I.8); spaces become ▁.
        let enc = tok.encode("Tom ran.\nHe", false).unwrap();
        assert!(enc.get_ids().contains(&0), "{:?}", enc.get_tokens());
        assert!(enc.get_tokens()[0].starts_with('▁'), "{:?}", enc.get_tokens());
        // Without specials the text round-trips through the decoder.
        let ids = tok.encode("Tom ran to the park.", false).unwrap().get_ids().to_vec();
        assert_eq!(tok.decode(&ids, true).unwrap(), "Tom ran to the park.");
        // With them, <s> leads (the post-processor's id was updated to the new vocabulary).
        assert_eq!(tok.encode("Tom", true).unwrap().get_ids()[0], 1);
    }

    /// PAPER.md I.7 against a literal transcription of the reference's loop
    /// (`tinystories_tokenizer_trainer.py`'s `TextDataset`) run by python3: the same lines in the
    /// same order, for files shorter than, equal to and longer than the truncation, with batches
    /// that overlap (i > bs).
    #[test]
    fn paper_line_batches_follow_the_reference_loop_line_for_line() {
        let script = r#"
import json, sys
path, batch_size, truncation_index = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
lines = []
with open(path, 'r', encoding='utf-8') as file:
    for line in file:
        lines.append(line.strip())
lines = lines[:truncation_index]
line_batches = []
batches = len(lines) // batch_size
for i in range(batches):
    line_batches.append(lines[i*batch_size: i*(batch_size+1)])
print(json.dumps([l for batch in line_batches for l in batch]))
"#;
        let dir = tempfile::tempdir().unwrap();
        let (py, file) = (dir.path().join("loop.py"), dir.path().join("lines.txt"));
        std::fs::write(&py, script).unwrap();
        for (n, bs, truncation) in [(50, 8, 1000), (100, 4, 60), (300, 8, 300), (777, 8, 700), (7, 8, 100)] {
            let lines: Vec<String> = (0..n).map(|k| format!("line {k}")).collect();
            std::fs::write(&file, lines.join("\n") + "\n").unwrap();
            let out = std::process::Command::new("python3").arg(&py).arg(&file).arg(bs.to_string()).arg(truncation.to_string()).output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let want: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
            let got: Vec<String> = paper_line_batches(lines.into_iter(), truncation, bs).collect();
            assert_eq!(got, want, "{n} lines, batches of {bs}, the first {truncation}");
            if n >= bs * (bs + 2) && truncation >= bs * (bs + 2) {
                // Past i = bs the batches overlap: some lines come twice.
                let mut seen = std::collections::HashSet::new();
                assert!(got.iter().any(|l| !seen.insert(l.clone())), "{n}, {bs}: no line repeated");
            }
        }
    }

    #[test]
    fn llama3_is_byte_level_with_specials_first() {
        let s = stories();
        // The paper's rule: only the bytes the text used; a byte never seen is dropped.
        let paper: Tokenizer = retrain(&llama3_base(), s.iter(), 900, Alphabet::PaperEra).unwrap().parse().unwrap();
        assert_eq!(paper.get_vocab_size(true), 900);
        let unseen = "Tom \u{1F600}";
        let ids = paper.encode(unseen, false).unwrap().get_ids().to_vec();
        assert_eq!(paper.decode(&ids, false).unwrap(), "Tom ", "an unseen byte is dropped, as in the paper's tokenizer");
        let json = retrain(&llama3_base(), s.iter(), 900, Alphabet::Current).unwrap();
        let tok: Tokenizer = json.parse().unwrap();
        assert_eq!(tok.get_vocab_size(true), 900);
        assert_eq!(tok.token_to_id("<|begin_of_text|>"), Some(0));
        assert_eq!(tok.token_to_id("<|end_of_text|>"), Some(1));
        assert_eq!(tok.token_to_id("<|eot_id|>"), Some(9));
        assert_eq!(tok.token_to_id("<|reserved_special_token_250|>"), Some(255));
        // Every byte is in the alphabet: nothing is unknown, newlines and emoji included.
        let text = "Tom ran.\n\nIt's 1234 \u{1F600}";
        let ids = tok.encode(text, false).unwrap().get_ids().to_vec();
        assert_eq!(tok.decode(&ids, false).unwrap(), text);
        // Digits are split in threes, as Llama 3's regex does.
        let toks = tok.encode("1234", false).unwrap().get_tokens().to_vec();
        assert!(toks.len() >= 2, "{toks:?}");
    }

    #[test]
    fn retraining_is_repeatable() {
        let s = stories();
        let a = retrain(&llama_base(), reference_lines(s.iter().cloned(), None), 500, Alphabet::PaperEra).unwrap();
        let b = retrain(&llama_base(), reference_lines(s.iter().cloned(), None), 500, Alphabet::PaperEra).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn a_non_bpe_base_is_refused() {
        let mut base = llama_base();
        base["model"] = json!({"type": "WordLevel", "vocab": {}, "unk_token": "<unk>"});
        assert!(retrain(&base, ["a"].into_iter(), 10, Alphabet::Current).unwrap_err().contains("BPE"));
    }
}
