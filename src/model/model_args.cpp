// config.json -> ModelArgs. The ONLY place `model_type` is read: everything below the decoder sees
// fields (embed_scale, norm_offset, post_norms, softcaps, qkv_bias, sliding_window, ...).
#include <cmath>

#include "treg/error.h"
#include "treg/io.h"
#include "treg/model.h"

namespace treg {

namespace {

using nlohmann::json;

// Typed access to config.json keys with the HF config class defaults; errors name the key.
class ConfigReader {
 public:
  ConfigReader(const json& c, std::string where) : c_(c), where_(std::move(where)) {}

  bool has(const std::string& key) const { return c_.contains(key) && !c_[key].is_null(); }

  int64_t require_int(const std::string& key) const {
    if (!has(key)) fail(where_, "missing required key '" + key + "'");
    return as_int(key);
  }
  int64_t get_int(const std::string& key, int64_t fallback) const {
    return has(key) ? as_int(key) : fallback;
  }
  double get_double(const std::string& key, double fallback) const {
    if (!has(key)) return fallback;
    if (!c_[key].is_number()) fail(where_, "'" + key + "' must be a number, got " + c_[key].dump());
    return c_[key].get<double>();
  }
  bool get_bool(const std::string& key, bool fallback) const {
    if (!has(key)) return fallback;
    if (!c_[key].is_boolean())
      fail(where_, "'" + key + "' must be true or false, got " + c_[key].dump());
    return c_[key].get<bool>();
  }
  std::string get_string(const std::string& key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    if (!c_[key].is_string()) fail(where_, "'" + key + "' must be a string, got " + c_[key].dump());
    return c_[key].get<std::string>();
  }
  const json& at(const std::string& key) const { return c_[key]; }
  const std::string& where() const { return where_; }

 private:
  int64_t as_int(const std::string& key) const {
    const json& v = c_[key];
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>())
      return static_cast<int64_t>(v.get<double>());
    fail(where_, "'" + key + "' must be an integer, got " + v.dump());
  }
  const json& c_;
  std::string where_;
};

HiddenAct parse_act(const std::string& name, const std::string& where) {
  if (name == "silu" || name == "swish") return HiddenAct::kSilu;
  if (name == "gelu_pytorch_tanh" || name == "gelu_new" || name == "gelu_fast")
    return HiddenAct::kGeluTanh;
  if (name == "gelu") return HiddenAct::kGeluErf;
  fail(where, "unsupported hidden activation '" + name + "'",
       "supported: silu, gelu_pytorch_tanh, gelu_new, gelu");
}

// rope_scaling (transformers 4.x) or rope_parameters (5.x); "type" is the old spelling of
// "rope_type".
RopeScaling parse_rope_scaling(const json& s, const std::string& where) {
  RopeScaling r;
  if (s.is_null()) return r;
  if (!s.is_object()) fail(where, "rope_scaling must be an object or null, got " + s.dump());
  ConfigReader rs(s, where + ": rope_scaling");
  std::string type = rs.get_string("rope_type", rs.get_string("type", "default"));
  if (type == "default") return r;
  if (type != "linear" && type != "llama3")
    fail(where, "unsupported rope_scaling type '" + type + "'",
         "supported: default, linear, llama3");
  r.type = type;
  if (!rs.has("factor")) fail(rs.where(), "missing 'factor'");
  r.factor = rs.get_double("factor", 1.0);
  if (type == "llama3") {
    for (const char* k :
         {"low_freq_factor", "high_freq_factor", "original_max_position_embeddings"})
      if (!rs.has(k)) fail(rs.where(), std::string("llama3 scaling needs '") + k + "'");
    r.low_freq_factor = rs.get_double("low_freq_factor", 1.0);
    r.high_freq_factor = rs.get_double("high_freq_factor", 4.0);
    r.original_max_position_embeddings = rs.get_int("original_max_position_embeddings", 8192);
    if (r.high_freq_factor == r.low_freq_factor)
      fail(rs.where(),
           "high_freq_factor equals low_freq_factor (division by zero in the smooth factor)");
  }
  return r;
}

enum class Arch { kLlama, kMistral, kQwen2, kGemma2 };

}  // namespace

std::string supported_model_types() { return "llama, mistral, qwen2, gemma2"; }

ModelArgs model_args_from_json(const json& config, const std::string& where) {
  if (!config.is_object()) fail(where, "config is not a JSON object");
  ConfigReader c(config, where);
  ModelArgs a;
  a.raw = config;
  a.model_type = c.get_string("model_type", "");
  Arch arch;
  if (a.model_type == "llama")
    arch = Arch::kLlama;
  else if (a.model_type == "mistral")
    arch = Arch::kMistral;
  else if (a.model_type == "qwen2")
    arch = Arch::kQwen2;
  else if (a.model_type == "gemma2")
    arch = Arch::kGemma2;
  else
    fail(where, "unsupported model_type '" + a.model_type + "'",
         "supported: " + supported_model_types());
  const bool gemma2 = arch == Arch::kGemma2;

  a.vocab_size = c.require_int("vocab_size");
  a.hidden_size = c.require_int("hidden_size");
  a.intermediate_size = c.require_int("intermediate_size");
  a.num_layers = c.require_int("num_hidden_layers");
  a.num_heads = c.require_int("num_attention_heads");
  a.num_kv_heads = c.get_int("num_key_value_heads", a.num_heads);
  if (a.num_heads <= 0 || a.num_kv_heads <= 0 || a.num_heads % a.num_kv_heads != 0)
    fail(where, "num_attention_heads (" + std::to_string(a.num_heads) +
                    ") must be a positive multiple of num_key_value_heads (" +
                    std::to_string(a.num_kv_heads) + ")");
  a.head_dim = c.get_int("head_dim", gemma2 ? 256 : a.hidden_size / a.num_heads);
  if (a.head_dim <= 0 || a.head_dim % 2 != 0)
    fail(where, "head_dim must be positive and even, got " + std::to_string(a.head_dim));
  for (auto [key, v] : {std::pair<const char*, int64_t>{"vocab_size", a.vocab_size},
                        {"hidden_size", a.hidden_size},
                        {"intermediate_size", a.intermediate_size},
                        {"num_hidden_layers", a.num_layers}})
    if (v <= 0)
      fail(where, std::string("'") + key + "' must be positive, got " + std::to_string(v));
  a.max_position_embeddings = c.get_int("max_position_embeddings", gemma2                 ? 8192
                                                                   : arch == Arch::kLlama ? 2048
                                                                                          : 32768);
  a.rms_norm_eps = c.get_double("rms_norm_eps", 1e-6);

  // RoPE: rope_theta + rope_scaling (4.x) or rope_parameters (5.x).
  a.rope_theta = c.get_double("rope_theta", 10000.0);
  if (c.has("rope_parameters") && c.at("rope_parameters").is_object()) {
    const json& rp = c.at("rope_parameters");
    if (rp.contains("rope_theta") && rp["rope_theta"].is_number())
      a.rope_theta = rp["rope_theta"].get<double>();
    a.rope_scaling = parse_rope_scaling(rp, where);
  } else if (c.has("rope_scaling")) {
    a.rope_scaling = parse_rope_scaling(c.at("rope_scaling"), where);
  }

  // Gemma-2 names its activation `hidden_activation` (configs carry both).
  std::string act =
      gemma2 ? c.get_string("hidden_activation", c.get_string("hidden_act", "gelu_pytorch_tanh"))
             : c.get_string("hidden_act", "silu");
  a.hidden_act = parse_act(act, where);

  const bool attention_bias = c.get_bool("attention_bias", false);
  a.qkv_bias = arch == Arch::kQwen2 ? true : attention_bias;
  a.o_bias = arch == Arch::kQwen2 ? false : attention_bias;
  a.mlp_bias = arch == Arch::kLlama ? c.get_bool("mlp_bias", false) : false;
  a.tie_embeddings = c.get_bool("tie_word_embeddings", gemma2);

  a.query_scale = 1.0 / std::sqrt(static_cast<double>(a.head_dim));
  a.layer_sliding.assign(static_cast<size_t>(a.num_layers), false);
  if (gemma2) {
    a.embed_scale = std::sqrt(static_cast<double>(a.hidden_size));
    a.norm_offset = 1.0;
    a.post_norms = true;
    a.attn_softcap = c.get_double("attn_logit_softcapping", 0.0);
    a.final_softcap = c.get_double("final_logit_softcapping", 0.0);
    a.query_scale = 1.0 / std::sqrt(c.get_double("query_pre_attn_scalar", 256.0));
    a.sliding_window = c.has("sliding_window") ? c.get_int("sliding_window", 0) : 4096;
    for (int64_t i = 0; i < a.num_layers; ++i)
      a.layer_sliding[i] = (i % 2) == 0;  // even layers slide
  } else if (arch == Arch::kMistral) {
    // MistralConfig defaults to 4096; null (Mistral v0.2+) switches it off. Every layer slides.
    a.sliding_window = config.contains("sliding_window") ? c.get_int("sliding_window", 0) : 4096;
    a.layer_sliding.assign(static_cast<size_t>(a.num_layers), true);
  } else if (arch == Arch::kQwen2) {
    if (c.get_bool("use_sliding_window", false)) {
      a.sliding_window = c.get_int("sliding_window", 4096);
      const int64_t max_window_layers = c.get_int("max_window_layers", 28);
      for (int64_t i = 0; i < a.num_layers; ++i) a.layer_sliding[i] = i >= max_window_layers;
    }
  }
  // Newer configs state the pattern explicitly.
  if (c.has("layer_types") && c.at("layer_types").is_array()) {
    const json& lt = c.at("layer_types");
    if (static_cast<int64_t>(lt.size()) != a.num_layers)
      fail(where, "layer_types has " + std::to_string(lt.size()) +
                      " entries, expected num_hidden_layers = " + std::to_string(a.num_layers));
    for (int64_t i = 0; i < a.num_layers; ++i) {
      std::string t = lt[i].is_string() ? lt[i].get<std::string>() : "";
      if (t != "sliding_attention" && t != "full_attention")
        fail(where, "layer_types[" + std::to_string(i) + "] = " + lt[i].dump() +
                        ", expected sliding_attention or full_attention");
      a.layer_sliding[i] = t == "sliding_attention";
    }
  }
  if (a.sliding_window < 0)
    fail(where, "sliding_window must be positive, got " + std::to_string(a.sliding_window));

  a.bos_token_id = c.get_int("bos_token_id", -1);
  if (c.has("eos_token_id")) {
    const json& e = c.at("eos_token_id");
    if (e.is_array()) {
      for (const auto& x : e)
        if (x.is_number_integer()) a.eos_token_ids.push_back(x.get<int64_t>());
    } else {
      a.eos_token_ids.push_back(c.get_int("eos_token_id", -1));
    }
  }
  return a;
}

ModelArgs load_model_args(const std::string& model_dir) {
  const std::string path =
      model_dir.size() >= 5 && model_dir.substr(model_dir.size() - 5) == ".json"
          ? model_dir
          : path_join(model_dir, "config.json");
  if (!file_exists(path))
    fail(path, "not found", "a model directory needs the Hugging Face config.json");
  json config;
  try {
    config = json::parse(read_file(path));
  } catch (const json::exception& e) {
    fail(path, std::string("not valid JSON: ") + e.what());
  }
  return model_args_from_json(config, path);
}

}  // namespace treg
