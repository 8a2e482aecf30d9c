#!/usr/bin/env python3
"""Writes a tiny random checkpoint with transformers' own save_pretrained, the way a user's
checkpoint looks (transformers 5 writes `rope_parameters` and `dtype`, not `rope_scaling` /
`torch_dtype`). Independent of treg's make-tiny: shapes, init and file layout are transformers'.

Usage: make_hf_tiny.py ARCH OUT_DIR    ARCH: llama | llama3.2 | mistral | qwen2 | gemma2
"""
import sys

import torch
import transformers as tf

ARCH, OUT = sys.argv[1], sys.argv[2]
common = dict(vocab_size=512, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=512,
              bos_token_id=1, eos_token_id=2, pad_token_id=0)
if ARCH == "llama":
    cfg = tf.LlamaConfig(**common, rope_theta=500000.0, tie_word_embeddings=False)
elif ARCH == "llama3.2":
    # Tied embeddings and llama3 rope scaling with a short original context, so sequences cross it.
    cfg = tf.LlamaConfig(**common, tie_word_embeddings=True,
                         rope_scaling={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                       "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                       "original_max_position_embeddings": 48})
elif ARCH == "mistral":
    cfg = tf.MistralConfig(**common, sliding_window=24, tie_word_embeddings=False)
elif ARCH == "qwen2":
    cfg = tf.Qwen2Config(**common, tie_word_embeddings=True)
elif ARCH == "gemma2":
    cfg = tf.Gemma2Config(**{**common, "num_hidden_layers": 4}, sliding_window=24, query_pre_attn_scalar=24,
                          attn_logit_softcapping=30.0, final_logit_softcapping=10.0)
else:
    sys.exit("unknown arch " + ARCH)

torch.manual_seed(1234)
model = tf.AutoModelForCausalLM.from_config(cfg)
# Random init has tiny weights; a wider spread makes the log-probs far from uniform, so a wrong
# mask, rope or norm shows up as a large difference.
with torch.no_grad():
    for name, p in model.named_parameters():
        if "norm" not in name:
            p.normal_(0.0, 0.08)
        else:
            p.uniform_(-0.3, 0.3) if ARCH == "gemma2" else p.uniform_(0.7, 1.3)
model.save_pretrained(OUT)
print("wrote", OUT, type(model).__name__)
