//! Token shards: a split's documents tokenized once and cached on disk, whole (no n_ctx, padding
//! or packing in them), so one shard serves every context length, padding side and packing of a
//! sweep. A shard is one binary file, the ids of every document back to back (u16 when the
//! vocabulary fits, else u32, little-endian) followed by one u32 length per document, with a small
//! JSON header beside it. It is keyed by the sha256 of (the split's text, the tokenizer). A hit is
//! re-verified against the header's sha256 in one sequential pass before use; a mismatch is
//! reported and the shard rebuilt, never used.
//!
//! Nothing here holds a split's ids in memory: encoding writes them as the documents stream by,
//! and an opened shard keeps its document lengths (4 bytes a document) and a sparse offset index;
//! rows are read from the file when a batch asks for them ([`super::rows`]).
use super::{DataError, Tok};
use crate::artifacts::{sha256_bytes, write_atomic};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Version 2: whole documents, keyed by text and tokenizer only (version 1 stored rows cut to
/// n_ctx, one shard per context length, padding side and packing).
const SCHEMA: u32 = 2;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Header {
    schema: u32,
    key: String,
    docs: usize,
    /// Token ids in the file (the sum of the lengths).
    tokens: u64,
    dtype: String,
    tokenizer_sha256: String,
    text_sha256: String,
    /// UTF-8 bytes of the documents the ids came from.
    text_bytes: u64,
    /// sha256 of the whole binary file.
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

/// Documents tokenized at once, at most: bounds the tokenizer's per-token bookkeeping, so encoding
/// holds one chunk of encodings, never the split's.
pub const CHUNK_DOCS: usize = 4096;
/// Text tokenized at once, at most (a chunk of long documents ends early): a `tokenizers`
/// encoding keeps about 70 bytes a token (ids, offsets, token strings, masks), so a chunk's
/// encodings stay near 100 MB whatever the documents' length.
pub const CHUNK_BYTES: usize = 1 << 20;
/// Documents per entry of a shard's sparse offset index: finding a document's first id sums at
/// most this many lengths.
const BLOCK: usize = 64;
/// Bytes read at once when a shard is verified.
const VERIFY_BUF: usize = 4 << 20;

/// The sha256 of a split's text: its documents joined by NUL, hashed as they stream by.
#[derive(Default, Clone)]
pub struct TextHash {
    hasher: Sha256,
    docs: usize,
    bytes: u64,
}

impl TextHash {
    pub fn push(&mut self, doc: &str) {
        if self.docs > 0 {
            self.hasher.update([0u8]);
        }
        self.hasher.update(doc.as_bytes());
        self.docs += 1;
        self.bytes += doc.len() as u64;
    }

    pub fn docs(&self) -> usize {
        self.docs
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
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

/// The cache key of a split's shard.
pub fn key_of(text_sha256: &str, tok: &Tok) -> String {
    sha256_bytes(format!("shard-v{SCHEMA}|{text_sha256}|{}", tok.sha256).as_bytes())
}

fn paths(dir: &Path, key: &str) -> (PathBuf, PathBuf) {
    let stem = &key[..32];
    (dir.join(format!("{stem}.json")), dir.join(format!("{stem}.bin")))
}

/// The shard of a split in `dir`: a verified cache hit, else encoded from `docs` (called only on
/// a miss). `text_sha256` is the split's text hash from an earlier pass; the encoding pass hashes
/// the text again, and a difference (the files changed in between) is an error.
pub fn encode_cached<I>(tok: &Tok, text_sha256: &str, docs: impl FnOnce() -> I, dir: &Path) -> Result<(Shard, CacheOutcome), DataError>
where
    I: Iterator<Item = Result<String, DataError>>,
{
    let started = std::time::Instant::now();
    let key = key_of(text_sha256, tok);
    let (hpath, bpath) = paths(dir, &key);
    let mut rebuilt = None;
    if hpath.exists() {
        match Shard::open(&hpath, &bpath, &key) {
            Ok(shard) => {
                let outcome = CacheOutcome { key, hit: true, rebuilt: None, seconds: started.elapsed().as_secs_f64(), bytes: shard.bytes };
                return Ok((shard, outcome));
            }
            Err(why) => {
                eprintln!("token cache {}: {why}; rebuilding it", bpath.display());
                rebuilt = Some(why);
            }
        }
    }
    let written = write_stream(tok, docs(), dir)?;
    if written.text_sha256 != text_sha256 {
        return Err(DataError::Shard {
            path: dir.into(),
            message: format!(
                "the split's text changed while the run read it (sha256 {} when scanned, {} when encoded); a data file was modified \
                 during the run: run it again",
                &text_sha256[..12.min(text_sha256.len())],
                &written.text_sha256[..12]
            ),
        });
    }
    let shard = Shard::open(&hpath, &bpath, &key)
        .map_err(|why| DataError::Shard { path: bpath.clone(), message: format!("the shard just written does not read back: {why}") })?;
    let outcome = CacheOutcome { key, hit: false, rebuilt, seconds: started.elapsed().as_secs_f64(), bytes: shard.bytes };
    Ok((shard, outcome))
}

/// Ids of every document, tokenized together (parallel inside `tokenizers`), no special tokens
/// added (the reference's `add_special_tokens=False`). The fast path: the same ids, without the
/// character offsets no caller reads.
fn tokenize(tok: &Tok, docs: &[String]) -> Result<Vec<tokenizers::Encoding>, DataError> {
    tok.tokenizer
        .encode_batch_fast(docs.iter().map(String::as_str).collect::<Vec<_>>(), false)
        .map_err(|e| DataError::Tokenizer { path: "<encode>".into(), message: e.to_string() })
}

/// Documents tokenized into memory: a shard that never touches the disk, for prompts and other
/// small inputs.
pub fn encode_in_memory(tok: &Tok, docs: &[String]) -> Result<Shard, DataError> {
    let (mut ids, mut lengths) = (Vec::new(), Vec::with_capacity(docs.len()));
    for chunk in docs.chunks(CHUNK_DOCS) {
        for e in tokenize(tok, chunk)? {
            ids.extend_from_slice(e.get_ids());
            lengths.push(e.get_ids().len() as u32);
        }
    }
    Ok(Shard::new(String::new(), PathBuf::from("<memory>"), Store::Memory(ids), lengths, 0))
}

/// What [`write_stream`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Written {
    pub key: String,
    pub text_sha256: String,
    pub docs: usize,
    /// UTF-8 bytes of the documents (after trimming).
    pub text_bytes: u64,
    pub tokens: u64,
    pub bytes: u64,
    pub header: PathBuf,
    pub shard: PathBuf,
}

/// A shard being written: ids appended as documents arrive, the lengths kept (4 bytes a
/// document) and written last. The ids go to a temporary file, renamed to the shard when the
/// key is known; the header, written last, makes it a valid cache entry.
pub struct ShardWriter {
    partial: PathBuf,
    dir: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
    wide: bool,
    bin: Sha256,
    lengths: Vec<u32>,
    tokens: u64,
    bytes: Vec<u8>,
}

impl ShardWriter {
    /// `wide`: ids need 32 bits (a vocabulary over 65,536).
    pub fn create(dir: &Path, wide: bool) -> Result<Self, DataError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |error| DataError::Read { path: path.clone(), error }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let partial = dir.join(format!(".partial-{}-{nanos}.bin", std::process::id()));
        let file = std::fs::File::create(&partial).map_err(io(&partial))?;
        Ok(Self {
            out: std::io::BufWriter::with_capacity(1 << 20, file),
            partial,
            dir: dir.into(),
            wide,
            bin: Sha256::new(),
            lengths: Vec::new(),
            tokens: 0,
            bytes: Vec::new(),
        })
    }

    fn io(&self) -> impl Fn(std::io::Error) -> DataError + '_ {
        move |error| DataError::Read { path: self.partial.clone(), error }
    }

    /// Appends one document's ids.
    pub fn push(&mut self, ids: &[u32]) -> Result<(), DataError> {
        self.bytes.clear();
        for &id in ids {
            if self.wide {
                self.bytes.extend_from_slice(&id.to_le_bytes());
            } else {
                debug_assert!(id <= u16::MAX as u32);
                self.bytes.extend_from_slice(&(id as u16).to_le_bytes());
            }
        }
        self.bin.update(&self.bytes);
        self.out.write_all(&self.bytes).map_err(|e| DataError::Read { path: self.partial.clone(), error: e })?;
        self.lengths.push(ids.len() as u32);
        self.tokens += ids.len() as u64;
        Ok(())
    }

    /// Writes the lengths and the header under `key`; returns (header, shard, file bytes).
    pub fn finish(mut self, key: &str, tokenizer_sha256: &str, text_sha256: &str, text_bytes: u64) -> Result<(PathBuf, PathBuf, u64), DataError> {
        let tail: Vec<u8> = self.lengths.iter().flat_map(|n| n.to_le_bytes()).collect();
        self.bin.update(&tail);
        self.out.write_all(&tail).map_err(self.io())?;
        self.out.flush().map_err(self.io())?;
        let file = self.out.get_ref();
        file.sync_all().map_err(self.io())?;
        let bytes = file.metadata().map_err(self.io())?.len();
        let (hpath, bpath) = paths(&self.dir, key);
        let header = Header {
            schema: SCHEMA,
            key: key.into(),
            docs: self.lengths.len(),
            tokens: self.tokens,
            dtype: if self.wide { "u32" } else { "u16" }.into(),
            tokenizer_sha256: tokenizer_sha256.into(),
            text_sha256: text_sha256.into(),
            text_bytes,
            sha256: hex::encode(std::mem::take(&mut self.bin).finalize()),
        };
        // The key is the content's, so a header equal to ours means another process (a Slurm task,
        // a second `harness run` on the folder) wrote these very bytes first, or the cache entry
        // is being rebuilt because its ids were damaged: the header stays valid throughout (the
        // ids are renamed in atomically, identical or repaired), so it is neither removed nor
        // rewritten, and a reader never finds it missing. A header that differs (stale) is removed
        // first, so it never vouches for the new ids while they are renamed in.
        let existing: Option<Header> = std::fs::read_to_string(&hpath).ok().and_then(|t| serde_json::from_str(&t).ok());
        let same = existing.as_ref() == Some(&header);
        if existing.is_some() && !same {
            let _ = std::fs::remove_file(&hpath);
        }
        std::fs::rename(&self.partial, &bpath).map_err(|error| DataError::Read { path: bpath.clone(), error })?;
        if !same {
            write_atomic(&hpath, serde_json::to_string_pretty(&header).expect("serializes").as_bytes())
                .map_err(|error| DataError::Read { path: hpath.clone(), error })?;
        }
        Ok((hpath, bpath, bytes))
    }
}

impl Drop for ShardWriter {
    /// A writer dropped before `finish` (an error mid-stream) leaves no partial file behind.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.partial);
    }
}

/// Tokenizes documents as they arrive, [`CHUNK_DOCS`] (or [`CHUNK_BYTES`]) at a time, into the
/// shard of their key in `dir`: what it holds at once is one chunk of documents and encodings
/// plus a length per document.
pub fn write_stream(tok: &Tok, docs: impl Iterator<Item = Result<String, DataError>>, dir: &Path) -> Result<Written, DataError> {
    let mut writer = ShardWriter::create(dir, tok.vocab_size() > 65536)?;
    let mut text = TextHash::default();
    let mut chunk = Vec::with_capacity(CHUNK_DOCS);
    let mut docs = docs.peekable();
    while docs.peek().is_some() {
        chunk.clear();
        let mut bytes = 0;
        while chunk.len() < CHUNK_DOCS && bytes < CHUNK_BYTES {
            match docs.next() {
                Some(d) => {
                    let d = d?;
                    bytes += d.len();
                    chunk.push(d);
                }
                None => break,
            }
        }
        chunk.iter().for_each(|d| text.push(d));
        for e in tokenize(tok, &chunk)? {
            writer.push(e.get_ids())?;
        }
    }
    let (n_docs, text_bytes, tokens) = (text.docs(), text.bytes(), writer.tokens);
    let text_sha256 = text.finish();
    let key = key_of(&text_sha256, tok);
    let (header, shard, bytes) = writer.finish(&key, &tok.sha256, &text_sha256, text_bytes)?;
    Ok(Written { key, text_sha256, docs: n_docs, text_bytes, tokens, bytes, header, shard })
}

/// Where a shard's ids are: its file (read a row at a time), or memory.
enum Store {
    File { file: std::fs::File, width: usize },
    Memory(Vec<u32>),
}

/// A split's documents as token ids: their lengths and where each starts, the ids read on demand.
pub struct Shard {
    pub key: String,
    pub path: PathBuf,
    store: Store,
    lengths: Vec<u32>,
    /// The first id of document `b * BLOCK`.
    block_offsets: Vec<u64>,
    tokens: u64,
    /// Size of the file (0 in memory).
    pub bytes: u64,
}

impl Shard {
    fn new(key: String, path: PathBuf, store: Store, lengths: Vec<u32>, bytes: u64) -> Self {
        let mut block_offsets = Vec::with_capacity(lengths.len() / BLOCK + 1);
        let mut at = 0u64;
        for (d, &n) in lengths.iter().enumerate() {
            if d % BLOCK == 0 {
                block_offsets.push(at);
            }
            at += n as u64;
        }
        Self { key, path, store, lengths, block_offsets, tokens: at, bytes }
    }

    /// Opens the shard of `key` and checks it whole: size, header, lengths and the sha256 of the
    /// file, read sequentially (a hit costs one read of the file, no memory beyond a buffer and
    /// the lengths).
    fn open(hpath: &Path, bpath: &Path, key: &str) -> Result<Self, String> {
        let header: Header =
            serde_json::from_str(&std::fs::read_to_string(hpath).map_err(|e| format!("unreadable header: {e}"))?).map_err(|e| format!("bad header: {e}"))?;
        if header.key != key || header.schema != SCHEMA {
            return Err("header is for another key or schema".into());
        }
        let read_err = |e: std::io::Error| format!("unreadable shard: {e}");
        let width = match header.dtype.as_str() {
            "u16" => 2,
            "u32" => 4,
            other => return Err(format!("unknown dtype {other:?}")),
        };
        let mut file = std::fs::File::open(bpath).map_err(read_err)?;
        let size = file.metadata().map_err(read_err)?.len();
        let ids_bytes = header.tokens * width as u64;
        if size != ids_bytes + header.docs as u64 * 4 {
            return Err("shard size does not match its header".into());
        }
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; VERIFY_BUF];
        let mut tail = Vec::with_capacity(header.docs * 4);
        let mut at = 0u64;
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_err(e)),
            };
            hasher.update(&buf[..n]);
            let ids_left = ids_bytes.saturating_sub(at).min(n as u64) as usize;
            tail.extend_from_slice(&buf[ids_left..n]);
            at += n as u64;
        }
        if at != size {
            return Err("the shard changed size while it was read".into());
        }
        let got = hex::encode(hasher.finalize());
        if got != header.sha256 {
            return Err(format!("sha256 mismatch (header {}, file {})", header.sha256.get(..12).unwrap_or(&header.sha256), &got[..12]));
        }
        let lengths: Vec<u32> = tail.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        drop(tail);
        if lengths.iter().map(|&n| n as u64).sum::<u64>() != header.tokens {
            return Err("the document lengths do not add up to the header's token count".into());
        }
        let file = std::fs::File::open(bpath).map_err(read_err)?;
        Ok(Self::new(key.into(), bpath.into(), Store::File { file, width }, lengths, size))
    }

    /// The shard of `key` in `dir`, verified; `None` when there is none.
    pub fn open_in(dir: &Path, key: &str) -> Option<Result<Self, DataError>> {
        let (hpath, bpath) = paths(dir, key);
        hpath.exists().then(|| Self::open(&hpath, &bpath, key).map_err(|message| DataError::Shard { path: bpath, message }))
    }

    pub fn docs(&self) -> usize {
        self.lengths.len()
    }

    pub fn tokens(&self) -> u64 {
        self.tokens
    }

    pub fn doc_len(&self, d: usize) -> u32 {
        self.lengths[d]
    }

    /// The index of document `d`'s first id.
    pub fn doc_offset(&self, d: usize) -> u64 {
        let b = d / BLOCK;
        self.block_offsets[b] + self.lengths[b * BLOCK..d].iter().map(|&n| n as u64).sum::<u64>()
    }

    /// Ids `start..start + out.len()` (indices over the whole shard); `scratch` is reused.
    pub fn read(&self, start: u64, out: &mut [u32], scratch: &mut Vec<u8>) -> std::io::Result<()> {
        match &self.store {
            Store::Memory(ids) => {
                out.copy_from_slice(&ids[start as usize..start as usize + out.len()]);
                Ok(())
            }
            Store::File { file, width } => {
                scratch.resize(out.len() * width, 0);
                file.read_exact_at(scratch, start * *width as u64)?;
                if *width == 2 {
                    for (o, c) in out.iter_mut().zip(scratch.chunks_exact(2)) {
                        *o = u16::from_le_bytes([c[0], c[1]]) as u32;
                    }
                } else {
                    for (o, c) in out.iter_mut().zip(scratch.chunks_exact(4)) {
                        *o = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                    }
                }
                Ok(())
            }
        }
    }

    /// Tells the kernel that ids `start..start + len` will be read soon, so it reads them from
    /// the disk in the background (many at once) before [`Self::read`] asks for them.
    pub fn will_need(&self, start: u64, len: usize) {
        if let Store::File { file, width } = &self.store {
            use std::os::fd::AsRawFd;
            // SAFETY: posix_fadvise only reads its arguments; the descriptor is open for as long
            // as `file` lives. It is advice: an error changes nothing but speed.
            unsafe {
                libc::posix_fadvise(file.as_raw_fd(), (start * *width as u64) as libc::off_t, (len * width) as libc::off_t, libc::POSIX_FADV_WILLNEED);
            }
        }
    }

    /// Reads the whole file once, sequentially, so its pages are in the page cache (the
    /// benchmark's cached pass).
    pub fn warm(&self) -> std::io::Result<()> {
        if let Store::File { file, .. } = &self.store {
            let mut buf = vec![0u8; VERIFY_BUF];
            let mut at = 0u64;
            loop {
                let n = file.read_at(&mut buf, at)?;
                if n == 0 {
                    return Ok(());
                }
                at += n as u64;
            }
        }
        Ok(())
    }

    /// Drops the file's clean pages from the page cache (the benchmark's cold start).
    pub fn evict(&self) {
        if let Store::File { file, .. } = &self.store {
            use std::os::fd::AsRawFd;
            // SAFETY: as in `will_need`.
            unsafe {
                libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
            }
        }
    }

    /// "u16 ids, 1.23 GiB on disk" or "in memory".
    pub fn describe(&self) -> String {
        match &self.store {
            Store::Memory(_) => "in memory".into(),
            Store::File { width, .. } => format!("u{} ids, {:.2} GiB on disk", width * 8, self.bytes as f64 / (1u64 << 30) as f64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Corpus;
    use crate::suite::DataConfig;

    fn setup(dir: &Path) -> (Tok, Vec<String>) {
        let cfg: DataConfig = toml::from_str("source = \"embedded\"\nn_ctx = 16\nvocab_size = 300\nn_stories = 40").unwrap();
        let corpus = Corpus::open(&cfg).unwrap();
        let tok = Tok::for_run(&cfg, &corpus, dir).unwrap();
        (tok, corpus.train_in_memory().unwrap())
    }

    fn ok_docs(docs: &[String]) -> impl Iterator<Item = Result<String, DataError>> + '_ {
        docs.iter().map(|d| Ok(d.clone()))
    }

    fn all_ids(s: &Shard) -> Vec<Vec<u32>> {
        let mut scratch = Vec::new();
        (0..s.docs())
            .map(|d| {
                let mut out = vec![0; s.doc_len(d) as usize];
                s.read(s.doc_offset(d), &mut out, &mut scratch).unwrap();
                out
            })
            .collect()
    }

    #[test]
    fn second_encode_is_a_verified_hit_and_corruption_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let (tok, stories) = setup(dir.path());
        let text = TextHash::of(&stories);
        let shards = dir.path().join("tokens");
        let (a, first) = encode_cached(&tok, &text, || ok_docs(&stories), &shards).unwrap();
        assert!(!first.hit);
        let (b, second) = encode_cached(&tok, &text, || -> std::iter::Empty<_> { panic!("a hit reads no text") }, &shards).unwrap();
        assert!(second.hit && second.rebuilt.is_none());
        assert_eq!(all_ids(&a), all_ids(&b));
        // The ids are each document's, whole and in order.
        let want: Vec<Vec<u32>> = stories.iter().map(|s| tok.tokenizer.encode(s.as_str(), false).unwrap().get_ids().to_vec()).collect();
        assert_eq!(all_ids(&a), want);
        assert_eq!(all_ids(&encode_in_memory(&tok, &stories).unwrap()), want);
        // Flip one byte of the shard: the hash check rejects it and the shard is rebuilt.
        let (_, bin) = paths(&shards, &first.key);
        let mut bytes = std::fs::read(&bin).unwrap();
        bytes[3] ^= 0xff;
        std::fs::write(&bin, &bytes).unwrap();
        let (c, third) = encode_cached(&tok, &text, || ok_docs(&stories), &shards).unwrap();
        assert!(!third.hit);
        assert!(third.rebuilt.as_deref().unwrap().contains("sha256 mismatch"), "{third:?}");
        assert_eq!(all_ids(&c), want);
        // Text that is not the text scanned (a file changed between passes) is refused.
        let other: Vec<String> = stories.iter().rev().cloned().collect();
        let e = encode_cached(&tok, &TextHash::of(&stories[..3]), || ok_docs(&other), &dir.path().join("x")).err().unwrap();
        assert!(e.to_string().contains("changed while the run read it"), "{e}");
    }

    #[test]
    fn a_streamed_shard_is_the_cache_entry_of_its_text_across_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let (tok, stories) = setup(dir.path());
        // More documents than one chunk, and longer than one offset block, so rows from several
        // chunks and blocks land in order.
        let docs: Vec<String> = (0..CHUNK_DOCS + 123).map(|i| format!("{} {i}", stories[i % stories.len()])).collect();
        let shards = dir.path().join("tokens");
        let w = write_stream(&tok, ok_docs(&docs), &shards).unwrap();
        assert_eq!(w.docs, docs.len());
        assert_eq!(w.text_sha256, sha256_bytes(docs.join("\u{0}").as_bytes()), "the streamed text hash is the joined text's");
        let (cached, how) = encode_cached(&tok, &w.text_sha256, || ok_docs(&docs), &shards).unwrap();
        assert!(how.hit && how.key == w.key, "{how:?}");
        assert_eq!(all_ids(&cached), all_ids(&encode_in_memory(&tok, &docs).unwrap()));
        assert_eq!(cached.tokens(), w.tokens);
        // A source failing mid-stream leaves neither a shard nor a partial file.
        let failing = docs.iter().take(5000).map(|d| Ok(d.clone())).chain(std::iter::once(Err(DataError::Empty { path: "bad.txt".into() })));
        let other = dir.path().join("other");
        let e = write_stream(&tok, failing, &other).unwrap_err();
        assert!(e.to_string().contains("bad.txt"), "{e}");
        assert_eq!(std::fs::read_dir(&other).unwrap().count(), 0, "nothing left behind");
    }

    /// Two processes encoding the same split (Slurm tasks on one results folder): the second to
    /// finish leaves the first's header in place (a reader may be opening it) and renames identical
    /// ids in; a stale header of the same key is replaced.
    #[test]
    fn a_second_writer_of_the_same_shard_leaves_the_first_in_place() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let docs: Vec<Vec<u32>> = vec![vec![1, 2, 3], vec![4; 50]];
        let key = sha256_bytes(b"same");
        let write = || {
            let mut w = ShardWriter::create(dir.path(), false).unwrap();
            for d in &docs {
                w.push(d).unwrap();
            }
            w
        };
        let (first, second) = (write(), write());
        let (h, b, _) = first.finish(&key, "tok", "text", 0).unwrap();
        let inode = |p: &Path| std::fs::metadata(p).unwrap().ino();
        let header_inode = inode(&h);
        let (h2, b2, _) = second.finish(&key, "tok", "text", 0).unwrap();
        assert_eq!((h2.clone(), b2.clone()), (h.clone(), b.clone()));
        assert_eq!(inode(&h), header_inode, "the first writer's header is never removed or rewritten");
        assert_eq!(all_ids(&Shard::open(&h, &b, &key).unwrap()), docs);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2, "no partial file left behind");
        // A header that differs (here another tokenizer hash) is stale: replaced with the new one.
        let stale = std::fs::read_to_string(&h).unwrap().replace("\"tok\"", "\"old\"");
        std::fs::write(&h, stale).unwrap();
        let (h3, b3, _) = write().finish(&key, "tok", "text", 0).unwrap();
        assert!(std::fs::read_to_string(&h3).unwrap().contains("\"tok\""));
        assert_eq!(all_ids(&Shard::open(&h3, &b3, &key).unwrap()), docs);
    }

    #[test]
    fn wide_ids_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = ShardWriter::create(dir.path(), true).unwrap();
        let docs: Vec<Vec<u32>> = vec![vec![70_000, 1, 2], vec![], vec![5; 200], vec![u32::MAX - 1]];
        for d in &docs {
            w.push(d).unwrap();
        }
        let key = sha256_bytes(b"wide");
        let (h, b, _) = w.finish(&key, "tok", "text", 0).unwrap();
        let s = Shard::open(&h, &b, &key).unwrap();
        assert_eq!(all_ids(&s), docs);
        assert!(s.describe().starts_with("u32 ids"), "{}", s.describe());
    }
}
