// The policy's token log-probs as the trainer needs them: next_token_logprobs (model.h) plus, from
// the same chunked pass, each position's sum of logits over the vocabulary -- what TRL's
// logits/chosen and logits/rejected average -- so no [B, T, V] tensor is ever built for a metric.
#pragma once
#include "treg/model.h"

namespace treg {

struct PolicyTokenOutputs : TokenLogprobs {
  // [B, T-1] fp64, no gradient: Σ_v logits[:, t, v] (after the final softcap) at the position
  // predicting ids[:, t+1]; 0 where mask[:, t+1] == 0.
  torch::Tensor logit_sums;
};

// Differentiable log-probs as next_token_logprobs; the logit sums cost one reduction per chunk.
PolicyTokenOutputs next_token_logprobs_and_logit_sums(CausalLM& model, const torch::Tensor& ids,
                                                      const torch::Tensor& mask,
                                                      bool with_sq_mass = false,
                                                      int64_t chunk_tokens = 1024);

}  // namespace treg
