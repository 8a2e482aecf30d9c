// The decoder's other two entry points against the plain forward(): sequences packed into rows
// (forward_packed) give the log-probs and gradients each gets alone, and cached decoding
// (forward_cached: a left-padded prefill, then one token per step) gives the logits of a full
// forward of each growing, unpadded sequence.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>

#include "test_util.h"
#include "treg/error.h"
#include "treg/io.h"
#include "treg/model.h"
#include "treg/policy_logprobs.h"

namespace treg {
namespace {

// A tiny checkpoint with a wide init, so log-probs spread over many nats and a wrong position, mask
// or rope table shows. Comparisons run twice: fp32 at std 0.1 within 1e-5, and fp64 at std 0.3
// within 1e-10 (where fp32's rounding, different for different shapes, would reach 2e-5).
std::string wide_model(const std::string& arch, double std) {
  std::string dir = test::fresh_dir("packed-" + arch + "-" + std::to_string(std) + "-" +
                                    std::to_string(::getpid()));
  std::string out;
  int rc = test::run_command(test::treg_binary() + " make-tiny --arch " + arch +
                                 " --seed 7 --init-std " + std::to_string(std) +
                                 " --vocab-size 256 --out '" + dir + "'",
                             &out);
  if (rc != 0) throw std::runtime_error("make-tiny failed: " + out);
  return dir;
}

// The Llama tiny model with its rope rewritten to `rope` and max_position_embeddings set.
std::string llama_with_rope(const nlohmann::json& rope, int64_t max_pos, double std) {
  std::string dir = wide_model("llama", std);
  auto config = nlohmann::json::parse(read_file(path_join(dir, "config.json")));
  config["rope_scaling"] = rope;
  config["max_position_embeddings"] = max_pos;
  write_file_atomic(path_join(dir, "config.json"), config.dump(2));
  return dir;
}

std::vector<int64_t> random_ids(int64_t n, std::mt19937& rng) {
  std::vector<int64_t> s(static_cast<size_t>(n));
  for (auto& id : s) id = static_cast<int64_t>(rng() % 256u);
  return s;
}

torch::Tensor row_of(const std::vector<int64_t>& s) {
  return torch::tensor(s, torch::kInt64).view({1, static_cast<int64_t>(s.size())});  // [1, T]
}

// log p(s[t+1] | s[..t]) of `s` run alone through forward(): [T-1]
torch::Tensor alone_logps(CausalLM& model, const std::vector<int64_t>& s) {
  torch::Tensor ids = row_of(s);
  return next_token_logprobs(model, ids, torch::ones_like(ids)).logps[0];
}

// Final-normed hidden states of `s` alone: [T, D]
torch::Tensor alone_hidden(CausalLM& model, const std::vector<int64_t>& s) {
  torch::Tensor ids = row_of(s);
  return model->forward(ids, torch::ones_like(ids))[0];
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  return (a - b).abs().max().item<double>();
}

// Sequences laid out in rows: each row's sequences back to back, then padding (segment 0).
struct Packing {
  torch::Tensor ids, segments;  // [B, T]
  struct Place {
    int64_t row, start;
    std::vector<int64_t> seq;
  };
  std::vector<Place> places;
};

Packing pack(const std::vector<std::vector<std::vector<int64_t>>>& rows, int64_t T) {
  const int64_t B = static_cast<int64_t>(rows.size());
  Packing p{torch::zeros({B, T}, torch::kInt64), torch::zeros({B, T}, torch::kInt64), {}};
  for (int64_t b = 0; b < B; ++b) {
    int64_t t = 0, segment = 0;
    for (const auto& seq : rows[static_cast<size_t>(b)]) {
      ++segment;
      p.places.push_back({b, t, seq});
      for (int64_t id : seq) {
        p.ids[b][t] = id;
        p.segments[b][t++] = segment;
      }
    }
  }
  return p;
}

// Layouts: three sequences in one row (the middle one past the sliding window of 8 and past
// phi3's 16-token longrope switch), and five in two rows with padding at the end of each.
struct Precision {
  torch::ScalarType dtype;
  double std, tol;
};
const std::vector<Precision> kPrecisions = {{torch::kFloat32, 0.1, 1e-5},
                                            {torch::kFloat64, 0.3, 1e-10}};

CausalLM load(const std::string& dir, const Precision& p) {
  return load_model(dir, torch::kCPU, p.dtype);
}

std::vector<Packing> layouts() {
  std::mt19937 rng(5);
  auto s = [&](int64_t n) { return random_ids(n, rng); };
  return {pack({{s(11), s(20), s(7)}}, 40), pack({{s(13), s(9)}, {s(18), s(5), s(3)}}, 30)};
}

class PackedForward : public ::testing::TestWithParam<std::string> {};

TEST_P(PackedForward, LogprobsEqualEachSequenceAlone) {
  torch::NoGradGuard no_grad;
  for (const Precision& prec : kPrecisions) {
    CausalLM model = load(wide_model(GetParam(), prec.std), prec);
    for (AttentionImpl impl : {AttentionImpl::kReference, AttentionImpl::kSdpa}) {
      model->set_attention_impl(impl);
      const double tol = impl == AttentionImpl::kReference ? prec.tol : 1e-4;
      for (const Packing& p : layouts()) {
        torch::Tensor hidden = model->forward_packed(p.ids, p.segments);  // [B, T, D]
        torch::Tensor lp =
            next_token_logprobs_from_hidden(model, hidden, p.ids, packed_target_mask(p.segments))
                .logps;  // [B, T-1]
        for (const auto& place : p.places) {
          const int64_t n = static_cast<int64_t>(place.seq.size());
          torch::Tensor got = lp[place.row].narrow(0, place.start, n - 1);
          EXPECT_LE(max_diff(got, alone_logps(model, place.seq)), tol)
              << "row " << place.row << " start " << place.start << " " << prec.dtype;
          EXPECT_LE(
              max_diff(hidden[place.row].narrow(0, place.start, n), alone_hidden(model, place.seq)),
              tol);
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Packed, PackedForward, ::testing::ValuesIn(tiny_arches()),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '.', '_');
                           return name;
                         });

// The loss of the packed batch and of the sequences one by one are the same function of the
// parameters; so are their gradients, with and without gradient checkpointing (fp64).
TEST(PackedForwardGrad, GradientsEqualEachSequenceAlone) {
  for (const char* arch : {"gemma2", "phi3"}) {
    CausalLM model = load(wide_model(arch, 0.3), kPrecisions[1]);
    const Packing p = layouts()[1];
    auto grads = [&](bool packed, bool checkpointing) {
      model->zero_grad();
      model->set_gradient_checkpointing(checkpointing);
      torch::Tensor loss = torch::zeros({});
      if (packed) {
        torch::Tensor lp =
            next_token_logprobs_from_hidden(model, model->forward_packed(p.ids, p.segments), p.ids,
                                            packed_target_mask(p.segments))
                .logps;
        torch::Tensor w = torch::linspace(0.5, 1.5, lp.size(1));  // unequal per position
        for (const auto& place : p.places) {
          const int64_t n = static_cast<int64_t>(place.seq.size());
          loss = loss + (lp[place.row].narrow(0, place.start, n - 1) * w.narrow(0, 0, n - 1)).sum();
        }
      } else {
        for (const auto& place : p.places) {
          torch::Tensor lp = alone_logps(model, place.seq);
          loss = loss +
                 (lp * torch::linspace(0.5, 1.5, p.ids.size(1) - 1).narrow(0, 0, lp.size(0))).sum();
        }
      }
      loss.backward();
      std::map<std::string, torch::Tensor> g;
      for (const auto& kv : model->named_parameters()) g[kv.key()] = kv.value().grad().clone();
      return g;
    };
    auto want = grads(false, false);
    for (bool checkpointing : {false, true}) {
      auto got = grads(true, checkpointing);
      for (const auto& [k, g] : want) {
        EXPECT_GT(g.abs().max().item<double>(), 0) << k;
        EXPECT_LE(max_diff(got[k], g), 1e-10 * (1 + g.abs().max().item<double>()))
            << arch << " " << k << " checkpointing " << checkpointing;
      }
    }
  }
}

TEST(PackedForwardErrors, SegmentsMustBeContiguousRuns) {
  CausalLM model = load_model(wide_model("llama", 0.02), torch::kCPU, torch::kFloat32);
  torch::Tensor ids = torch::ones({2, 6}, torch::kInt64);
  torch::Tensor seg =
      torch::tensor({1, 1, 2, 2, 0, 0, 1, 1, 2, 1, 0, 0}, torch::kInt64).view({2, 6});
  std::string m = test::error_of([&] { model->forward_packed(ids, seg); });
  EXPECT_NE(m.find("row 1"), std::string::npos) << m;
  EXPECT_NE(m.find("appears again at column 3"), std::string::npos) << m;
  m = test::error_of([&] { model->forward_packed(ids, seg.narrow(1, 0, 5)); });
  EXPECT_NE(m.find("shape"), std::string::npos) << m;
  m = test::error_of([&] { model->forward_packed(ids, -seg); });
  EXPECT_NE(m.find("negative"), std::string::npos) << m;
}

// ---- prefix trees (forward_packed with parents) ----

// Rows of nodes laid out in order; node k of a row is segment k + 1 and continues segment `parent`
// (0 = a root). Every root..leaf path is one sequence.
struct TreeNode {
  int64_t parent;
  std::vector<int64_t> seq;
};
struct Tree {
  torch::Tensor ids, segments, parents;  // [B, T], [B, T], [B, S1]
  struct Path {
    int64_t row;
    std::vector<int64_t> columns;  // the column of each token of the path
    std::vector<int64_t> seq;
  };
  std::vector<Path> paths;
};

Tree tree(const std::vector<std::vector<TreeNode>>& rows, int64_t T) {
  const int64_t B = static_cast<int64_t>(rows.size());
  size_t S = 0;
  for (const auto& r : rows) S = std::max(S, r.size());
  Tree tr{torch::zeros({B, T}, torch::kInt64), torch::zeros({B, T}, torch::kInt64),
          torch::zeros({B, static_cast<int64_t>(S) + 1}, torch::kInt64), {}};
  for (int64_t b = 0; b < B; ++b) {
    const auto& nodes = rows[static_cast<size_t>(b)];
    std::vector<int64_t> start;
    std::vector<bool> has_child(nodes.size(), false);
    int64_t t = 0;
    for (size_t k = 0; k < nodes.size(); ++k) {
      start.push_back(t);
      tr.parents[b][static_cast<int64_t>(k) + 1] = nodes[k].parent;
      if (nodes[k].parent > 0) has_child[static_cast<size_t>(nodes[k].parent - 1)] = true;
      for (int64_t id : nodes[k].seq) {
        tr.ids[b][t] = id;
        tr.segments[b][t++] = static_cast<int64_t>(k) + 1;
      }
    }
    for (size_t k = 0; k < nodes.size(); ++k) {
      if (has_child[k]) continue;
      std::vector<size_t> chain;
      for (int64_t n = static_cast<int64_t>(k) + 1; n > 0; n = nodes[static_cast<size_t>(n - 1)].parent)
        chain.insert(chain.begin(), static_cast<size_t>(n - 1));
      Tree::Path path{b, {}, {}};
      for (size_t n : chain)
        for (size_t i = 0; i < nodes[n].seq.size(); ++i) {
          path.columns.push_back(start[n] + static_cast<int64_t>(i));
          path.seq.push_back(nodes[n].seq[i]);
        }
      tr.paths.push_back(path);
    }
  }
  return tr;
}

// Row 0: a prompt with two answers (a pair as collate_pairs lays it out) and an unrelated sequence;
// row 1: two levels of sharing (x -> c -> d, e; x -> f). Paths of 6..12 tokens: past the sliding
// window (8), and no tree straddles phi3's longrope switch at 16.
Tree tree_layout() {
  std::mt19937 rng(11);
  auto s = [&](int64_t n) { return random_ids(n, rng); };
  return tree({{{0, s(6)}, {1, s(5)}, {1, s(4)}, {0, s(7)}},
               {{0, s(3)}, {1, s(4)}, {2, s(5)}, {2, s(2)}, {1, s(3)}}},
              24);
}

TEST_P(PackedForward, PrefixTreePathsEqualEachSequenceAlone) {
  torch::NoGradGuard no_grad;
  const Tree tr = tree_layout();
  torch::Tensor cols = packed_predictor_columns(tr.segments, tr.parents);  // [B, T]
  const int64_t T = tr.ids.size(1);
  // Every token with a predictor, as selected_token_outputs takes them.
  torch::Tensor has = (cols >= 0).reshape({-1});
  torch::Tensor cells = has.nonzero().squeeze(1);
  torch::Tensor from = (cols + torch::arange(tr.ids.size(0)).view({-1, 1}) * T).reshape({-1}).index_select(0, cells);
  torch::Tensor targets = tr.ids.reshape({-1}).index_select(0, cells);
  for (const Precision& prec : kPrecisions) {
    CausalLM model = load(wide_model(GetParam(), prec.std), prec);
    for (AttentionImpl impl : {AttentionImpl::kReference, AttentionImpl::kSdpa}) {
      model->set_attention_impl(impl);
      const double tol = impl == AttentionImpl::kReference ? prec.tol : 1e-4;
      torch::Tensor hidden = model->forward_packed(tr.ids, tr.segments, tr.parents);  // [B, T, D]
      torch::Tensor lp = torch::zeros({tr.ids.numel()}, hidden.options())
                             .index_copy(0, cells,
                                         selected_token_outputs(model, hidden, from, targets, false,
                                                                false)
                                             .logps)
                             .view(tr.ids.sizes());  // [B, T]: log p of the token at each column
      for (const auto& path : tr.paths) {
        const int64_t n = static_cast<int64_t>(path.seq.size());
        torch::Tensor at = torch::tensor(path.columns, torch::kInt64);
        EXPECT_LE(max_diff(hidden[path.row].index_select(0, at), alone_hidden(model, path.seq)), tol)
            << "row " << path.row << " path of " << n << " " << prec.dtype;
        EXPECT_LE(max_diff(lp[path.row].index_select(0, at.narrow(0, 1, n - 1)),
                           alone_logps(model, path.seq)),
                  tol)
            << "row " << path.row << " path of " << n << " " << prec.dtype;
      }
    }
  }
}

// Rows longer than one query block (128): the reference attention computes each block only
// against the keys from the first one its queries see up to its own last column. In fp64 it must
// equal the fused kernel's full masked computation, for padded rows of different lengths and for
// prefix trees packed side by side (the later tree's blocks skip the earlier one).
TEST(PackedForward, LongRowsSkipNoVisibleKey) {
  torch::NoGradGuard no_grad;
  for (const char* arch : {"llama", "mistral", "qwen3"}) {
    CausalLM model = load(wide_model(arch, 0.3), kPrecisions[1]);
    std::mt19937 rng(17);
    auto s = [&](int64_t n) { return random_ids(n, rng); };
    // Padded: 300, 170 and 40 tokens.
    std::vector<std::vector<int64_t>> seqs = {s(300), s(170), s(40)};
    torch::Tensor ids = torch::zeros({3, 300}, torch::kInt64), mask = torch::zeros_like(ids);
    for (int64_t b = 0; b < 3; ++b)
      for (size_t t = 0; t < seqs[static_cast<size_t>(b)].size(); ++t) {
        ids[b][static_cast<int64_t>(t)] = seqs[static_cast<size_t>(b)][t];
        mask[b][static_cast<int64_t>(t)] = 1;
      }
    const Tree tr = tree({{{0, s(90)}, {1, s(60)}, {1, s(70)}, {0, s(50)}, {4, s(80)}, {4, s(20)}}}, 380);
    std::vector<torch::Tensor> got[2];
    for (AttentionImpl impl : {AttentionImpl::kReference, AttentionImpl::kSdpa}) {
      model->set_attention_impl(impl);
      got[impl == AttentionImpl::kSdpa].push_back(model->forward(ids, mask));
      got[impl == AttentionImpl::kSdpa].push_back(model->forward_packed(tr.ids, tr.segments, tr.parents));
    }
    for (int64_t b = 0; b < 3; ++b) {
      const int64_t n = static_cast<int64_t>(seqs[static_cast<size_t>(b)].size());
      EXPECT_LE(max_diff(got[0][0][b].narrow(0, 0, n), got[1][0][b].narrow(0, 0, n)), 1e-10) << arch << " row " << b;
    }
    EXPECT_LE(max_diff(got[0][1].narrow(1, 0, 370), got[1][1].narrow(1, 0, 370)), 1e-10) << arch << " tree";
    for (const auto& path : tr.paths)
      EXPECT_LE(max_diff(got[0][1][0].index_select(0, torch::tensor(path.columns, torch::kInt64)),
                         alone_hidden(model, path.seq)),
                1e-10)
          << arch;
  }
}

TEST(PackedForwardErrors, PrefixTreeParentsMustComeFirstAndBeInTheRow) {
  CausalLM model = load_model(wide_model("llama", 0.02), torch::kCPU, torch::kFloat32);
  torch::Tensor ids = torch::ones({1, 6}, torch::kInt64);
  torch::Tensor seg = torch::tensor({1, 1, 2, 2, 3, 3}, torch::kInt64).view({1, 6});
  // Segment 1 continues segment 2, which comes after it.
  std::string m = test::error_of(
      [&] { model->forward_packed(ids, seg, torch::tensor({0, 2, 0, 1}).view({1, 4})); });
  EXPECT_NE(m.find("segment 1 of row 0 continues segment 2, which does not end before it starts"),
            std::string::npos)
      << m;
  m = test::error_of(
      [&] { model->forward_packed(ids, seg, torch::tensor({0, 0, 0, 5, 0, 0}).view({1, 6})); });
  EXPECT_NE(m.find("segment 3 of row 0 continues segment 5, which is not in that row"),
            std::string::npos)
      << m;
  m = test::error_of([&] { model->forward_packed(ids, seg, torch::tensor({0, 0}).view({1, 2})); });
  EXPECT_NE(m.find("parents shape"), std::string::npos) << m;
}

// A length-dependent rope (phi3's longrope switches tables at 16 tokens) cannot share a prefix
// between a 10- and a 20-token sequence: refused, naming both lengths. Two branches on the same
// side of the switch are fine and exact.
TEST(PackedForwardErrors, PrefixTreeRefusesBranchesOnBothSidesOfALongropeSwitch) {
  torch::NoGradGuard no_grad;
  CausalLM model = load(wide_model("phi3", 0.1), kPrecisions[0]);
  std::mt19937 rng(3);
  auto s = [&](int64_t n) { return random_ids(n, rng); };
  const Tree bad = tree({{{0, s(6)}, {1, s(4)}, {1, s(14)}}}, 24);
  std::string m = test::error_of([&] { model->forward_packed(bad.ids, bad.segments, bad.parents); });
  EXPECT_NE(m.find("shared by sequences of 10 and 20 tokens"), std::string::npos) << m;
  const Tree good = tree({{{0, s(10)}, {1, s(8)}, {1, s(12)}}}, 30);
  torch::Tensor hidden = model->forward_packed(good.ids, good.segments, good.parents);
  for (const auto& path : good.paths)
    EXPECT_LE(max_diff(hidden[0].index_select(0, torch::tensor(path.columns, torch::kInt64)),
                       alone_hidden(model, path.seq)),
              1e-5);
}

// ---- KV cache ----

// Prompts of different lengths (left-padded into one batch) continued by `steps` tokens each, one
// per call; every step's logits must equal a full forward() of the row's sequence so far. Halfway,
// one row leaves the batch (select_rows), as finished rows do in generate().
void check_cached_decoding(CausalLM& model, const std::vector<int64_t>& lengths, int64_t steps,
                           double tol, const std::string& what) {
  torch::NoGradGuard no_grad;
  std::mt19937 rng(9);
  std::vector<std::vector<int64_t>> seqs;
  for (int64_t n : lengths) seqs.push_back(random_ids(n, rng));
  const int64_t B = static_cast<int64_t>(seqs.size());
  int64_t P = 0;
  for (const auto& s : seqs) P = std::max<int64_t>(P, static_cast<int64_t>(s.size()));
  torch::Tensor ids = torch::zeros({B, P}, torch::kInt64),
                mask = torch::zeros({B, P}, torch::kInt64);
  for (int64_t b = 0; b < B; ++b) {
    const auto& s = seqs[static_cast<size_t>(b)];
    const int64_t pad = P - static_cast<int64_t>(s.size());
    for (size_t t = 0; t < s.size(); ++t) {
      ids[b][pad + static_cast<int64_t>(t)] = s[t];
      mask[b][pad + static_cast<int64_t>(t)] = 1;
    }
  }
  KVCache cache;
  torch::Tensor hidden = model->forward_cached(ids, mask, cache);  // [B, P, D]
  ASSERT_EQ(cache.length, P);
  // Prefill: every real token's hidden state equals the unpadded forward's.
  for (int64_t b = 0; b < B; ++b) {
    const auto& s = seqs[static_cast<size_t>(b)];
    const int64_t n = static_cast<int64_t>(s.size());
    EXPECT_LE(max_diff(hidden[b].narrow(0, P - n, n), alone_hidden(model, s)), tol)
        << what << " prefill row " << b;
  }
  torch::Tensor last = hidden.select(1, P - 1);  // [B, D]
  std::vector<int64_t> live(static_cast<size_t>(B));
  std::iota(live.begin(), live.end(), 0);
  for (int64_t step = 0; step <= steps; ++step) {
    torch::Tensor logits = model->lm_logits(last);  // [B', V]
    for (size_t i = 0; i < live.size(); ++i) {
      const auto& s = seqs[static_cast<size_t>(live[i])];
      torch::Tensor want = model->lm_logits(alone_hidden(model, s)[-1]);  // [V]
      EXPECT_LE(max_diff(logits[static_cast<int64_t>(i)], want), tol)
          << what << " step " << step << " row " << live[i] << " length " << s.size();
    }
    if (step == steps) break;
    if (step == steps / 2 && live.size() > 1) {  // row 1 finishes
      live.erase(live.begin() + 1);
      torch::Tensor keep = torch::tensor(std::vector<int64_t>{0}, torch::kInt64);
      for (int64_t i = 2; i < B; ++i) keep = torch::cat({keep, torch::tensor({i})});
      cache.select_rows(keep);
      mask = mask.index_select(0, keep);
    }
    const int64_t Bl = static_cast<int64_t>(live.size());
    std::vector<int64_t> next = random_ids(Bl, rng);
    for (size_t i = 0; i < live.size(); ++i) seqs[static_cast<size_t>(live[i])].push_back(next[i]);
    mask = torch::cat({mask, torch::ones({Bl, 1}, torch::kInt64)}, 1);
    last = model->forward_cached(torch::tensor(next, torch::kInt64).view({Bl, 1}), mask, cache)
               .select(1, 0);
  }
}

class KVCacheDecode : public ::testing::TestWithParam<std::string> {};

// Lengths 5..15 growing to 14..24: past the sliding window (8) and across phi3's longrope switch
// at 16 tokens.
TEST_P(KVCacheDecode, StepsEqualFullForward) {
  for (const Precision& prec : kPrecisions) {
    CausalLM model = load(wide_model(GetParam(), prec.std), prec);
    for (AttentionImpl impl : {AttentionImpl::kReference, AttentionImpl::kSdpa}) {
      model->set_attention_impl(impl);
      check_cached_decoding(model, {5, 12, 15, 9}, 9,
                            impl == AttentionImpl::kReference ? prec.tol : 1e-4,
                            GetParam() + (impl == AttentionImpl::kSdpa ? " sdpa " : " reference ") +
                                c10::toString(prec.dtype));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(KVCache, KVCacheDecode, ::testing::ValuesIn(tiny_arches()),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '.', '_');
                           return name;
                         });

// Dynamic NTK changes the table at every length past max_position_embeddings: the cache is rebuilt
// from its ids whenever a row's table changes, so steps still equal the full forward.
TEST(KVCacheRope, DynamicAndLongropeTablesFollowTheLength) {
  std::vector<double> short_f, long_f;
  for (int i = 0; i < 4; ++i) {  // rotary_dim 16 / 2 = 8 factors
    short_f.insert(short_f.end(), {1.0 + 0.1 * i, 1.05 + 0.1 * i});
    long_f.insert(long_f.end(), {2.0 + 1.5 * i, 2.5 + 1.5 * i});
  }
  const std::vector<std::pair<nlohmann::json, int64_t>> ropes = {
      {{{"rope_type", "dynamic"}, {"factor", 2.0}}, 16},
      {{{"rope_type", "longrope"},
        {"original_max_position_embeddings", 16},
        {"short_factor", short_f},
        {"long_factor", long_f}},
       256}};
  for (const Precision& prec : kPrecisions)
    for (const auto& [rope, max_pos] : ropes) {
      const std::string what =
          rope["rope_type"].get<std::string>() + " " + std::string(c10::toString(prec.dtype));
      CausalLM m = load(llama_with_rope(rope, max_pos, prec.std), prec);
      check_cached_decoding(m, {6, 14, 11}, 8, prec.tol, what);
      // Packed rows: each segment's own length picks its table.
      torch::NoGradGuard no_grad;
      const Packing p = layouts()[0];
      torch::Tensor lp = next_token_logprobs_from_hidden(m, m->forward_packed(p.ids, p.segments),
                                                         p.ids, packed_target_mask(p.segments))
                             .logps;
      for (const auto& place : p.places) {
        const int64_t n = static_cast<int64_t>(place.seq.size());
        EXPECT_LE(max_diff(lp[place.row].narrow(0, place.start, n - 1), alone_logps(m, place.seq)),
                  prec.tol)
            << what;
      }
    }
}

TEST(KVCacheErrors, MaskMustCoverCacheAndNewTokens) {
  CausalLM model = load_model(wide_model("qwen2", 0.02), torch::kCPU, torch::kFloat32);
  torch::NoGradGuard no_grad;
  KVCache cache;
  torch::Tensor ids = torch::ones({2, 4}, torch::kInt64);
  model->forward_cached(ids, torch::ones({2, 4}, torch::kInt64), cache);
  std::string m = test::error_of([&] {
    model->forward_cached(torch::ones({2, 1}, torch::kInt64), torch::ones({2, 4}, torch::kInt64),
                          cache);
  });
  EXPECT_NE(m.find("attention_mask"), std::string::npos) << m;
  EXPECT_NE(m.find("5"), std::string::npos) << m;
}

}  // namespace
}  // namespace treg
