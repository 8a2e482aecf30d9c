#!/usr/bin/python3
"""The training step of bench_train_step.cpp in plain PyTorch (Debian's python3-torch): a llama
decoder (RMSNorm, RoPE, GQA attention with an explicit causal+padding mask, SwiGLU), chosen and rejected
in one forward, DPO + T-REG loss, backward, clip, AdamW. Prints tokens/s and peak RSS."""
import argparse, math, resource, time
import torch, torch.nn as nn, torch.nn.functional as F

SHAPES = {"tiny": dict(V=256, D=64, F=128, L=2, H=4, K=2), "110m": dict(V=32000, D=768, F=2048, L=12, H=12, K=4)}

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

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="tiny"); ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--prompt", type=int, default=64); ap.add_argument("--response", type=int, default=64)
    ap.add_argument("--steps", type=int, default=3); ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args(); torch.manual_seed(0)
    if a.threads > 0: torch.set_num_threads(a.threads)
    m = Model(**SHAPES[a.model]); V = SHAPES[a.model]["V"]
    opt = torch.optim.AdamW(m.parameters(), lr=1e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    B, P, R = a.pairs, a.prompt, a.response
    ids = torch.randint(3, V, (2 * B, P + R)); mask = torch.ones_like(ids)
    ref = torch.full((2 * B, R), -math.log(V)); rew = (torch.randint(0, 11, (2 * B, R)) - 5) * 0.1
    beta, alpha = 0.1, 0.25
    def step():
        opt.zero_grad()
        logits = m(ids, mask)[:, :-1].float()
        lp = logits.log_softmax(-1).gather(-1, ids[:, 1:, None]).squeeze(-1)[:, P - 1 :]  # [2B, R]
        s, rs = lp.sum(-1), ref.sum(-1)
        z = (s[:B] - s[B:]) - (rs[:B] - rs[B:])
        w = torch.sigmoid(-beta * z).detach()
        reg = -beta * (rew * lp).sum(-1)
        loss = (-F.logsigmoid(beta * z) + alpha * w * (reg[:B] + reg[B:])).mean()
        loss.backward(); torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0); opt.step()
    step()
    t0 = time.time()
    for _ in range(a.steps): step()
    dt = (time.time() - t0) / a.steps
    ntok = 2 * B * (P + R)
    print(f"{a.model:6s} python-torch {torch.__version__} threads {torch.get_num_threads()}  step {dt:.3f} s  "
          f"tokens/s={ntok / dt:.0f}  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")

if __name__ == "__main__":
    main()
