// bench_forward_ops: where the time of a no-grad packed forward goes on the CPU, on the ~100M Llama
// of bench_score_tokens (D 768, 12 layers, F 2048, 12 heads) and one prefix tree shaped like a
// scoring revision tree: a shared part (template, prompt, answer) and two branches (the "better"
// and "worse" suffix, then the answer again). It times the whole forward, then one layer's parts
// alone on the same shapes: the seven projections, the reference attention over the tree's mask,
// and the rest (norms, rope, SiLU, residuals) as the difference. Best of REPS each.
//
// Usage: bench_forward_ops [SHARED=1000] [BRANCH=420] [REPS=5]
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>

#include "model/layers.h"
#include "treg/model.h"
#include "treg/runtime.h"

namespace {

using namespace treg;
using Clock = std::chrono::steady_clock;

double best_of(int reps, const std::function<void()>& f) {
  f();  // warm-up: the allocator's pool and OpenBLAS's buffers
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && argv[1][0] == '-') {
    std::printf("usage: bench_forward_ops [SHARED=1000] [BRANCH=420] [REPS=5]\n");
    return std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h" ? 0 : 2;
  }
  treg::select_blas_kernels(argv);
  init_runtime();
  const int64_t shared = argc > 1 ? std::atoll(argv[1]) : 1000;
  const int64_t branch = argc > 2 ? std::atoll(argv[2]) : 420;
  const int reps = argc > 3 ? std::atoi(argv[3]) : 5;
  const int64_t D = 768, L = 12, F = 2048, H = 12, E = D / H, V = 16384;

  TinySpec spec;
  spec.arch = "llama";
  spec.vocab_size = V;
  nlohmann::json cfg = tiny_config(spec);
  cfg["hidden_size"] = D;
  cfg["num_hidden_layers"] = L;
  cfg["intermediate_size"] = F;
  cfg["num_attention_heads"] = H;
  cfg["num_key_value_heads"] = H;
  cfg["head_dim"] = E;
  cfg["max_position_embeddings"] = 4096;
  CausalLM model(model_args_from_json(cfg, "bench_forward_ops"));
  init_model_weights(model, 0, 0.02);
  model->eval();
  torch::NoGradGuard no_grad;

  // The tree: segment 1 is the shared part, 2 and 3 continue it.
  const int64_t T = shared + 2 * branch;
  torch::Tensor ids = torch::randint(3, V, {1, T}, torch::kInt64);
  torch::Tensor segments = torch::cat({torch::full({shared}, 1, torch::kInt64),
                                       torch::full({branch}, 2, torch::kInt64),
                                       torch::full({branch}, 3, torch::kInt64)})
                               .unsqueeze(0);
  torch::Tensor parents = torch::tensor({0, 0, 1, 1}, torch::kInt64).unsqueeze(0);
  // Its mask: causal, and a branch sees the shared part and itself only.
  torch::Tensor col = torch::arange(T), seg = segments[0];
  torch::Tensor allowed = (col.unsqueeze(0) <= col.unsqueeze(1)) &
                          (seg.unsqueeze(0).eq(seg.unsqueeze(1)) | seg.unsqueeze(0).eq(1));
  allowed = allowed.view({1, 1, T, T});

  std::printf(
      "bench_forward_ops: %d threads, fp32, one tree of %lld tokens (shared %lld + 2 x %lld)\n",
      configured_threads(), static_cast<long long>(T), static_cast<long long>(shared),
      static_cast<long long>(branch));
  const double forward =
      best_of(reps, [&] { model->forward_packed(ids, segments, parents); }) / L;

  // One layer's projections on the tree's tokens: q, k, v, o (D -> D), gate, up (D -> F), down.
  torch::Tensor x = torch::randn({1, T, D}), xf = torch::randn({1, T, F});
  torch::Tensor w_dd = torch::randn({D, D}) * 0.02, w_fd = torch::randn({F, D}) * 0.02,
                w_df = torch::randn({D, F}) * 0.02;
  const double proj = best_of(reps, [&] {
    for (int i = 0; i < 4; ++i) torch::nn::functional::linear(x, w_dd);
    for (int i = 0; i < 2; ++i) torch::nn::functional::linear(x, w_fd);
    torch::nn::functional::linear(xf, w_df);
  });
  // The attention as the layer calls it: q, k, v as [B, H, T, E] views of [B, T, H, E].
  torch::Tensor q = torch::randn({1, T, H, E}).transpose(1, 2),
                k = torch::randn({1, T, H, E}).transpose(1, 2),
                v = torch::randn({1, T, H, E}).transpose(1, 2);
  const double scale = 1.0 / std::sqrt(static_cast<double>(E));
  const double attn =
      best_of(reps, [&] { model::attention_reference(q, k, v, allowed, scale, 0.0); });

  // FLOPs: projections 2 T (4 D^2 + 3 D F); attention 4 E H per (query, visible key) pair, i.e.
  // what a kernel that skipped every blocked score would do.
  const double proj_flops = 2.0 * T * (4.0 * D * D + 3.0 * D * F);
  const double pairs = allowed.sum().item<double>();
  const double attn_flops = 4.0 * E * H * pairs;
  std::printf("  per layer: forward %.1f ms (whole model / %lld layers)\n", forward * 1e3,
              static_cast<long long>(L));
  std::printf("    projections  %7.1f ms  %5.1f%%  %6.1f GFLOP/s\n", proj * 1e3,
              100 * proj / forward, proj_flops / proj / 1e9);
  std::printf("    attention    %7.1f ms  %5.1f%%  %6.1f GFLOP/s (visible pairs only)\n",
              attn * 1e3, 100 * attn / forward, attn_flops / attn / 1e9);
  std::printf(
      "    the rest     %7.1f ms  %5.1f%%  (norms, rope, SiLU, residuals; the mask and "
      "embedding / %lld)\n",
      (forward - proj - attn) * 1e3, 100 * (forward - proj - attn) / forward,
      static_cast<long long>(L));
  return 0;
}
