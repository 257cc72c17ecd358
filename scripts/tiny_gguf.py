"""Writes a tiny Llama model as GGUF, with seeded random weights, for a real llama.cpp server in
the tests (nothing is downloaded): architecture `llama`, d64, 2 layers, 4 heads, a 259-token byte
vocabulary (`<unk>`, `<s>`, `</s>` and the 256 byte tokens, tokenizer model `llama`), a chat
template, f32 tensors. Its replies are random bytes; with a `seed` in the request the same
request gets the same reply.

Usage: python scripts/tiny_gguf.py OUT.gguf [SEED]
"""
import sys

import gguf
import numpy as np


def main():
    out = sys.argv[1]
    rng = np.random.default_rng(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    d, n_layers, heads, ff, ctx = 64, 2, 4, 128, 4096
    w = gguf.GGUFWriter(out, "llama")
    w.add_context_length(ctx)
    w.add_embedding_length(d)
    w.add_block_count(n_layers)
    w.add_feed_forward_length(ff)
    w.add_head_count(heads)
    w.add_head_count_kv(heads)
    w.add_rope_dimension_count(d // heads)
    w.add_layer_norm_rms_eps(1e-5)
    tokens = [b"<unk>", b"<s>", b"</s>"] + [f"<0x{i:02X}>".encode() for i in range(256)]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL] + [gguf.TokenType.BYTE] * 256
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * len(tokens))
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_chat_template(
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"
    )
    v = len(tokens)

    def tensor(name, shape, scale=0.5):
        # numpy's [rows, cols] is PyTorch's [out, in]; GGUF stores the dimensions reversed.
        w.add_tensor(name, (rng.standard_normal(shape) * scale).astype(np.float32))

    tensor("token_embd.weight", (v, d))
    w.add_tensor("output_norm.weight", np.ones(d, dtype=np.float32))
    tensor("output.weight", (v, d))
    for i in range(n_layers):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(d, dtype=np.float32))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(d, dtype=np.float32))
        for name in ["attn_q", "attn_k", "attn_v", "attn_output"]:
            tensor(f"blk.{i}.{name}.weight", (d, d), 0.1)
        tensor(f"blk.{i}.ffn_gate.weight", (ff, d), 0.1)
        tensor(f"blk.{i}.ffn_up.weight", (ff, d), 0.1)
        tensor(f"blk.{i}.ffn_down.weight", (d, ff), 0.1)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
