// FusedAdamW (treg/adamw.h): the state the C++ AdamW keeps, updated by _fused_adamw_.
#include "treg/adamw.h"

#include <map>
#include <tuple>

#include <torch/version.h>

#include "treg/optimizer_shards.h"

#define TREG_HAS_FUSED_ADAMW \
  (TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4))

namespace treg {

FusedAdamW::FusedAdamW(std::vector<torch::optim::OptimizerParamGroup> groups,
                       torch::optim::AdamWOptions defaults)
    : torch::optim::AdamW(std::move(groups), std::move(defaults)) {}

FusedAdamW::FusedAdamW(std::vector<torch::Tensor> params, torch::optim::AdamWOptions defaults)
    : torch::optim::AdamW(std::move(params), std::move(defaults)) {}

bool FusedAdamW::available() { return TREG_HAS_FUSED_ADAMW; }

torch::Tensor FusedAdamW::step(LossClosure closure) {
#if TREG_HAS_FUSED_ADAMW
  for (auto& group : param_groups())  // treg never sets amsgrad; the base class has it
    if (static_cast<torch::optim::AdamWOptions&>(group.options()).amsgrad())
      return torch::optim::AdamW::step(closure);
  torch::NoGradGuard no_grad;
  torch::Tensor loss;
  if (closure) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  for (auto& group : param_groups()) {
    auto& o = static_cast<torch::optim::AdamWOptions&>(group.options());
    // One kernel call per (device, dtype, step count): the kernel takes one step tensor per
    // parameter, and parameters that missed an update (no gradient) count fewer steps.
    struct Call {
      std::vector<torch::Tensor> params, grads, exp_avgs, exp_avg_sqs;
    };
    std::map<std::tuple<std::string, int, int64_t>, Call> calls;
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      TORCH_CHECK(!p.grad().is_sparse(), "AdamW does not support sparse gradients");
      auto& states = state();
      const auto key = optimizer_state_key(states, p);
      auto it = states.find(key);
      if (it == states.end()) {  // as the base class initialises it
        auto s = std::make_unique<torch::optim::AdamWParamState>();
        s->step(0);
        s->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        s->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        it = states.emplace(key, std::move(s)).first;
      }
      auto& s = static_cast<torch::optim::AdamWParamState&>(*it->second);
      s.step(s.step() + 1);
      Call& c = calls[{p.device().str(), static_cast<int>(p.scalar_type()), s.step()}];
      // The kernel walks each tensor's memory in order: a strided gradient (a view into a
      // bucket, say) is copied; a parameter or moment is never strided (modules and zeros_like
      // make them dense).
      TORCH_CHECK(p.is_contiguous() && s.exp_avg().is_contiguous() && s.exp_avg_sq().is_contiguous(),
                  "FusedAdamW: a strided parameter or AdamW moment");
      c.params.push_back(p);
      c.grads.push_back(p.grad().contiguous());
      c.exp_avgs.push_back(s.exp_avg());
      c.exp_avg_sqs.push_back(s.exp_avg_sq());
    }
    for (auto& [key, c] : calls) {
      // The kernel reads the step (already counted, as torch.optim does before calling it) from
      // a float tensor on the parameters' device.
      const torch::Tensor step = torch::full({}, static_cast<double>(std::get<2>(key)),
                                             c.params[0].options().dtype(torch::kFloat32));
      const std::vector<torch::Tensor> steps(c.params.size(), step);
      at::_fused_adamw_(c.params, c.grads, c.exp_avgs, c.exp_avg_sqs, /*max_exp_avg_sqs=*/{}, steps,
                        o.lr(), std::get<0>(o.betas()), std::get<1>(o.betas()), o.weight_decay(),
                        o.eps(), /*amsgrad=*/false, /*maximize=*/false);
    }
  }
  return loss;
#else
  return torch::optim::AdamW::step(closure);
#endif
}

}  // namespace treg
