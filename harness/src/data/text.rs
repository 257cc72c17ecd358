//! Local text files: stories separated by a marker (`<|endoftext|>` by default, PAPER.md B.1),
//! read as a stream: a file larger than memory is split a block at a time.
use super::DataError;
use std::collections::VecDeque;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Bytes read per block.
const BLOCK: usize = 1 << 20;

/// Splits on `marker`, trims, drops empty pieces; with `drop_unterminated`, a trailing piece not
/// followed by a marker (a file cut mid-story) is dropped too.
pub fn split_stories(text: &str, marker: &str, drop_unterminated: bool) -> Vec<String> {
    let mut pieces: Vec<&str> = text.split(marker).collect();
    if drop_unterminated && pieces.len() > 1 {
        pieces.pop();
    }
    pieces
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect()
}

/// Reads a file of stories, with errors that name the file and the fix.
pub fn read_stories(
    path: &Path,
    marker: &str,
    drop_unterminated: bool,
) -> Result<Vec<String>, DataError> {
    Stories::open(path, marker, drop_unterminated)?.collect()
}

/// The stories of a file in order, holding one block and the story it is in: the same pieces
/// as [`split_stories`] on the whole text, and the same errors as reading it whole (an error
/// found past the first stories comes after them).
pub struct Stories {
    file: std::fs::File,
    path: PathBuf,
    finder: memchr::memmem::Finder<'static>,
    marker_len: usize,
    drop_unterminated: bool,
    /// Bytes read and not yet cut into stories; `offset` is the file position of `buf[0]`.
    buf: Vec<u8>,
    offset: usize,
    /// Where the next marker search starts in `buf` (earlier bytes hold no marker).
    scan: usize,
    ready: VecDeque<String>,
    seen_marker: bool,
    any_story: bool,
    any_text: bool,
    done: bool,
}

impl Stories {
    pub fn open(path: &Path, marker: &str, drop_unterminated: bool) -> Result<Self, DataError> {
        let read_err = |e| DataError::Read {
            path: path.into(),
            error: e,
        };
        if marker.is_empty() {
            return Err(DataError::Columnar { path: path.into(), message: "the story marker is empty; give the separator the file uses (data.marker, --marker)".into() });
        }
        crate::artifacts::ensure_regular(path).map_err(read_err)?;
        let file = std::fs::File::open(path).map_err(read_err)?;
        Ok(Self {
            file,
            path: path.into(),
            finder: memchr::memmem::Finder::new(marker.as_bytes()).into_owned(),
            marker_len: marker.len(),
            drop_unterminated,
            buf: Vec::new(),
            offset: 0,
            scan: 0,
            ready: VecDeque::new(),
            seen_marker: false,
            any_story: false,
            any_text: false,
            done: false,
        })
    }

    fn marker(&self) -> String {
        String::from_utf8_lossy(self.finder.needle()).into_owned()
    }

    /// Bytes `start..end` of `buf` as a trimmed story (if not blank).
    fn piece(&mut self, start: usize, end: usize) -> Result<(), DataError> {
        let bytes = &self.buf[start..end];
        let text = std::str::from_utf8(bytes).map_err(|e| DataError::NotUtf8 {
            path: self.path.clone(),
            offset: self.offset + start + e.valid_up_to(),
        })?;
        let t = text.trim();
        self.any_text |= !t.is_empty();
        if !t.is_empty() {
            self.any_story = true;
            self.ready.push_back(t.to_string());
        }
        Ok(())
    }

    /// Reads one block and cuts the stories it completes; at the end of the file, the tail.
    fn fill(&mut self) -> Result<(), DataError> {
        let old = self.buf.len();
        self.buf.resize(old + BLOCK, 0);
        let n = loop {
            match self.file.read(&mut self.buf[old..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(DataError::Read {
                        path: self.path.clone(),
                        error: e,
                    })
                }
            }
        };
        self.buf.truncate(old + n);
        if n == 0 {
            self.done = true;
            let tail = self.buf.len();
            if !self.seen_marker {
                // No marker anywhere: an empty file, or one story file with the wrong marker.
                self.piece(0, tail)?;
                return Err(if self.any_text {
                    DataError::NoMarker {
                        path: self.path.clone(),
                        marker: self.marker(),
                    }
                } else {
                    DataError::Empty {
                        path: self.path.clone(),
                    }
                });
            }
            if !self.drop_unterminated {
                self.piece(0, tail)?;
            }
            if !self.any_story {
                return Err(DataError::Empty {
                    path: self.path.clone(),
                });
            }
            return Ok(());
        }
        let mut start = 0;
        let mut from = self.scan;
        while let Some(i) = self.finder.find(&self.buf[from..]) {
            let at = from + i;
            self.seen_marker = true;
            self.piece(start, at)?;
            start = at + self.marker_len;
            from = start;
        }
        self.buf.drain(..start);
        self.offset += start;
        // A marker may straddle this block's end: search its last len-1 bytes again.
        self.scan = self
            .buf
            .len()
            .saturating_sub(self.marker_len.saturating_sub(1));
        Ok(())
    }
}

impl super::Refill for Stories {
    fn buffer(&mut self) -> (&mut VecDeque<String>, &mut bool) {
        (&mut self.ready, &mut self.done)
    }

    fn fill(&mut self) -> Result<(), DataError> {
        Stories::fill(self)
    }
}

impl Iterator for Stories {
    type Item = Result<String, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        super::pull(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_drops_the_cut_off_tail() {
        let t = "one\n<|endoftext|>\n two \n<|endoftext|>\n\n<|endoftext|>\nthree (cut";
        assert_eq!(split_stories(t, "<|endoftext|>", true), vec!["one", "two"]);
        assert_eq!(
            split_stories(t, "<|endoftext|>", false),
            vec!["one", "two", "three (cut"]
        );
    }

    #[test]
    fn the_stream_cuts_as_the_whole_text_does_across_block_edges() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.txt");
        // Stories of every length around the block size, so markers fall across block edges.
        let mut text = String::new();
        let mut k = 0usize;
        while text.len() < 3 * BLOCK + 77 {
            k += 1;
            text.push_str(&format!(
                "story {k} é{}\n<|endoftext|>\n",
                "ab ".repeat((k * 7919) % 40_000)
            ));
        }
        text.push_str("cut off");
        std::fs::write(&p, &text).unwrap();
        for drop in [true, false] {
            let streamed = read_stories(&p, "<|endoftext|>", drop).unwrap();
            assert_eq!(streamed, split_stories(&text, "<|endoftext|>", drop));
        }
    }

    #[test]
    fn bad_files_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.txt");
        std::fs::write(&p, b"no marker here").unwrap();
        let e = read_stories(&p, "<|endoftext|>", true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.txt") && e.contains("marker"), "{e}");
        std::fs::write(&p, [b'a', 0xff, b'b']).unwrap();
        let e = read_stories(&p, "<|endoftext|>", true)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("x.txt") && e.contains("UTF-8") && e.contains("byte 1"),
            "{e}"
        );
        // The offset counts from the start of the file, past the stories already read.
        let mut far = "a story\n<|endoftext|>\n".repeat(100_000).into_bytes();
        let bad = far.len() + 3;
        far.extend_from_slice(b"abc\xffdef\n<|endoftext|>\n");
        std::fs::write(&p, &far).unwrap();
        let e = read_stories(&p, "<|endoftext|>", true)
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("byte {bad}")), "{e}");
        std::fs::write(&p, b"  \n").unwrap();
        assert!(read_stories(&p, "<|endoftext|>", true)
            .unwrap_err()
            .to_string()
            .contains("empty"));
        std::fs::write(&p, b"\n<|endoftext|>\n  <|endoftext|>").unwrap();
        assert!(read_stories(&p, "<|endoftext|>", true)
            .unwrap_err()
            .to_string()
            .contains("empty"));
        let e = read_stories(&dir.path().join("missing.txt"), "<|endoftext|>", true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.txt"), "{e}");
    }
}
