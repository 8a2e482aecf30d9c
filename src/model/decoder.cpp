// The one decoder: embed -> N x DecoderLayer -> final norm, and the LM head. Every architecture
// difference arrives through ModelArgs.
#include <tuple>

#include "model/layers.h"
#include "treg/error.h"
#include "treg/model.h"

namespace treg {

namespace {

// "model": embed_tokens, layers.N, norm (the HF `LlamaModel` / `Gemma2Model` names).
class DecoderBodyImpl : public torch::nn::Module {
 public:
  DecoderBodyImpl(const ModelArgs& a, const torch::TensorOptions& options) {
    embed_tokens =
        register_module("embed_tokens", model::Embedding(a.vocab_size, a.hidden_size, options));
    layers = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < a.num_layers; ++i) {
      auto layer = model::DecoderLayer(a, i, options);
      layers->push_back(layer);
      decoder_layers.push_back(layer);
    }
    norm = register_module("norm",
                           model::RMSNorm(a.hidden_size, a.rms_norm_eps, a.norm_offset, options));
  }
  model::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  std::vector<model::DecoderLayer> decoder_layers;
  model::RMSNorm norm{nullptr};
};
TORCH_MODULE(DecoderBody);

}  // namespace

CausalLMImpl::CausalLMImpl(const ModelArgs& args, torch::TensorOptions options) : args_(args) {
  auto body = register_module("model", DecoderBody(args, options));
  body_ = body.get();
  if (!args.tie_embeddings) {
    auto head = register_module(
        "lm_head", model::Linear(args.hidden_size, args.vocab_size, /*bias=*/false, options));
    lm_head_ = head->weight;
  }
}

torch::Tensor CausalLMImpl::lm_head_weight() {
  if (lm_head_.defined()) return lm_head_;
  return static_cast<DecoderBodyImpl*>(body_)->embed_tokens->weight;
}

void CausalLMImpl::set_gradient_checkpointing(bool on) { checkpointing_ = on; }

torch::Tensor CausalLMImpl::forward(const torch::Tensor& ids, const torch::Tensor& mask) {
  auto* body = static_cast<DecoderBodyImpl*>(body_);
  if (ids.dim() != 2 || ids.scalar_type() != torch::kInt64)
    fail("CausalLM::forward", "ids must be a [B, T] int64 tensor, got " +
                                  std::string(c10::toString(ids.scalar_type())) + " with " +
                                  std::to_string(ids.dim()) + " dims");
  if (mask.sizes() != ids.sizes())
    fail("CausalLM::forward", "mask shape " + c10::str(mask.sizes()) + " differs from ids shape " +
                                  c10::str(ids.sizes()));
  const int64_t B = ids.size(0), T = ids.size(1);
  const torch::Tensor& w_embed = body->embed_tokens->weight;
  const auto device = w_embed.device();
  if (ids.numel() > 0) {
    // An out-of-range id would be a device-side assert on CUDA; name it here instead.
    const int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
    if (lo < 0 || hi >= w_embed.size(0))
      fail("CausalLM::forward",
           "token id " + std::to_string(lo < 0 ? lo : hi) + " outside the vocabulary [0, " +
               std::to_string(w_embed.size(0)) + ")",
           "the ids were made with a different tokenizer than this model's");
  }

  torch::Tensor h = body->embed_tokens(ids.to(device));  // [B, T, D]
  if (args_.embed_scale != 1.0)
    h = h *
        torch::scalar_tensor(args_.embed_scale, h.options());  // rounded to the hidden dtype, as HF

  // Rotary tables for positions 0..T-1 (right padding keeps every sequence at position 0 first).
  model::LayerInputs in;
  std::tie(in.cos, in.sin) = model::rope_cos_sin(args_.rope, args_.rotary_dim,
                                                 args_.max_position_embeddings, mask, device);
  if (args_.has_local_rope)
    std::tie(in.cos_local, in.sin_local) = model::rope_cos_sin(
        args_.local_rope, args_.rotary_dim, args_.max_position_embeddings, mask, device);
  for (torch::Tensor* t : {&in.cos, &in.sin, &in.cos_local, &in.sin_local})
    if (t->defined()) *t = t->to(h.scalar_type());  // [T, R] or [B, 1, T, R]
  in.impl = attention_impl_;

  // Masks: query i sees key j when j <= i, key j is a token, and (sliding layers) i - j < window.
  torch::Tensor idx = torch::arange(T, torch::TensorOptions().dtype(torch::kInt64).device(device));
  torch::Tensor qi = idx.view({T, 1}), kj = idx.view({1, T});
  torch::Tensor key_ok = mask.to(device).to(torch::kBool).view({B, 1, 1, T});
  in.allowed_full = (kj <= qi).view({1, 1, T, T}).logical_and(key_ok);  // [B, 1, T, T]
  if (args_.sliding_window > 0)
    in.allowed_window =
        in.allowed_full.logical_and((qi - kj < args_.sliding_window).view({1, 1, T, T}));

  for (auto& layer : body->decoder_layers)
    h = checkpointing_ ? model::checkpointed_layer_forward(*layer, h, in)
                       : layer->forward(h, in);  // [B, T, D]
  return body->norm(h);                          // [B, T, D]
}

torch::Tensor CausalLMImpl::lm_logits(const torch::Tensor& hidden) {
  torch::Tensor logits =
      torch::nn::functional::linear(hidden, lm_head_weight())
          .to(at::promote_types(hidden.scalar_type(), torch::kFloat32));  // [.., V]
  if (args_.final_softcap > 0)
    logits = torch::tanh(logits / args_.final_softcap) * args_.final_softcap;
  return logits;
}

}  // namespace treg
