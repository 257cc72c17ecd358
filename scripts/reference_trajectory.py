"""Trains a model the way the reference trains it (PAPER.md C: the Hugging Face Trainer's loop),
in plain PyTorch, from a given checkpoint on the batches a harness run recorded, and prints the
per-step losses: the peer of harness/tests/trajectory.rs.

The models are bench/pytorch/peer.py's: the masked mixer written as the reference writes it (the
convolution weight re-masked in place before every forward), Hugging Face's LlamaForCausalLM, the
reference's bidirectional transformer on two of its layer stacks, the mixer autoencoder and its
one-step completion model, and the transfixer (a LlamaForCausalLM with the in-place masked mixing
of each attention output).
Each step, as the Trainer does with `adamw_torch` and no weight decay:
  loss = model(input_ids, labels) -> loss.backward() -> clip_grad_norm_(params, 1.0)
  -> optimizer.step() -> scheduler.step() (get_linear_schedule_with_warmup) -> zero_grad()

Usage:
  python scripts/reference_trajectory.py init JOB.json OUT.safetensors   # a seeded init, harness names
  python scripts/reference_trajectory.py train JOB.json OUT.json         # losses per step, per AdamW
JOB: {"kind": "mixer"|"llama"|"bidirectional_llama"|"mixer_autoencoder"|"mixer_completion"|"transfixer", "vocab", "d_model", "n_layers", "n_heads", "n_ctx", "seed",
      "init", "tokenizer", "data" (JSON lines, "text"), "run" (the harness run folder: its
      data_order.json gives each step's rows), "lr", "warmup", "total", "clip"}
"""
import json
import os
import sys

import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench", "pytorch"))
import peer  # noqa: E402


def build(job):
    spec = {"kind": job["kind"], "d_model": job["d_model"], "n_layers": job["n_layers"], "n_heads": job.get("n_heads"),
            "parallel_mixer": job.get("parallel_mixer", False)}
    return peer.build({"model": spec, "vocab": job["vocab"], "n_ctx": job["n_ctx"], "attention": "eager"}, "cpu")


def to_harness(name):
    # The reference's FeedForward is an nn.Sequential named `net` in peer.py; the harness
    # stores it as the reference's `patch_ff.0` / `patch_ff.2`.
    return name.replace("patch_ff.net.", "patch_ff.")


def rows(job):
    tok = Tokenizer.from_file(job["tokenizer"])
    pad = tok.token_to_id("</s>")
    ids, labels = [], []
    with open(job["data"], encoding="utf-8") as f:
        for line in f:
            t = tok.encode(json.loads(line)["text"], add_special_tokens=False).ids[: job["n_ctx"]]
            n = job["n_ctx"] - len(t)
            ids.append(t + [pad] * n)  # right padding, pad = EOS
            labels.append(t + [-100] * n)  # DataCollatorForLanguageModeling: pads -> -100
    return torch.tensor(ids), torch.tensor(labels)


def train(job, impl):
    torch.manual_seed(job["seed"])
    model = build(job)
    state = {to_harness(k): v for k, v in model.state_dict().items()}
    loaded = load_file(job["init"])
    missing = sorted(set(state) ^ set(loaded))
    if missing:
        raise SystemExit(f"the init checkpoint and the peer model differ in names: {missing[:6]}")
    model.load_state_dict({k: loaded[to_harness(k)] for k in model.state_dict()})
    model.train()
    ids, labels = rows(job)
    order = json.load(open(os.path.join(job["run"], "data_order.json")))["row_ids_per_step"]
    kw = {"fused": True} if impl == "fused" else {"foreach": impl == "foreach"}
    # The Hugging Face Trainer's two groups: no weight decay on biases and norm weights.
    from transformers import Trainer

    wd = job.get("weight_decay", 0.0)
    decay = set(Trainer.get_decay_parameter_names(None, model))
    named = list(model.named_parameters())
    groups = [
        {"params": [p for n, p in named if n in decay], "weight_decay": wd},
        {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=job["lr"], betas=(0.9, 0.999), eps=1e-8, **kw)
    from transformers import get_linear_schedule_with_warmup

    sched = get_linear_schedule_with_warmup(opt, job["warmup"], job["total"])
    losses, norms = [], []
    for step_rows in order:
        idx = torch.tensor(step_rows)
        x, y = ids[idx], labels[idx]
        if job["kind"] in ("mixer", "bidirectional_llama", "mixer_autoencoder", "mixer_completion"):
            loss = model(x, labels=y)
        else:
            loss = model(input_ids=x, labels=y).loss
        loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), job["clip"])))
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses, norms


def main():
    mode, job_path, out = sys.argv[1:4]
    job = json.load(open(job_path))
    torch.set_num_threads(1)
    if mode == "init":
        torch.manual_seed(job["seed"])
        model = build(job)
        save_file({to_harness(k): v.contiguous() for k, v in model.state_dict().items()}, out)
        return
    result = {"torch": torch.__version__}
    for impl in ["single", "fused"]:
        result[impl], result[impl + "_grad_norm"] = train(job, impl)
    json.dump(result, open(out, "w"))


if __name__ == "__main__":
    main()
