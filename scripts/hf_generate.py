"""Greedy continuation with Hugging Face transformers of a model folder `harness export hf` wrote:
the check that the harness's Llama and its KV-cache decoder generate what `LlamaForCausalLM.generate`
does on the same weights (harness/tests/generate.rs).

Usage: python scripts/hf_generate.py --model DIR --prompt-ids '[[1, 2, 3], [4, 5]]' --max-new-tokens 20
Prints one JSON list of new token ids per prompt. Runs to --max-new-tokens (no end-of-text stop),
in float32 on the CPU, with SDPA attention as the harness uses.
"""
import argparse
import json

import torch
from transformers import LlamaForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompt-ids", required=True)
    ap.add_argument("--max-new-tokens", type=int, required=True)
    a = ap.parse_args()
    torch.manual_seed(0)
    model = LlamaForCausalLM.from_pretrained(a.model, torch_dtype=torch.float32, attn_implementation="sdpa").eval()
    model.generation_config.eos_token_id = None
    for ids in json.loads(a.prompt_ids):
        x = torch.tensor([ids], dtype=torch.long)
        with torch.no_grad():
            y = model.generate(x, do_sample=False, max_new_tokens=a.max_new_tokens, min_new_tokens=a.max_new_tokens,
                               pad_token_id=model.config.pad_token_id, attention_mask=torch.ones_like(x))
        print(json.dumps(y[0, len(ids):].tolist()))


if __name__ == "__main__":
    main()
