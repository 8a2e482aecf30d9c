// The objective of `treg train`: preference pairs from a reward dump (token rewards r̂ and reference
// log-probs), chosen and rejected in ONE forward, L_pref + α·w·(L_reg(y_w) + L_reg(y_l)) (Eq. 1-2).
#include <spdlog/spdlog.h>

#include "treg/autocast.h"
#include "treg/token_html.h"
#include "treg/tokenizer.h"
#include "treg/trainer.h"

namespace treg {

namespace {

torch::Device device_of(CausalLM& policy) { return policy->parameters().front().device(); }

// Token texts through the model's tokenizer; "<id>" per token when the model directory has none.
std::vector<std::string> pieces_of(const Tokenizer* tok, const std::vector<int64_t>& ids) {
  if (tok) return token_pieces(*tok, ids);
  std::vector<std::string> out;
  for (int64_t id : ids) out.push_back(fmt::format("<{}>", id));
  return out;
}

}  // namespace

PreferenceObjective::PreferenceObjective(const Config& config, std::shared_ptr<PairSource> train,
                                         std::shared_ptr<PairSource> eval, TrainerHooks hooks)
    : config_(config),
      loss_(LossConfig::from_config(config)),
      train_(std::move(train)),
      eval_(std::move(eval)),
      hooks_(std::move(hooks)) {}

LossOutput PreferenceObjective::compute_loss(CausalLM& policy, const PairBatch& batch,
                                             LogitStats* logits) {
  // Chosen and rejected sequences in ONE forward.
  const torch::Device device = device_of(policy);
  ResponseOutputs out;
  {
    AutocastGuard autocast(device, config_.bf16);
    out = response_outputs(policy, batch, /*with_sq_mass=*/loss_.use_weighting,
                           /*with_logit_sums=*/logits != nullptr);  // [2B, L] each
  }
  if (logits) *logits = response_logit_stats(batch, out.logit_sums, policy->args().vocab_size);
  ResponseTokens chosen, rejected;  // [B, L] each
  gather_responses(batch, out, chosen, rejected);
  return preference_loss(loss_, chosen, rejected);
}

PairBatch PreferenceObjective::collate(std::vector<PairRecord> pairs, const std::string& where,
                                       const ModelArgs& args) const {
  const bool share = config_.packing && !args.rope_depends_on_length();
  return collate_pairs(std::move(pairs), where,
                       share ? PairLayout::kPrefixShared : PairLayout::kPadded);
}

MicroBatchLoss PreferenceObjective::micro_batch(CausalLM& policy,
                                                const std::vector<int64_t>& examples, int64_t step,
                                                double /*step_units*/, int64_t accumulation) {
  std::vector<PairRecord> recs;
  for (int64_t i : examples) recs.push_back(train_->get(i));
  PairBatch batch = collate(std::move(recs), train_->name(), policy->args());
  LogitStats logits;
  LossOutput out = compute_loss(policy, batch, &logits);
  if (hooks_.after_loss) hooks_.after_loss(step, out);
  acc_.add_pairs(out);
  acc_.add_logits(logits);
  // Every micro-batch holds the same number of pairs: the step's mean is the mean of their means.
  return {out.loss / static_cast<double>(accumulation), out.loss.detach(), batch.num_tokens};
}

std::map<std::string, double> PreferenceObjective::evaluate(CausalLM& policy) {
  MetricAccumulator acc;
  const int64_t n = eval_ ? eval_->size() : 0, bs = config_.per_device_eval_batch_size;
  for (int64_t start = 0; start < n; start += bs) {
    std::vector<PairRecord> recs;
    for (int64_t i = start; i < std::min(n, start + bs); ++i) recs.push_back(eval_->get(i));
    LogitStats logits;
    acc.add_pairs(compute_loss(policy, collate(std::move(recs), eval_->name(), policy->args()), &logits));
    acc.add_logits(logits);
  }
  return acc.means();
}

std::string PreferenceObjective::summary(const std::map<std::string, double>& v,
                                         const std::string& prefix) const {
  auto get = [&](const std::string& k) {
    auto it = v.find(prefix + k);
    return it == v.end() ? 0.0 : it->second;
  };
  return fmt::format("loss {:.4f} acc {:.3f} margin {:.4f}", get("loss"),
                     get("rewards/accuracies"), get("rewards/margins"));
}

std::vector<std::string> PreferenceObjective::curves() const {
  return {"loss", "rewards/margins", "rewards/accuracies", "treg/reg_loss"};
}

std::vector<TokenRewardView> PreferenceObjective::report_views(CausalLM& policy) {
  // The first report_pairs eval pairs (train pairs when there is no eval set).
  std::vector<TokenRewardView> views;
  const auto& src = eval_ && eval_->size() > 0 ? eval_ : train_;
  const int64_t n = std::min<int64_t>(config_.report_pairs, src->size());
  if (n <= 0) return views;
  std::unique_ptr<Tokenizer> tok;
  try {
    tok = load_tokenizer(config_.model_name_or_path);
  } catch (const std::exception& e) {
    spdlog::warn("report: no tokenizer in {} ({}); showing token ids", config_.model_name_or_path,
                 e.what());
  }
  std::vector<PairRecord> recs;
  for (int64_t i = 0; i < n; ++i) recs.push_back(src->get(i));
  PairBatch batch = collate(recs, src->name(), policy->args());
  ResponseTokens c, r;
  gather_responses(batch, response_outputs(policy, batch, false, false), c, r);
  // β·(log π_θ - log π_ref) per token  [B, L]
  auto rc = (config_.beta * (c.logps - c.ref_logps) * c.mask).to(torch::kCPU).contiguous();
  auto rr = (config_.beta * (r.logps - r.ref_logps) * r.mask).to(torch::kCPU).contiguous();
  for (int64_t i = 0; i < n; ++i) {
    const PairRecord& p = batch.records[static_cast<size_t>(i)];
    TokenRewardView v;
    v.prompt_pieces = pieces_of(tok.get(), p.prompt_ids);
    v.chosen_pieces = pieces_of(tok.get(), p.chosen.ids);
    v.rejected_pieces = pieces_of(tok.get(), p.rejected.ids);
    for (size_t t = 0; t < p.chosen.ids.size(); ++t)
      v.chosen_rewards.push_back(rc[i][static_cast<int64_t>(t)].item<float>());
    for (size_t t = 0; t < p.rejected.ids.size(); ++t)
      v.rejected_rewards.push_back(rr[i][static_cast<int64_t>(t)].item<float>());
    views.push_back(std::move(v));
  }
  return views;
}

}  // namespace treg
