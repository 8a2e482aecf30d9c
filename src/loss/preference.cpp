// Sequence-level preference losses: the DPO family with TRL's loss_type names, and SimPO.
#include <cmath>

#include "treg/config.h"
#include "treg/error.h"
#include "treg/losses.h"

namespace treg {

namespace F = torch::nn::functional;

LossType loss_type_from_name(const std::string& name) {
  if (name == "sigmoid") return LossType::kSigmoid;
  if (name == "ipo") return LossType::kIpo;
  if (name == "hinge") return LossType::kHinge;
  if (name == "robust") return LossType::kRobust;
  if (name == "simpo") return LossType::kSimpo;
  fail("config key 'loss_type'", "'" + name + "' is not one of: sigmoid, ipo, hinge, robust, simpo");
}

std::string loss_type_name(LossType type) {
  switch (type) {
    case LossType::kSigmoid: return "sigmoid";
    case LossType::kIpo: return "ipo";
    case LossType::kHinge: return "hinge";
    case LossType::kRobust: return "robust";
    case LossType::kSimpo: return "simpo";
  }
  return "?";
}

LossConfig LossConfig::from_config(const Config& c) {
  LossConfig l;
  l.type = loss_type_from_name(c.loss_type);
  l.beta = c.beta;
  l.label_smoothing = c.label_smoothing;
  l.gamma_beta_ratio = c.gamma_beta_ratio;
  l.treg_alpha = c.treg_alpha;
  l.treg_static_weight = c.treg_weighting == "static";
  l.sft_alpha = c.sft_alpha;
  l.use_weighting = c.use_weighting;
  return l;
}

torch::Tensor masked_sum(const torch::Tensor& values, const torch::Tensor& mask) {
  // values, mask: [B, L] -> [B]
  return (values * mask.to(values.dtype())).sum(-1);
}

torch::Tensor masked_mean(const torch::Tensor& values, const torch::Tensor& mask) {
  auto m = mask.to(values.dtype());
  return (values * m).sum(-1) / m.sum(-1).clamp_min(1.0);
}

namespace {
// -(1-ε)·log σ(βz) - ε·log σ(-βz)
torch::Tensor smoothed_sigmoid_loss(const torch::Tensor& z, double beta, double eps) {
  auto bz = beta * z;
  return -(1.0 - eps) * F::logsigmoid(bz) - eps * F::logsigmoid(-bz);
}
}  // namespace

torch::Tensor dpo_family_losses(LossType type, double beta, double label_smoothing,
                                const torch::Tensor& policy_chosen, const torch::Tensor& policy_rejected,
                                const torch::Tensor& ref_chosen, const torch::Tensor& ref_rejected) {
  // z = (log π(y_w) - log π(y_l)) - (log π_ref(y_w) - log π_ref(y_l))   [B]
  auto z = (policy_chosen - policy_rejected) - (ref_chosen - ref_rejected);
  switch (type) {
    case LossType::kSigmoid:
      return smoothed_sigmoid_loss(z, beta, label_smoothing);
    case LossType::kRobust: {
      const double eps = label_smoothing;
      return (-(1.0 - eps) * F::logsigmoid(beta * z) + eps * F::logsigmoid(-beta * z)) / (1.0 - 2.0 * eps);
    }
    case LossType::kHinge:
      return torch::relu(1.0 - beta * z);
    case LossType::kIpo:
      return (z - 1.0 / (2.0 * beta)).pow(2);
    case LossType::kSimpo:
      break;
  }
  fail("dpo_family_losses", "loss_type simpo has no reference model; call simpo_losses");
}

torch::Tensor simpo_losses(double beta, double gamma_beta_ratio, double label_smoothing,
                           const torch::Tensor& avg_chosen, const torch::Tensor& avg_rejected) {
  // z = avg(y_w) - avg(y_l) - γ/β   [B]
  auto z = avg_chosen - avg_rejected - gamma_beta_ratio;
  return smoothed_sigmoid_loss(z, beta, label_smoothing);
}

}  // namespace treg
