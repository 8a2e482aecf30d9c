#!/usr/bin/python3
"""The training step of bench_train_step.cpp done the way TRL's DPOTrainer does it, on Hugging Face
transformers + torch 2.x (the Debian sid root of scripts/test_sid.sh; bench/hf_peer.sh runs it there):
LlamaForCausalLM with SDPA attention, prompt + chosen and prompt + rejected concatenated into one
right-padded batch, logits for every position, TRL's selective_log_softmax (gather - logsumexp),
precomputed reference log-probs, DPO + T-REG loss, backward, clip, AdamW. Prints seconds per step.
--device cuda --bf16: fp32 weights with a bf16 autocast forward (accelerate's bf16 mixed precision),
and TRL's selective_log_softmax for bf16 logits (a log_softmax per row, to bound the memory)."""
import argparse, os, sys
import torch, torch.nn.functional as F, transformers
from transformers import LlamaConfig, LlamaForCausalLM
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_step import SHAPES, batches, run

def selective_log_softmax(logits, index):  # trl.trainer.utils
    if logits.dtype in (torch.float32, torch.float64):
        return torch.gather(logits, -1, index.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, -1)
    rows = []  # bf16/fp16: logsumexp is not stable there, so TRL takes a log_softmax row by row
    for row_logits, row_labels in zip(logits, index):
        row_logps = F.log_softmax(row_logits, dim=-1)
        rows.append(row_logps.gather(dim=-1, index=row_labels.unsqueeze(-1)).squeeze(-1))
    return torch.stack(rows)

def logps(m, b):  # DPOTrainer.concatenated_forward: logits of every position, then the labels' log-probs
    logits = m(input_ids=b["ids"], attention_mask=b["mask"]).logits[:, :-1]
    return selective_log_softmax(logits, b["ids"][:, 1:])

def autocast_logps(m, b):
    with torch.autocast("cuda", dtype=torch.bfloat16):
        return logps(m, b)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="tiny"); ap.add_argument("--lengths", required=True)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu"); ap.add_argument("--bf16", action="store_true")
    a = ap.parse_args(); torch.manual_seed(0)
    if a.threads > 0: torch.set_num_threads(a.threads)
    s = SHAPES[a.model]
    cfg = LlamaConfig(vocab_size=s["V"], hidden_size=s["D"], intermediate_size=s["F"], num_hidden_layers=s["L"],
                      num_attention_heads=s["H"], num_key_value_heads=s["K"], max_position_embeddings=4096,
                      rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)
    cfg._attn_implementation = "sdpa"
    m = LlamaForCausalLM(cfg).to(a.device).train()
    run(m, autocast_logps if a.bf16 else logps, batches(a.lengths, s["V"], a.device),
        f"{a.model:5s} HF transformers {transformers.__version__} torch {torch.__version__} (sdpa{', bf16 autocast' if a.bf16 else ''})")

if __name__ == "__main__":
    main()
