#!/usr/bin/python3
"""Independent reference for treg's decoder: per-token log-probs of Llama / Mistral / Qwen2 / Qwen3 /
Gemma-2 / Gemma-3 (text) / Phi-3, with default, linear, llama3, dynamic, yarn and longrope RoPE.

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
    """The subset of HF config semantics the architectures use, with HF's class defaults."""

    TYPES = ("llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3_text", "phi3")

    def __init__(self, c):
        self.type = c["model_type"]
        if self.type not in self.TYPES:
            raise SystemExit("ref_model.py: unsupported model_type " + self.type)
        t = self.type
        gemma = t in ("gemma2", "gemma3_text")
        self.gemma = gemma
        self.post_norms = gemma
        self.qk_norm = t in ("qwen3", "gemma3_text")
        self.fused = t == "phi3"
        self.hidden = c["hidden_size"]
        self.layers = c["num_hidden_layers"]
        self.heads = c["num_attention_heads"]
        self.kv_heads = c.get("num_key_value_heads") or self.heads
        self.head_dim = c.get("head_dim") or (256 if gemma else 128 if t == "qwen3" else self.hidden // self.heads)
        self.max_pos = c.get("max_position_embeddings") or {"gemma2": 8192, "gemma3_text": 131072, "llama": 2048,
                                                            "phi3": 4096}.get(t, 32768)
        self.eps = c.get("rms_norm_eps", 1e-5 if t == "phi3" else 1e-6)
        self.tied = c.get("tie_word_embeddings", gemma)
        act = c.get("hidden_activation") or c.get("hidden_act") if gemma else c.get("hidden_act", "silu")
        self.act = act or "gelu_pytorch_tanh"
        self.attn_softcap = c.get("attn_logit_softcapping") if gemma else None
        self.final_softcap = c.get("final_logit_softcapping") if gemma else None
        self.scaling = (c.get("query_pre_attn_scalar", 256) if gemma else self.head_dim) ** -0.5
        # Rope: one dict for all layers, or {"full_attention": .., "sliding_attention": ..}.
        rp = c.get("rope_parameters") or c.get("rope_scaling") or {}
        partial = rp.get("partial_rotary_factor", c.get("partial_rotary_factor", 1.0)) if isinstance(rp, dict) else 1.0
        self.rot = int(self.head_dim * partial)
        theta = c.get("rope_theta", 1e6 if t == "gemma3_text" else 10000.0)
        if "full_attention" in rp or "sliding_attention" in rp:
            self.rope_full = dict(rp.get("full_attention") or {})
            self.rope_local = dict(rp.get("sliding_attention") or {})
        else:
            self.rope_full = dict(rp)
            self.rope_local = ({"rope_theta": c.get("rope_local_base_freq", 10000.0)} if t == "gemma3_text"
                               else self.rope_full)
        for r in (self.rope_full, self.rope_local):
            r.setdefault("rope_theta", theta)
            kind = r.get("rope_type", r.get("type", "default"))
            if t == "phi3" and kind in ("su", "yarn"):
                kind = "longrope"
            r["kind"] = kind
            if "original_max_position_embeddings" in c:
                r["original_max_position_embeddings"] = c["original_max_position_embeddings"]
            elif t == "phi3":
                r.setdefault("original_max_position_embeddings", 4096)
            r.setdefault("original_max_position_embeddings", self.max_pos)
        # Which layers use a sliding window, and how wide.
        self.window = [None] * self.layers
        if t == "gemma2":
            w = c.get("sliding_window", 4096)
            self.window = [w if i % 2 == 0 else None for i in range(self.layers)]
        elif t == "gemma3_text":
            w = c.get("sliding_window", 4096)
            pattern = c.get("sliding_window_pattern", 6)
            self.window = [w if (i + 1) % pattern else None for i in range(self.layers)]
        elif t in ("mistral", "phi3"):
            w = c.get("sliding_window", 4096 if t == "mistral" else None)
            self.window = [w] * self.layers
        elif t in ("qwen2", "qwen3") and c.get("use_sliding_window", False):
            w = c.get("sliding_window", 4096)
            mwl = c.get("max_window_layers", 28)
            self.window = [w if i >= mwl else None for i in range(self.layers)]
        if c.get("layer_types"):
            w = c.get("sliding_window")
            self.window = [w if t == "sliding_attention" else None for t in c["layer_types"]]
        self.local_rope = [t == "gemma3_text" and w is not None for w in self.window]


def inv_freq(r, dim, max_pos, seq_len):
    """(inv_freq [dim/2] fp32, cos/sin multiplier) of rope dict `r` for a sequence of seq_len tokens."""
    base = r["rope_theta"]
    kind = r["kind"]
    expo = torch.arange(0, dim, 2, dtype=torch.int64).float() / dim
    f = 1.0 / (base ** expo)
    if kind == "default":
        return f, 1.0
    orig = r["original_max_position_embeddings"]
    factor = r.get("factor") or (max_pos / orig)
    if kind == "linear":
        return f / factor, 1.0
    if kind == "dynamic":
        if seq_len <= max_pos:
            return f, 1.0
        nb = base * ((factor * seq_len / max_pos) - (factor - 1)) ** (dim / (dim - 2))
        return 1.0 / (nb ** expo), 1.0
    if kind == "longrope":
        ext = r["long_factor"] if seq_len > orig else r["short_factor"]
        att = r.get("attention_factor")
        if att is None:
            att = 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(orig))
        return 1.0 / (torch.tensor(ext, dtype=torch.float32) * base ** expo), att
    if kind == "yarn":
        def mscale(scale, m=1.0):
            return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0
        att = r.get("attention_factor")
        if att is None:
            if r.get("mscale") and r.get("mscale_all_dim"):
                att = mscale(factor, r["mscale"]) / mscale(factor, r["mscale_all_dim"])
            else:
                att = mscale(factor)
        fast, slow = r.get("beta_fast") or 32, r.get("beta_slow") or 1

        def cdim(rot):  # the dimension that turns `rot` times over the original context
            return dim * math.log(orig / (rot * 2 * math.pi)) / (2 * math.log(base))
        lo, hi = cdim(fast), cdim(slow)
        if r.get("truncate", True):
            lo, hi = math.floor(lo), math.ceil(hi)
        lo, hi = max(lo, 0), min(hi, dim - 1)
        if lo == hi:
            hi += 0.001
        out = []
        for i, x in enumerate(f.tolist()):  # element by element: extrapolate below lo, interpolate above hi
            ramp = min(max((i - lo) / (hi - lo), 0.0), 1.0)
            out.append(x / factor * ramp + x * (1 - ramp))
        return torch.tensor(out, dtype=torch.float32), att
    assert kind == "llama3", kind
    lo, hi = r["low_freq_factor"], r["high_freq_factor"]
    out = []
    for x in f.tolist():  # element by element, as in Meta's reference
        wavelen = 2 * math.pi / x
        if wavelen < orig / hi:
            out.append(x)
        elif wavelen > orig / lo:
            out.append(x / factor)
        else:
            smooth = (orig / wavelen - lo) / (hi - lo)
            out.append((1 - smooth) * x / factor + smooth * x)
    return torch.tensor(out, dtype=torch.float32), 1.0


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
    gemma = cfg.gemma
    T = len(ids)
    x = w["model.embed_tokens.weight"][torch.tensor(ids)]  # [T, D]
    if gemma:
        x = x * torch.tensor(cfg.hidden ** 0.5, dtype=dtype)

    def tables(r):  # RoPE angles in fp32 as HF computes them, then used in the working dtype
        f, att = inv_freq(r, cfg.rot, cfg.max_pos, T)
        ang = torch.arange(T, dtype=torch.float32)[:, None] * f[None, :]  # [T, R/2]
        ang = torch.cat([ang, ang], dim=-1)
        return (ang.cos() * att).to(dtype), (ang.sin() * att).to(dtype)
    full, local = tables(cfg.rope_full), tables(cfg.rope_local)

    def rope(v, cs):  # [heads, T, E]; the first R dims rotate
        cos, sin = cs
        R = cfg.rot
        a, rest = v[..., :R], v[..., R:]
        h = R // 2
        return torch.cat([a * cos + torch.cat([-a[..., h:], a[..., :h]], dim=-1) * sin, rest], dim=-1)

    E, H, K = cfg.head_dim, cfg.heads, cfg.kv_heads
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    for layer in range(cfg.layers):
        p = "model.layers.%d." % layer
        h = rms_norm(x, w[p + "input_layernorm.weight"], cfg.eps, gemma)
        if cfg.fused:
            qkv = linear(h, w, p + "self_attn.qkv_proj")
            q, k, v = qkv[:, :H * E], qkv[:, H * E:(H + K) * E], qkv[:, (H + K) * E:]
        else:
            q, k, v = (linear(h, w, p + "self_attn." + n) for n in ("q_proj", "k_proj", "v_proj"))
        q, k, v = q.view(T, H, E), k.view(T, K, E), v.view(T, K, E)
        if cfg.qk_norm:
            q = rms_norm(q, w[p + "self_attn.q_norm.weight"], cfg.eps, gemma)
            k = rms_norm(k, w[p + "self_attn.k_norm.weight"], cfg.eps, gemma)
        q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)
        cs = local if cfg.local_rope[layer] else full
        q, k = rope(q, cs), rope(k, cs)
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
        if cfg.post_norms:
            a = rms_norm(a, w[p + "post_attention_layernorm.weight"], cfg.eps, True)
            x = x + a
            h = rms_norm(x, w[p + "pre_feedforward_layernorm.weight"], cfg.eps, True)
        else:
            x = x + a
            h = rms_norm(x, w[p + "post_attention_layernorm.weight"], cfg.eps, False)
        if cfg.fused:
            gate, up = linear(h, w, p + "mlp.gate_up_proj").chunk(2, dim=-1)
        else:
            gate, up = linear(h, w, p + "mlp.gate_proj"), linear(h, w, p + "mlp.up_proj")
        m = linear(act(gate, cfg.act) * up, w, p + "mlp.down_proj")
        if cfg.post_norms:
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
