//! Property tests of the suite parser and `--set` parsing: arbitrary text, and the tiny suite
//! with random edits, never panic, and every error names the suite file or the `--set`.
mod common;
use common::TINY;
use harness::suite::{parse_override, Suite};
use proptest::prelude::*;
use std::path::Path;

fn parse(src: String, sets: &[(String, toml::Value)]) -> Result<Suite, String> {
    Suite::parse(Path::new("fuzz.toml"), src, sets, false).map_err(|e| e.to_string())
}

fn named(e: &str) -> bool {
    e.contains("fuzz.toml") || e.contains("--set")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_is_an_error_that_names_the_file(src in "\\PC{0,300}") {
        if let Err(e) = parse(src, &[]) {
            prop_assert!(named(&e), "{e}");
        }
    }

    #[test]
    fn an_edited_suite_never_panics(at in 0usize..TINY.len(), cut in 0usize..8, text in "[a-z0-9_=\\[\\]{}\",.# \\n-]{0,10}") {
        let mut src = TINY.to_string();
        let at = (0..=at).rev().find(|i| src.is_char_boundary(*i)).unwrap_or(0);
        let end = (at + cut).min(src.len());
        let end = (end..=src.len()).find(|i| src.is_char_boundary(*i)).unwrap_or(src.len());
        src.replace_range(at..end, &text);
        if let Err(e) = parse(src, &[]) {
            prop_assert!(named(&e), "{e}");
        }
    }

    #[test]
    fn any_set_argument_is_parsed_or_refused_by_name(key in "(train|data|model|seeds|device|representation|trian)(\\.[a-z_]{1,12}){0,2}", value in "\\PC{0,20}") {
        let arg = format!("{key}={value}");
        match parse_override(&arg) {
            Ok(set) => {
                if let Err(e) = parse(TINY.to_string(), &[set]) {
                    prop_assert!(named(&e), "{arg}: {e}");
                }
            }
            Err(e) => prop_assert!(e.to_string().contains("--set"), "{arg}: {e}"),
        }
    }
}
