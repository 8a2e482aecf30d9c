// The policy's side of a preference batch: one forward over its rows (padded, or prefix-shared
// trees), then log-probs at the response tokens only, laid out [2B, L] like the dump's arrays.
#include "treg/policy_logprobs.h"
#include "treg/train_parts.h"

namespace treg {

ResponseOutputs response_outputs(CausalLM& policy, const PairBatch& batch, bool with_sq_mass,
                                 bool with_logit_sums) {
  // Everything about positions is decided on the CPU copies, so a CUDA step has no host sync here.
  const torch::Device device = policy->parameters().front().device();
  torch::Tensor hidden = batch.layout == PairLayout::kPrefixShared
                             ? policy->forward_packed(batch.ids, batch.segments, batch.parents)
                             : policy->forward(batch.ids, batch.mask);          // [rows, T, D]
  torch::Tensor cells = batch.response_mask.reshape({-1}).nonzero().squeeze(1);  // [N] (CPU)
  PolicyTokenOutputs sel = selected_token_outputs(
      policy, hidden, batch.response_from.reshape({-1}).index_select(0, cells),
      batch.response_ids.reshape({-1}).index_select(0, cells), with_sq_mass, with_logit_sums);
  cells = cells.to(device);
  torch::Tensor rmask = batch.response_mask;
  const auto shape = rmask.sizes();
  auto grid = [&](const torch::Tensor& v) {  // [N] -> [2B, L], 0 at padding
    return torch::zeros({rmask.numel()}, v.options()).index_copy(0, cells, v).view(shape);
  };
  ResponseOutputs out;
  out.logps = grid(sel.logps);
  if (with_sq_mass) out.log_sq_mass = grid(sel.log_sq_mass);
  if (with_logit_sums) out.logit_sums = grid(sel.logit_sums);
  return out;
}

}  // namespace treg
