// treg plan's arithmetic: parameter counts against the models treg builds and the published sizes
// of the paper's models, the activation estimate against the bytes a CPU forward really keeps (a
// counting CPU allocator), the ZeRO/LoRA layouts, and the command's verdicts and errors.
#include <gtest/gtest.h>
#include <torch/version.h>

#include <atomic>
#include <c10/core/CPUAllocator.h>
#include <cstdio>
#include <cstring>

#include "test_util.h"
#include "treg/config.h"
#include "treg/io.h"
#include "treg/memory_plan.h"
#include "treg/model.h"

namespace treg {
namespace {

ModelArgs tiny_args(const std::string& arch, const nlohmann::json& changes = {}) {
  TinySpec spec;
  spec.arch = arch;
  spec.vocab_size = 96;
  nlohmann::json cfg = tiny_config(spec);
  for (const auto& [k, v] : changes.items()) cfg[k] = v;
  return model_args_from_json(cfg, arch);
}

ModelArgs published(const std::string& name) {
  return load_model_args(test::source_path("configs/models/" + name + ".config.json"));
}

TEST(MemoryPlan, ParameterCountsEqualTheModelTregBuilds) {
  std::vector<std::pair<std::string, nlohmann::json>> cases;
  for (const std::string& arch : tiny_arches()) cases.push_back({arch, {}});
  cases.push_back({"llama", {{"attention_bias", true}, {"mlp_bias", true}}});
  cases.push_back({"llama", {{"tie_word_embeddings", true}}});
  for (const auto& [arch, changes] : cases) {
    SCOPED_TRACE(arch + " " + changes.dump());
    const ModelArgs args = tiny_args(arch, changes);
    CausalLM model(args);
    int64_t total = 0, largest = 0, layer0 = 0;
    for (const auto& p : model->named_parameters()) {
      total += p.value().numel();
      largest = std::max(largest, p.value().numel());
      if (p.key().rfind("model.layers.0.", 0) == 0) layer0 += p.value().numel();
    }
    const ParameterCounts c = parameter_counts(args);
    EXPECT_EQ(c.total, total);
    EXPECT_EQ(c.per_layer, layer0);
    EXPECT_EQ(c.largest, largest);
  }
}

TEST(MemoryPlan, PublishedSizesOfThePapersModels) {
  // The sizes the model cards and safetensors indexes give: 8,030,261,248 and 9,241,705,984.
  EXPECT_EQ(parameter_counts(published("Meta-Llama-3-8B-Instruct")).total, 8030261248LL);
  EXPECT_EQ(parameter_counts(published("gemma-2-9b-it")).total, 9241705984LL);
  // PEFT prints "trainable params: 41,943,040" for r 16 on all seven projections of Llama-3-8B:
  // 32 layers x 16 x (2 x 4096 + 2 x (4096 + 1024) + 2 x 4096 + 2 x (4096 + 14336) + 18432).
  const ModelArgs llama = published("Meta-Llama-3-8B-Instruct");
  EXPECT_EQ(lora_parameter_count(llama, 16, {"all-linear"}), 41943040);
  EXPECT_EQ(lora_parameter_count(llama, 8, {"q_proj", "v_proj", "q_proj"}),
            32 * 8 * ((4096 + 4096) + (4096 + 1024)));
  const std::string e = test::error_of([&] { lora_parameter_count(llama, 8, {"q_porj"}); });
  EXPECT_NE(e.find("'q_porj'"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'q_proj'"), std::string::npos) << e;
}

// Counts the bytes of live CPU tensors: every allocation of LibTorch's CPU allocator goes through
// it while installed.
class CountingAllocator final : public c10::Allocator {
 public:
  explicit CountingAllocator(c10::Allocator* base) : base_(base) {}
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
  c10::DataPtr allocate(size_t n) override {
#else
  c10::DataPtr allocate(size_t n) const override {
#endif
    c10::DataPtr inner = base_->allocate(n);
    void* data = inner.get();
    live.fetch_add(static_cast<int64_t>(n));
    return {data, new Held{std::move(inner), n}, &release, c10::Device(c10::DeviceType::CPU)};
  }
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
  void copy_data(void* dest, const void* src, size_t count) const override {
    std::memcpy(dest, src, count);
  }
#endif
  static std::atomic<int64_t> live;

 private:
  struct Held {
    c10::DataPtr inner;
    size_t n;
  };
  static void release(void* p) {
    auto* h = static_cast<Held*>(p);
    live.fetch_sub(static_cast<int64_t>(h->n));
    delete h;
  }
  c10::Allocator* base_;
};
std::atomic<int64_t> CountingAllocator::live{0};

// Bytes the forward leaves alive for the backward (the returned hidden states included).
double kept_by_forward(CausalLM& model, int64_t B, int64_t T) {
  static CountingAllocator counting(c10::GetCPUAllocator());
  c10::Allocator* before = c10::GetCPUAllocator();
  torch::Tensor ids = torch::randint(1, model->args().vocab_size, {B, T}, torch::kInt64);
  torch::Tensor mask = torch::ones({B, T}, torch::kInt64);
  c10::SetCPUAllocator(&counting);
  const int64_t start = CountingAllocator::live.load();
  torch::Tensor hidden = model->forward(ids, mask);
  const int64_t kept = CountingAllocator::live.load() - start;
  c10::SetCPUAllocator(before);
  hidden.sum().backward();  // the graph was real
  return static_cast<double>(kept);
}

TEST(MemoryPlan, ActivationEstimateMatchesWhatACpuForwardKeeps) {
  torch::manual_seed(0);
  const nlohmann::json shape = {{"hidden_size", 96}, {"intermediate_size", 256},
                                {"num_hidden_layers", 3}, {"num_attention_heads", 6},
                                {"num_key_value_heads", 2}, {"head_dim", 16}};
  // 100 tokens: one block of queries; 300: the CPU attention runs in blocks of 128 queries (and
  // Gemma's sliding layers read only their window), so it keeps less than T x T.
  for (const std::string arch : {"llama", "gemma2", "qwen3", "phi3"}) {
    for (const int64_t T : {100, 300}) {
      SCOPED_TRACE(arch + " T " + std::to_string(T));
      const int64_t B = 2;
      const ModelArgs args = tiny_args(arch, shape);
      CausalLM model(args);
      init_model_weights(model, 0, 0.02);
      const double tokens = static_cast<double>(B * T);
      const double predicted = tokens * activation_bytes_per_token(args, false, false, true, B, T);
      const double measured = kept_by_forward(model, B, T);
      std::printf("  %s T %lld: kept / estimated %.4f", arch.c_str(), static_cast<long long>(T),
                  measured / predicted);
      // What the estimate leaves out: the rope tables and 1/D-sized rsqrt results.
      EXPECT_NEAR(measured / predicted, 1.0, 0.01)
          << measured << " bytes kept, " << predicted << " predicted";
      model->set_gradient_checkpointing(true);
      const double ckpt_predicted = tokens * checkpointed_bytes_per_token(args, T);
      const double ckpt_measured = kept_by_forward(model, B, T);
      std::printf(", with checkpointing %.4f\n", ckpt_measured / ckpt_predicted);
      EXPECT_NEAR(ckpt_measured / ckpt_predicted, 1.0, 0.04)
          << ckpt_measured << " bytes kept with checkpointing, " << ckpt_predicted << " predicted";
    }
  }
}

Config paper_config(const std::string& yaml) {
  return load_config(test::source_path("configs/" + yaml));
}

double part(const MemoryPlan& m, const std::string& prefix) {
  for (const auto& p : m.parts)
    if (p.name.rfind(prefix, 0) == 0) return p.bytes;
  ADD_FAILURE() << "no part " << prefix;
  return 0;
}

TEST(MemoryPlan, PaperRunsOnEightGpusAndWithLoraOnOne) {
  const ModelArgs llama = published("Meta-Llama-3-8B-Instruct");
  const Config c = paper_config("llama3.yaml");  // batch 2, max_length 2048, bf16, checkpointing
  const double P = 8030261248.0;
  PlanSetup one;  // one 80 GiB GPU, fp32 weights + grads + AdamW as treg trains today
  MemoryPlan m = plan_memory(llama, c, one);
  EXPECT_DOUBLE_EQ(part(m, "weights (fp32, replicated)") + part(m, "gradients") + part(m, "AdamW"), 16 * P);
  EXPECT_FALSE(m.fits);
  EXPECT_EQ(m.tokens, 2 * 2 * 2048);

  // ZeRO-1 (treg's zero_stage: 1): the moments shrink to an eighth, nothing else moves.
  PlanSetup zero1;
  zero1.world_size = 8;
  zero1.zero_stage = 1;
  const MemoryPlan m1 = plan_memory(llama, c, zero1);
  EXPECT_DOUBLE_EQ(part(m1, "AdamW moments (fp32, this rank's share)"), 8 * P / 8);
  EXPECT_DOUBLE_EQ(part(m1, "weights (fp32, replicated)") + part(m1, "gradients"), 8 * P);
  EXPECT_LT(m1.total, m.total - 8 * P * 7 / 8 + 1);

  // The layers' projections (32 x 4096 x (2 x 4096 + 2 x 1024 + 3 x 14336)); the rest is the
  // embedding, lm_head and the norms.
  const double proj = 32.0 * 4096 * (2 * 4096 + 2 * 1024 + 3 * 14336), head = 128256.0 * 4096;
  PlanSetup zero2;
  zero2.world_size = 8;
  zero2.zero_stage = 2;
  Config fp32_replicas = c;
  fp32_replicas.bf16 = false;
  m = plan_memory(llama, fp32_replicas, zero2);
  // ZeRO-2 without bf16: fp32 weights replicated; a rank keeps its eighth of the gradients, plus
  // the largest tensor's (the 128256 x 4096 embedding) and two 25 MiB buckets in flight.
  EXPECT_DOUBLE_EQ(part(m, "weights (fp32, replicated)"), 4 * P);
  EXPECT_DOUBLE_EQ(part(m, "gradients (fp32, this rank's share"),
                   4 * P / 8 + 4 * head + 2 * 25.0 * (1 << 20));
  EXPECT_DOUBLE_EQ(part(m, "AdamW moments (fp32, this rank's share)"), 8 * P / 8);
  // With bf16 (the paper's config): the projections are bf16 replicas, their fp32 masters an eighth
  // each, and autocast caches a bf16 copy of lm_head alone.
  m = plan_memory(llama, c, zero2);
  EXPECT_DOUBLE_EQ(part(m, "weights (projections bf16, rest fp32; replicated)"), 2 * proj + 4 * (P - proj));
  EXPECT_DOUBLE_EQ(part(m, "fp32 master weights of the projections (share)"), 4 * proj / 8);
  EXPECT_DOUBLE_EQ(part(m, "bf16 copy of lm_head"), 2 * head);
  EXPECT_DOUBLE_EQ(part(m, "gradients (fp32, this rank's share"),
                   4 * P / 8 + 4 * head + 2 * 25.0 * (1 << 20));
  EXPECT_DOUBLE_EQ(part(m, "AdamW moments (fp32, this rank's share)"), 8 * P / 8);
  // Against ZeRO-1 (fp32 weights, their bf16 autocast copies, whole gradients): weights 6P ->
  // 2 proj + 4 (P - proj) + proj / 2 + 2 head, gradients 4P -> P / 2 + 4 head (+ buckets); the
  // allocator slack is 5% of the tensors.
  const double saved = (6 * P - (2 * proj + 4 * (P - proj) + proj / 2 + 2 * head)) +
                       (4 * P - (P / 2 + 4 * head + 50.0 * (1 << 20)));
  EXPECT_NEAR(m1.total - m.total, 1.05 * saved, 1e-9 * saved);
  EXPECT_TRUE(m.fits) << format_plan(m, llama, c, zero2);
  // Checkpointing keeps each layer's fp32 input plus one layer: far below the full graph.
  EXPECT_LT(m.activations_checkpointed * 5, m.activations_full);

  PlanSetup zero3 = zero2;
  zero3.zero_stage = 3;
  const MemoryPlan m3 = plan_memory(llama, c, zero3);
  EXPECT_LT(m3.total, m.total);
  // Its shard, two layers gathered (one computing, one prefetched) and the largest tensor.
  EXPECT_EQ(parameter_counts(llama).per_layer, 218112000);
  EXPECT_DOUBLE_EQ(part(m3, "weights"), 2 * (P / 8 + 2 * 218112000.0 + 128256.0 * 4096));

  PlanSetup lora;
  lora.lora_r = 16;
  m = plan_memory(llama, c, lora);
  EXPECT_EQ(m.trainable, 41943040);
  // The layers' projections in bf16; embeddings, norms and lm_head fp32.
  EXPECT_DOUBLE_EQ(part(m, "base weights (projections bf16"), 2 * proj + 4 * (P - proj));
  EXPECT_TRUE(m.fits) << format_plan(m, llama, c, lora);

  // Gemma-2's softcapped attention cannot take the fused kernel: its T x T softmax is kept per head.
  const ModelArgs gemma = published("gemma-2-9b-it");
  const double fused = activation_bytes_per_token(gemma, true, true, false, 4, 2048);
  const double softcapped = activation_bytes_per_token(gemma, true, false, false, 4, 2048);
  EXPECT_DOUBLE_EQ(softcapped - fused,
                   42 * (2048 * (1 + 16 * (4 + 2 + 2)) - (16 * 256 * 2 + 16 * 4)));
}

TEST(MemoryPlan, CommandPrintsTheTableAndExitsThreeWhenItDoesNotFit) {
  const std::string base = test::treg_binary() + " plan --config " +
                           test::source_path("configs/llama3.yaml") + " --model-config " +
                           test::source_path("configs/models/Meta-Llama-3-8B-Instruct.config.json");
  std::string out;
  EXPECT_EQ(test::run_command(base + " --world-size 8 --zero 2", &out), 0) << out;
  EXPECT_NE(out.find("8.03B parameters"), std::string::npos) << out;
  EXPECT_NE(out.find("FITS"), std::string::npos) << out;
  EXPECT_NE(out.find("without gradient checkpointing"), std::string::npos) << out;
  EXPECT_EQ(test::run_command(base + " per_device_train_batch_size=4", &out), 3) << out;
  EXPECT_NE(out.find("DOES NOT FIT"), std::string::npos) << out;
  EXPECT_NE(out.find("--zero 2"), std::string::npos) << out;
  // The config's model directory is a placeholder: say what to pass instead.
  EXPECT_NE(test::run_command(test::treg_binary() + " plan --config " +
                                  test::source_path("configs/llama3.yaml"),
                              &out),
            0);
  EXPECT_NE(out.find("--model-config"), std::string::npos) << out;
  EXPECT_NE(test::run_command(base + " --lora-r 8 --lora-target-modules q_proj,gate", &out), 0);
  EXPECT_NE(out.find("did you mean 'gate_proj'"), std::string::npos) << out;
}

}  // namespace
}  // namespace treg
