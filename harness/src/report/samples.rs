//! What the language models write: fixed TinyStories openings continued by one run (the lowest
//! seed) of each model configuration, greedy and sampled with one seed, in a collapsible section
//! of CLM reports; `samples.json` keeps the ids and text. Generated on the CPU, so a report rebuilt
//! anywhere holds the same text.
use super::{model_label, setting, Place, RunRecord, Section};
use crate::artifacts::RunStatus;
use crate::inference::generate::{generate, Sampling};
use crate::suite::ExperimentKind;
use anyhow::Result;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// Openings in the style of TinyStories (PAPER.md B.1).
pub const PROMPTS: &[&str] = &["Once upon a time, there was a little girl named Lily.", "Tom and his dog went to the park.", "One day, a little bird"];
pub const MAX_NEW_TOKENS: usize = 40;
pub const SAMPLED: Sampling = Sampling { temperature: 0.8, top_k: Some(40), top_p: Some(0.95) };
pub const SEED: u64 = 0;

pub struct Samples;

/// Markdown-safe text on one line.
fn escape(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\n' | '\r' => out.push(' '),
            '*' | '_' | '`' | '|' | '#' | '[' | ']' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

impl Section for Samples {
    fn place(&self) -> Place {
        Place::AfterSummary
    }

    fn write(&self, dir: &Path, records: &[RunRecord], md: &mut String, _figs: &mut Vec<(String, String)>, _found: &mut super::Findings) -> Result<()> {
        // One run per configuration: the lowest seed's.
        let mut pick: BTreeMap<(String, String, String), &RunRecord> = BTreeMap::new();
        for r in records.iter().filter(|r| r.status == RunStatus::Finished && r.run.config.kind == ExperimentKind::Clm) {
            let key = (r.run.experiment.clone(), model_label(&r.run), setting(&r.run));
            let keep = pick.get(&key).is_none_or(|p| r.run.config.seed < p.run.config.seed);
            if keep {
                pick.insert(key, r);
            }
        }
        let mut body = String::new();
        let mut data = Vec::new();
        for ((exp, label, set), r) in &pick {
            let m = match crate::inference::load(&r.folder, &r.folder.join("model.safetensors"), tch::Device::Cpu) {
                Ok(m) if m.model.decoder().is_some() => m,
                _ => continue, // bidirectional models and autoencoders do not continue text
            };
            let _ = writeln!(body, "**{label}** ({exp}, {set}, seed {}, run `{}`)\n", r.run.config.seed, r.run.short_id());
            let (mut greedy, mut sampled) = (Vec::new(), Vec::new());
            // Each prompt on its own (seeded alike): one that does not fit a small n_ctx is noted,
            // never a failed report.
            for prompt in PROMPTS {
                let one = [prompt.to_string()];
                match (generate(&m, &one, MAX_NEW_TOKENS, &Sampling::GREEDY, SEED, false, false), generate(&m, &one, MAX_NEW_TOKENS, &SAMPLED, SEED, false, false)) {
                    (Ok(mut g), Ok(mut s)) => {
                        let (g, s) = (g.remove(0), s.remove(0));
                        let _ = writeln!(body, "- *{}* {}  \n  sampled: *{}* {}", escape(&g.prompt), escape(&g.continuation), escape(&s.prompt), escape(&s.continuation));
                        greedy.push(g);
                        sampled.push(s);
                    }
                    (Err(e), _) | (_, Err(e)) => {
                        let _ = writeln!(body, "- *{}* (not generated: {})", escape(prompt), escape(&e.to_string()));
                    }
                }
            }
            body.push('\n');
            data.push(serde_json::json!({ "run": r.run.id, "model": label, "experiment": exp, "setting": set, "greedy": greedy, "sampled": sampled }));
        }
        if data.is_empty() {
            return Ok(());
        }
        crate::artifacts::write_atomic(
            &dir.join("samples.json"),
            serde_json::to_string_pretty(&serde_json::json!({ "max_new_tokens": MAX_NEW_TOKENS, "sampled": SAMPLED, "seed": SEED, "samples": data }))?.as_bytes(),
        )?;
        let _ = writeln!(md, "## Samples\n");
        let _ = writeln!(
            md,
            "<details><summary>What the models write: {} openings continued by each model (its lowest seed), greedy and sampled \
             ({}, seed {SEED}), up to {MAX_NEW_TOKENS} tokens, on the CPU. Click to open.</summary>\n",
            PROMPTS.len(),
            SAMPLED.describe()
        );
        md.push_str(&body);
        let _ = writeln!(md, "</details>\n\n`samples.json` holds the token ids and texts. `harness generate <run>` continues any prompt.\n");
        Ok(())
    }
}
