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
  // [B, T-1] fp64, no gradient: 1 where ids[:, t+1] is the argmax of the logits (TRL's
  // mean_token_accuracy), 0 elsewhere and where not computed.
  torch::Tensor argmax_hits;
};

// Differentiable log-probs as next_token_logprobs; the logit sums cost one reduction per chunk.
PolicyTokenOutputs next_token_logprobs_and_logit_sums(CausalLM& model, const torch::Tensor& ids,
                                                      const torch::Tensor& mask,
                                                      bool with_sq_mass = false,
                                                      int64_t chunk_tokens = 1024);

// The same from final hidden states [B, T, D] of any forward (packed rows included), computed
// only where targets[:, t+1] == 1 (e.g. the completion tokens of SFT).
PolicyTokenOutputs policy_token_outputs(CausalLM& model, const torch::Tensor& hidden,
                                        const torch::Tensor& ids, const torch::Tensor& targets,
                                        int64_t chunk_tokens = 1024);

// The same at chosen positions of a forward's hidden [B, T, D]: token targets[n] as predicted by
// the hidden state at flat index from[n] (= b * T + t), e.g. a packed branch's first token from its
// parent's last column. from, targets [N] int64 -> outputs [N] (log_sq_mass / logit_sums /
// argmax_hits only when asked). Only these N positions reach the LM head.
PolicyTokenOutputs selected_token_outputs(CausalLM& model, const torch::Tensor& hidden,
                                          const torch::Tensor& from, const torch::Tensor& targets,
                                          bool with_sq_mass, bool with_logit_sums,
                                          int64_t chunk_tokens = 1024);

}  // namespace treg
