// bf16 mixed precision the way HF's Trainer (through accelerate) runs `bf16: true`: the weights and
// the optimizer state stay fp32, every forward runs under bf16 autocast (matmuls in bf16, the rest
// fp32), on CUDA and on CPU alike. score-tokens uses the same recipe for the reference log-probs, so
// at step 0 the policy reproduces them and every DPO reward is 0 (TRL runs policy and reference the
// same way); scoring with bf16 weights instead would offset every reward from the start.
#pragma once

#include <torch/torch.h>

namespace treg {

// Which device types bf16 autocast is on for: captured by gradient checkpointing at the forward and
// restored for the recomputation in the backward, so both compute the same function.
struct AutocastState {
  bool cuda = false;
  bool cpu = false;
};
AutocastState current_autocast();

// Turns bf16 autocast on for `device`'s type while in scope (nothing when `on` is false), or sets
// a captured state; the previous state comes back, and the cast-weight cache is freed, on exit.
class AutocastGuard {
 public:
  AutocastGuard(const torch::Device& device, bool on);
  explicit AutocastGuard(const AutocastState& state);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  AutocastState prev_;
  bool active_ = false;
};

}  // namespace treg
