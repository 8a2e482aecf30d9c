// The trainer's AdamW (adamw.h): the fused kernel where LibTorch has it, the C++ AdamW otherwise.
// Either way it must compute AdamW (Loshchilov & Hutter, decoupled decay, bias-corrected) as
// written out here in double precision, and keep the state where checkpoints read it.
#include <gtest/gtest.h>

#include <cmath>

#include "treg/adamw.h"
#include "treg/optimizer_shards.h"

namespace treg {
namespace {

struct Reference {  // one tensor's AdamW in double, by the formula
  torch::Tensor p, m, v;
  int64_t step = 0;
  void update(const torch::Tensor& g, double lr, double b1, double b2, double eps, double wd) {
    ++step;
    p = p * (1 - lr * wd);
    m = b1 * m + (1 - b1) * g;
    v = b2 * v + (1 - b2) * g * g;
    const double c1 = 1 - std::pow(b1, step), c2 = 1 - std::pow(b2, step);
    p = p - lr / c1 * m / (v.sqrt() / std::sqrt(c2) + eps);
  }
};

torch::optim::AdamWParamState& state_of(torch::optim::AdamW& o, const torch::Tensor& t) {
  auto& st = o.state();
  return static_cast<torch::optim::AdamWParamState&>(*st.at(optimizer_state_key(st, t)));
}

// Two groups as the trainer makes them (decayed, not decayed); the third tensor gets no gradient at
// step 2, so the tensors' step counts differ; the learning rate changes between steps.
TEST(FusedAdamW, ComputesAdamWByTheFormulaAndKeepsTheBaseClassState) {
  torch::manual_seed(3);
  const double b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
  std::vector<torch::Tensor> params;
  std::vector<Reference> ref;
  for (auto shape : {std::vector<int64_t>{64, 33}, std::vector<int64_t>{7}, std::vector<int64_t>{3, 5}}) {
    params.push_back(torch::randn(shape).requires_grad_());
    ref.push_back({params.back().detach().to(torch::kFloat64), torch::zeros(shape, torch::kFloat64),
                   torch::zeros(shape, torch::kFloat64)});
  }
  auto options = [&](double decay) {
    auto o = std::make_unique<torch::optim::AdamWOptions>(1e-2);
    o->betas({b1, b2}).eps(eps).weight_decay(decay);
    return o;
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<torch::Tensor>{params[0], params[2]}, options(wd));
  groups.emplace_back(std::vector<torch::Tensor>{params[1]}, options(0.0));
  FusedAdamW adamw(groups, torch::optim::AdamWOptions(1e-2));
  for (int step = 1; step <= 4; ++step) {
    const double lr = 1e-2 / step;
    for (auto& g : adamw.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
    for (size_t t = 0; t < params.size(); ++t) {
      if (t == 2 && step == 2) {
        params[t].mutable_grad() = torch::Tensor();
        continue;
      }
      params[t].mutable_grad() = torch::randn_like(params[t]);
      ref[t].update(params[t].grad().to(torch::kFloat64), lr, b1, b2, eps, t == 1 ? 0.0 : wd);
    }
    adamw.step();
  }
  for (size_t t = 0; t < params.size(); ++t) {
    auto& s = state_of(adamw, params[t]);
    EXPECT_EQ(s.step(), ref[t].step) << "tensor " << t;
    EXPECT_LT((params[t].detach().to(torch::kFloat64) - ref[t].p).abs().max().item<double>(), 1e-6) << "tensor " << t;
    EXPECT_LT((s.exp_avg().to(torch::kFloat64) - ref[t].m).abs().max().item<double>(), 1e-6) << "tensor " << t;
    EXPECT_LT((s.exp_avg_sq().to(torch::kFloat64) - ref[t].v).abs().max().item<double>(), 1e-6) << "tensor " << t;
  }
  EXPECT_EQ(ref[2].step, 3);  // the skipped step is not counted
}

// Where the fused kernel runs, it agrees with LibTorch's own C++ AdamW to float rounding.
TEST(FusedAdamW, TheFusedKernelMatchesTorchAdamW) {
  if (!FusedAdamW::available()) GTEST_SKIP() << "this LibTorch has no fused AdamW kernel: step() is torch::optim::AdamW's";
  torch::manual_seed(4);
  torch::Tensor a = torch::randn({256, 40}).requires_grad_(), b = a.detach().clone().requires_grad_();
  auto o = torch::optim::AdamWOptions(3e-3).weight_decay(0.05);
  FusedAdamW fused({torch::optim::OptimizerParamGroup({a})}, o);
  torch::optim::AdamW plain({torch::optim::OptimizerParamGroup({b})}, o);
  for (int step = 0; step < 5; ++step) {
    a.mutable_grad() = torch::randn_like(a);
    b.mutable_grad() = a.grad().clone();
    fused.step();
    plain.step();
  }
  EXPECT_LT((a - b).abs().max().item<double>(), 1e-6);
}

}  // namespace
}  // namespace treg
