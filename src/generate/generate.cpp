// Batched generation: prompts sorted by length, left-padded into batches, one prefill through the
// KV cache, then one token per step for the rows still running. Rows that stop leave the batch
// (their cache rows are dropped), so the last long answer does not drag finished rows along.
#include "treg/generate.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <numeric>
#include <random>

#include <spdlog/spdlog.h>

#include "treg/autocast.h"
#include "treg/data.h"
#include "treg/error.h"

namespace treg {

namespace {

void check_options(const GenerateOptions& o) {
  if (o.max_new_tokens < 0)
    fail("generate", "max_new_tokens must be >= 0, got " + std::to_string(o.max_new_tokens));
  if (!(o.temperature >= 0))
    fail("generate", "temperature must be >= 0 (0 = greedy), got " + std::to_string(o.temperature));
  if (!(o.top_p > 0 && o.top_p <= 1))
    fail("generate", "top_p must be in (0, 1], got " + std::to_string(o.top_p));
  if (o.top_k < 0) fail("generate", "top_k must be >= 0 (0 = off), got " + std::to_string(o.top_k));
  if (o.batch_size <= 0)
    fail("generate", "batch_size must be positive, got " + std::to_string(o.batch_size));
}

// A uniform in [0, 1) from the top 53 bits: the same numbers with every standard library
// (std::uniform_real_distribution is not specified bit for bit).
double next_uniform(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0);
}

// One prompt's random stream: seeded by (seed, index), independent of batching.
std::mt19937_64 prompt_stream(uint64_t seed, size_t index) {
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
                    static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32)};
  return std::mt19937_64(seq);
}

struct BatchOutput {
  std::vector<std::vector<int64_t>> ids;  // [n] new tokens, stop excluded
  std::vector<bool> stopped;
  int64_t new_tokens = 0;
};

// Generates for prompts[rows[i]], i < n, as one left-padded batch.
BatchOutput generate_batch(CausalLM& model, const std::vector<std::vector<int64_t>>& prompts,
                           const std::vector<size_t>& rows, const GenerateOptions& o,
                           std::vector<std::mt19937_64>& streams, torch::Device device,
                           const GenerateProgress& on_progress) {
  const int64_t n = static_cast<int64_t>(rows.size());
  BatchOutput out;
  out.ids.resize(rows.size());
  out.stopped.assign(rows.size(), false);
  if (o.max_new_tokens == 0) {
    if (on_progress) on_progress(n, 0);
    return out;
  }

  int64_t P = 0;
  for (size_t r : rows) P = std::max<int64_t>(P, static_cast<int64_t>(prompts[r].size()));
  torch::Tensor ids = torch::zeros({n, P}, torch::kInt64);   // [B, P], left-padded with id 0
  torch::Tensor mask = torch::zeros({n, P}, torch::kInt64);  // [B, P]
  auto ids_a = ids.accessor<int64_t, 2>();
  auto mask_a = mask.accessor<int64_t, 2>();
  for (int64_t b = 0; b < n; ++b) {
    const auto& p = prompts[rows[static_cast<size_t>(b)]];
    const int64_t pad = P - static_cast<int64_t>(p.size());
    for (size_t t = 0; t < p.size(); ++t) {
      ids_a[b][pad + static_cast<int64_t>(t)] = p[t];
      mask_a[b][pad + static_cast<int64_t>(t)] = 1;
    }
  }
  mask = mask.to(device);

  KVCache cache;
  cache.reserve_tokens = P + o.max_new_tokens;
  // Left padding puts every row's last prompt token in the last column.
  torch::Tensor last =
      model->forward_cached(ids.to(device), mask, cache).select(1, P - 1);  // [B, D]
  std::vector<int64_t> live(static_cast<size_t>(n));  // batch row of each cache row
  std::iota(live.begin(), live.end(), 0);
  for (int64_t step = 0; step < o.max_new_tokens; ++step) {
    torch::Tensor logits = model->lm_logits(last);  // [B', V] fp32
    std::vector<double> u(live.size(), 0.0);
    if (o.temperature > 0)
      for (size_t i = 0; i < live.size(); ++i) u[i] = next_uniform(streams[rows[live[i]]]);
    torch::Tensor next = sample_next_tokens(logits, o, u).to(torch::kCPU);  // [B']
    auto next_a = next.accessor<int64_t, 1>();
    std::vector<int64_t> keep;  // cache rows that go on
    for (size_t i = 0; i < live.size(); ++i) {
      const int64_t id = next_a[static_cast<int64_t>(i)];
      const size_t b = static_cast<size_t>(live[i]);
      ++out.new_tokens;
      if (std::find(o.stop_ids.begin(), o.stop_ids.end(), id) != o.stop_ids.end()) {
        out.stopped[b] = true;
      } else {
        out.ids[b].push_back(id);
        keep.push_back(static_cast<int64_t>(i));
      }
    }
    const bool last_step = step + 1 == o.max_new_tokens;
    if (on_progress)
      on_progress(last_step ? static_cast<int64_t>(live.size())
                            : static_cast<int64_t>(live.size() - keep.size()),
                  static_cast<int64_t>(live.size()));
    if (keep.empty() || last_step) break;
    if (keep.size() < live.size()) {
      torch::Tensor keep_t = torch::tensor(keep, torch::kInt64);
      std::vector<int64_t> still;
      for (int64_t i : keep) still.push_back(live[static_cast<size_t>(i)]);
      live = std::move(still);
      next = next.index_select(0, keep_t);
      keep_t = keep_t.to(device);
      cache.select_rows(keep_t);
      mask = mask.index_select(0, keep_t);
    }
    const int64_t Bl = static_cast<int64_t>(live.size());
    mask = torch::cat({mask, torch::ones({Bl, 1}, mask.options())}, 1);  // [B', Tcache + 1]
    last = model->forward_cached(next.view({Bl, 1}).to(device), mask, cache).select(1, 0);
  }
  return out;
}

}  // namespace

torch::Tensor sample_next_tokens(const torch::Tensor& logits, const GenerateOptions& o,
                                 const std::vector<double>& uniforms) {
  if (logits.dim() != 2)
    fail("sample_next_tokens", "logits must be [B, V], got " + c10::str(logits.sizes()));
  if (o.temperature == 0) return logits.argmax(-1);  // [B]
  const int64_t B = logits.size(0), V = logits.size(1);
  if (static_cast<int64_t>(uniforms.size()) != B)
    fail("sample_next_tokens",
         std::to_string(uniforms.size()) + " uniforms for " + std::to_string(B) + " rows");
  const double neg_inf = -std::numeric_limits<double>::infinity();
  torch::Tensor scores = logits.to(torch::kFloat32);  // [B, V]
  if (o.temperature != 1.0) scores = scores / o.temperature;
  if (o.top_k > 0 && o.top_k < V) {
    torch::Tensor kth = std::get<0>(torch::topk(scores, o.top_k)).narrow(1, o.top_k - 1, 1);
    scores = scores.masked_fill(scores < kth, neg_inf);
  }
  if (o.top_p < 1.0) {
    // Ascending: drop the least likely tokens while their mass stays within 1 - top_p; the most
    // likely token always stays.
    auto [sorted, order] = torch::sort(scores, /*dim=*/-1, /*descending=*/false);  // [B, V]
    torch::Tensor remove = torch::softmax(sorted, -1).cumsum(-1) <= (1 - o.top_p);
    remove.narrow(1, V - 1, 1).fill_(false);
    scores = scores.masked_fill(remove.scatter(1, order, remove), neg_inf);
  }
  // Inverse CDF: the first token whose cumulative probability exceeds u (zero-probability tokens
  // never are: their CDF equals their predecessor's).
  torch::Tensor cdf = torch::softmax(scores, -1).to(torch::kFloat64).cumsum(-1);  // [B, V]
  torch::Tensor u = torch::tensor(uniforms, torch::kFloat64).to(cdf.device()).view({B, 1});
  torch::Tensor x = u * cdf.narrow(1, V - 1, 1);  // scaled by the total (rounding keeps it < ~1)
  return torch::searchsorted(cdf, x, /*out_int32=*/false, /*right=*/true)
      .clamp_max(V - 1)
      .view({B});  // [B]
}

GenerateResult generate(CausalLM& model, const std::vector<std::vector<int64_t>>& prompts,
                        const GenerateOptions& o, const GenerateProgress& on_progress) {
  check_options(o);
  const int64_t V = model->args().vocab_size;
  GenerateResult res;
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (prompts[i].empty()) fail("generate", "prompt " + std::to_string(i) + " is empty");
    for (int64_t id : prompts[i])
      if (id < 0 || id >= V)
        fail("generate",
             "prompt " + std::to_string(i) + " has token id " + std::to_string(id) +
                 " outside the vocabulary [0, " + std::to_string(V) + ")",
             "the prompts were tokenized with a different tokenizer than this model's");
    res.prompt_tokens += static_cast<int64_t>(prompts[i].size());
  }
  const auto t0 = std::chrono::steady_clock::now();
  torch::NoGradGuard no_grad;
  const torch::Device device = model->lm_head_weight().device();
  AutocastGuard autocast(device, o.bf16);

  // Longest first: similar lengths share a batch, and the slowest batch shows in the ETA early.
  std::vector<size_t> order(prompts.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return prompts[a].size() > prompts[b].size(); });
  std::vector<std::mt19937_64> streams;
  streams.reserve(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) streams.push_back(prompt_stream(o.seed, i));

  res.ids.resize(prompts.size());
  res.stopped.assign(prompts.size(), false);
  const size_t bs = static_cast<size_t>(o.batch_size);
  for (size_t start = 0; start < order.size(); start += bs) {
    std::vector<size_t> rows(
        order.begin() + static_cast<std::ptrdiff_t>(start),
        order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), start + bs)));
    BatchOutput b = generate_batch(model, prompts, rows, o, streams, device, on_progress);
    for (size_t i = 0; i < rows.size(); ++i) {
      res.ids[rows[i]] = std::move(b.ids[i]);
      res.stopped[rows[i]] = b.stopped[i];
    }
    res.new_tokens += b.new_tokens;
  }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

std::vector<int64_t> generation_stop_ids(const Tokenizer& tok, const ModelArgs& args,
                                         const ChatTemplate& chat) {
  std::vector<int64_t> ids = tok.special().eos_ids;
  ids.insert(ids.end(), args.eos_token_ids.begin(), args.eos_token_ids.end());
  try {
    ids.push_back(end_of_turn_id(tok, chat));
  } catch (const Error& e) {
    spdlog::warn("generate: no end-of-turn stop token ({}); stopping on EOS only", e.what());
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

}  // namespace treg
