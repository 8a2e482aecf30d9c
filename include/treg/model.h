// The decoder-only language models treg trains: Llama-3 (3.1/3.2), Mistral, Qwen2/2.5, Qwen3,
// Gemma-2, Gemma-3 (text) and Phi-3/3.5 as ONE decoder whose architectural differences are fields
// of ModelArgs. Submodules are registered under the Hugging Face names, so `named_parameters()`
// keys equal the safetensors keys of a HF checkpoint.
//
// Letters in shape comments: B batch, T tokens, D hidden, H query heads, K key/value heads,
// E head dim, F MLP width, V vocabulary, N selected tokens.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace treg {

enum class HiddenAct { kSilu, kGeluTanh, kGeluErf };

// One rotary embedding as transformers computes it (modeling_rope_utils.py): base `theta` and the
// scaling of config.json's rope_scaling (transformers 4) / rope_parameters (5).
// type: "" (none), "linear", "llama3", "dynamic" (NTK, once T exceeds max_position_embeddings),
// "yarn", "longrope" (short_factor up to original_max_position_embeddings, long_factor beyond).
struct RopeParams {
  std::string type;
  double theta = 10000.0;
  double factor = 1.0;
  double low_freq_factor = 1.0;                  // llama3
  double high_freq_factor = 4.0;                 // llama3
  int64_t original_max_position_embeddings = 0;  // llama3, yarn, longrope
  double attention_factor = 1.0;  // yarn, longrope: cos/sin are multiplied by it (resolved value)
  double beta_fast = 32.0, beta_slow = 1.0;       // yarn
  bool truncate = true;                           // yarn
  std::vector<double> short_factor, long_factor;  // longrope: [rotary_dim / 2] each
};

struct ModelArgs {
  std::string
      model_type;  // "llama" | "mistral" | "qwen2" | "qwen3" | "gemma2" | "gemma3_text" | "phi3"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;        // D
  int64_t intermediate_size = 0;  // F
  int64_t num_layers = 0;
  int64_t num_heads = 0;     // H
  int64_t num_kv_heads = 0;  // K (GQA: H % K == 0)
  int64_t head_dim = 0;      // E (explicit in Gemma-2 / Mistral-Nemo configs)
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  RopeParams rope;  // every layer, or the full-attention layers when local_rope is set
  bool has_local_rope = false;
  RopeParams
      local_rope;  // Gemma-3: sliding layers rotate with their own base (rope_local_base_freq)
  int64_t rotary_dim =
      0;  // leading head dims that rotate (partial_rotary_factor * E); the rest pass
  HiddenAct hidden_act = HiddenAct::kSilu;
  bool qkv_bias = false;  // Qwen2: q/k/v projections carry a bias
  // Qwen3 / Gemma-3: q_norm / k_norm, an RMSNorm over each head's E dims of q and k before RoPE.
  bool qk_norm = false;
  // Phi-3: q/k/v are one `qkv_proj` [(H + 2K) E, D] and gate/up one `gate_up_proj` [2F, D].
  bool fused_qkv = false;
  bool fused_gate_up = false;
  bool o_bias = false;          // Llama `attention_bias` also adds one to o_proj
  bool mlp_bias = false;        // Llama `mlp_bias`
  bool tie_embeddings = false;  // lm_head shares model.embed_tokens.weight (no lm_head.weight key)
  // Gemma-2: embeddings are multiplied by sqrt(D) rounded to the hidden dtype; 1 elsewhere.
  double embed_scale = 1.0;
  // Gemma-2 RMSNorm scales by (norm_offset + w) in fp32; Llama-style norms have offset 0 and scale
  // by w after casting back to the hidden dtype.
  double norm_offset = 0.0;
  // Gemma-2: post_attention_layernorm is applied to the attention output, and the MLP gets its own
  // pre_feedforward_layernorm / post_feedforward_layernorm.
  bool post_norms = false;
  double attn_softcap = 0.0;   // 0 = off; else scores = c * tanh(scores / c)
  double final_softcap = 0.0;  // 0 = off; else logits = c * tanh(logits / c)
  double query_scale = 0.0;    // softmax scale: query_pre_attn_scalar^-0.5 (Gemma-2) or E^-0.5
  int64_t sliding_window = 0;  // 0 = none; else query i sees keys j with i - j < sliding_window
  std::vector<bool> layer_sliding;  // [num_layers]: which layers use sliding_window
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;
  nlohmann::json
      raw;  // config.json as read; save_model writes it back with torch_dtype/vocab updated

  // dynamic / longrope: the rotary table depends on the sequence length, so one copy of a prefix
  // cannot serve sequences of different lengths (forward_packed refuses such a tree).
  bool rope_depends_on_length() const;
  bool uses_sliding_window(int64_t layer) const {
    return sliding_window > 0 && layer_sliding.at(static_cast<size_t>(layer));
  }
};

// The architectures ModelArgs can describe, for error messages ("llama, mistral, ...").
std::string supported_model_types();
// Parses <model_dir>/config.json (or a path to a config.json). The only place `model_type` is read.
ModelArgs load_model_args(const std::string& model_dir);
// The same from an already-parsed config; `where` names it in errors.
ModelArgs model_args_from_json(const nlohmann::json& config, const std::string& where);

// Attention kernel: kReference is plain matmul + fp32 softmax (what CPU fp32 tests compare to);
// kSdpa uses LibTorch's fused scaled-dot-product attention (not with attention softcapping);
// kAuto picks kSdpa on CUDA when the layer allows it, else kReference.
enum class AttentionImpl { kAuto, kReference, kSdpa };

// Keys and values of the tokens a generation has run so far, for CausalLM::forward_cached: per
// layer after RoPE (and k_norm), in [B, K, capacity, E] buffers whose first `length` positions hold
// tokens. Default-constructed = empty (the next forward_cached is a prefill).
struct KVCache {
  std::vector<torch::Tensor> k, v;  // [num_layers] of [B, K, capacity, E]
  torch::Tensor ids;           // [B, length]: the tokens seen (to rebuild k/v, see forward_cached)
  int64_t length = 0;          // Tcache
  int64_t reserve_tokens = 0;  // room to allocate at once (e.g. prompt + max_new_tokens)
  torch::Tensor keys(int64_t layer) const;    // [B, K, Tcache, E]
  torch::Tensor values(int64_t layer) const;  // [B, K, Tcache, E]
  // Keeps batch rows `rows` ([B'] int64) only, e.g. to drop sequences that finished.
  void select_rows(const torch::Tensor& rows);
};

// The linear projections of one decoder layer under their HF module names, in the order the
// layer registers them: q/k/v_proj (or Phi-3's fused qkv_proj), o_proj, gate/up_proj (or
// gate_up_proj), down_proj. (model_args.cpp)
struct Projection {
  std::string name;
  int64_t in = 0, out = 0;
};
std::vector<Projection> layer_projections(const ModelArgs& args);
// Whether a parameter name is the weight of one of them ("model.layers.3.mlp.down_proj.weight"):
// used only as a linear's weight, so under autocast only its bf16 rounding is ever read.
bool is_layer_projection_weight(const ModelArgs& args, const std::string& name);

// LoRA adapters as PEFT's LoraLayer (model/lora.cpp): an adapted projection computes
// x W^T + b + s · dropout(x) A^T B^T, A [r, in] kaiming-uniform and B [out, r] zero (so the adapted
// model starts as the base), s = alpha / r (alpha / sqrt(r) with rslora). The base is frozen.
struct LoraSpec {
  int64_t r = 16;
  double alpha = 32;
  double dropout = 0.05;
  bool rslora = false;
  // Projection names of a decoder layer (q_proj, ..., down_proj; qkv_proj / gate_up_proj on
  // Phi-3), or "all-linear" (every projection of every layer, not lm_head, as PEFT). Empty = PEFT's
  // default for the model type (q_proj + v_proj; qkv_proj on Phi-3).
  std::vector<std::string> target_modules;
  double scaling() const;
};
// The projection names `targets` selects in a layer of `args`' architecture, in layer order; an
// unknown name is an error naming the nearest one.
std::vector<std::string> lora_target_names(const ModelArgs& args,
                                           const std::vector<std::string>& targets);
// Adapter parameters are named "<projection>.lora_A" / ".lora_B" (named_parameters); they are not
// Hugging Face keys (save_model merges them in, save_lora_adapter writes PEFT's layout).
bool is_lora_parameter(const std::string& name);

class CausalLMImpl : public torch::nn::Module {
 public:
  // Parameters are allocated with `options` (device, dtype) but NOT initialised: load_model fills
  // them from a checkpoint, init_model_weights draws them.
  explicit CausalLMImpl(const ModelArgs& args, torch::TensorOptions options = torch::kFloat32);
  // The three entry points share one decoder; each tells the layers every token's position and
  // which keys it may see (its segment's earlier tokens, within the sliding window).
  //
  // ids [B, T] int64, mask [B, T] (1 = token, 0 = right padding) -> final-normed hidden [B, T, D]
  torch::Tensor forward(const torch::Tensor& ids, const torch::Tensor& mask);
  // Several sequences per row: segments [B, T] int64, 0 = padding, s > 0 = the sequence the token
  // belongs to, each one contiguous run. Positions restart at 0 in every segment and a token sees
  // only the earlier tokens of its own; length-dependent ropes (dynamic, longrope) use each
  // segment's own length. So every sequence gets the hidden states it gets alone in forward().
  // -> final-normed hidden [B, T, D]; log-probs: next_token_logprobs_from_hidden with
  // packed_target_mask(segments).
  // Prefix sharing: with parents [B, S1] int64 (parents[b][s] = the segment that segment s
  // continues, 0 = none; S1 > every segment id), a segment sees its ancestors' tokens too and its
  // positions continue from its parent's end, so one copy of a shared prefix (a prompt, a revision
  // context) serves every branch: each root..leaf path gets the hidden states it gets alone. A
  // parent must end before its children start. The first token of a branch is predicted by the
  // parent's last token (not by the column before it): packed_predictor_columns.
  torch::Tensor forward_packed(const torch::Tensor& ids, const torch::Tensor& segments,
                               const torch::Tensor& parents = {});
  // Generation: ids [B, Tn] of new tokens, attention_mask [B, Tpast + Tn] (1 = token, LEFT
  // padding) over the cached tokens and the new ones; positions are cumsum(mask) - 1 as in
  // transformers. Appends the new keys/values to `cache` and returns the final-normed hidden of
  // the new tokens [B, Tn, D]. Prefill: an empty cache; then one token per step. When a
  // length-dependent rope (longrope past original_max_position_embeddings, dynamic past
  // max_position_embeddings) changes a row's table, the cache is rebuilt from its ids (as
  // transformers' Phi-3 does), so each step equals a full forward of the sequence so far.
  // Never checkpointed; run it under NoGradGuard.
  torch::Tensor forward_cached(const torch::Tensor& ids, const torch::Tensor& attention_mask,
                               KVCache& cache);
  // hidden [.., D] -> logits [.., V] in fp32, incl. the final softcap.
  torch::Tensor lm_logits(const torch::Tensor& hidden);
  // The [V, D] output projection (model.embed_tokens.weight when tied).
  torch::Tensor lm_head_weight();
  void set_gradient_checkpointing(bool on);
  bool gradient_checkpointing() const { return checkpointing_; }
  void set_attention_impl(AttentionImpl impl) { attention_impl_ = impl; }
  AttentionImpl attention_impl() const { return attention_impl_; }
  const ModelArgs& args() const { return args_; }
  // LoRA (model/lora.cpp): adapters on the projections `spec` selects in every layer, drawn from
  // `seed`; every other parameter stops requiring gradients. With `base_dtype` the layers'
  // frozen projection weights are stored in it (bf16 under bf16 autocast computes exactly what fp32
  // weights do, in half the memory); embeddings, norms and lm_head keep their dtype. Once per model.
  void add_lora(const LoraSpec& spec, uint64_t seed,
                std::optional<torch::ScalarType> base_dtype = std::nullopt);
  // The spec add_lora was given, null without adapters.
  const LoraSpec* lora() const { return lora_ ? &*lora_ : nullptr; }

 private:
  ModelArgs args_;
  std::optional<LoraSpec> lora_;
  bool checkpointing_ = false;
  AttentionImpl attention_impl_ = AttentionImpl::kAuto;
  torch::nn::Module* body_ = nullptr;  // "model": embed_tokens, layers, norm
  torch::Tensor lm_head_;              // lm_head.weight, undefined when tied
};
TORCH_MODULE(CausalLM);

// Loads <dir>/config.json and model.safetensors (or the shards of model.safetensors.index.json)
// strictly: missing, unexpected and mis-shaped keys are an error that lists them.
CausalLM load_model(const std::string& dir, torch::Device device, torch::ScalarType dtype);
// With LoRA adapters, each adapted projection is saved merged, W + s·B·A, and the adapters
// themselves are not saved: the export is a plain model of the same architecture.
// HF layout: config.json (args.raw with torch_dtype/vocab_size updated), model.safetensors or
// model-0000i-of-0000n.safetensors + model.safetensors.index.json when larger than max_shard_bytes;
// generation_config.json is left untouched if present. Every file is written atomically.
// `fp32_weights`: weights held outside the model (ZeRO's fp32 masters of bf16 replicas), by name,
// written instead of the model's tensors of those names.
void save_model(CausalLM& model, const std::string& dir, torch::ScalarType dtype,
                int64_t max_shard_bytes = 2LL << 30,
                const std::map<std::string, torch::Tensor>& fp32_weights = {});
// PEFT's adapter layout in `dir`: adapter_config.json (r, lora_alpha, target_modules, ...,
// base_model_name_or_path = `base_model`) and adapter_model.safetensors (fp32; keys
// base_model.model.<module>.lora_A.weight [r, in] / .lora_B.weight [out, r]), as `peft` loads them.
void save_lora_adapter(CausalLM& model, const std::string& dir, const std::string& base_model);
// Reads such a directory into a model with adapters of the same spec (r, scaling, targets); a
// mismatch or a missing / mis-shaped tensor is an error naming the file.
void load_lora_adapter(CausalLM& model, const std::string& dir);

// HF-like random init: N(0, std) for linear/embedding weights and biases; RMSNorm weights are their
// neutral value (1, or 0 with norm_offset 1) plus N(0, std). Deterministic in `seed`.
void init_model_weights(CausalLM& model, uint64_t seed, double std = 0.02);

struct TokenLogprobs {
  torch::Tensor logps;  // [B, T-1] fp32 (fp64 for fp64 models): log p(ids[:, t+1] | ids[:, :t+1]);
                        // 0 where mask[:, t+1] == 0
  torch::Tensor
      log_sq_mass;  // [B, T-1] fp32: log sum_v p(v | ctx)^2 (WPO), undefined unless requested
};
// Chunked over tokens so a [B, T, V] fp32 tensor is never materialised: each chunk of at most
// `chunk_tokens` positions goes logits -> fp32 -> log_softmax, and its backward recomputes the
// chunk. Differentiable w.r.t. the model parameters.
TokenLogprobs next_token_logprobs(CausalLM& model, const torch::Tensor& ids,
                                  const torch::Tensor& mask, bool with_sq_mass = false,
                                  int64_t chunk_tokens = 1024);
// The same from final hidden states [B, T, D] (e.g. to share one forward between losses).
TokenLogprobs next_token_logprobs_from_hidden(CausalLM& model, const torch::Tensor& hidden,
                                              const torch::Tensor& ids, const torch::Tensor& mask,
                                              bool with_sq_mass = false,
                                              int64_t chunk_tokens = 1024);
// The mask next_token_logprobs_from_hidden takes for packed rows: 1 where a token has an earlier
// token of its own segment (so the previous position predicts it), 0 at segment starts and padding.
// segments [B, T] -> [B, T] int64
torch::Tensor packed_target_mask(const torch::Tensor& segments);
// For packed rows with prefix sharing (forward_packed's parents): the column whose hidden state
// predicts each token -- the previous column inside its segment, the parent's last column for a
// branch's first token -- and -1 where nothing does (a root's first token, padding).
// segments [B, T], parents [B, S1] or undefined -> [B, T] int64 (CPU)
torch::Tensor packed_predictor_columns(const torch::Tensor& segments, const torch::Tensor& parents);

// make-tiny: a random-init checkpoint of `arch` (tiny_arches()) with vocabulary
// `vocab_size`, written in the HF layout (config.json, model.safetensors, generation_config.json).
// Special-token ids go into config.json / generation_config.json.
struct TinySpec {
  std::string arch;
  int64_t vocab_size = 0;
  uint64_t seed = 0;
  double init_std = 0.02;
  int64_t bos_token_id = 1;
  std::vector<int64_t> eos_token_ids = {2};
  int64_t pad_token_id = -1;  // -1: none
};
void write_tiny_weights(const TinySpec& spec, const std::string& out_dir);
// The config.json make-tiny writes for `spec` (real HF field names of that architecture).
nlohmann::json tiny_config(const TinySpec& spec);
// The --arch names make-tiny knows.
const std::vector<std::string>& tiny_arches();

}  // namespace treg
