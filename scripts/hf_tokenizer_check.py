"""Checks a tokenizer the harness trained against Hugging Face transformers.

1. It loads as the paper's class (`LlamaTokenizerFast` for `llama`, `PreTrainedTokenizerFast`
   for `llama3`) and encodes `--texts` to exactly the ids `--ids` holds (the harness's own).
2. With `--base`, transformers' `train_new_from_iterator` retrains that base on the same text
   to the same vocabulary size, and the result must equal the harness's: vocabulary and merges.

Usage (ci/test.sh runs it through harness/tests/tokenizers_hf.rs):
  python scripts/hf_tokenizer_check.py --kind llama --tokenizer tok.json --texts texts.json \
      --ids ids.json [--base base.json --train train.json --vocab 4096]
`--train` is a JSON list of training texts, or {"reference_file": PATH, "stories": N}: the
reference's TinyStories trainer reading (the file's lines, stripped, up to the N-th story marker).
"""
import argparse
import json
import sys

from transformers import LlamaTokenizerFast, PreTrainedTokenizerFast


def training_texts(spec):
    if isinstance(spec, list):
        return spec
    lines, stories = [], 0
    with open(spec["reference_file"], encoding="utf-8") as f:
        for line in f:
            lines.append(line.strip())
            if line.strip() == "<|endoftext|>":
                stories += 1
                if stories == spec["stories"]:
                    break
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kind", choices=["llama", "llama3"], required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--texts", required=True)
    ap.add_argument("--ids", required=True)
    ap.add_argument("--base")
    ap.add_argument("--train")
    ap.add_argument("--vocab", type=int)
    a = ap.parse_args()
    cls = LlamaTokenizerFast if a.kind == "llama" else PreTrainedTokenizerFast
    tok = cls(tokenizer_file=a.tokenizer)
    assert isinstance(tok, cls), type(tok)
    texts = json.load(open(a.texts, encoding="utf-8"))
    want = json.load(open(a.ids))
    got = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    bad = [i for i, (g, w) in enumerate(zip(got, want)) if g != w]
    if len(got) != len(want) or bad:
        i = bad[0] if bad else 0
        sys.exit(f"ids differ on {len(bad)} of {len(texts)} texts; first, text {i}: transformers {got[i][:20]} vs harness {want[i][:20]}")
    print(f"{cls.__name__} (padding side {tok.padding_side}): identical ids on {len(texts)} texts, {sum(map(len, got))} tokens")
    if a.base:
        base = cls(tokenizer_file=a.base)
        retrained = base.train_new_from_iterator(training_texts(json.load(open(a.train, encoding="utf-8"))), a.vocab)
        mine = json.loads(tok.backend_tokenizer.to_str())["model"]
        theirs = json.loads(retrained.backend_tokenizer.to_str())["model"]
        if mine["vocab"] != theirs["vocab"]:
            diff = sorted(set(mine["vocab"].items()) ^ set(theirs["vocab"].items()))[:6]
            sys.exit(f"train_new_from_iterator gives another vocabulary ({len(theirs['vocab'])} vs {len(mine['vocab'])}): {diff}")
        if mine["merges"] != theirs["merges"]:
            sys.exit("train_new_from_iterator gives the same vocabulary but other merges")
        print(f"train_new_from_iterator retrains the base to the same {len(mine['vocab'])} tokens and {len(mine['merges'])} merges")


if __name__ == "__main__":
    main()
