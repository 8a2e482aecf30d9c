// What one GPU holds while `treg train` runs, part by part, worked out from config.json and the
// training config before any GPU time is spent (`treg plan`).
//
// Parameter, gradient and optimiser bytes are exact counts (parameter_counts equals the numel of
// the model treg builds). Activations are an estimate from what autograd saves in treg's decoder,
// op by op (memory_plan.cpp lists them); tests check it against the bytes a CPU forward really
// keeps. Every sequence is taken at max_length: a worst case, not a typical batch.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "treg/config.h"
#include "treg/model.h"

namespace treg {

struct ParameterCounts {
  int64_t total = 0;
  int64_t embedding = 0;    // model.embed_tokens
  int64_t lm_head = 0;      // 0 when tied to the embedding
  int64_t per_layer = 0;    // one decoder layer (all layers are the same size)
  int64_t projections = 0;  // the linear projections' weights of one layer (part of per_layer)
  int64_t largest = 0;      // the largest single tensor (its gradient materialises whole)
};
ParameterCounts parameter_counts(const ModelArgs& args);

// Trainable parameters of LoRA adapters of rank `r` on the named projections of every layer:
// r * (in + out) each. Names are the HF module names (q_proj, ..., down_proj; qkv_proj and
// gate_up_proj for Phi-3) or "all-linear" (PEFT's shorthand: every projection, not lm_head); an
// unknown name is an error naming the nearest.
int64_t lora_parameter_count(const ModelArgs& args, int64_t r,
                             const std::vector<std::string>& target_modules);

// How the run is spread and stored.
struct PlanSetup {
  int64_t world_size = 1;
  double gpu_memory_gib = 80;
  // 0: every rank holds everything (fp32 weights, grads and AdamW moments; bf16 forwards under
  //    autocast). 1: the moments sharded (ZeRO-1). 2: the gradients too (ZeRO-2); both as `treg
  //    train` builds them (zero.h). 3 (planned, not built): bf16 weights sharded too, fp32 master
  //    weights + moments sharded (ZeRO-3).
  int zero_stage = 0;
  int64_t lora_r = 0;  // > 0: frozen base weights (bf16 with bf16: true) + LoRA adapters
  std::vector<std::string> lora_target_modules = {"all-linear"};
  std::string device = "cuda";  // cuda: fused attention unless softcapped; cpu: blocked reference
};

struct PlanPart {
  std::string name;
  double bytes = 0;
  std::string how;  // the arithmetic, e.g. "2 B x 8.03B / 8"
};

struct MemoryPlan {
  ParameterCounts params;
  int64_t trainable = 0;          // parameters that get gradients (adapters only under LoRA)
  int64_t tokens = 0;             // tokens of one micro-batch (2 x batch x max_length)
  std::vector<PlanPart> parts;    // per GPU; activations with the config's gradient_checkpointing
  double activations_checkpointed = 0;  // both settings, whichever the config chose
  double activations_full = 0;
  double total = 0;               // sum of parts
  double capacity = 0;            // gpu_memory_gib in bytes
  bool fits = false;
};

// Bytes autograd keeps per token for the backward of the whole decoder (no checkpointing, final
// norm included), for `batch_rows` rows of `row_tokens`.
// `autocast`: bf16 linears with an fp32 residual stream; else everything in fp32. Without
// `fused_attention` the reference attention keeps its softmax, in query blocks that read only the
// keys up to their own last one on the `cpu`, all keys on CUDA.
double activation_bytes_per_token(const ModelArgs& args, bool autocast, bool fused_attention,
                                  bool cpu, int64_t batch_rows, int64_t row_tokens);

// The same with gradient checkpointing, after the forward (the backward then recomputes one layer
// at a time on top of it).
double checkpointed_bytes_per_token(const ModelArgs& args, int64_t row_tokens);

MemoryPlan plan_memory(const ModelArgs& args, const Config& config, const PlanSetup& setup);

// The table `treg plan` prints: one line per part in GiB with its arithmetic, the total and the
// verdict, and what would make it fit when it does not.
std::string format_plan(const MemoryPlan& plan, const ModelArgs& args, const Config& config,
                        const PlanSetup& setup);

}  // namespace treg
