// Preference losses and the T-REG token regulariser, as pure functions on tensors.
//
// Notation (B pairs, L response tokens, right padded; `mask` is 1 on response tokens, 0 on padding):
//   logπ(y)     = Σ_t log π_θ(y_t | x, y_<t)       summed policy log-prob of a response
//   logπref(y)  = Σ_t log π_ref(y_t | x, y_<t)     the same under the reference (from the reward dump)
//   avg(y)      = logπ(y) / |y|                    length-averaged policy log-prob
//   r̂_t                                           token reward of the dump, in [-0.5, 0.5] (paper Eq. 3)
//
// Choices that the papers leave open are stated where they are made and collected here:
//  * ipo follows TRL: policy AND reference log-probs are length-averaged before the loss (TRL's
//    concatenated_forward divides all_logps by the completion length when loss_type == "ipo"), so its
//    rewards are β·(avg(y) - avgref(y)).
//  * The T-REG sequence weight w is, for every DPO-family loss (sigmoid, ipo, hinge, robust), the one of
//    the paper: w = σ(r(y_l) - r(y_w)) with r(y) = β·(logπ(y) - logπref(y)) (length-averaged for ipo,
//    as its rewards are). It is the gradient weight of the sigmoid loss; the own gradient weights of ipo
//    (unbounded, 2|z - 1/2β|) and hinge (a 0/1 step) would let the regulariser dominate or vanish, which
//    is what the weight is meant to prevent. For simpo it is the SimPO gradient weight (paper footnote 6):
//    w = σ(β·γ/β - β·(avg(y_w) - avg(y_l))).
//  * sft_alpha adds α_sft · NLL(y_w) with the NLL length-normalised per sequence (-avg(y_w)), like
//    SimPO's sft_weight and TRL's rpo_alpha (token means), but per pair so that micro-batch ×
//    accumulation stays exactly equivalent to one large batch.
//  * use_weighting (WPO) multiplies each pair's whole objective (preference + T-REG + SFT terms) by
//    w_pair = min(1, exp(mean_t(logπ(y_w,t) - log Σ_v π(v|ctx)²) + mean_t(same for y_l))), detached — TRL
//    multiplies the per-pair loss (including its rpo NLL term) by the same weight.
//  * The batch loss is the mean over pairs of the per-pair objective.
#pragma once
#include <torch/torch.h>

#include <string>

namespace treg {

struct Config;

enum class LossType { kSigmoid, kIpo, kHinge, kRobust, kSimpo };
// "sigmoid" | "ipo" | "hinge" | "robust" | "simpo"; anything else is an error listing them.
LossType loss_type_from_name(const std::string& name);
std::string loss_type_name(LossType type);

struct LossConfig {
  LossType type = LossType::kSigmoid;
  double beta = 0.1;
  double label_smoothing = 0.0;   // sigmoid (cDPO) and robust
  double gamma_beta_ratio = 0.5;  // simpo: target margin γ/β
  double treg_alpha = 0.0;        // α of Eq. 2; 0 = plain preference optimisation
  bool treg_static_weight = false;  // Table 2 "static weighting": w = 1
  double sft_alpha = 0.0;         // Table 2 "DPO-SFT on y_w"
  bool use_weighting = false;     // WPO

  static LossConfig from_config(const Config& config);
};

// One side (chosen or rejected) of a batch, token arrays aligned with the response tokens.
struct ResponseTokens {
  torch::Tensor logps;        // [B, L] policy log π_θ(y_t|x,y<t), differentiable; any value at padding
  torch::Tensor ref_logps;    // [B, L] reference log-probs (dump); unused by simpo
  torch::Tensor rewards;      // [B, L] token rewards r̂_t (dump); needed when treg_alpha > 0
  torch::Tensor mask;         // [B, L] 1 = response token, 0 = padding (float or bool)
  torch::Tensor log_sq_mass;  // [B, L] log Σ_v π(v|ctx)²; needed when use_weighting
};

struct LossOutput {
  torch::Tensor loss;  // scalar: mean over pairs of the per-pair objective (differentiable)
  // Per pair [B], detached, for metrics:
  torch::Tensor losses;           // the per-pair objective whose mean is `loss`
  torch::Tensor pref_losses;      // preference loss alone
  torch::Tensor reg_losses;       // L_reg(y_w) + L_reg(y_l) (before α and w)
  torch::Tensor treg_weights;     // w (1 when static)
  torch::Tensor policy_weights;   // WPO weight (1 when off)
  torch::Tensor sft_losses;       // NLL(y_w) length-normalised (0 when sft_alpha = 0)
  torch::Tensor chosen_rewards;   // β·(logπ - logπref) (ipo: averaged), simpo: β·avg(y)
  torch::Tensor rejected_rewards;
  torch::Tensor chosen_logps;     // the policy log-prob the loss used: sum (ipo, simpo: average)
  torch::Tensor rejected_logps;
};

// ---- the pieces, each a formula ----

// Σ_t logps[b,t]·mask[b,t] -> [B]
torch::Tensor masked_sum(const torch::Tensor& values, const torch::Tensor& mask);
// masked_sum / Σ_t mask -> [B]
torch::Tensor masked_mean(const torch::Tensor& values, const torch::Tensor& mask);

// DPO-family per-pair losses [B] from (already summed or averaged) log-probs [B], z = (πw - πl) - (rw - rl):
//   sigmoid: -(1-ε)·log σ(βz) - ε·log σ(-βz)                      (DPO; ε > 0 is cDPO)
//   robust:  (-(1-ε)·log σ(βz) + ε·log σ(-βz)) / (1 - 2ε)          (rDPO)
//   hinge:   max(0, 1 - βz)                                        (SLiC / RSO)
//   ipo:     (z - 1/(2β))²                                         (IPO Eq. 17, β = τ)
torch::Tensor dpo_family_losses(LossType type, double beta, double label_smoothing,
                                const torch::Tensor& policy_chosen, const torch::Tensor& policy_rejected,
                                const torch::Tensor& ref_chosen, const torch::Tensor& ref_rejected);

// SimPO per-pair losses [B] from length-averaged log-probs, z = avg_w - avg_l - γ/β:
//   -(1-ε)·log σ(βz) - ε·log σ(-βz)
torch::Tensor simpo_losses(double beta, double gamma_beta_ratio, double label_smoothing,
                           const torch::Tensor& avg_chosen, const torch::Tensor& avg_rejected);

// T-REG regulariser (paper Eq. 1) per response [B]:
//   L_reg(y) = -β · Σ_t r̂_t · log π(y_t|x,y<t)            (length_normalise = false; DPO family)
//   L_reg(y) = -(β/|y|) · Σ_t r̂_t · log π(y_t|x,y<t)      (length_normalise = true; SimPO)
torch::Tensor token_regularizer(const torch::Tensor& logps, const torch::Tensor& rewards,
                                const torch::Tensor& mask, double beta, bool length_normalise);

// WPO pair weight [B], detached: min(1, exp(mean_t(logp - log_sq_mass)_w + mean_t(...)_l)).
torch::Tensor wpo_weights(const ResponseTokens& chosen, const ResponseTokens& rejected);

// The whole objective: L = mean_pairs[ w_pair · (L_pref + α·w·(L_reg(y_w) + L_reg(y_l)) + α_sft·NLL(y_w)) ].
LossOutput preference_loss(const LossConfig& config, const ResponseTokens& chosen,
                           const ResponseTokens& rejected);

}  // namespace treg
