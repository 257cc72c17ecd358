//! T1's e5 row end to end on CPU: scripts/e5_embed.py embeds the test split of a pairs parquet
//! with a tiny random Mistral the test builds and saves (nothing downloaded), as the author's
//! e5_mistral_benchmark.py does (one text at a time, last-token pooling, L2-normalised, the
//! query instruction); its safetensors go into `embed source = "file"` and `retrieval_eval`.
mod common;
use common::*;
use polars::prelude::*;
use std::path::Path;

#[test]
#[ignore = "needs transformers and pyarrow beside the harness's torch: ci/test.sh installs them and runs this with --ignored"]
fn e5_script_embeds_a_pairs_file_for_retrieval_eval() {
    let python = transformers_python().expect("transformers beside the harness's torch (ci/test.sh installs it)");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // 40 pairs, the last 12 the test split, as `harness data pairs join` writes them.
    let stories: Vec<String> = harness::data::embedded::generate(40, 3).into_iter().map(|r| r.story).collect();
    let queries: Vec<String> = stories.iter().map(|s| s.split('.').next().unwrap_or("").to_string()).collect();
    let split: Vec<&str> = (0..40).map(|i| if i >= 28 { "test" } else { "train" }).collect();
    let mut df = DataFrame::new(40, vec![Column::new("query".into(), &queries), Column::new("passage".into(), &stories), Column::new("split".into(), &split)]).unwrap();
    ParquetWriter::new(std::fs::File::create(dir.join("pairs.parquet")).unwrap()).finish(&mut df).unwrap();
    // A tiny Mistral with a tokenizer the harness trains, saved as a Hugging Face folder.
    std::fs::write(dir.join("stories.txt"), stories.join("\n<|endoftext|>\n") + "\n<|endoftext|>\n").unwrap();
    let out = harness(dir, &["data", "tokenizer", "--kind", "llama", "--input", "stories.txt", "--vocab", "300", "--out", "tok.json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let make = r#"
import sys, torch
from transformers import MistralConfig, MistralModel, PreTrainedTokenizerFast
d = sys.argv[1]
tok = PreTrainedTokenizerFast(tokenizer_file=d + "/tok.json", bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="</s>")
tok.save_pretrained(d + "/tiny-e5")
torch.manual_seed(0)
cfg = MistralConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
MistralModel(cfg).save_pretrained(d + "/tiny-e5")
"#;
    let run_py = |args: &[&str]| {
        let o = std::process::Command::new(&python).args(args).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    run_py(&["-c", make, dir.to_str().unwrap()]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/e5_embed.py");
    let e5 = dir.join("e5.safetensors");
    let printed = run_py(&[
        script.to_str().unwrap(), "--pairs", dir.join("pairs.parquet").to_str().unwrap(), "--out", e5.to_str().unwrap(),
        "--model", dir.join("tiny-e5").to_str().unwrap(), "--quantize", "none", "--device", "cpu",
    ]);
    assert!(printed.contains("\"rows\": 12") && printed.contains("\"dim\": 32"), "{printed}");
    // The file against the author's formula for one query, computed here independently.
    let check = r#"
import sys, torch, torch.nn.functional as F
from transformers import AutoModel, AutoTokenizer
from safetensors.torch import load_file
d, q = sys.argv[1], sys.argv[2]
tok, model = AutoTokenizer.from_pretrained(d + "/tiny-e5"), AutoModel.from_pretrained(d + "/tiny-e5").eval()
b = tok(["Instruct: Given a summary of a passage, find the corresponding text.\nQuery: " + q], max_length=512, truncation=True, return_tensors="pt")
with torch.no_grad():
    h = model(**b).last_hidden_state[0, -1]
e = load_file(d + "/e5.safetensors")
norms = e["query"].norm(dim=1)
print(float((F.normalize(h, dim=0) - e["query"][0]).abs().max()), float((norms - 1).abs().max()), tuple(e["passage"].shape))
"#;
    let got = run_py(&["-c", check, dir.to_str().unwrap(), &queries[28]]);
    let v: Vec<&str> = got.split_whitespace().collect();
    let (diff, norm): (f64, f64) = (v[0].parse().unwrap(), v[1].parse().unwrap());
    assert!(diff < 1e-5 && norm < 1e-5, "{got}");
    assert!(got.contains("(12, 32)"), "{got}");
    // The file is an `embed` source for retrieval_eval, beside nothing else.
    let suite = r#"schema = 1
name = "e5"
description = "e5 embeddings from the script"
[defaults]
seeds = [0]
device = "cpu"
[defaults.pairs]
source = "file"
path = "pairs.parquet"
query_field = "query"
passage_field = "passage"
test_pairs = 12
[[experiment]]
name = "e5"
kind = "embed"
embed = { source = "file", file = "e5.safetensors", label = "tiny-e5" }
[[experiment]]
name = "eval"
kind = "retrieval_eval"
from = "e5"
retrieval_eval = { n = [2, 4, 12] }
"#;
    let path = write_suite(dir, "e5.toml", suite);
    let out = harness(dir, &["run", path.to_str().unwrap(), "-q"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let m = manifest(&dir.join("results"), "e5");
    assert!(m.iter().all(|m| m["status"] == "finished"), "{m:?}");
    let eval = m.iter().find(|m| m["experiment"] == "eval").unwrap();
    let summary = std::fs::read_to_string(run_dir(&dir.join("results"), "e5", eval).join("summary.json")).unwrap();
    assert!(summary.contains("top1@12"), "{summary}");
    eprintln!("retrieval_eval on the script's embeddings: {summary}");
}
