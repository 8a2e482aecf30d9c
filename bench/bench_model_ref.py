#!/usr/bin/python3
"""Reference timing for bench_model: the same Llama-shaped model, shapes and loss in python torch.

Runs with Debian's python3-torch. Forward = per-token log-probs under no_grad; forward+backward =
sum of log-probs, backward into every parameter. With --treg-bench PATH it also runs the C++ bench
with the same arguments and prints treg / torch ratios.

Usage: /usr/bin/python3 bench/bench_model_ref.py [--size tiny|100m] [--batch B] [--seq T] [--iters N]
                                                 [--threads N] [--treg-bench build/bench_model]
"""
import argparse
import math
import os
import re
import subprocess
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

SIZES = {  # as bench_model.cpp: tiny_config("llama") and its 100m variant
    "tiny": dict(vocab=1000, hidden=64, inter=128, layers=2, heads=4, kv=2, head_dim=16),
    "100m": dict(vocab=32000, hidden=768, inter=2048, layers=12, heads=12, kv=4, head_dim=64),
}


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        xf = x.float()
        return self.weight * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, e = c["hidden"], c["head_dim"]
        self.h, self.k, self.e = c["heads"], c["kv"], e
        self.q = nn.Linear(d, self.h * e, bias=False)
        self.kp = nn.Linear(d, self.k * e, bias=False)
        self.v = nn.Linear(d, self.k * e, bias=False)
        self.o = nn.Linear(self.h * e, d, bias=False)
        self.gate = nn.Linear(d, c["inter"], bias=False)
        self.up = nn.Linear(d, c["inter"], bias=False)
        self.down = nn.Linear(c["inter"], d, bias=False)
        self.n1, self.n2 = RMSNorm(d), RMSNorm(d)

    def forward(self, x, cos, sin, allowed):
        B, T, _ = x.shape
        h = self.n1(x)
        q = self.q(h).view(B, T, self.h, self.e).transpose(1, 2)
        k = self.kp(h).view(B, T, self.k, self.e).transpose(1, 2)
        v = self.v(h).view(B, T, self.k, self.e).transpose(1, 2)

        def rope(t):
            half = t.shape[-1] // 2
            return t * cos + torch.cat([-t[..., half:], t[..., :half]], -1) * sin

        q, k = rope(q), rope(k)
        rep = self.h // self.k
        k = k[:, :, None].expand(B, self.k, rep, T, self.e).reshape(B, self.h, T, self.e)
        v = v[:, :, None].expand(B, self.k, rep, T, self.e).reshape(B, self.h, T, self.e)
        s = (q @ k.transpose(-2, -1)) / math.sqrt(self.e)
        s = s.float().masked_fill(~allowed, torch.finfo(torch.float32).min)
        a = torch.softmax(s, -1).to(q.dtype) @ v
        x = x + self.o(a.transpose(1, 2).reshape(B, T, self.h * self.e))
        h = self.n2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Model(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed = nn.Embedding(c["vocab"], c["hidden"])
        self.layers = nn.ModuleList([Layer(c) for _ in range(c["layers"])])
        self.norm = RMSNorm(c["hidden"])
        self.head = nn.Linear(c["hidden"], c["vocab"], bias=False)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.normal_(p, std=0.02)

    def logprobs(self, ids):
        B, T = ids.shape
        e = self.c["head_dim"]
        inv = 1.0 / (500000.0 ** (torch.arange(0, e, 2).float() / e))
        ang = torch.arange(T).float()[:, None] * inv[None]
        ang = torch.cat([ang, ang], -1)
        cos, sin = ang.cos(), ang.sin()
        i = torch.arange(T)
        allowed = (i[None, :] <= i[:, None])[None, None]
        x = self.embed(ids)
        for layer in self.layers:
            x = layer(x, cos, sin, allowed)
        logits = self.head(self.norm(x)[:, :-1]).float()
        return torch.log_softmax(logits, -1).gather(2, ids[:, 1:, None])[..., 0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="tiny", choices=sorted(SIZES))
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--treg-bench", default=None, help="path of the C++ bench_model to run and compare")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Model(SIZES[a.size])
    ids = torch.randint(SIZES[a.size]["vocab"], (a.batch, a.seq))
    n_tok = a.batch * a.seq * a.iters

    def fwd():
        with torch.no_grad():
            return model.logprobs(ids).sum()

    def fwd_bwd():
        model.zero_grad()
        loss = model.logprobs(ids).sum()
        loss.backward()

    fwd(), fwd_bwd()
    t0 = time.perf_counter()
    for _ in range(a.iters):
        fwd()
    f = n_tok / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for _ in range(a.iters):
        fwd_bwd()
    fb = n_tok / (time.perf_counter() - t0)
    n_params = sum(p.numel() for p in model.parameters())
    print("bench_model_ref size=%s params=%.1fM B=%d T=%d threads=%d torch=%s" % (
        a.size, n_params / 1e6, a.batch, a.seq, a.threads, torch.__version__))
    print("forward_tokens_per_s %.1f" % f)
    print("forward_backward_tokens_per_s %.1f" % fb)
    if a.treg_bench:
        env = dict(os.environ, TREG_NUM_THREADS=str(a.threads))
        out = subprocess.run([a.treg_bench, "--size", a.size, "--batch", str(a.batch), "--seq", str(a.seq),
                              "--iters", str(a.iters)], check=True, capture_output=True, text=True, env=env).stdout
        print(out.strip())
        tf = float(re.search(r"^forward_tokens_per_s (\S+)", out, re.M).group(1))
        tfb = float(re.search(r"^forward_backward_tokens_per_s (\S+)", out, re.M).group(1))
        print("ratio treg/torch forward %.2f  forward+backward %.2f" % (tf / f, tfb / fb))


if __name__ == "__main__":
    main()
