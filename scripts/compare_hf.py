#!/usr/bin/env python3
"""Compare `treg logprobs` with Hugging Face transformers on a real checkpoint.

Needs a python with torch + transformers (e.g. a GPU machine); Debian's python3-torch here has no
transformers. For a few token sequences of different lengths (one longer than the sliding window
when the config has one), computes log p(ids[t+1] | ids[..t]) with transformers, one sequence at a
time (no padding, eager attention), and with `treg logprobs` (batched, right-padded), then prints
the max abs difference per sequence. Exit status 1 when any exceeds --tol.

Usage: scripts/compare_hf.py CHECKPOINT_DIR [--dtype float32|bfloat16] [--treg build/treg]
                             [--device cuda|cpu] [--tol X]
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

import torch


def sequences(model_dir, config, seed):
    """Token-id sequences: tokenized text when a tokenizer loads, plus random ids of several lengths."""
    rng = random.Random(seed)
    vocab = config["vocab_size"]
    window = config.get("sliding_window") or 0
    max_len = min(config.get("max_position_embeddings") or 2048, 2048)
    # transformers 4 spells it rope_scaling, 5 rope_parameters (nested per layer type for Gemma-3);
    # either, or config.json itself (Phi-3), may hold the original context of scaled rope.
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    ropes = [r for r in rope.values() if isinstance(r, dict)] or [rope]
    lengths = [2, 7, 33, 130]
    if window and window + 17 <= max_len:
        lengths.append(window + 17)  # crosses the sliding window
    original = max([r.get("original_max_position_embeddings") or 0 for r in ropes] +
                   [config.get("original_max_position_embeddings") or 0])
    if original and original + 23 <= max_len:
        lengths.append(original + 23)  # crosses the original context of scaled rope
    if any(r.get("rope_type", r.get("type")) == "dynamic" for r in ropes):
        lengths.append(max_len + 23)  # dynamic NTK grows its base past max_position_embeddings
        max_len += 23
    # Ascending: transformers' dynamic rope keeps the table of the longest sequence seen so far.
    lengths.sort()
    seqs = [[rng.randrange(vocab) for _ in range(n)] for n in lengths if n <= max_len]
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(model_dir)
        for text in ["The quick brown fox jumps over the lazy dog.",
                     "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"]:
            ids = tok(text)["input_ids"]
            if 2 <= len(ids) <= max_len and max(ids) < vocab:
                seqs.append(ids)
    except Exception as e:  # a checkpoint without tokenizer files still compares on random ids
        print("note: no tokenizer (%s); random ids only" % type(e).__name__, file=sys.stderr)
    return seqs


def hf_logprobs(model_dir, seqs, dtype, device):
    import transformers
    from transformers import AutoModelForCausalLM

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    dtype_kw = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
    # Eager attention: the reference math (Gemma-2 needs it for its attention softcapping).
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager", **{dtype_kw: dtype})
    return model_logprobs(model.to(device).eval(), seqs, device)


def model_logprobs(model, seqs, device):
    """log p(ids[t+1] | ids[..t]) of a loaded model (transformers, or peft around one), one sequence at a time."""
    out = []
    with torch.no_grad():
        for ids in seqs:
            x = torch.tensor([ids], device=device)
            logits = model(input_ids=x, attention_mask=torch.ones_like(x)).logits.float()  # [1, T, V]
            lsm = torch.log_softmax(logits[0, :-1], dim=-1)                                 # [T-1, V]
            out.append(lsm.gather(1, x[0, 1:, None])[:, 0].cpu().tolist())
    return out


def treg_logprobs(treg, model_dir, seqs, dtype, device, workdir):
    inp, outp = os.path.join(workdir, "in.jsonl"), os.path.join(workdir, "out.jsonl")
    with open(inp, "w") as f:
        for ids in seqs:
            f.write(json.dumps({"ids": ids}) + "\n")
    subprocess.run([treg, "logprobs", "--model", model_dir, "--input", inp, "--out", outp, "--device", device,
                    "--dtype", dtype, "--batch-size", "4"], check=True)
    with open(outp) as f:
        return [json.loads(line)["logprobs"] for line in f if line.strip()]


def compare(checkpoint, args):
    tol = args.tol if args.tol is not None else (1e-4 if args.dtype == "float32" else 0.1)
    with open(os.path.join(checkpoint, "config.json")) as f:
        config = json.load(f)
    seqs = sequences(checkpoint, config, args.seed)
    ref = hf_logprobs(checkpoint, seqs, getattr(torch, args.dtype), args.device)
    with tempfile.TemporaryDirectory() as tmp:
        got = treg_logprobs(args.treg, checkpoint, seqs, args.dtype, args.device, tmp)
    worst = 0.0
    for i, (ids, a, b) in enumerate(zip(seqs, got, ref)):
        if len(a) != len(b):
            print("sequence %d: treg gave %d log-probs, transformers %d" % (i, len(a), len(b)))
            return False
        diff = max((abs(x - y) for x, y in zip(a, b)), default=0.0)
        mean_ref = sum(b) / max(len(b), 1)
        print("sequence %d: %4d tokens  max|treg - hf| = %.3e  (mean logprob %.3f)" % (i, len(ids), diff, mean_ref))
        worst = max(worst, diff)
    print("%s %s on %s: worst max abs diff %.3e (tolerance %.1e) -> %s" % (
        config.get("model_type"), args.dtype, args.device, worst, tol, "OK" if worst <= tol else "MISMATCH"))
    return worst <= tol


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint", nargs="+", help="one or more checkpoint directories (one python start for all)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--treg", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "treg"))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tol", type=float, default=None, help="max abs diff allowed (default 1e-4 fp32, 0.1 bf16)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    ok = True
    for checkpoint in args.checkpoint:
        print("==", checkpoint)
        ok = compare(checkpoint, args) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
