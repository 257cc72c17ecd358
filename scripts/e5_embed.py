"""Embeds the test split of a pairs file (`harness data pairs join`) with e5-mistral-7b-instruct as
the author did (PAPER.md A.6; blbadger/maskedmixers `mixer_lm/e5_mistral_benchmark.py` @ 2270414):
4-bit NF4 with fp16 compute, one text at a time, max_length 512 with truncation, last-token
pooling, L2-normalised; queries as "Instruct: Given a summary of a passage, find the corresponding
text.\\nQuery: {summary}", passages raw. Writes the safetensors `[embed] source = "file"` reads:
`query` and `passage`, row i of each one pair, in the file's order. The e5 row of T1.

One difference, kept on purpose: the author decoded each passage from its padded input_ids, so
his passages ended in as many "<|end_of_text|>" strings as the passage had pad tokens; the pairs
hold the passage without them.

Usage:
  python scripts/e5_embed.py --pairs data/finemath/pairs-400k.parquet \\
      --out data/finemath/e5-mistral-test.safetensors
  [--model intfloat/e5-mistral-7b-instruct | a local folder] [--quantize nf4|none]
  [--split test|all] [--batch-size 1] [--device auto|cpu|cuda]
Needs: torch, transformers, safetensors, pyarrow (scripts/requirements.txt); bitsandbytes for nf4.
"""
import argparse
import json

import pyarrow.parquet as pq
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import AutoModel, AutoTokenizer

TASK = "Given a summary of a passage, find the corresponding text."


def last_token_pool(h, mask):
    # e5-mistral's pooling: the last position when every row is left-padded, else each row's last token.
    if mask[:, -1].sum() == mask.shape[0]:
        return h[:, -1]
    return h[torch.arange(h.shape[0], device=h.device), mask.sum(dim=1) - 1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--model", default="intfloat/e5-mistral-7b-instruct")
    ap.add_argument("--quantize", choices=["nf4", "none"], default="nf4")
    ap.add_argument("--split", choices=["test", "all"], default="test")
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--device", default="auto")
    a = ap.parse_args()

    table = pq.read_table(a.pairs).to_pydict()
    rows = [i for i in range(len(table["query"])) if a.split == "all" or table.get("split", ["test"] * len(table["query"]))[i] == "test"]
    if not rows:
        raise SystemExit(f"{a.pairs}: no {a.split} rows")
    kw = {}
    if a.quantize == "nf4":
        from transformers import BitsAndBytesConfig

        kw["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.float16
        )
        kw["device_map"] = "auto"
    tok = AutoTokenizer.from_pretrained(a.model)
    model = AutoModel.from_pretrained(a.model, **kw)
    if a.quantize == "none":
        model = model.to("cuda" if a.device == "auto" and torch.cuda.is_available() else ("cpu" if a.device == "auto" else a.device))
    model.eval()
    device = next(model.parameters()).device

    def embed(texts):
        out = []
        for i in range(0, len(texts), a.batch_size):
            b = tok(texts[i : i + a.batch_size], max_length=a.max_length, padding=True, truncation=True, return_tensors="pt").to(device)
            with torch.no_grad():
                h = model(**b).last_hidden_state
            out.append(F.normalize(last_token_pool(h, b["attention_mask"]).float(), p=2, dim=1).cpu())
        return torch.cat(out)

    q = embed([f"Instruct: {TASK}\nQuery: {table['query'][i]}" for i in rows])
    p = embed([table["passage"][i] for i in rows])
    save_file({"query": q.contiguous(), "passage": p.contiguous()}, a.out)
    print(json.dumps({"out": a.out, "rows": len(rows), "dim": q.shape[1], "model": a.model, "quantize": a.quantize}))


if __name__ == "__main__":
    main()
