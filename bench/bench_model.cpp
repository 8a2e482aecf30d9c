// bench_model: forward and forward+backward tokens/s of the decoder on CPU fp32 (or --device cuda,
// --dtype bfloat16). Shapes match bench/bench_model_ref.py, which runs the same model in python
// torch.
//   bench_model [--size tiny|100m] [--batch B] [--seq T] [--iters N] [--device cpu|cuda] [--dtype
//   float32|bfloat16]
//              [--checkpointing]
#include <chrono>
#include <cstdio>
#include <string>

#include "treg/model.h"
#include "treg/runtime.h"

namespace {

// The benchmark model: the tiny llama of make-tiny, or a ~100M-parameter Llama-shaped one.
nlohmann::json bench_config(const std::string& size) {
  treg::TinySpec spec;
  spec.arch = "llama";
  spec.vocab_size = size == "100m" ? 32000 : 1000;
  nlohmann::json c = treg::tiny_config(spec);
  if (size == "100m") {
    c["hidden_size"] = 768;
    c["intermediate_size"] = 2048;
    c["num_hidden_layers"] = 12;
    c["num_attention_heads"] = 12;
    c["num_key_value_heads"] = 4;
    c["head_dim"] = 64;
    c["max_position_embeddings"] = 4096;
  } else if (size != "tiny") {
    std::fprintf(stderr, "unknown --size %s (tiny | 100m)\n", size.c_str());
    std::exit(2);
  }
  return c;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  treg::select_blas_kernels(argv);
  std::string size = "tiny", device_name = "cpu", dtype_name = "float32";
  int64_t B = 4, T = 128, iters = 10;
  bool checkpointing = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--size")
      size = next();
    else if (a == "--batch")
      B = std::stoll(next());
    else if (a == "--seq")
      T = std::stoll(next());
    else if (a == "--iters")
      iters = std::stoll(next());
    else if (a == "--device")
      device_name = next();
    else if (a == "--dtype")
      dtype_name = next();
    else if (a == "--checkpointing")
      checkpointing = true;
    else {
      std::fprintf(stderr,
                   "usage: bench_model [--size tiny|100m] [--batch B] [--seq T] [--iters N] "
                   "[--device D] [--dtype T] [--checkpointing]\n");
      return 2;
    }
  }
  treg::init_runtime();
  torch::Device device = treg::parse_device(device_name);
  torch::ScalarType dtype = treg::parse_dtype(dtype_name);
  treg::ModelArgs args = treg::model_args_from_json(bench_config(size), "bench " + size);
  treg::CausalLM model(args, torch::TensorOptions().device(device).dtype(torch::kFloat32));
  treg::init_model_weights(model, /*seed=*/0, /*std=*/0.02);
  model->to(dtype);
  model->set_gradient_checkpointing(checkpointing);
  int64_t n_params = 0;
  for (const auto& p : model->parameters()) n_params += p.numel();

  torch::manual_seed(0);
  torch::Tensor ids = torch::randint(args.vocab_size, {B, T},
                                     torch::TensorOptions().dtype(torch::kInt64).device(device));
  torch::Tensor mask = torch::ones({B, T}, ids.options());
  auto sync = [&] {
    if (device.is_cuda()) torch::cuda::synchronize();
  };
  auto forward = [&] {
    torch::NoGradGuard ng;
    return treg::next_token_logprobs(model, ids, mask).logps.sum();
  };
  auto forward_backward = [&] {
    model->zero_grad();
    torch::Tensor loss = treg::next_token_logprobs(model, ids, mask).logps.sum();
    loss.backward();
    return loss;
  };
  forward();  // warm-up
  forward_backward();
  sync();
  auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < iters; ++i) forward();
  sync();
  const double fwd = static_cast<double>(B * T * iters) / seconds_since(t0);
  t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < iters; ++i) forward_backward();
  sync();
  const double fwd_bwd = static_cast<double>(B * T * iters) / seconds_since(t0);
  std::printf(
      "bench_model size=%s params=%.1fM B=%ld T=%ld device=%s dtype=%s threads=%d "
      "checkpointing=%d\n",
      size.c_str(), n_params / 1e6, static_cast<long>(B), static_cast<long>(T), device_name.c_str(),
      dtype_name.c_str(), treg::configured_threads(), checkpointing ? 1 : 0);
  std::printf("forward_tokens_per_s %.1f\n", fwd);
  std::printf("forward_backward_tokens_per_s %.1f\n", fwd_bwd);
  return 0;
}
