// The end-of-run report: curves from the log history, and the token rewards β·log π_θ/π_ref of the
// first `report_pairs` eval pairs (train pairs when there is no eval set) under the trained policy.
#include <spdlog/spdlog.h>

#include "treg/io.h"
#include "treg/token_html.h"
#include "treg/tokenizer.h"
#include "treg/trainer.h"

namespace treg {
namespace {

// Token texts through the model's tokenizer; "<id>" per token when the model directory has none.
std::vector<std::string> pieces_of(const Tokenizer* tok, const std::vector<int64_t>& ids) {
  if (tok) return token_pieces(*tok, ids);
  std::vector<std::string> out;
  for (int64_t id : ids) out.push_back("<" + std::to_string(id) + ">");
  return out;
}

}  // namespace

void Trainer::write_report() {
  std::vector<TokenRewardView> views;
  const auto& src = eval_ && eval_->size() > 0 ? eval_ : train_;
  const int64_t n = std::min<int64_t>(config_.report_pairs, src->size());
  if (n > 0) {
    std::unique_ptr<Tokenizer> tok;
    try {
      tok = load_tokenizer(config_.model_name_or_path);
    } catch (const std::exception& e) {
      spdlog::warn("report: no tokenizer in {} ({}); showing token ids", config_.model_name_or_path, e.what());
    }
    std::vector<PairRecord> recs;
    for (int64_t i = 0; i < n; ++i) recs.push_back(src->get(i));
    PairBatch batch = collate_pairs(recs, src->name());
    torch::NoGradGuard no_grad;
    policy_->eval();
    TokenLogprobs lp = next_token_logprobs(policy_, batch.ids.to(device_), batch.mask.to(device_));
    policy_->train();
    ResponseTokens c, r;
    gather_responses(batch, lp.logps, {}, c, r);
    // β·(log π_θ - log π_ref) per token  [B, L]
    auto rc = (config_.beta * (c.logps - c.ref_logps) * c.mask).to(torch::kCPU).contiguous();
    auto rr = (config_.beta * (r.logps - r.ref_logps) * r.mask).to(torch::kCPU).contiguous();
    for (int64_t i = 0; i < n; ++i) {
      const PairRecord& p = batch.records[static_cast<size_t>(i)];
      TokenRewardView v;
      v.prompt_pieces = pieces_of(tok.get(), p.prompt_ids);
      v.chosen_pieces = pieces_of(tok.get(), p.chosen.ids);
      v.rejected_pieces = pieces_of(tok.get(), p.rejected.ids);
      for (size_t t = 0; t < p.chosen.ids.size(); ++t) v.chosen_rewards.push_back(rc[i][static_cast<int64_t>(t)].item<float>());
      for (size_t t = 0; t < p.rejected.ids.size(); ++t)
        v.rejected_rewards.push_back(rr[i][static_cast<int64_t>(t)].item<float>());
      views.push_back(std::move(v));
    }
  }
  const std::string path = path_join(config_.output_dir, "report.html");
  write_file_atomic(path, render_report("treg train: " + config_.output_dir, history_, views));
  spdlog::info("wrote {}", path);
}

}  // namespace treg
