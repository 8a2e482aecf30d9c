// AdamW as torch::optim::AdamW computes it, stepped by LibTorch's fused kernel where it has one
// (_fused_adamw_: LibTorch >= 2.4, CPU and CUDA). The C++ AdamW runs about nine separate ops per
// parameter; the fused kernel reads and writes each element once, as PyTorch's own
// `AdamW(fused=True)` (HF's `optim: adamw_torch_fused`). The state (step, exp_avg, exp_avg_sq) is the
// base class's, so checkpoints, optimizer shards and resume do not change; on LibTorch 1.13 step()
// is the base class's.
#pragma once
#include <torch/torch.h>

#include <vector>

namespace treg {

class FusedAdamW : public torch::optim::AdamW {
 public:
  FusedAdamW(std::vector<torch::optim::OptimizerParamGroup> groups,
             torch::optim::AdamWOptions defaults);
  FusedAdamW(std::vector<torch::Tensor> params, torch::optim::AdamWOptions defaults);
  torch::Tensor step(LossClosure closure = nullptr) override;
  // Whether this LibTorch has the fused kernel (otherwise step() is torch::optim::AdamW::step()).
  static bool available();
};

}  // namespace treg
