// The one decoder: embed -> N x DecoderLayer -> final norm, and the LM head. Every architecture
// difference arrives through ModelArgs. Its three entry points (right-padded rows, packed rows, a
// KV cache) differ only in the token positions and attention masks they hand the layers.
#include <algorithm>
#include <limits>
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

bool ModelArgs::rope_depends_on_length() const {
  return model::rope_depends_on_length(rope) ||
         (has_local_rope && model::rope_depends_on_length(local_rope));
}

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

// How the tokens of packed rows relate: per token its position and the length of the sequence it
// belongs to, and per row which segments see which.
struct PackedTree {
  torch::Tensor pos, len;  // [B, T] int64
  torch::Tensor visible;   // [B, S1, S1] bool: segment q sees segment k (k is q or an ancestor)
};

// segments [B, T] (CPU int64, 0 = padding, each id one contiguous run), parents [B, S1] (parents[b][s]
// = the segment s continues, 0 = none; undefined = none anywhere). A segment's positions continue
// from the end of its parent's, so a token's position is its offset in the sequence root..segment.
// The sequence length of a shared segment's tokens is that of its longest branch; a rope whose
// table depends on the length (`ropes`) must not tell the branches apart. Errors name the row and
// columns at fault.
PackedTree packed_tree(const torch::Tensor& segments, const torch::Tensor& parents,
                       const std::vector<const RopeParams*>& ropes, int64_t max_position_embeddings) {
  const int64_t B = segments.size(0), T = segments.size(1);
  const int64_t S1 = std::max<int64_t>(segments.numel() > 0 ? segments.max().item<int64_t>() + 1 : 1,
                                       parents.defined() ? parents.size(1) : 1);
  if (parents.defined() && (parents.dim() != 2 || parents.size(0) != B || parents.size(1) < S1))
    fail("forward_packed",
         "parents shape " + c10::str(parents.sizes()) + ", expected [" + std::to_string(B) +
             ", >= " + std::to_string(S1) + "] (one entry per segment id)");
  PackedTree tree{torch::zeros({B, T}, torch::kInt64), torch::zeros({B, T}, torch::kInt64),
                  torch::zeros({B, S1, S1}, torch::kBool)};
  auto s = segments.accessor<int64_t, 2>();
  auto p = tree.pos.accessor<int64_t, 2>();
  auto l = tree.len.accessor<int64_t, 2>();
  auto vis = tree.visible.accessor<bool, 3>();
  const int64_t* par_of = parents.defined() ? parents.data_ptr<int64_t>() : nullptr;
  for (int64_t b = 0; b < B; ++b) {
    // Each segment's run [first, last] in this row, in order of appearance.
    std::vector<int64_t> first(static_cast<size_t>(S1), -1), last(static_cast<size_t>(S1), -1);
    for (int64_t t = 0; t < T; ++t) {
      const int64_t seg = s[b][t];
      if (seg < 0)
        fail("forward_packed",
             "segments[" + std::to_string(b) + "][" + std::to_string(t) + "] = " +
                 std::to_string(seg) + " is negative",
             "0 marks padding, 1, 2, ... the sequences of a row");
      if (seg == 0) continue;
      const size_t u = static_cast<size_t>(seg);
      if (first[u] >= 0 && last[u] != t - 1)
        fail("forward_packed",
             "segment " + std::to_string(seg) + " of row " + std::to_string(b) +
                 " is not one contiguous run: it ends at column " + std::to_string(last[u]) +
                 " and appears again at column " + std::to_string(t),
             "give every packed sequence its own segment id");
      if (first[u] < 0) first[u] = t;
      last[u] = t;
    }
    // Start position and the ancestors of every present segment; a parent must end before its
    // child starts (so the child's keys include all of it).
    std::vector<int64_t> start(static_cast<size_t>(S1), 0), longest(static_cast<size_t>(S1), 0),
        shortest(static_cast<size_t>(S1), std::numeric_limits<int64_t>::max());
    std::vector<int64_t> parent(static_cast<size_t>(S1), 0);
    std::vector<int64_t> order;  // present segments by first column: parents before children
    for (int64_t seg = 1; seg < S1; ++seg)
      if (first[static_cast<size_t>(seg)] >= 0) order.push_back(seg);
    std::sort(order.begin(), order.end(),
              [&](int64_t a, int64_t c) { return first[static_cast<size_t>(a)] < first[static_cast<size_t>(c)]; });
    for (int64_t seg : order) {
      const size_t u = static_cast<size_t>(seg);
      const int64_t par = par_of ? par_of[b * parents.size(1) + seg] : 0;
      if (par != 0) {
        const std::string what = "segment " + std::to_string(seg) + " of row " + std::to_string(b) +
                                 " continues segment " + std::to_string(par);
        if (par < 0 || par >= S1 || first[static_cast<size_t>(par)] < 0)
          fail("forward_packed", what + ", which is not in that row");
        if (last[static_cast<size_t>(par)] >= first[u])
          fail("forward_packed",
               what + ", which does not end before it starts (column " +
                   std::to_string(first[u]) + ")",
               "lay a shared prefix out before every branch of it");
        start[u] = start[static_cast<size_t>(par)] + last[static_cast<size_t>(par)] -
                   first[static_cast<size_t>(par)] + 1;
      }
      parent[u] = par;
      vis[b][seg][seg] = true;
      for (int64_t a = par; a != 0; a = parent[static_cast<size_t>(a)]) vis[b][seg][a] = true;
    }
    // Branch lengths bubble up from the leaves (children come after their parents in `order`).
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
      const size_t u = static_cast<size_t>(*it);
      const int64_t own = start[u] + last[u] - first[u] + 1;
      if (longest[u] == 0) longest[u] = shortest[u] = own;  // a leaf
      if (parent[u] != 0) {
        const size_t v = static_cast<size_t>(parent[u]);
        longest[v] = std::max(longest[v], longest[u]);
        shortest[v] = std::min(shortest[v], shortest[u]);
      }
    }
    for (int64_t seg : order) {
      const size_t u = static_cast<size_t>(seg);
      for (const RopeParams* r : ropes)
        if (model::rope_table_changes(*r, max_position_embeddings, shortest[u], longest[u]))
          fail("forward_packed",
               "segment " + std::to_string(seg) + " of row " + std::to_string(b) +
                   " is shared by sequences of " + std::to_string(shortest[u]) + " and " +
                   std::to_string(longest[u]) + " tokens, whose " + r->type +
                   " rotary tables differ",
               "do not share prefixes across that length (packing off)");
      for (int64_t t = first[u]; t <= last[u]; ++t) {
        p[b][t] = start[u] + t - first[u];
        l[b][t] = longest[u];
      }
    }
  }
  return tree;
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
  layout.masks = model::attention_masks(idx, idx, mask.to(device).to(torch::kBool), {},
                                        args_.sliding_window);
  return run_decoder(*body, args_, attention_impl_, checkpointing_, ids, layout, nullptr);
}

torch::Tensor CausalLMImpl::forward_packed(const torch::Tensor& ids, const torch::Tensor& segments,
                                           const torch::Tensor& parents) {
  auto* body = static_cast<DecoderBodyImpl*>(body_);
  check_ids("CausalLM::forward_packed", ids, body->embed_tokens->weight.size(0));
  if (segments.sizes() != ids.sizes())
    fail("CausalLM::forward_packed", "segments shape " + c10::str(segments.sizes()) +
                                         " differs from ids shape " + c10::str(ids.sizes()));
  const auto device = body->embed_tokens->weight.device();
  torch::Tensor seg = segments.to(torch::kCPU).to(torch::kInt64).contiguous();  // [B, T]
  std::vector<const RopeParams*> ropes;
  for (const RopeParams* r : {&args_.rope, &args_.local_rope})
    if (model::rope_depends_on_length(*r)) ropes.push_back(r);
  PackedTree tree =
      packed_tree(seg, parents.defined() ? parents.to(torch::kCPU).to(torch::kInt64).contiguous() : parents,
                  ropes, args_.max_position_embeddings);
  const int64_t B = seg.size(0), T = seg.size(1), S1 = tree.visible.size(1);
  TokenLayout layout;
  layout.q_pos = tree.pos.to(device);
  layout.q_len = tree.len.to(device);
  seg = seg.to(device);
  // [B, T, S1]: the segments each query sees, then picked at every key's segment -> [B, 1, T, T]
  torch::Tensor sees = tree.visible.to(device).gather(1, seg.view({B, T, 1}).expand({B, T, S1}));
  torch::Tensor pairs = sees.gather(2, seg.view({B, 1, T}).expand({B, T, T})).unsqueeze(1);
  layout.masks =
      model::attention_masks(layout.q_pos, layout.q_pos, seg > 0, pairs, args_.sliding_window);
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
  layout.masks = model::attention_masks(layout.q_pos, positions, mask.to(torch::kBool), {},
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

torch::Tensor packed_predictor_columns(const torch::Tensor& segments, const torch::Tensor& parents) {
  torch::Tensor seg = segments.to(torch::kCPU).to(torch::kInt64).contiguous();
  torch::Tensor par = parents.defined() ? parents.to(torch::kCPU).to(torch::kInt64).contiguous()
                                        : torch::Tensor();
  const int64_t B = seg.size(0), T = seg.size(1);
  torch::Tensor out = torch::full({B, T}, -1, torch::kInt64);
  auto s = seg.accessor<int64_t, 2>();
  auto o = out.accessor<int64_t, 2>();
  const int64_t* par_of = par.defined() ? par.data_ptr<int64_t>() : nullptr;
  for (int64_t b = 0; b < B; ++b) {
    std::map<int64_t, int64_t> last;  // segment -> its last column so far
    for (int64_t t = 0; t < T; ++t) {
      const int64_t id = s[b][t];
      if (id == 0) continue;
      if (t > 0 && s[b][t - 1] == id) {
        o[b][t] = t - 1;
      } else if (par_of && id < par.size(1)) {
        auto it = last.find(par_of[b * par.size(1) + id]);
        if (it != last.end()) o[b][t] = it->second;
      }
      last[id] = t;
    }
  }
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
