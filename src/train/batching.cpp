// Collation: B preference pairs -> one right-padded [2B, T] batch (chosen rows, then rejected rows),
// with the dump's per-token arrays laid out on the response positions.
#include <algorithm>

#include "treg/error.h"
#include "treg/train_parts.h"

namespace treg {
namespace {

class MemorySource : public PairSource {
 public:
  MemorySource(std::vector<PairRecord> pairs, std::string name)
      : pairs_(std::move(pairs)), name_(std::move(name)) {}
  int64_t size() const override { return static_cast<int64_t>(pairs_.size()); }
  PairRecord get(int64_t i) const override { return pairs_.at(static_cast<size_t>(i)); }
  std::string name() const override { return name_; }

 private:
  std::vector<PairRecord> pairs_;
  std::string name_;
};

void check_response(const ResponseScores& r, const PairRecord& p, const char* side, const std::string& where) {
  const std::string at = where + ": pair " + std::to_string(p.index) + " (data line " +
                         std::to_string(p.source_line) + ") " + side;
  if (r.ids.empty()) fail(at, "has no response tokens");
  if (r.ref_logps.size() != r.ids.size() || r.rewards.size() != r.ids.size())
    fail(at, "token arrays disagree: " + std::to_string(r.ids.size()) + " ids, " +
                 std::to_string(r.ref_logps.size()) + " ref_logps, " + std::to_string(r.rewards.size()) +
                 " rewards");
}

}  // namespace

std::shared_ptr<PairSource> memory_source(std::vector<PairRecord> pairs, std::string name) {
  return std::make_shared<MemorySource>(std::move(pairs), std::move(name));
}

PairBatch collate_pairs(std::vector<PairRecord> pairs, const std::string& where) {
  PairBatch b;
  const int64_t B = static_cast<int64_t>(pairs.size());
  TREG_CHECK(B > 0, where, "empty batch");
  b.pairs = B;
  int64_t T = 0, L = 0;
  for (const auto& p : pairs) {
    if (p.prompt_ids.empty())
      fail(where + ": pair " + std::to_string(p.index) + " (data line " + std::to_string(p.source_line) + ")",
           "has an empty prompt; the first response token needs a context to be predicted from");
    check_response(p.chosen, p, "chosen", where);
    check_response(p.rejected, p, "rejected", where);
    const int64_t P = static_cast<int64_t>(p.prompt_ids.size());
    for (const ResponseScores* r : {&p.chosen, &p.rejected}) {
      T = std::max<int64_t>(T, P + static_cast<int64_t>(r->ids.size()));
      L = std::max<int64_t>(L, static_cast<int64_t>(r->ids.size()));
    }
  }
  auto ids = torch::zeros({2 * B, T}, torch::kInt64);
  auto mask = torch::zeros({2 * B, T}, torch::kInt64);
  auto index = torch::zeros({2 * B, L}, torch::kInt64);
  auto rmask = torch::zeros({2 * B, L}, torch::kFloat32);
  auto ref = torch::zeros({2 * B, L}, torch::kFloat32);
  auto rew = torch::zeros({2 * B, L}, torch::kFloat32);
  auto ids_a = ids.accessor<int64_t, 2>();
  auto mask_a = mask.accessor<int64_t, 2>();
  auto index_a = index.accessor<int64_t, 2>();
  auto rmask_a = rmask.accessor<float, 2>();
  auto ref_a = ref.accessor<float, 2>();
  auto rew_a = rew.accessor<float, 2>();
  for (int64_t i = 0; i < B; ++i) {
    const PairRecord& p = pairs[static_cast<size_t>(i)];
    const int64_t P = static_cast<int64_t>(p.prompt_ids.size());
    for (int side = 0; side < 2; ++side) {
      const ResponseScores& r = side == 0 ? p.chosen : p.rejected;
      const int64_t row = side * B + i;
      const int64_t R = static_cast<int64_t>(r.ids.size());
      for (int64_t t = 0; t < P; ++t) ids_a[row][t] = p.prompt_ids[static_cast<size_t>(t)], mask_a[row][t] = 1;
      for (int64_t t = 0; t < R; ++t) {
        ids_a[row][P + t] = r.ids[static_cast<size_t>(t)];
        mask_a[row][P + t] = 1;
        index_a[row][t] = P + t - 1;  // logps[:, j] = log p(ids[j+1] | ids[..j])
        rmask_a[row][t] = 1.0f;
        ref_a[row][t] = r.ref_logps[static_cast<size_t>(t)];
        rew_a[row][t] = r.rewards[static_cast<size_t>(t)];
      }
      b.num_tokens += P + R;
    }
  }
  b.ids = ids;
  b.mask = mask;
  b.response_index = index;
  b.response_mask = rmask;
  b.ref_logps = ref;
  b.rewards = rew;
  b.records = std::move(pairs);
  return b;
}

void gather_responses(const PairBatch& batch, const torch::Tensor& logps, const torch::Tensor& log_sq_mass,
                      ResponseTokens& chosen, ResponseTokens& rejected) {
  const int64_t B = batch.pairs;
  auto dev = logps.device();
  auto index = batch.response_index.to(dev);
  auto rmask = batch.response_mask.to(dev);
  // [2B, T-1] -> [2B, L]
  auto resp = logps.gather(1, index) * rmask;
  torch::Tensor sq;
  if (log_sq_mass.defined()) sq = log_sq_mass.gather(1, index) * rmask;
  auto ref = batch.ref_logps.to(dev);
  auto rew = batch.rewards.to(dev);
  auto fill = [&](ResponseTokens& r, int64_t from) {
    r.logps = resp.narrow(0, from, B);
    r.mask = rmask.narrow(0, from, B);
    r.ref_logps = ref.narrow(0, from, B);
    r.rewards = rew.narrow(0, from, B);
    if (sq.defined()) r.log_sq_mass = sq.narrow(0, from, B);
  };
  fill(chosen, 0);
  fill(rejected, B);
}

LogitStats response_logit_stats(const PairBatch& batch, const torch::Tensor& logit_sums,
                                int64_t vocab_size) {
  const int64_t B = batch.pairs;
  auto dev = logit_sums.device();
  auto rmask = batch.response_mask.to(dev, torch::kFloat64);                            // [2B, L]
  auto per_row = (logit_sums.gather(1, batch.response_index.to(dev)) * rmask).sum(-1);  // [2B]
  auto tokens = rmask.sum(-1);                                                          // [2B]
  const double V = static_cast<double>(vocab_size);
  LogitStats s;
  s.chosen_sum = per_row.narrow(0, 0, B).sum().item<double>();
  s.rejected_sum = per_row.narrow(0, B, B).sum().item<double>();
  s.chosen_count = tokens.narrow(0, 0, B).sum().item<double>() * V;
  s.rejected_count = tokens.narrow(0, B, B).sum().item<double>() * V;
  return s;
}

}  // namespace treg
