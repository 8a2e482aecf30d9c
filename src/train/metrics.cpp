// Metric accumulation with TRL's metric names (means over pairs).
#include "treg/train_parts.h"

namespace treg {

void MetricAccumulator::add_pairs(const LossOutput& out) {
  auto sum = [&](const std::string& name, const torch::Tensor& per_pair) {
    torch::Tensor s = per_pair.detach().to(torch::kFloat64).sum();
    torch::Tensor& total = sums_[name];
    total = total.defined() ? total + s : s;
  };
  sum("loss", out.losses);
  sum("rewards/chosen", out.chosen_rewards);
  sum("rewards/rejected", out.rejected_rewards);
  sum("rewards/accuracies", (out.chosen_rewards > out.rejected_rewards).to(torch::kFloat64));
  sum("rewards/margins", out.chosen_rewards - out.rejected_rewards);
  sum("logps/chosen", out.chosen_logps);
  sum("logps/rejected", out.rejected_logps);
  sum("pref_loss", out.pref_losses);
  sum("treg/reg_loss", out.reg_losses);
  sum("treg/weight", out.treg_weights);
  sum("wpo/weight", out.policy_weights);
  sum("sft_loss", out.sft_losses);
  pairs_ += out.losses.size(0);
}

void MetricAccumulator::add_logits(const LogitStats& s) {
  // A micro-batch's mean is over its tokens, so long responses weigh more within it (TRL's
  // logits[mask].mean()); micro-batches then weigh equally (TRL averages the logged values).
  auto add = [&](const std::string& name, const torch::Tensor& sum, double count) {
    torch::Tensor mean = count > 0 ? sum.to(torch::kFloat64) / count : torch::zeros({}, torch::kFloat64);
    torch::Tensor& total = batch_mean_sums_[name];
    total = total.defined() ? total + mean.to(total.device()) : mean;
  };
  add("logits/chosen", s.chosen_sum, s.chosen_count);
  add("logits/rejected", s.rejected_sum, s.rejected_count);
  ++logit_batches_;
}

std::map<std::string, double> MetricAccumulator::means() const {
  std::map<std::string, double> m;
  if (pairs_ == 0) return m;
  for (const auto& [k, v] : sums_) m[k] = v.item<double>() / static_cast<double>(pairs_);
  for (const auto& [k, v] : batch_mean_sums_)
    m[k] = v.item<double>() / static_cast<double>(logit_batches_);
  return m;
}

}  // namespace treg
