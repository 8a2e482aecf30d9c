// Gradient checkpointing per decoder layer: the forward runs the layer under no-grad and keeps only
// its input; the backward recomputes the layer with grad enabled and differentiates it w.r.t. the
// input and the layer's parameters. The parameters are inputs of the autograd Function, so their
// gradients flow through the graph like any other (works for backward() and autograd::grad alike).
// A layer that draws random numbers (LoRA dropout while training) recomputes with the generator
// state of its forward, as torch.utils.checkpoint's preserve_rng_state, so the backward sees the
// dropout masks the forward used.
#include <cstdint>
#include <mutex>
#include <optional>

#include "model/layers.h"
#include "treg/autocast.h"

namespace treg::model {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The default generator of `device`'s type (CPU, or the CUDA device's).
torch::Tensor generator_state(const torch::Device& device) {
  at::Generator gen = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}
void set_generator_state(const torch::Device& device, const torch::Tensor& state) {
  at::Generator gen = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

// Whether the layer's forward draws random numbers now (LoRA dropout in training mode).
bool draws_random(DecoderLayerImpl& layer) {
  for (const auto& [name, linear] : adapted_linears(layer))
    if (linear->lora_dropout > 0 && linear->is_training()) return true;
  return false;
}

struct CheckpointedLayer : public torch::autograd::Function<CheckpointedLayer> {
  // x [B, T, D]; rope: {cos, sin, cos_local, sin_local}, each [T, R] or [B, 1, T, R];
  // allowed_* [B, 1, T, T]; params: the layer's parameters (for the graph).
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor x, at::TensorList rope,
                               torch::Tensor allowed_full, torch::Tensor allowed_window,
                               at::TensorList params, int64_t layer_address, int64_t impl,
                               bool random) {
    ctx->save_for_backward({x, rope[0], rope[1], rope[2], rope[3], allowed_full, allowed_window});
    if (random) ctx->saved_data["rng_state"] = generator_state(x.device());
    ctx->saved_data["layer"] = layer_address;
    ctx->saved_data["impl"] = impl;
    ctx->saved_data["num_params"] = static_cast<int64_t>(params.size());
    const AutocastState autocast = current_autocast();
    ctx->saved_data["autocast_cuda"] = autocast.cuda;
    ctx->saved_data["autocast_cpu"] = autocast.cpu;
    auto* layer = reinterpret_cast<DecoderLayerImpl*>(static_cast<intptr_t>(layer_address));
    LayerInputs in{rope[0],
                   rope[1],
                   rope[2],
                   rope[3],
                   allowed_full,
                   allowed_window,
                   static_cast<AttentionImpl>(impl)};
    return layer->forward(x, in);  // autograd records nothing inside a custom Function's forward
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    variable_list saved = ctx->get_saved_variables();
    auto* layer = reinterpret_cast<DecoderLayerImpl*>(
        static_cast<intptr_t>(ctx->saved_data["layer"].toInt()));
    const auto impl = static_cast<AttentionImpl>(ctx->saved_data["impl"].toInt());
    const int64_t num_params = ctx->saved_data["num_params"].toInt();
    LayerInputs in{saved[1], saved[2], saved[3], saved[4], saved[5], saved[6], impl};

    torch::Tensor x = saved[0].detach().requires_grad_(true);
    std::vector<torch::Tensor> params = layer->parameters();
    torch::Tensor y;
    {
      // The forward's generator state for the recomputation; the current one comes back after.
      std::optional<torch::Tensor> resume_rng;
      if (ctx->saved_data.count("rng_state")) {
        resume_rng = generator_state(x.device());
        set_generator_state(x.device(), ctx->saved_data["rng_state"].toTensor());
      }
      torch::AutoGradMode enable(true);
      // The backward runs outside the trainer's autocast scope: recompute under the forward's.
      AutocastGuard autocast(AutocastState{ctx->saved_data["autocast_cuda"].toBool(),
                                           ctx->saved_data["autocast_cpu"].toBool()});
      y = layer->forward(x, in);  // recompute: [B, T, D]
      if (resume_rng) set_generator_state(x.device(), *resume_rng);
    }
    // Differentiate w.r.t. x and the trainable parameters only.
    variable_list inputs = {x};
    std::vector<int64_t> slot(params.size(), -1);
    for (size_t i = 0; i < params.size(); ++i)
      if (params[i].requires_grad()) {
        slot[i] = static_cast<int64_t>(inputs.size());
        inputs.push_back(params[i]);
      }
    variable_list grads = torch::autograd::grad({y}, inputs, {grad_out[0]}, /*retain_graph=*/false,
                                                /*create_graph=*/false, /*allow_unused=*/true);
    // One gradient per forward argument: x, rope (4), allowed_full, allowed_window, params...,
    // address, impl, random.
    variable_list out = {grads[0],        torch::Tensor(), torch::Tensor(), torch::Tensor(),
                         torch::Tensor(), torch::Tensor(), torch::Tensor()};
    for (int64_t i = 0; i < num_params; ++i)
      out.push_back(slot[i] >= 0 ? grads[slot[i]] : torch::Tensor());
    out.push_back(torch::Tensor());
    out.push_back(torch::Tensor());
    out.push_back(torch::Tensor());
    return out;
  }
};

}  // namespace

torch::Tensor checkpointed_layer_forward(DecoderLayerImpl& layer, const torch::Tensor& x,
                                         const LayerInputs& in) {
  std::vector<torch::Tensor> params = layer.parameters();
  bool any_grad = x.requires_grad();
  for (const auto& p : params) any_grad = any_grad || p.requires_grad();
  if (!torch::GradMode::is_enabled() || !any_grad) return layer.forward(x, in);  // nothing to save
  // An undefined tensor cannot be saved as an input; an empty one stands in for it (the layer only
  // reads the window mask / local rope when the architecture has them).
  auto or_empty = [](const torch::Tensor& t, torch::ScalarType type) {
    return t.defined() ? t : torch::empty({0}, type);
  };
  torch::Tensor window = or_empty(in.allowed_window, torch::kBool);
  std::vector<torch::Tensor> rope = {in.cos, in.sin, or_empty(in.cos_local, in.cos.scalar_type()),
                                     or_empty(in.sin_local, in.sin.scalar_type())};
  return CheckpointedLayer::apply(x, at::TensorList(rope), in.allowed_full, window,
                                  at::TensorList(params),
                                  static_cast<int64_t>(reinterpret_cast<intptr_t>(&layer)),
                                  static_cast<int64_t>(in.impl), draws_random(layer));
}

}  // namespace treg::model
