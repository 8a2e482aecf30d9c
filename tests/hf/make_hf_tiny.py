#!/usr/bin/env python3
"""Writes a tiny random checkpoint with transformers' own save_pretrained, the way a user's
checkpoint looks (transformers 5 writes `rope_parameters` and `dtype`, not `rope_scaling` /
`torch_dtype`). Independent of treg's make-tiny: shapes, init and file layout are transformers'.

Usage: make_hf_tiny.py ARCH OUT_DIR
  ARCH: llama | llama3.2 | mistral | qwen2 | qwen3 | gemma2 | gemma3 | phi3
        | rope-linear | rope-dynamic | rope-yarn | rope-longrope   (Llama with that rope type)
Scaled ropes get a short original context (48) or max_position_embeddings (dynamic: 64), so
compare_hf.py's sequences cross it.
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
elif ARCH == "qwen3":
    cfg = tf.Qwen3Config(**common, tie_word_embeddings=False,
                         rope_scaling={"rope_type": "yarn", "rope_theta": 1000000.0, "factor": 4.0,
                                       "original_max_position_embeddings": 48})
elif ARCH == "gemma3":
    # 4 layers, every 2nd global: local layers rotate with base 10000, global ones with 1e6 and
    # linear scaling (Gemma-3 4B+).
    cfg = tf.Gemma3TextConfig(**{**common, "num_hidden_layers": 4}, sliding_window=24, query_pre_attn_scalar=24,
                              sliding_window_pattern=2,
                              rope_parameters={"full_attention": {"rope_type": "linear", "factor": 8.0,
                                                                  "rope_theta": 1000000.0},
                                               "sliding_attention": {"rope_type": "default",
                                                                     "rope_theta": 10000.0}})
elif ARCH == "phi3":
    # Phi-3.5 style longrope past a 48-token original context, partial rotary (Phi-4-mini: 0.75).
    half = int(16 * 0.75) // 2
    cfg = tf.Phi3Config(**{k: v for k, v in common.items() if k != "head_dim"}, sliding_window=40,
                        original_max_position_embeddings=48, tie_word_embeddings=False,
                        rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0,
                                         "partial_rotary_factor": 0.75,
                                         "short_factor": [1.0 + 0.1 * i for i in range(half)],
                                         "long_factor": [2.0 + 1.5 * i for i in range(half)]})
elif ARCH.startswith("rope-"):
    kind = ARCH[len("rope-"):]
    rope = {"rope_type": kind, "rope_theta": 10000.0}
    extra = {}
    if kind == "linear":
        rope["factor"] = 4.0
    elif kind == "dynamic":
        rope["factor"] = 2.0
        extra["max_position_embeddings"] = 64  # dynamic NTK grows its base past this
    elif kind == "yarn":
        rope.update(factor=8.0, original_max_position_embeddings=48, beta_fast=16.0, beta_slow=2.0)
    elif kind == "longrope":
        rope.update(original_max_position_embeddings=48, short_factor=[1.0 + 0.1 * i for i in range(8)],
                    long_factor=[2.0 + 1.0 * i for i in range(8)])
    else:
        sys.exit("unknown rope type " + kind)
    cfg = tf.LlamaConfig(**{**common, **extra}, tie_word_embeddings=False, rope_parameters=rope)
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
            p.uniform_(-0.3, 0.3) if ARCH.startswith("gemma") else p.uniform_(0.7, 1.3)
model.save_pretrained(OUT)
print("wrote", OUT, type(model).__name__, "with transformers", tf.__version__)
