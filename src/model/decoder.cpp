// The one decoder: embed -> N x DecoderLayer -> final norm, and the LM head. Every architecture
// difference arrives through ModelArgs. Its three entry points (right-padded rows, packed rows, a
// KV cache) differ only in the token positions and attention masks they hand the layers.
#include <map>
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

namespace {

// What the decoder is told about one call's tokens besides their ids; forward, forward_packed and
// forward_cached each build it from their own inputs.
struct TokenLayout {
  // Rope: either `right_padded_mask` [B, T] (positions 0..T-1 in every row: the [T, R] tables of
  // rope_cos_sin), or per-token `q_pos` with the sequence length `q_len` of each token, [B, T].
  torch::Tensor right_padded_mask;
  torch::Tensor q_pos, q_len;
  model::AttentionMasks masks;  // [B, 1, T, Tk]
};

void check_ids(const char* where, const torch::Tensor& ids, int64_t vocab) {
  if (ids.dim() != 2 || ids.scalar_type() != torch::kInt64)
    fail(where, "ids must be a [B, T] int64 tensor, got " +
                    std::string(c10::toString(ids.scalar_type())) + " with " +
                    std::to_string(ids.dim()) + " dims");
  if (ids.numel() > 0) {
    // An out-of-range id would be a device-side assert on CUDA; name it here instead.
    const int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
    if (lo < 0 || hi >= vocab)
      fail(where,
           "token id " + std::to_string(lo < 0 ? lo : hi) + " outside the vocabulary [0, " +
               std::to_string(vocab) + ")",
           "the ids were made with a different tokenizer than this model's");
  }
}

// The one decoder pass: embed, rotary tables, N layers (checkpointed when asked and no cache is
// used), final norm. ids [B, T] -> [B, T, D]
torch::Tensor run_decoder(DecoderBodyImpl& body, const ModelArgs& args, AttentionImpl impl,
                          bool checkpointing, const torch::Tensor& ids, const TokenLayout& layout,
                          KVCache* cache) {
  const auto device = body.embed_tokens->weight.device();
  torch::Tensor h = body.embed_tokens(ids.to(device));  // [B, T, D]
  if (args.embed_scale != 1.0)
    h = h *
        torch::scalar_tensor(args.embed_scale, h.options());  // rounded to the hidden dtype, as HF

  model::LayerInputs in;
  auto rope = [&](const RopeParams& r) {
    if (layout.right_padded_mask.defined())
      return model::rope_cos_sin(r, args.rotary_dim, args.max_position_embeddings,
                                 layout.right_padded_mask, device);  // [T, R] or [B, 1, T, R]
    return model::rope_cos_sin_at(r, args.rotary_dim, args.max_position_embeddings, layout.q_pos,
                                  layout.q_len);  // [B, 1, T, R]
  };
  std::tie(in.cos, in.sin) = rope(args.rope);
  if (args.has_local_rope) std::tie(in.cos_local, in.sin_local) = rope(args.local_rope);
  for (torch::Tensor* t : {&in.cos, &in.sin, &in.cos_local, &in.sin_local})
    if (t->defined()) *t = t->to(h.scalar_type());
  in.impl = impl;
  in.allowed_full = layout.masks.full;
  in.allowed_window = layout.masks.window;
  in.cache = cache;

  for (auto& layer : body.decoder_layers)
    h = checkpointing && !cache ? model::checkpointed_layer_forward(*layer, h, in)
                                : layer->forward(h, in);  // [B, T, D]
  return body.norm(h);                                    // [B, T, D]
}

// Per token of segments [B, T] (CPU int64): its position in its segment and the segment's length.
// Errors name the row and columns of a segment that is not one contiguous run.
std::pair<torch::Tensor, torch::Tensor> segment_positions(const torch::Tensor& segments) {
  const int64_t B = segments.size(0), T = segments.size(1);
  torch::Tensor pos = torch::zeros({B, T}, torch::kInt64),
                len = torch::zeros({B, T}, torch::kInt64);
  auto s = segments.accessor<int64_t, 2>();
  auto p = pos.accessor<int64_t, 2>();
  auto l = len.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b) {
    std::map<int64_t, int64_t> ended;  // segment -> column its run ended at
    for (int64_t t = 0, start = 0; t < T; ++t) {
      const int64_t seg = s[b][t];
      if (seg < 0)
        fail("forward_packed",
             "segments[" + std::to_string(b) + "][" + std::to_string(t) +
                 "] = " + std::to_string(seg) + " is negative",
             "0 marks padding, 1, 2, ... the sequences of a row");
      if (t > 0 && seg != s[b][t - 1]) start = t;
      p[b][t] = t - start;
      if (t + 1 == T || s[b][t + 1] != seg) {
        for (int64_t i = start; i <= t; ++i) l[b][i] = t + 1 - start;
        if (seg > 0) {
          auto [it, fresh] = ended.emplace(seg, t);
          if (!fresh)
            fail("forward_packed",
                 "segment " + std::to_string(seg) + " of row " + std::to_string(b) +
                     " is not one contiguous run: it ends at column " + std::to_string(it->second) +
                     " and appears again at column " + std::to_string(start),
                 "give every packed sequence its own segment id");
        }
      }
    }
  }
  return {pos, len};
}

}  // namespace

torch::Tensor CausalLMImpl::forward(const torch::Tensor& ids, const torch::Tensor& mask) {
  auto* body = static_cast<DecoderBodyImpl*>(body_);
  check_ids("CausalLM::forward", ids, body->embed_tokens->weight.size(0));
  if (mask.sizes() != ids.sizes())
    fail("CausalLM::forward", "mask shape " + c10::str(mask.sizes()) + " differs from ids shape " +
                                  c10::str(ids.sizes()));
  const int64_t T = ids.size(1);
  const auto device = body->embed_tokens->weight.device();
  // Right padding keeps every sequence at position 0 first: positions are the column indices.
  TokenLayout layout;
  layout.right_padded_mask = mask;
  torch::Tensor idx =
      torch::arange(T, torch::TensorOptions().dtype(torch::kInt64).device(device)).view({1, T});
  layout.masks = model::attention_masks(idx, idx, mask.to(device).to(torch::kBool), {}, {},
                                        args_.sliding_window);
  return run_decoder(*body, args_, attention_impl_, checkpointing_, ids, layout, nullptr);
}

torch::Tensor CausalLMImpl::forward_packed(const torch::Tensor& ids,
                                           const torch::Tensor& segments) {
  auto* body = static_cast<DecoderBodyImpl*>(body_);
  check_ids("CausalLM::forward_packed", ids, body->embed_tokens->weight.size(0));
  if (segments.sizes() != ids.sizes())
    fail("CausalLM::forward_packed", "segments shape " + c10::str(segments.sizes()) +
                                         " differs from ids shape " + c10::str(ids.sizes()));
  const auto device = body->embed_tokens->weight.device();
  torch::Tensor seg = segments.to(torch::kCPU).to(torch::kInt64).contiguous();  // [B, T]
  auto [pos, len] = segment_positions(seg);
  TokenLayout layout;
  layout.q_pos = pos.to(device);
  layout.q_len = len.to(device);
  seg = seg.to(device);
  layout.masks =
      model::attention_masks(layout.q_pos, layout.q_pos, seg > 0, seg, seg, args_.sliding_window);
  return run_decoder(*body, args_, attention_impl_, checkpointing_, ids, layout, nullptr);
}

torch::Tensor CausalLMImpl::forward_cached(const torch::Tensor& ids,
                                           const torch::Tensor& attention_mask, KVCache& cache) {
  auto* body = static_cast<DecoderBodyImpl*>(body_);
  check_ids("CausalLM::forward_cached", ids, body->embed_tokens->weight.size(0));
  const int64_t B = ids.size(0), Tn = ids.size(1), Tpast = cache.length;
  if (attention_mask.dim() != 2 || attention_mask.size(0) != B ||
      attention_mask.size(1) != Tpast + Tn)
    fail("CausalLM::forward_cached",
         "attention_mask shape " + c10::str(attention_mask.sizes()) + ", expected [" +
             std::to_string(B) + ", " + std::to_string(Tpast + Tn) + "] (" + std::to_string(Tpast) +
             " cached + " + std::to_string(Tn) + " new tokens)",
         "the mask covers the cached tokens and the new ones");
  if (Tpast > 0 && cache.ids.size(0) != B)
    fail("CausalLM::forward_cached", "the cache holds " + std::to_string(cache.ids.size(0)) +
                                         " rows, ids " + std::to_string(B));
  const auto device = body->embed_tokens->weight.device();
  torch::Tensor mask = attention_mask.to(device).to(torch::kInt64);  // [B, Tk]
  torch::Tensor lengths = mask.sum(1);                               // [B] tokens so far
  if (Tpast > 0 && (model::rope_depends_on_length(args_.rope) ||
                    model::rope_depends_on_length(args_.local_rope))) {
    // A row whose rope table changes with this call's length gets stale cached keys: rebuild.
    const torch::Tensor before = mask.narrow(1, 0, Tpast).sum(1).to(torch::kCPU),
                        after = lengths.to(torch::kCPU);
    bool stale = false;
    for (int64_t b = 0; b < B && !stale; ++b)
      for (const RopeParams* r : {&args_.rope, &args_.local_rope})
        stale =
            stale || model::rope_table_changes(*r, args_.max_position_embeddings,
                                               before[b].item<int64_t>(), after[b].item<int64_t>());
    if (stale) {
      torch::Tensor all = torch::cat({cache.ids, ids.to(cache.ids.device())}, 1);  // [B, Tk]
      const int64_t reserve = cache.reserve_tokens;
      cache = KVCache{};
      cache.reserve_tokens = reserve;
      return forward_cached(all, attention_mask, cache).narrow(1, Tpast, Tn);
    }
  }
  // transformers: position_ids = cumsum(mask) - 1 (padding clamped to 0: it is never attended).
  torch::Tensor positions = (mask.cumsum(1) - 1).clamp_min(0);  // [B, Tk]
  TokenLayout layout;
  layout.q_pos = positions.narrow(1, Tpast, Tn);        // [B, Tn]
  layout.q_len = lengths.view({B, 1}).expand({B, Tn});  // a full forward's table
  layout.masks = model::attention_masks(layout.q_pos, positions, mask.to(torch::kBool), {}, {},
                                        args_.sliding_window);  // [B, 1, Tn, Tk]
  if (cache.k.empty()) {
    cache.k.resize(static_cast<size_t>(args_.num_layers));
    cache.v.resize(static_cast<size_t>(args_.num_layers));
  }
  torch::Tensor h = run_decoder(*body, args_, attention_impl_, checkpointing_, ids, layout, &cache);
  cache.length += Tn;
  cache.ids = Tpast > 0 ? torch::cat({cache.ids, ids.to(cache.ids.device())}, 1) : ids.clone();
  return h;  // [B, Tn, D]
}

torch::Tensor KVCache::keys(int64_t layer) const {
  return k.at(static_cast<size_t>(layer)).narrow(2, 0, length);
}

torch::Tensor KVCache::values(int64_t layer) const {
  return v.at(static_cast<size_t>(layer)).narrow(2, 0, length);
}

void KVCache::select_rows(const torch::Tensor& rows) {
  for (auto* buffers : {&k, &v})
    for (torch::Tensor& t : *buffers)
      if (t.defined()) t = t.index_select(0, rows.to(t.device()));
  if (ids.defined()) ids = ids.index_select(0, rows.to(ids.device()));
}

torch::Tensor packed_target_mask(const torch::Tensor& segments) {
  const int64_t T = segments.size(1);
  torch::Tensor seg = segments.to(torch::kInt64);
  torch::Tensor out = torch::zeros_like(seg);  // [B, T]
  if (T > 1)
    out.narrow(1, 1, T - 1)
        .copy_((seg.narrow(1, 1, T - 1) == seg.narrow(1, 0, T - 1))
                   .logical_and(seg.narrow(1, 1, T - 1) > 0));
  return out;
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
