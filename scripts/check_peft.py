#!/usr/bin/env python3
"""Load the LoRA adapters of a `treg train use_peft=true` checkpoint with Hugging Face `peft` and
check them against treg's own merged export.

Needs torch + transformers + peft (not installable on Debian 12; the GPU machine has them). For a
few random token sequences, compares the per-token log-probs of
  1. transformers' base model + PeftModel.from_pretrained(checkpoint)   (peft applies B·A·s)
  2. transformers loading the checkpoint's merged/ export               (treg merged W + s·B·A)
  3. `treg logprobs` on merged/
and prints the max abs differences; exit status 1 when any exceeds --tol, or when the adapters are
still zero (then the comparison would not test them).

Usage: scripts/check_peft.py BASE_DIR CHECKPOINT_DIR [--treg build/treg] [--device cuda] [--tol 1e-4]
"""
import argparse
import json
import os
import random
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_hf import model_logprobs, treg_logprobs  # noqa: E402


def worst(a, b):
    return max(max(abs(x - y) for x, y in zip(p, q)) for p, q in zip(a, b))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("base")
    ap.add_argument("checkpoint")
    ap.add_argument("--treg", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "treg"))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    import peft
    import transformers
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    kw = {"dtype" if (major, minor) >= (4, 56) else "torch_dtype": torch.float32, "attn_implementation": "eager"}
    with open(os.path.join(a.checkpoint, "adapter_config.json")) as f:
        cfg = json.load(f)
    print("adapter_config.json: r %s alpha %s targets %s peft_type %s" % (
        cfg.get("r"), cfg.get("lora_alpha"), cfg.get("target_modules"), cfg.get("peft_type")))
    vocab = json.load(open(os.path.join(a.base, "config.json")))["vocab_size"]
    rng = random.Random(0)
    seqs = [[rng.randrange(vocab) for _ in range(n)] for n in (5, 33, 130)]

    base = AutoModelForCausalLM.from_pretrained(a.base, **kw).to(a.device).eval()
    plain = model_logprobs(base, seqs, a.device)
    model = PeftModel.from_pretrained(base, a.checkpoint).to(a.device).eval()
    with_adapters = model_logprobs(model, seqs, a.device)
    merged = AutoModelForCausalLM.from_pretrained(os.path.join(a.checkpoint, "merged"), **kw).to(a.device).eval()
    hf_merged = model_logprobs(merged, seqs, a.device)
    with tempfile.TemporaryDirectory() as tmp:
        treg_merged = treg_logprobs(a.treg, os.path.join(a.checkpoint, "merged"), seqs, "float32", a.device, tmp)

    moved = worst(plain, with_adapters)
    d_hf, d_treg = worst(with_adapters, hf_merged), worst(with_adapters, treg_merged)
    print("peft %s, transformers %s, torch %s on %s" % (peft.__version__, transformers.__version__, torch.__version__, a.device))
    print("base vs base+adapters (peft): max|diff| %.3e (the adapters change the model)" % moved)
    print("peft base+adapters vs transformers on merged/: max|diff| %.3e" % d_hf)
    print("peft base+adapters vs treg logprobs on merged/: max|diff| %.3e" % d_treg)
    ok = moved > 10 * a.tol and d_hf <= a.tol and d_treg <= a.tol
    print("PEFT check:", "OK" if ok else "FAILED", "(tolerance %.1e)" % a.tol)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
