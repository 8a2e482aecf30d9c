// ZeRO-1 (`zero_stage: 1`): the AdamW state is sharded over the ranks, as PyTorch's
// ZeroRedundancyOptimizer does it. Every rank still holds the weights and the all-reduced
// gradients; parameter tensors are dealt out whole, and a tensor's owner alone keeps its moments,
// updates it, and broadcasts the new values. Checkpoints keep one optimizer.pt with every state
// (gathered to rank 0), so a run resumes on any rank count, with or without sharding.
#pragma once
#include <torch/torch.h>

#include <vector>

#include "treg/distributed.h"

namespace treg {

// The owner of each tensor: largest first, each to the rank holding the fewest elements so far
// (ties: the lower rank). The same on every rank.
std::vector<int64_t> deal_parameters(const std::vector<torch::Tensor>& params, int64_t world);

// Forgets the AdamW state of the tensors `rank` does not own (after loading a whole optimizer.pt,
// and on rank 0 after a checkpoint).
void drop_foreign_state(torch::optim::AdamW& optimizer, const std::vector<torch::Tensor>& params,
                        const std::vector<int64_t>& owner, int64_t rank);

// Collective: the owners send their tensors' state to rank 0, whose optimizer then holds every
// state (to write one optimizer.pt). A tensor without state (no step yet) stays without.
void gather_state_to_main(torch::optim::AdamW& optimizer, const std::vector<torch::Tensor>& params,
                          const std::vector<int64_t>& owner, Ranks& ranks);

// Collective: one AdamW step of the owned tensors (the others' gradients are dropped, so AdamW
// skips them), then every tensor broadcast from its owner.
void sharded_step(torch::optim::AdamW& optimizer, const std::vector<torch::Tensor>& params,
                  const std::vector<int64_t>& owner, Ranks& ranks);

}  // namespace treg
