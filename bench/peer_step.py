"""What bench_train_step's two Python peers share: the shapes, the padded batches TRL's
concatenated_forward builds from the benchmark's lengths, the DPO + T-REG loss on per-token
log-probs, and the timed loop. Each peer brings its model and its log-prob computation."""
import json, math, resource, time
import torch, torch.nn.functional as F

# The shapes of bench_train_step.cpp (Llama, tied embeddings, rope_theta 5e5).
SHAPES = {"tiny": dict(V=256, D=64, F=128, L=2, H=4, K=2), "9m": dict(V=16000, D=256, F=688, L=6, H=8, K=4),
          "110m": dict(V=32000, D=768, F=2048, L=12, H=12, K=4),
          "1b": dict(V=128256, D=2048, F=8192, L=16, H=32, K=8)}  # Llama-3.2-1B

def batches(path, V, device="cpu"):
    """Per batch of [prompt, chosen, rejected] lengths: chosen rows then rejected rows, prompt +
    completion, right-padded; loss_mask marks the positions predicting a completion token."""
    out = []
    for lengths in json.load(open(path)):
        B = len(lengths); T = max(p + max(c, r) for p, c, r in lengths)
        ids = torch.zeros(2 * B, T, dtype=torch.long); mask = torch.zeros_like(ids); loss_mask = torch.zeros(2 * B, T - 1)
        for i, (p, c, r) in enumerate(lengths):
            for row, n in ((i, c), (B + i, r)):
                ids[row, : p + n] = torch.randint(3, V, (p + n,)); mask[row, : p + n] = 1
                loss_mask[row, p - 1 : p + n - 1] = 1
        ref = torch.full((2 * B,), -math.log(V)) * loss_mask.sum(-1)           # precomputed reference
        rew = (torch.randint(0, 11, (2 * B, T - 1)) - 5) * 0.1 * loss_mask      # token rewards
        out.append(dict(B=B, ids=ids.to(device), mask=mask.to(device), loss_mask=loss_mask.to(device),
                        ref=ref.to(device), rew=rew.to(device), tokens=sum(2 * p + c + r for p, c, r in lengths)))
    return out

def dpo_reg_loss(lp, b, beta=0.1, alpha=0.25):
    """lp [2B, T-1] masked per-token log-probs -> DPO + alpha * w * (L_reg(y_w) + L_reg(y_l))."""
    B = b["B"]; s = lp.sum(-1)
    z = (s[:B] - s[B:]) - (b["ref"][:B] - b["ref"][B:])
    w = torch.sigmoid(-beta * z).detach()
    reg = -beta * (b["rew"] * lp).sum(-1)
    return (-F.logsigmoid(beta * z) + alpha * w * (reg[:B] + reg[B:])).mean()

def run(model, logps, data, label):
    """AdamW steps over `data` (the first a warm-up); prints step_s=... for bench_train_step."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    def step(b):
        opt.zero_grad()
        dpo_reg_loss(logps(model, b) * b["loss_mask"], b).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step()
    cuda = data[0]["ids"].is_cuda
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    step(data[0]); sync()
    if cuda: torch.cuda.reset_peak_memory_stats()
    t0 = time.time()
    for b in data[1:]: step(b)
    sync()
    dt = (time.time() - t0) / (len(data) - 1)
    ntok = sum(b["tokens"] for b in data[1:]) / (len(data) - 1)
    mem = (f"peak_cuda_gib={torch.cuda.max_memory_allocated() / 2**30:.2f}" if cuda else
           f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    print(f"{label} threads {torch.get_num_threads()}  {ntok:.0f} tokens/step  step_s={dt:.4f}  {ntok / dt:.0f} tokens/s  {mem}")
