// bench_adamw: one AdamW step over the parameters of a Llama shape, LibTorch's C++ AdamW (about
// nine ops per tensor) against the trainer's FusedAdamW (one fused kernel where LibTorch >= 2.4 has
// it). Prints ms per step, the ratio and how far the two ends apart after the steps.
//   bench_adamw [--shape 110m|1b] [--steps N=10] [--device cpu|cuda]
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "treg/adamw.h"
#include "treg/runtime.h"

namespace {

struct Shape {
  int64_t D, F, L, V;
};

// The weight shapes of a Llama decoder: per layer q, k, v, o (D x D), gate, up, down and two norms;
// the (tied) embedding and the final norm.
std::vector<torch::Tensor> llama_tensors(const Shape& s, torch::Device device) {
  std::vector<std::vector<int64_t>> shapes{{s.V, s.D}, {s.D}};
  for (int64_t l = 0; l < s.L; ++l) {
    for (int i = 0; i < 4; ++i) shapes.push_back({s.D, s.D});
    shapes.push_back({s.F, s.D});
    shapes.push_back({s.F, s.D});
    shapes.push_back({s.D, s.F});
    shapes.push_back({s.D});
    shapes.push_back({s.D});
  }
  std::vector<torch::Tensor> out;
  for (const auto& sh : shapes) out.push_back(torch::randn(sh, device).mul_(0.02).requires_grad_());
  return out;
}

double time_steps(torch::optim::Optimizer& o, std::vector<torch::Tensor>& ps,
                  const std::vector<torch::Tensor>& grads, int steps, bool cuda) {
  for (size_t i = 0; i < ps.size(); ++i) ps[i].mutable_grad() = grads[i].clone();
  o.step();  // warm-up: allocates the moments
  if (cuda) torch::cuda::synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  for (int s = 0; s < steps; ++s) o.step();
  if (cuda) torch::cuda::synchronize();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / steps;
}

}  // namespace

int main(int argc, char** argv) {
  treg::select_blas_kernels(argv);
  treg::init_runtime();
  std::string shape = "110m", dev = "cpu";
  int steps = 10;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const std::string v = i + 1 < argc ? argv[i + 1] : "";
    if (a == "--shape") shape = v, ++i;
    else if (a == "--steps") steps = std::stoi(v), ++i;
    else if (a == "--device") dev = v, ++i;
    else {
      std::fprintf(stderr, "usage: bench_adamw [--shape 110m|1b] [--steps N] [--device cpu|cuda]\n");
      return 2;
    }
  }
  const Shape s = shape == "1b" ? Shape{2048, 8192, 16, 128256} : Shape{768, 2048, 12, 16384};
  const torch::Device device(dev);
  torch::manual_seed(0);
  std::vector<torch::Tensor> a = llama_tensors(s, device), b, grads;
  int64_t n = 0;
  for (auto& t : a) {
    b.push_back(t.detach().clone().requires_grad_());
    grads.push_back(torch::randn_like(t));
    n += t.numel();
  }
  const auto opts = torch::optim::AdamWOptions(1e-4).weight_decay(0.01);
  torch::optim::AdamW plain(a, opts);
  treg::FusedAdamW fused(b, opts);
  const bool cuda = device.is_cuda();
  const double t_plain = time_steps(plain, a, grads, steps, cuda);
  const double t_fused = time_steps(fused, b, grads, steps, cuda);
  double diff = 0;
  for (size_t i = 0; i < a.size(); ++i)
    diff = std::max(diff, (a[i] - b[i]).abs().max().item<double>());
  std::printf("bench_adamw: %s shape, %.1fM parameters in %zu tensors, %s, %d threads\n", shape.c_str(),
              static_cast<double>(n) / 1e6, a.size(), dev.c_str(), treg::configured_threads());
  std::printf("  torch::optim::AdamW  %9.2f ms/step\n", t_plain);
  std::printf("  treg FusedAdamW      %9.2f ms/step  (%s)  %.2fx\n", t_fused,
              treg::FusedAdamW::available() ? "fused kernel" : "no fused kernel in this LibTorch: the same ops",
              t_plain / t_fused);
  std::printf("  max |weight difference| after %d steps: %.3g\n", steps + 1, diff);
  return 0;
}
