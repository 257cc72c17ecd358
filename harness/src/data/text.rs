//! Local text files: stories separated by a marker (`<|endoftext|>` by default, PAPER.md B.1).
use super::DataError;
use std::path::Path;

/// Splits on `marker`, trims, drops empty pieces; with `drop_unterminated`, a trailing piece not
/// followed by a marker (a file cut mid-story) is dropped too.
pub fn split_stories(text: &str, marker: &str, drop_unterminated: bool) -> Vec<String> {
    let mut pieces: Vec<&str> = text.split(marker).collect();
    if drop_unterminated && pieces.len() > 1 {
        pieces.pop();
    }
    pieces.into_iter().map(str::trim).filter(|p| !p.is_empty()).map(String::from).collect()
}

/// Reads a file of stories, with errors that name the file and the fix.
pub fn read_stories(path: &Path, marker: &str, drop_unterminated: bool) -> Result<Vec<String>, DataError> {
    let bytes = crate::artifacts::read_regular(path).map_err(|e| DataError::Read { path: path.into(), error: e })?;
    let text = String::from_utf8(bytes).map_err(|e| DataError::NotUtf8 { path: path.into(), offset: e.utf8_error().valid_up_to() })?;
    if text.trim().is_empty() {
        return Err(DataError::Empty { path: path.into() });
    }
    if !text.contains(marker) {
        return Err(DataError::NoMarker { path: path.into(), marker: marker.into() });
    }
    let stories = split_stories(&text, marker, drop_unterminated);
    if stories.is_empty() {
        return Err(DataError::Empty { path: path.into() });
    }
    Ok(stories)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_drops_the_cut_off_tail() {
        let t = "one\n<|endoftext|>\n two \n<|endoftext|>\n\n<|endoftext|>\nthree (cut";
        assert_eq!(split_stories(t, "<|endoftext|>", true), vec!["one", "two"]);
        assert_eq!(split_stories(t, "<|endoftext|>", false), vec!["one", "two", "three (cut"]);
    }

    #[test]
    fn bad_files_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.txt");
        std::fs::write(&p, b"no marker here").unwrap();
        let e = read_stories(&p, "<|endoftext|>", true).unwrap_err().to_string();
        assert!(e.contains("x.txt") && e.contains("marker"), "{e}");
        std::fs::write(&p, [b'a', 0xff, b'b']).unwrap();
        let e = read_stories(&p, "<|endoftext|>", true).unwrap_err().to_string();
        assert!(e.contains("x.txt") && e.contains("UTF-8") && e.contains("byte 1"), "{e}");
        std::fs::write(&p, b"  \n").unwrap();
        assert!(read_stories(&p, "<|endoftext|>", true).unwrap_err().to_string().contains("empty"));
        let e = read_stories(&dir.path().join("missing.txt"), "<|endoftext|>", true).unwrap_err().to_string();
        assert!(e.contains("missing.txt"), "{e}");
    }
}
