#!/usr/bin/python3
"""Independent reference for treg's decoder: per-token log-probs of Llama / Mistral / Qwen2 / Gemma-2.

Runs with Debian's python3-torch (no transformers, no safetensors package). It parses the safetensors
files itself and re-implements the Hugging Face modeling math in plain torch, one sequence at a time
(no padding), in float64 by default, so its numbers are independent of treg's batching and kernels.

Usage: /usr/bin/python3 scripts/ref_model.py MODEL_DIR IN.jsonl OUT.jsonl [--dtype float64|float32]
IN lines are {"ids": [...]}; OUT lines are {"ids": [...], "logprobs": [log p(ids[i+1] | ids[..i])]}.
"""
import argparse
import json
import math
import os
import struct
import sys

import torch

DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}


def read_safetensors(path):
    """{name: tensor} from one .safetensors file, parsed by hand."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = blob[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        dtype = DTYPES[info["dtype"]]
        raw = bytearray(data[begin:end])
        t = torch.frombuffer(raw, dtype=dtype) if len(raw) else torch.empty(0, dtype=dtype)
        out[name] = t.reshape(info["shape"]).clone()
    return out


def read_checkpoint(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    weights = {}
    for name in files:
        weights.update(read_safetensors(os.path.join(model_dir, name)))
    return weights


class Config:
    """The subset of HF config semantics the four architectures use, with HF's class defaults."""

    def __init__(self, c):
        self.type = c["model_type"]
        if self.type not in ("llama", "mistral", "qwen2", "gemma2"):
            raise SystemExit("ref_model.py: unsupported model_type " + self.type)
        gemma = self.type == "gemma2"
        self.hidden = c["hidden_size"]
        self.layers = c["num_hidden_layers"]
        self.heads = c["num_attention_heads"]
        self.kv_heads = c.get("num_key_value_heads") or self.heads
        self.head_dim = c.get("head_dim") or (256 if gemma else self.hidden // self.heads)
        self.eps = c.get("rms_norm_eps", 1e-6)
        self.theta = c.get("rope_theta", 10000.0)
        self.rope_scaling = c.get("rope_scaling")
        self.tied = c.get("tie_word_embeddings", gemma)
        act = c.get("hidden_activation") or c.get("hidden_act") if gemma else c.get("hidden_act", "silu")
        self.act = act or "gelu_pytorch_tanh"
        self.attn_softcap = c.get("attn_logit_softcapping") if gemma else None
        self.final_softcap = c.get("final_logit_softcapping") if gemma else None
        self.scaling = (c.get("query_pre_attn_scalar", 256) if gemma else self.head_dim) ** -0.5
        # Which layers use a sliding window, and how wide.
        self.window = [None] * self.layers
        if gemma:
            w = c.get("sliding_window", 4096)
            self.window = [w if i % 2 == 0 else None for i in range(self.layers)]
        elif self.type == "mistral":
            w = c.get("sliding_window", 4096)
            self.window = [w] * self.layers
        elif self.type == "qwen2" and c.get("use_sliding_window", False):
            w = c.get("sliding_window", 4096)
            mwl = c.get("max_window_layers", 28)
            self.window = [w if i >= mwl else None for i in range(self.layers)]
        if c.get("layer_types"):
            w = c.get("sliding_window")
            self.window = [w if t == "sliding_attention" else None for t in c["layer_types"]]


def inv_freq(cfg):
    dim = cfg.head_dim
    f = 1.0 / (cfg.theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    s = cfg.rope_scaling
    if not s:
        return f
    kind = s.get("rope_type", s.get("type"))
    if kind == "default":
        return f
    if kind == "linear":
        return f / s["factor"]
    assert kind == "llama3", kind
    factor, lo, hi = s["factor"], s["low_freq_factor"], s["high_freq_factor"]
    old = s["original_max_position_embeddings"]
    out = []
    for x in f.tolist():  # element by element, as in Meta's reference
        wavelen = 2 * math.pi / x
        if wavelen < old / hi:
            out.append(x)
        elif wavelen > old / lo:
            out.append(x / factor)
        else:
            smooth = (old / wavelen - lo) / (hi - lo)
            out.append((1 - smooth) * x / factor + smooth * x)
    return torch.tensor(out, dtype=torch.float32)


def rms_norm(x, w, eps, gemma):
    y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return y * (1.0 + w) if gemma else y * w


def act(x, name):
    if name in ("silu", "swish"):
        return torch.nn.functional.silu(x)
    if name in ("gelu_pytorch_tanh", "gelu_new", "gelu_fast"):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))
    if name == "gelu":
        return torch.nn.functional.gelu(x)
    raise SystemExit("ref_model.py: unsupported activation " + name)


def linear(x, w, name):
    y = x @ w[name + ".weight"].T
    if name + ".bias" in w:
        y = y + w[name + ".bias"]
    return y


def logprobs(cfg, w, ids, dtype):
    gemma = cfg.type == "gemma2"
    T = len(ids)
    x = w["model.embed_tokens.weight"][torch.tensor(ids)]  # [T, D]
    if gemma:
        x = x * torch.tensor(cfg.hidden ** 0.5, dtype=dtype)
    # RoPE angles in fp32 as HF computes them, then used in the working dtype.
    ang = torch.arange(T, dtype=torch.float32)[:, None] * inv_freq(cfg)[None, :]  # [T, E/2]
    ang = torch.cat([ang, ang], dim=-1)
    cos, sin = ang.cos().to(dtype), ang.sin().to(dtype)

    def rope(v):  # [heads, T, E]
        h = v.shape[-1] // 2
        return v * cos + torch.cat([-v[..., h:], v[..., :h]], dim=-1) * sin

    E, H, K = cfg.head_dim, cfg.heads, cfg.kv_heads
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    for layer in range(cfg.layers):
        p = "model.layers.%d." % layer
        h = rms_norm(x, w[p + "input_layernorm.weight"], cfg.eps, gemma)
        q = linear(h, w, p + "self_attn.q_proj").view(T, H, E).transpose(0, 1)
        k = linear(h, w, p + "self_attn.k_proj").view(T, K, E).transpose(0, 1)
        v = linear(h, w, p + "self_attn.v_proj").view(T, K, E).transpose(0, 1)
        q, k = rope(q), rope(k)
        k = k.repeat_interleave(H // K, dim=0)
        v = v.repeat_interleave(H // K, dim=0)
        s = (q @ k.transpose(1, 2)) * cfg.scaling  # [H, T, T]
        if cfg.attn_softcap:
            s = cfg.attn_softcap * torch.tanh(s / cfg.attn_softcap)
        allowed = j <= i
        if cfg.window[layer]:
            allowed = allowed & (i - j < cfg.window[layer])
        s = s.masked_fill(~allowed, float("-inf"))
        a = torch.softmax(s, dim=-1) @ v  # [H, T, E]
        a = linear(a.transpose(0, 1).reshape(T, H * E), w, p + "self_attn.o_proj")
        if gemma:
            a = rms_norm(a, w[p + "post_attention_layernorm.weight"], cfg.eps, True)
            x = x + a
            h = rms_norm(x, w[p + "pre_feedforward_layernorm.weight"], cfg.eps, True)
        else:
            x = x + a
            h = rms_norm(x, w[p + "post_attention_layernorm.weight"], cfg.eps, False)
        m = linear(act(linear(h, w, p + "mlp.gate_proj"), cfg.act) * linear(h, w, p + "mlp.up_proj"), w,
                   p + "mlp.down_proj")
        if gemma:
            m = rms_norm(m, w[p + "post_feedforward_layernorm.weight"], cfg.eps, True)
        x = x + m
    x = rms_norm(x, w["model.norm.weight"], cfg.eps, gemma)
    head = w["model.embed_tokens.weight"] if cfg.tied else w["lm_head.weight"]
    logits = x @ head.T  # [T, V]
    if cfg.final_softcap:
        logits = cfg.final_softcap * torch.tanh(logits / cfg.final_softcap)
    lsm = torch.log_softmax(logits, dim=-1)
    return [lsm[t, ids[t + 1]].item() for t in range(T - 1)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype)
    with open(os.path.join(args.model_dir, "config.json")) as f:
        cfg = Config(json.load(f))
    w = {k: v.to(dtype) for k, v in read_checkpoint(args.model_dir).items()}
    rows = []
    with open(args.input) as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
    with torch.no_grad(), open(args.output, "w") as out:
        for row in rows:
            out.write(json.dumps({"ids": row["ids"], "logprobs": logprobs(cfg, w, row["ids"], dtype)}) + "\n")


if __name__ == "__main__":
    sys.exit(main())
