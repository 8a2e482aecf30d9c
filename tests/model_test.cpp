// The decoder against an independent reference (scripts/ref_model.py in Debian's python3-torch),
// gradient checkpointing, finite differences, chunked log-probs, and strict loading.
#include "treg/model.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <tuple>

#include "model/layers.h"
#include "test_util.h"
#include "treg/autocast.h"
#include "treg/error.h"
#include "treg/io.h"
#include "treg/safetensors.h"
#include "treg/tiny_tokenizer.h"

namespace treg {
namespace {

// A tiny checkpoint with a wide init (std 0.3) so log-probs spread over many nats and every
// architectural detail moves them; the tokenizer is not needed here.
std::string make_model(const std::string& arch, double std = 0.3, uint64_t seed = 7) {
  std::string dir = test::fresh_dir("model-" + arch + "-" + std::to_string(seed) + "-" +
                                    std::to_string(::getpid()));
  std::string out;
  int rc = test::run_command(test::treg_binary() + " make-tiny --arch " + arch + " --seed " +
                                 std::to_string(seed) + " --init-std " + std::to_string(std) +
                                 " --out '" + dir + "'",
                             &out);
  if (rc != 0) throw std::runtime_error("make-tiny failed: " + out);
  return dir;
}

std::vector<std::vector<double>> read_lp(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::vector<double>> out;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty())
      out.push_back(nlohmann::json::parse(line)["logprobs"].get<std::vector<double>>());
  return out;
}

// Sequences of different lengths (right padding inside a batch), one longer than the sliding window
// (8), one of length 2, one of length 1 (no log-probs).
std::vector<std::vector<int64_t>> sample_ids(int64_t vocab) {
  std::mt19937 rng(11);
  std::vector<std::vector<int64_t>> seqs;
  for (int n : {23, 5, 12, 2, 31, 1, 9}) {
    std::vector<int64_t> s(n);
    for (auto& id : s) id = static_cast<int64_t>(rng() % static_cast<uint32_t>(vocab));
    seqs.push_back(s);
  }
  return seqs;
}

std::string write_ids(const std::string& dir, const std::vector<std::vector<int64_t>>& seqs) {
  std::string text;
  for (const auto& s : seqs) text += nlohmann::json({{"ids", s}}).dump() + "\n";
  std::string path = path_join(dir, "in.jsonl");
  write_file_atomic(path, text);
  return path;
}

// Runs `treg logprobs` (batched, right-padded) and the python reference; returns the max abs diff.
double golden_diff(const std::string& model_dir, const std::string& extra_flags = "") {
  std::string dir = test::fresh_dir(
      "golden-" + std::to_string(std::hash<std::string>()(model_dir + extra_flags)));
  std::string in = write_ids(dir, sample_ids(256));
  std::string out_treg = path_join(dir, "treg.jsonl"), out_ref = path_join(dir, "ref.jsonl"), log;
  int rc = test::run_command(test::treg_binary() + " logprobs --model '" + model_dir +
                                 "' --input " + in + " --out " + out_treg + " " +
                                 (extra_flags.empty() ? "--batch-size 4" : extra_flags),
                             &log);
  EXPECT_EQ(rc, 0) << log;
  rc = test::run_command(test::python_with_torch() + " " +
                             test::source_path("scripts/ref_model.py") + " '" + model_dir + "' " +
                             in + " " + out_ref,
                         &log);
  EXPECT_EQ(rc, 0) << log;
  auto a = read_lp(out_treg), b = read_lp(out_ref);
  EXPECT_EQ(a.size(), 7u);
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    EXPECT_EQ(a[i].size(), b[i].size());
    for (size_t t = 0; t < std::min(a[i].size(), b[i].size()); ++t)
      worst = std::max(worst, std::abs(a[i][t] - b[i][t]));
  }
  return worst;
}

TEST(ModelGolden, Llama) { EXPECT_LE(golden_diff(make_model("llama")), 1e-4); }
TEST(ModelGolden, LlamaTiedWithLlama3RopeScaling) {
  EXPECT_LE(golden_diff(make_model("llama3.2")), 1e-4);
}
TEST(ModelGolden, MistralSlidingWindow) { EXPECT_LE(golden_diff(make_model("mistral")), 1e-4); }
TEST(ModelGolden, Qwen2) { EXPECT_LE(golden_diff(make_model("qwen2")), 1e-4); }
TEST(ModelGolden, Gemma2) { EXPECT_LE(golden_diff(make_model("gemma2")), 1e-4); }
TEST(ModelGolden, Gemma2SmallChunksBatchOne) {
  EXPECT_LE(golden_diff(make_model("gemma2"), "--batch-size 1 --chunk-tokens 3"), 1e-4);
}

TEST(ModelGolden, Qwen3QkNorm) { EXPECT_LE(golden_diff(make_model("qwen3")), 1e-4); }
TEST(ModelGolden, Gemma3LocalAndGlobalRope) { EXPECT_LE(golden_diff(make_model("gemma3")), 1e-4); }
// Longrope switches factors at 16 tokens; batched rows of 5..31 tokens each get their own table.
TEST(ModelGolden, Phi3FusedLongropePartialRotary) {
  EXPECT_LE(golden_diff(make_model("phi3")), 1e-4);
  EXPECT_LE(golden_diff(make_model("phi3"), "--batch-size 1"), 1e-4);
}

// A Llama tiny model with its rope rewritten to `rope` (the transformers 4 spelling) and
// max_position_embeddings set; sample_ids' 23- and 31-token rows cross the 16-token contexts.
std::string llama_with_rope(const nlohmann::json& rope, int64_t max_pos) {
  std::string dir = make_model("llama");
  auto config = nlohmann::json::parse(read_file(path_join(dir, "config.json")));
  config["rope_scaling"] = rope;
  config["max_position_embeddings"] = max_pos;
  write_file_atomic(path_join(dir, "config.json"), config.dump(2));
  return dir;
}

TEST(ModelGolden, RopeTypes) {
  std::vector<double> short_f, long_f;
  for (int i = 0; i < 4; ++i) {  // rotary_dim 16 / 2 = 8 factors
    short_f.insert(short_f.end(), {1.0 + 0.1 * i, 1.05 + 0.1 * i});
    long_f.insert(long_f.end(), {2.0 + 1.5 * i, 2.5 + 1.5 * i});
  }
  const std::vector<std::tuple<std::string, nlohmann::json, int64_t>> cases = {
      {"linear", {{"rope_type", "linear"}, {"factor", 4.0}}, 1024},
      {"dynamic", {{"rope_type", "dynamic"}, {"factor", 2.0}}, 16},
      {"yarn",
       {{"rope_type", "yarn"},
        {"factor", 8.0},
        {"original_max_position_embeddings", 16},
        {"beta_fast", 16},
        {"beta_slow", 2}},
       1024},
      {"yarn-mscale",
       {{"type", "yarn"},
        {"factor", 4.0},
        {"original_max_position_embeddings", 16},
        {"mscale", 0.707},
        {"mscale_all_dim", 1.0}},
       1024},
      {"longrope",
       {{"rope_type", "longrope"},
        {"original_max_position_embeddings", 16},
        {"short_factor", short_f},
        {"long_factor", long_f}},
       256},
  };
  for (const auto& [name, rope, max_pos] : cases) {
    std::string dir = llama_with_rope(rope, max_pos);
    EXPECT_LE(golden_diff(dir), 1e-4) << name;
    EXPECT_EQ(load_model_args(dir).rope.type, name == "yarn-mscale" ? "yarn" : name);
  }
}

// transformers 5 writes Gemma-3's rope as rope_parameters nested per layer type; transformers 4 as
// rope_theta + rope_scaling (global) + rope_local_base_freq. Both read the same.
TEST(ModelArgs, Gemma3RopeSpellingsAgree) {
  auto v4 = nlohmann::json::parse(read_file(path_join(make_model("gemma3"), "config.json")));
  auto v5 = v4;
  for (const char* k : {"rope_theta", "rope_scaling", "rope_local_base_freq"}) v5.erase(k);
  v5["rope_parameters"] = {
      {"full_attention", {{"rope_type", "linear"}, {"factor", 8.0}, {"rope_theta", 1e6}}},
      {"sliding_attention", {{"rope_type", "default"}, {"rope_theta", 10000.0}}}};
  for (const auto& c : {v4, v5}) {
    ModelArgs a = model_args_from_json(c, "config.json");
    EXPECT_TRUE(a.has_local_rope);
    EXPECT_TRUE(a.qk_norm);
    EXPECT_EQ(a.rope.type, "linear");
    EXPECT_DOUBLE_EQ(a.rope.factor, 8.0);
    EXPECT_DOUBLE_EQ(a.rope.theta, 1e6);
    EXPECT_EQ(a.local_rope.type, "");
    EXPECT_DOUBLE_EQ(a.local_rope.theta, 10000.0);
    EXPECT_EQ(a.layer_sliding, (std::vector<bool>{true, false, true, false}));
  }
}

TEST(ModelArgs, RopeErrorsNameTheProblem) {
  auto c = nlohmann::json::parse(read_file(path_join(make_model("phi3"), "config.json")));
  auto expect_error = [](const nlohmann::json& cfg, const std::string& want) {
    try {
      model_args_from_json(cfg, "cfg.json");
      ADD_FAILURE() << "no error for " << want;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
  };
  auto bad = c;
  bad["rope_scaling"]["short_factor"] = {1.0, 2.0};
  expect_error(bad, "short_factor");
  bad = c;
  bad["rope_scaling"] = {{"rope_type", "ntk-by-parts"}, {"factor", 2.0}};
  expect_error(bad, "supported: default, linear, llama3, dynamic, yarn, longrope");
  bad = c;
  bad["partial_rotary_factor"] = 0.3;  // 16 * 0.3 = 4.8 -> 4 dims, but factors are for 12
  expect_error(bad, "short_factor");
  bad = c;
  bad["partial_rotary_factor"] = 0.1;  // 1 dim: odd
  expect_error(bad, "partial_rotary_factor");
  auto mm = c;
  mm["model_type"] = "gemma3";
  mm["text_config"] = nlohmann::json::object();
  expect_error(mm, "gemma3_text");
}

TEST(ModelGolden, ShardedCheckpointLoadsTheSame) {
  std::string src = make_model("qwen2");
  CausalLM model = load_model(src, torch::kCPU, torch::kFloat32);
  std::string dir = test::fresh_dir("qwen2-sharded");
  save_model(model, dir, torch::kFloat32, /*max_shard_bytes=*/64 * 1024);
  EXPECT_TRUE(file_exists(path_join(dir, "model.safetensors.index.json")));
  auto index = nlohmann::json::parse(read_file(path_join(dir, "model.safetensors.index.json")));
  std::set<std::string> shards;
  for (const auto& [key, file] : index["weight_map"].items())
    shards.insert(file.get<std::string>());
  EXPECT_GE(shards.size(), 3u);
  for (const auto& s : shards) EXPECT_TRUE(file_exists(path_join(dir, s))) << s;
  EXPECT_FALSE(file_exists(path_join(dir, "model.safetensors")));
  EXPECT_LE(golden_diff(dir), 1e-4);  // the python reader follows the index on its own
}

// ---- args ----

TEST(ModelArgs, ArchitectureFieldsFromConfig) {
  ModelArgs g = load_model_args(make_model("gemma2"));
  EXPECT_EQ(g.num_layers, 4);
  EXPECT_EQ(g.head_dim, 16);
  EXPECT_DOUBLE_EQ(g.embed_scale, 8.0);
  EXPECT_DOUBLE_EQ(g.norm_offset, 1.0);
  EXPECT_TRUE(g.post_norms);
  EXPECT_TRUE(g.tie_embeddings);
  EXPECT_DOUBLE_EQ(g.attn_softcap, 8.0);
  EXPECT_DOUBLE_EQ(g.final_softcap, 4.0);
  EXPECT_DOUBLE_EQ(g.query_scale, 1.0 / std::sqrt(24.0));
  EXPECT_EQ(g.sliding_window, 8);
  EXPECT_EQ(g.layer_sliding, (std::vector<bool>{true, false, true, false}));
  EXPECT_EQ(g.hidden_act, HiddenAct::kGeluTanh);

  ModelArgs q = load_model_args(make_model("qwen2"));
  EXPECT_TRUE(q.qkv_bias);
  EXPECT_FALSE(q.o_bias);
  EXPECT_FALSE(q.uses_sliding_window(0));
  ModelArgs l = load_model_args(make_model("llama3.2"));
  EXPECT_EQ(l.rope.type, "llama3");
  EXPECT_EQ(l.rope.original_max_position_embeddings, 32);
  EXPECT_TRUE(l.tie_embeddings);
  EXPECT_EQ(l.vocab_size, write_tiny_tokenizer("llama", test::fresh_dir("vocab-check-l")));
}

TEST(ModelArgs, UnsupportedModelTypeNamesSupportedOnes) {
  nlohmann::json c =
      nlohmann::json::parse(read_file(path_join(make_model("llama"), "config.json")));
  c["model_type"] = "gpt_neox";
  try {
    model_args_from_json(c, "cfg.json");
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("cfg.json"), std::string::npos) << m;
    EXPECT_NE(m.find("gpt_neox"), std::string::npos) << m;
    for (const char* t : {"llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3_text", "phi3"})
      EXPECT_NE(m.find(t), std::string::npos) << m;
  }
  c["model_type"] = "llama";
  c.erase("hidden_size");
  EXPECT_THROW(model_args_from_json(c, "cfg.json"), Error);
}

// ---- strict loading ----

std::string expect_load_error(const std::string& dir) {
  try {
    load_model(dir, torch::kCPU, torch::kFloat32);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "load_model did not fail for " << dir;
  return "";
}

NamedTensors read_all(const std::string& dir) {
  SafetensorsCheckpoint ckpt(dir);
  NamedTensors out;
  for (const auto& k : ckpt.keys()) out.emplace_back(k, ckpt.load(k, torch::kFloat32));
  return out;
}

TEST(ModelLoad, MissingUnexpectedAndMisShapedKeysAreListed) {
  std::string src = make_model("llama", 0.02, 1);
  NamedTensors all = read_all(src);
  auto copy_dir = [&](const std::string& name, const NamedTensors& tensors) {
    std::string dir = test::fresh_dir(name);
    write_file_atomic(path_join(dir, "config.json"), read_file(path_join(src, "config.json")));
    save_safetensors(path_join(dir, "model.safetensors"), tensors);
    return dir;
  };
  NamedTensors missing;
  for (const auto& [k, t] : all)
    if (k != "model.layers.1.mlp.up_proj.weight" && k != "lm_head.weight")
      missing.emplace_back(k, t);
  std::string m = expect_load_error(copy_dir("load-missing", missing));
  EXPECT_NE(m.find("missing keys (2)"), std::string::npos) << m;
  EXPECT_NE(m.find("model.layers.1.mlp.up_proj.weight"), std::string::npos) << m;
  EXPECT_NE(m.find("lm_head.weight"), std::string::npos) << m;

  NamedTensors extra = all;
  extra.emplace_back("model.layers.2.self_attn.q_proj.weight", torch::zeros({64, 64}));
  m = expect_load_error(copy_dir("load-unexpected", extra));
  EXPECT_NE(m.find("unexpected keys (1)"), std::string::npos) << m;
  EXPECT_NE(m.find("model.layers.2.self_attn.q_proj.weight"), std::string::npos) << m;

  NamedTensors shaped = all;
  for (auto& [k, t] : shaped)
    if (k == "model.layers.0.self_attn.k_proj.weight") t = torch::zeros({64, 64});
  m = expect_load_error(copy_dir("load-shape", shaped));
  EXPECT_NE(m.find("model.layers.0.self_attn.k_proj.weight: model expects [32, 64]"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("has [64, 64]"), std::string::npos) << m;

  // A tokenizer/model vocab mismatch is visible as args().vocab_size (and as an embed shape error).
  CausalLM model = load_model(src, torch::kCPU, torch::kFloat32);
  const int64_t tok_vocab = write_tiny_tokenizer("llama", test::fresh_dir("vocab-check"));
  EXPECT_EQ(model->args().vocab_size, tok_vocab);
  EXPECT_EQ(model->lm_head_weight().size(0), tok_vocab);
}

TEST(ModelLoad, ParameterNamesAreHuggingFaceKeys) {
  std::string dir = make_model("gemma2", 0.02, 1);
  CausalLM model = load_model(dir, torch::kCPU, torch::kFloat32);
  std::vector<std::string> names;
  for (const auto& p : model->named_parameters()) names.push_back(p.key());
  EXPECT_EQ(names.size(), 2u + 4 * 11);  // embed, final norm; per layer 4 proj + 3 mlp + 4 norms
  std::vector<std::string> keys = SafetensorsCheckpoint(dir).keys();
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, keys);
  EXPECT_NE(std::find(keys.begin(), keys.end(), "model.layers.3.post_feedforward_layernorm.weight"),
            keys.end());
}

TEST(ModelLoad, CliRejectsBadInputWithFileAndLine) {
  std::string model = make_model("llama", 0.02, 1);
  std::string dir = test::fresh_dir("cli-bad-input");
  std::string in = path_join(dir, "in.jsonl"), out;
  write_file_atomic(in, "{\"ids\":[1,2,3]}\n{\"ids\":[1,\"x\"]}\n");
  int rc = test::run_command(test::treg_binary() + " logprobs --model " + model + " --input " + in +
                                 " --out " + path_join(dir, "o.jsonl"),
                             &out);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find(in + ":2"), std::string::npos) << out;
  const std::string too_big = std::to_string(load_model_args(model).vocab_size);
  write_file_atomic(in, "{\"ids\":[1,2,3]}\n\n{\"ids\":[1," + too_big + "]}\n");
  rc = test::run_command(test::treg_binary() + " logprobs --model " + model + " --input " + in +
                             " --out " + path_join(dir, "o.jsonl"),
                         &out);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find(in + ":3"), std::string::npos) << out;
  EXPECT_NE(out.find(too_big), std::string::npos) << out;
  EXPECT_FALSE(file_exists(path_join(dir, "o.jsonl")));
  write_file_atomic(in, "not json\n");
  rc = test::run_command(test::treg_binary() + " logprobs --model " + model + " --input " + in +
                             " --out " + path_join(dir, "o.jsonl"),
                         &out);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find(in + ":1"), std::string::npos) << out;
}

// ---- gradients ----

struct Batch {
  torch::Tensor ids, mask;  // [B, T]
};

Batch padded_batch(int64_t vocab) {
  std::vector<std::vector<int64_t>> seqs = {{3, 17, 42, 9, 100, 7, 7, 250, 1, 0, 33, 5},
                                            {8, 8, 120, 64, 2},
                                            {200, 1, 13, 99, 4, 4, 4, 71, 18, 6}};
  const int64_t B = static_cast<int64_t>(seqs.size()), T = 12;
  Batch b{torch::zeros({B, T}, torch::kInt64), torch::zeros({B, T}, torch::kInt64)};
  for (int64_t i = 0; i < B; ++i)
    for (size_t t = 0; t < seqs[i].size(); ++t) {
      b.ids[i][static_cast<int64_t>(t)] = seqs[i][t] % vocab;
      b.mask[i][static_cast<int64_t>(t)] = 1;
    }
  return b;
}

// A loss touching log-probs and the WPO squared mass with unequal per-token weights.
torch::Tensor test_loss(CausalLM& model, const Batch& b, int64_t chunk) {
  TokenLogprobs lp = next_token_logprobs(model, b.ids, b.mask, /*with_sq_mass=*/true, chunk);
  torch::Tensor w = torch::linspace(0.5, 1.5, lp.logps.size(1), lp.logps.options());
  return (lp.logps * w).sum() + 0.3 * (lp.log_sq_mass * w.flip(0)).sum();
}

std::map<std::string, torch::Tensor> grads_of(CausalLM& model, const Batch& b, bool checkpointing,
                                              int64_t chunk) {
  model->zero_grad();
  model->set_gradient_checkpointing(checkpointing);
  test_loss(model, b, chunk).backward();
  std::map<std::string, torch::Tensor> g;
  for (const auto& p : model->named_parameters()) g[p.key()] = p.value().grad().clone();
  return g;
}

class ModelGrad : public ::testing::TestWithParam<std::string> {};

TEST_P(ModelGrad, CheckpointingGivesIdenticalGradients) {
  CausalLM model = load_model(make_model(GetParam()), torch::kCPU, torch::kFloat32);
  Batch b = padded_batch(256);
  auto plain = grads_of(model, b, false, 1024);
  auto ckpt = grads_of(model, b, true, 1024);
  for (const auto& [k, g] : plain) {
    ASSERT_TRUE(ckpt[k].defined()) << k;
    EXPECT_GT(g.abs().max().item<double>(), 0) << k;
    EXPECT_LE((g - ckpt[k]).abs().max().item<double>(), 1e-6 * (1 + g.abs().max().item<double>()))
        << k;
  }
}

// Under bf16 autocast (the trainer's bf16 recipe) the backward runs after the autocast scope has
// closed; the recomputation must still run under the forward's autocast, or checkpointing would
// differentiate another function than the one whose loss was computed.
TEST_P(ModelGrad, CheckpointingUnderAutocastGivesIdenticalGradients) {
  CausalLM model = load_model(make_model(GetParam()), torch::kCPU, torch::kFloat32);
  Batch b = padded_batch(256);
  auto grads = [&](bool checkpointing) {
    model->zero_grad();
    model->set_gradient_checkpointing(checkpointing);
    torch::Tensor loss;
    {
      AutocastGuard autocast(torch::kCPU, true);
      loss = test_loss(model, b, 1024);
    }
    loss.backward();
    std::map<std::string, torch::Tensor> g;
    for (const auto& p : model->named_parameters()) g[p.key()] = p.value().grad().clone();
    return g;
  };
  auto plain = grads(false);
  auto ckpt = grads(true);
  for (const auto& [k, g] : plain) {
    ASSERT_TRUE(ckpt[k].defined()) << k;
    EXPECT_LE((g - ckpt[k]).abs().max().item<double>(), 1e-6 * (1 + g.abs().max().item<double>()))
        << k;
  }
}

TEST_P(ModelGrad, ChunkedLogprobsEqualUnchunkedReference) {
  CausalLM model = load_model(make_model(GetParam()), torch::kCPU, torch::kFloat32);
  Batch b = padded_batch(256);
  // Reference: full [B, T, V] logits, log_softmax, gather; autograd all the way.
  model->zero_grad();
  torch::Tensor hidden = model->forward(b.ids, b.mask);                  // [B, T, D]
  torch::Tensor lsm = torch::log_softmax(model->lm_logits(hidden), -1);  // [B, T, V]
  torch::Tensor ref =
      lsm.narrow(1, 0, 11).gather(2, b.ids.narrow(1, 1, 11).unsqueeze(2)).squeeze(2);  // [B, T-1]
  torch::Tensor valid = b.mask.narrow(1, 1, 11).to(torch::kFloat32);
  ref = ref * valid;
  torch::Tensor ref_sq =
      torch::log(lsm.exp().pow(2).sum(-1)).narrow(1, 0, 11) * valid;  // log sum_v p^2, directly
  torch::Tensor w = torch::linspace(0.5, 1.5, 11);
  ((ref * w).sum() + 0.3 * (ref_sq * w.flip(0)).sum()).backward();
  std::map<std::string, torch::Tensor> g_ref;
  for (const auto& p : model->named_parameters()) g_ref[p.key()] = p.value().grad().clone();

  for (int64_t chunk : {1, 4, 1024}) {
    model->zero_grad();
    TokenLogprobs lp = next_token_logprobs(model, b.ids, b.mask, true, chunk);
    EXPECT_LE((lp.logps - ref).abs().max().item<double>(), 1e-5) << chunk;
    EXPECT_LE((lp.log_sq_mass - ref_sq).abs().max().item<double>(), 1e-5) << chunk;
    EXPECT_EQ(lp.logps[1][6].item<double>(), 0.0);  // padding target
    ((lp.logps * w).sum() + 0.3 * (lp.log_sq_mass * w.flip(0)).sum()).backward();
    for (const auto& p : model->named_parameters()) {
      const torch::Tensor& g = g_ref[p.key()];
      EXPECT_LE((p.value().grad() - g).abs().max().item<double>(),
                1e-5 * (1 + g.abs().max().item<double>()))
          << p.key() << " chunk " << chunk;
    }
  }
}

// Under bf16 autocast the chunked log-probs differentiate what an autocast lm_head linear would:
// their backward's matmuls run in bf16 like the forward's (autograd runs backwards with autocast
// off, so the function restores the forward's state). Reference: unchunked logits under autocast,
// autograd all the way.
TEST_P(ModelGrad, ChunkedLogprobsUnderAutocastDifferentiateTheAutocastLinear) {
  CausalLM model = load_model(make_model(GetParam()), torch::kCPU, torch::kFloat32);
  Batch b = padded_batch(256);
  torch::Tensor w = torch::linspace(0.5, 1.5, 11);
  auto grads = [&](int64_t chunk) {
    model->zero_grad();
    torch::Tensor loss;
    {
      AutocastGuard autocast(torch::kCPU, true);
      torch::Tensor hidden = model->forward(b.ids, b.mask);  // [B, T, D]
      if (chunk == 0) {
        torch::Tensor lsm = torch::log_softmax(model->lm_logits(hidden).to(torch::kFloat32), -1);
        torch::Tensor lp = lsm.narrow(1, 0, 11).gather(2, b.ids.narrow(1, 1, 11).unsqueeze(2)).squeeze(2);
        loss = (lp * b.mask.narrow(1, 1, 11).to(torch::kFloat32) * w).sum();
      } else {
        loss = (next_token_logprobs_from_hidden(model, hidden, b.ids, b.mask, false, chunk).logps * w).sum();
      }
    }
    loss.backward();
    std::map<std::string, torch::Tensor> g;
    for (const auto& p : model->named_parameters()) g[p.key()] = p.value().grad().clone();
    return g;
  };
  auto ref = grads(0);
  // One chunk: the reference's ops in bf16, so within 1e-4 (the fp32 backward was ~1e-3 off).
  // Several chunks: each chunk's bf16 product is rounded before the fp32 sum, hence 5e-3.
  for (auto [chunk, tol] : {std::pair<int64_t, double>{1024, 1e-4}, {4, 5e-3}}) {
    auto got = grads(chunk);
    for (const auto& [k, g] : ref)
      EXPECT_LE((got[k] - g).norm().item<double>(), tol * g.norm().item<double>()) << k << " chunk " << chunk;
  }
}

TEST_P(ModelGrad, FiniteDifferencesInDoublePrecision) {
  CausalLM model = load_model(make_model(GetParam(), 0.3, 5), torch::kCPU, torch::kFloat64);
  model->set_gradient_checkpointing(true);
  Batch b = padded_batch(256);
  model->zero_grad();
  test_loss(model, b, /*chunk=*/5).backward();
  std::mt19937 rng(3);
  int checked = 0;
  for (const auto& p : model->named_parameters()) {
    // A few entries of every third parameter tensor, and always the embeddings and the last norm.
    if (checked++ % 3 != 0 && p.key() != "model.embed_tokens.weight" &&
        p.key() != "model.norm.weight")
      continue;
    torch::Tensor flat = p.value().view({-1});
    torch::Tensor grad = p.value().grad().view({-1});
    for (int k = 0; k < 2; ++k) {
      int64_t i = static_cast<int64_t>(rng() % static_cast<uint32_t>(flat.numel()));
      if (p.key() == "model.embed_tokens.weight") i = 42 * 64 + k;  // a row that is used
      const double eps = 1e-5;
      double orig = flat[i].item<double>();
      double up, down;
      {
        torch::NoGradGuard ng;
        flat[i] = orig + eps;
        up = test_loss(model, b, 5).item<double>();
        flat[i] = orig - eps;
        down = test_loss(model, b, 5).item<double>();
        flat[i] = orig;
      }
      double fd = (up - down) / (2 * eps), an = grad[i].item<double>();
      EXPECT_NEAR(an, fd, 1e-6 + 1e-5 * std::abs(fd)) << p.key() << "[" << i << "]";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Arch, ModelGrad,
                         ::testing::Values("llama", "llama3.2", "qwen2", "qwen3", "gemma2",
                                           "gemma3", "phi3"));

TEST(ModelAttention, FusedSdpaMatchesReference) {
  for (const char* arch : {"llama", "qwen2", "mistral"}) {
    CausalLM model = load_model(make_model(arch), torch::kCPU, torch::kFloat32);
    Batch b = padded_batch(256);
    torch::NoGradGuard ng;
    model->set_attention_impl(AttentionImpl::kReference);
    torch::Tensor ref = next_token_logprobs(model, b.ids, b.mask).logps;
    model->set_attention_impl(AttentionImpl::kSdpa);
    torch::Tensor fused = next_token_logprobs(model, b.ids, b.mask).logps;
    EXPECT_LE((fused - ref).abs().max().item<double>(), 1e-4) << arch;
  }
}

// Long batches go through attention_reference in query blocks; the blocks must give exactly the
// one-shot softmax(q k^T) v (written out here), values and gradients, with a mask, with softcap
// (scaled and masked scores) and without (the mask as a bias the score product adds onto), in
// fp64 and fp32.
TEST(ModelAttention, QueryBlocksEqualOneShotAttention) {
  torch::manual_seed(3);
  const int64_t B = 2, H = 4, T = 1100, E = 8;  // B*H*T*T = 9.7M score elements: 3 blocks
  torch::Tensor pos = torch::arange(T);
  torch::Tensor allowed = (pos.view({1, T}) <= pos.view({T, 1}))
                              .logical_and((pos.view({T, 1}) - pos.view({1, T})) < 700)
                              .view({1, 1, T, T})
                              .expand({B, 1, T, T})
                              .clone();
  allowed.index_put_({1, 0, torch::indexing::Slice(), torch::indexing::Slice(900)}, false);
  allowed.index_put_({1, 0, torch::indexing::Slice(900), 0}, true);  // padded rows keep one key
  for (auto dtype : {torch::kFloat64, torch::kFloat32}) {
    const bool f64 = dtype == torch::kFloat64;
    auto opts = torch::TensorOptions().dtype(dtype);
    // Transposed views of [B, T, H, E], as the attention layer passes them (not contiguous).
    auto heads = [&] { return torch::randn({B, T, H, E}, opts).requires_grad_().transpose(1, 2); };
    torch::Tensor q = heads(), k = heads(), v = heads();
    ASSERT_FALSE(k.is_contiguous());
    for (double softcap : {5.0, 0.0}) {
      const std::string what = std::string(f64 ? "fp64" : "fp32") + " softcap " +
                               std::to_string(softcap);
      const double scale = 0.3;
      torch::Tensor got = model::attention_reference(q, k, v, allowed, scale, softcap);
      torch::Tensor s = torch::matmul(q, k.transpose(-2, -1)) * scale;
      if (softcap > 0) s = torch::tanh(s / softcap) * softcap;
      s = s.masked_fill(allowed.logical_not(), -std::numeric_limits<double>::infinity());
      torch::Tensor want = torch::matmul(torch::softmax(s, -1), v);
      EXPECT_LE((got - want).abs().max().item<double>(), f64 ? 1e-12 : 1e-6) << what;
      torch::Tensor w = torch::randn({B, H, T, E}, opts);
      auto g_got = torch::autograd::grad({(got * w).sum()}, {q, k, v});
      auto g_want = torch::autograd::grad({(want * w).sum()}, {q, k, v});
      for (size_t i = 0; i < 3; ++i)
        EXPECT_LE((g_got[i] - g_want[i]).abs().max().item<double>(), f64 ? 1e-10 : 1e-5)
            << what << " grad " << i;
    }
  }
}

TEST(ModelSave, RoundTripKeepsConfigAndGenerationConfig) {
  std::string src = make_model("gemma2", 0.02, 2);
  CausalLM model = load_model(src, torch::kCPU, torch::kFloat32);
  std::string dir = test::fresh_dir("gemma2-bf16");
  write_file_atomic(path_join(dir, "generation_config.json"), "{\"marker\": 1}\n");
  save_model(model, dir, torch::kBFloat16);
  auto config = nlohmann::json::parse(read_file(path_join(dir, "config.json")));
  EXPECT_EQ(config["torch_dtype"], "bfloat16");
  EXPECT_EQ(config["model_type"], "gemma2");
  EXPECT_EQ(config["architectures"][0], "Gemma2ForCausalLM");
  EXPECT_EQ(read_file(path_join(dir, "generation_config.json")), "{\"marker\": 1}\n");
  SafetensorsFile f(path_join(dir, "model.safetensors"));
  EXPECT_EQ(f.entry("model.embed_tokens.weight").dtype, "BF16");
  EXPECT_FALSE(f.contains("lm_head.weight"));  // tied
  CausalLM back = load_model(dir, torch::kCPU, torch::kFloat32);
  for (const auto& p : model->named_parameters())
    EXPECT_TRUE(torch::equal(back->named_parameters()[p.key()],
                             p.value().to(torch::kBFloat16).to(torch::kFloat32)))
        << p.key();
}

TEST(ModelTiny, MakeTinyIsDeterministicInSeed) {
  std::string a = make_model("qwen2", 0.02, 9);
  std::string a_bytes = read_file(path_join(a, "model.safetensors"));
  std::string b = make_model("qwen2", 0.02, 9);
  EXPECT_EQ(read_file(path_join(b, "model.safetensors")), a_bytes);
  std::string c = make_model("qwen2", 0.02, 10);
  EXPECT_NE(read_file(path_join(c, "model.safetensors")), a_bytes);
  auto gen = nlohmann::json::parse(read_file(path_join(a, "generation_config.json")));
  EXPECT_TRUE(gen.contains("eos_token_id"));
}

}  // namespace
}  // namespace treg

namespace treg {
namespace {

// The shared tiny checkpoints of `treg make-tiny` (HF init std 0.02, real tokenizer vocab) also
// match the reference, as do their bf16 log-probs to within bf16 precision.
TEST(ModelGolden, SharedTinyModels) {
  for (const char* arch : {"llama", "gemma2", "qwen2"})
    EXPECT_LE(golden_diff(test::tiny_model(arch)), 1e-4) << arch;
}

TEST(ModelLoad, OutOfVocabularyIdIsNamed) {
  CausalLM model = load_model(test::tiny_model("qwen2"), torch::kCPU, torch::kFloat32);
  const int64_t V = model->args().vocab_size;
  torch::Tensor ids = torch::tensor({int64_t{1}, int64_t{2}, V}).view({1, 3}),
                mask = torch::ones({1, 3}, torch::kInt64);
  try {
    next_token_logprobs(model, ids, mask);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("token id " + std::to_string(V)), std::string::npos)
        << e.what();
  }
}

TEST(ModelDtype, Bfloat16CloseToFloat32) {
  std::string dir = test::tiny_model("gemma2");
  Batch b = padded_batch(256);
  torch::NoGradGuard ng;
  CausalLM f32 = load_model(dir, torch::kCPU, torch::kFloat32);
  CausalLM bf16 = load_model(dir, torch::kCPU, torch::kBFloat16);
  EXPECT_EQ(bf16->named_parameters()["model.embed_tokens.weight"].scalar_type(), torch::kBFloat16);
  TokenLogprobs a = next_token_logprobs(f32, b.ids, b.mask),
                c = next_token_logprobs(bf16, b.ids, b.mask);
  EXPECT_EQ(c.logps.scalar_type(), torch::kFloat32);
  EXPECT_LE((a.logps - c.logps).abs().max().item<double>(), 0.1);
}

}  // namespace
}  // namespace treg
