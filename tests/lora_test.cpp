// LoRA (use_peft): adapters start as the base and only they get gradients (checked against finite
// differences), the merged export is W + (alpha / r)·B·A, PEFT's files read back with an
// independent safetensors header reader, bf16 frozen projections compute what fp32 ones do under
// autocast, and a LoRA training run resumes bit for bit and ends with a merged model equal to the
// adapted one.
#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <nlohmann/json.hpp>

#include "train_test_util.h"
#include "treg/autocast.h"
#include "treg/io.h"
#include "treg/trainer.h"

using namespace treg;
using namespace treg::test;

namespace {

LoraSpec spec(int64_t r, double alpha, std::vector<std::string> targets = {"all-linear"}) {
  LoraSpec s;
  s.r = r;
  s.alpha = alpha;
  s.dropout = 0;
  s.target_modules = std::move(targets);
  return s;
}

torch::Tensor sample_ids() {
  return torch::tensor({{1, 17, 45, 99, 3, 250, 7, 61, 12, 5}}, torch::kInt64);
}

torch::Tensor logps(CausalLM& m, const torch::Tensor& ids = sample_ids()) {
  return next_token_logprobs(m, ids, torch::ones_like(ids)).logps;
}

// Gives every lora_B random values (they start at zero), so the adapters change the output.
void randomise_b(CausalLM& m, double std = 0.05) {
  torch::NoGradGuard ng;
  torch::manual_seed(3);
  for (auto& p : m->named_parameters())
    if (p.key().size() > 7 && p.key().compare(p.key().size() - 7, 7, ".lora_B") == 0)
      p.value().copy_(torch::randn_like(p.value()) * std);
}

std::map<std::string, torch::Tensor> params_of(CausalLM& m) {
  std::map<std::string, torch::Tensor> out;
  for (auto& p : m->named_parameters()) out[p.key()] = p.value().detach().clone();
  return out;
}

// An independent reader of a safetensors header: 8 bytes little-endian length, then JSON.
nlohmann::json safetensors_header(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  unsigned char len[8];
  f.read(reinterpret_cast<char*>(len), 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len[i];
  std::string json(n, '\0');
  f.read(json.data(), static_cast<std::streamsize>(n));
  return nlohmann::json::parse(json);
}

}  // namespace

TEST(Lora, StartsAsTheBaseAndOnlyAdaptersGetGradients) {
  CausalLM base = load_tiny(), m = load_tiny();
  m->add_lora(spec(4, 8), 1);
  const ModelArgs& a = m->args();
  int64_t adapters = 0;
  for (auto& p : m->named_parameters()) {
    if (!is_lora_parameter(p.key())) {
      EXPECT_FALSE(p.value().requires_grad()) << p.key();
      continue;
    }
    ++adapters;
    EXPECT_TRUE(p.value().requires_grad()) << p.key();
    if (p.key().find("q_proj.lora_A") != std::string::npos)
      EXPECT_EQ(p.value().sizes().vec(), (std::vector<int64_t>{4, a.hidden_size}));
    if (p.key().find("down_proj.lora_B") != std::string::npos)
      EXPECT_EQ(p.value().sizes().vec(), (std::vector<int64_t>{a.hidden_size, 4}));
  }
  EXPECT_EQ(adapters, a.num_layers * 7 * 2);  // all seven projections of every layer, A and B
  EXPECT_EQ(m->lora()->target_modules,
            (std::vector<std::string>{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                      "up_proj", "down_proj"}));
  // B = 0: the adapted model is the base, exactly.
  EXPECT_TRUE(torch::equal(logps(m), logps(base)));
  logps(m).sum().backward();
  for (auto& p : m->named_parameters()) {
    if (!is_lora_parameter(p.key())) {
      EXPECT_FALSE(p.value().grad().defined()) << p.key();
    } else if (p.key().find("lora_B") != std::string::npos) {
      EXPECT_GT(p.value().grad().abs().max().item<double>(), 0) << p.key();
    } else {  // dL/dA = s·B^T (dL/dy)^T x = 0 while B = 0
      EXPECT_EQ(p.value().grad().abs().max().item<double>(), 0) << p.key();
    }
  }
  // PEFT's default targets: q_proj and v_proj; a typo names the nearest projection.
  EXPECT_EQ(lora_target_names(a, {}), (std::vector<std::string>{"q_proj", "v_proj"}));
  const std::string e = error_of([&] { load_tiny()->add_lora(spec(4, 8, {"v_porj"}), 1); });
  EXPECT_NE(e.find("did you mean 'v_proj'"), std::string::npos) << e;
}

// Autograd's gradients of the adapters equal central finite differences (fp64 model).
TEST(Lora, AdapterGradientsMatchFiniteDifferences) {
  CausalLM m = load_model(tiny_model("llama"), torch::kCPU, torch::kFloat64);
  m->add_lora(spec(2, 6, {"v_proj", "down_proj"}), 5);
  randomise_b(m, 0.5);
  auto loss = [&] { return logps(m).sum(); };
  loss().backward();
  auto named = m->named_parameters();
  for (const char* key :
       {"model.layers.0.self_attn.v_proj.lora_A", "model.layers.1.mlp.down_proj.lora_B",
        "model.layers.1.self_attn.v_proj.lora_B"}) {
    torch::Tensor p = named[key];
    const torch::Tensor grad = p.grad().reshape(-1);
    for (int64_t i : {int64_t{0}, p.numel() / 2 + 1, p.numel() - 1}) {
      const double h = 1e-6;
      double up, down;
      {
        torch::NoGradGuard ng;
        const double v = p.reshape(-1)[i].item<double>();
        p.reshape(-1)[i] = v + h;
        up = loss().item<double>();
        p.reshape(-1)[i] = v - h;
        down = loss().item<double>();
        p.reshape(-1)[i] = v;
      }
      const double fd = (up - down) / (2 * h), ag = grad[i].item<double>();
      EXPECT_NEAR(ag, fd, 1e-6 * std::max(1.0, std::abs(fd))) << key << "[" << i << "]";
    }
  }
}

// save_model of an adapted model writes W + (alpha / r)·B·A into each adapted projection (alpha /
// sqrt(r) with rslora) and nothing of the adapters; loaded as a plain model it computes what the
// adapted one does.
TEST(Lora, MergedExportIsBasePlusScaledBA) {
  for (bool rslora : {false, true}) {
    CausalLM m = load_tiny();
    LoraSpec s = spec(4, 8, {"q_proj", "up_proj"});
    s.rslora = rslora;
    m->add_lora(s, 2);
    randomise_b(m);
    const double scale = rslora ? 8.0 / 2.0 : 8.0 / 4.0;
    const std::string dir = fresh_dir(std::string("lora_merged_") + (rslora ? "rs" : "plain"));
    save_model(m, dir, torch::kFloat32);
    CausalLM merged = load_model(dir, torch::kCPU, torch::kFloat32);  // strict: no adapter keys
    auto before = params_of(m), after = params_of(merged);
    for (const auto& [key, w] : after) {
      const std::string module = key.substr(0, key.size() - std::string(".weight").size());
      if (before.count(module + ".lora_A")) {
        const torch::Tensor expect =
            before[key] +
            scale * torch::matmul(before[module + ".lora_B"], before[module + ".lora_A"]);
        EXPECT_TRUE(torch::allclose(w, expect, 0, 1e-6)) << key;
        EXPECT_FALSE(torch::equal(w, before[key])) << key;
      } else {
        EXPECT_TRUE(torch::equal(w, before[key])) << key;
      }
    }
    EXPECT_TRUE(torch::allclose(logps(merged), logps(m), 0, 1e-5));
  }
}

// PEFT's layout: adapter_config.json and adapter_model.safetensors with base_model.model.<module>
// .lora_A/.lora_B.weight keys; loading it back restores the adapters; a mismatch is an error.
TEST(Lora, PeftLayoutRoundTrip) {
  CausalLM m = load_tiny();
  m->add_lora(spec(4, 16, {"q_proj", "v_proj"}), 2);
  randomise_b(m);
  const std::string dir = fresh_dir("lora_peft");
  save_lora_adapter(m, dir, "/models/base");
  EXPECT_EQ(list_dir(dir),
            (std::vector<std::string>{"adapter_config.json", "adapter_model.safetensors"}));
  const auto cfg = nlohmann::json::parse(read_file(dir + "/adapter_config.json"));
  EXPECT_EQ(cfg["peft_type"], "LORA");
  EXPECT_EQ(cfg["task_type"], "CAUSAL_LM");
  EXPECT_EQ(cfg["r"], 4);
  EXPECT_EQ(cfg["lora_alpha"], 16);
  EXPECT_EQ(cfg["target_modules"], nlohmann::json::array({"q_proj", "v_proj"}));
  EXPECT_EQ(cfg["base_model_name_or_path"], "/models/base");
  const auto header = safetensors_header(dir + "/adapter_model.safetensors");
  const ModelArgs& a = m->args();
  const int64_t kv = a.num_kv_heads * a.head_dim, q = a.num_heads * a.head_dim;
  size_t tensors = 0;
  for (const auto& [key, entry] : header.items()) {
    if (key == "__metadata__") continue;
    ++tensors;
    EXPECT_EQ(entry["dtype"], "F32") << key;
  }
  EXPECT_EQ(tensors, static_cast<size_t>(a.num_layers * 4));
  const std::string l1 = "base_model.model.model.layers.1.self_attn.";
  EXPECT_EQ(header[l1 + "q_proj.lora_A.weight"]["shape"], (nlohmann::json{4, a.hidden_size}));
  EXPECT_EQ(header[l1 + "q_proj.lora_B.weight"]["shape"], (nlohmann::json{q, 4}));
  EXPECT_EQ(header[l1 + "v_proj.lora_B.weight"]["shape"], (nlohmann::json{kv, 4}));

  CausalLM back = load_tiny();
  back->add_lora(spec(4, 16, {"q_proj", "v_proj"}), 99);  // other draws, then the file's values
  load_lora_adapter(back, dir);
  EXPECT_TRUE(torch::equal(logps(back), logps(m)));

  CausalLM other_r = load_tiny();
  other_r->add_lora(spec(8, 16, {"q_proj", "v_proj"}), 1);
  std::string e = error_of([&] { load_lora_adapter(other_r, dir); });
  EXPECT_NE(e.find("adapter_config.json"), std::string::npos) << e;
  EXPECT_NE(e.find("r is 4"), std::string::npos) << e;
  CausalLM other_targets = load_tiny();
  other_targets->add_lora(spec(4, 16, {"q_proj"}), 1);
  e = error_of([&] { load_lora_adapter(other_targets, dir); });
  EXPECT_NE(e.find("target_modules"), std::string::npos) << e;
  CausalLM plain = load_tiny();
  e = error_of([&] { load_lora_adapter(plain, dir); });
  EXPECT_NE(e.find("use_peft"), std::string::npos) << e;
}

// Under bf16 autocast a matmul casts its fp32 weight to bf16 anyway, so frozen projections stored
// in bf16 give the same log-probs as fp32 ones; outside autocast they still run (cast to x's
// dtype).
TEST(Lora, Bf16FrozenProjectionsComputeAsFp32UnderAutocast) {
  CausalLM fp32 = load_tiny(), bf16 = load_tiny();
  fp32->add_lora(spec(4, 8, {"all-linear"}), 1);
  bf16->add_lora(spec(4, 8, {"all-linear"}), 1, torch::kBFloat16);
  randomise_b(fp32);
  randomise_b(bf16);
  EXPECT_EQ(bf16->named_parameters()["model.layers.0.mlp.up_proj.weight"].scalar_type(),
            torch::kBFloat16);
  EXPECT_EQ(bf16->named_parameters()["model.embed_tokens.weight"].scalar_type(), torch::kFloat32);
  torch::Tensor a, b;
  {
    AutocastGuard on(torch::kCPU, true);
    a = logps(fp32);
    b = logps(bf16);
  }
  EXPECT_TRUE(torch::equal(a, b)) << (a - b).abs().max().item<double>();
  EXPECT_TRUE(torch::allclose(logps(bf16), logps(fp32), 0, 0.05));
}

// A LoRA DPO-REG run (dropout on): the base stays as it was, checkpoints hold PEFT adapters only,
// a run stopped at step 3 and resumed ends with exactly the adapters of an uninterrupted one, and
// the final checkpoint's merged/ model computes what the adapted policy does.
TEST(Lora, TrainingResumesBitForBitAndExportsMerged) {
  auto data = [] {
    static std::vector<PairRecord> pairs = [] {
      CausalLM ref = load_tiny();
      return synthetic_pairs(ref, 16, 1);
    }();
    return memory_source(pairs, "synthetic-train");
  };
  auto run = [&](const std::string& dir, bool interrupt) {
    Config c = tiny_train_config(dir);
    c.use_peft = true;
    c.lora_r = 4;
    c.lora_alpha = 8;
    c.lora_dropout = 0.1;
    c.lora_target_modules = {"all-linear"};
    c.learning_rate = 5e-3;
    c.max_steps = 6;
    c.save_steps = 2;
    c.eval_strategy = "no";
    CausalLM model = load_policy(c, torch::kCPU);
    if (interrupt) {
      TrainerHooks hooks;
      hooks.after_step = [](int64_t s) {
        if (s == 3) std::raise(SIGINT);
      };
      EXPECT_TRUE(Trainer(c, model, data(), nullptr, hooks).train().interrupted);
      model = load_policy(c, torch::kCPU);
      c.resume_from_checkpoint = "auto";
    }
    TrainResult r = Trainer(c, model, data(), nullptr).train();
    return std::make_pair(model, r);
  };
  const std::string dir = fresh_dir("lora_train_b");
  auto [m1, r1] = run(fresh_dir("lora_train_a"), false);
  auto [m2, r2] = run(dir, true);
  CausalLM untouched = load_tiny();
  auto p1 = params_of(m1), p2 = params_of(m2), base = params_of(untouched);
  for (const auto& [key, v] : p1) {
    EXPECT_TRUE(torch::equal(v, p2[key])) << key;
    if (!is_lora_parameter(key)) EXPECT_TRUE(torch::equal(v, base[key])) << key << " moved";
  }
  EXPECT_GT(p1["model.layers.0.self_attn.q_proj.lora_B"].abs().max().item<double>(), 0);
  EXPECT_LT(r1.history.back().values.at("loss"), r1.history.front().values.at("loss"));

  const std::string ckpt = dir + "/checkpoint-6";
  EXPECT_TRUE(file_exists(dir + "/checkpoint-4/adapter_model.safetensors"));
  EXPECT_FALSE(file_exists(dir + "/checkpoint-4/model.safetensors"));
  EXPECT_FALSE(file_exists(dir + "/checkpoint-4/merged"));
  EXPECT_TRUE(file_exists(ckpt + "/adapter_config.json"));
  // The adapter directory is not a model; its error points at merged/.
  const std::string e = error_of([&] { load_model(ckpt, torch::kCPU, torch::kFloat32); });
  EXPECT_NE(e.find("holds LoRA adapters"), std::string::npos) << e;
  EXPECT_NE(e.find(ckpt + "/merged"), std::string::npos) << e;
  CausalLM merged = load_model(ckpt + "/merged", torch::kCPU, torch::kFloat32);
  m1->eval();  // no dropout
  EXPECT_TRUE(torch::allclose(logps(merged), logps(m1), 0, 1e-5));
}

// With dropout and gradient checkpointing, the recomputed layers draw the forward's dropout masks:
// the adapters' gradients equal those without checkpointing, and the generator ends where it ends
// without checkpointing.
TEST(Lora, DropoutUnderGradientCheckpointingGivesTheSameGradients) {
  std::vector<std::vector<torch::Tensor>> grads;
  std::vector<double> after;
  for (bool checkpointing : {false, true}) {
    CausalLM m = load_tiny();
    LoraSpec s = spec(4, 8, {"all-linear"});
    s.dropout = 0.3;
    m->add_lora(s, 1);
    randomise_b(m);
    m->set_gradient_checkpointing(checkpointing);
    torch::manual_seed(11);
    logps(m).sum().backward();
    after.push_back(torch::rand({1}).item<double>());
    std::vector<torch::Tensor> g;
    for (auto& p : m->parameters())
      if (p.requires_grad()) g.push_back(p.grad().clone());
    grads.push_back(g);
  }
  ASSERT_EQ(grads[0].size(), grads[1].size());
  for (size_t i = 0; i < grads[0].size(); ++i)
    EXPECT_TRUE(torch::allclose(grads[0][i], grads[1][i], 1e-5, 1e-7)) << "adapter " << i;
  EXPECT_EQ(after[0], after[1]);
  // Dropout is on: another seed gives other gradients (the check above is not of a no-op).
  CausalLM m = load_tiny();
  LoraSpec s = spec(4, 8, {"all-linear"});
  s.dropout = 0.3;
  m->add_lora(s, 1);
  randomise_b(m);
  torch::manual_seed(12);
  logps(m).sum().backward();
  EXPECT_FALSE(
      torch::allclose(m->named_parameters()["model.layers.0.self_attn.q_proj.lora_A"].grad(),
                      grads[0][0], 1e-5, 1e-7));
}
