// Tiny random-init checkpoints in the exact Hugging Face layout, for tests, smoke runs and benches.
#include "treg/error.h"
#include "treg/io.h"
#include "treg/model.h"

namespace treg {

namespace {

nlohmann::json eos_json(const std::vector<int64_t>& eos) {
  if (eos.size() == 1) return eos[0];
  return eos;
}

}  // namespace

nlohmann::json tiny_config(const TinySpec& s) {
  if (s.vocab_size <= 0)
    fail("make-tiny", "vocab_size must be positive, got " + std::to_string(s.vocab_size));
  using nlohmann::json;
  // Shapes shared by all: D 64, 4 query heads, 2 key/value heads (GQA), head_dim 16, F 128, two
  // layers (Gemma's alternating windows need four), SiLU, 1024 positions.
  json c = {{"vocab_size", s.vocab_size},
            {"num_hidden_layers", 2},
            {"hidden_act", "silu"},
            {"max_position_embeddings", 1024},
            {"hidden_size", 64},
            {"intermediate_size", 128},
            {"num_attention_heads", 4},
            {"num_key_value_heads", 2},
            {"head_dim", 16},
            {"initializer_range", s.init_std},
            {"attention_dropout", 0.0},
            {"use_cache", true},
            {"torch_dtype", "float32"},
            {"transformers_version", "4.44.2"},
            {"bos_token_id", s.bos_token_id >= 0 ? json(s.bos_token_id) : json(nullptr)},
            {"eos_token_id", eos_json(s.eos_token_ids)}};
  if (s.pad_token_id >= 0) c["pad_token_id"] = s.pad_token_id;
  if (s.arch == "gemma2" || s.arch == "gemma3") {
    // The Gemma family: 4 layers so that sliding (window 8) and global layers alternate;
    // query_pre_attn_scalar != head_dim; tied embeddings.
    c.update({{"num_hidden_layers", 4},
              {"hidden_act", "gelu_pytorch_tanh"},
              {"hidden_activation", "gelu_pytorch_tanh"},
              {"rms_norm_eps", 1e-6},
              {"attention_bias", false},
              {"query_pre_attn_scalar", 24},
              {"sliding_window", 8},
              {"tie_word_embeddings", true}});
  }
  if (s.arch == "llama" || s.arch == "llama3.2") {
    // llama: Llama-3-8B style (untied, no scaling). llama3.2: tied embeddings + llama3 RoPE scaling
    // with a short original context so the scaled, interpolated and kept frequency bands all occur.
    c.update({{"architectures", {"LlamaForCausalLM"}},
              {"model_type", "llama"},
              {"rms_norm_eps", 1e-5},
              {"rope_theta", 500000.0},
              {"attention_bias", false},
              {"mlp_bias", false},
              {"pretraining_tp", 1}});
    if (s.arch == "llama3.2") {
      c["tie_word_embeddings"] = true;
      c["rope_scaling"] = {{"rope_type", "llama3"},
                           {"factor", 8.0},
                           {"low_freq_factor", 1.0},
                           {"high_freq_factor", 4.0},
                           {"original_max_position_embeddings", 32}};
    } else {
      c["tie_word_embeddings"] = false;
      c["rope_scaling"] = nullptr;
    }
  } else if (s.arch == "mistral") {
    c.update({{"architectures", {"MistralForCausalLM"}},
              {"model_type", "mistral"},
              {"rms_norm_eps", 1e-5},
              {"rope_theta", 10000.0},
              {"sliding_window", 8},
              {"tie_word_embeddings", false}});
  } else if (s.arch == "qwen2") {
    // Qwen2.5-0.5B style: tied, q/k/v biases, sliding window configured but switched off.
    c.update({{"architectures", {"Qwen2ForCausalLM"}},
              {"model_type", "qwen2"},
              {"max_window_layers", 2},
              {"rms_norm_eps", 1e-6},
              {"rope_theta", 1000000.0},
              {"sliding_window", 256},
              {"use_sliding_window", false},
              {"tie_word_embeddings", true}});
  } else if (s.arch == "gemma2") {
    // Sliding window on even layers; softcaps small enough to bend the tiny model's scores.
    c.update({{"architectures", {"Gemma2ForCausalLM"}},
              {"model_type", "gemma2"},
              {"rope_theta", 10000.0},
              {"attn_logit_softcapping", 8.0},
              {"final_logit_softcapping", 4.0},
              {"cache_implementation", "hybrid"}});
  } else if (s.arch == "qwen3") {
    // Qwen3 style: q/k RMSNorm per head, no biases, untied.
    c.update({{"architectures", {"Qwen3ForCausalLM"}},
              {"model_type", "qwen3"},
              {"max_window_layers", 2},
              {"rms_norm_eps", 1e-6},
              {"rope_theta", 1000000.0},
              {"attention_bias", false},
              {"sliding_window", nullptr},
              {"use_sliding_window", false},
              {"tie_word_embeddings", false}});
  } else if (s.arch == "gemma3") {
    // Gemma-3 text: q/k norms, every 2nd layer global (pattern 2), local rope base 10000 vs
    // global 1e6 with linear scaling as Gemma-3 4B+, no softcaps.
    c.update({{"architectures", {"Gemma3ForCausalLM"}},
              {"model_type", "gemma3_text"},
              {"rope_theta", 1000000.0},
              {"rope_local_base_freq", 10000.0},
              {"rope_scaling", {{"rope_type", "linear"}, {"factor", 8.0}}},
              {"sliding_window_pattern", 2},
              {"attn_logit_softcapping", nullptr},
              {"final_logit_softcapping", nullptr}});
  } else if (s.arch == "phi3") {
    // Phi-3.5-mini style: fused qkv / gate_up, longrope past a short original context, a sliding
    // window; partial rotary (Phi-4-mini) so the pass-through dims are exercised too.
    const int64_t half = 6;  // rotary_dim / 2 = 16 * 0.75 / 2
    std::vector<double> short_f, long_f;
    for (int64_t i = 0; i < half; ++i) {
      short_f.push_back(1.0 + 0.05 * static_cast<double>(i));
      long_f.push_back(1.5 + 0.75 * static_cast<double>(i));
    }
    c.update({{"architectures", {"Phi3ForCausalLM"}},
              {"model_type", "phi3"},
              {"original_max_position_embeddings", 16},
              {"partial_rotary_factor", 0.75},
              {"rms_norm_eps", 1e-5},
              {"rope_theta", 10000.0},
              {"rope_scaling",
               {{"type", "longrope"}, {"short_factor", short_f}, {"long_factor", long_f}}},
              {"sliding_window", 48},
              {"tie_word_embeddings", false}});
    // Phi3Config's default pad_token_id (32000) lies outside a tiny vocabulary: transformers then
    // refuses to build the embedding, so the config always names one.
    if (!c.contains("pad_token_id")) c["pad_token_id"] = nullptr;
  } else {
    std::string names;
    for (const auto& a : tiny_arches()) names += (names.empty() ? "" : ", ") + a;
    fail("make-tiny", "unknown --arch '" + s.arch + "'", "supported: " + names);
  }
  return c;
}

const std::vector<std::string>& tiny_arches() {
  static const std::vector<std::string> arches = {"llama", "llama3.2", "mistral", "qwen2",
                                                  "qwen3", "gemma2",   "gemma3",  "phi3"};
  return arches;
}

void write_tiny_weights(const TinySpec& spec, const std::string& out_dir) {
  nlohmann::json config = tiny_config(spec);
  ModelArgs args = model_args_from_json(config, "make-tiny " + spec.arch);
  CausalLM model(args, torch::kFloat32);
  init_model_weights(model, spec.seed, spec.init_std);
  make_dirs(out_dir);
  save_model(model, out_dir, torch::kFloat32);
  nlohmann::json gen = {{"_from_model_config", true},
                        {"bos_token_id", spec.bos_token_id >= 0 ? nlohmann::json(spec.bos_token_id)
                                                                : nlohmann::json(nullptr)},
                        {"eos_token_id", eos_json(spec.eos_token_ids)},
                        {"transformers_version", "4.44.2"}};
  if (spec.pad_token_id >= 0) gen["pad_token_id"] = spec.pad_token_id;
  write_file_atomic(path_join(out_dir, "generation_config.json"), gen.dump(2) + "\n");
}

}  // namespace treg
