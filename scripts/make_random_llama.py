#!/usr/bin/env python3
"""Write a random-weight Llama checkpoint of a real shape (bf16, sharded, Hugging Face layout) for
memory and speed checks of full-size models without downloading one: the tensors are what
transformers' LlamaForCausalLM names and shapes, N(0, 0.02) (norms 1), made on the GPU when there is
one. No tokenizer: copy one beside it.

Usage: scripts/make_random_llama.py OUT_DIR [--shape llama3-8b|llama3.2-1b] [--shard-gib 5]
"""
import argparse
import json
import os

import torch
from safetensors.torch import save_file

SHAPES = {
    "llama3-8b": dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                      num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=False),
    "llama3.2-1b": dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                        num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=True),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--shape", default="llama3-8b", choices=sorted(SHAPES))
    ap.add_argument("--shard-gib", type=float, default=5.0)
    a = ap.parse_args()
    s = SHAPES[a.shape]
    D, F, V, L = s["hidden_size"], s["intermediate_size"], s["vocab_size"], s["num_hidden_layers"]
    E = D // s["num_attention_heads"]
    K = s["num_key_value_heads"] * E
    shapes = {"model.embed_tokens.weight": (V, D), "model.norm.weight": (D,)}
    for i in range(L):
        p = "model.layers.%d." % i
        shapes.update({p + "self_attn.q_proj.weight": (D, D), p + "self_attn.k_proj.weight": (K, D),
                       p + "self_attn.v_proj.weight": (K, D), p + "self_attn.o_proj.weight": (D, D),
                       p + "mlp.gate_proj.weight": (F, D), p + "mlp.up_proj.weight": (F, D),
                       p + "mlp.down_proj.weight": (D, F), p + "input_layernorm.weight": (D,),
                       p + "post_attention_layernorm.weight": (D,)})
    if not s["tie_word_embeddings"]:
        shapes["lm_head.weight"] = (V, D)
    os.makedirs(a.out, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    g = torch.Generator(device=device).manual_seed(0)
    shards, current, size = [], {}, 0
    for name, shape in shapes.items():
        t = (torch.ones(shape, dtype=torch.bfloat16, device=device) if len(shape) == 1 else
             (torch.randn(shape, generator=g, device=device, dtype=torch.float32) * 0.02).to(torch.bfloat16))
        current[name] = t.cpu()
        size += t.numel() * 2
        if size >= a.shard_gib * 2**30:
            shards.append(current); current, size = {}, 0
    if current:
        shards.append(current)
    weight_map, total = {}, 0
    for i, shard in enumerate(shards):
        fname = "model-%05d-of-%05d.safetensors" % (i + 1, len(shards))
        save_file(shard, os.path.join(a.out, fname), metadata={"format": "pt"})
        for name, t in shard.items():
            weight_map[name] = fname
            total += t.numel() * 2
    with open(os.path.join(a.out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=1)
    config = dict(architectures=["LlamaForCausalLM"], model_type="llama", max_position_embeddings=8192,
                  rms_norm_eps=1e-5, rope_theta=500000.0, hidden_act="silu", torch_dtype="bfloat16",
                  bos_token_id=128000, eos_token_id=128009, attention_bias=False, mlp_bias=False, **s)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    print("%s: %s, %.2f B parameters, %d shards" % (a.out, a.shape, total / 2 / 1e9, len(shards)))


if __name__ == "__main__":
    main()
