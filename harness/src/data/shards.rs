//! Token shards: a split's token ids cached on disk as one binary file (u16 ids when the
//! vocabulary fits, else u32, then one u32 length per row) with a small JSON header, keyed by the
//! sha256 of (the split's text, the tokenizer, n_ctx, padding side, packing). A hit is re-verified
//! against the header's sha256; a mismatch is reported and the shard rebuilt, never used.
use super::{DataError, Encoded, Tok, IGNORE};
use crate::artifacts::{sha256_bytes, write_atomic};
use crate::suite::{Packing, PaddingSide};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tch::Tensor;

const SCHEMA: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Header {
    schema: u32,
    key: String,
    rows: usize,
    n_ctx: i64,
    dtype: String,
    pad_id: i64,
    padding: PaddingSide,
    packing: Packing,
    tokenizer_sha256: String,
    sha256: String,
}

/// What the cache did for one split.
#[derive(Debug, Clone, Serialize)]
pub struct CacheOutcome {
    pub key: String,
    pub hit: bool,
    /// Why an existing shard was not used (hash mismatch, unreadable header, ...).
    pub rebuilt: Option<String>,
    pub seconds: f64,
    pub bytes: u64,
}

/// Rows before padding: each a list of ids and how many of them are real.
struct Rows {
    ids: Vec<u32>,
    lengths: Vec<u32>,
}

fn cache_key(tok: &Tok, stories: &[String], n_ctx: i64, side: PaddingSide, packing: Packing) -> String {
    let text = sha256_bytes(stories.join("\u{0}").as_bytes());
    sha256_bytes(format!("shard-v{SCHEMA}|{text}|{}|{n_ctx}|{side:?}|{packing:?}", tok.sha256).as_bytes())
}

fn paths(dir: &Path, key: &str) -> (PathBuf, PathBuf) {
    let stem = &key[..32];
    (dir.join(format!("{stem}.json")), dir.join(format!("{stem}.bin")))
}

/// Tokenizes (or reads from the cache) one split.
pub fn encode_cached(
    tok: &Tok,
    stories: &[String],
    n_ctx: i64,
    side: PaddingSide,
    packing: Packing,
    dir: &Path,
) -> Result<(Encoded, CacheOutcome), DataError> {
    let started = std::time::Instant::now();
    let key = cache_key(tok, stories, n_ctx, side, packing);
    let (hpath, bpath) = paths(dir, &key);
    let mut rebuilt = None;
    if hpath.exists() {
        match read(&hpath, &bpath, &key) {
            Ok((rows, bytes)) => {
                let enc = to_tensors(&rows, n_ctx, side, tok.pad_id);
                let outcome = CacheOutcome { key, hit: true, rebuilt: None, seconds: started.elapsed().as_secs_f64(), bytes };
                return Ok((enc, outcome));
            }
            Err(why) => {
                eprintln!("token cache {}: {why}; rebuilding it", bpath.display());
                rebuilt = Some(why);
            }
        }
    }
    let rows = tokenize(tok, stories, n_ctx, packing)?;
    let bytes = write(&rows, &hpath, &bpath, &key, tok, n_ctx, side, packing).map_err(|e| DataError::Read { path: bpath.clone(), error: e })?;
    let enc = to_tensors(&rows, n_ctx, side, tok.pad_id);
    Ok((enc, CacheOutcome { key, hit: false, rebuilt, seconds: started.elapsed().as_secs_f64(), bytes }))
}

/// Tokenizes without the cache.
pub fn encode(tok: &Tok, stories: &[String], n_ctx: i64, side: PaddingSide, packing: Packing) -> Result<Encoded, DataError> {
    Ok(to_tensors(&tokenize(tok, stories, n_ctx, packing)?, n_ctx, side, tok.pad_id))
}

/// Byte-level BPE ids of every story (parallel inside `tokenizers`), cut to rows.
fn tokenize(tok: &Tok, stories: &[String], n_ctx: i64, packing: Packing) -> Result<Rows, DataError> {
    let enc = tok
        .tokenizer
        .encode_batch(stories.to_vec(), false)
        .map_err(|e| DataError::Tokenizer { path: "<encode>".into(), message: e.to_string() })?;
    let l = n_ctx as usize;
    let mut rows = Rows { ids: Vec::new(), lengths: Vec::new() };
    for e in &enc {
        let ids = e.get_ids();
        match packing {
            Packing::Truncate => {
                let take = ids.len().min(l);
                rows.ids.extend_from_slice(&ids[..take]);
                rows.ids.extend(std::iter::repeat_n(0, l - take)); // placeholder; padded in to_tensors
                rows.lengths.push(take as u32);
            }
            Packing::Windows => {
                for w in ids.chunks_exact(l) {
                    rows.ids.extend_from_slice(w);
                    rows.lengths.push(l as u32);
                }
            }
        }
    }
    Ok(rows)
}

/// Rows to `[n, n_ctx]` tokens and labels: pads on `side`, labels of pads = IGNORE.
fn to_tensors(rows: &Rows, n_ctx: i64, side: PaddingSide, pad_id: i64) -> Encoded {
    let l = n_ctx as usize;
    let n = rows.lengths.len();
    let mut tokens = vec![pad_id; n * l];
    let mut labels = vec![IGNORE; n * l];
    for (r, &len) in rows.lengths.iter().enumerate() {
        let len = len as usize;
        let src = &rows.ids[r * l..r * l + len];
        let start = match side {
            PaddingSide::Right => 0,
            PaddingSide::Left => l - len,
        };
        for (k, &id) in src.iter().enumerate() {
            tokens[r * l + start + k] = id as i64;
            labels[r * l + start + k] = id as i64;
        }
    }
    Encoded {
        tokens: Tensor::from_slice(&tokens).view([n as i64, n_ctx]),
        labels: Tensor::from_slice(&labels).view([n as i64, n_ctx]),
    }
}

#[allow(clippy::too_many_arguments)]
fn write(rows: &Rows, hpath: &Path, bpath: &Path, key: &str, tok: &Tok, n_ctx: i64, side: PaddingSide, packing: Packing) -> std::io::Result<u64> {
    let wide = tok.vocab_size() > 65536;
    let mut bin = Vec::with_capacity(rows.ids.len() * if wide { 4 } else { 2 } + rows.lengths.len() * 4);
    for &id in &rows.ids {
        if wide {
            bin.extend_from_slice(&id.to_le_bytes());
        } else {
            bin.extend_from_slice(&(id as u16).to_le_bytes());
        }
    }
    for &len in &rows.lengths {
        bin.extend_from_slice(&len.to_le_bytes());
    }
    let header = Header {
        schema: SCHEMA,
        key: key.into(),
        rows: rows.lengths.len(),
        n_ctx,
        dtype: if wide { "u32" } else { "u16" }.into(),
        pad_id: tok.pad_id,
        padding: side,
        packing,
        tokenizer_sha256: tok.sha256.clone(),
        sha256: sha256_bytes(&bin),
    };
    write_atomic(bpath, &bin)?;
    write_atomic(hpath, serde_json::to_string_pretty(&header).expect("serializes").as_bytes())?;
    Ok(bin.len() as u64)
}

fn read(hpath: &Path, bpath: &Path, key: &str) -> Result<(Rows, u64), String> {
    let header: Header = serde_json::from_str(&std::fs::read_to_string(hpath).map_err(|e| format!("unreadable header: {e}"))?)
        .map_err(|e| format!("bad header: {e}"))?;
    if header.key != key || header.schema != SCHEMA {
        return Err("header is for another key or schema".into());
    }
    let bin = std::fs::read(bpath).map_err(|e| format!("unreadable shard: {e}"))?;
    let got = sha256_bytes(&bin);
    if got != header.sha256 {
        return Err(format!("sha256 mismatch (header {}, file {})", &header.sha256[..12], &got[..12]));
    }
    let width = if header.dtype == "u32" { 4 } else { 2 };
    let n_ids = header.rows * header.n_ctx as usize;
    if bin.len() != n_ids * width + header.rows * 4 {
        return Err("shard size does not match its header".into());
    }
    let ids = bin[..n_ids * width]
        .chunks_exact(width)
        .map(|c| if width == 4 { u32::from_le_bytes([c[0], c[1], c[2], c[3]]) } else { u16::from_le_bytes([c[0], c[1]]) as u32 })
        .collect();
    let lengths = bin[n_ids * width..].chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Ok((Rows { ids, lengths }, bin.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Corpus;
    use crate::suite::DataConfig;

    fn setup(dir: &Path) -> (Tok, Vec<String>) {
        let cfg: DataConfig = toml::from_str("source = \"embedded\"\nn_ctx = 16\nvocab_size = 300\nn_stories = 40").unwrap();
        let corpus = Corpus::load(&cfg).unwrap();
        (Tok::for_run(&cfg, &corpus, dir).unwrap(), corpus.train)
    }

    #[test]
    fn second_encode_is_a_verified_hit_and_corruption_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let (tok, stories) = setup(dir.path());
        let shards = dir.path().join("tokens");
        let (a, first) = encode_cached(&tok, &stories, 16, PaddingSide::Left, Packing::Truncate, &shards).unwrap();
        assert!(!first.hit);
        let (b, second) = encode_cached(&tok, &stories, 16, PaddingSide::Left, Packing::Truncate, &shards).unwrap();
        assert!(second.hit && second.rebuilt.is_none());
        assert!(a.tokens.equal(&b.tokens) && a.labels.equal(&b.labels));
        // Another padding side is another key.
        let (_, other) = encode_cached(&tok, &stories, 16, PaddingSide::Right, Packing::Truncate, &shards).unwrap();
        assert!(!other.hit && other.key != first.key);
        // Flip one byte of the shard: the hash check rejects it and the shard is rebuilt.
        let (_, bin) = paths(&shards, &first.key);
        let mut bytes = std::fs::read(&bin).unwrap();
        bytes[3] ^= 0xff;
        std::fs::write(&bin, &bytes).unwrap();
        let (c, third) = encode_cached(&tok, &stories, 16, PaddingSide::Left, Packing::Truncate, &shards).unwrap();
        assert!(!third.hit);
        assert!(third.rebuilt.as_deref().unwrap().contains("sha256 mismatch"), "{third:?}");
        assert!(a.tokens.equal(&c.tokens));
        // Uncached encoding gives the same tensors.
        let d = encode(&tok, &stories, 16, PaddingSide::Left, Packing::Truncate).unwrap();
        assert!(a.labels.equal(&d.labels));
    }

    #[test]
    fn windows_never_cross_documents_and_drop_remainders() {
        let dir = tempfile::tempdir().unwrap();
        let (tok, stories) = setup(dir.path());
        let l = 8usize;
        let lens: Vec<usize> = stories.iter().map(|s| tok.tokenizer.encode(s.as_str(), false).unwrap().get_ids().len()).collect();
        let enc = encode(&tok, &stories, l as i64, PaddingSide::Right, Packing::Windows).unwrap();
        assert_eq!(enc.len() as usize, lens.iter().map(|n| n / l).sum::<usize>());
        assert_eq!(enc.real_tokens() as usize, enc.len() as usize * l, "windows hold no pads");
        // The second window of the first story is its tokens 8..16.
        let ids = tok.tokenizer.encode(stories[0].as_str(), false).unwrap().get_ids().to_vec();
        let row: Vec<i64> = Vec::try_from(&enc.tokens.get(1)).unwrap();
        assert_eq!(row, ids[l..2 * l].iter().map(|&i| i as i64).collect::<Vec<_>>());
        // A document shorter than n_ctx vanishes.
        let short = encode(&tok, &["Tom ran.".to_string()], 64, PaddingSide::Right, Packing::Windows).unwrap();
        assert!(short.is_empty());
    }
}
