// The T-REG token regulariser (paper Eq. 1-2), the WPO pair weight and the combined objective.
#include "treg/error.h"
#include "treg/losses.h"

namespace treg {

torch::Tensor token_regularizer(const torch::Tensor& logps, const torch::Tensor& rewards,
                                const torch::Tensor& mask, double beta, bool length_normalise) {
  // -β · Σ_t r̂_t log π(y_t|..)  (÷ |y| for SimPO)   [B]
  auto weighted = rewards.to(logps.dtype()) * logps;
  auto s = length_normalise ? masked_mean(weighted, mask) : masked_sum(weighted, mask);
  return -beta * s;
}

torch::Tensor wpo_weights(const ResponseTokens& chosen, const ResponseTokens& rejected) {
  torch::NoGradGuard no_grad;
  TREG_CHECK(chosen.log_sq_mass.defined() && rejected.log_sq_mass.defined(), "wpo_weights",
             "use_weighting needs log Σ_v π(v|ctx)² per token (next_token_logprobs with_sq_mass=true)");
  // Eq. 2 of WPO, sampled-aligned: per token log π(y_t) - log Σ_v π(v)², averaged over the response.
  auto mw = masked_mean(chosen.logps.detach() - chosen.log_sq_mass.detach(), chosen.mask);
  auto ml = masked_mean(rejected.logps.detach() - rejected.log_sq_mass.detach(), rejected.mask);
  return torch::exp(mw + ml).clamp_max(1.0);
}

LossOutput preference_loss(const LossConfig& cfg, const ResponseTokens& chosen,
                           const ResponseTokens& rejected) {
  const double beta = cfg.beta;
  const bool simpo = cfg.type == LossType::kSimpo;
  const bool averaged = simpo || cfg.type == LossType::kIpo;
  LossOutput out;

  // Sequence log-probs the loss works on: sums, or length averages for simpo and (as TRL) ipo.  [B]
  auto seq = [&](const torch::Tensor& v, const torch::Tensor& m) {
    return averaged ? masked_mean(v, m) : masked_sum(v, m);
  };
  auto pw = seq(chosen.logps, chosen.mask);
  auto pl = seq(rejected.logps, rejected.mask);

  torch::Tensor pref, chosen_rewards, rejected_rewards, w;
  if (simpo) {
    pref = simpo_losses(beta, cfg.gamma_beta_ratio, cfg.label_smoothing, pw, pl);
    chosen_rewards = beta * pw.detach();
    rejected_rewards = beta * pl.detach();
    // SimPO's gradient weight: σ(β·γ/β - β·(avg_w - avg_l)).
    w = torch::sigmoid(beta * cfg.gamma_beta_ratio - (chosen_rewards - rejected_rewards));
  } else {
    auto rw = seq(chosen.ref_logps.to(pw.dtype()), chosen.mask);
    auto rl = seq(rejected.ref_logps.to(pl.dtype()), rejected.mask);
    pref = dpo_family_losses(cfg.type, beta, cfg.label_smoothing, pw, pl, rw, rl);
    chosen_rewards = beta * (pw.detach() - rw);
    rejected_rewards = beta * (pl.detach() - rl);
    // DPO's gradient weight σ(r(y_l) - r(y_w)), used for every DPO-family loss (see losses.h).
    w = torch::sigmoid(rejected_rewards - chosen_rewards);
  }
  if (cfg.treg_static_weight) w = torch::ones_like(w);

  auto per_pair = pref;
  torch::Tensor reg = torch::zeros_like(pref.detach());
  if (cfg.treg_alpha > 0) {
    TREG_CHECK(chosen.rewards.defined() && rejected.rewards.defined(), "preference_loss",
               "treg_alpha > 0 needs token rewards for both responses");
    auto reg_pair = token_regularizer(chosen.logps, chosen.rewards, chosen.mask, beta, simpo) +
                    token_regularizer(rejected.logps, rejected.rewards, rejected.mask, beta, simpo);
    per_pair = per_pair + cfg.treg_alpha * w.detach() * reg_pair;
    reg = reg_pair.detach();
  }
  torch::Tensor sft = torch::zeros_like(pref.detach());
  if (cfg.sft_alpha > 0) {
    auto nll = -masked_mean(chosen.logps, chosen.mask);  // length-normalised NLL(y_w)  [B]
    per_pair = per_pair + cfg.sft_alpha * nll;
    sft = nll.detach();
  }
  torch::Tensor policy_w = torch::ones_like(pref.detach());
  if (cfg.use_weighting) {
    policy_w = wpo_weights(chosen, rejected).to(pref.dtype());
    per_pair = per_pair * policy_w;
  }

  out.loss = per_pair.mean();
  out.losses = per_pair.detach();
  out.pref_losses = pref.detach();
  out.reg_losses = reg;
  out.treg_weights = w.detach();
  out.policy_weights = policy_w;
  out.sft_losses = sft;
  out.chosen_rewards = chosen_rewards.detach();
  out.rejected_rewards = rejected_rewards.detach();
  out.chosen_logps = pw.detach();
  out.rejected_logps = pl.detach();
  return out;
}

}  // namespace treg
