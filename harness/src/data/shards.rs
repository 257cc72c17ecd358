//! Token shards: a split's token ids cached on disk as one binary file (u16 ids when the
//! vocabulary fits, else u32, then one u32 length per row) with a small JSON header, keyed by the
//! sha256 of (the split's text, the tokenizer, n_ctx, padding side, packing). A hit is re-verified
//! against the header's sha256; a mismatch is reported and the shard rebuilt, never used.
use super::{DataError, Encoded, Tok, IGNORE};
use crate::artifacts::{sha256_bytes, write_atomic};
use crate::suite::{Packing, PaddingSide};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

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

/// Documents tokenized at once: bounds the tokenizer's per-token bookkeeping, so encoding holds
/// one chunk of encodings, never the split's.
pub const CHUNK_DOCS: usize = 4096;
/// Rows turned into tensors at once when a shard is loaded.
const LOAD_ROWS: usize = 8192;

/// Rows before padding: each a list of ids and how many of them are real.
struct Rows {
    ids: Vec<u32>,
    lengths: Vec<u32>,
}

/// The sha256 of a split's text: its documents joined by NUL, hashed as they stream by.
#[derive(Default)]
pub struct TextHash {
    hasher: Sha256,
    docs: usize,
}

impl TextHash {
    pub fn push(&mut self, doc: &str) {
        if self.docs > 0 {
            self.hasher.update([0u8]);
        }
        self.hasher.update(doc.as_bytes());
        self.docs += 1;
    }

    pub fn finish(self) -> String {
        hex::encode(self.hasher.finalize())
    }

    pub fn of<'a>(docs: impl IntoIterator<Item = &'a String>) -> String {
        let mut h = Self::default();
        docs.into_iter().for_each(|d| h.push(d));
        h.finish()
    }
}

fn key_of(text_sha256: &str, tok: &Tok, n_ctx: i64, side: PaddingSide, packing: Packing) -> String {
    sha256_bytes(format!("shard-v{SCHEMA}|{text_sha256}|{}|{n_ctx}|{side:?}|{packing:?}", tok.sha256).as_bytes())
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
    let key = key_of(&TextHash::of(stories), tok, n_ctx, side, packing);
    let (hpath, bpath) = paths(dir, &key);
    let mut rebuilt = None;
    if hpath.exists() {
        match load(&hpath, &bpath, &key) {
            Ok((enc, bytes)) => {
                let outcome = CacheOutcome { key, hit: true, rebuilt: None, seconds: started.elapsed().as_secs_f64(), bytes };
                return Ok((enc, outcome));
            }
            Err(why) => {
                eprintln!("token cache {}: {why}; rebuilding it", bpath.display());
                rebuilt = Some(why);
            }
        }
    }
    let written = write_stream(tok, stories.iter().map(|s| Ok(s.clone())), n_ctx, side, packing, dir)?;
    debug_assert_eq!(written.key, key);
    let (enc, bytes) = load(&hpath, &bpath, &key)
        .map_err(|why| DataError::Tokenizer { path: bpath.clone(), message: format!("the shard just written does not read back: {why}") })?;
    Ok((enc, CacheOutcome { key, hit: false, rebuilt, seconds: started.elapsed().as_secs_f64(), bytes }))
}

/// Tokenizes without the cache.
pub fn encode(tok: &Tok, stories: &[String], n_ctx: i64, side: PaddingSide, packing: Packing) -> Result<Encoded, DataError> {
    let mut rows = Rows { ids: Vec::new(), lengths: Vec::new() };
    for chunk in stories.chunks(CHUNK_DOCS) {
        tokenize(tok, chunk, n_ctx, packing, &mut rows)?;
    }
    let n = rows.lengths.len() as i64;
    let (tokens, labels) = rows_to_vecs(&rows.ids, &rows.lengths, n_ctx, side, tok.pad_id);
    Ok(Encoded { tokens: Tensor::from_slice(&tokens).view([n, n_ctx]), labels: Tensor::from_slice(&labels).view([n, n_ctx]) })
}

/// Ids of every document (parallel inside `tokenizers`), cut to rows and appended to `rows`.
fn tokenize(tok: &Tok, docs: &[String], n_ctx: i64, packing: Packing, rows: &mut Rows) -> Result<(), DataError> {
    let enc = tok
        .tokenizer
        .encode_batch(docs.iter().map(String::as_str).collect::<Vec<_>>(), false)
        .map_err(|e| DataError::Tokenizer { path: "<encode>".into(), message: e.to_string() })?;
    let l = n_ctx as usize;
    for e in &enc {
        let ids = e.get_ids();
        match packing {
            Packing::Truncate => {
                let take = ids.len().min(l);
                rows.ids.extend_from_slice(&ids[..take]);
                rows.ids.extend(std::iter::repeat_n(0, l - take)); // placeholder; padded when loaded
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
    Ok(())
}

/// Rows to flat `[n * n_ctx]` tokens and labels: pads on `side`, labels of pads = IGNORE.
fn rows_to_vecs(ids: &[u32], lengths: &[u32], n_ctx: i64, side: PaddingSide, pad_id: i64) -> (Vec<i64>, Vec<i64>) {
    let l = n_ctx as usize;
    let n = lengths.len();
    let mut tokens = vec![pad_id; n * l];
    let mut labels = vec![IGNORE; n * l];
    for (r, &len) in lengths.iter().enumerate() {
        let len = len as usize;
        let src = &ids[r * l..r * l + len];
        let start = match side {
            PaddingSide::Right => 0,
            PaddingSide::Left => l - len,
        };
        for (k, &id) in src.iter().enumerate() {
            tokens[r * l + start + k] = id as i64;
            labels[r * l + start + k] = id as i64;
        }
    }
    (tokens, labels)
}

/// What [`write_stream`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Written {
    pub key: String,
    pub text_sha256: String,
    pub docs: usize,
    /// UTF-8 bytes of the documents (after trimming).
    pub text_bytes: u64,
    pub rows: usize,
    /// Real (non-pad) tokens.
    pub tokens: u64,
    pub bytes: u64,
    pub header: PathBuf,
    pub shard: PathBuf,
}

/// Tokenizes documents as they arrive, [`CHUNK_DOCS`] at a time, into the shard of their key in
/// `dir`: what it holds at once is one chunk of documents and encodings plus a length per row.
/// The ids go to a temporary file, renamed to the shard when the key (which hashes the whole
/// text) is known; the header, written last, makes it a valid cache entry.
pub fn write_stream(
    tok: &Tok,
    docs: impl Iterator<Item = Result<String, DataError>>,
    n_ctx: i64,
    side: PaddingSide,
    packing: Packing,
    dir: &Path,
) -> Result<Written, DataError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| DataError::Read { path: path.clone(), error }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let partial = dir.join(format!(".partial-{}-{nanos}.bin", std::process::id()));
    let result = (|| {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&partial).map_err(io(&partial))?);
        let wide = tok.vocab_size() > 65536;
        let (mut text, mut bin) = (TextHash::default(), Sha256::new());
        let mut lengths: Vec<u32> = Vec::new();
        let (mut n_docs, mut tokens, mut text_bytes) = (0usize, 0u64, 0u64);
        let mut chunk = Vec::with_capacity(CHUNK_DOCS);
        let mut docs = docs.peekable();
        while docs.peek().is_some() {
            chunk.clear();
            while chunk.len() < CHUNK_DOCS {
                match docs.next() {
                    Some(d) => chunk.push(d?),
                    None => break,
                }
            }
            chunk.iter().for_each(|d| text.push(d));
            text_bytes += chunk.iter().map(|d| d.len() as u64).sum::<u64>();
            n_docs += chunk.len();
            let mut rows = Rows { ids: Vec::new(), lengths: Vec::new() };
            tokenize(tok, &chunk, n_ctx, packing, &mut rows)?;
            let mut bytes = Vec::with_capacity(rows.ids.len() * if wide { 4 } else { 2 });
            for &id in &rows.ids {
                if wide {
                    bytes.extend_from_slice(&id.to_le_bytes());
                } else {
                    bytes.extend_from_slice(&(id as u16).to_le_bytes());
                }
            }
            bin.update(&bytes);
            out.write_all(&bytes).map_err(io(&partial))?;
            tokens += rows.lengths.iter().map(|&n| n as u64).sum::<u64>();
            lengths.extend_from_slice(&rows.lengths);
        }
        let tail: Vec<u8> = lengths.iter().flat_map(|n| n.to_le_bytes()).collect();
        bin.update(&tail);
        out.write_all(&tail).map_err(io(&partial))?;
        let file = out.into_inner().map_err(|e| DataError::Read { path: partial.clone(), error: e.into_error() })?;
        file.sync_all().map_err(io(&partial))?;
        let bytes = file.metadata().map_err(io(&partial))?.len();
        let text_sha256 = text.finish();
        let key = key_of(&text_sha256, tok, n_ctx, side, packing);
        let (hpath, bpath) = paths(dir, &key);
        let header = Header {
            schema: SCHEMA,
            key: key.clone(),
            rows: lengths.len(),
            n_ctx,
            dtype: if wide { "u32" } else { "u16" }.into(),
            pad_id: tok.pad_id,
            padding: side,
            packing,
            tokenizer_sha256: tok.sha256.clone(),
            sha256: hex::encode(bin.finalize()),
        };
        // An old header must not vouch for the new ids while they are being renamed in.
        let _ = std::fs::remove_file(&hpath);
        std::fs::rename(&partial, &bpath).map_err(io(&bpath))?;
        write_atomic(&hpath, serde_json::to_string_pretty(&header).expect("serializes").as_bytes()).map_err(io(&hpath))?;
        Ok(Written { key, text_sha256, docs: n_docs, text_bytes, rows: lengths.len(), tokens, bytes, header: hpath, shard: bpath })
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// A shard as `[rows, n_ctx]` tokens and labels, built [`LOAD_ROWS`] rows at a time and checked
/// against the header's sha256 in the same pass (a mismatch returns no tensors).
fn load(hpath: &Path, bpath: &Path, key: &str) -> Result<(Encoded, u64), String> {
    let header: Header = serde_json::from_str(&std::fs::read_to_string(hpath).map_err(|e| format!("unreadable header: {e}"))?)
        .map_err(|e| format!("bad header: {e}"))?;
    if header.key != key || header.schema != SCHEMA {
        return Err("header is for another key or schema".into());
    }
    let read_err = |e: std::io::Error| format!("unreadable shard: {e}");
    let mut file = std::fs::File::open(bpath).map_err(read_err)?;
    let size = file.metadata().map_err(read_err)?.len();
    let width = if header.dtype == "u32" { 4 } else { 2 };
    let (n, l) = (header.rows, header.n_ctx as usize);
    let ids_bytes = (n * l * width) as u64;
    if size != ids_bytes + n as u64 * 4 {
        return Err("shard size does not match its header".into());
    }
    let mut tail = vec![0u8; n * 4];
    file.seek(SeekFrom::Start(ids_bytes)).map_err(read_err)?;
    file.read_exact(&mut tail).map_err(read_err)?;
    let lengths: Vec<u32> = tail.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    if lengths.iter().any(|&x| x as usize > l) {
        return Err("a row is longer than n_ctx".into());
    }
    file.seek(SeekFrom::Start(0)).map_err(read_err)?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let shape = [n as i64, header.n_ctx];
    let tokens = Tensor::empty(shape, (Kind::Int64, Device::Cpu));
    let labels = Tensor::empty(shape, (Kind::Int64, Device::Cpu));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; LOAD_ROWS.min(n) * l * width];
    let mut ids = Vec::with_capacity(LOAD_ROWS.min(n) * l);
    for r0 in (0..n).step_by(LOAD_ROWS) {
        let k = LOAD_ROWS.min(n - r0);
        let bytes = &mut buf[..k * l * width];
        reader.read_exact(bytes).map_err(read_err)?;
        hasher.update(&*bytes);
        ids.clear();
        ids.extend(bytes.chunks_exact(width).map(|c| if width == 4 { u32::from_le_bytes([c[0], c[1], c[2], c[3]]) } else { u16::from_le_bytes([c[0], c[1]]) as u32 }));
        let (t, lab) = rows_to_vecs(&ids, &lengths[r0..r0 + k], header.n_ctx, header.padding, header.pad_id);
        let shape = [k as i64, header.n_ctx];
        tokens.narrow(0, r0 as i64, k as i64).copy_(&Tensor::from_slice(&t).view(shape));
        labels.narrow(0, r0 as i64, k as i64).copy_(&Tensor::from_slice(&lab).view(shape));
    }
    hasher.update(&tail);
    let got = hex::encode(hasher.finalize());
    if got != header.sha256 {
        return Err(format!("sha256 mismatch (header {}, file {})", header.sha256.get(..12).unwrap_or(&header.sha256), &got[..12]));
    }
    Ok((Encoded { tokens, labels }, size))
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
    fn a_streamed_shard_is_the_cache_entry_of_its_text_across_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let (tok, stories) = setup(dir.path());
        // More documents than one chunk, so rows from several chunks land in order.
        let docs: Vec<String> = (0..CHUNK_DOCS + 123).map(|i| format!("{} {i}", stories[i % stories.len()])).collect();
        let shards = dir.path().join("tokens");
        let w = write_stream(&tok, docs.iter().map(|d| Ok(d.clone())), 16, PaddingSide::Left, Packing::Truncate, &shards).unwrap();
        assert_eq!((w.docs, w.rows), (docs.len(), docs.len()));
        assert_eq!(w.text_sha256, sha256_bytes(docs.join("\u{0}").as_bytes()), "the streamed text hash is the joined text's");
        let (cached, how) = encode_cached(&tok, &docs, 16, PaddingSide::Left, Packing::Truncate, &shards).unwrap();
        assert!(how.hit && how.key == w.key, "{how:?}");
        let direct = encode(&tok, &docs, 16, PaddingSide::Left, Packing::Truncate).unwrap();
        assert!(cached.tokens.equal(&direct.tokens) && cached.labels.equal(&direct.labels));
        assert_eq!(w.tokens as i64, direct.real_tokens());
        // A source failing mid-stream leaves neither a shard nor a partial file.
        let failing = docs.iter().take(5000).map(|d| Ok(d.clone())).chain(std::iter::once(Err(DataError::Empty { path: "bad.txt".into() })));
        let other = dir.path().join("other");
        let e = write_stream(&tok, failing, 16, PaddingSide::Left, Packing::Truncate, &other).unwrap_err();
        assert!(e.to_string().contains("bad.txt"), "{e}");
        assert_eq!(std::fs::read_dir(&other).unwrap().count(), 0, "nothing left behind");
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
