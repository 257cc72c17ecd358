"""The PyTorch peer of `harness bench peer` and of the `throughput` experiment.

The paper's models written the way the reference code writes them (blbadger/maskedmixers, PAPER.md
A.1, A.3, I), trained one step at a time the way Hugging Face's Trainer does it (PAPER.md C):
  forward with labels -> loss; loss.backward(); clip_grad_norm_(params, 1.0); AdamW.step()
  (torch.optim.AdamW, `adamw_torch`, its default implementation for the device); scheduler.step();
  zero_grad(set_to_none=True). The loss is kept on the device (the Trainer reads it every
  `logging_steps`), batches are resident on the device.

Modes:
  train      one optimizer step (as above) on a [batch, n_ctx] batch of random tokens
  infer      one forward to logits under torch.inference_mode()
  memory     one forward + backward of the block stack without the LM head (T6/T7), batch as given

Reads one JSON job from argv[1] and prints one JSON line: step times (s, synchronised), peak memory
(CUDA allocator peak, or the growth of the peak RSS on CPU), parameter count, versions.
"""
import json
import os
import resource
import sys
import time

import torch
import torch.nn as nn


class FeedForward(nn.Module):
    def __init__(self, dim, expansion_factor=4):
        super().__init__()
        inner = int(dim * expansion_factor)
        self.net = nn.Sequential(nn.Linear(dim, inner), nn.GELU(), nn.Linear(inner, dim))

    def forward(self, x):
        return self.net(x)


class MixerBlock(nn.Module):
    """The reference's block: the conv weight is re-masked in place before every forward."""

    def __init__(self, dim, length):
        super().__init__()
        self.patch_layernorm = nn.LayerNorm(dim)
        self.seq_layernorm = nn.LayerNorm(dim)
        self.patch_ff = FeedForward(dim)
        self.conv = nn.Conv1d(length, length, 1)

    def forward(self, x):
        # rearrange(w, 'f d p -> p f d'), tril, rearrange back, written into .data
        masked_conv = torch.tril(self.conv.weight.permute(2, 0, 1))
        self.conv.weight.data = masked_conv.permute(1, 2, 0).contiguous()
        residual = x
        x = self.seq_layernorm(x)
        x = self.conv(x) + residual
        residual = x
        x = self.patch_layernorm(x)
        return self.patch_ff(x) + residual


class LanguageMixer(nn.Module):
    def __init__(self, n_vocab, dim, depth, length):
        super().__init__()
        self.wte = nn.Embedding(n_vocab, dim)
        self.mixerblocks = nn.ModuleList([MixerBlock(dim, length) for _ in range(depth)])
        self.lm_head = nn.Linear(dim, n_vocab, bias=False)
        self.cel = nn.CrossEntropyLoss()

    def blocks(self, input_ids):
        x = self.wte(input_ids)
        for block in self.mixerblocks:
            x = block(x)
        return x

    def forward(self, input_ids, labels=None):
        output = self.lm_head(self.blocks(input_ids))
        if labels is None:
            return output
        # rearrange(output, 'b t e -> b e t'), shift, CrossEntropyLoss over dim 1
        output = output.permute(0, 2, 1)
        shift_logits = output[..., :-1].contiguous()
        shift_labels = labels[..., 1:].contiguous()
        return self.cel(shift_logits, shift_labels)


class AbbreviatedModel(nn.Module):
    """The reference's wrapper (`bidirectional_transformer.py`): a whole LlamaForCausalLM of
    which only the first `depth` decoder layers run, with positions 0..t-1 and no attention mask
    (causal: transformers 4.42's SDPA attention, the reference's, is causal when given no mask;
    here the causal mask is given, as later versions need it), no final norm."""

    def __init__(self, model, depth):
        super().__init__()
        self.model = model
        self.depth = depth

    def forward(self, x):
        b, t, _ = x.shape
        position_ids = torch.arange(t, device=x.device).unsqueeze(0).expand(b, t)
        rope = self.model.model.rotary_emb(x, position_ids)
        mask = torch.full((t, t), float("-inf"), device=x.device, dtype=x.dtype).triu(1)[None, None]
        for layer in self.model.model.layers[: self.depth]:
            out = layer(x, attention_mask=mask, position_ids=position_ids, position_embeddings=rope)
            x = out[0] if isinstance(out, tuple) else out
        return x


class BidirectionalTransformer(nn.Module):
    """`bidirectional_transformer.py`'s model: the forward stack on wte(x), the reverse stack on
    wte(x) flipped; the head reads forward[i - 1] + flip(reverse)[i + 1] (zero pads) and the
    labels are not shifted: token i is predicted from every other token."""

    def __init__(self, n_vocab, dim, forward_model, reverse_model):
        super().__init__()
        self.wte = nn.Embedding(n_vocab, dim)
        self.lm_head = nn.Linear(dim, n_vocab, bias=False)
        self.cel = nn.CrossEntropyLoss()
        self.forward_model = forward_model
        self.reverse_model = reverse_model

    def forward(self, input_ids, labels=None):
        x = self.wte(input_ids)
        y = torch.flip(x.clone(), dims=[1])
        forward = self.forward_model(x)
        reverse = self.reverse_model(y)
        pad = torch.zeros(x.shape[0], 1, x.shape[2], device=x.device, dtype=forward.dtype)
        reverse = torch.cat([torch.flip(reverse, dims=[1])[..., 1:, :], pad], dim=1)
        forward = torch.cat([pad, forward[..., :-1, :]], dim=1)
        output = self.lm_head(forward + reverse)
        if labels is None:
            return output
        return self.cel(output.transpose(1, 2), labels)


class MixerAutoencoder(nn.Module):
    """`mixer_autoencoder.py` (PAPER.md A.5): wte, the encoder's MixerBlocks, the last position's
    vector repeated L times, the decoder's MixerBlocks (causally masked too), lm_head; CE against
    the unshifted tokens. The one-step completion model (`completion`) instead zeroes the
    encoder's output from position L/2 on and is scored on those positions only."""

    def __init__(self, n_vocab, dim, encoder_depth, decoder_depth, length, completion=False):
        super().__init__()
        self.wte = nn.Embedding(n_vocab, dim)
        self.encoderblocks = nn.ModuleList([MixerBlock(dim, length) for _ in range(encoder_depth)])
        self.decoderblocks = nn.ModuleList([MixerBlock(dim, length) for _ in range(decoder_depth)])
        self.lm_head = nn.Linear(dim, n_vocab, bias=False)
        self.cel = nn.CrossEntropyLoss()
        self.length, self.completion = length, completion

    def forward(self, input_ids, labels=None):
        x = self.wte(input_ids)
        for block in self.encoderblocks:
            x = block(x)
        half = self.length // 2
        if self.completion:
            keep = (torch.arange(x.shape[1], device=x.device) < half).to(x.dtype)
            x = x * keep[None, :, None]
        else:
            x = x[:, -1:, :].repeat(1, x.shape[1], 1)  # repeat(x[:, -1], 'b d -> b t d')
        for block in self.decoderblocks:
            x = block(x)
        output = self.lm_head(x)
        if labels is None:
            return output
        if self.completion:
            output, labels = output[:, half:], labels[:, half:]
        return self.cel(output.permute(0, 2, 1), labels)


class MixerLayer(nn.Module):
    """The transfixer's `MixerLayer(512)`: a Conv1d over positions, re-masked in place before
    every forward as the mixer block's."""

    def __init__(self, length):
        super().__init__()
        self.conv = nn.Conv1d(length, length, 1)

    def forward(self, x):
        masked_conv = torch.tril(self.conv.weight.permute(2, 0, 1))
        self.conv.weight.data = masked_conv.permute(1, 2, 0).contiguous()
        return self.conv(x)


def transfixer(job, m):
    """PAPER.md A.4: a LlamaForCausalLM whose decoder layers add the masked mixing of the
    attention output (x + a + conv(a)), or with `parallel_mixer` of the attention's normed input
    (x + a + conv(z)); the attention's forward is wrapped, the layer's code is HF's."""
    model = llama(job, m)
    parallel = m.get("parallel_mixer", False)
    for layer in model.model.layers:
        layer.mixer_layer = MixerLayer(job["n_ctx"])

        def attention(*args, _attend=layer.self_attn.forward, _mix=layer.mixer_layer, **kw):
            out = _attend(*args, **kw)
            a = out[0]
            z = kw["hidden_states"] if "hidden_states" in kw else args[0]
            return (a + _mix(z if parallel else a),) + tuple(out[1:])

        layer.self_attn.forward = attention
    return model


def llama(job, m):
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(
        vocab_size=job["vocab"],
        hidden_size=m["d_model"],
        intermediate_size=m.get("intermediate_size") or 4 * m["d_model"],
        num_hidden_layers=m["n_layers"],
        num_attention_heads=m["n_heads"],
        num_key_value_heads=m["n_heads"],
        max_position_embeddings=max(2048, job["n_ctx"]),
        attn_implementation=job.get("attention", "sdpa"),
    )
    return LlamaForCausalLM(cfg)


def build(job, device):
    m = job["model"]
    if m["kind"] == "mixer":
        model = LanguageMixer(job["vocab"], m["d_model"], m["n_layers"], job["n_ctx"])
    elif m["kind"] == "bidirectional_llama":
        stacks = []
        for _ in range(2):
            inner = llama(job, m)
            # Never run: the reference builds and keeps them (they get no gradient, so AdamW and
            # the clip norm skip them); left out here so the state dict is the one the harness has.
            inner.model.embed_tokens, inner.model.norm, inner.lm_head = nn.Identity(), nn.Identity(), nn.Identity()
            stacks.append(AbbreviatedModel(inner, m["n_layers"]))
        model = BidirectionalTransformer(job["vocab"], m["d_model"], *stacks)
    elif m["kind"] == "llama":
        model = llama(job, m)
    elif m["kind"] == "transfixer":
        model = transfixer(job, m)
    elif m["kind"] in ("mixer_autoencoder", "mixer_completion"):
        n = m["n_layers"]
        model = MixerAutoencoder(job["vocab"], m["d_model"], n, n, job["n_ctx"], completion=m["kind"] == "mixer_completion")
    else:
        raise SystemExit(f"peer.py: unknown model kind {m['kind']!r}")
    return model.to(device)


def loss_of(model, kind, ids):
    if kind in ("mixer", "bidirectional_llama", "mixer_autoencoder", "mixer_completion"):
        return model(ids, labels=ids)
    return model(input_ids=ids, labels=ids).loss


def hidden_of(model, kind, ids):
    if kind == "mixer":
        return model.blocks(ids)
    return model.model(input_ids=ids).last_hidden_state


def main():
    job = json.loads(sys.argv[1])
    torch.manual_seed(job.get("seed", 0))
    torch.set_num_threads(job.get("threads") or torch.get_num_threads())
    device = torch.device(job.get("device", "cpu"))
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    kind, mode = job["model"]["kind"], job["mode"]
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16-amp": torch.float16}[job.get("precision", "fp32")]
    model = build(job, device)
    params = sum(p.numel() for p in model.parameters())
    b, L, V = job["batch"], job["n_ctx"], job["vocab"]
    n_batches = 4
    data = [torch.randint(0, V, (b, L), device=device) for _ in range(n_batches)]
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else (lambda: torch.autocast(device.type, enabled=False))
    scaler = torch.amp.GradScaler(device.type) if job.get("precision") == "fp16-amp" else None
    if mode == "train":
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
        model.train()
        tr_loss = torch.zeros((), device=device)

        def step(ids):
            nonlocal tr_loss
            with autocast():
                loss = loss_of(model, kind, ids)
            if scaler:
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
            else:
                loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            if scaler:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            sched.step()
            model.zero_grad(set_to_none=True)
            tr_loss = tr_loss + loss.detach()
    elif mode == "infer":
        model.eval()

        def step(ids):
            with torch.inference_mode(), autocast():
                model(ids)
    elif mode == "memory":
        model.train()

        def step(ids):
            with autocast():
                h = hidden_of(model, kind, ids)
            h.float().sum().backward()
            model.zero_grad(set_to_none=True)
    else:
        raise SystemExit(f"peer.py: unknown mode {mode!r}")

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    oom = False
    times, issue_times = [], []
    try:
        for i in range(job["warmup"] + job["steps"]):
            sync()
            t = time.perf_counter()
            step(data[i % n_batches])
            issued = time.perf_counter() - t
            sync()
            if i >= job["warmup"]:
                times.append(time.perf_counter() - t)
                issue_times.append(issued)
    except torch.OutOfMemoryError:
        oom = True
    if cuda:
        peak = torch.cuda.max_memory_allocated(device)
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0
    import importlib.metadata as md
    try:
        tf = md.version("transformers")
    except md.PackageNotFoundError:
        tf = None
    print(json.dumps({
        "times": times,
        # Until the step's last operation was issued, before the synchronise (see the harness's
        # `Measured::issue_times`).
        "issue_times": issue_times,
        "oom": oom,
        "peak_bytes": peak,
        "params": params,
        "torch": torch.__version__,
        "transformers": tf,
        "device_name": torch.cuda.get_device_name(device) if cuda else "cpu",
        "threads": torch.get_num_threads(),
        # glibc read these at start-up (the harness passes them for peer_malloc = "harness").
        "malloc": "no-mmap" if os.environ.get("MALLOC_MMAP_MAX_") == "0" else "glibc",
    }))


if __name__ == "__main__":
    main()
