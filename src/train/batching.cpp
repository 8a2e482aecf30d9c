// Collation: B preference pairs -> the rows of one forward (padded, or prefix-shared trees), with
// the dump's per-token arrays laid out per response token and the column that predicts each.
#include <algorithm>
#include <functional>

#include "treg/error.h"
#include "treg/packing.h"
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

PairBatch collate_pairs(std::vector<PairRecord> pairs, const std::string& where, PairLayout layout) {
  PairBatch b;
  const int64_t B = static_cast<int64_t>(pairs.size());
  TREG_CHECK(B > 0, where, "empty batch");
  b.pairs = B;
  b.layout = layout;
  int64_t L = 0;
  // Sequence i is prompt + chosen of pair i, sequence B + i prompt + rejected.
  std::vector<std::vector<int64_t>> seqs(static_cast<size_t>(2 * B));
  for (int64_t i = 0; i < B; ++i) {
    const PairRecord& p = pairs[static_cast<size_t>(i)];
    if (p.prompt_ids.empty())
      fail(where + ": pair " + std::to_string(p.index) + " (data line " + std::to_string(p.source_line) + ")",
           "has an empty prompt; the first response token needs a context to be predicted from");
    check_response(p.chosen, p, "chosen", where);
    check_response(p.rejected, p, "rejected", where);
    for (int side = 0; side < 2; ++side) {
      const ResponseScores& r = side == 0 ? p.chosen : p.rejected;
      auto& s = seqs[static_cast<size_t>(side * B + i)];
      s = p.prompt_ids;
      s.insert(s.end(), r.ids.begin(), r.ids.end());
      L = std::max(L, static_cast<int64_t>(r.ids.size()));
      b.num_tokens += static_cast<int64_t>(s.size());
    }
  }
  // Where each sequence's token t sits: flat index row * T + column.
  std::function<int64_t(size_t, size_t)> at;
  PackedSequences packed;
  int64_t T = 0;
  if (layout == PairLayout::kPadded) {
    for (const auto& s : seqs) T = std::max(T, static_cast<int64_t>(s.size()));
    b.ids = torch::zeros({2 * B, T}, torch::kInt64);
    b.mask = torch::zeros({2 * B, T}, torch::kInt64);
    auto ids_a = b.ids.accessor<int64_t, 2>();
    auto mask_a = b.mask.accessor<int64_t, 2>();
    for (size_t s = 0; s < seqs.size(); ++s)
      for (size_t t = 0; t < seqs[s].size(); ++t) {
        ids_a[static_cast<int64_t>(s)][static_cast<int64_t>(t)] = seqs[s][t];
        mask_a[static_cast<int64_t>(s)][static_cast<int64_t>(t)] = 1;
      }
    at = [T](size_t s, size_t t) { return static_cast<int64_t>(s) * T + static_cast<int64_t>(t); };
  } else {
    // One tree per pair: x once, then y_w and y_l as branches (longer if they start alike).
    std::vector<std::vector<size_t>> groups;
    for (int64_t i = 0; i < B; ++i)
      groups.push_back({static_cast<size_t>(i), static_cast<size_t>(B + i)});
    packed = pack_sequences(seqs, groups);
    T = packed.ids.size(1);
    b.ids = packed.ids;
    b.mask = (packed.segments > 0).to(torch::kInt64);
    b.segments = packed.segments;
    b.parents = packed.parents;
    at = [&packed, T](size_t s, size_t t) { return packed.row[s] * T + packed.columns[s][t]; };
  }
  auto from = torch::zeros({2 * B, L}, torch::kInt64);
  auto resp_ids = torch::zeros({2 * B, L}, torch::kInt64);
  auto rmask = torch::zeros({2 * B, L}, torch::kFloat32);
  auto ref = torch::zeros({2 * B, L}, torch::kFloat32);
  auto rew = torch::zeros({2 * B, L}, torch::kFloat32);
  auto from_a = from.accessor<int64_t, 2>();
  auto resp_a = resp_ids.accessor<int64_t, 2>();
  auto rmask_a = rmask.accessor<float, 2>();
  auto ref_a = ref.accessor<float, 2>();
  auto rew_a = rew.accessor<float, 2>();
  for (int64_t i = 0; i < B; ++i) {
    const PairRecord& p = pairs[static_cast<size_t>(i)];
    const size_t P = p.prompt_ids.size();
    for (int side = 0; side < 2; ++side) {
      const ResponseScores& r = side == 0 ? p.chosen : p.rejected;
      const int64_t seq = side * B + i;
      for (size_t t = 0; t < r.ids.size(); ++t) {
        const auto k = static_cast<int64_t>(t);
        from_a[seq][k] = at(static_cast<size_t>(seq), P + t - 1);  // the token before it predicts it
        resp_a[seq][k] = r.ids[t];
        rmask_a[seq][k] = 1.0f;
        ref_a[seq][k] = r.ref_logps[t];
        rew_a[seq][k] = r.rewards[t];
      }
    }
  }
  b.forward_tokens = b.mask.sum().item<int64_t>();
  b.response_from = from;
  b.response_ids = resp_ids;
  b.response_mask = rmask;
  b.ref_logps = ref;
  b.rewards = rew;
  b.records = std::move(pairs);
  return b;
}

void gather_responses(const PairBatch& batch, const ResponseOutputs& out, ResponseTokens& chosen,
                      ResponseTokens& rejected) {
  const int64_t B = batch.pairs;
  auto dev = out.logps.device();
  auto rmask = batch.response_mask.to(dev);
  auto ref = batch.ref_logps.to(dev);
  auto rew = batch.rewards.to(dev);
  auto fill = [&](ResponseTokens& r, int64_t from) {
    r.logps = out.logps.narrow(0, from, B);
    r.mask = rmask.narrow(0, from, B);
    r.ref_logps = ref.narrow(0, from, B);
    r.rewards = rew.narrow(0, from, B);
    if (out.log_sq_mass.defined()) r.log_sq_mass = out.log_sq_mass.narrow(0, from, B);
  };
  fill(chosen, 0);
  fill(rejected, B);
}

LogitStats response_logit_stats(const PairBatch& batch, const torch::Tensor& logit_sums,
                                int64_t vocab_size) {
  const int64_t B = batch.pairs;
  auto per_row = logit_sums.to(torch::kFloat64).sum(-1);               // [2B], on the device
  auto tokens = batch.response_mask.to(torch::kFloat64).sum(-1);       // [2B], CPU
  const double V = static_cast<double>(vocab_size);
  LogitStats s;
  s.chosen_sum = per_row.narrow(0, 0, B).sum();
  s.rejected_sum = per_row.narrow(0, B, B).sum();
  s.chosen_count = tokens.narrow(0, 0, B).sum().item<double>() * V;
  s.rejected_count = tokens.narrow(0, B, B).sum().item<double>() * V;
  return s;
}

}  // namespace treg
