// Decoder building blocks: linear, embedding, RMSNorm, RoPE, attention (reference and fused), MLP,
// and the decoder layer whose Llama / Gemma-2 differences are ModelArgs fields.
#include "model/layers.h"

#include <torch/version.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <tuple>
#include <utility>
#include <vector>

#include "treg/autocast.h"
#include "treg/error.h"

namespace treg::model {

// ---- parameters ----

LinearImpl::LinearImpl(int64_t in, int64_t out, bool has_bias,
                       const torch::TensorOptions& options) {
  weight = register_parameter("weight", torch::empty({out, in}, options));
  if (has_bias) bias = register_parameter("bias", torch::empty({out}, options));
}

namespace {
// Whether autocast casts x's matmuls (then a bf16 weight needs no cast of ours).
bool autocast_on(const torch::Tensor& x) {
  const AutocastState a = current_autocast();
  return x.is_cuda() ? a.cuda : a.cpu;
}
torch::Tensor as_type_of(const torch::Tensor& t, const torch::Tensor& x) {
  return !t.defined() || t.scalar_type() == x.scalar_type() ? t : t.to(x.scalar_type());
}
}  // namespace

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
  // A frozen LoRA base in bf16 outside autocast (an fp32 run) computes in x's dtype; autocast is
  // asked only then, so a plain projection pays nothing.
  const bool cast = weight.scalar_type() != x.scalar_type() && !autocast_on(x);
  torch::Tensor out = torch::nn::functional::linear(x, cast ? as_type_of(weight, x) : weight,
                                                    cast ? as_type_of(bias, x) : bias);
  if (!lora_A.defined()) return out;
  torch::Tensor h = lora_dropout > 0 && is_training() ? torch::dropout(x, lora_dropout, true) : x;
  if (h.scalar_type() != lora_A.scalar_type() && !autocast_on(x)) h = h.to(lora_A.scalar_type());
  const torch::Tensor delta =
      torch::nn::functional::linear(torch::nn::functional::linear(h, lora_A), lora_B);
  return out + (delta * lora_scaling).to(out.scalar_type());
}

EmbeddingImpl::EmbeddingImpl(int64_t vocab, int64_t dim, const torch::TensorOptions& options) {
  weight = register_parameter("weight", torch::empty({vocab, dim}, options));
}

torch::Tensor EmbeddingImpl::forward(const torch::Tensor& ids) {
  return torch::embedding(weight, ids);
}

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_, double offset_,
                         const torch::TensorOptions& options)
    : eps(eps_), offset(offset_) {
  weight = register_parameter("weight", torch::empty({dim}, options));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  return rms_norm_reference(x, weight, eps, offset);
}

// ---- reference ops ----

torch::Tensor rms_norm_reference(const torch::Tensor& x, const torch::Tensor& w, double eps,
                                 double offset) {
  const auto f32 = at::promote_types(x.scalar_type(), torch::kFloat32);  // fp32 (fp64 stays fp64)
  torch::Tensor xf = x.to(f32);                                          // [.., D]
  torch::Tensor normed = xf * torch::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
  if (offset != 0.0) return (normed * (w.to(f32) + offset)).to(x.scalar_type());  // Gemma: in fp32
  return w * normed.to(x.scalar_type());  // Llama: cast, then scale
}

torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos,
                         const torch::Tensor& sin) {
  const int64_t R = cos.size(-1), E = x.size(-1);
  if (R < E)
    return torch::cat({apply_rope(x.narrow(-1, 0, R), cos, sin), x.narrow(-1, R, E - R)}, -1);
  const int64_t half = E / 2;
  torch::Tensor x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  torch::Tensor rotated = torch::cat({-x2, x1}, -1);  // rotate_half: [B, H, T, E]
  return x * cos + rotated * sin;                     // cos/sin [T, E] broadcast over B, H
}

namespace {

// Query rows [q0, q0 + n) against all keys: scores [B, H, n, T] -> output [B, H, n, E].
torch::Tensor attention_rows(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             const torch::Tensor& allowed, double scale, double softcap) {
  const auto acc = at::promote_types(q.scalar_type(), torch::kFloat32);
  const float blocked = std::numeric_limits<float>::lowest();
  torch::Tensor scores;  // [B, H, n, T] in acc
  if (reference_attention_mask_is_bias(softcap, autocast_on(q), q.scalar_type() == acc)) {
    // The mask goes in as an additive bias that the product of q and k accumulates onto (a gemm
    // with beta 1): one pass over the scores instead of three (scale, masked copy). On the CPU
    // that made the attention of a 1.8k-token scoring tree 1.2x faster. Allowed scores are
    // alpha * (q k^T) + 0, the same floats as (q k^T) * scale; blocked ones stay at `blocked`
    // and get probability 0.
    const int64_t B = q.size(0), H = q.size(1), n = q.size(2), E = q.size(3), Tk = k.size(2);
    torch::Tensor bias = torch::zeros({allowed.size(0), 1, n, Tk}, q.options())
                             .masked_fill_(allowed.logical_not(), blocked);  // [B, 1, n, T]
    torch::Tensor s3 = torch::empty({B * H, n, Tk}, q.options());
    s3.view({B, H, n, Tk}).copy_(bias.expand({B, H, n, Tk}));  // neither needs a gradient
    s3.baddbmm_(q.reshape({B * H, n, E}), k.reshape({B * H, Tk, E}).transpose(1, 2), 1.0, scale);
    scores = s3.view({B, H, n, Tk});
  } else {
    scores = torch::matmul(q, k.transpose(-2, -1)) * scale;  // [B, H, n, T]
    if (softcap > 0) scores = torch::tanh(scores / softcap) * softcap;
    scores = scores.to(acc).masked_fill_(allowed.logical_not(), blocked);
  }
  torch::Tensor probs = torch::softmax(scores, -1).to(q.scalar_type());  // [B, H, n, T]
  return torch::matmul(probs, v);                                        // [B, H, n, E]
}

// Score elements per query block. Each query row's softmax is independent, so blocks give the same
// numbers as one [B, H, T, T] pass; a block that stays in cache and in the allocator's pool avoids
// the page faults of fresh multi-hundred-MB buffers (a 32 x 1000-token scoring batch was 10x slower
// in one piece) and bounds the memory of no-grad scoring on GPU.
constexpr int64_t kScoreBlockElements = int64_t{1} << 22;

}  // namespace

int64_t reference_attention_block_rows(int64_t scores_per_query, int64_t T, bool ranged) {
  int64_t rows = std::max<int64_t>(1, kScoreBlockElements / std::max<int64_t>(1, scores_per_query));
  return ranged ? std::min(rows, std::max<int64_t>(128, (T + 7) / 8)) : rows;
}

bool reference_attention_mask_is_bias(double softcap, bool autocast, bool fp32_or_wider) {
  // Under autocast the product must run as autocast's matmul does (bf16), and the in-place
  // product the bias needs is not an autocast op; softcapping must come before the mask.
  return softcap == 0 && !autocast && fp32_or_wider;
}

torch::Tensor attention_reference(const torch::Tensor& q, const torch::Tensor& k,
                                  const torch::Tensor& v, const torch::Tensor& allowed,
                                  double scale, double softcap) {
  const int64_t T = q.size(-2), Tk = k.size(-2), per_row = q.numel() / q.size(-1) / T * Tk;
  // Without a cache (Tk == T) no query sees a later column -- in padded rows and in packed prefix
  // trees alike, where parents come before children -- so a block of queries needs only the keys
  // from the first one any of them sees up to its own last column: the causal upper triangle and
  // other sequences packed before it are never computed. On the CPU only: finding that first key
  // is a host read, and CUDA takes the fused kernel.
  const bool ranged = Tk == T && !q.is_cuda();
  const int64_t rows = reference_attention_block_rows(per_row, T, ranged);
  torch::Tensor first;  // [T] int64 (CPU): the first key column a query of any row sees
  // (uint8: argmax takes no bool; an int32 copy of the T x T mask made this a tenth of a layer.)
  if (ranged) first = allowed.any(0).squeeze(0).to(torch::kUInt8).argmax(-1).to(torch::kCPU);
  if (rows >= T) return attention_rows(q, k, v, allowed, scale, softcap);
  // q, k, v arrive as transposed views of [B, T, H, E]; a block of them is not a strided batch of
  // matrices, and matmul copied the keys and values (up to all T of them) once per query block,
  // element by element: 40% of a 3.4k-token packed forward. One copy per layer instead.
  const torch::Tensor qc = q.contiguous(), kc = k.contiguous(), vc = v.contiguous();
  std::vector<torch::Tensor> outs;
  for (int64_t r = 0; r < T; r += rows) {
    const int64_t n = std::min(rows, T - r);
    const int64_t lo = ranged ? first.narrow(0, r, n).min().item<int64_t>() : 0;
    const int64_t hi = ranged ? r + n : Tk;
    outs.push_back(attention_rows(qc.narrow(-2, r, n), kc.narrow(-2, lo, hi - lo),
                                  vc.narrow(-2, lo, hi - lo),
                                  allowed.narrow(-2, r, n).narrow(-1, lo, hi - lo), scale,
                                  softcap));  // [B, H, n, E]
  }
  return torch::cat(outs, -2);  // [B, H, T, E]
}

torch::Tensor attention_sdpa(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             const torch::Tensor& allowed, double scale) {
  // Additive mask in the query dtype; half the most negative value so scores + mask cannot
  // overflow.
  const double neg = q.scalar_type() == torch::kFloat16
                         ? -32752.0
                         : -static_cast<double>(std::numeric_limits<float>::max()) / 2;
  torch::Tensor bias = torch::zeros(allowed.sizes(), q.options())
                           .masked_fill(allowed.logical_not(), neg);  // [B, 1, T, T]
  const double default_scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
  (void)default_scale;
  return at::scaled_dot_product_attention(q, k, v, bias, /*dropout_p=*/0.0, /*is_causal=*/false,
                                          scale);
#elif TORCH_VERSION_MAJOR == 2
  return at::scaled_dot_product_attention(q * (scale / default_scale), k, v, bias,
                                          /*dropout_p=*/0.0,
                                          /*is_causal=*/false);
#else
  return std::get<0>(
      at::_scaled_dot_product_attention(q * (scale / default_scale), k, v, bias, /*dropout_p=*/0.0,
                                        /*need_attn_weights=*/false, /*is_causal=*/false));
#endif
}

namespace {

// base^(2i / R), i < R/2, in fp32 as transformers computes it.
torch::Tensor rope_powers(double base, int64_t R, torch::Device device) {
  torch::Tensor exponents =
      torch::arange(0, R, 2, torch::kInt64).to(torch::kFloat32) / static_cast<double>(R);  // [R/2]
  return torch::pow(torch::scalar_tensor(base, torch::kFloat32), exponents).to(device);
}

torch::Tensor default_inv_freq(double base, int64_t R, torch::Device device) {
  return 1.0 / rope_powers(base, R, device);
}

torch::Tensor llama3_inv_freq(const RopeParams& s, torch::Tensor inv_freq) {
  const double old_len = static_cast<double>(s.original_max_position_embeddings);
  const double low_freq_wavelen = old_len / s.low_freq_factor;
  const double high_freq_wavelen = old_len / s.high_freq_factor;
  torch::Tensor wavelen = 2 * M_PI / inv_freq;
  // Long wavelengths are slowed down by `factor`, short ones kept, the band between interpolated.
  torch::Tensor scaled = torch::where(wavelen > low_freq_wavelen, inv_freq / s.factor, inv_freq);
  torch::Tensor smooth =
      (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
  torch::Tensor smoothed = (1 - smooth) * scaled / s.factor + smooth * scaled;
  torch::Tensor medium = (wavelen >= high_freq_wavelen).logical_and(wavelen <= low_freq_wavelen);
  return torch::where(medium, smoothed, scaled);
}

// YaRN: interpolated (1 / factor) frequencies for long wavelengths, extrapolated (unchanged) for
// short ones, a linear ramp between the correction dims of beta_fast and beta_slow rotations.
torch::Tensor yarn_inv_freq(const RopeParams& s, int64_t R, torch::Device device) {
  const double orig = static_cast<double>(s.original_max_position_embeddings);
  auto correction_dim = [&](double rotations) {
    return static_cast<double>(R) * std::log(orig / (rotations * 2 * M_PI)) /
           (2 * std::log(s.theta));
  };
  double low = correction_dim(s.beta_fast), high = correction_dim(s.beta_slow);
  if (s.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, static_cast<double>(R - 1));
  if (low == high) high += 0.001;                             // as transformers: no zero-width ramp
  torch::Tensor pos_freqs = rope_powers(s.theta, R, device);  // [R/2]
  torch::Tensor extrapolation = 1.0 / pos_freqs, interpolation = 1.0 / (s.factor * pos_freqs);
  torch::Tensor ramp =
      ((torch::arange(R / 2, torch::TensorOptions().dtype(torch::kFloat32).device(device)) - low) /
       (high - low))
          .clamp(0, 1);
  torch::Tensor extrapolation_factor = 1 - ramp;
  return interpolation * (1 - extrapolation_factor) + extrapolation * extrapolation_factor;
}

}  // namespace

namespace {

// The inverse frequencies [R/2] of a rope for a sequence of `seq_len` tokens, and the factor cos
// and sin are multiplied by.
struct RopeFreqs {
  torch::Tensor inv_freq;
  double attention_factor = 1.0;
};

RopeFreqs rope_freqs(const RopeParams& s, int64_t R, int64_t max_position_embeddings,
                     int64_t seq_len, torch::Device device) {
  RopeFreqs f;
  if (s.type == "dynamic" && seq_len > max_position_embeddings) {
    // NTK: a larger base once the sequence outgrows the trained context (stateless: transformers
    // caches the grown table, which for ascending lengths is the same).
    const double seq = static_cast<double>(seq_len),
                 max_pos = static_cast<double>(max_position_embeddings);
    const double base = s.theta * std::pow(s.factor * seq / max_pos - (s.factor - 1),
                                           static_cast<double>(R) / (R - 2));
    f.inv_freq = default_inv_freq(base, R, device);
  } else if (s.type == "yarn") {
    f.inv_freq = yarn_inv_freq(s, R, device);
    f.attention_factor = s.attention_factor;
  } else if (s.type == "longrope") {
    const auto& ext = seq_len > s.original_max_position_embeddings ? s.long_factor : s.short_factor;
    torch::Tensor factors =
        torch::tensor(std::vector<float>(ext.begin(), ext.end()), torch::kFloat32).to(device);
    f.inv_freq = 1.0 / (factors * rope_powers(s.theta, R, device));
    f.attention_factor = s.attention_factor;
  } else {
    f.inv_freq = default_inv_freq(s.theta, R, device);
    if (s.type == "linear") f.inv_freq = f.inv_freq / s.factor;
    if (s.type == "llama3") f.inv_freq = llama3_inv_freq(s, f.inv_freq);
  }
  return f;
}

// cos/sin [N, R] fp32 at `positions` [N] fp32.
RopeTables rope_at(const RopeFreqs& f, const torch::Tensor& positions) {
  RopeTables t;
  torch::Tensor freqs = torch::outer(positions, f.inv_freq);  // [N, R/2]
  torch::Tensor angles = torch::cat({freqs, freqs}, -1);      // [N, R]
  t.cos = angles.cos();
  t.sin = angles.sin();
  if (f.attention_factor != 1.0) {
    t.cos = t.cos * f.attention_factor;
    t.sin = t.sin * f.attention_factor;
  }
  return t;
}

}  // namespace

bool rope_depends_on_length(const RopeParams& rope) {
  return rope.type == "dynamic" || rope.type == "longrope";
}

RopeTables rope_tables(const RopeParams& s, int64_t R, int64_t max_position_embeddings, int64_t T,
                       int64_t seq_len, torch::Device device) {
  return rope_at(rope_freqs(s, R, max_position_embeddings, seq_len, device),
                 torch::arange(T, torch::TensorOptions().dtype(torch::kFloat32).device(device)));
}

std::pair<torch::Tensor, torch::Tensor> rope_cos_sin(const RopeParams& rope, int64_t R,
                                                     int64_t max_position_embeddings,
                                                     const torch::Tensor& mask,
                                                     torch::Device device) {
  const int64_t B = mask.size(0), T = mask.size(1);
  if (!rope_depends_on_length(rope)) {
    RopeTables t = rope_tables(rope, R, max_position_embeddings, T, T, device);
    return {t.cos, t.sin};
  }
  torch::Tensor lengths = mask.to(torch::kCPU).to(torch::kInt64).sum(1);  // [B]
  std::map<int64_t, RopeTables> by_length;
  std::vector<torch::Tensor> cos, sin;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t len = lengths[b].item<int64_t>();
    auto it = by_length.find(len);
    if (it == by_length.end())
      it = by_length.emplace(len, rope_tables(rope, R, max_position_embeddings, T, len, device))
               .first;
    cos.push_back(it->second.cos);
    sin.push_back(it->second.sin);
  }
  return {torch::stack(cos).unsqueeze(1), torch::stack(sin).unsqueeze(1)};  // [B, 1, T, R]
}

std::pair<torch::Tensor, torch::Tensor> rope_cos_sin_at(const RopeParams& rope, int64_t R,
                                                        int64_t max_position_embeddings,
                                                        const torch::Tensor& positions,
                                                        const torch::Tensor& lengths) {
  const int64_t B = positions.size(0), T = positions.size(1);
  const auto device = positions.device();
  torch::Tensor pos = positions.reshape({-1}).to(torch::kFloat32);  // [B*T]
  if (!rope_depends_on_length(rope)) {
    RopeTables t = rope_at(rope_freqs(rope, R, max_position_embeddings, 0, device), pos);
    return {t.cos.view({B, 1, T, R}), t.sin.view({B, 1, T, R})};
  }
  // One table per distinct length: the tokens of that length get their rows from it.
  torch::Tensor len = lengths.reshape({-1}).to(device);  // [B*T]
  torch::Tensor cos = torch::empty({B * T, R}, pos.options()), sin = torch::empty_like(cos);
  std::vector<int64_t> distinct;
  {
    torch::Tensor u = std::get<0>(torch::_unique(len.to(torch::kCPU).to(torch::kInt64)));
    distinct.assign(u.data_ptr<int64_t>(), u.data_ptr<int64_t>() + u.numel());
  }
  for (int64_t L : distinct) {
    torch::Tensor rows = (len == L).nonzero().squeeze(1);  // [N]
    RopeTables t =
        rope_at(rope_freqs(rope, R, max_position_embeddings, L, device), pos.index_select(0, rows));
    cos.index_copy_(0, rows, t.cos);
    sin.index_copy_(0, rows, t.sin);
  }
  return {cos.view({B, 1, T, R}), sin.view({B, 1, T, R})};
}

bool rope_table_changes(const RopeParams& rope, int64_t max_position_embeddings, int64_t a,
                        int64_t b) {
  if (rope.type == "dynamic")
    return (a > max_position_embeddings || b > max_position_embeddings) && a != b;
  if (rope.type == "longrope")
    return (a > rope.original_max_position_embeddings) !=
           (b > rope.original_max_position_embeddings);
  return false;
}

AttentionMasks attention_masks(const torch::Tensor& q_pos, const torch::Tensor& k_pos,
                               const torch::Tensor& k_valid, const torch::Tensor& sees,
                               int64_t window) {
  const int64_t B = k_valid.size(0), Tq = q_pos.size(1), Tk = k_pos.size(1);
  torch::Tensor qi = q_pos.view({q_pos.size(0), 1, Tq, 1});  // [B|1, 1, Tq, 1]
  torch::Tensor kj = k_pos.view({k_pos.size(0), 1, 1, Tk});  // [B|1, 1, 1, Tk]
  AttentionMasks m;
  m.full = (kj <= qi).logical_and(k_valid.view({B, 1, 1, Tk}));  // [B, 1, Tq, Tk]
  if (sees.defined()) m.full = m.full.logical_and(sees);
  if (window > 0) m.window = m.full.logical_and(qi - kj < window);
  return m;
}

// ---- attention ----

namespace {

// Writes this call's k/v [B, K, Tn, E] behind the cached ones (growing the buffers when full) and
// returns all of them, [B, K, length + Tn, E]. The decoder advances cache.length after the last
// layer.
std::pair<torch::Tensor, torch::Tensor> cache_append(KVCache& cache, int64_t layer,
                                                     const torch::Tensor& k,
                                                     const torch::Tensor& v) {
  const size_t l = static_cast<size_t>(layer);
  const int64_t Tn = k.size(2), need = cache.length + Tn;
  torch::Tensor& ck = cache.k.at(l);
  torch::Tensor& cv = cache.v.at(l);
  if (!ck.defined() || ck.size(2) < need) {
    // Doubling keeps appends amortised O(1) when the caller reserved too little (or nothing).
    const int64_t old_cap = ck.defined() ? ck.size(2) : 0;
    const int64_t cap = std::max({need, cache.reserve_tokens, 2 * old_cap});
    torch::Tensor nk = torch::empty({k.size(0), k.size(1), cap, k.size(3)}, k.options());
    torch::Tensor nv = torch::empty({v.size(0), v.size(1), cap, v.size(3)}, v.options());
    if (cache.length > 0) {
      nk.narrow(2, 0, cache.length).copy_(ck.narrow(2, 0, cache.length));
      nv.narrow(2, 0, cache.length).copy_(cv.narrow(2, 0, cache.length));
    }
    ck = nk;
    cv = nv;
  }
  ck.narrow(2, cache.length, Tn).copy_(k);
  cv.narrow(2, cache.length, Tn).copy_(v);
  return {ck.narrow(2, 0, need), cv.narrow(2, 0, need)};
}

}  // namespace

SelfAttentionImpl::SelfAttentionImpl(const ModelArgs& a, int64_t layer,
                                     const torch::TensorOptions& options)
    : layer_(layer),
      num_heads_(a.num_heads),
      num_kv_heads_(a.num_kv_heads),
      head_dim_(a.head_dim),
      scale_(a.query_scale),
      softcap_(a.attn_softcap),
      sliding_(a.uses_sliding_window(layer)),
      local_rope_(a.has_local_rope && a.layer_sliding.at(static_cast<size_t>(layer))) {
  const int64_t q_out = a.num_heads * a.head_dim, kv_out = a.num_kv_heads * a.head_dim;
  if (a.fused_qkv) {
    qkv_proj =
        register_module("qkv_proj", Linear(a.hidden_size, q_out + 2 * kv_out, a.qkv_bias, options));
  } else {
    q_proj = register_module("q_proj", Linear(a.hidden_size, q_out, a.qkv_bias, options));
    k_proj = register_module("k_proj", Linear(a.hidden_size, kv_out, a.qkv_bias, options));
    v_proj = register_module("v_proj", Linear(a.hidden_size, kv_out, a.qkv_bias, options));
  }
  o_proj = register_module("o_proj", Linear(q_out, a.hidden_size, a.o_bias, options));
  if (a.qk_norm) {
    q_norm = register_module("q_norm", RMSNorm(a.head_dim, a.rms_norm_eps, a.norm_offset, options));
    k_norm = register_module("k_norm", RMSNorm(a.head_dim, a.rms_norm_eps, a.norm_offset, options));
  }
}

torch::Tensor SelfAttentionImpl::forward(const torch::Tensor& x, const LayerInputs& in) {
  const int64_t B = x.size(0), T = x.size(1);
  torch::Tensor q, k, v;  // [B, T, H*E], [B, T, K*E], [B, T, K*E]
  if (!qkv_proj.is_empty()) {
    std::vector<torch::Tensor> parts = qkv_proj(x).split(
        {num_heads_ * head_dim_, num_kv_heads_ * head_dim_, num_kv_heads_ * head_dim_}, -1);
    q = parts[0], k = parts[1], v = parts[2];
  } else {
    q = q_proj(x), k = k_proj(x), v = v_proj(x);
  }
  q = q.view({B, T, num_heads_, head_dim_});
  k = k.view({B, T, num_kv_heads_, head_dim_});
  if (!q_norm.is_empty()) {  // per head, before RoPE
    q = q_norm(q);
    k = k_norm(k);
  }
  q = q.transpose(1, 2);                                         // [B, H, T, E]
  k = k.transpose(1, 2);                                         // [B, K, T, E]
  v = v.view({B, T, num_kv_heads_, head_dim_}).transpose(1, 2);  // [B, K, T, E]
  const torch::Tensor& cos = local_rope_ ? in.cos_local : in.cos;
  const torch::Tensor& sin = local_rope_ ? in.sin_local : in.sin;
  q = apply_rope(q, cos, sin);
  k = apply_rope(k, cos, sin);
  if (in.cache) std::tie(k, v) = cache_append(*in.cache, layer_, k, v);  // [B, K, Tk, E] each
  const int64_t Tk = k.size(2);
  if (num_kv_heads_ != num_heads_) {
    // GQA: query head h reads key/value head h / (H / K).
    const int64_t rep = num_heads_ / num_kv_heads_;
    k = k.unsqueeze(2)
            .expand({B, num_kv_heads_, rep, Tk, head_dim_})
            .reshape({B, num_heads_, Tk, head_dim_});  // [B, H, Tk, E]
    v = v.unsqueeze(2)
            .expand({B, num_kv_heads_, rep, Tk, head_dim_})
            .reshape({B, num_heads_, Tk, head_dim_});
  }
  const torch::Tensor& allowed = sliding_ ? in.allowed_window : in.allowed_full;  // [B, 1, T, Tk]
  bool fused = false;
  if (softcap_ == 0.0) {
    if (in.impl == AttentionImpl::kSdpa) fused = true;
    if (in.impl == AttentionImpl::kAuto) fused = x.is_cuda();
  }
  // (The fused kernel has no softcapping: softcapped layers always take the reference path.)
  torch::Tensor out =
      fused ? attention_sdpa(q, k, v, allowed, scale_)
            : attention_reference(q, k, v, allowed, scale_, softcap_);  // [B, H, T, E]
  out = out.transpose(1, 2).reshape({B, T, num_heads_ * head_dim_});    // [B, T, H*E]
  return o_proj(out);                                                   // [B, T, D]
}

// ---- MLP ----

MLPImpl::MLPImpl(const ModelArgs& a, const torch::TensorOptions& options) : act_(a.hidden_act) {
  if (a.fused_gate_up) {
    gate_up_proj = register_module(
        "gate_up_proj", Linear(a.hidden_size, 2 * a.intermediate_size, a.mlp_bias, options));
  } else {
    gate_proj = register_module("gate_proj",
                                Linear(a.hidden_size, a.intermediate_size, a.mlp_bias, options));
    up_proj =
        register_module("up_proj", Linear(a.hidden_size, a.intermediate_size, a.mlp_bias, options));
  }
  down_proj =
      register_module("down_proj", Linear(a.intermediate_size, a.hidden_size, a.mlp_bias, options));
}

torch::Tensor MLPImpl::forward(const torch::Tensor& x) {
  torch::Tensor g, up;  // [B, T, F] each
  if (!gate_up_proj.is_empty()) {
    std::vector<torch::Tensor> parts = gate_up_proj(x).chunk(2, -1);
    g = parts[0], up = parts[1];
  } else {
    g = gate_proj(x), up = up_proj(x);
  }
  switch (act_) {
    case HiddenAct::kSilu:
      g = torch::silu(g);
      break;
    case HiddenAct::kGeluTanh:
      g = torch::gelu(g, "tanh");
      break;
    case HiddenAct::kGeluErf:
      g = torch::gelu(g);
      break;
  }
  return down_proj(g * up);  // [B, T, D]
}

// ---- decoder layer ----

DecoderLayerImpl::DecoderLayerImpl(const ModelArgs& a, int64_t layer,
                                   const torch::TensorOptions& options) {
  self_attn = register_module("self_attn", SelfAttention(a, layer, options));
  mlp = register_module("mlp", MLP(a, options));
  input_layernorm = register_module("input_layernorm",
                                    RMSNorm(a.hidden_size, a.rms_norm_eps, a.norm_offset, options));
  post_attention_layernorm = register_module(
      "post_attention_layernorm", RMSNorm(a.hidden_size, a.rms_norm_eps, a.norm_offset, options));
  if (a.post_norms) {
    pre_feedforward_layernorm =
        register_module("pre_feedforward_layernorm",
                        RMSNorm(a.hidden_size, a.rms_norm_eps, a.norm_offset, options));
    post_feedforward_layernorm =
        register_module("post_feedforward_layernorm",
                        RMSNorm(a.hidden_size, a.rms_norm_eps, a.norm_offset, options));
  }
}

torch::Tensor DecoderLayerImpl::forward(const torch::Tensor& x, const LayerInputs& in) {
  // Llama: h = x + attn(norm_in(x));            out = h + mlp(norm_post_attn(h))
  // Gemma-2: h = x + norm_post_attn(attn(norm_in(x))); out = h + norm_post_ff(mlp(norm_pre_ff(h)))
  const bool post_norms = !pre_feedforward_layernorm.is_empty();
  torch::Tensor attn = self_attn(input_layernorm(x), in);  // [B, T, D]
  if (post_norms) attn = post_attention_layernorm(attn);
  torch::Tensor h = x + attn;
  torch::Tensor ff = post_norms ? post_feedforward_layernorm(mlp(pre_feedforward_layernorm(h)))
                                : mlp(post_attention_layernorm(h));
  return h + ff;  // [B, T, D]
}

}  // namespace treg::model
