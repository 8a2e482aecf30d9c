#!/usr/bin/python3
"""The training step of bench_train_step.cpp in plain PyTorch (Debian's python3-torch), laid out as TRL's
DPOTrainer does (chosen and rejected rows padded to one length, logits for every position): a llama
decoder (RMSNorm, RoPE, GQA attention with an explicit causal+padding mask, SwiGLU), chosen and rejected
in one forward, DPO + T-REG loss, backward, clip, AdamW. Prints tokens/s and peak RSS."""
import argparse, math, os, sys
import torch, torch.nn as nn, torch.nn.functional as F
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_step import SHAPES, batches, run

class RMSNorm(nn.Module):
    def __init__(s, d): super().__init__(); s.w = nn.Parameter(torch.ones(d))
    def forward(s, x): return s.w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5))

def rope(x, cos, sin):
    a, b = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return x * cos + torch.cat([-b, a], -1) * sin

class Layer(nn.Module):
    def __init__(s, D, F_, H, K):
        super().__init__(); s.H, s.K, s.E = H, K, D // H
        s.q = nn.Linear(D, H * s.E, bias=False); s.k = nn.Linear(D, K * s.E, bias=False)
        s.v = nn.Linear(D, K * s.E, bias=False); s.o = nn.Linear(H * s.E, D, bias=False)
        s.g = nn.Linear(D, F_, bias=False); s.u = nn.Linear(D, F_, bias=False); s.d = nn.Linear(F_, D, bias=False)
        s.n1, s.n2 = RMSNorm(D), RMSNorm(D)
    def forward(s, x, cos, sin, allowed):
        B, T, _ = x.shape; h = s.n1(x)
        q = s.q(h).view(B, T, s.H, s.E).transpose(1, 2); k = s.k(h).view(B, T, s.K, s.E).transpose(1, 2)
        v = s.v(h).view(B, T, s.K, s.E).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        k = k.repeat_interleave(s.H // s.K, 1); v = v.repeat_interleave(s.H // s.K, 1)
        sc = (q @ k.transpose(-1, -2)) / math.sqrt(s.E)
        sc = sc.masked_fill(~allowed, float("-inf")).softmax(-1)
        x = x + s.o((sc @ v).transpose(1, 2).reshape(B, T, -1))
        h = s.n2(x)
        return x + s.d(F.silu(s.g(h)) * s.u(h))

class Model(nn.Module):
    def __init__(s, V, D, F, L, H, K):
        super().__init__(); s.emb = nn.Embedding(V, D); s.layers = nn.ModuleList([Layer(D, F, H, K) for _ in range(L)])
        s.norm = RMSNorm(D); s.E = D // H
        for p in s.parameters(): nn.init.normal_(p, std=0.02) if p.dim() > 1 else None
    def forward(s, ids, mask):
        B, T = ids.shape
        inv = 1.0 / (500000.0 ** (torch.arange(0, s.E, 2).float() / s.E))
        f = torch.outer(torch.arange(T).float(), inv); f = torch.cat([f, f], -1)
        cos, sin = f.cos(), f.sin()
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        allowed = causal[None, None] & mask.bool()[:, None, None, :]
        x = s.emb(ids)
        for l in s.layers: x = l(x, cos, sin, allowed)
        return s.norm(x) @ s.emb.weight.t()  # tied lm_head

def logps(m, b):
    ids = b["ids"]
    return m(ids, b["mask"])[:, :-1].float().log_softmax(-1).gather(-1, ids[:, 1:, None]).squeeze(-1)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="tiny"); ap.add_argument("--lengths", required=True,
                    help="JSON: batches of [prompt, chosen, rejected] lengths; the first is the warm-up")
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args(); torch.manual_seed(0)
    if a.threads > 0: torch.set_num_threads(a.threads)
    m = Model(**SHAPES[a.model])
    run(m, logps, batches(a.lengths, SHAPES[a.model]["V"]), f"{a.model:5s} python-torch {torch.__version__}")

if __name__ == "__main__":
    main()
