// Building blocks of the decoder (private to src/model). Each module registers its tensors under
// the Hugging Face names, so `named_parameters()` of the whole model equals the safetensors keys.
#pragma once
#include <torch/torch.h>

#include "treg/model.h"

namespace treg::model {

// y = x W^T (+ b). Parameters are allocated, not initialised (load_model / init_model_weights fill
// them).
class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in, int64_t out, bool bias, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x);  // [.., in] -> [.., out]
  torch::Tensor weight, bias;                     // [out, in], [out] or undefined
  // LoRA (lora.cpp): out += scaling · dropout(x) A^T B^T. Undefined without adapters.
  torch::Tensor lora_A, lora_B;  // [r, in], [out, r]
  double lora_scaling = 0, lora_dropout = 0;
  // Registers the adapters (A from `gen` as PEFT's kaiming_uniform(a=sqrt(5)), B zero), fp32 or the
  // weight's dtype when wider.
  void add_lora(int64_t r, double scaling, double dropout, at::Generator& gen);
  // W + scaling · B·A (W without adapters), in W's dtype, computed in fp32 or wider.
  torch::Tensor merged_weight() const;
};
TORCH_MODULE(Linear);
// The projections of `module` (recursively) that carry LoRA adapters, by module name
// ("model.layers.3.self_attn.q_proj"), in registration order. (lora.cpp)
std::vector<std::pair<std::string, LinearImpl*>> adapted_linears(torch::nn::Module& module);

class EmbeddingImpl : public torch::nn::Module {
 public:
  EmbeddingImpl(int64_t vocab, int64_t dim, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& ids);  // [B, T] -> [B, T, D]
  torch::Tensor weight;                             // [V, D]
};
TORCH_MODULE(Embedding);

// RMSNorm in fp32. offset 0 (Llama): w * (x / rms(x)).to(dtype); offset 1 (Gemma-2): ((x / rms(x))
// * (1 + w)).to(dtype).
class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps, double offset, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x);  // [.., D] -> [.., D]
  torch::Tensor weight;                           // [D]
  double eps, offset;
};
TORCH_MODULE(RMSNorm);

// Plain reference ops (fp32 softmax, no fusion); the fused path is tested against these.
torch::Tensor rms_norm_reference(const torch::Tensor& x, const torch::Tensor& w, double eps,
                                 double offset);
// x [B, H, T, E], cos/sin [T, R] -> x * cos + rotate_half(x) * sin on the first R dims (HF's
// non-interleaved layout); dims R.. pass unrotated (partial_rotary_factor < 1).
torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos,
                         const torch::Tensor& sin);
// Queries per block of attention_reference, for `scores_per_query` scores (batch x heads x keys)
// per query row; `ranged` (CPU, no cache): blocks read only the keys up to their last column, so
// they are kept small. The memory plan counts the softmax it keeps with the same blocks.
int64_t reference_attention_block_rows(int64_t scores_per_query, int64_t T, bool ranged);
// Whether attention_reference adds the mask as a bias onto the scores (no mask kept for the
// backward) rather than masking them after (the mask kept): for fp32/fp64 queries outside
// autocast without softcapping. The memory plan counts what each keeps.
bool reference_attention_mask_is_bias(double softcap, bool autocast, bool fp32_or_wider);
// q [B, H, T, E], k/v [B, H, T, E], allowed [B, 1, T, T] bool -> [B, H, T, E]
torch::Tensor attention_reference(const torch::Tensor& q, const torch::Tensor& k,
                                  const torch::Tensor& v, const torch::Tensor& allowed,
                                  double scale, double softcap);
torch::Tensor attention_sdpa(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             const torch::Tensor& allowed, double scale);
// Rotary tables for positions 0..T-1 as transformers builds them for a sequence of `seq_len`
// tokens: frequencies with the rope type's scaling (dynamic and longrope depend on seq_len),
// cos/sin [T, rotary_dim] fp32 multiplied by the type's attention factor.
struct RopeTables {
  torch::Tensor cos, sin;  // [T, R] fp32
};
RopeTables rope_tables(const RopeParams& rope, int64_t rotary_dim, int64_t max_position_embeddings,
                       int64_t T, int64_t seq_len, torch::Device device);
// cos/sin for a right-padded batch (mask [B, T]): [T, R] when the rope ignores the length, else
// [B, 1, T, R] with each row's table chosen by its own token count, so a sequence's log-probs do
// not depend on the batch it is padded into (transformers, unpadded, sees the same).
std::pair<torch::Tensor, torch::Tensor> rope_cos_sin(const RopeParams& rope, int64_t rotary_dim,
                                                     int64_t max_position_embeddings,
                                                     const torch::Tensor& mask,
                                                     torch::Device device);
// cos/sin [B, 1, T, R] fp32 per token: positions [B, T] int64, and lengths [B, T], the length of
// each token's sequence (what dynamic / longrope choose their table by; ignored by other types).
std::pair<torch::Tensor, torch::Tensor> rope_cos_sin_at(const RopeParams& rope, int64_t rotary_dim,
                                                        int64_t max_position_embeddings,
                                                        const torch::Tensor& positions,
                                                        const torch::Tensor& lengths);
// Whether a token's rope table depends on its sequence length (dynamic, longrope).
bool rope_depends_on_length(const RopeParams& rope);
// Whether the rope's table changes between sequence lengths `a` and `b` (dynamic beyond
// max_position_embeddings, longrope across original_max_position_embeddings).
bool rope_table_changes(const RopeParams& rope, int64_t max_position_embeddings, int64_t a,
                        int64_t b);

// Who may attend whom: query i sees key j when key j is a token, is not after i (k_pos <= q_pos),
// belongs to the same segment, and on sliding layers q_pos - k_pos < window. Positions count from
// each sequence's start, so the one rule serves right-padded rows, packed rows and a KV cache.
struct AttentionMasks {
  torch::Tensor full;    // [B, 1, Tq, Tk] bool
  torch::Tensor window;  // [B, 1, Tq, Tk] bool, undefined without a sliding window
};
// Query i sees key j when pos_j <= pos_i, key j is a token and `sees` allows the pair.
// q_pos [B or 1, Tq], k_pos [B or 1, Tk] int64; k_valid [B, Tk] bool; sees [B, 1, Tq, Tk] bool or
// undefined (one sequence per row); window 0 = none.
AttentionMasks attention_masks(const torch::Tensor& q_pos, const torch::Tensor& k_pos,
                               const torch::Tensor& k_valid, const torch::Tensor& sees,
                               int64_t window);

// What a layer needs besides its input: rotary tables and the attention masks.
struct LayerInputs {
  // [T, R] (positions 0..T-1 in every row) or [B, 1, T, R] per token, in the hidden dtype
  // (R = rotary_dim <= E)
  torch::Tensor cos, sin;
  torch::Tensor cos_local, sin_local;  // the same for sliding layers with their own rope (Gemma-3)
  torch::Tensor allowed_full;          // [B, 1, T, Tk] bool (Tk = Tcache + T with a cache)
  torch::Tensor allowed_window;  // [B, 1, T, Tk] bool with i - j < sliding_window (or undefined)
  AttentionImpl impl = AttentionImpl::kAuto;
  // forward_cached: each layer attends to its cached keys/values too and appends its new ones.
  KVCache* cache = nullptr;
};

class SelfAttentionImpl : public torch::nn::Module {
 public:
  SelfAttentionImpl(const ModelArgs& args, int64_t layer, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x, const LayerInputs& in);  // [B, T, D] -> [B, T, D]
  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  Linear qkv_proj{nullptr};                  // fused_qkv (Phi-3) instead of q/k/v_proj
  RMSNorm q_norm{nullptr}, k_norm{nullptr};  // qk_norm only

 private:
  int64_t layer_, num_heads_, num_kv_heads_, head_dim_;
  double scale_, softcap_;
  bool sliding_, local_rope_;
};
TORCH_MODULE(SelfAttention);

class MLPImpl : public torch::nn::Module {
 public:
  MLPImpl(const ModelArgs& args, const torch::TensorOptions& options);
  torch::Tensor forward(
      const torch::Tensor& x);  // down(act(gate(x)) * up(x)): [B, T, D] -> [B, T, D]
  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
  Linear gate_up_proj{nullptr};  // fused_gate_up (Phi-3): [gate; up] rows

 private:
  HiddenAct act_;
};
TORCH_MODULE(MLP);

class DecoderLayerImpl : public torch::nn::Module {
 public:
  DecoderLayerImpl(const ModelArgs& args, int64_t layer, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x, const LayerInputs& in);  // [B, T, D] -> [B, T, D]
  SelfAttention self_attn{nullptr};
  MLP mlp{nullptr};
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  RMSNorm pre_feedforward_layernorm{nullptr},
      post_feedforward_layernorm{nullptr};  // post_norms only
};
TORCH_MODULE(DecoderLayer);

// Runs `layer` without keeping its activations; the backward recomputes them (gradient
// checkpointing).
torch::Tensor checkpointed_layer_forward(DecoderLayerImpl& layer, const torch::Tensor& x,
                                         const LayerInputs& in);

}  // namespace treg::model
